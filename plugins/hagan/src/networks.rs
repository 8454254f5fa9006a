//! The HA-GAN networks (`models/Model_HA_GAN_128.py` of batmanlab/HA-GAN), sized by parameters:
//! a shared trunk G^A to a latent volume at ¼ resolution, a low-resolution branch G^L (full volume
//! at ¼), a high-resolution branch G^H (a depth crop of the latent in training, all of it at
//! sampling), and spectral-normalised discriminators D^H (crop + crop position) and D^L.

use burn::module::Module;
use burn::nn::conv::Conv3d;
use burn::nn::{GroupNorm, GroupNormConfig, Linear};
use burn::tensor::activation::{leaky_relu, tanh};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_kernels::KernelBackend;
use dsma_kernels::{Activation, ConvForward, NormForward};
use dsma_train::layers::{conv3d_init, linear_init, upsample2_nearest, SnConv3d, SnLinear};
use rand_chacha::ChaCha8Rng;

/// 3³ convolution (padding 1, bias), GroupNorm, ReLU.
#[derive(Module, Debug)]
pub struct ConvGnRelu<B: Backend> {
    /// The convolution.
    pub conv: Conv3d<B>,
    /// GroupNorm with `groups` groups.
    pub norm: GroupNorm<B>,
}

/// A 3³ "same" convolution with bias, initialised as PyTorch does from `rng`.
fn conv3d_same<B: Backend>(
    cin: usize,
    cout: usize,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Conv3d<B> {
    conv3d_init([cin, cout], 3, 1, 1, rng, device)
}

impl<B: KernelBackend> ConvGnRelu<B> {
    /// `cin → cout` with GroupNorm(`groups`).
    pub fn new(
        cin: usize,
        cout: usize,
        groups: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        ConvGnRelu {
            conv: conv3d_same(cin, cout, rng, device),
            norm: GroupNormConfig::new(groups, cout).init(device),
        }
    }
    /// `relu(gn(conv(x)))`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.norm.run_then(self.conv.run(x), Activation::Relu)
    }
}

/// The generator.
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    /// z → `[trunk[0], 4, 4, 4]`.
    pub fc: Linear<B>,
    /// G^A's convolutions (the 2nd … second-to-last follow a ×2 nearest up-sampling).
    pub trunk: Vec<ConvGnRelu<B>>,
    /// G^L's hidden convolutions.
    pub low: Vec<ConvGnRelu<B>>,
    /// G^L's output convolution (to 1 channel, tanh).
    pub low_out: Conv3d<B>,
    /// G^H's hidden convolution (after ×2 up-sampling).
    pub high: ConvGnRelu<B>,
    /// G^H's output convolution (after ×2 up-sampling; to 1 channel, tanh).
    pub high_out: Conv3d<B>,
    /// Channels of the trunk's first feature map.
    pub base_channels: usize,
}

impl<B: KernelBackend> Generator<B> {
    /// Trunk widths `trunk` (`len − 2` up-samplings from 4³), low-branch widths `low`, high-branch
    /// width `high`, GroupNorm groups `groups`.
    pub fn new(
        latent: usize,
        trunk: &[usize],
        low: &[usize],
        high: usize,
        groups: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let n = trunk.len();
        let fc = linear_init(latent, 64 * trunk[0], rng, device);
        let mut convs = vec![ConvGnRelu::new(trunk[0], trunk[0], groups, rng, device)];
        for i in 1..n {
            convs.push(ConvGnRelu::new(trunk[i - 1], trunk[i], groups, rng, device));
        }
        let lat = trunk[n - 1];
        let mut lows = Vec::new();
        let mut c = lat;
        for &w in low {
            lows.push(ConvGnRelu::new(c, w, groups, rng, device));
            c = w;
        }
        let low_out = conv3d_same(c, 1, rng, device);
        let high_layer = ConvGnRelu::new(lat, high, groups, rng, device);
        Generator {
            fc,
            trunk: convs,
            low: lows,
            low_out,
            high: high_layer,
            high_out: conv3d_same(high, 1, rng, device),
            base_channels: trunk[0],
        }
    }

    /// G^A: `z: [N, latent]` → latent volume `[N, trunk.last, S/4, S/4, S/4]`.
    pub fn trunk(&self, z: Tensor<B, 2>) -> Tensor<B, 5> {
        let n = z.dims()[0];
        let mut x = self.fc.forward(z).reshape([n, self.base_channels, 4, 4, 4]);
        let last = self.trunk.len() - 1;
        for (i, c) in self.trunk.iter().enumerate() {
            if i > 0 && i < last {
                x = upsample2_nearest(x);
            }
            x = c.forward(x);
        }
        x
    }

    /// G^L: the low-resolution full volume `[N, 1, S/4, S/4, S/4]`.
    pub fn low_res(&self, h: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = self.low.iter().fold(h, |x, c| c.forward(x));
        tanh(self.low_out.run(x))
    }

