//! Element-wise and copying ops of `KernelBackend` on `Autodiff<Flex>` against burn's modules
//! and tensor ops: the norm followed by LeakyReLU or ReLU in one op, the parallel GELU, the
//! channel gate, the channel concatenation.

use burn::module::Param;
use burn::tensor::Tensor;

use crate::against_burn::{assert_close, assert_close1, norm_grads, normal, NormResult, A};

/// The norm with its activation fused (`run_then`) against burn's module followed by burn's
/// activation, on `Autodiff<Flex>`: LeakyReLU after instance norm (the U-Net's block), ReLU after
/// group norm (HA-GAN's) and after instance norm without affine parameters (NestedFormer's), on
/// dsma's kernels and on the burn-op version; the input has values on both sides of the kink.
#[test]
fn norm_with_fused_activation_matches_burn_module_then_activation() {
    use burn::nn::{GroupNorm, GroupNormConfig, InstanceNorm, InstanceNormConfig};
    use burn::tensor::activation::{leaky_relu, relu};
    use dsma_kernels::{with_cpu_kernels, Activation, CpuKernels, NormForward};
    let dev = Default::default();
    let x0 = normal([2, 6, 3, 4, 5], 1.0, 2.0, 13);
    let r = normal([2, 6, 3, 4, 5], 0.0, 1.0, 14);
    let params = |seed: u64| {
        (
            Some(Param::from_tensor(normal([6], 1.0, 0.8, seed))),
            Some(Param::from_tensor(normal([6], 0.0, 0.5, seed + 1))),
        )
    };
    let (g, b) = params(15);
    let instance = InstanceNorm {
        gamma: g,
        beta: b,
        ..InstanceNormConfig::new(6).with_affine(true).init::<A>(&dev)
    };
    let (g, b) = params(17);
    let group = GroupNorm {
        gamma: g,
        beta: b,
        ..GroupNormConfig::new(3, 6).init::<A>(&dev)
    };
    let affine = |g: &Option<Param<Tensor<A, 1>>>, b: &Option<Param<Tensor<A, 1>>>| {
        g.as_ref().zip(b.as_ref()).map(|(g, b)| (g.val(), b.val()))
    };
    let (ip, gp) = (
        || affine(&instance.gamma, &instance.beta),
        || affine(&group.gamma, &group.beta),
    );
    let plain = InstanceNormConfig::new(6)
        .with_affine(false)
        .init::<A>(&dev);
    let leaky = Activation::LeakyRelu(0.01);
    // dsma's kernels, and the burn-op version other backends use (`DSMA_CPU_KERNELS=burn`).
    for kernels in [CpuKernels::Dsma, CpuKernels::Burn] {
        let checks: [(&str, NormResult, NormResult); 3] = with_cpu_kernels(kernels, || {
            [
                (
                    "instance + LeakyReLU",
                    norm_grads(|x| instance.run_then(x, leaky), ip(), &x0, &r),
                    norm_grads(|x| leaky_relu(instance.forward(x), 0.01), ip(), &x0, &r),
                ),
                (
                    "group + ReLU",
                    norm_grads(|x| group.run_then(x, Activation::Relu), gp(), &x0, &r),
                    norm_grads(|x| relu(group.forward(x)), gp(), &x0, &r),
                ),
                (
                    "instance without affine + ReLU",
                    norm_grads(|x| plain.run_then(x, Activation::Relu), None, &x0, &r),
                    norm_grads(|x| relu(plain.forward(x)), None, &x0, &r),
                ),
            ]
        });
        for (what, ours, burn) in checks {
            let what = format!("{what} ({kernels:?})");
            let kinked = burn
                .0
                .clone()
                .lower_equal_elem(0.0)
                .int()
                .sum()
                .into_scalar();
            assert!(kinked > 0, "{what}: no input below the kink");
            assert_close(ours.0, burn.0, &format!("{what} forward"));
            assert_close(ours.1, burn.1, &format!("{what} dx"));
            assert_eq!(ours.2.is_some(), burn.2.is_some(), "{what}: affine");
            if let (Some(a), Some(b)) = (ours.2, burn.2) {
                assert_close1(a.0, b.0, &format!("{what} dγ"));
                assert_close1(a.1, b.1, &format!("{what} dβ"));
            }
        }
    }
}

