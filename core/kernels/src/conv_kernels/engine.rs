//! The correlation engine every convolution op runs on: a [`Plan`] (grids, channels, stride,
//! per-axis tap offsets), the packing of one tile's panel, and one `gemm` call per tile.

use rayon::prelude::*;

/// One correlation: grids, channels, stride and per-axis tap offsets.
pub(super) struct Plan {
    pub(super) in_channels: usize,
    pub(super) out_channels: usize,
    pub(super) in_dims: [usize; 3],
    pub(super) out_dims: [usize; 3],
    pub(super) stride: [usize; 3],
    pub(super) offsets: [Vec<isize>; 3],
}

impl Plan {
    pub(super) fn taps(&self) -> usize {
        self.offsets.iter().map(Vec::len).product()
    }

    pub(super) fn depth(&self) -> usize {
        self.in_channels * self.taps()
    }

    pub(super) fn rows(&self) -> usize {
        self.out_dims[0] * self.out_dims[1]
    }

    /// Whether the correlation is pointwise (one tap at offset 0, stride 1, equal grids): then the
    /// panel of a tile is the input itself (`[C, cols]` with row stride = one channel's
    /// positions), read in place instead of packed.
    pub(super) fn pointwise(&self) -> bool {
        self.offsets.iter().all(|o| o.as_slice() == [0])
            && self.stride == [1; 3]
            && self.in_dims == self.out_dims
    }

    /// The `[C·T, cols]` panel of output rows `rows` as a view: for a [pointwise](Self::pointwise)
    /// plan the input `sample` in place, otherwise packed into `panel` (row stride `cols`).
    pub(super) fn tile_panel<'a>(
        &self,
        sample: &'a [f32],
        rows: std::ops::Range<usize>,
        panel: &'a mut Vec<f32>,
    ) -> MatRef<'a> {
        let cols = rows.len() * self.out_dims[2];
        if self.pointwise() {
            return MatRef {
                data: &sample[rows.start * self.out_dims[2]..],
                rs: self.in_dims.iter().product::<usize>(),
                cs: 1,
            };
        }
        let k = self.depth();
        panel.resize(k * cols, 0.0);
        self.pack(sample, rows, &mut panel[..k * cols]);
        MatRef {
            data: &panel[..k * cols],
            rs: cols,
            cs: 1,
        }
    }

    /// Output rows per tile: the packed panel `[C·T, rows·W]` stays within ~256 KiB.
    pub(super) fn rows_per_tile(&self) -> usize {
        const PANEL_FLOATS: usize = 64 * 1024;
        let width = self.out_dims[2].max(1);
        let cols = (PANEL_FLOATS / self.depth().max(1)).max(width);
        (cols / width).clamp(1, self.rows().max(1))
    }

    /// Packs rows `rows` of the output grid into `panel` (`[C·T, rows·W]`, row-major).
    pub(super) fn pack(&self, input: &[f32], rows: std::ops::Range<usize>, panel: &mut [f32]) {
        let [id, ih, iw] = self.in_dims;
        let [_, oh, ow] = self.out_dims;
        let [sz, sy, sx] = self.stride;
        let cols = rows.len() * ow;
        let in_plane = ih * iw;
        let mut r = 0;
        for c in 0..self.in_channels {
            let channel = &input[c * id * in_plane..(c + 1) * id * in_plane];
            for &dz in &self.offsets[0] {
                for &dy in &self.offsets[1] {
                    for &dx in &self.offsets[2] {
                        let dst = &mut panel[r * cols..(r + 1) * cols];
                        for (j, row) in rows.clone().enumerate() {
                            let (z, y) = (row / oh, row % oh);
                            let iz = (z * sz) as isize + dz;
                            let iy = (y * sy) as isize + dy;
                            let out = &mut dst[j * ow..(j + 1) * ow];
                            if iz < 0 || iz >= id as isize || iy < 0 || iy >= ih as isize {
                                out.fill(0.0);
                                continue;
                            }
                            let start = iz as usize * in_plane + iy as usize * iw;
                            gather_row(&channel[start..start + iw], sx, dx, out);
                        }
                        r += 1;
                    }
                }
            }
        }
    }
}

