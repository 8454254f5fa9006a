//! Comparator `diffusion-wu`: "Super-resolution of brain MRI images based on denoising diffusion
//! probabilistic model" (Wu et al., BSPC 2023) as a trainable synthesizer of Tables 1–2. The paper
//! has no public text or code, so this is a reconstruction (SR3: Saharia et al. 2022), every choice
//! a parameter and written in README.md.
//!
//! Fit: `L_simple = ‖ε − ε_θ(x_t ⊕ up(down(x_0)), t)‖²` on the training volumes, where `down` is ×f
//! average pooling and `up` ×f trilinear up-sampling. Sampling: for real training volume `j`, the
//! condition `up(down(x_j))` and ancestral sampling from noise over `sample_steps` strided steps
//! of the EMA denoiser: a super-resolved, stochastic version of a real case (anatomy and tumour
//! position kept; labels from the EMA teacher as §4.1 says).

use std::path::Path;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_data::{CoreError, Result};
use dsma_kernels::KernelBackend;
use dsma_plugin::registry::Plugin;
use dsma_plugin::{ParamDoc, PluginParams};
use dsma_train::diffusion::train::{load_ema, sample_with, DenoiserState};
use dsma_train::diffusion::DiffusionParams;
use dsma_train::generative::fit_loop::loss_value;
use dsma_train::generative::fit_loop::{
    fit_to_end, real_batch, require_positive, sample_in_batches, FitSteps,
};
use dsma_train::generative::{
    FitCheckpoint, GenerativeMethod, GeneratorFit, ProtocolParams, RealVolumes,
};
use dsma_train::layers::{avg_pool2, normal_tensor, upsample2_trilinear};
use ndarray::Array3;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Parameters; defaults are comparators.md §3.3's 3-D variant (32³ HR, ×2, C = 16, mults 1-2-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionWuParams {
    /// High-resolution box `[z, y, x]` the model works in.
    pub size: [usize; 3],
    /// Down-sampling factor of the condition (a power of 2).
    pub factor: usize,
    /// Reverse steps when sampling (strided over T; T = every step).
    pub sample_steps: usize,
    /// Schedule, denoiser, optimizer, EMA, budget.
    pub diffusion: DiffusionParams,
    /// The comparator protocol (modality, noise, layout).
    pub protocol: ProtocolParams,
}

impl Default for DiffusionWuParams {
    fn default() -> Self {
        DiffusionWuParams {
            size: [32, 32, 32],
            factor: 2,
            sample_steps: 100,
            diffusion: DiffusionParams::default(),
            protocol: ProtocolParams::default(),
        }
    }
}

impl PluginParams for DiffusionWuParams {
    fn docs() -> Vec<ParamDoc> {
        let mut d = vec![
            ParamDoc {
                name: "size",
                doc: "high-resolution box [z, y, x] ([32, 32, 32])",
            },
            ParamDoc {
                name: "factor",
                doc: "down-sampling factor of the condition (2)",
            },
            ParamDoc {
                name: "sample_steps",
                doc: "reverse steps when sampling, strided over T (100)",
            },
            ParamDoc {
                name: "diffusion.denoiser",
                doc: "U-Net: channels (16), mults ([1, 2, 4]), groups (8), attention (false)",
            },
            ParamDoc {
                name: "diffusion.timesteps",
                doc: "training timesteps T (1000)",
            },
            ParamDoc {
                name: "diffusion.beta_start / beta_end",
                doc: "linear β schedule (1e-4 → 0.02)",
            },
            ParamDoc {
                name: "diffusion.variance",
                doc: "beta (σ² = β, default) or posterior",
            },
            ParamDoc {
                name: "diffusion.clip_x0",
                doc: "clip x̂₀ to [-1, 1] (true)",
            },
            ParamDoc {
                name: "diffusion.lr / weight_decay",
                doc: "AdamW (1e-4, 0)",
            },
            ParamDoc {
                name: "diffusion.ema_decay",
                doc: "EMA of the sampling denoiser (0.9999)",
            },
            ParamDoc {
                name: "diffusion.batch / steps / checkpoint_every",
                doc: "4 / 20000 / 500",
            },
        ];
        d.extend(ProtocolParams::docs());
        d
    }
}

