//! dsma-kernels' integration tests, one binary: the CPU kernels against burn's ops and finite
//! differences, the fused activations against burn's; with the `tch` feature, libtorch's
//! convolution gradients against the CPU backend.

mod against_burn;
mod element_ops;
#[cfg(feature = "tch")]
mod tch_ops;
