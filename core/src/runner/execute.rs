//! Running an experiment: validate every plugin first, plan the runs, skip finished ones, share
//! stage 1, and call the model's trainer for each remaining run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::experiment::LoadedExperiment;
use crate::plugin::Registry;
use crate::runner::config::DatasetConfig;
use crate::runner::config::Experiment;
use crate::runner::data::{prepare, PreparedData};
use crate::runner::generator_lane::{self, AheadSet, Claim, Inbox, LaneRun, Relay};
use crate::runner::plan::{plan_all, PlannedRun};
use crate::runner::registration;
use crate::runner::run_record::{absolute_dataset, run_folders, RunRecord};
use crate::runner::stage_lock::StageLock;
use crate::runner::{run_dir, RunJob, RunObserver, RunResults};

/// Options of `dsma run`.
#[derive(Debug, Clone, Default)]
pub struct ExecuteOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Continue runs that stopped (without it, a started run is an error).
    pub resume: bool,
    /// Only the rows with these labels (all when empty).
    pub only: Vec<String>,
    /// Run only every n-th run starting at i: `(i, n)`, 0-based.
    pub shard: Option<(usize, usize)>,
    /// Folder of fits shared between experiments (generators); `<out>/cache` when `None`.
    pub cache: Option<PathBuf>,
}

/// Checks every plugin of every grid point of `loaded`; one line per problem, naming the row, the
/// plugin, and where the file sets it (file:line:column) when it can be found.
pub fn check_all_plugins(
    loaded: &LoadedExperiment,
    registry: &Registry,
    only: &[String],
) -> Vec<String> {
    let texts: Vec<(PathBuf, String)> = loaded
        .files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok().map(|t| (f.clone(), t)))
        .collect();
    let mut problems = Vec::new();
    for v in &loaded.variants {
        for p in check_plugins(&v.experiment, registry, only) {
            let at = texts.iter().find_map(|(f, t)| {
                crate::experiment::locate(t, &p.path)
                    .map(|(l, c)| format!(" [{}:{l}:{c}]", f.display()))
            });
            let line = format!("{}{}", p.message, at.unwrap_or_default());
            if !problems.contains(&line) {
                problems.push(line);
            }
        }
    }
    problems
}

/// One problem with a plugin reference: where it is in the experiment and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginProblem {
    /// YAML path of the reference (`["rows", "1", "weighter"]`, `["model"]`, `["train", "backend"]`);
    /// empty for command-line problems (`--only`).
    pub path: Vec<String>,
    /// How the problem is printed (`rows.1 (DSMA): weighter: unknown weighter ...`).
    pub message: String,
}

impl PluginProblem {
    fn at(path: &[&str], message: String) -> Self {
        PluginProblem {
            path: path.iter().map(|s| s.to_string()).collect(),
            message,
        }
    }
}

/// Checks that every plugin the experiment names exists and accepts its parameters; one problem
/// per bad reference, naming the row and the plugin.
pub fn check_plugins(exp: &Experiment, registry: &Registry, only: &[String]) -> Vec<PluginProblem> {
    let mut problems = Vec::new();
    match registry.model(&exp.model.name) {
        Ok(m) => {
            if let Err(e) = (m.check)(&exp.model.params) {
                problems.push(PluginProblem::at(&["model"], format!("model: {e}")));
            }
            if let Err(e) = exp.train.backend.require() {
                problems.push(PluginProblem::at(
                    &["train", "backend"],
                    format!("train.backend: {e}"),
                ));
            }
        }
        Err(e) => problems.push(PluginProblem::at(&["model"], format!("model: {e}"))),
    }
    for (i, row) in exp.rows.iter().enumerate() {
        if !only.is_empty() && !only.contains(&row.label) {
            continue;
        }
        let index = i.to_string();
        if let Some(s) = &row.synthesizer {
            if let Err(e) = registry.any_synthesizer(&s.name, &s.params) {
                problems.push(PluginProblem::at(
                    &["rows", &index, "synthesizer"],
                    format!("rows.{i} ({}): synthesizer: {e}", row.label),
                ));
            }
        }
        if let Err(e) = row.build_weighter(registry) {
            problems.push(PluginProblem::at(
                &["rows", &index, "weighter"],
                format!("rows.{i} ({}): weighter: {e}", row.label),
            ));
        }
    }
    for label in only {
        if !exp.rows.iter().any(|r| &r.label == label) {
            let known: Vec<&str> = exp.rows.iter().map(|r| r.label.as_str()).collect();
            problems.push(PluginProblem::at(
                &[],
                format!("--only {label}: no such row (rows: {})", known.join(", ")),
            ));
        }
    }
    problems
}

