//! BraTS discovery, validation (every error names case and file), `dsma data check`, split files.

mod support;

use std::path::Path;

use dsma_data::brats::{check_dataset, discover, load_case, split_cases, DatasetOptions, Split};
use dsma_data::nifti_io::{read_volume, write_volume};
use dsma_data::volume::Grid;
use dsma_data::LabelConvention;
use ndarray::Array3;
use support::{dsma, phantom_dataset, write};

const SIZE: [usize; 3] = [16, 16, 12];

fn opts() -> DatasetOptions {
    DatasetOptions::new(LabelConvention::Brats2019)
}

fn file(root: &Path, case: &str, suffix: &str) -> std::path::PathBuf {
    root.join(case).join(format!("{case}_{suffix}.nii.gz"))
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
    assert!(load_case(&case, LabelConvention::Brats2019).is_ok());
}

/// Breaks one thing per case and checks that `data check` reports each, naming case and file.
#[test]
fn every_validation_problem_is_reported_in_one_pass_naming_case_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 7, SIZE, 3);
    // 0: missing modality.
    std::fs::remove_file(file(&root, "Phantom_000", "t1ce")).unwrap();
    // 1: shape differs.
    let g = Grid::axis_aligned([16, 16, 11], [1.0; 3]);
    write_volume(
        &file(&root, "Phantom_001", "t2"),
        Array3::<f32>::ones((11, 16, 16)).view(),
        &g,
    )
    .unwrap();
    // 2: affine differs.
    let mut shifted = Grid::axis_aligned(SIZE, [1.0; 3]);
    shifted.affine[0][3] = 5.0;
    let t1 = read_volume(&file(&root, "Phantom_002", "t1")).unwrap();
    write_volume(&file(&root, "Phantom_002", "t1"), t1.data.view(), &shifted).unwrap();
    // 3: label outside the convention (3 is BraTS 2021's ET, not 2019's).
    let (grid, mut seg) =
        dsma_data::nifti_io::read_labels(&file(&root, "Phantom_003", "seg")).unwrap();
    seg[[0, 0, 0]] = 3;
    write_volume(&file(&root, "Phantom_003", "seg"), seg.view(), &grid).unwrap();
    // 4: NaN intensities.
    let mut flair = read_volume(&file(&root, "Phantom_004", "flair")).unwrap();
    flair.data[[5, 5, 5]] = f32::NAN;
    flair.data[[5, 5, 6]] = f32::INFINITY;
    write_volume(
        &file(&root, "Phantom_004", "flair"),
        flair.data.view(),
        &flair.grid,
    )
    .unwrap();
    // 5: truncated file.
    let t2 = file(&root, "Phantom_005", "t2");
    let bytes = std::fs::read(&t2).unwrap();
    write(&t2, &bytes[..bytes.len() / 3]);
    // 6 stays valid.

    let report = check_dataset(&root, &opts()).unwrap();
    assert_eq!(report.cases, 7);
    let msgs: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    let expect = |case: &str, file: &str, what: &str| {
        assert!(
            msgs.iter()
                .any(|m| m.contains(case) && m.contains(file) && m.contains(what)),
            "no problem for {case} / {file} / {what} in {msgs:#?}"
        );
    };
    expect("Phantom_000", "Phantom_000_t1ce", "missing");
    expect("Phantom_001", "Phantom_001_t2", "shape");
    expect("Phantom_002", "Phantom_002_t1", "affine");
    expect("Phantom_003", "Phantom_003_seg", "[3]");
    expect("Phantom_004", "Phantom_004_flair", "2 NaN/inf");
    expect("Phantom_005", "Phantom_005_t2", "gzip");
    assert!(!msgs.iter().any(|m| m.contains("Phantom_006")), "{msgs:#?}");
    assert_eq!(msgs.len(), 6, "{msgs:#?}");

    // The same folder through the CLI: every problem on stderr, exit code non-zero.
    let (code, out, err) = dsma(&["data", "check", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("7 case(s), 6 problem(s)"), "{out}");
    for case in [
        "Phantom_000",
        "Phantom_001",
        "Phantom_002",
        "Phantom_003",
        "Phantom_004",
        "Phantom_005",
    ] {
        assert!(err.contains(case), "{case} missing from {err}");
    }
    // Under the 2023 convention label 3 is valid and 2019's label 4 is not: the convention is never
    // guessed, and the error says which convention label 4 belongs to.
    let (code, _, err) = dsma(&[
        "data",
        "check",
        root.to_str().unwrap(),
        "--labels",
        "brats2023",
    ]);
    assert_eq!(code, 1);
    assert!(!err.contains("[3]"), "{err}");
    assert!(
        err.lines().any(|l| l.contains("Phantom_006_seg")
            && l.contains("[4]")
            && l.contains("brats2023")
            && l.contains("declare labels: brats2019")),
        "{err}"
    );
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
