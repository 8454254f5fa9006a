//! `dsma eval` and `dsma weights` end to end.

use crate::support::dsma;
use dsma_data::nifti_io::write_volume;
use dsma_data::volume::Grid;
use ndarray::{s, Array3};

fn label_map() -> Array3<u8> {
    let mut l = Array3::<u8>::zeros((10, 12, 12));
    l.slice_mut(s![2..8, 3..9, 3..9]).fill(2);
    l.slice_mut(s![4..6, 5..7, 5..7]).fill(4);
    l
}

#[test]
fn eval_single_pair_json_and_folder_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = Grid::axis_aligned([12, 12, 10], [1.0, 1.0, 2.0]);
    let truth = label_map();
    let mut pred = truth.clone();
    pred.slice_mut(s![2..3, .., ..]).fill(0); // drop one slice of oedema: WT smaller, TC/ET exact
    let (tp, pp) = (
        tmp.path().join("truth.nii.gz"),
        tmp.path().join("pred.nii.gz"),
    );
    write_volume(&tp, truth.view(), &grid).unwrap();
    write_volume(&pp, pred.view(), &grid).unwrap();
    let (code, out, err) = dsma(&[
        "eval",
        "--pred",
        pp.to_str().unwrap(),
        "--label",
        tp.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (nt, np) = (6 * 6 * 6, 5 * 6 * 6);
    let wt = 2.0 * np as f64 / (nt + np) as f64;
    assert!((j["WT"]["dice"].as_f64().unwrap() - wt).abs() < 1e-9);
    assert_eq!(j["TC"]["dice"], 1.0);
    assert_eq!(j["ET"]["hd95"], 0.0);
    // One 2-mm slice missing: the farthest surface points are one slice (2 mm) apart.
    assert!(
        (j["WT"]["hd95"].as_f64().unwrap() - 2.0).abs() < 1e-9,
        "{}",
        j["WT"]
    );
    assert!((j["AVE"]["dice"].as_f64().unwrap() - (wt + 2.0) / 3.0).abs() < 1e-9);

    // Folder mode: BraTS-layout truth, nnU-Net-style predictions.
    let labels = tmp.path().join("labels");
    let preds = tmp.path().join("preds");
    for case in ["A", "B"] {
        write_volume(
            &labels.join(format!("{case}/{case}_seg.nii.gz")),
            truth.view(),
            &grid,
        )
        .unwrap();
        write_volume(
            &labels.join(format!("{case}/{case}_flair.nii.gz")),
            Array3::<f32>::ones((10, 12, 12)).view(),
            &grid,
        )
        .unwrap();
    }
    write_volume(&preds.join("A.nii.gz"), truth.view(), &grid).unwrap();
    write_volume(&preds.join("B_seg.nii.gz"), pred.view(), &grid).unwrap();
    let csv = tmp.path().join("metrics.csv");
    let (code, out, err) = dsma(&[
        "eval",
        "--pred-dir",
        preds.to_str().unwrap(),
        "--label-dir",
        labels.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 case(s)"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("case,WT_dice"));
    assert!(lines[1].starts_with("A,1.000000,1.000000,1.000000"));
    let wt_mean = format!("{:.2}", (1.0 + wt) / 2.0 * 100.0);
    assert!(
        out.contains(&wt_mean),
        "mean WT {wt_mean} missing from {out}"
    );

    std::fs::remove_file(preds.join("B_seg.nii.gz")).unwrap();
    let (code, _, err) = dsma(&[
        "eval",
        "--pred-dir",
        preds.to_str().unwrap(),
        "--label-dir",
        labels.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no prediction for case B"), "{err}");
}

#[test]
fn weights_cli_json_and_plot() {
    let (code, out, err) = dsma(&[
        "weights",
        "--real",
        "0.5,0.7",
        "--synthetic",
        "0.6,0.4,0.1",
        "--set",
        "beta=0.2",
        "--set",
        "c=0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((j["eta"].as_f64().unwrap() - 0.6).abs() < 1e-12);
    assert!((j["theta"].as_f64().unwrap() - 0.1).abs() < 1e-12);
    let w: Vec<f64> = j["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(w[0], 1.0);
    assert!((w[1] - 0.625).abs() < 1e-12);
    assert_eq!(w[2], 0.0);
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("fig4.png");
    let (code, _, err) = dsma(&[
        "weights",
        "--eta",
        "0.7",
        "--theta",
        "0.05",
        "--set",
        "beta=0.1",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    let (code, _, err) = dsma(&["weights", "--real", "0.5", "--set", "gamma=1"]);
    assert_eq!(code, 1);
    assert!(err.contains("mas") && err.contains("gamma"), "{err}");
}

/// `dsma eval --metrics dice,hd95,nsd,lesion --reading panoptica --json` prints the package's
/// numbers for a committed reference case (a split lesion), in the package's names; grids that
/// differ and labels outside the convention are refused by name.
#[test]
fn eval_json_output_contract_with_nsd_and_lesions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("core/data/tests/data/lesion_reference");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let (p, l) = (
        dir.join("cases/split_pred.nii.gz"),
        dir.join("cases/split_ref.nii.gz"),
    );
    let (code, out, err) = dsma(&[
        "eval",
        "--pred",
        p.to_str().unwrap(),
        "--label",
        l.to_str().unwrap(),
        "--labels",
        "brats2023",
        "--metrics",
        "dice,hd95,nsd,lesion",
        "--reading",
        "panoptica",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (ours, theirs) in [("WT", "wt"), ("TC", "tc"), ("ET", "et")] {
        let want = &expected["cases"]["split"]["regions"][theirs];
        let got = &j[ours];
        for (a, b) in [
            ("dice", "global_bin_dsc"),
            ("hd95", "global_bin_hd95"),
            ("nsd", "global_bin_nsd"),
        ] {
            let (x, y) = (got[a].as_f64().unwrap(), want[b].as_f64().unwrap());
            assert!((x - y).abs() < 1e-4, "{ours} {a}: {x} vs {y}");
        }
        for k in ["tp", "fp", "fn", "sq_dsc", "pq_dsc", "sq_hd95", "sq_nsd"] {
            let (x, y) = (
                got["lesion"][k].as_f64().unwrap(),
                want[k].as_f64().unwrap(),
            );
            assert!((x - y).abs() < 1e-4, "{ours} lesion {k}: {x} vs {y}");
        }
    }
    // A prediction on a shifted grid.
    let tmp = tempfile::tempdir().unwrap();
    let (grid, labels) = dsma_data::nifti_io::read_labels(&p).unwrap();
    let mut moved = grid.clone();
    moved.affine[0][3] += 2.0;
    let shifted = tmp.path().join("shifted.nii.gz");
    write_volume(&shifted, labels.view(), &moved).unwrap();
    let (code, _, err) = dsma(&[
        "eval",
        "--pred",
        shifted.to_str().unwrap(),
        "--label",
        l.to_str().unwrap(),
        "--labels",
        "brats2023",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("shifted.nii.gz: affine") && err.contains("differs from the label's"),
        "{err}"
    );
    // A prediction of another shape.
    let small = tmp.path().join("small.nii.gz");
    let cropped = labels.slice(ndarray::s![1.., .., ..]).to_owned();
    let mut g = grid.clone();
    g.dims[2] -= 1;
    write_volume(&small, cropped.view(), &g).unwrap();
    let (code, _, err) = dsma(&[
        "eval",
        "--pred",
        small.to_str().unwrap(),
        "--label",
        l.to_str().unwrap(),
        "--labels",
        "brats2023",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("small.nii.gz: shape") && err.contains("differs from the label's"),
        "{err}"
    );
    // brats2023 maps read as brats2019 hold label 3, outside that convention.
    let (code, _, err) = dsma(&[
        "eval",
        "--pred",
        p.to_str().unwrap(),
        "--label",
        l.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("label 3 is outside the brats2019 convention"),
        "{err}"
    );
}
