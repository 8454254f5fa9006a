//! The libtorch backend's convolution gradients, both routes (`aten::convolution_backward` through
//! the C++ shim, and burn's decomposition), against the CPU backend's (`Flex`, whose kernels
//! `against_burn.rs` checks against burn's ops and finite differences). Built only with the `tch`
//! feature (libtorch at hand): `LIBTORCH_USE_PYTORCH=1 cargo test -p dsma-kernels --features tch`.
#![cfg(feature = "tch")]

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use burn_flex::Flex;
use burn_tch::{LibTorch, LibTorchDevice};
use dsma_kernels::tch_ops::{with_tch_conv_backward, TchConvBackward};
use dsma_kernels::KernelBackend;

/// A convolution of the test: plain (stride, padding) or transposed (stride, padding, out padding).
#[derive(Clone, Copy, Debug)]
enum Op {
    Conv {
        stride: usize,
        padding: usize,
    },
    Transpose {
        stride: usize,
        padding: usize,
        out: usize,
    },
}

/// (batch, in channels, out channels, input size, kernel, op)
type Case = (usize, usize, usize, [usize; 3], usize, Op);

const CASES: &[Case] = &[
    (
        2,
        3,
        5,
        [6, 7, 5],
        3,
        Op::Conv {
            stride: 1,
            padding: 1,
        },
    ),
    (
        1,
        4,
        6,
        [7, 6, 9],
        3,
        Op::Conv {
            stride: 2,
            padding: 1,
        },
    ),
    (
        3,
        7,
        2,
        [5, 4, 3],
        1,
        Op::Conv {
            stride: 1,
            padding: 0,
        },
    ),
    (
        1,
        6,
        3,
        [4, 3, 5],
        2,
        Op::Transpose {
            stride: 2,
            padding: 0,
            out: 0,
        },
    ),
    (
        2,
        3,
        4,
        [3, 4, 3],
        3,
        Op::Transpose {
            stride: 2,
            padding: 1,
            out: 1,
        },
    ),
];

fn tensor<B: Backend>(shape: [usize; 5], salt: f32, dev: &B::Device) -> Tensor<B, 5> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i as f32 + salt) * 0.377).sin()).collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

/// Output, input gradient, weight gradient and bias gradient of `sum(y · r)`, flattened.
fn gradients<B: KernelBackend>(case: &Case, dev: &B::Device) -> [Vec<f32>; 4] {
    type A<B> = Autodiff<B>;
    let &(n, ci, co, size, k, op) = case;
    let x = tensor::<A<B>>([n, ci, size[0], size[1], size[2]], 0.0, dev).require_grad();
    let w_shape = match op {
        Op::Conv { .. } => [co, ci, k, k, k],
        Op::Transpose { .. } => [ci, co, k, k, k],
    };
    let w = (tensor::<A<B>>(w_shape, 5.0, dev) * 0.2).require_grad();
    let b = Tensor::<A<B>, 1>::from_data(
        TensorData::new((0..co).map(|i| i as f32 * 0.1).collect::<Vec<f32>>(), [co]),
        dev,
    )
    .require_grad();
    let prim = |t: Tensor<A<B>, 5>| t.into_primitive().tensor();
    let y = match op {
        Op::Conv { stride, padding } => A::<B>::conv3d_forward(
            prim(x.clone()),
            prim(w.clone()),
            Some(b.clone().into_primitive().tensor()),
            ConvOptions::new([stride; 3], [padding; 3], [1; 3], 1),
        ),
        Op::Transpose {
            stride,
            padding,
            out,
        } => A::<B>::conv_transpose3d_forward(
            prim(x.clone()),
            prim(w.clone()),
            Some(b.clone().into_primitive().tensor()),
            ConvTransposeOptions::new([stride; 3], [padding; 3], [out; 3], [1; 3], 1),
        ),
    };
    let y = Tensor::<A<B>, 5>::from_primitive(TensorPrimitive::Float(y));
    let r = tensor::<A<B>>(y.dims(), 11.0, dev);
    let grads = (y.clone() * r).sum().backward();
    let flat = |d: TensorData| d.to_vec::<f32>().expect("f32");
    [
        flat(y.into_data()),
        flat(x.grad(&grads).expect("input gradient").into_data()),
        flat(w.grad(&grads).expect("weight gradient").into_data()),
        flat(b.grad(&grads).expect("bias gradient").into_data()),
    ]
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: {a} vs {b} (scale {scale})"
        );
    }
}

#[test]
fn libtorch_gradients_match_the_cpu_backend_on_both_routes() {
    for case in CASES {
        let want = gradients::<Flex>(case, &Default::default());
        for route in [TchConvBackward::Aten, TchConvBackward::Burn] {
            let got = with_tch_conv_backward(route, || {
                gradients::<LibTorch<f32>>(case, &LibTorchDevice::Cpu)
            });
            for (part, (g, w)) in ["output", "input grad", "weight grad", "bias grad"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                assert_close(g, w, &format!("{case:?} {route:?} {part}"));
            }
        }
    }
}
