//! Building blocks of NestedFormer: conv blocks, channel layer norm, the global Poolformer token mixer,
//! multi-head attention, tri-orientated spatial attention and 3-D window attention.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{
    InstanceNorm, InstanceNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig,
    PaddingConfig3d,
};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use dsma_kernels::channel_norm::channel_norm;
use dsma_kernels::KernelBackend;
use dsma_kernels::{Activation, ConvForward, NormForward};

/// Conv3d → InstanceNorm (no affine) → ReLU (the official `Convolution`).
#[derive(Module, Debug)]
pub struct ConvNorm<B: Backend> {
    conv: Conv3d<B>,
    norm: InstanceNorm<B>,
}

impl<B: KernelBackend> ConvNorm<B> {
    /// `kernel`³ convolution with `padding`, stride 1.
    pub fn new(cin: usize, cout: usize, kernel: usize, padding: usize, device: &B::Device) -> Self {
        ConvNorm {
            conv: Conv3dConfig::new([cin, cout], [kernel; 3])
                .with_padding(PaddingConfig3d::Explicit(padding, padding, padding))
                .init(device),
            norm: InstanceNormConfig::new(cout)
                .with_affine(false)
                .init(device),
        }
    }
    /// Applies the block.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.norm.run_then(self.conv.run(x), Activation::Relu)
    }
}

/// Two 3×3×3 `ConvNorm`s (the official `TwoConv`).
#[derive(Module, Debug)]
pub struct TwoConv<B: Backend> {
    a: ConvNorm<B>,
    b: ConvNorm<B>,
}

impl<B: KernelBackend> TwoConv<B> {
    /// `cin` → `cout` → `cout`.
    pub fn new(cin: usize, cout: usize, device: &B::Device) -> Self {
        TwoConv {
            a: ConvNorm::new(cin, cout, 3, 1, device),
            b: ConvNorm::new(cout, cout, 3, 1, device),
        }
    }
    /// Applies both blocks.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.b.forward(self.a.forward(x))
    }
}

/// Layer norm over the channel axis of `[B, C, D, H, W]` (PoolFormer's `LayerNormChannel`).
#[derive(Module, Debug)]
pub struct LayerNormChannel<B: Backend> {
    weight: Param<Tensor<B, 1>>,
    bias: Param<Tensor<B, 1>>,
    eps: f64,
}

impl<B: KernelBackend> LayerNormChannel<B> {
    /// Weight 1, bias 0.
    pub fn new(channels: usize, eps: f64, device: &B::Device) -> Self {
        LayerNormChannel {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            eps,
        }
    }
    /// Normalises every voxel's channel vector.
    /// One fused op of [`KernelBackend`] (`dsma_kernels::channel_norm`): on the CPU a kernel in
    /// two passes over memory instead of six broadcasting tensor ops.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        channel_norm(x, self.weight.val(), self.bias.val(), self.eps)
    }
}

/// 1×1×1 conv → GELU → 1×1×1 conv (the Poolformer MLP).
#[derive(Module, Debug)]
pub struct MlpChannel<B: Backend> {
    fc1: Conv3d<B>,
    fc2: Conv3d<B>,
}

impl<B: KernelBackend> MlpChannel<B> {
    /// `c` → `hidden` → `c`.
    pub fn new(c: usize, hidden: usize, device: &B::Device) -> Self {
        MlpChannel {
            fc1: Conv3dConfig::new([c, hidden], [1, 1, 1]).init(device),
            fc2: Conv3dConfig::new([hidden, c], [1, 1, 1]).init(device),
        }
    }
    /// Applies the MLP.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.fc2.run(dsma_kernels::gelu(self.fc1.run(x)))
    }
}

/// Global token mixer of the released code: the spatial mean of each channel, mapped by a Linear
/// layer to one value per voxel; its width D·H·W fixes the input size.
#[derive(Module, Debug)]
pub struct GlobalPool<B: Backend> {
    linear: Linear<B>,
    size: [usize; 3],
}

