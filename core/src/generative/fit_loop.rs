//! The step loop every generator fit shares: resume point, per-step RNG, progress, periodic and
//! final checkpoints, and the crash point the resume tests use.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use ndarray::Array3;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::plugin::FitProgress;
use crate::runner::crash_point::{self, CrashPoint};

use super::{step_rng, GeneratorFit};

/// A fit in progress: one training step at a time, and a checkpoint on request.
pub trait FitSteps {
    /// Trains step `k` (0-based) taking every random choice from `rng`; returns its loss.
    fn step(&mut self, k: usize, rng: &mut ChaCha8Rng) -> Result<f64>;
    /// Saves a checkpoint after `done` completed steps.
    fn save(&mut self, done: usize) -> Result<()>;
}

/// Runs steps `start..total` of `fit` with the RNG of each step, saving every `every` steps and
/// at the end, reporting progress.
pub fn run_steps(
    ctx: &mut GeneratorFit<'_>,
    start: usize,
    total: usize,
    every: usize,
    fit: &mut dyn FitSteps,
) -> Result<()> {
    (ctx.progress)(FitProgress {
        step: start,
        total,
        loss: None,
    });
    for k in start..total {
        let mut rng = step_rng(ctx.seed, k);
        let loss = fit.step(k, &mut rng)?;
        let done = k + 1;
        if done == total || done % every.max(1) == 0 {
            fit.save(done)?;
            crash_point::hit(CrashPoint::FitStep, done);
        }
        (ctx.progress)(FitProgress {
            step: done,
            total,
            loss: Some(loss),
        });
    }
    Ok(())
}

/// `batch` training volumes drawn with replacement from `data`, as `[batch, 1, D, H, W]`.
pub fn real_batch<B: Backend>(
    data: &[Array3<f32>],
    batch: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Tensor<B, 5> {
    let (d, h, w) = data[0].dim();
    let mut v = Vec::with_capacity(batch * d * h * w);
    for _ in 0..batch {
        let i = rng.random_range(0..data.len());
        v.extend(data[i].iter().copied());
    }
    Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape([batch, 1, d, h, w])
}

/// `[N, 1, D, H, W]` → one `[D, H, W]` array per sample.
pub fn to_volumes<B: Backend>(x: Tensor<B, 5>) -> Result<Vec<Array3<f32>>> {
    let [n, _, d, h, w] = x.dims();
    let data = x.into_data();
    let v: Vec<f32> = data
        .to_vec()
        .map_err(|e| crate::error::CoreError::runtime("generated volumes", format!("{e:?}")))?;
    v.chunks(d * h * w)
        .take(n)
        .map(|c| {
            Array3::from_shape_vec((d, h, w), c.to_vec())
                .map_err(|e| crate::error::CoreError::runtime("generated volumes", e))
        })
        .collect()
}
