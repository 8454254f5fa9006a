//! The comparator protocol and the shared layers against hand computations.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use dsma_train::generative::protocol::{
    noisy_copies, resample, IntensityMap, NoiseLayout, ProtocolParams,
};
use dsma_train::layers::{avg_pool2, downsample_nearest, spectral_sigma, upsample2_nearest};
use ndarray::{Array3, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type B = Flex;

fn tensor(values: Vec<f32>, shape: [usize; 5]) -> Tensor<B, 5> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

#[test]
fn spectral_sigma_is_the_largest_singular_value() {
    // [[1, 2], [3, 4]]: AᵀA = [[10, 14], [14, 20]], eigenvalues 15 ± √221, σ₁ = √(15 + √221).
    let a = Tensor::<B, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &Default::default());
    let want = (15.0f64 + 221f64.sqrt()).sqrt();
    let got = values(spectral_sigma(&a, 10))[0] as f64;
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
    // One iteration from the fixed start is already within 1 % here.
    let one = values(spectral_sigma(&a, 1))[0] as f64;
    assert!((one - want).abs() < 1e-2 * want, "{one} vs {want}");
    // A diagonal matrix: σ = the largest |entry|, whatever the shape is called (a 1×1×… conv weight).
    let d = Tensor::<B, 2>::from_floats(
        [[0.5, 0.0, 0.0], [0.0, -3.0, 0.0], [0.0, 0.0, 2.0]],
        &Default::default(),
    );
    let got = values(spectral_sigma(&d.reshape([3, 3, 1, 1, 1]), 30))[0];
    assert!((got - 3.0).abs() < 1e-3, "{got}");
}

#[test]
fn resample_matches_pytorch_trilinear_with_unaligned_corners() {
    // Up ×2 of [0, 1, 2, 3]: source coordinates (o + 0.5)/2 − 0.5, clamped.
    let v = Array3::from_shape_vec((1, 1, 4), vec![0.0, 1.0, 2.0, 3.0]).unwrap();
    let up = resample(v.view(), [1, 1, 8]);
    let want = [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0];
    for (g, w) in up.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{up:?}");
    }
    // Down ×2: coordinates 0.5, 2.5, … → means of neighbouring pairs.
    let v = Array3::from_shape_fn((8, 1, 1), |(z, _, _)| (z * z) as f32);
    let down = resample(v.view(), [4, 1, 1]);
    for (o, g) in down.iter().enumerate() {
        let w = ((2 * o) * (2 * o) + (2 * o + 1) * (2 * o + 1)) as f32 / 2.0;
        assert!((g - w).abs() < 1e-5, "{down:?}");
    }
}

#[test]
fn intensity_map_sends_the_quantiles_to_minus_one_and_one() {
    let m = IntensityMap::from_values((0..=100).map(|v| v as f32).collect(), [0.1, 0.9]).unwrap();
    assert_eq!((m.lo, m.hi), (10.0, 90.0));
    assert_eq!(m.to_unit(10.0), -1.0);
    assert_eq!(m.to_unit(90.0), 1.0);
    assert_eq!(m.to_unit(50.0), 0.0);
    assert_eq!(m.to_unit(500.0), 1.0, "clipped");
    assert_eq!(m.to_zscore(0.5), 70.0);
    assert!(IntensityMap::from_values(vec![f32::NAN], [0.0, 1.0]).is_err());
}

