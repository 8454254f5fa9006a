//! The models' way to run burn's convolution modules through [`KernelBackend`]: `conv.run(x)`
//! instead of `conv.forward(x)`. The modules (weights, initialisation, record keys) stay burn's,
//! so checkpoints and initial weights are unchanged.

use burn::nn::conv::{Conv3d, ConvTranspose3d};
use burn::nn::PaddingConfig3d;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::backend::KernelBackend;

/// A convolution module run through [`KernelBackend`].
pub trait ConvForward<B: KernelBackend> {
    /// The module's forward pass on `x: [N, C, D, H, W]`.
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5>;
}

/// Symmetric padding of a `PaddingConfig3d`; `None` for `Same` with an even kernel or a stride
/// above 1 (left to burn's module, which knows its rule).
fn padding(config: &PaddingConfig3d, kernel: [usize; 3], stride: [usize; 3]) -> Option<[usize; 3]> {
    match config {
        PaddingConfig3d::Valid => Some([0; 3]),
        PaddingConfig3d::Explicit(d, h, w) => Some([*d, *h, *w]),
        PaddingConfig3d::Same => (stride == [1; 3] && kernel.iter().all(|k| k % 2 == 1))
            .then(|| kernel.map(|k| (k - 1) / 2)),
    }
}

fn float<B: KernelBackend>(t: Tensor<B, 5>) -> burn::tensor::ops::FloatTensor<B> {
    t.into_primitive().tensor()
}

impl<B: KernelBackend> ConvForward<B> for Conv3d<B> {
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let Some(pad) = padding(&self.padding, self.kernel_size, self.stride) else {
            return self.forward(x);
        };
        let options = ConvOptions::new(self.stride, pad, self.dilation, self.groups);
        let y = B::conv3d_forward(
            float(x),
            float(self.weight.val()),
            self.bias
                .as_ref()
                .map(|b| b.val().into_primitive().tensor()),
            options,
        );
        Tensor::from_primitive(TensorPrimitive::Float(y))
    }
}

impl<B: KernelBackend> ConvForward<B> for ConvTranspose3d<B> {
    fn run(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let options = ConvTransposeOptions::new(
            self.stride,
            self.padding,
            self.padding_out,
            self.dilation,
            self.groups,
        );
        let y = B::conv_transpose3d_forward(
            float(x),
            float(self.weight.val()),
            self.bias
                .as_ref()
                .map(|b| b.val().into_primitive().tensor()),
            options,
        );
        Tensor::from_primitive(TensorPrimitive::Float(y))
    }
}
