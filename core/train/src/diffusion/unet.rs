//! The noise-prediction 3-D U-Net of both diffusion comparators (the DDPM / guided-diffusion
//! layout that AnoDDPM's `UNet.py` uses, in 3-D): sinusoidal time embedding through a 2-layer MLP,
//! ResBlocks of GroupNorm → SiLU → 3³ conv with the time embedding added in between, strided-conv
//! down-sampling, nearest ×2 + 3³ conv up-sampling, skip concatenation, optional single-head
//! self-attention at the lowest level, output conv initialised to zero.

use burn::module::Module;
use burn::nn::conv::Conv3d;
use burn::nn::{GroupNorm, GroupNormConfig, Linear};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::layers::{conv3d_init, linear_init, upsample2_nearest};
use dsma_kernels::KernelBackend;
use dsma_kernels::{ConvForward, NormForward};

/// The denoiser's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenoiserConfig {
    /// Base width C.
    pub channels: usize,
    /// Width multipliers per level (one ×2 down-sampling between levels).
    pub mults: Vec<usize>,
    /// GroupNorm groups.
    pub groups: usize,
    /// Self-attention at the lowest level.
    pub attention: bool,
}

impl Default for DenoiserConfig {
    fn default() -> Self {
        DenoiserConfig {
            channels: 16,
            mults: vec![1, 2, 4],
            groups: 8,
            attention: false,
        }
    }
}

impl DenoiserConfig {
    /// Checks widths and groups; `field` prefixes the error.
    pub fn validate(&self, field: &str) -> dsma_data::error::Result<()> {
        let bad = |what: &str, v: String| {
            Err(dsma_data::error::CoreError::invalid(
                format!("{field}.{what}"),
                v,
            ))
        };
        if self.channels == 0 || self.channels % 2 == 1 {
            return bad(
                "channels",
                format!("{}; expected an even width ≥ 2", self.channels),
            );
        }
        if self.mults.is_empty() || self.mults.contains(&0) {
            return bad(
                "mults",
                format!("{:?}; expected one or more multipliers ≥ 1", self.mults),
            );
        }
        if self.groups == 0
            || self
                .mults
                .iter()
                .any(|m| !(m * self.channels).is_multiple_of(self.groups))
        {
            return bad(
                "groups",
                format!(
                    "{}; every width channels·mult must be a multiple of it",
                    self.groups
                ),
            );
        }
        Ok(())
    }
    /// Sizes must be multiples of this.
    pub fn size_divisor(&self) -> usize {
        1 << (self.mults.len() - 1)
    }
}

/// `[N]` timesteps → `[N, dim]` sinusoidal features (`sin` half, then `cos` half; frequencies
/// `10000^(−i/half)`), as DDPM's `get_timestep_embedding`.
pub fn timestep_embedding<B: Backend>(t: &[usize], dim: usize, device: &B::Device) -> Tensor<B, 2> {
    let half = dim / 2;
    let mut v = Vec::with_capacity(t.len() * dim);
    for &step in t {
        let freqs =
            (0..half).map(|i| (-(10000f64.ln()) * i as f64 / half as f64).exp() * step as f64);
        let f: Vec<f64> = freqs.collect();
        v.extend(f.iter().map(|x| x.sin() as f32));
        v.extend(f.iter().map(|x| x.cos() as f32));
    }
    Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape([t.len(), dim])
}

/// A residual block with the time embedding added after the first convolution.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    norm1: GroupNorm<B>,
    conv1: Conv3d<B>,
    time: Linear<B>,
    norm2: GroupNorm<B>,
    conv2: Conv3d<B>,
    skip: Option<Conv3d<B>>,
}

impl<B: KernelBackend> ResBlock<B> {
    fn new(
        cin: usize,
        cout: usize,
        temb: usize,
        groups: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        ResBlock {
            norm1: GroupNormConfig::new(groups, cin).init(device),
            conv1: conv3d_init([cin, cout], 3, 1, 1, rng, device),
            time: linear_init(temb, cout, rng, device),
            norm2: GroupNormConfig::new(groups, cout).init(device),
            conv2: conv3d_init([cout, cout], 3, 1, 1, rng, device),
            skip: (cin != cout).then(|| conv3d_init([cin, cout], 1, 1, 0, rng, device)),
        }
    }

