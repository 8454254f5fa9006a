//! Segmentation-model plugins: a factory generic over the burn backend, registered once.
//!
//! burn models are generic over `B: Backend`, and generic code cannot sit behind a `dyn` pointer or a C
//! boundary. So a model plugin implements [`ModelFactory`] (with a generic associated `Model<B>`), and
//! registers with [`crate::register_model!`], which submits two registrations: [`model_info`] (name,
//! parameters, checks; backend-free, listed by the plugin registry) and
//! `runner::registration::ModelRegistration::of`, a `const fn` *in core* that instantiates the
//! probe and the trainer once per backend this build contains — `Flex` (CPU) always, `Cuda` when
//! core's `cuda` feature is on, `LibTorch` when its `tch` feature is. The plugin never names a backend and cannot forget one; this module
//! knows neither the runner nor the registry's lookups.

use burn::backend::Autodiff;
use burn::module::{HasAutodiffModule, Module};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
#[cfg(feature = "cuda")]
use dsma_kernels::CudaBackend;
#[cfg(feature = "tch")]
use dsma_kernels::TchBackend;
use dsma_kernels::{CpuBackend, KernelBackend};
use serde::Serialize;

use dsma_data::error::{CoreError, Result};
use dsma_plugin::params::{defaults_of, parse_params, PluginParams};
use dsma_plugin::registry::ModelInfoRegistration;

use dsma_plugin::backend::{not_built, BackendKind};

/// Runs backend-generic code on the backend a [`BackendKind`] names (the enum lives in the plugin
/// layer, which has no burn; this is where its backends become types).
pub trait BackendDispatch {
    /// Calls `visitor` with this backend's type and default device.
    fn dispatch<V: BackendVisitor>(self, visitor: V) -> Result<V::Output>;
}

impl BackendDispatch for BackendKind {
    fn dispatch<V: BackendVisitor>(self, visitor: V) -> Result<V::Output> {
        let gpu = self.is_gpu();
        match self {
            BackendKind::Cpu => Ok(visitor.visit::<CpuBackend>(CpuBackend::run_device(gpu))),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(visitor.visit::<CudaBackend>(CudaBackend::run_device(gpu))),
            #[cfg(feature = "tch")]
            BackendKind::Tch | BackendKind::TchCuda => {
                Ok(visitor.visit::<TchBackend>(TchBackend::run_device(gpu)))
            }
            #[allow(unreachable_patterns)]
            other => Err(not_built(other)),
        }
    }
}

/// Code generic over the backend, run on a backend chosen at run time ([`BackendKind::dispatch`]).
pub trait BackendVisitor {
    /// What the code returns.
    type Output;
    /// Runs on backend `B` and `device`.
    fn visit<B: KernelBackend>(self, device: B::Device) -> Self::Output;
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
    type Model<B: KernelBackend>: SegmentationModel<B>
        + HasAutodiffModule<Autodiff<B>, TrainModule: SegmentationModel<Autodiff<B>>>;
    /// Checks parameters that deserialized but are out of range (names the field).
    fn validate(_params: &Self::Params) -> Result<()> {
        Ok(())
    }
    /// Input and output channels the parameters build (`None`: not a parameter). The runner
    /// feeds 4 modalities and trains 3 region channels (WT, TC, ET), so `check` refuses others.
    fn channels(_params: &Self::Params) -> Option<[usize; 2]> {
        None
    }
    /// Builds the network on `device`.
    fn build<B: KernelBackend>(params: &Self::Params, device: &B::Device)
        -> Result<Self::Model<B>>;
}

/// Held while one autodiff step runs (forward, backward, optimizer update). burn-autodiff 0.21
/// keeps one process-wide graph registry, and two threads building and differentiating graphs at
/// once gave results that differ in the last bits (HA-GAN fits side by side in one process: 4 of
/// 28 runs under load, 0 of 28 one at a time); taking steps one at a time keeps a run and a
/// generator fit that overlap (the generator lane) bit-reproducible.
pub fn autodiff_step() -> std::sync::MutexGuard<'static, ()> {
    static STEP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    STEP.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds `F`'s network from `params` on `device` and loads the safetensors `bytes` (read from
/// `file`, named in errors) into it.
pub fn load_model<F: ModelFactory, B: KernelBackend>(
    params: &F::Params,
    bytes: &[u8],
    file: &std::path::Path,
    device: &B::Device,
) -> Result<F::Model<B>> {
    crate::checkpoint::module_state::load_module_bytes(F::build::<B>(params, device)?, bytes, file)
}

/// What a probe of a model reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelProbe {
    /// Trainable parameters.
    pub parameters: usize,
    /// Output shape for the probed input.
    pub output_shape: [usize; 5],
}

/// Builds `F`'s model on `B` (its GPU device when `gpu`) and runs one forward pass on zeros of
/// `input_shape`.
pub fn probe<F: ModelFactory, B: KernelBackend>(
    params: &serde_json::Value,
    input_shape: [usize; 5],
    gpu: bool,
) -> Result<ModelProbe> {
    let p: F::Params = parse_params(F::NAME, params)?;
    F::validate(&p)?;
    let device = B::run_device(gpu);
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
    let p = parse_params::<F::Params>(F::NAME, params)?;
    F::validate(&p)?;
    if let Some([input, output]) = F::channels(&p) {
        for (field, got, want, what) in [
            (
                "in_channels",
                input,
                4,
                "4 modalities (FLAIR, T1, T1ce, T2)",
            ),
            ("out_channels", output, 3, "3 region channels (WT, TC, ET)"),
        ] {
            if got != want {
                return Err(CoreError::param(
                    F::NAME,
                    field,
                    format!("{got}; the runner needs {want}: {what}"),
                ));
            }
        }
    }
    Ok(())
}

/// The backend-free registration of `F`: what `dsma plugins`, parameter checks and parameter counts
/// need, collected by the plugin registry (submitted by [`crate::register_model!`]).
pub const fn model_info<F: ModelFactory>() -> ModelInfoRegistration {
    ModelInfoRegistration {
        name: F::NAME,
        version: F::VERSION,
        description: F::DESCRIPTION,
        defaults: defaults_of::<F::Params>,
        docs: F::Params::docs,
        check: check::<F>,
        parameter_count: parameter_count::<F>,
    }
}
