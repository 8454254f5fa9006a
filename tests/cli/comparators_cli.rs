//! The GAN comparators through `dsma run` and `dsma synth`: a generator fit is shared between two
//! experiments (the second does not refit), only training cases reach the fit, a fit killed in the
//! middle resumes to the same results, and `dsma synth` exports samples with and without a teacher.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::dsma;

const HAGAN: &str = "{name: hagan, params: {size: 32, latent: 8, trunk: [16, 16, 8], low: [8], high: 8, groups: 4, d_high_base: 4, d_high_max: 16, d_high_out: 8, d_low_base: 4, batch: 2, steps: 4, checkpoint_every: 2}}";

const WU: &str = "{name: diffusion-wu, params: {size: [16, 16, 16], sample_steps: 3, diffusion: {denoiser: {channels: 4, mults: [1, 2], groups: 2}, batch: 2, steps: 4, checkpoint_every: 2}}}";

/// A tiny experiment named `name` on a shared phantom folder, with one HA-GAN row.
fn experiment(dir: &Path, name: &str, model: &str) -> PathBuf {
    experiment_with(dir, name, model, "HA-GAN", HAGAN)
}

/// A tiny experiment with one comparator row `label` running `synthesizer`.
fn experiment_with(dir: &Path, name: &str, model: &str, label: &str, synthesizer: &str) -> PathBuf {
    let text = format!(
        "name: {name}
datasets:
  - name: Phantom
    kind: phantom
    path: {}
    phantom: {{cases: 6, size: [24, 24, 16], seed: 3}}
model: {model}
train:
  stage1: {{epochs: 1, lr: 3.0e-3}}
  stage2: {{epochs: 1, lr: 1.0e-4}}
  batch: 2
  patch: {{size: [16, 16, 16], tumour_share: 1.0}}
eval:
  window: {{patch: [16, 16, 16], overlap: 0.25}}
rows:
  - label: {label}
    synthesizer: {synthesizer}
",
        dir.join("phantom").display()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

const UNET: &str = "{name: unet3d, params: {base_width: 4, depth: 2}}";

fn run(exp: &Path, out: &Path, cache: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(["--cache", cache.to_str().unwrap()]);
    args.extend(extra);
    dsma(&args)
}

fn fits(cache: &Path) -> Vec<PathBuf> {
    let dir = cache.join("generators");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The `--set` values of [`HAGAN`] for `dsma synth`.
const HAGAN_SET: [&str; 12] = [
    "size=32",
    "latent=8",
    "trunk=[16,16,8]",
    "low=[8]",
    "high=8",
    "groups=4",
    "d_high_base=4",
    "d_high_max=16",
    "d_high_out=8",
    "d_low_base=4",
    "batch=2",
    "steps=4",
];

fn synth(fit: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "synth",
        "--synthesizer",
        "hagan",
        "--fitted",
        fit.to_str().unwrap(),
    ];
    args.extend(["--out", out.to_str().unwrap()]);
    for s in HAGAN_SET {
        args.extend(["--set", s]);
    }
    args.extend(extra);
    dsma(&args)
}

/// `dsma synth` from a fit: images only, then labelled by a run's teacher at its patch size.
fn check_synth(out: &Path, fit: &Path, run_dir: &Path) {
    let (code, o, e) = synth(fit, &out.join("plain"), &["--n", "2", "--size", "16,16,16"]);
    assert_eq!(code, 0, "{o}{e}");
    assert!(o.contains("images only"), "{o}");
    assert!(out.join("plain/hagan_1/hagan_1_flair.nii.gz").exists());
    assert!(!out.join("plain/hagan_1/hagan_1_seg.nii.gz").exists());
    let (code, o, e) = synth(
        fit,
        &out.join("labelled"),
        &["--n", "1", "--teacher", run_dir.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{o}{e}");
    assert!(o.contains("EMA teacher"), "{o}");
    let img = dsma_data::nifti_io::read_volume(&out.join("labelled/hagan_0/hagan_0_flair.nii.gz"))
        .unwrap();
    assert_eq!(img.data.dim(), (16, 16, 16), "the teacher's patch size");
    assert!(out.join("labelled/hagan_0/hagan_0_seg.nii.gz").exists());
}

#[test]
fn two_experiments_share_one_fit_that_saw_only_training_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (code, out1, err1) = run(
        &experiment(tmp.path(), "table_a", UNET),
        &tmp.path().join("a"),
        &cache,
        &[],
    );
    assert_eq!(code, 0, "{out1}{err1}");
    assert!(err1.contains("generator hagan: step 4/4"), "{err1}");
    let fit = fits(&cache);
    assert_eq!(fit.len(), 1, "{fit:?}");
    let state = std::fs::read(fit[0].join("latest")).unwrap();
    // A second experiment (another network, as Table 2 is to Table 1) reuses the fit.
    let (code, out2, err2) = run(
        &experiment(
            tmp.path(),
            "table_b",
            "{name: unet3d, params: {base_width: 6, depth: 2}}",
        ),
        &tmp.path().join("b"),
        &cache,
        &[],
    );
    assert_eq!(code, 0, "{out2}{err2}");
    assert!(
        err2.contains("generator hagan:") && !err2.contains("generator hagan: step 1/"),
        "refitted:\n{err2}"
    );
    assert_eq!(fits(&cache), fit);
    assert_eq!(std::fs::read(fit[0].join("latest")).unwrap(), state);
    // Only the training split reached the fit: its key lists the split's training cases, none of
    // the evaluated (test) cases.
    let run_dir = tmp.path().join("a/runs/phantom/ha-gan/rep-0");
    let record = json(&run_dir.join("synthesizer.json"));
    assert!(record["fit_seed"].is_u64(), "{record}");
    assert_eq!(
        record["sample_seeds"].as_array().map(Vec::len),
        Some(1),
        "one stage-2 epoch"
    );
    let trained: Vec<String> = record["key"]["train"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let split = json(&run_dir.join("split.json"));
    assert_eq!(serde_json::json!(trained), split["train"]);
    let results = json(&run_dir.join("results.json"));
    let tested: Vec<&str> = results["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(!tested.is_empty());
    assert!(
        tested.iter().all(|t| !trained.iter().any(|x| x == t)),
        "{tested:?} vs {trained:?}"
    );
    assert!(run_dir.join("synthesizer-samples.png").exists());

    check_synth(&tmp.path().join("synth"), &fit[0], &run_dir);
}

/// Kills a run right after its generator fit's step-2 checkpoint (as kill -9 would: abort, no
/// cleanup), resumes it, and compares with an uninterrupted run.
fn killed_fit_resumes_exactly(label: &str, synthesizer: &str, folder: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment_with(tmp.path(), "tiny", UNET, label, synthesizer);
    let (code, o, e) = run(&exp, &tmp.path().join("whole"), &tmp.path().join("c1"), &[]);
    assert_eq!(code, 0, "{o}{e}");
    let status = Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            tmp.path().join("cut").to_str().unwrap(),
        ])
        .args(["--cache", tmp.path().join("c2").to_str().unwrap()])
        .env("DSMA_TEST_ABORT_AT", "fit:2")
        .output()
        .unwrap();
    assert!(!status.status.success());
    let fit = fits(&tmp.path().join("c2"));
    assert!(fit[0].join("step-0000002").exists() && !fit[0].join("step-0000004").exists());
    let (code, o, e) = run(
        &exp,
        &tmp.path().join("cut"),
        &tmp.path().join("c2"),
        &["--resume"],
    );
    assert_eq!(code, 0, "{o}{e}");
    assert!(e.contains("step 4/4") && !e.contains("step 1/4"), "{e}");
    let results = |d: &str| {
        let path = tmp
            .path()
            .join(d)
            .join("runs/phantom")
            .join(folder)
            .join("rep-0/results.json");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    assert_eq!(results("whole"), results("cut"));
}

#[test]
fn a_gan_fit_killed_in_the_middle_resumes_to_the_same_results() {
    killed_fit_resumes_exactly("HA-GAN", HAGAN, "ha-gan");
}

#[test]
fn a_diffusion_fit_killed_in_the_middle_resumes_to_the_same_results() {
    killed_fit_resumes_exactly("Wu et al.", WU, "wu-et-al");
}
