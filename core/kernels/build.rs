//! Records what `dsma doctor` reports about this build (CUDA bindings version, libtorch's source),
//! and, with the `tch` feature (and not its doc-only check), compiles `cpp/convolution_backward.cpp`
//! against the libtorch headers that torch-sys 0.22 links: the active Python environment's torch
//! (`LIBTORCH_USE_PYTORCH`), else `LIBTORCH` (or `LIBTORCH_INCLUDE`). A build without either fails
//! here with that message instead of a missing header.

use std::path::PathBuf;
use std::process::Command;

/// Include folders and the C++11 ABI flag of the libtorch being linked.
struct Libtorch {
    includes: Vec<PathBuf>,
    cxx11_abi: String,
}

const PRINT_TORCH: &str = "import torch\nfrom torch.utils import cpp_extension\n\
print('ABI', int(torch._C._GLIBCXX_USE_CXX11_ABI))\n\
for p in cpp_extension.include_paths(): print('INC', p)";

fn from_python() -> Result<Libtorch, String> {
    let python = if std::env::var_os("VIRTUAL_ENV").is_some() {
        "python"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args(["-c", PRINT_TORCH])
        .output()
        .map_err(|e| format!("running {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "LIBTORCH_USE_PYTORCH is set but `{python} -c \"import torch\"` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lib = Libtorch {
        includes: Vec::new(),
        cxx11_abi: "1".into(),
    };
    for line in text.lines() {
        if let Some(abi) = line.strip_prefix("ABI ") {
            lib.cxx11_abi = abi.trim().to_string();
        } else if let Some(dir) = line.strip_prefix("INC ") {
            lib.includes.push(PathBuf::from(dir.trim()));
        }
    }
    Ok(lib)
}

fn from_folder() -> Result<Libtorch, String> {
    let include = match (std::env::var("LIBTORCH_INCLUDE"), std::env::var("LIBTORCH")) {
        (Ok(dir), _) => PathBuf::from(dir),
        (_, Ok(dir)) => PathBuf::from(dir),
        _ => {
            return Err(
                "the tch feature needs libtorch: set LIBTORCH_USE_PYTORCH=1 in a Python \
                        environment where `import torch` works (torch 2.9.0), or LIBTORCH to a \
                        libtorch folder"
                    .into(),
            )
        }
    };
    Ok(Libtorch {
        includes: vec![
            include.join("include"),
            include.join("include/torch/csrc/api/include"),
        ],
        cxx11_abi: std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into()),
    })
}

fn from_nvcc() -> Option<String> {
    let out = Command::new("nvcc").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Cuda compilation tools, release 13.0, V13.0.88"
    let release = text.split("release ").nth(1)?;
    Some(release.split(',').next()?.trim().to_string())
}

fn libtorch_source() -> String {
    for var in [
        "LIBTORCH_USE_PYTORCH",
        "LIBTORCH",
        "LIBTORCH_BYPASS_VERSION_CHECK",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        "none (built without the tch feature)".to_string()
    } else if std::env::var_os("CARGO_FEATURE_TCH_DOC").is_some() {
        "none (doc-only stubs: a compile check, not a runnable build)".to_string()
    } else if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let venv = std::env::var("VIRTUAL_ENV").unwrap_or_else(|_| "none".into());
        format!("the Python environment's torch (LIBTORCH_USE_PYTORCH; VIRTUAL_ENV {venv})")
    } else if let Ok(dir) = std::env::var("LIBTORCH") {
        format!("LIBTORCH={dir}")
    } else {
        "torch-sys's download (no LIBTORCH_USE_PYTORCH or LIBTORCH set)".to_string()
    }
}

/// Records the CUDA bindings version cudarc is built with, and where the libtorch of a `tch` build
/// came from, so `dsma doctor` can report them. Mirrors cudarc 0.19's rule: `CUDARC_CUDA_VERSION`
/// (e.g. 13000), else `nvcc --version`, else 13.4; and torch-sys 0.22's: `LIBTORCH_USE_PYTORCH`
/// (the Python environment's torch), else `LIBTORCH`, else a download.
fn record_for_doctor() {
    println!("cargo:rerun-if-env-changed=CUDARC_CUDA_VERSION");
    let value = if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        "none (built without the cuda feature)".to_string()
    } else if let Ok(v) = std::env::var("CUDARC_CUDA_VERSION") {
        format!("{v} (from CUDARC_CUDA_VERSION)")
    } else if let Some(v) = from_nvcc() {
        format!("{v} (from nvcc --version)")
    } else {
        "13.4 (cudarc's fallback: no CUDARC_CUDA_VERSION, no nvcc)".to_string()
    };
    println!("cargo:rustc-env=DSMA_CUDA_BINDINGS={value}");
    println!("cargo:rustc-env=DSMA_LIBTORCH_SOURCE={}", libtorch_source());
}

fn main() {
    record_for_doctor();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp/convolution_backward.cpp");
    for var in [
        "LIBTORCH_USE_PYTORCH",
        "LIBTORCH",
        "LIBTORCH_INCLUDE",
        "LIBTORCH_CXX11_ABI",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let tch = std::env::var_os("CARGO_FEATURE_TCH").is_some();
    let doc_only = std::env::var_os("CARGO_FEATURE_TCH_DOC").is_some();
    if !tch || doc_only {
        return;
    }
    let found = if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        from_python()
    } else {
        from_folder()
    };
    let lib = match found {
        Ok(lib) => lib,
        Err(message) => {
            println!("cargo:warning={message}");
            std::process::exit(1);
        }
    };
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .includes(&lib.includes)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={}", lib.cxx11_abi))
        .file("cpp/convolution_backward.cpp")
        .compile("dsma_convolution_backward");
}
