//! Helpers shared by the integration tests: hand-built NIfTI files and small datasets.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    assert!(len % 16 == 0 && len >= 16);
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

/// Runs the `dsma` binary; returns (exit code, stdout, stderr).
pub fn dsma(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(args)
        .output()
        .expect("run dsma");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

/// A tiny experiment (phantom 24×24×16, U-Net base 4 depth 2, 16³ patches).
pub fn tiny_experiment(dir: &Path, stage1: usize, stage2: usize, rows: &str) -> PathBuf {
    let phantom = dir.join("phantom");
    let text = format!(
        "name: tiny
datasets:
  - name: Phantom
    kind: phantom
    path: {}
    phantom: {{cases: 6, size: [24, 24, 16], seed: 3}}
model: {{name: unet3d, params: {{base_width: 4, depth: 2}}}}
train:
  stage1: {{epochs: {stage1}, lr: 3.0e-3}}
  stage2: {{epochs: {stage2}, lr: 1.0e-4}}
  batch: 2
  patch: {{size: [16, 16, 16], tumour_share: 1.0}}
  checkpoint_every: 1
eval:
  window: {{patch: [16, 16, 16], overlap: 0.25}}
rows:
{rows}",
        phantom.display()
    );
    let path = dir.join("tiny.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `exp` into `out` with the test-only hook `DSMA_TEST_ABORT_AT=point` (the process aborts
/// there, as `kill -9` would, with no timing race); returns its exit status.
pub fn run_aborted_at(exp: &str, out: &Path, point: &str) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_dsma"))
        .args(["run", exp, "--out", out.to_str().unwrap(), "--quiet"])
        // A shared root inside `out`, so an uninterrupted run beside it is not found finished.
        .args(["--cache", out.join("cache").to_str().unwrap()])
        .env("DSMA_TEST_ABORT_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// `dsma run exp --out out --cache out/cache ARGS`: a shared root of its own inside `out`, so an
/// identical run beside it (an uninterrupted reference) is not found finished.
pub fn run_own_root(exp: &str, out: &Path, args: &[&str]) -> (i32, String, String) {
    let cache = out.join("cache");
    let mut all = vec!["run", exp, "--out", out.to_str().unwrap()];
    all.extend(["--cache", cache.to_str().unwrap()]);
    all.extend_from_slice(args);
    dsma(&all)
}
