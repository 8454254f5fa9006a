//! One U-Net training step (forward, weighted Dice loss, backward, AdamW) on the CPU backend:
//! 4→3 channels, base width 16, depth 4, batch 1, at 32³ and 64³ (issue figures: burn 0.21 flex
//! 0.73 s at 32³ and 6.0 s at 64³; PyTorch 2.9 CPU 1.24 s at 64³).

use burn::backend::{Autodiff, Flex};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use dsma_core::loss::weighted_dice_loss;
use dsma_core::model::{ModelFactory, SegmentationModel};
use dsma_unet3d::{UNet3d, UNet3dFactory, UNet3dParams};

type B = Autodiff<Flex>;

fn bench(c: &mut Criterion) {
    let dev = Default::default();
    let mut g = c.benchmark_group("unet3d_train_step");
    g.sample_size(10);
    for side in [32usize, 64] {
        let mut net: Option<UNet3d<B>> =
            Some(UNet3dFactory::build::<B>(&UNet3dParams::default(), &dev).expect("model"));
        let mut opt = AdamWConfig::new()
            .with_weight_decay(1e-5)
            .with_epsilon(1e-8)
            .init::<B, UNet3d<B>>();
        let x = Tensor::<B, 5>::random(
            [1, 4, side, side, side],
            Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let t =
            Tensor::<B, 5>::random([1, 3, side, side, side], Distribution::Bernoulli(0.2), &dev);
        let w = Tensor::<B, 1>::ones([1], &dev);
        g.bench_function(format!("{side}^3 batch 1 base 16"), |b| {
            b.iter(|| {
                let model = net.take().expect("model");
                let loss = weighted_dice_loss(model.forward(x.clone()), t.clone(), w.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                net = Some(opt.step(1e-4, model, grads));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
