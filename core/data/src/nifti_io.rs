//! NIfTI-1 and NIfTI-2 reading (`.nii`, `.nii.gz`, either byte order) and `.nii.gz` writing.
//!
//! NIfTI-1 headers are parsed by the `nifti` crate; the crate reads NIfTI-1 only, so the 540-byte
//! NIfTI-2 header is parsed here. Voxel data of both versions is decoded here, in parallel, straight
//! from the decompressed bytes into an `[z, y, x]` array (NIfTI's on-disk order), applying
//! `scl_slope`/`scl_inter` as the standard says (slope 0 means "unscaled").

use std::io::Read;
use std::path::Path;

use ndarray::{Array3, Array4, ArrayView3};
use rayon::prelude::*;
use serde::Serialize;

use crate::atomic_file::write_atomic_with;
use crate::error::{CoreError, Result};
use crate::volume::{qform_affine, Grid, Qform};

/// A NIfTI file name without `.nii` / `.nii.gz` (`BRATS_001.nii.gz` → `BRATS_001`).
pub fn nifti_stem(name: &str) -> &str {
    name.trim_end_matches(".gz").trim_end_matches(".nii")
}

/// Byte order of a NIfTI file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// The header facts dsma uses, common to NIfTI-1 and NIfTI-2.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NiftiHeader {
    /// 1 or 2.
    pub version: u8,
    /// Byte order of header and data.
    pub byte_order: ByteOrder,
    /// `dim[0..8]` as stored.
    pub dim: [i64; 8],
    /// NIfTI datatype code.
    pub datatype: i16,
    /// Bits per voxel.
    pub bitpix: i16,
    /// `pixdim[0..8]` as stored.
    pub pixdim: [f64; 8],
    /// Byte offset of the voxel data.
    pub vox_offset: u64,
    /// Data scaling slope (0 = unscaled).
    pub scl_slope: f64,
    /// Data scaling intercept.
    pub scl_inter: f64,
    /// qform_code.
    pub qform_code: i16,
    /// sform_code.
    pub sform_code: i16,
    /// Quaternion b, c, d.
    pub quatern: [f64; 3],
    /// qoffset x, y, z.
    pub qoffset: [f64; 3],
    /// sform rows x, y, z.
    pub srow: [[f64; 4]; 3],
    /// Units code of space and time.
    pub xyzt_units: i32,
    /// Free-text description.
    pub descrip: String,
    /// The fields dsma does not interpret, kept for `dsma inspect`.
    pub other: OtherFields,
}

/// The header fields dsma reads but does not use (printed by `dsma inspect`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OtherFields {
    /// `magic` (`n+1`, `ni1`, `n+2`, `ni2`).
    pub magic: String,
    /// `dim_info` (frequency, phase and slice dimensions, 2 bits each).
    pub dim_info: u8,
    /// `intent_code`.
    pub intent_code: i32,
    /// `intent_p1`, `intent_p2`, `intent_p3`.
    pub intent_p: [f64; 3],
    /// `intent_name`.
    pub intent_name: String,
    /// `slice_code`.
    pub slice_code: i32,
    /// `slice_start`.
    pub slice_start: i64,
    /// `slice_end`.
    pub slice_end: i64,
    /// `slice_duration`.
    pub slice_duration: f64,
    /// `cal_min`.
    pub cal_min: f64,
    /// `cal_max`.
    pub cal_max: f64,
    /// `toffset`.
    pub toffset: f64,
    /// `aux_file`.
    pub aux_file: String,
}

/// A NUL-terminated header string.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A voxel datatype dsma can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// NIFTI_TYPE_UINT8 (2).
    U8,
    /// NIFTI_TYPE_INT8 (256).
    I8,
    /// NIFTI_TYPE_INT16 (4).
    I16,
    /// NIFTI_TYPE_UINT16 (512).
    U16,
    /// NIFTI_TYPE_INT32 (8).
    I32,
    /// NIFTI_TYPE_UINT32 (768).
    U32,
    /// NIFTI_TYPE_FLOAT32 (16).
    F32,
    /// NIFTI_TYPE_FLOAT64 (64).
    F64,
}

