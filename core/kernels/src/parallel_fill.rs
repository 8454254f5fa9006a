//! New output buffers written by all threads: `vec![0.0; n]` would memset the whole buffer on
//! one core first (glibc must clear recycled heap memory), a serial pass the size of the output.

use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A vector of `len` floats in consecutive pieces of `chunk` (the last may be shorter), piece
/// `i` zeroed and then passed to `fill(i, piece)` by the thread that takes it (the zeros are
/// still in its cache); returns the vector and `fill`'s results in piece order.
pub fn par_pieces<R: Send>(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [f32]) -> R + Sync,
) -> (Vec<f32>, Vec<R>) {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let results = out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .map(|(i, piece)| {
            piece.fill(MaybeUninit::new(0.0));
            // SAFETY: every element of `piece` was initialised by the line above, and
            // `MaybeUninit<f32>` has the layout of `f32`.
            let piece = unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) };
            fill(i, piece)
        })
        .collect();
    // SAFETY: the pieces cover `0..len` of the capacity and each was initialised above (a panic
    // in `fill` unwinds before this line, leaving the vector empty).
    unsafe { out.set_len(len) };
    (out, results)
}

/// `len` zeros, written in parallel pieces.
pub fn par_zeros(len: usize) -> Vec<f32> {
    par_pieces(len, 1 << 16, |_, _| ()).0
}

/// `Σ_k parts[k][i]` for every `i < len`, each element's terms added in `k` order (element
/// ranges in parallel).
pub fn sum_in_order(parts: &[Vec<f32>], len: usize) -> Vec<f32> {
    const RANGE: usize = 4096;
    let (total, _) = par_pieces(len, RANGE, |r, dst| {
        for part in parts {
            let src = &part[r * RANGE..][..dst.len()];
            dst.iter_mut().zip(src).for_each(|(t, p)| *t += p);
        }
    });
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is what `fill` wrote for its piece, the untouched tail of a piece is zero,
    /// and the results come back in piece order.
    #[test]
    fn pieces_cover_the_buffer_in_order() {
        let (v, r) = par_pieces(10, 4, |i, p| {
            p[0] = i as f32 + 1.0;
            p.len()
        });
        assert_eq!(v, [1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0]);
        assert_eq!(r, [4, 4, 2]);
        let (empty, none) = par_pieces(0, 4, |_, _| ());
        assert!(empty.is_empty() && none.is_empty());
    }

    /// Element sums over 3 parts across several ranges, against sums written out.
    #[test]
    fn sums_add_every_part() {
        let len = 10_000;
        let parts: Vec<Vec<f32>> = (0..3)
            .map(|k| (0..len).map(|i| (i * (k + 1)) as f32).collect())
            .collect();
        let total = sum_in_order(&parts, len);
        for (i, t) in total.iter().enumerate() {
            assert_eq!(*t, (6 * i) as f32, "element {i}");
        }
    }
}
