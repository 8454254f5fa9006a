//! One NestedFormer training step (forward, weighted Dice loss, backward, AdamW) on the CPU backend at
//! 64³ (image_size 64³, default widths, batch 1), to set beside `cargo bench -p dsma-unet3d`.

use burn::backend::{Autodiff, Flex};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use dsma_nestedformer::{NestedFormer, NestedFormerFactory, NestedFormerParams};
use dsma_train::loss::weighted_dice_loss;
use dsma_train::model::{ModelFactory, SegmentationModel};

type B = Autodiff<Flex>;

fn bench(c: &mut Criterion) {
    // As `dsma run` does (`DSMA_HEAP=system` for glibc's defaults).
    dsma_kernels::heap::retain_freed_memory();
    let dev = Default::default();
    let mut g = c.benchmark_group("nestedformer_train_step");
    g.sample_size(10);
    let p = NestedFormerParams {
        image_size: [64, 64, 64],
        ..NestedFormerParams::default()
    };
    let mut net: Option<NestedFormer<B>> =
        Some(NestedFormerFactory::build::<B>(&p, &dev).expect("model"));
    let mut opt = AdamWConfig::new()
        .with_weight_decay(1e-5)
        .with_epsilon(1e-8)
        .init::<B, NestedFormer<B>>();
    let x = Tensor::<B, 5>::random([1, 4, 64, 64, 64], Distribution::Normal(0.0, 1.0), &dev);
    let t = Tensor::<B, 5>::random([1, 3, 64, 64, 64], Distribution::Bernoulli(0.2), &dev);
    let w = Tensor::<B, 1>::ones([1], &dev);
    g.bench_function("64^3 batch 1 default widths", |b| {
        b.iter(|| {
            let model = net.take().expect("model");
            let loss = weighted_dice_loss(model.forward(x.clone()), t.clone(), w.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            net = Some(opt.step(1e-4, model, grads));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