/// `out[x] = row[x·s + d]`, zero outside `row`.
pub(super) fn gather_row(row: &[f32], s: usize, d: isize, out: &mut [f32]) {
    let w = row.len() as isize;
    if s == 1 {
        // Valid x: 0 ≤ x + d < w.
        let lo = (-d).clamp(0, out.len() as isize) as usize;
        let hi = (w - d).clamp(lo as isize, out.len() as isize) as usize;
        out[..lo].fill(0.0);
        let src = (lo as isize + d) as usize;
        out[lo..hi].copy_from_slice(&row[src..src + (hi - lo)]);
        out[hi..].fill(0.0);
    } else {
        for (x, o) in out.iter_mut().enumerate() {
            let i = (x * s) as isize + d;
            *o = if i >= 0 && i < w {
                row[i as usize]
            } else {
                0.0
            };
        }
    }
}

/// A read-only row-major view with explicit row and column strides.
#[derive(Clone, Copy)]
pub(super) struct MatRef<'a> {
    pub(super) data: &'a [f32],
    pub(super) rs: usize,
    pub(super) cs: usize,
}

/// `dst[m×n] = lhs[m×k] · rhs[k×n]` (or `+=` when `accumulate`); `dst` is row-major with row stride
/// `dst_rs`. Runs on the calling thread.
pub(super) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_rs + n, "matmul: dst too short");
    // SAFETY: `dst` holds every element of the m×n block at row stride `dst_rs` (asserted) and is
    // borrowed mutably, so nothing else accesses it.
    unsafe { matmul_raw((m, n, k), dst.as_mut_ptr(), dst_rs, lhs, rhs, accumulate) }
}

/// [`matmul`] into a block at `dst` (row stride `dst_rs`).
///
/// # Safety
/// The m×n block at `dst` with row stride `dst_rs` must be valid for writes (and reads when
/// `accumulate`) and accessed by no other thread during the call.
unsafe fn matmul_raw(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                // SAFETY: row r of the block is valid for writes (the caller's contract).
                unsafe { std::slice::from_raw_parts_mut(dst.add(r * dst_rs), n) }.fill(0.0);
            }
        }
        return;
    }
    assert!(
        lhs.data.len() > (m - 1) * lhs.rs + (k - 1) * lhs.cs,
        "matmul: lhs too short"
    );
    assert!(
        rhs.data.len() > (k - 1) * rhs.rs + (n - 1) * rhs.cs,
        "matmul: rhs too short"
    );
    // SAFETY: the asserts bound every element gemm reads of `lhs` and `rhs`; the block at `dst` is
    // valid and exclusive by the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// An output buffer that parallel work items write in disjoint parts; it holds the buffer's
/// mutable borrow for `'a`, so nothing else reaches the buffer meanwhile.
#[derive(Clone, Copy)]
pub(super) struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _buf: std::marker::PhantomData<&'a [f32]>,
}

// SAFETY: `SharedOut` is only used by the convolutions' parallel work items (the engine's, the
// direct kernels', the input gradient's phase scatter), and each writes a disjoint set of elements
// (its own sample, rows and phase), so no element is accessed by two threads.
unsafe impl Send for SharedOut<'_> {}
// SAFETY: as above; shared references only hand out disjoint element writes.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    pub(super) fn new(buf: &'a mut [f32]) -> Self {
        SharedOut {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: std::marker::PhantomData,
        }
    }

    /// Writes `value` at `index`.
    ///
    /// # Safety
    /// No other thread may access `index` while the buffer is shared.
    pub(super) unsafe fn write(&self, index: usize, value: f32) {
        assert!(index < self.len, "SharedOut: index out of range");
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { *self.ptr.add(index) = value };
    }

    /// The `len` elements from `offset` as a mutable slice.
    ///
    /// # Safety
    /// No other thread may access those elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, offset: usize, len: usize) -> &mut [f32] {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "SharedOut: slice out of range"
        );
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) }
    }

    /// The start of the m×n block at `offset` with row stride `rs`, checked to lie in the buffer.
    fn block(&self, offset: usize, (m, n): (usize, usize), rs: usize) -> *mut f32 {
        assert!(
            m == 0 || n == 0 || offset + (m - 1) * rs + n <= self.len,
            "SharedOut: block out of range"
        );
        self.ptr.wrapping_add(offset)
    }
}

