//! HA-GAN against hand counts of the public code's layer list (`Model_HA_GAN_128.py`), the layer
//! shapes of a small configuration, exact resume of a fit, and a short fit that moves the
//! generator towards the data.

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::Tensor;
use dsma_hagan::{HaGan, HaGanParams};
use dsma_plugin::registry::Plugin;
use dsma_train::generative::fit_loop::to_volumes;
use dsma_train::generative::{FitCheckpoint, GenerativeMethod, GeneratorFit, RealVolumes};
use ndarray::Array3;

type B = Flex;

/// 3³ convolution with bias plus GroupNorm's weight and bias.
fn conv_gn(cin: usize, cout: usize) -> usize {
    cin * cout * 27 + cout + 2 * cout
}

/// Convolution with kernel `k` (volume) and bias.
fn conv(cin: usize, cout: usize, k: usize) -> usize {
    cin * cout * k + cout
}

#[test]
fn the_default_matches_a_hand_count_of_model_ha_gan_128() {
    let m = HaGan::new(HaGanParams::default()).unwrap();
    let dev = Default::default();
    // G^A: Linear 1024 → 4³·512; conv 512→512, 512→512, 512→256, 256→128, 128→64 (GN each).
    let trunk = (1024 * 32_768 + 32_768)
        + conv_gn(512, 512)
        + conv_gn(512, 512)
        + conv_gn(512, 256)
        + conv_gn(256, 128)
        + conv_gn(128, 64);
    // G^L: 64→32, 32→16 (GN), 16→1; G^H: 64→32 (GN), 32→1.
    let low = conv_gn(64, 32) + conv_gn(32, 16) + conv(16, 1, 27);
    let high = conv_gn(64, 32) + conv(32, 1, 27);
    assert_eq!(m.generator::<B>(0, &dev).num_params(), trunk + low + high);
    // D^H: 1→32 k4³, 32→64 k4³, 64→128 k(2,4,4), 128→256 k(2,4,4), 256→512 k(1,4,4),
    // 512→128 k(1,4,4); SNLinear 129→64, 64→1. D^L: 1→64, 64→128, 128→256 k4³, 256→1 k4³.
    let d_high = conv(1, 32, 64)
        + conv(32, 64, 64)
        + conv(64, 128, 32)
        + conv(128, 256, 32)
        + conv(256, 512, 16)
        + conv(512, 128, 16)
        + (129 * 64 + 64)
        + (64 + 1);
    let d_low = conv(1, 64, 64) + conv(64, 128, 64) + conv(128, 256, 64) + conv(256, 1, 64);
    assert_eq!(m.discriminator::<B>(0, &dev).num_params(), d_high + d_low);
}

fn tiny_params(steps: usize) -> HaGanParams {
    HaGanParams {
        size: 32,
        latent: 8,
        trunk: vec![16, 16, 8],
        low: vec![8],
        high: 8,
        groups: 4,
        d_high_base: 4,
        d_high_max: 16,
        d_high_out: 8,
        d_low_base: 4,
        batch: 2,
        steps,
        checkpoint_every: 2,
        ..HaGanParams::default()
    }
}

fn tiny(steps: usize) -> HaGan {
    HaGan::new(tiny_params(steps)).unwrap()
}

#[test]
fn layer_shapes_follow_the_hierarchy() {
    let m = tiny(1);
    let dev = Default::default();
    let g = m.generator::<B>(0, &dev);
    let h = g.trunk(Tensor::zeros([2, 8], &dev));
    assert_eq!(h.dims(), [2, 8, 8, 8, 8], "latent volume at S/4");
    assert_eq!(
        g.low_res(h.clone()).dims(),
        [2, 1, 8, 8, 8],
        "G^L: full volume at ¼"
    );
    let crop = h.clone().narrow(2, 0, 1);
    assert_eq!(
        g.high_res(crop).dims(),
        [2, 1, 4, 32, 32],
        "G^H in training: S/8 slices"
    );
    assert_eq!(
        g.high_res(h).dims(),
        [2, 1, 32, 32, 32],
        "G^H at sampling: the whole volume"
    );
    let d = m.discriminator::<B>(0, &dev);
    let logit = d.forward(
        Tensor::zeros([2, 1, 4, 32, 32], &dev),
        Tensor::zeros([2, 1, 8, 8, 8], &dev),
        Tensor::zeros([2, 1], &dev),
    );
    assert_eq!(logit.dims(), [2]);
    assert_eq!(m.output_shape(), [32, 32, 32]);
}

#[test]
fn inconsistent_sizes_are_refused() {
    let p = HaGanParams {
        size: 64,
        ..HaGanParams::default()
    };
    let err = HaGan::new(p).err().unwrap().to_string();
    assert!(err.contains("size") && err.contains("128"), "{err}");
    let p = HaGanParams {
        groups: 3,
        ..HaGanParams::default()
    };
    assert!(HaGan::new(p).err().unwrap().to_string().contains("groups"));
}

fn fit(m: &HaGan, data: &[Array3<f32>], dir: &std::path::Path) {
    let mut progress = |_| {};
    let mut ctx = GeneratorFit {
        dir,
        seed: 5,
        progress: &mut progress,
    };
    m.fit::<B>(data, &mut ctx, &Default::default()).unwrap();
}

