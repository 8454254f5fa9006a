//! The typed experiment: what a YAML file resolves to (the YAML layer itself is the `experiment` module).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inference::SlidingWindow;
use crate::runner::report::interval::Interval;
use dsma_data::corruption::Corruption;
use dsma_data::error::{CoreError, Result};
use dsma_data::labels::LabelConvention;
use dsma_data::metrics::MetricOptions;
use dsma_data::preprocess::PatchConfig;
use dsma_plugin::backend::BackendKind;

/// A resolved experiment: data, model, training, evaluation and the rows of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name (used in the report).
    pub name: String,
    /// Shared-library plugins to load before resolving plugin names.
    #[serde(default)]
    pub plugins: Vec<PathBuf>,
    /// Master seed of every run.
    #[serde(default)]
    pub seed: u64,
    /// Independent repetitions of every row (different seeds).
    #[serde(default = "one")]
    pub repeats: usize,
    /// Datasets (column groups of the table).
    pub datasets: Vec<DatasetConfig>,
    /// The segmentation network.
    pub model: PluginRef,
    /// Training schedule.
    pub train: TrainConfig,
    /// Evaluation on the held-out split.
    #[serde(default)]
    pub eval: EvalConfig,
    /// Methods compared (rows of the table).
    pub rows: Vec<RowConfig>,
    /// Published numbers printed beside ours by `dsma table` (the paper files carry the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

/// Published DSC (%) of a table, per dataset name and row label: `[WT, TC, ET, AVE]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// Where the numbers come from, e.g. `the paper's Table 1`.
    pub source: String,
    /// Dataset name → row label → `[WT, TC, ET, AVE]` in percent.
    pub dsc: BTreeMap<String, BTreeMap<String, [f64; 4]>>,
}

impl Reference {
    /// The published `[WT, TC, ET, AVE]` of `row` on `dataset`, if given.
    pub fn of(&self, dataset: &str, row: &str) -> Option<[f64; 4]> {
        self.dsc.get(dataset).and_then(|d| d.get(row)).copied()
    }

