//! Group and instance normalisation through [`KernelBackend`]: the autodiff node, and `norm.run(x)`
//! (or `norm.run_then(x, act)`, with the activation fused) for burn's `InstanceNorm` /
//! `GroupNorm` modules (weights and record keys stay burn's). The
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
use crate::norm_kernels::Activation;

/// A norm's optional `(γ, β)`.
type AffineParams<B> = (Option<FloatTensor<B>>, Option<FloatTensor<B>>);

/// The autodiff node's state: input, `γ`, `β`, statistics, group count and activation on the
/// inner backend.
type NodeState<B> = (
    FloatTensor<B>,
    AffineParams<B>,
    NormStats<B>,
    (usize, Activation),
);

#[derive(Debug)]
struct Plain;

impl<B: KernelBackend> Backward<B, 1> for Plain {
    type State = NodeState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, params, stats, layout) = ops.state;
        if let Some(node) = node_x {
            grads.register::<B>(
                node.id,
                B::group_norm_backward(x, params, stats, dy, layout).x,
            );
        }
    }
}

#[derive(Debug)]
struct Affine;

impl<B: KernelBackend> Backward<B, 3> for Affine {
    type State = NodeState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_affine::<B, _>(ops, grads, |(x, params, stats, layout), dy| {
            B::group_norm_backward(x, params, stats, dy, layout)
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

/// Group norm (and its activation) on `Autodiff<B>`: one graph node whose backward is
/// `B::group_norm_backward`.
pub(crate) fn tracked<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    params: AffineParams<Autodiff<B, C>>,
    (groups, epsilon): (usize, f64),
    act: Activation,
) -> NormOutput<Autodiff<B, C>> {
    let layout = (groups, act);
    let (y, stats) = match params {
        (Some(g), Some(b)) => {
            let parents = [x.node.clone(), g.node.clone(), b.node.clone()];
            let (x, g, b) = (x.primitive, g.primitive, b.primitive);
            match Affine.prepare::<C>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let params = (Some(g), Some(b));
                    let out = B::group_norm_forward(
                        x.clone(),
                        params.0.clone(),
                        params.1.clone(),
                        (groups, epsilon),
                        act,
                    );
                    let state = (x, params, out.stats.clone(), layout);
                    (prep.finish(state, out.y), out.stats)
                }
                OpsKind::UnTracked(prep) => {
                    let out = B::group_norm_forward(x, Some(g), Some(b), (groups, epsilon), act);
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
                let out =
                    B::group_norm_forward(x.primitive.clone(), None, None, (groups, epsilon), act);
                let state = (x.primitive, (None, None), out.stats.clone(), layout);
                (prep.finish(state, out.y), out.stats)
            }
            OpsKind::UnTracked(prep) => {
                let out = B::group_norm_forward(x.primitive, None, None, (groups, epsilon), act);
                (prep.finish(out.y), out.stats)
            }
        },
        (gamma, beta) => {
            return generic_forward::<Autodiff<B, C>>(x, gamma, beta, (groups, epsilon), act)
        }
    };
    NormOutput {
        y,
        stats: untracked_stats::<B, C>(stats),
    }
}

/// A normalisation module run through [`KernelBackend`].
pub trait NormForward<B: KernelBackend> {
    /// The module's forward pass on `x: [N, C, D, H, W]`.
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.run_then(x, Activation::Identity)
    }

    /// The module's forward pass followed by `act` (`leaky_relu(norm.forward(x), slope)` for
    /// [`Activation::LeakyRelu`]), in one op of the backend.
    fn run_then(&self, x: Tensor<B, 5>, act: Activation) -> Tensor<B, 5>;
}

fn run_norm<B: KernelBackend>(
    x: Tensor<B, 5>,
    (gamma, beta): (Option<Tensor<B, 1>>, Option<Tensor<B, 1>>),
    shape: (usize, f64),
    act: Activation,
) -> Tensor<B, 5> {
    let out = B::group_norm_forward(prim(x), gamma.map(prim), beta.map(prim), shape, act);
    t5::<B>(out.y)
}

impl<B: KernelBackend> NormForward<B> for InstanceNorm<B> {
    fn run_then(&self, x: Tensor<B, 5>, act: Activation) -> Tensor<B, 5> {
        let params = (
            self.gamma.as_ref().map(|g| g.val()),
            self.beta.as_ref().map(|b| b.val()),
        );
        run_norm(x, params, (self.num_channels, self.epsilon), act)
    }
}

impl<B: KernelBackend> NormForward<B> for GroupNorm<B> {
    fn run_then(&self, x: Tensor<B, 5>, act: Activation) -> Tensor<B, 5> {
        let params = (
            self.gamma.as_ref().map(|g| g.val()),
            self.beta.as_ref().map(|b| b.val()),
        );
        run_norm(x, params, (self.num_groups, self.epsilon), act)
    }
}
