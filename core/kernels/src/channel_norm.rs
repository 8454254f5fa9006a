//! Layer normalisation over the channel axis of `[N, C, D, H, W]` (PoolFormer's
//! `LayerNormChannel`, NestedFormer's encoders) as one op of [`KernelBackend`]: the f32 kernels,
//! the generic version in burn tensor ops (other backends), and the autodiff node.
//!
//! Per sample `n` and position `p` (over the `C` channels): `μ = mean_c(x)`,
//! `σ² = mean_c((x − μ)²)`, `r = 1/√(σ² + ε)`, `x̂ = (x − μ)·r`, `y = γ_c·x̂ + β_c`. Backward with
//! `g = γ_c·dy`: `dx = r·(g − mean_c(g) − x̂·mean_c(g·x̂))`, `dγ_c = Σ_{n,p} dy·x̂`,
//! `dβ_c = Σ_{n,p} dy`. The kernels sum in f64 in a fixed order (channels per position; positions
//! per channel row, then samples in order), so results do not depend on the thread count. In
//! burn-flex, each of the ~6 broadcasting ops the tensor-op version takes walks a strided
//! iterator per element.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use rayon::prelude::*;

use crate::backend::KernelBackend;
use crate::norm_generic::{prim, t1, t5, NormGradients, NormOutput, NormStats};
use crate::norm_kernels::NormGrads;

/// Positions per work item of the kernels' per-position passes.
const CHUNK: usize = 512;

/// `y = LayerNormChannel(x)` through `B`'s op (the model-facing call).
pub fn channel_norm<B: KernelBackend>(
    x: Tensor<B, 5>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, 5> {
    t5::<B>(B::channel_norm_forward(prim(x), prim(gamma), prim(beta), epsilon).y)
}

/// `[N, P]` buffers `a` and `b` split into work items `(n, first position, a part, b part)` of
/// at most [`CHUNK`] positions, none crossing a sample.
fn position_chunks<'a>(
    a: &'a mut [f32],
    b: &'a mut [f32],
    positions: usize,
) -> Vec<(usize, usize, &'a mut [f32], &'a mut [f32])> {
    a.chunks_mut(positions.max(1))
        .zip(b.chunks_mut(positions.max(1)))
        .enumerate()
        .flat_map(|(n, (a, b))| {
            a.chunks_mut(CHUNK)
                .zip(b.chunks_mut(CHUNK))
                .enumerate()
                .map(move |(k, (a, b))| (n, k * CHUNK, a, b))
        })
        .collect()
}

/// Forward on `[N, C, P]`: `(y, mean, rstd)`, the statistics `[N, P]`.
pub fn forward_kernel(
    [batch, channels, positions]: [usize; 3],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        batch * channels * positions,
        "channel norm: x size"
    );
    assert!(
        gamma.len() == channels && beta.len() == channels,
        "channel norm: γ, β size"
    );
    let mut mean = vec![0.0f32; batch * positions];
    let mut rstd = vec![0.0f32; batch * positions];
    position_chunks(&mut mean, &mut rstd, positions)
        .into_par_iter()
        .for_each(|(n, p0, m, r)| {
            let row = |c: usize| &x[(n * channels + c) * positions + p0..][..m.len()];
            let mut sum = vec![0.0f64; m.len()];
            for c in 0..channels {
                sum.iter_mut()
                    .zip(row(c))
                    .for_each(|(s, &v)| *s += v as f64);
            }
            let mu: Vec<f64> = sum.iter().map(|s| s / channels as f64).collect();
            sum.fill(0.0);
            for c in 0..channels {
                for ((s, &v), u) in sum.iter_mut().zip(row(c)).zip(&mu) {
                    *s += (v as f64 - u).powi(2);
                }
            }
            for (i, s) in sum.iter().enumerate() {
                m[i] = mu[i] as f32;
                r[i] = (1.0 / (s / channels as f64 + epsilon).sqrt()) as f32;
            }
        });
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(positions.max(1))
        .zip(x.par_chunks(positions.max(1)))
        .enumerate()
        .for_each(|(row, (yr, xr))| {
            let (n, c) = (row / channels, row % channels);
            let (m, r) = (&mean[n * positions..], &rstd[n * positions..]);
            for p in 0..xr.len() {
                yr[p] = (xr[p] - m[p]) * r[p] * gamma[c] + beta[c];
            }
        });
    (y, mean, rstd)
}

