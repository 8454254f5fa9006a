//! Lesion-wise metrics as the BraTS challenge's evaluation computes them for gliomas
//! (`BraTS_evaluation` 0.0.10 with `config_gli.yaml`, on panoptica 2.1.7): the connected
//! components of prediction and truth (26-connectivity), a one-to-one matching that maximises the
//! summed Dice of overlapping pairs (a minimum-cost assignment on 1 − DSC, pairs that do not
//! overlap costing 1 + 10⁻⁶ and never accepted), and per matched pair DSC, HD95 and NSD, averaged
//! over the matched pairs (`sq_*`). Missed and spurious lesions enter through `fp`, `fn` and the
//! recognition quality `rq` (so `pq_dsc = sq_dsc · rq`), not the `sq_*` means; with no match at
//! all the config's rules apply: `sq_dsc = sq_nsd = 0` and `sq_hd95 = ∞` when any lesion exists,
//! NaN when neither side has one.

use ndarray::{s, Array2, ArrayView3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::assignment::min_cost_assignment;
use crate::components::{components, Components};
use crate::surface::{border_distances, nsd_of, percentile, NsdFormula};
use crate::volume::crop_to_union;

/// Lesion-wise numbers of one region, named as the package names them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "LesionRecord")]
pub struct LesionMetrics {
    /// Matched lesions.
    pub tp: usize,
    /// Predicted lesions left unmatched (spurious).
    pub fp: usize,
    /// True lesions left unmatched (missed).
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// Mean DSC of the matched pairs.
    pub sq_dsc: f64,
    /// `sq_dsc · rq`, with `rq = tp / (tp + (fp + fn) / 2)`.
    pub pq_dsc: f64,
    /// Mean HD95 of the matched pairs (∞ when lesions exist but none match; `null` in JSON for
    /// ∞ and NaN alike, told apart by the counts).
    pub sq_hd95: f64,
    /// Mean NSD of the matched pairs.
    pub sq_nsd: f64,
}

/// [`LesionMetrics`] as read from JSON, where ∞ and NaN are both `null`.
#[derive(Deserialize)]
struct LesionRecord {
    tp: usize,
    fp: usize,
    #[serde(rename = "fn")]
    fn_: usize,
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    sq_dsc: f64,
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pq_dsc: f64,
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    sq_hd95: f64,
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    sq_nsd: f64,
}

impl From<LesionRecord> for LesionMetrics {
    /// A `null` `sq_hd95` is ∞ when lesions exist but none matched (the config's rule), else NaN.
    fn from(r: LesionRecord) -> Self {
        let unmatched = r.tp == 0 && r.fp + r.fn_ > 0;
        LesionMetrics {
            tp: r.tp,
            fp: r.fp,
            fn_: r.fn_,
            sq_dsc: r.sq_dsc,
            pq_dsc: r.pq_dsc,
            sq_hd95: if r.sq_hd95.is_nan() && unmatched {
                f64::INFINITY
            } else {
                r.sq_hd95
            },
            sq_nsd: r.sq_nsd,
        }
    }
}

/// How distances are measured for the matched pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LesionOptions {
    /// Spacing applied to the (z, y, x) axes.
    pub spacing: [f64; 3],
    /// NSD tolerance, in the units of `spacing`.
    pub tolerance: f64,
    /// NSD formula.
    pub nsd: NsdFormula,
}

/// DSC, HD95 and NSD of one matched pair.
fn pair_metrics(
    truth: &Components,
    pred: &Components,
    (r, p): (u32, u32),
    opts: &LesionOptions,
) -> [f64; 3] {
    let (a, b) = (truth.boxes[r as usize - 1], pred.boxes[p as usize - 1]);
    let lo = [0, 1, 2].map(|k| a.0[k].min(b.0[k]));
    let hi = [0, 1, 2].map(|k| a.1[k].max(b.1[k]));
    let bx = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let rm = truth.labels.slice(bx).mapv(|v| v == r);
    let pm = pred.labels.slice(bx).mapv(|v| v == p);
    let both = rm.iter().zip(pm.iter()).filter(|(x, y)| **x && **y).count();
    let (nr, np) = (truth.sizes[r as usize - 1], pred.sizes[p as usize - 1]);
    let dsc = 2.0 * both as f64 / (nr + np) as f64;
    let (r_to_p, p_to_r) = border_distances(rm.view(), pm.view(), opts.spacing);
    let nsd = nsd_of(&r_to_p, &p_to_r, opts.tolerance, opts.nsd);
    let mut pooled = r_to_p;
    pooled.extend(p_to_r);
    [dsc, percentile(&mut pooled, 0.95), nsd]
}

