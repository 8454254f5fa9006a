//! DTSS properties: determinism, locality, label validity, non-empty change, no-lesion handling, sizes.

use dsma_data::phantom::generate_case;
use dsma_data::volume::Grid;
use dsma_data::{Case, LabelConvention};
use dsma_dtss::{Dtss, DtssParams, FusionMask, RadiusDraw, ReduceMode};
use dsma_plugin::registry::Plugin;
use dsma_plugin::Synthesizer;
use ndarray::{Array3, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn dtss(p: DtssParams) -> Dtss {
    Dtss::new(p).unwrap()
}

fn run(d: &Dtss, case: &Case, seed: u64) -> Case {
    d.synthesize(case, &mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap()
        .case
}

fn phantom(size: [usize; 3], seed: u64) -> Case {
    generate_case("p", size, [1.0; 3], seed).unwrap()
}

/// A BraTS-sized case built cheaply: noise-free brain box and one spherical lesion with three classes.
fn big_case(spacing: [f64; 3]) -> Case {
    let (nz, ny, nx) = (155, 240, 240);
    let mut label = Array3::<u8>::zeros((nz, ny, nx));
    let c = [70.0, 130.0, 100.0];
    for z in 50..90 {
        for y in 110..150 {
            for x in 80..120 {
                let r = ((z as f64 - c[0]).powi(2)
                    + (y as f64 - c[1]).powi(2)
                    + (x as f64 - c[2]).powi(2))
                .sqrt();
                label[[z, y, x]] = if r < 5.0 {
                    1
                } else if r < 9.0 {
                    4
                } else if r < 16.0 {
                    2
                } else {
                    0
                };
            }
        }
    }
    let image = Array4::from_shape_fn((4, nz, ny, nx), |(m, z, y, x)| {
        if z < 10 || y < 20 || x < 20 || y > 220 || x > 220 {
            0.0
        } else {
            let l = label[[z, y, x]] as f32;
            1.0 + 0.3 * m as f32 + 0.5 * l + 0.01 * ((x * 7 + y * 13 + z * 3) % 17) as f32
        }
    });
    Case {
        id: "big".into(),
        image,
        label,
        grid: Grid::axis_aligned([nx, ny, nz], spacing),
        convention: LabelConvention::Brats2019,
    }
}

#[test]
fn defaults_are_the_papers_values_and_bad_ranges_name_the_field() {
    let p = DtssParams::default();
    assert_eq!(p.monomer_radius, [3.0, 5.0]);
    assert_eq!(p.iterations, [3, 10]);
    let err = Dtss::new(DtssParams {
        monomer_radius: [5.0, 3.0],
        ..p.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("dtss") && err.contains("monomer_radius"),
        "{err}"
    );
    let err = Dtss::new(DtssParams {
        collision_probabilities: [0.0; 3],
        ..p
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("collision_probabilities"), "{err}");
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let case = phantom([24, 24, 20], 1);
    let d = dtss(DtssParams::default());
    let (a, b, c) = (run(&d, &case, 5), run(&d, &case, 5), run(&d, &case, 6));
    assert_eq!(a, b);
    assert!(a.image != c.image || a.label != c.label);
}

#[test]
fn changes_stay_inside_the_grown_deformation_area_and_labels_stay_valid() {
    for seed in 0..6 {
        let case = phantom([28, 28, 20], seed);
        let d = dtss(DtssParams {
            reduce_mode: if seed % 2 == 0 {
                ReduceMode::Subtract
            } else {
                ReduceMode::Delete
            },
            ..DtssParams::default()
        });
        let lesion = case.label.mapv(|v| v != 0);
        let area = d.deformation_area(&case, lesion.view(), [0, 0, 0]);
        let area_voxels: Vec<[usize; 3]> = area
            .indexed_iter()
            .filter(|(_, &a)| a)
            .map(|((z, y, x), _)| [z, y, x])
            .collect();
        assert!(!area_voxels.is_empty());
        let margin = d.margin();
        let out = run(&d, &case, seed + 100);
        let near = |v: [usize; 3]| {
            area_voxels
                .iter()
                .any(|a| (0..3).all(|k| a[k].abs_diff(v[k]) <= margin))
        };
        let mut changed = 0;
        for ((z, y, x), &l) in out.label.indexed_iter() {
            assert!(LabelConvention::Brats2019.is_valid(l), "label {l}");
            let img_changed = (0..4)
                .any(|m| out.image[[m, z, y, x]].to_bits() != case.image[[m, z, y, x]].to_bits());
            if img_changed || l != case.label[[z, y, x]] {
                changed += 1;
                assert!(
                    near([z, y, x]),
                    "seed {seed}: voxel {:?} changed outside the grown area",
                    (z, y, x)
                );
            }
        }
        assert!(changed > 0, "seed {seed}: a case with a lesion must change");
    }
}

#[test]
fn a_case_without_lesion_comes_back_unchanged_with_a_reason() {
    let mut case = phantom([16, 16, 16], 3);
    case.label.fill(0);
    let r = dtss(DtssParams::default())
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    assert_eq!(r.case, case);
    assert!(r.unchanged_reason.unwrap().contains("no lesion"));
}

#[test]
fn original_lesion_fusion_never_grows_labels_and_delete_can_remove_tumour() {
    let case = phantom([28, 28, 20], 4);
    let keep = dtss(DtssParams {
        fusion_mask: FusionMask::OriginalLesion,
        ..DtssParams::default()
    });
    for seed in 0..4 {
        let out = run(&keep, &case, seed);
        for (a, b) in out.label.iter().zip(case.label.iter()) {
            assert!(*b != 0 || *a == 0, "label grew outside the original lesion");
        }
    }
    let delete = dtss(DtssParams {
        collision_probabilities: [0.0, 0.0, 1.0],
        reduce_mode: ReduceMode::Delete,
        monomer_radius: [4.0, 5.0],
        ..DtssParams::default()
    });
    let removed: usize = (0..4)
        .map(|seed| {
            let out = run(&delete, &case, seed);
            out.label
                .iter()
                .zip(case.label.iter())
                .filter(|(a, b)| **a == 0 && **b != 0)
                .count()
        })
        .sum();
    assert!(removed > 0, "reduce = delete removed no tumour voxel");
}

#[test]
fn works_on_16_cubed_and_on_brats_size_with_anisotropic_spacing() {
    let small = phantom([16, 16, 16], 9);
    let out = run(&dtss(DtssParams::default()), &small, 1);
    assert_eq!(out.image.dim(), small.image.dim());
    assert_ne!(out.image, small.image);

    let big = big_case([1.0, 1.0, 2.5]);
    let out = run(&dtss(DtssParams::default()), &big, 2);
    assert_eq!(out.image.dim(), (4, 155, 240, 240));
    let changed = out
        .image
        .iter()
        .zip(big.image.iter())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 0);
    assert!(out
        .label
        .iter()
        .all(|&l| LabelConvention::Brats2019.is_valid(l)));
}

/// Lattice points (z, y, x) with (z/c)² + (y/b)² + (x/a)² ≤ 1: an undeformed monomer's voxels.
fn lattice_ellipsoid(a: i64, b: i64, c: i64) -> usize {
    let m = a.max(b).max(c);
    let mut n = 0;
    for z in -m..=m {
        for y in -m..=m {
            for x in -m..=m {
                let q = (z * z) as f64 / (c * c) as f64
                    + (y * y) as f64 / (b * b) as f64
                    + (x * x) as f64 / (a * a) as f64;
                if q <= 1.0 {
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn semi_axes_are_whole_voxels_by_default_and_real_with_radius_draw_continuous() {
    let undeformed = |radius: [f64; 2], draw: RadiusDraw| {
        dtss(DtssParams {
            monomer_radius: radius,
            radius_draw: draw,
            deform_sigma: [0.0, 0.0],
            ..DtssParams::default()
        })
    };
    // [2.5, 3.5] holds one whole number: every monomer is the radius-3 lattice ball.
    let ball = lattice_ellipsoid(3, 3, 3);
    assert_eq!(ball, 123);
    let d = undeformed([2.5, 3.5], RadiusDraw::Integer);
    for seed in 0..10 {
        let m = d.monomer(&mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(m.mask.iter().filter(|v| **v).count(), ball, "seed {seed}");
    }
    // [3, 5]: every count is one of the 27 ellipsoids of semi-axes in {3, 4, 5}; continuous draws
    // leave that set.
    let mut whole = std::collections::BTreeSet::new();
    for a in 3..=5 {
        for b in 3..=5 {
            for c in 3..=5 {
                whole.insert(lattice_ellipsoid(a, b, c));
            }
        }
    }
    let counts = |draw| -> Vec<usize> {
        let d = undeformed([3.0, 5.0], draw);
        (0..20)
            .map(|s| {
                let m = d.monomer(&mut ChaCha8Rng::seed_from_u64(s));
                m.mask.iter().filter(|v| **v).count()
            })
            .collect()
    };
    assert!(counts(RadiusDraw::Integer)
        .iter()
        .all(|n| whole.contains(n)));
    assert!(counts(RadiusDraw::Continuous)
        .iter()
        .any(|n| !whole.contains(n)));
    // A range without a whole number cannot be drawn in whole voxels.
    let err = Dtss::new(DtssParams {
        monomer_radius: [3.2, 3.8],
        ..DtssParams::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("monomer_radius") && err.contains("whole number"),
        "{err}"
    );
}

#[test]
fn blur_sigma_is_a_range_that_yaml_may_give_as_one_number() {
    let p: DtssParams = serde_json::from_str(r#"{"blur_sigma": 1.5}"#).unwrap();
    assert_eq!(p.blur_sigma, [1.5, 1.5]);
    let p: DtssParams = serde_json::from_str(r#"{"blur_sigma": [1, 2]}"#).unwrap();
    assert_eq!(p.blur_sigma, [1.0, 2.0]);
    assert!(serde_json::from_str::<DtssParams>(r#"{"blur_sigma": "wide"}"#).is_err());
    assert_eq!(DtssParams::default().blur_sigma, [1.0, 2.0]);
    assert_eq!(DtssParams::default().deform_sigma, [0.5, 1.0]);
    let err = Dtss::new(DtssParams {
        blur_sigma: [2.0, 1.0],
        ..DtssParams::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("blur_sigma"), "{err}");
}
