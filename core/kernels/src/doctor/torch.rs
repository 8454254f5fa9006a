//! The libtorch backend's checks: the Python torch a `tch` build links against, the libtorch this
//! binary loaded, and the conv3d self-check on libtorch's CPU and CUDA devices.
//!
//! burn-tch 0.21 → tch 0.22 → torch-sys 0.22: the build links the torch of the active Python
//! environment (`LIBTORCH_USE_PYTORCH=1`) or a libtorch folder (`LIBTORCH`), and refuses any torch
//! but 2.9.0 unless `LIBTORCH_BYPASS_VERSION_CHECK` is set. burn-tch always enables tch's
//! `download-libtorch`, so a build with neither variable tries to download libtorch, which fails
//! offline.

#[cfg(feature = "tch")]
use crate::backend::TchBackend;
use crate::doctor::probe::ConvProbe;
#[cfg(feature = "tch")]
use crate::doctor::probe::{panic_text, self_check, GPU_TOLERANCE};
use crate::doctor::report::{Check, Status};

/// The torch version torch-sys 0.22 builds against.
pub const TORCH_VERSION: &str = "2.9.0";

/// Where this build's libtorch came from (recorded by `core/kernels/build.rs`).
pub const LIBTORCH_SOURCE: &str = env!("DSMA_LIBTORCH_SOURCE");

/// The fix for a build without the backend.
#[cfg(not(feature = "tch"))]
const REBUILD: &str = "in a Python environment with `pip install torch==2.9.0` active: \
     LIBTORCH_USE_PYTORCH=1 cargo build --release --features tch (without LIBTORCH_USE_PYTORCH \
     or LIBTORCH, burn-tch tries to download libtorch, which fails offline)";

/// The Python interpreter torch-sys asks: `python` inside a virtual environment, else `python3`.
fn python() -> &'static str {
    if std::env::var_os("VIRTUAL_ENV").is_some() {
        "python"
    } else {
        "python3"
    }
}

/// `python -c "import torch"`: version, CUDA availability, torch's CUDA version.
pub(super) fn python_torch() -> Check {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import torch; print(torch.__version__, torch.cuda.is_available(), \
             torch.version.cuda or '-')",
        ])
        .output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            return Check::new(
                "tch",
                "python torch",
                Status::Skip,
                format!("`{} -c \"import torch\"` failed", python()),
            )
            .fix("pip install torch==2.9.0 (in a venv), then activate it to build and run");
        }
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [version, cuda, cuda_version] = parts.as_slice() else {
        return Check::new("tch", "python torch", Status::Warn, text);
    };
    let detail = format!("torch {version}, CUDA available: {cuda} (torch's CUDA {cuda_version})");
    if version.split('+').next() == Some(TORCH_VERSION) {
        Check::new("tch", "python torch", Status::Ok, detail)
    } else {
        Check::new("tch", "python torch", Status::Warn, detail).fix(format!(
            "burn-tch 0.21 (torch-sys 0.22) builds against torch {TORCH_VERSION}: \
             pip install torch=={TORCH_VERSION}, or build with LIBTORCH_BYPASS_VERSION_CHECK=1 \
             (another torch's C++ ABI may differ)"
        ))
    }
}

/// Every libtorch check; pushes `tch` / `tch-cuda` to `usable` for each that passed.
#[cfg(not(feature = "tch"))]
pub(super) fn torch_checks(
    checks: &mut Vec<Check>,
    _reference: Option<&ConvProbe>,
    _usable: &mut Vec<&'static str>,
) {
    checks.push(python_torch());
    checks.push(
        Check::new(
            "tch",
            "backend",
            Status::Skip,
            "not built in (the `tch` feature is off)".into(),
        )
        .fix(REBUILD),
    );
}

/// Every libtorch check; pushes `tch` / `tch-cuda` to `usable` for each that passed.
#[cfg(feature = "tch")]
pub(super) fn torch_checks(
    checks: &mut Vec<Check>,
    reference: Option<&ConvProbe>,
    usable: &mut Vec<&'static str>,
) {
    use burn_tch::LibTorchDevice;
    checks.push(python_torch());
    checks.push(Check::new(
        "tch",
        "backend",
        Status::Ok,
        format!("burn-tch built in; libtorch from {LIBTORCH_SOURCE}"),
    ));
    checks.push(loaded_libtorch());
    let cpu = self_check::<TchBackend>("tch", &LibTorchDevice::Cpu, reference, 1e-4);
    if cpu.status == Status::Ok {
        usable.push("tch");
    }
    checks.push(cpu);
    let (cuda, devices) = cuda_visible();
    let visible = cuda.status == Status::Ok;
    checks.push(cuda);
    if visible && devices > 0 {
        let gpu = self_check::<TchBackend>(
            "tch-cuda",
            &LibTorchDevice::Cuda(0),
            reference,
            GPU_TOLERANCE,
        );
        if gpu.status == Status::Ok {
            usable.push("tch-cuda");
        }
        checks.push(gpu);
    }
}

/// Which libtorch the dynamic loader mapped into this process, and its version (`version.py`
/// beside a pip install's `lib/`).
#[cfg(feature = "tch")]
fn loaded_libtorch() -> Check {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .map(std::path::PathBuf::from);
    let Some(lib) = lib else {
        return Check::new(
            "tch",
            "libtorch",
            Status::Warn,
            "libtorch_cpu.so is not among this process's mapped files (not Linux, or linked \
             statically)"
                .into(),
        );
    };
    let version = lib
        .parent()
        .and_then(|d| d.parent())
        .and_then(|d| std::fs::read_to_string(d.join("version.py")).ok())
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|s| s.trim_matches(['\'', '"']).to_string())
        })
        .unwrap_or_else(|| "unknown version".into());
    Check::new(
        "tch",
        "libtorch",
        Status::Ok,
        format!("{} (torch {version})", lib.display()),
    )
}

/// Whether libtorch sees a CUDA device (and cuDNN), and how many.
#[cfg(feature = "tch")]
fn cuda_visible() -> (Check, usize) {
    let found = std::panic::catch_unwind(|| {
        (
            tch::Cuda::is_available(),
            tch::Cuda::device_count(),
            tch::Cuda::cudnn_is_available(),
        )
    });
    match found {
        Ok((true, n, cudnn)) => (
            Check::new(
                "tch-cuda",
                "CUDA",
                Status::Ok,
                format!("libtorch sees {n} CUDA device(s); cuDNN available: {cudnn}"),
            ),
            usize::try_from(n).unwrap_or(0),
        ),
        Ok((false, _, _)) => (
            Check::new(
                "tch-cuda",
                "CUDA",
                Status::Skip,
                "libtorch sees no CUDA device".into(),
            )
            .fix(
                "a CUDA build of torch (pip's default on Linux) and an NVIDIA driver: \
                 `python -c 'import torch; print(torch.cuda.is_available())'` should print True",
            ),
            0,
        ),
        Err(e) => (
            Check::new(
                "tch-cuda",
                "CUDA",
                Status::Fail,
                format!("libtorch panicked: {}", panic_text(&*e)),
            ),
            0,
        ),
    }
}
