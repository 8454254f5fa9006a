//! Cases, NIfTI files, the phantom and the BraTS regions over NumPy: `load_case`, `phantom`,
//! `read_nifti`, `write_nifti`, `regions`.

use std::path::PathBuf;

use dsma_data::labels::{region_mask, Region};
use dsma_data::nifti_io::{read_labels, read_volumes, write_volume};
use dsma_data::volume::{Case, Grid, Modality};
use dsma_pyhost::arrays::{array_arg, check_labels, convention_arg};
use ndarray::{Array2, Ix2, Ix3};
use numpy::{IntoPyArray, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_case, m)?)?;
    m.add_function(wrap_pyfunction!(phantom, m)?)?;
    m.add_function(wrap_pyfunction!(read_nifti, m)?)?;
    m.add_function(wrap_pyfunction!(write_nifti, m)?)?;
    m.add_function(wrap_pyfunction!(regions, m)?)?;
    Ok(())
}

/// A case as a dict: `id`, `image` float32 [4, z, y, x] (FLAIR, T1, T1ce, T2), `label` uint8
/// [z, y, x], `affine` float64 4×4 (voxel (x, y, z) → world mm), `spacing` (x, y, z) mm, `labels`
/// (the convention) and `modalities` (the channel order).
pub fn case_dict(py: Python<'_>, case: Case) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &case.id)?;
    d.set_item("affine", affine_array(&case.grid).into_pyarray(py))?;
    d.set_item("spacing", case.grid.spacing)?;
    d.set_item("labels", case.convention.name())?;
    let modalities: Vec<&str> = Modality::ALL.iter().map(|m| m.suffix()).collect();
    d.set_item("modalities", modalities)?;
    d.set_item("image", case.image.into_pyarray(py))?;
    d.set_item("label", case.label.into_pyarray(py))?;
    Ok(d)
}

fn affine_array(grid: &Grid) -> Array2<f64> {
    Array2::from_shape_fn((4, 4), |(r, c)| grid.affine[r][c])
}

/// Loads one case on its input grid, as `dsma synth --case` reads it: a BraTS case folder
/// (`<id>_t1.nii.gz`, ..., `<id>_seg.nii.gz`) or a Decathlon Task01 image (`imagesTr/BRATS_001.nii.gz`).
#[pyfunction]
#[pyo3(signature = (path, labels = "brats2019"))]
fn load_case<'py>(py: Python<'py>, path: PathBuf, labels: &str) -> PyResult<Bound<'py, PyDict>> {
    let convention = convention_arg(labels)?;
    let case = py
        .detach(|| dsma_data::brats::load_case(&path, convention))
        .map_err(to_py)?;
    case_dict(py, case)
}

/// A procedural phantom case (the default dataset of a fresh machine): `size` (x, y, z) voxels of
/// `spacing` (x, y, z) mm, from `seed`; labels in the brats2019 convention.
#[pyfunction]
#[pyo3(signature = (size = [48, 48, 32], seed = 0, spacing = [1.0, 1.0, 1.0], id = "phantom_000"))]
fn phantom<'py>(
    py: Python<'py>,
    size: [usize; 3],
    seed: u64,
    spacing: [f64; 3],
    id: &str,
) -> PyResult<Bound<'py, PyDict>> {
    if size.iter().any(|&s| s < 8) {
        return Err(PyValueError::new_err(format!(
            "`size` must be at least 8 voxels per axis, got {size:?}"
        )));
    }
    let case = py
        .detach(|| dsma_data::phantom::generate_case(id, size, spacing, seed))
        .map_err(to_py)?;
    case_dict(py, case)
}

/// Reads a `.nii` / `.nii.gz` file: `(array, affine)`. Intensities are float32, [z, y, x] for a
/// 3-D file and [volume, z, y, x] for more volumes; with `labels=True` a 3-D uint8 label map.
#[pyfunction]
#[pyo3(signature = (path, labels = false))]
fn read_nifti(py: Python<'_>, path: PathBuf, labels: bool) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    if labels {
        let (grid, data) = py.detach(|| read_labels(&path)).map_err(to_py)?;
        let affine = affine_array(&grid).into_pyarray(py).into_any().unbind();
        return Ok((data.into_pyarray(py).into_any().unbind(), affine));
    }
    let v = py.detach(|| read_volumes(&path)).map_err(to_py)?;
    let affine = affine_array(&v.grid).into_pyarray(py).into_any().unbind();
    let array = if v.data.dim().0 == 1 {
        let [x, y, z] = v.grid.dims;
        let three = v
            .data
            .into_shape_with_order((z, y, x))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        three.into_pyarray(py).into_any().unbind()
    } else {
        v.data.into_pyarray(py).into_any().unbind()
    };
    Ok((array, affine))
}

