//! 3-D layers burn 0.21 lacks, shared by the model and generator plugins: ×2 trilinear and nearest
//! up-sampling, ×2 average pooling, a functional 3-D convolution through [`KernelBackend`], and
//! spectral normalisation.
//!
//! Trilinear ×2 (built from slices and concatenations, burn 0.21 has no 3-D interpolate):
//! PyTorch's `interpolate(scale_factor=2, mode="trilinear", align_corners=False)` maps output index
//! `o` to the source coordinate `(o + 0.5) / 2 − 0.5`, clamped at 0 and at the last voxel. Along one
//! axis that is the stencil `out[2i] = ¾ in[i] + ¼ in[i−1]`, `out[2i+1] = ¾ in[i] + ¼ in[i+1]` with
//! the neighbour index clamped to the volume; applied to each spatial axis in turn it is trilinear.

use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorPrimitive};

use dsma_kernels::KernelBackend;

/// Doubles one spatial axis of `[N, C, D, H, W]` with the linear stencil above.
fn double_axis<B: Backend>(x: Tensor<B, 5>, axis: usize) -> Tensor<B, 5> {
    let mut dims = x.dims();
    let n = dims[axis];
    let (prev, next) = if n > 1 {
        (
            Tensor::cat(
                vec![
                    x.clone().narrow(axis, 0, 1),
                    x.clone().narrow(axis, 0, n - 1),
                ],
                axis,
            ),
            Tensor::cat(
                vec![
                    x.clone().narrow(axis, 1, n - 1),
                    x.clone().narrow(axis, n - 1, 1),
                ],
                axis,
            ),
        )
    } else {
        (x.clone(), x.clone())
    };
    let even = x.clone() * 0.75 + prev * 0.25;
    let odd = x * 0.75 + next * 0.25;
    dims[axis] = 2 * n;
    Tensor::stack::<6>(vec![even, odd], axis + 1).reshape(dims)
}

/// ×2 trilinear up-sampling of the three spatial axes of `[N, C, D, H, W]` (`align_corners=False`).
pub fn upsample2_trilinear<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    (2..5).fold(x, double_axis)
}

/// ×2 nearest-neighbour up-sampling of the three spatial axes of `[N, C, D, H, W]` (PyTorch's
/// `interpolate(scale_factor=2)`, its default mode).
pub fn upsample2_nearest<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    (2..5).fold(x, |x, axis| {
        let mut dims = x.dims();
        dims[axis] *= 2;
        Tensor::stack::<6>(vec![x.clone(), x], axis + 1).reshape(dims)
    })
}

/// ×2 average pooling (kernel 2, stride 2) of `[N, C, D, H, W]`; odd sizes drop the last voxel.
pub fn avg_pool2<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    let [n, c, d, h, w] = x.dims();
    let (d2, h2, w2) = (d / 2, h / 2, w / 2);
    let x = x
        .narrow(2, 0, 2 * d2)
        .narrow(3, 0, 2 * h2)
        .narrow(4, 0, 2 * w2);
    x.reshape([n * c * d2, 2, h2, 2, w2, 2])
        .mean_dim(5)
        .mean_dim(3)
        .mean_dim(1)
        .reshape([n, c, d2, h2, w2])
}

