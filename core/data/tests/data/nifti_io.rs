//! NIfTI reading and writing: every datatype, scaling, gzip, NIfTI-2, big-endian, extensions, errors.
#![allow(clippy::needless_range_loop)]

use crate::fixtures::{comment_extension, gzip, write, Nifti1, Order};
use dsma_data::nifti_io::{
    read_header, read_labels, read_volume, write_nifti2_f32, write_volume, ByteOrder,
};
use dsma_data::volume::{Grid, Qform};
use ndarray::{Array3, Array4};

/// Writes `data` (x, y, z) with the `nifti` crate's own writer, then reads it back with ours.
fn crate_round_trip<T>(name: &str, data: Array3<T>, gz: bool)
where
    T: nifti::DataElement + bytemuck::Pod + Into<f64>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(if gz {
        format!("{name}.nii.gz")
    } else {
        format!("{name}.nii")
    });
    nifti::writer::WriterOptions::new(&path)
        .write_nifti(&data)
        .unwrap();
    let vol = read_volume(&path).unwrap();
    let (x, y, z) = data.dim();
    assert_eq!(vol.grid.dims, [x, y, z], "{name}");
    for ((i, j, k), v) in data.indexed_iter() {
        let expected: f64 = (*v).into();
        assert_eq!(
            vol.data[[k, j, i]] as f64,
            expected as f32 as f64,
            "{name} at {i},{j},{k}"
        );
    }
}

fn ramp<T>(f: impl Fn(usize) -> T) -> Array3<T> {
    Array3::from_shape_fn((5, 4, 3), |(i, j, k)| f(i + 5 * j + 20 * k))
}

#[test]
fn every_datatype_round_trips_plain_and_gzipped() {
    for gz in [false, true] {
        crate_round_trip("u8", ramp(|n| n as u8), gz);
        crate_round_trip("i8", ramp(|n| n as i8 - 30), gz);
        crate_round_trip("i16", ramp(|n| n as i16 * 300 - 9000), gz);
        crate_round_trip("u16", ramp(|n| n as u16 * 1000), gz);
        crate_round_trip("i32", ramp(|n| n as i32 * 100_000 - 3_000_000), gz);
        crate_round_trip("u32", ramp(|n| n as u32 * 70_000), gz);
        crate_round_trip("f32", ramp(|n| n as f32 * 0.25 - 7.5), gz);
        crate_round_trip("f64", ramp(|n| n as f64 * 1e-3 - 0.02), gz);
    }
}

#[test]
fn scl_slope_and_inter_are_applied_and_zero_slope_means_unscaled() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<i16> = vec![-2, 0, 3, 100, 7, 8, 9, 10];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut h = Nifti1::new([2, 2, 2], 4, 16);
    h.scl_slope = 0.5;
    h.scl_inter = -10.0;
    let p = dir.path().join("scaled.nii");
    write(&p, &h.bytes(&data));
    let vol = read_volume(&p).unwrap();
    let got: Vec<f32> = vol.data.iter().copied().collect();
    let want: Vec<f32> = values.iter().map(|&v| v as f32 * 0.5 - 10.0).collect();
    assert_eq!(got, want);

    h.scl_slope = 0.0;
    h.scl_inter = 5.0;
    write(&p, &h.bytes(&data));
    let got: Vec<f32> = read_volume(&p).unwrap().data.iter().copied().collect();
    assert_eq!(got, values.iter().map(|&v| v as f32).collect::<Vec<_>>());
}

#[test]
fn big_endian_file_with_header_extension_reads_correctly_gz_and_plain() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..24).map(|i| i as f32 * 1.5 - 4.0).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut h = Nifti1::new([4, 3, 2], 16, 32);
    h.order = Order::Big;
    h.extension = comment_extension(32, Order::Big);
    h.pixdim = [1.0, 0.9, 1.1, 2.5, 0.0, 0.0, 0.0, 0.0];
    h.srow = [
        [0.9, 0.0, 0.0, -10.0],
        [0.0, 1.1, 0.0, 20.0],
        [0.0, 0.0, 2.5, -30.0],
    ];
    let bytes = h.bytes(&data);
    for (name, content) in [("be.nii", bytes.clone()), ("be.nii.gz", gzip(&bytes))] {
        let p = dir.path().join(name);
        write(&p, &content);
        let vol = read_volume(&p).unwrap();
        assert_eq!(vol.header.byte_order, ByteOrder::Big);
        assert_eq!(vol.header.vox_offset, 352 + 32);
        assert_eq!(vol.data.dim(), (2, 3, 4));
        assert_eq!(vol.data.iter().copied().collect::<Vec<_>>(), values);
        assert_eq!(vol.grid.spacing, [0.9f32 as f64, 1.1f32 as f64, 2.5]);
        assert_eq!(vol.grid.affine[1][3], 20.0);
    }
}

