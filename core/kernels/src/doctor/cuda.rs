//! The CUDA checks: the driver (`libcuda`), NVRTC against the driver, the toolkit headers, the
//! bindings version this build was made with, then the GPU self-check.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::doctor::probe::ConvProbe;
#[cfg(feature = "cuda")]
use crate::doctor::probe::{self_check, GPU_TOLERANCE};
use crate::doctor::report::{Check, Status};

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

fn bindings_version() -> Option<CudaVersion> {
    CUDA_BINDINGS
        .split_whitespace()
        .next()
        .and_then(CudaVersion::parse)
}

/// The driver, NVRTC, header and bindings checks; then the GPU self-check when all passed.
pub(crate) fn cuda_checks(checks: &mut Vec<Check>, reference: Option<&ConvProbe>) -> bool {
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
    let check = self_check::<crate::backend::CudaBackend>(
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