    /// G^H on (a depth crop of) the latent: 4× the latent's size.
    pub fn high_res(&self, h: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = self.high.forward(upsample2_nearest(h));
        tanh(self.high_out.run(upsample2_nearest(x)))
    }
}

/// The high-resolution discriminator D^H on a `[1, S/8, S, S]` crop and its position.
#[derive(Module, Debug)]
pub struct HighDiscriminator<B: Backend> {
    /// The strided convolutions, the last one valid to `[out, 1, 1, 1]`.
    pub convs: Vec<SnConv3d<B>>,
    /// `out + 1 → 64`.
    pub fc1: SnLinear<B>,
    /// `64 → 1`.
    pub fc2: SnLinear<B>,
}

/// The convolution geometry along depth of D^H while `h > 4` halves the in-plane size: depth > 4
/// halves with kernel 4 (stride 2, padding 1), depth 2–4 with kernel 2 (stride 2, no padding),
/// depth 1 stays (kernel 1) — the layer list of `Model_HA_GAN_128.Discriminator` for 16×128².
fn depth_step(d: usize) -> (usize, usize, usize, usize) {
    if d > 4 {
        (4, 2, 1, d / 2)
    } else if d >= 2 {
        (2, 2, 0, d / 2)
    } else {
        (1, 1, 0, 1)
    }
}

impl<B: KernelBackend> HighDiscriminator<B> {
    /// For crops `[depth, size, size]`: channels `base · 2^i` capped at `max`, `out` before the linears.
    pub fn new(
        depth: usize,
        size: usize,
        base: usize,
        max: usize,
        out: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let (mut d, mut h, mut c_in, mut width) = (depth, size, 1usize, base);
        let mut convs = Vec::new();
        while h > 4 {
            let (kd, sd, pd, nd) = depth_step(d);
            convs.push(SnConv3d::new(
                [width, c_in],
                [kd, 4, 4],
                [sd, 2, 2],
                [pd, 1, 1],
                rng,
                device,
            ));
            c_in = width;
            width = (width * 2).min(max);
            d = nd;
            h /= 2;
        }
        convs.push(SnConv3d::new(
            [out, c_in],
            [d, h, h],
            [1, 1, 1],
            [0, 0, 0],
            rng,
            device,
        ));
        HighDiscriminator {
            convs,
            fc1: SnLinear::new(out + 1, 64, rng, device),
            fc2: SnLinear::new(64, 1, rng, device),
        }
    }

    /// Logits `[N]` of crops `x` at normalised positions `position: [N, 1]`.
    pub fn forward(&self, x: Tensor<B, 5>, position: Tensor<B, 2>) -> Tensor<B, 1> {
        let last = self.convs.len() - 1;
        let mut x = x;
        for (i, c) in self.convs.iter().enumerate() {
            x = c.forward(x);
            if i < last {
                x = leaky_relu(x, 0.2);
            }
        }
        let n = x.dims()[0];
        let f = x.reshape([n as i32, -1]);
        let f = Tensor::cat(vec![f, position], 1);
        let f = leaky_relu(self.fc1.forward(f), 0.2);
        self.fc2.forward(f).reshape([n])
    }
}

/// The low-resolution discriminator D^L on the `[1, S/4]³` volume.
#[derive(Module, Debug)]
pub struct LowDiscriminator<B: Backend> {
    /// Stride-2 convolutions down to 4³, then a valid 4³ convolution to the logit.
    pub convs: Vec<SnConv3d<B>>,
}

impl<B: KernelBackend> LowDiscriminator<B> {
    /// For `[size]³` volumes, channels `base · 2^i`.
    pub fn new(size: usize, base: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let (mut s, mut c_in, mut width) = (size, 1usize, base);
        let mut convs = Vec::new();
        while s > 4 {
            convs.push(SnConv3d::new(
                [width, c_in],
                [4; 3],
                [2; 3],
                [1; 3],
                rng,
                device,
            ));
            c_in = width;
            width *= 2;
            s /= 2;
        }
        convs.push(SnConv3d::new(
            [1, c_in],
            [s; 3],
            [1; 3],
            [0; 3],
            rng,
            device,
        ));
        LowDiscriminator { convs }
    }

    /// Logits `[N]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 1> {
        let last = self.convs.len() - 1;
        let mut x = x;
        for (i, c) in self.convs.iter().enumerate() {
            x = c.forward(x);
            if i < last {
                x = leaky_relu(x, 0.2);
            }
        }
        let n = x.dims()[0];
        x.reshape([n])
    }
}

/// D = (D^H + D^L) / 2.
#[derive(Module, Debug)]
pub struct Discriminator<B: Backend> {
    /// On the high-resolution crop.
    pub high: HighDiscriminator<B>,
    /// On the low-resolution volume.
    pub low: LowDiscriminator<B>,
}

impl<B: KernelBackend> Discriminator<B> {
    /// The averaged logit `[N]`.
    pub fn forward(
        &self,
        crop: Tensor<B, 5>,
        small: Tensor<B, 5>,
        position: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        (self.high.forward(crop, position) + self.low.forward(small)) * 0.5
    }
}
