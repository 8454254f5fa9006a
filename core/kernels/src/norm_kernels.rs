//! f32 group normalisation (instance normalisation is groups = channels) on contiguous
//! `[N, C, positions]` buffers, forward and backward in one pass each over a group's block.
//!
//! Per sample `n` and group `g` (channels `g·C/G … (g+1)·C/G − 1`, all positions; `M` values):
//! `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased, as burn and PyTorch), `r = 1/√(σ² + ε)`,
//! `x̂ = (x − μ)·r`, `y = γ_c·x̂ + β_c`. Backward with `g = γ_c·dy`:
//! `dx = r·(g − mean(g) − x̂·mean(g·x̂))`, `dγ_c = Σ_{n,p} dy·x̂`, `dβ_c = Σ_{n,p} dy`.
//! The group norm's sums run in f32 over 16 lanes and pieces of 1024 elements, each piece added
//! into an f64 total in order (`lanes`); the channel norm's in f64 per position. The per-channel
//! sums over samples run in sample order, so results do not depend on the thread count.
//!
//! The group norm may end in an [`Activation`]: with LeakyReLU of slope `a`, the output is
//! `y = z` for `z = γ_c·x̂ + β_c ≥ 0` and `a·z` below, and the backward runs the formulas above on
//! `dz = dy` (`z ≥ 0`) or `a·dy` (`z < 0`) (ReLU: `a = 0`, and `dz = 0` at `z = 0`), with `z`
//! recomputed from `x` and the statistics in the forward's exact f32 operations (so the two passes
//! agree on every sign). One pass over memory each way replaces the norm's and the activation's
//! separate passes. The backward computes `dx` in f32 from the f64 sums (`mean(g)` and
//! `mean(g·x̂)` rounded to f32).

use rayon::prelude::*;

use crate::parallel_fill::par_pieces;

mod lanes;

/// The layout of one group normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Batch size.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Spatial positions per channel.
    pub positions: usize,
    /// Groups (must divide `channels`).
    pub groups: usize,
}

impl NormShape {
    fn per_group(&self) -> usize {
        self.channels / self.groups.max(1)
    }

    fn block(&self) -> usize {
        self.per_group() * self.positions
    }
}

/// What follows a group norm's affine map in the same pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// Nothing: `y = z`.
    Identity,
    /// LeakyReLU with this negative slope: `y = z` for `z ≥ 0`, `slope·z` below (burn's and
    /// PyTorch's rule; the gradient at 0 is 1).
    LeakyRelu(f64),
    /// ReLU: `y = max(z, 0)`, gradient 1 for `z > 0` and 0 otherwise (burn's rule at 0).
    Relu,
}

impl Activation {
    /// `(a, at_zero)`: `dy/dz = a` below the kink (and at `z = 0` when `at_zero`), 1 elsewhere.
    fn kink(self) -> (f32, bool) {
        match self {
            Activation::Identity => (1.0, false),
            Activation::LeakyRelu(slope) => (slope as f32, false),
            Activation::Relu => (0.0, true),
        }
    }
}

/// `dy/dz` at `z` for an activation's [`Activation::kink`] (branch-free, so it vectorises).
#[inline(always)]
fn gate((a, at_zero): (f32, bool), z: f32) -> f32 {
    if z < 0.0 || (at_zero && z == 0.0) {
        a
    } else {
        1.0
    }
}

/// `z = x·scale + shift`, the affine map's f32 operations (the backward repeats them exactly).
#[inline(always)]
fn affine(x: f32, scale: f32, shift: f32) -> f32 {
    x * scale + shift
}

/// `scale = r·γ_c` and `shift = β_c − μ·scale` of channel `c` in f32, from the f32 statistics.
fn scale_shift(
    (mean, rstd): (f32, f32),
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    c: usize,
) -> (f32, f32) {
    let (ga, be) = (gamma.map_or(1.0, |g| g[c]), beta.map_or(0.0, |b| b[c]));
    let scale = rstd * ga;
    (scale, be - mean * scale)
}

/// Forward: `(y, mean, rstd)`, the statistics per `(n, g)` in sample-major order; `y` is the
/// normalised, affine-mapped input through `act`.
pub fn group_norm_forward(
    s: &NormShape,
    x: &[f32],
    (gamma, beta): (Option<&[f32]>, Option<&[f32]>),
    epsilon: f64,
    act: Activation,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        s.batch * s.channels * s.positions,
        "group norm: x size"
    );
    let block = s.block().max(1);
    let (y, stats) = par_pieces(x.len(), block, |b, yb| {
        let xb = &x[b * block..][..yb.len()];
        let m = xb.len() as f64;
        let mean = (lanes::sum1(xb, |v| v) / m) as f32;
        let var = lanes::sum1(xb, |v| (v - mean) * (v - mean)) / m;
        let stats = (mean, (1.0 / (var + epsilon).sqrt()) as f32);
        let first_channel = (b % s.groups) * s.per_group();
        for (j, (yc, xc)) in yb
            .chunks_mut(s.positions.max(1))
            .zip(xb.chunks(s.positions.max(1)))
            .enumerate()
        {
            let (scale, shift) = scale_shift(stats, gamma, beta, first_channel + j);
            let pairs = yc.iter_mut().zip(xc);
            match act {
                Activation::Identity => {
                    pairs.for_each(|(o, &v)| *o = affine(v, scale, shift));
                }
                Activation::LeakyRelu(slope) => {
                    let slope = slope as f32;
                    pairs.for_each(|(o, &v)| {
                        let z = affine(v, scale, shift);
                        *o = if z < 0.0 { z * slope } else { z };
                    });
                }
                Activation::Relu => {
                    pairs.for_each(|(o, &v)| *o = affine(v, scale, shift).max(0.0));
                }
            }
        }
        stats
    });
    let (mean, rstd) = stats.into_iter().unzip();
    (y, mean, rstd)
}