/// The accepted one-to-one matches `(truth lesion, predicted lesion)`, by truth lesion number.
fn matches(truth: &Components, pred: &Components) -> Vec<(u32, u32)> {
    let (nr, np) = (truth.count(), pred.count());
    if nr == 0 || np == 0 {
        return vec![];
    }
    let mut overlap = std::collections::HashMap::<(u32, u32), usize>::new();
    for (&r, &p) in truth.labels.iter().zip(pred.labels.iter()) {
        if r != 0 && p != 0 {
            *overlap.entry((r, p)).or_default() += 1;
        }
    }
    let mut cost = Array2::from_elem((nr, np), 1.0 + 1e-6);
    for (&(r, p), &n) in &overlap {
        let dsc =
            2.0 * n as f64 / (truth.sizes[r as usize - 1] + pred.sizes[p as usize - 1]) as f64;
        if dsc >= 1e-6 {
            cost[[r as usize - 1, p as usize - 1]] = 1.0 - dsc;
        }
    }
    min_cost_assignment(cost.view())
        .into_iter()
        .filter(|&(r, p)| cost[[r, p]] < 1.0)
        .map(|(r, p)| (r as u32 + 1, p as u32 + 1))
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Lesion-wise metrics of one region's predicted and true masks.
pub fn lesion_metrics(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    opts: &LesionOptions,
) -> LesionMetrics {
    let (pred, truth) = crop_to_union(pred, truth);
    let (ct, cp) = rayon::join(|| components(truth), || components(pred));
    let pairs = matches(&ct, &cp);
    let per: Vec<[f64; 3]> = pairs
        .par_iter()
        .map(|&pair| pair_metrics(&ct, &cp, pair, opts))
        .collect();
    let tp = pairs.len();
    let (fp, fn_) = (cp.count() - tp, ct.count() - tp);
    let any = ct.count() + cp.count() > 0;
    let [sq_dsc, sq_hd95, sq_nsd] = if tp > 0 {
        [0, 1, 2].map(|k| mean(&per.iter().map(|m| m[k]).collect::<Vec<_>>()))
    } else if any {
        [0.0, f64::INFINITY, 0.0]
    } else {
        [f64::NAN; 3]
    };
    let rq = match (tp, any) {
        (0, true) => 0.0,
        (0, false) => f64::NAN,
        _ => tp as f64 / (tp as f64 + 0.5 * fp as f64 + 0.5 * fn_ as f64),
    };
    LesionMetrics {
        tp,
        fp,
        fn_,
        sq_dsc,
        pq_dsc: sq_dsc * rq,
        sq_hd95,
        sq_nsd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn boxes(dims: (usize, usize, usize), list: &[([usize; 3], [usize; 3])]) -> Array3<bool> {
        Array3::from_shape_fn(dims, |(z, y, x)| {
            list.iter().any(|(lo, hi)| {
                (lo[0]..hi[0]).contains(&z)
                    && (lo[1]..hi[1]).contains(&y)
                    && (lo[2]..hi[2]).contains(&x)
            })
        })
    }

    const ONE_MM: LesionOptions = LesionOptions {
        spacing: [1.0; 3],
        tolerance: 1.0,
        nsd: NsdFormula::MeanOfFractions,
    };

    /// Truth: A = z 0..10 and B = z 12..22. Prediction: P2 = z 0..2 and P1 = z 5..16. Greedy
    /// matching takes P1–A (DSC 2·5/21) and leaves B unmatched; the optimum pairs P2–A (2·2/12)
    /// and P1–B (2·4/21), summing to more.
    #[test]
    fn the_matching_is_the_optimal_one_to_one_not_greedy() {
        let d = (26, 4, 4);
        let truth = boxes(d, &[([0, 0, 0], [10, 4, 4]), ([12, 0, 0], [22, 4, 4])]);
        let pred = boxes(d, &[([0, 0, 0], [2, 4, 4]), ([5, 0, 0], [16, 4, 4])]);
        let m = lesion_metrics(pred.view(), truth.view(), &ONE_MM);
        assert_eq!((m.tp, m.fp, m.fn_), (2, 0, 0));
        let want = (2.0 * 2.0 / 12.0 + 2.0 * 4.0 / 21.0) / 2.0;
        assert!((m.sq_dsc - want).abs() < 1e-12, "{} vs {want}", m.sq_dsc);
    }

    #[test]
    fn missed_and_spurious_lesions_count_but_do_not_enter_the_means() {
        let d = (20, 6, 6);
        let truth = boxes(d, &[([1, 1, 1], [5, 5, 5]), ([10, 1, 1], [12, 3, 3])]);
        let pred = boxes(d, &[([1, 1, 1], [5, 5, 5]), ([15, 1, 1], [17, 3, 3])]);
        let m = lesion_metrics(pred.view(), truth.view(), &ONE_MM);
        assert_eq!((m.tp, m.fp, m.fn_), (1, 1, 1));
        assert_eq!((m.sq_dsc, m.sq_hd95, m.sq_nsd), (1.0, 0.0, 1.0));
        assert!((m.pq_dsc - 1.0 / (1.0 + 0.5 + 0.5)).abs() < 1e-12);
        let e = Array3::from_elem(d, false);
        let none = lesion_metrics(e.view(), truth.view(), &ONE_MM);
        assert_eq!(
            (none.tp, none.fn_, none.sq_dsc, none.pq_dsc),
            (0, 2, 0.0, 0.0)
        );
        assert_eq!(none.sq_hd95, f64::INFINITY);
        let nothing = lesion_metrics(e.view(), e.view(), &ONE_MM);
        assert!(nothing.sq_dsc.is_nan() && nothing.pq_dsc.is_nan() && nothing.sq_hd95.is_nan());
    }

    #[test]
    fn an_unmatched_region_keeps_its_infinite_hd95_through_json() {
        let l = LesionMetrics {
            tp: 0,
            fp: 1,
            fn_: 2,
            sq_dsc: 0.0,
            pq_dsc: 0.0,
            sq_hd95: f64::INFINITY,
            sq_nsd: 0.0,
        };
        let back: LesionMetrics =
            serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        let none = LesionMetrics {
            tp: 0,
            fp: 0,
            fn_: 0,
            sq_hd95: f64::NAN,
            ..l
        };
        let back: LesionMetrics =
            serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert!(back.sq_hd95.is_nan());
    }

    /// With one lesion on each side, the pair's DSC, HD95 and pooled NSD are the whole masks'
    /// (each checked against brute force in `metrics::tests` and `surface::tests`); here by hand:
    /// two 4×4×4 cubes shifted by one voxel along z with 2-mm slices.
    #[test]
    fn one_pair_scores_as_its_two_masks() {
        let d = (10, 8, 8);
        let truth = boxes(d, &[([2, 2, 2], [6, 6, 6])]);
        let pred = boxes(d, &[([3, 2, 2], [7, 6, 6])]);
        let opts = LesionOptions {
            spacing: [2.0, 1.0, 1.0],
            tolerance: 1.0,
            nsd: NsdFormula::Pooled,
        };
        let m = lesion_metrics(pred.view(), truth.view(), &opts);
        assert_eq!((m.tp, m.fp, m.fn_), (1, 0, 0));
        assert!((m.sq_dsc - 2.0 * 48.0 / 128.0).abs() < 1e-12);
        // Each cube has 56 border voxels (64 − the 2×2×2 core). A border voxel lies on the other
        // border (0 mm) unless it is on the unshared face (16 voxels per cube, 2 mm from the other
        // cube's face) or it is one of the 4 voxels whose twin is the other cube's interior:
        // those are 1 mm (one voxel in y or x) from the other border.
        let (far, near, on) = (16.0, 4.0, 36.0);
        let want_nsd = (near + on) * 2.0 / (112.0);
        assert!(
            (m.sq_nsd - want_nsd).abs() < 1e-12,
            "{} vs {want_nsd}",
            m.sq_nsd
        );
        assert!(far + near + on == 56.0);
        // Pooled distances: 32 at 2 mm, 8 at 1 mm, 72 at 0 → the 95th percentile is 2 mm.
        assert_eq!(m.sq_hd95, 2.0);
    }
}
