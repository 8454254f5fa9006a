//! Training and sampling state of a denoiser, shared by both diffusion plugins: the network, its
//! EMA, AdamW, the ε-prediction loss (`L_simple`), checkpoints, and sampling from the EMA.

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::module_state::{ema_update, require_grad};
use crate::diffusion::process::{q_sample, sample_loop, DiffusionParams, ReverseOptions};
use crate::diffusion::schedule::Schedule;
use crate::diffusion::unet::Denoiser;

use crate::generative::{FitCheckpoint, OptimOn};
use crate::layers::normal_tensor;
use dsma_data::error::{CoreError, Result};
use dsma_data::seed::derive_seed;
use dsma_kernels::KernelBackend;

const SALT_INIT: u64 = 0x4446_494e; // "DFIN"

/// The denoiser being trained (autodiff), its EMA and optimizer.
pub struct DenoiserState<B: KernelBackend> {
    /// The training network (`None` only inside a step).
    pub model: Option<Denoiser<Autodiff<B>>>,
    /// The EMA copy used for sampling.
    pub ema: Denoiser<B>,
    /// AdamW.
    pub optim: OptimOn<AdamW, Denoiser<Autodiff<B>>, B>,
    /// The noise schedule.
    pub schedule: Schedule,
    /// Settings.
    pub params: DiffusionParams,
    /// Input channels (1, or 2 with a conditioning volume).
    pub in_channels: usize,
    /// Device.
    pub device: B::Device,
}

/// What one ε-loss evaluation produced, for losses built on top of it (ADDM's adversarial term).
pub struct EpsTerms<B: KernelBackend> {
    /// `mean((ε − ε̂)²)`.
    pub loss: Tensor<Autodiff<B>, 1>,
    /// `x_t`.
    pub x_t: Tensor<Autodiff<B>, 5>,
    /// `ε̂`.
    pub eps_hat: Tensor<Autodiff<B>, 5>,
    /// The timestep of each sample.
    pub t: Vec<usize>,
}

fn missing() -> CoreError {
    CoreError::invalid(
        "denoiser",
        "network missing between steps (an earlier step failed)",
    )
}

impl<B: KernelBackend> DenoiserState<B> {
    /// A fresh state seeded by `seed`.
    pub fn new(
        params: &DiffusionParams,
        in_channels: usize,
        seed: u64,
        device: &B::Device,
    ) -> Result<Self> {
        let model = Self::network::<Autodiff<B>>(params, in_channels, seed, device);
        Ok(DenoiserState {
            ema: model.valid(),
            model: Some(model),
            optim: AdamWConfig::new()
                .with_weight_decay(params.weight_decay as f32)
                .with_epsilon(1e-8)
                .init(),
            schedule: params.schedule()?,
            params: params.clone(),
            in_channels,
            device: device.clone(),
        })
    }

    /// The network with weights drawn from `seed`.
    pub fn network<C: KernelBackend>(
        params: &DiffusionParams,
        in_channels: usize,
        seed: u64,
        device: &C::Device,
    ) -> Denoiser<C> {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SALT_INIT));
        Denoiser::new(&params.denoiser, in_channels, &mut rng, device)
    }

    /// Restores network, EMA and optimizer from `ck`.
    pub fn restore(&mut self, ck: &FitCheckpoint) -> Result<()> {
        let model = require_grad(ck.module("denoiser", self.model.take().ok_or_else(missing)?)?);
        self.ema = ck.module("denoiser_ema", self.ema.clone())?;
        self.optim = ck.optimizer("denoiser_optim", self.optim.clone(), &model, &self.device)?;
        self.model = Some(model);
        Ok(())
    }

    /// Adds network, EMA and optimizer to `ck`.
    pub fn put(&self, ck: &mut FitCheckpoint) -> Result<()> {
        let model = self.model.as_ref().ok_or_else(missing)?;
        ck.put_module("denoiser", model)?;
        ck.put_module("denoiser_ema", &self.ema)?;
        ck.put_optimizer("denoiser_optim", &self.optim, model)
    }

    /// The ε-prediction loss of clean volumes `x0` (`[N, 1, …]`) with conditioning `cond`
    /// (concatenated to `x_t`), `t ~ U{min_t … T}` and `ε ~ N(0, I)` from `rng`.
    pub fn eps_loss(
        &self,
        x0: Tensor<Autodiff<B>, 5>,
        cond: Option<Tensor<Autodiff<B>, 5>>,
        min_t: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<EpsTerms<B>> {
        let model = self.model.as_ref().ok_or_else(missing)?;
        let n = x0.dims()[0];
        let t: Vec<usize> = (0..n)
            .map(|_| rng.random_range(min_t.max(1)..=self.schedule.steps()))
            .collect();
        let eps = normal_tensor::<Autodiff<B>, 5>(x0.dims(), rng, &self.device);
        let x_t = q_sample(&self.schedule, x0, &t, eps.clone());
        let input = match cond {
            Some(c) => Tensor::cat(vec![x_t.clone(), c], 1),
            None => x_t.clone(),
        };
        let eps_hat = model.forward(input, &t);
        let loss = (eps_hat.clone() - eps).powi_scalar(2).mean();
        Ok(EpsTerms {
            loss,
            x_t,
            eps_hat,
            t,
        })
    }

    /// One AdamW step on `loss` and the EMA update.
    pub fn step(&mut self, loss: Tensor<Autodiff<B>, 1>) -> Result<()> {
        let model = self.model.take().ok_or_else(missing)?;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optim.step(self.params.lr, model, grads);
        self.ema = ema_update(self.ema.clone(), &model.valid(), self.params.ema_decay);
        self.model = Some(model);
        Ok(())
    }
}

/// The EMA denoiser of the finished fit in `dir` (`steps` = the fit's length).
pub fn load_ema<B: KernelBackend>(
    params: &DiffusionParams,
    in_channels: usize,
    dir: &Path,
    plugin: &str,
    device: &B::Device,
) -> Result<Denoiser<B>> {
    let ck = FitCheckpoint::finished(dir, params.steps, plugin)?;
    ck.module(
        "denoiser_ema",
        DenoiserState::<B>::network::<B>(params, in_channels, 0, device),
    )
}

/// Ancestral sampling with `model` from `start` (`[N, 1, …]`) through `steps`, the conditioning
/// `cond` concatenated at every step.
pub fn sample_with<B: KernelBackend>(
    params: &DiffusionParams,
    schedule: &Schedule,
    model: &Denoiser<B>,
    start: Tensor<B, 5>,
    cond: Option<Tensor<B, 5>>,
    steps: &[usize],
    rng: &mut ChaCha8Rng,
) -> Tensor<B, 5> {
    let n = start.dims()[0];
    let eps = |x: Tensor<B, 5>, t: usize| {
        let input = match &cond {
            Some(c) => Tensor::cat(vec![x, c.clone()], 1),
            None => x,
        };
        model.forward(input, &vec![t; n])
    };
    sample_loop(
        schedule,
        start,
        steps,
        &eps,
        ReverseOptions {
            variance: params.variance,
            clip: params.clip_x0,
        },
        rng,
    )
}
