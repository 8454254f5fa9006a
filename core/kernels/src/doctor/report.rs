//! What `dsma doctor` reports: one [`Check`] per line, and the backends that passed.

use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works, with a caveat worth reading.
    Warn,
    /// Does not work; `fix` says what to do.
    Fail,
    /// Not checked (not in this build, or an earlier check failed).
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The backend or component the line is about (`cpu`, `cuda`, `tch`).
    pub backend: &'static str,
    /// What was checked.
    pub item: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn new(
        backend: &'static str,
        item: &'static str,
        status: Status,
        detail: String,
    ) -> Self {
        Check {
            backend,
            item,
            status,
            detail,
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Everything `dsma doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Backends that passed every check, including the numeric self-check.
    pub usable: Vec<&'static str>,
}
