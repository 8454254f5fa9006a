//! The group-norm kernels against the formulas evaluated naively in f64 (with and without a fused
//! activation), gradients also by central differences, and bit-equal on 1, 2, 3 and 7 threads.

use super::*;
use crate::thread_count::assert_same_bits_on_any_thread_count;

/// `∂loss/∂x_i` by central differences with step 0.01.
fn central_difference(loss: &impl Fn(&[f32]) -> f64, x: &[f32], i: usize) -> f64 {
    let h = 1e-2f32;
    let (mut up, mut down) = (x.to_vec(), x.to_vec());
    up[i] += h;
    down[i] -= h;
    (loss(&up) - loss(&down)) / (2.0 * h as f64)
}

/// Forward and backward against the formulas evaluated naively in f64, with the gradient
/// also checked by central differences of `L = Σ y·w`.
#[test]
fn forward_and_backward_match_the_formulas_and_finite_differences() {
    let s = NormShape {
        batch: 2,
        channels: 4,
        positions: 5,
        groups: 2,
    };
    let n = 2 * 4 * 5;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3 + (i / 10) as f32)
        .collect();
    let w: Vec<f32> = (0..n).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.5).collect();
    let gamma = [0.5f32, -1.0, 2.0, 1.5];
    let beta = [0.1f32, 0.2, -0.3, 0.0];
    let eps = 1e-5;
    let loss = |x: &[f32]| -> f64 {
        let (y, _, _) = group_norm_forward(
            &s,
            x,
            (Some(&gamma), Some(&beta)),
            eps,
            Activation::Identity,
        );
        y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
    };
    let (y, mean, rstd) = group_norm_forward(
        &s,
        &x,
        (Some(&gamma), Some(&beta)),
        eps,
        Activation::Identity,
    );
    // Naive forward: each (n, g) block is 10 consecutive values.
    for b in 0..4 {
        let vals: Vec<f64> = x[b * 10..(b + 1) * 10].iter().map(|&v| v as f64).collect();
        let mu = vals.iter().sum::<f64>() / 10.0;
        let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 10.0;
        assert!((mean[b] as f64 - mu).abs() < 1e-5);
        assert!((rstd[b] as f64 - 1.0 / (var + eps).sqrt()).abs() < 1e-4);
        for (i, v) in vals.iter().enumerate() {
            let c = (b % 2) * 2 + i / 5;
            let want = (v - mu) / (var + eps).sqrt() * gamma[c] as f64 + beta[c] as f64;
            assert!(
                (y[b * 10 + i] as f64 - want).abs() < 1e-4,
                "y[{}]",
                b * 10 + i
            );
        }
    }
    let grads = group_norm_backward(
        &s,
        &x,
        (Some(&gamma), Some(&beta)),
        (&mean, &rstd),
        &w,
        Activation::Identity,
    );
    for i in 0..n {
        let fd = central_difference(&loss, &x, i);
        assert!(
            (grads.x[i] as f64 - fd).abs() < 2e-3 * (1.0 + fd.abs()),
            "dx[{i}]: {} vs {fd}",
            grads.x[i]
        );
    }
    // dβ_c = Σ w over channel c; dγ_c = Σ w·x̂ over channel c.
    for c in 0..4 {
        let (mut db, mut dg) = (0.0f64, 0.0f64);
        for nn in 0..2 {
            let b = nn * 2 + c / 2;
            for p in 0..5 {
                let i = (nn * 4 + c) * 5 + p;
                db += w[i] as f64;
                dg += w[i] as f64 * (x[i] as f64 - mean[b] as f64) * rstd[b] as f64;
            }
        }
        assert!((grads.beta[c] as f64 - db).abs() < 1e-4);
        assert!((grads.gamma[c] as f64 - dg).abs() < 1e-3);
    }
}

/// Shape of the activation tests: two samples, 4 channels in 2 groups, 6 positions.
const ACT_SHAPE: NormShape = NormShape {
    batch: 2,
    channels: 4,
    positions: 6,
    groups: 2,
};

