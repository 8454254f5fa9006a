//! The step loop every generator fit shares: resume point, per-step RNG, progress, periodic and
//! final checkpoints, and the crash point the resume tests use.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_data::error::{CoreError, Result};
use dsma_data::seed::derive_seed;
use dsma_plugin::FitProgress;
use ndarray::Array3;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::crash_point::{self, CrashPoint};
use crate::generative::fit_state::FitCheckpoint;

/// What a generator's `fit` is given besides its data.
pub struct GeneratorFit<'a> {
    /// Checkpoint folder (resume from [`FitCheckpoint::latest`]; a finished fit leaves its final
    /// checkpoint there, which [`crate::generative::GenerativeMethod::sample`] reads).
    pub dir: &'a Path,
    /// Seed of the fit; step `k` draws from [`step_rng`]`(seed, k)`.
    pub seed: u64,
    /// Progress callback.
    pub progress: &'a mut dyn FnMut(FitProgress),
}

/// The RNG of fit step `step` (so a resumed fit draws what an uninterrupted one would).
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(seed, step as u64))
}

/// A fit in progress: one training step at a time, and a checkpoint on request.
pub trait FitSteps {
    /// Trains step `k` (0-based) taking every random choice from `rng`; returns its loss.
    fn step(&mut self, k: usize, rng: &mut ChaCha8Rng) -> Result<f64>;
    /// Saves a checkpoint after `done` completed steps.
    fn save(&mut self, done: usize) -> Result<()>;
    /// Restores networks and optimizers from `ck` (the latest checkpoint of the fit folder).
    fn restore(&mut self, ck: &FitCheckpoint) -> Result<()>;
}

/// Runs a fit to its end: resumes from the latest checkpoint in `ctx.dir` (returns at once when
/// it is final), refuses to continue without training data, then [`run_steps`].
pub fn fit_to_end(
    ctx: &mut GeneratorFit<'_>,
    total: usize,
    every: usize,
    has_data: bool,
    fit: &mut dyn FitSteps,
) -> Result<()> {
    let mut start = 0;
    if let Some(ck) = FitCheckpoint::latest(ctx.dir)? {
        fit.restore(&ck)?;
        start = ck.step();
    }
    if start >= total {
        return Ok(());
    }
    if !has_data {
        return Err(CoreError::invalid(
            format!("generator folder {}", ctx.dir.display()),
            "no training volumes to continue the fit with",
        ));
    }
    run_steps(ctx, start, total, every, fit)
}

/// `n` volumes drawn `batch` at a time: `draw(b, first)` returns `[b, 1, D, H, W]` for samples
/// `first .. first + b`.
pub fn sample_in_batches<B: Backend>(
    n: usize,
    batch: usize,
    mut draw: impl FnMut(usize, usize) -> Result<Tensor<B, 5>>,
) -> Result<Vec<Array3<f32>>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let b = (n - out.len()).min(batch.max(1));
        out.extend(to_volumes(draw(b, out.len())?)?);
    }
    Ok(out)
}

/// A scalar loss as `f64`; NaN or ∞ is an error naming `what` (a diverged fit stops with advice).
pub fn loss_value<B: Backend>(t: &Tensor<B, 1>, what: &str) -> Result<f64> {
    let v: Vec<f32> = t
        .clone()
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| CoreError::runtime("loss", format!("{e:?}")))?;
    let v = v.first().copied().unwrap_or(f32::NAN) as f64;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(CoreError::invalid(
            format!("{what} fit"),
            format!("the loss became {v}; lower the learning rate"),
        ))
    }
}

/// Every `(name, value)` is ≥ 1, else an error naming `synthesizer.params.<name>` of `plugin`.
pub fn require_positive(plugin: &str, values: &[(&str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(CoreError::invalid(
            format!("synthesizer.params.{name} of {plugin}"),
            "0; expected ≥ 1",
        )),
        None => Ok(()),
    }
}

/// Every `(name, value)` lies in `lo < v ≤ hi` (`open_low`) or `lo ≤ v < hi` (otherwise).
pub fn require_range(
    plugin: &str,
    values: &[(&str, f64)],
    lo: f64,
    hi: f64,
    open_low: bool,
) -> Result<()> {
    for (name, v) in values {
        let ok = if open_low {
            *v > lo && *v <= hi
        } else {
            *v >= lo && *v < hi
        };
        if !ok {
            let range = if open_low {
                format!("({lo}, {hi}]")
            } else {
                format!("[{lo}, {hi})")
            };
            return Err(CoreError::invalid(
                format!("synthesizer.params.{name} of {plugin}"),
                format!("{v}; expected in {range}"),
            ));
        }
    }
    Ok(())
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
        let loss = {
            let _step = crate::model::autodiff_step();
            fit.step(k, &mut rng)?
        };
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
        .map_err(|e| dsma_data::error::CoreError::runtime("generated volumes", format!("{e:?}")))?;
    v.chunks(d * h * w)
        .take(n)
        .map(|c| {
            Array3::from_shape_vec((d, h, w), c.to_vec())
                .map_err(|e| dsma_data::error::CoreError::runtime("generated volumes", e))
        })
        .collect()
}
