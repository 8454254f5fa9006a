//! Comparator `stylegan3d`: 3D-StyleGAN (Hong et al., DGM4MICCAI 2021; code sh4174/3DStyleGAN, a 3-D
//! port of NVlabs' StyleGAN2) as a trainable synthesizer of Tables 1–2. See README.md for every
//! departure from the public code, with the file it departs from.
//!
//! Fit: non-saturating logistic GAN loss, R1 on real images (γ = 10) as a finite-difference
//! estimate (burn 0.21 has no double backward), Adam (lr 0.002, β = (0, 0.99), ε = 1e-8) for both
//! networks, generator EMA with half-life `ema_kimg`, style mixing, tracked `w_avg`. Sampling: the
//! EMA generator with truncation ψ (default 1: the full learned distribution).

pub mod networks;

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::softplus;
use burn::tensor::Tensor;
use dsma_data::seed::derive_seed;
use dsma_data::{CoreError, Result};
use dsma_kernels::KernelBackend;
use dsma_plugin::registry::Plugin;
use dsma_plugin::{ParamDoc, PluginParams};
use dsma_train::checkpoint::module_state::ema_update;
use dsma_train::generative::fit_loop::{
    fit_to_end, loss_value, real_batch, require_positive, require_range, sample_in_batches,
    FitSteps,
};
use dsma_train::generative::{
    AdamOn, FitCheckpoint, GenerativeMethod, GeneratorFit, ProtocolParams, RealVolumes,
};
use dsma_train::layers::normal_tensor;
use ndarray::Array3;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use networks::{Discriminator, Generator, Mapping, Synthesis};

/// How R1 (`γ/2 · E‖∇ₓD(x)‖²` on real images) is computed without double backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum R1Mode {
    /// `E_v[(D(x + εv) − D(x))²]/ε²` with `v ~ N(0, I)`: unbiased for `‖∇ₓD‖²` as ε → 0
    /// (`E[(g·v)²] = ‖g‖²`), differentiable with ordinary backward.
    FiniteDifference,
    /// No gradient penalty (StyleGAN2's `D_logistic`).
    Off,
}

/// Parameters; the defaults are the public code's 2 mm configuration (`run_training.py`,
/// `Gorig-Dres-3d-2mm-base567` with F = 96) at a fixed step budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StyleGan3dParams {
    /// Size of z.
    pub latent: usize,
    /// Size of w.
    pub dlatent: usize,
    /// Width of the mapping layers.
    pub mapping_width: usize,
    /// Mapping layers.
    pub mapping_layers: usize,
    /// Learning-rate multiplier of the mapping network.
    pub mapping_lr_mul: f64,
    /// Feature maps of every layer (F: `fmap_min = fmap_max`).
    pub fmaps: usize,
    /// Size of the learned constant `[z, y, x]`.
    pub base: [usize; 3],
    /// Doubling blocks (output = base · 2^blocks).
    pub blocks: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Training steps (each one D and one G update).
    pub steps: usize,
    /// Adam learning rate (G and D).
    pub lr: f64,
    /// Adam β₁, β₂.
    pub betas: [f64; 2],
    /// R1 weight γ.
    pub r1_gamma: f64,
    /// How R1 is computed.
    pub r1: R1Mode,
    /// Per-voxel σ of the finite-difference probe.
    pub r1_epsilon: f64,
    /// Generator EMA half-life in thousands of images (`G_smoothing_kimg`).
    pub ema_kimg: f64,
    /// Probability of style mixing.
    pub style_mixing: f64,
    /// Truncation ψ at sampling (1 = no truncation; 0 would give only the mean image).
    pub truncation_psi: f64,
    /// Decay of the tracked mean w.
    pub w_avg_beta: f64,
    /// Minibatch-stddev group size.
    pub mbstd_group: usize,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// The comparator protocol (modality, noise, layout).
    pub protocol: ProtocolParams,
}

