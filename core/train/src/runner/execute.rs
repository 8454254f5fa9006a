//! Training the runs of an experiment: check every plugin first, skip finished runs, prepare the
//! datasets of the others, start the generator lane, and call the model's trainer for each run
//! under its lock.

use std::path::{Path, PathBuf};

use dsma_data::error::{CoreError, Result};
use dsma_plugin::Registry;

use crate::experiment::config::{DatasetConfig, Experiment};
use crate::experiment::LoadedExperiment;
use crate::runner::plan::{plan_all, PlannedRun};
use crate::runner::plugin_check::check_all_plugins;
use crate::runner::prepare::{prepare_datasets, PreparedData};
use crate::runner::progress::RunObserver;
use crate::runner::records::RunResults;
use crate::runner::registration;
use crate::runner::report::index::{labelled, write_index};
use crate::runner::report::logs;
use crate::runner::report::record::{absolute_dataset, RunRecord};
use crate::runner::run_folder::{check_unfinished, default_cache, run_folder};
use crate::runner::run_job::RunJob;
use crate::runner::stage_lock::StageLock;
use crate::runner::synthesis::generator_lane::{self, AheadSet, Claim, Inbox, LaneRun, Relay};

/// Which runs of an experiment to train (`--only`, `--shard`); all by default.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only the rows with these labels (all when empty).
    pub only: Vec<String>,
    /// Only every n-th run starting at i: `(i, n)`, 0-based.
    pub shard: Option<(usize, usize)>,
}

/// Options of `dsma run`.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// Output folder.
    pub out: PathBuf,
    /// The shared root: the case store, shared runs and stage 1s, fitted generators.
    pub cache: PathBuf,
    /// Continue runs that stopped (without it, a started run is an error).
    pub resume: bool,
    /// Which runs.
    pub selection: Selection,
}

impl ExecuteOptions {
    /// Every run into `out`, with the default shared root beside it ([`default_cache`]).
    pub fn new(out: PathBuf) -> Self {
        ExecuteOptions {
            cache: default_cache(&out),
            out,
            resume: false,
            selection: Selection::default(),
        }
    }
}

/// The runs `selection` selects, in plan order (`--only` names rows without their grid suffix).
pub fn selected_runs(
    loaded: &LoadedExperiment,
    registry: &Registry,
    selection: &Selection,
) -> Vec<PlannedRun> {
    plan_all(loaded, registry)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| selection.shard.is_none_or(|(s, n)| i % n == s))
        .map(|(_, r)| r)
        .filter(|r| {
            selection.only.is_empty()
                || selection
                    .only
                    .contains(&loaded.variants[r.variant].experiment.rows[r.row].label)
        })
        .collect()
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
    let problems = check_all_plugins(loaded, registry, &opts.selection.only);
    if !problems.is_empty() {
        return Err(CoreError::invalid(
            loaded.files[0].display().to_string(),
            format!("cannot run:\n  {}", problems.join("\n  ")),
        ));
    }
    let reg = registration::model(&exp.model.name)?;
    let trainer = reg.trainer(exp.train.backend)?;
    let runs = selected_runs(loaded, registry, &opts.selection);
    let cache = &opts.cache;
    write_index(&opts.out, loaded, registry)?;
    let dirs = runs
        .iter()
        .map(|r| run_folder(&opts.out, cache, r))
        .collect::<Result<Vec<_>>>()?;
    let data = prepare_unfinished(loaded, &runs, &dirs, cache, obs)?;
    let ctx = Runs {
        loaded,
        registry,
        opts,
        runs: &runs,
        dirs: &dirs,
        data: &data,
        cache,
        trainer,
    };
    std::thread::scope(|scope| {
        let lane_runs = ctx.lane_runs();
        let inbox = generator_lane::start(scope, lane_runs, registry, cache);
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
    fn experiment(&self, n: usize) -> &'a Experiment {
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
            if let Some(done) = logs::read_results(dir)? {
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

/// The datasets of the runs not finished yet, each prepared once (in the order of the runs),
/// before training starts: the trainer and the generator lane read them.
fn prepare_unfinished(
    loaded: &LoadedExperiment,
    runs: &[PlannedRun],
    dirs: &[PathBuf],
    cache: &Path,
    obs: &mut dyn RunObserver,
) -> Result<Vec<(DatasetConfig, PreparedData)>> {
    let datasets: Vec<&DatasetConfig> = runs
        .iter()
        .zip(dirs)
        .filter(|(_, dir)| !dir.join("results.json").exists())
        .map(|(run, _)| &loaded.variants[run.variant].experiment.datasets[run.dataset])
        .collect();
    prepare_datasets(&datasets, cache, obs)
}
