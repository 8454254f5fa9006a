//! Sliding-window inference stitches windows exactly: for a pointwise model it equals one full pass.

use burn::backend::Flex;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use dsma_train::inference::{sliding_window, sliding_window_mirrored, Blend, SlidingWindow};
use dsma_train::model::SegmentationModel;
use ndarray::Array4;

#[derive(Module, Debug)]
struct Pointwise<B: Backend> {
    conv: Conv3d<B>,
}

impl<B: Backend> SegmentationModel<B> for Pointwise<B> {
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.conv.forward(x)
    }
    fn size_divisor(&self) -> usize {
        2
    }
}

#[test]
fn stitched_probabilities_equal_a_full_volume_pass_for_every_blend() {
    let dev = Default::default();
    let model = Pointwise::<Flex> {
        conv: Conv3dConfig::new([4, 3], [1, 1, 1]).init(&dev),
    };
    let (z, y, x) = (9, 11, 7);
    let image = Array4::from_shape_fn((4, z, y, x), |(c, a, b, d)| {
        ((c * 7 + a * 3 + b * 5 + d) % 13) as f32 / 6.0 - 1.0
    });
    let full = sigmoid(model.forward(Tensor::<Flex, 5>::from_data(
        TensorData::new(image.iter().copied().collect::<Vec<_>>(), [1, 4, z, y, x]),
        &dev,
    )));
    let full: Vec<f32> = full.into_data().to_vec::<f32>().unwrap();
    for blend in [Blend::Gaussian, Blend::Constant] {
        for (patch, overlap) in [([4, 4, 4], 0.5), ([6, 4, 8], 0.25), ([8, 12, 10], 0.0)] {
            let cfg = SlidingWindow {
                patch,
                overlap,
                blend,
            };
            let out = sliding_window(&model, image.view(), &cfg, &dev).unwrap();
            assert_eq!(out.dim(), (3, z, y, x));
            for (a, b) in out.iter().zip(full.iter()) {
                assert!((a - b).abs() < 1e-5, "{blend:?} {patch:?}: {a} vs {b}");
            }
        }
    }
    let bad = SlidingWindow {
        patch: [5, 4, 4],
        overlap: 0.5,
        blend: Blend::Gaussian,
    };
    let e = sliding_window(&model, image.view(), &bad, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("eval.patch") && e.contains("multiple of 2"),
        "{e}"
    );
}

/// Every output voxel is the mean of the window's first channel: windows that see different
/// intensities disagree, so the blend decides the stitched value.
#[derive(Module, Debug)]
struct WindowMean<B: Backend> {
    unused: Conv3d<B>,
}

impl<B: Backend> SegmentationModel<B> for WindowMean<B> {
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [n, _, d, h, w] = x.dims();
        let mean = x
            .slice([0..n, 0..1])
            .mean_dim(2)
            .mean_dim(3)
            .mean_dim(4)
            .reshape([n, 1, 1, 1, 1]);
        Tensor::ones([n, 3, d, h, w], &mean.device()) * mean
    }
}

/// Two windows along x (starts 0 and 4 of a 12-voxel axis, 8-voxel windows, overlap 0.5) see
/// means 3.5/12 and 7.5/12 of the ramp x/12. Where they overlap, constant blending averages
/// their sigmoids; Gaussian blending weighs each by exp(−(i − 3.5)²/2) at window position i
/// (σ = 0.125 · 8; the y and z factors are the same for both windows at a voxel and cancel).
#[test]
fn overlapping_windows_blend_by_the_gaussian_or_equally() {
    let dev = Default::default();
    let model = WindowMean::<Flex> {
        unused: Conv3dConfig::new([4, 3], [1, 1, 1]).init(&dev),
    };
    let image = Array4::from_shape_fn(
        (4, 4, 4, 12),
        |(c, _, _, x)| {
            if c == 0 {
                x as f32 / 12.0
            } else {
                0.0
            }
        },
    );
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (sa, sb) = (sig(3.5 / 12.0), sig(7.5 / 12.0));
    let g = |i: f64| (-(i - 3.5) * (i - 3.5) / 2.0).exp();
    for blend in [Blend::Constant, Blend::Gaussian] {
        let cfg = SlidingWindow {
            patch: [8, 4, 4],
            overlap: 0.5,
            blend,
        };
        let out = sliding_window(&model, image.view(), &cfg, &dev).unwrap();
        for x in 0..12 {
            let want = match (x, blend) {
                (0..4, _) => sa,
                (8.., _) => sb,
                (_, Blend::Constant) => (sa + sb) / 2.0,
                (_, Blend::Gaussian) => {
                    let (wa, wb) = (g(x as f64), g(x as f64 - 4.0));
                    (wa * sa + wb * sb) / (wa + wb)
                }
            };
            // y and z at the window centre, where no weight reaches MONAI's 1e-3 floor.
            for (y, z) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
                let got = out[[0, z, y, x]] as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "{blend:?} x={x}: {got} vs {want}"
                );
            }
        }
    }
}

