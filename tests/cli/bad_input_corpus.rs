//! A corpus of malformed inputs, generated here (no binary blobs): NIfTI-1 in both byte orders,
//! NIfTI-2, gzip, YAML experiments and command-line values. Each must be refused with exit 1, no
//! panic, and a message naming the file or field and the problem.

use std::path::{Path, PathBuf};

use crate::support::{dsma, gzip, write, Nifti1, Order};

fn refused(args: &[&str], needles: &[&str]) {
    let (code, out, err) = dsma(args);
    assert_eq!(code, 1, "{args:?}: exit {code}\n{out}{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` missing from: {err}");
    }
}

/// Encoders of header values in the file's byte order.
type F32Bytes = dyn Fn(f32) -> [u8; 4];
type I16Bytes = dyn Fn(i16) -> [u8; 2];

/// A 2×2×1 float32 NIfTI-1 image in `order`, with `edit(bytes, put)` applied to the file.
fn nifti1(order: Order, edit: &dyn Fn(&mut Vec<u8>, &F32Bytes, &I16Bytes)) -> Vec<u8> {
    let big = order == Order::Big;
    let mut h = Nifti1::new([2, 2, 1], 16, 32);
    h.order = order;
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        })
        .collect();
    let mut b = h.bytes(&data);
    let f = move |v: f32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let i = move |v: i16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    edit(&mut b, &f, &i);
    b
}

type Edit = fn(&mut Vec<u8>, &F32Bytes, &I16Bytes);

/// (name, edit, words the message must contain) for NIfTI-1 headers.
const NIFTI1_CASES: &[(&str, Edit, &[&str])] = &[
    (
        "sizeof_hdr",
        |b, _, _| b[0..4].copy_from_slice(&[0, 0, 0, 100]),
        &["not a NIfTI file"],
    ),
    (
        "dim0_zero",
        |b, _, i| b[40..42].copy_from_slice(&i(0)),
        &["dim[0] = 0"],
    ),
    (
        "dim0_eight",
        |b, _, i| b[40..42].copy_from_slice(&i(8)),
        &["dim[0] = 8"],
    ),
    (
        "dim1_zero",
        |b, _, i| b[42..44].copy_from_slice(&i(0)),
        &["dim[1] = 0"],
    ),
    (
        "dim2_negative",
        |b, _, i| b[44..46].copy_from_slice(&i(-3)),
        &["dim[2] = -3"],
    ),
    (
        "datatype_rgb",
        |b, _, i| b[70..72].copy_from_slice(&i(128)),
        &["datatype 128"],
    ),
    (
        "datatype_zero",
        |b, _, i| b[70..72].copy_from_slice(&i(0)),
        &["datatype 0"],
    ),
    (
        "bitpix",
        |b, _, i| b[72..74].copy_from_slice(&i(8)),
        &["bitpix = 8"],
    ),
    (
        "vox_offset_negative",
        |b, f, _| b[108..112].copy_from_slice(&f(-4.0)),
        &["vox_offset"],
    ),
    (
        "vox_offset_zero",
        |b, f, _| b[108..112].copy_from_slice(&f(0.0)),
        &["vox_offset", "352"],
    ),
    (
        "vox_offset_nan",
        |b, f, _| b[108..112].copy_from_slice(&f(f32::NAN)),
        &["vox_offset"],
    ),
    (
        "vox_offset_past_end",
        |b, f, _| b[108..112].copy_from_slice(&f(4096.0)),
        &["truncated data"],
    ),
    (
        "slope_inf",
        |b, f, _| b[112..116].copy_from_slice(&f(f32::INFINITY)),
        &["scl_slope = inf"],
    ),
    (
        "inter_inf",
        |b, f, _| b[116..120].copy_from_slice(&f(f32::NEG_INFINITY)),
        &["scl_inter = -inf"],
    ),
    (
        "data_short",
        |b, _, _| b.truncate(b.len() - 3),
        &["truncated data"],
    ),
    (
        "header_cut",
        |b, _, _| b.truncate(200),
        &["truncated NIfTI-1 header"],
    ),
    (
        "four_d_missing_volume",
        |b, _, i| {
            b[40..42].copy_from_slice(&i(4));
            b[48..50].copy_from_slice(&i(2));
        },
        &["truncated data"],
    ),
];

#[test]
fn nifti1_headers_in_both_byte_orders() {
    let tmp = tempfile::tempdir().unwrap();
    for order in [Order::Little, Order::Big] {
        for (name, edit, needles) in NIFTI1_CASES {
            let file = tmp.path().join(format!("{name}-{order:?}.nii"));
            write(&file, &nifti1(order, &|b, f, i| edit(b, f, i)));
            let mut words = vec![file.to_str().unwrap()];
            words.extend_from_slice(needles);
            refused(&["inspect", file.to_str().unwrap()], &words);
        }
    }
    // A 4-D image where a 3-D volume is expected names the extra dimension.
    let four = tmp.path().join("four.nii");
    write(
        &four,
        &nifti1(Order::Little, &|b, _, i| {
            b[40..42].copy_from_slice(&i(4));
            b[48..50].copy_from_slice(&i(2));
            b.extend_from_slice(&[0; 16]);
        }),
    );
    let e = dsma_data::nifti_io::read_volume(&four)
        .unwrap_err()
        .to_string();
    assert!(e.contains("four.nii") && e.contains("dim[4] = 2"), "{e}");
}

