//! What to compute and by whose conventions: the empty-mask rules, the HD95 definition, the
//! metric list, the NSD tolerance and the reading.

use serde::{Deserialize, Serialize};

/// BraTS challenge penalty for HD95 when exactly one mask is empty.
pub const BRATS_HD95_PENALTY_MM: f64 = 373.13;

/// Dice when the ground truth is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyDice {
    /// Both empty → 1, empty truth but non-empty prediction → 0 (BraTS).
    #[default]
    Brats,
    /// Empty truth → NaN, skipped in means (MONAI `ignore_empty=True`).
    Nan,
}

/// HD95 when a mask is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyHd {
    /// Both empty → 0; one empty → NaN (undefined, skipped in means).
    #[default]
    Nan,
    /// Both empty → 0; one empty → 373.13 mm (BraTS challenge).
    BratsPenalty,
}

/// How the two directed surface-distance sets are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HdMode {
    /// 95th percentile of both sets pooled (medpy `hd95`, BraTS toolkit).
    #[default]
    Pooled,
    /// Larger of the two directed 95th percentiles (MONAI).
    MaxDirected,
}

/// Whose conventions the distances and edge cases follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// Millimetres on the grid's spacing, NSD at `nsd_tolerance` mm (Nikolov's pooled formula),
    /// the empty rules of `empty_dice` / `empty_hd`, HD95 per `hd_mode`.
    #[default]
    Dsma,
    /// The BraTS package's numbers (`BraTS_evaluation` 0.0.10 on NIfTI files), quirks included:
    /// see [`super::readings`]. `empty_dice`, `empty_hd`, `hd_mode` and `nsd_tolerance` do not apply.
    Panoptica,
}

/// A metric that can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Dice (always computed).
    Dice,
    /// HD95 (always computed).
    Hd95,
    /// Normalised surface Dice.
    Nsd,
    /// Lesion-wise DSC / HD95 / NSD with their counts.
    Lesion,
}

impl Metric {
    /// Parses `dice`, `hd95`, `nsd` or `lesion`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "dice" => Some(Metric::Dice),
            "hd95" => Some(Metric::Hd95),
            "nsd" => Some(Metric::Nsd),
            "lesion" => Some(Metric::Lesion),
            _ => None,
        }
    }
}

/// Which metrics beyond Dice and HD95 are computed (a list of [`Metric`] in YAML and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Metric>", into = "Vec<Metric>")]
pub struct MetricSet {
    /// Normalised surface Dice.
    pub nsd: bool,
    /// Lesion-wise metrics.
    pub lesion: bool,
}

impl From<Vec<Metric>> for MetricSet {
    fn from(list: Vec<Metric>) -> Self {
        MetricSet {
            nsd: list.contains(&Metric::Nsd),
            lesion: list.contains(&Metric::Lesion),
        }
    }
}

impl From<MetricSet> for Vec<Metric> {
    fn from(set: MetricSet) -> Self {
        let mut v = vec![Metric::Dice, Metric::Hd95];
        if set.nsd {
            v.push(Metric::Nsd);
        }
        if set.lesion {
            v.push(Metric::Lesion);
        }
        v
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_tolerance() -> f64 {
    1.0
}

fn is_one_mm(v: &f64) -> bool {
    *v == 1.0
}

/// Metric options. Fields added after the first release are left out of the serialized form at
/// their defaults, so run hashes of earlier experiments do not change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricOptions {
    /// Dice with an empty truth.
    pub empty_dice: EmptyDice,
    /// HD95 with empty masks.
    pub empty_hd: EmptyHd,
    /// HD95 definition.
    pub hd_mode: HdMode,
    /// Metrics computed besides Dice and HD95 (`[dice, hd95, nsd, lesion]`).
    #[serde(skip_serializing_if = "is_default")]
    pub compute: MetricSet,
    /// NSD tolerance in mm (dsma reading).
    #[serde(skip_serializing_if = "is_one_mm")]
    pub nsd_tolerance: f64,
    /// Whose conventions apply.
    #[serde(skip_serializing_if = "is_default")]
    pub reading: Reading,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions {
            empty_dice: EmptyDice::default(),
            empty_hd: EmptyHd::default(),
            hd_mode: HdMode::default(),
            compute: MetricSet::default(),
            nsd_tolerance: default_tolerance(),
            reading: Reading::default(),
        }
    }
}
