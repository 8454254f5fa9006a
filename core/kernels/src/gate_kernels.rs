//! f32 kernels of the channel gate `y[n, c, p] = x[n, c, p] · g[n, p]` (a one-channel gate over
//! every channel of `x`; NestedFormer's gated skips) and its gradients `dx = dy · g`,
//! `dg[n, p] = Σ_c dy[n, c, p] · x[n, c, p]` (channels summed in order, positions in parallel
//! pieces), on contiguous `[N, C, P]` and `[N, P]` buffers. No result depends on the thread
//! count.

use rayon::prelude::*;

use crate::parallel_fill::{par_pieces, par_zeros};

/// Positions per parallel piece of the gate's gradient.
const PIECE: usize = 4096;

/// `x · g` row by row (`x`: `[N, C, P]`, `g`: `[N, P]`), whole rows per parallel piece.
pub fn gate_forward([batch, channels, positions]: [usize; 3], x: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), batch * channels * positions, "gate: x size");
    assert_eq!(g.len(), batch * positions, "gate: gate size");
    let p = positions.max(1);
    let rows_per_piece = (PIECE / p).max(1);
    par_pieces(x.len(), rows_per_piece * p, |piece, out| {
        for (k, out) in out.chunks_mut(p).enumerate() {
            let row = piece * rows_per_piece + k;
            let n = row / channels.max(1);
            let (src, gate) = (&x[row * positions..][..out.len()], &g[n * positions..]);
            for ((o, &v), &k) in out.iter_mut().zip(src).zip(gate) {
                *o = v * k;
            }
        }
    })
    .0
}

/// `(dx, dg)` from the output gradient `dy` (`[N, C, P]`).
pub fn gate_backward(shape: [usize; 3], x: &[f32], g: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let [batch, channels, positions] = shape;
    assert_eq!(dy.len(), x.len(), "gate: output gradient size");
    let dx = gate_forward(shape, dy, g);
    let mut dg = par_zeros(batch * positions);
    dg.par_chunks_mut(positions.max(1))
        .enumerate()
        .for_each(|(n, row)| {
            row.par_chunks_mut(PIECE).enumerate().for_each(|(k, out)| {
                for c in 0..channels {
                    let at = (n * channels + c) * positions + k * PIECE;
                    let (xs, ds) = (&x[at..][..out.len()], &dy[at..][..out.len()]);
                    for ((o, &v), &d) in out.iter_mut().zip(xs).zip(ds) {
                        *o += d * v;
                    }
                }
            });
        });
    (dx, dg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread_count::assert_same_bits_on_any_thread_count;

    /// Against the definition written out (f64 sums): 5000 positions (two pieces of the gradient
    /// per sample, a row per piece) and 7 positions (several rows per piece).
    #[test]
    fn gate_matches_the_definition() {
        for shape in [[2, 3, 5000], [3, 4, 7]] {
            check_gate(shape);
        }
    }

    fn check_gate(shape: [usize; 3]) {
        let [n, c, p] = shape;
        let x: Vec<f32> = (0..n * c * p)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let g: Vec<f32> = (0..n * p).map(|i| ((i * 13 % 29) as f32) / 29.0).collect();
        let dy: Vec<f32> = (0..n * c * p)
            .map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0)
            .collect();
        let y = gate_forward(shape, &x, &g);
        let (dx, dg) = gate_backward(shape, &x, &g, &dy);
        for s in 0..n {
            for q in 0..p {
                let mut want = 0.0f64;
                for ch in 0..c {
                    let i = (s * c + ch) * p + q;
                    assert_eq!(y[i], x[i] * g[s * p + q], "y[{i}]");
                    assert_eq!(dx[i], dy[i] * g[s * p + q], "dx[{i}]");
                    want += dy[i] as f64 * x[i] as f64;
                }
                let got = dg[s * p + q] as f64;
                assert!(
                    (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "dg[{s}, {q}]"
                );
            }
        }
    }

    /// Bit-equal on 1, 2, 3 and 7 threads.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let shape @ [n, c, p] = [2, 5, 9000];
        let x: Vec<f32> = (0..n * c * p)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
            .collect();
        let g: Vec<f32> = (0..n * p).map(|i| ((i * 31 % 97) as f32) / 97.0).collect();
        let dy: Vec<f32> = (0..n * c * p)
            .map(|i| ((i * 613 % 211) as f32 - 105.0) / 50.0)
            .collect();
        assert_same_bits_on_any_thread_count("gate", || {
            let (dx, dg) = gate_backward(shape, &x, &g, &dy);
            [gate_forward(shape, &x, &g), dx, dg]
        });
    }
}
