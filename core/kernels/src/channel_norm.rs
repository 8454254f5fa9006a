//! Layer normalisation over the channel axis of `[N, C, D, H, W]` (PoolFormer's
//! `LayerNormChannel`, NestedFormer's encoders) as one op of [`KernelBackend`]: the model-facing
//! call and the autodiff node. The f32 kernels are `norm_kernels::channel_norm_forward` and
//! `channel_norm_backward`, the version in burn tensor ops (other backends)
//! `norm_generic::channel_generic_forward` and `channel_generic_backward`.
//!
//! Per sample `n` and position `p` (over the `C` channels): `μ = mean_c(x)`,
//! `σ² = mean_c((x − μ)²)`, `r = 1/√(σ² + ε)`, `x̂ = (x − μ)·r`, `y = γ_c·x̂ + β_c`. Backward with
//! `g = γ_c·dy`: `dx = r·(g − mean_c(g) − x̂·mean_c(g·x̂))`, `dγ_c = Σ_{n,p} dy·x̂`,
//! `dβ_c = Σ_{n,p} dy`. The kernels sum in f64 in a fixed order (channels per position; positions
//! per channel row, then samples in order), so results do not depend on the thread count. In
//! burn-flex, each of the ~6 broadcasting ops the tensor-op version takes walks a strided
//! iterator per element.

use crate::backend::KernelBackend;
use crate::norm::{backward_affine, untracked_stats};
use crate::norm_generic::{prim, t5, NormOutput, NormStats};
use burn::tensor::ops::FloatTensor;
use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;

/// `y = LayerNormChannel(x)` through `B`'s op (the model-facing call).
pub fn channel_norm<B: KernelBackend>(
    x: Tensor<B, 5>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, 5> {
    t5::<B>(B::channel_norm_forward(prim(x), prim(gamma), prim(beta), epsilon).y)
}

#[derive(Debug)]
struct Node;

impl<B: KernelBackend> Backward<B, 3> for Node {
    type State = (FloatTensor<B>, FloatTensor<B>, NormStats<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        backward_affine::<B, _>(ops, grads, |(x, gamma, stats), dy| {
            B::channel_norm_backward(x, gamma, stats, dy)
        });
    }
}

/// The channel norm on `Autodiff<B>`: one graph node whose backward is
/// `B::channel_norm_backward`; the statistics are returned untracked.
pub(crate) fn tracked<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    beta: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
) -> NormOutput<Autodiff<B, C>> {
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let (y, stats) = match Node.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = B::channel_norm_forward(
                x.primitive.clone(),
                gamma.primitive.clone(),
                beta.primitive,
                epsilon,
            );
            let state = (x.primitive, gamma.primitive, out.stats.clone());
            (prep.finish(state, out.y), out.stats)
        }
        OpsKind::UnTracked(prep) => {
            let out =
                B::channel_norm_forward(x.primitive, gamma.primitive, beta.primitive, epsilon);
            (prep.finish(out.y), out.stats)
        }
    };
    NormOutput {
        y,
        stats: untracked_stats::<B, C>(stats),
    }
}

#[cfg(test)]
mod tests;
