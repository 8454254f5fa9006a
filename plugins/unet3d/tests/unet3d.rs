//! unet3d: shapes, parameter count against a hand count, training reduces the loss, validation,
//! trilinear up-sampling against PyTorch's definition.
//!
//! The backend is `DSMA_TEST_BACKEND` (`cpu` when unset; `cuda` needs `--features cuda`, `tch` and
//! `tch-cuda` need `--features tch`), so
//! `scripts/gpu-check` runs these same tests on the GPU.

use burn::backend::{Autodiff, Flex};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use dsma_data::labels::region_targets;
use dsma_data::phantom::generate_case;
use dsma_data::preprocess::preprocess;
use dsma_kernels::KernelBackend;
use dsma_plugin::backend::BackendKind;
use dsma_train::checkpoint::module_state::materialize;
use dsma_train::layers::upsample2_trilinear;
use dsma_train::loss::weighted_dice_loss;
use dsma_train::model::{BackendDispatch, BackendVisitor, ModelFactory, SegmentationModel};
use dsma_train::runner::registration::model;
use dsma_unet3d::{Norm, UNet3d, UNet3dFactory, UNet3dParams, Upsample};
use serde_json::json;

fn backend() -> BackendKind {
    BackendKind::from_env("DSMA_TEST_BACKEND").expect("DSMA_TEST_BACKEND")
}

/// burn's backend RNG is global: tests that draw from it (weight init, forward of lazy weights)
/// hold this lock, so a seeded test gets the same weights whatever runs beside it.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn small() -> UNet3dParams {
    UNet3dParams {
        base_width: 4,
        depth: 2,
        ..UNet3dParams::default()
    }
}

/// Parameters counted by hand from the architecture (conv weights + biases, affine norms).
fn hand_count(p: &UNet3dParams) -> usize {
    let w = |l: usize| p.base_width << l;
    let block = |i: usize, o: usize| 27 * i * o + o + 2 * o;
    let stage = |i: usize, o: usize| block(i, o) + block(o, o);
    let mut n = 0;
    for l in 0..p.depth {
        n += stage(if l == 0 { p.in_channels } else { w(l) }, w(l));
        n += block(w(l), w(l + 1));
        n += match p.upsample {
            Upsample::Transpose => 8 * w(l + 1) * w(l) + w(l),
            Upsample::Trilinear => w(l + 1) * w(l) + w(l),
        };
        n += stage(2 * w(l), w(l));
    }
    n + stage(w(p.depth), w(p.depth)) + w(0) * p.out_channels + p.out_channels
}

#[test]
fn output_shape_and_parameter_count_for_both_norms() {
    let _rng = rng_lock();
    let reg = model("unet3d").expect("registered");
    let probe = reg
        .probe(
            backend(),
            &json!({"base_width": 4, "depth": 2}),
            [2, 4, 16, 12, 8],
        )
        .unwrap();
    assert_eq!(probe.output_shape, [2, 3, 16, 12, 8]);
    assert_eq!(probe.parameters, hand_count(&small()));
    let tri = reg
        .probe(
            backend(),
            &json!({"base_width": 4, "depth": 2, "upsample": "trilinear"}),
            [1, 4, 8, 12, 16],
        )
        .unwrap();
    assert_eq!(tri.output_shape, [1, 3, 8, 12, 16]);
    let tri_params = UNet3dParams {
        upsample: Upsample::Trilinear,
        ..small()
    };
    assert_eq!(tri.parameters, hand_count(&tri_params));
    let g = reg
        .probe(
            backend(),
            &json!({"base_width": 8, "depth": 3, "norm": "group", "groups": 4}),
            [1, 4, 16, 16, 16],
        )
        .unwrap();
    assert_eq!(g.output_shape, [1, 3, 16, 16, 16]);
    // Default configuration (base 16, depth 4): the count reported when closing the issue.
    let p = UNet3dParams::default();
    let m = UNet3dFactory::build::<Flex>(&p, &Default::default()).unwrap();
    assert_eq!(burn::module::Module::num_params(&m), hand_count(&p));
    assert_eq!(m.size_divisor(), 16);
}

/// 30 AdamW steps on one phantom patch, on backend `I` (trained through `Autodiff<I>`).
struct LossDecreases(Upsample);

impl BackendVisitor for LossDecreases {
    type Output = Vec<f32>;
    fn visit<I: KernelBackend>(self, dev: I::Device) -> Vec<f32> {
        adamw_losses::<Autodiff<I>>(self.0, &dev)
    }
}

