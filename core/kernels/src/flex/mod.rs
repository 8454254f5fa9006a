//! [`KernelBackend`] for burn-flex, the CPU backend: dsma's convolution, normalisation and GELU
//! kernels ([`crate::conv_kernels`], [`crate::norm_kernels`], [`crate::activation_kernels`]) where
//! they apply (f32, groups 1, dilation 1, and `DSMA_CPU_KERNELS` not `burn`), burn-flex's own ops
//! or burn tensor ops otherwise.

use burn::tensor::ops::{ActivationOps, ConvOptions, ConvTransposeOptions, ModuleOps};
use burn::tensor::{Bytes, DType, Tensor, TensorMetadata, TensorPrimitive};
use burn_flex::{Flex, FlexTensor, Layout};

use crate::activation_kernels;
use crate::backend::{cpu_kernels, gate_generic, gate_generic_grad, CpuKernels, KernelBackend};
use crate::conv_kernels::{self, ConvShape, ConvTransposeShape};
use crate::gate_kernels;
use crate::norm_generic::{NormGradients, NormOutput, NormStats};
use crate::norm_kernels::{self, Activation, NormShape};

mod buffers;

use buffers::{
    block_copy, dims5, gate_shape, like, matrix, ours_f32, slice, tensor, values, whole,
};

