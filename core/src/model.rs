//! Segmentation-model plugins: a factory generic over the burn backend, registered once.
//!
//! burn models are generic over `B: Backend`, and generic code cannot sit behind a `dyn` pointer or a C
//! boundary. So a model plugin implements [`ModelFactory`] (with a generic associated `Model<B>`), and
//! registers with [`crate::register_model!`], which stores [`ModelRegistration::of`]: a `const fn` *in
//! core* that instantiates core's generic entry points once per backend this build contains — `Flex`
//! (CPU) always, `Cuda` when core's `cuda` feature is on. Because the instantiation happens in core, the
//! plugin never names a backend and cannot forget one. The runner picks a [`BackendKind`] at the top and
//! calls the matching function pointer.

use burn::backend::Autodiff;
use burn::module::{HasAutodiffModule, Module};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::Serialize;

use crate::error::Result;
use crate::plugin::params::{defaults_of, parse_params, ParamDoc, PluginParams};

/// The CPU backend (burn-flex with rayon and SIMD).
pub type CpuBackend = burn::backend::Flex;
/// The CUDA backend (burn-cuda), when built with the `cuda` feature.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// Which backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex on the CPU.
    #[default]
    Cpu,
    /// burn-cuda on an NVIDIA GPU (needs the `cuda` feature).
    Cuda,
}