fn adamw_losses<B: burn::tensor::backend::AutodiffBackend + KernelBackend>(
    upsample: Upsample,
    dev: &B::Device,
) -> Vec<f32> {
    let case = preprocess(&generate_case("t", [16, 16, 16], [1.0; 3], 2).unwrap()).unwrap();
    // Pad/crop the preprocessed case to 16³ so it fits the network.
    let mut image = ndarray::Array4::<f32>::zeros((4, 16, 16, 16));
    let mut label = ndarray::Array3::<u8>::zeros((16, 16, 16));
    let (_, z, y, x) = case.image.dim();
    let (z, y, x) = (z.min(16), y.min(16), x.min(16));
    image
        .slice_mut(ndarray::s![.., ..z, ..y, ..x])
        .assign(&case.image.slice(ndarray::s![.., ..z, ..y, ..x]));
    label
        .slice_mut(ndarray::s![..z, ..y, ..x])
        .assign(&case.label.slice(ndarray::s![..z, ..y, ..x]));
    let targets = region_targets(label.view(), case.convention);
    let x = Tensor::<B, 5>::from_data(
        TensorData::new(
            image.iter().copied().collect::<Vec<_>>(),
            [1, 4, 16, 16, 16],
        ),
        dev,
    );
    let t = Tensor::<B, 5>::from_data(
        TensorData::new(
            targets.iter().copied().collect::<Vec<_>>(),
            [1, 3, 16, 16, 16],
        ),
        dev,
    );
    let w = Tensor::<B, 1>::ones([1], dev);
    let _rng = rng_lock();
    <B as burn::tensor::backend::Backend>::seed(dev, 7);
    let params = UNet3dParams {
        upsample,
        ..small()
    };
    let mut net: UNet3d<B> = UNet3dFactory::build::<B>(&params, dev).unwrap();
    materialize(&net);
    let mut opt = AdamWConfig::new()
        .with_weight_decay(1e-5)
        .with_epsilon(1e-8)
        .init::<B, UNet3d<B>>();
    let mut losses = vec![];
    for _ in 0..30 {
        let loss = weighted_dice_loss(net.forward(x.clone()), t.clone(), w.clone());
        losses.push(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = opt.step(3e-3, net, grads);
    }
    losses
}

#[test]
fn a_few_adamw_steps_reduce_the_dice_loss_on_a_phantom_patch() {
    for upsample in [Upsample::Transpose, Upsample::Trilinear] {
        let losses = backend().dispatch(LossDecreases(upsample)).unwrap();
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "{upsample:?}: {losses:?}"
        );
        assert!(
            losses[losses.len() - 1] < losses[0] - 0.02,
            "{upsample:?}: loss did not decrease: {losses:?}"
        );
    }
}

/// PyTorch's `align_corners=False` rule written out per output voxel: source coordinate
/// `(o + 0.5) / 2 − 0.5` clamped to `[0, n − 1]`, linear weights between its two neighbours.
fn reference_upsample(v: &[f32], [d, h, w]: [usize; 3]) -> Vec<f32> {
    let taps = |o: usize, n: usize| {
        let src = ((o as f64 + 0.5) / 2.0 - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        let f = src - i0 as f64;
        [(i0, 1.0 - f), (i1, f)]
    };
    let mut out = Vec::with_capacity(8 * d * h * w);
    for z in 0..2 * d {
        for y in 0..2 * h {
            for x in 0..2 * w {
                let mut acc = 0.0f64;
                for (iz, fz) in taps(z, d) {
                    for (iy, fy) in taps(y, h) {
                        for (ix, fx) in taps(x, w) {
                            acc += fz * fy * fx * v[(iz * h + iy) * w + ix] as f64;
                        }
                    }
                }
                out.push(acc as f32);
            }
        }
    }
    out
}

struct UpsampleValues(Vec<f32>, [usize; 3]);

impl BackendVisitor for UpsampleValues {
    type Output = Vec<f32>;
    fn visit<B: KernelBackend>(self, dev: B::Device) -> Vec<f32> {
        let [d, h, w] = self.1;
        let x = Tensor::<B, 5>::from_data(TensorData::new(self.0, [1, 1, d, h, w]), &dev);
        let y = upsample2_trilinear(x);
        assert_eq!(y.dims(), [1, 1, 2 * d, 2 * h, 2 * w]);
        y.into_data().iter::<f32>().collect()
    }
}

#[test]
fn trilinear_upsampling_matches_the_per_voxel_definition() {
    // Odd and unit sizes exercise both clamped borders and the one-voxel axis.
    for dims in [[3usize, 4, 5], [1, 2, 3]] {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let got = backend().dispatch(UpsampleValues(v.clone(), dims)).unwrap();
        let want = reference_upsample(&v, dims);
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-4, "{dims:?} voxel {i}: {a} vs {b}");
        }
    }
}

#[test]
fn invalid_parameters_name_the_field() {
    let reg = model("unet3d").unwrap();
    let e = reg
        .probe(backend(), &json!({"depth": 0}), [1, 4, 8, 8, 8])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unet3d") && e.contains("depth"), "{e}");
    let e = reg
        .probe(
            backend(),
            &json!({"norm": "group", "groups": 3}),
            [1, 4, 16, 16, 16],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups"), "{e}");
    let e = reg
        .probe(backend(), &json!({"norm": "batch"}), [1, 4, 16, 16, 16])
        .unwrap_err()
        .to_string();
    assert!(e.contains("norm") && e.contains("batch"), "{e}");
    assert_eq!(small().norm, Norm::Instance);
}

/// The project's CPU convolutions leave training where burn-flex's put it: the same AdamW loss
/// curve to float tolerance (both runs from the same seed; only the convolution kernels differ).
#[test]
fn loss_curve_matches_burn_flex_convolutions() {
    use dsma_kernels::{with_cpu_kernels, CpuKernels};
    type A = Autodiff<burn::backend::Flex>;
    let dev = Default::default();
    for upsample in [Upsample::Transpose, Upsample::Trilinear] {
        let ours = with_cpu_kernels(CpuKernels::Dsma, || adamw_losses::<A>(upsample, &dev));
        let burn = with_cpu_kernels(CpuKernels::Burn, || adamw_losses::<A>(upsample, &dev));
        for (step, (a, b)) in ours.iter().zip(&burn).enumerate() {
            assert!(
                (a - b).abs() <= 1e-3 * b.abs().max(1e-2),
                "{upsample:?} step {step}: {a} vs {b}\nours {ours:?}\nburn {burn:?}"
            );
        }
    }
}