impl Default for StyleGan3dParams {
    fn default() -> Self {
        StyleGan3dParams {
            latent: 96,
            dlatent: 96,
            mapping_width: 96,
            mapping_layers: 8,
            mapping_lr_mul: 0.01,
            fmaps: 96,
            base: [5, 6, 7],
            blocks: 4,
            batch: 4,
            steps: 20_000,
            lr: 0.002,
            betas: [0.0, 0.99],
            r1_gamma: 10.0,
            r1: R1Mode::FiniteDifference,
            r1_epsilon: 0.01,
            ema_kimg: 10.0,
            style_mixing: 0.9,
            truncation_psi: 1.0,
            w_avg_beta: 0.995,
            mbstd_group: 4,
            checkpoint_every: 500,
            protocol: ProtocolParams::default(),
        }
    }
}

impl PluginParams for StyleGan3dParams {
    fn docs() -> Vec<ParamDoc> {
        let mut d = vec![
            ParamDoc {
                name: "latent",
                doc: "size of z (96)",
            },
            ParamDoc {
                name: "dlatent",
                doc: "size of w (96)",
            },
            ParamDoc {
                name: "mapping_width",
                doc: "width of the mapping layers (96)",
            },
            ParamDoc {
                name: "mapping_layers",
                doc: "dense layers of the mapping network (8)",
            },
            ParamDoc {
                name: "mapping_lr_mul",
                doc: "learning-rate multiplier of the mapping network (0.01)",
            },
            ParamDoc {
                name: "fmaps",
                doc: "feature maps F of every layer (96; 16 in the smallest public config)",
            },
            ParamDoc {
                name: "base",
                doc: "size [z, y, x] of the learned constant ([5, 6, 7])",
            },
            ParamDoc {
                name: "blocks",
                doc: "×2 blocks; output = base · 2^blocks (4 → 80×96×112)",
            },
            ParamDoc {
                name: "batch",
                doc: "minibatch (4)",
            },
            ParamDoc {
                name: "steps",
                doc: "training steps, one D and one G update each (20000)",
            },
            ParamDoc {
                name: "lr",
                doc: "Adam learning rate (0.002)",
            },
            ParamDoc {
                name: "betas",
                doc: "Adam β₁, β₂ ([0, 0.99])",
            },
            ParamDoc {
                name: "r1_gamma",
                doc: "R1 weight γ (10)",
            },
            ParamDoc {
                name: "r1",
                doc: "finite_difference (default) or off",
            },
            ParamDoc {
                name: "r1_epsilon",
                doc: "per-voxel σ of the finite-difference probe (0.01)",
            },
            ParamDoc {
                name: "ema_kimg",
                doc: "generator EMA half-life in thousands of images (10)",
            },
            ParamDoc {
                name: "style_mixing",
                doc: "style-mixing probability (0.9)",
            },
            ParamDoc {
                name: "truncation_psi",
                doc: "truncation ψ at sampling (1 = none; > 0)",
            },
            ParamDoc {
                name: "w_avg_beta",
                doc: "decay of the tracked mean w (0.995)",
            },
            ParamDoc {
                name: "mbstd_group",
                doc: "minibatch-stddev group size (4)",
            },
            ParamDoc {
                name: "checkpoint_every",
                doc: "steps between checkpoints (500)",
            },
        ];
        d.extend(ProtocolParams::docs());
        d
    }
}

/// The 3D-StyleGAN comparator.
pub struct StyleGan3d {
    p: StyleGan3dParams,
}

