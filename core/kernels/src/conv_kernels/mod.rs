//! f32 3-D convolution kernels on contiguous NCDHW buffers: implicit GEMM over tiles of output
//! rows, never a whole-volume im2col.
//!
//! Every op is one *correlation engine*: `out[o, i] = Σ_c Σ_t Wp[o, c·T + t] · in[c, i·s + off_t]`
//! (zero outside the input), where the taps `t` are a product of per-axis offset lists. For each
//! tile of output rows the engine packs the `[C·T, cols]` panel (row segments, a copy per row when
//! the stride is 1) into a per-tile buffer that stays in cache, and one `gemm` call computes the
//! tile; a pointwise correlation (one tap at offset 0, stride 1) reads its input in place instead,
//! and the forward's `gemm` adds straight into the output, which holds the bias beforehand.
//! Conv3d's forward is the engine with all `k³` taps at offsets `k − p` and stride `s`; its input
//! gradient splits the input grid into `s³` phases (`x = s·i + r`), each a stride-1
//! correlation of the output gradient with the taps `k ≡ r + p (mod s)` at offsets `(r + p − k)/s`
//! and the transposed weight; its weight gradient is `Σ dY · panelᵀ` over the same tiles.
//! Transposed convolution is conv3d with the roles of input and output swapped.
//!
//! On a CPU with AVX2 + FMA or AVX-512 every correlation but a pointwise one runs on the direct
//! kernels of `direct` instead (no panel, no GEMM: each tap is a constant offset into a padded,
//! phase-split copy of the input); the engine serves the pointwise ones and other CPUs.
//!
//! Parallelism is rayon over (sample, tile) work items; each writes a disjoint part of the output.
//! The weight gradient sums tiles in a fixed order inside chunks whose boundaries depend only on
//! the shapes, then sums the chunks in index order, so every result is independent of the thread
//! count and of scheduling.

use rayon::prelude::*;
use std::ops::Range;

use crate::parallel_fill::{par_pieces, par_zeros, sum_in_order};

mod direct;
mod engine;

use engine::{correlate, correlate_into, matmul, MatRef, Plan, SharedOut};

/// The shape of one 3-D convolution `y[n,o,g] = b[o] + Σ_{c,k} w[o,c,k] · x[n,c, g·s + k − p]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Batch size `N`.
    pub batch: usize,
    /// Channels of `x`.
    pub in_channels: usize,
    /// Channels of `y` (rows of the weight).
    pub out_channels: usize,
    /// Spatial size of `x` (D, H, W).
    pub input: [usize; 3],
    /// Spatial size of `y`.
    pub output: [usize; 3],
    /// Kernel size.
    pub kernel: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Zero padding on each side.
    pub padding: [usize; 3],
}

impl ConvShape {
    /// Output size of a convolution: `(in + 2p − k)/s + 1` per axis (`None` when the kernel does
    /// not fit the padded input or a stride is 0).
    pub fn output_size(
        input: [usize; 3],
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
    ) -> Option<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let padded = input[a] + 2 * padding[a];
            if stride[a] == 0 || kernel[a] == 0 || padded < kernel[a] {
                return None;
            }
            out[a] = (padded - kernel[a]) / stride[a] + 1;
        }
        Some(out)
    }

    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    fn in_positions(&self) -> usize {
        self.input.iter().product()
    }

    fn out_positions(&self) -> usize {
        self.output.iter().product()
    }
}

fn forward_plan(s: &ConvShape) -> Plan {
    let offsets = |a: usize| -> Vec<isize> {
        (0..s.kernel[a])
            .map(|k| k as isize - s.padding[a] as isize)
            .collect()
    };
    Plan {
        in_channels: s.in_channels,
        out_channels: s.out_channels,
        in_dims: s.input,
        out_dims: s.output,
        stride: s.stride,
        offsets: [offsets(0), offsets(1), offsets(2)],
    }
}

fn check_len(what: &str, buf: &[f32], expected: usize) {
    assert_eq!(buf.len(), expected, "{what}: expected {expected} values");
}

