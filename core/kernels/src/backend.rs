//! [`KernelBackend`]: the convolutions the models call, implemented for each backend of the build.
//!
//! `Flex` (in [`crate::flex`]) runs [`crate::conv_kernels`] and [`crate::norm_kernels`] (f32, groups 1, dilation 1; anything else, and every op when
//! `DSMA_CPU_KERNELS=burn` is set, goes to burn-flex's own ops or burn tensor ops). `Autodiff<B>` records one graph node
//! per convolution whose backward calls `B`'s gradient ops, so `Autodiff<Flex>` trains with the
//! project's kernels end to end. `Cuda` delegates to burn's ops.

use std::sync::OnceLock;

use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor, ModuleOps};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::norm_generic::{NormGradients, NormOutput, NormStats};
use crate::norm_kernels::Activation;

/// The 3-D convolutions and group norm of a backend, forward and gradients, in burn's
/// conventions; every method defaults to burn's own op (what Cuda uses), and a backend with its
/// own kernels overrides them
/// (`x: [N, C, D, H, W]`; conv weight `[O, C, k…]`; transposed weight `[C, O, k…]`).
pub trait KernelBackend: Backend {
    /// This backend's device for a run on a GPU (`gpu`) or on the host: the default device,
    /// unless the backend serves both (burn-tch: CUDA device 0 or the CPU).
    fn run_device(gpu: bool) -> Self::Device {
        let _ = gpu;
        Self::Device::default()
    }
    /// `conv3d(x, w) + b`.
    fn conv3d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv3d(x, weight, bias, options)
    }
    /// Gradient of `conv3d` with respect to `x`.
    fn conv3d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv3d_x_backward(x, weight, output_grad, options)
    }
    /// Gradient of `conv3d` with respect to the weight.
    fn conv3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv3d_weight_backward(x, weight, output_grad, options)
    }
    /// Transposed convolution `conv_transpose3d(x, w) + b`.
    fn conv_transpose3d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv_transpose3d(x, weight, bias, options)
    }
    /// Gradient of `conv_transpose3d` with respect to `x`.
    fn conv_transpose3d_input_grad(
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv_transpose3d_x_backward(weight, output_grad, options)
    }
    /// Gradient of `conv_transpose3d` with respect to the weight.
    fn conv_transpose3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv_transpose3d_weight_backward(x, weight, output_grad, options)
    }
    /// `x` with its values laid out contiguously (the same tensor). Backends whose element-wise
    /// ops handle any strides keep it as it is (the default); burn-flex runs a binary op whose
    /// operand is a view (a `narrow` along channels, say) element by element through a strided
    /// iterator, so `Flex` copies such a view once, at memcpy speed.
    fn contiguous(x: FloatTensor<Self>) -> FloatTensor<Self> {
        x
    }
    /// Gradient of either convolution with respect to its bias: `output_grad: [N, C, D, H, W]`
    /// summed over batch and space → `[C]`.
    fn conv_bias_grad(output_grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let dy = Tensor::<Self, 5>::from_primitive(TensorPrimitive::Float(output_grad));
        let channels = dy.dims()[1];
        dy.sum_dim(0)
            .sum_dim(2)
            .sum_dim(3)
            .sum_dim(4)
            .reshape([channels])
            .into_primitive()
            .tensor()
    }
    /// `tensors` (5-D, equal but for the channels) concatenated along the channels.
    fn cat_channels(tensors: Vec<FloatTensor<Self>>) -> FloatTensor<Self> {
        <Self as burn::tensor::ops::FloatTensorOps<Self>>::float_cat(tensors, 1)
    }
    /// `x · g` with a one-channel gate `g: [N, 1, D, H, W]` over every channel of
    /// `x: [N, C, D, H, W]` (NestedFormer's gated skips).
    fn gate_channels(x: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        gate_generic::<Self>(x, g)
    }
    /// `(dx, dg) = (dy · g, Σ_c dy · x)`, the gradients of [`KernelBackend::gate_channels`].
    fn gate_channels_grad(
        x: FloatTensor<Self>,
        g: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        gate_generic_grad::<Self>(x, g, dy)
    }
    /// GELU, the erf form (burn's `activation::gelu`), on a tensor of any rank.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as burn::tensor::ops::ActivationOps<Self>>::gelu(x)
    }
    /// `dy · GELU'(x)`, the input gradient of [`KernelBackend::gelu_erf`].
    fn gelu_erf_grad(x: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as burn::tensor::ops::ActivationOps<Self>>::gelu_backward(x, dy)
    }
    /// Group normalisation `y = act(γ·(x − μ)/√(σ² + ε) + β)` of `x: [N, C, D, H, W]` over
    /// `groups` groups of channels, the activation in the same pass; returns `y` and the
    /// per-`(n, g)` mean and `1/√(σ² + ε)` (`[N, G]`) that the backward takes. Instance
    /// normalisation is `groups = C`.
    fn group_norm_forward(
        x: FloatTensor<Self>,
        gamma: Option<FloatTensor<Self>>,
        beta: Option<FloatTensor<Self>>,
        (groups, epsilon): (usize, f64),
        act: Activation,
    ) -> NormOutput<Self> {
        crate::norm_generic::generic_forward::<Self>(x, gamma, beta, (groups, epsilon), act)
    }
    /// Gradients of [`KernelBackend::group_norm_forward`]: `(dx, dγ, dβ)` (`dγ`, `dβ` when
    /// affine); `β` and `act` as the forward had them.
    fn group_norm_backward(
        x: FloatTensor<Self>,
        (gamma, beta): (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>),
        stats: NormStats<Self>,
        output_grad: FloatTensor<Self>,
        (groups, act): (usize, Activation),
    ) -> NormGradients<Self> {
        crate::norm_generic::generic_backward::<Self>(
            x,
            (gamma, beta),
            stats,
            output_grad,
            (groups, act),
        )
    }
    /// Layer normalisation over the channel axis, `y = γ_c·(x − μ)/√(σ² + ε) + β_c` with the
    /// statistics of each voxel's channel vector (`crate::channel_norm`); returns `y` and the
    /// per-`(n, position)` mean and `1/√(σ² + ε)` (`[N, D·H·W]`).
    fn channel_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> NormOutput<Self> {
        crate::norm_generic::channel_generic_forward::<Self>(x, gamma, beta, epsilon)
    }
    /// Gradients of [`KernelBackend::channel_norm_forward`]: `(dx, dγ, dβ)`.
    fn channel_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: NormStats<Self>,
        output_grad: FloatTensor<Self>,
    ) -> NormGradients<Self> {
        crate::norm_generic::channel_generic_backward::<Self>(x, gamma, stats, output_grad)
    }
}

