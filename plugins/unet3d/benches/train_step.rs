//! One U-Net training step (forward, weighted Dice loss, backward, AdamW): 4→3 channels, base width
//! 16, depth 4, batch 1. The step ends with a device sync, so GPU timings are whole steps.
//!
//! Environment (defaults in brackets): `DSMA_BENCH_BACKEND` cpu | cuda [cpu; cuda needs
//! `--features cuda`], `DSMA_BENCH_SIZES` comma-separated cube sides [32,64],
//! `DSMA_BENCH_UPSAMPLE` comma-separated transpose | trilinear [transpose]. E.g.
//! `DSMA_BENCH_BACKEND=cuda DSMA_BENCH_SIZES=128 cargo bench -p dsma-unet3d --features cuda --bench train_step`.

use burn::backend::Autodiff;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use dsma_kernels::KernelBackend;
use dsma_plugin::backend::BackendKind;
use dsma_train::loss::weighted_dice_loss;
use dsma_train::model::{BackendDispatch, BackendVisitor, ModelFactory, SegmentationModel};
use dsma_unet3d::{UNet3d, UNet3dFactory, UNet3dParams, Upsample};

fn list(var: &str, default: &str) -> Vec<String> {
    let v = std::env::var(var).unwrap_or_else(|_| default.to_string());
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

struct Steps<'a> {
    c: &'a mut Criterion,
    label: &'static str,
}

impl BackendVisitor for Steps<'_> {
    type Output = ();
    fn visit<I: KernelBackend>(self, dev: I::Device) {
        type B<I> = Autodiff<I>;
        let mut g = self.c.benchmark_group("unet3d_train_step");
        g.sample_size(10);
        for up in list("DSMA_BENCH_UPSAMPLE", "transpose") {
            let upsample: Upsample = serde_json::from_value(serde_json::json!(up))
                .expect("DSMA_BENCH_UPSAMPLE: transpose or trilinear");
            let params = UNet3dParams {
                upsample,
                ..UNet3dParams::default()
            };
            for side in list("DSMA_BENCH_SIZES", "32,64") {
                let side: usize = side.parse().expect("DSMA_BENCH_SIZES: cube sides");
                let mut net: Option<UNet3d<B<I>>> =
                    Some(UNet3dFactory::build::<B<I>>(&params, &dev).expect("model"));
                let mut opt = AdamWConfig::new()
                    .with_weight_decay(1e-5)
                    .with_epsilon(1e-8)
                    .init::<B<I>, UNet3d<B<I>>>();
                let shape = [1, 4, side, side, side];
                let x = Tensor::<B<I>, 5>::random(shape, Distribution::Normal(0.0, 1.0), &dev);
                let t = Tensor::<B<I>, 5>::random(
                    [1, 3, side, side, side],
                    Distribution::Bernoulli(0.2),
                    &dev,
                );
                let w = Tensor::<B<I>, 1>::ones([1], &dev);
                let name = format!("{} {side}^3 batch 1 base 16 {up}", self.label);
                g.bench_function(name, |b| {
                    b.iter(|| {
                        let model = net.take().expect("model");
                        let out = model.forward(x.clone());
                        let loss = weighted_dice_loss(out, t.clone(), w.clone());
                        let grads = GradientsParams::from_grads(loss.backward(), &model);
                        net = Some(opt.step(1e-4, model, grads));
                        B::<I>::sync(&dev).expect("device sync");
                    })
                });
            }
        }
        g.finish();
    }
}

fn bench(c: &mut Criterion) {
    // As `dsma run` does (`DSMA_HEAP=system` for glibc's defaults).
    dsma_kernels::heap::retain_freed_memory();
    let kind = BackendKind::from_env("DSMA_BENCH_BACKEND").expect("DSMA_BENCH_BACKEND");
    let label = kind.name();
    kind.dispatch(Steps { c, label }).expect("backend");
}

criterion_group!(benches, bench);
criterion_main!(benches);
