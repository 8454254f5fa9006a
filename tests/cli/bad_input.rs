//! Inputs a careless user or a hostile file gives: each is refused with a message that names the
//! file, field or value — exit 1, no panic, no abort (issue 18's first cases).

use crate::support::{dsma, gzip, write, Nifti1};

/// `dsma` exited 1 with a message containing every one of `needles`, and did not panic.
fn refused(args: &[&str], needles: &[&str]) {
    let (code, out, err) = dsma(args);
    assert_eq!(code, 1, "{args:?}: exit {code}\n{out}{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` missing from: {err}");
    }
}

/// A NIfTI-2 float32 header with the given dims and `vox_offset`, followed by `data`.
fn nifti2(dim: [i64; 8], vox_offset: i64, data: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 540];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&16i16.to_le_bytes());
    h[14..16].copy_from_slice(&32i16.to_le_bytes());
    for (i, d) in dim.iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for i in 0..8 {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&1.0f64.to_le_bytes());
    }
    h[168..176].copy_from_slice(&vox_offset.to_le_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(data);
    h
}

#[test]
fn a_nifti2_header_whose_voxel_count_overflows_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("huge.nii");
    let t = 1i64 << 40;
    write(&p, &nifti2([3, t, t, t, 1, 1, 1, 1], 544, &[0; 16]));
    refused(
        &["inspect", p.to_str().unwrap()],
        &["huge.nii", "overflows"],
    );
    // Large but representable: the data is missing, said before anything is allocated.
    let q = tmp.path().join("big.nii");
    write(
        &q,
        &nifti2([3, 1 << 20, 1 << 20, 1 << 10, 1, 1, 1, 1], 544, &[0; 16]),
    );
    refused(&["inspect", q.to_str().unwrap()], &["big.nii", "truncated"]);
}

#[test]
fn gzip_sizes_are_taken_from_the_header_not_the_trailer() {
    let tmp = tempfile::tempdir().unwrap();
    let values: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let plain = Nifti1::new([2, 2, 1], 16, 32).bytes(&values);
    // A trailer claiming 4 GiB of output is never an allocation size; the stream's own check
    // then names the file.
    let mut lying = gzip(&plain);
    let n = lying.len();
    lying[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let p = tmp.path().join("lying.nii.gz");
    write(&p, &lying);
    refused(&["inspect", p.to_str().unwrap()], &["lying.nii.gz", "gzip"]);
    // Far more inflated data than the header describes (a small bomb): only the image is read.
    let mut padded = plain.clone();
    padded.extend(std::iter::repeat_n(0u8, 8 << 20));
    let q = tmp.path().join("bomb.nii.gz");
    write(&q, &gzip(&padded));
    let (code, out, err) = dsma(&["inspect", q.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"voxels\": 4"), "{out}");
    // Garbage after a gzip magic, and a truncated stream.
    let r = tmp.path().join("garbage.nii.gz");
    write(&r, &[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7]);
    refused(
        &["inspect", r.to_str().unwrap()],
        &["garbage.nii.gz", "gzip"],
    );
    let full = gzip(&plain);
    let s = tmp.path().join("cut.nii.gz");
    write(&s, &full[..full.len() / 2]);
    refused(&["inspect", s.to_str().unwrap()], &["cut.nii.gz"]);
}

#[test]
fn header_fields_that_disagree_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let case = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Nifti1::new([2, 1, 1], 16, 32).bytes(&data);
        edit(&mut b);
        let p = tmp.path().join(name);
        write(&p, &b);
        p
    };
    let p = case("offset.nii", &|b| {
        b[108..112].copy_from_slice(&0.0f32.to_le_bytes())
    });
    refused(
        &["inspect", p.to_str().unwrap()],
        &["offset.nii", "vox_offset", "352"],
    );
    let p = case("bitpix.nii", &|b| {
        b[72..74].copy_from_slice(&16i16.to_le_bytes())
    });
    refused(
        &["inspect", p.to_str().unwrap()],
        &["bitpix.nii", "bitpix = 16", "float32"],
    );
    let p = case("slope.nii", &|b| {
        b[112..116].copy_from_slice(&f32::INFINITY.to_le_bytes())
    });
    refused(
        &["inspect", p.to_str().unwrap()],
        &["slope.nii", "scl_slope = inf"],
    );
    // A NaN slope means "unscaled" (as 0 does): the stored values come back.
    let p = case("nan.nii", &|b| {
        b[112..116].copy_from_slice(&f32::NAN.to_le_bytes())
    });
    let (code, out, err) = dsma(&["inspect", p.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"sum\": 3.0"), "{out}");
    let empty = tmp.path().join("empty.nii");
    write(&empty, b"");
    refused(
        &["inspect", empty.to_str().unwrap()],
        &["empty.nii", "too short"],
    );
    refused(
        &["inspect", tmp.path().to_str().unwrap()],
        &[&tmp.path().display().to_string()],
    );
}

#[test]
fn out_of_range_values_on_the_command_line_and_in_yaml_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    refused(
        &["weights", "--real", "0.5,1.7"],
        &["--real", "1.7", "[0, 1]"],
    );
    let out = tmp.path().join("ph");
    refused(
        &[
            "phantom",
            "--out",
            out.to_str().unwrap(),
            "--size",
            "100000,100000,100000",
        ],
        &["phantom size", "100000", "1024"],
    );
    assert!(!out.join("Phantom_000").exists(), "no partial output");
    let exp = "experiments/quickstart.yaml";
    refused(
        &["validate", exp, "eval.window.overlap=1.5"],
        &["eval.window.overlap", "1.5", "[0, 1)"],
    );
    refused(
        &["validate", exp, "model.params.out_channels=2"],
        &["out_channels", "2", "3 region channels"],
    );
    refused(
        &["validate", exp, "model.params.in_channels=3"],
        &["in_channels", "4 modalities"],
    );
}

#[test]
fn duplicate_yaml_keys_and_alias_bombs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dup = tmp.path().join("dup.yaml");
    std::fs::write(
        &dup,
        "name: x\nrows:\n  - label: a\n    weighter: {name: mas}\n    weighter: {name: uniform}\n",
    )
    .unwrap();
    refused(
        &["validate", dup.to_str().unwrap()],
        &["dup.yaml", "line 3", "duplicate entry", "weighter"],
    );
    // "Billion laughs": nine levels of nine aliases each.
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let bomb = tmp.path().join("bomb.yaml");
    std::fs::write(&bomb, text).unwrap();
    refused(
        &["validate", bomb.to_str().unwrap()],
        &["bomb.yaml", "repetition limit"],
    );
}
