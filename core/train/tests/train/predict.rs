//! Prediction's ensemble and run checks on hand-made models: probabilities are averaged, and runs
//! that disagree on convention, channels or threshold are refused by name.

use std::path::PathBuf;

use dsma_data::error::Result;
use dsma_data::labels::LabelConvention;
use dsma_train::experiment::load;
use dsma_train::predict::ensemble_probabilities;
use dsma_train::predict::model::RegionModel;
use dsma_train::predict::runs::{check_compatible, PredictRun};
use ndarray::{Array4, ArrayView4};

/// Probability `p` everywhere, or `1 − p` with `mirror` (so the flag is seen to pass through).
struct Constant(f32);

impl RegionModel for Constant {
    fn probabilities(&self, image: ArrayView4<f32>, mirror: bool) -> Result<Array4<f32>> {
        let (_, z, y, x) = image.dim();
        Ok(Array4::from_elem(
            (3, z, y, x),
            if mirror { 1.0 - self.0 } else { self.0 },
        ))
    }
}

#[test]
fn an_ensemble_averages_the_runs_probabilities() {
    let image = Array4::<f32>::zeros((4, 2, 3, 4));
    let (a, b, c) = (Constant(0.2), Constant(0.6), Constant(0.7));
    let models: Vec<&dyn RegionModel> = vec![&a, &b, &c];
    let mean = ensemble_probabilities(&models, image.view(), false).unwrap();
    assert_eq!(mean.dim(), (3, 2, 3, 4));
    assert!(
        mean.iter().all(|&p| (p - 0.5).abs() < 1e-6),
        "(0.2 + 0.6 + 0.7) / 3 = 0.5"
    );
    let mirrored = ensemble_probabilities(&models[..2], image.view(), true).unwrap();
    assert!(
        mirrored.iter().all(|&p| (p - 0.6).abs() < 1e-6),
        "(0.8 + 0.4) / 2 = 0.6"
    );
}

fn run(
    dir: &str,
    overrides: &[&str],
    convention: LabelConvention,
    channels: [usize; 2],
) -> PredictRun {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("exp.yaml");
    std::fs::write(
        &path,
        "name: e
datasets: [{name: A, kind: phantom, path: data/a, phantom: {cases: 4, size: [16, 16, 16], seed: 1}}]
model: {name: unet3d}
train: {stage1: {epochs: 1, lr: 1.0e-3}, stage2: {epochs: 1, lr: 1.0e-4}, patch: {size: [16, 16, 16]}}
rows: [{label: baseline}]
",
    )
    .unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let experiment = load(&path, &overrides).unwrap().experiment;
    PredictRun {
        dir: PathBuf::from(dir),
        checkpoint: PathBuf::from(dir).join("checkpoints/best"),
        experiment,
        convention,
        channels: Some(channels),
        model: Box::new(Constant(0.5)),
    }
}

#[test]
fn runs_that_disagree_are_refused_naming_the_setting_and_both_runs() {
    use LabelConvention::{Brats2019, Brats2023};
    let a = || run("runs/a", &[], Brats2019, [4, 3]);
    assert_eq!(check_compatible(&[a(), a()], None).unwrap(), 0.5);
    let cases = [
        (run("runs/b", &[], Brats2023, [4, 3]), "label convention"),
        (run("runs/b", &[], Brats2019, [3, 3]), "model channels"),
        (
            run("runs/b", &["eval.threshold=0.4"], Brats2019, [4, 3]),
            "eval.threshold",
        ),
    ];
    for (b, what) in cases {
        let e = check_compatible(&[a(), b], None)
            .expect_err(what)
            .to_string();
        assert!(
            e.contains(what) && e.contains("runs/a") && e.contains("runs/b"),
            "{e}"
        );
    }
    let b = run("runs/b", &["eval.threshold=0.4"], Brats2019, [4, 3]);
    assert_eq!(
        check_compatible(&[a(), b], Some(0.3)).unwrap(),
        0.3,
        "--threshold overrides both"
    );
    assert!(check_compatible(&[], None).is_err());
}