impl<B: KernelBackend> GlobalPool<B> {
    /// For feature maps of `size` (D, H, W).
    pub fn new(size: [usize; 3], device: &B::Device) -> Self {
        GlobalPool {
            linear: LinearConfig::new(1, size.iter().product()).init(device),
            size,
        }
    }
    /// `[B, C, D, H, W]` → same shape.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, c, d, h, w] = x.dims();
        assert_eq!(
            [d, h, w],
            self.size,
            "nestedformer: feature map {:?} where the global token mixer was built for {:?}; the input size must equal the `image_size` parameter",
            [d, h, w],
            self.size
        );
        let mean = x.reshape([b, c, d * h * w]).mean_dim(2);
        self.linear.forward(mean).reshape([b, c, d, h, w])
    }
}

/// One Poolformer block: `x + mix(n) + n` with `n = norm(x)`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
pub struct PoolBlock<B: Backend> {
    norm1: LayerNormChannel<B>,
    mixer: GlobalPool<B>,
    norm2: LayerNormChannel<B>,
    mlp: MlpChannel<B>,
}

impl<B: KernelBackend> PoolBlock<B> {
    /// `c` channels on maps of `size`.
    pub fn new(c: usize, size: [usize; 3], device: &B::Device) -> Self {
        PoolBlock {
            norm1: LayerNormChannel::new(c, 1e-6, device),
            mixer: GlobalPool::new(size, device),
            norm2: LayerNormChannel::new(c, 1e-6, device),
            mlp: MlpChannel::new(c, 2 * c, device),
        }
    }
    /// Applies the block.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let n = self.norm1.forward(x.clone());
        let x = self.mixer.forward(n.clone()) + n + x;
        let y = self.mlp.forward(self.norm2.forward(x.clone()));
        x + y
    }
}

/// A stride-2 encoder stage: patch-embedding conv (kernel = stride = 2) + channel norm + two blocks.
#[derive(Module, Debug)]
pub struct PoolStage<B: Backend> {
    embed: Conv3d<B>,
    norm: LayerNormChannel<B>,
    blocks: Vec<PoolBlock<B>>,
}

impl<B: KernelBackend> PoolStage<B> {
    /// `cin` → `cout`, output maps of `size`.
    pub fn new(cin: usize, cout: usize, size: [usize; 3], device: &B::Device) -> Self {
        PoolStage {
            embed: Conv3dConfig::new([cin, cout], [2, 2, 2])
                .with_stride([2, 2, 2])
                .init(device),
            norm: LayerNormChannel::new(cout, 1e-5, device),
            blocks: (0..2).map(|_| PoolBlock::new(cout, size, device)).collect(),
        }
    }
    /// Applies the stage.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let mut x = self.norm.forward(self.embed.run(x));
        for b in &self.blocks {
            x = b.forward(x);
        }
        x
    }
}

/// Multi-head attention with separate query/key/value projections (`kv` may differ from `q`).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    out: Linear<B>,
    heads: usize,
}

impl<B: KernelBackend> Attention<B> {
    /// `c` channels, `heads` heads.
    pub fn new(c: usize, heads: usize, device: &B::Device) -> Self {
        let l = || LinearConfig::new(c, c).init(device);
        Attention {
            query: l(),
            key: l(),
            value: l(),
            out: l(),
            heads,
        }
    }
    /// `q` `[B, N, C]` attends to `kv` `[B, M, C]`.
    pub fn forward(&self, q: Tensor<B, 3>, kv: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, c] = q.dims();
        let m = kv.dims()[1];
        let hd = c / self.heads;
        let split =
            |t: Tensor<B, 3>, len: usize| t.reshape([b, len, self.heads, hd]).swap_dims(1, 2);
        let qh = split(self.query.forward(q), n);
        let kh = split(self.key.forward(kv.clone()), m);
        let vh = split(self.value.forward(kv), m);
        let scores = qh.matmul(kh.swap_dims(2, 3)) / (hd as f64).sqrt();
        let ctx = softmax(scores, 3).matmul(vh);
        self.out.forward(ctx.swap_dims(1, 2).reshape([b, n, c]))
    }
}

