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

use ndarray::{s, Array3, ArrayView3, Axis, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::labels::{region_mask, LabelConvention, Region};
use crate::volume::bounding_box;

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

/// Metric options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricOptions {
    /// Dice with an empty truth.
    pub empty_dice: EmptyDice,
    /// HD95 with empty masks.
    pub empty_hd: EmptyHd,
    /// HD95 definition.
    pub hd_mode: HdMode,
}

/// Dice and HD95 of one region.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegionMetrics {
    /// Dice in [0, 1] (NaN when undefined; `null` in JSON).
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub dice: f64,
    /// HD95 in mm (NaN when undefined; `null` in JSON).
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub hd95: f64,
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
    let m = |f: &dyn Fn(&CaseMetrics) -> RegionMetrics| RegionMetrics {
        dice: nan_mean(cases.iter().map(|c| f(c).dice)),
        hd95: nan_mean(cases.iter().map(|c| f(c).hd95)),
    };
    CaseMetrics {
        WT: m(&|c| c.WT),
        TC: m(&|c| c.TC),
        ET: m(&|c| c.ET),
        AVE: m(&|c| c.AVE),
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

/// Surface voxels of `mask`: set voxels with a 6-neighbour unset or outside the array.
fn surface(mask: ArrayView3<bool>) -> Array3<bool> {
    let (nz, ny, nx) = mask.dim();
    let mut out = Array3::from_elem((nz, ny, nx), false);
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(z, mut plane)| {
            for ((y, x), o) in plane.indexed_iter_mut() {
                if !mask[[z, y, x]] {
                    continue;
                }
                let off = |dz: isize, dy: isize, dx: isize| {
                    let (a, b, c) = (z as isize + dz, y as isize + dy, x as isize + dx);
                    a < 0
                        || b < 0
                        || c < 0
                        || a >= nz as isize
                        || b >= ny as isize
                        || c >= nx as isize
                        || !mask[[a as usize, b as usize, c as usize]]
                };
                *o = off(-1, 0, 0)
                    || off(1, 0, 0)
                    || off(0, -1, 0)
                    || off(0, 1, 0)
                    || off(0, 0, -1)
                    || off(0, 0, 1);
            }
        });
    out
}

/// 1-D squared distance transform (Felzenszwalb & Huttenlocher) of `f` with sample spacing `w`, in place.
fn edt_line(f: &mut [f64], w: f64, v: &mut Vec<usize>, z: &mut Vec<f64>, d: &mut Vec<f64>) {
    let n = f.len();
    v.clear();
    z.clear();
    d.clear();
    d.extend_from_slice(f);
    let pos = |q: usize| q as f64 * w;
    let mut k = 0usize;
    let first = match (0..n).find(|&q| d[q].is_finite()) {
        Some(q) => q,
        None => return,
    };
    v.push(first);
    z.push(f64::NEG_INFINITY);
    z.push(f64::INFINITY);
    for q in first + 1..n {
        if !d[q].is_finite() {
            continue;
        }
        loop {
            let p = v[k];
            let s =
                ((d[q] + pos(q) * pos(q)) - (d[p] + pos(p) * pos(p))) / (2.0 * (pos(q) - pos(p)));
            if s <= z[k] && k > 0 {
                v.pop();
                z.pop();
                k -= 1;
                continue;
            }
            if s <= z[k] {
                // k == 0: replace the only parabola.
                v[0] = q;
                z[1] = f64::INFINITY;
                break;
            }
            k += 1;
            v.push(q);
            z[k] = s;
            z.push(f64::INFINITY);
            break;
        }
    }
    let mut k = 0usize;
    for (q, out) in f.iter_mut().enumerate() {
        while z[k + 1] < pos(q) {
            k += 1;
        }
        let p = v[k];
        *out = (pos(q) - pos(p)).powi(2) + d[p];
    }
}

