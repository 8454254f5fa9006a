//! Test fixtures of the data layer, built independently of the code under test: NIfTI files byte by
//! byte, small phantom datasets, a Decathlon Task01 folder. The CLI tests include this file too
//! (`tests/cli/support.rs`).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// Byte order for hand-built files.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Order {
    Little,
    Big,
}

/// A NIfTI-1 file built byte by byte, independent of the code under test.
pub struct Nifti1 {
    pub order: Order,
    pub dim: [i16; 8],
    pub datatype: i16,
    pub bitpix: i16,
    pub pixdim: [f32; 8],
    pub scl_slope: f32,
    pub scl_inter: f32,
    pub qform_code: i16,
    pub sform_code: i16,
    pub srow: [[f32; 4]; 3],
    /// Bytes of header extensions (after the 4-byte extension flag); empty = none.
    pub extension: Vec<u8>,
}

impl Nifti1 {
    pub fn new(dims: [usize; 3], datatype: i16, bitpix: i16) -> Self {
        Nifti1 {
            order: Order::Little,
            dim: [
                3,
                dims[0] as i16,
                dims[1] as i16,
                dims[2] as i16,
                1,
                1,
                1,
                1,
            ],
            datatype,
            bitpix,
            pixdim: [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            scl_slope: 0.0,
            scl_inter: 0.0,
            qform_code: 0,
            sform_code: 1,
            srow: [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
            ],
            extension: vec![],
        }
    }

    fn i16b(&self, v: i16) -> [u8; 2] {
        if self.order == Order::Big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn i32b(&self, v: i32) -> [u8; 4] {
        if self.order == Order::Big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn f32b(&self, v: f32) -> [u8; 4] {
        if self.order == Order::Big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// Header + extension flag (+ extension) + `data` (already in the file's byte order).
    pub fn bytes(&self, data: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 348];
        let mut put = |at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
        put(0, &self.i32b(348));
        for (i, d) in self.dim.iter().enumerate() {
            put(40 + 2 * i, &self.i16b(*d));
        }
        put(70, &self.i16b(self.datatype));
        put(72, &self.i16b(self.bitpix));
        for (i, p) in self.pixdim.iter().enumerate() {
            put(76 + 4 * i, &self.f32b(*p));
        }
        let ext_len = if self.extension.is_empty() {
            0
        } else {
            self.extension.len()
        };
        let vox_offset = 352 + ext_len;
        put(108, &self.f32b(vox_offset as f32));
        put(112, &self.f32b(self.scl_slope));
        put(116, &self.f32b(self.scl_inter));
        put(252, &self.i16b(self.qform_code));
        put(254, &self.i16b(self.sform_code));
        for (r, row) in self.srow.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, &self.f32b(*v));
            }
        }
        put(344, b"n+1\0");
        let mut out = h;
        if self.extension.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 0]);
        } else {
            out.extend_from_slice(&[1, 0, 0, 0]);
            out.extend_from_slice(&self.extension);
        }
        out.extend_from_slice(data);
        out
    }
}

/// A well-formed header extension of `len` bytes (a multiple of 16): esize, ecode 6 (comment), payload.
pub fn comment_extension(len: usize, order: Order) -> Vec<u8> {
    assert!(len.is_multiple_of(16) && len >= 16);
    let mut e = vec![0u8; len];
    let (esize, ecode) = if order == Order::Big {
        ((len as i32).to_be_bytes(), 6i32.to_be_bytes())
    } else {
        ((len as i32).to_le_bytes(), 6i32.to_le_bytes())
    };
    e[..4].copy_from_slice(&esize);
    e[4..8].copy_from_slice(&ecode);
    e[8..8 + 5].copy_from_slice(b"hello");
    e
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, bytes).expect("write");
}

/// Writes a small phantom dataset and returns its folder (inside `tmp`).
pub fn phantom_dataset(tmp: &Path, cases: usize, size: [usize; 3], seed: u64) -> PathBuf {
    let out = tmp.join("phantom");
    let spec = dsma_data::phantom::PhantomSpec {
        cases,
        size,
        spacing: [1.0, 1.0, 1.0],
        seed,
    };
    dsma_data::phantom::write_dataset(&out, &spec).expect("phantom");
    out
}

/// The file of modality (or `seg`) `suffix` of case `case` in a BraTS-layout folder.
pub fn case_file(root: &Path, case: &str, suffix: &str) -> PathBuf {
    root.join(case).join(format!("{case}_{suffix}.nii.gz"))
}

/// A Decathlon Task01 folder with one case (`imagesTr/BRATS_001.nii`, 4-D, and its labels) in
/// `root`; returns the image path.
pub fn msd_task01(root: &Path) -> PathBuf {
    let mut image = Nifti1::new([3, 2, 1], 16, 32);
    image.dim[0] = 4;
    image.dim[4] = 4;
    let values: Vec<u8> = [10.0f32, 20.0, 30.0, 40.0]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, 6))
        .flat_map(|v: f32| v.to_le_bytes())
        .collect();
    write(&root.join("imagesTr/BRATS_001.nii"), &image.bytes(&values));
    write(
        &root.join("imagesTr/._BRATS_001.nii"),
        b"Mac OS X resource fork",
    );
    let labels = Nifti1::new([3, 2, 1], 2, 8);
    write(
        &root.join("labelsTr/BRATS_001.nii"),
        &labels.bytes(&[0, 1, 2, 3, 3, 1]),
    );
    let json = serde_json::json!({
        "name": "BRATS",
        "modality": {"0": "T2w", "1": "FLAIR", "2": "T1w", "3": "t1gd"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": 1,
        "training": [{"image": "./imagesTr/BRATS_001.nii", "label": "./labelsTr/BRATS_001.nii"}],
        "test": []
    });
    write(&root.join("dataset.json"), json.to_string().as_bytes());
    root.join("imagesTr/BRATS_001.nii")
}
