//! `ConvForward` on `Flex` and `Autodiff<Flex>` against burn's own modules (the reference op), plus a
//! finite-difference check of the gradients on tiny tensors.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param};
use burn::nn::conv::{Conv3dConfig, ConvTranspose3dConfig};
use burn::nn::PaddingConfig3d;
use burn::tensor::{Tensor, TensorData};
use burn_flex::Flex;
use dsma_kernels::ConvForward;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

pub(crate) type A = Autodiff<Flex>;

/// A tensor of N(mean, std²) values drawn from a ChaCha8 stream seeded with `seed` (burn's own
/// RNG is global and unseeded, so a failure would not reproduce).
pub(crate) fn normal<const D: usize>(
    shape: [usize; D],
    mean: f32,
    std: f32,
    seed: u64,
) -> Tensor<A, D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dist = Normal::new(mean, std).expect("a valid normal");
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| dist.sample(&mut rng)).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Replaces a freshly initialised module parameter (burn's unseeded RNG) by seeded values.
pub(crate) fn seeded<const D: usize>(p: &Param<Tensor<A, D>>, seed: u64) -> Param<Tensor<A, D>> {
    let shape: [usize; D] = p.val().dims();
    Param::from_tensor(normal(shape, 0.0, 0.3, seed))
}

pub(crate) fn assert_close(got: Tensor<Flex, 5>, want: Tensor<Flex, 5>, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g: Vec<f32> = got.into_data().to_vec().expect("f32");
    let w: Vec<f32> = want.into_data().to_vec().expect("f32");
    let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: {a} vs {b} (scale {scale})"
        );
    }
}

pub(crate) fn assert_close1(got: Tensor<Flex, 1>, want: Tensor<Flex, 1>, what: &str) {
    let n = got.dims()[0];
    assert_close(
        got.reshape([1, 1, 1, 1, n]),
        want.reshape([1, 1, 1, 1, n]),
        what,
    );
}

/// (batch, in, out, input size, kernel, stride, padding)
type Case = (usize, usize, usize, [usize; 3], usize, usize, usize);

const CONV_CASES: &[Case] = &[
    (2, 3, 5, [6, 7, 5], 3, 1, 1),
    (1, 4, 6, [7, 6, 9], 3, 2, 1),
    (3, 17, 9, [5, 4, 3], 1, 1, 0),
    (1, 2, 3, [8, 8, 8], 2, 2, 0),
];

#[test]
fn conv3d_forward_and_gradients_match_burn() {
    let dev = Default::default();
    for &(n, ci, co, size, k, s, p) in CONV_CASES {
        let mut conv = Conv3dConfig::new([ci, co], [k; 3])
            .with_stride([s; 3])
            .with_padding(PaddingConfig3d::Explicit(p, p, p))
            .init::<A>(&dev);
        conv.weight = seeded(&conv.weight, 1);
        conv.bias = conv.bias.as_ref().map(|b| seeded(b, 2));
        let shape = [n, ci, size[0], size[1], size[2]];
        let x0 = normal(shape, 0.0, 1.0, 3);
        let run = |ours: bool| {
            let x = x0.clone().detach().require_grad();
            let y = if ours {
                conv.run(x.clone())
            } else {
                conv.forward(x.clone())
            };
            let r = Tensor::<A, 5>::ones(y.dims(), &dev).mul_scalar(0.5) + y.clone().detach().sin();
            let grads = (y.clone() * r).sum().backward();
            (
                y.inner(),
                x.grad(&grads).expect("x grad"),
                conv.weight.val().grad(&grads).expect("w grad"),
                conv.bias
                    .as_ref()
                    .expect("bias")
                    .val()
                    .grad(&grads)
                    .expect("b grad"),
            )
        };
        let (ours, burn) = (run(true), run(false));
        let what = format!("conv {:?}", (n, ci, co, size, k, s, p));
        assert_close(ours.0, burn.0, &format!("{what} forward"));
        assert_close(ours.1, burn.1, &format!("{what} dx"));
        assert_close(ours.2, burn.2, &format!("{what} dw"));
        assert_close1(ours.3, burn.3, &format!("{what} db"));
        // The inference backend (no autodiff) takes the same kernels.
        let inner = conv.valid();
        assert_close(
            inner.run(x0.clone().inner()),
            inner.forward(x0.clone().inner()),
            &format!("{what} forward on Flex"),
        );
    }
}

