//! Helpers of the CLI tests: running the `dsma` binary, tiny experiments, and the data layer's
//! fixtures (hand-built NIfTI files, phantom datasets).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

#[path = "../../core/data/tests/data/fixtures.rs"]
mod fixtures;
pub use fixtures::*;

/// Held by the tests that train in this process: burn's backend RNG is global, so two of them at
/// once would interleave their seeded initialisations (tests that run the `dsma` binary need no lock).
pub fn in_process() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the `dsma` binary; returns (exit code, stdout, stderr).
pub fn dsma(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(args)
        .output()
        .expect("run dsma");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tiny experiment (phantom 24×24×16, U-Net base 4 depth 2, 16³ patches).
pub fn tiny_experiment(dir: &Path, stage1: usize, stage2: usize, rows: &str) -> PathBuf {
    let phantom = dir.join("phantom");
    let text = format!(
        "name: tiny
datasets:
  - name: Phantom
    kind: phantom
    path: {}
    phantom: {{cases: 6, size: [24, 24, 16], seed: 3}}
model: {{name: unet3d, params: {{base_width: 4, depth: 2}}}}
train:
  stage1: {{epochs: {stage1}, lr: 3.0e-3}}
  stage2: {{epochs: {stage2}, lr: 1.0e-4}}
  batch: 2
  patch: {{size: [16, 16, 16], tumour_share: 1.0}}
  checkpoint_every: 1
eval:
  window: {{patch: [16, 16, 16], overlap: 0.25}}
rows:
{rows}",
        phantom.display()
    );
    let path = dir.join("tiny.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `exp` into `out` with the test-only hook `DSMA_TEST_ABORT_AT=point` (the process aborts
/// there, as `kill -9` would, with no timing race); returns its exit status.
pub fn run_aborted_at(exp: &str, out: &Path, point: &str) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(["run", exp, "--out", out.to_str().unwrap(), "--quiet"])
        // A shared root inside `out`, so an uninterrupted run beside it is not found finished.
        .args(["--cache", out.join("cache").to_str().unwrap()])
        .env("DSMA_TEST_ABORT_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// `dsma run exp --out out --cache out/cache ARGS`: a shared root of its own inside `out`, so an
/// identical run beside it (an uninterrupted reference) is not found finished.
pub fn run_own_root(exp: &str, out: &Path, args: &[&str]) -> (i32, String, String) {
    let cache = out.join("cache");
    let mut all = vec!["run", exp, "--out", out.to_str().unwrap()];
    all.extend(["--cache", cache.to_str().unwrap()]);
    all.extend_from_slice(args);
    dsma(&all)
}
