//! [`ConvBackend`] for `Autodiff<B>`: one graph node per convolution (bias added as a separate,
//! ordinary tensor op), whose backward calls `B`'s gradient ops — burn-autodiff's own pattern for
//! its `conv3d`, here over the project's trait so that the CPU backend's kernels are used. The
//! gradient ops themselves (second order, unused by the models) are burn-autodiff's own.

use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor, ModuleOps};
use burn::tensor::{Tensor, TensorPrimitive};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::CheckpointStrategy;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_autodiff::{Autodiff, NodeId};

use crate::backend::ConvBackend;

/// `y + b` with `b: [C]` broadcast over `[N, C, D, H, W]` (tracked by autodiff like any add).
fn add_bias<B: ConvBackend, C: CheckpointStrategy>(
    y: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let y = Tensor::<Autodiff<B, C>, 5>::from_primitive(TensorPrimitive::Float(y));
    let b = Tensor::<Autodiff<B, C>, 1>::from_primitive(TensorPrimitive::Float(bias));
    let channels = b.dims()[0];
    (y + b.reshape([1, channels, 1, 1, 1]))
        .into_primitive()
        .tensor()
}

#[derive(Debug)]
struct Conv3dBackward;

impl<B: ConvBackend> Backward<B, 2> for Conv3dBackward {
    type State = (NodeId, NodeId, ConvOptions<3>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let w = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(w_state);
        if let Some(node) = node_x {
            let dx = B::conv3d_input_grad(x.clone(), w.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, B::conv3d_weight_grad(x, w, grad, options));
        }
    }
}

#[derive(Debug)]
struct ConvTranspose3dBackward;

impl<B: ConvBackend> Backward<B, 2> for ConvTranspose3dBackward {
    type State = (NodeId, NodeId, ConvTransposeOptions<3>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x_state);
        let w = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(w_state);
        if let Some(node) = node_x {
            let dx = B::conv_transpose3d_input_grad(w.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_w {
            let dw = B::conv_transpose3d_weight_grad(x, w, grad, options);
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn conv3d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        let y = match Conv3dBackward
            .prepare::<C>([x.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let y = B::conv3d_forward(x.primitive, weight.primitive, None, options.clone());
                prep.finish((x_state, w_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv3d_forward(
                x.primitive,
                weight.primitive,
                None,
                options,
            )),
        };
        match bias {
            Some(b) => add_bias::<B, C>(y, b),
            None => y,
        }
    }

    fn conv3d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv3d_x_backward(x, weight, output_grad, options)
    }

    fn conv3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv3d_weight_backward(x, weight, output_grad, options)
    }

    fn conv_transpose3d_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        let y = match ConvTranspose3dBackward
            .prepare::<C>([x.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let y = B::conv_transpose3d_forward(
                    x.primitive,
                    weight.primitive,
                    None,
                    options.clone(),
                );
                prep.finish((x_state, w_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv_transpose3d_forward(
                x.primitive,
                weight.primitive,
                None,
                options,
            )),
        };
        match bias {
            Some(b) => add_bias::<B, C>(y, b),
            None => y,
        }
    }

    fn conv_transpose3d_input_grad(
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv_transpose3d_x_backward(weight, output_grad, options)
    }

    fn conv_transpose3d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvTransposeOptions<3>,
    ) -> FloatTensor<Self> {
        <Self as ModuleOps<Self>>::conv_transpose3d_weight_backward(x, weight, output_grad, options)
    }
}