impl Plugin for StyleGan3d {
    const NAME: &'static str = "stylegan3d";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "3D-StyleGAN (Hong et al. 2021): generative comparator of Tables 1–2";
    type Params = StyleGan3dParams;
    fn new(p: StyleGan3dParams) -> Result<Self> {
        let field = |f: &str| format!("synthesizer.params.{f} of stylegan3d");
        require_positive(
            Self::NAME,
            &[
                ("latent", p.latent),
                ("dlatent", p.dlatent),
                ("mapping_width", p.mapping_width),
                ("mapping_layers", p.mapping_layers),
                ("fmaps", p.fmaps),
                ("batch", p.batch),
                ("steps", p.steps),
                ("checkpoint_every", p.checkpoint_every),
            ],
        )?;
        if p.base.contains(&0) {
            return Err(CoreError::invalid(
                field("base"),
                format!("{:?}; expected sizes ≥ 1", p.base),
            ));
        }
        if p.blocks > 6 {
            return Err(CoreError::invalid(
                field("blocks"),
                format!("{}; expected ≤ 6", p.blocks),
            ));
        }
        if !(p.truncation_psi > 0.0 && p.truncation_psi <= 2.0) {
            return Err(CoreError::invalid(
                field("truncation_psi"),
                format!(
                    "{}; expected 0 < ψ ≤ 2 (ψ = 0 collapses every sample to the mean image)",
                    p.truncation_psi
                ),
            ));
        }
        require_range(
            Self::NAME,
            &[
                ("lr", p.lr),
                ("mapping_lr_mul", p.mapping_lr_mul),
                ("r1_epsilon", p.r1_epsilon),
            ],
            0.0,
            1.0,
            true,
        )?;
        require_range(Self::NAME, &[("ema_kimg", p.ema_kimg)], 0.0, f64::MAX, true)?;
        if !(0.0..=1.0).contains(&p.style_mixing) {
            return Err(CoreError::invalid(
                "synthesizer.params.style_mixing of stylegan3d",
                format!("{}; expected a probability in [0, 1]", p.style_mixing),
            ));
        }
        require_range(
            Self::NAME,
            &[
                ("w_avg_beta", p.w_avg_beta),
                ("betas[0]", p.betas[0]),
                ("betas[1]", p.betas[1]),
            ],
            0.0,
            1.0,
            false,
        )?;
        if !(p.r1_gamma >= 0.0 && p.r1_gamma.is_finite()) {
            return Err(CoreError::invalid(
                field("r1_gamma"),
                format!("{}; expected ≥ 0", p.r1_gamma),
            ));
        }
        Ok(StyleGan3d { p })
    }
}

const SALT_INIT: u64 = 0x5347_494e; // "SGIN"

impl StyleGan3d {
    /// The parameters.
    pub fn params(&self) -> &StyleGan3dParams {
        &self.p
    }

    /// A generator with weights drawn from `seed`.
    pub fn generator<B: KernelBackend>(&self, seed: u64, device: &B::Device) -> Generator<B> {
        let p = &self.p;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SALT_INIT));
        Generator {
            mapping: Mapping::new(
                p.latent,
                p.mapping_width,
                p.dlatent,
                p.mapping_layers,
                p.mapping_lr_mul,
                &mut rng,
                device,
            ),
            synthesis: Synthesis::new(p.fmaps, p.base, p.blocks, p.dlatent, &mut rng, device),
        }
    }

    /// A discriminator with weights drawn from `seed`.
    pub fn discriminator<B: KernelBackend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> Discriminator<B> {
        let p = &self.p;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SALT_INIT + 1));
        Discriminator::new(p.fmaps, p.base, p.blocks, p.mbstd_group, &mut rng, device)
    }

    /// `n` volumes `[n, 1, D, H, W]` and the w of the first style, from `g` with style mixing
    /// (probability `mixing`) and noise drawn from `rng`; `w_map` post-processes w (truncation).
    fn generate<B: KernelBackend>(
        &self,
        g: &Generator<B>,
        n: usize,
        mixing: f64,
        w_map: &dyn Fn(Tensor<B, 2>) -> Tensor<B, 2>,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> (Tensor<B, 5>, Tensor<B, 2>) {
        let num_ws = g.synthesis.num_ws();
        let w1 = w_map(
            g.mapping
                .forward(normal_tensor([n, self.p.latent], rng, device)),
        );
        let mut ws = vec![w1.clone(); num_ws];
        if mixing > 0.0 && rng.random::<f64>() < mixing {
            let w2 = w_map(
                g.mapping
                    .forward(normal_tensor([n, self.p.latent], rng, device)),
            );
            let cutoff = rng.random_range(1..num_ws);
            for w in ws.iter_mut().skip(cutoff) {
                *w = w2.clone();
            }
        }
        let noise = (0..g.synthesis.layers.len())
            .map(|l| {
                let [d, h, w] = g.synthesis.layer_size(l);
                normal_tensor([n, 1, d, h, w], rng, device)
            })
            .collect();
        (g.synthesis.forward(&ws, noise), w1)
    }
}