    fn forward(&self, x: Tensor<B, 5>, temb: Tensor<B, 2>) -> Tensor<B, 5> {
        let h = self.conv1.run(silu(self.norm1.run(x.clone())));
        let [n, c, _, _, _] = h.dims();
        let h = h + self.time.forward(silu(temb)).reshape([n, c, 1, 1, 1]);
        let h = self.conv2.run(silu(self.norm2.run(h)));
        match &self.skip {
            Some(s) => s.run(x) + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over the voxels of a feature map, residual.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    norm: GroupNorm<B>,
    qkv: Conv3d<B>,
    proj: Conv3d<B>,
}

impl<B: KernelBackend> Attention<B> {
    fn new(c: usize, groups: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        Attention {
            norm: GroupNormConfig::new(groups, c).init(device),
            qkv: conv3d_init([c, 3 * c], 1, 1, 0, rng, device),
            proj: conv3d_init([c, c], 1, 1, 0, rng, device),
        }
    }

    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [n, c, d, h, w] = x.dims();
        let l = d * h * w;
        let qkv = self.qkv.run(self.norm.run(x.clone())).reshape([n, 3, c, l]);
        let q = qkv.clone().narrow(1, 0, 1).reshape([n, c, l]);
        let k = qkv.clone().narrow(1, 1, 1).reshape([n, c, l]);
        let v = qkv.narrow(1, 2, 1).reshape([n, c, l]);
        let attn = softmax(q.swap_dims(1, 2).matmul(k) / (c as f64).sqrt(), 2); // [n, l, l]
        let out = v.matmul(attn.swap_dims(1, 2)).reshape([n, c, d, h, w]);
        x + self.proj.run(out)
    }
}

/// One level of the encoder or decoder.
#[derive(Module, Debug)]
pub struct Level<B: Backend> {
    block: ResBlock<B>,
    /// Strided 3³ conv (encoder) or ×2 nearest + 3³ conv (decoder); none at the ends.
    resample: Option<Conv3d<B>>,
}

/// The noise-prediction U-Net: `(x_t [⊕ condition], t) → ε̂`.
#[derive(Module, Debug)]
pub struct Denoiser<B: Backend> {
    time1: Linear<B>,
    time2: Linear<B>,
    input: Conv3d<B>,
    down: Vec<Level<B>>,
    mid1: ResBlock<B>,
    attention: Option<Attention<B>>,
    mid2: ResBlock<B>,
    up: Vec<Level<B>>,
    out_norm: GroupNorm<B>,
    out: Conv3d<B>,
    channels: usize,
}

impl<B: KernelBackend> Denoiser<B> {
    /// A denoiser with `in_channels` inputs (1, or 2 with a conditioning volume) and one output.
    pub fn new(
        cfg: &DenoiserConfig,
        in_channels: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let c = cfg.channels;
        let temb = 4 * c;
        let g = cfg.groups;
        let widths: Vec<usize> = cfg.mults.iter().map(|m| m * c).collect();
        let levels = widths.len();
        let mut down = Vec::new();
        let mut prev = c;
        for (i, &w) in widths.iter().enumerate() {
            down.push(Level {
                block: ResBlock::new(prev, w, temb, g, rng, device),
                resample: (i + 1 < levels).then(|| conv3d_init([w, w], 3, 2, 1, rng, device)),
            });
            prev = w;
        }
        let bottom = widths[levels - 1];
        let mid1 = ResBlock::new(bottom, bottom, temb, g, rng, device);
        let attention = cfg
            .attention
            .then(|| Attention::new(bottom, g, rng, device));
        let mid2 = ResBlock::new(bottom, bottom, temb, g, rng, device);
        let mut up = Vec::new();
        for i in (0..levels).rev() {
            let w = widths[i];
            let below = if i + 1 < levels {
                widths[i + 1]
            } else {
                bottom
            };
            up.push(Level {
                block: ResBlock::new(below + w, w, temb, g, rng, device),
                resample: (i > 0).then(|| conv3d_init([w, w], 3, 1, 1, rng, device)),
            });
        }
        let mut out = conv3d_init([widths[0], 1], 3, 1, 1, rng, device);
        out.weight =
            burn::module::Param::from_tensor(Tensor::zeros([1, widths[0], 3, 3, 3], device));
        out.bias = Some(burn::module::Param::from_tensor(Tensor::zeros([1], device)));
        Denoiser {
            time1: linear_init(c, temb, rng, device),
            time2: linear_init(temb, temb, rng, device),
            input: conv3d_init([in_channels, c], 3, 1, 1, rng, device),
            down,
            mid1,
            attention,
            mid2,
            up,
            out_norm: GroupNormConfig::new(g, widths[0]).init(device),
            out,
            channels: c,
        }
    }

    /// ε̂ for `x: [N, in_channels, D, H, W]` at timesteps `t` (one per sample).
    pub fn forward(&self, x: Tensor<B, 5>, t: &[usize]) -> Tensor<B, 5> {
        let device = x.device();
        let temb = timestep_embedding::<B>(t, self.channels, &device);
        let temb = self.time2.forward(silu(self.time1.forward(temb)));
        let mut h = self.input.run(x);
        let mut skips = Vec::new();
        for level in &self.down {
            h = level.block.forward(h, temb.clone());
            skips.push(h.clone());
            if let Some(r) = &level.resample {
                h = r.run(h);
            }
        }
        h = self.mid1.forward(h, temb.clone());
        if let Some(a) = &self.attention {
            h = a.forward(h);
        }
        h = self.mid2.forward(h, temb.clone());
        for level in &self.up {
            let skip = skips.pop().unwrap_or_else(|| h.clone());
            h = level
                .block
                .forward(Tensor::cat(vec![h, skip], 1), temb.clone());
            if let Some(r) = &level.resample {
                h = r.run(upsample2_nearest(h));
            }
        }
        self.out.run(silu(self.out_norm.run(h)))
    }
}
