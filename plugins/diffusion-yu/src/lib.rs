//! Comparator `diffusion-yu`: ADDM, "Denoising diffusion model with adversarial learning for
//! unsupervised anomaly detection on brain MRI images" (Yu et al., PRL 2024; arXiv 2312.04382) as
//! a trainable synthesizer of Tables 1–2. No public code exists; this is a reconstruction from the
//! abstract (comparators.md §4.2), every choice a parameter and written in README.md.
//!
//! Fit, per step: `L_diff = ‖ε − ε_θ(x_t, t)‖²`; the model-denoised sample
//! `x̂_{t−1} = μ_θ(x_t, t) + σ_t z` (one reverse step) is the "fake", a fresh draw
//! `x_{t−1} ~ q(x_{t−1} | x_0)` the "real" of a time-conditioned, spectrally normalised
//! discriminator `D(x, t)`; `L_D = softplus(−D(x_{t−1}, t)) + softplus(D(x̂_{t−1}, t))`, and the
//! denoiser minimises `L_diff + λ_adv · softplus(−D(x̂_{t−1}, t))`. Sampling: ancestral from noise
//! over `sample_steps` strided steps (half of `diffusion-wu`'s, our reading of "50 % fewer sampling
//! steps"), or partial re-synthesis of real cases (SDEdit-style, from noise level `partial_t`).

pub mod discriminator;

use std::path::Path;

use burn::backend::Autodiff;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::softplus;
use burn::tensor::Tensor;
use dsma_data::seed::derive_seed;
use dsma_data::{CoreError, Result};
use dsma_kernels::KernelBackend;
use dsma_plugin::registry::Plugin;
use dsma_plugin::{ParamDoc, PluginParams};
use dsma_train::checkpoint::module_state::require_grad;
use dsma_train::diffusion::train::{load_ema, sample_with, DenoiserState, EpsTerms};
use dsma_train::diffusion::{q_sample, DiffusionParams, Schedule, Variance};
use dsma_train::generative::fit_loop::loss_value;
use dsma_train::generative::fit_loop::{fit_to_end, real_batch, sample_in_batches, FitSteps};
use dsma_train::generative::{
    AdamOn, FitCheckpoint, GenerativeMethod, GeneratorFit, ProtocolParams, RealVolumes,
};
use dsma_train::layers::normal_tensor;
use ndarray::Array3;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use discriminator::TimeDiscriminator;

/// What the discriminator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdversarialTarget {
    /// `x̂_{t−1}` (one reverse step) vs `x_{t−1} ~ q(x_{t−1} | x_0)` (default).
    #[default]
    PreviousStep,
    /// `x̂_0` (the denoiser's clean estimate) vs `x_0`.
    CleanImage,
}

/// How samples are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generation {
    /// Ancestral sampling from pure noise (default).
    #[default]
    FromNoise,
    /// Noise a real training volume to `partial_t`, then denoise (AnoDDPM / SDEdit).
    Partial,
}

/// The discriminator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscriminatorParams {
    /// First width C (then 2C, 4C, 8C).
    pub channels: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Adam β₁, β₂.
    pub betas: [f64; 2],
    /// Power iterations per spectral norm.
    pub sn_iterations: usize,
}

impl Default for DiscriminatorParams {
    fn default() -> Self {
        DiscriminatorParams {
            channels: 16,
            lr: 1e-4,
            betas: [0.5, 0.999],
            sn_iterations: 5,
        }
    }
}

/// Parameters; defaults are comparators.md §4.3's 3-D variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionYuParams {
    /// Box `[z, y, x]` the model works in.
    pub size: [usize; 3],
    /// Reverse steps when sampling from noise (strided over T).
    pub sample_steps: usize,
    /// Weight λ_adv of the adversarial term.
    pub lambda_adv: f64,
    /// What the discriminator compares.
    pub adversarial_target: AdversarialTarget,
    /// The discriminator.
    pub discriminator: DiscriminatorParams,
    /// From noise or partial re-synthesis.
    pub generation: Generation,
    /// Noise level of partial re-synthesis (timestep).
    pub partial_t: usize,
    /// Schedule, denoiser, optimizer, EMA, budget.
    pub diffusion: DiffusionParams,
    /// The comparator protocol (modality, noise, layout).
    pub protocol: ProtocolParams,
}