/// A 2×2×1 float32 NIfTI-2 file in `order`, edited through byte offsets of nifti2.h.
fn nifti2(order: Order, edit: &dyn Fn(&mut Vec<u8>)) -> Vec<u8> {
    let big = order == Order::Big;
    let i64b = |v: i64| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let f64b = |v: f64| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut h = vec![0u8; 540];
    h[0..4].copy_from_slice(&if big {
        540i32.to_be_bytes()
    } else {
        540i32.to_le_bytes()
    });
    h[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&if big {
        16i16.to_be_bytes()
    } else {
        16i16.to_le_bytes()
    });
    h[14..16].copy_from_slice(&if big {
        32i16.to_be_bytes()
    } else {
        32i16.to_le_bytes()
    });
    for (k, d) in [3i64, 2, 2, 1, 1, 1, 1, 1].iter().enumerate() {
        h[16 + 8 * k..24 + 8 * k].copy_from_slice(&i64b(*d));
        h[104 + 8 * k..112 + 8 * k].copy_from_slice(&f64b(1.0));
    }
    h[168..176].copy_from_slice(&i64b(544));
    h.extend_from_slice(&[0; 4]);
    for v in [1.0f32, 2.0, 3.0, 4.0] {
        h.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    edit(&mut h);
    h
}

#[test]
fn nifti2_headers_in_both_byte_orders() {
    let tmp = tempfile::tempdir().unwrap();
    type Edit2 = fn(&mut Vec<u8>, bool);
    let cases: &[(&str, Edit2, &[&str])] = &[
        (
            "magic",
            |b, _| b[4..8].copy_from_slice(b"xyz\0"),
            &["NIfTI-2 magic"],
        ),
        (
            "vox_offset_small",
            |b, big| {
                b[168..176].copy_from_slice(&if big {
                    100i64.to_be_bytes()
                } else {
                    100i64.to_le_bytes()
                })
            },
            &["vox_offset = 100", "544"],
        ),
        (
            "datatype",
            |b, big| {
                b[12..14].copy_from_slice(&if big {
                    1536i16.to_be_bytes()
                } else {
                    1536i16.to_le_bytes()
                })
            },
            &["datatype 1536"],
        ),
        (
            "header_cut",
            |b, _| b.truncate(300),
            &["truncated NIfTI-2 header"],
        ),
        (
            "data_short",
            |b, _| b.truncate(b.len() - 5),
            &["truncated data"],
        ),
        (
            "dim0",
            |b, big| {
                b[16..24].copy_from_slice(&if big {
                    9i64.to_be_bytes()
                } else {
                    9i64.to_le_bytes()
                })
            },
            &["dim[0] = 9"],
        ),
    ];
    for order in [Order::Little, Order::Big] {
        let big = order == Order::Big;
        for (name, edit, needles) in cases {
            let file = tmp.path().join(format!("{name}-{order:?}.nii"));
            write(&file, &nifti2(order, &|b| edit(b, big)));
            let mut words = vec![file.to_str().unwrap()];
            words.extend_from_slice(needles);
            refused(&["inspect", file.to_str().unwrap()], &words);
        }
    }
}

#[test]
fn gzip_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = nifti1(Order::Little, &|_, _, _| {});
    let full = gzip(&plain);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("magic_only", vec![0x1f, 0x8b]),
        ("garbage", vec![0x1f, 0x8b, 8, 0, 9, 9, 9, 9, 9, 9, 9, 9]),
        ("cut_in_header", full[..20].to_vec()),
        ("cut_in_data", full[..full.len() - 10].to_vec()),
        ("crc", {
            let mut b = full.clone();
            let n = b.len();
            b[n - 8] ^= 0xff;
            b
        }),
        ("not_nifti_inside", gzip(b"hello, not a NIfTI file at all")),
    ];
    for (name, bytes) in cases {
        let file = tmp.path().join(format!("{name}.nii.gz"));
        write(&file, &bytes);
        refused(
            &["inspect", file.to_str().unwrap()],
            &[file.to_str().unwrap()],
        );
    }
}

