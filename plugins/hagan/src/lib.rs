//! Comparator `hagan`: HA-GAN (Sun et al., IEEE JBHI 2022; code batmanlab/HA-GAN) as a trainable
//! synthesizer of Tables 1–2. See README.md for every departure from the public code.
//!
//! Training (`train.py`): per step a depth crop position `c ~ U{0 … S − S/8}`; D sees the real
//! crop `x[:, :, c : c + S/8]` with the real volume at ¼ (nearest) and the generated crop of the
//! latent `h[:, :, c/4 : c/4 + S/32]` with G^L's ¼ volume, both with `c / (S − S/8)`; BCE losses,
//! non-saturating G loss, Adam β = (0, 0.999), lr G 1e-4, D 4e-4. Sampling: G^H on the whole latent.

pub mod networks;

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
use dsma_train::generative::fit_loop::{
    fit_to_end, loss_value, real_batch, require_positive, require_range, sample_in_batches,
    FitSteps,
};
use dsma_train::generative::{
    AdamOn, FitCheckpoint, GenerativeMethod, GeneratorFit, ProtocolParams, RealVolumes,
};
use dsma_train::layers::{downsample_nearest, normal_tensor};
use ndarray::Array3;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use networks::{Discriminator, Generator, HighDiscriminator, LowDiscriminator};

/// Parameters; the defaults are `Model_HA_GAN_128` with `train.py`'s settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaGanParams {
    /// Output edge S (cube S³); S/4 must equal 4 · 2^(len(trunk) − 2).
    pub size: usize,
    /// Size of z.
    pub latent: usize,
    /// G^A widths: fc output, then one per convolution ([512, 512, 256, 128, 64]).
    pub trunk: Vec<usize>,
    /// G^L hidden widths ([32, 16]).
    pub low: Vec<usize>,
    /// G^H hidden width (32).
    pub high: usize,
    /// GroupNorm groups (8).
    pub groups: usize,
    /// D^H first width, doubling per layer (32).
    pub d_high_base: usize,
    /// D^H widest layer (512).
    pub d_high_max: usize,
    /// D^H features before the linears (128).
    pub d_high_out: usize,
    /// D^L first width, doubling per layer (64).
    pub d_low_base: usize,
    /// Minibatch size (4).
    pub batch: usize,
    /// Training iterations (80000).
    pub steps: usize,
    /// Generator learning rate (1e-4).
    pub lr_g: f64,
    /// Discriminator learning rate (4e-4).
    pub lr_d: f64,
    /// Adam β₁, β₂ ([0, 0.999]).
    pub betas: [f64; 2],
    /// Power iterations per forward pass of every spectral norm (5; see README).
    pub sn_iterations: usize,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// The comparator protocol (modality, noise, layout).
    pub protocol: ProtocolParams,
}

impl Default for HaGanParams {
    fn default() -> Self {
        HaGanParams {
            size: 128,
            latent: 1024,
            trunk: vec![512, 512, 256, 128, 64],
            low: vec![32, 16],
            high: 32,
            groups: 8,
            d_high_base: 32,
            d_high_max: 512,
            d_high_out: 128,
            d_low_base: 64,
            batch: 4,
            steps: 80_000,
            lr_g: 1e-4,
            lr_d: 4e-4,
            betas: [0.0, 0.999],
            sn_iterations: 5,
            checkpoint_every: 1000,
            protocol: ProtocolParams::default(),
        }
    }
}

impl PluginParams for HaGanParams {
    fn docs() -> Vec<ParamDoc> {
        let mut d = vec![
            ParamDoc {
                name: "size",
                doc: "output edge S of the S³ volume (128)",
            },
            ParamDoc {
                name: "latent",
                doc: "size of z (1024)",
            },
            ParamDoc {
                name: "trunk",
                doc: "G^A widths: fc output, then per convolution ([512, 512, 256, 128, 64])",
            },
            ParamDoc {
                name: "low",
                doc: "G^L hidden widths ([32, 16])",
            },
            ParamDoc {
                name: "high",
                doc: "G^H hidden width (32)",
            },
            ParamDoc {
                name: "groups",
                doc: "GroupNorm groups (8)",
            },
            ParamDoc {
                name: "d_high_base",
                doc: "D^H first width (32, doubling)",
            },
            ParamDoc {
                name: "d_high_max",
                doc: "D^H widest layer (512)",
            },
            ParamDoc {
                name: "d_high_out",
                doc: "D^H features before the linears (128)",
            },
            ParamDoc {
                name: "d_low_base",
                doc: "D^L first width (64, doubling)",
            },
            ParamDoc {
                name: "batch",
                doc: "minibatch (4)",
            },
            ParamDoc {
                name: "steps",
                doc: "training iterations (80000)",
            },
            ParamDoc {
                name: "lr_g",
                doc: "generator learning rate (1e-4)",
            },
            ParamDoc {
                name: "lr_d",
                doc: "discriminator learning rate (4e-4)",
            },
            ParamDoc {
                name: "betas",
                doc: "Adam β₁, β₂ ([0, 0.999])",
            },
            ParamDoc {
                name: "sn_iterations",
                doc: "power iterations per spectral norm (5)",
            },
            ParamDoc {
                name: "checkpoint_every",
                doc: "steps between checkpoints (1000)",
            },
        ];
        d.extend(ProtocolParams::docs());
        d
    }
}

