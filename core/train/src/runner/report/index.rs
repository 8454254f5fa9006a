//! The experiment's index of its output folder (`experiment.json`) and what `dsma table` reads
//! back: every finished run under this file's row and dataset labels, and the published numbers.

use std::path::{Path, PathBuf};

use dsma_data::error::{CoreError, Result};
use dsma_plugin::Registry;
use serde::{Deserialize, Serialize};

use crate::experiment::LoadedExperiment;
use crate::runner::plan::plan_all;
use crate::runner::records::RunResults;
use crate::runner::report::interval::Interval;
use crate::runner::report::logs;
use crate::runner::report::provenance::Provenance;
use crate::runner::report::record::{run_folders, RunRecord};

/// The experiment's view of its output folder (`experiment.json`): rows and datasets in table
/// order, where each run's folder is, the published numbers. `dsma table` reads it, so runs
/// shared with other experiment files are shown under this file's labels.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    rows: Vec<String>,
    datasets: Vec<String>,
    runs: Vec<IndexedRun>,
    #[serde(default)]
    reference: Option<crate::experiment::config::Reference>,
    /// What ± means in the experiment's table (`eval.interval`).
    #[serde(default)]
    interval: Interval,
    /// dsma and the machine of the last `dsma run` into the folder.
    #[serde(default)]
    written_by: Option<Provenance>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexedRun {
    dir: PathBuf,
    row: String,
    dataset: String,
}

/// Writes `OUT/experiment.json`: the experiment's rows, datasets, every run's folder and the
/// published numbers.
pub fn write_index(out: &Path, loaded: &LoadedExperiment, registry: &Registry) -> Result<()> {
    let index = Index {
        rows: crate::runner::plan::row_labels(loaded),
        datasets: loaded
            .experiment
            .datasets
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        runs: plan_all(loaded, registry)
            .into_iter()
            .map(|r| IndexedRun {
                dir: r.dir(),
                row: r.label,
                dataset: r.dataset_name,
            })
            .collect(),
        reference: loaded.experiment.reference.clone(),
        interval: loaded.experiment.eval.interval,
        written_by: Some(Provenance::here()),
    };
    let json =
        serde_json::to_vec_pretty(&index).map_err(|e| CoreError::codec("experiment.json", e))?;
    dsma_data::atomic_file::write_atomic(&out.join("experiment.json"), &json)
}

fn read_index(out: &Path) -> Option<Index> {
    let bytes = std::fs::read(out.join("experiment.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The run folders (relative to `out`) that the experiment's index lists and that have no
/// `results.json` yet; an error when `out` has no index (not a `dsma run` output folder).
pub fn unfinished_runs(out: &Path) -> Result<Vec<PathBuf>> {
    let index = read_index(out).ok_or_else(|| {
        CoreError::invalid(
            out.join("experiment.json").display().to_string(),
            "missing or unreadable: not the output folder of a `dsma run`",
        )
    })?;
    let mut unfinished = vec![];
    for run in index.runs {
        if logs::read_results(&out.join(&run.dir))?.is_none() {
            unfinished.push(run.dir);
        }
    }
    Ok(unfinished)
}

/// The results (`results.json`, read as `value`) of the run in `dir`, shown as row `row` on
/// `dataset` (a run shared by several experiment files carries the first one's labels).
pub fn labelled(
    dir: &Path,
    value: serde_json::Value,
    row: &str,
    dataset: &str,
) -> Result<RunResults> {
    let mut r: RunResults = serde_json::from_value(value).map_err(|e| {
        CoreError::invalid(
            dir.join("results.json").display().to_string(),
            e.to_string(),
        )
    })?;
    (r.row, r.dataset) = (row.to_string(), dataset.to_string());
    Ok(r)
}

/// What ± means in the table of the experiment under `out` (`eval.interval`; std without an index)
/// and who wrote the folder last, if recorded.
pub fn collect_settings(out: &Path) -> (Interval, Option<Provenance>) {
    read_index(out)
        .map(|i| (i.interval, i.written_by))
        .unwrap_or_default()
}

/// The published numbers (`reference:`) of the experiment whose runs are under `out`, if any.
pub fn collect_reference(out: &Path) -> Result<Option<crate::experiment::config::Reference>> {
    if let Some(index) = read_index(out) {
        return Ok(index.reference);
    }
    for dir in run_folders(out)? {
        if let Ok(record) = RunRecord::read(&dir) {
            let value = record.experiment.get("reference").cloned();
            return Ok(value.and_then(|v| serde_json::from_value(v).ok()));
        }
    }
    Ok(None)
}

/// Every finished run under an output folder, with the row and dataset order of its experiment.
pub fn collect_results(out: &Path) -> Result<(Vec<String>, Vec<String>, Vec<RunResults>)> {
    if let Some(index) = read_index(out) {
        let mut results = Vec::new();
        for run in &index.runs {
            let dir = out.join(&run.dir);
            if let Some(v) = logs::read_results(&dir)? {
                results.push(labelled(&dir, v, &run.row, &run.dataset)?);
            }
        }
        if !results.is_empty() {
            return Ok((index.rows, index.datasets, results));
        }
    }
    let mut results = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    let mut datasets: Vec<String> = Vec::new();
    for dir in run_folders(out)? {
        if rows.is_empty() {
            if let Ok(record) = RunRecord::read(&dir) {
                rows = record.row_labels();
                datasets = record.dataset_names();
            }
        }
        if let Some(v) = logs::read_results(&dir)? {
            let r: RunResults = serde_json::from_value(v).map_err(|e| {
                CoreError::invalid(
                    dir.join("results.json").display().to_string(),
                    e.to_string(),
                )
            })?;
            results.push(r);
        }
    }
    for r in &results {
        if !rows.contains(&r.row) {
            rows.push(r.row.clone());
        }
        if !datasets.contains(&r.dataset) {
            datasets.push(r.dataset.clone());
        }
    }
    if results.is_empty() {
        return Err(CoreError::invalid(
            out.display().to_string(),
            "holds no finished run (no results.json)",
        ));
    }
    Ok((rows, datasets, results))
}