#[test]
fn noisy_copies_differ_only_by_noise_of_the_documented_level() {
    let map = IntensityMap { lo: -2.0, hi: 3.0 };
    let p = ProtocolParams::default();
    let u = Array3::<f32>::from_elem((32, 32, 32), 0.2);
    let z = map.to_zscore(0.2); // 1.0
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases = noisy_copies(u.view(), &map, &p, 4, &mut rng);
    assert_eq!(cases.len(), 1);
    let n = 32f64.powi(3);
    for (c, sigma) in p.noise.iter().enumerate() {
        let ch = cases[0].index_axis(Axis(0), c);
        let mean = ch.iter().map(|v| *v as f64).sum::<f64>() / n;
        let sd = (ch.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        let want = *sigma * map.range() as f64;
        assert!(
            (sd - want).abs() < 0.03 * want,
            "channel {c}: σ {sd} vs {want}"
        );
        assert!(
            (mean - z as f64).abs() < 5.0 * want / n.sqrt(),
            "channel {c}: mean {mean}"
        );
    }
    // The same RNG seed gives the same copies; channels differ from each other.
    let again = noisy_copies(u.view(), &map, &p, 4, &mut ChaCha8Rng::seed_from_u64(7));
    assert_eq!(again, cases);
    assert_ne!(
        cases[0].index_axis(Axis(0), 0),
        cases[0].index_axis(Axis(0), 1)
    );
    // "Four noisy datasets": one case per level, every channel at that level.
    let p = ProtocolParams {
        layout: NoiseLayout::Datasets,
        ..ProtocolParams::default()
    };
    let sets = noisy_copies(u.view(), &map, &p, 4, &mut rng);
    assert_eq!(sets.len(), 4);
    for (level, case) in sets.iter().enumerate() {
        for ch in case.outer_iter() {
            let sd = (ch
                .iter()
                .map(|v| (*v as f64 - z as f64).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            let want = p.noise[level] * map.range() as f64;
            assert!(
                (sd - want).abs() < 0.03 * want,
                "level {level}: {sd} vs {want}"
            );
        }
    }
}

#[test]
fn protocol_params_refuse_bad_values() {
    let bad = ProtocolParams {
        noise: vec![],
        ..ProtocolParams::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("protocol.noise"));
    let bad = ProtocolParams {
        range_quantiles: [0.9, 0.1],
        ..ProtocolParams::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("range_quantiles"));
}

#[test]
fn pooling_and_nearest_resampling_match_brute_force() {
    let (d, h, w) = (4usize, 6usize, 8usize);
    let v: Vec<f32> = (0..d * h * w).map(|i| (i * 7 % 11) as f32).collect();
    let at = |z: usize, y: usize, x: usize| v[(z * h + y) * w + x];
    let pooled = values(avg_pool2(tensor(v.clone(), [1, 1, d, h, w])));
    for z in 0..d / 2 {
        for y in 0..h / 2 {
            for x in 0..w / 2 {
                let mut s = 0.0;
                for (a, b, c) in (0..8).map(|k| (k >> 2, (k >> 1) & 1, k & 1)) {
                    s += at(2 * z + a, 2 * y + b, 2 * x + c);
                }
                let got = pooled[(z * (h / 2) + y) * (w / 2) + x];
                assert!((got - s / 8.0).abs() < 1e-5);
            }
        }
    }
    let up = values(upsample2_nearest(tensor(v.clone(), [1, 1, d, h, w])));
    for (i, g) in up.iter().enumerate() {
        let (z, y, x) = (i / (4 * h * w), i / (2 * w) % (2 * h), i % (2 * w));
        assert_eq!(*g, at(z / 2, y / 2, x / 2));
    }
    let down = values(downsample_nearest(tensor(v.clone(), [1, 1, d, h, w]), 2));
    for (i, g) in down.iter().enumerate() {
        let (z, y, x) = (i / ((h / 2) * (w / 2)), i / (w / 2) % (h / 2), i % (w / 2));
        assert_eq!(*g, at(2 * z, 2 * y, 2 * x));
    }
}

/// A chunk of a larger draw conditions its sample `j` on case `first + j`, wrapping around.
#[test]
fn an_offset_draw_is_conditioned_on_the_cases_after_its_first() {
    use dsma_data::{Case, Grid, LabelConvention};
    use dsma_train::generative::{IntensityMap, RealVolumes};
    // Three 1×1×2 cases whose FLAIR is the constant 10·i; the map sends [0, 40] to [-1, 1].
    let cases: Vec<Case> = (0..3)
        .map(|i| Case {
            id: format!("c{i}"),
            image: ndarray::Array4::from_elem((4, 1, 1, 2), 10.0 * i as f32),
            label: Array3::zeros((1, 1, 2)),
            grid: Grid::axis_aligned([2, 1, 1], [1.0; 3]),
            convention: LabelConvention::Brats2019,
        })
        .collect();
    let map = IntensityMap { lo: 0.0, hi: 40.0 };
    let real = RealVolumes::new(&cases, dsma_data::Modality::Flair, map, [1, 1, 2]).offset(2);
    let got: Vec<f32> = real
        .batch::<B>(0, 3, "test", &Default::default())
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    // Samples 0, 1, 2 of the chunk ← cases 2, 0, 1: 10·i ↦ 10·i/20 − 1.
    assert_eq!(got, vec![0.0, 0.0, -1.0, -1.0, -0.5, -0.5]);
}

#[test]
fn a_corrupt_generator_fit_is_refused_naming_the_file() {
    use dsma_train::generative::FitCheckpoint;
    let tmp = tempfile::tempdir().unwrap();
    let device = Default::default();
    let net = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
    let mut ckpt = FitCheckpoint::new(7, serde_json::json!({"note": "fit"}));
    ckpt.put_module("generator", &net).unwrap();
    ckpt.save(tmp.path()).unwrap();
    assert_eq!(
        FitCheckpoint::latest(tmp.path()).unwrap().unwrap().step(),
        7
    );

    let file = tmp.path().join("step-0000007/generator.safetensors");
    let original = std::fs::read(&file).unwrap();
    let mut flipped = original.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x80;
    for (bytes, len) in [(&flipped[..], original.len()), (&[][..], 0)] {
        std::fs::write(&file, bytes).unwrap();
        let e = FitCheckpoint::latest(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("generator.safetensors")
                && e.contains(&format!("{len} bytes with CRC-32"))
                && e.contains(&format!("expected {} bytes", original.len())),
            "{e}"
        );
    }
}