/// The HA-GAN comparator.
pub struct HaGan {
    p: HaGanParams,
}

impl Plugin for HaGan {
    const NAME: &'static str = "hagan";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "HA-GAN (Sun et al. 2022): generative comparator of Tables 1–2";
    type Params = HaGanParams;
    fn new(p: HaGanParams) -> Result<Self> {
        check(&p)?;
        Ok(HaGan { p })
    }
}

fn check(p: &HaGanParams) -> Result<()> {
    let field = |f: &str| format!("synthesizer.params.{f} of hagan");
    if p.trunk.len() < 2 || p.trunk.contains(&0) {
        return Err(CoreError::invalid(
            field("trunk"),
            format!("{:?}; expected ≥ 2 widths ≥ 1", p.trunk),
        ));
    }
    let latent_edge = 4usize << (p.trunk.len() - 2);
    if p.size != 4 * latent_edge || p.size < 32 {
        return Err(CoreError::invalid(
            field("size"),
            format!(
                "{}; with {} trunk widths the latent volume is {latent_edge}³, so size must be {} (and ≥ 32)",
                p.size,
                p.trunk.len(),
                4 * latent_edge
            ),
        ));
    }
    let widths = p.trunk.iter().chain(&p.low).chain(std::iter::once(&p.high));
    if p.groups == 0 || widths.clone().any(|w| w % p.groups != 0) {
        return Err(CoreError::invalid(
            field("groups"),
            format!(
                "{}; every G width ({:?}, {:?}, {}) must be a multiple of it",
                p.groups, p.trunk, p.low, p.high
            ),
        ));
    }
    require_positive(
        HaGan::NAME,
        &[
            ("latent", p.latent),
            ("d_high_base", p.d_high_base),
            ("d_high_max", p.d_high_max),
            ("d_high_out", p.d_high_out),
            ("d_low_base", p.d_low_base),
            ("batch", p.batch),
            ("steps", p.steps),
            ("sn_iterations", p.sn_iterations),
            ("checkpoint_every", p.checkpoint_every),
        ],
    )?;
    require_range(
        HaGan::NAME,
        &[("lr_g", p.lr_g), ("lr_d", p.lr_d)],
        0.0,
        1.0,
        true,
    )?;
    require_range(
        HaGan::NAME,
        &[("betas[0]", p.betas[0]), ("betas[1]", p.betas[1])],
        0.0,
        1.0,
        false,
    )?;
    Ok(())
}

const SALT_INIT: u64 = 0x4841_494e; // "HAIN"

impl HaGan {
    /// The parameters.
    pub fn params(&self) -> &HaGanParams {
        &self.p
    }
    /// Depth of the high-resolution crop (S/8).
    pub fn crop_depth(&self) -> usize {
        self.p.size / 8
    }
    /// The generator, weights drawn from `seed`.
    pub fn generator<B: KernelBackend>(&self, seed: u64, device: &B::Device) -> Generator<B> {
        let p = &self.p;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SALT_INIT));
        Generator::new(
            p.latent, &p.trunk, &p.low, p.high, p.groups, &mut rng, device,
        )
    }
    /// The discriminator, weights drawn from `seed`.
    pub fn discriminator<B: KernelBackend>(
        &self,
        seed: u64,
        device: &B::Device,
    ) -> Discriminator<B> {
        let p = &self.p;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, SALT_INIT + 1));
        let mut d = Discriminator {
            high: HighDiscriminator::new(
                self.crop_depth(),
                p.size,
                p.d_high_base,
                p.d_high_max,
                p.d_high_out,
                &mut rng,
                device,
            ),
            low: LowDiscriminator::new(p.size / 4, p.d_low_base, &mut rng, device),
        };
        for c in d.high.convs.iter_mut().chain(d.low.convs.iter_mut()) {
            c.iterations = p.sn_iterations;
        }
        d.high.fc1.iterations = p.sn_iterations;
        d.high.fc2.iterations = p.sn_iterations;
        d
    }
}

struct Fit<'a, B: KernelBackend> {
    method: &'a HaGan,
    data: &'a [Array3<f32>],
    dir: &'a Path,
    device: B::Device,
    g: Option<Generator<Autodiff<B>>>,
    d: Option<Discriminator<Autodiff<B>>>,
    opt_g: AdamOn<Generator<Autodiff<B>>, B>,
    opt_d: AdamOn<Discriminator<Autodiff<B>>, B>,
}