/// Writes a 3-D array ([z, y, x]; float32, uint8 or int16) as a gzip-compressed NIfTI-1 file,
/// atomically, with `affine` (voxel (x, y, z) → world mm; identity when `None`) as its sform.
#[pyfunction]
#[pyo3(signature = (path, array, affine = None))]
fn write_nifti(
    py: Python<'_>,
    path: PathBuf,
    array: &Bound<'_, PyAny>,
    affine: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let affine = match affine {
        Some(a) => affine_arg(a)?,
        None => std::array::from_fn(|r| std::array::from_fn(|c| f64::from(u8::from(r == c)))),
    };
    let Ok(untyped) = array.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(
            "`array` must be a numpy.ndarray [z, y, x] of float32, uint8 or int16",
        ));
    };
    let shape = untyped.shape();
    if shape.len() != 3 {
        return Err(PyValueError::new_err(format!(
            "`array` must have 3 dimensions [z, y, x], got shape {shape:?}"
        )));
    }
    let grid = Grid::from_affine([shape[2], shape[1], shape[0]], affine);
    let kind = untyped.dtype().getattr("name")?.extract::<String>()?;
    let expected = "[z, y, x] of float32, uint8 or int16";
    let written = match kind.as_str() {
        "uint8" => {
            let a = array_arg::<u8, Ix3>(array, "array", expected)?;
            let v = a.as_array();
            py.detach(|| write_volume(&path, v, &grid))
        }
        "int16" => {
            let a = array_arg::<i16, Ix3>(array, "array", expected)?;
            let v = a.as_array();
            py.detach(|| write_volume(&path, v, &grid))
        }
        _ => {
            let a = array_arg::<f32, Ix3>(array, "array", expected)?;
            let v = a.as_array();
            py.detach(|| write_volume(&path, v, &grid))
        }
    };
    written.map_err(to_py)
}

/// A 4×4 float64 affine with finite values and a non-degenerate spacing.
fn affine_arg(a: &Bound<'_, PyAny>) -> PyResult<[[f64; 4]; 4]> {
    let arr = array_arg::<f64, Ix2>(a, "affine", "float64 4×4")?;
    let v = arr.as_array();
    if v.dim() != (4, 4) || v.iter().any(|x| !x.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "`affine` must be a finite 4×4 matrix, got shape {:?}",
            v.shape()
        )));
    }
    let out: [[f64; 4]; 4] = std::array::from_fn(|r| std::array::from_fn(|c| v[[r, c]]));
    if (0..3).any(|c| (0..3).all(|r| out[r][c] == 0.0)) {
        return Err(PyValueError::new_err(
            "`affine` has a zero column: every voxel axis needs a length",
        ));
    }
    Ok(out)
}

/// The BraTS regions of a label map as boolean masks: `{"WT": ..., "TC": ..., "ET": ...}`, by the
/// label convention `labels` (ET is 4 in brats2019 and msd, 3 in brats2023).
#[pyfunction]
#[pyo3(signature = (label, labels = "brats2019"))]
fn regions<'py>(
    py: Python<'py>,
    label: &Bound<'py, PyAny>,
    labels: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let convention = convention_arg(labels)?;
    let arr = array_arg::<u8, Ix3>(label, "label", "uint8 [z, y, x]")?;
    check_labels(arr.as_array(), "label", arr.as_array().dim(), convention)?;
    let view = arr.as_array();
    let d = PyDict::new(py);
    for region in Region::ALL {
        let mask = py.detach(|| region_mask(view, region, convention));
        d.set_item(region.name(), mask.into_pyarray(py))?;
    }
    Ok(d)
}
