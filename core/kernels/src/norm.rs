//! Group and instance normalisation through [`KernelBackend`]: the types its norm ops exchange, the
//! generic implementation (burn tensor ops; what Cuda and burn-flex fallbacks use), the autodiff
//! node, and `norm.run(x)` for burn's `InstanceNorm` / `GroupNorm` modules (weights and record keys
//! stay burn's). Equations in [`crate::norm_kernels`].

use burn::nn::{GroupNorm, InstanceNorm};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;

use crate::backend::KernelBackend;

/// Per-`(n, g)` statistics of a forward pass, `[N, G]` each.
#[derive(Debug, Clone)]
pub struct NormStats<B: KernelBackend> {
    /// Mean of each group.
    pub mean: FloatTensor<B>,
    /// `1/√(σ² + ε)` of each group.
    pub rstd: FloatTensor<B>,
}

/// A forward pass's output and statistics.
#[derive(Debug, Clone)]
pub struct NormOutput<B: KernelBackend> {
    /// The normalised tensor.
    pub y: FloatTensor<B>,
    /// What the backward needs.
    pub stats: NormStats<B>,
}

/// A backward pass's gradients (`gamma`/`beta` for affine norms).
#[derive(Debug, Clone)]
pub struct NormGradients<B: KernelBackend> {
    /// With respect to `x`.
    pub x: FloatTensor<B>,
    /// With respect to `γ`.
    pub gamma: Option<FloatTensor<B>>,
    /// With respect to `β`.
    pub beta: Option<FloatTensor<B>>,
}

fn t5<B: KernelBackend>(t: FloatTensor<B>) -> Tensor<B, 5> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn t1<B: KernelBackend>(t: FloatTensor<B>) -> Tensor<B, 1> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn prim<B: KernelBackend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// Group norm forward with burn tensor ops (any backend).
pub fn generic_forward<B: KernelBackend>(
    x: FloatTensor<B>,
    gamma: Option<FloatTensor<B>>,
    beta: Option<FloatTensor<B>>,
    groups: usize,
    epsilon: f64,
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
    let mut y = (centred * rstd.clone()).reshape(dims);
    if let Some(g) = gamma {
        y = y * t1::<B>(g).reshape([1, c, 1, 1, 1]);
    }
    if let Some(b) = beta {
        y = y + t1::<B>(b).reshape([1, c, 1, 1, 1]);
    }
    NormOutput {
        y: prim(y),
        stats: NormStats {
            mean: prim(mean.reshape([n, groups])),
            rstd: prim(rstd.reshape([n, groups])),
        },
    }
}

/// Group norm backward with burn tensor ops (any backend).
pub fn generic_backward<B: KernelBackend>(
    x: FloatTensor<B>,
    gamma: Option<FloatTensor<B>>,
    stats: NormStats<B>,
    output_grad: FloatTensor<B>,
    groups: usize,
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
    let dy = t5::<B>(output_grad);
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

/// The autodiff node's state: input, `γ`, statistics and group count on the inner backend.
type NodeState<B> = (FloatTensor<B>, Option<FloatTensor<B>>, NormStats<B>, usize);

#[derive(Debug)]
struct Plain;

impl<B: KernelBackend> Backward<B, 1> for Plain {
    type State = NodeState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, stats, groups) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(
                node.id,
                B::group_norm_backward(x, gamma, stats, dy, groups).x,
            );
        }
    }
}

#[derive(Debug)]
struct Affine;

impl<B: KernelBackend> Backward<B, 3> for Affine {
    type State = NodeState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, gamma, stats, groups) = ops.state;
        let out = B::group_norm_backward(x, gamma, stats, dy, groups);
        for (node, grad) in [
            (node_x, Some(out.x)),
            (node_g, out.gamma),
            (node_b, out.beta),
        ] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Group norm on `Autodiff<B>`: one graph node whose backward is `B::group_norm_backward`.
pub(crate) fn tracked<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    gamma: Option<FloatTensor<Autodiff<B, C>>>,
    beta: Option<FloatTensor<Autodiff<B, C>>>,
    groups: usize,
    epsilon: f64,
) -> NormOutput<Autodiff<B, C>> {
    let untracked_stats = |s: NormStats<B>| NormStats {
        mean: Autodiff::<B, C>::from_inner(s.mean),
        rstd: Autodiff::<B, C>::from_inner(s.rstd),
    };
    let (y, stats) = match (gamma, beta) {
        (Some(g), Some(b)) => {
            match Affine
                .prepare::<C>([x.node.clone(), g.node.clone(), b.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => {
                    let out = B::group_norm_forward(
                        x.primitive.clone(),
                        Some(g.primitive.clone()),
                        Some(b.primitive),
                        groups,
                        epsilon,
                    );
                    let state = (x.primitive, Some(g.primitive), out.stats.clone(), groups);
                    (prep.finish(state, out.y), out.stats)
                }
                OpsKind::UnTracked(prep) => {
                    let out = B::group_norm_forward(
                        x.primitive,
                        Some(g.primitive),
                        Some(b.primitive),
                        groups,
                        epsilon,
                    );
                    (prep.finish(out.y), out.stats)
                }
            }
        }
        (None, None) => match Plain
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out = B::group_norm_forward(x.primitive.clone(), None, None, groups, epsilon);
                let state = (x.primitive, None, out.stats.clone(), groups);
                (prep.finish(state, out.y), out.stats)
            }
            OpsKind::UnTracked(prep) => {
                let out = B::group_norm_forward(x.primitive, None, None, groups, epsilon);
                (prep.finish(out.y), out.stats)
            }
        },
        (gamma, beta) => return generic_forward::<Autodiff<B, C>>(x, gamma, beta, groups, epsilon),
    };
    NormOutput {
        y,
        stats: untracked_stats(stats),
    }
}

/// A normalisation module run through [`KernelBackend`].
pub trait NormForward<B: KernelBackend> {
    /// The module's forward pass on `x: [N, C, D, H, W]`.
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5>;
}

fn run_norm<B: KernelBackend>(
    x: Tensor<B, 5>,
    gamma: Option<Tensor<B, 1>>,
    beta: Option<Tensor<B, 1>>,
    groups: usize,
    epsilon: f64,
) -> Tensor<B, 5> {
    let out = B::group_norm_forward(prim(x), gamma.map(prim), beta.map(prim), groups, epsilon);
    t5::<B>(out.y)
}

impl<B: KernelBackend> NormForward<B> for InstanceNorm<B> {
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let (gamma, beta) = (
            self.gamma.as_ref().map(|g| g.val()),
            self.beta.as_ref().map(|b| b.val()),
        );
        run_norm(x, gamma, beta, self.num_channels, self.epsilon)
    }
}

impl<B: KernelBackend> NormForward<B> for GroupNorm<B> {
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let (gamma, beta) = (
            self.gamma.as_ref().map(|g| g.val()),
            self.beta.as_ref().map(|b| b.val()),
        );
        run_norm(x, gamma, beta, self.num_groups, self.epsilon)
    }
}
