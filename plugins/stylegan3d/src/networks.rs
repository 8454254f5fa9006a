//! The 3D-StyleGAN networks (`training/networks3d_stylegan2.py` of sh4174/3DStyleGAN): mapping,
//! synthesis with modulated/demodulated convolutions and noise inputs, resnet discriminator with
//! minibatch standard deviation. Every weight uses the equalized learning rate (stored N(0, 1/lr_mul²),
//! scaled at run time by `lr_mul/√fan_in`).

use burn::module::{Module, Param};
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_kernels::KernelBackend;
use dsma_train::layers::{avg_pool2, conv3d, normal_tensor, upsample2_trilinear};
use rand_chacha::ChaCha8Rng;

/// `lrelu(x, 0.2) · √2` (StyleGAN's activation with its default gain).
pub fn lrelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    leaky_relu(x, 0.2) * std::f64::consts::SQRT_2
}

/// Dense layer with equalized learning rate.
#[derive(Module, Debug)]
pub struct EqDense<B: Backend> {
    /// `[out, in]`, stored scaled by `1/lr_mul`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
    /// Run-time weight coefficient `lr_mul/√in`.
    pub w_gain: f64,
    /// Run-time bias coefficient `lr_mul`.
    pub b_gain: f64,
}

impl<B: Backend> EqDense<B> {
    /// Weights N(0, 1/lr_mul²), bias `bias_init / lr_mul` (so the effective bias starts at `bias_init`).
    pub fn new(
        inputs: usize,
        outputs: usize,
        lr_mul: f64,
        bias_init: f64,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        EqDense {
            weight: Param::from_tensor(normal_tensor([outputs, inputs], rng, device) / lr_mul),
            bias: Param::from_tensor(Tensor::ones([outputs], device) * (bias_init / lr_mul)),
            w_gain: lr_mul / (inputs as f64).sqrt(),
            b_gain: lr_mul,
        }
    }
    /// `x (w_gain W)ᵀ + b_gain b`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = self.weight.val() * self.w_gain;
        x.matmul(w.transpose()) + (self.bias.val() * self.b_gain).unsqueeze::<2>()
    }
}

/// The mapping network: pixel norm, then dense layers with leaky ReLU.
#[derive(Module, Debug)]
pub struct Mapping<B: Backend> {
    /// The dense layers.
    pub layers: Vec<EqDense<B>>,
}

impl<B: Backend> Mapping<B> {
    /// `layers` dense layers of width `width` (the last `dlatent`), learning-rate multiplier `lr_mul`.
    pub fn new(
        latent: usize,
        width: usize,
        dlatent: usize,
        layers: usize,
        lr_mul: f64,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let layers = (0..layers)
            .map(|i| {
                let inp = if i == 0 { latent } else { width };
                let out = if i + 1 == layers { dlatent } else { width };
                EqDense::new(inp, out, lr_mul, 0.0, rng, device)
            })
            .collect();
        Mapping { layers }
    }
    /// `z: [N, latent]` → `w: [N, dlatent]`.
    pub fn forward(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        let norm = (z.clone().powi_scalar(2).mean_dim(1) + 1e-8).sqrt();
        let mut x = z / norm;
        for l in &self.layers {
            x = lrelu(l.forward(x));
        }
        x
    }
}

/// Modulated 3-D convolution (StyleGAN2's `modulated_conv2d_layer` in 3-D, non-fused path):
/// `s = A(w) + 1`; `y = conv(x · s, W) · d` with `d_o = 1/√(Σ_{i,k} (W_{o,i,k} s_i)² + 1e-8)`
/// when demodulating; then noise · strength, bias, activation.
#[derive(Module, Debug)]
pub struct ModConv<B: Backend> {
    /// `[out, in, k, k, k]`, N(0, 1).
    pub weight: Param<Tensor<B, 5>>,
    /// Style affine `dlatent → in` (effective bias starts at 0; the `+ 1` is in `forward`).
    pub affine: EqDense<B>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
    /// Learned noise scale (starts at 0); toRGB has none.
    pub noise_strength: Option<Param<Tensor<B, 1>>>,
    /// Kernel edge.
    pub kernel: usize,
    /// Demodulate (every layer but toRGB).
    pub demodulate: bool,
    /// Noise input and activation (every layer but toRGB).
    pub activate: bool,
}

