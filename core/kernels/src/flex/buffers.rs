//! burn-flex tensors as the kernels' f32 buffers and back: contiguous values (in parallel where
//! the layout allows), new tensors from vectors, and which tensors the kernels take.

use burn::tensor::{Bytes, DType, TensorMetadata};
use burn_flex::{FlexTensor, Layout};

use crate::backend::{cpu_kernels, CpuKernels};
use crate::parallel_fill::par_pieces;

/// The dimensions of a 5-D tensor.
pub(super) fn dims5(t: &FlexTensor) -> [usize; 5] {
    t.shape().dims::<5>()
}

/// The f32 values of `t` in row-major order: `t` itself when its elements are one contiguous
/// run, a parallel copy of a 5-D view whose `[D, H, W]` blocks are contiguous (a channel slice,
/// a narrowed batch), burn-flex's copy otherwise.
pub(super) fn values(t: &FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        return t.clone();
    }
    block_copy(t).unwrap_or_else(|| t.to_contiguous())
}

/// Whether `t` is already laid out contiguously over its whole buffer (burn-flex's own test for
/// returning a tensor as it is).
pub(super) fn whole(t: &FlexTensor) -> bool {
    let bytes = t.shape().num_elements() * t.dtype().size();
    t.is_contiguous() && t.layout().start_offset() == 0 && t.bytes().len() == bytes
}

/// A contiguous copy of a 5-D f32 view with contiguous `[D, H, W]` blocks, one block per
/// parallel piece; `None` for other layouts.
pub(super) fn block_copy(t: &FlexTensor) -> Option<FlexTensor> {
    if t.shape().num_dims() != 5 {
        return None;
    }
    let [n, c, d, h, w] = dims5(t);
    let [s0, s1, s2, s3, s4] = <[isize; 5]>::try_from(t.layout().strides()).ok()?;
    let spatial = d * h * w;
    let dense = s4 == 1 && s3 == w as isize && s2 == (h * w) as isize;
    if t.dtype() != DType::F32 || !dense || s0 < 0 || s1 < 0 || spatial == 0 {
        return None;
    }
    let (src, start) = (t.storage::<f32>(), t.layout().start_offset());
    let (out, _) = par_pieces(n * c * spatial, spatial, |i, dst| {
        let at = start + (i / c.max(1)) * s0 as usize + (i % c.max(1)) * s1 as usize;
        dst.copy_from_slice(&src[at..at + spatial]);
    });
    Some(tensor(out, [n, c, d, h, w]))
}

/// The f32 elements of a contiguous tensor (made so by [`values`]).
pub(super) fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a contiguous f32 tensor (made so by `values`)")
}

/// A contiguous f32 tensor of any rank.
pub(super) fn matrix<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// `[N, C, D·H·W]` of a channel gate our kernels take: f32 `x: [N, C, D, H, W]` and
/// `g: [N, 1, D, H, W]`.
pub(super) fn gate_shape(x: &FlexTensor, g: &FlexTensor) -> Option<[usize; 3]> {
    let rank5 = x.shape().num_dims() == 5 && g.shape().num_dims() == 5;
    if !rank5 || !ours_f32(&[Some(x), Some(g)]) {
        return None;
    }
    let ([n, c, d, h, w], [gn, gc, gd, gh, gw]) = (dims5(x), dims5(g));
    ([gn, gc, gd, gh, gw] == [n, 1, d, h, w]).then_some([n, c, d * h * w])
}

/// A contiguous f32 tensor of `like`'s shape.
pub(super) fn like(data: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(like.shape()),
        DType::F32,
    )
}

/// A contiguous 5-D f32 tensor.
pub(super) fn tensor(data: Vec<f32>, shape: [usize; 5]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// Whether our element-wise kernels handle this op (f32 tensors, dsma selected); `None` entries
/// are absent optional tensors.
pub(super) fn ours_f32(tensors: &[Option<&FlexTensor>]) -> bool {
    cpu_kernels() == CpuKernels::Dsma && tensors.iter().flatten().all(|t| t.dtype() == DType::F32)
}

/// `[N, ΣC_i, P]` from the contiguous `[N, C_i, P]` buffers `parts`, whole channel rows per
/// parallel piece (at least 16 Ki floats where the rows are short).
pub(super) fn cat_channels(
    parts: &[&[f32]],
    channels: &[usize],
    batch: usize,
    positions: usize,
) -> Vec<f32> {
    let total: usize = channels.iter().sum();
    let p = positions.max(1);
    let rows_per_piece = (16 * 1024 / p).max(1);
    par_pieces(
        batch * total * positions,
        rows_per_piece * p,
        |piece, dst| {
            for (k, dst) in dst.chunks_mut(p).enumerate() {
                let row = piece * rows_per_piece + k;
                let (n, mut c) = (row / total.max(1), row % total.max(1));
                for (part, &ci) in parts.iter().zip(channels) {
                    if c < ci {
                        dst.copy_from_slice(&part[(n * ci + c) * positions..][..dst.len()]);
                        break;
                    }
                    c -= ci;
                }
            }
        },
    )
    .0
}
