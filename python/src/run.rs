//! `dsma.run`: an experiment file through `dsma_train::pipeline::run_experiment`, the entry point
//! `dsma run` calls too, in this process (no subprocess), with the GIL released while it trains.

use std::path::PathBuf;

use dsma_pyhost::plugin::from_json;
use dsma_train::pipeline::{run_experiment, table_records, RunRequest};
use dsma_train::runner::progress::{PrepareSummary, RunObserver};
use dsma_train::runner::records::EpochRecord;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::methods::registry_with;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    Ok(())
}

/// Progress lines on Python's `sys.stderr` (so a notebook shows them), one per epoch and stage.
struct Lines;

impl Lines {
    fn write(&self, text: &str) {
        Python::attach(|py| {
            if let Ok(err) = py.import("sys").and_then(|s| s.getattr("stderr")) {
                let _ = err.call_method1("write", (format!("{text}\n"),));
                let _ = err.call_method0("flush");
            }
        });
    }
}

impl RunObserver for Lines {
    fn stage(&mut self, stage: u8, first: usize, total: usize) {
        self.write(&format!(
            "stage {stage} from epoch {} of {total}",
            first + 1
        ));
    }
    fn epoch_end(&mut self, r: &EpochRecord) {
        let dice = r
            .test_dice
            .map(|d| format!(", test DSC AVE {:.2}", d[3]))
            .unwrap_or_default();
        self.write(&format!(
            "epoch {} (stage {}): loss {:.4}, {:.1} s{dice}",
            r.epoch, r.stage, r.loss, r.seconds
        ));
    }
    fn message(&mut self, text: &str) {
        self.write(text);
    }
    fn prepared(&mut self, summary: &PrepareSummary) {
        self.write(&summary.to_string());
    }
}

/// Quiet: nothing printed.
struct Quiet;
impl RunObserver for Quiet {}

/// Runs an experiment file as `dsma run` does and returns a dict: `name`, `out` (the output
/// folder), `seconds`, `table` (the paper's table, Markdown, as printed and written to
/// `OUT/table.md`), `rows` (one dict per row and dataset: `row`, `dataset`, `metric`, `regions`
/// [WT, TC, ET, AVE], `plus_minus`, `repeats`, `p_value`, `published`) and `results` (every run's
/// `results.json`). Arguments are `dsma run`'s options; `plugins` are plugin files (`.so`, `.py`).
#[pyfunction]
#[pyo3(signature = (experiment, overrides = vec![], out = None, cache = None, resume = false, only = vec![], shard = None, plugins = vec![], progress = true))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    experiment: PathBuf,
    overrides: Vec<String>,
    out: Option<PathBuf>,
    cache: Option<PathBuf>,
    resume: bool,
    only: Vec<String>,
    shard: Option<(usize, usize)>,
    plugins: Vec<PathBuf>,
    progress: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some((i, n)) = shard {
        if n == 0 || i >= n {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "`shard` = ({i}, {n}); expected (i, n) with 0 ≤ i < n"
            )));
        }
    }
    let mut registry = registry_with(&plugins)?;
    let request = RunRequest {
        experiment,
        overrides,
        out,
        cache,
        resume,
        only,
        shard,
    };
    let outcome = py
        .detach(|| {
            let mut lines = Lines;
            let observer: &mut dyn RunObserver = if progress { &mut lines } else { &mut Quiet };
            run_experiment(&request, &mut registry, observer)
        })
        .map_err(to_py)?;
    let value = serde_json::json!({
        "name": outcome.name,
        "out": outcome.out,
        "seconds": outcome.seconds,
        "table": outcome.markdown,
        "rows": table_records(&outcome.table),
        "results": outcome.results,
    });
    from_json(py, &value)
}