fn missing() -> CoreError {
    CoreError::invalid(
        "hagan",
        "network missing between steps (an earlier step failed)",
    )
}

impl<B: KernelBackend> Fit<'_, B> {
    /// A generated crop at depth position `c` and the generated ¼ volume.
    fn generate(
        &self,
        g: &Generator<Autodiff<B>>,
        c: usize,
        rng: &mut ChaCha8Rng,
    ) -> (Tensor<Autodiff<B>, 5>, Tensor<Autodiff<B>, 5>) {
        let p = &self.method.p;
        let z = normal_tensor([p.batch, p.latent], rng, &self.device);
        let h = g.trunk(z);
        let crop = h.clone().narrow(2, c / 4, p.size / 32);
        (g.high_res(crop), g.low_res(h))
    }
}

impl<B: KernelBackend> FitSteps for Fit<'_, B> {
    fn step(&mut self, _k: usize, rng: &mut ChaCha8Rng) -> Result<f64> {
        let p = &self.method.p;
        let depth = self.method.crop_depth();
        let c = rng.random_range(0..=p.size - depth);
        let position = Tensor::<Autodiff<B>, 2>::ones([p.batch, 1], &self.device)
            * (c as f64 / (p.size - depth) as f64);
        let real = real_batch::<Autodiff<B>>(self.data, p.batch, rng, &self.device);
        let real_crop = real.clone().narrow(2, c, depth);
        let real_small = downsample_nearest(real, 4);
        // D: BCE(D(real), 1) + BCE(D(fake), 0) = softplus(−D(real)) + softplus(D(fake)).
        let (g, d) = (
            self.g.take().ok_or_else(missing)?,
            self.d.take().ok_or_else(missing)?,
        );
        let (fake_crop, fake_small) = self.generate(&g, c, rng);
        let loss_d = softplus(-d.forward(real_crop, real_small, position.clone()), 1.0).mean()
            + softplus(
                d.forward(fake_crop.detach(), fake_small.detach(), position.clone()),
                1.0,
            )
            .mean();
        let ld = loss_value(&loss_d, HaGan::NAME)?;
        let grads = GradientsParams::from_grads(loss_d.backward(), &d);
        let d = self.opt_d.step(p.lr_d, d, grads);
        // G: BCE(D(G(z)), 1), a fresh z.
        let (fake_crop, fake_small) = self.generate(&g, c, rng);
        let loss_g = softplus(-d.forward(fake_crop, fake_small, position), 1.0).mean();
        let lg = loss_value(&loss_g, HaGan::NAME)?;
        let grads = GradientsParams::from_grads(loss_g.backward(), &g);
        self.g = Some(self.opt_g.step(p.lr_g, g, grads));
        self.d = Some(d);
        Ok(ld + lg)
    }

    fn save(&mut self, done: usize) -> Result<()> {
        let mut ck = FitCheckpoint::new(done, serde_json::Value::Null);
        let (g, d) = (
            self.g.as_ref().ok_or_else(missing)?,
            self.d.as_ref().ok_or_else(missing)?,
        );
        ck.put_trained("g", g, &self.opt_g)?;
        ck.put_trained("d", d, &self.opt_d)?;
        ck.save(self.dir)
    }

    fn restore(&mut self, ck: &FitCheckpoint) -> Result<()> {
        let g = self.g.take().ok_or_else(missing)?;
        let d = self.d.take().ok_or_else(missing)?;
        let (g, opt_g) = ck.trained("g", g, self.opt_g.clone(), &self.device)?;
        let (d, opt_d) = ck.trained("d", d, self.opt_d.clone(), &self.device)?;
        (self.g, self.d, self.opt_g, self.opt_d) = (Some(g), Some(d), opt_g, opt_d);
        Ok(())
    }
}

impl GenerativeMethod for HaGan {
    fn protocol(&self) -> &ProtocolParams {
        &self.p.protocol
    }

    fn steps(&self) -> usize {
        self.p.steps
    }

    fn output_shape(&self) -> [usize; 3] {
        [self.p.size; 3]
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
        let mut fit = Fit::<B> {
            method: self,
            data,
            dir: ctx.dir,
            device: device.clone(),
            g: Some(self.generator::<Autodiff<B>>(ctx.seed, device)),
            d: Some(self.discriminator::<Autodiff<B>>(ctx.seed, device)),
            opt_g: adam().init(),
            opt_d: adam().init(),
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
        let g = ck.module("g", self.generator::<B>(0, device))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        sample_in_batches(n, p.batch, |b, _| {
            let z = normal_tensor([b, p.latent], &mut rng, device);
            Ok(g.high_res(g.trunk(z)))
        })
    }
}

dsma_train::register_comparator!(HaGan);

/// Referenced by the `dsma` binary so the linker keeps this crate.
pub fn link() {}
