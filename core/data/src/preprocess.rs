//! BraTS preprocessing as in MONAI / nnU-Net practice: crop to the brain, per-modality z-score over
//! brain voxels, tumour-aware random patch sampling and random flips.

use ndarray::{s, Array3, Array4, ArrayView3, ArrayView4, Axis, Zip};
use rand::{Rng, RngExt};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::volume::{bounding_box, Case};

/// Brain mask: voxels that are non-zero in any modality.
pub fn brain_mask(case: &Case) -> Array3<bool> {
    let (_, z, y, x) = case.image.dim();
    let mut mask = Array3::from_elem((z, y, x), false);
    for channel in case.image.outer_iter() {
        Zip::from(&mut mask)
            .and(&channel)
            .par_for_each(|m, &v| *m |= v != 0.0);
    }
    mask
}

/// Crops a case to the bounding box of its brain; returns the crop and its start (z, y, x) in the input.
pub fn crop_to_brain(case: &Case) -> Result<(Case, [usize; 3])> {
    let mask = brain_mask(case);
    let (lo, hi) = bounding_box(mask.view(), |&m| m).ok_or_else(|| {
        CoreError::invalid(
            "case",
            format!("{}: every voxel is zero in every modality", case.id),
        )
    })?;
    Ok((crop_box(case, lo, hi), lo))
}

/// The part `[lo, hi)` (z, y, x) of `case`: image, labels and the grid shifted to its start.
fn crop_box(case: &Case, lo: [usize; 3], hi: [usize; 3]) -> Case {
    Case {
        id: case.id.clone(),
        image: case
            .image
            .slice(s![.., lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]])
            .to_owned(),
        label: case
            .label
            .slice(s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]])
            .to_owned(),
        grid: case.grid.crop(
            [lo[2], lo[1], lo[0]],
            [hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]],
        ),
        convention: case.convention,
    }
}

/// Z-scores each modality over brain voxels (non-zero in any modality); background stays 0.
pub fn zscore_brain(case: &mut Case) {
    let mask = brain_mask(case);
    let count = mask.iter().filter(|&&m| m).count().max(1) as f64;
    case.image
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut channel| {
            let (sum, sum_sq) =
                Zip::from(&channel)
                    .and(&mask)
                    .fold((0f64, 0f64), |(s, q), &v, &m| {
                        if m {
                            (s + v as f64, q + (v as f64) * (v as f64))
                        } else {
                            (s, q)
                        }
                    });
            let mean = sum / count;
            let std = (sum_sq / count - mean * mean).max(0.0).sqrt().max(1e-8);
            Zip::from(&mut channel).and(&mask).for_each(|v, &m| {
                *v = if m {
                    ((*v as f64 - mean) / std) as f32
                } else {
                    0.0
                };
            });
        });
}

/// Crop to the brain and z-score: the preprocessing every case gets before training.
pub fn preprocess(case: &Case) -> Result<Case> {
    let (mut cropped, _) = crop_to_brain(case)?;
    zscore_brain(&mut cropped);
    Ok(cropped)
}

/// Patch sampling settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchConfig {
    /// Patch size in voxels, NIfTI order (x, y, z).
    pub size: [usize; 3],
    /// Share of patches centred on a tumour voxel (nnU-Net oversamples foreground at 0.33).
    #[serde(default = "default_tumour_share")]
    pub tumour_share: f64,
    /// Probability of flipping along each axis independently.
    #[serde(default = "default_flip")]
    pub flip_probability: f64,
}

fn default_tumour_share() -> f64 {
    0.5
}

fn default_flip() -> f64 {
    0.5
}

impl PatchConfig {
    /// Checks ranges; names the field at fault.
    pub fn validate(&self) -> Result<()> {
        if self.size.contains(&0) {
            return Err(CoreError::invalid(
                "train.patch.size",
                format!("{:?}; every edge must be ≥ 1", self.size),
            ));
        }
        for (name, v) in [
            ("train.patch.tumour_share", self.tumour_share),
            ("train.patch.flip_probability", self.flip_probability),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(CoreError::invalid(
                    name,
                    format!("{v}; expected a value in [0, 1]"),
                ));
            }
        }
        Ok(())
    }
}

/// Flat indices of the tumour voxels of a label map (computed once per case for the sampler).
pub fn foreground_indices(label: ArrayView3<u8>) -> Vec<usize> {
    label
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0)
        .map(|(i, _)| i)
        .collect()
}