impl DataType {
    /// Maps a NIfTI datatype code, or `None` when unsupported.
    pub fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => DataType::U8,
            256 => DataType::I8,
            4 => DataType::I16,
            512 => DataType::U16,
            8 => DataType::I32,
            768 => DataType::U32,
            16 => DataType::F32,
            64 => DataType::F64,
            _ => return None,
        })
    }

    /// NIfTI datatype code.
    pub fn code(self) -> i16 {
        match self {
            DataType::U8 => 2,
            DataType::I8 => 256,
            DataType::I16 => 4,
            DataType::U16 => 512,
            DataType::I32 => 8,
            DataType::U32 => 768,
            DataType::F32 => 16,
            DataType::F64 => 64,
        }
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::F64 => 8,
        }
    }

    /// Lower-case name (`uint8`, `int16`, `float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::U8 => "uint8",
            DataType::I8 => "int8",
            DataType::I16 => "int16",
            DataType::U16 => "uint16",
            DataType::I32 => "int32",
            DataType::U32 => "uint32",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
        }
    }
}

/// Name of a datatype code for display (`unsupported(N)` for codes dsma cannot read).
pub fn datatype_name(code: i16) -> String {
    DataType::from_code(code)
        .map(|d| d.name().to_string())
        .unwrap_or_else(|| format!("unsupported({code})"))
}

impl NiftiHeader {
    /// Spatial size (x, y, z) of a 3-D volume; 2-D images count as one slice and trailing singleton
    /// dimensions (4-D with `dim[4] = 1`, ...) are accepted.
    pub fn spatial_dims(&self) -> std::result::Result<[usize; 3], String> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(format!("dim[0] = {ndim}, expected 1..=7"));
        }
        let mut dims = [1usize; 3];
        for i in 1..=ndim as usize {
            let d = self.dim[i];
            if d < 1 {
                return Err(format!("dim[{i}] = {d}, expected ≥ 1"));
            }
            if i <= 3 {
                dims[i - 1] = d as usize;
            } else if d != 1 {
                return Err(format!(
                    "dim[{i}] = {d}: a {ndim}-D image with more than one volume; expected a 3-D volume \
                     (trailing dimensions of size 1 are accepted)"
                ));
            }
        }
        Ok(dims)
    }

    /// Number of 3-D volumes: the product of `dim[4..=dim[0]]` (1 for a 3-D image).
    pub fn volume_count(&self) -> std::result::Result<usize, String> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(format!("dim[0] = {ndim}, expected 1..=7"));
        }
        let mut count = 1usize;
        for i in 4..=ndim as usize {
            let d = self.dim[i];
            if d < 1 {
                return Err(format!("dim[{i}] = {d}, expected ≥ 1"));
            }
            count = count.checked_mul(d as usize).ok_or_else(|| {
                format!(
                    "dim[4..] = {:?}: too many volumes",
                    &self.dim[4..=ndim as usize]
                )
            })?;
        }
        Ok(count)
    }

    /// The grid of each 3-D volume of an image of any dimension (dims beyond the third ignored).
    pub fn volume_grid(&self) -> std::result::Result<Grid, String> {
        let mut first = self.clone();
        first.dim[0] = first.dim[0].min(3);
        first.grid()
    }

    /// Voxel size (x, y, z) in the file's units, absolute values of pixdim\[1..=3\] (0 read as 1).
    pub fn spacing(&self) -> [f64; 3] {
        let f = |v: f64| {
            if v == 0.0 || !v.is_finite() {
                1.0
            } else {
                v.abs()
            }
        };
        [f(self.pixdim[1]), f(self.pixdim[2]), f(self.pixdim[3])]
    }

    /// The qform of this header, if qform_code > 0.
    pub fn qform(&self) -> Option<Qform> {
        (self.qform_code > 0).then(|| Qform {
            code: self.qform_code,
            quatern: self.quatern,
            qfac: if self.pixdim[0] < 0.0 { -1.0 } else { 1.0 },
            offset: self.qoffset,
        })
    }

    /// Voxel → world affine: sform when sform_code > 0, else qform when qform_code > 0, else the
    /// NIfTI "method 1" scaling matrix.
    pub fn affine(&self) -> [[f64; 4]; 4] {
        if self.sform_code > 0 {
            let mut m = [[0.0; 4]; 4];
            m[..3].copy_from_slice(&self.srow);
            m[3][3] = 1.0;
            m
        } else if let Some(q) = self.qform() {
            qform_affine(&q, self.spacing())
        } else {
            Grid::axis_aligned([1, 1, 1], self.spacing()).affine
        }
    }

    /// The voxel grid this header describes.
    pub fn grid(&self) -> std::result::Result<Grid, String> {
        Ok(Grid {
            dims: self.spatial_dims()?,
            spacing: self.spacing(),
            affine: self.affine(),
            sform_code: self.sform_code,
            qform: self.qform(),
        })
    }
}