/// Squared Euclidean distance (mm²) from every voxel to the nearest `seed` voxel; `spacing` in (z, y, x).
fn squared_edt(seeds: ArrayView3<bool>, spacing: [f64; 3]) -> Array3<f64> {
    let mut d = seeds.mapv(|s| if s { 0.0 } else { f64::INFINITY });
    for (axis, &w) in spacing.iter().enumerate() {
        let lanes: Vec<_> = d.lanes_mut(Axis(axis)).into_iter().collect();
        lanes.into_par_iter().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(buf, v, z, dd), mut lane| {
                buf.clear();
                buf.extend(lane.iter().copied());
                edt_line(buf, w, v, z, dd);
                lane.iter_mut().zip(buf.iter()).for_each(|(o, b)| *o = *b);
            },
        );
    }
    d
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    // Linear interpolation between closest ranks (numpy's default).
    let pos = (values.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// HD95 (mm) between two binary masks on a grid with `spacing` (z, y, x) in mm.
pub fn hd95(
    pred: ArrayView3<bool>,
    truth: ArrayView3<bool>,
    spacing: [f64; 3],
    opts: &MetricOptions,
) -> f64 {
    let (np, nt) = (pred.iter().any(|&v| v), truth.iter().any(|&v| v));
    match (np, nt) {
        (false, false) => return 0.0,
        (true, false) | (false, true) => {
            return match opts.empty_hd {
                EmptyHd::Nan => f64::NAN,
                EmptyHd::BratsPenalty => BRATS_HD95_PENALTY_MM,
            }
        }
        _ => {}
    }
    // Work only inside the bounding box of both masks: every nearest surface voxel lies there.
    let either = Zip::from(&pred).and(&truth).map_collect(|&a, &b| a || b);
    let Some((lo, hi)) = bounding_box(either.view(), |&v| v) else {
        return 0.0;
    };
    let bx = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let (sp, st) = (surface(pred.slice(bx)), surface(truth.slice(bx)));
    let (to_truth, to_pred) = rayon::join(
        || squared_edt(st.view(), spacing),
        || squared_edt(sp.view(), spacing),
    );
    let collect = |surf: &Array3<bool>, dist: &Array3<f64>| -> Vec<f64> {
        surf.iter()
            .zip(dist.iter())
            .filter(|(s, _)| **s)
            .map(|(_, d)| d.sqrt())
            .collect()
    };
    let mut a = collect(&sp, &to_truth);
    let mut b = collect(&st, &to_pred);
    match opts.hd_mode {
        HdMode::Pooled => {
            a.append(&mut b);
            percentile(&mut a, 0.95)
        }
        HdMode::MaxDirected => percentile(&mut a, 0.95).max(percentile(&mut b, 0.95)),
    }
}

/// Dice and HD95 for WT, TC, ET and their mean, from two label maps in `convention`.
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
            RegionMetrics {
                dice: dice(p.view(), t.view(), opts.empty_dice),
                hd95: hd95(p.view(), t.view(), spacing_zyx, opts),
            }
        })
        .collect();
    let ave = RegionMetrics {
        dice: nan_mean(per.iter().map(|m| m.dice)),
        hd95: nan_mean(per.iter().map(|m| m.hd95)),
    };
    CaseMetrics {
        WT: per[0],
        TC: per[1],
        ET: per[2],
        AVE: ave,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(dims: (usize, usize, usize), lo: [usize; 3], hi: [usize; 3]) -> Array3<bool> {
        Array3::from_shape_fn(dims, |(z, y, x)| {
            (lo[0]..hi[0]).contains(&z)
                && (lo[1]..hi[1]).contains(&y)
                && (lo[2]..hi[2]).contains(&x)
        })
    }

    #[test]
    fn dice_by_hand_and_empty_rules() {
        let a = cube((4, 4, 4), [0, 0, 0], [2, 2, 2]); // 8 voxels
        let b = cube((4, 4, 4), [1, 0, 0], [3, 2, 2]); // 8 voxels, 4 shared
        assert!((dice(a.view(), b.view(), EmptyDice::Brats) - 0.5).abs() < 1e-12);
        let e = Array3::from_elem((4, 4, 4), false);
        assert_eq!(dice(e.view(), e.view(), EmptyDice::Brats), 1.0);
        assert_eq!(dice(a.view(), e.view(), EmptyDice::Brats), 0.0);
        assert_eq!(dice(e.view(), a.view(), EmptyDice::Brats), 0.0);
        assert!(dice(e.view(), e.view(), EmptyDice::Nan).is_nan());
        assert!(dice(a.view(), e.view(), EmptyDice::Nan).is_nan());
    }

    #[test]
    fn edt_matches_brute_force_with_anisotropic_spacing() {
        let mut seeds = Array3::from_elem((5, 6, 7), false);
        seeds[[1, 2, 3]] = true;
        seeds[[4, 0, 6]] = true;
        let sp = [2.5, 1.0, 0.7];
        let d = squared_edt(seeds.view(), sp);
        for ((z, y, x), &v) in d.indexed_iter() {
            let brute = [[1.0, 2.0, 3.0], [4.0, 0.0, 6.0]]
                .iter()
                .map(|s| {
                    ((z as f64 - s[0]) * sp[0]).powi(2)
                        + ((y as f64 - s[1]) * sp[1]).powi(2)
                        + ((x as f64 - s[2]) * sp[2]).powi(2)
                })
                .fold(f64::INFINITY, f64::min);
            assert!((v - brute).abs() < 1e-9, "{:?}: {v} vs {brute}", (z, y, x));
        }
    }

    #[test]
    fn hd95_of_shifted_cubes_and_anisotropic_spacing() {
        // Two 4×4×4 cubes shifted by 2 voxels along z: every surface point is within 2 voxels.
        let a = cube((12, 12, 12), [2, 4, 4], [6, 8, 8]);
        let b = cube((12, 12, 12), [4, 4, 4], [8, 8, 8]);
        let o = MetricOptions::default();
        assert!((hd95(a.view(), b.view(), [1.0; 3], &o) - 2.0).abs() < 1e-9);
        // With 3 mm slices along z the same shift is 6 mm.
        assert!((hd95(a.view(), b.view(), [3.0, 1.0, 1.0], &o) - 6.0).abs() < 1e-9);
        assert_eq!(hd95(a.view(), a.view(), [1.0; 3], &o), 0.0);
    }

    #[test]
    fn hd95_empty_conventions() {
        let a = cube((6, 6, 6), [1, 1, 1], [3, 3, 3]);
        let e = Array3::from_elem((6, 6, 6), false);
        let nan = MetricOptions::default();
        let pen = MetricOptions {
            empty_hd: EmptyHd::BratsPenalty,
            ..nan
        };
        assert_eq!(hd95(e.view(), e.view(), [1.0; 3], &nan), 0.0);
        assert!(hd95(a.view(), e.view(), [1.0; 3], &nan).is_nan());
        assert_eq!(
            hd95(e.view(), a.view(), [1.0; 3], &pen),
            BRATS_HD95_PENALTY_MM
        );
    }

    #[test]
    fn both_hd95_modes_match_a_brute_force_reference() {
        let sp = [2.0, 1.0, 0.5];
        let ball = |c: [f64; 3], r: [f64; 3]| {
            Array3::from_shape_fn((10, 14, 16), |(z, y, x)| {
                ((z as f64 - c[0]) / r[0]).powi(2)
                    + ((y as f64 - c[1]) / r[1]).powi(2)
                    + ((x as f64 - c[2]) / r[2]).powi(2)
                    <= 1.0
            })
        };
        let a = ball([4.0, 6.0, 7.0], [3.0, 4.0, 5.0]);
        let b = ball([5.0, 7.0, 9.0], [2.0, 5.0, 3.5]);
        let (sa, sb) = (surface(a.view()), surface(b.view()));
        let pts = |m: &Array3<bool>| {
            m.indexed_iter()
                .filter(|(_, &v)| v)
                .map(|((z, y, x), _)| [z as f64, y as f64, x as f64])
                .collect::<Vec<_>>()
        };
        let (pa, pb) = (pts(&sa), pts(&sb));
        let directed = |from: &[[f64; 3]], to: &[[f64; 3]]| -> Vec<f64> {
            from.iter()
                .map(|p| {
                    to.iter()
                        .map(|q| {
                            (0..3)
                                .map(|k| ((p[k] - q[k]) * sp[k]).powi(2))
                                .sum::<f64>()
                                .sqrt()
                        })
                        .fold(f64::INFINITY, f64::min)
                })
                .collect()
        };
        let (mut ab, mut ba) = (directed(&pa, &pb), directed(&pb, &pa));
        let mut pooled: Vec<f64> = ab.iter().chain(ba.iter()).copied().collect();
        let want_pooled = percentile(&mut pooled, 0.95);
        let want_max = percentile(&mut ab, 0.95).max(percentile(&mut ba, 0.95));
        let got_pooled = hd95(a.view(), b.view(), sp, &MetricOptions::default());
        let got_max = hd95(
            a.view(),
            b.view(),
            sp,
            &MetricOptions {
                hd_mode: HdMode::MaxDirected,
                ..Default::default()
            },
        );
        assert!(
            (got_pooled - want_pooled).abs() < 1e-9,
            "{got_pooled} vs {want_pooled}"
        );
        assert!((got_max - want_max).abs() < 1e-9, "{got_max} vs {want_max}");
        assert!(got_pooled <= got_max);
    }

    #[test]
    fn case_metrics_regions_and_average() {
        let c = LabelConvention::Brats2019;
        let mut truth = Array3::<u8>::zeros((8, 8, 8));
        truth.slice_mut(s![2..6, 2..6, 2..6]).fill(2);
        truth.slice_mut(s![3..5, 3..5, 3..5]).fill(4);
        let mut pred = truth.clone();
        pred.slice_mut(s![3..5, 3..5, 3..5]).fill(1); // ET missed, labelled necrosis instead
        let m = case_metrics(
            pred.view(),
            truth.view(),
            c,
            [1.0; 3],
            &MetricOptions::default(),
        );
        assert_eq!(m.WT.dice, 1.0);
        assert_eq!(m.TC.dice, 1.0);
        assert_eq!(m.ET.dice, 0.0);
        assert!(m.ET.hd95.is_nan());
        assert!((m.AVE.dice - 2.0 / 3.0).abs() < 1e-12);
    }
}
