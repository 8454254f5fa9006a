//! The evidence studies at test scale: MAS weights separate corrupted synthetic samples from
//! clean ones (experiments/study_mas_corruption.yaml, shrunk).

use crate::support::{dsma, run_own_root};

/// ROC AUC computed here from the pairs, independently of `dsma_data::corruption`.
fn auc(clean: &[f64], bad: &[f64]) -> f64 {
    let mut wins = 0.0;
    for c in clean {
        for b in bad {
            wins += match c.partial_cmp(b) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Equal) => 0.5,
                _ => 0.0,
            };
        }
    }
    wins / (clean.len() * bad.len()) as f64
}

/// The study at test scale in `dir`: 12 phantoms of 24×24×16, a quarter of each DTSS set erased.
fn corrupt_experiment(dir: &std::path::Path) -> std::path::PathBuf {
    let exp = dir.join("corrupt.yaml");
    let text = format!(
        "name: corrupt
datasets:
  - name: Phantom
    kind: phantom
    path: {}
    phantom: {{cases: 12, size: [24, 24, 16], seed: 5}}
model: {{name: unet3d, params: {{base_width: 4, depth: 2}}}}
train:
  stage1: {{epochs: 15, lr: 3.0e-3}}
  stage2: {{epochs: 3, lr: 1.0e-4}}
  batch: 2
  patch: {{size: [16, 16, 16], tumour_share: 1.0}}
  synthesis: {{corrupt: {{fraction: 0.25, kind: erase_tumour}}}}
eval:
  window: {{patch: [16, 16, 16], overlap: 0.25}}
  every: 0
rows:
  - label: DTSS+MAS
    synthesizer: {{name: dtss}}
    weighter: {{name: mas}}
",
        dir.join("phantom").display()
    );
    std::fs::write(&exp, text).unwrap();
    exp
}

#[test]
fn mas_weights_separate_corrupted_synthetic_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = corrupt_experiment(tmp.path());
    let out = tmp.path().join("out");
    let (code, _, stderr) = run_own_root(exp.to_str().unwrap(), &out, &["--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    let run = out.join("runs/phantom/dtss-mas/rep-0");
    let csv = std::fs::read_to_string(run.join("weights.csv")).unwrap();
    // epoch,sample,source,real_case,score,weight
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let epochs: std::collections::BTreeSet<usize> =
        rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(epochs.len(), 3, "{csv}");
    // One set per run (the default): the same samples are corrupted in every epoch.
    let marked = corrupted_per_epoch(&csv);
    assert!(
        marked.iter().all(|m| m == &marked[0] && m.len() == 3),
        "{marked:?}"
    );
    for (k, epoch) in epochs.iter().enumerate() {
        let of_epoch: Vec<&Vec<&str>> = rows
            .iter()
            .filter(|r| r[0].parse::<usize>().unwrap() == *epoch)
            .collect();
        // 12 cases, 80 % train = 10 (rounded): round(0.25 · 10) = 3 corrupted, the same three
        // every epoch (one set per run).
        let bad: Vec<f64> = of_epoch
            .iter()
            .filter(|r| r[2].ends_with("~corrupted-erase_tumour"))
            .map(|r| r[5].parse().unwrap())
            .collect();
        let clean: Vec<f64> = of_epoch
            .iter()
            .filter(|r| !r[2].contains("~corrupted"))
            .map(|r| r[5].parse().unwrap())
            .collect();
        assert_eq!((clean.len(), bad.len()), (7, 3), "{csv}");
        let a = auc(&clean, &bad);
        assert!(
            a >= 0.9,
            "epoch {epoch} (stage-2 epoch {k}): AUC {a}\n{csv}"
        );
    }
    // The figure marks them and prints the same AUCs.
    let png = tmp.path().join("weights.png");
    let (code, stdout, stderr) = dsma(&[
        "figure",
        out.to_str().unwrap(),
        "--kind",
        "weights",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("ROC AUC") && stdout.contains("(7 clean, 3 corrupted)"),
        "{stdout}"
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

#[test]
fn a_fresh_set_each_epoch_corrupts_other_samples_each_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = corrupt_experiment(tmp.path());
    // `train.synthesis.regenerate: true`: a fresh set every epoch, so another choice of
    // corrupted samples each epoch.
    let fresh = tmp.path().join("fresh");
    let (code, _, stderr) = run_own_root(
        exp.to_str().unwrap(),
        &fresh,
        &["--quiet", "train.synthesis.regenerate=true"],
    );
    assert_eq!(code, 0, "{stderr}");
    let csv =
        std::fs::read_to_string(fresh.join("runs/phantom/dtss-mas/rep-0/weights.csv")).unwrap();
    let marked = corrupted_per_epoch(&csv);
    assert_eq!(marked.len(), 3);
    assert!(marked.iter().any(|m| m != &marked[0]), "{marked:?}");
}

/// Per epoch of `weights.csv`, the sample indices whose source is marked corrupted.
fn corrupted_per_epoch(csv: &str) -> Vec<Vec<usize>> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if out.last().is_none_or(|(e, _)| e != f[0]) {
            out.push((f[0].to_string(), Vec::new()));
        }
        if f[2].contains("~corrupted-") {
            if let Some((_, v)) = out.last_mut() {
                v.push(f[1].parse().unwrap());
            }
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}