impl Default for DiffusionYuParams {
    fn default() -> Self {
        DiffusionYuParams {
            size: [32, 32, 32],
            sample_steps: 50,
            lambda_adv: 0.05,
            adversarial_target: AdversarialTarget::PreviousStep,
            discriminator: DiscriminatorParams::default(),
            generation: Generation::FromNoise,
            partial_t: 250,
            diffusion: DiffusionParams::default(),
            protocol: ProtocolParams::default(),
        }
    }
}

impl PluginParams for DiffusionYuParams {
    fn docs() -> Vec<ParamDoc> {
        let mut d = vec![
            ParamDoc {
                name: "size",
                doc: "box [z, y, x] ([32, 32, 32])",
            },
            ParamDoc {
                name: "sample_steps",
                doc: "reverse steps from noise, strided over T (50: half of diffusion-wu's 100)",
            },
            ParamDoc {
                name: "lambda_adv",
                doc: "weight of the adversarial term (0.05)",
            },
            ParamDoc {
                name: "adversarial_target",
                doc: "previous_step (x̂_{t−1} vs x_{t−1}, default) or clean_image (x̂₀ vs x₀)",
            },
            ParamDoc {
                name: "discriminator",
                doc: "channels (16), lr (1e-4), betas ([0.5, 0.999]), sn_iterations (5)",
            },
            ParamDoc {
                name: "generation",
                doc: "from_noise (default) or partial (re-synthesis of real cases)",
            },
            ParamDoc {
                name: "partial_t",
                doc: "noise level of partial re-synthesis (250 of 1000)",
            },
            ParamDoc {
                name: "diffusion",
                doc: "denoiser, schedule, AdamW, EMA, batch, steps (as diffusion-wu)",
            },
        ];
        d.extend(ProtocolParams::docs());
        d
    }
}

/// The Yu et al. (ADDM) comparator.
pub struct DiffusionYu {
    p: DiffusionYuParams,
}

impl Plugin for DiffusionYu {
    const NAME: &'static str = "diffusion-yu";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "diffusion with adversarial learning (Yu et al. 2024, ADDM, reconstructed): generative comparator of Tables 1–2";
    type Params = DiffusionYuParams;
    fn new(p: DiffusionYuParams) -> Result<Self> {
        p.diffusion.validate(Self::NAME)?;
        let field = |f: &str| format!("synthesizer.params.{f} of diffusion-yu");
        let div = p.diffusion.denoiser.size_divisor().max(16);
        if p.size.iter().any(|s| *s == 0 || s % div != 0) {
            return Err(CoreError::invalid(field("size"), format!("{:?}; every size must be a positive multiple of {div} (the discriminator halves four times)", p.size)));
        }
        if p.sample_steps == 0 || p.partial_t == 0 || p.partial_t > p.diffusion.timesteps {
            return Err(CoreError::invalid(
                field("sample_steps/partial_t"),
                format!(
                    "{} / {}; expected ≥ 1 and partial_t ≤ T",
                    p.sample_steps, p.partial_t
                ),
            ));
        }
        if !(p.lambda_adv >= 0.0 && p.lambda_adv.is_finite()) {
            return Err(CoreError::invalid(
                field("lambda_adv"),
                format!("{}; expected ≥ 0", p.lambda_adv),
            ));
        }
        let dp = &p.discriminator;
        if dp.channels == 0
            || dp.sn_iterations == 0
            || !(dp.lr > 0.0 && dp.lr <= 1.0)
            || dp.betas.iter().any(|b| !(0.0..1.0).contains(b))
        {
            return Err(CoreError::invalid(
                field("discriminator"),
                format!(
                    "{dp:?}; expected channels, sn_iterations ≥ 1, 0 < lr ≤ 1, betas in [0, 1)"
                ),
            ));
        }
        Ok(DiffusionYu { p })
    }
}

const SALT_D: u64 = 0x4144_444d; // "ADDM"