fn yaml(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn experiment_files_and_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let q = "experiments/quickstart.yaml";
    // Overrides of the quickstart that must be refused, with the words the message names.
    for (set, needles) in [
        ("train.stage1.lr=0", &["train.stage1.lr", "0"][..]),
        ("train.stage2.lr=-1e-4", &["train.stage2.lr"]),
        ("train.batch=0", &["train.batch", "0"]),
        ("train.ema_decay=1.0", &["train.ema_decay", "[0, 1)"]),
        ("eval.threshold=1.5", &["eval.threshold", "1.5"]),
        ("eval.window.overlap=-0.1", &["eval.window.overlap"]),
        ("eval.window.patch=[0,16,16]", &["eval.window.patch"]),
        ("train.stage1.epochs=-1", &["train.stage1.epochs", "-1"]),
        ("train.stage1.epochs=many", &["train.stage1.epochs"]),
        ("train.stage1.epocs=3", &["epocs"]),
        ("rows.1.synthesizer.name=dts", &["dts", "dtss"]),
        ("rows.1.weighter.params.beta=-1", &["beta"]),
        ("model.name=unet", &["unet", "unet3d"]),
        ("model.params.depth=0", &["depth"]),
        ("model.params.out_channels=1", &["out_channels"]),
        ("rows.1.label=baseline", &["baseline", "twice"]),
        ("rows.5.label=x", &["index 5"]),
        ("repeats=0", &["repeats"]),
        (
            "datasets.0.labels=brats2024",
            &["brats2024", "not supported"],
        ),
        ("datasets.0.labels=kits", &["kits"]),
        ("train.patch.size=[0,32,32]", &["train.patch"]),
        ("nonsense", &["KEY=VALUE"]),
        ("train.scoring=box", &["train.scoring", "box", "tumour"]),
        (
            "reference={source: x, dsc: {Nowhere: {baseline: [1, 2, 3, 4]}}}",
            &["reference.dsc.Nowhere", "no dataset"],
        ),
        (
            "reference={source: x, dsc: {Phantom: {nobody: [1, 2, 3, 4]}}}",
            &["reference.dsc.Phantom.nobody", "no row"],
        ),
        (
            "reference={source: x, dsc: {Phantom: {baseline: [1, 2, 3, 400]}}}",
            &["400", "percent"],
        ),
    ] {
        refused(&["validate", q, set], needles);
    }
    // Whole files.
    for (name, text, needles) in [
        (
            "tabs.yaml",
            "name: x\n\trows: []\n",
            &["tabs.yaml", "line 2"][..],
        ),
        ("list.yaml", "- a\n- b\n", &["list.yaml", "mapping"]),
        ("empty.yaml", "", &["empty.yaml"]),
        (
            "missing_train.yaml",
            "name: x\ndatasets: []\nmodel: {name: unet3d}\nrows: []\n",
            &["missing_train.yaml", "missing field `train`"],
        ),
        (
            "cycle_a.yaml",
            "extends: cycle_b.yaml\nname: a\n",
            &["cycle"],
        ),
        (
            "missing_base.yaml",
            "extends: nowhere.yaml\nname: a\n",
            &["nowhere.yaml"],
        ),
    ] {
        let p = yaml(tmp.path(), name, text);
        if name == "cycle_a.yaml" {
            yaml(
                tmp.path(),
                "cycle_b.yaml",
                "extends: cycle_a.yaml\nname: b\n",
            );
        }
        refused(&["validate", p.to_str().unwrap()], needles);
    }
}

#[test]
fn command_line_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let q = "experiments/quickstart.yaml";
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["phantom", "--out", o, "--size", "1,2"],
            &["three comma-separated"],
        ),
        (&["phantom", "--out", o, "--size", "64,64,x"], &["`x`"]),
        (
            &["phantom", "--out", o, "--size", "4,64,64"],
            &["phantom size"],
        ),
        (&["phantom", "--out", o, "--cases", "0"], &["0"]),
        (&["weights", "--real", "0.2,-0.5"], &["--real", "-0.5"]),
        (
            &["weights", "--synthetic", "0.5"],
            &["--synthetic needs --real"],
        ),
        (
            &["weights", "--real", "0.5", "--synthetic", "2"],
            &["--synthetic", "2"],
        ),
        (&["run", q, "--shard", "3/2"], &["3/2"]),
        (&["run", q, "--shard", "0/2"], &["0/2"]),
        (&["run", q, "--shard", "a/b"], &["a/b"]),
        (
            &["data", "check", "/definitely/not/here"],
            &["/definitely/not/here"],
        ),
        (
            &["data", "check", ".", "--labels", "brats2099"],
            &["brats2099"],
        ),
        (
            &[
                "eval",
                "--pred",
                "/nope/p.nii.gz",
                "--label",
                "/nope/l.nii.gz",
            ],
            &["/nope/"],
        ),
        (
            &["inspect", "/definitely/not/here.nii"],
            &["/definitely/not/here.nii"],
        ),
    ];
    for (args, needles) in cases {
        refused(args, needles);
    }
    assert!(!out.join("Phantom_000").exists(), "no partial output");
}

/// Directories, devices and oversized files where a file is expected.
#[test]
fn folders_devices_and_oversized_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a-folder.nii.gz");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    refused(&["inspect", d], &[d]);
    refused(&["validate", d], &[d, "not a regular file"]);
    let zero = yaml(tmp.path(), "zero.yaml", "extends: /dev/zero\nname: x\n");
    refused(
        &["validate", zero.to_str().unwrap()],
        &["/dev/zero", "not a regular file"],
    );
    let big = tmp.path().join("big.yaml");
    std::fs::write(&big, format!("name: x\n# {}\n", "y".repeat(2 << 20))).unwrap();
    refused(
        &["validate", big.to_str().unwrap()],
        &["big.yaml", "at most 1048576"],
    );
}
