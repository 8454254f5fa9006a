//! Model `unet3d`: a 3D U-Net after Çiçek et al. (2016) as used for BraTS (MONAI / nnU-Net style):
//! 4 input channels (FLAIR, T1, T1ce, T2), 3 output logits (WT, TC, ET; sigmoid in the loss), `depth`
//! resolution steps with two 3×3×3 conv → norm → LeakyReLU blocks per level, stride-2 convolutions down,
//! stride-2 transposed convolutions up (or, with `upsample: trilinear`, a 1×1×1 convolution followed
//! by ×2 trilinear interpolation, MONAI's "nontrainable" UpSample), skip connections by concatenation,
//! a 1×1×1 head. Widths are `base_width · 2^level`. Inputs must be divisible by `2^depth` along every
//! axis.

use dsma_train::layers::upsample2_trilinear;

use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, InstanceNorm, InstanceNormConfig, PaddingConfig3d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_data::{CoreError, Result};
use dsma_kernels::{cat_channels, KernelBackend};
use dsma_kernels::{Activation, ConvForward, NormForward};
use dsma_plugin::{ParamDoc, PluginParams};
use dsma_train::model::{ModelFactory, SegmentationModel};
use serde::{Deserialize, Serialize};

/// Normalisation after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Instance normalisation with affine parameters (nnU-Net's default for BraTS).
    Instance,
    /// Group normalisation with `groups` groups.
    Group,
}

/// How the decoder doubles the resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upsample {
    /// Stride-2 2×2×2 transposed convolution (Çiçek et al.; the default).
    Transpose,
    /// 1×1×1 convolution, then ×2 trilinear interpolation (PyTorch `align_corners=False`); avoids
    /// burn-cuda's slow transposed-convolution kernel on GPUs.
    Trilinear,
}

/// Parameters of `unet3d`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UNet3dParams {
    /// Input channels (the four BraTS modalities).
    pub in_channels: usize,
    /// Output channels (WT, TC, ET).
    pub out_channels: usize,
    /// Channels at full resolution; doubled at every level.
    pub base_width: usize,
    /// Number of stride-2 down-sampling steps.
    pub depth: usize,
    /// Normalisation layer.
    pub norm: Norm,
    /// Groups of group normalisation.
    pub groups: usize,
    /// Slope of LeakyReLU for negative inputs.
    pub negative_slope: f64,
    /// Decoder up-sampling.
    pub upsample: Upsample,
}

impl Default for UNet3dParams {
    fn default() -> Self {
        UNet3dParams {
            in_channels: 4,
            out_channels: 3,
            base_width: 16,
            depth: 4,
            norm: Norm::Instance,
            groups: 8,
            negative_slope: 0.01,
            upsample: Upsample::Transpose,
        }
    }
}

impl PluginParams for UNet3dParams {
    fn docs() -> Vec<ParamDoc> {
        let d = |name, doc| ParamDoc { name, doc };
        vec![
            d("in_channels", "input channels (4 BraTS modalities)"),
            d("out_channels", "output logits (WT, TC, ET)"),
            d(
                "base_width",
                "channels at full resolution, doubled per level",
            ),
            d(
                "depth",
                "stride-2 down-sampling steps (inputs must be divisible by 2^depth)",
            ),
            d("norm", "instance or group"),
            d(
                "groups",
                "groups of group normalisation (must divide every width)",
            ),
            d("negative_slope", "LeakyReLU slope"),
            d(
                "upsample",
                "transpose (2×2×2 stride-2 transposed conv) or trilinear (1×1×1 conv + ×2 trilinear)",
            ),
        ]
    }
}

/// Convolution → normalisation → LeakyReLU.
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    conv: Conv3d<B>,
    instance: Option<InstanceNorm<B>>,
    group: Option<GroupNorm<B>>,
    slope: f64,
}

impl<B: KernelBackend> ConvBlock<B> {
    fn new(p: &UNet3dParams, channels: [usize; 2], stride: usize, device: &B::Device) -> Self {
        let conv = Conv3dConfig::new(channels, [3, 3, 3])
            .with_stride([stride; 3])
            .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
            .init(device);
        let (instance, group) = match p.norm {
            Norm::Instance => (
                Some(
                    InstanceNormConfig::new(channels[1])
                        .with_affine(true)
                        .init(device),
                ),
                None,
            ),
            Norm::Group => (
                None,
                Some(GroupNormConfig::new(p.groups, channels[1]).init(device)),
            ),
        };
        ConvBlock {
            conv,
            instance,
            group,
            slope: p.negative_slope,
        }
    }

    /// Convolution, then normalisation and LeakyReLU in one op of the backend.
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = self.conv.run(x);
        let act = Activation::LeakyRelu(self.slope);
        match (&self.instance, &self.group) {
            (Some(n), _) => n.run_then(x, act),
            (_, Some(n)) => n.run_then(x, act),
            _ => leaky_relu(x, self.slope),
        }
    }
}

/// Two conv blocks at one resolution.
#[derive(Module, Debug)]
pub struct Stage<B: Backend> {
    a: ConvBlock<B>,
    b: ConvBlock<B>,
}

