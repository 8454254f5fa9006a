//! nestedformer: shapes with and without MSG, parameters against a hand count, training steps reduce
//! the loss with MSG on and off, fixed input size, window attention and relative positions.

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, ElementConversion, Tensor};
use dsma_nestedformer::{relative_indices, NestedFormer, NestedFormerFactory, NestedFormerParams};
use dsma_plugin::backend::BackendKind;
use dsma_train::inference::{sliding_window, Blend, SlidingWindow};
use dsma_train::loss::weighted_dice_loss;
use dsma_train::model::{BackendDispatch, BackendVisitor, ModelFactory, SegmentationModel};
use dsma_train::runner::registration::model;

/// burn's backend RNG is global: tests that draw from it (weight init, random inputs) hold this
/// lock, so a seeded test gets the same numbers whatever runs beside it.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The backend of these tests: `DSMA_TEST_BACKEND` (`cpu` when unset; `cuda` needs `--features cuda`,
/// `tch` and `tch-cuda` need `--features tch`).
fn backend() -> BackendKind {
    BackendKind::from_env("DSMA_TEST_BACKEND").expect("DSMA_TEST_BACKEND")
}

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny(msg: bool) -> NestedFormerParams {
    NestedFormerParams {
        image_size: [32, 32, 32],
        widths: [4, 4, 8, 8, 16, 4],
        window: [2, 2, 2],
        heads: 2,
        modality_tokens: 4,
        msg,
        ..NestedFormerParams::default()
    }
}

/// Trainable parameters counted by hand from the architecture (see the crate docs).
fn hand_count(p: &NestedFormerParams) -> usize {
    let f = p.widths;
    let m = p.modalities;
    let conv = |i: usize, o: usize, k: usize| k * k * k * i * o + o;
    let two = |i: usize, o: usize| conv(i, o, 3) + conv(o, o, 3);
    let lin = |i: usize, o: usize| i * o + o;
    let [x, y, z] = p.image_size;
    let mut enc = two(1, f[0]);
    for l in 1..=4 {
        let (cin, c) = (f[l - 1], f[l]);
        let n = (x >> l) * (y >> l) * (z >> l);
        enc += conv(cin, c, 2) + 2 * c;
        enc += 2 * (2 * c + lin(1, n) + 2 * c + conv(c, 2 * c, 1) + conv(2 * c, c, 1));
    }
    let c = f[4];
    let (a, b, cz) = (x / 16, y / 16, z / 16);
    let nb = a * b * cz;
    let k = 2 * p.window.iter().max().unwrap() - 1;
    let mut nmafa = conv(m * c, c, 1);
    for i in 0..p.spatial_layers {
        nmafa += 4 * c
            + 8 * lin(c, c)
            + 3 * c * c
            + lin(c, c)
            + k * k * k
            + lin(c, 2 * c)
            + lin(2 * c, c);
        if i == 0 {
            nmafa += b * cz * c + a * c;
        }
    }
    nmafa += m * conv(c, c, 1)
        + m * nb * c
        + conv(c, p.modality_tokens, 3)
        + 4 * lin(c, c)
        + 2 * c
        + lin(c, 2 * c)
        + lin(2 * c, c)
        + 2 * c;
    let mut dec = two(m * c, c);
    for l in 0..4 {
        let cin = f[l + 1];
        let up = cin / 2;
        let out = if l == 0 { f[5] } else { f[l] };
        dec += 8 * cin * up + up + two(m * f[l], f[l]) + two(f[l] + up, out);
        if p.msg {
            dec += conv(up, m, 1);
        }
    }
    dec += conv(f[5], p.out_channels, 1);
    m * enc + nmafa + dec
}

#[test]
fn output_shapes_with_and_without_msg_and_parameter_counts() {
    let _rng = rng_lock();
    let reg = model("nestedformer").expect("registered");
    for msg in [true, false] {
        let params = serde_json::to_value(tiny(msg)).unwrap();
        let probe = reg.probe(backend(), &params, [1, 4, 32, 32, 32]).unwrap();
        assert_eq!(probe.output_shape, [1, 3, 32, 32, 32]);
        assert_eq!(probe.parameters, hand_count(&tiny(msg)), "msg {msg}");
    }
    // The default 128³ configuration (reported when closing the issue), without a forward pass.
    for msg in [true, false] {
        let p = NestedFormerParams {
            msg,
            ..NestedFormerParams::default()
        };
        let m = NestedFormerFactory::build::<Flex>(&p, &Default::default()).unwrap();
        assert_eq!(m.num_params(), hand_count(&p), "default, msg {msg}");
    }
}

