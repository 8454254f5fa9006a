//! `dsma synth`: derived cases in the BraTS layout that overlay the input, parameters via --set, figure.

use crate::support::{dsma, phantom_dataset};
use dsma_data::brats::load_case;
use dsma_data::LabelConvention;

#[test]
fn synth_writes_n_loadable_cases_on_the_input_grid_and_a_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let root = phantom_dataset(tmp.path(), 1, [24, 24, 18], 5);
    let case_dir = root.join("Phantom_000");
    let out = tmp.path().join("synth");
    let fig = tmp.path().join("fig3.png");
    let (code, stdout, stderr) = dsma(&[
        "synth",
        "--case",
        case_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "3",
        "--n",
        "2",
        "--set",
        "monomer_radius=[3,4]",
        "--set",
        "reduce_mode=delete",
        "--figure",
        fig.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let real = load_case(&case_dir, LabelConvention::Brats2019).unwrap();
    let a = load_case(&out.join("Phantom_000_synth0"), LabelConvention::Brats2019).unwrap();
    let b = load_case(&out.join("Phantom_000_synth1"), LabelConvention::Brats2019).unwrap();
    assert_eq!(a.grid, real.grid, "derived cases must overlay the input");
    assert_ne!(a.image, real.image);
    assert_ne!(a.image, b.image, "each derived case has its own seed");
    assert!(out
        .join("Phantom_000_synth0/Phantom_000_synth0_t1ce.nii.gz")
        .is_file());
    assert_eq!(&std::fs::read(&fig).unwrap()[1..4], b"PNG");

    let (code, _, stderr) = dsma(&[
        "synth",
        "--case",
        case_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "monomer_radiu=[3,4]",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("dtss") && stderr.contains("monomer_radiu"),
        "{stderr}"
    );
}
