//! Records the CUDA bindings version cudarc is built with, and where the libtorch of a `tch` build
//! came from, so `dsma doctor` can report them.
//! Mirrors cudarc 0.19's rule: `CUDARC_CUDA_VERSION` (e.g. 13000), else `nvcc --version`, else 13.4;
//! and torch-sys 0.22's: `LIBTORCH_USE_PYTORCH` (the Python environment's torch), else `LIBTORCH`,
//! else a download.

use std::process::Command;

fn from_nvcc() -> Option<String> {
    let out = Command::new("nvcc").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Cuda compilation tools, release 13.0, V13.0.88"
    let release = text.split("release ").nth(1)?;
    Some(release.split(',').next()?.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CUDARC_CUDA_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
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
