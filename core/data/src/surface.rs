//! Surface distances: border voxels, an exact Euclidean distance transform with voxel spacing, the
//! directed border-to-border distances, and the statistics built on them (HD95's percentile, the
//! normalised surface Dice).

use ndarray::{s, Array3, ArrayView3, Axis, Zip};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::volume::bounding_box;

/// Border voxels of `mask`: set voxels with a 6-neighbour unset or outside the array.
pub fn surface(mask: ArrayView3<bool>) -> Array3<bool> {
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
        // From the integer offset, as SciPy's feature transform distances are: ((q − p)·w)².
        *out = ((q as f64 - p as f64) * w).powi(2) + d[p];
    }
}

/// Squared Euclidean distance (mm²) from every voxel to the nearest `seed` voxel; `spacing` in (z, y, x).
pub fn squared_edt(seeds: ArrayView3<bool>, spacing: [f64; 3]) -> Array3<f64> {
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

/// The `q`-quantile of `values` with linear interpolation between closest ranks (NumPy's
/// default `percentile` method); NaN when empty. Sorts `values`.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    // Linear interpolation between closest ranks (numpy's default).
    let pos = (values.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// Distances (in the units of `spacing`, z, y, x) from every border voxel of `a` to the nearest
/// border voxel of `b`, and from every border voxel of `b` to the nearest of `a`, each list in
/// raster order. Border voxels are found inside the bounding box of both masks (a voxel on the
/// box's edge borders the outside, which the masks do not reach); nearest neighbours come from an
/// R*-tree of the other border, and each distance is computed from the integer offset as
/// √(((dz·sz)² + (dy·sy)²) + (dx·sx)²), the expression SciPy's feature transform gives. Empty
/// lists when either mask is empty.
pub fn border_distances(
    a: ArrayView3<bool>,
    b: ArrayView3<bool>,
    spacing: [f64; 3],
) -> (Vec<f64>, Vec<f64>) {
    if !a.iter().any(|&v| v) || !b.iter().any(|&v| v) {
        return (vec![], vec![]);
    }
    let either = Zip::from(&a).and(&b).map_collect(|&x, &y| x || y);
    let Some((lo, hi)) = bounding_box(either.view(), |&v| v) else {
        return (vec![], vec![]);
    };
    let bx = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let (pa, pb) = rayon::join(|| border_points(a.slice(bx)), || border_points(b.slice(bx)));
    rayon::join(
        || directed(&pa, &pb, spacing),
        || directed(&pb, &pa, spacing),
    )
}

/// The border voxels of `mask` as integer (z, y, x), in raster order.
fn border_points(mask: ArrayView3<bool>) -> Vec<[i64; 3]> {
    surface(mask)
        .indexed_iter()
        .filter(|(_, &v)| v)
        .map(|((z, y, x), _)| [z as i64, y as i64, x as i64])
        .collect()
}

/// For every point of `from`, the distance to the nearest point of `to` (non-empty), found
/// with an R*-tree of `to` and computed from the integer offset.
fn directed(from: &[[i64; 3]], to: &[[i64; 3]], spacing: [f64; 3]) -> Vec<f64> {
    use rstar::primitives::GeomWithData;
    let scaled = |p: &[i64; 3]| [0, 1, 2].map(|k| p[k] as f64 * spacing[k]);
    let tree = rstar::RTree::bulk_load(
        to.iter()
            .map(|p| GeomWithData::new(scaled(p), *p))
            .collect::<Vec<_>>(),
    );
    from.par_iter()
        .map(|p| match tree.nearest_neighbor(&scaled(p)) {
            Some(q) => {
                let d = [0, 1, 2].map(|k| ((p[k] - q.data[k]) as f64 * spacing[k]).powi(2));
                ((d[0] + d[1]) + d[2]).sqrt()
            }
            None => f64::INFINITY,
        })
        .collect()
}

/// How the normalised surface Dice combines the two directed border distance lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsdFormula {
    /// Border voxels of both masks within the tolerance over all border voxels of both (Nikolov
    /// et al. 2018 with one unit of area per border voxel; MONAI's `compute_surface_dice`).
    #[default]
    Pooled,
    /// The mean of the two directed fractions within the tolerance (panoptica, GaNDLF).
    MeanOfFractions,
}

/// Normalised surface Dice at tolerance `tau` from the directed distance lists of
/// [`border_distances`] (both non-empty); a distance equal to `tau` counts as within.
pub fn nsd_of(a_to_b: &[f64], b_to_a: &[f64], tau: f64, formula: NsdFormula) -> f64 {
    let within = |d: &[f64]| d.iter().filter(|&&v| v <= tau).count() as f64;
    let (na, nb) = (a_to_b.len() as f64, b_to_a.len() as f64);
    match formula {
        NsdFormula::Pooled => (within(a_to_b) + within(b_to_a)) / (na + nb),
        NsdFormula::MeanOfFractions => {
            let (ta, tb) = (within(a_to_b) / na, within(b_to_a) / nb);
            let (fa, fb) = ((na - within(a_to_b)) / na, (nb - within(b_to_a)) / nb);
            // panoptica's expression and order, with its smallest-normal guard.
            (ta + tb) / ((((ta + tb) + fa) + fb) + f64::MIN_POSITIVE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn nsd_by_hand_for_both_formulas() {
        // 3 of 4 distances within 1.0 on one side, 1 of 2 on the other.
        let (a, b) = ([0.0, 1.0, 0.5, 2.0], [1.5, 1.0]);
        assert!((nsd_of(&a, &b, 1.0, NsdFormula::Pooled) - 4.0 / 6.0).abs() < 1e-12);
        let mean = (0.75 + 0.5) / 2.0;
        assert!((nsd_of(&a, &b, 1.0, NsdFormula::MeanOfFractions) - mean).abs() < 1e-12);
    }

    #[test]
    fn border_distances_of_shifted_slabs() {
        // Two 3-voxel-thick slabs along z, shifted by one: a's border at z = 1 and 3, b's at 2
        // and 4 (each slab's faces; every voxel of a 3×3 face is border).
        let slab = |z0: usize| {
            Array3::from_shape_fn((6, 3, 3), move |(z, _, _)| (z0..z0 + 3).contains(&z))
        };
        let (a, b) = (slab(1), slab(2));
        let (ab, ba) = border_distances(a.view(), b.view(), [2.0, 1.0, 1.0]);
        // 26 border voxels each (a 3×3×3 cube's centre is interior). a's z = 1 face is one 2-mm
        // step from b's z = 2 face; a's z = 2 and 3 border voxels lie on b's border (0), except
        // a's (3, 1, 1), whose twin is b's centre: 1 mm from b's (3, 0, 1).
        let mut want = vec![0.0; 16];
        want.push(1.0);
        want.extend([2.0; 9]);
        let mut got = ab.clone();
        got.sort_by(f64::total_cmp);
        assert_eq!(got, want);
        // By symmetry (b is a shifted by +1 in z), b's distances mirror a's.
        let mut back = ba.clone();
        back.sort_by(f64::total_cmp);
        assert_eq!(back, want);
    }
}