impl<B: KernelBackend> ModConv<B> {
    /// A layer `inputs → outputs` with a `kernel`³ filter.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        dlatent: usize,
        to_rgb: bool,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        ModConv {
            weight: Param::from_tensor(normal_tensor(
                [outputs, inputs, kernel, kernel, kernel],
                rng,
                device,
            )),
            affine: EqDense::new(dlatent, inputs, 1.0, 0.0, rng, device),
            bias: Param::from_tensor(Tensor::zeros([outputs], device)),
            noise_strength: (!to_rgb).then(|| Param::from_tensor(Tensor::zeros([1], device))),
            kernel,
            demodulate: !to_rgb,
            activate: !to_rgb,
        }
    }

    /// The style `s = A(w) + 1`, `[N, in]`.
    pub fn style(&self, w: Tensor<B, 2>) -> Tensor<B, 2> {
        self.affine.forward(w) + 1.0
    }

    /// The demodulation coefficients `d`, `[N, out]`, for styles `s: [N, in]`.
    pub fn demodulation(&self, s: Tensor<B, 2>) -> Tensor<B, 2> {
        let [o, i, k, _, _] = self.weight.dims();
        let scale = 1.0 / ((i * k * k * k) as f64).sqrt();
        let w2 = (self.weight.val() * scale)
            .powi_scalar(2)
            .reshape([o, i, k * k * k])
            .sum_dim(2)
            .reshape([o, i]);
        (s.powi_scalar(2).matmul(w2.transpose()) + 1e-8)
            .sqrt()
            .recip()
    }

    /// `x: [N, in, D, H, W]`, `w: [N, dlatent]`, `noise: [N, 1, D, H, W]` (ignored by toRGB).
    pub fn forward(
        &self,
        x: Tensor<B, 5>,
        w: Tensor<B, 2>,
        noise: Option<Tensor<B, 5>>,
    ) -> Tensor<B, 5> {
        let [n, i, _, _, _] = x.dims();
        let [o, _, k, _, _] = self.weight.dims();
        let s = self.style(w);
        let scale = 1.0 / ((i * k * k * k) as f64).sqrt();
        let pad = self.kernel / 2;
        let mut y = conv3d(
            x * s.clone().reshape([n, i, 1, 1, 1]),
            self.weight.val() * scale,
            None,
            [1; 3],
            [pad; 3],
        );
        if self.demodulate {
            y = y * self.demodulation(s).reshape([n, o, 1, 1, 1]);
        }
        if let (Some(noise), Some(strength)) = (noise, &self.noise_strength) {
            y = y + noise * strength.val().reshape([1, 1, 1, 1, 1]);
        }
        y = y + self.bias.val().reshape([1, o, 1, 1, 1]);
        if self.activate {
            lrelu(y)
        } else {
            y
        }
    }
}

/// The synthesis network (architecture `orig`): learned constant, one layer at the base size,
/// two per ×2 block (trilinear up-sampling, then two modulated 3³ convolutions), one toRGB.
#[derive(Module, Debug)]
pub struct Synthesis<B: Backend> {
    /// `[1, F, base_d, base_h, base_w]`.
    pub constant: Param<Tensor<B, 5>>,
    /// The modulated 3³ layers.
    pub layers: Vec<ModConv<B>>,
    /// Modulated 1³ convolution to one channel.
    pub to_rgb: ModConv<B>,
}

impl<B: KernelBackend> Synthesis<B> {
    /// Width `f`, base size `base` (`[d, h, w]`), `blocks` doublings.
    pub fn new(
        f: usize,
        base: [usize; 3],
        blocks: usize,
        dlatent: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        Synthesis {
            constant: Param::from_tensor(normal_tensor(
                [1, f, base[0], base[1], base[2]],
                rng,
                device,
            )),
            layers: (0..1 + 2 * blocks)
                .map(|_| ModConv::new(f, f, 3, dlatent, false, rng, device))
                .collect(),
            to_rgb: ModConv::new(f, 1, 1, dlatent, true, rng, device),
        }
    }

    /// Number of `w` inputs (one per layer, toRGB included).
    pub fn num_ws(&self) -> usize {
        self.layers.len() + 1
    }

    /// `ws[l]: [N, dlatent]` per layer; `noise[l]: [N, 1, …]` per 3³ layer at its resolution.
    pub fn forward(&self, ws: &[Tensor<B, 2>], noise: Vec<Tensor<B, 5>>) -> Tensor<B, 5> {
        let n = ws[0].dims()[0];
        let [_, f, d, h, w] = self.constant.dims();
        let mut x = self.constant.val().expand([n, f, d, h, w]);
        let mut noise = noise.into_iter();
        for (l, layer) in self.layers.iter().enumerate() {
            if l > 0 && l % 2 == 1 {
                x = upsample2_trilinear(x);
            }
            x = layer.forward(x, ws[l].clone(), noise.next());
        }
        self.to_rgb.forward(x, ws[self.layers.len()].clone(), None)
    }

    /// The `[d, h, w]` size of layer `l`'s output.
    pub fn layer_size(&self, l: usize) -> [usize; 3] {
        let [_, _, d, h, w] = self.constant.dims();
        let up = 1usize << l.div_ceil(2);
        [d * up, h * up, w * up]
    }
}

/// The generator: mapping and synthesis.
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    /// z → w.
    pub mapping: Mapping<B>,
    /// w → volume.
    pub synthesis: Synthesis<B>,
}

