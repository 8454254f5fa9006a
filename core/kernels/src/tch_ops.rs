//! [`KernelBackend`] for burn-tch (`LibTorch<f32>`): libtorch's own kernels (oneDNN on the CPU,
//! cuDNN on CUDA). The forward convolutions are burn-tch's (`aten::conv3d`,
//! `aten::conv_transpose3d`). The gradients with respect to a convolution's input and weight either
//! go through `aten::convolution_backward` (`cpp/convolution_backward.cpp`, which tch 0.22 does not
//! bind: what a PyTorch training step runs) or are burn's decomposition (a transposed convolution
//! for the input gradient; for the weight gradient a convolution of the input, batch and channels
//! swapped, with the output gradient as the kernel). [`tch_conv_backward`] picks one per device.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, ModuleOps};
use burn_tch::{LibTorch, LibTorchDevice, TchTensor};

use crate::backend::KernelBackend;

extern "C" {
    /// `aten::convolution_backward` (no bias gradient) on `at::Tensor*` handles; 0 on success,
    /// else 1 with libtorch's message in `error`.
    fn dsma_convolution_backward(
        grad_output: *const c_void,
        input: *const c_void,
        weight: *const c_void,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        transposed: c_int,
        output_padding: *const i64,
        groups: i64,
        want_input: c_int,
        want_weight: c_int,
        grad_input: *mut *mut c_void,
        grad_weight: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// How the libtorch backend computes convolution gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TchConvBackward {
    /// `aten::convolution_backward`: PyTorch's own backward kernels.
    Aten,
    /// burn's decomposition into forward convolutions.
    Burn,
}

/// The gradient route for a tensor on `device`: `DSMA_TCH_CONV_BACKWARD=aten|burn` for every
/// device, else `aten` on CUDA and `burn` on the CPU (measured on a 2-core EPYC with torch 2.9.0:
/// PyTorch's CPU weight gradient of a 16→16, 3³, 64³ convolution takes 0.17 s, the decomposition's
/// oneDNN forward 0.06 s; see the README's GPU section).
///
/// The innermost [`with_tch_conv_backward`] on this thread wins over both.
pub fn tch_conv_backward(device: tch::Device) -> TchConvBackward {
    static CHOICE: OnceLock<Option<TchConvBackward>> = OnceLock::new();
    let forced = OVERRIDE.with(|o| o.get()).or_else(|| {
        *CHOICE.get_or_init(
            || match std::env::var("DSMA_TCH_CONV_BACKWARD").as_deref() {
                Ok("aten") => Some(TchConvBackward::Aten),
                Ok("burn") => Some(TchConvBackward::Burn),
                _ => None,
            },
        )
    });
    forced.unwrap_or(match device {
        tch::Device::Cuda(_) => TchConvBackward::Aten,
        _ => TchConvBackward::Burn,
    })
}

thread_local! {
    static OVERRIDE: std::cell::Cell<Option<TchConvBackward>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with libtorch's convolution gradients computed by `choice` on this thread (tests and
/// benches compare the two routes in one process).
pub fn with_tch_conv_backward<R>(choice: TchConvBackward, f: impl FnOnce() -> R) -> R {
    let previous = OVERRIDE.with(|o| o.replace(Some(choice)));
    let result = f();
    OVERRIDE.with(|o| o.set(previous));
    result
}

fn aten(x: &TchTensor) -> bool {
    tch_conv_backward(x.tensor.device()) == TchConvBackward::Aten
}

/// Which gradient of a convolution to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Input,
    Weight,
}

/// A convolution's geometry in `aten::convolution`'s terms.
struct Geometry {
    stride: [i64; 3],
    padding: [i64; 3],
    dilation: [i64; 3],
    output_padding: [i64; 3],
    transposed: bool,
    groups: i64,
}

fn long(v: [usize; 3]) -> [i64; 3] {
    v.map(|x| i64::try_from(x).unwrap_or(i64::MAX))
}

impl Geometry {
    fn conv(o: &ConvOptions<3>) -> Self {
        Geometry {
            stride: long(o.stride),
            padding: long(o.padding),
            dilation: long(o.dilation),
            output_padding: [0; 3],
            transposed: false,
            groups: i64::try_from(o.groups).unwrap_or(1),
        }
    }

    fn transposed(o: &ConvTransposeOptions<3>) -> Self {
        Geometry {
            stride: long(o.stride),
            padding: long(o.padding),
            dilation: long(o.dilation),
            output_padding: long(o.padding_out),
            transposed: true,
            groups: i64::try_from(o.groups).unwrap_or(1),
        }
    }
}

/// One gradient of a convolution through `aten::convolution_backward`.
fn convolution_backward(
    x: &TchTensor,
    weight: &TchTensor,
    output_grad: &TchTensor,
    g: &Geometry,
    wanted: Wanted,
) -> TchTensor {
    let mut grad_input: *mut c_void = std::ptr::null_mut();
    let mut grad_weight: *mut c_void = std::ptr::null_mut();
    let mut error = [0 as c_char; 1024];
    // SAFETY: the three tensor handles are live `at::Tensor*` owned by tch tensors borrowed for the
    // call; the four geometry arrays hold 3 elements each, as the shim reads; the shim writes only
    // the output handle that `want_*` asks for, and at most `error.len()` bytes (NUL-terminated,
    // snprintf) into `error`.
    let status = unsafe {
        dsma_convolution_backward(
            output_grad.tensor.as_ptr().cast(),
            x.tensor.as_ptr().cast(),
            weight.tensor.as_ptr().cast(),
            g.stride.as_ptr(),
            g.padding.as_ptr(),
            g.dilation.as_ptr(),
            c_int::from(g.transposed),
            g.output_padding.as_ptr(),
            g.groups,
            c_int::from(wanted == Wanted::Input),
            c_int::from(wanted == Wanted::Weight),
            &mut grad_input,
            &mut grad_weight,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    let handle = match wanted {
        Wanted::Input => grad_input,
        Wanted::Weight => grad_weight,
    };
    if status != 0 || handle.is_null() {
        // SAFETY: the shim NUL-terminated `error` (snprintf), or left it zeroed.
        let message = unsafe { CStr::from_ptr(error.as_ptr()) }.to_string_lossy();
        // burn's tensor ops have no error channel; burn-tch panics on libtorch errors the same way.
        panic!("libtorch convolution_backward failed: {message}");
    }
    // SAFETY: `handle` is a heap `at::Tensor*` the shim allocated for us; tch's Tensor takes
    // ownership and frees it on drop.
    TchTensor::new(unsafe { tch::Tensor::from_ptr(handle.cast()) })
}

/// One gradient of `[x, weight, output_grad]`: `aten::convolution_backward` where
/// [`tch_conv_backward`] says so, else burn's decomposition `burn`.
fn gradient(
    [x, weight, output_grad]: [TchTensor; 3],
    g: &Geometry,
    wanted: Wanted,
    burn: impl FnOnce([TchTensor; 3]) -> TchTensor,
) -> TchTensor {
    if aten(&x) {
        convolution_backward(&x, &weight, &output_grad, g, wanted)
    } else {
        burn([x, weight, output_grad])
    }
}

impl KernelBackend for LibTorch<f32> {
    fn run_device(gpu: bool) -> LibTorchDevice {
        if gpu {
            LibTorchDevice::Cuda(0)
        } else {
            LibTorchDevice::Cpu
        }
    }

    fn conv3d_input_grad(
        x: TchTensor,
        weight: TchTensor,
        output_grad: TchTensor,
        options: ConvOptions<3>,
    ) -> TchTensor {
        let g = Geometry::conv(&options);
        gradient([x, weight, output_grad], &g, Wanted::Input, |[x, w, dy]| {
            <Self as ModuleOps<Self>>::conv3d_x_backward(x, w, dy, options)
        })
    }

    fn conv3d_weight_grad(
        x: TchTensor,
        weight: TchTensor,
        output_grad: TchTensor,
        options: ConvOptions<3>,
    ) -> TchTensor {
        let g = Geometry::conv(&options);
        gradient([x, weight, output_grad], &g, Wanted::Weight, |[x, w, dy]| {
            <Self as ModuleOps<Self>>::conv3d_weight_backward(x, w, dy, options)
        })
    }

    fn conv_transpose3d_weight_grad(
        x: TchTensor,
        weight: TchTensor,
        output_grad: TchTensor,
        options: ConvTransposeOptions<3>,
    ) -> TchTensor {
        let g = Geometry::transposed(&options);
        gradient([x, weight, output_grad], &g, Wanted::Weight, |[x, w, dy]| {
            <Self as ModuleOps<Self>>::conv_transpose3d_weight_backward(x, w, dy, options)
        })
    }
}
