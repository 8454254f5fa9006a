//! Group normalisation in burn tensor ops on any backend: the types the norm ops of
//! [`crate::KernelBackend`] exchange, and the generic forward and backward (what Cuda and the
//! burn-flex fallbacks use). Equations in [`crate::norm_kernels`].

use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::norm_kernels::Activation;

/// Per-`(n, g)` statistics of a forward pass, `[N, G]` each.
#[derive(Debug, Clone)]
pub struct NormStats<B: Backend> {
    /// Mean of each group.
    pub mean: FloatTensor<B>,
    /// `1/√(σ² + ε)` of each group.
    pub rstd: FloatTensor<B>,
}

/// A forward pass's output and statistics.
#[derive(Debug, Clone)]
pub struct NormOutput<B: Backend> {
    /// The normalised tensor.
    pub y: FloatTensor<B>,
    /// What the backward needs.
    pub stats: NormStats<B>,
}

/// A backward pass's gradients (`gamma`/`beta` for affine norms).
#[derive(Debug, Clone)]
pub struct NormGradients<B: Backend> {
    /// With respect to `x`.
    pub x: FloatTensor<B>,
    /// With respect to `γ`.
    pub gamma: Option<FloatTensor<B>>,
    /// With respect to `β`.
    pub beta: Option<FloatTensor<B>>,
}

pub(crate) fn t5<B: Backend>(t: FloatTensor<B>) -> Tensor<B, 5> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

pub(crate) fn t1<B: Backend>(t: FloatTensor<B>) -> Tensor<B, 1> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

pub(crate) fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// `act` applied to `z` with burn tensor ops.
fn activate<B: Backend>(z: Tensor<B, 5>, act: Activation) -> Tensor<B, 5> {
    match act {
        Activation::Identity => z,
        Activation::LeakyRelu(slope) => leaky_relu(z, slope),
        Activation::Relu => relu(z),
    }
}

/// `γ_c·x̂ + β_c` (each factor where present) on `c` channels.
fn affine_map<B: Backend>(
    xh: Tensor<B, 5>,
    (gamma, beta): (Option<FloatTensor<B>>, Option<FloatTensor<B>>),
    c: usize,
) -> Tensor<B, 5> {
    let mut z = xh;
    if let Some(g) = gamma {
        z = z * t1::<B>(g).reshape([1, c, 1, 1, 1]);
    }
    if let Some(b) = beta {
        z = z + t1::<B>(b).reshape([1, c, 1, 1, 1]);
    }
    z
}

/// Group norm forward with burn tensor ops (any backend).
pub fn generic_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: Option<FloatTensor<B>>,
    beta: Option<FloatTensor<B>>,
    (groups, epsilon): (usize, f64),
    act: Activation,
) -> NormOutput<B> {
    let x = t5::<B>(x);
    let dims = x.dims();
    let [n, c, ..] = dims;
    let m = x.shape().num_elements() / (n * groups).max(1);
    let xg = x.reshape([n, groups, m]);
    let mean = xg.clone().mean_dim(2);
    let centred = xg - mean.clone();
    let rstd = (centred.clone().powi_scalar(2).mean_dim(2) + epsilon)
        .sqrt()
        .recip();
    let y = affine_map((centred * rstd.clone()).reshape(dims), (gamma, beta), c);
    NormOutput {
        y: prim(activate(y, act)),
        stats: NormStats {
            mean: prim(mean.reshape([n, groups])),
            rstd: prim(rstd.reshape([n, groups])),
        },
    }
}

