//! `dsma doctor --ops`: first-call and steady-state time of the U-Net's building blocks on each
//! backend, to locate a stall (kernel compilation, autotuning).

use burn::tensor::{ElementConversion, Tensor};
use serde::Serialize;

use crate::backend::KernelBackend;
use crate::doctor::probe::{kernel_conv3d, kernel_conv_transpose3d, probe_tensor};
use burn::backend::Autodiff;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

/// First-call and second-call wall time of one operation on one backend (device synced after each).
#[derive(Debug, Clone, Serialize)]
pub struct OpTiming {
    /// The backend (`cpu`, `cuda`).
    pub backend: &'static str,
    /// What ran (shapes included).
    pub op: &'static str,
    /// Seconds of the first call (kernel compilation and autotuning included on a GPU).
    pub first_s: f64,
    /// Seconds of the second call (steady state).
    pub second_s: f64,
}

/// Times the U-Net's building blocks one by one on `B` (convolutions through [`KernelBackend`]) at `[1, 8, 16, 16, 16]`: each is run twice
/// and the device synced after each call, so a slow kernel compile or autotune shows in `first_s`.
/// `on_op` sees every timing as soon as it exists, so a stall is located even if the caller is
/// killed.
pub fn time_ops<B: KernelBackend>(
    backend: &'static str,
    device: &B::Device,
    on_op: &mut dyn FnMut(&OpTiming),
) -> Vec<OpTiming> {
    use burn::tensor::activation::leaky_relu;
    type A<B> = Autodiff<B>;
    let x = probe_tensor::<A<B>, 5>([1, 8, 16, 16, 16], |i| (i as f32 * 0.37).sin(), device)
        .require_grad();
    let w3 = probe_tensor::<A<B>, 5>([8, 8, 3, 3, 3], |i| (i as f32 * 0.11).cos() * 0.1, device)
        .require_grad();
    let wt = probe_tensor::<A<B>, 5>([8, 8, 2, 2, 2], |i| (i as f32 * 0.5).sin() * 0.1, device);
    let same = ConvOptions::new([1; 3], [1; 3], [1; 3], 1);
    let down = ConvOptions::new([2; 3], [1; 3], [1; 3], 1);
    let up = ConvTransposeOptions::new([2; 3], [0; 3], [0; 3], [1; 3], 1);
    type Op<'a, B> = (&'static str, Box<dyn Fn() -> Tensor<A<B>, 5> + 'a>);
    let ops: Vec<Op<'_, B>> = vec![
        (
            "conv3d 3³ stride 1, 8→8 ch, 16³",
            Box::new(|| kernel_conv3d(x.clone(), w3.clone(), None, same.clone())),
        ),
        (
            "conv3d 3³ stride 2, 8→8 ch, 16³",
            Box::new(|| kernel_conv3d(x.clone(), w3.clone(), None, down.clone())),
        ),
        (
            "conv_transpose3d 2³ stride 2, 8³→16³",
            Box::new(|| {
                kernel_conv_transpose3d(
                    x.clone().narrow(2, 0, 8).narrow(3, 0, 8).narrow(4, 0, 8),
                    wt.clone(),
                    up.clone(),
                )
            }),
        ),
        (
            "instance norm (mean/var per channel)",
            Box::new(|| {
                let mean = x.clone().mean_dim(4).mean_dim(3).mean_dim(2);
                let c = x.clone() - mean;
                let var = (c.clone() * c.clone()).mean_dim(4).mean_dim(3).mean_dim(2);
                c / (var + 1e-5).sqrt()
            }),
        ),
        ("leaky_relu", Box::new(|| leaky_relu(x.clone(), 0.01))),
        (
            "cat on channels",
            Box::new(|| Tensor::cat(vec![x.clone(), x.clone()], 1)),
        ),
        (
            "conv3d forward + backward",
            Box::new(|| {
                let y = kernel_conv3d(x.clone(), w3.clone(), None, same.clone());
                let g = y.clone().sum().backward();
                let gw = w3
                    .grad(&g)
                    .map(|t| t.sum().into_scalar().elem::<f32>())
                    .unwrap_or(0.0);
                y * gw.signum()
            }),
        ),
    ];
    ops.iter()
        .map(|(op, f)| {
            let timing = time_twice(backend, op, f.as_ref());
            on_op(&timing);
            timing
        })
        .collect()
}

/// Runs `f` twice, waiting for the device after each call.
fn time_twice<B: KernelBackend>(
    backend: &'static str,
    op: &'static str,
    f: &dyn Fn() -> Tensor<Autodiff<B>, 5>,
) -> OpTiming {
    let mut secs = [0.0f64; 2];
    for s in &mut secs {
        let t = std::time::Instant::now();
        let y = f();
        // Reading one value waits for the device, whatever the backend's sync semantics.
        let _ = y.sum().into_scalar();
        *s = t.elapsed().as_secs_f64();
    }
    OpTiming {
        backend,
        op,
        first_s: secs[0],
        second_s: secs[1],
    }
}

/// Runs [`time_ops`] on every backend in `backends` that this build has.
pub fn time_ops_on(backends: &[&str], on_op: &mut dyn FnMut(&OpTiming)) -> Vec<OpTiming> {
    let mut out = Vec::new();
    for b in backends {
        match *b {
            "cpu" => out.extend(time_ops::<crate::backend::CpuBackend>(
                "cpu",
                &Default::default(),
                on_op,
            )),
            #[cfg(feature = "cuda")]
            "cuda" => out.extend(time_ops::<crate::backend::CudaBackend>(
                "cuda",
                &burn::backend::cuda::CudaDevice::default(),
                on_op,
            )),
            #[cfg(feature = "tch")]
            "tch" => out.extend(time_ops::<crate::backend::TchBackend>(
                "tch",
                &burn_tch::LibTorchDevice::Cpu,
                on_op,
            )),
            #[cfg(feature = "tch")]
            "tch-cuda" => out.extend(time_ops::<crate::backend::TchBackend>(
                "tch-cuda",
                &burn_tch::LibTorchDevice::Cuda(0),
                on_op,
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn op_timings_cover_every_block_on_the_cpu() {
        let mut seen = 0;
        let t = time_ops_on(&["cpu", "no-such-backend"], &mut |_| seen += 1);
        assert_eq!(t.len(), 7);
        assert_eq!(seen, 7);
        assert!(t
            .iter()
            .all(|o| o.backend == "cpu" && o.first_s >= 0.0 && o.second_s >= 0.0));
    }
}
