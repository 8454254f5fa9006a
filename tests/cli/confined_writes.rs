//! Where dsma writes: a run, its predictions, table, report and figure, and a refused hostile
//! dataset leave every file outside the output and cache folders as it was, and nothing behind in
//! `TMPDIR` or `HOME`. The filesystem around them (the test's whole temporary root: dataset,
//! experiment files, home, temp) is listed before and after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::support::{phantom_dataset, tiny_experiment};

/// Every entry under `root` (not following links) except the folders in `skip`: kind, length and
/// modification time of files and links; folders by kind only (a temporary file made and removed
/// inside one changes its time; anything left behind is listed itself).
fn listing(root: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, (String, u64, Option<SystemTime>)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if skip.contains(&path) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = format!("{:?}", meta.file_type());
            if meta.is_dir() {
                pending.push(path.clone());
                found.insert(path, (kind, 0, None));
            } else {
                found.insert(path, (kind, meta.len(), Some(meta.modified().unwrap())));
            }
        }
    }
    found
}

/// Runs `dsma` in `root/work` with `HOME`, `TMPDIR` and `XDG_CACHE_HOME` inside `root`, so a
/// write to a relative path lands in the listed folder too.
fn dsma_in(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(args)
        .current_dir(root.join("work"))
        .env("HOME", root.join("home"))
        .env("TMPDIR", root.join("tmp"))
        .env("XDG_CACHE_HOME", root.join("home/.cache"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Decathlon task whose second image name gives the case id `..` (the store folder's parent).
fn hostile_task(root: &Path) -> PathBuf {
    let task = root.join("task");
    std::fs::create_dir_all(&task).unwrap();
    let json = serde_json::json!({
        "name": "BRATS",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "training": [
            {"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"},
            {"image": "./imagesTr/...nii.gz", "label": "./labelsTr/...nii.gz"}
        ],
        "test": []
    });
    std::fs::write(task.join("dataset.json"), json.to_string()).unwrap();
    let exp = root.join("hostile.yaml");
    let text = std::fs::read_to_string(root.join("tiny.yaml"))
        .unwrap()
        .replace("kind: phantom", "kind: msd_task01")
        .replace(
            &root.join("phantom").display().to_string(),
            &task.display().to_string(),
        )
        .replace("    phantom: {cases: 6, size: [24, 24, 16], seed: 3}\n", "");
    std::fs::write(&exp, text).unwrap();
    exp
}

#[test]
fn nothing_is_written_outside_the_output_and_cache_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["home", "tmp", "work"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The phantom the experiment names, generated beforehand: its generation on first use is
    // the one write into the data folder dsma makes, and it is not under test here.
    phantom_dataset(root, 6, [24, 24, 16], 3);
    let exp = tiny_experiment(root, 1, 0, "  - label: baseline\n");
    let hostile = hostile_task(root);
    let (out, cache) = (root.join("out"), root.join("cache"));
    let skip = [out.clone(), cache.clone()];
    let before = listing(root, &skip);

    let s = |p: &Path| p.to_str().unwrap().to_string();
    let run_dir = out.join("runs/phantom/baseline/rep-0");
    let commands: Vec<Vec<String>> = vec![
        vec![
            "run".into(),
            s(&exp),
            "--out".into(),
            s(&out),
            "--cache".into(),
            s(&cache),
            "--quiet".into(),
        ],
        vec![
            "predict".into(),
            "--run".into(),
            s(&run_dir),
            "--input".into(),
            s(&root.join("phantom")),
            "--out".into(),
            s(&out.join("pred")),
        ],
        vec!["table".into(), s(&out)],
        vec![
            "report".into(),
            s(&out),
            "--out".into(),
            s(&out.join("report.html")),
        ],
        vec![
            "figure".into(),
            s(&out),
            "--kind".into(),
            "segmentation".into(),
            "--out".into(),
            s(&out.join("fig.png")),
        ],
    ];
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = dsma_in(root, &args);
        assert_eq!(code, 0, "dsma {args:?}: {stderr}");
    }
    assert!(out.join("pred/Phantom_000.nii.gz").exists());

    let (code, stderr) = dsma_in(
        root,
        &[
            "run",
            &s(&hostile),
            "--out",
            &s(&out),
            "--cache",
            &s(&cache),
            "--quiet",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("training[1].image") && stderr.contains("case id `..`"),
        "{stderr}"
    );

    let after = listing(root, &skip);
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .collect();
    assert!(
        changed.is_empty(),
        "written outside out/ and cache/: {changed:#?}"
    );
}
