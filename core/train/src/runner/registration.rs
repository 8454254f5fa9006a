//! The training entry points of model plugins: one [`ModelRegistration`] per model, with the probe
//! and the two-stage trainer instantiated for every backend in this build. The runner owns this
//! (it instantiates its own trainer); [`crate::model`] knows nothing of it.

use crate::model::{probe, ModelFactory, ModelProbe};
use dsma_data::error::Result;
#[cfg(feature = "cuda")]
use dsma_kernels::CudaBackend;
#[cfg(feature = "tch")]
use dsma_kernels::TchBackend;
use dsma_kernels::{CpuBackend, KernelBackend};
use dsma_plugin::backend::{not_built, BackendKind};

/// Builds a model and runs one forward pass of zeros (parameters, input shape, on the GPU?).
pub type ProbeFn = fn(&serde_json::Value, [usize; 5], bool) -> Result<ModelProbe>;
/// Trains and evaluates one run of an experiment (see [`crate::runner`]).
pub type TrainFn = fn(
    &crate::runner::run_job::RunJob<'_>,
    &mut dyn crate::runner::progress::RunObserver,
) -> Result<crate::runner::run_job::RunOutcome>;

/// Labels images with the EMA teacher of a run's latest checkpoint (`dsma synth --teacher`):
/// the experiment, the run's checkpoint folder, the images, their label convention.
pub type LabelFn = fn(
    &crate::experiment::config::Experiment,
    &std::path::Path,
    &[ndarray::Array4<f32>],
    dsma_data::labels::LabelConvention,
) -> Result<Vec<ndarray::Array3<u8>>>;

/// Opens a run's model from a checkpoint folder for prediction (`dsma predict`): the experiment,
/// the checkpoint folder, whether on the GPU.
pub type OpenFn = fn(
    &crate::experiment::config::Experiment,
    &std::path::Path,
    bool,
) -> Result<crate::predict::model::OpenedModel>;

/// A model's entry points on one backend type.
pub struct BackendEntry {
    /// Probe.
    pub probe: ProbeFn,
    /// Training and evaluation of one run.
    pub train: TrainFn,
    /// Teacher labelling.
    pub label: LabelFn,
    /// Opening for prediction.
    pub open: OpenFn,
}

impl BackendEntry {
    /// The entry points of model `F` on backend `B`.
    pub const fn of<F: ModelFactory, B: KernelBackend>() -> Self {
        BackendEntry {
            probe: probe::<F, B>,
            train: crate::runner::stages::train::<F, B>,
            label: crate::runner::evaluate::teacher_labels::<F, B>,
            open: crate::predict::model::open_model::<F, B>,
        }
    }
}

/// The training-side registration of one model plugin (its name, parameters and checks are in
/// [`dsma_plugin::registry::ModelInfoRegistration`]).
pub struct ModelRegistration {
    /// Registered name.
    pub name: &'static str,
    /// On the CPU backend (burn-flex).
    pub cpu: BackendEntry,
    /// On burn-cuda.
    #[cfg(feature = "cuda")]
    pub cuda: BackendEntry,
    /// On burn-tch (both `tch` and `tch-cuda`; the device comes from the run's backend).
    #[cfg(feature = "tch")]
    pub tch: BackendEntry,
}

impl ModelRegistration {
    /// The registration of model factory `F`, with entry points for every compiled backend.
    pub const fn of<F: ModelFactory>() -> Self {
        ModelRegistration {
            name: F::NAME,
            cpu: BackendEntry::of::<F, CpuBackend>(),
            #[cfg(feature = "cuda")]
            cuda: BackendEntry::of::<F, CudaBackend>(),
            #[cfg(feature = "tch")]
            tch: BackendEntry::of::<F, TchBackend>(),
        }
    }

    /// The entry points on `backend`, or the error saying how to build them in.
    pub fn entry(&self, backend: BackendKind) -> Result<&BackendEntry> {
        match backend {
            BackendKind::Cpu => Ok(&self.cpu),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(&self.cuda),
            #[cfg(feature = "tch")]
            BackendKind::Tch | BackendKind::TchCuda => Ok(&self.tch),
            #[allow(unreachable_patterns)]
            other => Err(not_built(other)),
        }
    }

    /// Probes the model on `backend`.
    pub fn probe(
        &self,
        backend: BackendKind,
        params: &serde_json::Value,
        input_shape: [usize; 5],
    ) -> Result<ModelProbe> {
        (self.entry(backend)?.probe)(params, input_shape, backend.is_gpu())
    }

    /// The training entry point for `backend`.
    pub fn trainer(&self, backend: BackendKind) -> Result<TrainFn> {
        Ok(self.entry(backend)?.train)
    }

    /// The function that opens a checkpoint for prediction on `backend`.
    pub fn opener(&self, backend: BackendKind) -> Result<OpenFn> {
        Ok(self.entry(backend)?.open)
    }

    /// The teacher-labelling function for `backend`.
    pub fn labeller(&self, backend: BackendKind) -> Result<LabelFn> {
        Ok(self.entry(backend)?.label)
    }
}

dsma_plugin::inventory::collect!(ModelRegistration);

/// Registers a model factory type (implements [`ModelFactory`]): its backend-free info for the
/// plugin registry and its training entry points for the runner.
#[macro_export]
macro_rules! register_model {
    ($t:ty) => {
        $crate::inventory::submit! { $crate::model::model_info::<$t>() }
        $crate::inventory::submit! { $crate::runner::registration::ModelRegistration::of::<$t>() }
    };
}

/// Every registered model, sorted by name.
pub fn models() -> Vec<&'static ModelRegistration> {
    let mut all: Vec<_> = dsma_plugin::inventory::iter::<ModelRegistration>().collect();
    all.sort_by_key(|m| m.name);
    all
}

/// The model called `name`, or an "unknown model" error with a suggestion.
pub fn model(name: &str) -> Result<&'static ModelRegistration> {
    let all = models();
    all.iter().find(|m| m.name == name).copied().ok_or_else(|| {
        dsma_plugin::registry::unknown(
            "model",
            name,
            all.iter().map(|m| m.name.to_string()).collect(),
        )
    })
}
