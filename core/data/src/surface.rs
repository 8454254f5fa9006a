//! Surface distances: border voxels, the exact directed border-to-border distances with voxel
//! spacing (nearest neighbours in an R*-tree), and the statistics built on them (HD95's percentile, the
//! normalised surface Dice).

use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::volume::crop_to_union;

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
    let (a, b) = crop_to_union(a, b);
    let (pa, pb) = rayon::join(|| border_points(a), || border_points(b));
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