/// Runs `plan` over every (sample, tile) in parallel, adding each tile's `[O, rows·W]` result in
/// place to `out` (`[N, O, positions]`, as the plan's output grid is laid out; filled beforehand,
/// with zeros or the bias): no tile buffer, no copy.
pub(super) fn correlate_into(
    plan: &Plan,
    batch: usize,
    input: &[f32],
    weights: &[f32],
    out: &mut [f32],
) {
    let rpt = plan.rows_per_tile();
    let rows = plan.rows();
    let tiles = rows.div_ceil(rpt);
    let in_sample = plan.in_channels * plan.in_dims.iter().product::<usize>();
    let positions = plan.out_dims.iter().product::<usize>();
    let (o, k, ow) = (plan.out_channels, plan.depth(), plan.out_dims[2]);
    assert_eq!(
        out.len(),
        batch * o * positions,
        "correlate_into: output size"
    );
    let shared = SharedOut::new(out);
    (0..batch * tiles)
        .into_par_iter()
        .for_each_init(Vec::new, |panel: &mut Vec<f32>, item| {
            let (n, t) = (item / tiles, item % tiles);
            let range = t * rpt..((t + 1) * rpt).min(rows);
            let cols = range.len() * ow;
            let sample = &input[n * in_sample..(n + 1) * in_sample];
            let lhs = MatRef {
                data: weights,
                rs: k,
                cs: 1,
            };
            let rhs = plan.tile_panel(sample, range.clone(), panel);
            let dst = shared.block(n * o * positions + range.start * ow, (o, cols), positions);
            // SAFETY: the block (checked to lie in `out`) holds sample n's output rows `range` of
            // every channel; no other work item touches them, and `out` stays borrowed meanwhile.
            unsafe { matmul_raw((o, cols, k), dst, positions, lhs, rhs, true) };
        });
}

/// Runs `plan` over every (sample, tile) in parallel; `store(n, rows, tile)` receives each tile's
/// `[O, rows·W]` result. Thread-local panel and tile buffers are reused across work items.
pub(super) fn correlate<S>(plan: &Plan, batch: usize, input: &[f32], weights: &[f32], store: S)
where
    S: Fn(usize, std::ops::Range<usize>, &[f32]) + Sync,
{
    let rpt = plan.rows_per_tile();
    let rows = plan.rows();
    let tiles = rows.div_ceil(rpt);
    let in_sample = plan.in_channels * plan.in_dims.iter().product::<usize>();
    let (o, k, ow) = (plan.out_channels, plan.depth(), plan.out_dims[2]);
    (0..batch * tiles).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(panel, tile): &mut (Vec<f32>, Vec<f32>), item| {
            let (n, t) = (item / tiles, item % tiles);
            let range = t * rpt..((t + 1) * rpt).min(rows);
            let cols = range.len() * ow;
            tile.resize(o * cols, 0.0);
            let sample = &input[n * in_sample..(n + 1) * in_sample];
            matmul(
                (o, cols, k),
                &mut tile[..o * cols],
                cols,
                MatRef {
                    data: weights,
                    rs: k,
                    cs: 1,
                },
                plan.tile_panel(sample, range.clone(), panel),
                false,
            );
            store(n, range, &tile[..o * cols]);
        },
    );
}
