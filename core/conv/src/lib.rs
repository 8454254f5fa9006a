//! dsma's 3-D convolution: CPU kernels written for the U-Net's shapes (implicit GEMM, deterministic)
//! and the [`ConvBackend`] trait through which the models reach them.
//!
//! burn's `Backend` trait cannot be re-implemented for a foreign backend and Rust has no
//! specialisation, so the models call convolutions through [`ConvBackend`], implemented explicitly
//! for every backend of the build: `Flex` with [`kernels`], `Autodiff<B>` for any `B: ConvBackend`
//! with a backward pass that calls `B`'s gradient kernels, and `Cuda` delegating to burn's ops.

pub mod autodiff;
pub mod backend;
pub mod kernels;
pub mod nn;

pub use backend::{cpu_conv, with_cpu_conv, ConvBackend, CpuConv};
pub use nn::ConvForward;
