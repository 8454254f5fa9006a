//! Plugins written in Python: a file's classes that say `kind = "synthesizer"` or
//! `kind = "weighter"` are registered under their `name`, like a shared library's plugins, and
//! called with NumPy arrays. The host checks what they return as it checks a shared library's
//! (shape, dtype, finite values, labels in the case's convention, one finite weight ≥ 0 per
//! synthetic case); a Python exception becomes a [`CoreError::Plugin`] with the plugin's name, the
//! exception's line and where it was raised. The protocol: `plugins/example-python/README.md`.

use std::path::Path;
use std::sync::Arc;

use dsma_data::error::{CoreError, Result};
use dsma_data::volume::Case;
use dsma_plugin::info::Builder;
use dsma_plugin::{
    check_weights, EpochScores, PluginInfo, PluginKind, PluginSource, Registry, SampleWeighter,
    ScoreKind, Synthesized, Synthesizer,
};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::arrays::{array_arg, case_arrays, check_finite, check_labels};

/// Loads every plugin class of the Python file `path` into `registry` (dsma's
/// [`dsma_plugin::PythonLoader`]); the interpreter is started if this process has none yet.
pub fn load(path: &Path, registry: &mut Registry) -> Result<()> {
    Python::initialize();
    let classes = Python::attach(|py| {
        add_virtual_env(py).map_err(|e| format!("VIRTUAL_ENV: {}", describe(py, &e)))?;
        plugin_classes(py, path)
    })
    .map_err(|problem| CoreError::PluginLoad {
        path: path.to_path_buf(),
        problem,
        source: None,
    })?;
    for class in classes {
        let info = class.info(path);
        let class = Arc::new(class);
        match info.kind {
            PluginKind::Weighter => {
                let build: Builder<dyn SampleWeighter> = Arc::new(move |params| {
                    let instance = class.instantiate(params)?;
                    Ok(Box::new(PyWeighter::new(&class.name, instance)?)
                        as Box<dyn SampleWeighter>)
                });
                registry.add_weighter(info, build)?;
            }
            _ => {
                let build: Builder<dyn Synthesizer> = Arc::new(move |params| {
                    let instance = class.instantiate(params)?;
                    Ok(Box::new(PySynthesizer {
                        name: class.name.clone(),
                        instance,
                    }) as Box<dyn Synthesizer>)
                });
                registry.add_synthesizer(info, build)?;
            }
        }
    }
    Ok(())
}

/// The site-packages of the active virtual environment (`VIRTUAL_ENV`), so a plugin imports what
/// is installed there: an interpreter embedded in the dsma binary starts from the Python it was
/// built with, which does not look for a venv. Inside the Python package it is already there.
fn add_virtual_env(py: Python<'_>) -> PyResult<()> {
    let Some(venv) = std::env::var_os("VIRTUAL_ENV") else {
        return Ok(());
    };
    let version = py.version_info();
    let site = Path::new(&venv)
        .join("lib")
        .join(format!("python{}.{}", version.major, version.minor))
        .join("site-packages");
    if site.is_dir() {
        py.import("site")?.call_method1("addsitedir", (site,))?;
    }
    Ok(())
}

/// One plugin class of a Python file.
struct PluginClass {
    name: String,
    kind: PluginKind,
    version: String,
    description: String,
    defaults: serde_json::Value,
    class: Py<PyType>,
}

impl PluginClass {
    fn info(&self, path: &Path) -> PluginInfo {
        PluginInfo {
            name: self.name.clone(),
            kind: self.kind,
            version: self.version.clone(),
            description: self.description.clone(),
            source: PluginSource::Library(path.to_path_buf()),
            defaults: self.defaults.clone(),
            params: vec![],
        }
    }