/// A volume read from disk: header and scaled intensities as `[z, y, x]`.
#[derive(Debug, Clone)]
pub struct NiftiVolume {
    /// The parsed header.
    pub header: NiftiHeader,
    /// Voxel grid (size, spacing, affine).
    pub grid: Grid,
    /// Scaled voxel values.
    pub data: Array3<f32>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the whole file at `path`, gunzipping it when it is gzip data (whatever its name).
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    decompress(path, raw)
}

/// Gunzips `raw` (the bytes of the file at `path`, named in errors) when it is gzip data, inflating
/// no more than the NIfTI header inside says the image needs; other bytes come back unchanged.
pub fn decompress(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if raw.len() < 2 || raw[..2] != GZIP_MAGIC {
        return Ok(raw);
    }
    let corrupt =
        |e: std::io::Error| CoreError::nifti(path, format!("corrupt or truncated gzip data: {e}"));
    let mut decoder = flate2::bufread::MultiGzDecoder::new(raw.as_slice());
    // The header says how many bytes the image needs; inflate no more than that (the gzip
    // trailer's size field is not trusted: a small file may claim, or inflate to, gigabytes).
    let mut out = Vec::new();
    (&mut decoder)
        .take(n2::SIZE as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let limit = match parse_header(&out) {
        Ok(h) => image_bytes(&h).map_err(|p| CoreError::nifti(path, p))?,
        // Not a NIfTI header: the caller's parse reports it from what was read.
        Err(_) => return Ok(out),
    };
    if limit > MAX_IMAGE_BYTES {
        return Err(CoreError::nifti(
            path,
            format!(
                "the header describes {limit} bytes of image; at most {MAX_IMAGE_BYTES} are read"
            ),
        ));
    }
    out.reserve(limit.saturating_sub(out.len()).min(1 << 30));
    decoder
        .take(limit.saturating_sub(out.len()) as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    Ok(out)
}

/// The most image bytes (header and voxels) dsma reads from one file: 16 GiB.
const MAX_IMAGE_BYTES: usize = 16 << 30;

/// Bytes a file needs for its header and every voxel, with checked arithmetic.
fn image_bytes(h: &NiftiHeader) -> std::result::Result<usize, String> {
    let grid_voxels = h
        .volume_grid()?
        .dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let size = DataType::from_code(h.datatype).map_or(1, DataType::size);
    grid_voxels
        .and_then(|v| v.checked_mul(h.volume_count().ok()?))
        .and_then(|v| v.checked_mul(size))
        .and_then(|v| v.checked_add(usize::try_from(h.vox_offset).ok()?))
        .ok_or_else(|| {
            format!(
                "dims {:?}: the voxel count overflows",
                &h.dim[1..=h.dim[0].clamp(1, 7) as usize]
            )
        })
}

/// Reads only the header of a `.nii` / `.nii.gz` file.
pub fn read_header(path: &Path) -> Result<NiftiHeader> {
    let bytes = read_decompressed(path)?;
    parse_header(&bytes).map_err(|p| CoreError::nifti(path, p))
}

/// A decompressed file whose header is parsed and whose data size is checked, not yet decoded.
#[derive(Debug)]
pub struct RawNifti {
    /// The parsed header.
    pub header: NiftiHeader,
    /// Voxel grid (size, spacing, affine).
    pub grid: Grid,
    datatype: DataType,
    bytes: Vec<u8>,
}

impl RawNifti {
    /// Reads, decompresses and validates `path` (header, dimensions, datatype, data length).
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_bytes(path, read_decompressed(path)?)
    }

    /// Validates the decompressed bytes of the file at `path` (named in errors).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let header = parse_header(&bytes).map_err(|p| CoreError::nifti(path, p))?;
        let grid = header.grid().map_err(|p| CoreError::nifti(path, p))?;
        let datatype =
            check_data(&bytes, &header, grid.dims, 1).map_err(|p| CoreError::nifti(path, p))?;
        Ok(RawNifti {
            header,
            grid,
            datatype,
            bytes,
        })
    }

    /// Decodes the scaled voxel values into `dst` (x fastest); returns the number of NaN/inf values.
    pub fn decode_into(&self, dst: &mut [f32]) -> usize {
        decode_data(&self.bytes, &self.header, self.datatype, dst)
    }

    /// Decodes into a new `[z, y, x]` array; also returns the number of NaN/inf values.
    pub fn decode(&self) -> (Array3<f32>, usize) {
        let [x, y, z] = self.grid.dims;
        let mut out = Array3::<f32>::zeros((z, y, x));
        let bad = match out.as_slice_mut() {
            Some(slice) => self.decode_into(slice),
            None => 0,
        };
        (out, bad)
    }
}

