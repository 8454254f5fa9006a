//! 3D-StyleGAN against hand computations: parameter counts of the public code's smallest layout,
//! modulation/demodulation on a tiny tensor, minibatch stddev, exact resume of a fit, and a short
//! fit that moves the generator towards the data.

use burn::backend::Flex;
use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};
use dsma_plugin::registry::Plugin;
use dsma_stylegan3d::networks::{minibatch_stddev, EqDense, ModConv};
use dsma_stylegan3d::{StyleGan3d, StyleGan3dParams};
use dsma_train::generative::fit_loop::to_volumes;
use dsma_train::generative::{GenerativeMethod, GeneratorFit, RealVolumes};
use ndarray::Array3;

type B = Flex;

/// The smallest public layout (`Gorig-Dorig-3d-1mm-base567`: F = 16, latent 96) on a 4³ base with
/// 3 blocks (32³).
fn small() -> StyleGan3dParams {
    StyleGan3dParams {
        fmaps: 16,
        base: [4, 4, 4],
        blocks: 3,
        ..StyleGan3dParams::default()
    }
}

#[test]
fn parameter_counts_match_a_hand_count_of_the_layer_list() {
    let m = StyleGan3d::new(small()).unwrap();
    let dev = Default::default();
    let (latent, f) = (96usize, 16usize);
    // Mapping: 8 dense 96 → 96 with bias.
    let mapping = 8 * (latent * latent + latent);
    // Modulated 3³ layer: weight F·F·27, style affine 96·F + F, bias F, noise strength 1.
    let modconv = f * f * 27 + (latent * f + f) + f + 1;
    // 1 at the base + 2 per block; toRGB: weight F, affine 96·F + F, bias 1; constant F·4³.
    let g = mapping + f * 64 + 7 * modconv + (f + latent * f + f + 1);
    assert_eq!(g, 136_456);
    assert_eq!(m.generator::<B>(0, &dev).num_params(), g);
    // D: fromRGB 1³ (F + F), 3 resnet blocks (two 3³ with bias, one 1³ skip without), the head
    // 3³ on F + 1 channels, dense F·4³ → F, dense F → 1.
    let block = 2 * (f * f * 27 + f) + f * f;
    let d = (f + f) + 3 * block + ((f + 1) * f * 27 + f) + (f * 64 * f + f) + (f + 1);
    assert_eq!(d, 66_145);
    assert_eq!(m.discriminator::<B>(0, &dev).num_params(), d);
    assert_eq!(m.output_shape(), [32, 32, 32]);
}

#[test]
fn modulation_and_demodulation_match_a_hand_computation() {
    let dev = Default::default();
    // Two input channels, one output channel, 1³ kernel; style affine with zero weight and bias
    // (0.5, −0.25), so s = (1.5, 0.75) whatever w is.
    let mut layer = ModConv::<B>::new(
        2,
        1,
        1,
        3,
        false,
        &mut rand::SeedableRng::seed_from_u64(1),
        &dev,
    );
    layer.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(vec![0.8f32, -0.6], [1, 2, 1, 1, 1]),
        &dev,
    ));
    layer.affine = EqDense {
        weight: Param::from_tensor(Tensor::zeros([2, 3], &dev)),
        bias: Param::from_tensor(Tensor::from_floats([0.5, -0.25], &dev)),
        w_gain: 1.0,
        b_gain: 1.0,
    };
    let x = Tensor::<B, 5>::from_data(TensorData::new(vec![2.0f32, -1.0], [1, 2, 1, 1, 1]), &dev);
    let w = Tensor::<B, 2>::from_floats([[0.3, -0.2, 0.9]], &dev);
    let y: Vec<f32> = layer.forward(x, w, None).into_data().to_vec().unwrap();
    // By hand: runtime weights 0.8/√2, −0.6/√2; s = (1.5, 0.75).
    let (a, b) = (0.8 / 2f64.sqrt(), -0.6 / 2f64.sqrt());
    let (s0, s1) = (1.5, 0.75);
    let (x0, x1) = (2.0, -1.0);
    let conv = a * x0 * s0 + b * x1 * s1;
    let demod = 1.0 / ((a * s0).powi(2) + (b * s1).powi(2) + 1e-8).sqrt();
    let pre = conv * demod; // > 0, so lrelu is the identity; gain √2; bias 0.
    let want = pre * 2f64.sqrt();
    assert!((y[0] as f64 - want).abs() < 1e-5, "{} vs {want}", y[0]);
}

#[test]
fn minibatch_stddev_matches_a_hand_computation() {
    let dev = Default::default();
    // N = 4 samples of one channel, one voxel: values 1, 2, 3, 5; group 2 → groups by n mod 2:
    // {1, 3} and {2, 5}; std (population, +1e-8) 1 and 1.5.
    let x = Tensor::<B, 5>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 5.0], [4, 1, 1, 1, 1]),
        &dev,
    );
    let y: Vec<f32> = minibatch_stddev(x, 2).into_data().to_vec().unwrap();
    // Layout [n, c]: the input value, then the feature.
    let want = [1.0, 1.0, 2.0, 1.5, 3.0, 1.0, 5.0, 1.5];
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() < 1e-4, "{y:?}");
    }
}

