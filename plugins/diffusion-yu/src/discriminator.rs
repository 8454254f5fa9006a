//! ADDM's discriminator (reconstruction, comparators.md §4.2): four spectrally normalised stride-2
//! 4³ convolutions (C, 2C, 4C, 8C; leaky ReLU 0.2), the sinusoidal embedding of t projected to C
//! channels and added after the first convolution, global average pooling, a spectrally
//! normalised linear layer to one logit.

use burn::module::Module;
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use dsma_kernels::KernelBackend;
use dsma_train::diffusion::unet::timestep_embedding;
use dsma_train::layers::{SnConv3d, SnLinear};
use rand_chacha::ChaCha8Rng;

/// `D(x, t)`.
#[derive(Module, Debug)]
pub struct TimeDiscriminator<B: Backend> {
    /// The four strided convolutions.
    pub convs: Vec<SnConv3d<B>>,
    /// t embedding → C.
    pub time: SnLinear<B>,
    /// 8C → 1.
    pub out: SnLinear<B>,
    /// C.
    pub channels: usize,
}

impl<B: KernelBackend> TimeDiscriminator<B> {
    /// Widths C, 2C, 4C, 8C; `iterations` power iterations per spectral norm.
    pub fn new(c: usize, iterations: usize, rng: &mut ChaCha8Rng, device: &B::Device) -> Self {
        let widths = [c, 2 * c, 4 * c, 8 * c];
        let mut convs = Vec::new();
        let mut prev = 1;
        for w in widths {
            let mut conv = SnConv3d::new([w, prev], [4; 3], [2; 3], [1; 3], rng, device);
            conv.iterations = iterations;
            convs.push(conv);
            prev = w;
        }
        let mut time = SnLinear::new(c, c, rng, device);
        time.iterations = iterations;
        let mut out = SnLinear::new(8 * c, 1, rng, device);
        out.iterations = iterations;
        TimeDiscriminator {
            convs,
            time,
            out,
            channels: c,
        }
    }

    /// Logits `[N]` for `x: [N, 1, D, H, W]` at timesteps `t`.
    pub fn forward(&self, x: Tensor<B, 5>, t: &[usize]) -> Tensor<B, 1> {
        let n = t.len();
        let temb = timestep_embedding::<B>(t, self.channels, &x.device());
        let temb = self.time.forward(temb).reshape([n, self.channels, 1, 1, 1]);
        let mut h = x;
        for (i, c) in self.convs.iter().enumerate() {
            h = leaky_relu(c.forward(h), 0.2);
            if i == 0 {
                h = h + temb.clone();
            }
        }
        let [_, ch, d, hh, w] = h.dims();
        let pooled = h.reshape([n, ch, d * hh * w]).mean_dim(2).reshape([n, ch]);
        self.out.forward(pooled).reshape([n])
    }
}