/// Reads a `.nii` / `.nii.gz` volume as scaled f32 values.
pub fn read_volume(path: &Path) -> Result<NiftiVolume> {
    let raw = RawNifti::read(path)?;
    let (data, _) = raw.decode();
    Ok(NiftiVolume {
        header: raw.header,
        grid: raw.grid,
        data,
    })
}

/// An image of any dimension read as its 3-D volumes: `data` is `[volume, z, y, x]`, volumes in
/// file order (`dim[4]` fastest, then `dim[5]`, …).
#[derive(Debug, Clone)]
pub struct NiftiVolumes {
    /// The parsed header.
    pub header: NiftiHeader,
    /// The grid of each volume.
    pub grid: Grid,
    /// Scaled voxel values.
    pub data: Array4<f32>,
}

/// Reads every 3-D volume of a `.nii` / `.nii.gz` image of 1–7 dimensions (a 4-D multi-modal image
/// such as the Decathlon's, a 3-D volume as one volume).
pub fn read_volumes(path: &Path) -> Result<NiftiVolumes> {
    volumes_from_bytes(path, &read_decompressed(path)?)
}

/// [`read_volumes`] of the decompressed bytes of the file at `path` (named in errors).
pub fn volumes_from_bytes(path: &Path, bytes: &[u8]) -> Result<NiftiVolumes> {
    let header = parse_header(bytes).map_err(|p| CoreError::nifti(path, p))?;
    let grid = header
        .volume_grid()
        .map_err(|p| CoreError::nifti(path, p))?;
    let volumes = header
        .volume_count()
        .map_err(|p| CoreError::nifti(path, p))?;
    let datatype =
        check_data(bytes, &header, grid.dims, volumes).map_err(|p| CoreError::nifti(path, p))?;
    let [x, y, z] = grid.dims;
    let mut data = Array4::<f32>::zeros((volumes, z, y, x));
    if let Some(slice) = data.as_slice_mut() {
        decode_data(bytes, &header, datatype, slice);
    }
    Ok(NiftiVolumes { header, grid, data })
}

/// Reads a label map: every voxel must be an integer in 0..=255 after scaling.
pub fn read_labels(path: &Path) -> Result<(Grid, Array3<u8>)> {
    let vol = read_volume(path)?;
    let bad = vol
        .data
        .iter()
        .find(|&&v| !((0.0..=255.0).contains(&v) && v.fract() == 0.0));
    if let Some(v) = bad {
        return Err(CoreError::nifti(
            path,
            format!("label value {v} is not an integer in 0..=255"),
        ));
    }
    Ok((vol.grid, vol.data.mapv(|v| v as u8)))
}

fn parse_header(bytes: &[u8]) -> std::result::Result<NiftiHeader, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "file is {} bytes long, too short for a NIfTI header",
            bytes.len()
        ));
    }
    let le = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let be = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match (le, be) {
        (348, _) | (_, 348) => parse_nifti1(bytes),
        (540, _) => parse_nifti2(bytes, ByteOrder::Little),
        (_, 540) => parse_nifti2(bytes, ByteOrder::Big),
        _ => Err(format!(
            "not a NIfTI file: sizeof_hdr is {le} (little-endian) / {be} (big-endian), expected 348 (NIfTI-1) or 540 (NIfTI-2)"
        )),
    }
}

