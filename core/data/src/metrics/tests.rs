//! Metric tests: hand-computed and brute-force references.
use super::*;
use crate::surface::{percentile, surface};
use ndarray::{s, Array3};

fn cube(dims: (usize, usize, usize), lo: [usize; 3], hi: [usize; 3]) -> Array3<bool> {
    Array3::from_shape_fn(dims, |(z, y, x)| {
        (lo[0]..hi[0]).contains(&z) && (lo[1]..hi[1]).contains(&y) && (lo[2]..hi[2]).contains(&x)
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

/// dsma's NSD against its definition by brute force: border voxels of each mask within the
/// tolerance of the other's border, over all border voxels (anisotropic spacing).
#[test]
fn nsd_matches_a_brute_force_count_of_border_voxels_within_the_tolerance() {
    let sp = [2.0, 1.0, 0.5];
    let a = cube((10, 12, 14), [2, 3, 3], [7, 9, 10]);
    let b = cube((10, 12, 14), [3, 2, 5], [8, 8, 12]);
    let (sa, sb) = (surface(a.view()), surface(b.view()));
    let pts = |m: &Array3<bool>| {
        m.indexed_iter()
            .filter(|(_, &v)| v)
            .map(|((z, y, x), _)| [z as f64, y as f64, x as f64])
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (pts(&sa), pts(&sb));
    let near = |p: &[f64; 3], to: &[[f64; 3]], tau: f64| {
        to.iter().any(|q| {
            (0..3).map(|k| ((p[k] - q[k]) * sp[k]).powi(2)).sum::<f64>() <= tau * tau + 1e-12
        })
    };
    for tau in [0.5, 1.0, 2.0, 3.0] {
        let within = pa.iter().filter(|p| near(p, &pb, tau)).count()
            + pb.iter().filter(|p| near(p, &pa, tau)).count();
        let want = within as f64 / (pa.len() + pb.len()) as f64;
        let opts = MetricOptions {
            compute: MetricSet {
                nsd: true,
                lesion: false,
            },
            nsd_tolerance: tau,
            ..MetricOptions::default()
        };
        let got = readings::region_metrics(a.view(), b.view(), sp, &opts)
            .nsd
            .unwrap();
        assert!((got - want).abs() < 1e-12, "tau {tau}: {got} vs {want}");
    }
    let e = Array3::from_elem((10, 12, 14), false);
    let opts = MetricOptions {
        compute: MetricSet {
            nsd: true,
            lesion: false,
        },
        ..MetricOptions::default()
    };
    assert_eq!(
        readings::region_metrics(e.view(), e.view(), sp, &opts).nsd,
        Some(1.0)
    );
    assert_eq!(
        readings::region_metrics(a.view(), e.view(), sp, &opts).nsd,
        Some(0.0)
    );
}
