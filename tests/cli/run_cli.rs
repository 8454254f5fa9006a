//! `dsma run`: loss goes down, the stage switch, the run folder, skip-finished, abort and resume
//! equal to an uninterrupted run, a corrupted checkpoint reported, bad YAML reported with line/column.

use std::path::Path;
use std::process::Command;

use crate::support::{dsma, run_aborted_at, run_own_root, tiny_experiment as experiment};

const BOTH_ROWS: &str = "  - label: baseline
  - label: DTSS+MAS
    synthesizer: {name: dtss}
    weighter: {name: mas}
";

fn csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn two_stages_switch_at_the_configured_epoch_and_lr_and_write_the_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 3, 2, BOTH_ROWS);
    let out = tmp.path().join("out");
    let (code, stdout, stderr) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("| baseline |") && stdout.contains("| DTSS+MAS |"),
        "{stdout}"
    );
    let run = out.join("runs/phantom/dtss-mas/rep-0");
    let all = csv(&run.join("epochs.csv"));
    assert_eq!(
        all.len(),
        5,
        "the row's log holds the shared stage 1 and its own stage 2"
    );
    let rows = &all[3..];
    let stage1 = std::fs::read_dir(tmp.path().join("cache/stage1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let s1 = csv(&stage1.join("epochs.csv"));
    assert_eq!(s1.len(), 3);
    assert_eq!(s1, all[..3].to_vec());
    for r in &s1 {
        assert_eq!((r[0].as_str(), r[2].parse::<f64>().unwrap()), ("1", 3e-3));
    }
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0], "2");
        assert_eq!(r[1], (4 + i).to_string(), "epochs continue stage 1's count");
        assert_eq!(r[2].parse::<f64>().unwrap(), 1e-4);
        assert_eq!(
            r[5], "5",
            "one synthetic case per real training case (5 of 6)"
        );
    }
    // One shared stage 1 for both rows.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("cache/stage1"))
            .unwrap()
            .count(),
        1
    );
    // Per-sample weights of every stage-2 epoch.
    let w = csv(&run.join("weights.csv"));
    assert_eq!(w.len(), 2 * 5);
    assert!(w
        .iter()
        .all(|r| (0.0..=1.0).contains(&r[5].parse::<f64>().unwrap())));
    // Results, predictions on the input grid, curves, split.
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    let cases = results["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "20 % of 6 cases");
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let pred = run.join("predictions").join(format!("{id}.nii.gz"));
        let (grid, labels) = dsma_data::nifti_io::read_labels(&pred).unwrap();
        assert_eq!(grid.dims, [24, 24, 16]);
        assert!(labels.iter().all(|&v| [0, 1, 2, 4].contains(&v)));
    }
    assert!(run.join("curves.png").exists() && run.join("split.json").exists());
    // Rerunning a finished experiment skips every run (no epoch is trained) and prints the same
    // table; without a terminal, progress goes to stderr as plain log lines.
    let (code2, stdout2, stderr2) =
        dsma(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code2, 0, "{stderr2}");
    assert!(stdout2.ends_with(&stdout), "{stdout2}");
    assert_eq!(
        stderr2.matches("finished earlier, skipped").count(),
        2,
        "{stderr2}"
    );
    assert!(!stderr2.contains("epoch "), "{stderr2}");
    // `dsma table` renders the same table from the folder.
    let (code3, table, stderr3) = dsma(&["table", out.to_str().unwrap()]);
    assert_eq!(code3, 0, "{stderr3}");
    assert_eq!(table, stdout);
}

