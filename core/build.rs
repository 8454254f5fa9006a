//! Records the CUDA bindings version cudarc is built with, so `dsma doctor` can report it.
//! Mirrors cudarc 0.19's rule: `CUDARC_CUDA_VERSION` (e.g. 13000), else `nvcc --version`, else 13.4.

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
}
