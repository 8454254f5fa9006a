//! The kernels against direct loops written from the definitions (independent of the engine).

use super::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `x[n, c, g·s + k − p]` as an index, or `None` in the padding.
fn source(s: &ConvShape, n: usize, c: usize, g: [usize; 3], k: [usize; 3]) -> Option<usize> {
    let mut idx = [0usize; 3];
    for a in 0..3 {
        let i = (g[a] * s.stride[a] + k[a]) as isize - s.padding[a] as isize;
        if i < 0 || i >= s.input[a] as isize {
            return None;
        }
        idx[a] = i as usize;
    }
    let [d, h, w] = s.input;
    Some((((n * s.in_channels + c) * d + idx[0]) * h + idx[1]) * w + idx[2])
}

/// Visits every (n, o, output position, c, kernel position) term of the convolution sum.
fn each_term(s: &ConvShape, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
    let [od, oh, ow] = s.output;
    let [kd, kh, kw] = s.kernel;
    for n in 0..s.batch {
        for o in 0..s.out_channels {
            for gz in 0..od {
                for gy in 0..oh {
                    for gx in 0..ow {
                        let yi = (((n * s.out_channels + o) * od + gz) * oh + gy) * ow + gx;
                        for c in 0..s.in_channels {
                            for z in 0..kd {
                                for y in 0..kh {
                                    for x in 0..kw {
                                        if let Some(xi) = source(s, n, c, [gz, gy, gx], [z, y, x]) {
                                            let wi = (((o * s.in_channels + c) * kd + z) * kh + y)
                                                * kw
                                                + x;
                                            f(yi, xi, wi, o, c);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= 1e-4 * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

fn shapes() -> Vec<ConvShape> {
    let mk = |batch, c, o, input: [usize; 3], k: [usize; 3], s: [usize; 3], p: [usize; 3]| {
        let output = ConvShape::output_size(input, k, s, p).expect("valid shape");
        ConvShape {
            batch,
            in_channels: c,
            out_channels: o,
            input,
            output,
            kernel: k,
            stride: s,
            padding: p,
        }
    };
    vec![
        mk(1, 1, 1, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
        mk(2, 3, 5, [5, 6, 7], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
        mk(2, 4, 3, [7, 5, 6], [3, 3, 3], [2, 2, 2], [1, 1, 1]),
        mk(1, 5, 7, [6, 6, 6], [3, 2, 1], [2, 1, 3], [0, 1, 0]),
        mk(3, 17, 9, [4, 5, 3], [1, 1, 1], [1, 1, 1], [0, 0, 0]),
        mk(1, 2, 3, [9, 4, 5], [2, 2, 2], [2, 2, 2], [0, 0, 0]),
        // Pointwise (read in place, not packed) over several tiles: 64 channels give 64-row tiles.
        mk(2, 64, 3, [5, 16, 16], [1, 1, 1], [1, 1, 1], [0, 0, 0]),
    ]
}

#[test]
fn conv3d_forward_and_both_gradients_match_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for s in shapes() {
        let taps: usize = s.kernel.iter().product();
        let x = random(
            s.batch * s.in_channels * s.input.iter().product::<usize>(),
            &mut rng,
        );
        let w = random(s.out_channels * s.in_channels * taps, &mut rng);
        let b = random(s.out_channels, &mut rng);
        let dy = random(
            s.batch * s.out_channels * s.output.iter().product::<usize>(),
            &mut rng,
        );
        let mut y = vec![0f64; dy.len()];
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        each_term(&s, |yi, xi, wi, _, _| {
            y[yi] += w[wi] as f64 * x[xi] as f64;
            dx[xi] += w[wi] as f64 * dy[yi] as f64;
            dw[wi] += x[xi] as f64 * dy[yi] as f64;
        });
        let per = s.output.iter().product::<usize>();
        for (i, v) in y.iter_mut().enumerate() {
            *v += b[(i / per) % s.out_channels] as f64;
        }
        let mut db = vec![0f64; s.out_channels];
        for (i, v) in dy.iter().enumerate() {
            db[(i / per) % s.out_channels] += *v as f64;
        }
        close(
            &conv3d_forward(&s, &x, &w, Some(&b)),
            &y,
            &format!("forward {s:?}"),
        );
        close(
            &conv3d_input_grad(&s, &w, &dy),
            &dx,
            &format!("input grad {s:?}"),
        );
        close(
            &conv3d_weight_grad(&s, &x, &dy),
            &dw,
            &format!("weight grad {s:?}"),
        );
        close(&bias_grad(&dy, s.batch, s.out_channels), &db, "bias grad");
    }
}

/// `(y, dx, dw)` of a transposed convolution by its definition (PyTorch's ConvTranspose3d):
/// `y[n, co, i·s + k − p] += w[ci, co, k] · x[n, ci, i]`, and the matching gradients.
fn transpose_reference(
    t: &ConvTransposeShape,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (input, output, k) = (t.input, t.output, t.kernel);
    let nin = input.iter().product::<usize>();
    let nout = output.iter().product::<usize>();
    let taps = k.iter().product::<usize>();
    let (mut y, mut dx, mut dw) = (
        vec![0f64; dy.len()],
        vec![0f64; x.len()],
        vec![0f64; w.len()],
    );
    for n in 0..t.batch {
        for c in 0..t.in_channels {
            for i in 0..nin {
                let g = [
                    i / (input[1] * input[2]),
                    (i / input[2]) % input[1],
                    i % input[2],
                ];
                for o in 0..t.out_channels {
                    for kk in 0..taps {
                        let kv = [kk / (k[1] * k[2]), (kk / k[2]) % k[1], kk % k[2]];
                        let pos: Vec<isize> = (0..3)
                            .map(|a| (g[a] * t.stride[a] + kv[a]) as isize - t.padding[a] as isize)
                            .collect();
                        if (0..3).any(|a| pos[a] < 0 || pos[a] >= output[a] as isize) {
                            continue;
                        }
                        let at = (pos[0] as usize * output[1] + pos[1] as usize) * output[2]
                            + pos[2] as usize;
                        let yi = (n * t.out_channels + o) * nout + at;
                        let xi = (n * t.in_channels + c) * nin + i;
                        let wi = (c * t.out_channels + o) * taps + kk;
                        y[yi] += w[wi] as f64 * x[xi] as f64;
                        dx[xi] += w[wi] as f64 * dy[yi] as f64;
                        dw[wi] += x[xi] as f64 * dy[yi] as f64;
                    }
                }
            }
        }
    }
    (y, dx, dw)
}

#[test]
fn transposed_conv_is_the_adjoint_written_out() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // (batch, in, out, input, kernel, stride, padding, output padding)
    type Case = (
        usize,
        usize,
        usize,
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
    );
    let cases: [Case; 3] = [
        (2, 3, 2, [3, 4, 2], [2; 3], [2; 3], [0; 3], [0; 3]),
        (1, 2, 3, [3, 3, 4], [3; 3], [2; 3], [1; 3], [1, 0, 1]),
        (
            1,
            5,
            4,
            [2, 3, 3],
            [3, 1, 2],
            [1, 2, 1],
            [1, 0, 0],
            [0, 1, 0],
        ),
    ];
    for (batch, ci, co, input, k, s, p, op) in cases {
        let output: [usize; 3] =
            std::array::from_fn(|a| (input[a] - 1) * s[a] + k[a] + op[a] - 2 * p[a]);
        let t = ConvTransposeShape {
            batch,
            in_channels: ci,
            out_channels: co,
            input,
            output,
            kernel: k,
            stride: s,
            padding: p,
        };
        let nout = output.iter().product::<usize>();
        let x = random(batch * ci * input.iter().product::<usize>(), &mut rng);
        let w = random(ci * co * k.iter().product::<usize>(), &mut rng);
        let b = random(co, &mut rng);
        let dy = random(batch * co * nout, &mut rng);
        let (mut y, dx, dw) = transpose_reference(&t, &x, &w, &dy);
        for (i, v) in y.iter_mut().enumerate() {
            *v += b[(i / nout) % co] as f64;
        }
        let what = format!("{t:?}");
        close(
            &conv_transpose3d_forward(&t, &x, &w, Some(&b)),
            &y,
            &format!("forward {what}"),
        );
        close(
            &conv_transpose3d_input_grad(&t, &w, &dy),
            &dx,
            &format!("input grad {what}"),
        );
        close(
            &conv_transpose3d_weight_grad(&t, &x, &dy),
            &dw,
            &format!("weight grad {what}"),
        );
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // A 3×3×3 conv (packed panels) and a pointwise one over several tiles (read in place).
    for (channels, k, padding) in [(6, 3, 1), (64, 1, 0)] {
        same_on_any_thread_count(ConvShape {
            batch: 2,
            in_channels: channels,
            out_channels: 5,
            input: [12, 10, 9],
            output: [12, 10, 9],
            kernel: [k; 3],
            stride: [1, 1, 1],
            padding: [padding; 3],
        });
    }
}

fn same_on_any_thread_count(s: ConvShape) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random(2 * s.in_channels * 1080, &mut rng);
    let w = random(
        5 * s.in_channels * s.kernel.iter().product::<usize>(),
        &mut rng,
    );
    let dy = random(2 * 5 * 1080, &mut rng);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(|| {
            (
                conv3d_forward(&s, &x, &w, None),
                conv3d_input_grad(&s, &w, &dy),
                conv3d_weight_grad(&s, &x, &dy),
            )
        })
    };
    let one = run(1);
    for threads in [2, 3, 7] {
        let other = run(threads);
        assert!(
            one.0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "forward, {threads} threads"
        );
        assert!(
            one.1
                .iter()
                .zip(&other.1)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "input grad, {threads} threads"
        );
        assert!(
            one.2
                .iter()
                .zip(&other.2)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "weight grad, {threads} threads"
        );
    }
}