fn weights(dir: &std::path::Path) -> Vec<f32> {
    let dev = Default::default();
    let ck = FitCheckpoint::latest(dir).unwrap().unwrap();
    let g = ck.module("g", tiny(4).generator::<B>(0, &dev)).unwrap();
    let d = ck.module("d", tiny(4).discriminator::<B>(0, &dev)).unwrap();
    let mut v: Vec<f32> =
        g.fc.weight
            .val()
            .reshape([-1])
            .into_data()
            .to_vec()
            .unwrap();
    v.extend(
        d.low.convs[0]
            .weight
            .val()
            .reshape([-1])
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
    );
    v
}

#[test]
fn a_resumed_fit_equals_an_uninterrupted_one() {
    let data: Vec<Array3<f32>> = (0..3)
        .map(|i| Array3::from_elem((32, 32, 32), 0.2 * i as f32 - 0.2))
        .collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fit(&tiny(4), &data, a.path());
    fit(&tiny(2), &data, b.path());
    fit(&tiny(4), &data, b.path());
    assert_eq!(weights(a.path()), weights(b.path()));
    let dev = Default::default();
    let s1 = tiny(4)
        .sample::<B>(a.path(), 3, 9, &RealVolumes::none(), &dev)
        .unwrap();
    assert_eq!(
        s1,
        tiny(4)
            .sample::<B>(b.path(), 3, 9, &RealVolumes::none(), &dev)
            .unwrap()
    );
    assert_eq!(s1.len(), 3);
    assert_eq!(s1[0].dim(), (32, 32, 32));
    assert!(
        s1.iter().flatten().all(|v| (-1.0..=1.0).contains(v)),
        "tanh output"
    );
}

#[test]
fn a_short_fit_moves_samples_towards_the_data() {
    let data: Vec<Array3<f32>> = vec![Array3::from_elem((32, 32, 32), 0.5); 4];
    let dev = Default::default();
    let distance = |v: &[Array3<f32>]| {
        v.iter()
            .map(|a| a.iter().map(|x| (x - 0.5).abs() as f64).sum::<f64>() / a.len() as f64)
            .sum::<f64>()
            / v.len() as f64
    };
    let m = |steps| {
        HaGan::new(HaGanParams {
            checkpoint_every: 1000,
            ..tiny_params(steps)
        })
        .unwrap()
    };
    let g0 = m(1).generator::<B>(5, &dev);
    let before = distance(&to_volumes(g0.high_res(g0.trunk(Tensor::ones([4, 8], &dev)))).unwrap());
    let dir = tempfile::tempdir().unwrap();
    fit(&m(60), &data, dir.path());
    let after = distance(
        &m(60)
            .sample::<B>(dir.path(), 4, 3, &RealVolumes::none(), &dev)
            .unwrap(),
    );
    assert!(
        after < 0.5 * before,
        "mean |x − 0.5|: {before} before, {after} after"
    );
}

/// D's separation of real from generated data: mean σ(D(real)) − mean σ(D(fake)) over 8 draws.
fn separation(dir: &std::path::Path, steps: usize, data: &[Array3<f32>]) -> f64 {
    use burn::tensor::activation::sigmoid;
    use dsma_train::layers::{downsample_nearest, normal_tensor};
    use rand::SeedableRng;
    let dev = Default::default();
    let m = HaGan::new(HaGanParams {
        checkpoint_every: 1000,
        ..tiny_params(steps)
    })
    .unwrap();
    let ck = FitCheckpoint::latest(dir).unwrap().unwrap();
    let g = ck.module("g", m.generator::<B>(0, &dev)).unwrap();
    let d = ck.module("d", m.discriminator::<B>(0, &dev)).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(77);
    let real = dsma_train::generative::fit_loop::real_batch::<B>(data, 8, &mut rng, &dev);
    let position = Tensor::<B, 2>::zeros([8, 1], &dev);
    let h = g.trunk(normal_tensor([8, 8], &mut rng, &dev));
    let fake_crop = g.high_res(h.clone().narrow(2, 0, 1));
    let p_real = sigmoid(d.forward(
        real.clone().narrow(2, 0, 4),
        downsample_nearest(real, 4),
        position.clone(),
    ));
    let p_fake = sigmoid(d.forward(fake_crop, g.low_res(h), position));
    (p_real.mean().into_scalar() - p_fake.mean().into_scalar()) as f64
}

#[test]
fn the_discriminator_separates_less_as_the_generator_learns() {
    let data: Vec<Array3<f32>> = vec![Array3::from_elem((32, 32, 32), 0.5); 4];
    let dir = tempfile::tempdir().unwrap();
    let m = |steps| {
        HaGan::new(HaGanParams {
            checkpoint_every: 1000,
            ..tiny_params(steps)
        })
        .unwrap()
    };
    fit(&m(10), &data, dir.path());
    let early = separation(dir.path(), 10, &data);
    fit(&m(80), &data, dir.path());
    let late = separation(dir.path(), 80, &data);
    assert!(
        early > 0.0,
        "after 10 steps D tells real from fake: {early}"
    );
    assert!(late < 0.5 * early, "separation {early} → {late}");
}
