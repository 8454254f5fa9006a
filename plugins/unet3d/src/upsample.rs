//! ×2 trilinear up-sampling built from slices and concatenations (burn 0.21 has no 3-D interpolate).
//!
//! PyTorch's `interpolate(scale_factor=2, mode="trilinear", align_corners=False)` maps output index
//! `o` to the source coordinate `(o + 0.5) / 2 − 0.5`, clamped at 0 and at the last voxel. Along one
//! axis that is the stencil `out[2i] = ¾ in[i] + ¼ in[i−1]`, `out[2i+1] = ¾ in[i] + ¼ in[i+1]` with
//! the neighbour index clamped to the volume; applied to each spatial axis in turn it is trilinear.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Doubles one spatial axis of `[N, C, D, H, W]` with the linear stencil above.
fn double_axis<B: Backend>(x: Tensor<B, 5>, axis: usize) -> Tensor<B, 5> {
    let mut dims = x.dims();
    let n = dims[axis];
    let (prev, next) = if n > 1 {
        (
            Tensor::cat(
                vec![
                    x.clone().narrow(axis, 0, 1),
                    x.clone().narrow(axis, 0, n - 1),
                ],
                axis,
            ),
            Tensor::cat(
                vec![
                    x.clone().narrow(axis, 1, n - 1),
                    x.clone().narrow(axis, n - 1, 1),
                ],
                axis,
            ),
        )
    } else {
        (x.clone(), x.clone())
    };
    let even = x.clone() * 0.75 + prev * 0.25;
    let odd = x * 0.75 + next * 0.25;
    dims[axis] = 2 * n;
    Tensor::stack::<6>(vec![even, odd], axis + 1).reshape(dims)
}

/// ×2 trilinear up-sampling of the three spatial axes of `[N, C, D, H, W]` (`align_corners=False`).
pub fn upsample2_trilinear<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 5> {
    (2..5).fold(x, double_axis)
}
