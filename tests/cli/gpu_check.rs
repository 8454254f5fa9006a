//! `dsma doctor` and the CPU-only path of `scripts/gpu-check run` (the test binary is built without
//! the cuda and tch features, so every GPU step must be reported as skipped, whatever the machine has).

use std::process::Command;

use crate::support::dsma;

#[test]
fn doctor_reports_the_cpu_backend_and_why_cuda_is_not_usable() {
    let (code, out, err) = dsma(&["doctor"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[ok  ] cpu      conv3d self-check"), "{out}");
    assert!(out.contains("[skip] cuda     backend"), "{out}");
    assert!(out.contains("[skip] tch      backend"), "{out}");
    for flag in [
        "--features cuda",
        "--features tch",
        "LIBTORCH_USE_PYTORCH=1",
    ] {
        assert!(
            out.contains(flag),
            "the fixes name the rebuild flags: {out}"
        );
    }
    assert!(out.lines().any(|l| l == "usable backends: cpu"), "{out}");
    let (code, _, err) = dsma(&["doctor", "--require", "cuda"]);
    assert_eq!(code, 1);
    assert!(err.contains("cuda"), "{err}");
    let (code, json, _) = dsma(&["doctor", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["usable"], serde_json::json!(["cpu"]));
}

#[test]
fn gpu_check_without_a_gpu_backend_skips_every_gpu_step_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/gpu-check"))
        .arg("run")
        .env("DSMA_BIN", env!("CARGO_BIN_EXE_dsma"))
        .env("CHECK_DIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("| dsma doctor | ok | usable: cpu |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| cuda: tests, quickstart, step | skip |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| tch-cuda: tests, quickstart, step | skip | no tch build"),
        "{stdout}"
    );
    assert!(tmp.path().join("doctor.log").exists());
}
