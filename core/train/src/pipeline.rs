//! The one entry point that runs an experiment file, as `dsma run` does: load (extends, overrides,
//! grid) → shared-library plugins named by the file → plan → prepare the datasets → train every
//! unfinished selected run → the paper's table (also written to `OUT/table.md`). A caller (the CLI)
//! parses its arguments into a [`RunRequest`] and prints what comes back.
//! Without `out` and `cache`, a run goes to `runner::run_folder::default_out` and `default_cache`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dsma_data::atomic_file::write_atomic;
use dsma_data::error::{CoreError, Result};
use dsma_plugin::Registry;

use crate::experiment::{load, LoadedExperiment};
use crate::runner::ensemble::evaluate_ensembles;
use crate::runner::execute::{execute, selected_runs, ExecuteOptions, Selection};
use crate::runner::plan::{row_labels, PlannedRun};
use crate::runner::plugin_check::{check_all_plugins, geometry_warnings};
use crate::runner::progress::RunObserver;
use crate::runner::records::RunResults;
use crate::runner::report::index::{collect_reference, collect_results, collect_settings};
use crate::runner::report::{build, build_metric, render, Table, TableFormat, TableMetric};
use crate::runner::run_folder::{default_cache, default_out, is_finished};

/// What to run: an experiment file and the options of `dsma run`.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The experiment file (YAML).
    pub experiment: PathBuf,
    /// `key=value` overrides, applied after `extends`.
    pub overrides: Vec<String>,
    /// Output folder (`default_out` of the experiment's name when `None`).
    pub out: Option<PathBuf>,
    /// Shared root (`default_cache` of the output folder when `None`).
    pub cache: Option<PathBuf>,
    /// Continue runs that stopped (without it, a started run is an error).
    pub resume: bool,
    /// Only the rows with these labels (all when empty).
    pub only: Vec<String>,
    /// Only every n-th run starting at i: `(i, n)`, 0-based.
    pub shard: Option<(usize, usize)>,
}

/// What [`run_experiment`] returns.
#[derive(Debug, Clone)]
pub struct ExperimentOutcome {
    /// The experiment's name.
    pub name: String,
    /// Its output folder.
    pub out: PathBuf,
    /// The results of every selected run (trained now or earlier).
    pub results: Vec<RunResults>,
    /// The paper's table of those results, with the published numbers where the file has them.
    pub table: Table,
    /// The table of the ensembles `eval.predict.ensemble` asked for (`None` without).
    pub ensembles: Option<Table>,
    /// Both tables as Markdown, as written to `OUT/table.md`.
    pub markdown: String,
    /// Wall-clock seconds of the call.
    pub seconds: f64,
}

/// One cell of a table as a flat record: what a caller without the table's layout (the Python
/// package, a notebook) gets per row and dataset. Values are the table's metric (DSC in %).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableRecord {
    /// Row label (with the grid point's suffix).
    pub row: String,
    /// Dataset name.
    pub dataset: String,
    /// The metric (`dice`, `hd95`, ...).
    pub metric: &'static str,
    /// WT, TC, ET and their average, mean over repeats.
    pub regions: [f64; 4],
    /// The ± of each: the sample standard deviation or the 95 % CI half-width (`eval.interval`).
    pub plus_minus: [f64; 4],
    /// Repeats averaged.
    pub repeats: usize,
    /// Two-sided paired Wilcoxon p-value against the first row (per-case AVE), where there is one.
    pub p_value: Option<f64>,
    /// The published WT, TC, ET, AVE of this cell, where the experiment file has them.
    pub published: Option<[f64; 4]>,
}

/// The cells of `table` that have results, row by row, as [`TableRecord`]s.
pub fn table_records(table: &Table) -> Vec<TableRecord> {
    let mut out = vec![];
    for (r, row) in table.rows.iter().enumerate() {
        for (d, dataset) in table.datasets.iter().enumerate() {
            let Some(cells) = table.cells.get(r).and_then(|c| c.get(d)).copied().flatten() else {
                continue;
            };
            let published = table
                .reference
                .as_ref()
                .and_then(|(_, p)| p.get(r).and_then(|c| c.get(d)).copied().flatten());
            out.push(TableRecord {
                row: row.clone(),
                dataset: dataset.clone(),
                metric: table.metric.name(),
                regions: cells.map(|c| c.mean),
                plus_minus: cells.map(|c| table.interval.half_width(c.std, c.n)),
                repeats: cells[3].n,
                p_value: table
                    .p_values
                    .get(r)
                    .and_then(|p| p.get(d))
                    .copied()
                    .flatten(),
                published,
            });
        }
    }
    out
}

/// Loads an experiment file with its overrides and the shared-library plugins it names (paths
/// relative to the file) into `registry`.
pub fn load_with_plugins(
    path: &Path,
    overrides: &[String],
    registry: &mut Registry,
) -> Result<LoadedExperiment> {
    let loaded = load(path, overrides)?;
    let base = loaded.files[0].parent().unwrap_or(Path::new(""));
    for p in &loaded.experiment.plugins {
        registry
            .load_library(&base.join(p))
            .map_err(|e| CoreError::Within {
                what: format!("{}: plugins", loaded.files[0].display()),
                source: Box::new(e),
            })?;
    }
    Ok(loaded)
}