    /// An instance made with the class's `defaults` overlaid by `params`; a key the defaults do
    /// not name is refused, as a built-in plugin refuses an unknown field.
    fn instantiate(&self, params: &serde_json::Value) -> Result<Py<PyAny>> {
        let mut merged = self.defaults.clone();
        if let (Some(all), Some(given)) = (merged.as_object_mut(), params.as_object()) {
            for (key, value) in given {
                if !all.contains_key(key) {
                    let mut known: Vec<&String> = all.keys().collect();
                    known.sort();
                    return Err(CoreError::PluginParams {
                        plugin: self.name.clone(),
                        problem: format!(
                            "parameter `{key}`: unknown field, expected one of {known:?}"
                        ),
                    });
                }
                all.insert(key.clone(), value.clone());
            }
        } else if !params.is_null() && params.as_object().is_none_or(|o| !o.is_empty()) {
            return Err(CoreError::PluginParams {
                plugin: self.name.clone(),
                problem: format!("parameters must be a mapping of names to values, got {params}"),
            });
        }
        Python::attach(|py| {
            let kwargs = from_json(py, &merged)?;
            let kwargs = kwargs.cast_into::<PyDict>().ok();
            self.class
                .bind(py)
                .call((), kwargs.as_ref())
                .map(Bound::unbind)
        })
        .map_err(|e| plugin_error(&self.name, "__init__", &e))
    }
}

/// The plugin classes defined in the file at `path` (executed as a module of its own).
fn plugin_classes(py: Python<'_>, path: &Path) -> std::result::Result<Vec<PluginClass>, String> {
    let module =
        exec_file(py, path).map_err(|e| format!("could not be run: {}", describe(py, &e)))?;
    let module_name: String = module
        .getattr("__name__")
        .and_then(|n| n.extract())
        .map_err(|e| describe(py, &e))?;
    let mut classes = vec![];
    let items = module.getattr("__dict__").map_err(|e| describe(py, &e))?;
    let items = items.cast::<PyDict>().map_err(|e| e.to_string())?;
    for (_, value) in items.iter() {
        let Ok(class) = value.cast::<PyType>() else {
            continue;
        };
        let defined_here = class
            .getattr("__module__")
            .and_then(|m| m.extract::<String>())
            .is_ok_and(|m| m == module_name);
        if defined_here && class.hasattr("kind").unwrap_or(false) {
            classes.push(plugin_class(class)?);
        }
    }
    if classes.is_empty() {
        return Err("defines no plugin class: a class with `name = \"...\"` and `kind = \"synthesizer\"` or `kind = \"weighter\"` (see plugins/example-python/README.md)".into());
    }
    Ok(classes)
}

/// Runs the file at `path` as a new module (importlib, so tracebacks show its lines).
fn exec_file<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, PyAny>> {
    let util = py.import("importlib.util")?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = format!(
        "dsma_plugin_{}",
        stem.replace(|c: char| !c.is_alphanumeric(), "_")
    );
    let spec = util.call_method1("spec_from_file_location", (&name, path.to_path_buf()))?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(&name, &module)?;
    spec.getattr("loader")?
        .call_method1("exec_module", (&module,))?;
    Ok(module)
}

