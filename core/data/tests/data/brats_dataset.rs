//! BraTS discovery, validation (every error names case and file), `dsma data check`, split files.

use crate::fixtures::{case_file as file, phantom_dataset, write};
use dsma_data::brats::{check_dataset, discover, load_case, DatasetOptions};
use dsma_data::nifti_io::{read_volume, write_volume};
use dsma_data::split::{split_cases, Split};
use dsma_data::LabelConvention;

const SIZE: [usize; 3] = [16, 16, 12];

fn opts() -> DatasetOptions {
    DatasetOptions::new(LabelConvention::Brats2019)
}

#[test]
fn discovers_official_layout_and_loads_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 3, SIZE, 1);
    let dirs = discover(&root, &opts()).unwrap();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["Phantom_000", "Phantom_001", "Phantom_002"]);
    let case = load_case(&dirs[0], LabelConvention::Brats2019).unwrap();
    assert_eq!(case.image.dim(), (4, 12, 16, 16));
    assert_eq!(case.id, "Phantom_000");
    assert!(check_dataset(&root, &opts()).unwrap().problems.is_empty());
}

#[test]
fn brats2019_layout_uses_hgg_only_unless_lgg_is_asked_for_and_plain_nii_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let src = phantom_dataset(tmp.path(), 3, SIZE, 2);
    let root = tmp.path().join("MICCAI_BraTS_2019");
    std::fs::create_dir_all(root.join("HGG")).unwrap();
    std::fs::create_dir_all(root.join("LGG")).unwrap();
    std::fs::rename(src.join("Phantom_000"), root.join("HGG/Phantom_000")).unwrap();
    std::fs::rename(src.join("Phantom_001"), root.join("HGG/Phantom_001")).unwrap();
    std::fs::rename(src.join("Phantom_002"), root.join("LGG/Phantom_002")).unwrap();
    // Store one HGG case uncompressed.
    let case = root.join("HGG/Phantom_001");
    let gzipped = load_case(&case, LabelConvention::Brats2019).unwrap();
    for s in ["flair", "t1", "t1ce", "t2", "seg"] {
        let gz = case.join(format!("Phantom_001_{s}.nii.gz"));
        let bytes = dsma_data::nifti_io::read_decompressed(&gz).unwrap();
        std::fs::remove_file(&gz).unwrap();
        write(&case.join(format!("Phantom_001_{s}.nii")), &bytes);
    }
    assert_eq!(discover(&root, &opts()).unwrap().len(), 2);
    let with_lgg = DatasetOptions {
        include_lgg: true,
        ..opts()
    };
    assert_eq!(discover(&root, &with_lgg).unwrap().len(), 3);
    // The plain `.nii` files read back to the same case as the gzipped ones.
    let plain = load_case(&case, LabelConvention::Brats2019).unwrap();
    assert_eq!(plain.id, "Phantom_001");
    assert_eq!(plain.image, gzipped.image);
    assert_eq!(plain.label, gzipped.label);
    assert_eq!(plain.grid, gzipped.grid);
}

#[test]
fn load_case_reports_the_first_problem_with_case_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 1, SIZE, 4);
    std::fs::remove_file(file(&root, "Phantom_000", "seg")).unwrap();
    let e = load_case(&root.join("Phantom_000"), LabelConvention::Brats2019)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Phantom_000") && e.contains("Phantom_000_seg.nii.gz") && e.contains("missing"),
        "{e}"
    );
    let e = discover(&tmp.path().join("nowhere"), &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nowhere"), "{e}");
}

#[test]
fn split_is_written_and_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 10, SIZE, 5);
    let ids: Vec<String> = discover(&root, &opts())
        .unwrap()
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let split = split_cases(&ids, 42, 0.8).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (8, 2));
    let path = tmp.path().join("run/split.json");
    split.write(&path).unwrap();
    let back: Split = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, split_cases(&ids, 42, 0.8).unwrap());
}