fn parse_nifti1(bytes: &[u8]) -> std::result::Result<NiftiHeader, String> {
    if bytes.len() < 348 {
        return Err(format!(
            "truncated NIfTI-1 header: {} of 348 bytes",
            bytes.len()
        ));
    }
    // The nifti crate takes a dim[0] outside 1..=7 as a sign of the other byte order and would
    // report on byte-swapped fields; sizeof_hdr has already fixed the order, so say it directly.
    let little = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == 348;
    let dim0 = if little {
        i16::from_le_bytes([bytes[40], bytes[41]])
    } else {
        i16::from_be_bytes([bytes[40], bytes[41]])
    };
    if !(1..=7).contains(&dim0) {
        return Err(format!("dim[0] = {dim0}, expected 1..=7"));
    }
    let h = nifti::NiftiHeader::from_reader(&bytes[..348])
        .map_err(|e| format!("invalid NIfTI-1 header: {e}"))?;
    let byte_order = match h.endianness {
        nifti::Endianness::Little => ByteOrder::Little,
        nifti::Endianness::Big => ByteOrder::Big,
    };
    let f = |v: f32| v as f64;
    let row = |r: [f32; 4]| r.map(f);
    let descrip_end = h
        .descrip
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(h.descrip.len());
    let vox_offset = h.vox_offset;
    // A single-file NIfTI-1 has its data at ≥ 352 (header + 4-byte extension flag).
    if !(vox_offset.is_finite() && vox_offset >= 352.0) {
        return Err(format!(
            "vox_offset = {vox_offset}, expected ≥ 352 (the 348-byte header and the 4-byte extension flag come first)"
        ));
    }
    Ok(NiftiHeader {
        version: 1,
        byte_order,
        dim: h.dim.map(|d| d as i16 as i64),
        datatype: h.datatype,
        bitpix: h.bitpix,
        pixdim: h.pixdim.map(f),
        vox_offset: vox_offset as u64,
        scl_slope: f(h.scl_slope),
        scl_inter: f(h.scl_inter),
        qform_code: h.qform_code,
        sform_code: h.sform_code,
        quatern: [f(h.quatern_b), f(h.quatern_c), f(h.quatern_d)],
        qoffset: [f(h.quatern_x), f(h.quatern_y), f(h.quatern_z)],
        srow: [row(h.srow_x), row(h.srow_y), row(h.srow_z)],
        xyzt_units: h.xyzt_units as i32,
        descrip: String::from_utf8_lossy(&h.descrip[..descrip_end]).into_owned(),
        other: OtherFields {
            magic: c_string(&h.magic),
            dim_info: h.dim_info,
            intent_code: h.intent_code as i32,
            intent_p: [f(h.intent_p1), f(h.intent_p2), f(h.intent_p3)],
            intent_name: c_string(&h.intent_name),
            slice_code: h.slice_code as i32,
            slice_start: h.slice_start as i64,
            slice_end: h.slice_end as i64,
            slice_duration: f(h.slice_duration),
            cal_min: f(h.cal_min),
            cal_max: f(h.cal_max),
            toffset: f(h.toffset),
            aux_file: c_string(&h.aux_file),
        },
    })
}

/// NIfTI-2 header field offsets (bytes), from nifti2.h.
mod n2 {
    pub const SIZE: usize = 540;
    pub const MAGIC: usize = 4;
    pub const DATATYPE: usize = 12;
    pub const BITPIX: usize = 14;
    pub const DIM: usize = 16;
    pub const PIXDIM: usize = 104;
    pub const VOX_OFFSET: usize = 168;
    pub const SCL_SLOPE: usize = 176;
    pub const SCL_INTER: usize = 184;
    pub const DESCRIP: usize = 240;
    pub const QFORM_CODE: usize = 344;
    pub const SFORM_CODE: usize = 348;
    pub const QUATERN_B: usize = 352;
    pub const SROW_X: usize = 400;
    pub const XYZT_UNITS: usize = 500;
    pub const INTENT_P1: usize = 80;
    pub const CAL_MAX: usize = 192;
    pub const CAL_MIN: usize = 200;
    pub const SLICE_DURATION: usize = 208;
    pub const TOFFSET: usize = 216;
    pub const SLICE_START: usize = 224;
    pub const SLICE_END: usize = 232;
    pub const AUX_FILE: usize = 320;
    pub const SLICE_CODE: usize = 496;
    pub const INTENT_CODE: usize = 504;
    pub const INTENT_NAME: usize = 508;
    pub const DIM_INFO: usize = 524;
}

struct Fields<'a> {
    b: &'a [u8],
    order: ByteOrder,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.order == ByteOrder::Big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
}