#[test]
fn four_d_with_trailing_singleton_is_a_volume_but_a_real_4d_series_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.nii");
    nifti::writer::WriterOptions::new(&p)
        .write_nifti(&Array4::<f32>::ones((3, 2, 2, 1)))
        .unwrap();
    let vol = read_volume(&p).unwrap();
    assert_eq!(vol.grid.dims, [3, 2, 2]);
    nifti::writer::WriterOptions::new(&p)
        .write_nifti(&Array4::<f32>::ones((3, 2, 2, 2)))
        .unwrap();
    let err = read_volume(&p).unwrap_err().to_string();
    assert!(err.contains("t.nii") && err.contains("dim[4] = 2"), "{err}");
}

fn oblique_grid() -> Grid {
    // A 30° rotation about z with anisotropic spacing, as a real scanner affine might have.
    let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
    let sp = [0.9, 1.2, 3.0];
    let half = 15f64.to_radians();
    Grid {
        dims: [6, 5, 4],
        spacing: sp,
        affine: [
            [c * sp[0], -s * sp[1], 0.0, -40.5],
            [s * sp[0], c * sp[1], 0.0, 12.25],
            [0.0, 0.0, sp[2], -7.0],
            [0.0, 0.0, 0.0, 1.0],
        ],
        sform_code: 1,
        qform: Some(Qform {
            code: 1,
            quatern: [0.0, 0.0, half.sin()],
            qfac: 1.0,
            offset: [-40.5, 12.25, -7.0],
        }),
    }
}

#[test]
fn written_files_keep_affine_spacing_and_qform() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid();
    let data = Array3::from_shape_fn((4, 5, 6), |(z, y, x)| (x + 10 * y + 100 * z) as f32);
    let p = dir.path().join("out.nii.gz");
    write_volume(&p, data.view(), &grid).unwrap();
    let vol = read_volume(&p).unwrap();
    assert_eq!(vol.data, data);
    assert_eq!(vol.grid.dims, grid.dims);
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (vol.grid.affine[r][c] - grid.affine[r][c]).abs() < 1e-5,
                "affine[{r}][{c}]"
            );
        }
    }
    // The qform written must describe the same space as the sform, so viewers agree.
    let q = vol.grid.qform.expect("qform written");
    let m = dsma_data::volume::qform_affine(&q, vol.grid.spacing);
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (m[r][c] - grid.affine[r][c]).abs() < 1e-5,
                "qform affine[{r}][{c}]: {} vs {}",
                m[r][c],
                grid.affine[r][c]
            );
        }
    }
    let labels = Array3::from_shape_fn((4, 5, 6), |(z, _, x)| if x == z { 4u8 } else { 0 });
    let lp = dir.path().join("seg.nii.gz");
    write_volume(&lp, labels.view(), &grid).unwrap();
    assert_eq!(read_header(&lp).unwrap().datatype, 2);
    assert_eq!(read_labels(&lp).unwrap().1, labels);
}

/// What an independent reader (the NIfTI-1 standard's byte offsets, flate2 for gzip; no dsma
/// code, no `nifti` crate) finds in a file: dims, datatype, pixdim, vox_offset, sform code and
/// rows, qform code, and the voxel values as f64.
struct ByHand {
    dim: [i16; 4],
    datatype: i16,
    pixdim: [f32; 3],
    vox_offset: f32,
    qform_code: i16,
    sform_code: i16,
    srow: [[f32; 4]; 3],
    values: Vec<f64>,
}

fn read_by_hand(path: &std::path::Path) -> ByHand {
    use std::io::Read;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(
        i32::from_le_bytes(bytes[0..4].try_into().unwrap()),
        348,
        "sizeof_hdr"
    );
    assert_eq!(&bytes[344..348], b"n+1\0", "magic");
    let i16_at = |o: usize| i16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let f32_at = |o: usize| f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let dim = [i16_at(40), i16_at(42), i16_at(44), i16_at(46)];
    let datatype = i16_at(70);
    let vox_offset = f32_at(108);
    let n = (dim[1] as usize) * (dim[2] as usize) * (dim[3] as usize);
    let data = &bytes[vox_offset as usize..];
    let values = match datatype {
        2 => data[..n].iter().map(|&v| v as f64).collect(),
        16 => (0..n)
            .map(|i| f32_at(vox_offset as usize + 4 * i) as f64)
            .collect(),
        other => panic!("datatype {other} not expected here"),
    };
    let srow = [0, 1, 2].map(|r| [0, 1, 2, 3].map(|c| f32_at(280 + 16 * r + 4 * c)));
    ByHand {
        dim,
        datatype,
        pixdim: [f32_at(80), f32_at(84), f32_at(88)],
        vox_offset,
        qform_code: i16_at(252),
        sform_code: i16_at(254),
        srow,
        values,
    }
}

