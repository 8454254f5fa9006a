//! Sliding-window inference stitches windows exactly: for a pointwise model it equals one full pass.

use burn::backend::Flex;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use dsma_train::inference::{sliding_window, Blend, SlidingWindow};
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