#[test]
fn concurrent_shards_train_the_shared_stage_1_once_and_match_a_single_process() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 3, 2, BOTH_ROWS);
    let exp = exp.to_str().unwrap();
    let single = tmp.path().join("single");
    // A shared root of its own, or the shards would find its runs finished.
    let (code, _, stderr) = run_own_root(exp, &single, &["--quiet"]);
    assert_eq!(code, 0, "{stderr}");

    // Two shards of one table into one folder at the same time, as a Slurm job array would.
    let shared = tmp.path().join("shared");
    let children: Vec<_> = ["1/2", "2/2"]
        .iter()
        .map(|shard| {
            Command::new(env!("CARGO_BIN_EXE_dsma"))
                .args([
                    "run",
                    exp,
                    "--out",
                    shared.to_str().unwrap(),
                    "--shard",
                    shard,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let logs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{log}");
            log
        })
        .collect();
    let trained: usize = logs.iter().map(|l| l.matches("(stage 1)").count()).sum();
    assert_eq!(
        trained, 3,
        "stage 1 (3 epochs) trained once in all: {logs:?}"
    );
    assert!(
        !tmp.path()
            .join("cache/stage1")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|d| d.path().join(".lock").exists()),
        "the lock is released"
    );
    for row in ["baseline", "dtss-mas"] {
        let a = std::fs::read_to_string(
            single
                .join("runs/phantom")
                .join(row)
                .join("rep-0/results.json"),
        )
        .unwrap();
        let b = std::fs::read_to_string(
            shared
                .join("runs/phantom")
                .join(row)
                .join("rep-0/results.json"),
        )
        .unwrap();
        assert_eq!(a, b, "{row}");
    }
}