/// Conv3d forward: `y = conv(x, w) + b`, `x: [N, C, in]`, `w: [O, C, k]` → `[N, O, out]`.
pub fn conv3d_forward(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (n_in, n_out) = (s.in_positions(), s.out_positions());
    check_len("conv3d x", x, s.batch * s.in_channels * n_in);
    check_len(
        "conv3d weight",
        w,
        s.out_channels * s.in_channels * s.taps(),
    );
    let plan = forward_plan(s);
    // The bias first (each channel's positions in parallel); the correlation adds onto it.
    if let Some(b) = bias {
        check_len("conv3d bias", b, s.out_channels);
    }
    let (mut y, _) = par_pieces(s.batch * s.out_channels * n_out, n_out, |i, piece| {
        if let Some(b) = bias {
            piece.fill(b[i % s.out_channels]);
        }
    });
    if direct::applies(&plan) {
        direct::correlate_direct(&plan, s.batch, x, w, &mut y);
    } else {
        correlate_into(&plan, s.batch, x, w, &mut y);
    }
    y
}

/// The phase `r` of a stride-`s` input gradient on one axis: its output length and its taps as
/// (kernel index, offset into the output gradient).
fn phase_axis(len: usize, r: usize, s: usize, k: usize, p: usize) -> (usize, Vec<(usize, isize)>) {
    let count = if r < len { (len - r).div_ceil(s) } else { 0 };
    let taps = (0..k)
        .filter_map(|kk| {
            let d = r as isize + p as isize - kk as isize;
            (d.rem_euclid(s as isize) == 0).then_some((kk, d / s as isize))
        })
        .collect();
    (count, taps)
}

/// The stride-1 correlation of input-gradient phase `r` (`None` when the phase is empty) and its
/// weights.
fn phase_plan(s: &ConvShape, w: &[f32], r: [usize; 3]) -> Option<(Plan, Vec<f32>)> {
    let axes: Vec<_> = (0..3)
        .map(|a| phase_axis(s.input[a], r[a], s.stride[a], s.kernel[a], s.padding[a]))
        .collect();
    let grid = [axes[0].0, axes[1].0, axes[2].0];
    if grid.contains(&0) {
        return None;
    }
    let plan = Plan {
        in_channels: s.out_channels,
        out_channels: s.in_channels,
        in_dims: s.output,
        out_dims: grid,
        stride: [1; 3],
        offsets: [0, 1, 2].map(|a| axes[a].1.iter().map(|t| t.1).collect()),
    };
    Some((
        plan,
        phase_weights(s, w, [&axes[0].1, &axes[1].1, &axes[2].1]),
    ))
}

/// `wp[c, o·T + t] = w[o, c, kz, ky, kx]` over one input-gradient phase's taps (per axis: kernel
/// index and offset); channels `c` in parallel.
fn phase_weights(s: &ConvShape, w: &[f32], taps: [&[(usize, isize)]; 3]) -> Vec<f32> {
    let [_, kh, kw] = s.kernel;
    let mut ks = Vec::with_capacity(taps.iter().map(|t| t.len()).product::<usize>());
    for &(z, _) in taps[0] {
        for &(y, _) in taps[1] {
            for &(x, _) in taps[2] {
                ks.push((z * kh + y) * kw + x);
            }
        }
    }
    let (t, row) = (s.taps(), s.out_channels * ks.len());
    let mut wp = vec![0.0f32; s.in_channels * row];
    wp.par_chunks_mut(row.max(1))
        .enumerate()
        .for_each(|(c, dst)| {
            for (o, out) in dst.chunks_mut(ks.len().max(1)).enumerate() {
                let src = &w[(o * s.in_channels + c) * t..][..t];
                out.iter_mut().zip(&ks).for_each(|(v, &k)| *v = src[k]);
            }
        });
    wp
}

