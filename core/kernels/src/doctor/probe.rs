//! The numeric self-check: a tiny conv3d forward + backward and a conv_transpose3d through
//! [`KernelBackend`] (the models' path) on each backend, compared with the CPU.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorData, TensorPrimitive};

use crate::backend::KernelBackend;
#[cfg(any(feature = "cuda", feature = "tch"))]
use crate::doctor::report::{Check, Status};

/// The numbers the GPU self-check compares with the CPU: a stride-2 conv3d's output and its input
/// and weight gradients, and a stride-2 conv_transpose3d's output.
#[derive(Debug, Clone)]
pub struct ConvProbe {
    /// Every value, concatenated.
    pub values: Vec<f32>,
}

pub(crate) fn probe_tensor<B: Backend, const D: usize>(
    shape: [usize; D],
    f: impl Fn(usize) -> f32,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new((0..n).map(f).collect(), shape), device)
}

/// `conv3d` through [`KernelBackend`] (the path the models take).
pub(crate) fn kernel_conv3d<B: KernelBackend>(
    x: Tensor<B, 5>,
    w: Tensor<B, 5>,
    b: Option<Tensor<B, 1>>,
    options: ConvOptions<3>,
) -> Tensor<B, 5> {
    let y = B::conv3d_forward(
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.map(|b| b.into_primitive().tensor()),
        options,
    );
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// `conv_transpose3d` through [`KernelBackend`].
pub(crate) fn kernel_conv_transpose3d<B: KernelBackend>(
    x: Tensor<B, 5>,
    w: Tensor<B, 5>,
    options: ConvTransposeOptions<3>,
) -> Tensor<B, 5> {
    let y = B::conv_transpose3d_forward(
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        None,
        options,
    );
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// Runs a tiny conv3d forward + backward and a conv_transpose3d forward on `B` through
/// [`KernelBackend`], the path the models take (deterministic inputs, no RNG).
pub fn conv_probe<B: KernelBackend>(device: &B::Device) -> ConvProbe {
    type A<B> = Autodiff<B>;
    let x = probe_tensor::<A<B>, 5>([1, 2, 8, 8, 8], |i| (i as f32 * 0.37).sin(), device)
        .require_grad();
    let w = probe_tensor::<A<B>, 5>([3, 2, 3, 3, 3], |i| (i as f32 * 0.11).cos() * 0.2, device)
        .require_grad();
    let b = probe_tensor::<A<B>, 1>([3], |i| i as f32 * 0.1 - 0.1, device);
    let y = kernel_conv3d(
        x.clone(),
        w.clone(),
        Some(b),
        ConvOptions::new([2; 3], [1; 3], [1; 3], 1),
    );
    let r = probe_tensor::<A<B>, 5>(y.dims(), |i| ((i % 7) as f32 - 3.0) * 0.25, device);
    let grads = (y.clone() * r).sum().backward();
    let wt = probe_tensor::<B, 5>([2, 3, 2, 2, 2], |i| (i as f32 * 0.5).sin(), device);
    let xt = probe_tensor::<B, 5>([1, 2, 3, 3, 3], |i| (i as f32 * 0.23).cos(), device);
    let t = kernel_conv_transpose3d(
        xt,
        wt,
        ConvTransposeOptions::new([2; 3], [0; 3], [0; 3], [1; 3], 1),
    );
    let mut values = Vec::new();
    let mut push = |d: TensorData| values.extend(d.iter::<f32>());
    push(y.into_data());
    // A missing gradient leaves the probe short, which the comparison reports as a mismatch.
    for g in [x.grad(&grads), w.grad(&grads)].into_iter().flatten() {
        push(g.into_data());
    }
    push(t.into_data());
    ConvProbe { values }
}

/// Largest absolute difference between two probes, relative to the largest reference magnitude.
pub fn relative_difference(reference: &ConvProbe, other: &ConvProbe) -> f32 {
    if reference.values.len() != other.values.len() {
        return f32::INFINITY;
    }
    let scale = reference
        .values
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    reference
        .values
        .iter()
        .zip(&other.values)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Relative difference up to which a GPU result counts as equal to the CPU's (TF32 tensor cores
/// round f32 products to 10 mantissa bits, about 1e-3 relative).
pub const GPU_TOLERANCE: f32 = 1e-2;

/// The conv3d probe on `B`'s `device` against the CPU `reference`, within `tolerance`; a panic of
/// the backend is reported, not propagated.
#[cfg(any(feature = "cuda", feature = "tch"))]
pub(crate) fn self_check<B: KernelBackend>(
    backend: &'static str,
    device: &B::Device,
    reference: Option<&ConvProbe>,
    tolerance: f32,
) -> Check {
    let Some(reference) = reference else {
        return Check::new(
            backend,
            "conv3d self-check",
            Status::Skip,
            "no CPU reference".into(),
        );
    };
    let probe = std::panic::AssertUnwindSafe(|| conv_probe::<B>(device));
    match std::panic::catch_unwind(probe) {
        Ok(p) => {
            let d = relative_difference(reference, &p);
            let ok = d <= tolerance;
            Check::new(
                backend,
                "conv3d self-check",
                if ok { Status::Ok } else { Status::Fail },
                format!(
                    "conv3d forward + input/weight gradients and conv_transpose3d on {device:?} \
                     vs the cpu backend: max relative difference {d:.2e} (tolerance {tolerance:.0e})"
                ),
            )
        }
        Err(e) => Check::new(
            backend,
            "conv3d self-check",
            Status::Fail,
            format!("{} panicked: {}", B::name(device), panic_text(&*e)),
        ),
    }
}

/// The message of a caught panic.
#[cfg(any(feature = "cuda", feature = "tch"))]
pub(crate) fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn brute_force() -> Vec<f32> {
        let x = |i: usize| (i as f32 * 0.37).sin();
        let w = |i: usize| (i as f32 * 0.11).cos() * 0.2;
        let (n, o_n) = (8usize, 4usize); // 8³ in, stride 2, padding 1, kernel 3 → 4³ out
        let xi = |c: usize, z: usize, y: usize, xx: usize| ((c * n + z) * n + y) * n + xx;
        let wi =
            |o: usize, c: usize, k: [usize; 3]| (((o * 2 + c) * 3 + k[0]) * 3 + k[1]) * 3 + k[2];
        let yi = |o: usize, p: [usize; 3]| ((o * o_n + p[0]) * o_n + p[1]) * o_n + p[2];
        let r = |i: usize| ((i % 7) as f32 - 3.0) * 0.25;
        let mut y = vec![0f32; 3 * o_n * o_n * o_n];
        let mut gx = vec![0f32; 2 * n * n * n];
        let mut gw = vec![0f32; 3 * 2 * 27];
        for o in 0..3 {
            for pz in 0..o_n {
                for py in 0..o_n {
                    for px in 0..o_n {
                        let out = yi(o, [pz, py, px]);
                        let mut acc = o as f32 * 0.1 - 0.1;
                        for c in 0..2 {
                            for kz in 0..3 {
                                for ky in 0..3 {
                                    for kx in 0..3 {
                                        let (z, yy, xx) = (2 * pz + kz, 2 * py + ky, 2 * px + kx);
                                        if z == 0 || yy == 0 || xx == 0 || z > n || yy > n || xx > n
                                        {
                                            continue; // padding
                                        }
                                        let (ix, iw) =
                                            (xi(c, z - 1, yy - 1, xx - 1), wi(o, c, [kz, ky, kx]));
                                        acc += x(ix) * w(iw);
                                        gx[ix] += r(out) * w(iw);
                                        gw[iw] += r(out) * x(ix);
                                    }
                                }
                            }
                        }
                        y[out] = acc;
                    }
                }
            }
        }
        [y, gx, gw].concat()
    }

    #[test]
    fn cpu_conv_probe_matches_direct_loops() {
        let got = conv_probe::<crate::backend::CpuBackend>(&Default::default());
        let want = brute_force();
        // conv3d part: 192 outputs + 1024 input gradients + 162 weight gradients, then 3·6³ transposed.
        assert_eq!(got.values.len(), want.len() + 3 * 6 * 6 * 6);
        let head = ConvProbe {
            values: got.values[..want.len()].to_vec(),
        };
        let d = relative_difference(&ConvProbe { values: want }, &head);
        assert!(d < 1e-5, "relative difference {d}");
    }

    #[test]
    fn relative_difference_scales_by_the_reference() {
        let a = ConvProbe {
            values: vec![2.0, -4.0],
        };
        let b = ConvProbe {
            values: vec![2.0, -3.0],
        };
        assert_eq!(relative_difference(&a, &b), 0.25);
        let c = ConvProbe { values: vec![1.0] };
        assert!(relative_difference(&a, &c).is_infinite());
    }
}
