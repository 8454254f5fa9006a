//! `dsma inspect`: header facts and statistics, text and JSON, and error reporting.

use crate::support::{dsma, write, Nifti1};

#[test]
fn inspect_json_reports_header_and_statistics_over_scaled_finite_voxels() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("v.nii");
    let values = [1.0f32, 2.0, f32::NAN, 4.0, -3.0, 0.0, 5.0, 6.0];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut h = Nifti1::new([2, 2, 2], 16, 32);
    h.scl_slope = 2.0;
    h.scl_inter = 1.0;
    // Fields dsma does not use, set by hand at their NIfTI-1 offsets: cal_max (124), intent_name (328).
    let mut file = h.bytes(&bytes);
    file[124..128].copy_from_slice(&7.5f32.to_le_bytes());
    file[328..333].copy_from_slice(b"label");
    write(&p, &file);
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
    // Every header field is reported, including those dsma does not use.
    for field in [
        "magic",
        "dim_info",
        "intent_code",
        "intent_p",
        "intent_name",
        "slice_code",
        "slice_start",
        "slice_end",
        "slice_duration",
        "cal_min",
        "cal_max",
        "toffset",
        "aux_file",
    ] {
        assert!(
            j["other"].get(field).is_some(),
            "{field} missing: {}",
            j["other"]
        );
    }
    assert_eq!(j["other"]["magic"], "n+1");
    assert_eq!(j["other"]["cal_max"], 7.5);
    assert_eq!(j["other"]["intent_name"], "label");
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

/// A 4-D image (2×1×1 voxels, 3 volumes, like the Decathlon's multi-modal files): the header is
/// printed in full, statistics over all voxels and per volume (hand-computed), and
/// `read_volumes` returns the volumes in file order.
#[test]
fn inspect_and_read_volumes_handle_4d_images() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("multi.nii");
    let values = [1.0f32, 3.0, 10.0, 20.0, -4.0, f32::NAN];
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut h = Nifti1::new([2, 1, 1], 16, 32);
    h.dim[0] = 4;
    h.dim[4] = 3;
    write(&p, &h.bytes(&bytes));
    let (code, out, err) = dsma(&["inspect", p.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["dims"], serde_json::json!([2, 1, 1, 3]));
    assert_eq!(j["sum"], 30.0);
    assert_eq!(j["nan_count"], 1);
    let means: Vec<f64> = j["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["mean"].as_f64().unwrap())
        .collect();
    assert_eq!(means, [2.0, 15.0, -4.0]);
    assert_eq!(j["volumes"][2]["nan_count"], 1);
    let (code, text, _) = dsma(&["inspect", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        text.contains("2 × 1 × 1 × 3") && text.contains("volume 1"),
        "{text}"
    );

    let vols = dsma_data::nifti_io::read_volumes(&p).unwrap();
    assert_eq!(vols.data.shape(), [3, 1, 1, 2]);
    assert_eq!(vols.data[[1, 0, 0, 1]], 20.0);
    assert_eq!(vols.grid.dims, [2, 1, 1]);
    // The 3-D reader still refuses it, saying why.
    let e = dsma_data::nifti_io::read_volume(&p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multi.nii") && e.contains("dim[4] = 3"), "{e}");
}