/// A class's declaration: `name`, `kind`, the method its kind needs, and the optional `version`,
/// `defaults` (a dict of JSON values) and docstring.
fn plugin_class(class: &Bound<'_, PyType>) -> std::result::Result<PluginClass, String> {
    let py = class.py();
    let class_name = class.name().map(|n| n.to_string()).unwrap_or_default();
    let text = |attr: &str| -> Option<String> { class.getattr(attr).ok()?.extract().ok() };
    let kind_text = text("kind").unwrap_or_default();
    let (kind, method) = match kind_text.as_str() {
        "synthesizer" => (
            PluginKind::Synthesizer,
            "synthesize(self, image, label, seed)",
        ),
        "weighter" => (
            PluginKind::Weighter,
            "weights(self, epoch, real, synthetic)",
        ),
        other => {
            return Err(format!(
                "class `{class_name}`: kind = {other:?}; expected \"synthesizer\" or \"weighter\""
            ))
        }
    };
    let Some(name) = text("name").filter(|n| !n.is_empty()) else {
        return Err(format!(
            "class `{class_name}` ({kind_text}) has no `name = \"...\"` to register it under"
        ));
    };
    let method_name = method.split('(').next().unwrap_or_default();
    let callable = class.getattr(method_name).is_ok_and(|m| m.is_callable());
    if !callable {
        return Err(format!(
            "class `{class_name}` ({kind_text} `{name}`) has no method {method}"
        ));
    }
    let defaults = match class.getattr("defaults") {
        Ok(d) if !d.is_none() => to_json(py, &d).map_err(|e| {
            format!(
                "class `{class_name}`: `defaults` is not JSON data: {}",
                describe(py, &e)
            )
        })?,
        _ => serde_json::json!({}),
    };
    if !defaults.is_object() {
        return Err(format!(
            "class `{class_name}`: `defaults` must be a dict, got {defaults}"
        ));
    }
    let description = text("__doc__")
        .and_then(|d| {
            d.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(String::from)
        })
        .unwrap_or_else(|| format!("Python {kind_text} `{class_name}`"));
    Ok(PluginClass {
        name,
        kind,
        version: text("version").unwrap_or_else(|| "0.0.0".into()),
        description,
        defaults,
        class: class.clone().unbind(),
    })
}

/// A Python value through `json.dumps`.
pub fn to_json(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let text: String = py
        .import("json")?
        .call_method1("dumps", (value,))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

/// A JSON value as a Python value through `json.loads`.
pub fn from_json<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

/// The exception's last traceback line (`Type: message`) and the innermost frame it came from.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    let last = err.to_string();
    let at = err.traceback(py).and_then(|tb| {
        let frames = py
            .import("traceback")
            .ok()?
            .call_method1("extract_tb", (tb,))
            .ok()?;
        let frame = frames.get_item(-1).ok()?;
        let file: String = frame.getattr("filename").ok()?.extract().ok()?;
        let line: usize = frame.getattr("lineno").ok()?.extract().ok()?;
        let func: String = frame.getattr("name").ok()?.extract().ok()?;
        Some(format!(" (at {file}:{line}, in {func})"))
    });
    format!("{last}{}", at.unwrap_or_default())
}

fn plugin_error(plugin: &str, method: &str, err: &PyErr) -> CoreError {
    let problem = Python::attach(|py| format!("{method}() raised {}", describe(py, err)));
    CoreError::Plugin {
        plugin: plugin.to_string(),
        problem,
    }
}

fn bad_output(plugin: &str, err: &PyErr) -> CoreError {
    let problem = Python::attach(|py| format!("returned {}", err.value(py)));
    CoreError::Plugin {
        plugin: plugin.to_string(),
        problem,
    }
}

/// A synthesizer written in Python: `synthesize(image, label, seed) -> (image, label)`.
struct PySynthesizer {
    name: String,
    instance: Py<PyAny>,
}

impl Synthesizer for PySynthesizer {
    fn synthesize(&self, case: &Case, rng: &mut ChaCha8Rng) -> Result<Synthesized> {
        let seed = rng.next_u64();
        let (image, label) = Python::attach(|py| {
            let (image, label) = case_arrays(py, case);
            let out = self
                .instance
                .bind(py)
                .call_method1("synthesize", (image, label, seed))
                .map_err(|e| plugin_error(&self.name, "synthesize", &e))?;
            owned_pair(&out, case).map_err(|e| bad_output(&self.name, &e))
        })?;
        let out = Case {
            id: case.id.clone(),
            image,
            label,
            grid: case.grid.clone(),
            convention: case.convention,
        };
        Ok(Synthesized {
            case: out,
            unchanged_reason: None,
        })
    }
}

