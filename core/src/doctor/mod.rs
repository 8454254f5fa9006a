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

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{ElementConversion, Tensor, TensorData, TensorPrimitive};
use serde::Serialize;

use crate::model::KernelBackend;

mod torch;
pub use torch::{LIBTORCH_SOURCE, TORCH_VERSION};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works, with a caveat worth reading.
    Warn,
    /// Does not work; `fix` says what to do.
    Fail,
    /// Not checked (not in this build, or an earlier check failed).
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The backend or component the line is about (`cpu`, `cuda`, `tch`).
    pub backend: &'static str,
    /// What was checked.
    pub item: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
}

impl Check {
    fn new(backend: &'static str, item: &'static str, status: Status, detail: String) -> Self {
        Check {
            backend,
            item,
            status,
            detail,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Everything `dsma doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Backends that passed every check, including the numeric self-check.
    pub usable: Vec<&'static str>,
}

/// A CUDA version as the driver API encodes it (`1000 · major + 10 · minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CudaVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl CudaVersion {
    /// Decodes the driver API's integer (`13000` → 13.0, `12040` → 12.4).
    pub fn from_driver_int(v: i32) -> Self {
        let v = v.max(0) as u32;
        CudaVersion {
            major: v / 1000,
            minor: (v % 1000) / 10,
        }
    }

    /// Parses `"13.0"` or cudarc's `"13000"` form.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('.') {
            return Some(CudaVersion {
                major: a.parse().ok()?,
                minor: b.parse().ok()?,
            });
        }
        let v: i32 = s.parse().ok()?;
        (v >= 1000).then(|| Self::from_driver_int(v))
    }
}

impl std::fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The CUDA bindings version this binary was built with, and where it came from (set by build.rs).
pub const CUDA_BINDINGS: &str = env!("DSMA_CUDA_BINDINGS");

/// What the driver library reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// Highest CUDA version the driver supports.
    pub version: CudaVersion,
    /// Device names, in index order.
    pub devices: Vec<String>,
}

type CuInit = unsafe extern "C" fn(u32) -> i32;
type CuIntOut = unsafe extern "C" fn(*mut i32) -> i32;
type CuDeviceGet = unsafe extern "C" fn(*mut i32, i32) -> i32;
type CuDeviceGetName = unsafe extern "C" fn(*mut std::ffi::c_char, i32, i32) -> i32;
type NvrtcVersion = unsafe extern "C" fn(*mut i32, *mut i32) -> i32;

/// Loads the first library of `names` that the dynamic loader finds.
fn load_first(names: &[String]) -> Option<(String, libloading::Library)> {
    names.iter().find_map(|n| {
        // SAFETY: loading a CUDA library runs its initialisers, which have no preconditions; the
        // library is only used through the symbols looked up below with their documented signatures.
        unsafe { libloading::Library::new(n) }
            .ok()
            .map(|l| (n.clone(), l))
    })
}

