//! The Decathlon's `Task01_BrainTumour` layout: cases from `dataset.json` (not a folder glob),
//! 4-D images mapped to our channel order by the `modality` names, labels in the `msd` convention.

mod support;

use std::path::{Path, PathBuf};

use dsma_data::brats::{check_dataset, discover, load_case, DatasetOptions};
use dsma_data::labels::{region_mask, Region};
use dsma_data::LabelConvention;
use support::{dsma, write, Nifti1};

/// A 3×2×1 task with one case whose four channels are constant 10, 20, 30, 40 in the order
/// T2w, FLAIR, T1w, t1gd, labels 0..=3 then 3, 1; plus an AppleDouble file a glob would pick up.
fn task(root: &Path) -> PathBuf {
    let mut image = Nifti1::new([3, 2, 1], 16, 32);
    image.dim[0] = 4;
    image.dim[4] = 4;
    let values: Vec<u8> = [10.0f32, 20.0, 30.0, 40.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, 6))
        .flat_map(|v: f32| v.to_le_bytes())
        .collect();
    write(&root.join("imagesTr/BRATS_001.nii"), &image.bytes(&values));
    write(
        &root.join("imagesTr/._BRATS_001.nii"),
        b"Mac OS X resource fork",
    );
    let labels = Nifti1::new([3, 2, 1], 2, 8);
    write(
        &root.join("labelsTr/BRATS_001.nii"),
        &labels.bytes(&[0, 1, 2, 3, 3, 1]),
    );
    let json = serde_json::json!({
        "name": "BRATS",
        "modality": {"0": "T2w", "1": "FLAIR", "2": "T1w", "3": "t1gd"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": 1,
        "training": [{"image": "./imagesTr/BRATS_001.nii", "label": "./labelsTr/BRATS_001.nii"}],
        "test": []
    });
    write(&root.join("dataset.json"), json.to_string().as_bytes());
    root.join("imagesTr/BRATS_001.nii")
}

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

#[test]
fn task01_declared_as_brats2019_names_the_label_file_and_the_fitting_convention() {
    let tmp = tempfile::tempdir().unwrap();
    task(tmp.path());
    let root = tmp.path().to_str().unwrap();
    let (code, _, err) = dsma(&["data", "check", root, "--labels", "brats2019"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("labelsTr/BRATS_001.nii") && err.contains("[3]") && err.contains("msd"),
        "{err}"
    );
    let (code, out, err) = dsma(&["data", "check", root, "--labels", "msd"]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn eval_scores_nnunet_named_predictions_against_a_task01_label_dir() {
    let tmp = tempfile::tempdir().unwrap();
    task(tmp.path());
    let preds = tmp.path().join("preds");
    std::fs::create_dir_all(&preds).unwrap();
    std::fs::copy(
        tmp.path().join("labelsTr/BRATS_001.nii"),
        preds.join("BRATS_001.nii"),
    )
    .unwrap();
    let out = tmp.path().join("metrics.csv");
    let (code, _, err) = dsma(&[
        "eval",
        "--pred-dir",
        preds.to_str().unwrap(),
        "--label-dir",
        tmp.path().to_str().unwrap(),
        "--labels",
        "msd",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(&out).unwrap();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[0], "BRATS_001");
    // A prediction equal to the truth: Dice 1 for WT, TC and ET.
    assert_eq!(&row[1..4], ["1.000000", "1.000000", "1.000000"]);
}
