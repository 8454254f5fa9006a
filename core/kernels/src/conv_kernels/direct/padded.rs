//! The phase-split, zero-padded copy of a correlation's input that the direct kernels read.
//!
//! Along an axis of stride `s`, input index `i = s·g + q` for output position `g` and tap offset
//! `q` splits into phase `r = q mod s` and shift `⌊q/s⌋`: `i = s·(g + ⌊q/s⌋) + r`. Each channel is
//! stored as its `s_z·s_y·s_x` phase grids, each `[Od+lo+hi, Oh+lo+hi, Ow+lo+hi]` (the output
//! grid padded by the shifts' range, zeros where `i` falls outside the input), so every tap of
//! every channel is one constant offset from `j = (z·Ph + y)·Pw + x`. With stride 1 there is one
//! phase and this is plain zero padding.

use rayon::prelude::*;

use crate::parallel_fill::par_zeros;

use super::dispatch::NR_MAX;
use crate::conv_kernels::engine::Plan;

/// One plan's padded layout: per-axis low padding, stride and padded grid, the tap offsets into
/// a padded sample, and the floats one padded sample occupies (with slack for the last block).
pub(super) struct Padded {
    lo: [usize; 3],
    stride: [usize; 3],
    /// The padded phase grid `[Pd, Ph, Pw]`.
    pub(super) dims: [usize; 3],
    /// `(c·P + phase)·Cs + shift_t` for row `c·T + t` of the panel (`P` phases of `Cs` floats).
    pub(super) offsets: Vec<usize>,
    /// The largest of `offsets`.
    pub(super) max_offset: usize,
    pub(super) sample_len: usize,
}

impl Padded {
    pub(super) fn new(plan: &Plan) -> Self {
        let stride = plan.stride;
        let split = |a: usize, q: isize| {
            (
                q.rem_euclid(stride[a] as isize) as usize,
                q.div_euclid(stride[a] as isize),
            )
        };
        let lo = [0, 1, 2].map(|a| {
            let min = plan.offsets[a]
                .iter()
                .map(|&q| split(a, q).1)
                .min()
                .unwrap_or(0);
            (-min).max(0) as usize
        });
        let dims = [0, 1, 2].map(|a| {
            let max = plan.offsets[a]
                .iter()
                .map(|&q| split(a, q).1)
                .max()
                .unwrap_or(0);
            plan.out_dims[a] + lo[a] + max.max(0) as usize
        });
        let [_, ph, pw] = dims;
        let grid = dims.iter().product::<usize>();
        let phases = stride.iter().product::<usize>();
        let mut taps = Vec::with_capacity(plan.taps());
        for &qz in &plan.offsets[0] {
            for &qy in &plan.offsets[1] {
                for &qx in &plan.offsets[2] {
                    let [(rz, sz), (ry, sy), (rx, sx)] = [split(0, qz), split(1, qy), split(2, qx)];
                    let phase = (rz * stride[1] + ry) * stride[2] + rx;
                    let z = (sz + lo[0] as isize) as usize;
                    let y = (sy + lo[1] as isize) as usize;
                    let x = (sx + lo[2] as isize) as usize;
                    taps.push(phase * grid + (z * ph + y) * pw + x);
                }
            }
        }
        let channel = phases * grid;
        let offsets: Vec<usize> = (0..plan.in_channels)
            .flat_map(|c| taps.iter().map(move |t| c * channel + t))
            .collect();
        // The last block starts below `(Od−1)·Ph·Pw + Oh·Pw` and reads NR_MAX floats past each
        // offset.
        let [d, h, _] = plan.out_dims;
        let last_start = (d.saturating_sub(1) * ph + h) * pw;
        let max_offset = offsets.iter().copied().max().unwrap_or(0);
        Padded {
            lo,
            stride,
            dims,
            offsets,
            max_offset,
            sample_len: (last_start + NR_MAX + max_offset).max(plan.in_channels * channel),
        }
    }

    /// Every sample of `input` (`[N, C, D, H, W]`) padded, `sample_len` floats apart: zeroed in
    /// parallel, then every float written (channels in parallel).
    pub(super) fn pad_batch(&self, plan: &Plan, batch: usize, input: &[f32]) -> Vec<f32> {
        let in_channel = plan.in_dims.iter().product::<usize>();
        let channel = self.stride.iter().product::<usize>() * self.dims.iter().product::<usize>();
        let mut padded = par_zeros(batch * self.sample_len);
        padded
            .par_chunks_mut(self.sample_len)
            .enumerate()
            .for_each(|(n, sample)| {
                let (channels, slack) = sample.split_at_mut(plan.in_channels * channel);
                slack.fill(0.0);
                channels
                    .par_chunks_mut(channel.max(1))
                    .enumerate()
                    .for_each(|(c, dst)| {
                        let at = (n * plan.in_channels + c) * in_channel;
                        self.fill_channel(plan, &input[at..at + in_channel], dst);
                    });
            });
        padded
    }

    /// Writes one channel's phase grids from its input `src` (`[D, H, W]`).
    fn fill_channel(&self, plan: &Plan, src: &[f32], dst: &mut [f32]) {
        let [id, ih, iw] = plan.in_dims.map(|v| v as isize);
        let [pd, ph, pw] = self.dims;
        let [sz, sy, sx] = self.stride;
        let source = |a: usize, j: usize, r: usize| {
            (self.stride[a] * j + r) as isize - (self.stride[a] * self.lo[a]) as isize
        };
        let mut rows = dst.chunks_mut(pw.max(1));
        for rz in 0..sz {
            for ry in 0..sy {
                for rx in 0..sx {
                    for jz in 0..pd {
                        let iz = source(0, jz, rz);
                        for jy in 0..ph {
                            let iy = source(1, jy, ry);
                            let Some(row) = rows.next() else { return };
                            if iz < 0 || iz >= id || iy < 0 || iy >= ih {
                                row.fill(0.0);
                                continue;
                            }
                            let line = &src[((iz * ih + iy) * iw) as usize..][..iw as usize];
                            // ix = sx·(jx − lo) + rx lies in the row for jx in lo..hi.
                            let lo = self.lo[2].min(row.len());
                            let hi = ((iw as usize + sx * self.lo[2])
                                .saturating_sub(rx)
                                .div_ceil(sx))
                            .clamp(lo, row.len());
                            row[..lo].fill(0.0);
                            row[hi..].fill(0.0);
                            if sx == 1 {
                                row[lo..hi].copy_from_slice(&line[..hi - lo]);
                            } else {
                                let gathered = line.get(rx..).unwrap_or(&[]).iter().step_by(sx);
                                row[lo..hi]
                                    .iter_mut()
                                    .zip(gathered)
                                    .for_each(|(v, &x)| *v = x);
                            }
                        }
                    }
                }
            }
        }
    }
}