/// The state of a 3D-StyleGAN fit on backend `B`.
struct Fit<'a, B: KernelBackend> {
    method: &'a StyleGan3d,
    data: &'a [Array3<f32>],
    dir: &'a Path,
    device: B::Device,
    g: Option<Generator<Autodiff<B>>>,
    d: Option<Discriminator<Autodiff<B>>>,
    g_ema: Generator<B>,
    opt_g: AdamOn<Generator<Autodiff<B>>, B>,
    opt_d: AdamOn<Discriminator<Autodiff<B>>, B>,
    w_avg: Vec<f32>,
}

/// Losses of one step.
#[derive(Debug, Clone, Copy)]
struct StepLosses {
    d: f64,
    g: f64,
}

impl<B: KernelBackend> Fit<'_, B> {
    fn d_step(&mut self, rng: &mut ChaCha8Rng) -> Result<f64> {
        let p = &self.method.p;
        let (g, d) = (
            self.g.as_ref().ok_or_else(missing)?,
            self.d.take().ok_or_else(missing)?,
        );
        let real = real_batch::<Autodiff<B>>(self.data, p.batch, rng, &self.device);
        let (fake, _) = self
            .method
            .generate(g, p.batch, p.style_mixing, &|w| w, rng, &self.device);
        let d_real = d.forward(real.clone());
        let d_fake = d.forward(fake.detach());
        let mut loss = softplus(d_fake, 1.0).mean() + softplus(-d_real.clone(), 1.0).mean();
        if p.r1 == R1Mode::FiniteDifference && p.r1_gamma > 0.0 {
            let eps = p.r1_epsilon;
            let v = normal_tensor::<Autodiff<B>, 5>(real.dims(), rng, &self.device);
            let d_probe = d.forward(real + v * eps);
            let r1 = (d_probe - d_real).powi_scalar(2).mean() / (eps * eps);
            loss = loss + r1 * (p.r1_gamma / 2.0);
        }
        let value = loss_value(&loss, StyleGan3d::NAME)?;
        let grads = GradientsParams::from_grads(loss.backward(), &d);
        self.d = Some(self.opt_d.step(p.lr, d, grads));
        Ok(value)
    }

    fn g_step(&mut self, rng: &mut ChaCha8Rng) -> Result<f64> {
        let p = &self.method.p;
        let (g, d) = (
            self.g.take().ok_or_else(missing)?,
            self.d.as_ref().ok_or_else(missing)?,
        );
        let (fake, w) =
            self.method
                .generate(&g, p.batch, p.style_mixing, &|w| w, rng, &self.device);
        let loss = softplus(-d.forward(fake), 1.0).mean();
        let value = loss_value(&loss, StyleGan3d::NAME)?;
        let grads = GradientsParams::from_grads(loss.backward(), &g);
        let g = self.opt_g.step(p.lr, g, grads);
        // w_avg ← lerp(mean w of the batch, w_avg, β) (G_main's dlatent_avg).
        let mean: Vec<f32> = w
            .detach()
            .mean_dim(0)
            .into_data()
            .to_vec()
            .map_err(|e| CoreError::runtime("w", format!("{e:?}")))?;
        for (a, m) in self.w_avg.iter_mut().zip(mean) {
            *a = m + (*a - m) * p.w_avg_beta as f32;
        }
        let beta = 0.5f64.powf(p.batch as f64 / (p.ema_kimg * 1000.0));
        self.g_ema = ema_update(self.g_ema.clone(), &g.valid(), beta);
        self.g = Some(g);
        Ok(value)
    }
}

fn missing() -> CoreError {
    CoreError::invalid(
        "stylegan3d",
        "network missing between steps (an earlier step failed)",
    )
}

