//! The direct weight gradient of a correlation: `dw[o, c·T + t] = Σ_j dy[o, j] ·
//! padded[c, j + shift_t]` over the padded grid's flat positions, read in place (no panel).
//!
//! The output gradient is copied once into the padded grid's row layout (`[O, D, H·Wp]`, zeros in
//! the `Wp − W` columns past each row and in the rounding up to whole vectors), so that one
//! plane's `H·Wp` positions line up with the padded input's. A micro-kernel holds `4 × nk`
//! accumulator vectors (4 output channels × `nk` panel rows) over one plane, then sums each
//! vector's lanes. Planes are summed in a fixed order inside chunks whose boundaries depend only
//! on the shapes, and the chunks in index order: the result does not depend on the thread count.

use rayon::prelude::*;

use crate::parallel_fill::{par_zeros, sum_in_order};

use super::dispatch::{applies, Isa};
use super::padded::Padded;
use crate::conv_kernels::engine::Plan;

/// Output channels per weight-gradient block.
pub(super) const WG_MR: usize = 4;
/// Positions per piece of a plane (a multiple of every [`Isa::lanes`]).
const PIECE: usize = 1024;
/// At most this many chunks (partial sums of `[O, C·T]`).
const MAX_CHUNKS: usize = 16;

/// The weight gradient `[O, C·T]` of `plan` (one for which [`super::applies`] holds) from its
/// input `x` (`[N, C, positions]`) and output gradient `dy` (`[N, O, positions]`).
pub(crate) fn weight_grad_direct(plan: &Plan, batch: usize, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let isa = Isa::detect().filter(|_| applies(plan));
    weight_grad_with(
        isa.expect("weight_grad_direct: plan not supported"),
        plan,
        batch,
        x,
        dy,
    )
}

/// [`weight_grad_direct`] on the micro-kernels of `isa`.
pub(super) fn weight_grad_with(
    isa: Isa,
    plan: &Plan,
    batch: usize,
    x: &[f32],
    dy: &[f32],
) -> Vec<f32> {
    let pad = Padded::new(plan);
    let [d, h, w] = plan.out_dims;
    let (o_ch, depth) = (plan.out_channels, plan.depth());
    let in_sample = plan.in_channels * plan.in_dims.iter().product::<usize>();
    assert_eq!(x.len(), batch * in_sample, "weight_grad_direct: input size");
    assert_eq!(
        dy.len(),
        batch * o_ch * d * h * w,
        "weight_grad_direct: output gradient size"
    );
    let padded = pad.pad_batch(plan, batch, x);
    let [_, ph, pw] = pad.dims;
    const { assert!(PIECE.is_multiple_of(16)) };
    let lanes = isa.lanes();
    let plane = (h * pw).div_ceil(lanes) * lanes;
    let o_rows = o_ch.div_ceil(WG_MR) * WG_MR;
    let dyp = pad_output_grad(dy, [batch, o_ch, o_rows], [d, h, w], (pw, plane, lanes));
    // Panel rows in groups of nk; the last group repeats row 0 and its sums are dropped.
    let nk = isa.wg_nk();
    let mut rows = pad.offsets.clone();
    rows.resize(depth.div_ceil(nk) * nk, pad.offsets[0]);
    let work = Work {
        isa,
        padded: &padded,
        sample_len: pad.sample_len,
        dyp: &dyp,
        rows: &rows,
        o_ch,
        o_rows,
        depth,
        d,
        plane,
        plane_in: ph * pw,
    };
    let units = batch * d;
    let chunks = units.clamp(1, MAX_CHUNKS);
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut acc = vec![0.0f32; o_ch * depth];
            for unit in chunk * units / chunks..(chunk + 1) * units / chunks {
                work.add_plane(unit / d, unit % d, &mut acc);
            }
            acc
        })
        .collect();
    sum_in_order(&partials, o_ch * depth)
}

/// What every plane of one weight gradient reads.
struct Work<'a> {
    isa: Isa,
    padded: &'a [f32],
    sample_len: usize,
    dyp: &'a [f32],
    /// Panel-row offsets, a whole number of groups.
    rows: &'a [usize],
    o_ch: usize,
    o_rows: usize,
    depth: usize,
    d: usize,
    /// Floats per plane of `dyp`.
    plane: usize,
    /// Floats per plane of a padded sample.
    plane_in: usize,
}