#[test]
fn conv_transpose3d_forward_and_gradients_match_burn() {
    let dev = Default::default();
    for &(n, ci, co, size, k, s, p, op) in &[
        (
            2usize,
            4usize,
            3usize,
            [3usize, 4, 2],
            2usize,
            2usize,
            0usize,
            0usize,
        ),
        (1, 3, 5, [3, 3, 4], 3, 2, 1, 1),
        (2, 5, 2, [4, 3, 3], 3, 1, 1, 0),
    ] {
        let mut conv = ConvTranspose3dConfig::new([ci, co], [k; 3])
            .with_stride([s; 3])
            .with_padding([p; 3])
            .with_padding_out([op; 3])
            .init::<A>(&dev);
        conv.weight = seeded(&conv.weight, 4);
        conv.bias = conv.bias.as_ref().map(|b| seeded(b, 5));
        let shape = [n, ci, size[0], size[1], size[2]];
        let x0 = normal(shape, 0.0, 1.0, 6);
        let run = |ours: bool| {
            let x = x0.clone().detach().require_grad();
            let y = if ours {
                conv.run(x.clone())
            } else {
                conv.forward(x.clone())
            };
            let r = Tensor::<A, 5>::ones(y.dims(), &dev) + y.clone().detach().cos();
            let grads = (y.clone() * r).sum().backward();
            (
                y.inner(),
                x.grad(&grads).expect("x grad"),
                conv.weight.val().grad(&grads).expect("w grad"),
                conv.bias
                    .as_ref()
                    .expect("bias")
                    .val()
                    .grad(&grads)
                    .expect("b grad"),
            )
        };
        let (ours, burn) = (run(true), run(false));
        let what = format!("transpose {:?}", (n, ci, co, size, k, s, p, op));
        assert_close(ours.0, burn.0, &format!("{what} forward"));
        assert_close(ours.1, burn.1, &format!("{what} dx"));
        assert_close(ours.2, burn.2, &format!("{what} dw"));
        assert_close1(ours.3, burn.3, &format!("{what} db"));
    }
}

/// Central differences of `L = Σ y·r` (linear in x and w, so exact up to rounding) against the
/// gradients our backward returns, element by element on a tiny strided convolution.
#[test]
fn gradients_match_finite_differences() {
    let dev = Default::default();
    let mut conv = Conv3dConfig::new([2, 3], [3; 3])
        .with_stride([2; 3])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
        .init::<A>(&dev);
    conv.weight = seeded(&conv.weight, 7);
    conv.bias = conv.bias.as_ref().map(|b| seeded(b, 8));
    let x0: Tensor<A, 5> = normal([1, 2, 5, 4, 5], 0.0, 1.0, 9);
    let r: Tensor<A, 5> = normal([1, 3, 3, 2, 3], 0.0, 1.0, 10);
    let loss = |conv: &burn::nn::conv::Conv3d<A>, x: Tensor<A, 5>| -> f32 {
        (conv.run(x) * r.clone()).sum().into_scalar()
    };
    let x = x0.clone().require_grad();
    let grads = (conv.run(x.clone()) * r.clone()).sum().backward();
    let dx: Vec<f32> = x
        .grad(&grads)
        .expect("dx")
        .into_data()
        .to_vec()
        .expect("f32");
    let dw: Vec<f32> = conv
        .weight
        .val()
        .grad(&grads)
        .expect("dw")
        .into_data()
        .to_vec()
        .expect("f32");
    let eps = 1e-2f32;
    let xs: Vec<f32> = x0.clone().into_data().to_vec().expect("f32");
    for i in (0..xs.len()).step_by(7) {
        let at = |d: f32| {
            let mut v = xs.clone();
            v[i] += d;
            loss(
                &conv,
                Tensor::from_data(TensorData::new(v, [1, 2, 5, 4, 5]), &dev),
            )
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (fd - dx[i]).abs() <= 1e-3 * (1.0 + fd.abs()),
            "dx[{i}]: {} vs {fd}",
            dx[i]
        );
    }
    let ws: Vec<f32> = conv.weight.val().into_data().to_vec().expect("f32");
    for i in (0..ws.len()).step_by(5) {
        let mut at = |d: f32| {
            let mut v = ws.clone();
            v[i] += d;
            conv.weight =
                Param::from_tensor(Tensor::from_data(TensorData::new(v, [3, 2, 3, 3, 3]), &dev));
            loss(&conv, x0.clone())
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (fd - dw[i]).abs() <= 1e-3 * (1.0 + fd.abs()),
            "dw[{i}]: {} vs {fd}",
            dw[i]
        );
    }
}

