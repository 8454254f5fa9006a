//! Parsing the NIfTI-1 header (through the `nifti` crate) and the 540-byte NIfTI-2 header (here).

use crate::nifti_io::header::{n2, ByteOrder, NiftiHeader, OtherFields};

/// A NUL-terminated header string.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub(crate) fn parse_header(bytes: &[u8]) -> std::result::Result<NiftiHeader, String> {
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