impl<B: KernelBackend> Stage<B> {
    fn new(p: &UNet3dParams, channels: [usize; 2], device: &B::Device) -> Self {
        Stage {
            a: ConvBlock::new(p, channels, 1, device),
            b: ConvBlock::new(p, [channels[1], channels[1]], 1, device),
        }
    }

    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.b.forward(self.a.forward(x))
    }
}

/// The 3D U-Net.
#[derive(Module, Debug)]
pub struct UNet3d<B: Backend> {
    encoder: Vec<Stage<B>>,
    down: Vec<ConvBlock<B>>,
    bottleneck: Stage<B>,
    /// Transposed convolutions (`upsample: transpose`; empty otherwise).
    up: Vec<ConvTranspose3d<B>>,
    /// 1×1×1 channel reductions before trilinear up-sampling (`upsample: trilinear`; empty otherwise).
    up_reduce: Vec<Conv3d<B>>,
    decoder: Vec<Stage<B>>,
    head: Conv3d<B>,
}

impl<B: KernelBackend> UNet3d<B> {
    /// Builds the network on `device`.
    pub fn new(p: &UNet3dParams, device: &B::Device) -> Self {
        let w = |level: usize| p.base_width << level;
        let encoder = (0..p.depth)
            .map(|l| Stage::new(p, [if l == 0 { p.in_channels } else { w(l) }, w(l)], device))
            .collect();
        let down = (0..p.depth)
            .map(|l| ConvBlock::new(p, [w(l), w(l + 1)], 2, device))
            .collect();
        let bottleneck = Stage::new(p, [w(p.depth), w(p.depth)], device);
        let (up, up_reduce) = match p.upsample {
            Upsample::Transpose => (
                (0..p.depth)
                    .map(|l| {
                        ConvTranspose3dConfig::new([w(l + 1), w(l)], [2, 2, 2])
                            .with_stride([2, 2, 2])
                            .init(device)
                    })
                    .collect(),
                Vec::new(),
            ),
            Upsample::Trilinear => (
                Vec::new(),
                (0..p.depth)
                    .map(|l| Conv3dConfig::new([w(l + 1), w(l)], [1, 1, 1]).init(device))
                    .collect(),
            ),
        };
        let decoder = (0..p.depth)
            .map(|l| Stage::new(p, [2 * w(l), w(l)], device))
            .collect();
        let head = Conv3dConfig::new([w(0), p.out_channels], [1, 1, 1]).init(device);
        UNet3d {
            encoder,
            down,
            bottleneck,
            up,
            up_reduce,
            decoder,
            head,
        }
    }
}

impl<B: KernelBackend> SegmentationModel<B> for UNet3d<B> {
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let mut skips = Vec::with_capacity(self.encoder.len());
        let mut x = x;
        for (stage, down) in self.encoder.iter().zip(&self.down) {
            let s = stage.forward(x);
            x = down.forward(s.clone());
            skips.push(s);
        }
        x = self.bottleneck.forward(x);
        for level in (0..self.decoder.len()).rev() {
            let up = match self.up.get(level) {
                Some(t) => t.run(x),
                // 1×1×1 conv and trilinear interpolation commute (the weights of each output voxel
                // sum to 1), so reducing channels first is the same map at an eighth of the cost.
                None => upsample2_trilinear(self.up_reduce[level].run(x)),
            };
            // The backend's concatenation: in parallel, and its backward hands each input a
            // contiguous channel range of the gradient (burn-flex's slice would be added to the
            // down path's gradient element by element through a strided iterator).
            let skip = skips.pop().expect("one skip per level");
            x = self.decoder[level].forward(cat_channels(vec![up, skip]));
        }
        self.head.run(x)
    }

    fn size_divisor(&self) -> usize {
        1 << self.encoder.len()
    }
}

/// The `unet3d` model factory.
pub struct UNet3dFactory;

impl ModelFactory for UNet3dFactory {
    const NAME: &'static str = "unet3d";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "3D U-Net (Çiçek et al. 2016): strided-conv down, transposed-conv up, instance/group norm";
    type Params = UNet3dParams;
    type Model<B: KernelBackend> = UNet3d<B>;

    fn validate(p: &UNet3dParams) -> Result<()> {
        let bad = |field: &str, problem: String| CoreError::param(Self::NAME, field, problem);
        for (field, v) in [
            ("in_channels", p.in_channels),
            ("out_channels", p.out_channels),
            ("base_width", p.base_width),
            ("depth", p.depth),
        ] {
            if v == 0 {
                return Err(bad(field, "0; expected ≥ 1".into()));
            }
        }
        if p.depth > 6 {
            return Err(bad("depth", format!("{}; expected ≤ 6", p.depth)));
        }
        if p.norm == Norm::Group && (p.groups == 0 || !p.base_width.is_multiple_of(p.groups)) {
            return Err(bad(
                "groups",
                format!("{} must divide base_width {}", p.groups, p.base_width),
            ));
        }
        Ok(())
    }

    fn channels(p: &UNet3dParams) -> Option<[usize; 2]> {
        Some([p.in_channels, p.out_channels])
    }

    fn build<B: KernelBackend>(p: &UNet3dParams, device: &B::Device) -> Result<UNet3d<B>> {
        Self::validate(p)?;
        Ok(UNet3d::new(p, device))
    }
}

dsma_train::register_model!(UNet3dFactory);

/// Referenced by the `dsma` binary so the linker keeps this crate and its registration.
pub fn link() {}