fn parse_nifti2(bytes: &[u8], order: ByteOrder) -> std::result::Result<NiftiHeader, String> {
    if bytes.len() < n2::SIZE {
        return Err(format!(
            "truncated NIfTI-2 header: {} of 540 bytes",
            bytes.len()
        ));
    }
    let magic = &bytes[n2::MAGIC..n2::MAGIC + 4];
    if magic != b"n+2\0" && magic != b"ni2\0" {
        return Err(format!("NIfTI-2 magic is {magic:?}, expected \"n+2\\0\""));
    }
    let r = Fields { b: bytes, order };
    let dim = std::array::from_fn(|i| r.i64(n2::DIM + 8 * i));
    let pixdim = std::array::from_fn(|i| r.f64(n2::PIXDIM + 8 * i));
    let vox_offset = r.i64(n2::VOX_OFFSET);
    if vox_offset < n2::SIZE as i64 + 4 {
        return Err(format!(
            "vox_offset = {vox_offset}, expected ≥ 544 (the 540-byte header and the 4-byte extension flag come first)"
        ));
    }
    let descrip = &bytes[n2::DESCRIP..n2::DESCRIP + 80];
    let descrip_end = descrip.iter().position(|&b| b == 0).unwrap_or(80);
    Ok(NiftiHeader {
        version: 2,
        byte_order: order,
        dim,
        datatype: r.i16(n2::DATATYPE),
        bitpix: r.i16(n2::BITPIX),
        pixdim,
        vox_offset: vox_offset as u64,
        scl_slope: r.f64(n2::SCL_SLOPE),
        scl_inter: r.f64(n2::SCL_INTER),
        qform_code: r.i32(n2::QFORM_CODE) as i16,
        sform_code: r.i32(n2::SFORM_CODE) as i16,
        quatern: std::array::from_fn(|i| r.f64(n2::QUATERN_B + 8 * i)),
        qoffset: std::array::from_fn(|i| r.f64(n2::QUATERN_B + 24 + 8 * i)),
        srow: std::array::from_fn(|row| {
            std::array::from_fn(|c| r.f64(n2::SROW_X + 32 * row + 8 * c))
        }),
        xyzt_units: r.i32(n2::XYZT_UNITS),
        descrip: String::from_utf8_lossy(&descrip[..descrip_end]).into_owned(),
        other: OtherFields {
            magic: c_string(&bytes[n2::MAGIC..n2::MAGIC + 8]),
            dim_info: bytes[n2::DIM_INFO],
            intent_code: r.i32(n2::INTENT_CODE),
            intent_p: std::array::from_fn(|i| r.f64(n2::INTENT_P1 + 8 * i)),
            intent_name: c_string(&bytes[n2::INTENT_NAME..n2::INTENT_NAME + 16]),
            slice_code: r.i32(n2::SLICE_CODE),
            slice_start: r.i64(n2::SLICE_START),
            slice_end: r.i64(n2::SLICE_END),
            slice_duration: r.f64(n2::SLICE_DURATION),
            cal_min: r.f64(n2::CAL_MIN),
            cal_max: r.f64(n2::CAL_MAX),
            toffset: r.f64(n2::TOFFSET),
            aux_file: c_string(&bytes[n2::AUX_FILE..n2::AUX_FILE + 24]),
        },
    })
}

/// Voxels decoded per parallel task.
const CHUNK: usize = 1 << 16;

/// Checks datatype and data length; returns the datatype.
fn check_data(
    bytes: &[u8],
    h: &NiftiHeader,
    dims: [usize; 3],
    volumes: usize,
) -> std::result::Result<DataType, String> {
    let dt = DataType::from_code(h.datatype).ok_or_else(|| {
        format!(
            "datatype {} is not supported; expected one of uint8, int8, int16, uint16, int32, uint32, float32, float64",
            h.datatype
        )
    })?;
    if i32::from(h.bitpix) != 8 * dt.size() as i32 {
        return Err(format!(
            "bitpix = {} but datatype {} has {} bits per voxel",
            h.bitpix,
            dt.name(),
            8 * dt.size()
        ));
    }
    for (what, v) in [("scl_slope", h.scl_slope), ("scl_inter", h.scl_inter)] {
        if v.is_infinite() {
            return Err(format!(
                "{what} = {v}; expected a finite number (0 or NaN slope: unscaled)"
            ));
        }
    }
    let overflow = || format!("dims {dims:?} × {volumes} volumes: the voxel count overflows");
    let n = dims
        .iter()
        .try_fold(volumes, |a, &d| a.checked_mul(d))
        .ok_or_else(overflow)?;
    let start = usize::try_from(h.vox_offset)
        .map_err(|_| format!("vox_offset {} too large", h.vox_offset))?;
    let need = n.checked_mul(dt.size()).ok_or_else(overflow)?;
    let have = bytes.len().saturating_sub(start);
    if have < need {
        return Err(format!(
            "truncated data: {have} bytes after vox_offset {start}, expected {need} ({}×{}×{}×{volumes} {})",
            dims[0],
            dims[1],
            dims[2],
            dt.name()
        ));
    }
    Ok(dt)
}

