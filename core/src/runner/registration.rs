//! The training entry points of model plugins: one [`ModelRegistration`] per model, with the probe
//! and the two-stage trainer instantiated for every backend in this build. The runner owns this
//! (it instantiates its own trainer); [`crate::model`] knows nothing of it.

use crate::error::Result;
#[cfg(not(feature = "cuda"))]
use crate::model::no_cuda;
#[cfg(feature = "cuda")]
use crate::model::CudaBackend;
use crate::model::{probe, BackendKind, CpuBackend, ModelFactory, ModelProbe};

/// Entry points of a model, instantiated for every backend in this build.
pub type ProbeFn = fn(&serde_json::Value, [usize; 5]) -> Result<ModelProbe>;
/// Trains and evaluates one run of an experiment (see [`crate::runner`]).
pub type TrainFn = fn(
    &crate::runner::RunJob<'_>,
    &mut dyn crate::runner::RunObserver,
) -> Result<crate::runner::RunOutcome>;

/// Labels images with the EMA teacher of a run's latest checkpoint (`dsma synth --teacher`):
/// the experiment, the run's checkpoint folder, the images, their label convention.
pub type LabelFn = fn(
    &crate::runner::config::Experiment,
    &std::path::Path,
    &[ndarray::Array4<f32>],
    crate::labels::LabelConvention,
) -> Result<Vec<ndarray::Array3<u8>>>;

/// The training-side registration of one model plugin (its name, parameters and checks are in
/// [`crate::plugin::registry::ModelInfoRegistration`]).
pub struct ModelRegistration {
    /// Registered name.
    pub name: &'static str,
    /// Probe on the CPU backend.
    pub probe_cpu: ProbeFn,
    /// Probe on the CUDA backend.
    #[cfg(feature = "cuda")]
    pub probe_cuda: ProbeFn,
    /// Training on the CPU backend.
    pub train_cpu: TrainFn,
    /// Training on the CUDA backend.
    #[cfg(feature = "cuda")]
    pub train_cuda: TrainFn,
    /// [`LabelFn`] on the CPU.
    pub label_cpu: LabelFn,
    /// [`LabelFn`] on the GPU.
    #[cfg(feature = "cuda")]
    pub label_cuda: LabelFn,
}

impl ModelRegistration {
    /// The registration of model factory `F`, with entry points for every compiled backend.
    pub const fn of<F: ModelFactory>() -> Self {
        ModelRegistration {
            name: F::NAME,
            probe_cpu: probe::<F, CpuBackend>,
            #[cfg(feature = "cuda")]
            probe_cuda: probe::<F, CudaBackend>,
            train_cpu: crate::runner::train::train::<F, CpuBackend>,
            #[cfg(feature = "cuda")]
            train_cuda: crate::runner::train::train::<F, CudaBackend>,
            label_cpu: crate::runner::train::teacher_labels::<F, CpuBackend>,
            #[cfg(feature = "cuda")]
            label_cuda: crate::runner::train::teacher_labels::<F, CudaBackend>,
        }
    }

    /// Probes the model on `backend`.
    pub fn probe(
        &self,
        backend: BackendKind,
        params: &serde_json::Value,
        input_shape: [usize; 5],
    ) -> Result<ModelProbe> {
        match backend {
            BackendKind::Cpu => (self.probe_cpu)(params, input_shape),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => (self.probe_cuda)(params, input_shape),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(no_cuda()),
        }
    }

    /// The training entry point for `backend`.
    pub fn trainer(&self, backend: BackendKind) -> Result<TrainFn> {
        match backend {
            BackendKind::Cpu => Ok(self.train_cpu),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(self.train_cuda),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(no_cuda()),
        }
    }
}

impl ModelRegistration {
    /// The teacher-labelling function for `backend`.
    pub fn labeller(&self, backend: BackendKind) -> Result<LabelFn> {
        match backend {
            BackendKind::Cpu => Ok(self.label_cpu),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(self.label_cuda),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(no_cuda()),
        }
    }
}

inventory::collect!(ModelRegistration);

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
    let mut all: Vec<_> = inventory::iter::<ModelRegistration>().collect();
    all.sort_by_key(|m| m.name);
    all
}

/// The model called `name`, or an "unknown model" error with a suggestion.
pub fn model(name: &str) -> Result<&'static ModelRegistration> {
    let all = models();
    all.iter().find(|m| m.name == name).copied().ok_or_else(|| {
        crate::plugin::registry::unknown(
            "model",
            name,
            all.iter().map(|m| m.name.to_string()).collect(),
        )
    })
}
