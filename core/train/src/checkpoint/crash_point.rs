//! Test-only crash points: with `DSMA_TEST_ABORT_AT=<point>:<n>` the process aborts (as `kill -9`
//! would: no destructors, no flushing) at that point, so crash-and-resume tests stop where they
//! choose instead of racing a signal against the run. Unset, every check is one cached lookup.

use std::sync::OnceLock;

/// Where a run can be made to crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After epoch `n`'s checkpoint and logs are written (`epoch:n`, 1-based).
    Epoch,
    /// Inside the save of checkpoint `epoch-n`: files written to the temporary folder, not yet
    /// published (`checkpoint:n`).
    Checkpoint,
    /// During an evaluation, after test case `n` is scored (`evaluate:n`, 0-based).
    Evaluate,
    /// After prediction `n` is written (`export:n`, 0-based).
    Export,
    /// After a generator fit's checkpoint of step `n` is published (`fit:n`).
    FitStep,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            CrashPoint::Epoch => "epoch",
            CrashPoint::Checkpoint => "checkpoint",
            CrashPoint::Evaluate => "evaluate",
            CrashPoint::Export => "export",
            CrashPoint::FitStep => "fit",
        }
    }
}

/// Aborts the process if `DSMA_TEST_ABORT_AT` names this point and `n`.
pub fn hit(point: CrashPoint, n: usize) {
    static WANTED: OnceLock<Option<(String, usize)>> = OnceLock::new();
    let wanted = WANTED.get_or_init(|| {
        let v = std::env::var("DSMA_TEST_ABORT_AT").ok()?;
        let (name, n) = v.split_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    });
    if wanted
        .as_ref()
        .is_some_and(|(name, at)| name == point.name() && *at == n)
    {
        std::process::abort();
    }
}
