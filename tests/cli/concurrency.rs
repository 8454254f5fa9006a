//! Two `dsma run` processes of one experiment on one output folder and shared root at once, with
//! `dsma table` and `dsma report` reading the folder while they train: each run is trained once
//! (the other process waits on its lock, then finds it finished), both end with the same table,
//! and it equals a single process's, byte for byte.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::tiny_experiment;

const ROWS: &str = "  - label: baseline
  - label: DTSS
    synthesizer: {name: dtss}
";

#[test]
fn two_runs_at_once_train_each_run_once_and_match_a_single_process() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(tmp.path(), 8, 1, ROWS);
    let dsma = env!("CARGO_BIN_EXE_dsma");
    // Output to files, not pipes: nobody reads a pipe while the readers below run.
    let run = |out: &Path, log: &str| {
        let file =
            |ext: &str| std::fs::File::create(tmp.path().join(format!("{log}.{ext}"))).unwrap();
        Command::new(dsma)
            .args(["run", exp.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .stdout(Stdio::from(file("out")))
            .stderr(Stdio::from(file("err")))
            .spawn()
            .unwrap()
    };
    let text = |log: &str| std::fs::read_to_string(tmp.path().join(log)).unwrap();
    let single = tmp.path().join("single/out");
    assert!(
        run(&single, "single").wait().unwrap().success(),
        "{}",
        text("single.err")
    );

    let out = tmp.path().join("shared/out");
    let (mut a, mut b) = (run(&out, "a"), run(&out, "b"));
    // Readers while both train: a partial folder is read, never an error or a half-written file.
    let mut read_while_training = 0;
    while a.try_wait().unwrap().is_none() || b.try_wait().unwrap().is_none() {
        for args in [
            vec!["table", out.to_str().unwrap()],
            vec![
                "report",
                out.to_str().unwrap(),
                "--out",
                tmp.path().join("r.html").to_str().unwrap(),
            ],
        ] {
            let o = Command::new(dsma).args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            // Before the first run finishes there is nothing to read yet, which is said.
            assert!(
                o.status.success()
                    || err.contains("no run folders")
                    || err.contains("has no `runs` folder")
                    || err.contains("holds no finished run"),
                "{args:?}: {err}"
            );
            read_while_training += usize::from(o.status.success());
        }
    }
    assert!(
        read_while_training > 0,
        "no read found the folder while the runs trained"
    );
    assert!(a.wait().unwrap().success(), "{}", text("a.err"));
    assert!(b.wait().unwrap().success(), "{}", text("b.err"));
    let expected = std::fs::read_to_string(single.join("table.md")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("table.md")).unwrap(),
        expected
    );
    let first_row = expected.lines().nth(2).unwrap();
    assert!(text("a.out").contains(first_row) && text("b.out").contains(first_row));
    // Each run trained once: the process that did not train it found it finished.
    let logs = format!("{}{}", text("a.err"), text("b.err"));
    assert_eq!(
        logs.matches("finished earlier, skipped").count(),
        2,
        "{logs}"
    );
    for row in ["baseline", "dtss"] {
        let rel = format!("runs/phantom/{row}/rep-0/results.json");
        assert_eq!(
            std::fs::read(out.join(&rel)).unwrap(),
            std::fs::read(single.join(&rel)).unwrap(),
            "{rel}"
        );
    }
}
