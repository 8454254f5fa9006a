//! Full-volume sliding-window inference (as MONAI's `sliding_window_inference`): overlapping patches,
//! sigmoid probabilities blended with a Gaussian (σ = 0.125 × patch, MONAI's default) or constant
//! importance map; volumes smaller than a patch are zero-padded.

use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use ndarray::{s, Array3, Array4, ArrayView4, Axis};
use serde::{Deserialize, Serialize};

use crate::model::SegmentationModel;
use dsma_data::error::{CoreError, Result};

/// How overlapping window predictions are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blend {
    /// Gaussian importance, highest at the window centre (σ = 0.125 × patch size).
    #[default]
    Gaussian,
    /// Every voxel of a window weighs the same.
    Constant,
}

/// Sliding-window settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    /// Window size in NIfTI order (x, y, z).
    pub patch: [usize; 3],
    /// Fraction of a window shared with its neighbour, in [0, 1).
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// Blending of overlapping windows.
    #[serde(default)]
    pub blend: Blend,
}

fn default_overlap() -> f64 {
    0.5
}

/// Window start positions along an axis of length `n` (≥ `patch`): evenly strided, last one flush.
fn starts(n: usize, patch: usize, overlap: f64) -> Vec<usize> {
    let stride = ((patch as f64 * (1.0 - overlap)).round() as usize).max(1);
    let mut v: Vec<usize> = (0..)
        .map(|i| i * stride)
        .take_while(|&s| s + patch < n)
        .collect();
    v.push(n - patch);
    v.dedup();
    v
}

fn importance(patch: [usize; 3], blend: Blend) -> Array3<f32> {
    match blend {
        Blend::Constant => Array3::ones(patch),
        Blend::Gaussian => {
            let g = |i: usize, n: usize| {
                let sigma = 0.125 * n as f64;
                let c = (n as f64 - 1.0) / 2.0;
                (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp()
            };
            let m = Array3::from_shape_fn(patch, |(z, y, x)| {
                (g(z, patch[0]) * g(y, patch[1]) * g(x, patch[2])) as f32
            });
            let max = m.iter().copied().fold(0f32, f32::max);
            // Like MONAI, keep the border weight strictly positive.
            m.mapv(|v| (v / max).max(1e-3))
        }
    }
}

/// Region probabilities `[3, z, y, x]` for an image `[4, z, y, x]`.
pub fn sliding_window<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    image: ArrayView4<f32>,
    cfg: &SlidingWindow,
    device: &B::Device,
) -> Result<Array4<f32>> {
    sliding_window_mirrored::<B, M>(model, image, cfg, false, device)
}

/// [`sliding_window`], and with `mirror` nnU-Net's test-time mirroring: each window's sigmoid
/// output is the mean over the 8 flips of its axes (flip the window, predict, flip back).
pub fn sliding_window_mirrored<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    image: ArrayView4<f32>,
    cfg: &SlidingWindow,
    mirror: bool,
    device: &B::Device,
) -> Result<Array4<f32>> {
    let patch = checked_patch::<B, M>(model, cfg)?;
    let (c, nz, ny, nx) = image.dim();
    // Zero-pad up to at least one window.
    let dims = [nz.max(patch[0]), ny.max(patch[1]), nx.max(patch[2])];
    let mut padded = Array4::<f32>::zeros((c, dims[0], dims[1], dims[2]));
    padded.slice_mut(s![.., ..nz, ..ny, ..nx]).assign(&image);
    let weight = importance(patch, cfg.blend);
    let mut sum: Option<Array4<f32>> = None;
    let mut norm = Array3::<f32>::zeros((dims[0], dims[1], dims[2]));
    for &z in &starts(dims[0], patch[0], cfg.overlap) {
        for &y in &starts(dims[1], patch[1], cfg.overlap) {
            for &x in &starts(dims[2], patch[2], cfg.overlap) {
                let at = s![.., z..z + patch[0], y..y + patch[1], x..x + patch[2]];
                let out = if mirror {
                    mirrored_probabilities::<B, M>(model, padded.slice(at), device)?
                } else {
                    window_probabilities::<B, M>(model, padded.slice(at), device)?
                };
                let acc = sum
                    .get_or_insert_with(|| Array4::zeros((out.dim().0, dims[0], dims[1], dims[2])));
                for (mut ch, o) in acc.slice_mut(at).outer_iter_mut().zip(out.outer_iter()) {
                    ndarray::Zip::from(&mut ch)
                        .and(&o)
                        .and(&weight)
                        .for_each(|a, &p, &w| *a += p * w);
                }
                norm.slice_mut(s![z..z + patch[0], y..y + patch[1], x..x + patch[2]])
                    .zip_mut_with(&weight, |n, &w| *n += w);
            }
        }
    }
    let mut sum = sum.ok_or_else(|| CoreError::invalid("image", "empty volume"))?;
    for mut ch in sum.outer_iter_mut() {
        ch.zip_mut_with(&norm, |v, &n| *v /= n);
    }
    Ok(sum.slice(s![.., ..nz, ..ny, ..nx]).to_owned())
}

