//! The direct kernels on every instruction set this CPU has, against the plan's definition
//! evaluated in f64 (`out[o, g] = Σ_c Σ_t w[o, c·T + t] · in[c, g + off_t]`, zero outside), and
//! bit-equal on 1, 2, 3 and 7 threads.

use super::weight_grad::weight_grad_with;
use super::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn isas() -> Vec<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut found = Vec::new();
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") {
            found.push(Isa::Avx512);
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            found.push(Isa::Avx2);
        }
        found
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

fn plan(c: usize, o: usize, dims: [usize; 3], offsets: [Vec<isize>; 3]) -> Plan {
    strided(c, o, (dims, dims), [1; 3], offsets)
}

fn strided(
    c: usize,
    o: usize,
    (in_dims, out_dims): ([usize; 3], [usize; 3]),
    stride: [usize; 3],
    offsets: [Vec<isize>; 3],
) -> Plan {
    Plan {
        in_channels: c,
        out_channels: o,
        in_dims,
        out_dims,
        stride,
        offsets,
    }
}

/// A 3³ forward (ascending taps), a 3³ input gradient (descending taps) with 17 columns and an
/// output-channel count no block size divides, an asymmetric kernel over 50 columns (two
/// 48-column blocks) whose panel depth no weight-gradient group size divides, a stride-2 3³
/// kernel on odd and even sides, a 2³ stride-2 patch embedding, a valid (unpadded) 3³ conv, a
/// stride-3 kernel on a one-column row, and a 3³ kernel larger than its 1³ grid.
fn plans() -> Vec<Plan> {
    let k3 = || [vec![-1, 0, 1], vec![-1, 0, 1], vec![-1, 0, 1]];
    vec![
        strided(3, 5, ([7, 6, 9], [4, 3, 5]), [2, 2, 2], k3()),
        // Stride 3 on a row of one column (phases with no input), and a 3³ kernel on a 1³ grid.
        strided(2, 3, ([4, 2, 1], [2, 1, 1]), [3, 3, 3], k3()),
        plan(3, 2, [1, 1, 1], k3()),
        strided(
            4,
            9,
            ([4, 6, 34], [2, 3, 17]),
            [2, 2, 2],
            [vec![0, 1], vec![0, 1], vec![0, 1]],
        ),
        strided(
            2,
            3,
            ([5, 6, 7], [3, 4, 5]),
            [1; 3],
            [vec![0, 1, 2], vec![0, 1, 2], vec![0, 1, 2]],
        ),
        plan(
            3,
            5,
            [5, 6, 7],
            [vec![-1, 0, 1], vec![-1, 0, 1], vec![-1, 0, 1]],
        ),
        plan(
            6,
            3,
            [4, 9, 17],
            [vec![1, 0, -1], vec![1, 0, -1], vec![1, 0, -1]],
        ),
        plan(5, 9, [3, 4, 50], [vec![-1, 0, 1], vec![0], vec![-2, -1, 0]]),
    ]
}

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Every (output index, input index, weight index) term of `plan` over `batch` samples.
fn each_term(plan: &Plan, batch: usize, mut f: impl FnMut(usize, usize, usize)) {
    let [d, h, w] = plan.out_dims;
    let [_, ih, iw] = plan.in_dims;
    let (positions, in_positions) = (d * h * w, plan.in_dims.iter().product::<usize>());
    let taps: Vec<[isize; 3]> = plan.offsets[0]
        .iter()
        .flat_map(|&z| {
            plan.offsets[1]
                .iter()
                .flat_map(move |&y| plan.offsets[2].iter().map(move |&x| [z, y, x]))
        })
        .collect();
    for n in 0..batch {
        for o in 0..plan.out_channels {
            for g in 0..positions {
                let at = [g / (h * w), g / w % h, g % w];
                for c in 0..plan.in_channels {
                    for (t, off) in taps.iter().enumerate() {
                        let src: Vec<isize> = (0..3)
                            .map(|a| (at[a] * plan.stride[a]) as isize + off[a])
                            .collect();
                        let inside =
                            (0..3).all(|a| src[a] >= 0 && src[a] < plan.in_dims[a] as isize);
                        if inside {
                            let s = (src[0] as usize * ih + src[1] as usize) * iw + src[2] as usize;
                            f(
                                (n * plan.out_channels + o) * positions + g,
                                (n * plan.in_channels + c) * in_positions + s,
                                o * plan.depth() + c * taps.len() + t,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= 1e-5 * scale,
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

#[test]
fn direct_correlation_and_weight_gradient_match_the_definition() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let batch = 2;
    for p in plans() {
        let (inputs, outputs): (usize, usize) =
            (p.in_dims.iter().product(), p.out_dims.iter().product());
        let x = random(batch * p.in_channels * inputs, &mut rng);
        let w = random(p.out_channels * p.depth(), &mut rng);
        let dy = random(batch * p.out_channels * outputs, &mut rng);
        // The output starts at 0.5 everywhere (as a bias would): the kernel adds onto it.
        let mut y = vec![0.5f64; dy.len()];
        let mut dw = vec![0f64; w.len()];
        each_term(&p, batch, |yi, xi, wi| {
            y[yi] += w[wi] as f64 * x[xi] as f64;
            dw[wi] += dy[yi] as f64 * x[xi] as f64;
        });
        for isa in isas() {
            let what = format!("{isa:?} {:?} s{:?} {:?}", p.in_dims, p.stride, p.offsets);
            let mut out = vec![0.5f32; dy.len()];
            correlate_with(isa, &p, batch, &x, &w, &mut out);
            assert_close(&out, &y, &format!("correlation {what}"));
            let got = weight_grad_with(isa, &p, batch, &x, &dy);
            assert_close(&got, &dw, &format!("weight gradient {what}"));
        }
    }
}

#[test]
fn direct_results_do_not_depend_on_the_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    // 10 planes of 2 samples: more work items and chunks than threads.
    let p = plan(
        4,
        6,
        [10, 7, 20],
        [vec![-1, 0, 1], vec![-1, 0, 1], vec![-1, 0, 1]],
    );
    let positions: usize = p.in_dims.iter().product();
    let x = random(2 * 4 * positions, &mut rng);
    let w = random(6 * p.depth(), &mut rng);
    let dy = random(2 * 6 * positions, &mut rng);
    for isa in isas() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| {
                let mut out = vec![0.0f32; dy.len()];
                correlate_with(isa, &p, 2, &x, &w, &mut out);
                (out, weight_grad_with(isa, &p, 2, &x, &dy))
            })
        };
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let one = run(1);
        for threads in [2, 3, 7] {
            let other = run(threads);
            assert_eq!(
                bits(&one.0),
                bits(&other.0),
                "{isa:?} correlation, {threads} threads"
            );
            assert_eq!(
                bits(&one.1),
                bits(&other.1),
                "{isa:?} weight gradient, {threads} threads"
            );
        }
    }
}