/// Linear → GELU → Linear on token sequences.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: KernelBackend> Mlp<B> {
    /// `c` → `hidden` → `c`.
    pub fn new(c: usize, hidden: usize, device: &B::Device) -> Self {
        Mlp {
            fc1: LinearConfig::new(c, hidden).init(device),
            fc2: LinearConfig::new(hidden, c).init(device),
        }
    }
    /// Applies the MLP.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.fc2.forward(dsma_kernels::gelu(self.fc1.forward(x)))
    }
}

/// Indices into a `(2w−1)`³ relative-position table for every pair of the `w₀·w₁·w₂` window voxels.
pub fn relative_indices(window: [usize; 3]) -> (Vec<i64>, usize) {
    let k = 2 * window.iter().copied().max().unwrap_or(1) - 1;
    let shift = (window.iter().copied().max().unwrap_or(1) - 1) as i64;
    let pos: Vec<[i64; 3]> = (0..window[0])
        .flat_map(|a| {
            (0..window[1])
                .flat_map(move |b| (0..window[2]).map(move |c| [a as i64, b as i64, c as i64]))
        })
        .collect();
    let mut idx = Vec::with_capacity(pos.len() * pos.len());
    for i in &pos {
        for j in &pos {
            let d = [
                j[0] - i[0] + shift,
                j[1] - i[1] + shift,
                j[2] - i[2] + shift,
            ];
            idx.push((d[0] * k as i64 + d[1]) * k as i64 + d[2]);
        }
    }
    (idx, k)
}

/// Self-attention inside non-overlapping 3-D windows, with a learned relative-position bias.
#[derive(Module, Debug)]
pub struct WindowAttention<B: Backend> {
    qkv: Linear<B>,
    out: Linear<B>,
    table: Param<Tensor<B, 3>>,
    heads: usize,
    window: [usize; 3],
}

impl<B: KernelBackend> WindowAttention<B> {
    /// `c` channels, `heads` heads, windows of `window` voxels (same axis order as the input).
    pub fn new(c: usize, heads: usize, window: [usize; 3], device: &B::Device) -> Self {
        let (_, k) = relative_indices(window);
        WindowAttention {
            qkv: LinearConfig::new(c, 3 * c).with_bias(false).init(device),
            out: LinearConfig::new(c, c).init(device),
            table: Param::from_tensor(Tensor::random(
                [k, k, k],
                Distribution::Normal(0.0, 1.0),
                device,
            )),
            heads,
            window,
        }
    }
    /// `[B, D, H, W, C]` → same shape.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, d, h, w, c] = x.dims();
        let [wd, wh, ww] = self.window;
        let (nd, nh, nw) = (d / wd, h / wh, w / ww);
        let (n, hd) = (wd * wh * ww, c / self.heads);
        let windows = nd * nh * nw;
        let qkv = self.qkv.forward(x);
        // [B, D, H, W, 3C] → [B·windows, n, 3C]
        let t = qkv
            .reshape([b * nd, wd, nh, wh, nw * ww * 3 * c])
            .reshape([b * nd, wd, nh, wh, nw, ww, 3 * c])
            .permute([0, 2, 4, 1, 3, 5, 6])
            .reshape([b * windows, n, 3 * c]);
        let split = |i: usize| {
            t.clone()
                .narrow(2, i * c, c)
                .reshape([b * windows, n, self.heads, hd])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let (idx, _) = relative_indices(self.window);
        let device = q.device();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n * n]), &device);
        let bias = self
            .table
            .val()
            .reshape([-1])
            .select(0, idx)
            .reshape([1, 1, n, n]);
        let scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt() + bias;
        let ctx = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b * windows, n, c]);
        let o = self.out.forward(ctx);
        o.reshape([b * nd, nh, nw, wd, wh, ww, c])
            .permute([0, 3, 1, 4, 2, 5, 6])
            .reshape([b, d, h, w, c])
    }
}