/// Decodes `dst.len()` voxels (already checked to be present) in parallel; returns the NaN/inf count.
fn decode_data(bytes: &[u8], h: &NiftiHeader, dt: DataType, dst: &mut [f32]) -> usize {
    let start = h.vox_offset as usize;
    let raw = &bytes[start..start + dst.len() * dt.size()];
    let (slope, inter) = if h.scl_slope != 0.0 && h.scl_slope.is_finite() && h.scl_inter.is_finite()
    {
        (h.scl_slope, h.scl_inter)
    } else {
        (1.0, 0.0)
    };
    let big = h.byte_order == ByteOrder::Big;
    dst.par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(ci, chunk)| {
            let src = &raw[ci * CHUNK * dt.size()..(ci * CHUNK + chunk.len()) * dt.size()];
            decode_chunk(src, dt, big, slope, inter, chunk);
            chunk.iter().filter(|v| !v.is_finite()).count()
        })
        .sum()
}

macro_rules! decode_as {
    ($src:expr, $dst:expr, $t:ty, $big:expr, $conv:expr) => {{
        const W: usize = std::mem::size_of::<$t>();
        for (d, s) in $dst.iter_mut().zip($src.chunks_exact(W)) {
            let mut a = [0u8; W];
            a.copy_from_slice(s);
            let v = if $big {
                <$t>::from_be_bytes(a)
            } else {
                <$t>::from_le_bytes(a)
            };
            *d = $conv(v);
        }
    }};
}

fn decode_chunk(src: &[u8], dt: DataType, big: bool, slope: f64, inter: f64, dst: &mut [f32]) {
    let unscaled = slope == 1.0 && inter == 0.0;
    let (s32, i32_) = (slope as f32, inter as f32);
    match dt {
        DataType::U8 => decode_as!(src, dst, u8, big, |v: u8| v as f32),
        DataType::I8 => decode_as!(src, dst, i8, big, |v: i8| v as f32),
        DataType::I16 => decode_as!(src, dst, i16, big, |v: i16| v as f32),
        DataType::U16 => decode_as!(src, dst, u16, big, |v: u16| v as f32),
        DataType::F32 => decode_as!(src, dst, f32, big, |v: f32| v),
        // Wide types are scaled in f64 so that large integers and doubles keep their precision.
        DataType::I32 => decode_as!(src, dst, i32, big, |v: i32| (v as f64 * slope + inter)
            as f32),
        DataType::U32 => decode_as!(src, dst, u32, big, |v: u32| (v as f64 * slope + inter)
            as f32),
        DataType::F64 => decode_as!(src, dst, f64, big, |v: f64| (v * slope + inter) as f32),
    }
    let narrow = !matches!(dt, DataType::I32 | DataType::U32 | DataType::F64);
    if narrow && !unscaled {
        for d in dst.iter_mut() {
            *d = *d * s32 + i32_;
        }
    }
}

/// A voxel type that can be written to NIfTI.
pub trait NiftiElement: nifti::DataElement + bytemuck::Pod {}
impl NiftiElement for f32 {}
impl NiftiElement for u8 {}
impl NiftiElement for i16 {}

/// The NIfTI-1 header dsma writes for `grid` (sform and qform both set so every viewer agrees).
fn header_for(grid: &Grid) -> nifti::NiftiHeader {
    let mut h = nifti::NiftiHeader::default();
    let f = |v: f64| v as f32;
    h.pixdim = [1.0; 8];
    for a in 0..3 {
        h.pixdim[a + 1] = f(grid.spacing[a]);
    }
    h.xyzt_units = 2; // millimetres
    h.sform_code = grid
        .sform_code
        .max(if grid.qform.is_none() { 1 } else { 0 });
    h.srow_x = grid.affine[0].map(f);
    h.srow_y = grid.affine[1].map(f);
    h.srow_z = grid.affine[2].map(f);
    match grid.qform {
        Some(q) => {
            h.qform_code = q.code;
            h.quatern_b = f(q.quatern[0]);
            h.quatern_c = f(q.quatern[1]);
            h.quatern_d = f(q.quatern[2]);
            h.quatern_x = f(q.offset[0]);
            h.quatern_y = f(q.offset[1]);
            h.quatern_z = f(q.offset[2]);
            h.pixdim[0] = f(q.qfac);
        }
        None => h.qform_code = 0,
    }
    h
}

