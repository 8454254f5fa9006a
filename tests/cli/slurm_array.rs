//! The Slurm job array of `experiments/slurm/`: the shard script run as three concurrent array
//! tasks on one output folder (one of them killed and requeued), then the table job; and the
//! submit script's wiring of the array and the dependent table job (against a stand-in `sbatch`).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::tiny_experiment;

/// The rows of the array tests (the real-Slurm test adds a fourth).
pub const ROWS: &str = "  - label: baseline
  - label: DTSS
    synthesizer: {name: dtss}
  - label: DTSS+MAS
    synthesizer: {name: dtss}
    weighter: {name: mas}
";

fn shard(exp: &Path, out: &Path, task: usize, abort: Option<&str>) -> Command {
    let mut c = Command::new("bash");
    c.arg("experiments/slurm/shard.sbatch")
        .env("EXPERIMENT", exp)
        .env("OUT", out)
        .env("DSMA", env!("CARGO_BIN_EXE_dsma"))
        .env("BACKEND", "cpu")
        .env("SLURM_ARRAY_TASK_ID", (10 + task).to_string())
        .env("SLURM_ARRAY_TASK_MIN", "10")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .env_remove("DSMA_TEST_ABORT_AT");
    if let Some(point) = abort {
        c.env("DSMA_TEST_ABORT_AT", point);
    }
    c
}

/// `table.sbatch` run by hand, as Slurm would once the array has ended.
fn table_job(exp: &Path, out: &Path) -> Output {
    Command::new("bash")
        .arg("experiments/slurm/table.sbatch")
        .env("EXPERIMENT", exp)
        .env("OUT", out)
        .env("DSMA", env!("CARGO_BIN_EXE_dsma"))
        .output()
        .unwrap()
}

fn log(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn three_array_tasks_share_one_folder_survive_a_requeue_and_the_table_job_sees_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(tmp.path(), 2, 1, ROWS);
    let out = tmp.path().join("out");
    // Task 0 is killed after epoch 3 (its row's stage-2 epoch), as a pre-empted job would be.
    let children: Vec<_> = (0..3)
        .map(|k| {
            shard(&exp, &out, k, (k == 0).then_some("epoch:3"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    assert!(
        !outputs[0].status.success(),
        "task 0 reached its kill point"
    );
    for o in &outputs[1..] {
        assert!(o.status.success(), "{}", log(o));
    }
    // Slurm requeues task 0: the same script resumes it.
    let requeued = shard(&exp, &out, 0, None).output().unwrap();
    assert!(requeued.status.success(), "{}", log(&requeued));

    let mut logs: Vec<String> = outputs.iter().map(log).collect();
    logs.push(log(&requeued));
    let stage1: usize = logs.iter().map(|l| l.matches("(stage 1)").count()).sum();
    assert_eq!(
        stage1, 2,
        "the shared stage 1 (2 epochs) trained once: {logs:?}"
    );
    assert!(logs[0].contains("dsma shard 1/3"), "{}", logs[0]);
    for (row, dir) in [
        ("baseline", "baseline"),
        ("DTSS", "dtss"),
        ("DTSS+MAS", "dtss-mas"),
    ] {
        let starts: usize = logs
            .iter()
            .map(|l| l.matches(&format!("] {row} on Phantom")).count())
            .sum();
        let expected = if starts == 2 {
            "killed once, resumed once"
        } else {
            "once"
        };
        assert!(
            starts == 1 || (starts == 2 && logs[0].contains(&format!("] {row} on"))),
            "{row} started {starts} times (expected {expected}): {logs:?}"
        );
        assert!(out
            .join("runs/phantom")
            .join(dir)
            .join("rep-0/results.json")
            .exists());
    }

    let table = table_job(&exp, &out);
    let text = log(&table);
    assert!(table.status.success(), "{text}");
    for row in ["| baseline |", "| DTSS |", "| DTSS+MAS |"] {
        assert!(text.contains(row), "{row} missing: {text}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("table.md")).unwrap(),
        String::from_utf8_lossy(&table.stdout)
    );
    // With a run's results gone, the table job refuses and names it.
    std::fs::remove_file(out.join("runs/phantom/dtss/rep-0/results.json")).unwrap();
    let refused = table_job(&exp, &out);
    assert!(!refused.status.success());
    assert!(
        log(&refused).contains("1 run(s) have not finished: runs/phantom/dtss/rep-0"),
        "{}",
        log(&refused)
    );
}

#[test]
fn submit_wires_the_table_job_after_the_whole_array() {
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in sbatch: logs its arguments, answers job ids 4242 then 4243 (--parsable).
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = tmp.path().join("calls");
    std::fs::write(
        bin.join("sbatch"),
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >> {0}\nn=$(wc -l < {0})\necho $((4241 + n))\n",
            calls.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("sbatch"))
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg("experiments/slurm/submit.sh")
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let ok = run(&["experiments/table1_unet.yaml", "6"]);
    assert!(ok.status.success(), "{}", log(&ok));
    let lines: Vec<String> = std::fs::read_to_string(&calls)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("--array=0-5") && lines[0].ends_with("shard.sbatch"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("--dependency=afterany:4242") && lines[1].ends_with("table.sbatch"),
        "{}",
        lines[1]
    );
    assert!(log(&ok).contains("job 4242"), "{}", log(&ok));
    for bad in [
        &["experiments/table1_unet.yaml", "0"][..],
        &["experiments/table1_unet.yaml", "x"],
        &[],
    ] {
        let o = run(bad);
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", log(&o));
    }
}