#[test]
fn written_files_read_the_same_by_an_independent_reader() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid();
    // x fastest on disk: the value of voxel (x, y, z) is x + 10 y + 100 z at index x + 6 (y + 5 z).
    let data = Array3::from_shape_fn((4, 5, 6), |(z, y, x)| (x + 10 * y + 100 * z) as f32 * 0.5);
    let p = dir.path().join("image.nii.gz");
    write_volume(&p, data.view(), &grid).unwrap();
    let h = read_by_hand(&p);
    assert_eq!(h.dim, [3, 6, 5, 4]);
    assert_eq!(h.datatype, 16);
    assert!(h.vox_offset >= 352.0);
    assert_eq!(h.pixdim, [0.9, 1.2, 3.0]);
    assert_eq!((h.sform_code, h.qform_code), (1, 1));
    for r in 0..3 {
        for c in 0..4 {
            let want = grid.affine[r][c] as f32;
            assert!(
                (h.srow[r][c] - want).abs() < 1e-5,
                "srow[{r}][{c}]: {}",
                h.srow[r][c]
            );
        }
    }
    for z in 0..4 {
        for y in 0..5 {
            for x in 0..6 {
                let want = (x + 10 * y + 100 * z) as f64 * 0.5;
                assert_eq!(h.values[x + 6 * (y + 5 * z)], want, "voxel {x},{y},{z}");
            }
        }
    }
    let labels = Array3::from_shape_fn((4, 5, 6), |(z, _, x)| if x == z { 4u8 } else { 0 });
    let lp = dir.path().join("seg.nii.gz");
    write_volume(&lp, labels.view(), &grid).unwrap();
    let h = read_by_hand(&lp);
    assert_eq!(h.datatype, 2);
    let fours: Vec<usize> = h
        .values
        .iter()
        .enumerate()
        .filter(|(_, &v)| v == 4.0)
        .map(|(i, _)| i)
        .collect();
    let want: Vec<usize> = (0..4)
        .map(|z| z + 6 * 5 * z)
        .flat_map(|i| (0..5).map(move |y| i + 6 * y))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(fours, want);
}

#[test]
fn nifti2_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let grid = oblique_grid();
    let data = Array3::from_shape_fn((4, 5, 6), |(z, y, x)| {
        x as f32 - y as f32 * 0.5 + z as f32 * 9.0
    });
    let p = dir.path().join("two.nii");
    write_nifti2_f32(&p, data.view(), &grid).unwrap();
    let vol = read_volume(&p).unwrap();
    assert_eq!(vol.header.version, 2);
    assert_eq!(vol.data, data);
    assert_eq!(vol.grid.affine, grid.affine);
    let gz = dir.path().join("two.nii.gz");
    write(&gz, &gzip(&std::fs::read(&p).unwrap()));
    assert_eq!(read_volume(&gz).unwrap().data, data);
}

#[test]
fn truncated_garbage_and_unsupported_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = vec![0u8; 2 * 2 * 2 * 4];
    let full = Nifti1::new([2, 2, 2], 16, 32).bytes(&data);

    let short = dir.path().join("short.nii");
    write(&short, &full[..full.len() - 5]);
    let e = read_volume(&short).unwrap_err().to_string();
    assert!(e.contains("short.nii") && e.contains("truncated"), "{e}");

    let gz = gzip(&full);
    let cut = dir.path().join("cut.nii.gz");
    write(&cut, &gz[..gz.len() / 2]);
    let e = read_volume(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.nii.gz") && e.contains("gzip"), "{e}");

    let junk = dir.path().join("junk.nii");
    write(
        &junk,
        b"this is not a nifti file at all, just some words and bytes",
    );
    let e = read_volume(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.nii") && e.contains("not a NIfTI"), "{e}");

    let complex = dir.path().join("complex.nii");
    write(&complex, &Nifti1::new([2, 2, 2], 32, 64).bytes(&[0u8; 64]));
    let e = read_volume(&complex).unwrap_err().to_string();
    assert!(
        e.contains("complex.nii") && e.contains("datatype 32"),
        "{e}"
    );

    let missing = dir.path().join("missing.nii.gz");
    let e = read_volume(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.nii.gz"), "{e}");
}

#[test]
fn label_files_must_hold_integers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seg.nii");
    let values: Vec<u8> = [0.0f32, 1.0, 2.0, 4.5, 0.0, 0.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write(&p, &Nifti1::new([2, 2, 2], 16, 32).bytes(&values));
    let e = read_labels(&p).unwrap_err().to_string();
    assert!(e.contains("seg.nii") && e.contains("4.5"), "{e}");
}