impl DiffusionYu {
    /// The parameters.
    pub fn params(&self) -> &DiffusionYuParams {
        &self.p
    }
    /// The discriminator, weights from `seed`.
    pub fn discriminator<B: KernelBackend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> TimeDiscriminator<B> {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SALT_D));
        TimeDiscriminator::new(
            self.p.discriminator.channels,
            self.p.discriminator.sn_iterations,
            &mut rng,
            device,
        )
    }
}

/// Per-sample `[N, 1, 1, 1, 1]` coefficients.
fn per_sample<B: burn::tensor::backend::Backend>(v: &[f64], device: &B::Device) -> Tensor<B, 5> {
    let f: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    Tensor::<B, 1>::from_floats(f.as_slice(), device).reshape([v.len(), 1, 1, 1, 1])
}

/// The fake and real samples the discriminator compares, from the ε-loss terms.
fn adversarial_pair<B: KernelBackend>(
    p: &DiffusionYuParams,
    s: &Schedule,
    x0: Tensor<Autodiff<B>, 5>,
    terms: &EpsTerms<B>,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> (Tensor<Autodiff<B>, 5>, Tensor<Autodiff<B>, 5>) {
    let clip = p.diffusion.clip_x0;
    let (a, b): (Vec<f64>, Vec<f64>) = terms.t.iter().map(|&t| s.q_coefficients(t)).unzip();
    let x0_hat = (terms.x_t.clone() - terms.eps_hat.clone() * per_sample(&b, device))
        / per_sample(&a, device);
    let x0_hat = if clip {
        x0_hat.clamp(-1.0, 1.0)
    } else {
        x0_hat
    };
    if p.adversarial_target == AdversarialTarget::CleanImage {
        return (x0_hat, x0);
    }
    let posts: Vec<_> = terms.t.iter().map(|&t| s.posterior(t, t - 1)).collect();
    let sigma: Vec<f64> = terms
        .t
        .iter()
        .zip(&posts)
        .map(|(&t, q)| {
            if t == 1 {
                0.0
            } else {
                match p.diffusion.variance {
                    Variance::Beta => q.beta,
                    Variance::Posterior => q.variance,
                }
                .sqrt()
            }
        })
        .collect();
    let c0: Vec<f64> = posts.iter().map(|q| q.coef_x0).collect();
    let ct: Vec<f64> = posts.iter().map(|q| q.coef_xt).collect();
    let z = normal_tensor::<Autodiff<B>, 5>(x0.dims(), rng, device);
    let fake = x0_hat * per_sample(&c0, device)
        + terms.x_t.clone() * per_sample(&ct, device)
        + z * per_sample(&sigma, device);
    let prev: Vec<usize> = terms.t.iter().map(|t| t - 1).collect();
    let eps = normal_tensor::<Autodiff<B>, 5>(x0.dims(), rng, device);
    let real = q_sample(s, x0, &prev, eps);
    (fake, real)
}

struct Fit<'a, B: KernelBackend> {
    method: &'a DiffusionYu,
    data: &'a [Array3<f32>],
    dir: &'a Path,
    state: DenoiserState<B>,
    d: Option<TimeDiscriminator<Autodiff<B>>>,
    opt_d: AdamOn<TimeDiscriminator<Autodiff<B>>, B>,
}

fn missing() -> CoreError {
    CoreError::invalid(
        DiffusionYu::NAME,
        "discriminator missing between steps (an earlier step failed)",
    )
}

