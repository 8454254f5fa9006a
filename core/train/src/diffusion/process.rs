//! The diffusion process both comparators share: the common settings ([`DiffusionParams`]), the
//! forward noising `q(x_t | x_0)`, `x̂_0` from predicted noise, the reverse step and the ancestral
//! sampler over any list of timesteps.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::diffusion::schedule::Schedule;
use crate::diffusion::unet::DenoiserConfig;
use crate::layers::normal_tensor;
use dsma_data::error::{CoreError, Result};

/// Which variance a reverse step adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variance {
    /// `σ² = β` (DDPM's "fixed large", the AnoDDPM default).
    #[default]
    Beta,
    /// `σ² = β̃`, the true posterior variance ("fixed small").
    Posterior,
}

/// Settings both diffusion plugins share (each plugin's parameters carry them under `diffusion:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionParams {
    /// The denoiser.
    pub denoiser: DenoiserConfig,
    /// Training timesteps T.
    pub timesteps: usize,
    /// β₁.
    pub beta_start: f64,
    /// β_T.
    pub beta_end: f64,
    /// Reverse-step variance.
    pub variance: Variance,
    /// Clip x̂₀ to [-1, 1] in every reverse step.
    pub clip_x0: bool,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// EMA decay of the denoiser used for sampling.
    pub ema_decay: f64,
    /// Minibatch.
    pub batch: usize,
    /// Training steps.
    pub steps: usize,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
}

impl Default for DiffusionParams {
    fn default() -> Self {
        DiffusionParams {
            denoiser: DenoiserConfig::default(),
            timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            variance: Variance::Beta,
            clip_x0: true,
            lr: 1e-4,
            weight_decay: 0.0,
            ema_decay: 0.9999,
            batch: 4,
            steps: 20_000,
            checkpoint_every: 500,
        }
    }
}

impl DiffusionParams {
    /// Checks every value; `plugin` names the plugin in errors.
    pub fn validate(&self, plugin: &str) -> Result<()> {
        let field = |f: &str| format!("synthesizer.params.diffusion.{f} of {plugin}");
        self.denoiser.validate(&field("denoiser"))?;
        self.schedule().map_err(|e| {
            CoreError::invalid(field("beta_start/beta_end/timesteps"), e.to_string())
        })?;
        for (name, v) in [
            ("batch", self.batch),
            ("steps", self.steps),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(CoreError::invalid(field(name), "0; expected ≥ 1"));
            }
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            return Err(CoreError::invalid(
                field("lr"),
                format!("{}; expected in (0, 1]", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.ema_decay)
            || self.weight_decay.is_nan()
            || self.weight_decay < 0.0
        {
            return Err(CoreError::invalid(
                field("ema_decay/weight_decay"),
                format!(
                    "{} / {}; expected 0 ≤ decay < 1 and weight decay ≥ 0",
                    self.ema_decay, self.weight_decay
                ),
            ));
        }
        Ok(())
    }

    /// The schedule.
    pub fn schedule(&self) -> Result<Schedule> {
        Schedule::linear(self.timesteps, self.beta_start, self.beta_end)
    }
}

/// `x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε` for one timestep per sample.
pub fn q_sample<B: Backend>(
    s: &Schedule,
    x0: Tensor<B, 5>,
    t: &[usize],
    eps: Tensor<B, 5>,
) -> Tensor<B, 5> {
    let n = t.len();
    let device = x0.device();
    let (a, b): (Vec<f32>, Vec<f32>) = t
        .iter()
        .map(|&t| {
            let (a, b) = s.q_coefficients(t);
            (a as f32, b as f32)
        })
        .unzip();
    let a = Tensor::<B, 1>::from_floats(a.as_slice(), &device).reshape([n, 1, 1, 1, 1]);
    let b = Tensor::<B, 1>::from_floats(b.as_slice(), &device).reshape([n, 1, 1, 1, 1]);
    x0 * a + eps * b
}

/// `x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t`, clipped to [-1, 1] when `clip`.
pub fn predict_x0<B: Backend>(
    s: &Schedule,
    x_t: Tensor<B, 5>,
    t: usize,
    eps: Tensor<B, 5>,
    clip: bool,
) -> Tensor<B, 5> {
    let (a, b) = s.q_coefficients(t);
    let x0 = (x_t - eps * b) / a;
    if clip {
        x0.clamp(-1.0, 1.0)
    } else {
        x0
    }
}

/// How a reverse step draws: its variance, and whether `x̂_0` is clipped to [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReverseOptions {
    /// `β_t` or the posterior variance.
    pub variance: Variance,
    /// Clip the predicted `x̂_0` to [-1, 1].
    pub clip: bool,
}

/// One reverse step from `t` to `s < t` given the predicted noise: the posterior mean at
/// `x̂_0`, plus `σ z` unless `s = 0`.
pub fn reverse_step<B: Backend>(
    sched: &Schedule,
    x_t: Tensor<B, 5>,
    (t, s): (usize, usize),
    eps: Tensor<B, 5>,
    options: ReverseOptions,
    rng: &mut ChaCha8Rng,
) -> Tensor<B, 5> {
    let ReverseOptions { variance, clip } = options;
    let post = sched.posterior(t, s);
    let x0 = predict_x0(sched, x_t.clone(), t, eps, clip);
    let mean = x0 * post.coef_x0 + x_t * post.coef_xt;
    if s == 0 {
        return mean;
    }
    let var = match variance {
        Variance::Beta => post.beta,
        Variance::Posterior => post.variance,
    };
    let z = normal_tensor::<B, 5>(mean.dims(), rng, &mean.device());
    mean + z * var.sqrt()
}

/// Ancestral sampling from `x` (pure noise at `steps[0]`, or a noised real volume for partial
/// re-synthesis) through the decreasing timesteps `steps` down to 0, with `eps(x_t, t)` the noise
/// prediction.
pub fn sample_loop<B: Backend>(
    sched: &Schedule,
    mut x: Tensor<B, 5>,
    steps: &[usize],
    eps: &dyn Fn(Tensor<B, 5>, usize) -> Tensor<B, 5>,
    options: ReverseOptions,
    rng: &mut ChaCha8Rng,
) -> Tensor<B, 5> {
    for (i, &t) in steps.iter().enumerate() {
        let s = steps.get(i + 1).copied().unwrap_or(0);
        let e = eps(x.clone(), t);
        x = reverse_step(sched, x, (t, s), e, options, rng);
    }
    x
}