    /// Every dataset and row it names must be the experiment's; every value a percentage.
    pub(crate) fn check(&self, exp: &Experiment) -> Result<()> {
        for (ds, rows) in &self.dsc {
            if !exp.datasets.iter().any(|d| &d.name == ds) {
                return Err(CoreError::invalid(
                    format!("reference.dsc.{ds}"),
                    "names no dataset of this experiment",
                ));
            }
            for (row, values) in rows {
                if !exp.rows.iter().any(|r| &r.label == row) {
                    return Err(CoreError::invalid(
                        format!("reference.dsc.{ds}.{row}"),
                        "names no row of this experiment",
                    ));
                }
                if let Some(v) = values.iter().find(|v| !(0.0..=100.0).contains(*v)) {
                    return Err(CoreError::invalid(
                        format!("reference.dsc.{ds}.{row}"),
                        format!("{v}; expected DSC in percent, 0 to 100"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn one() -> usize {
    1
}

/// Where a dataset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// BraTS 2019 as downloaded (labels 0, 1, 2, 4).
    Brats2019,
    /// BraTS 2020 as downloaded (labels 0, 1, 2, 4).
    Brats2020,
    /// BraTS 2021 (RSNA-ASNR-MICCAI) as downloaded (labels 0, 1, 2, 4).
    Brats2021,
    /// BraTS 2023 adult glioma as downloaded (`BraTS-GLI-…-t1n.nii.gz` naming; labels 0, 1, 2, 3).
    Brats2023,
    /// The Decathlon's `Task01_BrainTumour` (`path` holds `dataset.json`; labels `msd`).
    #[serde(rename = "msd_task01")]
    MsdTask01,
    /// The procedural BraTS-like phantom, generated into `path` on first use.
    Phantom,
}

/// One dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Column-group title (e.g. "BraTS2019").
    pub name: String,
    /// Source kind.
    pub kind: DatasetKind,
    /// Folder in the BraTS layout (for a phantom: where it is generated).
    pub path: PathBuf,
    /// Label convention; default the kind's own (brats2019 for BraTS 2019–2021 and the phantom,
    /// brats2023 for BraTS 2023, msd for the Decathlon's Task01).
    #[serde(default)]
    pub labels: Option<String>,
    /// Seed of the train/test split.
    #[serde(default)]
    pub split_seed: u64,
    /// Share of cases used for training (paper: 0.8).
    #[serde(default = "default_train_fraction")]
    pub train_fraction: f64,
    /// Use only the first N cases (sorted by id), e.g. for a quick look at a real dataset.
    #[serde(default)]
    pub max_cases: Option<usize>,
    /// Phantom settings (kind phantom only).
    #[serde(default)]
    pub phantom: Option<dsma_data::phantom::PhantomSpec>,
}

fn default_train_fraction() -> f64 {
    0.8
}

impl DatasetConfig {
    /// The label convention of this dataset.
    pub fn convention(&self) -> Result<LabelConvention> {
        let default = match self.kind {
            DatasetKind::Brats2023 => "brats2023",
            DatasetKind::MsdTask01 => "msd",
            _ => "brats2019",
        };
        LabelConvention::parse(self.labels.as_deref().unwrap_or(default)).map_err(|e| {
            CoreError::invalid(format!("datasets.{}.labels", self.name), e.to_string())
        })
    }
}

/// A plugin by name with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Registered plugin name.
    pub name: String,
    /// Parameters (validated by the plugin).
    #[serde(default = "empty_object")]
    pub params: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// One training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Epochs of this stage (paper: 800 for stage 1).
    pub epochs: usize,
    /// Learning rate (paper: 1e-4 in stage 1, 1e-5 in stage 2).
    pub lr: f64,
}

/// AdamW settings (PyTorch's defaults except the paper's weight decay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Decoupled weight decay (paper §4.2: 1e-5).
    pub weight_decay: f64,
    /// Denominator epsilon (PyTorch: 1e-8; burn's default is 1e-5).
    pub eps: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            weight_decay: 1e-5,
            eps: 1e-8,
            beta1: 0.9,
            beta2: 0.999,
        }
    }
}

/// Background synthesis of stage-2 data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthesisConfig {
    /// Worker threads that synthesize.
    pub workers: usize,
    /// Epochs of synthetic data prepared ahead of the trainer (queue bound).
    pub prefetch_epochs: usize,
    /// `false` (default): every row draws its stage-2 synthetic set once, when stage 2 starts, and
    /// MAS re-weights those same samples each epoch (§3.2's "j-th synthetic data in the k-th
    /// epoch"; plugins/mas/README.md argues it); `true`: a fresh set every epoch, for every row.
    pub regenerate: bool,
    /// Generative rows: how many upcoming runs may have their first stage-2 set drawn (and
    /// waiting on disk) before the trainer reaches them; 0 draws each set when its stage 2 begins.
    pub ahead_runs: usize,
    /// A study option, no paper row's: corrupt this share of every derived synthetic set after
    /// synthesis (`dsma_data::corruption`), marked in the sample's id in `weights.csv`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<Corruption>,
}

impl Default for SynthesisConfig {
    fn default() -> Self {
        SynthesisConfig {
            workers: 2,
            prefetch_epochs: 1,
            regenerate: false,
            ahead_runs: 1,
            corrupt: None,
        }
    }
}

/// Training schedule of every row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// cpu (default) or cuda.
    #[serde(default)]
    pub backend: BackendKind,
    /// Stage 1: real data only.
    pub stage1: StageConfig,
    /// Stage 2: real plus synthetic data with per-sample weights.
    pub stage2: StageConfig,
    /// Patches per optimizer step.
    #[serde(default = "one")]
    pub batch: usize,
    /// Patch sampling.
    pub patch: PatchConfig,
    /// Patches drawn from every case per epoch.
    #[serde(default = "one")]
    pub patches_per_case: usize,
    /// AdamW settings.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Decay of the EMA teacher (pseudo-labels for generative comparators, §4.1).
    #[serde(default = "default_ema")]
    pub ema_decay: f64,
    /// Write a checkpoint every N epochs (and always at the stage switch and the end).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
    /// Background synthesis.
    #[serde(default)]
    pub synthesis: SynthesisConfig,
    /// What the per-epoch scoring pass of a score-reading weighter (MAS) predicts on.
    #[serde(default, skip_serializing_if = "ScoringRegion::is_full")]
    pub scoring: ScoringRegion,
}

/// The region a case is scored on for the weighter after every stage-2 epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoringRegion {
    /// The whole (brain-cropped) case, by sliding window, as the paper scores (default).
    #[default]
    Full,
    /// The tumour's bounding box grown to at least the training patch and the inference window:
    /// one or a few windows per case instead of dozens; false positives outside the box are not
    /// seen.
    Tumour,
}