/// Group norm backward with burn tensor ops (any backend); with an activation, `dy` is first
/// multiplied by its derivative at `z = γ·x̂ + β`, recomputed from the statistics.
pub fn generic_backward<B: Backend>(
    x: FloatTensor<B>,
    (gamma, beta): (Option<FloatTensor<B>>, Option<FloatTensor<B>>),
    stats: NormStats<B>,
    output_grad: FloatTensor<B>,
    (groups, act): (usize, Activation),
) -> NormGradients<B> {
    let x = t5::<B>(x);
    let dims = x.dims();
    let [n, c, ..] = dims;
    let m = x.shape().num_elements() / (n * groups).max(1);
    let mean =
        Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(stats.mean)).reshape([n, groups, 1]);
    let rstd =
        Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(stats.rstd)).reshape([n, groups, 1]);
    let xh = ((x.reshape([n, groups, m]) - mean) * rstd.clone()).reshape(dims);
    let dy = match act {
        Activation::Identity => t5::<B>(output_grad),
        Activation::LeakyRelu(slope) => {
            let z = affine_map(xh.clone(), (gamma.clone(), beta), c);
            let dy = t5::<B>(output_grad);
            dy.clone().mask_where(z.lower_elem(0.0), dy * slope)
        }
        Activation::Relu => {
            let z = affine_map(xh.clone(), (gamma.clone(), beta), c);
            t5::<B>(output_grad).mask_fill(z.lower_equal_elem(0.0), 0.0)
        }
    };
    let per_channel = |t: Tensor<B, 5>| t.sum_dim(0).sum_dim(2).sum_dim(3).sum_dim(4).reshape([c]);
    let affine = gamma.is_some();
    let dgamma = affine.then(|| prim(per_channel(dy.clone() * xh.clone())));
    let dbeta = affine.then(|| prim(per_channel(dy.clone())));
    let g = match gamma {
        Some(gm) => dy * t1::<B>(gm).reshape([1, c, 1, 1, 1]),
        None => dy,
    }
    .reshape([n, groups, m]);
    let xh = xh.reshape([n, groups, m]);
    let dx = rstd * (g.clone() - g.clone().mean_dim(2) - xh.clone() * (g * xh).mean_dim(2));
    NormGradients {
        x: prim(dx.reshape(dims)),
        gamma: dgamma,
        beta: dbeta,
    }
}

/// Channel norm (`crate::channel_norm`) forward in burn tensor ops (any backend).
pub fn channel_generic_forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> NormOutput<B> {
    let x = t5::<B>(x);
    let [n, c, d, h, w] = x.dims();
    let mean = x.clone().mean_dim(1);
    let centred = x - mean.clone();
    let rstd = (centred.clone().powi_scalar(2).mean_dim(1) + epsilon)
        .sqrt()
        .recip();
    let y = centred * rstd.clone() * t1::<B>(gamma).reshape([1, c, 1, 1, 1])
        + t1::<B>(beta).reshape([1, c, 1, 1, 1]);
    NormOutput {
        y: prim(y),
        stats: NormStats {
            mean: prim(mean.reshape([n, d * h * w])),
            rstd: prim(rstd.reshape([n, d * h * w])),
        },
    }
}

/// Channel norm backward in burn tensor ops (any backend).
pub fn channel_generic_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    stats: NormStats<B>,
    output_grad: FloatTensor<B>,
) -> NormGradients<B> {
    let x = t5::<B>(x);
    let [n, c, d, h, w] = x.dims();
    let stat =
        |t| Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t)).reshape([n, 1, d, h, w]);
    let (mean, rstd) = (stat(stats.mean), stat(stats.rstd));
    let xh = (x - mean) * rstd.clone();
    let dy = t5::<B>(output_grad);
    let per_channel = |t: Tensor<B, 5>| t.sum_dim(0).sum_dim(2).sum_dim(3).sum_dim(4).reshape([c]);
    let dgamma = per_channel(dy.clone() * xh.clone());
    let dbeta = per_channel(dy.clone());
    let g = dy * t1::<B>(gamma).reshape([1, c, 1, 1, 1]);
    let dx = rstd * (g.clone() - g.clone().mean_dim(1) - xh.clone() * (g * xh).mean_dim(1));
    NormGradients {
        x: prim(dx),
        gamma: Some(prim(dgamma)),
        beta: Some(prim(dbeta)),
    }
}
