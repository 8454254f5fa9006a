//! NIfTI-1 and NIfTI-2 reading (`.nii`, `.nii.gz`, either byte order) and `.nii.gz` writing.
//!
//! NIfTI-1 headers are parsed by the `nifti` crate; the crate reads NIfTI-1 only, so the 540-byte
//! NIfTI-2 header is parsed here. Voxel data of both versions is decoded here, in parallel, straight
//! from the decompressed bytes into an `[z, y, x]` array (NIfTI's on-disk order), applying
//! `scl_slope`/`scl_inter` as the standard says (slope 0 means "unscaled").

use std::io::Read;
use std::path::Path;

use ndarray::{Array3, Array4};
use rayon::prelude::*;

use crate::error::{CoreError, Result};
use crate::volume::Grid;

mod header;
mod parse;
mod write;

pub use header::{datatype_name, ByteOrder, DataType, NiftiHeader, OtherFields};
pub use write::{write_nifti2_f32, write_volume, NiftiElement};

use header::n2;
use parse::parse_header;

/// A NIfTI file name without `.nii` / `.nii.gz` (`BRATS_001.nii.gz` → `BRATS_001`).
pub fn nifti_stem(name: &str) -> &str {
    name.trim_end_matches(".gz").trim_end_matches(".nii")
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
