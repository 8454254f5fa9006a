//! The NIfTI header as dsma reads it (both versions), its datatypes and its conversion to a
//! [`Grid`].

use serde::Serialize;

use crate::volume::{qform_affine, Grid, Qform};

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

/// NIfTI-2 header field offsets (bytes), from nifti2.h.
pub(crate) mod n2 {
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
