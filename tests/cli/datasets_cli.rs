//! Dataset folders through the CLI: `dsma data check` reports every problem of a BraTS folder and
//! names the fitting label convention of a Decathlon task; `dsma eval` scores nnU-Net-named
//! predictions against a Task01 label folder.

use dsma_data::brats::{check_dataset, DatasetOptions};
use dsma_data::nifti_io::{read_volume, write_volume};
use dsma_data::volume::Grid;
use dsma_data::LabelConvention;
use ndarray::Array3;

use crate::support::{case_file as file, dsma, msd_task01 as task, phantom_dataset, write};

const SIZE: [usize; 3] = [16, 16, 12];

fn opts() -> DatasetOptions {
    DatasetOptions::new(LabelConvention::Brats2019)
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
