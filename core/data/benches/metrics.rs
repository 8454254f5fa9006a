//! Dice + HD95 for WT/TC/ET of one 240×240×155 case (prediction = truth shifted by two voxels);
//! and every metric with lesion-wise ones of a 240×240×155 case with 12 tumours (the case of
//! `scripts/lesion-metrics-timing.py`: four shifted, three eroded, one missed, three spurious).

use criterion::{criterion_group, criterion_main, Criterion};
use dsma_data::metrics::{case_metrics, MetricOptions, MetricSet, Reading};
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

/// Oedema (2) of radius `r` around `c` (z, y, x), enhancing rim (3) inside, necrotic core (1).
fn tumour(a: &mut Array3<u8>, c: [f64; 3], r: f64) {
    for ((z, y, x), v) in a.indexed_iter_mut() {
        let d = ((z as f64 - c[0]).powi(2) + (y as f64 - c[1]).powi(2) + (x as f64 - c[2]).powi(2))
            .sqrt();
        if d <= 0.3 * r {
            *v = 1;
        } else if d <= 0.65 * r {
            *v = 3;
        } else if d <= r {
            *v = 2;
        }
    }
}

/// The twelve-tumour case, labels in the BraTS 2023 convention.
fn lesion_case() -> (Array3<u8>, Array3<u8>) {
    let shape = (155, 240, 240);
    let (mut truth, mut pred) = (Array3::<u8>::zeros(shape), Array3::<u8>::zeros(shape));
    for i in 0..12usize {
        let c = [
            (40 + 35 * (i % 3)) as f64,
            (40 + 55 * ((i / 3) % 4)) as f64,
            (50 + 70 * (i % 2) + 10 * (i / 6)) as f64,
        ];
        let r = (8 + (i * 7) % 8) as f64;
        tumour(&mut truth, c, r);
        if i == 11 {
            continue;
        }
        let at = if i % 3 == 0 {
            [c[0], c[1] + 2.0, c[2]]
        } else {
            c
        };
        tumour(&mut pred, at, if i % 4 == 1 { r - 2.0 } else { r });
    }
    for c in [[20, 200, 30], [130, 20, 200], [75, 120, 215]] {
        pred.slice_mut(s![
            c[0] - 2..c[0] + 3,
            c[1] - 2..c[1] + 3,
            c[2] - 2..c[2] + 3
        ])
        .fill(3);
    }
    (pred, truth)
}

fn lesions(c: &mut Criterion) {
    let (pred, truth) = lesion_case();
    let mut g = c.benchmark_group("all_metrics_12_tumours_240x240x155");
    g.sample_size(10);
    for reading in [Reading::Dsma, Reading::Panoptica] {
        let opts = MetricOptions {
            compute: MetricSet {
                nsd: true,
                lesion: true,
            },
            reading,
            ..MetricOptions::default()
        };
        g.bench_function(format!("{reading:?}"), |b| {
            b.iter(|| {
                case_metrics(
                    pred.view(),
                    truth.view(),
                    LabelConvention::Brats2023,
                    [1.0; 3],
                    &opts,
                )
            })
        });
    }
}

criterion_group!(benches, bench, lesions);
criterion_main!(benches);
