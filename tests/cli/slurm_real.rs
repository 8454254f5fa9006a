//! The Slurm job array of `experiments/slurm/` on a real Slurm: `scripts/slurm-local` (which
//! `.ci/run` starts; it exports SLURM_CONF) runs slurmctld and slurmd on this machine. Four array
//! tasks, one cancelled while it trains and requeued, then the table job; the table and every
//! `results.json` must equal a local single-process `dsma run` of the same file byte for byte.
//! Without SLURM_CONF the test says so and passes; DSMA_REQUIRE_SLURM=1 makes that a failure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::tiny_experiment;

/// The array tests' three rows and a fourth: one run per array task.
fn rows() -> String {
    format!(
        "{}  - label: augment\n    synthesizer: {{name: augment}}\n",
        crate::slurm_array::ROWS
    )
}

/// Standard output of a Slurm command (they read SLURM_CONF from the environment).
fn slurm(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The state of job (or array task) `id`, e.g. `RUNNING`, `CANCELLED`, `COMPLETED`.
fn state(id: &str) -> String {
    slurm(&["squeue", "-h", "-t", "all", "-j", id, "-o", "%T"])
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn results(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = vec![];
    for row in ["baseline", "dtss", "dtss-mas", "augment"] {
        let rel = format!("runs/phantom/{row}/rep-0/results.json");
        all.push((
            rel.clone(),
            std::fs::read(out.join(&rel)).unwrap_or_default(),
        ));
    }
    all
}

#[test]
fn a_real_slurm_array_with_a_cancelled_and_requeued_task_matches_a_local_run() {
    if std::env::var_os("SLURM_CONF").is_none() {
        assert!(
            std::env::var_os("DSMA_REQUIRE_SLURM").is_none(),
            "DSMA_REQUIRE_SLURM is set but SLURM_CONF is not: run under scripts/slurm-local"
        );
        eprintln!("no Slurm here (SLURM_CONF unset): run under scripts/slurm-local to test it");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Stage 1 long enough (shared by the four rows) that a task can be cancelled while it trains.
    let exp = tiny_experiment(tmp.path(), 30, 1, &rows());
    let dsma = env!("CARGO_BIN_EXE_dsma");

    let local = tmp.path().join("local/out");
    let status = Command::new(dsma)
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            local.to_str().unwrap(),
            "--quiet",
        ])
        .status()
        .unwrap();
    assert!(status.success());

    let out = tmp.path().join("slurm/out");
    let submitted = Command::new("bash")
        .arg("experiments/slurm/submit.sh")
        .arg(&exp)
        .arg("4")
        .env("DSMA", dsma)
        .env("OUT", &out)
        .env("BACKEND", "cpu")
        .env(
            "SBATCH_ARGS",
            format!(
                "--cpus-per-task=1 --mem=1G --gres=none --chdir={}",
                tmp.path().display()
            ),
        )
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&submitted.stdout).to_string();
    assert!(
        submitted.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    // "submitted 4 shards as job A; the table job T runs when all have ended"
    let words: Vec<&str> = said.split_whitespace().collect();
    let array = words[5].trim_end_matches(';').to_string();
    let table = words[9].to_string();

    // Task 0 trains the shared stage 1 (the others wait on its lock): cancel it after its first
    // stage-1 checkpoint, then requeue it, as an operator would.
    let task = format!("{array}_0");
    wait_for("task 0 to run", Duration::from_secs(120), || {
        state(&task) == "RUNNING"
    });
    wait_for("a stage-1 checkpoint", Duration::from_secs(120), || {
        let stage1 = tmp.path().join("slurm/cache/stage1");
        walk_has(&stage1, "latest")
    });
    slurm(&["scancel", &task]);
    wait_for("task 0 to be cancelled", Duration::from_secs(60), || {
        state(&task) == "CANCELLED"
    });
    slurm(&["scontrol", "requeue", &task]);
    // A requeued job waits (BeginTime) before it may start again; let it start now.
    slurm(&[
        "scontrol",
        "update",
        &format!("JobId={task}"),
        "StartTime=now",
    ]);
    wait_for("the table job", Duration::from_secs(600), || {
        state(&table) == "COMPLETED"
    });

    assert_eq!(
        std::fs::read_to_string(out.join("table.md")).unwrap(),
        std::fs::read_to_string(local.join("table.md")).unwrap()
    );
    let (ours, theirs) = (results(&out), results(&local));
    for (a, b) in ours.iter().zip(&theirs) {
        assert!(
            !a.1.is_empty() && a.1 == b.1,
            "{} differs from the local run's",
            a.0
        );
    }
    // The cancelled task ran twice: its log shows the resume.
    let restarts = slurm(&["scontrol", "show", "job", &task]);
    assert!(restarts.contains("Restarts=1"), "{restarts}");
}

/// Whether a file named `name` exists anywhere under `dir`.
fn walk_has(dir: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        p.file_name().is_some_and(|n| n == name) || (p.is_dir() && walk_has(&p, name))
    })
}
