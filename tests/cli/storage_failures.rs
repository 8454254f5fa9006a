//! A read-only or full output folder: `dsma run --resume` stops with a named error (the file and
//! the system's reason), leaves no temporary file behind, and once the folder is writable again the
//! last good checkpoint resumes to the same results.json as an uninterrupted run.
//!
//! The checkpoint phase fills the disk in the middle of writing the next checkpoint. The folder is a 64 MiB tmpfs mounted inside a private user and mount namespace (`unshare`), so
//! neither root nor a real full disk is needed. Where unprivileged namespaces are unavailable (some
//! distributions switch them off) the test fails saying so; `DSMA_SKIP_NAMESPACE_TESTS=1` skips it
//! there on purpose (printed), so it never passes without checking anything by accident.

use std::path::Path;
use std::process::Command;

use crate::support::{dsma, tiny_experiment};

// A row without a synthesizer: a DTSS row's resume first deletes the synthetic sets it spilled
// before the cut, which frees more than its next checkpoint takes, so the disk would never be full
// when the checkpoint is written.
const ROW: &str = "  - label: baseline\n";
const RUN: &str = "runs/phantom/baseline/rep-0";

/// The steps run inside the namespace; each phase leaves its exit code and stderr in `$LOG`.
const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o size=64m tmpfs "$MNT" || exit 90
OUT="$MNT/out"
DSMA_TEST_ABORT_AT=epoch:3 "$BIN" run "$EXP" --out "$OUT" --quiet >/dev/null 2>&1
echo $? > "$LOG/cut.rc"
phase() { "$BIN" run "$EXP" --out "$OUT" --resume --quiet >/dev/null 2> "$LOG/$1.err"; echo $? > "$LOG/$1.rc"; }
mount -o remount,ro "$MNT" && phase readonly
mount -o remount,rw "$MNT"
dd if=/dev/zero of="$MNT/filler" bs=64k >/dev/null 2>&1
phase full
rm -f "$MNT/filler"
# 96 KiB left: the small files of a resume fit, the next checkpoint (two 124 KiB networks and a
# 240 KiB optimizer state) does not.
avail=$(df --output=avail -B1 "$MNT" | tail -1)
dd if=/dev/zero of="$MNT/filler" bs=4096 count=$(( (avail - 98304) / 4096 )) >/dev/null 2>&1
phase checkpoint
find "$OUT" -name '*.tmp' > "$LOG/leftover"
rm -f "$MNT/filler"
phase freed
cp "$OUT/runs/phantom/baseline/rep-0/results.json" "$LOG/results.json"
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
    let exp = tiny_experiment(tmp.path(), 2, 2, ROW);
    let full = tmp.path().join("full");
    let (code, _, stderr) = dsma(&[
        "run",
        exp.to_str().unwrap(),
        "--out",
        full.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let want = std::fs::read_to_string(full.join(RUN).join("results.json")).unwrap();

    let (mnt, log) = (tmp.path().join("mnt"), tmp.path().join("log"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&log).unwrap();
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", SCRIPT])
        .env("MNT", &mnt)
        .env("LOG", &log)
        .env("EXP", &exp)
        .env("BIN", env!("CARGO_BIN_EXE_dsma"))
        .status()
        .unwrap();
    assert!(status.success(), "the namespace script failed: {status}");
    assert_ne!(
        read(&log, "cut.rc").trim(),
        "0",
        "the run did not reach its crash point"
    );

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
    assert_eq!(read(&log, "leftover"), "", "temporary files left behind");
    assert_eq!(
        read(&log, "freed.rc").trim(),
        "0",
        "{}",
        read(&log, "freed.err")
    );
    assert_eq!(
        read(&log, "results.json"),
        want,
        "resumed results differ from the uninterrupted run"
    );
}