/// The box `[lo, hi)` grown symmetrically to at least `min` voxels per axis (never past `dims`),
/// shifted back inside `[0, dims)` where it would cross an edge.
pub fn grow_box(
    lo: [usize; 3],
    hi: [usize; 3],
    min: [usize; 3],
    dims: [usize; 3],
) -> ([usize; 3], [usize; 3]) {
    let mut out = (lo, hi);
    for a in 0..3 {
        let want = min[a].min(dims[a]).max(hi[a] - lo[a]);
        let extra = want - (hi[a] - lo[a]);
        let start = lo[a].saturating_sub(extra / 2).min(dims[a] - want);
        out.0[a] = start;
        out.1[a] = start + want;
    }
    out
}

/// The part of `case` around its tumour, at least `min_xyz` voxels (x, y, z) per axis: the
/// tumour's bounding box grown by [`grow_box`] (the volume's centre when there is no tumour).
pub fn crop_to_tumour(case: &Case, min_xyz: [usize; 3]) -> Case {
    let (_, nz, ny, nx) = case.image.dim();
    let dims = [nz, ny, nx];
    let centre = [nz / 2, ny / 2, nx / 2];
    let (lo, hi) =
        bounding_box(case.label.view(), |&v| v != 0).unwrap_or((centre, centre.map(|c| c + 1)));
    let (lo, hi) = grow_box(lo, hi, [min_xyz[2], min_xyz[1], min_xyz[0]], dims);
    crop_box(case, lo, hi)
}

/// A training patch: image (modality, z, y, x) and labels (z, y, x).
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// Image channels.
    pub image: Array4<f32>,
    /// Labels.
    pub label: Array3<u8>,
}

/// Samples one patch: tumour-centred with probability `tumour_share` (when the case has tumour),
/// otherwise uniformly centred; zero padding where the patch leaves the volume; random flips.
pub fn sample_patch<R: Rng + ?Sized>(
    case: &Case,
    foreground: &[usize],
    cfg: &PatchConfig,
    rng: &mut R,
) -> Patch {
    sample_patch_from(case.image.view(), case.label.view(), foreground, cfg, rng)
}

/// Flat voxel indices of a case's tumour, as its owner keeps them (`usize` in memory, `u32` in the
/// case store).
pub trait VoxelIndex: Copy {
    /// The index.
    fn index(self) -> usize;
}

impl VoxelIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl VoxelIndex for u32 {
    fn index(self) -> usize {
        self as usize
    }
}

