//! `dsma predict` end to end: a trained tiny run segments a BraTS-validation-shaped folder (no
//! `seg` files) exactly as its own evaluation did; ensembles of one run twice and mirroring run
//! through the CLI; bad input is refused by name with nothing written.

use std::path::{Path, PathBuf};

use crate::support::{dsma, tiny_experiment};

/// Trains the tiny baseline (2 + 1 epochs) and returns (tmp, run folder, phantom folder).
fn trained_run() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(tmp.path(), 2, 1, "  - label: baseline\n");
    let out = tmp.path().join("out");
    let (code, _, err) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let run = out.join("runs/phantom/baseline/rep-0");
    let phantom = tmp.path().join("phantom");
    (tmp, run, phantom)
}

/// The run's test cases with their `results.json` metrics.
fn test_cases(run: &Path) -> Vec<(String, serde_json::Value)> {
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["metrics"].clone()))
        .collect()
}

/// Copies the case folders `ids` of `phantom` into `dest`, with or without their `seg` file.
fn copy_cases(phantom: &Path, ids: &[&str], dest: &Path, with_seg: bool) {
    for id in ids {
        std::fs::create_dir_all(dest.join(id)).unwrap();
        for entry in std::fs::read_dir(phantom.join(id)).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if with_seg || !name.contains("_seg") {
                std::fs::copy(&p, dest.join(id).join(&name)).unwrap();
            }
        }
    }
}

fn predict(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["predict"];
    all.extend_from_slice(args);
    dsma(&all)
}