fn tiny(steps: usize) -> StyleGan3d {
    StyleGan3d::new(StyleGan3dParams {
        latent: 8,
        dlatent: 8,
        mapping_width: 8,
        mapping_layers: 2,
        fmaps: 4,
        base: [2, 2, 2],
        blocks: 2,
        batch: 2,
        steps,
        checkpoint_every: 2,
        ema_kimg: 0.01,
        ..StyleGan3dParams::default()
    })
    .unwrap()
}

fn fit(m: &StyleGan3d, data: &[Array3<f32>], dir: &std::path::Path) {
    let mut progress = |_| {};
    let mut ctx = GeneratorFit {
        dir,
        seed: 5,
        progress: &mut progress,
    };
    m.fit::<B>(data, &mut ctx, &Default::default()).unwrap();
}

#[test]
fn a_resumed_fit_equals_an_uninterrupted_one() {
    let data: Vec<Array3<f32>> = (0..3)
        .map(|i| Array3::from_elem((8, 8, 8), 0.1 * i as f32))
        .collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fit(&tiny(4), &data, a.path());
    // Stopped after the checkpoint of step 2, then continued to 4.
    fit(&tiny(2), &data, b.path());
    fit(&tiny(4), &data, b.path());
    // Every network's weights are equal (file bytes hold burn's random parameter ids, so the
    // tensors are compared).
    let dev = Default::default();
    let weights = |dir: &std::path::Path, name: &str| -> Vec<f32> {
        let ck = dsma_train::generative::FitCheckpoint::latest(dir)
            .unwrap()
            .unwrap();
        let m = tiny(4);
        let g = match name {
            "g_ema" => ck.module("g_ema", m.generator::<B>(0, &dev)).unwrap(),
            _ => ck.module("g", m.generator::<B>(0, &dev)).unwrap(),
        };
        let d = ck.module("d", m.discriminator::<B>(0, &dev)).unwrap();
        let mut v: Vec<f32> = Vec::new();
        for p in [
            g.synthesis.constant.val().reshape([-1]),
            d.from_rgb.weight.val().reshape([-1]),
            d.out.weight.val().reshape([-1]),
        ] {
            v.extend(p.into_data().to_vec::<f32>().unwrap());
        }
        v
    };
    for name in ["g", "g_ema"] {
        assert_eq!(weights(a.path(), name), weights(b.path(), name), "{name}");
    }
    let s1 = tiny(4)
        .sample::<B>(a.path(), 3, 9, &RealVolumes::none(), &Default::default())
        .unwrap();
    let s2 = tiny(4)
        .sample::<B>(b.path(), 3, 9, &RealVolumes::none(), &Default::default())
        .unwrap();
    assert_eq!(s1, s2);
    assert_eq!(s1[0].dim(), (8, 8, 8));
}

#[test]
fn sampling_needs_a_finished_fit() {
    let data: Vec<Array3<f32>> = vec![Array3::zeros((8, 8, 8))];
    let dir = tempfile::tempdir().unwrap();
    fit(&tiny(2), &data, dir.path());
    let err = tiny(4)
        .sample::<B>(dir.path(), 1, 0, &RealVolumes::none(), &Default::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("no finished stylegan3d fit"),
        "{err}"
    );
}

#[test]
fn truncation_zero_is_refused() {
    let p = StyleGan3dParams {
        truncation_psi: 0.0,
        ..StyleGan3dParams::default()
    };
    let err = StyleGan3d::new(p).err().unwrap().to_string();
    assert!(err.contains("truncation_psi"), "{err}");
}

#[test]
fn a_short_fit_moves_samples_towards_the_data() {
    // Every training volume is the constant 0.5: the untrained generator's samples are far from
    // it, the trained generator's much closer. 300 steps: after 150 a GAN fit's distance depended
    // on the convolutions' rounding (0.545× with dsma's direct kernels, 0.66× with burn-flex's ops);
    // after 300 both are below half.
    let data: Vec<Array3<f32>> = vec![Array3::from_elem((8, 8, 8), 0.5); 4];
    let m = |steps| {
        StyleGan3d::new(StyleGan3dParams {
            steps,
            checkpoint_every: 100,
            ..tiny(1).params().clone()
        })
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let dev = Default::default();
    let distance = |v: &[Array3<f32>]| {
        v.iter()
            .map(|a| a.iter().map(|x| (x - 0.5).abs() as f64).sum::<f64>() / a.len() as f64)
            .sum::<f64>()
            / v.len() as f64
    };
    let g0 = m(1).generator::<B>(5, &dev);
    let z = Tensor::<B, 2>::ones([4, 8], &dev);
    let before = {
        let w = g0.mapping.forward(z);
        let ws = vec![w; g0.synthesis.num_ws()];
        let noise = (0..g0.synthesis.layers.len())
            .map(|l| {
                let [d, h, w] = g0.synthesis.layer_size(l);
                Tensor::zeros([4, 1, d, h, w], &dev)
            })
            .collect();
        distance(&to_volumes(g0.synthesis.forward(&ws, noise)).unwrap())
    };
    fit(&m(300), &data, dir.path());
    let after = distance(
        &m(300)
            .sample::<B>(dir.path(), 4, 3, &RealVolumes::none(), &dev)
            .unwrap(),
    );
    assert!(
        after < 0.5 * before,
        "mean |x − 0.5|: {before} before, {after} after"
    );
}
