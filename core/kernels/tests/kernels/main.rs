//! dsma-kernels' integration tests, one binary: the CPU kernels against burn's ops and finite
//! differences; with the `tch` feature, libtorch's convolution gradients against the CPU backend.

mod against_burn;
#[cfg(feature = "tch")]
mod tch_ops;
