//! BraTS evaluation metrics: Dice and HD95 per region (WT, TC, ET) and their mean (AVE), and on
//! request NSD and the lesion-wise metrics ([`crate::lesion`]), in dsma's or the official
//! package's reading ([`readings`]).
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
//! mask voxels with a 6-neighbour outside the mask; distances are exact, each border voxel's to the
//! nearest border voxel of the other mask (`surface::border_distances`).

pub mod global;
pub mod options;
pub mod readings;
pub mod values;

use ndarray::ArrayView3;
use rayon::prelude::*;

pub use global::{dice, hd95};
pub use options::{
    EmptyDice, EmptyHd, HdMode, Metric, MetricOptions, MetricSet, Reading, BRATS_HD95_PENALTY_MM,
};
pub use values::{CaseMetrics, RegionMetrics};

use crate::labels::{region_mask, LabelConvention, Region};
use crate::lesion::LesionMetrics;

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
    let mean = |f: fn(&LesionMetrics) -> f64| mean_skipping_nan(all.iter().map(f));
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

/// Mean of the values that are not NaN, ∞ kept (as pandas' mean); NaN when there are none.
pub fn mean_skipping_nan(values: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = values
        .into_iter()
        .filter(|v| !v.is_nan())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
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

#[cfg(test)]
mod tests;
