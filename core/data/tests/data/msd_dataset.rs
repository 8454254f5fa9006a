//! The Decathlon's `Task01_BrainTumour` layout: cases from `dataset.json` (not a folder glob),
//! 4-D images mapped to our channel order by the `modality` names, labels in the `msd` convention.

use crate::fixtures::msd_task01 as task;
use dsma_data::brats::{check_dataset, discover, load_case, DatasetOptions};
use dsma_data::labels::{region_mask, Region};
use dsma_data::LabelConvention;

/// A 3×2×1 task with one case whose four channels are constant 10, 20, 30, 40 in the order
/// T2w, FLAIR, T1w, t1gd, labels 0..=3 then 3, 1; plus an AppleDouble file a glob would pick up.
#[test]
fn task01_cases_channels_and_regions_follow_dataset_json() {
    let tmp = tempfile::tempdir().unwrap();
    let image = task(tmp.path());
    let opts = DatasetOptions::new(LabelConvention::Msd);
    assert_eq!(
        discover(tmp.path(), &opts).unwrap(),
        std::slice::from_ref(&image)
    );
    let case = load_case(&image, LabelConvention::Msd).unwrap();
    assert_eq!(case.id, "BRATS_001");
    // Our order is FLAIR, T1, T1ce, T2: channels 1, 2, 3, 0 of the file.
    let firsts: Vec<f32> = (0..4).map(|m| case.image[[m, 0, 0, 0]]).collect();
    assert_eq!(firsts, [20.0, 30.0, 40.0, 10.0]);
    // Labels [0, 1, 2, 3, 3, 1] (x fastest): WT = {1,2,3}, TC = {2,3}, ET = {3} by dataset.json.
    let mask = |r| {
        region_mask(case.label.view(), r, case.convention)
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(mask(Region::Wt), [false, true, true, true, true, true]);
    assert_eq!(mask(Region::Tc), [false, false, true, true, true, false]);
    assert_eq!(mask(Region::Et), [false, false, false, true, true, false]);
    assert!(check_dataset(tmp.path(), &opts)
        .unwrap()
        .problems
        .is_empty());
}

/// `dsma predict`'s reading of a task folder: the images of `dataset.json`'s `test` list
/// (`imagesTs`, no labels), channels in our order; one image by path; an empty list refused.
#[test]
fn task01_test_images_are_read_from_the_test_list() {
    use dsma_data::images::{discover_images, image_source};
    let tmp = tempfile::tempdir().unwrap();
    let image = task(tmp.path());
    let err = discover_images(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("`test` list is empty"), "{err}");
    // The training image copied as the unlabelled test image BRATS_485.
    let test = tmp.path().join("imagesTs/BRATS_485.nii");
    std::fs::create_dir_all(test.parent().unwrap()).unwrap();
    std::fs::copy(&image, &test).unwrap();
    let json_path = tmp.path().join("dataset.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    json["test"] = serde_json::json!(["./imagesTs/BRATS_485.nii"]);
    std::fs::write(&json_path, json.to_string()).unwrap();
    let sources = discover_images(tmp.path()).unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].id(), "BRATS_485");
    let case = sources[0].load().unwrap();
    let firsts: Vec<f32> = (0..4).map(|m| case.image[[m, 0, 0, 0]]).collect();
    assert_eq!(
        firsts,
        [20.0, 30.0, 40.0, 10.0],
        "FLAIR, T1, T1ce, T2 from T2w, FLAIR, T1w, t1gd"
    );
    let one = image_source(&test).unwrap().load().unwrap();
    assert_eq!(one.image, case.image);
    let stray = tmp.path().join("stray.nii");
    std::fs::copy(&image, &stray).unwrap();
    let err = image_source(&stray).unwrap_err().to_string();
    assert!(
        err.contains("dataset.json") && err.contains("BraTS case folder"),
        "{err}"
    );
}

/// Writes `dataset.json` with `training` entries `pairs` (image, label) into `root`.
fn dataset_json(root: &std::path::Path, training: &str) {
    let text = format!(
        r#"{{"name": "BRATS", "modality": {{"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}},
            "training": {training}, "test": []}}"#
    );
    std::fs::write(root.join("dataset.json"), text).unwrap();
}