/// Output, input gradient and (γ, β) gradients of `run` under `L = Σ y·r`.
pub(crate) type NormResult = (
    Tensor<Flex, 5>,
    Tensor<Flex, 5>,
    Option<(Tensor<Flex, 1>, Tensor<Flex, 1>)>,
);

pub(crate) fn norm_grads(
    run: impl Fn(Tensor<A, 5>) -> Tensor<A, 5>,
    params: Option<(Tensor<A, 1>, Tensor<A, 1>)>,
    x0: &Tensor<A, 5>,
    r: &Tensor<A, 5>,
) -> NormResult {
    let x = x0.clone().detach().require_grad();
    let y = run(x.clone());
    let grads = (y.clone() * r.clone()).sum().backward();
    let pg = params.map(|(g, b)| (g.grad(&grads).expect("dγ"), b.grad(&grads).expect("dβ")));
    (y.inner(), x.grad(&grads).expect("dx"), pg)
}

#[test]
fn instance_and_group_norm_forward_and_gradients_match_burn() {
    use burn::nn::{GroupNorm, GroupNormConfig, InstanceNorm, InstanceNormConfig};
    use dsma_kernels::NormForward;
    let dev = Default::default();
    let x0 = normal([2, 6, 3, 4, 5], 1.0, 2.0, 11);
    let r = normal([2, 6, 3, 4, 5], 0.0, 1.0, 12);
    // Non-trivial γ, so that it enters the input gradient.
    let gamma = || {
        Some(Param::from_tensor(Tensor::<A, 1>::from_floats(
            [0.5, -1.0, 2.0, 1.5, 0.8, -0.3],
            &dev,
        )))
    };
    let instance = InstanceNorm {
        gamma: gamma(),
        ..InstanceNormConfig::new(6).with_affine(true).init::<A>(&dev)
    };
    let plain = InstanceNormConfig::new(6)
        .with_affine(false)
        .init::<A>(&dev);
    let group = GroupNorm {
        gamma: gamma(),
        ..GroupNormConfig::new(3, 6).init::<A>(&dev)
    };
    let affine = |g: &Option<Param<Tensor<A, 1>>>, b: &Option<Param<Tensor<A, 1>>>| {
        g.as_ref().zip(b.as_ref()).map(|(g, b)| (g.val(), b.val()))
    };
    let checks: [(&str, NormResult, NormResult); 3] = [
        (
            "instance",
            norm_grads(
                |x| instance.run(x),
                affine(&instance.gamma, &instance.beta),
                &x0,
                &r,
            ),
            norm_grads(
                |x| instance.forward(x),
                affine(&instance.gamma, &instance.beta),
                &x0,
                &r,
            ),
        ),
        (
            "instance without affine",
            norm_grads(|x| plain.run(x), None, &x0, &r),
            norm_grads(|x| plain.forward(x), None, &x0, &r),
        ),
        (
            "group",
            norm_grads(|x| group.run(x), affine(&group.gamma, &group.beta), &x0, &r),
            norm_grads(
                |x| group.forward(x),
                affine(&group.gamma, &group.beta),
                &x0,
                &r,
            ),
        ),
    ];
    for (what, ours, burn) in checks {
        assert_close(ours.0, burn.0, &format!("{what} forward"));
        assert_close(ours.1, burn.1, &format!("{what} dx"));
        assert_eq!(
            ours.2.is_some(),
            burn.2.is_some(),
            "{what}: affine gradients"
        );
        if let (Some(a), Some(b)) = (ours.2, burn.2) {
            assert_close1(a.0, b.0, &format!("{what} dγ"));
            assert_close1(a.1, b.1, &format!("{what} dβ"));
        }
    }
}