/// Writes `data` (`[z, y, x]`) on `grid` as a gzip-compressed NIfTI-1 file, atomically.
pub fn write_volume<T: NiftiElement>(path: &Path, data: ArrayView3<T>, grid: &Grid) -> Result<()> {
    let (z, y, x) = data.dim();
    if [x, y, z] != grid.dims {
        return Err(CoreError::invalid(
            "volume shape",
            format!(
                "array is {x}×{y}×{z} (x×y×z) but the grid is {:?}",
                grid.dims
            ),
        ));
    }
    let header = header_for(grid);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let compressed = name.ends_with(".gz");
    // The crate rebuilds the file name from its extensions (`set_extension("")`, then `.nii` or
    // `.nii.gz`), so the temp sibling has no other dot: a dotted stem would be cut (`.u.nii.7.nii`
    // became `.u.nii.nii`, and uncompressed writes failed).
    let stem: String = name
        .chars()
        .map(|c| if c == '.' { '_' } else { c })
        .collect();
    let tmp = path.with_file_name(format!(
        ".dsma-tmp-{}-{stem}{}",
        std::process::id(),
        if compressed { ".nii.gz" } else { ".nii" }
    ));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    // `.t()` gives an (x, y, z) view; the writer transposes back to x-fastest order, i.e. our memory order.
    let written = nifti::writer::WriterOptions::new(&tmp)
        .reference_header(&header)
        .compress(compressed)
        .write_nifti(&data.t());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::nifti(path, format!("cannot write: {e}")));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CoreError::io(path, e)
    })
}

/// Writes `data` on `grid` as an uncompressed little-endian NIfTI-2 file (for volumes or tools that need it).
pub fn write_nifti2_f32(path: &Path, data: ArrayView3<f32>, grid: &Grid) -> Result<()> {
    let (z, y, x) = data.dim();
    let mut h = vec![0u8; n2::SIZE + 4];
    let put = |h: &mut Vec<u8>, at: usize, b: &[u8]| h[at..at + b.len()].copy_from_slice(b);
    put(&mut h, 0, &540i32.to_le_bytes());
    put(&mut h, n2::MAGIC, b"n+2\0\r\n\x1a\n");
    put(&mut h, n2::DATATYPE, &16i16.to_le_bytes());
    put(&mut h, n2::BITPIX, &32i16.to_le_bytes());
    for (i, d) in [3i64, x as i64, y as i64, z as i64, 1, 1, 1, 1]
        .iter()
        .enumerate()
    {
        put(&mut h, n2::DIM + 8 * i, &d.to_le_bytes());
    }
    let qfac = grid.qform.map(|q| q.qfac).unwrap_or(1.0);
    for (i, p) in [
        qfac,
        grid.spacing[0],
        grid.spacing[1],
        grid.spacing[2],
        1.0,
        1.0,
        1.0,
        1.0,
    ]
    .iter()
    .enumerate()
    {
        put(&mut h, n2::PIXDIM + 8 * i, &p.to_le_bytes());
    }
    put(&mut h, n2::VOX_OFFSET, &(n2::SIZE as i64 + 4).to_le_bytes());
    put(&mut h, n2::SCL_SLOPE, &1f64.to_le_bytes());
    put(
        &mut h,
        n2::SFORM_CODE,
        &(grid.sform_code.max(1) as i32).to_le_bytes(),
    );
    if let Some(q) = grid.qform {
        put(&mut h, n2::QFORM_CODE, &(q.code as i32).to_le_bytes());
        for (i, v) in q.quatern.iter().chain(q.offset.iter()).enumerate() {
            put(&mut h, n2::QUATERN_B + 8 * i, &v.to_le_bytes());
        }
    }
    for row in 0..3 {
        for c in 0..4 {
            put(
                &mut h,
                n2::SROW_X + 32 * row + 8 * c,
                &grid.affine[row][c].to_le_bytes(),
            );
        }
    }
    put(&mut h, n2::XYZT_UNITS, &2i32.to_le_bytes());
    write_atomic_with(path, |file| {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(file);
        w.write_all(&h)?;
        for v in data.iter() {
            w.write_all(&v.to_le_bytes())?;
        }
        w.flush()
    })
}
