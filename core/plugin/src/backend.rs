//! Which compute backend a run uses. Plain data here (the plugin layer has no burn); core turns it
//! into backend types (`dsma_train::model::BackendDispatch`). It lives in this layer so a
//! [`crate::TrainableSynthesizer`] can be told where to fit and sample.

use serde::{Deserialize, Serialize};

use dsma_data::error::{CoreError, Result};

/// Which backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BackendKind {
    /// burn-flex on the CPU, with dsma's convolution and norm kernels.
    #[default]
    #[serde(rename = "cpu")]
    Cpu,
    /// burn-cuda on an NVIDIA GPU (needs the `cuda` feature).
    #[serde(rename = "cuda")]
    Cuda,
    /// burn-tch on the CPU: libtorch's own kernels (oneDNN; needs the `tch` feature).
    #[serde(rename = "tch")]
    Tch,
    /// burn-tch on CUDA device 0: libtorch's cuDNN kernels (needs the `tch` feature and a
    /// CUDA build of libtorch).
    #[serde(rename = "tch-cuda")]
    TchCuda,
}

/// Every backend kind, in the order `dsma doctor` lists them.
pub const ALL_BACKENDS: [BackendKind; 4] = [
    BackendKind::Cpu,
    BackendKind::Cuda,
    BackendKind::Tch,
    BackendKind::TchCuda,
];

/// The cargo feature a backend kind needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFeature {
    /// Always built.
    Always,
    /// `--features cuda`.
    Cuda,
    /// `--features tch`.
    Tch,
}

impl BackendKind {
    /// The name used in YAML, overrides and environment variables.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Tch => "tch",
            BackendKind::TchCuda => "tch-cuda",
        }
    }

    /// The cargo feature this backend needs.
    pub fn feature(self) -> BackendFeature {
        match self {
            BackendKind::Cpu => BackendFeature::Always,
            BackendKind::Cuda => BackendFeature::Cuda,
            BackendKind::Tch | BackendKind::TchCuda => BackendFeature::Tch,
        }
    }

    /// Whether the backend runs on a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, BackendKind::Cuda | BackendKind::TchCuda)
    }

    /// Whether this binary was built with the backend (`dsma-train/cuda` and `dsma-train/tch` turn
    /// on this crate's features of the same names).
    pub fn available(self) -> bool {
        match self.feature() {
            BackendFeature::Always => true,
            BackendFeature::Cuda => cfg!(feature = "cuda"),
            BackendFeature::Tch => cfg!(feature = "tch"),
        }
    }

    /// `Ok` when this binary has the backend, else the error that says how to rebuild.
    pub fn require(self) -> Result<()> {
        if self.available() {
            Ok(())
        } else {
            Err(not_built(self))
        }
    }

    /// The backend called `name` (`cpu`, `cuda`, `tch`, `tch-cuda`).
    pub fn parse(name: &str) -> Option<Self> {
        ALL_BACKENDS.into_iter().find(|k| k.name() == name)
    }

    /// The backend named by environment variable `var` (`cpu` when unset or empty); tests read
    /// `DSMA_TEST_BACKEND` and benches `DSMA_BENCH_BACKEND` through this.
    pub fn from_env(var: &str) -> Result<Self> {
        let value = std::env::var(var).unwrap_or_default();
        let value = value.trim();
        let kind = if value.is_empty() {
            BackendKind::Cpu
        } else {
            Self::parse(value).ok_or_else(|| {
                CoreError::invalid(
                    var,
                    format!("`{value}`; expected one of cpu, cuda, tch, tch-cuda"),
                )
            })?
        };
        if !kind.available() {
            return Err(CoreError::invalid(var, not_built_message(kind)));
        }
        Ok(kind)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn not_built_message(kind: BackendKind) -> String {
    match kind.feature() {
        BackendFeature::Always => format!("{kind}: always built"),
        BackendFeature::Cuda => format!(
            "{kind}: this dsma was built without the `cuda` feature (rebuild with --features cuda)"
        ),
        BackendFeature::Tch => format!(
            "{kind}: this dsma was built without the `tch` feature (rebuild with --features tch \
             and LIBTORCH_USE_PYTORCH=1 in an environment where `import torch` works; see the \
             README's GPU section)"
        ),
    }
}

/// The error of asking for a backend this build does not contain.
pub fn not_built(kind: BackendKind) -> CoreError {
    CoreError::invalid("train.backend", not_built_message(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for kind in ALL_BACKENDS {
            let json = serde_json::to_string(&kind).expect("serialise");
            assert_eq!(json, format!("\"{}\"", kind.name()));
            let back: BackendKind = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, kind);
            assert_eq!(BackendKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(BackendKind::parse("tchcuda"), None);
    }

    #[test]
    fn missing_backends_name_their_feature() {
        for kind in [BackendKind::Cuda, BackendKind::Tch, BackendKind::TchCuda] {
            if kind.available() {
                continue;
            }
            let message = not_built(kind).to_string();
            let flag = match kind.feature() {
                BackendFeature::Cuda => "--features cuda",
                _ => "--features tch",
            };
            assert!(message.contains(flag), "{message}");
        }
    }
}
