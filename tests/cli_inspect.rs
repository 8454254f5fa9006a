//! `dsma inspect`: header facts and statistics, text and JSON, and error reporting.

mod support;

use support::{dsma, write, Nifti1};

#[test]
fn inspect_json_reports_header_and_statistics_over_scaled_finite_voxels() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("v.nii");
    let values = [1.0f32, 2.0, f32::NAN, 4.0, -3.0, 0.0, 5.0, 6.0];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut h = Nifti1::new([2, 2, 2], 16, 32);
    h.scl_slope = 2.0;
    h.scl_inter = 1.0;
    write(&p, &h.bytes(&bytes));
    let (code, out, err) = dsma(&["inspect", p.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Scaled finite values: 3, 5, 9, -5, 1, 11, 13.
    assert_eq!(j["sum"], 37.0);
    assert_eq!(j["min"], -5.0);
    assert_eq!(j["max"], 13.0);
    assert!((j["mean"].as_f64().unwrap() - 37.0 / 7.0).abs() < 1e-12);
    assert_eq!(j["nan_count"], 1);
    assert_eq!(j["dims"], serde_json::json!([2, 2, 2]));
    assert_eq!(j["datatype"], "float32");
    assert_eq!(j["scl_slope"], 2.0);
    let (code, text, _) = dsma(&["inspect", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        text.contains("NaN") && text.contains("float32") && text.contains("sform"),
        "{text}"
    );
}

#[test]
fn inspect_errors_name_the_file_and_exit_1() {
    let (code, out, err) = dsma(&["inspect", "/definitely/not/here.nii.gz"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("/definitely/not/here.nii.gz"), "{err}");
}
