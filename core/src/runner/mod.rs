//! The two-stage runner: stage 1 on real data, stage 2 on real plus synthetic data with per-sample
//! weights, EMA teacher, sliding-window evaluation, checkpoints with exact resume, and the run folder.
//!
//! The binary resolves an experiment into runs ([`plan`]), and for each run calls the model's
//! [`registration::TrainFn`] for the chosen backend with a [`RunJob`]; progress goes to a [`RunObserver`].

pub mod checkpoint;
pub mod config;
pub mod crash_point;
pub mod curves;
pub mod data;
pub mod evaluate;
pub mod execute;
pub mod generator_fit;
pub mod generator_lane;
pub mod module_state;
pub mod plan;
pub mod registration;
pub mod report;
pub mod run_dir;
pub mod run_record;
pub mod stage_lock;
pub mod synthesis;
pub mod train;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::CaseMetrics;
use crate::plugin::Registry;

pub use config::Experiment;
pub use plan::{plan, PlannedRun};

/// Everything one run needs.
pub struct RunJob<'a> {
    /// The resolved experiment.
    pub experiment: &'a Experiment,
    /// The run being trained.
    pub run: &'a PlannedRun,
    /// Its dataset, prepared.
    pub data: &'a data::PreparedData,
    /// Plugins (synthesizers, weighters).
    pub registry: &'a Registry,
    /// Folder of the shared stage-1 run.
    pub stage1_dir: &'a Path,
    /// Folder of this run.
    pub run_dir: &'a Path,
    /// Folder of fits shared between runs and experiments (generators).
    pub cache_dir: &'a Path,
    /// The first stage-2 set the generator lane draws for this run, if it does.
    pub ahead: Option<generator_lane::AheadSet<'a>>,
}

/// One epoch's figures (a line of `epochs.csv` / `epochs.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1 or 2.
    pub stage: u8,
    /// Global epoch, 1-based (stage 2 continues stage 1's count).
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean weighted training loss over the epoch's steps.
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub loss: f64,
    /// Optimizer steps.
    pub steps: usize,
    /// Synthetic samples in the epoch.
    pub synthetic: usize,
    /// Mean weight of the synthetic samples (stage 2 with a synthesizer).
    pub mean_weight: Option<f64>,
    /// Mean score of the real training cases that the weighter saw.
    pub real_score: Option<f64>,
    /// Mean test Dice (WT, TC, ET, AVE) when the test set was evaluated after this epoch.
    #[serde(default, deserialize_with = "crate::json_nan::nan4_if_null")]
    pub test_dice: Option<[f64; 4]>,
    /// Seconds the trainer waited for synthetic data.
    pub wait_s: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Metrics of one test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Case identifier.
    pub id: String,
    /// Dice and HD95 per region.
    pub metrics: CaseMetrics,
}

/// Final results of a run (`results.json`; no timestamps, so reruns compare byte for byte).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Row label.
    pub row: String,
    /// Dataset name.
    pub dataset: String,
    /// Repeat index.
    pub repeat: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Which checkpoint is reported (`last` or `best`).
    pub reported: config::Report,
    /// Epoch of the reported model.
    pub epoch: usize,
    /// Per-case metrics on the test split.
    pub cases: Vec<CaseResult>,
    /// Mean over cases (NaN entries skipped).
    pub mean: CaseMetrics,
}

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The results written to `results.json`.
    pub results: RunResults,
    /// Where the run folder is.
    pub run_dir: PathBuf,
}

/// Receives progress of a run (progress bars, logs); every method has a silent default.
pub trait RunObserver {
    /// A stage begins at global epoch `first` (0-based) of `total`.
    fn stage(&mut self, _stage: u8, _first: usize, _total: usize) {}
    /// An epoch begins with `steps` optimizer steps.
    fn epoch_start(&mut self, _epoch: usize, _steps: usize) {}
    /// One optimizer step ended with `loss`.
    fn step(&mut self, _loss: f64) {}
    /// An epoch ended.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    /// A line for the log.
    fn message(&mut self, _text: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl RunObserver for Silent {}