/// [`sample_patch`] from views of a case's image `[modality, z, y, x]` and labels `[z, y, x]`
/// (e.g. memory maps of a stored case).
pub fn sample_patch_from<R: Rng + ?Sized, I: VoxelIndex>(
    case_image: ArrayView4<f32>,
    case_label: ArrayView3<u8>,
    foreground: &[I],
    cfg: &PatchConfig,
    rng: &mut R,
) -> Patch {
    let (_, nz, ny, nx) = case_image.dim();
    let [px, py, pz] = cfg.size;
    let centre = if !foreground.is_empty() && rng.random_bool(cfg.tumour_share) {
        let i = foreground[rng.random_range(0..foreground.len())].index();
        [i / (ny * nx), (i / nx) % ny, i % nx]
    } else {
        [
            rng.random_range(0..nz),
            rng.random_range(0..ny),
            rng.random_range(0..nx),
        ]
    };
    let start = [
        centre[0] as isize - (pz / 2) as isize,
        centre[1] as isize - (py / 2) as isize,
        centre[2] as isize - (px / 2) as isize,
    ];
    let mut image = Array4::<f32>::zeros((case_image.dim().0, pz, py, px));
    let mut label = Array3::<u8>::zeros((pz, py, px));
    let dims = [nz, ny, nx];
    let patch = [pz, py, px];
    // Overlap of [start, start + patch) with [0, dims).
    let mut src = [(0usize, 0usize); 3];
    let mut dst = [(0usize, 0usize); 3];
    for a in 0..3 {
        let lo = start[a].max(0);
        let hi = (start[a] + patch[a] as isize).min(dims[a] as isize);
        if hi <= lo {
            return Patch { image, label };
        }
        src[a] = (lo as usize, hi as usize);
        dst[a] = ((lo - start[a]) as usize, (hi - start[a]) as usize);
    }
    image
        .slice_mut(s![
            ..,
            dst[0].0..dst[0].1,
            dst[1].0..dst[1].1,
            dst[2].0..dst[2].1
        ])
        .assign(&case_image.slice(s![
            ..,
            src[0].0..src[0].1,
            src[1].0..src[1].1,
            src[2].0..src[2].1
        ]));
    label
        .slice_mut(s![
            dst[0].0..dst[0].1,
            dst[1].0..dst[1].1,
            dst[2].0..dst[2].1
        ])
        .assign(&case_label.slice(s![
            src[0].0..src[0].1,
            src[1].0..src[1].1,
            src[2].0..src[2].1
        ]));
    for axis in 0..3 {
        if rng.random_bool(cfg.flip_probability) {
            image.invert_axis(Axis(axis + 1));
            label.invert_axis(Axis(axis));
        }
    }
    Patch {
        image: image.as_standard_layout().into_owned(),
        label: label.as_standard_layout().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tumour_crop_keeps_every_tumour_voxel_in_a_box_of_the_minimum_size() {
        let mut label = Array3::<u8>::zeros((20, 20, 20));
        label[[5, 5, 5]] = 2;
        label[[7, 9, 6]] = 4;
        let mut image = Array4::<f32>::zeros((4, 20, 20, 20));
        image[[1, 7, 9, 6]] = 3.0;
        let case = Case {
            id: "t".into(),
            image,
            label,
            grid: Grid::axis_aligned([20, 20, 20], [1.0, 1.0, 1.0]),
            convention: LabelConvention::Brats2019,
        };
        let c = crop_to_tumour(&case, [4, 4, 4]);
        // Tumour box z 5..8, y 5..10, x 5..7 grown to ≥ 4: z 5..9, y 5..10, x 4..8.
        assert_eq!(c.label.dim(), (4, 5, 4));
        assert_eq!(c.label[[0, 0, 1]], 2);
        assert_eq!(c.label[[2, 4, 2]], 4);
        assert_eq!(c.image[[1, 2, 4, 2]], 3.0);
        assert_eq!(c.grid.affine[0][3] - case.grid.affine[0][3], 4.0, "x shift");
        assert_eq!(c.grid.affine[2][3] - case.grid.affine[2][3], 5.0, "z shift");
    }

    #[test]
    fn boxes_grow_symmetrically_and_stay_inside_the_volume() {
        // Axis 0: 4..6 grown to 6 → 2..8; axis 1: already 10 wide; axis 2: at the edge, shifted.
        assert_eq!(
            grow_box([4, 0, 0], [6, 10, 2], [6, 4, 6], [20, 20, 20]),
            ([2, 0, 0], [8, 10, 6])
        );
        // Wider than the volume: the whole axis.
        assert_eq!(
            grow_box([1, 1, 1], [2, 2, 2], [9, 9, 9], [5, 5, 5]),
            ([0, 0, 0], [5, 5, 5])
        );
        // Near the far edge: shifted back inside.
        assert_eq!(
            grow_box([18, 18, 18], [19, 19, 19], [4, 4, 4], [20, 20, 20]),
            ([16, 16, 16], [20, 20, 20])
        );
    }
    use crate::labels::LabelConvention;
    use crate::volume::Grid;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn toy_case() -> Case {
        let mut image = Array4::<f32>::zeros((4, 10, 12, 14));
        image.slice_mut(s![.., 2..8, 3..9, 4..10]).fill(5.0);
        image[[1, 5, 5, 5]] = 9.0;
        let mut label = Array3::<u8>::zeros((10, 12, 14));
        label[[4, 4, 4]] = 4;
        Case {
            id: "toy".into(),
            image,
            label,
            grid: Grid::axis_aligned([14, 12, 10], [1.0, 2.0, 3.0]),
            convention: LabelConvention::Brats2019,
        }
    }

    #[test]
    fn crop_keeps_brain_and_moves_origin() {
        let (c, lo) = crop_to_brain(&toy_case()).unwrap();
        assert_eq!(lo, [2, 3, 4]);
        assert_eq!(c.image.dim(), (4, 6, 6, 6));
        assert_eq!(c.grid.dims, [6, 6, 6]);
        assert_eq!(c.grid.affine[0][3], 4.0);
        assert_eq!(c.grid.affine[1][3], 6.0);
        assert_eq!(c.grid.affine[2][3], 6.0);
        assert_eq!(c.label[[2, 1, 0]], 4);
    }

    #[test]
    fn zscore_gives_zero_mean_unit_std_inside_brain_and_zero_outside() {
        let mut c = toy_case();
        zscore_brain(&mut c);
        let mask = brain_mask(&toy_case());
        let ch = c.image.index_axis(Axis(0), 1);
        let vals: Vec<f64> = ch
            .iter()
            .zip(mask.iter())
            .filter(|(_, &m)| m)
            .map(|(&v, _)| v as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
        assert_eq!(c.image[[0, 0, 0, 0]], 0.0);
    }

    #[test]
    fn tumour_patches_contain_tumour_and_are_deterministic() {
        let c = toy_case();
        let fg = foreground_indices(c.label.view());
        let cfg = PatchConfig {
            size: [4, 4, 4],
            tumour_share: 1.0,
            flip_probability: 0.5,
        };
        let mut r1 = ChaCha8Rng::seed_from_u64(3);
        let mut r2 = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10 {
            let a = sample_patch(&c, &fg, &cfg, &mut r1);
            let b = sample_patch(&c, &fg, &cfg, &mut r2);
            assert_eq!(a, b);
            assert_eq!(a.label.iter().filter(|&&v| v == 4).count(), 1);
            assert_eq!(a.image.dim(), (4, 4, 4, 4));
        }
    }

    /// Every voxel's image value encodes its position and its label is a function of that
    /// position, so a patch whose image and labels were flipped (or cropped) differently breaks
    /// the relation somewhere; zero padding (a patch centred near the border) is all zero,
    /// labels included.
    #[test]
    fn image_and_labels_flip_together() {
        let (nz, ny, nx) = (6, 7, 8);
        let index = |z: usize, y: usize, x: usize| (z * ny + y) * nx + x;
        let label_of = |i: usize| [0u8, 1, 2, 4][i % 4];
        let image = Array4::from_shape_fn((4, nz, ny, nx), |(c, z, y, x)| {
            (index(z, y, x) + 1000 * c) as f32
        });
        let label = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| label_of(index(z, y, x)));
        let case = Case {
            id: "coded".into(),
            image,
            label,
            grid: Grid::axis_aligned([nx, ny, nz], [1.0; 3]),
            convention: LabelConvention::Brats2019,
        };
        let fg = foreground_indices(case.label.view());
        let cfg = PatchConfig {
            size: [4, 4, 4],
            tumour_share: 0.5,
            flip_probability: 0.5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut flipped = [false; 3];
        for _ in 0..40 {
            let p = sample_patch(&case, &fg, &cfg, &mut rng);
            for ((z, y, x), &label) in p.label.indexed_iter() {
                let v: Vec<f32> = (0..4).map(|c| p.image[[c, z, y, x]]).collect();
                if v.iter().all(|&x| x == 0.0) {
                    assert_eq!(label, 0, "padding with a label at {z},{y},{x}");
                    continue;
                }
                let i = v[0] as usize;
                for (c, &vc) in v.iter().enumerate() {
                    assert_eq!(vc, (i + 1000 * c) as f32, "channel {c} at {z},{y},{x}");
                }
                assert_eq!(label, label_of(i), "label at {z},{y},{x}");
            }
            // An axis was flipped when the encoded position decreases along it (channel 1 is
            // ≥ 1000 wherever the patch is not padding).
            let v = |z: usize, y: usize, x: usize| p.image[[1, z, y, x]];
            let down = |a: f32, b: f32| a >= 1000.0 && b >= 1000.0 && b < a;
            flipped[0] |= down(v(0, 0, 0), v(1, 0, 0));
            flipped[1] |= down(v(0, 0, 0), v(0, 1, 0));
            flipped[2] |= down(v(0, 0, 0), v(0, 0, 1));
        }
        assert_eq!(flipped, [true; 3], "no flip along some axis in 40 patches");
    }

    #[test]
    fn patch_larger_than_volume_is_zero_padded() {
        let c = toy_case();
        let cfg = PatchConfig {
            size: [20, 20, 20],
            tumour_share: 0.0,
            flip_probability: 0.0,
        };
        let p = sample_patch(&c, &[], &cfg, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(p.image.dim(), (4, 20, 20, 20));
        let total: f32 = p.image.index_axis(Axis(0), 0).sum();
        assert!(total <= 216.0 * 5.0 && total > 0.0);
    }

    #[test]
    fn patch_config_validation_names_the_field() {
        let cfg = PatchConfig {
            size: [4, 4, 4],
            tumour_share: 1.5,
            flip_probability: 0.5,
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("train.patch.tumour_share"));
    }
}
