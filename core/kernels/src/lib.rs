//! dsma's CPU kernels for the models' hot ops — 3-D convolution (`conv_kernels`: implicit GEMM
//! over row tiles, deterministic) and group/instance normalisation (`norm_kernels`) — and the
//! [`KernelBackend`] trait through which the models reach them; the backend types of the build
//! ([`CpuBackend`], `CudaBackend`, `TchBackend`) and `dsma doctor`'s checks of them ([`doctor`]).
//!
//! burn's `Backend` trait cannot be re-implemented for a foreign backend and Rust has no
//! specialisation, so the models call these ops through [`KernelBackend`], implemented explicitly
//! for every backend of the build: `Flex` with the kernels here, `Autodiff<B>` for any
//! `B: KernelBackend` with a backward pass that calls `B`'s gradient ops, and `Cuda` delegating to
//! burn's ops. Models write `self.conv.run(x)` ([`ConvForward`]) and `self.norm.run(x)`
//! ([`NormForward`]) on burn's own modules.

pub mod activation_kernels;
pub mod autodiff;
pub mod backend;
pub mod channel_norm;
pub mod conv_kernels;
pub mod doctor;
pub mod flex;
pub mod gate_kernels;
pub mod heap;
pub mod nn;
pub mod norm;
pub mod norm_generic;
pub mod norm_kernels;
pub mod parallel_fill;
#[cfg(feature = "tch")]
pub mod tch_ops;
#[cfg(test)]
mod thread_count;

#[cfg(feature = "cuda")]
pub use backend::CudaBackend;
#[cfg(feature = "tch")]
pub use backend::TchBackend;
pub use backend::{cpu_kernels, with_cpu_kernels, CpuBackend, CpuKernels, KernelBackend};
pub use nn::ConvForward;
pub use norm::NormForward;
pub use norm_kernels::Activation;

/// GELU (erf form, burn's `activation::gelu`) through [`KernelBackend::gelu_erf`], any rank.
pub fn gelu<B: KernelBackend, const D: usize>(
    x: burn::tensor::Tensor<B, D>,
) -> burn::tensor::Tensor<B, D> {
    use burn::tensor::{Tensor, TensorPrimitive};
    Tensor::from_primitive(TensorPrimitive::Float(B::gelu_erf(
        x.into_primitive().tensor(),
    )))
}

/// `tensors` concatenated along the channels (dim 1) through [`KernelBackend::cat_channels`].
pub fn cat_channels<B: KernelBackend>(
    tensors: Vec<burn::tensor::Tensor<B, 5>>,
) -> burn::tensor::Tensor<B, 5> {
    use burn::tensor::{Tensor, TensorPrimitive};
    let prims = tensors
        .into_iter()
        .map(|t| t.into_primitive().tensor())
        .collect();
    Tensor::from_primitive(TensorPrimitive::Float(B::cat_channels(prims)))
}

/// `x · g` with the one-channel gate `g` (`[N, 1, D, H, W]`) applied to every channel of `x`
/// (`[N, C, D, H, W]`), through [`KernelBackend::gate_channels`].
pub fn gate_channels<B: KernelBackend>(
    x: burn::tensor::Tensor<B, 5>,
    g: burn::tensor::Tensor<B, 5>,
) -> burn::tensor::Tensor<B, 5> {
    use burn::tensor::{Tensor, TensorPrimitive};
    let ([n, _, d, h, w], gate) = (x.dims(), g.dims());
    assert_eq!(
        gate,
        [n, 1, d, h, w],
        "gate_channels: the gate must be [N, 1, D, H, W] of x"
    );
    let (x, g) = (x.into_primitive().tensor(), g.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(B::gate_channels(x, g)))
}

/// `x` laid out contiguously through [`KernelBackend::contiguous`] (same values, same graph).
pub fn contiguous<B: KernelBackend>(x: burn::tensor::Tensor<B, 5>) -> burn::tensor::Tensor<B, 5> {
    use burn::tensor::{Tensor, TensorPrimitive};
    Tensor::from_primitive(TensorPrimitive::Float(B::contiguous(
        x.into_primitive().tensor(),
    )))
}
