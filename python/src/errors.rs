//! dsma's errors as Python exceptions: bad values and parameters as `ValueError`, files as
//! `OSError`, the rest as `dsma.DsmaError`; each carries the whole message the CLI would print.

use dsma_data::error::{chain_text, CoreError};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

pyo3::create_exception!(
    dsma,
    DsmaError,
    PyRuntimeError,
    "An error inside dsma (a run, a plugin, a dataset); the message names what and where."
);

/// The Python exception for `e`.
pub fn to_py(e: CoreError) -> PyErr {
    let text = chain_text(&e);
    match e {
        CoreError::Io { .. } => PyOSError::new_err(text),
        CoreError::Invalid { .. }
        | CoreError::PluginParams { .. }
        | CoreError::UnknownPlugin { .. }
        | CoreError::Nifti { .. }
        | CoreError::Dataset { .. } => PyValueError::new_err(text),
        _ => DsmaError::new_err(text),
    }
}