impl BackendKind {
    /// Whether this binary was built with the backend.
    pub fn available(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl BackendKind {
    /// The backend named by environment variable `var` (`cpu` when unset or empty); tests read
    /// `DSMA_TEST_BACKEND` and benches `DSMA_BENCH_BACKEND` through this.
    pub fn from_env(var: &str) -> Result<Self> {
        let value = std::env::var(var).unwrap_or_default();
        let kind = match value.trim() {
            "" | "cpu" => BackendKind::Cpu,
            "cuda" => BackendKind::Cuda,
            other => {
                return Err(crate::error::CoreError::invalid(
                    var,
                    format!("`{other}`; expected cpu or cuda"),
                ))
            }
        };
        if !kind.available() {
            return Err(crate::error::CoreError::invalid(
                var,
                format!("{value}: this binary was built without the `{value}` feature"),
            ));
        }
        Ok(kind)
    }

    /// Calls `visitor` with this backend's type and default device.
    pub fn dispatch<V: BackendVisitor>(self, visitor: V) -> Result<V::Output> {
        match self {
            BackendKind::Cpu => Ok(visitor.visit::<CpuBackend>(Default::default())),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(visitor.visit::<CudaBackend>(Default::default())),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(no_cuda()),
        }
    }
}

/// Code generic over the backend, run on a backend chosen at run time ([`BackendKind::dispatch`]).
pub trait BackendVisitor {
    /// What the code returns.
    type Output;
    /// Runs on backend `B` and `device`.
    fn visit<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// A segmentation network: `[N, 4, D, H, W]` images → `[N, 3, D, H, W]` logits (WT, TC, ET).
pub trait SegmentationModel<B: Backend>: Module<B> {
    /// Logits of the three region channels.
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5>;
    /// Every spatial input size must be a multiple of this (e.g. 2^depth for a U-Net).
    fn size_divisor(&self) -> usize {
        1
    }
    /// The one input size (x, y, z) the network accepts, for networks built for a fixed size.
    fn input_size(&self) -> Option<[usize; 3]> {
        None
    }
}

/// A model plugin: builds its network on any backend from typed parameters.
pub trait ModelFactory: Send + Sync + 'static {
    /// Registered name.
    const NAME: &'static str;
    /// Plugin version.
    const VERSION: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Parameter struct.
    type Params: PluginParams;
    /// The network on backend `B`; a `#[derive(Module)]` struct generic over `B` satisfies the
    /// autodiff bound (its training copy is the same struct on `Autodiff<B>`).
    type Model<B: Backend>: SegmentationModel<B>
        + HasAutodiffModule<Autodiff<B>, TrainModule: SegmentationModel<Autodiff<B>>>;
    /// Checks parameters that deserialized but are out of range (names the field).
    fn validate(_params: &Self::Params) -> Result<()> {
        Ok(())
    }
    /// Builds the network on `device`.
    fn build<B: Backend>(params: &Self::Params, device: &B::Device) -> Result<Self::Model<B>>;
}

/// What a probe of a model reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelProbe {
    /// Trainable parameters.
    pub parameters: usize,
    /// Output shape for the probed input.
    pub output_shape: [usize; 5],
}

/// Builds `F`'s model on `B` and runs one forward pass on zeros of `input_shape`.
pub fn probe<F: ModelFactory, B: Backend>(
    params: &serde_json::Value,
    input_shape: [usize; 5],
) -> Result<ModelProbe> {
    let p: F::Params = parse_params(F::NAME, params)?;
    F::validate(&p)?;
    let device = B::Device::default();
    let model = F::build::<B>(&p, &device)?;
    let out = model.forward(Tensor::<B, 5>::zeros(input_shape, &device));
    Ok(ModelProbe {
        parameters: model.num_params(),
        output_shape: out.dims(),
    })
}

/// Builds `F`'s model on the CPU backend and counts its trainable parameters (no forward pass).
pub fn parameter_count<F: ModelFactory>(params: &serde_json::Value) -> Result<usize> {
    let p: F::Params = parse_params(F::NAME, params)?;
    F::validate(&p)?;
    Ok(F::build::<CpuBackend>(&p, &Default::default())?.num_params())
}

fn check<F: ModelFactory>(params: &serde_json::Value) -> Result<()> {
    F::validate(&parse_params::<F::Params>(F::NAME, params)?)
}

/// Entry points of a model, instantiated for every backend in this build.
pub type ProbeFn = fn(&serde_json::Value, [usize; 5]) -> Result<ModelProbe>;
/// Trains and evaluates one run of an experiment (see [`crate::runner`]).
pub type TrainFn = fn(
    &crate::runner::RunJob<'_>,
    &mut dyn crate::runner::RunObserver,
) -> Result<crate::runner::RunOutcome>;

/// The static registration of one model plugin.
pub struct ModelRegistration {
    /// Registered name.
    pub name: &'static str,
    /// Plugin version.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Default parameters.
    pub defaults: fn() -> serde_json::Value,
    /// Parameter documentation.
    pub docs: fn() -> Vec<ParamDoc>,
    /// Parses and validates parameters.
    pub check: fn(&serde_json::Value) -> Result<()>,
    /// Trainable parameters for given parameters.
    pub parameter_count: fn(&serde_json::Value) -> Result<usize>,
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
}

impl ModelRegistration {
    /// The registration of model factory `F`, with entry points for every compiled backend.
    pub const fn of<F: ModelFactory>() -> Self {
        ModelRegistration {
            name: F::NAME,
            version: F::VERSION,
            description: F::DESCRIPTION,
            defaults: defaults_of::<F::Params>,
            docs: F::Params::docs,
            check: check::<F>,
            parameter_count: parameter_count::<F>,
            probe_cpu: probe::<F, CpuBackend>,
            #[cfg(feature = "cuda")]
            probe_cuda: probe::<F, CudaBackend>,
            train_cpu: crate::runner::train::train::<F, CpuBackend>,
            #[cfg(feature = "cuda")]
            train_cuda: crate::runner::train::train::<F, CudaBackend>,
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

#[cfg(not(feature = "cuda"))]
fn no_cuda() -> crate::error::CoreError {
    crate::error::CoreError::invalid(
        "train.backend",
        "cuda: this dsma was built without the `cuda` feature (rebuild with --features cuda)",
    )
}

inventory::collect!(ModelRegistration);

/// Registers a model factory type (implements [`ModelFactory`]).
#[macro_export]
macro_rules! register_model {
    ($t:ty) => {
        $crate::inventory::submit! { $crate::model::ModelRegistration::of::<$t>() }
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
