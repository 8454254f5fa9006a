//! Group and instance normalisation through [`KernelBackend`]: the autodiff node, and `norm.run(x)`
//! for burn's `InstanceNorm` / `GroupNorm` modules (weights and record keys stay burn's). The
//! generic implementation and the types are in [`crate::norm_generic`].

use burn::nn::{GroupNorm, InstanceNorm};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;

use crate::backend::KernelBackend;
use crate::norm_generic::{generic_forward, prim, t5, NormGradients, NormOutput, NormStats};

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
        backward_affine::<B, _>(ops, grads, |(x, gamma, stats, groups), dy| {
            B::group_norm_backward(x, gamma, stats, dy, groups)
        });
    }
}

/// The backward of a norm node with parents `[x, γ, β]`: `gradients(state, dy)`, each
/// registered with its parent where that parent is tracked.
pub(crate) fn backward_affine<B: KernelBackend, S>(
    ops: Ops<S, 3>,
    grads: &mut Gradients,
    gradients: impl FnOnce(S, FloatTensor<B>) -> NormGradients<B>,
) {
    let dy = grads.consume::<B>(&ops.node);
    let [node_x, node_g, node_b] = ops.parents;
    let out = gradients(ops.state, dy);
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

/// A forward pass's statistics as untracked tensors of `Autodiff<B>`.
pub(crate) fn untracked_stats<B: KernelBackend, C: CheckpointStrategy>(
    stats: NormStats<B>,
) -> NormStats<Autodiff<B, C>> {
    NormStats {
        mean: Autodiff::<B, C>::from_inner(stats.mean),
        rstd: Autodiff::<B, C>::from_inner(stats.rstd),
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
        stats: untracked_stats::<B, C>(stats),
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
