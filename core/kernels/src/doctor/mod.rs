//! `dsma doctor`: which backends this build can run on here, and for each one that cannot, why not
//! and what fixes it.
//!
//! What burn-cuda 0.21 needs at run time (read from cubecl-cuda 0.10 and cudarc 0.19): `libcuda` (the
//! driver, loaded dynamically), `libnvrtc` no newer than the driver (kernels are compiled at run
//! time; a newer NVRTC emits PTX the driver rejects with `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`), and
//! the CUDA toolkit headers (`CUDA_PATH`, else `/usr/local/cuda`, `/opt/cuda`, or `/usr` when
//! `/usr/bin/nvcc` exists; without them cubecl panics "CUDA installation not found"). The bindings
//! version is fixed when dsma is built (`CUDARC_CUDA_VERSION`, else `nvcc --version`, else 13.4).
//! Every probe here loads libraries by hand, so a missing piece is reported instead of panicking, and
//! the GPU self-check runs only when every piece is present.

pub mod cuda;
pub mod ops;
pub mod probe;
pub mod report;
mod torch;

pub use torch::{LIBTORCH_SOURCE, TORCH_VERSION};

use cuda::cuda_checks;
use probe::conv_probe;
use report::{Check, Report, Status};

/// Runs every check.
pub fn diagnose() -> Report {
    let mut checks = vec![Check::new(
        "cpu",
        "backend",
        Status::Ok,
        "burn-flex (always built in)".into(),
    )];
    let reference =
        std::panic::catch_unwind(|| conv_probe::<crate::backend::CpuBackend>(&Default::default()));
    let mut usable = Vec::new();
    match &reference {
        Ok(p) => {
            checks.push(Check::new(
                "cpu",
                "conv3d self-check",
                Status::Ok,
                format!(
                    "{} values computed (reference for the GPUs)",
                    p.values.len()
                ),
            ));
            usable.push("cpu");
        }
        Err(_) => checks.push(Check::new(
            "cpu",
            "conv3d self-check",
            Status::Fail,
            "the CPU convolution panicked".into(),
        )),
    }
    let cuda_ok = cuda_checks(&mut checks, reference.as_ref().ok());
    if cuda_ok {
        usable.push("cuda");
    }
    torch::torch_checks(&mut checks, reference.as_ref().ok(), &mut usable);
    Report { checks, usable }
}