/// Backward on `[N, C, P]` from the forward's statistics: `dx`, `dγ`, `dβ`.
pub fn backward_kernel(
    [batch, channels, positions]: [usize; 3],
    x: &[f32],
    gamma: &[f32],
    (mean, rstd): (&[f32], &[f32]),
    dy: &[f32],
) -> NormGrads {
    assert_eq!(
        x.len(),
        batch * channels * positions,
        "channel norm: x size"
    );
    assert_eq!(dy.len(), x.len(), "channel norm: output gradient size");
    assert_eq!(
        mean.len(),
        batch * positions,
        "channel norm: statistics size"
    );
    let xh = |n: usize, c: usize, p: usize| {
        let i = n * positions + p;
        (x[(n * channels + c) * positions + p] - mean[i]) * rstd[i]
    };
    // a = mean_c(g), b = mean_c(g·x̂) per (n, p).
    let mut a = vec![0.0f32; batch * positions];
    let mut b = vec![0.0f32; batch * positions];
    position_chunks(&mut a, &mut b, positions)
        .into_par_iter()
        .for_each(|(n, p0, ak, bk)| {
            let len = ak.len();
            let (m, r) = (
                &mean[n * positions + p0..][..len],
                &rstd[n * positions + p0..][..len],
            );
            let (mut sa, mut sb) = (vec![0.0f64; len], vec![0.0f64; len]);
            for (c, &gc) in gamma.iter().enumerate() {
                let at = (n * channels + c) * positions + p0;
                let (xr, dr) = (&x[at..at + len], &dy[at..at + len]);
                for i in 0..len {
                    let g = dr[i] * gc;
                    sa[i] += g as f64;
                    sb[i] += (g * ((xr[i] - m[i]) * r[i])) as f64;
                }
            }
            for i in 0..len {
                ak[i] = (sa[i] / channels as f64) as f32;
                bk[i] = (sb[i] / channels as f64) as f32;
            }
        });
    let mut dx = vec![0.0f32; x.len()];
    let sums: Vec<(f64, f64)> = dx
        .par_chunks_mut(positions.max(1))
        .enumerate()
        .map(|(row, out)| {
            let (n, c) = (row / channels, row % channels);
            let (mut dg, mut db) = (0.0f64, 0.0f64);
            for (p, o) in out.iter_mut().enumerate() {
                let (i, d) = (n * positions + p, dy[row * positions + p]);
                let h = xh(n, c, p);
                *o = rstd[i] * (d * gamma[c] - a[i] - h * b[i]);
                dg += (d * h) as f64;
                db += d as f64;
            }
            (dg, db)
        })
        .collect();
    let mut grads = NormGrads {
        x: dx,
        gamma: vec![0.0; channels],
        beta: vec![0.0; channels],
    };
    for c in 0..channels {
        let rows = (0..batch).map(|n| sums[n * channels + c]);
        let (dg, db) = rows.fold((0.0, 0.0), |(g, b), (dg, db)| (g + dg, b + db));
        grads.gamma[c] = dg as f32;
        grads.beta[c] = db as f32;
    }
    grads
}

/// The forward in burn tensor ops (any backend; what the kernels replace on the CPU).
pub fn generic_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> NormOutput<B> {
    let x = t5::<B>(x);
    let [n, c, d, h, w] = x.dims();
    let mean = x.clone().mean_dim(1);
    let centred = x - mean.clone();
    let rstd = (centred.clone().powi_scalar(2).mean_dim(1) + epsilon)
        .sqrt()
        .recip();
    let y = centred * rstd.clone() * t1::<B>(gamma).reshape([1, c, 1, 1, 1])
        + t1::<B>(beta).reshape([1, c, 1, 1, 1]);
    NormOutput {
        y: prim(y),
        stats: NormStats {
            mean: prim(mean.reshape([n, d * h * w])),
            rstd: prim(rstd.reshape([n, d * h * w])),
        },
    }
}

/// The backward in burn tensor ops (any backend).
pub fn generic_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    stats: NormStats<B>,
    output_grad: FloatTensor<B>,
) -> NormGradients<B> {
    let x = t5::<B>(x);
    let [n, c, d, h, w] = x.dims();
    let stat =
        |t| Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t)).reshape([n, 1, d, h, w]);
    let (mean, rstd) = (stat(stats.mean), stat(stats.rstd));
    let xh = (x - mean) * rstd.clone();
    let dy = t5::<B>(output_grad);
    let per_channel = |t: Tensor<B, 5>| t.sum_dim(0).sum_dim(2).sum_dim(3).sum_dim(4).reshape([c]);
    let dgamma = per_channel(dy.clone() * xh.clone());
    let dbeta = per_channel(dy.clone());
    let g = dy * t1::<B>(gamma).reshape([1, c, 1, 1, 1]);
    let dx = rstd * (g.clone() - g.clone().mean_dim(1) - xh.clone() * (g * xh).mean_dim(1));
    NormGradients {
        x: prim(dx),
        gamma: Some(prim(dgamma)),
        beta: Some(prim(dbeta)),
    }
}

#[derive(Debug)]
struct Node;

impl<B: KernelBackend> Backward<B, 3> for Node {
    type State = (FloatTensor<B>, FloatTensor<B>, NormStats<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, stats) = ops.state;
        let out = B::channel_norm_backward(x, gamma, stats, dy);
        for (node, grad) in [
            (node_x, Some(out.x)),
            (node_g, out.gamma),
            (node_b, out.beta),
        ] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The channel norm on `Autodiff<B>`: one graph node whose backward is
/// `B::channel_norm_backward`; the statistics are returned untracked.
pub(crate) fn tracked<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    beta: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
) -> NormOutput<Autodiff<B, C>> {
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let (y, stats) = match Node.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = B::channel_norm_forward(
                x.primitive.clone(),
                gamma.primitive.clone(),
                beta.primitive,
                epsilon,
            );
            let state = (x.primitive, gamma.primitive, out.stats.clone());
            (prep.finish(state, out.y), out.stats)
        }
        OpsKind::UnTracked(prep) => {
            let out =
                B::channel_norm_forward(x.primitive, gamma.primitive, beta.primitive, epsilon);
            (prep.finish(out.y), out.stats)
        }
    };
    NormOutput {
        y,
        stats: NormStats {
            mean: Autodiff::<B, C>::from_inner(stats.mean),
            rstd: Autodiff::<B, C>::from_inner(stats.rstd),
        },
    }
}

#[cfg(test)]
mod tests;