#[test]
fn a_few_epochs_reduce_the_training_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 12, 0, "  - label: baseline\n");
    let out = tmp.path().join("out");
    let (code, _, stderr) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let stage1 = std::fs::read_dir(tmp.path().join("cache/stage1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let loss: Vec<f64> = csv(&stage1.join("epochs.csv"))
        .iter()
        .map(|r| r[3].parse().unwrap())
        .collect();
    let first = (loss[0] + loss[1] + loss[2]) / 3.0;
    let last = (loss[9] + loss[10] + loss[11]) / 3.0;
    assert!(last < first - 0.02, "loss did not go down: {loss:?}");
}

#[test]
fn killed_and_resumed_equals_uninterrupted_and_a_corrupt_checkpoint_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "  - label: DTSS+MAS\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n";
    let exp = experiment(tmp.path(), 3, 8, rows);
    let exp = exp.to_str().unwrap();
    let full = tmp.path().join("full");
    let (code, _, stderr) = dsma(&["run", exp, "--out", full.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{stderr}");

    let cut = tmp.path().join("cut");
    let run = cut.join("runs/phantom/dtss-mas/rep-0");
    // The test-only hook aborts the process right after epoch 5 is checkpointed (no kill race).
    let status = run_aborted_at(exp, &cut, "epoch:5");
    assert!(!status.success(), "the run was to abort after epoch 5");
    assert!(!run.join("results.json").exists(), "aborted before the end");

    // Without --resume the unfinished run is not silently restarted.
    let (code, _, stderr) = run_own_root(exp, &cut, &["--quiet"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--resume"), "{stderr}");

    // A corrupted checkpoint is reported, naming the file, and not loaded.
    let latest = std::fs::read_to_string(run.join("checkpoints/latest")).unwrap();
    let model = run
        .join("checkpoints")
        .join(latest.trim())
        .join("model.safetensors");
    let original = std::fs::read(&model).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&model, &bad).unwrap();
    let (code, _, stderr) = run_own_root(exp, &cut, &["--resume", "--quiet"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("corrupt"),
        "{stderr}"
    );
    // Truncated to half, or to zero bytes: named by file and both lengths.
    for len in [original.len() / 2, 0] {
        std::fs::write(&model, &original[..len]).unwrap();
        let (code, _, stderr) = run_own_root(exp, &cut, &["--resume", "--quiet"]);
        assert_ne!(code, 0);
        let lengths = format!("{len} bytes with CRC-32");
        let expected = format!("expected {} bytes", original.len());
        assert!(
            stderr.contains("model.safetensors")
                && stderr.contains(&lengths)
                && stderr.contains(&expected),
            "{stderr}"
        );
    }
    std::fs::write(&model, &original).unwrap();
    // A state.json of another format version is refused by name, not read as this one.
    let state = model.with_file_name("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let newer = text.replacen("\"format\": 1", "\"format\": 2", 1);
    assert_ne!(newer, text);
    std::fs::write(&state, newer).unwrap();
    let (code, _, stderr) = run_own_root(exp, &cut, &["--resume", "--quiet"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("state.json") && stderr.contains("format 2"),
        "{stderr}"
    );
    std::fs::write(&state, text).unwrap();

    let (code, _, stderr) = run_own_root(exp, &cut, &["--resume", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    let a = std::fs::read(full.join("runs/phantom/dtss-mas/rep-0/results.json")).unwrap();
    let b = std::fs::read(run.join("results.json")).unwrap();
    assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    let loss =
        |p: &Path| -> Vec<String> { csv(p).into_iter().map(|r| r[..12].join(",")).collect() };
    assert_eq!(
        loss(&full.join("runs/phantom/dtss-mas/rep-0/epochs.csv")),
        loss(&run.join("epochs.csv"))
    );
    assert_eq!(
        std::fs::read(full.join("runs/phantom/dtss-mas/rep-0/weights.csv")).unwrap(),
        std::fs::read(run.join("weights.csv")).unwrap()
    );
}

#[test]
fn yaml_mistakes_name_the_file_the_key_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 1, 1, BOTH_ROWS);
    let text = std::fs::read_to_string(&exp).unwrap();
    let typo = tmp.path().join("typo.yaml");
    std::fs::write(&typo, text.replace("stage2: {epochs", "stage2: {epocs")).unwrap();
    let (code, _, stderr) = dsma(&["validate", typo.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("typo.yaml") && stderr.contains("epocs") && stderr.contains("line 10"),
        "{stderr}"
    );

    let wrong = tmp.path().join("wrong.yaml");
    std::fs::write(&wrong, text.replace("batch: 2", "batch: two")).unwrap();
    let (code, _, stderr) = dsma(&["validate", wrong.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("train.batch") && stderr.contains("line 11"),
        "{stderr}"
    );

    let unknown = tmp.path().join("unknown.yaml");
    std::fs::write(&unknown, text.replace("{name: mas}", "{name: maz}")).unwrap();
    let (code, _, stderr) = dsma(&["validate", unknown.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("rows.1 (DTSS+MAS): weighter") && stderr.contains("mas"),
        "{stderr}"
    );
    // The reference is located in the file: `weighter:` of the second row is line 20, column 5.
    assert!(stderr.contains("unknown.yaml:20:5]"), "{stderr}");
}

#[test]
fn every_experiment_file_validates_with_no_missing_plugin() {
    let (code, stdout, stderr) =
        dsma(&["validate", "experiments/table4_ablation_nestedformer.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("# 3 run(s)"), "{stdout}");
    // Every file of the folder, so a new one cannot be forgotten (base files are `extends` targets).
    let mut files: Vec<String> = std::fs::read_dir("experiments")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for file in &files {
        let file = file.as_str();
        let (code, stdout, stderr) = dsma(&["validate", file]);
        assert_eq!(code, 0, "{file}: {stderr}");
        assert!(
            stdout.contains("ok: every plugin exists"),
            "{file}: {stdout}"
        );
        // Paper files at the paper's geometry, phantom files at theirs: no generator is more
        // than 2× coarser than the patch.
        assert!(!stderr.contains("warning"), "{file}: {stderr}");
        if file.starts_with("experiments/table1") || file.starts_with("experiments/table2") {
            assert!(
                stdout.contains("# 12 run(s)"),
                "{file}: 6 rows × 2 datasets\n{stdout}"
            );
            for row in ["3D-StyleGAN", "HA-GAN", "Wu et al.", "Yu et al."] {
                assert!(stdout.contains(&format!("- {row} |")), "{file}: {stdout}");
            }
        }
    }
}

#[test]
fn validate_warns_when_a_generator_box_is_much_coarser_than_the_patch() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("coarse.yaml");
    let table1 = std::fs::canonicalize("experiments/table1_unet.yaml").unwrap();
    // Patch 128³ (paper.yaml); Wu at 32³ is 4× coarser on every axis, HA-GAN at 64³ exactly 2×
    // (not more: no warning), StyleGAN at 5·2³ × 6·2³ × 7·2³ = 40×48×56: 3.2×, 2.67×, 2.29×.
    let text = format!(
        "extends: {}\nname: coarse\nrows:\n  - label: Wu\n    synthesizer:\n      name: diffusion-wu\n      params: {{size: [32, 32, 32]}}\n  - label: HA\n    synthesizer: {{name: hagan, params: {{size: 64, trunk: [128, 128, 64, 16], low: [8, 8], high: 8}}}}\n  - label: SG\n    synthesizer: {{name: stylegan3d, params: {{blocks: 3}}}}\nreference: null\n",
        table1.display()
    );
    std::fs::write(&file, text).unwrap();
    let (code, _, stderr) = dsma(&["validate", file.to_str().unwrap()]);
    assert_eq!(code, 0, "a warning does not fail validation: {stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].contains("rows.0 (Wu)") && warnings[0].contains("z 4.0×, y 4.0×, x 4.0×"),
        "{stderr}"
    );
    assert!(warnings[0].contains("coarse.yaml:5:5]"), "{stderr}");
    assert!(
        warnings[1].contains("rows.2 (SG)") && warnings[1].contains("z 3.2×, y 2.7×, x 2.3×"),
        "{stderr}"
    );
}

#[test]
fn the_nestedformer_ablation_runs_at_phantom_scale_through_the_same_runner() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let phantom = format!("datasets.0.path={}", tmp.path().join("phantom").display());
    let (code, stdout, stderr) = dsma(&[
        "run",
        "experiments/table4_ablation_nestedformer_phantom.yaml",
        &phantom,
        "datasets.0.phantom.cases=4",
        "train.stage1.epochs=1",
        "train.stage2.epochs=1",
        "eval.every=0",
        "--only",
        "DTSS+MAS",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| DTSS+MAS |"), "{stdout}");
    let run = out.join("runs/brats2020-phantom/dtss-mas/rep-0");
    let cfg = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(cfg.contains("\"nestedformer\""), "{cfg}");
    assert!(run.join("results.json").exists() && run.join("weights.csv").exists());
}

#[test]
fn the_run_record_keeps_an_absolute_dataset_path_so_figures_work_from_any_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 1, 1, BOTH_ROWS);
    // The dataset path as a user writes it: relative to the folder `dsma run` starts in.
    let text = std::fs::read_to_string(&exp).unwrap().replace(
        &format!("path: {}", tmp.path().join("phantom").display()),
        "path: data/phantom",
    );
    std::fs::write(&exp, text).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(["run", "tiny.yaml", "--out", "out", "--quiet"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let record = dsma_train::runner::report::record::RunRecord::read(
        &tmp.path().join("out/runs/phantom/baseline/rep-0"),
    )
    .unwrap();
    let ds = record.dataset().unwrap();
    assert!(ds.path.is_absolute(), "{:?}", ds.path);
    assert!(ds.path.ends_with("data/phantom"));
    assert_eq!(
        record.experiment["datasets"][0]["path"], "data/phantom",
        "the experiment keeps the path as written (the stage-1 hash uses it)"
    );
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = tmp.path().join("out");
    let png = tmp.path().join("fig5.png");
    let fig = Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(["figure", out.to_str().unwrap(), "--kind", "segmentation"])
        .args(["--cases", "1", "--out", png.to_str().unwrap()])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(
        fig.status.success(),
        "{}",
        String::from_utf8_lossy(&fig.stderr)
    );
    assert!(png.exists());
}

/// A row whose weighter does not read scores (`uniform`, and no weighter) skips the per-epoch
/// scoring pass: weights.csv has every synthetic case with weight 1 and an empty score, and the
/// epoch log has no mean real-case score.
#[test]
fn rows_that_ignore_scores_are_not_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "  - label: DTSS
    synthesizer: {name: dtss}
    weighter: {name: uniform}
";
    let exp = experiment(tmp.path(), 1, 2, rows);
    let out = tmp.path().join("out");
    let (code, _, stderr) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let run = out.join("runs/phantom/dtss/rep-0");
    let w = csv(&run.join("weights.csv"));
    assert_eq!(
        w.len(),
        2 * 5,
        "one row per synthetic case and stage-2 epoch"
    );
    assert!(
        w.iter().all(|r| r[4].is_empty() && r[5] == "1.000000"),
        "{w:?}"
    );
    let epochs = csv(&run.join("epochs.csv"));
    assert!(
        epochs
            .iter()
            .filter(|r| r[0] == "2")
            .all(|r| r[7].is_empty()),
        "{epochs:?}"
    );
}

/// Runs the DTSS+MAS experiment uninterrupted, then once per crash point: aborted there through
/// the test-only `DSMA_TEST_ABORT_AT` hook (no timing), resumed with `--resume`; every resumed
/// results.json must equal the uninterrupted one.
const DSMA_ROW: &str =
    "  - label: DTSS+MAS\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n";

fn crash_and_resume(stage1: usize, stage2: usize, points: &[String]) {
    crash_and_resume_row(DSMA_ROW, "dtss-mas", stage1, stage2, points);
}

/// Cuts the one-row experiment `rows` (row folder `slug`) at each of `points`, resumes, and
/// compares with the uninterrupted run.
fn crash_and_resume_row(rows: &str, slug: &str, stage1: usize, stage2: usize, points: &[String]) {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), stage1, stage2, rows);
    let exp = exp.to_str().unwrap();
    let full = tmp.path().join("full");
    let (code, _, stderr) = dsma(&["run", exp, "--out", full.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    let rel = format!("runs/phantom/{slug}/rep-0");
    let want = std::fs::read_to_string(full.join(&rel).join("results.json")).unwrap();
    for (k, point) in points.iter().enumerate() {
        let out = tmp.path().join(format!("cut-{k}"));
        let status = run_aborted_at(exp, &out, point);
        assert!(
            !status.success(),
            "{point}: the run did not reach its crash point"
        );
        assert!(
            !out.join(&rel).join("results.json").exists(),
            "{point}: finished anyway"
        );
        let (code, _, stderr) = run_own_root(exp, &out, &["--resume", "--quiet"]);
        assert_eq!(code, 0, "{point}: resume failed: {stderr}");
        let got = std::fs::read_to_string(out.join(&rel).join("results.json")).unwrap();
        assert_eq!(got, want, "{point}: resumed results differ");
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// One crash in each phase: inside a stage-1 checkpoint write, after a stage-2 epoch, during the
/// final evaluation, after the prediction export.
#[test]
fn a_crash_in_each_phase_then_resume_equals_the_uninterrupted_run() {
    let points = ["checkpoint:2", "epoch:4", "evaluate:0", "export:0"].map(String::from);
    crash_and_resume(2, 3, &points);
}

/// A row without a weighter logs no scores (NaN, `null` in the checkpoint's JSON): cut in stage
/// 2, it resumes all the same.
#[test]
fn a_row_without_a_weighter_cut_in_stage_two_resumes_to_the_same_results() {
    let rows = "  - label: baseline\n    synthesizer: {name: augment}\n";
    crash_and_resume_row(rows, "baseline", 1, 2, &["epoch:2".to_string()]);
}

/// Twenty crash points: after each of 9 epochs (3 in stage 1, 6 in stage 2), inside each of the 9
/// checkpoint writes, in the final evaluation and after the export. About 8 minutes in a debug
/// build, so not in the default suite: `cargo test --test cli -- --ignored twenty`.
#[test]
#[ignore = "about 8 minutes; run with `cargo test --test cli -- --ignored twenty`"]
fn twenty_crash_points_then_resume_equal_the_uninterrupted_run() {
    let mut points: Vec<String> = (1..=9).map(|e| format!("epoch:{e}")).collect();
    points.extend((1..=9).map(|e| format!("checkpoint:{e}")));
    points.extend(["evaluate:0", "export:0"].map(String::from));
    assert_eq!(points.len(), 20);
    crash_and_resume(3, 6, &points);
}

#[test]
fn a_resume_with_changed_settings_is_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = "  - label: DTSS+MAS\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n";
    let exp = experiment(tmp.path(), 2, 2, rows);
    let exp = exp.to_str().unwrap();
    let out = tmp.path().join("out");
    let status = run_aborted_at(exp, &out, "epoch:3");
    assert!(!status.success(), "the run was to abort after epoch 3");
    let (code, _, stderr) = dsma(&[
        "run",
        exp,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--resume",
        "train.stage2.lr=0.001",
        "rows.0.weighter.params.beta=0.3",
        "train.synthesis.regenerate=true",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("other settings"), "{stderr}");
    assert!(
        stderr.contains("train.stage2.lr: 0.0001 → 0.001"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"rows.0.weighter.params: (unset) → {"beta":0.3}"#),
        "{stderr}"
    );
    assert!(
        stderr.contains("train.synthesis: (unset) → {\"regenerate\":true}"),
        "{stderr}"
    );
    assert!(!out
        .join("runs/phantom/dtss-mas/rep-0/results.json")
        .exists());
    // With the recorded settings the resume goes through; how synthesis is scheduled (threads,
    // the generator lane) is not a setting the results depend on.
    let (code, _, stderr) = dsma(&[
        "run",
        exp,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--resume",
        "train.synthesis.workers=1",
        "train.synthesis.ahead_runs=0",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn data_prepare_builds_the_case_store_once_and_run_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 1, 0, "  - label: baseline\n");
    let (exp, cache) = (exp.to_str().unwrap(), tmp.path().join("cache"));
    let cache = cache.to_str().unwrap();
    let (code, first, err) = dsma(&["data", "prepare", exp, "--cache", cache]);
    assert_eq!(code, 0, "{err}");
    assert!(
        first.contains("6 cases") && first.contains("6 built, 0 reused"),
        "{first}"
    );
    let (code, second, err) = dsma(&["data", "prepare", exp, "--cache", cache]);
    assert_eq!(code, 0, "{err}");
    assert!(second.contains("0 built, 6 reused"), "{second}");
    // A flipped byte in a stored image is seen on the next prepare, named, and the case rebuilt.
    let image = std::fs::read_dir(tmp.path().join("cache/cases"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("Phantom_003/image.f32");
    let original = std::fs::read(&image).unwrap();
    let mut flipped = original.clone();
    flipped[original.len() / 3] ^= 0x10;
    std::fs::write(&image, &flipped).unwrap();
    let (code, third, err) = dsma(&["data", "prepare", exp, "--cache", cache]);
    assert_eq!(code, 0, "{err}");
    assert!(third.contains("1 built, 5 reused"), "{third}");
    let line = third.lines().find(|l| l.contains("Phantom_003")).unwrap();
    assert!(
        line.contains("image.f32") && line.contains("CRC-32") && line.contains("rebuilt"),
        "{third}"
    );
    assert_eq!(std::fs::read(&image).unwrap(), original);
    // `dsma run` with the same cache reads the stored cases: nothing is rewritten.
    let store = std::fs::read_dir(tmp.path().join("cache/cases"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let meta = store.join("Phantom_000/meta.json");
    let before = std::fs::metadata(&meta).unwrap().modified().unwrap();
    let out = tmp.path().join("out");
    let (code, _, err) = dsma(&[
        "run",
        exp,
        "--out",
        out.to_str().unwrap(),
        "--cache",
        cache,
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::metadata(&meta).unwrap().modified().unwrap(),
        before
    );
}

/// Two experiment files whose rows are the same runs under other labels (Table 1's baseline and
/// DSMA rows are Table 3's first and last rows; `weighter: uniform` is no weighter): the second
/// trains nothing and prints the same numbers under its own labels.
#[test]
fn identical_runs_of_two_experiment_files_are_trained_once_and_reported_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let first = "  - label: baseline\n    synthesizer: {name: augment}\n  - label: DTSS\n    synthesizer: {name: dtss}\n  - label: DSMA\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n";
    let second = "  - label: simple augmentation\n    synthesizer: {name: augment}\n  - label: DTSS\n    synthesizer: {name: dtss}\n    weighter: {name: uniform}\n  - label: DTSS+MAS\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n  - label: MAS beta 0.3\n    synthesizer: {name: dtss}\n    weighter: {name: mas, params: {beta: 0.3}}\n";
    let a_dir = tmp.path().join("a");
    let b_dir = tmp.path().join("b");
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = experiment(&a_dir, 2, 1, first);
    let b = experiment(&b_dir, 2, 1, second);
    // One phantom folder for both files, as the paper files share their dataset.
    let text = std::fs::read_to_string(&b)
        .unwrap()
        .replace(b_dir.to_str().unwrap(), a_dir.to_str().unwrap());
    std::fs::write(&b, text).unwrap();
    let root = tmp.path().join("runs");
    let run = |exp: &Path, name: &str| {
        let out = root.join(name);
        let (code, stdout, stderr) =
            dsma(&["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        (stdout, stderr)
    };
    let (table_a, _) = run(&a, "table_a");
    let (table_b, log_b) = run(&b, "table_b");
    assert_eq!(
        log_b.matches("finished earlier, skipped").count(),
        3,
        "{log_b}"
    );
    assert!(!log_b.contains("(stage 1)"), "stage 1 retrained: {log_b}");
    assert!(
        log_b.contains("MAS beta 0.3 on Phantom (repeat 0"),
        "{log_b}"
    );
    let numbers = |table: &str, label: &str| -> String {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("{label} missing: {table}"));
        line[label.len() + 4..].to_string()
    };
    for (x, y) in [
        ("baseline", "simple augmentation"),
        ("DTSS", "DTSS"),
        ("DSMA", "DTSS+MAS"),
    ] {
        assert_eq!(numbers(&table_a, x), numbers(&table_b, y), "{x} / {y}");
    }
    // `dsma table` of the second folder shows its own labels, the first file's numbers.
    let (code, again, err) = dsma(&["table", root.join("table_b").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(numbers(&again, "DTSS+MAS"), numbers(&table_a, "DSMA"));
}

/// `repeats: 2` × a two-point `grid` with `eval.report: best` end to end: one table row per grid
/// point, each `mean ± std` over its two repeats of the reported AVE Dice; every run reports its
/// best stage-2 epoch (the first maximum of the periodic test AVE in `epochs.jsonl`) and the
/// final evaluation of that checkpoint equals the periodic one.
#[test]
fn repeats_and_a_grid_report_the_best_epoch_and_mean_and_std_per_row() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 1, 3, "  - label: baseline\n");
    let text = std::fs::read_to_string(&exp).unwrap().replace(
        "eval:\n  window:",
        "repeats: 2\ngrid:\n  train.stage2.lr: [1.0e-4, 3.0e-3]\neval:\n  report: best\n  every: 1\n  window:",
    );
    std::fs::write(&exp, text).unwrap();
    let out = tmp.path().join("out");
    let (code, stdout, stderr) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    for (suffix, slug) in [
        ("lr=0.0001", "baseline-lr-0-0001"),
        ("lr=0.003", "baseline-lr-0-003"),
    ] {
        let mut aves = Vec::new();
        let mut seeds = Vec::new();
        for rep in 0..2 {
            let dir = out.join(format!("runs/phantom/{slug}/rep-{rep}"));
            let results: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            assert_eq!(results["reported"], "best", "{results}");
            let epochs: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("epochs.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let stage2: Vec<&serde_json::Value> =
                epochs.iter().filter(|e| e["stage"] == 2).collect();
            assert_eq!(stage2.len(), 3);
            let ave = |e: &serde_json::Value| e["test_dice"][3].as_f64().unwrap();
            let best = stage2
                .iter()
                .fold(None::<&serde_json::Value>, |b, e| match b {
                    Some(b) if ave(b) >= ave(e) => Some(b),
                    _ => Some(e),
                })
                .unwrap();
            assert_eq!(results["epoch"], best["epoch"], "{suffix} rep {rep}");
            let reported = results["mean"]["AVE"]["dice"].as_f64().unwrap();
            assert!(
                (reported - ave(best)).abs() < 1e-9,
                "{reported} vs {}",
                ave(best)
            );
            aves.push(100.0 * reported);
            seeds.push(results["seed"].as_u64().unwrap());
        }
        assert_ne!(seeds[0], seeds[1], "repeats share a seed");
        let mean = (aves[0] + aves[1]) / 2.0;
        let std = ((aves[0] - mean).powi(2) + (aves[1] - mean).powi(2)).sqrt();
        let cell = format!("{mean:.2} ± {std:.2} |");
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| baseline [{suffix}] |")))
            .unwrap_or_else(|| panic!("no row for {suffix}:\n{stdout}"));
        assert!(
            line.trim_end().ends_with(&cell),
            "{line} should end with {cell}"
        );
    }
}

#[test]
fn a_changed_experiment_file_trains_again_instead_of_reusing_the_old_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 1, 1, "  - label: baseline\n");
    let exp = exp.to_str().unwrap();
    let out = tmp.path().join("out");
    let (code, _, stderr) = run_own_root(exp, &out, &["--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    let link = out.join("runs/phantom/baseline/rep-0");
    let first = std::fs::read_link(&link).unwrap();
    // The same file with two stage-1 epochs: another run, not the finished one under the old link.
    let (code, _, stderr) = run_own_root(exp, &out, &["--quiet", "train.stage1.epochs=2"]);
    assert_eq!(code, 0, "{stderr}");
    let second = std::fs::read_link(&link).unwrap();
    assert_ne!(first, second);
    let epochs = std::fs::read_to_string(link.join("epochs.csv")).unwrap();
    assert_eq!(
        epochs.lines().filter(|l| l.starts_with("1,")).count(),
        2,
        "{epochs}"
    );
    assert!(
        first.join("results.json").exists(),
        "the old run stays in the shared root"
    );
}

#[test]
fn eval_interval_ci95_prints_the_t_interval_of_the_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path(), 1, 1, "  - label: baseline\n");
    let text = std::fs::read_to_string(&exp).unwrap();
    std::fs::write(
        &exp,
        format!("repeats: 2\n{text}").replace("eval:\n", "eval:\n  interval: ci95\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let (code, stdout, stderr) = run_own_root(exp.to_str().unwrap(), &out, &["--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("95 % confidence interval"), "{stdout}");
    // The AVE cell from the two runs' results: mean ± t₀.₉₇₅(1) · s / √2, t₀.₉₇₅(1) = 12.706.
    let ave = |r: usize| -> f64 {
        let dir = out.join(format!("runs/phantom/baseline/rep-{r}"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        100.0 * v["mean"]["AVE"]["dice"].as_f64().unwrap()
    };
    let (a, b) = (ave(0), ave(1));
    let s = (a - b).abs() / 2f64.sqrt();
    let want = format!("{:.2} ± {:.2}", (a + b) / 2.0, 12.706 * s / 2f64.sqrt());
    assert!(stdout.contains(&want), "{want} not in\n{stdout}");
    // `dsma table` reads the experiment's choice back; --interval std overrides it.
    let (_, table, _) = dsma(&["table", out.to_str().unwrap()]);
    assert!(table.contains(&want), "{table}");
    let (_, table, _) = dsma(&["table", out.to_str().unwrap(), "--interval", "std"]);
    assert!(
        table.contains(&format!("{:.2} ± {:.2}", (a + b) / 2.0, s)),
        "{table}"
    );
}

#[test]
fn corrupting_a_generator_row_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(
        tmp.path(),
        1,
        1,
        "  - label: DTSS\n    synthesizer: {name: dtss}\n  - label: GAN\n    synthesizer: {name: stylegan3d, params: {base: [2, 2, 2], blocks: 3}}\n",
    );
    let text = std::fs::read_to_string(&exp).unwrap();
    let text = text.replace(
        "  checkpoint_every: 1\n",
        "  checkpoint_every: 1\n  synthesis: {corrupt: {fraction: 0.25, kind: erase_tumour}}\n",
    );
    std::fs::write(&exp, text).unwrap();
    let (code, _, stderr) = dsma(&["validate", exp.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("train.synthesis.corrupt")
            && stderr.contains("rows.1 (GAN)")
            && !stderr.contains("rows.0"),
        "{stderr}"
    );
    // The derived row alone is fine.
    let (code, _, stderr) = dsma(&["validate", exp.to_str().unwrap(), "--only", "DTSS"]);
    assert_eq!(code, 0, "{stderr}");
}
