//! Dice + HD95 for WT/TC/ET of one 240×240×155 case (prediction = truth shifted by two voxels).

use criterion::{criterion_group, criterion_main, Criterion};
use dsma_data::metrics::{case_metrics, MetricOptions};
use dsma_data::phantom::generate_case;
use dsma_data::LabelConvention;
use ndarray::{s, Array3};

fn bench(c: &mut Criterion) {
    let case = generate_case("bench", [240, 240, 155], [1.0; 3], 0).expect("phantom");
    let truth = case.label;
    let mut pred = Array3::<u8>::zeros(truth.dim());
    pred.slice_mut(s![.., 2.., ..])
        .assign(&truth.slice(s![.., ..-2, ..]));
    let opts = MetricOptions::default();
    c.bench_function("case_metrics_240x240x155", |b| {
        b.iter(|| {
            case_metrics(
                pred.view(),
                truth.view(),
                LabelConvention::Brats2019,
                [1.0; 3],
                &opts,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