#[test]
fn predict_reproduces_the_runs_evaluation_and_ensembles_and_mirrors_run() {
    let (tmp, run, phantom) = trained_run();
    let cases = test_cases(&run);
    let ids: Vec<&str> = cases.iter().map(|(id, _)| id.as_str()).collect();
    assert!(!ids.is_empty());
    let val = tmp.path().join("validation");
    copy_cases(&phantom, &ids, &val, false);
    let preds = tmp.path().join("preds");
    let r = run.to_str().unwrap();
    let (code, out, err) = predict(&[
        "--run",
        r,
        "--input",
        val.to_str().unwrap(),
        "--out",
        preds.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("wrote {} prediction(s)", ids.len())),
        "{out}"
    );
    for id in &ids {
        let ours = std::fs::read(preds.join(format!("{id}.nii.gz"))).unwrap();
        let runs = std::fs::read(run.join(format!("predictions/{id}.nii.gz"))).unwrap();
        assert!(ours == runs, "{id}: prediction differs from the run's own");
    }
    // Scored by `dsma eval` against the labels: the run's per-case metrics.
    let truth = tmp.path().join("truth");
    copy_cases(&phantom, &ids, &truth, true);
    let csv = tmp.path().join("m.csv");
    let (code, _, err) = dsma(&[
        "eval",
        "--pred-dir",
        preds.to_str().unwrap(),
        "--label-dir",
        truth.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (_, m) = cases.iter().find(|(id, _)| id == f[0]).unwrap();
        for (i, region) in ["WT", "TC", "ET"].iter().enumerate() {
            let want = m[region]["dice"].as_f64().unwrap();
            let got: f64 = f[1 + i].parse().unwrap();
            assert!(
                (got - want).abs() < 1e-6,
                "{} {region}: {got} vs {want}",
                f[0]
            );
        }
    }
    // An ensemble of the same run twice averages equal probabilities: the same labels.
    let twice = tmp.path().join("twice");
    let one_case = val.join(ids[0]);
    let (code, out, err) = predict(&[
        "--run",
        r,
        "--run",
        r,
        "--case",
        one_case.to_str().unwrap(),
        "--out",
        twice.to_str().unwrap(),
        "--labels",
        "brats2023",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ensemble of 2 runs") && out.contains("brats2023"),
        "{out}"
    );
    let (_, single) =
        dsma_data::nifti_io::read_labels(&preds.join(format!("{}.nii.gz", ids[0]))).unwrap();
    let (_, pair) =
        dsma_data::nifti_io::read_labels(&twice.join(format!("{}.nii.gz", ids[0]))).unwrap();
    // brats2019's 4 is brats2023's 3; the other labels are equal.
    assert_eq!(single.mapv(|v| if v == 4 { 3 } else { v }), pair);
    let mirrored = tmp.path().join("mirrored");
    let (code, out, err) = predict(&[
        "--run",
        r,
        "--case",
        one_case.to_str().unwrap(),
        "--out",
        mirrored.to_str().unwrap(),
        "--mirror",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mirrored"), "{out}");
    assert!(mirrored.join(format!("{}.nii.gz", ids[0])).is_file());

    bad_input_is_refused_by_name(tmp.path(), &run, &phantom, ids[0]);
}

/// Each refusal exits 1, names what is wrong, and writes no prediction.
fn bad_input_is_refused_by_name(tmp: &Path, run: &Path, phantom: &Path, id: &str) {
    let out = tmp.join("refused");
    let o = out.to_str().unwrap();
    let r = run.to_str().unwrap();
    // A missing modality.
    let partial = tmp.join("partial");
    copy_cases(phantom, &[id], &partial, false);
    std::fs::remove_file(partial.join(id).join(format!("{id}_t1ce.nii.gz"))).unwrap();
    let (code, _, err) = predict(&["--run", r, "--input", partial.to_str().unwrap(), "--out", o]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{id}_t1ce.nii.gz")) && err.contains("missing t1ce"),
        "{err}"
    );
    // An empty input folder.
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = predict(&["--run", r, "--input", empty.to_str().unwrap(), "--out", o]);
    assert_eq!(code, 1);
    assert!(err.contains("no case folders"), "{err}");
    // A run folder without its checkpoint.
    let val = tmp.join("validation");
    let broken = tmp.join("broken-run");
    std::fs::create_dir_all(&broken).unwrap();
    for f in ["config.json", "results.json"] {
        std::fs::copy(run.join(f), broken.join(f)).unwrap();
    }
    let (code, _, err) = predict(&[
        "--run",
        broken.to_str().unwrap(),
        "--input",
        val.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("has no checkpoint of its reported model"),
        "{err}"
    );
    // Not a run folder at all.
    let (code, _, err) = predict(&[
        "--run",
        val.to_str().unwrap(),
        "--input",
        val.to_str().unwrap(),
        "--out",
        o,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("has no results.json"), "{err}");
    assert!(
        !out.exists(),
        "a refused prediction wrote {}",
        out.display()
    );
}

/// An experiment asking for NSD and lesion-wise metrics and test-time mirroring: `results.json`
/// holds them per case, `dsma predict --mirror` writes the run's own mirrored predictions, `dsma
/// eval` scores those as the run did, and `dsma table --metric` shows them.
#[test]
fn eval_metrics_and_mirroring_in_an_experiment_match_predict_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(tmp.path(), 2, 1, "  - label: baseline\n");
    let out = tmp.path().join("out");
    let (code, _, err) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "eval.metrics.compute=[dice, hd95, nsd, lesion]",
        "eval.predict.mirror=true",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let run = out.join("runs/phantom/baseline/rep-0");
    let cases = test_cases(&run);
    for (id, m) in &cases {
        for region in ["WT", "TC", "ET"] {
            let l = &m[region]["lesion"];
            assert!(m[region]["nsd"].is_number(), "{id} {region}: {m}");
            let lesions = l["tp"].as_u64().unwrap() + l["fn"].as_u64().unwrap();
            assert!(
                lesions >= 1 || region == "ET",
                "{id} {region}: the phantom has a tumour: {l}"
            );
        }
    }
    let ids: Vec<&str> = cases.iter().map(|(id, _)| id.as_str()).collect();
    let phantom = tmp.path().join("phantom");
    let val = tmp.path().join("validation");
    copy_cases(&phantom, &ids, &val, false);
    let preds = tmp.path().join("preds");
    let (code, _, err) = predict(&[
        "--run",
        run.to_str().unwrap(),
        "--input",
        val.to_str().unwrap(),
        "--out",
        preds.to_str().unwrap(),
        "--mirror",
    ]);
    assert_eq!(code, 0, "{err}");
    for id in &ids {
        let ours = std::fs::read(preds.join(format!("{id}.nii.gz"))).unwrap();
        let runs = std::fs::read(run.join(format!("predictions/{id}.nii.gz"))).unwrap();
        assert!(
            ours == runs,
            "{id}: mirrored prediction differs from the run's own"
        );
    }
    let truth = tmp.path().join("truth");
    copy_cases(&phantom, &ids, &truth, true);
    let (code, json, err) = dsma(&[
        "eval",
        "--pred",
        preds.join(format!("{}.nii.gz", ids[0])).to_str().unwrap(),
        "--label",
        truth
            .join(ids[0])
            .join(format!("{}_seg.nii.gz", ids[0]))
            .to_str()
            .unwrap(),
        "--metrics",
        "dice,hd95,nsd,lesion",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&json).unwrap();
    for region in ["WT", "TC", "ET"] {
        assert_eq!(
            got[region]["lesion"], cases[0].1[region]["lesion"],
            "{region}"
        );
        let (a, b) = (
            got[region]["nsd"].as_f64(),
            cases[0].1[region]["nsd"].as_f64(),
        );
        assert!((a.unwrap() - b.unwrap()).abs() < 1e-9, "{region} nsd");
    }
    let (code, table, err) = dsma(&["table", out.to_str().unwrap(), "--metric", "lesion-dsc"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("lesion-wise DSC (%)") && table.contains("| baseline |"),
        "{table}"
    );
    let (code, _, err) = dsma(&["table", out.to_str().unwrap(), "--metric", "volume"]);
    assert_eq!(code, 1, "an unknown metric is refused");
    assert!(err.contains("expected dice, hd95, nsd"), "{err}");
}

/// `eval.predict.ensemble: repeats` evaluates each row's repeats averaged, from the finished runs
/// (their hashes do not change, so adding it trains nothing again), and writes the predictions
/// `dsma predict` makes from the same runs.
#[test]
fn an_ensemble_of_repeats_is_evaluated_from_finished_runs_as_predict_ensembles_them() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(tmp.path(), 2, 1, "  - label: baseline\n");
    let out = tmp.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", exp.to_str().unwrap(), "repeats=2"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap(), "--quiet"]);
        dsma(&args)
    };
    let (code, _, err) = run(&[]);
    assert_eq!(code, 0, "{err}");
    let reps: Vec<PathBuf> = (0..2)
        .map(|r| out.join(format!("runs/phantom/baseline/rep-{r}")))
        .collect();
    let stamp = |p: &Path| {
        std::fs::metadata(p.join("results.json"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = reps.iter().map(|r| stamp(r)).collect();
    let (code, stdout, err) = run(&["eval.predict.ensemble=repeats"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("| baseline (ensemble of 2) |"), "{stdout}");
    let after: Vec<_> = reps.iter().map(|r| stamp(r)).collect();
    assert_eq!(before, after, "the finished runs were not trained again");
    let ens_results = out.join("ensembles/phantom/baseline/results.json");
    let first = std::fs::metadata(&ens_results).unwrap().modified().unwrap();
    let (code, stdout, err) = run(&["eval.predict.ensemble=repeats"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("| baseline (ensemble of 2) |"), "{stdout}");
    let again = std::fs::metadata(&ens_results).unwrap().modified().unwrap();
    assert_eq!(first, again, "an unchanged ensemble is not evaluated again");
    let ens = out.join("ensembles/phantom/baseline");
    assert!(ens.join("results.json").is_file());
    let ids: Vec<String> = test_cases(&reps[0]).into_iter().map(|(id, _)| id).collect();
    let val = tmp.path().join("validation");
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    copy_cases(&tmp.path().join("phantom"), &id_refs, &val, false);
    let preds = tmp.path().join("preds");
    let (code, _, err) = predict(&[
        "--run",
        reps[0].to_str().unwrap(),
        "--run",
        reps[1].to_str().unwrap(),
        "--input",
        val.to_str().unwrap(),
        "--out",
        preds.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for id in &ids {
        let a = std::fs::read(preds.join(format!("{id}.nii.gz"))).unwrap();
        let b = std::fs::read(ens.join(format!("predictions/{id}.nii.gz"))).unwrap();
        assert!(
            a == b,
            "{id}: the ensemble's prediction differs from dsma predict's"
        );
    }
    let (code, _, err) = dsma(&[
        "validate",
        exp.to_str().unwrap(),
        "eval.predict.ensemble=repeats",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("eval.predict.ensemble") && err.contains("repeats ≥ 2"),
        "{err}"
    );
}
