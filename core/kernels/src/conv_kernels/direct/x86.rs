//! The direct kernels' micro-kernels in x86 vector registers (AVX2 + FMA, AVX-512F).

use std::arch::x86_64::{
    __m256, __m512, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

/// The block of [`super::kernel`] for [`super::Isa::Avx2`]: 4 rows × 16 columns, 8 ymm
/// accumulators (with the loads and one broadcast, 11 of the 16 registers: no spills).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x + offsets[k] .. + 16` must lie in one allocation
/// for every `k`, as must `w .. w + 4·offsets.len()` and the 4 rows of 16 floats at `dst`
/// (row stride `ld`), which nothing else accesses during the call.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn block_avx2(
    x: *const f32,
    offsets: &[usize],
    w: *const f32,
    dst: *mut f32,
    ld: usize,
) {
    let mut acc: [[__m256; 2]; 4] = [[_mm256_setzero_ps(); 2]; 4];
    for (k, &off) in offsets.iter().enumerate() {
        // SAFETY: `x + off .. + 16` is in bounds (the caller's contract).
        let v = unsafe { [_mm256_loadu_ps(x.add(off)), _mm256_loadu_ps(x.add(off + 8))] };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: `w + 4k + r` is in bounds (the caller's contract).
            let b = unsafe { _mm256_broadcast_ss(&*w.add(k * 4 + r)) };
            for (a, vi) in row.iter_mut().zip(&v) {
                *a = _mm256_fmadd_ps(b, *vi, *a);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (i, a) in row.iter().enumerate() {
            // SAFETY: row r of the block at `dst` holds 16 floats (the caller's contract).
            unsafe { _mm256_storeu_ps(dst.add(r * ld + i * 8), *a) };
        }
    }
}

/// The block of [`super::kernel`] for [`super::Isa::Avx512`]: 8 rows × 48 columns, 24 zmm
/// accumulators (with three loads and a broadcast, 28 of the 32 registers).
///
/// # Safety
/// The CPU must support AVX-512F; `x + offsets[k] .. + 48` must lie in one allocation for
/// every `k`, as must `w .. w + 8·offsets.len()` and the 8 rows of 48 floats at `dst` (row
/// stride `ld`), which nothing else accesses during the call.
#[target_feature(enable = "avx512f,avx512vl")]
pub(super) unsafe fn block_avx512(
    x: *const f32,
    offsets: &[usize],
    w: *const f32,
    dst: *mut f32,
    ld: usize,
) {
    let mut acc: [[__m512; 3]; 8] = [[_mm512_setzero_ps(); 3]; 8];
    for (k, &off) in offsets.iter().enumerate() {
        // SAFETY: `x + off .. + 48` is in bounds (the caller's contract).
        let v = unsafe {
            [
                _mm512_loadu_ps(x.add(off)),
                _mm512_loadu_ps(x.add(off + 16)),
                _mm512_loadu_ps(x.add(off + 32)),
            ]
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: `w + 8k + r` is in bounds (the caller's contract).
            let b = _mm512_set1_ps(unsafe { *w.add(k * 8 + r) });
            for (a, vi) in row.iter_mut().zip(&v) {
                *a = _mm512_fmadd_ps(b, *vi, *a);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (i, a) in row.iter().enumerate() {
            // SAFETY: row r of the block at `dst` holds 48 floats (the caller's contract).
            unsafe { _mm512_storeu_ps(dst.add(r * ld + i * 16), *a) };
        }
    }
}

/// The weight-gradient block for [`super::Isa::Avx512`]: `sums[r][q] = Σ_i dy[(i/16·4 + r)·16 +
/// i%16] · x[group[q] + i]` for 4 rows × 6 offsets (24 zmm accumulators), `i < len`.
///
/// # Safety
/// The CPU must support AVX-512F; `len` is a multiple of 16; `dy .. dy + 4·len` and
/// `x + group[q] .. + len` must lie in one allocation each; `group` holds 6 offsets.
#[target_feature(enable = "avx512f,avx512vl")]
pub(super) unsafe fn wgrad_avx512(
    dy: *const f32,
    x: *const f32,
    group: &[usize],
    len: usize,
    sums: &mut [[f32; 8]; 4],
) {
    let off: [usize; super::dispatch::WG_NK512] = std::array::from_fn(|q| group[q]);
    let mut acc: [[__m512; super::dispatch::WG_NK512]; 4] =
        [[_mm512_setzero_ps(); super::dispatch::WG_NK512]; 4];
    for step in 0..len / 16 {
        let i = step * 16;
        // SAFETY: `i + 16 ≤ len`, so every load is in bounds (the caller's contract).
        let d = unsafe {
            [
                _mm512_loadu_ps(dy.add(4 * i)),
                _mm512_loadu_ps(dy.add(4 * i + 16)),
                _mm512_loadu_ps(dy.add(4 * i + 32)),
                _mm512_loadu_ps(dy.add(4 * i + 48)),
            ]
        };
        for (q, &o) in off.iter().enumerate() {
            // SAFETY: as above.
            let v = unsafe { _mm512_loadu_ps(x.add(o + i)) };
            for (row, dr) in acc.iter_mut().zip(&d) {
                row[q] = _mm512_fmadd_ps(*dr, v, row[q]);
            }
        }
    }
    for (row, out) in acc.iter().zip(sums.iter_mut()) {
        for (a, s) in row.iter().zip(out.iter_mut()) {
            *s = _mm512_reduce_add_ps(*a);
        }
    }
}

/// The weight-gradient block for [`super::Isa::Avx2`]: as [`wgrad_avx512`] with 4 rows × 2
/// offsets (8 ymm accumulators) and `len` a multiple of 8.
///
/// # Safety
/// As [`wgrad_avx512`], with AVX2 and FMA, `len` a multiple of 8 and 2 offsets in `group`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn wgrad_avx2(
    dy: *const f32,
    x: *const f32,
    group: &[usize],
    len: usize,
    sums: &mut [[f32; 8]; 4],
) {
    let off: [usize; 2] = [group[0], group[1]];
    let mut acc: [[__m256; 2]; 4] = [[_mm256_setzero_ps(); 2]; 4];
    for i in (0..len).step_by(8) {
        // SAFETY: `i + 8 ≤ len`, so every load is in bounds (the caller's contract).
        let d: [__m256; 4] =
            std::array::from_fn(|r| unsafe { _mm256_loadu_ps(dy.add(4 * i + 8 * r)) });
        for (q, &o) in off.iter().enumerate() {
            // SAFETY: as above.
            let v = unsafe { _mm256_loadu_ps(x.add(o + i)) };
            for (row, dr) in acc.iter_mut().zip(&d) {
                row[q] = _mm256_fmadd_ps(*dr, v, row[q]);
            }
        }
    }
    for (row, out) in acc.iter().zip(sums.iter_mut()) {
        for (a, s) in row.iter().zip(out.iter_mut()) {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
            *s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        }
    }
}