/// Whether our kernels handle this op (f32, groups 1, dilation 1, dsma selected).
fn ours(tensors: &[&FlexTensor], dilation: [usize; 3], groups: usize) -> bool {
    cpu_kernels() == CpuKernels::Dsma
        && groups == 1
        && dilation == [1; 3]
        && tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// Whether our norm kernels handle this op ([`ours_f32`], groups dividing the channels).
fn ours_norm(tensors: &[Option<&FlexTensor>], channels: usize, groups: usize) -> bool {
    ours_f32(tensors) && groups != 0 && channels.is_multiple_of(groups)
}

fn conv_shape(x: [usize; 5], w: [usize; 5], options: &ConvOptions<3>) -> Option<ConvShape> {
    let kernel = [w[2], w[3], w[4]];
    let input = [x[2], x[3], x[4]];
    let output = ConvShape::output_size(input, kernel, options.stride, options.padding)?;
    Some(ConvShape {
        batch: x[0],
        in_channels: x[1],
        out_channels: w[0],
        input,
        output,
        kernel,
        stride: options.stride,
        padding: options.padding,
    })
}

fn transpose_shape(
    x: [usize; 5],
    w: [usize; 5],
    options: &ConvTransposeOptions<3>,
) -> Option<ConvTransposeShape> {
    let kernel = [w[2], w[3], w[4]];
    let mut output = [0; 3];
    for a in 0..3 {
        let full =
            (x[2 + a].checked_sub(1)?) * options.stride[a] + kernel[a] + options.padding_out[a];
        output[a] = full.checked_sub(2 * options.padding[a])?;
    }
    Some(ConvTransposeShape {
        batch: x[0],
        in_channels: x[1],
        out_channels: w[1],
        input: [x[2], x[3], x[4]],
        output,
        kernel,
        stride: options.stride,
        padding: options.padding,
    })
}

fn with_channels(s: [usize; 3], batch: usize, channels: usize) -> [usize; 5] {
    [batch, channels, s[0], s[1], s[2]]
}

impl KernelBackend for Flex {
    fn conv3d_forward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<FlexTensor>,
        options: ConvOptions<3>,
    ) -> FlexTensor {
        let shape = conv_shape(dims5(&x), dims5(&weight), &options);
        match shape {
            Some(s) if ours(&[&x, &weight], options.dilation, options.groups) => {
                let (x, w) = (values(&x), values(&weight));
                let b = bias.as_ref().map(values);
                let y =
                    conv_kernels::conv3d_forward(&s, slice(&x), slice(&w), b.as_ref().map(slice));
                tensor(y, with_channels(s.output, s.batch, s.out_channels))
            }
            _ => <Flex as ModuleOps<Flex>>::conv3d(x, weight, bias, options),
        }
    }

    fn conv3d_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<3>,
    ) -> FlexTensor {
        let shape = conv_shape(dims5(&x), dims5(&weight), &options);
        match shape {
            Some(s)
                if ours(
                    &[&x, &weight, &output_grad],
                    options.dilation,
                    options.groups,
                ) =>
            {
                let (w, dy) = (values(&weight), values(&output_grad));
                let dx = conv_kernels::conv3d_input_grad(&s, slice(&w), slice(&dy));
                tensor(dx, with_channels(s.input, s.batch, s.in_channels))
            }
            _ => <Flex as ModuleOps<Flex>>::conv3d_x_backward(x, weight, output_grad, options),
        }
    }

    fn conv3d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<3>,
    ) -> FlexTensor {
        let shape = conv_shape(dims5(&x), dims5(&weight), &options);
        match shape {
            Some(s)
                if ours(
                    &[&x, &weight, &output_grad],
                    options.dilation,
                    options.groups,
                ) =>
            {
                let (xv, dy) = (values(&x), values(&output_grad));
                let dw = conv_kernels::conv3d_weight_grad(&s, slice(&xv), slice(&dy));
                tensor(dw, dims5(&weight))
            }
            _ => <Flex as ModuleOps<Flex>>::conv3d_weight_backward(x, weight, output_grad, options),
        }
    }

    fn conv_transpose3d_forward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<FlexTensor>,
        options: ConvTransposeOptions<3>,
    ) -> FlexTensor {
        let shape = transpose_shape(dims5(&x), dims5(&weight), &options);
        match shape {
            Some(t) if ours(&[&x, &weight], options.dilation, options.groups) => {
                let (xv, w) = (values(&x), values(&weight));
                let b = bias.as_ref().map(values);
                let y = conv_kernels::conv_transpose3d_forward(
                    &t,
                    slice(&xv),
                    slice(&w),
                    b.as_ref().map(slice),
                );
                tensor(y, with_channels(t.output, t.batch, t.out_channels))
            }
            _ => <Flex as ModuleOps<Flex>>::conv_transpose3d(x, weight, bias, options),
        }
    }

    fn conv_transpose3d_input_grad(
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvTransposeOptions<3>,
    ) -> FlexTensor {
        // The input size follows from the output gradient: in = (out + 2p − k − op)/s + 1.
        let (w5, dy5) = (dims5(&weight), dims5(&output_grad));
        let input = (0..3).try_fold([0usize; 3], |mut acc, a| {
            let span = (dy5[2 + a] + 2 * options.padding[a])
                .checked_sub(w5[2 + a] + options.padding_out[a])?;
            acc[a] = span / options.stride[a].max(1) + 1;
            Some(acc)
        });
        let shape = input.and_then(|i| {
            transpose_shape(with_channels(i, dy5[0], w5[0]), w5, &options)
                .filter(|t| t.output == [dy5[2], dy5[3], dy5[4]])
        });
        match shape {
            Some(t) if ours(&[&weight, &output_grad], options.dilation, options.groups) => {
                let (w, dy) = (values(&weight), values(&output_grad));
                let dx = conv_kernels::conv_transpose3d_input_grad(&t, slice(&w), slice(&dy));
                tensor(dx, with_channels(t.input, t.batch, t.in_channels))
            }
            _ => {
                <Flex as ModuleOps<Flex>>::conv_transpose3d_x_backward(weight, output_grad, options)
            }
        }
    }

    fn conv_transpose3d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvTransposeOptions<3>,
    ) -> FlexTensor {
        let shape = transpose_shape(dims5(&x), dims5(&weight), &options);
        match shape {
            Some(t)
                if ours(
                    &[&x, &weight, &output_grad],
                    options.dilation,
                    options.groups,
                ) =>
            {
                let (xv, dy) = (values(&x), values(&output_grad));
                let dw = conv_kernels::conv_transpose3d_weight_grad(&t, slice(&xv), slice(&dy));
                tensor(dw, dims5(&weight))
            }
            _ => <Flex as ModuleOps<Flex>>::conv_transpose3d_weight_backward(
                x,
                weight,
                output_grad,
                options,
            ),
        }
    }
    fn conv_bias_grad(output_grad: FlexTensor) -> FlexTensor {
        let [n, c, ..] = dims5(&output_grad);
        if output_grad.dtype() != DType::F32 {
            let dy = Tensor::<Flex, 5>::from_primitive(TensorPrimitive::Float(output_grad));
            return dy
                .sum_dim(0)
                .sum_dim(2)
                .sum_dim(3)
                .sum_dim(4)
                .reshape([c])
                .into_primitive()
                .tensor();
        }
        let dy = values(&output_grad);
        let db = conv_kernels::bias_grad(slice(&dy), n, c);
        FlexTensor::new(
            Bytes::from_elems(db),
            Layout::contiguous([c].into()),
            DType::F32,
        )
    }

    fn group_norm_forward(
        x: FlexTensor,
        gamma: Option<FlexTensor>,
        beta: Option<FlexTensor>,
        (groups, epsilon): (usize, f64),
        act: Activation,
    ) -> NormOutput<Flex> {
        let [n, c, d, h, w] = dims5(&x);
        if !ours_norm(&[Some(&x), gamma.as_ref(), beta.as_ref()], c, groups) || c * d * h * w == 0 {
            return crate::norm_generic::generic_forward::<Flex>(
                x,
                gamma,
                beta,
                (groups, epsilon),
                act,
            );
        }
        let shape = NormShape {
            batch: n,
            channels: c,
            positions: d * h * w,
            groups,
        };
        let xv = values(&x);
        let (g, b) = (gamma.as_ref().map(values), beta.as_ref().map(values));
        let (y, mean, rstd) = norm_kernels::group_norm_forward(
            &shape,
            slice(&xv),
            (g.as_ref().map(slice), b.as_ref().map(slice)),
            epsilon,
            act,
        );
        NormOutput {
            y: tensor(y, [n, c, d, h, w]),
            stats: NormStats {
                mean: matrix(mean, [n, groups]),
                rstd: matrix(rstd, [n, groups]),
            },
        }
    }

    fn group_norm_backward(
        x: FlexTensor,
        (gamma, beta): (Option<FlexTensor>, Option<FlexTensor>),
        stats: NormStats<Flex>,
        output_grad: FlexTensor,
        (groups, act): (usize, Activation),
    ) -> NormGradients<Flex> {
        let [n, c, d, h, w] = dims5(&x);
        let tensors = [Some(&x), gamma.as_ref(), beta.as_ref(), Some(&output_grad)];
        if !ours_norm(&tensors, c, groups) || c * d * h * w == 0 {
            return crate::norm_generic::generic_backward::<Flex>(
                x,
                (gamma, beta),
                stats,
                output_grad,
                (groups, act),
            );
        }
        let shape = NormShape {
            batch: n,
            channels: c,
            positions: d * h * w,
            groups,
        };
        let (xv, dy) = (values(&x), values(&output_grad));
        let (mean, rstd) = (values(&stats.mean), values(&stats.rstd));
        let (g, b) = (gamma.as_ref().map(values), beta.as_ref().map(values));
        let grads = norm_kernels::group_norm_backward(
            &shape,
            slice(&xv),
            (g.as_ref().map(slice), b.as_ref().map(slice)),
            (slice(&mean), slice(&rstd)),
            slice(&dy),
            act,
        );
        let affine = gamma.is_some();
        NormGradients {
            x: tensor(grads.x, [n, c, d, h, w]),
            gamma: affine.then(|| matrix(grads.gamma, [c])),
            beta: affine.then(|| matrix(grads.beta, [c])),
        }
    }

    fn contiguous(x: FlexTensor) -> FlexTensor {
        if whole(&x) {
            return x;
        }
        if cpu_kernels() == CpuKernels::Dsma {
            if let Some(copy) = block_copy(&x) {
                return copy;
            }
        }
        x.to_contiguous()
    }

    fn cat_channels(tensors: Vec<FlexTensor>) -> FlexTensor {
        let parts: Option<Vec<FlexTensor>> = tensors
            .iter()
            .map(|t| (ours_f32(&[Some(t)]) && t.shape().num_dims() == 5).then(|| values(t)))
            .collect();
        let dims: Vec<[usize; 5]> = tensors
            .iter()
            .filter(|t| t.shape().num_dims() == 5)
            .map(dims5)
            .collect();
        let same = |d: &[usize; 5]| {
            [d[0], d[2], d[3], d[4]] == [dims[0][0], dims[0][2], dims[0][3], dims[0][4]]
        };
        match parts {
            Some(parts) if !parts.is_empty() && dims.iter().all(same) => {
                let views: Vec<&[f32]> = parts.iter().map(slice).collect();
                let channels: Vec<usize> = dims.iter().map(|d| d[1]).collect();
                let [n, _, d, h, w] = dims[0];
                let out = buffers::cat_channels(&views, &channels, n, d * h * w);
                tensor(out, [n, channels.iter().sum(), d, h, w])
            }
            _ => <Flex as burn::tensor::ops::FloatTensorOps<Flex>>::float_cat(tensors, 1),
        }
    }

    fn gate_channels(x: FlexTensor, g: FlexTensor) -> FlexTensor {
        let Some(shape) = gate_shape(&x, &g) else {
            return gate_generic::<Flex>(x, g);
        };
        let (xv, gv) = (values(&x), values(&g));
        like(
            gate_kernels::gate_forward(shape, slice(&xv), slice(&gv)),
            &x,
        )
    }

    fn gate_channels_grad(
        x: FlexTensor,
        g: FlexTensor,
        dy: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let Some(shape) = gate_shape(&x, &g).filter(|_| ours_f32(&[Some(&dy)])) else {
            return gate_generic_grad::<Flex>(x, g, dy);
        };
        let (xv, gv, dv) = (values(&x), values(&g), values(&dy));
        let (dx, dg) = gate_kernels::gate_backward(shape, slice(&xv), slice(&gv), slice(&dv));
        (like(dx, &x), like(dg, &g))
    }

    fn gelu_erf(x: FlexTensor) -> FlexTensor {
        if !ours_f32(&[Some(&x)]) {
            return <Flex as ActivationOps<Flex>>::gelu(x);
        }
        let xv = values(&x);
        let y = activation_kernels::gelu_forward(slice(&xv));
        like(y, &x)
    }

    fn gelu_erf_grad(x: FlexTensor, dy: FlexTensor) -> FlexTensor {
        if !ours_f32(&[Some(&x), Some(&dy)]) || x.shape() != dy.shape() {
            return <Flex as ActivationOps<Flex>>::gelu_backward(x, dy);
        }
        let (xv, dv) = (values(&x), values(&dy));
        let dx = activation_kernels::gelu_backward(slice(&xv), slice(&dv));
        like(dx, &x)
    }

    fn channel_norm_forward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> NormOutput<Flex> {
        let [n, c, d, h, w] = dims5(&x);
        if !ours_norm(&[Some(&x), Some(&gamma), Some(&beta)], c, 1) {
            return crate::norm_generic::channel_generic_forward::<Flex>(x, gamma, beta, epsilon);
        }
        let (xv, g, b) = (values(&x), values(&gamma), values(&beta));
        let shape = [n, c, d * h * w];
        let (y, mean, rstd) =
            norm_kernels::channel_norm_forward(shape, slice(&xv), slice(&g), slice(&b), epsilon);
        NormOutput {
            y: tensor(y, [n, c, d, h, w]),
            stats: NormStats {
                mean: matrix(mean, [n, d * h * w]),
                rstd: matrix(rstd, [n, d * h * w]),
            },
        }
    }

    fn channel_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        stats: NormStats<Flex>,
        output_grad: FlexTensor,
    ) -> NormGradients<Flex> {
        let [n, c, d, h, w] = dims5(&x);
        if !ours_norm(&[Some(&x), Some(&gamma), Some(&output_grad)], c, 1) {
            return crate::norm_generic::channel_generic_backward::<Flex>(
                x,
                gamma,
                stats,
                output_grad,
            );
        }
        let (xv, g, dy) = (values(&x), values(&gamma), values(&output_grad));
        let (mean, rstd) = (values(&stats.mean), values(&stats.rstd));
        let grads = norm_kernels::channel_norm_backward(
            [n, c, d * h * w],
            slice(&xv),
            slice(&g),
            (slice(&mean), slice(&rstd)),
            slice(&dy),
        );
        NormGradients {
            x: tensor(grads.x, [n, c, d, h, w]),
            gamma: Some(matrix(grads.gamma, [c])),
            beta: Some(matrix(grads.beta, [c])),
        }
    }
}
