//! diffusion-wu: the degradation against a hand computation, exact resume, conditional sampling,
//! and a short fit that lowers the ε-loss.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use dsma_data::{Case, Grid, LabelConvention, Modality};
use dsma_diffusion_wu::{degrade, DiffusionWu, DiffusionWuParams};
use dsma_plugin::registry::Plugin;
use dsma_plugin::FitProgress;
use dsma_train::diffusion::{DenoiserConfig, DiffusionParams};
use dsma_train::generative::{GenerativeMethod, GeneratorFit, IntensityMap, RealVolumes};
use ndarray::{Array3, Array4};

type B = Flex;

#[test]
fn degrade_pools_then_upsamples_trilinearly() {
    // Along x: [0, 1, 2, 3] → pairs (0.5, 2.5) → ×2 trilinear (align_corners = false):
    // 0.5, 0.5 + 0.25·2, 0.5 + 0.75·2, 2.5.
    let v: Vec<f32> = (0..16).map(|i| (i % 4) as f32).collect();
    let x = Tensor::<B, 5>::from_data(TensorData::new(v, [1, 1, 2, 2, 4]), &Default::default());
    let y: Vec<f32> = degrade(x, 2).into_data().to_vec().unwrap();
    for (i, g) in y.iter().enumerate() {
        let want = [0.5, 1.0, 2.0, 2.5][i % 4];
        assert!((g - want).abs() < 1e-6, "{y:?}");
    }
}

fn params(steps: usize, lr: f64) -> DiffusionWuParams {
    DiffusionWuParams {
        size: [8, 8, 8],
        sample_steps: 5,
        diffusion: DiffusionParams {
            denoiser: DenoiserConfig {
                channels: 4,
                mults: vec![1, 2],
                groups: 2,
                attention: false,
            },
            batch: 2,
            steps,
            checkpoint_every: 2,
            ema_decay: 0.9,
            lr,
            ..DiffusionParams::default()
        },
        ..DiffusionWuParams::default()
    }
}

fn fit(m: &DiffusionWu, data: &[Array3<f32>], dir: &std::path::Path) -> Vec<f64> {
    let mut losses = Vec::new();
    let mut progress = |p: FitProgress| losses.extend(p.loss);
    let mut ctx = GeneratorFit {
        dir,
        seed: 5,
        progress: &mut progress,
    };
    m.fit::<B>(data, &mut ctx, &Default::default()).unwrap();
    losses
}

fn cases() -> Vec<Case> {
    (0..3)
        .map(|i| Case {
            id: format!("c{i}"),
            image: Array4::from_shape_fn((4, 8, 8, 8), |(_, z, _, _)| {
                z as f32 * 0.1 + i as f32 * 0.2
            }),
            label: Array3::zeros((8, 8, 8)),
            grid: Grid::axis_aligned([8, 8, 8], [1.0; 3]),
            convention: LabelConvention::Brats2019,
        })
        .collect()
}

#[test]
fn a_resumed_fit_samples_what_an_uninterrupted_one_does() {
    let data: Vec<Array3<f32>> = (0..3)
        .map(|i| Array3::from_elem((8, 8, 8), 0.2 * i as f32 - 0.2))
        .collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = |s| DiffusionWu::new(params(s, 1e-3)).unwrap();
    fit(&m(4), &data, a.path());
    fit(&m(2), &data, b.path());
    fit(&m(4), &data, b.path());
    let train = cases();
    let real = RealVolumes::new(
        &train,
        Modality::Flair,
        IntensityMap { lo: -1.0, hi: 1.0 },
        [8, 8, 8],
    );
    let dev = Default::default();
    let s1 = m(4).sample::<B>(a.path(), 3, 9, &real, &dev).unwrap();
    assert_eq!(s1, m(4).sample::<B>(b.path(), 3, 9, &real, &dev).unwrap());
    assert_eq!(s1.len(), 3);
    assert_eq!(s1[0].dim(), (8, 8, 8));
    // Super-resolution needs real cases to condition on.
    let err = m(4)
        .sample::<B>(a.path(), 1, 9, &RealVolumes::none(), &dev)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("conditioned on real training cases"),
        "{err}"
    );
}

#[test]
fn a_short_fit_lowers_the_noise_prediction_loss() {
    let data: Vec<Array3<f32>> = (0..4)
        .map(|i| {
            Array3::from_shape_fn((8, 8, 8), |(z, _, _)| z as f32 / 4.0 - 1.0 + 0.1 * i as f32)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let losses = fit(
        &DiffusionWu::new(params(80, 2e-3)).unwrap(),
        &data,
        dir.path(),
    );
    let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
    let last: f64 = losses[losses.len() - 10..].iter().sum::<f64>() / 10.0;
    // At initialisation ε̂ = 0, so the loss is E[ε²] = 1.
    assert!((first - 1.0).abs() < 0.25, "{first}");
    assert!(last < 0.8 * first, "ε-loss {first} → {last}");
}

#[test]
fn sizes_that_the_network_cannot_halve_are_refused() {
    let p = DiffusionWuParams {
        size: [30, 32, 32],
        ..DiffusionWuParams::default()
    };
    let err = DiffusionWu::new(p).err().unwrap().to_string();
    assert!(err.contains("size"), "{err}");
}
