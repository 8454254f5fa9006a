//! A read-only or full output folder: `dsma run --resume` stops with a named error (the file and
//! the system's reason), leaves no temporary file behind, and once the folder is writable again the
//! last good checkpoint resumes to the same results.json as an uninterrupted run.
//!
//! The folder is a 64 MiB tmpfs mounted inside a private user and mount namespace (`unshare`), so
//! neither root nor a real full disk is needed. Where unprivileged namespaces are unavailable (some
//! distributions switch them off) the test fails saying so; `DSMA_SKIP_NAMESPACE_TESTS=1` skips it
//! there on purpose (printed), so it never passes without checking anything by accident.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{dsma, tiny_experiment};

/// The read-only and full-disk phases cut and resume a DTSS + MAS run (synthetic sets spilled,
/// the weighter's state checkpointed).
const DSMA_ROW: &str =
    "  - label: DTSS+MAS\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n";
const DSMA_RUN: &str = "runs/phantom/dtss-mas/rep-0";
/// The checkpoint phase resumes a row without a synthesizer: a DTSS row's resume first deletes the
/// synthetic sets spilled before the cut, which frees more than its next checkpoint takes, so the
/// disk would never be full when the checkpoint is written.
const BASE_ROW: &str = "  - label: baseline\n";
const BASE_RUN: &str = "runs/phantom/baseline/rep-0";

/// The steps run inside the namespace; each phase leaves its exit code and stderr in `$LOG`.
const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o size=64m tmpfs "$MNT" || exit 90
phase() { "$BIN" run "$1" --out "$2" --resume --quiet >/dev/null 2> "$LOG/$3.err"; echo $? > "$LOG/$3.rc"; }
DSMA_TEST_ABORT_AT=epoch:3 "$BIN" run "$EXP" --out "$MNT/dsma" --quiet >/dev/null 2>&1
echo $? > "$LOG/cut.rc"
mount -o remount,ro "$MNT" && phase "$EXP" "$MNT/dsma" readonly
mount -o remount,rw "$MNT"
dd if=/dev/zero of="$MNT/filler" bs=64k >/dev/null 2>&1
phase "$EXP" "$MNT/dsma" full
rm -f "$MNT/filler"
phase "$EXP" "$MNT/dsma" freed
cp "$MNT/dsma/runs/phantom/dtss-mas/rep-0/results.json" "$LOG/dsma.json"
DSMA_TEST_ABORT_AT=epoch:3 "$BIN" run "$BASE" --out "$MNT/base" --quiet >/dev/null 2>&1
echo $? > "$LOG/cut-base.rc"
# 96 KiB left: the small files of a resume fit, the next checkpoint (two 124 KiB networks and a
# 240 KiB optimizer state) does not.
avail=$(df --output=avail -B1 "$MNT" | tail -1)
dd if=/dev/zero of="$MNT/filler" bs=4096 count=$(( (avail - 98304) / 4096 )) >/dev/null 2>&1
phase "$BASE" "$MNT/base" checkpoint
find "$MNT" -name '*.tmp' > "$LOG/leftover"
rm -f "$MNT/filler"
phase "$BASE" "$MNT/base" freed-base
cp "$MNT/base/runs/phantom/baseline/rep-0/results.json" "$LOG/base.json"
"#;

fn namespaces_work() -> bool {
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn read(log: &Path, name: &str) -> String {
    std::fs::read_to_string(log.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The experiment of `row` in its own folder under `tmp`, and the results.json of its
/// uninterrupted run there.
fn uninterrupted(tmp: &Path, name: &str, row: &str, run: &str) -> (PathBuf, String) {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let exp = tiny_experiment(&dir, 2, 2, row);
    let out = dir.join("full");
    let (code, _, stderr) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let results = std::fs::read_to_string(out.join(run).join("results.json")).unwrap();
    (exp, results)
}

#[test]
fn a_read_only_or_full_output_folder_is_a_named_error_and_the_last_checkpoint_resumes() {
    if std::env::var_os("DSMA_SKIP_NAMESPACE_TESTS").is_some() {
        eprintln!("skipped: DSMA_SKIP_NAMESPACE_TESTS is set");
        return;
    }
    assert!(
        namespaces_work(),
        "unshare --user --map-root-user --mount is unavailable here (unprivileged user namespaces \
         are switched off); set DSMA_SKIP_NAMESPACE_TESTS=1 to skip this test on this machine"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (exp, want_dsma) = uninterrupted(tmp.path(), "dsma", DSMA_ROW, DSMA_RUN);
    let (base, want_base) = uninterrupted(tmp.path(), "base", BASE_ROW, BASE_RUN);

    let (mnt, log) = (tmp.path().join("mnt"), tmp.path().join("log"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&log).unwrap();
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT])
        .env("MNT", &mnt)
        .env("LOG", &log)
        .env("EXP", &exp)
        .env("BASE", &base)
        .env("BIN", env!("CARGO_BIN_EXE_dsma"))
        .status()
        .unwrap();
    assert!(status.success(), "the namespace script failed: {status}");
    for cut in ["cut.rc", "cut-base.rc"] {
        assert_ne!(read(&log, cut).trim(), "0", "{cut}: no crash point reached");
    }

    for (phase, reason) in [
        ("readonly", "Read-only file system"),
        ("full", "No space left on device"),
        // The resume starts (its small files fit) and fails writing the next checkpoint.
        ("checkpoint", "No space left on device"),
    ] {
        let (rc, err) = (
            read(&log, &format!("{phase}.rc")),
            read(&log, &format!("{phase}.err")),
        );
        assert_eq!(rc.trim(), "1", "{phase}: {err}");
        assert!(
            err.contains(reason),
            "{phase}: the system's reason is missing: {err}"
        );
        assert!(
            err.contains(mnt.to_str().unwrap()),
            "{phase}: no file named: {err}"
        );
        assert!(!err.contains("panicked"), "{phase}: {err}");
    }
    assert!(
        read(&log, "checkpoint.err").contains("checkpoints"),
        "the checkpoint phase failed before its checkpoint: {}",
        read(&log, "checkpoint.err")
    );
    assert_eq!(read(&log, "leftover"), "", "temporary files left behind");
    for (phase, json, want) in [
        ("freed", "dsma.json", &want_dsma),
        ("freed-base", "base.json", &want_base),
    ] {
        let rc = read(&log, &format!("{phase}.rc"));
        assert_eq!(rc.trim(), "0", "{}", read(&log, &format!("{phase}.err")));
        assert_eq!(
            &read(&log, json),
            want,
            "{phase}: resumed results differ from the uninterrupted run"
        );
    }
}
