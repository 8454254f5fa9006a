//! Vectorisable sums for the norm kernels: f32 partial sums in [`LANES`] lanes over pieces of
//! [`PIECE`] elements, each piece's lanes added into an f64 total in order. The order depends on
//! the lengths alone (never on threads), and the f32 rounding stays within one piece.

/// Lanes of the f32 partial sums (one AVX-512 register).
const LANES: usize = 16;
/// Elements per f32 partial sum before it joins the f64 total.
const PIECE: usize = 1024;

/// `(Σ f(a_i, b_i).0, Σ f(a_i, b_i).1)` over the pairs of `a` and `b` (equal lengths).
pub(super) fn sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "sum2: lengths");
    let mut total = (0.0f64, 0.0f64);
    for (pa, pb) in a.chunks(PIECE).zip(b.chunks(PIECE)) {
        let (mut s0, mut s1) = ([0.0f32; LANES], [0.0f32; LANES]);
        let (mut ca, mut cb) = (pa.chunks_exact(LANES), pb.chunks_exact(LANES));
        for (va, vb) in (&mut ca).zip(&mut cb) {
            for i in 0..LANES {
                let (u, v) = f(va[i], vb[i]);
                s0[i] += u;
                s1[i] += v;
            }
        }
        for (i, (&u, &v)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
            let (u, v) = f(u, v);
            s0[i] += u;
            s1[i] += v;
        }
        total.0 += s0.iter().map(|&v| v as f64).sum::<f64>();
        total.1 += s1.iter().map(|&v| v as f64).sum::<f64>();
    }
    total
}

/// `Σ f(a_i)` over `a`.
pub(super) fn sum1(a: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    sum2(a, a, |u, _| (f(u), 0.0)).0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 sums of the same values: lengths around the lane and piece sizes, values
    /// whose f32 sum in one accumulator would drift.
    #[test]
    fn sums_match_f64() {
        for len in [0, 1, 15, 16, 17, 1023, 1024, 1025, 5000] {
            let a: Vec<f32> = (0..len).map(|i| 1.0 + (i % 7) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..len).map(|i| (i % 5) as f32 - 2.0).collect();
            let want0: f64 = a.iter().map(|&v| v as f64 * 3.0).sum();
            let want1: f64 = a.iter().zip(&b).map(|(&u, &v)| u as f64 * v as f64).sum();
            let (got0, got1) = sum2(&a, &b, |u, v| (u * 3.0, u * v));
            assert!(
                (got0 - want0).abs() <= 1e-5 * want0.abs().max(1.0),
                "{len}: {got0} vs {want0}"
            );
            assert!(
                (got1 - want1).abs() <= 1e-5 * want0.abs().max(1.0),
                "{len}: {got1} vs {want1}"
            );
            let s = sum1(&a, |u| u * u);
            let want: f64 = a.iter().map(|&v| (v as f64).powi(2)).sum();
            assert!(
                (s - want).abs() <= 1e-5 * want.max(1.0),
                "{len}: {s} vs {want}"
            );
        }
    }
}
