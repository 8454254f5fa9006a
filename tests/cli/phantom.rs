//! The phantom: deterministic bytes, valid labels, tumour inside the brain, MRI-like contrasts.

use crate::support::{dsma, phantom_dataset};
use dsma_data::brats::load_case;
use dsma_data::phantom::generate_case;
use dsma_data::volume::Modality;
use dsma_data::{Case, LabelConvention};

fn mean_where(case: &Case, m: Modality, keep: impl Fn(u8) -> bool) -> f64 {
    let img = case.modality(m);
    let (s, n) = img
        .iter()
        .zip(case.label.iter())
        .filter(|(v, &l)| **v != 0.0 && keep(l))
        .fold((0.0, 0usize), |(s, n), (v, _)| (s + *v as f64, n + 1));
    s / n.max(1) as f64
}

#[test]
fn same_seed_gives_identical_files_and_different_seeds_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let a = phantom_dataset(&tmp.path().join("a"), 2, [20, 18, 16], 11);
    let b = phantom_dataset(&tmp.path().join("b"), 2, [20, 18, 16], 11);
    let c = phantom_dataset(&tmp.path().join("c"), 2, [20, 18, 16], 12);
    for case in ["Phantom_000", "Phantom_001"] {
        for s in ["flair", "t1", "t1ce", "t2", "seg"] {
            let f = format!("{case}/{case}_{s}.nii.gz");
            let (fa, fb, fc) = (
                std::fs::read(a.join(&f)).unwrap(),
                std::fs::read(b.join(&f)).unwrap(),
                std::fs::read(c.join(&f)).unwrap(),
            );
            assert_eq!(fa, fb, "{f} differs for the same seed");
            assert_ne!(fa, fc, "{f} identical for different seeds");
        }
    }
    let one = load_case(&a.join("Phantom_000"), LabelConvention::Brats2019).unwrap();
    let two = load_case(&a.join("Phantom_001"), LabelConvention::Brats2019).unwrap();
    assert_ne!(one.label, two.label, "cases of one dataset must differ");
}

#[test]
fn labels_are_valid_all_present_and_inside_the_brain_at_several_sizes() {
    for (size, spacing) in [
        ([16, 16, 16], [1.0; 3]),
        ([24, 20, 13], [1.0, 1.2, 2.5]),
        ([40, 40, 26], [1.0; 3]),
    ] {
        for seed in 0..4 {
            let case = generate_case("t", size, spacing, seed).unwrap();
            let mut seen = [false; 256];
            case.label.iter().for_each(|&v| seen[v as usize] = true);
            let present: Vec<u8> = (0..=255u8).filter(|&v| seen[v as usize]).collect();
            assert_eq!(present, vec![0, 1, 2, 4], "size {size:?} seed {seed}");
            for (idx, &l) in case.label.indexed_iter() {
                if l != 0 {
                    for m in 0..4 {
                        assert!(
                            case.image[[m, idx.0, idx.1, idx.2]] > 0.0,
                            "tumour outside brain at {idx:?}"
                        );
                    }
                }
            }
            assert!(case.image.iter().all(|v| v.is_finite() && *v >= 0.0));
        }
    }
}

#[test]
fn contrasts_are_mri_like() {
    for seed in 0..3 {
        let case = generate_case("t", [48, 48, 32], [1.0; 3], seed).unwrap();
        let normal = |m| mean_where(&case, m, |l| l == 0);
        let oedema = |m| mean_where(&case, m, |l| l == 2);
        let necrosis = |m| mean_where(&case, m, |l| l == 1);
        let enhancing = |m| mean_where(&case, m, |l| l == 4);
        assert!(
            oedema(Modality::Flair) > 1.3 * normal(Modality::Flair),
            "FLAIR oedema bright"
        );
        assert!(
            necrosis(Modality::T1) < 0.7 * normal(Modality::T1),
            "T1 core dark"
        );
        assert!(
            enhancing(Modality::T1ce) > 1.3 * oedema(Modality::T1ce),
            "T1ce rim bright"
        );
        assert!(
            enhancing(Modality::T1ce) > 1.2 * normal(Modality::T1ce),
            "T1ce rim bright"
        );
        assert!(
            oedema(Modality::T2) > 1.2 * normal(Modality::T2),
            "T2 oedema bright"
        );
        assert!(
            necrosis(Modality::T2) > 1.2 * normal(Modality::T2),
            "T2 core bright"
        );
    }
}

#[test]
fn cli_writes_a_dataset_and_a_preview_png() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let png = tmp.path().join("preview.png");
    let (code, stdout, stderr) = dsma(&[
        "phantom",
        "--out",
        out.to_str().unwrap(),
        "--cases",
        "2",
        "--size",
        "24,24,16",
        "--seed",
        "3",
        "--preview",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(out.join("Phantom_001/Phantom_001_seg.nii.gz").is_file());
    let (code, _, stderr) = dsma(&["phantom", "--out", out.to_str().unwrap(), "--size", "8,8"]);
    assert_eq!(
        code, 1,
        "a malformed size is refused like every bad input: {stderr}"
    );
    assert!(stderr.contains("8,8"), "{stderr}");
    let (code, _, stderr) = dsma(&["phantom", "--out", out.to_str().unwrap(), "--size", "8,8,8"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("8×8×8") && stderr.contains("at least 12"),
        "{stderr}"
    );
}