#[test]
fn channel_norm_forward_and_gradients_match_burn_tensor_ops() {
    use burn::tensor::TensorPrimitive;
    use dsma_kernels::channel_norm::channel_norm;
    use dsma_kernels::norm_generic::channel_generic_forward as generic_forward;
    let x0 = normal([2, 6, 3, 4, 5], 1.0, 2.0, 21);
    let r = normal([2, 6, 3, 4, 5], 0.0, 1.0, 22);
    let gamma0 = normal([6], 1.0, 0.5, 23);
    let beta0 = normal([6], 0.0, 0.5, 24);
    let run = |ours: bool| {
        let x = x0.clone().detach().require_grad();
        let (g, b) = (
            gamma0.clone().detach().require_grad(),
            beta0.clone().detach().require_grad(),
        );
        let y = if ours {
            channel_norm(x.clone(), g.clone(), b.clone(), 1e-6)
        } else {
            // burn's autodiff over the tensor-op version: the reference.
            let out = generic_forward::<A>(
                x.clone().into_primitive().tensor(),
                g.clone().into_primitive().tensor(),
                b.clone().into_primitive().tensor(),
                1e-6,
            );
            Tensor::<A, 5>::from_primitive(TensorPrimitive::Float(out.y))
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        (
            y.inner(),
            x.grad(&grads).expect("dx"),
            g.grad(&grads).expect("dγ"),
            b.grad(&grads).expect("dβ"),
        )
    };
    let (ours, burn) = (run(true), run(false));
    assert_close(ours.0, burn.0, "y");
    assert_close(ours.1, burn.1, "dx");
    assert_close1(ours.2, burn.2, "dγ");
    assert_close1(ours.3, burn.3, "dβ");
}

#[test]
fn contiguous_keeps_values_and_passes_the_gradient_through() {
    let x0 = normal([2, 6, 2, 3, 4], 0.0, 1.0, 31);
    let r = normal([2, 3, 2, 3, 4], 0.0, 1.0, 32);
    let x = x0.clone().detach().require_grad();
    // A channel slice: a strided view in burn-flex.
    let y = dsma_kernels::contiguous(x.clone().narrow(1, 2, 3));
    let grads = (y.clone() * r.clone()).sum().backward();
    let got: Vec<f32> = y.inner().into_data().to_vec().expect("f32");
    let all: Vec<f32> = x0.inner().into_data().to_vec().expect("f32");
    let dx: Vec<f32> = x
        .grad(&grads)
        .expect("dx")
        .into_data()
        .to_vec()
        .expect("f32");
    let rv: Vec<f32> = r.inner().into_data().to_vec().expect("f32");
    let per = 2 * 3 * 4;
    for n in 0..2 {
        for c in 0..6 {
            for p in 0..per {
                let at = (n * 6 + c) * per + p;
                let inside = (2..5).contains(&c);
                let want = if inside {
                    rv[(n * 3 + c - 2) * per + p]
                } else {
                    0.0
                };
                assert_eq!(dx[at], want, "dx[{n}, {c}, {p}]");
                if inside {
                    assert_eq!(got[(n * 3 + c - 2) * per + p], all[at], "y[{n}, {c}, {p}]");
                }
            }
        }
    }
}