/// The window size (z, y, x) after checking it against the overlap and the model.
fn checked_patch<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    cfg: &SlidingWindow,
) -> Result<[usize; 3]> {
    if !(0.0..1.0).contains(&cfg.overlap) {
        return Err(CoreError::invalid(
            "eval.overlap",
            format!("{}; expected a value in [0, 1)", cfg.overlap),
        ));
    }
    let divisor = model.size_divisor().max(1);
    if cfg.patch.iter().any(|&p| p == 0 || p % divisor != 0) {
        return Err(CoreError::invalid(
            "eval.patch",
            format!(
                "{:?}: every edge must be a positive multiple of {divisor} for this model",
                cfg.patch
            ),
        ));
    }
    if let Some(fixed) = model.input_size() {
        if cfg.patch != fixed {
            return Err(CoreError::invalid(
                "eval.window.patch",
                format!(
                    "{:?}; this model accepts exactly {fixed:?} (x, y, z)",
                    cfg.patch
                ),
            ));
        }
    }
    Ok([cfg.patch[2], cfg.patch[1], cfg.patch[0]])
}

/// Sigmoid output `[regions, z, y, x]` of the model on one window `[channels, z, y, x]`.
fn window_probabilities<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    window: ArrayView4<f32>,
    device: &B::Device,
) -> Result<Array4<f32>> {
    let (c, pz, py, px) = window.dim();
    let data: Vec<f32> = window.iter().copied().collect();
    let input = Tensor::<B, 5>::from_data(TensorData::new(data, [1, c, pz, py, px]), device);
    let probs = sigmoid(model.forward(input));
    let [_, oc, ..] = probs.dims();
    let out: Vec<f32> = probs
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| CoreError::invalid("model output", format!("{e:?}")))?;
    Array4::from_shape_vec((oc, pz, py, px), out).map_err(|e| CoreError::runtime("model output", e))
}

/// `a` with the spatial axes whose bit is set in `axes` (1: z, 2: y, 4: x) reversed.
fn flip_axes(a: ArrayView4<f32>, axes: usize) -> ArrayView4<f32> {
    let mut v = a;
    for (bit, axis) in [(1, 1), (2, 2), (4, 3)] {
        if axes & bit != 0 {
            v.invert_axis(Axis(axis));
        }
    }
    v
}

/// The mean of the window's sigmoid outputs over the 8 flips of its three axes.
fn mirrored_probabilities<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    window: ArrayView4<f32>,
    device: &B::Device,
) -> Result<Array4<f32>> {
    let mut acc = window_probabilities::<B, M>(model, window, device)?;
    for axes in 1..8 {
        let flipped = flip_axes(window, axes).as_standard_layout().into_owned();
        let out = window_probabilities::<B, M>(model, flipped.view(), device)?;
        acc += &flip_axes(out.view(), axes);
    }
    acc /= 8.0;
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_cover_the_axis_and_end_flush() {
        assert_eq!(starts(10, 4, 0.5), vec![0, 2, 4, 6]);
        assert_eq!(starts(4, 4, 0.5), vec![0]);
        assert_eq!(starts(9, 4, 0.0), vec![0, 4, 5]);
    }

    #[test]
    fn gaussian_importance_peaks_in_the_centre_and_stays_positive() {
        let m = importance([8, 8, 8], Blend::Gaussian);
        assert!(m[[4, 4, 4]] > m[[0, 4, 4]] && m[[0, 0, 0]] > 0.0);
        assert_eq!(importance([2, 2, 2], Blend::Constant).sum(), 8.0);
    }
}