/// A phantom case rewritten in the BraTS 2023 layout: `BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz`
/// (FLAIR), `-t1n` (T1), `-t1c` (T1ce), `-t2w` (T2), `-seg` with enhancing tumour relabelled 4 → 3.
#[test]
fn brats2023_naming_and_labels_are_read_when_declared() {
    let tmp = tempfile::tempdir().unwrap();
    let src = phantom_dataset(tmp.path(), 1, SIZE, 3);
    let original = load_case(&src.join("Phantom_000"), LabelConvention::Brats2019).unwrap();
    let root = tmp
        .path()
        .join("ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData");
    let id = "BraTS-GLI-00000-000";
    std::fs::create_dir_all(root.join(id)).unwrap();
    for (ours, theirs) in [
        ("flair", "t2f"),
        ("t1", "t1n"),
        ("t1ce", "t1c"),
        ("t2", "t2w"),
    ] {
        std::fs::copy(
            file(&src, "Phantom_000", ours),
            root.join(id).join(format!("{id}-{theirs}.nii.gz")),
        )
        .unwrap();
    }
    let seg = read_volume(&file(&src, "Phantom_000", "seg")).unwrap();
    let relabelled = seg.data.mapv(|v| if v == 4.0 { 3u8 } else { v as u8 });
    write_volume(
        &root.join(id).join(format!("{id}-seg.nii.gz")),
        relabelled.view(),
        &seg.grid,
    )
    .unwrap();

    let dirs = discover(&root, &DatasetOptions::new(LabelConvention::Brats2023)).unwrap();
    assert_eq!(dirs, [root.join(id)]);
    let case = load_case(&dirs[0], LabelConvention::Brats2023).unwrap();
    assert_eq!(
        case.image, original.image,
        "t2f/t1n/t1c/t2w map to FLAIR/T1/T1ce/T2"
    );
    let et = |c: &dsma_data::volume::Case| {
        dsma_data::labels::region_mask(c.label.view(), dsma_data::labels::Region::Et, c.convention)
    };
    assert!(et(&original).iter().any(|&v| v));
    assert_eq!(et(&case), et(&original));
    // Declared as 2017–2022 data, label 3 is refused with the file and the fitting convention.
    let err = load_case(&dirs[0], LabelConvention::Brats2019)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("-seg.nii.gz") && err.contains("[3]") && err.contains("brats2023"),
        "{err}"
    );
}

/// A symlink loop beside the cases, a case without its T2, a case whose FLAIR is a folder and a
/// case folder linked to itself: every one reported by name, the sound case still loads.
#[test]
fn hostile_case_folders_are_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 4, SIZE, 2);
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    std::os::unix::fs::symlink(".", root.join("Phantom_003").join("self")).unwrap();
    std::fs::remove_file(file(&root, "Phantom_001", "t2")).unwrap();
    let flair = file(&root, "Phantom_002", "flair");
    std::fs::remove_file(&flair).unwrap();
    std::fs::create_dir(&flair).unwrap();
    let report = check_dataset(&root, &opts()).unwrap();
    let text = report
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("Phantom_001") && text.contains("Phantom_001_t2.nii.gz"),
        "{text}"
    );
    assert!(text.contains("Phantom_002_flair.nii.gz"), "{text}");
    assert_eq!(report.problems.len(), 2, "{text}");
    for sound in ["Phantom_000", "Phantom_003"] {
        load_case(&root.join(sound), LabelConvention::Brats2019).unwrap();
    }
}

/// A case folder whose name is not UTF-8 (Linux allows any bytes but `/` and NUL): discovery lists
/// it, and loading it either works or fails naming it; nothing panics.
#[test]
fn a_case_folder_named_with_bytes_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 2, SIZE, 3);
    let name = std::ffi::OsStr::from_bytes(b"Case_\xff\xfe");
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    for suffix in ["flair", "t1", "t1ce", "t2", "seg"] {
        let mut file = name.as_bytes().to_vec();
        file.extend_from_slice(format!("_{suffix}.nii.gz").as_bytes());
        std::fs::copy(
            self::file(&root, "Phantom_000", suffix),
            dir.join(std::ffi::OsStr::from_bytes(&file)),
        )
        .unwrap();
    }
    let found = discover(&root, &opts()).unwrap();
    assert!(found.contains(&dir), "{found:?}");
    match load_case(&dir, LabelConvention::Brats2019) {
        Ok(case) => assert_eq!(case.id, "Case_\u{fffd}\u{fffd}"),
        Err(e) => assert!(e.to_string().contains("Case_\u{fffd}\u{fffd}"), "{e}"),
    }
    let report = check_dataset(&root, &opts()).unwrap();
    assert!(report.cases >= 2);
}
