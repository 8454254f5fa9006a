//! Whole-region Dice and HD95 of two binary masks.

use ndarray::{ArrayView3, Zip};

use super::options::{EmptyDice, EmptyHd, HdMode, MetricOptions, BRATS_HD95_PENALTY_MM};
use crate::surface::{border_distances, percentile};

/// Dice of two binary masks.
pub fn dice(pred: ArrayView3<bool>, truth: ArrayView3<bool>, empty: EmptyDice) -> f64 {
    let count = |(i, p, t): (usize, usize, usize), &a: &bool, &b: &bool| {
        (i + (a && b) as usize, p + a as usize, t + b as usize)
    };
    // Below a few blocks of voxels, handing the work to rayon costs more than the count itself.
    let (inter, p, t) = if pred.len() < 1 << 15 {
        Zip::from(&pred).and(&truth).fold((0, 0, 0), count)
    } else {
        Zip::from(&pred).and(&truth).par_fold(
            || (0usize, 0usize, 0usize),
            count,
            |x, y| (x.0 + y.0, x.1 + y.1, x.2 + y.2),
        )
    };
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