/// What the backward pass returns: the input gradient and, for affine norms, `dγ` and `dβ`.
#[derive(Debug, Clone, PartialEq)]
pub struct NormGrads {
    /// Gradient with respect to `x`.
    pub x: Vec<f32>,
    /// Gradient with respect to `γ` (per channel).
    pub gamma: Vec<f32>,
    /// Gradient with respect to `β` (per channel).
    pub beta: Vec<f32>,
}

/// Backward from the forward's `mean` and `rstd` (`β` and `act` as the forward had them).
pub fn group_norm_backward(
    s: &NormShape,
    x: &[f32],
    (gamma, beta): (Option<&[f32]>, Option<&[f32]>),
    (mean, rstd): (&[f32], &[f32]),
    dy: &[f32],
    act: Activation,
) -> NormGrads {
    assert_eq!(x.len(), dy.len(), "group norm: dy size");
    let block = s.block().max(1);
    let p = s.positions.max(1);
    let cpg = s.per_group();
    let kink = act.kink();
    // Per block: (Σ dz, Σ dz·x̂) per channel of the group, dz = dy·act'(z).
    let (dx, sums) = par_pieces(x.len(), block, |b, dxb| {
        let (xb, dyb) = (&x[b * block..][..dxb.len()], &dy[b * block..][..dxb.len()]);
        let (mu, r) = (mean[b], rstd[b]);
        let first_channel = (b % s.groups) * cpg;
        let affine_of = |j: usize| scale_shift((mu, r), gamma, beta, first_channel + j);
        let channel_sums: Vec<(f64, f64)> = xb
            .chunks(p)
            .zip(dyb.chunks(p))
            .enumerate()
            .map(|(j, (xc, dc))| {
                let (scale, shift) = affine_of(j);
                lanes::sum2(xc, dc, |xv, dv| {
                    let d = dv * gate(kink, affine(xv, scale, shift));
                    (d, d * ((xv - mu) * r))
                })
            })
            .collect();
        let m = xb.len() as f64;
        let g_of = |j: usize| gamma.map_or(1.0, |g| g[first_channel + j] as f64);
        let mean_of = |k: fn(&(f64, f64)) -> f64| {
            let total = channel_sums.iter().enumerate();
            (total.map(|(j, t)| g_of(j) * k(t)).sum::<f64>() / m) as f32
        };
        let (mean_g, mean_gx) = (mean_of(|t| t.0), mean_of(|t| t.1));
        for (j, (dxc, (xc, dc))) in dxb
            .chunks_mut(p)
            .zip(xb.chunks(p).zip(dyb.chunks(p)))
            .enumerate()
        {
            let (ga, (scale, shift)) = (g_of(j) as f32, affine_of(j));
            for (o, (&xv, &dv)) in dxc.iter_mut().zip(xc.iter().zip(dc)) {
                let d = dv * gate(kink, affine(xv, scale, shift));
                *o = r * (ga * d - mean_g - (xv - mu) * r * mean_gx);
            }
        }
        channel_sums
    });
    let mut dgamma = vec![0.0f64; s.channels];
    let mut dbeta = vec![0.0f64; s.channels];
    for (b, block_sums) in sums.iter().enumerate() {
        let first_channel = (b % s.groups) * cpg;
        for (j, (sd, sdx)) in block_sums.iter().enumerate() {
            dbeta[first_channel + j] += sd;
            dgamma[first_channel + j] += sdx;
        }
    }
    NormGrads {
        x: dx,
        gamma: dgamma.into_iter().map(|v| v as f32).collect(),
        beta: dbeta.into_iter().map(|v| v as f32).collect(),
    }
}

/// Positions per work item of the channel norm's per-position passes.
const CHUNK: usize = 512;

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

/// Channel norm (`crate::channel_norm`) forward on `[N, C, P]`: `(y, mean, rstd)`, the statistics `[N, P]`.
pub fn channel_norm_forward(
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

/// Channel norm backward on `[N, C, P]` from the forward's statistics: `dx`, `dγ`, `dβ`.
pub fn channel_norm_backward(
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
    assert_eq!(rstd.len(), mean.len(), "channel norm: statistics size");
    assert_eq!(gamma.len(), channels, "channel norm: γ size");
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

#[cfg(test)]
mod tests;