/// `conv3d(x, weight) + bias` with a weight computed at run time (modulated or spectrally
/// normalised), through [`KernelBackend`] so the CPU uses dsma's kernels and autodiff records one node.
pub fn conv3d<B: KernelBackend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 3],
    padding: [usize; 3],
) -> Tensor<B, 5> {
    let y = B::conv3d_forward(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.map(|b| b.into_primitive().tensor()),
        ConvOptions::new(stride, padding, [1, 1, 1], 1),
    );
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// The largest singular value σ of `w` reshaped to `[w.dims()[0], rest]`, by `iterations` steps
/// of power iteration (Miyato et al. 2018) on a detached copy, then `σ = uᵀ W v` with the gradient
/// flowing through `W` only (u and v are constants, as in PyTorch's `spectral_norm`). The start
/// vector is fixed (not random, not stored), so the value is a function of `w` alone and resumes
/// exactly; a few iterations from it reach σ to well under 1 % for the matrices of the
/// discriminators (tested against a hand-computed σ).
pub fn spectral_sigma<B: Backend, const D: usize>(
    w: &Tensor<B, D>,
    iterations: usize,
) -> Tensor<B, 1> {
    let dims = w.dims();
    let rows = dims[0];
    let cols = w.shape().num_elements() / rows.max(1);
    let device = w.device();
    let wd = w.clone().detach().reshape([rows, cols]);
    let start: Vec<f32> = (0..rows)
        .map(|i| 1.0 + 0.5 * ((i as f32) * 0.7).sin())
        .collect();
    let mut u = Tensor::<B, 1>::from_floats(start.as_slice(), &device).reshape([rows, 1]);
    u = normalize(u);
    let mut v = normalize(wd.clone().transpose().matmul(u.clone()));
    for _ in 0..iterations {
        u = normalize(wd.clone().matmul(v.clone()));
        v = normalize(wd.clone().transpose().matmul(u.clone()));
    }
    let wv = w.clone().reshape([rows, cols]).matmul(v);
    (u * wv).sum()
}

/// `w / σ(w)` ([`spectral_sigma`]).
pub fn spectral_normalize<B: Backend, const D: usize>(
    w: Tensor<B, D>,
    iterations: usize,
) -> Tensor<B, D> {
    let sigma = spectral_sigma(&w, iterations).reshape([1; D]);
    w / sigma
}

fn normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum().sqrt().add_scalar(1e-12);
    x / norm.reshape([1, 1])
}

/// `[N, C, D, H, W]` down-sampled by an integer `factor` on every spatial axis with nearest
/// neighbours (PyTorch's `interpolate(scale_factor=1/factor)`: output `o` reads input `o·factor`).
pub fn downsample_nearest<B: Backend>(x: Tensor<B, 5>, factor: usize) -> Tensor<B, 5> {
    if factor <= 1 {
        return x;
    }
    (2..5).fold(x, |x, axis| {
        let dims = x.dims();
        let n = dims[axis] / factor;
        let x = x.narrow(axis, 0, n * factor);
        // [.., n, factor, ..] in place of `axis`, then keep the first of every `factor`.
        let mut split = [1usize; 6];
        split[..axis].copy_from_slice(&dims[..axis]);
        split[axis] = n;
        split[axis + 1] = factor;
        split[axis + 2..].copy_from_slice(&dims[axis + 1..]);
        let mut out = dims;
        out[axis] = n;
        x.reshape(split).narrow(axis + 1, 0, 1).reshape(out)
    })
}

/// A 3-D convolution with spectrally normalised weight (BigGAN/HA-GAN's `SNConv3d`): the weight
/// is divided by its largest singular value ([`spectral_sigma`]) at every forward pass.
#[derive(burn::module::Module, Debug)]
pub struct SnConv3d<B: Backend> {
    /// `[out, in, kd, kh, kw]`.
    pub weight: burn::module::Param<Tensor<B, 5>>,
    /// `[out]`.
    pub bias: burn::module::Param<Tensor<B, 1>>,
    /// Stride (d, h, w).
    pub stride: [usize; 3],
    /// Padding (d, h, w).
    pub padding: [usize; 3],
    /// Power iterations per forward pass.
    pub iterations: usize,
}

impl<B: KernelBackend> SnConv3d<B> {
    /// PyTorch's default initialisation (uniform ±1/√fan_in for weight and bias) from `rng`.
    pub fn new(
        io: [usize; 2],
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        rng: &mut rand_chacha::ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let fan_in = io[1] * kernel.iter().product::<usize>();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let shape = [io[0], io[1], kernel[0], kernel[1], kernel[2]];
        SnConv3d {
            weight: burn::module::Param::from_tensor(uniform_tensor(shape, bound, rng, device)),
            bias: burn::module::Param::from_tensor(uniform_tensor([io[0]], bound, rng, device)),
            stride,
            padding,
            iterations: 1,
        }
    }
    /// The convolution with `W / σ(W)`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let w = spectral_normalize(self.weight.val(), self.iterations);
        conv3d(x, w, Some(self.bias.val()), self.stride, self.padding)
    }
}

