//! Direct correlation for CPUs with AVX2 and FMA or AVX-512: no panel packing and no GEMM.
//!
//! Each sample's input is copied once into the zero-padded, phase-split layout of [`Padded`]
//! (plain padding for stride 1), on which every tap of every channel is one constant offset from
//! the output position `j = (z·Ph + y)·Pw + x`. So the `C·T` rows of the panel are `C·T` offsets
//! into that copy, and a register-blocked micro-kernel reads them in place: `mr` output channels ×
//! `nr` consecutive `j` accumulate over all `C·T` offsets, one broadcast weight and one fused
//! multiply-add per vector (AVX-512: 8 × 48 in 24 zmm registers; AVX2: 4 × 16). The `Pw − W`
//! columns past each row's end are computed and dropped. The weight gradient
//! ([`weight_grad`]) reads the same offsets. Every output element is one sum in the fixed order
//! `c·T + t`, whatever the thread count.

use rayon::prelude::*;

use super::engine::{Plan, SharedOut};
use dispatch::Isa;
use padded::Padded;

/// Target columns per work item (a few rows of one output plane).
const CHUNK_COLS: usize = 512;

/// `weights` (`[O, C·T]`) regrouped as `[O/mr, C·T, mr]`, zero rows filling the last block.
fn pack_weights(weights: &[f32], out_channels: usize, depth: usize, mr: usize) -> Vec<f32> {
    let blocks = out_channels.div_ceil(mr);
    let mut packed = vec![0.0f32; blocks * depth * mr];
    packed
        .par_chunks_mut((depth * mr).max(1))
        .enumerate()
        .for_each(|(b, dst)| {
            for r in 0..mr.min(out_channels - b * mr) {
                let src = &weights[(b * mr + r) * depth..][..depth];
                for (k, &v) in src.iter().enumerate() {
                    dst[k * mr + r] = v;
                }
            }
        });
    packed
}

/// Runs `plan` (one for which [`applies`] holds) over every sample, adding each output element to
/// `out` (`[N, O, positions]`, filled beforehand with zeros or the bias).
pub(super) fn correlate_direct(
    plan: &Plan,
    batch: usize,
    input: &[f32],
    weights: &[f32],
    out: &mut [f32],
) {
    let isa = Isa::detect().filter(|_| applies(plan));
    correlate_with(
        isa.expect("correlate_direct: plan not supported"),
        plan,
        batch,
        input,
        weights,
        out,
    );
}

/// [`correlate_direct`] on the micro-kernels of `isa`.
fn correlate_with(
    isa: Isa,
    plan: &Plan,
    batch: usize,
    input: &[f32],
    weights: &[f32],
    out: &mut [f32],
) {
    let (mr, nr) = (isa.mr(), isa.nr());
    let pad = Padded::new(plan);
    let [d, h, w] = plan.out_dims;
    let positions = d * h * w;
    let (o_ch, depth) = (plan.out_channels, plan.depth());
    let in_sample = plan.in_channels * plan.in_dims.iter().product::<usize>();
    assert_eq!(
        input.len(),
        batch * in_sample,
        "correlate_direct: input size"
    );
    assert_eq!(weights.len(), o_ch * depth, "correlate_direct: weight size");
    assert_eq!(
        out.len(),
        batch * o_ch * positions,
        "correlate_direct: output size"
    );
    let padded = pad.pad_batch(plan, batch, input);
    let packed = pack_weights(weights, o_ch, depth, mr);
    let [_, ph, pw] = pad.dims;
    let rows_per_chunk = (CHUNK_COLS / pw).clamp(1, h.max(1));
    let chunks = h.div_ceil(rows_per_chunk);
    let shared = SharedOut::new(out);
    (0..batch * d * chunks)
        .into_par_iter()
        .for_each_init(Vec::new, |tile: &mut Vec<f32>, item| {
            let (n, z, chunk) = (item / (d * chunks), item / chunks % d, item % chunks);
            let rows = chunk * rows_per_chunk..((chunk + 1) * rows_per_chunk).min(h);
            let cols = rows.len() * pw;
            let ld = cols.div_ceil(nr) * nr;
            let blocks = o_ch.div_ceil(mr);
            tile.resize(blocks * mr * ld, 0.0);
            let sample = &padded[n * pad.sample_len..(n + 1) * pad.sample_len];
            let start = (z * ph + rows.start) * pw;
            for j in (0..ld).step_by(nr) {
                for b in 0..blocks {
                    let wb = &packed[b * depth * mr..(b + 1) * depth * mr];
                    let dst = &mut tile[b * mr * ld + j..];
                    kernel(isa, sample, start + j, &pad, wb, dst, ld);
                }
            }
            for o in 0..o_ch {
                for (r, y) in rows.clone().enumerate() {
                    let at = (n * o_ch + o) * positions + (z * h + y) * w;
                    // SAFETY: output row (n, o, z, y) belongs to this work item alone (its sample,
                    // plane and rows), and `out` stays borrowed by `shared` meanwhile.
                    let row = unsafe { shared.slice(at, w) };
                    let src = &tile[o * ld + r * pw..o * ld + r * pw + w];
                    row.iter_mut().zip(src).for_each(|(v, s)| *v += s);
                }
            }
        });
}

/// One micro-kernel block: `dst[r·ld + i] = Σ_k w[k·mr + r] · sample[j + offsets[k] + i]` for
/// `r < mr`, `i < nr` (`offsets` of `pad`, `mr` and `nr` of `isa`).
fn kernel(isa: Isa, sample: &[f32], j: usize, pad: &Padded, w: &[f32], dst: &mut [f32], ld: usize) {
    let (mr, nr) = (isa.mr(), isa.nr());
    assert!(
        j + pad.max_offset + nr <= sample.len(),
        "direct kernel: read past the padded input"
    );
    assert!(
        w.len() >= pad.offsets.len() * mr,
        "direct kernel: weights too short"
    );
    assert!(
        dst.len() >= (mr - 1) * ld + nr,
        "direct kernel: tile too short"
    );
    let x = sample[j..].as_ptr();
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `Isa::detect` found AVX-512F and AVX-512VL on this CPU; the asserts bound every read of
        // `sample` (no offset exceeds `max_offset`) and `w`, and every write of `dst`.
        Isa::Avx512 => unsafe {
            x86::block_avx512(x, &pad.offsets, w.as_ptr(), dst.as_mut_ptr(), ld)
        },
        // SAFETY: as above, with AVX2 and FMA found.
        Isa::Avx2 => unsafe { x86::block_avx2(x, &pad.offsets, w.as_ptr(), dst.as_mut_ptr(), ld) },
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct kernel without x86 vector instructions: {isa:?}, {x:?}");
}

mod dispatch;
mod padded;
mod weight_grad;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(super) use dispatch::applies;
pub(super) use weight_grad::weight_grad_direct;

#[cfg(test)]
mod tests;