/// Conv3d input gradient: `dx = convᵀ(dy, w)`, `dy: [N, O, out]`, `w: [O, C, k]` → `[N, C, in]`.
pub fn conv3d_input_grad(s: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (n_in, n_out) = (s.in_positions(), s.out_positions());
    check_len(
        "conv3d weight",
        w,
        s.out_channels * s.in_channels * s.taps(),
    );
    check_len(
        "conv3d output gradient",
        dy,
        s.batch * s.out_channels * n_out,
    );
    let mut dx = par_zeros(s.batch * s.in_channels * n_in);
    if s.stride == [1; 3] {
        // One phase covering the whole input grid: dx is the correlation's output.
        if let Some((plan, wp)) = phase_plan(s, w, [0; 3]) {
            if direct::applies(&plan) {
                direct::correlate_direct(&plan, s.batch, dy, &wp, &mut dx);
                return dx;
            }
        }
    }
    let out = SharedOut::new(&mut dx);
    for rz in 0..s.stride[0] {
        for ry in 0..s.stride[1] {
            for rx in 0..s.stride[2] {
                let Some((plan, wp)) = phase_plan(s, w, [rz, ry, rx]) else {
                    continue;
                };
                let grid = plan.out_dims;
                let [_, gh, gw] = grid;
                let [_, ih, iw] = s.input;
                let c_ch = s.in_channels;
                // Channel c of sample n, output rows `rows` (`[rows, gw]` in `part`).
                let store_channel = |(n, c): (usize, usize), rows: Range<usize>, part: &[f32]| {
                    let base = (n * c_ch + c) * n_in;
                    for (row, src) in rows.zip(part.chunks(gw.max(1))) {
                        let (z, y) = (row / gh, row % gh);
                        let line = base + ((z * s.stride[0] + rz) * ih + y * s.stride[1] + ry) * iw;
                        for (x, v) in src.iter().enumerate() {
                            // SAFETY: positions of phase r in sample n's channel c and rows `rows`
                            // belong to this work item alone (phases run one after another).
                            unsafe { out.write(line + x * s.stride[2] + rx, *v) };
                        }
                    }
                };
                let store = |n: usize, rows: Range<usize>, tile: &[f32]| {
                    let cols = rows.len() * gw;
                    for (c, part) in tile.chunks(cols.max(1)).take(c_ch).enumerate() {
                        store_channel((n, c), rows.clone(), part);
                    }
                };
                if direct::applies(&plan) {
                    // The phase's whole grid at once, then scattered to its positions, a
                    // (sample, channel) per work item.
                    let grid_len = grid.iter().product::<usize>();
                    let mut tmp = par_zeros(s.batch * c_ch * grid_len);
                    direct::correlate_direct(&plan, s.batch, dy, &wp, &mut tmp);
                    tmp.par_chunks(grid_len.max(1))
                        .enumerate()
                        .for_each(|(i, t)| store_channel((i / c_ch, i % c_ch), 0..grid[0] * gh, t));
                } else {
                    correlate(&plan, s.batch, dy, &wp, store);
                }
            }
        }
    }
    dx
}

/// Conv3d weight gradient: `dw[o, c, k] = Σ_n Σ_g dy[n, o, g] · x[n, c, g·s + k − p]` → `[O, C, k]`.
/// The sum runs in an order fixed by the shapes alone (see the module docs).
pub fn conv3d_weight_grad(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    /// Floats all chunk partials may hold together (64 MiB).
    const PARTIAL_BUDGET: usize = 16 * 1024 * 1024;
    let (n_in, n_out) = (s.in_positions(), s.out_positions());
    check_len("conv3d x", x, s.batch * s.in_channels * n_in);
    check_len(
        "conv3d output gradient",
        dy,
        s.batch * s.out_channels * n_out,
    );
    let plan = forward_plan(s);
    if direct::applies(&plan) {
        return direct::weight_grad_direct(&plan, s.batch, x, dy);
    }
    let (o_ch, k, ow) = (s.out_channels, plan.depth(), s.output[2]);
    let rpt = plan.rows_per_tile();
    let rows = plan.rows();
    let tiles = rows.div_ceil(rpt);
    let items = s.batch * tiles;
    let chunks = (PARTIAL_BUDGET / (o_ch * k).max(1))
        .clamp(1, 16)
        .min(items.max(1));
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut acc = vec![0.0f32; o_ch * k];
            let mut panel = Vec::new();
            let first = chunk * items / chunks;
            for item in first..(chunk + 1) * items / chunks {
                let (n, t) = (item / tiles, item % tiles);
                let range = t * rpt..((t + 1) * rpt).min(rows);
                let cols = range.len() * ow;
                let start = range.start * ow;
                let sample = &x[n * s.in_channels * n_in..(n + 1) * s.in_channels * n_in];
                // The panel transposed, `[cols, C·T]`.
                let view = plan.tile_panel(sample, range, &mut panel);
                let lhs = &dy[n * o_ch * n_out + start..(n + 1) * o_ch * n_out];
                matmul(
                    (o_ch, k, cols),
                    &mut acc,
                    k,
                    MatRef {
                        data: lhs,
                        rs: n_out,
                        cs: 1,
                    },
                    MatRef {
                        data: view.data,
                        rs: view.cs,
                        cs: view.rs,
                    },
                    item != first,
                );
            }
            acc
        })
        .collect();
    sum_in_order(&partials, o_ch * k)
}