/// Probes `libcuda`: driver version and devices, without creating a context.
pub fn probe_driver() -> std::result::Result<DriverInfo, String> {
    let names = ["libcuda.so.1".to_string(), "libcuda.so".to_string()];
    let (_, lib) = load_first(&names).ok_or_else(|| {
        "libcuda.so.1 not found by the dynamic loader (no NVIDIA driver on this machine)"
            .to_string()
    })?;
    // SAFETY: the symbol types match the CUDA driver API (cuda.h): cuInit(unsigned), cuDriverGetVersion(int*),
    // cuDeviceGetCount(int*), cuDeviceGet(CUdevice*, int), cuDeviceGetName(char*, int, CUdevice);
    // every out-pointer points to a live local of the right size, and `lib` outlives the calls.
    unsafe {
        let init: libloading::Symbol<CuInit> = lib.get(b"cuInit").map_err(|e| e.to_string())?;
        let version: libloading::Symbol<CuIntOut> =
            lib.get(b"cuDriverGetVersion").map_err(|e| e.to_string())?;
        let count: libloading::Symbol<CuIntOut> =
            lib.get(b"cuDeviceGetCount").map_err(|e| e.to_string())?;
        let get: libloading::Symbol<CuDeviceGet> =
            lib.get(b"cuDeviceGet").map_err(|e| e.to_string())?;
        let name: libloading::Symbol<CuDeviceGetName> =
            lib.get(b"cuDeviceGetName").map_err(|e| e.to_string())?;
        let mut v = 0i32;
        if version(&mut v) != 0 {
            return Err("cuDriverGetVersion failed".into());
        }
        let code = init(0);
        if code != 0 {
            return Err(format!(
                "cuInit failed with CUresult {code} (driver {} loaded, but no usable GPU: \
                 100 = no device, 999 = unknown/driver problem)",
                CudaVersion::from_driver_int(v)
            ));
        }
        let mut n = 0i32;
        if count(&mut n) != 0 {
            return Err("cuDeviceGetCount failed".into());
        }
        let mut devices = Vec::new();
        for i in 0..n {
            let mut dev = 0i32;
            let mut buf = [0 as std::ffi::c_char; 256];
            if get(&mut dev, i) == 0 && name(buf.as_mut_ptr(), 256, dev) == 0 {
                let s = std::ffi::CStr::from_ptr(buf.as_ptr());
                devices.push(s.to_string_lossy().into_owned());
            }
        }
        Ok(DriverInfo {
            version: CudaVersion::from_driver_int(v),
            devices,
        })
    }
}

/// The library names cudarc 0.19 tries for `name`, for bindings of `major.minor` (its
/// `get_lib_name_candidates`, Linux only).
pub fn library_candidates(name: &str, bindings: Option<CudaVersion>) -> Vec<String> {
    let mut out = vec![format!("lib{name}.so")];
    if let Some(v) = bindings {
        out.push(format!("lib{name}.so.{}", v.major));
    }
    out.extend(["12", "11", "10", "9", "1"].map(|m| format!("lib{name}.so.{m}")));
    out.dedup();
    out
}

/// Probes NVRTC: which library the loader finds and its version.
pub fn probe_nvrtc(
    bindings: Option<CudaVersion>,
) -> std::result::Result<(String, CudaVersion), String> {
    let names = library_candidates("nvrtc", bindings);
    let (found, lib) = load_first(&names)
        .ok_or_else(|| format!("none of {} found by the dynamic loader", names.join(", ")))?;
    // SAFETY: nvrtcVersion(int* major, int* minor) per nvrtc.h; both pointers are live locals.
    unsafe {
        let f: libloading::Symbol<NvrtcVersion> =
            lib.get(b"nvrtcVersion").map_err(|e| e.to_string())?;
        let (mut a, mut b) = (0i32, 0i32);
        if f(&mut a, &mut b) != 0 {
            return Err(format!("{found}: nvrtcVersion failed"));
        }
        Ok((
            found,
            CudaVersion {
                major: a.max(0) as u32,
                minor: b.max(0) as u32,
            },
        ))
    }
}

/// Where cubecl-cuda 0.10 looks for the toolkit (its `install::cuda_path`), given `CUDA_PATH`.
pub fn toolkit_root(cuda_path_env: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = cuda_path_env {
        return Some(PathBuf::from(p));
    }
    ["/usr/local/cuda", "/opt/cuda"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            Path::new("/usr/bin/nvcc")
                .exists()
                .then(|| PathBuf::from("/usr"))
        })
}

/// The numbers the GPU self-check compares with the CPU: a stride-2 conv3d's output and its input
/// and weight gradients, and a stride-2 conv_transpose3d's output.
#[derive(Debug, Clone)]
pub struct ConvProbe {
    /// Every value, concatenated.
    pub values: Vec<f32>,
}

fn probe_tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    f: impl Fn(usize) -> f32,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new((0..n).map(f).collect(), shape), device)
}

