//! BraTS evaluation metrics: Dice and HD95 per region (WT, TC, ET) and their mean (AVE).
//!
//! Internally Dice is a fraction in [0, 1] and HD95 is in millimetres (using the voxel spacing);
//! tables show Dice as a percentage like the paper.
//!
//! Empty regions: by default the BraTS rule (both empty → Dice 1; empty truth with a non-empty
//! prediction → 0); [`EmptyDice::Nan`] gives MONAI's "NaN and skip". HD95 is 0 when both masks are
//! empty and undefined (NaN, skipped in means) when exactly one is, unless [`EmptyHd::BratsPenalty`]
//! asks for the BraTS challenge's 373.13 mm.
//!
//! HD95 follows medpy / the BraTS toolkit by default: the 95th percentile of the pooled distances of
//! both surfaces to each other ([`HdMode::Pooled`]); MONAI's `compute_hausdorff_distance(percentile=95)`
//! takes the larger of the two directed 95th percentiles ([`HdMode::MaxDirected`]). Surfaces are the
//! mask voxels with a 6-neighbour outside the mask; distances come from an exact Euclidean distance
//! transform computed only over the bounding box of both masks.

use ndarray::{ArrayView3, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::labels::{region_mask, LabelConvention, Region};
use crate::lesion::LesionMetrics;
use crate::surface::{border_distances, percentile};

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
    /// see [`readings`]. `empty_dice`, `empty_hd`, `hd_mode` and `nsd_tolerance` do not apply.
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

/// Dice and HD95 of one region, and NSD and lesion-wise metrics when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegionMetrics {
    /// Dice in [0, 1] (NaN when undefined; `null` in JSON).
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub dice: f64,
    /// HD95 in mm (NaN when undefined; `null` in JSON).
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub hd95: f64,
    /// Normalised surface Dice in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsd: Option<f64>,
    /// Lesion-wise metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesion: Option<LesionMetrics>,
}

impl RegionMetrics {
    /// Dice and HD95 only.
    pub fn new(dice: f64, hd95: f64) -> Self {
        RegionMetrics {
            dice,
            hd95,
            nsd: None,
            lesion: None,
        }
    }
}

/// Metrics of one case: WT, TC, ET and their mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct CaseMetrics {
    /// Whole tumour.
    pub WT: RegionMetrics,
    /// Tumour core.
    pub TC: RegionMetrics,
    /// Enhancing tumour.
    pub ET: RegionMetrics,
    /// Mean of the three (NaN entries skipped).
    pub AVE: RegionMetrics,
}

impl CaseMetrics {
    /// The metrics of `region`.
    pub fn region(&self, r: Region) -> RegionMetrics {
        match r {
            Region::Wt => self.WT,
            Region::Tc => self.TC,
            Region::Et => self.ET,
        }
    }
}

/// Per-region mean over cases of Dice and HD95, skipping non-finite values (BraTS / MONAI means).
pub fn mean_over_cases(cases: &[&CaseMetrics]) -> CaseMetrics {
    let m = |f: &dyn Fn(&CaseMetrics) -> RegionMetrics| {
        let all: Vec<RegionMetrics> = cases.iter().map(|c| f(c)).collect();
        RegionMetrics {
            dice: nan_mean(all.iter().map(|r| r.dice)),
            hd95: nan_mean(all.iter().map(|r| r.hd95)),
            nsd: all
                .iter()
                .any(|r| r.nsd.is_some())
                .then(|| nan_mean(all.iter().filter_map(|r| r.nsd))),
            lesion: mean_lesions(all.iter().filter_map(|r| r.lesion)),
        }
    };
    CaseMetrics {
        WT: m(&|c| c.WT),
        TC: m(&|c| c.TC),
        ET: m(&|c| c.ET),
        AVE: m(&|c| c.AVE),
    }
}

