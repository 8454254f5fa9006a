//! What a run records: one line per epoch ([`EpochRecord`]), per-case metrics and the run's
//! results (`results.json`).

use serde::{Deserialize, Serialize};

use dsma_data::metrics::CaseMetrics;

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
    #[serde(deserialize_with = "dsma_data::json_nan::nan_if_null")]
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
    #[serde(default, deserialize_with = "dsma_data::json_nan::nan4_if_null")]
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
    pub reported: crate::experiment::config::Report,
    /// Epoch of the reported model.
    pub epoch: usize,
    /// Per-case metrics on the test split.
    pub cases: Vec<CaseResult>,
    /// Mean over cases (NaN entries skipped).
    pub mean: CaseMetrics,
}
