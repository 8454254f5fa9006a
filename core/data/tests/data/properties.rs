//! Properties of the metrics and the NIfTI writer/reader over random inputs: Dice and HD95 against
//! brute-force definitions on small random masks; write → read round trips of every datatype.

use dsma_data::metrics::{dice, hd95, EmptyDice, HdMode, MetricOptions};
use dsma_data::nifti_io::{read_volume, write_nifti2_f32, write_volume};
use dsma_data::volume::Grid;
use ndarray::Array3;
use proptest::prelude::*;

const SHAPE: (usize, usize, usize) = (4, 5, 6);

fn mask() -> impl Strategy<Value = Array3<bool>> {
    proptest::collection::vec(any::<bool>(), SHAPE.0 * SHAPE.1 * SHAPE.2)
        .prop_map(|v| Array3::from_shape_vec(SHAPE, v).expect("shape"))
}

/// Set voxels with a 6-neighbour unset or outside the array.
fn surface(m: &Array3<bool>) -> Vec<[usize; 3]> {
    let (nz, ny, nx) = m.dim();
    let mut out = vec![];
    for ((z, y, x), &v) in m.indexed_iter() {
        let inside = |dz: isize, dy: isize, dx: isize| {
            let (a, b, c) = (z as isize + dz, y as isize + dy, x as isize + dx);
            a >= 0
                && b >= 0
                && c >= 0
                && (a as usize) < nz
                && (b as usize) < ny
                && (c as usize) < nx
                && m[[a as usize, b as usize, c as usize]]
        };
        let all = [
            (-1, 0, 0),
            (1, 0, 0),
            (0, -1, 0),
            (0, 1, 0),
            (0, 0, -1),
            (0, 0, 1),
        ]
        .iter()
        .all(|&(a, b, c)| inside(a, b, c));
        if v && !all {
            out.push([z, y, x]);
        }
    }
    out
}

/// Directed distances from each surface voxel of `from` to the nearest surface voxel of `to`.
fn directed(from: &[[usize; 3]], to: &[[usize; 3]], spacing: [f64; 3]) -> Vec<f64> {
    from.iter()
        .map(|p| {
            to.iter()
                .map(|q| {
                    (0..3)
                        .map(|a| ((p[a] as f64 - q[a] as f64) * spacing[a]).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// numpy's default percentile (linear between closest ranks).
fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = (v.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Fixed seed and no regression files: the same inputs on every run and machine.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_d5a1),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn dice_matches_its_definition(p in mask(), t in mask()) {
        let inter = p.iter().zip(t.iter()).filter(|(a, b)| **a && **b).count() as f64;
        let (np, nt) = (p.iter().filter(|v| **v).count() as f64, t.iter().filter(|v| **v).count() as f64);
        let got = dice(p.view(), t.view(), EmptyDice::Brats);
        if nt == 0.0 {
            prop_assert_eq!(got, if np == 0.0 { 1.0 } else { 0.0 });
        } else {
            prop_assert!((got - 2.0 * inter / (np + nt)).abs() < 1e-12);
        }
    }

    #[test]
    fn hd95_matches_brute_force_surface_distances(p in mask(), t in mask(), sz in 0.5f64..3.0) {
        let spacing = [sz, 1.0, 0.75];
        let (sp, st) = (surface(&p), surface(&t));
        prop_assume!(!sp.is_empty() && !st.is_empty());
        let (a, b) = (directed(&sp, &st, spacing), directed(&st, &sp, spacing));
        let pooled = percentile(a.iter().chain(&b).copied().collect(), 0.95);
        let max_directed = percentile(a, 0.95).max(percentile(b, 0.95));
        for (mode, want) in [(HdMode::Pooled, pooled), (HdMode::MaxDirected, max_directed)] {
            let opts = MetricOptions { hd_mode: mode, ..MetricOptions::default() };
            let got = hd95(p.view(), t.view(), spacing, &opts);
            prop_assert!((got - want).abs() < 1e-9, "{mode:?}: {got} vs {want}");
        }
    }

    #[test]
    fn every_datatype_and_both_versions_round_trip(v in proptest::collection::vec(-1000i16..1000, 24)) {
        let dir = tempfile::tempdir().expect("tmp");
        let grid = Grid::axis_aligned([4, 3, 2], [1.0, 1.5, 2.0]);
        let shape = (2, 3, 4);
        let f = Array3::from_shape_vec(shape, v.iter().map(|&x| x as f32 * 0.25).collect()).expect("f32");
        let i = Array3::from_shape_vec(shape, v.clone()).expect("i16");
        let u = Array3::from_shape_vec(shape, v.iter().map(|&x| x.unsigned_abs() as u8).collect()).expect("u8");
        write_volume(&dir.path().join("f.nii.gz"), f.view(), &grid).expect("write f32");
        write_volume(&dir.path().join("i.nii.gz"), i.view(), &grid).expect("write i16");
        write_volume(&dir.path().join("u.nii"), u.view(), &grid).expect("write u8");
        write_nifti2_f32(&dir.path().join("f2.nii"), f.view(), &grid).expect("write nifti2");
        let back = |name: &str| read_volume(&dir.path().join(name)).expect("read");
        prop_assert_eq!(back("f.nii.gz").data, f.clone());
        prop_assert_eq!(back("i.nii.gz").data, i.mapv(f32::from));
        prop_assert_eq!(back("u.nii").data, u.mapv(f32::from));
        let two = back("f2.nii");
        prop_assert_eq!(two.header.version, 2);
        prop_assert_eq!(two.data, f);
        prop_assert_eq!(two.grid.affine, grid.affine);
    }
}

/// The case proptest once shrank a failure to (an all-zero volume written to a plain `.nii`: the
/// writer's temporary name lost its stem), kept as a plain test since the property tests persist no
/// failures.
#[test]
fn an_all_zero_volume_round_trips_through_a_plain_nii() {
    let dir = tempfile::tempdir().expect("tmp");
    let grid = Grid::axis_aligned([4, 3, 2], [1.0, 1.5, 2.0]);
    let u = Array3::<u8>::zeros((2, 3, 4));
    write_volume(&dir.path().join("u.nii"), u.view(), &grid).expect("write u8");
    let back = read_volume(&dir.path().join("u.nii")).expect("read");
    assert_eq!(back.data, u.mapv(f32::from));
    assert_eq!(back.grid.dims, [4, 3, 2]);
}