/// Logit at x = channel 0 at x + 1 (0 past the window's end), in all three regions: not
/// flip-equivariant, so mirroring changes its output.
#[derive(Module, Debug)]
struct ShiftLeft<B: Backend> {
    unused: Conv3d<B>,
}

impl<B: Backend> SegmentationModel<B> for ShiftLeft<B> {
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [n, _, d, h, w] = x.dims();
        let shifted = x.slice([0..n, 0..1, 0..d, 0..h, 1..w]);
        let zeros = Tensor::zeros([n, 1, d, h, 1], &shifted.device());
        let one = Tensor::cat(vec![shifted, zeros], 4);
        Tensor::cat(vec![one.clone(), one.clone(), one], 1)
    }
}

/// Mirroring by hand for one window covering the volume: the 4 flips that keep x give
/// σ(f(x + 1)); the 4 that reverse x predict on f(W − 1 − i), shift, and flip back, giving
/// σ(f(x − 1)); each is σ(0) = 0.5 past the edge. The mean is their average.
#[test]
fn mirroring_averages_the_eight_flips_of_each_window() {
    let dev = Default::default();
    let model = ShiftLeft::<Flex> {
        unused: Conv3dConfig::new([4, 3], [1, 1, 1]).init(&dev),
    };
    let w = 6;
    let f = |x: usize| x as f64 / 2.0 - 1.0;
    let image = Array4::from_shape_fn(
        (4, 4, 2, w),
        |(c, _, _, x)| if c == 0 { f(x) as f32 } else { 0.0 },
    );
    let cfg = SlidingWindow {
        patch: [w, 2, 4],
        overlap: 0.0,
        blend: Blend::Constant,
    };
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let plain = sliding_window(&model, image.view(), &cfg, &dev).unwrap();
    let mirrored = sliding_window_mirrored(&model, image.view(), &cfg, true, &dev).unwrap();
    for x in 0..w {
        let right = if x + 1 < w { sig(f(x + 1)) } else { 0.5 };
        let left = if x > 0 { sig(f(x - 1)) } else { 0.5 };
        for (r, z, y) in [(0, 0, 0), (1, 3, 1), (2, 2, 0)] {
            let (p, m) = (plain[[r, z, y, x]] as f64, mirrored[[r, z, y, x]] as f64);
            assert!((p - right).abs() < 1e-6, "plain x={x}: {p} vs {right}");
            assert!(
                (m - (right + left) / 2.0).abs() < 1e-6,
                "mirrored x={x}: {m}"
            );
        }
    }
}

/// A pointwise model commutes with every flip, so mirroring leaves its output unchanged on an
/// image that is asymmetric along every axis (a wrong flip-back on any axis would show).
#[test]
fn mirroring_leaves_a_flip_equivariant_model_unchanged() {
    let dev = Default::default();
    let model = Pointwise::<Flex> {
        conv: Conv3dConfig::new([4, 3], [1, 1, 1]).init(&dev),
    };
    let image = Array4::from_shape_fn((4, 5, 7, 6), |(c, a, b, d)| {
        ((c * 7 + a * 3 + b * 5 + d) % 13) as f32 / 6.0 - 1.0
    });
    let cfg = SlidingWindow {
        patch: [4, 4, 4],
        overlap: 0.5,
        blend: Blend::Gaussian,
    };
    let plain = sliding_window(&model, image.view(), &cfg, &dev).unwrap();
    let mirrored = sliding_window_mirrored(&model, image.view(), &cfg, true, &dev).unwrap();
    for (a, b) in plain.iter().zip(mirrored.iter()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
