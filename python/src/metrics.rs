//! Dice and HD95 of binary masks, dsma's own functions (`dsma_data::metrics::global`).

use dsma_data::metrics::global;
use dsma_data::metrics::{EmptyDice, EmptyHd, HdMode, MetricOptions};
use dsma_pyhost::arrays::array_arg;
use ndarray::{Array3, ArrayView3, Ix3};
use numpy::{PyArrayDescrMethods, PyReadonlyArray3, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dice, m)?)?;
    m.add_function(wrap_pyfunction!(hd95, m)?)?;
    Ok(())
}

/// A binary mask argument: bool arrays are read in place, uint8 arrays of 0 and 1 are converted.
enum Mask<'py> {
    Borrowed(PyReadonlyArray3<'py, bool>),
    Converted(Array3<bool>),
}

impl Mask<'_> {
    fn view(&self) -> ArrayView3<'_, bool> {
        match self {
            Mask::Borrowed(a) => a.as_array(),
            Mask::Converted(a) => a.view(),
        }
    }
}

fn mask_arg<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Mask<'py>> {
    let expected = "a binary mask [z, y, x] of bool (or uint8 0/1)";
    let is_u8 = obj
        .cast::<PyUntypedArray>()
        .is_ok_and(|a| a.dtype().is_equiv_to(&numpy::dtype::<u8>(obj.py())));
    if !is_u8 {
        return array_arg::<bool, Ix3>(obj, name, expected).map(Mask::Borrowed);
    }
    let a = array_arg::<u8, Ix3>(obj, name, expected)?;
    let v = a.as_array();
    if let Some(bad) = v.iter().find(|&&x| x > 1) {
        return Err(PyValueError::new_err(format!(
            "`{name}` holds {bad}; a uint8 mask must hold only 0 and 1 (for a label map, use dsma.regions)"
        )));
    }
    Ok(Mask::Converted(v.mapv(|x| x == 1)))
}

fn same_shape(a: &ArrayView3<'_, bool>, b: &ArrayView3<'_, bool>) -> PyResult<()> {
    if a.dim() != b.dim() {
        return Err(PyValueError::new_err(format!(
            "`pred` has shape {:?} and `truth` {:?}; they must match",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, value: &str, choices: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string())).map_err(|_| {
        PyValueError::new_err(format!("`{what}` = {value:?}; expected one of {choices}"))
    })
}

/// Dice of two binary masks. With an empty `truth`: `empty="brats"` gives 1 when `pred` is empty
/// too and 0 otherwise; `empty="nan"` gives NaN (MONAI's `ignore_empty=True`).
#[pyfunction]
#[pyo3(signature = (pred, truth, empty = "brats"))]
fn dice(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    truth: &Bound<'_, PyAny>,
    empty: &str,
) -> PyResult<f64> {
    let empty: EmptyDice = parse("empty", empty, "\"brats\", \"nan\"")?;
    let (p, t) = (mask_arg(pred, "pred")?, mask_arg(truth, "truth")?);
    let (pv, tv) = (p.view(), t.view());
    same_shape(&pv, &tv)?;
    if pv.len() < 1 << 16 {
        return Ok(global::dice(pv, tv, empty));
    }
    Ok(py.detach(|| global::dice(pv, tv, empty)))
}

/// HD95 in mm between two binary masks with voxel `spacing` (x, y, z) mm, the order of
/// `case["spacing"]` and of NIfTI. `mode="pooled"` (medpy, BraTS toolkit) or `"max_directed"`
/// (MONAI); with an empty mask: `empty="nan"` or `"brats_penalty"` (373.13 mm).
#[pyfunction]
#[pyo3(signature = (pred, truth, spacing = [1.0, 1.0, 1.0], mode = "pooled", empty = "nan"))]
fn hd95(
    py: Python<'_>,
    pred: &Bound<'_, PyAny>,
    truth: &Bound<'_, PyAny>,
    spacing: [f64; 3],
    mode: &str,
    empty: &str,
) -> PyResult<f64> {
    let opts = MetricOptions {
        hd_mode: parse::<HdMode>("mode", mode, "\"pooled\", \"max_directed\"")?,
        empty_hd: parse::<EmptyHd>("empty", empty, "\"nan\", \"brats_penalty\"")?,
        ..MetricOptions::default()
    };
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(PyValueError::new_err(format!(
            "`spacing` must be three positive millimetre sizes (x, y, z), got {spacing:?}"
        )));
    }
    let (p, t) = (mask_arg(pred, "pred")?, mask_arg(truth, "truth")?);
    let (pv, tv) = (p.view(), t.view());
    same_shape(&pv, &tv)?;
    let zyx = [spacing[2], spacing[1], spacing[0]];
    Ok(py.detach(|| global::hd95(pv, tv, zyx, &opts)))
}
