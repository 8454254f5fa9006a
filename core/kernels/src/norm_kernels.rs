//! f32 group normalisation (instance normalisation is groups = channels) on contiguous
//! `[N, C, positions]` buffers, forward and backward in one pass each over a group's block.
//!
//! Per sample `n` and group `g` (channels `g·C/G … (g+1)·C/G − 1`, all positions; `M` values):
//! `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased, as burn and PyTorch), `r = 1/√(σ² + ε)`,
//! `x̂ = (x − μ)·r`, `y = γ_c·x̂ + β_c`. Backward with `g = γ_c·dy`:
//! `dx = r·(g − mean(g) − x̂·mean(g·x̂))`, `dγ_c = Σ_{n,p} dy·x̂`, `dβ_c = Σ_{n,p} dy`.
//! Sums run in f64 in a fixed order per block, and the per-channel sums over samples in sample
//! order, so results do not depend on the thread count.

use rayon::prelude::*;

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

/// Forward: `(y, mean, rstd)`, the statistics per `(n, g)` in sample-major order.
pub fn group_norm_forward(
    s: &NormShape,
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(
        x.len(),
        s.batch * s.channels * s.positions,
        "group norm: x size"
    );
    let block = s.block().max(1);
    let mut y = vec![0.0f32; x.len()];
    let stats: Vec<(f32, f32)> = y
        .par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .enumerate()
        .map(|(b, (yb, xb))| {
            let m = xb.len() as f64;
            let mean = xb.iter().map(|&v| v as f64).sum::<f64>() / m;
            let var = xb.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m;
            let rstd = 1.0 / (var + epsilon).sqrt();
            let first_channel = (b % s.groups) * s.per_group();
            for (j, (yc, xc)) in yb
                .chunks_mut(s.positions.max(1))
                .zip(xb.chunks(s.positions.max(1)))
                .enumerate()
            {
                let c = first_channel + j;
                let (ga, be) = (gamma.map_or(1.0, |g| g[c]), beta.map_or(0.0, |b| b[c]));
                let scale = (rstd as f32) * ga;
                let shift = be - (mean as f32) * scale;
                for (o, &v) in yc.iter_mut().zip(xc) {
                    *o = v * scale + shift;
                }
            }
            (mean as f32, rstd as f32)
        })
        .collect();
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

/// Backward from the forward's `mean` and `rstd`.
pub fn group_norm_backward(
    s: &NormShape,
    x: &[f32],
    gamma: Option<&[f32]>,
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
) -> NormGrads {
    assert_eq!(x.len(), dy.len(), "group norm: dy size");
    let block = s.block().max(1);
    let p = s.positions.max(1);
    let cpg = s.per_group();
    let mut dx = vec![0.0f32; x.len()];
    // Per block: (Σ dy, Σ dy·x̂) per channel of the group.
    let sums: Vec<Vec<(f64, f64)>> = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
        .enumerate()
        .map(|(b, (dxb, (xb, dyb)))| {
            let (mu, r) = (mean[b] as f64, rstd[b] as f64);
            let first_channel = (b % s.groups) * cpg;
            let channel_sums: Vec<(f64, f64)> = xb
                .chunks(p)
                .zip(dyb.chunks(p))
                .map(|(xc, dc)| {
                    xc.iter().zip(dc).fold((0.0, 0.0), |(sd, sdx), (&xv, &dv)| {
                        let xh = (xv as f64 - mu) * r;
                        (sd + dv as f64, sdx + dv as f64 * xh)
                    })
                })
                .collect();
            let m = xb.len() as f64;
            let g_of = |j: usize| gamma.map_or(1.0, |g| g[first_channel + j] as f64);
            let mean_g: f64 = channel_sums
                .iter()
                .enumerate()
                .map(|(j, t)| g_of(j) * t.0)
                .sum::<f64>()
                / m;
            let mean_gx: f64 = channel_sums
                .iter()
                .enumerate()
                .map(|(j, t)| g_of(j) * t.1)
                .sum::<f64>()
                / m;
            for (j, (dxc, (xc, dc))) in dxb
                .chunks_mut(p)
                .zip(xb.chunks(p).zip(dyb.chunks(p)))
                .enumerate()
            {
                let ga = g_of(j);
                for (o, (&xv, &dv)) in dxc.iter_mut().zip(xc.iter().zip(dc)) {
                    let xh = (xv as f64 - mu) * r;
                    *o = (r * (ga * dv as f64 - mean_g - xh * mean_gx)) as f32;
                }
            }
            channel_sums
        })
        .collect();
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
mod tests {
    use super::*;

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
            let (y, _, _) = group_norm_forward(&s, x, Some(&gamma), Some(&beta), eps);
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        let (y, mean, rstd) = group_norm_forward(&s, &x, Some(&gamma), Some(&beta), eps);
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
        let grads = group_norm_backward(&s, &x, Some(&gamma), &mean, &rstd, &w);
        for i in 0..n {
            let h = 1e-2f32;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up) - loss(&down)) / (2.0 * h as f64);
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
}
