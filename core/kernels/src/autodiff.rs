//! [`KernelBackend`] for `Autodiff<B>`: one graph node per convolution (bias included), per GELU,
//! per channel gate and per channel concatenation, whose backward calls `B`'s gradient ops —
//! burn-autodiff's own pattern for its `conv3d`, here over the project's trait so that the CPU
//! backend's kernels are used. The gradient ops themselves (second order, unused by the models) are
//! the trait's defaults: burn-autodiff's own.

use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::{Autodiff, NodeId};

use crate::backend::KernelBackend;

/// Which convolution a graph node recorded.
#[derive(Debug, Clone)]
enum ConvOp {
    Conv(ConvOptions<3>),
    Transpose(ConvTransposeOptions<3>),
}

impl ConvOp {
    fn forward<B: KernelBackend>(
        &self,
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        b: Option<FloatTensor<B>>,
    ) -> FloatTensor<B> {
        match self {
            ConvOp::Conv(o) => B::conv3d_forward(x, w, b, o.clone()),
            ConvOp::Transpose(o) => B::conv_transpose3d_forward(x, w, b, o.clone()),
        }
    }

    fn input_grad<B: KernelBackend>(
        &self,
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        dy: FloatTensor<B>,
    ) -> FloatTensor<B> {
        match self {
            ConvOp::Conv(o) => B::conv3d_input_grad(x, w, dy, o.clone()),
            ConvOp::Transpose(o) => B::conv_transpose3d_input_grad(w, dy, o.clone()),
        }
    }

    fn weight_grad<B: KernelBackend>(
        &self,
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        dy: FloatTensor<B>,
    ) -> FloatTensor<B> {
        match self {
            ConvOp::Conv(o) => B::conv3d_weight_grad(x, w, dy, o.clone()),
            ConvOp::Transpose(o) => B::conv_transpose3d_weight_grad(x, w, dy, o.clone()),
        }
    }
}

/// Registers the input and weight gradients of a recorded convolution.
fn input_and_weight<B: KernelBackend>(
    [node_x, node_w]: [Option<NodeId>; 2],
    state: (NodeId, NodeId, ConvOp),
    grad: FloatTensor<B>,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) {
    let (x_state, w_state, op) = state;
    let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
    let w = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(w_state);
    if let Some(id) = node_x {
        grads.register::<B>(id, op.input_grad::<B>(x.clone(), w.clone(), grad.clone()));
    }
    if let Some(id) = node_w {
        grads.register::<B>(id, op.weight_grad::<B>(x, w, grad));
    }
}

#[derive(Debug)]
struct NoBias;

impl<B: KernelBackend> Backward<B, 2> for NoBias {
    type State = (NodeId, NodeId, ConvOp);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let parents = ops.parents.map(|p| p.map(|node| node.id));
        input_and_weight::<B>(parents, ops.state, grad, grads, checkpointer);
    }
}

#[derive(Debug)]
struct WithBias;

impl<B: KernelBackend> Backward<B, 3> for WithBias {
    type State = (NodeId, NodeId, ConvOp);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = node_b {
            grads.register::<B>(node.id, B::conv_bias_grad(grad.clone()));
        }
        let parents = [node_x, node_w].map(|p| p.map(|node| node.id));
        input_and_weight::<B>(parents, ops.state, grad, grads, checkpointer);
    }
}

/// Runs `op` on the inner backend and records it (with its bias, if any) as one graph node.
fn tracked<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    w: FloatTensor<Autodiff<B, C>>,
    bias: Option<FloatTensor<Autodiff<B, C>>>,
    op: ConvOp,
) -> FloatTensor<Autodiff<B, C>> {
    match bias {
        None => match NoBias
            .prepare::<C>([x.node.clone(), w.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let (xs, ws) = (prep.checkpoint(&x), prep.checkpoint(&w));
                let y = op.forward::<B>(x.primitive, w.primitive, None);
                prep.finish((xs, ws, op), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(op.forward::<B>(x.primitive, w.primitive, None))
            }
        },
        Some(b) => match WithBias
            .prepare::<C>([x.node.clone(), w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let (xs, ws) = (prep.checkpoint(&x), prep.checkpoint(&w));
                let y = op.forward::<B>(x.primitive, w.primitive, Some(b.primitive));
                prep.finish((xs, ws, op), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(op.forward::<B>(x.primitive, w.primitive, Some(b.primitive)))
            }
        },
    }
}

/// The graph node of [`KernelBackend::contiguous`]: the gradient passes through, made contiguous
/// on the inner backend too.
#[derive(Debug)]
struct Contiguous;

impl<B: KernelBackend> Backward<B, 1> for Contiguous {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::contiguous(dy));
        }
    }
}