/// Lesion counts summed over cases, and their `sq_*` / `pq_dsc` averaged over the cases where
/// they are not NaN (∞ kept, as pandas' mean keeps it); `None` without any.
fn mean_lesions(all: impl Iterator<Item = LesionMetrics>) -> Option<LesionMetrics> {
    let all: Vec<LesionMetrics> = all.collect();
    if all.is_empty() {
        return None;
    }
    let mean = |f: fn(&LesionMetrics) -> f64| {
        let v: Vec<f64> = all.iter().map(f).filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Some(LesionMetrics {
        tp: all.iter().map(|l| l.tp).sum(),
        fp: all.iter().map(|l| l.fp).sum(),
        fn_: all.iter().map(|l| l.fn_).sum(),
        sq_dsc: mean(|l| l.sq_dsc),
        pq_dsc: mean(|l| l.pq_dsc),
        sq_hd95: mean(|l| l.sq_hd95),
        sq_nsd: mean(|l| l.sq_nsd),
    })
}

/// Mean of the finite values (NaN when there are none).
pub fn nan_mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// Dice of two binary masks.
pub fn dice(pred: ArrayView3<bool>, truth: ArrayView3<bool>, empty: EmptyDice) -> f64 {
    let (inter, p, t) = Zip::from(&pred).and(&truth).par_fold(
        || (0usize, 0usize, 0usize),
        |(i, p, t), &a, &b| (i + (a && b) as usize, p + a as usize, t + b as usize),
        |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2),
    );
    if t == 0 {
        return match (empty, p) {
            (EmptyDice::Nan, _) => f64::NAN,
            (EmptyDice::Brats, 0) => 1.0,
            (EmptyDice::Brats, _) => 0.0,
        };
    }
    2.0 * inter as f64 / (p + t) as f64
}

/// HD95 (mm) between two binary masks on a grid with `spacing` (z, y, x) in mm.
pub fn hd95(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
    opts: &MetricOptions,
) -> f64 {
    let present = (pred.iter().any(|&v| v), truth.iter().any(|&v| v));
    let (a, b) = border_distances(pred, truth, spacing);
    hd95_of(present, a, b, opts)
}

/// HD95 from whether each mask is non-empty and the directed border distances.
pub(crate) fn hd95_of(
    present: (bool, bool),
    mut a: Vec<f64>,
    mut b: Vec<f64>,
    opts: &MetricOptions,
) -> f64 {
    match present {
        (false, false) => return 0.0,
        (true, false) | (false, true) => {
            return match opts.empty_hd {
                EmptyHd::Nan => f64::NAN,
                EmptyHd::BratsPenalty => BRATS_HD95_PENALTY_MM,
            }
        }
        _ => {}
    }
    match opts.hd_mode {
        HdMode::Pooled => {
            a.append(&mut b);
            percentile(&mut a, 0.95)
        }
        HdMode::MaxDirected => percentile(&mut a, 0.95).max(percentile(&mut b, 0.95)),
    }
}

/// Metrics of WT, TC, ET and their mean (Dice, HD95, NSD; lesion-wise metrics per region only),
/// from two label maps in `convention`.
pub fn case_metrics(
    pred: ArrayView3<u8>,
    truth: ArrayView3<u8>,
    convention: LabelConvention,
    spacing_zyx: [f64; 3],
    opts: &MetricOptions,
) -> CaseMetrics {
    let per: Vec<RegionMetrics> = Region::ALL
        .par_iter()
        .map(|&r| {
            let (p, t) = (
                region_mask(pred, r, convention),
                region_mask(truth, r, convention),
            );
            readings::region_metrics(p.view(), t.view(), spacing_zyx, opts)
        })
        .collect();
    let ave = RegionMetrics {
        dice: nan_mean(per.iter().map(|m| m.dice)),
        hd95: nan_mean(per.iter().map(|m| m.hd95)),
        nsd: opts
            .compute
            .nsd
            .then(|| nan_mean(per.iter().filter_map(|m| m.nsd))),
        lesion: None,
    };
    CaseMetrics {
        WT: per[0],
        TC: per[1],
        ET: per[2],
        AVE: ave,
    }
}

pub mod readings;
#[cfg(test)]
mod tests;