/// The runs `opts` selects, in plan order (`--only` names rows without their grid suffix).
pub fn selected_runs(loaded: &LoadedExperiment, opts: &ExecuteOptions) -> Vec<PlannedRun> {
    plan_all(loaded)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|(s, n)| i % n == s))
        .map(|(_, r)| r)
        .filter(|r| {
            opts.only.is_empty()
                || opts
                    .only
                    .contains(&loaded.variants[r.variant].experiment.rows[r.row].label)
        })
        .collect()
}

/// Whether a run folder holds a finished run.
pub fn is_finished(out: &Path, run: &PlannedRun) -> bool {
    out.join(run.dir()).join("results.json").exists()
}

/// Runs every selected run of `loaded` that is not finished; returns the results of all selected
/// runs. The generator lane ([`generator_lane`]) fits and samples the generative rows ahead of
/// the trainer.
pub fn execute(
    loaded: &LoadedExperiment,
    registry: &Registry,
    opts: &ExecuteOptions,
    obs: &mut dyn RunObserver,
) -> Result<Vec<RunResults>> {
    let exp = &loaded.experiment;
    let problems = check_all_plugins(loaded, registry, &opts.only);
    if !problems.is_empty() {
        return Err(CoreError::invalid(
            loaded.files[0].display().to_string(),
            format!("cannot run:\n  {}", problems.join("\n  ")),
        ));
    }
    let reg = registration::model(&exp.model.name)?;
    let trainer = reg.trainer(exp.train.backend)?;
    let runs = selected_runs(loaded, opts);
    let cache = opts.cache.clone().unwrap_or_else(|| opts.out.join("cache"));
    write_index(&opts.out, loaded)?;
    let dirs = runs
        .iter()
        .map(|r| run_folder(&opts.out, &cache, r))
        .collect::<Result<Vec<_>>>()?;
    let data = prepare_unfinished(loaded, &runs, &dirs, &cache, obs)?;
    let ctx = Runs {
        loaded,
        registry,
        opts,
        runs: &runs,
        dirs: &dirs,
        data: &data,
        cache: &cache,
        trainer,
    };
    std::thread::scope(|scope| {
        let lane_runs = ctx.lane_runs();
        let inbox = generator_lane::start(scope, lane_runs, registry, &cache);
        let mut relay = Relay {
            inner: obs,
            inbox: inbox.as_ref(),
        };
        // Returning drops the inbox, which stops the lane.
        ctx.train_all(inbox.as_ref(), &mut relay)
    })
}

/// The selected runs of an experiment with their folders and prepared datasets.
struct Runs<'a> {
    loaded: &'a LoadedExperiment,
    registry: &'a Registry,
    opts: &'a ExecuteOptions,
    runs: &'a [PlannedRun],
    dirs: &'a [PathBuf],
    data: &'a [(DatasetConfig, PreparedData)],
    cache: &'a Path,
    trainer: registration::TrainFn,
}

