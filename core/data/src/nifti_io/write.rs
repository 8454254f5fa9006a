//! Writing `.nii.gz` (NIfTI-1, sform and qform set) and NIfTI-2, atomically.

use std::path::Path;

use ndarray::ArrayView3;

use crate::atomic_file::write_atomic_with;
use crate::error::{CoreError, Result};
use crate::nifti_io::header::n2;
use crate::volume::Grid;

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
