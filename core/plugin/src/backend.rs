//! Which compute backend a run uses. Plain data here (the plugin layer has no burn); core turns it
//! into backend types (`dsma_core::model::BackendDispatch`). It lives in this layer so a
//! [`crate::TrainableSynthesizer`] can be told where to fit and sample.

use serde::{Deserialize, Serialize};

use dsma_data::error::{CoreError, Result};

/// Which backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex on the CPU.
    #[default]
    Cpu,
    /// burn-cuda on an NVIDIA GPU (needs the `cuda` feature).
    Cuda,
}

impl BackendKind {
    /// Whether this binary was built with the backend (`dsma-core/cuda` turns on this crate's
    /// `cuda` feature).
    pub fn available(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// `Ok` when this binary has the backend, else the error that says how to rebuild.
    pub fn require(self) -> Result<()> {
        if self.available() {
            Ok(())
        } else {
            Err(no_cuda())
        }
    }

    /// The backend named by environment variable `var` (`cpu` when unset or empty); tests read
    /// `DSMA_TEST_BACKEND` and benches `DSMA_BENCH_BACKEND` through this.
    pub fn from_env(var: &str) -> Result<Self> {
        let value = std::env::var(var).unwrap_or_default();
        let kind = match value.trim() {
            "" | "cpu" => BackendKind::Cpu,
            "cuda" => BackendKind::Cuda,
            other => {
                return Err(CoreError::invalid(
                    var,
                    format!("`{other}`; expected cpu or cuda"),
                ))
            }
        };
        if !kind.available() {
            return Err(CoreError::invalid(
                var,
                format!("{value}: this binary was built without the `{value}` feature"),
            ));
        }
        Ok(kind)
    }
}

/// The error of asking for `cuda` in a build without it.
pub fn no_cuda() -> CoreError {
    CoreError::invalid(
        "train.backend",
        "cuda: this dsma was built without the `cuda` feature (rebuild with --features cuda)",
    )
}
