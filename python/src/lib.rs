//! `dsma._dsma`, the extension module of the Python package `dsma`: dsma's own code over NumPy
//! arrays (no second implementation). The package's Python files (`pkg/dsma/`) add the MONAI-style
//! transform, the PyTorch loss and `python -m dsma`.

mod data;
mod errors;
mod loss;
mod methods;
mod metrics;
mod run;

use pyo3::prelude::*;

/// The module's functions and its exception type.
#[pymodule]
fn _dsma(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DsmaError", m.py().get_type::<errors::DsmaError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    data::register(m)?;
    metrics::register(m)?;
    loss::register(m)?;
    methods::register(m)?;
    run::register(m)?;
    Ok(())
}
