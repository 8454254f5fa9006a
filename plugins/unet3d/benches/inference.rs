//! One full-volume sliding-window inference of a 128³ four-channel volume with the default U-Net
//! (base 16, depth 4) on the CPU backend: 96³ windows at overlap 0.5 (8 windows) with Gaussian
//! blending, as `dsma run` evaluates; and one bare 128³ forward pass for comparison with PyTorch.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use dsma_train::inference::{sliding_window, Blend, SlidingWindow};
use dsma_train::model::{ModelFactory, SegmentationModel};
use dsma_unet3d::{UNet3dFactory, UNet3dParams};
use ndarray::Array4;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn bench(c: &mut Criterion) {
    // As `dsma run` does (`DSMA_HEAP=system` for glibc's defaults).
    dsma_kernels::heap::retain_freed_memory();
    let dev = Default::default();
    let net = UNet3dFactory::build::<Flex>(&UNet3dParams::default(), &dev).expect("model");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let image = Array4::from_shape_simple_fn((4, 128, 128, 128), || rng.random_range(-1.0f32..1.0));
    let mut g = c.benchmark_group("unet3d_inference");
    g.sample_size(10);
    let cfg = SlidingWindow {
        patch: [96, 96, 96],
        overlap: 0.5,
        blend: Blend::Gaussian,
    };
    g.bench_function("sliding window 128^3 (96^3 windows, overlap 0.5)", |b| {
        b.iter(|| sliding_window::<Flex, _>(&net, image.view(), &cfg, &dev).expect("inference"))
    });
    let x = Tensor::<Flex, 5>::random([1, 4, 128, 128, 128], Distribution::Normal(0.0, 1.0), &dev);
    g.bench_function("forward 128^3", |b| {
        b.iter(|| net.forward(x.clone()).into_data())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