/// The naive f64 forward of `ACT_SHAPE` before the activation: `(z, x̂, rstd)` per element.
fn naive_affine(x: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<(f64, f64, f64)> {
    let m = ACT_SHAPE.block();
    let mut out = Vec::with_capacity(x.len());
    for (b, block) in x.chunks(m).enumerate() {
        let vals: Vec<f64> = block.iter().map(|&v| v as f64).collect();
        let mu = vals.iter().sum::<f64>() / m as f64;
        let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m as f64;
        let r = 1.0 / (var + eps).sqrt();
        for (i, v) in vals.iter().enumerate() {
            let c = (b % 2) * 2 + i / ACT_SHAPE.positions;
            let xh = (v - mu) * r;
            out.push((xh * gamma[c] as f64 + beta[c] as f64, xh, r));
        }
    }
    out
}

/// LeakyReLU(0.2) and ReLU fused after the group norm: the forward against the naive f64 `act(z)`,
/// the input gradient against the chain rule written out in f64 (`dz = w·act'(z)`, then the norm's
/// backward formula per group) and against central differences, `dγ`, `dβ` against their sums.
/// The data keep every `|z|` above 0.15 (26 of 48 below zero), so no difference step crosses the
/// kink.
#[test]
fn fused_activations_match_the_definition() {
    let s = ACT_SHAPE;
    let n = 2 * 4 * 6;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 35 % 23) as f32 - 11.0) * 0.35 + (i / 12) as f32 * 0.5)
        .collect();
    let w: Vec<f32> = (0..n).map(|i| ((i * 11 % 9) as f32 - 4.0) * 0.4).collect();
    let (gamma, beta) = ([0.7f32, -1.2, 1.6, 0.9], [0.3f32, -0.25, 0.15, -0.35]);
    let eps = 1e-5;
    let naive = naive_affine(&x, &gamma, &beta, eps);
    let min_z = naive.iter().fold(f64::MAX, |m, t| m.min(t.0.abs()));
    assert!(min_z > 0.15, "test data: |z| down to {min_z}");
    for (act, slope) in [(Activation::LeakyRelu(0.2), 0.2), (Activation::Relu, 0.0)] {
        let params = (Some(&gamma[..]), Some(&beta[..]));
        let (y, mean, rstd) = group_norm_forward(&s, &x, params, eps, act);
        let d = |z: f64| if z > 0.0 { 1.0 } else { slope };
        for (i, &(z, _, _)) in naive.iter().enumerate() {
            let want = z * d(z);
            assert!(
                (y[i] as f64 - want).abs() < 1e-4,
                "{act:?} y[{i}]: {} vs {want}",
                y[i]
            );
        }
        let grads = group_norm_backward(&s, &x, params, (&mean, &rstd), &w, act);
        let m = s.block();
        for (b, block) in naive.chunks(m).enumerate() {
            let dz: Vec<f64> = (0..m)
                .map(|i| w[b * m + i] as f64 * d(block[i].0))
                .collect();
            let channel = |i: usize| (b % 2) * 2 + i / s.positions;
            let g: Vec<f64> = (0..m).map(|i| dz[i] * gamma[channel(i)] as f64).collect();
            let mean_g = g.iter().sum::<f64>() / m as f64;
            let mean_gx = (0..m).map(|i| g[i] * block[i].1).sum::<f64>() / m as f64;
            for i in 0..m {
                let want = block[i].2 * (g[i] - mean_g - block[i].1 * mean_gx);
                let got = grads.x[b * m + i] as f64;
                assert!(
                    (got - want).abs() < 1e-4,
                    "{act:?} dx[{}]: {got} vs {want}",
                    b * m + i
                );
            }
        }
        let loss = |x: &[f32]| -> f64 {
            let (y, _, _) = group_norm_forward(&s, x, params, eps, act);
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        for i in 0..n {
            let fd = central_difference(&loss, &x, i);
            let got = grads.x[i] as f64;
            assert!(
                (got - fd).abs() < 2e-3 * (1.0 + fd.abs()),
                "{act:?} dx[{i}]: {got} vs {fd}"
            );
        }
        for c in 0..4 {
            let (mut db, mut dg) = (0.0f64, 0.0f64);
            for (i, &(z, xh, _)) in naive.iter().enumerate() {
                if (i / s.positions) % 4 == c {
                    db += w[i] as f64 * d(z);
                    dg += w[i] as f64 * d(z) * xh;
                }
            }
            assert!((grads.beta[c] as f64 - db).abs() < 1e-4, "{act:?} dβ[{c}]");
            assert!((grads.gamma[c] as f64 - dg).abs() < 1e-3, "{act:?} dγ[{c}]");
        }
    }
}

/// The group norm with and without a fused activation gives bit-equal results on 1, 2, 3 and 7
/// threads (several blocks per sample, some positions below zero after the affine map).
#[test]
fn group_norm_results_do_not_depend_on_the_thread_count() {
    let s = NormShape {
        batch: 2,
        channels: 6,
        positions: 1100,
        groups: 3,
    };
    let n = s.batch * s.channels * s.positions;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
        .collect();
    let dy: Vec<f32> = (0..n)
        .map(|i| ((i * 104_729 % 613) as f32 - 306.0) / 211.0)
        .collect();
    let gamma = [0.5f32, -1.0, 2.0, 1.5, 0.3, -0.7];
    let beta = [0.1f32, 0.2, -0.3, 0.0, 0.4, -0.2];
    for act in [
        Activation::Identity,
        Activation::LeakyRelu(0.01),
        Activation::Relu,
    ] {
        assert_same_bits_on_any_thread_count(&format!("{act:?}"), || {
            let params = (Some(&gamma[..]), Some(&beta[..]));
            let (y, mean, rstd) = group_norm_forward(&s, &x, params, 1e-5, act);
            let g = group_norm_backward(&s, &x, params, (&mean, &rstd), &dy, act);
            [y, mean, rstd, g.x, g.gamma, g.beta]
        });
    }
}