impl<'a> Runs<'a> {
    /// The resolved experiment of run `n`'s grid point.
    fn experiment(&self, n: usize) -> &'a crate::runner::config::Experiment {
        &self.loaded.variants[self.runs[n].variant].experiment
    }

    /// The prepared dataset of run `n` (prepared by [`prepare_unfinished`] unless finished).
    fn data(&self, n: usize) -> Result<&'a PreparedData> {
        let cfg = &self.experiment(n).datasets[self.runs[n].dataset];
        self.data
            .iter()
            .find(|(c, _)| c == cfg)
            .map(|(_, d)| d)
            .ok_or_else(|| CoreError::invalid(&cfg.name, "dataset was not prepared"))
    }

    /// The unfinished generative runs the lane works on, in the trainer's order.
    fn lane_runs(&self) -> Vec<LaneRun<'a>> {
        (0..self.runs.len())
            .filter(|&n| !self.dirs[n].join("results.json").exists())
            .filter(|&n| generator_lane::wants(self.experiment(n), &self.runs[n], self.registry))
            .filter_map(|n| {
                Some(LaneRun {
                    index: n,
                    experiment: self.experiment(n),
                    run: &self.runs[n],
                    data: self.data(n).ok()?,
                    stage1_dir: self.cache.join(self.runs[n].stage1_dir()),
                    run_dir: self.dirs[n].clone(),
                })
            })
            .collect()
    }

    /// Trains the runs in order (skipping finished ones) and returns every run's results.
    fn train_all(
        &self,
        inbox: Option<&'a Inbox>,
        obs: &mut dyn RunObserver,
    ) -> Result<Vec<RunResults>> {
        let mut results = Vec::new();
        for (n, run) in self.runs.iter().enumerate() {
            let dir = &self.dirs[n];
            // Another process (a shard, or another experiment file sharing this run) may train
            // it; the lane takes the lock of its runs itself.
            let (lock, ahead) = match inbox.filter(|l| l.has(n)) {
                Some(lane) => match lane.claim(n, obs)? {
                    Claim::Finished => (None, None),
                    Claim::Resume(l) => (Some(l), None),
                    Claim::Fresh(l) => (
                        Some(l),
                        Some(AheadSet {
                            inbox: lane,
                            index: n,
                        }),
                    ),
                },
                None if dir.join("results.json").exists() => (None, None),
                None => (Some(StageLock::acquire(dir, obs)?), None),
            };
            let count = format!("[{}/{}]", n + 1, self.runs.len());
            if let Some(done) = run_dir::read_results(dir)? {
                obs.message(&format!(
                    "{count} {} on {}: finished earlier, skipped",
                    run.label, run.dataset_name
                ));
                // A run shared with another experiment file carries that file's labels.
                results.push(labelled(dir, done, &run.label, &run.dataset_name)?);
                continue;
            }
            check_unfinished(dir, self.loaded, run, self.opts.resume)?;
            obs.message(&format!(
                "{count} {} on {} (repeat {}, seed {})",
                run.label, run.dataset_name, run.repeat, run.seed
            ));
            results.push(self.train_one(n, ahead, obs)?);
            drop(lock);
        }
        Ok(results)
    }

    /// Writes run `n`'s record and trains it.
    fn train_one(
        &self,
        n: usize,
        ahead: Option<AheadSet<'a>>,
        obs: &mut dyn RunObserver,
    ) -> Result<RunResults> {
        let (run, dir, exp) = (&self.runs[n], &self.dirs[n], self.experiment(n));
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        RunRecord {
            experiment: self.loaded.resolved.clone(),
            files: self.loaded.files.clone(),
            overrides: self.loaded.overrides.clone(),
            run: run.clone(),
            dataset: Some(absolute_dataset(&exp.datasets[run.dataset])),
        }
        .write(dir)?;
        let stage1 = self.cache.join(run.stage1_dir());
        let job = RunJob {
            experiment: exp,
            run,
            data: self.data(n)?,
            registry: self.registry,
            stage1_dir: &stage1,
            run_dir: dir,
            cache_dir: self.cache,
            ahead,
        };
        Ok((self.trainer)(&job, obs)?.results)
    }
}

/// The experiment's view of its output folder (`experiment.json`): rows and datasets in table
/// order, where each run's folder is, the published numbers. `dsma table` reads it, so runs
/// shared with other experiment files are shown under this file's labels.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    rows: Vec<String>,
    datasets: Vec<String>,
    runs: Vec<IndexedRun>,
    #[serde(default)]
    reference: Option<crate::runner::config::Reference>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexedRun {
    dir: PathBuf,
    row: String,
    dataset: String,
}

fn write_index(out: &Path, loaded: &LoadedExperiment) -> Result<()> {
    let index = Index {
        rows: crate::runner::plan::row_labels(loaded),
        datasets: loaded
            .experiment
            .datasets
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        runs: plan_all(loaded)
            .into_iter()
            .map(|r| IndexedRun {
                dir: r.dir(),
                row: r.label,
                dataset: r.dataset_name,
            })
            .collect(),
        reference: loaded.experiment.reference.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&index).map_err(|e| CoreError::codec("experiment.json", e))?;
    crate::atomic_file::write_atomic(&out.join("experiment.json"), &json)
}