#[test]
fn paths_outside_the_task_folder_are_refused_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DatasetOptions::new(LabelConvention::Msd);
    for (training, field, text) in [
        (
            r#"[{"image": "/etc/passwd", "label": "./labelsTr/a.nii.gz"}]"#,
            "training[0].image",
            "/etc/passwd",
        ),
        (
            r#"[{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"},
                {"image": "./imagesTr/b.nii.gz", "label": "../../outside/b.nii.gz"}]"#,
            "training[1].label",
            "../../outside/b.nii.gz",
        ),
        (
            r#"[{"image": "./imagesTr/../../x.nii.gz", "label": "./labelsTr/x.nii.gz"}]"#,
            "training[0].image",
            "./imagesTr/../../x.nii.gz",
        ),
    ] {
        dataset_json(tmp.path(), training);
        let e = discover(tmp.path(), &opts).unwrap_err().to_string();
        assert!(
            e.contains(&format!("dataset.json: {field}"))
                && e.contains(&format!("`{text}` is not a path inside the task folder")),
            "{e}"
        );
    }
}

#[test]
fn an_image_name_that_gives_no_usable_case_id_is_refused_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    // The case id is the image's name less `.nii.gz`; these would name the case-store folder's
    // parent, the folder itself, or nothing.
    for (name, id) in [("...nii.gz", ".."), ("..nii.gz", "."), (".nii.gz", "")] {
        dataset_json(
            tmp.path(),
            &format!(
                r#"[{{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}},
                    {{"image": "./imagesTr/{name}", "label": "./labelsTr/{name}"}}]"#
            ),
        );
        let e = discover(tmp.path(), &DatasetOptions::new(LabelConvention::Msd))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataset.json: training[1].image")
                && e.contains(&format!("gives the case id `{id}`")),
            "{e}"
        );
    }
}

#[test]
fn test_images_whose_ids_collide_or_name_no_file_are_refused_and_so_is_the_root_as_a_case() {
    use dsma_data::images::image_source;
    let tmp = tempfile::tempdir().unwrap();
    let write = |test: &str| {
        let text = format!(
            r#"{{"name": "BRATS", "modality": {{"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}},
                "training": [], "test": {test}}}"#
        );
        std::fs::write(tmp.path().join("dataset.json"), text).unwrap();
    };
    // Predictions are written as `<id>.nii.gz`: two entries with one id would overwrite each other.
    write(r#"["./imagesTs/BRATS_485.nii.gz", "./imagesTs/BRATS_485.nii"]"#);
    let e = dsma_data::msd::read_dataset(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test[1]") && e.contains("case `BRATS_485` is listed twice (test[0] too)"),
        "{e}"
    );
    write(r#"["./imagesTs/...nii.gz"]"#);
    let e = dsma_data::msd::read_dataset(tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test[0]") && e.contains("gives the case id `..`"),
        "{e}"
    );
    // `dsma predict --case /`: the root has no name to write its prediction under.
    let e = image_source(std::path::Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("names no case folder"), "{e}");
}

#[test]
fn a_case_listed_twice_is_refused_naming_both_entries() {
    let tmp = tempfile::tempdir().unwrap();
    dataset_json(
        tmp.path(),
        r#"[{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"},
            {"image": "./imagesTr/BRATS_002.nii.gz", "label": "./labelsTr/BRATS_002.nii.gz"},
            {"image": "./imagesTr/BRATS_001.nii", "label": "./labelsTr/BRATS_001.nii"}]"#,
    );
    let e = discover(tmp.path(), &DatasetOptions::new(LabelConvention::Msd))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("training[2].image")
            && e.contains("case `BRATS_001` is listed twice (training[0] too)"),
        "{e}"
    );
}

#[test]
fn a_million_entries_are_listed_and_the_first_missing_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<String> = (0..1_000_000)
        .map(|i| {
            format!(r#"{{"image": "./imagesTr/C_{i}.nii.gz", "label": "./labelsTr/C_{i}.nii.gz"}}"#)
        })
        .collect();
    dataset_json(tmp.path(), &format!("[{}]", entries.join(",")));
    let found = discover(tmp.path(), &DatasetOptions::new(LabelConvention::Msd)).unwrap();
    assert_eq!(found.len(), 1_000_000);
    let e = load_case(&found[999_999], LabelConvention::Msd)
        .unwrap_err()
        .to_string();
    assert!(e.contains("C_999999.nii.gz"), "{e}");
}

#[test]
fn a_name_that_is_not_unicode_is_a_named_decoding_error() {
    let tmp = tempfile::tempdir().unwrap();
    // JSON cannot hold bytes that are not UTF-8; the nearest a file can carry is a lone surrogate.
    dataset_json(
        tmp.path(),
        r#"[{"image": "./imagesTr/\udcff.nii.gz", "label": "./labelsTr/x.nii.gz"}]"#,
    );
    let e = discover(tmp.path(), &DatasetOptions::new(LabelConvention::Msd))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dataset.json") && e.contains("surrogate"), "{e}");
}
