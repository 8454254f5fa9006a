//! One region's metrics under the two readings ([`Reading`]): dsma's (distances in millimetres,
//! NSD at a tolerance in millimetres, Nikolov's pooled surface Dice) and the BraTS package's
//! (`BraTS_evaluation` 0.0.10 on panoptica 2.1.7, read from NIfTI files), whose quirks it
//! reproduces for leaderboard parity: global HD95 and NSD in voxels (NSD at 0.5 voxel, the mean
//! of the two directed fractions), a region whose masks share no voxel scoring DSC 0, NSD 0 and
//! HD95 ∞, both empty NaN; lesion-wise distances with the spacing applied to the axes in reverse
//! order (SimpleITK's (x, y, z) spacing on its (z, y, x) array) and NSD at the smallest spacing.

use ndarray::ArrayView3;

use super::global::{dice, hd95_of};
use super::options::{EmptyDice, MetricOptions, MetricSet, Reading};
use super::values::RegionMetrics;
use crate::lesion::{lesion_metrics, LesionOptions};
use crate::surface::{border_distances, nsd_of, NsdFormula};
use crate::volume::crop_to_union;

/// Metrics of one region's masks on a grid of `spacing` (z, y, x) mm.
pub fn region_metrics(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
    opts: &MetricOptions,
) -> RegionMetrics {
    let (pred, truth) = crop_to_union(pred, truth);
    let (global, lesion_opts) = match opts.reading {
        Reading::Dsma => (
            dsma_global(pred, truth, spacing, opts),
            LesionOptions {
                spacing,
                tolerance: opts.nsd_tolerance,
                nsd: NsdFormula::Pooled,
            },
        ),
        Reading::Panoptica => (
            package_global(pred, truth, opts.compute),
            LesionOptions {
                spacing: [spacing[2], spacing[1], spacing[0]],
                tolerance: spacing.iter().copied().fold(f64::INFINITY, f64::min),
                nsd: NsdFormula::MeanOfFractions,
            },
        ),
    };
    RegionMetrics {
        lesion: opts
            .compute
            .lesion
            .then(|| lesion_metrics(pred, truth, &lesion_opts)),
        ..global
    }
}

/// Dice, HD95 and (when asked) NSD the dsma way.
fn dsma_global(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
    opts: &MetricOptions,
) -> RegionMetrics {
    let (np, nt) = (pred.iter().any(|&v| v), truth.iter().any(|&v| v));
    let (a, b) = border_distances(pred, truth, spacing);
    let nsd = opts.compute.nsd.then(|| match (np, nt) {
        (false, false) if opts.empty_dice == EmptyDice::Brats => 1.0,
        (false, false) => f64::NAN,
        (true, true) => nsd_of(&a, &b, opts.nsd_tolerance, NsdFormula::Pooled),
        _ => 0.0,
    });
    RegionMetrics {
        dice: dice(pred, truth, opts.empty_dice),
        hd95: hd95_of((np, nt), a, b, opts),
        nsd,
        lesion: None,
    }
}

/// The package's global DSC, HD95 and NSD (`global_bin_*`).
fn package_global(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    compute: MetricSet,
) -> RegionMetrics {
    let (np, nt) = (pred.iter().any(|&v| v), truth.iter().any(|&v| v));
    let overlap = pred.iter().zip(truth.iter()).any(|(&p, &t)| p && t);
    let nsd = |v: f64| compute.nsd.then_some(v);
    if !np && !nt {
        return RegionMetrics {
            dice: f64::NAN,
            hd95: f64::NAN,
            nsd: nsd(f64::NAN),
            lesion: None,
        };
    }
    if !overlap {
        return RegionMetrics {
            dice: 0.0,
            hd95: f64::INFINITY,
            nsd: nsd(0.0),
            lesion: None,
        };
    }
    let (a, b) = border_distances(truth, pred, [1.0; 3]);
    let mut pooled: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
    RegionMetrics {
        dice: dice(pred, truth, EmptyDice::Nan),
        hd95: crate::surface::percentile(&mut pooled, 0.95),
        nsd: nsd(nsd_of(&a, &b, 0.5, NsdFormula::MeanOfFractions)),
        lesion: None,
    }
}