impl<B: KernelBackend> FitSteps for Fit<'_, B> {
    fn step(&mut self, _k: usize, rng: &mut ChaCha8Rng) -> Result<f64> {
        let l = StepLosses {
            d: self.d_step(rng)?,
            g: self.g_step(rng)?,
        };
        Ok(l.d + l.g)
    }
    fn save(&mut self, done: usize) -> Result<()> {
        let mut ck = FitCheckpoint::new(done, serde_json::json!({ "w_avg": self.w_avg }));
        let (g, d) = (
            self.g.as_ref().ok_or_else(missing)?,
            self.d.as_ref().ok_or_else(missing)?,
        );
        ck.put_trained("g", g, &self.opt_g)?;
        ck.put_trained("d", d, &self.opt_d)?;
        ck.put_module("g_ema", &self.g_ema)?;
        ck.save(self.dir)
    }
    fn restore(&mut self, ck: &FitCheckpoint) -> Result<()> {
        let g = self.g.take().ok_or_else(missing)?;
        let d = self.d.take().ok_or_else(missing)?;
        let (g, opt_g) = ck.trained("g", g, self.opt_g.clone(), &self.device)?;
        let (d, opt_d) = ck.trained("d", d, self.opt_d.clone(), &self.device)?;
        (self.g, self.d, self.opt_g, self.opt_d) = (Some(g), Some(d), opt_g, opt_d);
        self.g_ema = ck.module("g_ema", self.g_ema.clone())?;
        self.w_avg = w_avg_of(ck, self.method.p.dlatent)?;
        Ok(())
    }
}

fn w_avg_of(ck: &FitCheckpoint, len: usize) -> Result<Vec<f32>> {
    let v: Vec<f32> = serde_json::from_value(ck.extra()["w_avg"].clone())
        .map_err(|e| CoreError::codec("stylegan3d checkpoint w_avg", e))?;
    if v.len() != len {
        return Err(CoreError::invalid(
            "stylegan3d checkpoint",
            "w_avg does not match dlatent; were the parameters changed?",
        ));
    }
    Ok(v)
}

impl GenerativeMethod for StyleGan3d {
    fn protocol(&self) -> &ProtocolParams {
        &self.p.protocol
    }

    fn steps(&self) -> usize {
        self.p.steps
    }

    fn output_shape(&self) -> [usize; 3] {
        self.p.base.map(|b| b << self.p.blocks)
    }

    fn fit<B: KernelBackend>(
        &self,
        data: &[Array3<f32>],
        ctx: &mut GeneratorFit<'_>,
        device: &B::Device,
    ) -> Result<()> {
        let p = &self.p;
        let adam = || {
            AdamConfig::new()
                .with_beta_1(p.betas[0] as f32)
                .with_beta_2(p.betas[1] as f32)
                .with_epsilon(1e-8)
        };
        let g = self.generator::<Autodiff<B>>(ctx.seed, device);
        let mut fit = Fit::<B> {
            method: self,
            data,
            dir: ctx.dir,
            device: device.clone(),
            g_ema: g.valid(),
            g: Some(g),
            d: Some(self.discriminator::<Autodiff<B>>(ctx.seed, device)),
            opt_g: adam().init(),
            opt_d: adam().init(),
            w_avg: vec![0.0; p.dlatent],
        };
        fit_to_end(ctx, p.steps, p.checkpoint_every, !data.is_empty(), &mut fit)
    }

    fn sample<B: KernelBackend>(
        &self,
        dir: &Path,
        n: usize,
        seed: u64,
        _real: &RealVolumes<'_>,
        device: &B::Device,
    ) -> Result<Vec<Array3<f32>>> {
        let p = &self.p;
        let ck = FitCheckpoint::finished(dir, p.steps, Self::NAME)?;
        let g = ck.module("g_ema", self.generator::<B>(0, device))?;
        let w_avg = Tensor::<B, 1>::from_floats(w_avg_of(&ck, p.dlatent)?.as_slice(), device)
            .reshape([1, p.dlatent]);
        let psi = p.truncation_psi;
        let truncate = |w: Tensor<B, 2>| w_avg.clone() + (w - w_avg.clone()) * psi;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        sample_in_batches(n, p.batch, |b, _| {
            Ok(self.generate(&g, b, 0.0, &truncate, &mut rng, device).0)
        })
    }
}

dsma_train::register_comparator!(StyleGan3d);

/// Referenced by the `dsma` binary so the linker keeps this crate.
pub fn link() {}