/// Bias gradient: `db[o] = Σ_n Σ_g dy[n, o, g]` (accumulated in f64, in a fixed order).
pub fn bias_grad(dy: &[f32], batch: usize, channels: usize) -> Vec<f32> {
    let positions = dy.len().checked_div(batch * channels).unwrap_or(0);
    (0..channels)
        .into_par_iter()
        .map(|o| {
            let mut sum = 0.0f64;
            for n in 0..batch {
                let start = (n * channels + o) * positions;
                sum += dy[start..start + positions]
                    .iter()
                    .map(|&v| v as f64)
                    .sum::<f64>();
            }
            sum as f32
        })
        .collect()
}

/// The shape of one transposed 3-D convolution (the adjoint of a [`ConvShape`] conv):
/// `x: [N, Cin, in]`, weight `[Cin, Cout, k]`, `y: [N, Cout, out]` with
/// `out = (in − 1)·s − 2p + k + output_padding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTransposeShape {
    /// Batch size.
    pub batch: usize,
    /// Channels of `x`.
    pub in_channels: usize,
    /// Channels of `y`.
    pub out_channels: usize,
    /// Spatial size of `x`.
    pub input: [usize; 3],
    /// Spatial size of `y`.
    pub output: [usize; 3],
    /// Kernel size.
    pub kernel: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Padding.
    pub padding: [usize; 3],
}

impl ConvTransposeShape {
    /// The convolution whose input gradient this transposed convolution is (`y` is its input,
    /// `x` its output).
    pub fn adjoint(&self) -> ConvShape {
        ConvShape {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            input: self.output,
            output: self.input,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

fn add_bias(y: &mut [f32], bias: &[f32], batch: usize) {
    let channels = bias.len();
    let positions = y.len().checked_div(batch * channels).unwrap_or(0);
    y.par_chunks_mut(positions.max(1))
        .enumerate()
        .for_each(|(i, chunk)| {
            let b = bias[i % channels];
            chunk.iter_mut().for_each(|v| *v += b);
        });
}

/// Transposed conv3d forward: `x: [N, Cin, in]`, `w: [Cin, Cout, k]` → `[N, Cout, out]`.
pub fn conv_transpose3d_forward(
    t: &ConvTransposeShape,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut y = conv3d_input_grad(&t.adjoint(), w, x);
    if let Some(b) = bias {
        add_bias(&mut y, b, t.batch);
    }
    y
}

/// Transposed conv3d input gradient: `dy: [N, Cout, out]` → `[N, Cin, in]`.
pub fn conv_transpose3d_input_grad(t: &ConvTransposeShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
    conv3d_forward(&t.adjoint(), dy, w, None)
}

/// Transposed conv3d weight gradient → `[Cin, Cout, k]`.
pub fn conv_transpose3d_weight_grad(t: &ConvTransposeShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    conv3d_weight_grad(&t.adjoint(), dy, x)
}

#[cfg(test)]
mod tests;