/// `conv3d` through [`KernelBackend`] (the path the models take).
fn kernel_conv3d<B: KernelBackend>(
    x: Tensor<B, 5>,
    w: Tensor<B, 5>,
    b: Option<Tensor<B, 1>>,
    options: ConvOptions<3>,
) -> Tensor<B, 5> {
    let y = B::conv3d_forward(
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.map(|b| b.into_primitive().tensor()),
        options,
    );
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// `conv_transpose3d` through [`KernelBackend`].
fn kernel_conv_transpose3d<B: KernelBackend>(
    x: Tensor<B, 5>,
    w: Tensor<B, 5>,
    options: ConvTransposeOptions<3>,
) -> Tensor<B, 5> {
    let y = B::conv_transpose3d_forward(
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        None,
        options,
    );
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// Runs a tiny conv3d forward + backward and a conv_transpose3d forward on `B` through
/// [`KernelBackend`], the path the models take (deterministic inputs, no RNG).
pub fn conv_probe<B: KernelBackend>(device: &B::Device) -> ConvProbe {
    type A<B> = Autodiff<B>;
    let x = probe_tensor::<A<B>, 5>([1, 2, 8, 8, 8], |i| (i as f32 * 0.37).sin(), device)
        .require_grad();
    let w = probe_tensor::<A<B>, 5>([3, 2, 3, 3, 3], |i| (i as f32 * 0.11).cos() * 0.2, device)
        .require_grad();
    let b = probe_tensor::<A<B>, 1>([3], |i| i as f32 * 0.1 - 0.1, device);
    let y = kernel_conv3d(
        x.clone(),
        w.clone(),
        Some(b),
        ConvOptions::new([2; 3], [1; 3], [1; 3], 1),
    );
    let r = probe_tensor::<A<B>, 5>(y.dims(), |i| ((i % 7) as f32 - 3.0) * 0.25, device);
    let grads = (y.clone() * r).sum().backward();
    let wt = probe_tensor::<B, 5>([2, 3, 2, 2, 2], |i| (i as f32 * 0.5).sin(), device);
    let xt = probe_tensor::<B, 5>([1, 2, 3, 3, 3], |i| (i as f32 * 0.23).cos(), device);
    let t = kernel_conv_transpose3d(
        xt,
        wt,
        ConvTransposeOptions::new([2; 3], [0; 3], [0; 3], [1; 3], 1),
    );
    let mut values = Vec::new();
    let mut push = |d: TensorData| values.extend(d.iter::<f32>());
    push(y.into_data());
    // A missing gradient leaves the probe short, which the comparison reports as a mismatch.
    for g in [x.grad(&grads), w.grad(&grads)].into_iter().flatten() {
        push(g.into_data());
    }
    push(t.into_data());
    ConvProbe { values }
}

/// Largest absolute difference between two probes, relative to the largest reference magnitude.
pub fn relative_difference(reference: &ConvProbe, other: &ConvProbe) -> f32 {
    if reference.values.len() != other.values.len() {
        return f32::INFINITY;
    }
    let scale = reference
        .values
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    reference
        .values
        .iter()
        .zip(&other.values)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// First-call and second-call wall time of one operation on one backend (device synced after each).
#[derive(Debug, Clone, Serialize)]
pub struct OpTiming {
    /// The backend (`cpu`, `cuda`).
    pub backend: &'static str,
    /// What ran (shapes included).
    pub op: &'static str,
    /// Seconds of the first call (kernel compilation and autotuning included on a GPU).
    pub first_s: f64,
    /// Seconds of the second call (steady state).
    pub second_s: f64,
}

/// Times the U-Net's building blocks one by one on `B` (convolutions through [`KernelBackend`]) at `[1, 8, 16, 16, 16]`: each is run twice
/// and the device synced after each call, so a slow kernel compile or autotune shows in `first_s`.
/// `on_op` sees every timing as soon as it exists, so a stall is located even if the caller is
/// killed.
pub fn time_ops<B: KernelBackend>(
    backend: &'static str,
    device: &B::Device,
    on_op: &mut dyn FnMut(&OpTiming),
) -> Vec<OpTiming> {
    use burn::tensor::activation::leaky_relu;
    type A<B> = Autodiff<B>;
    let x = probe_tensor::<A<B>, 5>([1, 8, 16, 16, 16], |i| (i as f32 * 0.37).sin(), device)
        .require_grad();
    let w3 = probe_tensor::<A<B>, 5>([8, 8, 3, 3, 3], |i| (i as f32 * 0.11).cos() * 0.1, device)
        .require_grad();
    let wt = probe_tensor::<A<B>, 5>([8, 8, 2, 2, 2], |i| (i as f32 * 0.5).sin() * 0.1, device);
    let same = ConvOptions::new([1; 3], [1; 3], [1; 3], 1);
    let down = ConvOptions::new([2; 3], [1; 3], [1; 3], 1);
    let up = ConvTransposeOptions::new([2; 3], [0; 3], [0; 3], [1; 3], 1);
    type Op<'a, B> = (&'static str, Box<dyn Fn() -> Tensor<A<B>, 5> + 'a>);
    let ops: Vec<Op<'_, B>> = vec![
        (
            "conv3d 3³ stride 1, 8→8 ch, 16³",
            Box::new(|| kernel_conv3d(x.clone(), w3.clone(), None, same.clone())),
        ),
        (
            "conv3d 3³ stride 2, 8→8 ch, 16³",
            Box::new(|| kernel_conv3d(x.clone(), w3.clone(), None, down.clone())),
        ),
        (
            "conv_transpose3d 2³ stride 2, 8³→16³",
            Box::new(|| {
                kernel_conv_transpose3d(
                    x.clone().narrow(2, 0, 8).narrow(3, 0, 8).narrow(4, 0, 8),
                    wt.clone(),
                    up.clone(),
                )
            }),
        ),
        (
            "instance norm (mean/var per channel)",
            Box::new(|| {
                let mean = x.clone().mean_dim(4).mean_dim(3).mean_dim(2);
                let c = x.clone() - mean;
                let var = (c.clone() * c.clone()).mean_dim(4).mean_dim(3).mean_dim(2);
                c / (var + 1e-5).sqrt()
            }),
        ),
        ("leaky_relu", Box::new(|| leaky_relu(x.clone(), 0.01))),
        (
            "cat on channels",
            Box::new(|| Tensor::cat(vec![x.clone(), x.clone()], 1)),
        ),
        (
            "conv3d forward + backward",
            Box::new(|| {
                let y = kernel_conv3d(x.clone(), w3.clone(), None, same.clone());
                let g = y.clone().sum().backward();
                let gw = w3
                    .grad(&g)
                    .map(|t| t.sum().into_scalar().elem::<f32>())
                    .unwrap_or(0.0);
                y * gw.signum()
            }),
        ),
    ];
    let mut out = Vec::new();
    for (op, f) in &ops {
        let mut secs = [0.0f64; 2];
        for s in &mut secs {
            let t = std::time::Instant::now();
            let y = f();
            // Reading one value waits for the device, whatever the backend's sync semantics.
            let _ = y.sum().into_scalar();
            *s = t.elapsed().as_secs_f64();
        }
        let timing = OpTiming {
            backend,
            op,
            first_s: secs[0],
            second_s: secs[1],
        };
        on_op(&timing);
        out.push(timing);
    }
    out
}

/// Runs [`time_ops`] on every backend in `backends` that this build has.
pub fn time_ops_on(backends: &[&str], on_op: &mut dyn FnMut(&OpTiming)) -> Vec<OpTiming> {
    let mut out = Vec::new();
    for b in backends {
        match *b {
            "cpu" => out.extend(time_ops::<crate::model::CpuBackend>(
                "cpu",
                &Default::default(),
                on_op,
            )),
            #[cfg(feature = "cuda")]
            "cuda" => out.extend(time_ops::<crate::model::CudaBackend>(
                "cuda",
                &burn::backend::cuda::CudaDevice::default(),
                on_op,
            )),
            #[cfg(feature = "tch")]
            "tch" => out.extend(time_ops::<crate::model::TchBackend>(
                "tch",
                &burn_tch::LibTorchDevice::Cpu,
                on_op,
            )),
            #[cfg(feature = "tch")]
            "tch-cuda" => out.extend(time_ops::<crate::model::TchBackend>(
                "tch-cuda",
                &burn_tch::LibTorchDevice::Cuda(0),
                on_op,
            )),
            _ => {}
        }
    }
    out
}

/// Relative difference up to which a GPU result counts as equal to the CPU's (TF32 tensor cores
/// round f32 products to 10 mantissa bits, about 1e-3 relative).
pub const GPU_TOLERANCE: f32 = 1e-2;

/// Runs every check.
pub fn diagnose() -> Report {
    let mut checks = vec![Check::new(
        "cpu",
        "backend",
        Status::Ok,
        "burn-flex (always built in)".into(),
    )];
    let reference =
        std::panic::catch_unwind(|| conv_probe::<crate::model::CpuBackend>(&Default::default()));
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

fn bindings_version() -> Option<CudaVersion> {
    CUDA_BINDINGS
        .split_whitespace()
        .next()
        .and_then(CudaVersion::parse)
}

/// The driver, NVRTC, header and bindings checks; then the GPU self-check when all passed.
fn cuda_checks(checks: &mut Vec<Check>, reference: Option<&ConvProbe>) -> bool {
    let built = cfg!(feature = "cuda");
    checks.push(if built {
        Check::new(
            "cuda",
            "backend",
            Status::Ok,
            format!("burn-cuda built in; CUDA bindings {CUDA_BINDINGS}"),
        )
    } else {
        Check::new("cuda", "backend", Status::Skip, "not in this build".into()).fix(
            "rebuild with `cargo build --release --features cuda` (set CUDARC_CUDA_VERSION=MMm0, e.g. \
             12040, to the driver's CUDA version when the build machine has no nvcc)",
        )
    });
    let driver = match probe_driver() {
        Ok(d) => {
            let names = if d.devices.is_empty() {
                "no devices".to_string()
            } else {
                d.devices.join(", ")
            };
            checks.push(Check::new(
                "cuda",
                "driver (libcuda)",
                Status::Ok,
                format!("supports CUDA {}; {names}", d.version),
            ));
            d
        }
        Err(e) => {
            checks.push(
                Check::new("cuda", "driver (libcuda)", Status::Fail, e)
                    .fix("install the NVIDIA driver (nvidia-smi must work)"),
            );
            return false;
        }
    };
    let bindings = bindings_version();
    let mut ok = nvrtc_check(checks, bindings, driver.version);
    ok &= headers_check(checks);
    if let (true, Some(b)) = (built, bindings) {
        checks.push(if b > driver.version {
            Check::new(
                "cuda",
                "bindings vs driver",
                Status::Warn,
                format!("built for CUDA {b}, driver supports {}", driver.version),
            )
            .fix(format!(
                "rebuild with CUDARC_CUDA_VERSION={}0{}0 if a CUDA call fails with a missing symbol",
                driver.version.major, driver.version.minor
            ))
        } else {
            Check::new(
                "cuda",
                "bindings vs driver",
                Status::Ok,
                format!("built for CUDA {b} ≤ driver {}", driver.version),
            )
        });
    }
    if !built {
        return false;
    }
    if !ok || driver.devices.is_empty() || reference.is_none() {
        checks.push(Check::new(
            "cuda",
            "conv3d self-check",
            Status::Skip,
            "an earlier cuda check failed".into(),
        ));
        return false;
    }
    gpu_self_check(checks, reference)
}

fn nvrtc_check(
    checks: &mut Vec<Check>,
    bindings: Option<CudaVersion>,
    driver: CudaVersion,
) -> bool {
    match probe_nvrtc(bindings) {
        Ok((lib, v)) if v > driver => {
            checks.push(
                Check::new(
                    "cuda",
                    "NVRTC",
                    Status::Fail,
                    format!("{lib} is CUDA {v}, newer than the driver's {driver}"),
                )
                .fix(format!(
                    "put an NVRTC ≤ {driver} first on LD_LIBRARY_PATH (e.g. pip install \
                     'nvidia-cuda-nvrtc-cu{}=={driver}.*' and add its lib folder), or update the driver",
                    driver.major
                )),
            );
            false
        }
        Ok((lib, v)) => {
            checks.push(Check::new(
                "cuda",
                "NVRTC",
                Status::Ok,
                format!("{lib}: CUDA {v} ≤ driver {driver}"),
            ));
            true
        }
        Err(e) => {
            checks.push(Check::new("cuda", "NVRTC", Status::Fail, e).fix(
                "install NVRTC (the CUDA toolkit's lib64, or pip install nvidia-cuda-nvrtc-cuXX) \
                 and add its folder to LD_LIBRARY_PATH",
            ));
            false
        }
    }
}

fn headers_check(checks: &mut Vec<Check>) -> bool {
    let env = std::env::var("CUDA_PATH").ok();
    let found = toolkit_root(env.as_deref()).map(|r| r.join("include"));
    match found {
        Some(inc) if inc.join("cuda.h").exists() || inc.join("cuda_runtime.h").exists() => {
            checks.push(Check::new(
                "cuda",
                "toolkit headers",
                Status::Ok,
                inc.display().to_string(),
            ));
            true
        }
        other => {
            let where_ = other
                .map(|p| format!("{} has no cuda.h", p.display()))
                .unwrap_or_else(|| {
                    "CUDA_PATH unset and none of /usr/local/cuda, /opt/cuda, /usr/bin/nvcc exist"
                        .into()
                });
            checks.push(
                Check::new("cuda", "toolkit headers", Status::Fail, where_).fix(
                    "install the CUDA toolkit (its include/ folder) and set CUDA_PATH to its root",
                ),
            );
            false
        }
    }
}

#[cfg(feature = "cuda")]
fn gpu_self_check(checks: &mut Vec<Check>, reference: Option<&ConvProbe>) -> bool {
    if reference.is_none() {
        return false;
    }
    let check = self_check::<crate::model::CudaBackend>(
        "cuda",
        &burn::backend::cuda::CudaDevice::default(),
        reference,
        GPU_TOLERANCE,
    );
    let ok = check.status == Status::Ok;
    checks.push(check);
    ok
}

#[cfg(not(feature = "cuda"))]
fn gpu_self_check(_checks: &mut Vec<Check>, _reference: Option<&ConvProbe>) -> bool {
    false
}

/// The conv3d probe on `B`'s `device` against the CPU `reference`, within `tolerance`; a panic of
/// the backend is reported, not propagated.
#[cfg(any(feature = "cuda", feature = "tch"))]
fn self_check<B: KernelBackend>(
    backend: &'static str,
    device: &B::Device,
    reference: Option<&ConvProbe>,
    tolerance: f32,
) -> Check {
    let Some(reference) = reference else {
        return Check::new(
            backend,
            "conv3d self-check",
            Status::Skip,
            "no CPU reference".into(),
        );
    };
    let probe = std::panic::AssertUnwindSafe(|| conv_probe::<B>(device));
    match std::panic::catch_unwind(probe) {
        Ok(p) => {
            let d = relative_difference(reference, &p);
            let ok = d <= tolerance;
            Check::new(
                backend,
                "conv3d self-check",
                if ok { Status::Ok } else { Status::Fail },
                format!(
                    "conv3d forward + input/weight gradients and conv_transpose3d on {device:?} \
                     vs the cpu backend: max relative difference {d:.2e} (tolerance {tolerance:.0e})"
                ),
            )
        }
        Err(e) => Check::new(
            backend,
            "conv3d self-check",
            Status::Fail,
            format!("{} panicked: {}", B::name(device), panic_text(&*e)),
        ),
    }
}

/// The message of a caught panic.
#[cfg(any(feature = "cuda", feature = "tch"))]
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_versions_decode_like_the_driver_api() {
        assert_eq!(
            CudaVersion::from_driver_int(12040),
            CudaVersion {
                major: 12,
                minor: 4
            }
        );
        assert_eq!(
            CudaVersion::parse("13000").map(|v| v.to_string()),
            Some("13.0".into())
        );
        assert_eq!(
            CudaVersion::parse("12.9"),
            Some(CudaVersion {
                major: 12,
                minor: 9
            })
        );
        assert_eq!(CudaVersion::parse("fallback"), None);
        assert!(CudaVersion::parse("13.0") > CudaVersion::parse("12.9"));
    }

    /// Direct loops over the definition of a stride-2, padding-1 convolution and of its gradients.
    fn brute_force() -> Vec<f32> {
        let x = |i: usize| (i as f32 * 0.37).sin();
        let w = |i: usize| (i as f32 * 0.11).cos() * 0.2;
        let (n, o_n) = (8usize, 4usize); // 8³ in, stride 2, padding 1, kernel 3 → 4³ out
        let xi = |c: usize, z: usize, y: usize, xx: usize| ((c * n + z) * n + y) * n + xx;
        let wi =
            |o: usize, c: usize, k: [usize; 3]| (((o * 2 + c) * 3 + k[0]) * 3 + k[1]) * 3 + k[2];
        let yi = |o: usize, p: [usize; 3]| ((o * o_n + p[0]) * o_n + p[1]) * o_n + p[2];
        let r = |i: usize| ((i % 7) as f32 - 3.0) * 0.25;
        let mut y = vec![0f32; 3 * o_n * o_n * o_n];
        let mut gx = vec![0f32; 2 * n * n * n];
        let mut gw = vec![0f32; 3 * 2 * 27];
        for o in 0..3 {
            for pz in 0..o_n {
                for py in 0..o_n {
                    for px in 0..o_n {
                        let out = yi(o, [pz, py, px]);
                        let mut acc = o as f32 * 0.1 - 0.1;
                        for c in 0..2 {
                            for kz in 0..3 {
                                for ky in 0..3 {
                                    for kx in 0..3 {
                                        let (z, yy, xx) = (2 * pz + kz, 2 * py + ky, 2 * px + kx);
                                        if z == 0 || yy == 0 || xx == 0 || z > n || yy > n || xx > n
                                        {
                                            continue; // padding
                                        }
                                        let (ix, iw) =
                                            (xi(c, z - 1, yy - 1, xx - 1), wi(o, c, [kz, ky, kx]));
                                        acc += x(ix) * w(iw);
                                        gx[ix] += r(out) * w(iw);
                                        gw[iw] += r(out) * x(ix);
                                    }
                                }
                            }
                        }
                        y[out] = acc;
                    }
                }
            }
        }
        [y, gx, gw].concat()
    }

    #[test]
    fn cpu_conv_probe_matches_direct_loops() {
        let got = conv_probe::<crate::model::CpuBackend>(&Default::default());
        let want = brute_force();
        // conv3d part: 192 outputs + 1024 input gradients + 162 weight gradients, then 3·6³ transposed.
        assert_eq!(got.values.len(), want.len() + 3 * 6 * 6 * 6);
        let head = ConvProbe {
            values: got.values[..want.len()].to_vec(),
        };
        let d = relative_difference(&ConvProbe { values: want }, &head);
        assert!(d < 1e-5, "relative difference {d}");
    }

    #[test]
    fn op_timings_cover_every_block_on_the_cpu() {
        let mut seen = 0;
        let t = time_ops_on(&["cpu", "no-such-backend"], &mut |_| seen += 1);
        assert_eq!(t.len(), 7);
        assert_eq!(seen, 7);
        assert!(t
            .iter()
            .all(|o| o.backend == "cpu" && o.first_s >= 0.0 && o.second_s >= 0.0));
    }

    #[test]
    fn relative_difference_scales_by_the_reference() {
        let a = ConvProbe {
            values: vec![2.0, -4.0],
        };
        let b = ConvProbe {
            values: vec![2.0, -3.0],
        };
        assert_eq!(relative_difference(&a, &b), 0.25);
        let c = ConvProbe { values: vec![1.0] };
        assert!(relative_difference(&a, &c).is_infinite());
    }

    #[test]
    fn toolkit_root_prefers_cuda_path() {
        assert_eq!(
            toolkit_root(Some("/x/cuda")),
            Some(PathBuf::from("/x/cuda"))
        );
    }

    #[test]
    fn library_candidates_follow_cudarc() {
        let c = library_candidates(
            "nvrtc",
            Some(CudaVersion {
                major: 13,
                minor: 0,
            }),
        );
        assert_eq!(c[0], "libnvrtc.so");
        assert_eq!(c[1], "libnvrtc.so.13");
        assert!(c.contains(&"libnvrtc.so.12".to_string()));
    }
}