/// The graph node of [`KernelBackend::gelu_erf`]: keeps the input, whose backward is
/// `B::gelu_erf_grad`.
#[derive(Debug)]
struct Gelu;

impl<B: KernelBackend> Backward<B, 1> for Gelu {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::gelu_erf_grad(ops.state, dy));
        }
    }
}

/// The graph node of [`KernelBackend::gate_channels`]: keeps both inputs, whose backward is
/// `B::gate_channels_grad`.
#[derive(Debug)]
struct Gate;

impl<B: KernelBackend> Backward<B, 2> for Gate {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g] = ops.parents;
        let dy = grads.consume::<B>(&ops.node);
        let (x, g) = ops.state;
        let (dx, dg) = B::gate_channels_grad(x, g, dy);
        for (node, grad) in [(node_x, dx), (node_g, dg)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The graph node of [`KernelBackend::cat_channels`] over `N` inputs: keeps their channel
/// counts; each input's gradient is its channel range of the output's, made contiguous.
#[derive(Debug)]
struct Cat;

impl<B: KernelBackend, const N: usize> Backward<B, N> for Cat {
    type State = [usize; N];

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let dy = Tensor::<B, 5>::from_primitive(TensorPrimitive::Float(dy));
        let mut start = 0;
        for (node, channels) in ops.parents.into_iter().zip(ops.state) {
            if let (Some(node), true) = (node, channels > 0) {
                let part = dy
                    .clone()
                    .narrow(1, start, channels)
                    .into_primitive()
                    .tensor();
                grads.register::<B>(node.id, B::contiguous(part));
            }
            start += channels;
        }
    }
}

/// [`KernelBackend::cat_channels`] of `N` tracked tensors as one [`Cat`] node.
fn tracked_cat<B: KernelBackend, C: CheckpointStrategy, const N: usize>(
    tensors: Vec<FloatTensor<Autodiff<B, C>>>,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes: [_; N] = std::array::from_fn(|i| tensors[i].node.clone());
    let channels: [usize; N] = std::array::from_fn(|i| tensors[i].primitive.shape()[1]);
    let inner = tensors.into_iter().map(|t| t.primitive).collect();
    match Cat.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(channels, B::cat_channels(inner)),
        OpsKind::UnTracked(prep) => prep.finish(B::cat_channels(inner)),
    }
}

impl<B: KernelBackend, C: CheckpointStrategy> KernelBackend for Autodiff<B, C> {
    fn run_device(gpu: bool) -> Self::Device {
        B::run_device(gpu)
    }

    fn conv3d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        tracked::<B, C>(x, weight, bias, ConvOp::Conv(options))
    }

    fn contiguous(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Contiguous
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateless(B::contiguous(x.primitive))
    }

    fn cat_channels(tensors: Vec<FloatTensor<Self>>) -> FloatTensor<Self> {
        let rank5 = tensors.iter().all(|t| t.primitive.shape().num_dims() == 5);
        match tensors.len() {
            2 if rank5 => tracked_cat::<B, C, 2>(tensors),
            3 if rank5 => tracked_cat::<B, C, 3>(tensors),
            4 if rank5 => tracked_cat::<B, C, 4>(tensors),
            _ => <Self as burn::tensor::ops::FloatTensorOps<Self>>::float_cat(tensors, 1),
        }
    }

    fn gate_channels(x: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        match Gate
            .prepare::<C>([x.node.clone(), g.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::gate_channels(x.primitive.clone(), g.primitive.clone());
                prep.finish((x.primitive, g.primitive), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gate_channels(x.primitive, g.primitive)),
        }
    }

    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match Gelu
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::gelu_erf(x.primitive.clone());
                prep.finish(x.primitive, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_erf(x.primitive)),
        }
    }

    fn conv_transpose3d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        tracked::<B, C>(x, weight, bias, ConvOp::Transpose(options))
    }

    fn group_norm_forward(
        x: FloatTensor<Self>,
        gamma: Option<FloatTensor<Self>>,
        beta: Option<FloatTensor<Self>>,
        shape: (usize, f64),
        act: crate::norm_kernels::Activation,
    ) -> crate::norm_generic::NormOutput<Self> {
        crate::norm::tracked::<B, C>(x, (gamma, beta), shape, act)
    }

    fn channel_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> crate::norm_generic::NormOutput<Self> {
        crate::channel_norm::tracked::<B, C>(x, gamma, beta, epsilon)
    }
}