/// A convolution with equalized learning rate (the discriminator's layers).
#[derive(Module, Debug)]
pub struct EqConv<B: Backend> {
    /// `[out, in, k, k, k]`, N(0, 1).
    pub weight: Param<Tensor<B, 5>>,
    /// `[out]`, absent on the resnet skips.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: KernelBackend> EqConv<B> {
    /// `inputs → outputs`, `kernel`³.
    pub fn new(
        inputs: usize,
        outputs: usize,
        kernel: usize,
        bias: bool,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        EqConv {
            weight: Param::from_tensor(normal_tensor(
                [outputs, inputs, kernel, kernel, kernel],
                rng,
                device,
            )),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([outputs], device))),
        }
    }
    /// Stride-1 "same" convolution.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [_, i, k, _, _] = self.weight.dims();
        let scale = 1.0 / ((i * k * k * k) as f64).sqrt();
        conv3d(
            x,
            self.weight.val() * scale,
            self.bias.as_ref().map(|b| b.val()),
            [1; 3],
            [k / 2; 3],
        )
    }
}

/// One resnet block of the discriminator: two 3³ convolutions (the second followed by ×2
/// average pooling) plus a pooled 1³ skip, summed with `1/√2`.
#[derive(Module, Debug)]
pub struct DBlock<B: Backend> {
    /// First 3³ convolution.
    pub conv0: EqConv<B>,
    /// Second 3³ convolution (then pooled).
    pub conv1: EqConv<B>,
    /// 1³ skip, no bias.
    pub skip: EqConv<B>,
}

impl<B: KernelBackend> DBlock<B> {
    /// Forward pass, halving the size.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let t = self.skip.forward(avg_pool2(x.clone()));
        let y = lrelu(self.conv0.forward(x));
        let y = lrelu(avg_pool2(self.conv1.forward(y)));
        (y + t) * std::f64::consts::FRAC_1_SQRT_2
    }
}

/// The resnet discriminator.
#[derive(Module, Debug)]
pub struct Discriminator<B: Backend> {
    /// 1³ convolution from the image.
    pub from_rgb: EqConv<B>,
    /// Blocks from the full size down to the base size.
    pub blocks: Vec<DBlock<B>>,
    /// 3³ convolution after the minibatch-stddev feature.
    pub head_conv: EqConv<B>,
    /// Dense to `F`.
    pub dense: EqDense<B>,
    /// Dense to the logit.
    pub out: EqDense<B>,
    /// Minibatch-stddev group size.
    pub mbstd_group: usize,
}

impl<B: KernelBackend> Discriminator<B> {
    /// Width `f`, `blocks` halvings down to `base`.
    pub fn new(
        f: usize,
        base: [usize; 3],
        blocks: usize,
        mbstd_group: usize,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let block = |rng: &mut ChaCha8Rng| DBlock {
            conv0: EqConv::new(f, f, 3, true, rng, device),
            conv1: EqConv::new(f, f, 3, true, rng, device),
            skip: EqConv::new(f, f, 1, false, rng, device),
        };
        Discriminator {
            from_rgb: EqConv::new(1, f, 1, true, rng, device),
            blocks: (0..blocks).map(|_| block(rng)).collect(),
            head_conv: EqConv::new(f + 1, f, 3, true, rng, device),
            dense: EqDense::new(f * base.iter().product::<usize>(), f, 1.0, 0.0, rng, device),
            out: EqDense::new(f, 1, 1.0, 0.0, rng, device),
            mbstd_group,
        }
    }

    /// Logits `[N]` of `x: [N, 1, D, H, W]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 1> {
        let mut x = lrelu(self.from_rgb.forward(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = minibatch_stddev(x, self.mbstd_group);
        let x = lrelu(self.head_conv.forward(x));
        let [n, c, d, h, w] = x.dims();
        let x = lrelu(self.dense.forward(x.reshape([n, c * d * h * w])));
        self.out.forward(x).reshape([n])
    }
}

/// Appends the minibatch standard deviation as one feature map (StyleGAN2's `minibatch_stddev_layer`,
/// one feature): samples `n = g·M + m` form groups by `m`; each group's per-feature std over its
/// `G` members, averaged over features and voxels, is broadcast to its members.
pub fn minibatch_stddev<B: Backend>(x: Tensor<B, 5>, group: usize) -> Tensor<B, 5> {
    let [n, c, d, h, w] = x.dims();
    let g = if group > 0 && n % group.min(n) == 0 {
        group.min(n)
    } else {
        n
    };
    let m = n / g;
    let y = x.clone().reshape([g, m, c * d * h * w]);
    let centred = y.clone() - y.mean_dim(0);
    let std = (centred.powi_scalar(2).mean_dim(0) + 1e-8).sqrt(); // [1, m, K]
    let s = std
        .mean_dim(2)
        .reshape([1, m])
        .expand([g, m])
        .reshape([n, 1, 1, 1, 1]);
    let feature = s.expand([n, 1, d, h, w]);
    Tensor::cat(vec![x, feature], 1)
}