impl Work<'_> {
    /// Adds plane `z` of sample `n` to `acc` (`[O, C·T]`), in pieces of [`PIECE`] positions that
    /// stay in the L1 cache across the blocks.
    fn add_plane(&self, n: usize, z: usize, acc: &mut [f32]) {
        let nk = self.isa.wg_nk();
        let sample = &self.padded[n * self.sample_len..(n + 1) * self.sample_len];
        for piece in (0..self.plane).step_by(PIECE) {
            let len = PIECE.min(self.plane - piece);
            let base = z * self.plane_in + piece;
            for ob in 0..self.o_rows / WG_MR {
                let first = ((n * self.o_rows / WG_MR + ob) * self.d + z) * WG_MR * self.plane
                    + piece * WG_MR;
                for (g, group) in self.rows.chunks(nk).enumerate() {
                    let mut sums = [[0.0f32; 8]; WG_MR];
                    let dy = (first, len);
                    block(self.isa, self.dyp, dy, sample, base, group, &mut sums);
                    for (r, row) in sums.iter().enumerate() {
                        let o = ob * WG_MR + r;
                        for (q, v) in row.iter().take(nk).enumerate() {
                            let k = g * nk + q;
                            if o < self.o_ch && k < self.depth {
                                acc[o * self.depth + k] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dy` (`[N, O, D, H, W]`) as `[N, O_rows/4, D, plane/L, 4, L]` (`L` = `lanes`): the 4 output
/// channels of a block side by side for every `L` positions, so a block reads it in one stream.
/// Position `p = y·Wp + x` of plane `z`; zeros in the columns `x ≥ W`, past `H·Wp` and in the
/// channels `O..O_rows`.
fn pad_output_grad(
    dy: &[f32],
    [batch, o_ch, o_rows]: [usize; 3],
    [d, h, w]: [usize; 3],
    (pw, plane, lanes): (usize, usize, usize),
) -> Vec<f32> {
    let mut out = par_zeros(batch * o_rows * d * plane);
    out.par_chunks_mut(WG_MR * d * plane)
        .enumerate()
        .for_each(|(block, dst)| {
            let n = block / (o_rows / WG_MR);
            for r in 0..WG_MR {
                let o = block % (o_rows / WG_MR) * WG_MR + r;
                if o >= o_ch {
                    continue;
                }
                let src = &dy[(n * o_ch + o) * d * h * w..(n * o_ch + o + 1) * d * h * w];
                for z in 0..d {
                    let plane_out = &mut dst[z * WG_MR * plane..(z + 1) * WG_MR * plane];
                    for y in 0..h {
                        let row = &src[(z * h + y) * w..(z * h + y + 1) * w];
                        // Runs of positions within one L-group are contiguous in `plane_out`.
                        let mut x = 0;
                        while x < w {
                            let p = y * pw + x;
                            let run = (lanes - p % lanes).min(w - x);
                            let at = (p / lanes * WG_MR + r) * lanes + p % lanes;
                            plane_out[at..at + run].copy_from_slice(&row[x..x + run]);
                            x += run;
                        }
                    }
                }
            }
        });
    out
}

/// `sums[r][q] = Σ_{i < len} dyp[first + (i/L·4 + r)·L + i%L] · sample[base + group[q] + i]`.
fn block(
    isa: Isa,
    dyp: &[f32],
    (first, len): (usize, usize),
    sample: &[f32],
    base: usize,
    group: &[usize],
    sums: &mut [[f32; 8]; WG_MR],
) {
    let nk = isa.wg_nk();
    assert_eq!(group.len(), nk, "weight-gradient block: group size");
    assert!(
        len % isa.lanes() == 0,
        "weight-gradient block: not whole vectors"
    );
    assert!(
        first + WG_MR * len <= dyp.len(),
        "weight-gradient block: output gradient too short"
    );
    let last = group.iter().copied().max().unwrap_or(0);
    assert!(
        base + last + len <= sample.len(),
        "weight-gradient block: read past the padded input"
    );
    let (dy, x) = (dyp[first..].as_ptr(), sample[base..].as_ptr());
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `Isa::detect` found AVX-512F and AVX-512VL; the asserts bound every read of `dyp` (`4·len`
        // floats) and `sample` (`len` floats past each offset).
        Isa::Avx512 => unsafe { super::x86::wgrad_avx512(dy, x, group, len, sums) },
        // SAFETY: as above, with AVX2 and FMA found.
        Isa::Avx2 => unsafe { super::x86::wgrad_avx2(dy, x, group, len, sums) },
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct kernel without x86 vector instructions: {isa:?}, {dy:?}, {x:?}");
}