/// [`KernelBackend::gate_channels`] in burn tensor ops (a broadcasting product; any backend).
pub fn gate_generic<B: Backend>(x: FloatTensor<B>, g: FloatTensor<B>) -> FloatTensor<B> {
    let t = |v| Tensor::<B, 5>::from_primitive(TensorPrimitive::Float(v));
    (t(x) * t(g)).into_primitive().tensor()
}

/// [`KernelBackend::gate_channels_grad`] in burn tensor ops (any backend).
pub fn gate_generic_grad<B: Backend>(
    x: FloatTensor<B>,
    g: FloatTensor<B>,
    dy: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let t = |v| Tensor::<B, 5>::from_primitive(TensorPrimitive::Float(v));
    let (x, g, dy) = (t(x), t(g), t(dy));
    let dg = (dy.clone() * x).sum_dim(1);
    (
        (dy * g).into_primitive().tensor(),
        dg.into_primitive().tensor(),
    )
}

/// Which implementation the CPU backend uses for its convolutions and normalisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuKernels {
    /// dsma's kernels (the default).
    Dsma,
    /// burn-flex's own ops (`DSMA_CPU_KERNELS=burn`), for comparisons.
    Burn,
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<CpuKernels>> = const { std::cell::Cell::new(None) };
}

/// The CPU convolution in use: the innermost [`with_cpu_kernels`] on this thread, else
/// `DSMA_CPU_KERNELS` (`dsma` | `burn`, read once; unknown values and an unset variable mean `dsma`).
pub fn cpu_kernels() -> CpuKernels {
    static CHOICE: OnceLock<CpuKernels> = OnceLock::new();
    OVERRIDE.with(|o| o.get()).unwrap_or_else(|| {
        *CHOICE.get_or_init(|| match std::env::var("DSMA_CPU_KERNELS").as_deref() {
            Ok("burn") => CpuKernels::Burn,
            _ => CpuKernels::Dsma,
        })
    })
}

/// Runs `f` with the CPU convolutions of this thread set to `choice` (the dispatch happens on the
/// calling thread, so this covers whole forward and backward passes run inside `f`).
pub fn with_cpu_kernels<R>(choice: CpuKernels, f: impl FnOnce() -> R) -> R {
    let previous = OVERRIDE.with(|o| o.replace(Some(choice)));
    let result = f();
    OVERRIDE.with(|o| o.set(previous));
    result
}

/// The CPU backend (burn-flex with rayon and SIMD; its convolutions and norms in [`crate::flex`]).
pub type CpuBackend = burn::backend::Flex;
/// The CUDA backend (burn-cuda), when built with the `cuda` feature.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;
/// The libtorch backend (burn-tch; CPU or CUDA by device), when built with the `tch` feature.
#[cfg(feature = "tch")]
pub type TchBackend = burn_tch::LibTorch<f32>;

/// burn-cuda: burn's own ops (the trait's defaults).
#[cfg(feature = "cuda")]
impl KernelBackend for burn::backend::Cuda {}
