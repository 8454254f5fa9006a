//! The diffusion core against closed forms: ᾱ_t as a direct product, the moments of q(x_t | x_0),
//! one posterior step on a hand-sized schedule, strided timesteps, and a sampler that with a
//! perfect ε-predictor returns x_0.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use dsma_train::diffusion::{
    q_sample, sample_loop, Denoiser, DenoiserConfig, ReverseOptions, Schedule, Variance,
};
use dsma_train::layers::normal_tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type B = Flex;

#[test]
fn alpha_bar_is_the_product_of_one_minus_beta() {
    let s = Schedule::linear(1000, 1e-4, 0.02).unwrap();
    let mut prod = 1.0f64;
    for t in 1..=1000 {
        let beta = 1e-4 + (0.02 - 1e-4) * (t - 1) as f64 / 999.0;
        prod *= 1.0 - beta;
        assert!((s.alpha_bar(t) - prod).abs() < 1e-12, "t = {t}");
    }
    assert_eq!(s.alpha_bar(0), 1.0);
    // DDPM's schedule leaves almost no signal at T.
    assert!(s.alpha_bar(1000) < 1e-4);
    assert!(Schedule::linear(0, 1e-4, 0.02).is_err());
    assert!(Schedule::linear(10, 0.5, 0.1).is_err());
}

#[test]
fn q_sample_has_the_closed_form_moments() {
    let s = Schedule::linear(1000, 1e-4, 0.02).unwrap();
    let dev = Default::default();
    let n = 32 * 32 * 32;
    let x0 = Tensor::<B, 5>::ones([1, 1, 32, 32, 32], &dev) * 0.5;
    let eps = normal_tensor::<B, 5>([1, 1, 32, 32, 32], &mut ChaCha8Rng::seed_from_u64(3), &dev);
    let t = 300;
    let v: Vec<f32> = q_sample(&s, x0, &[t], eps).into_data().to_vec().unwrap();
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    let ab = s.alpha_bar(t);
    let sd = (1.0 - ab).sqrt();
    assert!(
        (mean - 0.5 * ab.sqrt()).abs() < 5.0 * sd / (n as f64).sqrt(),
        "{mean}"
    );
    assert!((var - (1.0 - ab)).abs() < 0.03 * (1.0 - ab), "{var}");
}

#[test]
fn one_posterior_step_matches_a_hand_computation() {
    // β = 0.1, 0.2, 0.3: ᾱ_1 = 0.9, ᾱ_2 = 0.72, ᾱ_3 = 0.504.
    let s = Schedule::linear(3, 0.1, 0.3).unwrap();
    assert!((s.alpha_bar(2) - 0.72).abs() < 1e-12 && (s.alpha_bar(3) - 0.504).abs() < 1e-12);
    let p = s.posterior(2, 1);
    // coef_x0 = √ᾱ_1 β_2/(1 − ᾱ_2), coef_xt = √α_2 (1 − ᾱ_1)/(1 − ᾱ_2), β̃ = β_2 (1 − ᾱ_1)/(1 − ᾱ_2).
    assert!((p.coef_x0 - 0.9f64.sqrt() * 0.2 / 0.28).abs() < 1e-12);
    assert!((p.coef_xt - 0.8f64.sqrt() * 0.1 / 0.28).abs() < 1e-12);
    assert!((p.variance - 0.02 / 0.28).abs() < 1e-12);
    assert!((p.beta - 0.2).abs() < 1e-12);
    // A strided step 3 → 1 behaves as one step of β = 1 − ᾱ_3/ᾱ_1 = 0.44.
    let p = s.posterior(3, 1);
    assert!((p.beta - 0.44).abs() < 1e-12);
    assert!((p.coef_xt - 0.56f64.sqrt() * 0.1 / 0.496).abs() < 1e-12);
}

#[test]
fn strided_timesteps_are_evenly_spaced_from_t() {
    let s = Schedule::linear(1000, 1e-4, 0.02).unwrap();
    assert_eq!(s.strided(4), vec![1000, 750, 500, 250]);
    assert_eq!(s.strided(1000).len(), 1000);
    assert_eq!(s.strided(5000).len(), 1000, "at most T");
}

#[test]
fn a_perfect_noise_predictor_samples_x0_back() {
    let s = Schedule::linear(1000, 1e-4, 0.02).unwrap();
    let dev = Default::default();
    let x0v: Vec<f32> = (0..64)
        .map(|i| ((i * 37 % 64) as f32 / 32.0) - 1.0)
        .collect();
    let x0 = Tensor::<B, 5>::from_data(TensorData::new(x0v.clone(), [1, 1, 4, 4, 4]), &dev);
    // ε(x_t, t) = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t): then x̂_0 = x_0 at every step.
    let eps = |x: Tensor<B, 5>, t: usize| {
        let (a, b) = s.q_coefficients(t);
        (x - x0.clone() * a) / b
    };
    for (steps, variance) in [
        (s.strided(1000), Variance::Beta),
        (s.strided(10), Variance::Posterior),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let start = normal_tensor::<B, 5>([1, 1, 4, 4, 4], &mut rng, &dev);
        let out: Vec<f32> = sample_loop(
            &s,
            start,
            &steps,
            &eps,
            ReverseOptions {
                variance,
                clip: false,
            },
            &mut rng,
        )
        .into_data()
        .to_vec()
        .unwrap();
        for (g, w) in out.iter().zip(&x0v) {
            assert!((g - w).abs() < 1e-3, "{g} vs {w} ({} steps)", steps.len());
        }
    }
}

#[test]
fn the_denoiser_keeps_the_shape_and_starts_at_zero() {
    let dev = Default::default();
    let cfg = DenoiserConfig {
        channels: 8,
        mults: vec![1, 2],
        groups: 4,
        attention: true,
    };
    let d = Denoiser::<B>::new(&cfg, 2, &mut ChaCha8Rng::seed_from_u64(0), &dev);
    let x = normal_tensor::<B, 5>([2, 2, 8, 8, 8], &mut ChaCha8Rng::seed_from_u64(1), &dev);
    let y = d.forward(x, &[1, 999]);
    assert_eq!(y.dims(), [2, 1, 8, 8, 8]);
    // The output convolution starts at zero (guided diffusion's zero_module), so ε̂ = 0 at init.
    assert_eq!(y.abs().max().into_scalar(), 0.0);
}