/// The `(image, label)` a synthesizer returned, checked against `case` as a shared library's output
/// is (`check_synthesized`: shape, finite intensities, labels in the convention; here also the
/// dtypes), with errors naming the returned array, as owned arrays.
fn owned_pair(
    out: &Bound<'_, PyAny>,
    case: &Case,
) -> PyResult<(ndarray::Array4<f32>, ndarray::Array3<u8>)> {
    let pair = out
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 2)
        .ok_or_else(|| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{} from synthesize(); expected a tuple (image, label)",
                out.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
    let image = pair.get_item(0)?;
    let image = array_arg::<f32, ndarray::Ix4>(&image, "image", "float32 [4, z, y, x]")?;
    let view = image.as_array();
    if view.dim() != case.image.dim() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "`image` of shape {:?} for a case of shape {:?}",
            view.shape(),
            case.image.shape()
        )));
    }
    check_finite(view, "image")?;
    let label = pair.get_item(1)?;
    let label = array_arg::<u8, ndarray::Ix3>(&label, "label", "uint8 [z, y, x]")?;
    check_labels(label.as_array(), "label", case.label.dim(), case.convention)?;
    Ok((view.to_owned(), label.as_array().to_owned()))
}

/// A weighter written in Python: `weights(epoch, real, synthetic) -> one weight per synthetic`.
struct PyWeighter {
    name: String,
    instance: Py<PyAny>,
    score_kind: ScoreKind,
}

impl PyWeighter {
    fn new(name: &str, instance: Py<PyAny>) -> Result<Self> {
        let kind: Option<String> = Python::attach(|py| {
            let k = instance.bind(py).getattr("score_kind").ok()?;
            k.extract().ok()
        });
        let score_kind = match kind.as_deref() {
            None | Some("mean") => ScoreKind::Mean,
            Some("WT") => ScoreKind::WT,
            Some("TC") => ScoreKind::TC,
            Some("ET") => ScoreKind::ET,
            Some(other) => {
                return Err(CoreError::Plugin {
                    plugin: name.to_string(),
                    problem: format!(
                        "score_kind = {other:?}; expected \"mean\", \"WT\", \"TC\" or \"ET\""
                    ),
                })
            }
        };
        Ok(PyWeighter {
            name: name.to_string(),
            instance,
            score_kind,
        })
    }
}

impl SampleWeighter for PyWeighter {
    fn score_kind(&self) -> ScoreKind {
        self.score_kind
    }
    fn weights(&mut self, s: &EpochScores<'_>) -> Result<Vec<f64>> {
        let out: Vec<f64> = Python::attach(|py| {
            let real = PyArray1::from_slice(py, s.real);
            let synthetic = PyArray1::from_slice(py, s.synthetic);
            let out = self
                .instance
                .bind(py)
                .call_method1("weights", (s.epoch, real, synthetic))
                .map_err(|e| plugin_error(&self.name, "weights", &e))?;
            out.extract::<Vec<f64>>().map_err(|_| CoreError::Plugin {
                plugin: self.name.clone(),
                problem: format!(
                    "returned {} from weights(); expected a sequence of floats",
                    out.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ),
            })
        })?;
        check_weights(&self.name, &out, s.synthetic.len())?;
        Ok(out)
    }
    fn history(&self) -> serde_json::Value {
        Python::attach(|py| {
            let me = self.instance.bind(py);
            let h = me.call_method0("history").ok()?;
            to_json(py, &h).ok()
        })
        .unwrap_or(serde_json::Value::Null)
    }
    fn restore(&mut self, history: serde_json::Value) -> Result<()> {
        Python::attach(|py| {
            let me = self.instance.bind(py);
            if !me.hasattr("restore").unwrap_or(false) || history.is_null() {
                return Ok(());
            }
            let h = from_json(py, &history).map_err(|e| plugin_error(&self.name, "restore", &e))?;
            me.call_method1("restore", (h,))
                .map(|_| ())
                .map_err(|e| plugin_error(&self.name, "restore", &e))
        })
    }
}