impl ScoringRegion {
    fn is_full(&self) -> bool {
        *self == ScoringRegion::Full
    }
}

fn default_ema() -> f64 {
    0.99
}

fn default_checkpoint_every() -> usize {
    10
}

/// Which checkpoint the reported metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// The model after the last epoch.
    #[default]
    Last,
    /// The checkpoint with the best mean test Dice among the periodic evaluations.
    Best,
}

/// Evaluation on the held-out split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Sliding-window inference.
    pub window: SlidingWindow,
    /// Probability threshold of every region.
    pub threshold: f32,
    /// Dice/HD95 conventions.
    pub metrics: MetricOptions,
    /// Evaluate every N epochs to keep the best checkpoint (0: only at the end).
    pub every: usize,
    /// Which model the results report.
    pub report: Report,
    /// Write test-set predictions as NIfTI label maps.
    pub save_predictions: bool,
    /// Test-time settings of the test-split predictions (left out of the run hash at defaults).
    #[serde(skip_serializing_if = "PredictConfig::is_default")]
    pub predict: PredictConfig,
    /// What ± means in the printed table with repeats (`std` or `ci95`; not in the run hash).
    #[serde(skip_serializing_if = "is_std")]
    pub interval: Interval,
}

fn is_std(i: &Interval) -> bool {
    *i == Interval::Std
}

/// Test-time settings of `eval`'s predictions, as `dsma predict` offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictConfig {
    /// nnU-Net's test-time mirroring: every window averaged over its 8 axis flips.
    pub mirror: bool,
    /// Also evaluate ensembles of runs on the test split (not part of any run's hash: an ensemble
    /// is evaluated from finished runs).
    pub ensemble: Ensemble,
}

/// Which runs `dsma run` ensembles after training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ensemble {
    /// None.
    #[default]
    None,
    /// Each row's repeats on each dataset: their sigmoid probabilities averaged.
    Repeats,
}

impl PredictConfig {
    fn is_default(&self) -> bool {
        *self == PredictConfig::default()
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            window: SlidingWindow {
                patch: [128, 128, 128],
                overlap: 0.5,
                blend: crate::inference::Blend::Gaussian,
            },
            threshold: 0.5,
            metrics: MetricOptions::default(),
            every: 0,
            report: Report::Last,
            save_predictions: true,
            predict: PredictConfig::default(),
            interval: Interval::Std,
        }
    }
}

/// One method (row of the table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowConfig {
    /// Row label in the table (e.g. "DSMA").
    pub label: String,
    /// Synthesizer of stage 2; none trains stage 2 on real data only.
    #[serde(default)]
    pub synthesizer: Option<PluginRef>,
    /// Weighter of synthetic samples; none gives every synthetic case weight 1
    /// ([`dsma_plugin::UnitWeights`]).
    #[serde(default)]
    pub weighter: Option<PluginRef>,
}

impl RowConfig {
    /// The row's weighter: the named plugin, or unit weights when none is named.
    pub fn build_weighter(
        &self,
        registry: &dsma_plugin::Registry,
    ) -> Result<Box<dyn dsma_plugin::SampleWeighter>> {
        match &self.weighter {
            Some(w) => registry.weighter(&w.name, &w.params),
            None => Ok(Box::new(dsma_plugin::UnitWeights::default())),
        }
    }

    /// The weighter's name for messages (`unit weights` when none is named).
    pub fn weighter_name(&self) -> &str {
        self.weighter
            .as_ref()
            .map_or("unit weights", |w| w.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsma_plugin::{EpochScores, Registry};

    #[test]
    fn a_row_without_weighter_gets_unit_weights_with_no_plugin_linked() {
        // core's own test binary links no plugin crate: every named weighter is unknown here.
        let registry = Registry::builtin();
        let named = RowConfig {
            label: "DTSS".into(),
            synthesizer: None,
            weighter: Some(PluginRef {
                name: "mas".into(),
                params: empty_object(),
            }),
        };
        assert!(named.build_weighter(&registry).is_err());
        let row = RowConfig {
            weighter: None,
            ..named
        };
        let mut w = row.build_weighter(&registry).unwrap();
        let scores = EpochScores {
            epoch: 0,
            real: &[0.4],
            synthetic: &[0.0, 0.9],
        };
        assert_eq!(w.weights(&scores).unwrap(), vec![1.0, 1.0]);
        assert_eq!(w.history(), serde_json::json!({"epochs": 1}));
        assert_eq!(row.weighter_name(), "unit weights");
    }
}