/// Runs an experiment file end to end (see the module documentation); progress goes to `obs`.
pub fn run_experiment(
    req: &RunRequest,
    registry: &mut Registry,
    obs: &mut dyn RunObserver,
) -> Result<ExperimentOutcome> {
    let started = Instant::now();
    dsma_kernels::heap::retain_freed_memory();
    let loaded = load_with_plugins(&req.experiment, &req.overrides, registry)?;
    let out = req
        .out
        .clone()
        .unwrap_or_else(|| default_out(&loaded.experiment.name));
    let opts = ExecuteOptions {
        cache: req.cache.clone().unwrap_or_else(|| default_cache(&out)),
        out: out.clone(),
        resume: req.resume,
        selection: Selection {
            only: req.only.clone(),
            shard: req.shard,
        },
    };
    let results = execute(&loaded, registry, &opts, obs)?;
    let table = table_of(&loaded, &results);
    let mut text = render(&table, TableFormat::Markdown);
    // The runs' table first: a failing ensemble must not lose it.
    write_atomic(&out.join("table.md"), text.as_bytes())?;
    let ensembles = evaluate_ensembles(&loaded, registry, &opts, obs)?;
    let ensembles = (!ensembles.is_empty()).then(|| ensemble_table(&loaded, &ensembles));
    if let Some(t) = &ensembles {
        text.push_str("\nEnsembles of the repeats (sigmoid probabilities averaged):\n\n");
        text.push_str(&render(t, TableFormat::Markdown));
    }
    write_atomic(&out.join("table.md"), text.as_bytes())?;
    Ok(ExperimentOutcome {
        name: loaded.experiment.name.clone(),
        out,
        results,
        table,
        ensembles,
        markdown: text,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The experiment's dataset names, in column order.
fn dataset_names(loaded: &LoadedExperiment) -> Vec<String> {
    loaded
        .experiment
        .datasets
        .iter()
        .map(|d| d.name.clone())
        .collect()
}

/// The table of `results` in the experiment's row and dataset order (one row per row and grid
/// point: the labels carry the grid point's suffix), with its published numbers.
pub fn table_of(loaded: &LoadedExperiment, results: &[RunResults]) -> Table {
    let rows = row_labels(loaded);
    let datasets = dataset_names(loaded);
    build(&rows, &datasets, results)
        .with_reference(loaded.experiment.reference.as_ref())
        .with_interval(loaded.experiment.eval.interval)
}

/// The table of ensemble results, one row per ensembled row in the experiment's order.
fn ensemble_table(loaded: &LoadedExperiment, results: &[RunResults]) -> Table {
    let mut rows: Vec<String> = vec![];
    for r in results {
        if !rows.contains(&r.row) {
            rows.push(r.row.clone());
        }
    }
    let datasets = dataset_names(loaded);
    build(&rows, &datasets, results)
}

/// What `dsma validate` shows: the resolved experiment, its runs and every plugin problem.
#[derive(Debug)]
pub struct Validation {
    /// The loaded experiment (its `resolved` document and `files`).
    pub loaded: LoadedExperiment,
    /// The selected runs and whether each is finished in the default output folder.
    pub runs: Vec<(PlannedRun, bool)>,
    /// One line per plugin problem (empty: every plugin exists and accepts its parameters).
    pub problems: Vec<String>,
    /// One line per warning that does not stop a run (a generator much coarser than the patch).
    pub warnings: Vec<String>,
}

/// Loads and checks an experiment file without training anything.
pub fn validate_experiment(
    path: &Path,
    overrides: &[String],
    only: &[String],
    registry: &mut Registry,
) -> Result<Validation> {
    let loaded = load_with_plugins(path, overrides, registry)?;
    let out = default_out(&loaded.experiment.name);
    let selection = Selection {
        only: only.to_vec(),
        shard: None,
    };
    let runs = selected_runs(&loaded, registry, &selection)
        .into_iter()
        .map(|r| {
            let finished = is_finished(&out, &r);
            (r, finished)
        })
        .collect();
    let problems = check_all_plugins(&loaded, registry, only);
    let warnings = geometry_warnings(&loaded, registry, only);
    Ok(Validation {
        loaded,
        runs,
        problems,
        warnings,
    })
}

/// The table of `metric` of the finished runs under the output folder `out` (`dsma table`).
pub fn folder_table(out: &Path, metric: TableMetric) -> Result<Table> {
    let (rows, datasets, results) = collect_results(out)?;
    let reference = collect_reference(out)?;
    let (interval, _) = collect_settings(out);
    Ok(build_metric(&rows, &datasets, &results, metric)
        .with_reference(reference.as_ref())
        .with_interval(interval))
}
