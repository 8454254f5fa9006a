//! The channel-norm kernels against the definition in f64: the forward written out, the
//! gradients by central differences of `L = Σ r·y`, and bit-equal on 1, 2, 3 and 7 threads.

use crate::norm_kernels::{
    channel_norm_backward as backward_kernel, channel_norm_forward as forward_kernel,
};
use crate::thread_count::assert_same_bits_on_any_thread_count;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SHAPE: [usize; 3] = [2, 5, 1100]; // 1100 positions: three chunks per sample.
const EPS: f64 = 1e-5;

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-2.0f64..2.0)).collect()
}

/// `y` by the definition, in f64.
fn definition(x: &[f64], gamma: &[f64], beta: &[f64]) -> Vec<f64> {
    let [batch, channels, positions] = SHAPE;
    let mut y = vec![0.0; x.len()];
    for n in 0..batch {
        for p in 0..positions {
            let at = |c: usize| (n * channels + c) * positions + p;
            let mu = (0..channels).map(|c| x[at(c)]).sum::<f64>() / channels as f64;
            let var = (0..channels).map(|c| (x[at(c)] - mu).powi(2)).sum::<f64>() / channels as f64;
            for c in 0..channels {
                y[at(c)] = gamma[c] * (x[at(c)] - mu) / (var + EPS).sqrt() + beta[c];
            }
        }
    }
    y
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&a| a as f32).collect()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn forward_and_gradients_match_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let [batch, channels, positions] = SHAPE;
    let x = random(batch * channels * positions, &mut rng);
    let (gamma, beta) = (random(channels, &mut rng), random(channels, &mut rng));
    let r = random(x.len(), &mut rng);
    // The inputs as the kernels see them (rounded to f32), so both sides start equal.
    let (x, gamma, beta) = (
        x.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>(),
        gamma.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>(),
        beta.iter().map(|&v| v as f32 as f64).collect::<Vec<_>>(),
    );
    let (y, mean, rstd) = forward_kernel(SHAPE, &f32s(&x), &f32s(&gamma), &f32s(&beta), EPS);
    assert_close(&y, &definition(&x, &gamma, &beta), 1e-5, "y");
    let dy = f32s(&r);
    let grads = backward_kernel(SHAPE, &f32s(&x), &f32s(&gamma), (&mean, &rstd), &dy);
    let loss = |x: &[f64], g: &[f64], b: &[f64]| {
        let y = definition(x, g, b);
        y.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
    };
    let h = 1e-5;
    // dx at samples of every chunk and both samples; dγ and dβ for every channel.
    for i in (0..x.len()).step_by(97) {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[i] += h;
        down[i] -= h;
        let want = (loss(&up, &gamma, &beta) - loss(&down, &gamma, &beta)) / (2.0 * h);
        assert_close(&grads.x[i..=i], &[want], 1e-3, &format!("dx[{i}]"));
    }
    for c in 0..channels {
        for (which, got) in [("dγ", &grads.gamma), ("dβ", &grads.beta)] {
            let (mut g_up, mut g_down, mut b_up, mut b_down) =
                (gamma.clone(), gamma.clone(), beta.clone(), beta.clone());
            if which == "dγ" {
                g_up[c] += h;
                g_down[c] -= h;
            } else {
                b_up[c] += h;
                b_down[c] -= h;
            }
            let want = (loss(&x, &g_up, &b_up) - loss(&x, &g_down, &b_down)) / (2.0 * h);
            assert_close(&got[c..=c], &[want], 1e-3, &format!("{which}[{c}]"));
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let [batch, channels, positions] = SHAPE;
    let x = f32s(&random(batch * channels * positions, &mut rng));
    let (gamma, beta) = (
        f32s(&random(channels, &mut rng)),
        f32s(&random(channels, &mut rng)),
    );
    let dy = f32s(&random(x.len(), &mut rng));
    assert_same_bits_on_any_thread_count("channel norm", || {
        let (y, mean, rstd) = forward_kernel(SHAPE, &x, &gamma, &beta, EPS);
        let g = backward_kernel(SHAPE, &x, &gamma, (&mean, &rstd), &dy);
        [y, g.x, g.gamma, g.beta]
    });
}