fn read_index(out: &Path) -> Option<Index> {
    let bytes = std::fs::read(out.join("experiment.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The run's folder under `out`: a link to its content-addressed folder under the shared root
/// `cache` (made on first use), so identical runs of different experiment files are one run. An
/// existing plain folder (runs made before links) is used as it is; where links are unavailable
/// the folder is plain.
fn run_folder(out: &Path, cache: &Path, run: &PlannedRun) -> Result<PathBuf> {
    let link = out.join(run.dir());
    if link.is_dir() {
        return Ok(link);
    }
    if link.symlink_metadata().is_ok() {
        // A link whose target is gone (the shared root was deleted): make it again.
        std::fs::remove_file(&link).map_err(|e| CoreError::io(&link, e))?;
    }
    let parent = link.parent().unwrap_or(out);
    std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    #[cfg(unix)]
    {
        let target = std::path::absolute(cache.join(run.shared_dir()))
            .map_err(|e| CoreError::io(cache, e))?;
        std::fs::create_dir_all(&target).map_err(|e| CoreError::io(&target, e))?;
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            // A concurrent shard may have made the same link.
            if !link.is_dir() {
                return Err(CoreError::io(&link, e));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = cache;
    Ok(link)
}

/// Refuses to start in a folder that holds an unfinished run unless `resume` is set, and to resume a
/// run that was started with other settings (each change named).
fn check_unfinished(
    dir: &Path,
    loaded: &LoadedExperiment,
    run: &PlannedRun,
    resume: bool,
) -> Result<()> {
    if dir.join("checkpoints").exists() && !resume {
        return Err(CoreError::invalid(
            dir.display().to_string(),
            "holds an unfinished run; pass --resume to continue it (or delete the folder)",
        ));
    }
    if let Ok(record) = RunRecord::read(dir) {
        let changed = record.changed_settings(&loaded.resolved, run);
        if !changed.is_empty() {
            return Err(CoreError::invalid(
                dir.display().to_string(),
                format!(
                    "was started with other settings; restore them or delete the folder:\n  {}",
                    changed.join("\n  ")
                ),
            ));
        }
    }
    Ok(())
}

/// The datasets of the runs not finished yet, each prepared once (in the order of the runs),
/// before training starts: the trainer and the generator lane read them.
fn prepare_unfinished(
    loaded: &LoadedExperiment,
    runs: &[PlannedRun],
    dirs: &[PathBuf],
    cache: &Path,
    obs: &mut dyn RunObserver,
) -> Result<Vec<(DatasetConfig, PreparedData)>> {
    let mut data: Vec<(DatasetConfig, PreparedData)> = Vec::new();
    for (run, dir) in runs.iter().zip(dirs) {
        let cfg = &loaded.variants[run.variant].experiment.datasets[run.dataset];
        if dir.join("results.json").exists() || data.iter().any(|(c, _)| c == cfg) {
            continue;
        }
        let started = std::time::Instant::now();
        let prepared = prepare(cfg, cache)?;
        if prepared.built > 0 {
            obs.message(&format!(
                "{}: {} of {} cases preprocessed into the case store ({:.1} s)",
                cfg.name,
                prepared.built,
                prepared.train.len() + prepared.test.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        data.push((cfg.clone(), prepared));
    }
    Ok(data)
}

/// The results (`results.json`, read as `value`) of the run in `dir`, shown as row `row` on
/// `dataset` (a run shared by several experiment files carries the first one's labels).
fn labelled(dir: &Path, value: serde_json::Value, row: &str, dataset: &str) -> Result<RunResults> {
    let mut r: RunResults = serde_json::from_value(value).map_err(|e| {
        CoreError::invalid(
            dir.join("results.json").display().to_string(),
            e.to_string(),
        )
    })?;
    (r.row, r.dataset) = (row.to_string(), dataset.to_string());
    Ok(r)
}

/// The published numbers (`reference:`) of the experiment whose runs are under `out`, if any.
pub fn collect_reference(out: &Path) -> Result<Option<crate::runner::config::Reference>> {
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
            if let Some(v) = run_dir::read_results(&dir)? {
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
        if let Some(v) = run_dir::read_results(&dir)? {
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