/// `dsma_kernels::gelu` on `Autodiff<Flex>` (the parallel kernel and its node) against burn's
/// `activation::gelu`: values and input gradients, rank 5 and rank 3.
#[test]
fn gelu_matches_burn() {
    let grads = |x0: Tensor<A, 5>, r: &Tensor<A, 5>, ours: bool| {
        let x = x0.detach().require_grad();
        let y = if ours {
            dsma_kernels::gelu(x.clone())
        } else {
            burn::tensor::activation::gelu(x.clone())
        };
        let g = (y.clone() * r.clone()).sum().backward();
        (y.inner(), x.grad(&g).expect("dx"))
    };
    let x0 = normal([2, 3, 4, 5, 6], 0.0, 2.0, 41);
    let r = normal([2, 3, 4, 5, 6], 0.0, 1.0, 42);
    let (ours, burn) = (grads(x0.clone(), &r, true), grads(x0, &r, false));
    assert_close(ours.0, burn.0, "gelu forward");
    assert_close(ours.1, burn.1, "gelu dx");
    let x3: Tensor<A, 3> = normal([4, 7, 9], 0.5, 1.5, 43);
    let ours3 = dsma_kernels::gelu(x3.clone())
        .inner()
        .reshape([1, 4, 7, 9, 1]);
    let burn3 = burn::tensor::activation::gelu(x3)
        .inner()
        .reshape([1, 4, 7, 9, 1]);
    assert_close(ours3, burn3, "gelu forward, rank 3");
}

/// `dsma_kernels::gate_channels` on `Autodiff<Flex>` against burn's broadcasting product, values
/// and both gradients; the gate a channel slice of a wider tensor (a strided view), as in
/// NestedFormer.
#[test]
fn channel_gate_matches_burn_broadcast_product() {
    let x0 = normal([2, 4, 3, 5, 6], 0.0, 1.0, 51);
    let g0 = normal([2, 3, 3, 5, 6], 0.5, 1.0, 52);
    let r = normal([2, 4, 3, 5, 6], 0.0, 1.0, 53);
    let run = |ours: bool| {
        let (x, g) = (
            x0.clone().detach().require_grad(),
            g0.clone().detach().require_grad(),
        );
        let gate = g.clone().narrow(1, 1, 1);
        let y = if ours {
            dsma_kernels::gate_channels(x.clone(), gate)
        } else {
            x.clone() * gate
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        let dx = x.grad(&grads).expect("dx");
        (y.inner(), dx, g.grad(&grads).expect("dg"))
    };
    let (ours, burn) = (run(true), run(false));
    assert_close(ours.0, burn.0, "gate forward");
    assert_close(ours.1, burn.1, "gate dx");
    assert_close(ours.2, burn.2, "gate dg");
}

/// `dsma_kernels::cat_channels` on `Autodiff<Flex>` against burn's `Tensor::cat` along the
/// channels: values and every input's gradient, for two, three and four inputs (the third a
/// strided channel slice).
#[test]
fn channel_cat_matches_burn_cat() {
    let a0 = normal([2, 3, 2, 3, 4], 0.0, 1.0, 61);
    let b0 = normal([2, 5, 2, 3, 4], 0.0, 1.0, 62);
    let c0 = normal([2, 4, 2, 3, 4], 0.0, 1.0, 63);
    let d0 = normal([2, 2, 2, 3, 4], 0.0, 1.0, 65);
    for (count, total) in [(2, 8), (3, 10), (4, 12)] {
        let r = normal([2, total, 2, 3, 4], 0.0, 1.0, 64);
        let run = |ours: bool| {
            let inputs: Vec<Tensor<A, 5>> = [&a0, &b0, &c0, &d0]
                .iter()
                .take(count)
                .map(|t| (*t).clone().detach().require_grad())
                .collect();
            let mut parts = inputs.clone();
            if count >= 3 {
                parts[2] = parts[2].clone().narrow(1, 1, 2);
            }
            let y = if ours {
                dsma_kernels::cat_channels(parts)
            } else {
                Tensor::cat(parts, 1)
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            let dx: Vec<_> = inputs
                .iter()
                .map(|t| t.grad(&grads).expect("grad"))
                .collect();
            (y.inner(), dx)
        };
        let (ours, burn) = (run(true), run(false));
        assert_close(ours.0, burn.0, &format!("cat of {count}: forward"));
        for (i, (a, b)) in ours.1.into_iter().zip(burn.1).enumerate() {
            assert_close(a, b, &format!("cat of {count}: d input {i}"));
        }
    }
}