/// A linear layer with spectrally normalised weight (`SNLinear`).
#[derive(burn::module::Module, Debug)]
pub struct SnLinear<B: Backend> {
    /// `[out, in]`.
    pub weight: burn::module::Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: burn::module::Param<Tensor<B, 1>>,
    /// Power iterations per forward pass.
    pub iterations: usize,
}

impl<B: Backend> SnLinear<B> {
    /// PyTorch's default initialisation from `rng`.
    pub fn new(
        inputs: usize,
        outputs: usize,
        rng: &mut rand_chacha::ChaCha8Rng,
        device: &B::Device,
    ) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        SnLinear {
            weight: burn::module::Param::from_tensor(uniform_tensor(
                [outputs, inputs],
                bound,
                rng,
                device,
            )),
            bias: burn::module::Param::from_tensor(uniform_tensor([outputs], bound, rng, device)),
            iterations: 1,
        }
    }
    /// `x Wᵀ/σ + b` for `x: [N, in]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let w = spectral_normalize(self.weight.val(), self.iterations);
        x.matmul(w.transpose()) + self.bias.val().unsqueeze::<2>()
    }
}

/// A tensor of `shape` with values uniform in `[-bound, bound)` from `rng` (backend-independent
/// initialisation).
pub fn uniform_tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    bound: f32,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &B::Device,
) -> Tensor<B, D> {
    use rand::RngExt;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
    Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape(shape)
}

/// A tensor of `shape` with standard-normal values from `rng`.
pub fn normal_tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &B::Device,
) -> Tensor<B, D> {
    use rand_distr::{Distribution, StandardNormal};
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::<B, 1>::from_floats(v.as_slice(), device).reshape(shape)
}

/// burn's `Conv3d` (kernel `k`³, `stride`, `padding`, bias) initialised as PyTorch does (uniform
/// ±1/√fan_in for weight and bias) from `rng` rather than the backend's global RNG, so a network
/// built while other work runs in the process is still reproducible.
pub fn conv3d_init<B: Backend>(
    io: [usize; 2],
    k: usize,
    stride: usize,
    padding: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &B::Device,
) -> burn::nn::conv::Conv3d<B> {
    use burn::nn::conv::Conv3dConfig;
    use burn::nn::{Initializer, PaddingConfig3d};
    let [cin, cout] = io;
    let mut conv = Conv3dConfig::new([cin, cout], [k; 3])
        .with_stride([stride; 3])
        .with_padding(PaddingConfig3d::Explicit(padding, padding, padding))
        .with_initializer(Initializer::Zeros)
        .init(device);
    let bound = 1.0 / ((cin * k * k * k) as f32).sqrt();
    conv.weight =
        burn::module::Param::from_tensor(uniform_tensor([cout, cin, k, k, k], bound, rng, device));
    conv.bias = Some(burn::module::Param::from_tensor(uniform_tensor(
        [cout],
        bound,
        rng,
        device,
    )));
    conv
}

/// burn's `Linear` initialised as PyTorch does, from `rng`.
pub fn linear_init<B: Backend>(
    inputs: usize,
    outputs: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &B::Device,
) -> burn::nn::Linear<B> {
    use burn::nn::{Initializer, LinearConfig};
    let mut l = LinearConfig::new(inputs, outputs)
        .with_initializer(Initializer::Zeros)
        .init(device);
    let bound = 1.0 / (inputs as f32).sqrt();
    l.weight =
        burn::module::Param::from_tensor(uniform_tensor([inputs, outputs], bound, rng, device));
    l.bias = Some(burn::module::Param::from_tensor(uniform_tensor(
        [outputs],
        bound,
        rng,
        device,
    )));
    l
}
