//! augment: identity when every range is zero, exact integer shifts, rotation by 90°, crop zooms in,
//! labels stay labels, same seed same output, parameter errors.

use dsma_augment::{Augment, AugmentParams, RotationAxes, Transform};
use dsma_data::phantom::generate_case;
use dsma_plugin::registry::Plugin;
use dsma_plugin::Synthesizer;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn identity() -> Transform {
    Transform {
        rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        shift: [0.0; 3],
        fraction: 1.0,
    }
}

fn aug() -> Augment {
    Augment::new(AugmentParams::default()).unwrap()
}

#[test]
fn identity_transform_returns_the_case_and_shifts_are_exact() {
    let case = generate_case("a", [24, 24, 16], [1.0; 3], 4).unwrap();
    let same = aug().apply(&case, &identity());
    assert_eq!(same.label, case.label);
    assert!(same
        .image
        .iter()
        .zip(case.image.iter())
        .all(|(a, b)| (a - b).abs() < 1e-6));
    let shifted = aug().apply(
        &case,
        &Transform {
            shift: [1.0, 2.0, 3.0],
            ..identity()
        },
    );
    // output[z, y, x] = input[z − 1, y − 2, x − 3].
    assert_eq!(shifted.label[[5, 7, 9]], case.label[[4, 5, 6]]);
    assert_eq!(shifted.image[[2, 5, 7, 9]], case.image[[2, 4, 5, 6]]);
    assert_eq!(shifted.label[[0, 0, 0]], 0);
}

#[test]
fn a_quarter_turn_in_the_axial_plane_permutes_voxels() {
    let case = generate_case("a", [24, 24, 16], [1.0; 3], 5).unwrap();
    let (s, c) = std::f64::consts::FRAC_PI_2.sin_cos();
    let t = Transform {
        rotation: [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]],
        ..identity()
    };
    let r = aug().apply(&case, &t);
    // Source of (z, y, x) is (z, cy − (x − cx), cx + (y − cy)) with cy = cx = 11.5.
    for (z, y, x) in [(8usize, 3usize, 20usize), (4, 10, 2), (12, 22, 14)] {
        let (sy, sx) = (23 - x, y);
        assert_eq!(
            r.label[[z, y, x]],
            case.label[[z, sy, sx]],
            "at {z} {y} {x}"
        );
    }
    assert_eq!(r.tumour_voxels(), case.tumour_voxels());
}

#[test]
fn centre_crop_zooms_in_and_labels_stay_valid() {
    let case = generate_case("a", [32, 32, 16], [1.0; 3], 6).unwrap();
    let z = aug().apply(
        &case,
        &Transform {
            fraction: 0.5,
            ..identity()
        },
    );
    assert!(
        z.tumour_voxels() > case.tumour_voxels(),
        "zooming in enlarges the tumour"
    );
    assert!(z.label.iter().all(|&v| case.convention.is_valid(v)));
}

#[test]
fn same_seed_same_output_and_bad_parameters_are_named() {
    let case = generate_case("a", [24, 24, 16], [1.0; 3], 7).unwrap();
    let a = Augment::new(AugmentParams {
        axes: RotationAxes::All,
        ..AugmentParams::default()
    })
    .unwrap();
    let x = a
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap()
        .case;
    let y = a
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap()
        .case;
    let w = a
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(4))
        .unwrap()
        .case;
    assert_eq!(x.image, y.image);
    assert_ne!(x.image, w.image);
    let err = Augment::new(AugmentParams {
        crop: [0.9, 0.5],
        ..AugmentParams::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("augment") && err.contains("crop"), "{err}");
}