/// Eight AdamW steps with MSG on and off, on backend `I` (trained through `Autodiff<I>`); the losses.
struct AdamwLosses;

impl BackendVisitor for AdamwLosses {
    type Output = Vec<(bool, Vec<f32>)>;
    fn visit<I: dsma_kernels::KernelBackend>(self, dev: I::Device) -> Self::Output {
        type B<I> = Autodiff<I>;
        let mut out = Vec::new();
        for msg in [true, false] {
            <B<I> as burn::tensor::backend::Backend>::seed(&dev, 1);
            let mut net: Option<NestedFormer<B<I>>> =
                Some(NestedFormerFactory::build::<B<I>>(&tiny(msg), &dev).unwrap());
            let mut opt = AdamWConfig::new()
                .with_epsilon(1e-8)
                .init::<B<I>, NestedFormer<B<I>>>();
            let x =
                Tensor::<B<I>, 5>::random([1, 4, 32, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
            // A learnable target: WT where FLAIR is bright, TC where T1ce is bright, ET inside both.
            let wt = x.clone().narrow(1, 0, 1).greater_elem(0.5).float();
            let tc = x.clone().narrow(1, 2, 1).greater_elem(0.5).float();
            let t = Tensor::cat(vec![wt.clone(), tc.clone(), wt * tc], 1);
            let w = Tensor::<B<I>, 1>::ones([1], &dev);
            let mut losses = Vec::new();
            for _ in 0..8 {
                let m = net.take().unwrap();
                let loss = weighted_dice_loss(m.forward(x.clone()), t.clone(), w.clone());
                losses.push(loss.clone().into_scalar().elem::<f32>());
                let g = GradientsParams::from_grads(loss.backward(), &m);
                net = Some(opt.step(3e-3, m, g));
            }
            out.push((msg, losses));
        }
        out
    }
}

#[test]
fn a_few_adamw_steps_reduce_the_loss_with_msg_on_and_off() {
    let _rng = rng_lock();
    for (msg, losses) in backend().dispatch(AdamwLosses).unwrap() {
        assert!(losses[7] < losses[0] - 0.01, "msg {msg}: {losses:?}");
    }
}

#[test]
fn the_fixed_input_size_is_enforced_with_both_sizes_named() {
    let _rng = rng_lock();
    let dev = Default::default();
    let m = NestedFormerFactory::build::<Flex>(&tiny(true), &dev).unwrap();
    assert_eq!(m.input_size(), Some([32, 32, 32]));
    let image = ndarray::Array4::<f32>::zeros((4, 40, 40, 40));
    let cfg = SlidingWindow {
        patch: [48, 48, 48],
        overlap: 0.5,
        blend: Blend::Gaussian,
    };
    let err = sliding_window::<Flex, _>(&m, image.view(), &cfg, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[48, 48, 48]") && err.contains("[32, 32, 32]"),
        "{err}"
    );
    let bad = NestedFormerParams {
        image_size: [32, 32, 40],
        ..tiny(true)
    };
    let err = NestedFormerFactory::validate(&bad).unwrap_err().to_string();
    assert!(err.contains("image_size") && err.contains("16"), "{err}");
    let bad = NestedFormerParams {
        window: [4, 4, 4],
        ..tiny(true)
    };
    assert!(NestedFormerFactory::validate(&bad)
        .unwrap_err()
        .to_string()
        .contains("window"));
}

#[test]
fn relative_position_indices_are_symmetric_around_the_centre() {
    let (idx, k) = relative_indices([2, 2, 2]);
    assert_eq!(k, 3);
    assert_eq!(idx.len(), 64);
    // Offset (0, 0, 0) shifted by 1 per axis in a 3×3×3 table: (1·3 + 1)·3 + 1.
    let centre = 13;
    // Every voxel sees itself at offset (0, 0, 0).
    for i in 0..8 {
        assert_eq!(idx[i * 8 + i], centre);
    }
    // Opposite offsets mirror around the centre.
    for i in 0..8 {
        for j in 0..8 {
            assert_eq!(idx[i * 8 + j] + idx[j * 8 + i], 2 * centre);
        }
    }
}