/// Tri-orientated spatial attention block (NMaFA's first part): attention within slices (H·W tokens
/// per D index), along D (per H, W position), and in 3-D windows; summed; pre-norm residual + MLP.
#[derive(Module, Debug)]
pub struct SpatialBlock<B: Backend> {
    norm1: LayerNorm<B>,
    slice_att: Attention<B>,
    depth_att: Attention<B>,
    window_att: WindowAttention<B>,
    pos_slice: Option<Param<Tensor<B, 3>>>,
    pos_depth: Option<Param<Tensor<B, 3>>>,
    norm2: LayerNorm<B>,
    mlp: Mlp<B>,
}

impl<B: KernelBackend> SpatialBlock<B> {
    /// `c` channels on `size` (D, H, W) maps; position embeddings in the first block only.
    pub fn new(
        c: usize,
        heads: usize,
        mlp: usize,
        size: [usize; 3],
        window: [usize; 3],
        position: bool,
        device: &B::Device,
    ) -> Self {
        let zeros = |n: usize| Param::from_tensor(Tensor::zeros([1, n, c], device));
        SpatialBlock {
            norm1: LayerNormConfig::new(c).with_epsilon(1e-6).init(device),
            slice_att: Attention::new(c, heads, device),
            depth_att: Attention::new(c, heads, device),
            window_att: WindowAttention::new(c, heads, window, device),
            pos_slice: position.then(|| zeros(size[1] * size[2])),
            pos_depth: position.then(|| zeros(size[0])),
            norm2: LayerNormConfig::new(c).with_epsilon(1e-6).init(device),
            mlp: Mlp::new(c, mlp, device),
        }
    }
    /// `[B, C, D, H, W]` → same shape.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, c, d, h, w] = x.dims();
        let tokens = x.permute([0, 2, 3, 4, 1]); // [B, D, H, W, C]
        let n = self.norm1.forward(tokens.clone());
        let mut s = n.clone().reshape([b * d, h * w, c]);
        if let Some(p) = &self.pos_slice {
            s = s + p.val();
        }
        let s = self
            .slice_att
            .forward(s.clone(), s)
            .reshape([b, d, h, w, c]);
        let mut z = n
            .clone()
            .permute([0, 2, 3, 1, 4])
            .reshape([b * h * w, d, c]);
        if let Some(p) = &self.pos_depth {
            z = z + p.val();
        }
        let z = self
            .depth_att
            .forward(z.clone(), z)
            .reshape([b, h, w, d, c])
            .permute([0, 3, 1, 2, 4]);
        let win = self.window_att.forward(n);
        let x = tokens + s + z + win;
        let y = self.mlp.forward(self.norm2.forward(x.clone()));
        (x + y).permute([0, 4, 1, 2, 3])
    }
}

/// Learns `tokens` summary tokens from a feature map (TokenLearner): sigmoid maps from a 3×3×3 conv
/// weight the voxels, averaged over space.
#[derive(Module, Debug)]
pub struct TokenLearner<B: Backend> {
    conv: Conv3d<B>,
}

impl<B: KernelBackend> TokenLearner<B> {
    /// `c` channels → `tokens` tokens.
    pub fn new(c: usize, tokens: usize, device: &B::Device) -> Self {
        TokenLearner {
            conv: Conv3dConfig::new([c, tokens], [3, 3, 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .init(device),
        }
    }
    /// `[B, C, D, H, W]` → `[B, tokens, C]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 3> {
        let [b, c, d, h, w] = x.dims();
        let n = d * h * w;
        let sel = burn::tensor::activation::sigmoid(self.conv.run(x.clone()));
        let s = sel.dims()[1];
        let sel = sel.reshape([b, s, n]);
        let feats = x.reshape([b, c, n]).swap_dims(1, 2); // [B, N, C]
        sel.matmul(feats) / n as f64
    }
}
