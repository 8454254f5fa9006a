//! f32 GELU (the erf form, burn's `gelu`) forward and input gradient on contiguous buffers, in
//! parallel pieces: `y = x·Φ(x) = ½·x·(1 + erf(x/√2))`, `dx = dy·(Φ(x) + x·φ(x))` with
//! `φ(x) = e^{−x²/2}/√(2π)`. The f32 operations are burn-flex's (`libm::erff`), so the values
//! are the same bits as burn-flex's single-threaded op; each element depends on its input alone,
//! so results do not depend on the thread count.

use std::f32::consts::{PI, SQRT_2};

use crate::parallel_fill::par_pieces;

/// Elements per parallel piece.
const PIECE: usize = 1 << 14;

/// `Φ(x) = ½·(1 + erf(x/√2))` in burn-flex's f32 operations.
fn cdf(x: f32) -> f32 {
    0.5 * (1.0 + libm::erff(x / SQRT_2))
}

/// GELU of every element of `x`.
pub fn gelu_forward(x: &[f32]) -> Vec<f32> {
    par_pieces(x.len(), PIECE, |i, out| {
        let src = &x[i * PIECE..][..out.len()];
        for (o, &v) in out.iter_mut().zip(src) {
            *o = 0.5 * v * (1.0 + libm::erff(v / SQRT_2));
        }
    })
    .0
}

/// `dy · GELU'(x)` element by element (`x` and `dy` of equal length).
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), dy.len(), "gelu backward: dy size");
    let inv_sqrt_2pi: f32 = 1.0 / (2.0 * PI).sqrt();
    par_pieces(x.len(), PIECE, |i, out| {
        let (xs, ds) = (&x[i * PIECE..][..out.len()], &dy[i * PIECE..][..out.len()]);
        for (o, (&v, &g)) in out.iter_mut().zip(xs.iter().zip(ds)) {
            let pdf = inv_sqrt_2pi * (-0.5 * v * v).exp();
            *o = g * (cdf(v) + v * pdf);
        }
    })
    .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_count::assert_same_bits_on_any_thread_count;

    /// Against the definition in f64 (`libm::erf`), the gradient also against central
    /// differences of the f64 definition, on values across the curve's bend and tails.
    #[test]
    fn gelu_matches_the_definition() {
        let x: Vec<f32> = (0..401).map(|i| (i as f32 - 200.0) * 0.03).collect();
        let dy: Vec<f32> = (0..401)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let gelu64 = |v: f64| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
        let (y, dx) = (gelu_forward(&x), gelu_backward(&x, &dy));
        for i in 0..x.len() {
            let v = x[i] as f64;
            assert!(
                (y[i] as f64 - gelu64(v)).abs() < 1e-6 * (1.0 + v.abs()),
                "y[{i}]"
            );
            let h = 1e-4;
            let slope = (gelu64(v + h) - gelu64(v - h)) / (2.0 * h);
            let want = dy[i] as f64 * slope;
            assert!(
                (dx[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                "dx[{i}]: {} vs {want}",
                dx[i]
            );
        }
    }

    /// Bit-equal on 1, 2, 3 and 7 threads, over several pieces.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let n = 3 * PIECE + 17;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
            .collect();
        let dy: Vec<f32> = (0..n)
            .map(|i| ((i * 613 % 211) as f32 - 105.0) / 50.0)
            .collect();
        assert_same_bits_on_any_thread_count("gelu forward, backward", || {
            [gelu_forward(&x), gelu_backward(&x, &dy)]
        });
    }
}