impl<B: KernelBackend> FitSteps for Fit<'_, B> {
    fn step(&mut self, _k: usize, rng: &mut ChaCha8Rng) -> Result<f64> {
        let p = &self.method.p;
        let device = self.state.device.clone();
        let x0 = real_batch::<Autodiff<B>>(self.data, p.diffusion.batch, rng, &device);
        let terms = self.state.eps_loss(x0.clone(), None, 1, rng)?;
        let (fake, real) = adversarial_pair(p, &self.state.schedule, x0, &terms, rng, &device);
        // Discriminator step.
        let d = self.d.take().ok_or_else(missing)?;
        let loss_d = softplus(-d.forward(real.detach(), &terms.t), 1.0).mean()
            + softplus(d.forward(fake.clone().detach(), &terms.t), 1.0).mean();
        let ld = loss_value(&loss_d, DiffusionYu::NAME)?;
        let grads = GradientsParams::from_grads(loss_d.backward(), &d);
        let d = self.opt_d.step(p.discriminator.lr, d, grads);
        // Denoiser step: L_diff + λ_adv · softplus(−D(fake, t)).
        let adv = softplus(-d.forward(fake, &terms.t), 1.0).mean();
        let loss = terms.loss + adv * p.lambda_adv;
        let lg = loss_value(&loss, DiffusionYu::NAME)?;
        self.d = Some(d);
        self.state.step(loss)?;
        Ok(lg + ld)
    }
    fn save(&mut self, done: usize) -> Result<()> {
        let mut ck = FitCheckpoint::new(done, serde_json::Value::Null);
        self.state.put(&mut ck)?;
        let d = self.d.as_ref().ok_or_else(missing)?;
        ck.put_module("d", d)?;
        ck.put_optimizer("d_optim", &self.opt_d, d)?;
        ck.save(self.dir)
    }
    fn restore(&mut self, ck: &FitCheckpoint) -> Result<()> {
        self.state.restore(ck)?;
        let d = require_grad(ck.module("d", self.d.take().ok_or_else(missing)?)?);
        self.opt_d = ck.optimizer("d_optim", self.opt_d.clone(), &d, &self.state.device)?;
        self.d = Some(d);
        Ok(())
    }
}

impl GenerativeMethod for DiffusionYu {
    fn protocol(&self) -> &ProtocolParams {
        &self.p.protocol
    }

    fn output_shape(&self) -> [usize; 3] {
        self.p.size
    }

    fn steps(&self) -> usize {
        self.p.diffusion.steps
    }

    fn fit<B: KernelBackend>(
        &self,
        data: &[Array3<f32>],
        ctx: &mut GeneratorFit<'_>,
        device: &B::Device,
    ) -> Result<()> {
        let dp = &self.p.discriminator;
        let mut fit = Fit::<B> {
            method: self,
            data,
            dir: ctx.dir,
            state: DenoiserState::new(&self.p.diffusion, 1, ctx.seed, device)?,
            d: Some(self.discriminator::<Autodiff<B>>(ctx.seed, device)),
            opt_d: AdamConfig::new()
                .with_beta_1(dp.betas[0] as f32)
                .with_beta_2(dp.betas[1] as f32)
                .with_epsilon(1e-8)
                .init(),
        };
        let d = &self.p.diffusion;
        fit_to_end(ctx, d.steps, d.checkpoint_every, !data.is_empty(), &mut fit)
    }

    fn sample<B: KernelBackend>(
        &self,
        dir: &Path,
        n: usize,
        seed: u64,
        real: &RealVolumes<'_>,
        device: &B::Device,
    ) -> Result<Vec<Array3<f32>>> {
        let d = &self.p.diffusion;
        let model = load_ema::<B>(d, 1, dir, Self::NAME, device)?;
        let schedule = d.schedule()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [z, y, x] = self.p.size;
        sample_in_batches(n, d.batch, |b, first| {
            let (start, steps) = match self.p.generation {
                Generation::FromNoise => (
                    normal_tensor::<B, 5>([b, 1, z, y, x], &mut rng, device),
                    schedule.strided(self.p.sample_steps),
                ),
                Generation::Partial => {
                    let x0 = real.batch::<B>(first, b, Self::NAME, device)?;
                    let eps = normal_tensor::<B, 5>([b, 1, z, y, x], &mut rng, device);
                    let t = self.p.partial_t;
                    let count = (self.p.sample_steps * t).div_ceil(d.timesteps).max(1);
                    (
                        q_sample(&schedule, x0, &vec![t; b], eps),
                        schedule.strided_from(t, count),
                    )
                }
            };
            Ok(sample_with(
                d, &schedule, &model, start, None, &steps, &mut rng,
            ))
        })
    }
}

dsma_train::register_comparator!(DiffusionYu);

/// Referenced by the `dsma` binary so the linker keeps this crate.
pub fn link() {}
