//! NumPy arrays in and out: dtype, dimension and shape checks with errors that name the argument,
//! read-only views (no copy) where dsma only reads, and the one copy where it needs owned data.

use dsma_data::volume::Case;
use dsma_data::LabelConvention;
use ndarray::{ArrayView3, ArrayView4, Dimension};
use numpy::{
    Element, PyArray, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray, PyReadonlyArray3,
    PyReadonlyArray4, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use rayon::prelude::*;

/// The argument `name` as a read-only view of a NumPy array of `T` with `ndim` dimensions
/// (any strides: nothing is copied); a `TypeError` or `ValueError` names the argument, what it got
/// and what was expected.
pub fn array_arg<'py, T: Element, D: Dimension>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    expected: &str,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    let py = obj.py();
    let Ok(untyped) = obj.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "`{name}` must be a numpy.ndarray ({expected}), got {}",
            type_name(obj)
        )));
    };
    let want = numpy::dtype::<T>(py);
    if !untyped.dtype().is_equiv_to(&want) {
        return Err(PyTypeError::new_err(format!(
            "`{name}` must have dtype {} ({expected}), got {} (convert with .astype(numpy.{}))",
            want.str().map(|s| s.to_string()).unwrap_or_default(),
            untyped
                .dtype()
                .str()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            dtype_name(&want),
        )));
    }
    let ndim = D::NDIM.unwrap_or(untyped.ndim());
    if untyped.ndim() != ndim {
        return Err(PyValueError::new_err(format!(
            "`{name}` must have {ndim} dimensions ({expected}), got shape {:?}",
            untyped.shape()
        )));
    }
    let typed = obj
        .cast::<PyArray<T, D>>()
        .map_err(|e| PyTypeError::new_err(format!("`{name}`: {e}")))?;
    typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("`{name}` cannot be read: {e}")))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an object".into())
}

fn dtype_name(d: &Bound<'_, numpy::PyArrayDescr>) -> String {
    d.getattr("name")
        .and_then(|n| n.extract::<String>())
        .unwrap_or_else(|_| "float32".into())
}

/// A four-modality image: float32 `[4, z, y, x]` (FLAIR, T1, T1ce, T2); finiteness is checked
/// where it is read ([`owned_finite`], [`check_finite`]).
pub fn image_arg<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray4<'py, f32>> {
    let arr: PyReadonlyArray4<'py, f32> =
        array_arg(obj, name, "float32 [4, z, y, x]: FLAIR, T1, T1ce, T2")?;
    let view = arr.as_array();
    if view.dim().0 != 4 {
        return Err(PyValueError::new_err(format!(
            "`{name}` must hold 4 modalities on its first axis (FLAIR, T1, T1ce, T2), got shape {:?}",
            view.shape()
        )));
    }
    Ok(arr)
}

/// An owned copy of an image view, made in the same pass that counts its non-finite values (a
/// `ValueError` naming `name` when there are any): the one copy a synthesizer's input needs.
pub fn owned_finite(view: ArrayView4<'_, f32>, name: &str) -> PyResult<ndarray::Array4<f32>> {
    let Some(values) = view.as_slice() else {
        check_finite(view, name)?;
        return Ok(view.to_owned());
    };
    // Blocks that stay in cache between the copy and the count; a zeroed buffer costs nothing
    // until written, so both cores take the page faults of the copy.
    let mut copy = vec![0f32; values.len()];
    let bad: usize = copy
        .par_chunks_mut(BLOCK)
        .zip(values.par_chunks(BLOCK))
        .map(|(dst, src)| {
            dst.copy_from_slice(src);
            dst.iter().filter(|v| !v.is_finite()).count()
        })
        .sum();
    if bad > 0 {
        return Err(non_finite(name, bad));
    }
    ndarray::Array4::from_shape_vec(view.raw_dim(), copy)
        .map_err(|e| PyValueError::new_err(format!("`{name}`: {e}")))
}

/// Values per block of [`owned_finite`] (64 KiB).
const BLOCK: usize = 1 << 14;

fn non_finite(name: &str, bad: usize) -> PyErr {
    PyValueError::new_err(format!(
        "`{name}` holds {bad} non-finite (NaN or infinite) values; dsma needs finite intensities"
    ))
}

/// The count of non-finite values of `view` as a `ValueError` naming `name`.
pub fn check_finite(view: ArrayView4<'_, f32>, name: &str) -> PyResult<()> {
    let bad = view.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(non_finite(name, bad));
    }
    Ok(())
}

/// A label map: uint8 `[z, y, x]` of the spatial shape `shape`, every value in `convention`.
pub fn label_arg<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
    shape: (usize, usize, usize),
    convention: LabelConvention,
) -> PyResult<PyReadonlyArray3<'py, u8>> {
    let arr: PyReadonlyArray3<'py, u8> = array_arg(obj, name, "uint8 [z, y, x]")?;
    check_labels(arr.as_array(), name, shape, convention)?;
    Ok(arr)
}

/// Shape and values of a label map, as a `ValueError` naming `name`.
pub fn check_labels(
    view: ArrayView3<'_, u8>,
    name: &str,
    shape: (usize, usize, usize),
    convention: LabelConvention,
) -> PyResult<()> {
    if view.dim() != shape {
        return Err(PyValueError::new_err(format!(
            "`{name}` has shape {:?}, the image's [z, y, x] is {:?}",
            view.shape(),
            [shape.0, shape.1, shape.2]
        )));
    }
    let mut valid = [false; 256];
    for v in convention.valid_labels() {
        valid[usize::from(v)] = true;
    }
    if let Some(bad) = view.iter().find(|&&v| !valid[usize::from(v)]) {
        let hint = convention
            .hint_for(&[*bad])
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return Err(PyValueError::new_err(format!(
            "`{name}` holds label {bad}, outside the {} convention {:?}{hint}",
            convention.name(),
            convention.valid_labels()
        )));
    }
    Ok(())
}

/// The label convention named `labels` (`brats2019`, `brats2023`, `msd`), as a `ValueError` naming
/// the argument when unknown.
pub fn convention_arg(labels: &str) -> PyResult<LabelConvention> {
    LabelConvention::parse(labels).map_err(|e| PyValueError::new_err(format!("`labels`: {e}")))
}

/// A case's image and labels as new NumPy arrays (one copy each).
pub fn case_arrays<'py>(
    py: Python<'py>,
    case: &Case,
) -> (
    Bound<'py, numpy::PyArray4<f32>>,
    Bound<'py, numpy::PyArray3<u8>>,
) {
    (
        PyArray::from_array(py, &case.image),
        PyArray::from_array(py, &case.label),
    )
}