/// The Wu et al. comparator.
pub struct DiffusionWu {
    p: DiffusionWuParams,
}

impl Plugin for DiffusionWu {
    const NAME: &'static str = "diffusion-wu";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "DDPM super-resolution (Wu et al. 2023, reconstructed as SR3): generative comparator of Tables 1–2";
    type Params = DiffusionWuParams;
    fn new(p: DiffusionWuParams) -> Result<Self> {
        p.diffusion.validate(Self::NAME)?;
        let field = |f: &str| format!("synthesizer.params.{f} of diffusion-wu");
        if !p.factor.is_power_of_two() || p.factor < 2 {
            return Err(CoreError::invalid(
                field("factor"),
                format!("{}; expected 2, 4, 8, …", p.factor),
            ));
        }
        let div = p.diffusion.denoiser.size_divisor().max(p.factor);
        if p.size.iter().any(|s| *s == 0 || s % div != 0) {
            return Err(CoreError::invalid(
                field("size"),
                format!(
                    "{:?}; every size must be a positive multiple of {div}",
                    p.size
                ),
            ));
        }
        require_positive(Self::NAME, &[("sample_steps", p.sample_steps)])?;
        Ok(DiffusionWu { p })
    }
}

/// `up(down(x))`: ×`factor` average pooling, then ×`factor` trilinear up-sampling.
pub fn degrade<B: Backend>(x: Tensor<B, 5>, factor: usize) -> Tensor<B, 5> {
    let levels = factor.trailing_zeros();
    let down = (0..levels).fold(x, |x, _| avg_pool2(x));
    (0..levels).fold(down, |x, _| upsample2_trilinear(x))
}

struct Fit<'a, B: KernelBackend> {
    method: &'a DiffusionWu,
    data: &'a [Array3<f32>],
    dir: &'a Path,
    state: DenoiserState<B>,
}

impl<B: KernelBackend> FitSteps for Fit<'_, B> {
    fn step(&mut self, _k: usize, rng: &mut ChaCha8Rng) -> Result<f64> {
        let p = &self.method.p;
        let x0 = real_batch::<Autodiff<B>>(self.data, p.diffusion.batch, rng, &self.state.device);
        let cond = degrade(x0.clone(), p.factor);
        let terms = self.state.eps_loss(x0, Some(cond), 1, rng)?;
        let value = loss_value(&terms.loss, DiffusionWu::NAME)?;
        self.state.step(terms.loss)?;
        Ok(value)
    }
    fn save(&mut self, done: usize) -> Result<()> {
        let mut ck = FitCheckpoint::new(done, serde_json::Value::Null);
        self.state.put(&mut ck)?;
        ck.save(self.dir)
    }
    fn restore(&mut self, ck: &FitCheckpoint) -> Result<()> {
        self.state.restore(ck)
    }
}

impl GenerativeMethod for DiffusionWu {
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
        let d = &self.p.diffusion;
        let mut fit = Fit::<B> {
            method: self,
            data,
            dir: ctx.dir,
            state: DenoiserState::new(d, 2, ctx.seed, device)?,
        };
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
        let model = load_ema::<B>(d, 2, dir, Self::NAME, device)?;
        let schedule = d.schedule()?;
        let steps = schedule.strided(self.p.sample_steps);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [z, y, x] = self.p.size;
        sample_in_batches(n, d.batch, |b, first| {
            let cond = degrade(
                real.batch::<B>(first, b, Self::NAME, device)?,
                self.p.factor,
            );
            let start = normal_tensor::<B, 5>([b, 1, z, y, x], &mut rng, device);
            Ok(sample_with(
                d,
                &schedule,
                &model,
                start,
                Some(cond),
                &steps,
                &mut rng,
            ))
        })
    }
}

dsma_train::register_comparator!(DiffusionWu);

/// Referenced by the `dsma` binary so the linker keeps this crate.
pub fn link() {}
