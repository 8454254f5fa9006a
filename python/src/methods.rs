//! Any registered synthesizer or weighter called on NumPy arrays (`dtss` and `mas_weights` in the
//! package are these with the paper's plugins), and the list of plugins.

use std::borrow::Cow;
use std::path::PathBuf;

use dsma_data::volume::{Case, Grid};
use dsma_plugin::{synthesize_seeded, EpochScores, Registry};
use dsma_pyhost::arrays::{convention_arg, image_arg, label_arg, owned_finite};
use dsma_pyhost::plugin::{from_json, to_json};
use ndarray::Ix1;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(synthesize, m)?)?;
    m.add_function(wrap_pyfunction!(weights, m)?)?;
    m.add_function(wrap_pyfunction!(plugins, m)?)?;
    Ok(())
}

/// The built-in plugins, Python plugin files loadable, and the plugin files `paths` loaded.
pub fn registry_with(paths: &[PathBuf]) -> PyResult<Registry> {
    let mut registry = dsma_builtins::registry();
    registry.set_python_loader(dsma_pyhost::load);
    for p in paths {
        registry.load_library(p).map_err(to_py)?;
    }
    Ok(registry)
}

/// Keyword parameters as the JSON object a plugin's parameters are read from.
fn params_json(py: Python<'_>, params: Option<&Bound<'_, PyDict>>) -> PyResult<serde_json::Value> {
    match params {
        Some(p) => to_json(py, p.as_any()),
        None => Ok(serde_json::json!({})),
    }
}

/// Derives one synthetic case from `(image, label)` with synthesizer `name` and its parameters,
/// as `dsma synth --case DIR --seed SEED --n 1` does for the same case: returns `(image, label)`.
/// `image` float32 [4, z, y, x] (FLAIR, T1, T1ce, T2), `label` uint8 [z, y, x] in `labels`,
/// `spacing` (x, y, z) mm.
#[pyfunction]
#[pyo3(signature = (name, image, label, seed = 0, labels = "brats2019", spacing = [1.0, 1.0, 1.0], plugins = vec![], **params))]
#[allow(clippy::too_many_arguments)]
fn synthesize<'py>(
    py: Python<'py>,
    name: &str,
    image: &Bound<'py, PyAny>,
    label: &Bound<'py, PyAny>,
    seed: u64,
    labels: &str,
    spacing: [f64; 3],
    plugins: Vec<PathBuf>,
    params: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let convention = convention_arg(labels)?;
    let image = image_arg(image, "image")?;
    let iv = image.as_array();
    let (_, z, y, x) = iv.dim();
    let label = label_arg(label, "label", (z, y, x), convention)?;
    let lv = label.as_array();
    let params = params_json(py, params)?;
    let registry = registry_with(&plugins)?;
    let synth = registry.synthesizer(name, &params).map_err(to_py)?;
    let result = py.detach(|| {
        let case = Case {
            id: "case".into(),
            image: owned_finite(iv, "image")?,
            label: lv.to_owned(),
            grid: Grid::axis_aligned([x, y, z], spacing),
            convention,
        };
        synthesize_seeded(synth.as_ref(), Cow::Owned(case), seed, 0).map_err(to_py)
    });
    let out = result?.case;
    Ok((
        out.image.into_pyarray(py).into_any().unbind(),
        out.label.into_pyarray(py).into_any().unbind(),
    ))
}

/// One loss weight per synthetic case from weighter `name`: the real and synthetic cases' scores
/// (e.g. the mean WT/TC/ET Dice of the current model, in [0, 1]) of stage-2 epoch `epoch`.
#[pyfunction]
#[pyo3(signature = (name, real_scores, synthetic_scores, epoch = 0, plugins = vec![], **params))]
fn weights<'py>(
    py: Python<'py>,
    name: &str,
    real_scores: &Bound<'py, PyAny>,
    synthetic_scores: &Bound<'py, PyAny>,
    epoch: usize,
    plugins: Vec<PathBuf>,
    params: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let expected = "float64 [n]: one score per case";
    let real = dsma_pyhost::arrays::array_arg::<f64, Ix1>(real_scores, "real_scores", expected)?;
    let synthetic =
        dsma_pyhost::arrays::array_arg::<f64, Ix1>(synthetic_scores, "synthetic_scores", expected)?;
    let (real, synthetic) = (real.as_array().to_vec(), synthetic.as_array().to_vec());
    let params = params_json(py, params)?;
    let registry = registry_with(&plugins)?;
    let mut weighter = registry.weighter(name, &params).map_err(to_py)?;
    let scores = EpochScores {
        epoch,
        real: &real,
        synthetic: &synthetic,
    };
    let w = weighter.weights(&scores).map_err(to_py)?;
    Ok(w.into_pyarray(py))
}

/// Every registered plugin (built in, and from the files `plugins`) as a list of dicts: name,
/// kind, version, source, description, defaults, params.
#[pyfunction]
#[pyo3(signature = (plugins = vec![]))]
fn plugins(py: Python<'_>, plugins: Vec<PathBuf>) -> PyResult<Bound<'_, PyAny>> {
    let registry = registry_with(&plugins)?;
    let infos = serde_json::to_value(registry.infos())
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    from_json(py, &infos)
}
