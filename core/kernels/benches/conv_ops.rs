//! Each convolution op of the U-Net's layers (batch 1, base width 16, 64³ input), dsma's kernels
//! beside burn-flex's ops on the same tensors: `cargo bench -p dsma-kernels --bench conv_ops`.
//! `DSMA_BENCH_FILTER` (substring of the layer name) narrows the set.

use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor, ModuleOps};
use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use burn_flex::Flex;
use criterion::{criterion_group, criterion_main, Criterion};
use dsma_kernels::conv_kernels::{self, ConvShape, ConvTransposeShape};

struct Layer {
    name: &'static str,
    channels: [usize; 2],
    side: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    transposed: bool,
}

const LAYERS: &[Layer] = &[
    Layer {
        name: "conv 16→16 k3 64³",
        channels: [16, 16],
        side: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
        transposed: false,
    },
    Layer {
        name: "conv 4→16 k3 64³",
        channels: [4, 16],
        side: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
        transposed: false,
    },
    Layer {
        name: "conv 32→16 k3 64³",
        channels: [32, 16],
        side: 64,
        kernel: 3,
        stride: 1,
        padding: 1,
        transposed: false,
    },
    Layer {
        name: "down 16→32 k3 s2 64³",
        channels: [16, 32],
        side: 64,
        kernel: 3,
        stride: 2,
        padding: 1,
        transposed: false,
    },
    Layer {
        name: "conv 64→64 k3 16³",
        channels: [64, 64],
        side: 16,
        kernel: 3,
        stride: 1,
        padding: 1,
        transposed: false,
    },
    Layer {
        name: "up 32→16 k2 s2 32³",
        channels: [32, 16],
        side: 32,
        kernel: 2,
        stride: 2,
        padding: 0,
        transposed: true,
    },
    Layer {
        name: "head 16→3 k1 64³",
        channels: [16, 3],
        side: 64,
        kernel: 1,
        stride: 1,
        padding: 0,
        transposed: false,
    },
];

fn random(shape: [usize; 5]) -> FloatTensor<Flex> {
    Tensor::<Flex, 5>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
        .into_primitive()
        .tensor()
}

fn values(t: &FloatTensor<Flex>) -> Vec<f32> {
    Tensor::<Flex, 5>::from_primitive(TensorPrimitive::Float(t.clone()))
        .into_data()
        .to_vec()
        .expect("f32")
}

fn bench_conv(c: &mut Criterion, l: &Layer) {
    let [ci, co] = l.channels;
    let (k, s, p) = ([l.kernel; 3], [l.stride; 3], [l.padding; 3]);
    let input = [l.side; 3];
    let output = ConvShape::output_size(input, k, s, p).expect("shape");
    let shape = ConvShape {
        batch: 1,
        in_channels: ci,
        out_channels: co,
        input,
        output,
        kernel: k,
        stride: s,
        padding: p,
    };
    let x = random([1, ci, l.side, l.side, l.side]);
    let w = random([co, ci, l.kernel, l.kernel, l.kernel]);
    let dy = random([1, co, output[0], output[1], output[2]]);
    let (xv, wv, dyv) = (values(&x), values(&w), values(&dy));
    let opts = ConvOptions::new(s, p, [1; 3], 1);
    let mut g = c.benchmark_group(l.name);
    g.sample_size(10);
    g.bench_function("forward dsma", |b| {
        b.iter(|| conv_kernels::conv3d_forward(&shape, &xv, &wv, None))
    });
    g.bench_function("forward burn-flex", |b| {
        b.iter(|| Flex::conv3d(x.clone(), w.clone(), None, opts.clone()))
    });
    g.bench_function("input grad dsma", |b| {
        b.iter(|| conv_kernels::conv3d_input_grad(&shape, &wv, &dyv))
    });
    g.bench_function("input grad burn-flex", |b| {
        b.iter(|| Flex::conv3d_x_backward(x.clone(), w.clone(), dy.clone(), opts.clone()))
    });
    g.bench_function("weight grad dsma", |b| {
        b.iter(|| conv_kernels::conv3d_weight_grad(&shape, &xv, &dyv))
    });
    g.bench_function("weight grad burn-flex", |b| {
        b.iter(|| Flex::conv3d_weight_backward(x.clone(), w.clone(), dy.clone(), opts.clone()))
    });
    g.finish();
}

fn bench_transposed(c: &mut Criterion, l: &Layer) {
    let [ci, co] = l.channels;
    let (k, s, p) = ([l.kernel; 3], [l.stride; 3], [l.padding; 3]);
    let input = [l.side / 2; 3];
    let output = [l.side; 3];
    let shape = ConvTransposeShape {
        batch: 1,
        in_channels: ci,
        out_channels: co,
        input,
        output,
        kernel: k,
        stride: s,
        padding: p,
    };
    let x = random([1, ci, input[0], input[1], input[2]]);
    let w = random([ci, co, l.kernel, l.kernel, l.kernel]);
    let dy = random([1, co, l.side, l.side, l.side]);
    let (xv, wv, dyv) = (values(&x), values(&w), values(&dy));
    let opts = ConvTransposeOptions::new(s, p, [0; 3], [1; 3], 1);
    let mut g = c.benchmark_group(l.name);
    g.sample_size(10);
    g.bench_function("forward dsma", |b| {
        b.iter(|| conv_kernels::conv_transpose3d_forward(&shape, &xv, &wv, None))
    });
    g.bench_function("forward burn-flex", |b| {
        b.iter(|| Flex::conv_transpose3d(x.clone(), w.clone(), None, opts.clone()))
    });
    g.bench_function("input grad dsma", |b| {
        b.iter(|| conv_kernels::conv_transpose3d_input_grad(&shape, &wv, &dyv))
    });
    g.bench_function("input grad burn-flex", |b| {
        b.iter(|| Flex::conv_transpose3d_x_backward(w.clone(), dy.clone(), opts.clone()))
    });
    g.bench_function("weight grad dsma", |b| {
        b.iter(|| conv_kernels::conv_transpose3d_weight_grad(&shape, &xv, &dyv))
    });
    g.bench_function("weight grad burn-flex", |b| {
        b.iter(|| {
            Flex::conv_transpose3d_weight_backward(x.clone(), w.clone(), dy.clone(), opts.clone())
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    // As `dsma run` does (`DSMA_HEAP=system` for glibc's defaults).
    dsma_kernels::heap::retain_freed_memory();
    let filter = std::env::var("DSMA_BENCH_FILTER").unwrap_or_default();
    for l in LAYERS.iter().filter(|l| l.name.contains(&filter)) {
        if l.transposed {
            bench_transposed(c, l);
        } else {
            bench_conv(c, l);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
