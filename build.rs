//! A `tch` build of the dsma binary records libtorch's folder as its run-time search path
//! (`-rpath`), so `dsma` starts without `LD_LIBRARY_PATH`. The folder is found as torch-sys 0.22
//! finds it: the active Python environment's torch (`LIBTORCH_USE_PYTORCH`), else `LIBTORCH_LIB`
//! or `LIBTORCH/lib`.

use std::path::PathBuf;
use std::process::Command;

fn python_library_dir() -> Option<PathBuf> {
    let python = if std::env::var_os("VIRTUAL_ENV").is_some() {
        "python"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args([
            "-c",
            "from torch.utils import cpp_extension; print(cpp_extension.library_paths()[0])",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

fn libtorch_dir() -> Option<PathBuf> {
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        return python_library_dir();
    }
    if let Some(lib) = std::env::var_os("LIBTORCH_LIB") {
        let lib = PathBuf::from(lib);
        return Some(if lib.ends_with("lib") {
            lib
        } else {
            lib.join("lib")
        });
    }
    std::env::var_os("LIBTORCH").map(|d| PathBuf::from(d).join("lib"))
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "LIBTORCH_USE_PYTORCH",
        "LIBTORCH",
        "LIBTORCH_LIB",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let tch = std::env::var_os("CARGO_FEATURE_TCH").is_some();
    let doc_only = std::env::var_os("CARGO_FEATURE_TCH_DOC").is_some();
    if !tch || doc_only {
        return;
    }
    if let Some(dir) = libtorch_dir() {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", dir.display());
    }
}
