//! A BraTS case in memory: four modality volumes, a label map and the voxel grid they share.
//!
//! Arrays are indexed `[z, y, x]` (C order), which is exactly the NIfTI on-disk order (x fastest), so
//! reading and writing never transposes. Sizes shown to users follow NIfTI's `x, y, z` order
//! (a BraTS case is 240×240×155); [`Grid::dims`] and [`Grid::spacing`] are in that order.

use ndarray::{s, Array3, Array4, ArrayView3};
use serde::{Deserialize, Serialize};

use crate::labels::LabelConvention;

/// One MRI modality of a BraTS case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// T2 fluid-attenuated inversion recovery.
    Flair,
    /// Native T1-weighted.
    T1,
    /// Contrast-enhanced T1-weighted.
    T1ce,
    /// T2-weighted.
    T2,
}

impl Modality {
    /// The four modalities in channel order (FLAIR, T1, T1ce, T2).
    pub const ALL: [Modality; 4] = [Modality::Flair, Modality::T1, Modality::T1ce, Modality::T2];

    /// File-name suffix in the official BraTS layout (`<case>_<suffix>.nii.gz`).
    pub fn suffix(self) -> &'static str {
        match self {
            Modality::Flair => "flair",
            Modality::T1 => "t1",
            Modality::T1ce => "t1ce",
            Modality::T2 => "t2",
        }
    }

    /// Display name.
    pub fn display(self) -> &'static str {
        match self {
            Modality::Flair => "FLAIR",
            Modality::T1 => "T1",
            Modality::T1ce => "T1ce",
            Modality::T2 => "T2",
        }
    }
}

/// Quaternion (qform) description of a grid, kept so written files carry the same qform as their input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Qform {
    /// NIfTI qform_code (1 scanner, 2 aligned, 3 Talairach, 4 MNI).
    pub code: i16,
    /// Quaternion parameters b, c, d.
    pub quatern: [f64; 3],
    /// qfac (pixdim\[0\]): ±1.
    pub qfac: f64,
    /// World position of voxel (0, 0, 0) in mm.
    pub offset: [f64; 3],
}

/// The voxel grid of a volume: size, spacing and voxel-to-world affine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Voxel counts in NIfTI order (x, y, z).
    pub dims: [usize; 3],
    /// Voxel size in mm in NIfTI order (x, y, z).
    pub spacing: [f64; 3],
    /// Voxel index (i, j, k) → world (mm) affine, row-major 4×4: sform when sform_code > 0, else qform.
    pub affine: [[f64; 4]; 4],
    /// sform_code of the source (0 when the affine came from the qform).
    pub sform_code: i16,
    /// The qform of the source, if it had one.
    pub qform: Option<Qform>,
}

impl Grid {
    /// A grid of `dims` mapped to the world by `affine` (kept as the sform, no qform); the spacing
    /// is the length of each of its first three columns.
    pub fn from_affine(dims: [usize; 3], affine: [[f64; 4]; 4]) -> Self {
        let spacing =
            std::array::from_fn(|a| (0..3).map(|r| affine[r][a].powi(2)).sum::<f64>().sqrt());
        Grid {
            dims,
            spacing,
            affine,
            sform_code: 1,
            qform: None,
        }
    }

    /// A grid with axis-aligned RAS+ orientation, origin at voxel 0, and both sform and qform set.
    pub fn axis_aligned(dims: [usize; 3], spacing: [f64; 3]) -> Self {
        let mut affine = [[0.0; 4]; 4];
        for a in 0..3 {
            affine[a][a] = spacing[a];
        }
        affine[3][3] = 1.0;
        Grid {
            dims,
            spacing,
            affine,
            sform_code: 1,
            qform: Some(Qform {
                code: 1,
                quatern: [0.0; 3],
                qfac: 1.0,
                offset: [0.0; 3],
            }),
        }
    }

    /// Array shape `(z, y, x)` of volumes on this grid.
    pub fn shape_zyx(&self) -> (usize, usize, usize) {
        (self.dims[2], self.dims[1], self.dims[0])
    }

    /// Number of voxels.
    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Spacing in array-axis order (z, y, x).
    pub fn spacing_zyx(&self) -> [f64; 3] {
        [self.spacing[2], self.spacing[1], self.spacing[0]]
    }

    /// The sub-grid starting at voxel `start` (x, y, z) with `dims` voxels: same orientation, shifted origin.
    pub fn crop(&self, start: [usize; 3], dims: [usize; 3]) -> Grid {
        let shift = |m: &[[f64; 4]; 4], row: usize| -> f64 {
            (0..3).map(|c| m[row][c] * start[c] as f64).sum::<f64>()
        };
        let mut affine = self.affine;
        for row in 0..3 {
            affine[row][3] += shift(&self.affine, row);
        }
        let qform = self.qform.map(|q| {
            let m = qform_affine(&q, self.spacing);
            let mut q2 = q;
            for row in 0..3 {
                q2.offset[row] += shift(&m, row);
            }
            q2
        });
        Grid {
            dims,
            spacing: self.spacing,
            affine,
            sform_code: self.sform_code,
            qform,
        }
    }

    /// Whether two grids have the same size and (within `tol` mm) the same affine.
    pub fn same_space(&self, other: &Grid, tol: f64) -> bool {
        self.dims == other.dims
            && self
                .affine
                .iter()
                .flatten()
                .zip(other.affine.iter().flatten())
                .all(|(a, b)| (a - b).abs() <= tol)
    }
}

/// Voxel-to-world affine of a qform (NIfTI-1 method 2), with `spacing` = pixdim\[1..=3\].
pub fn qform_affine(q: &Qform, spacing: [f64; 3]) -> [[f64; 4]; 4] {
    let [b, c, d] = q.quatern;
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let scale = [
        spacing[0],
        spacing[1],
        spacing[2] * if q.qfac < 0.0 { -1.0 } else { 1.0 },
    ];
    let mut m = [[0.0; 4]; 4];
    for row in 0..3 {
        for col in 0..3 {
            m[row][col] = r[row][col] * scale[col];
        }
        m[row][3] = q.offset[row];
    }
    m[3][3] = 1.0;
    m
}

/// One multi-modal case: image (modality, z, y, x), labels (z, y, x), and their grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Case identifier, e.g. `BraTS20_Training_001`.
    pub id: String,
    /// Intensities, channels in [`Modality::ALL`] order.
    pub image: Array4<f32>,
    /// Label map in [`Case::convention`].
    pub label: Array3<u8>,
    /// The voxel grid shared by all five volumes.
    pub grid: Grid,
    /// How `label` encodes the tumour sub-regions.
    pub convention: LabelConvention,
}

impl Case {
    /// View of one modality.
    pub fn modality(&self, m: Modality) -> ArrayView3<'_, f32> {
        let idx = Modality::ALL.iter().position(|x| *x == m).unwrap_or(0);
        self.image.slice(s![idx, .., .., ..])
    }

    /// Number of tumour voxels (any non-zero label).
    pub fn tumour_voxels(&self) -> usize {
        self.label.iter().filter(|&&v| v != 0).count()
    }
}

/// Bounding box `(start, end_exclusive)` per array axis (z, y, x) of the voxels where `keep` holds, or `None`.
pub fn bounding_box<T: Sync>(
    volume: ArrayView3<T>,
    keep: impl Fn(&T) -> bool + Sync,
) -> Option<([usize; 3], [usize; 3])> {
    use rayon::prelude::*;
    // Per z-plane (in parallel): the y/x extent of kept voxels.
    let planes: Vec<Option<[usize; 4]>> = volume
        .outer_iter()
        .into_par_iter()
        .map(|plane| {
            let mut e = [usize::MAX, 0, usize::MAX, 0];
            let mut any = false;
            for ((y, x), v) in plane.indexed_iter() {
                if keep(v) {
                    any = true;
                    e = [e[0].min(y), e[1].max(y + 1), e[2].min(x), e[3].max(x + 1)];
                }
            }
            any.then_some(e)
        })
        .collect();
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for (z, e) in planes.iter().enumerate() {
        if let Some(e) = e {
            lo = [lo[0].min(z), lo[1].min(e[0]), lo[2].min(e[2])];
            hi = [hi[0].max(z + 1), hi[1].max(e[1]), hi[2].max(e[3])];
        }
    }
    (hi[0] > 0).then_some((lo, hi))
}

/// Views of two masks cut to the bounding box of their union (the masks as given when both are
/// empty). Every metric of the pair is the same there: no mask voxel lies outside the box, and the
/// box's edge borders background as the volume's edge does.
pub fn crop_to_union<'a>(
    a: ndarray::ArrayView3<'a, bool>,
    b: ndarray::ArrayView3<'a, bool>,
) -> (ndarray::ArrayView3<'a, bool>, ndarray::ArrayView3<'a, bool>) {
    let either = ndarray::Zip::from(&a).and(&b).map_collect(|&x, &y| x || y);
    match bounding_box(either.view(), |&v| v) {
        Some((lo, hi)) => {
            let bx = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
            (a.slice_move(bx), b.slice_move(bx))
        }
        None => (a, b),
    }
}

/// Whether `id` can name a case's output files and folders: one plain name (not empty, not `.` or
/// `..`, no path separator or NUL), so `out.join(id)` stays inside `out`.
pub fn is_plain_name(id: &str) -> bool {
    !matches!(id, "" | "." | "..") && !id.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_shifts_origin_by_the_affine() {
        let mut g = Grid::axis_aligned([10, 10, 10], [2.0, 1.0, 3.0]);
        g.affine[0][3] = -5.0;
        let c = g.crop([1, 2, 3], [4, 4, 4]);
        assert_eq!(c.affine[0][3], -5.0 + 2.0);
        assert_eq!(c.affine[1][3], 2.0);
        assert_eq!(c.affine[2][3], 9.0);
        let q = c.qform.expect("qform kept");
        assert_eq!(q.offset, [2.0, 2.0, 9.0]);
    }

    #[test]
    fn identity_quaternion_gives_spacing_diagonal() {
        let q = Qform {
            code: 1,
            quatern: [0.0; 3],
            qfac: -1.0,
            offset: [1.0, 2.0, 3.0],
        };
        let m = qform_affine(&q, [1.0, 2.0, 3.0]);
        assert_eq!((m[0][0], m[1][1], m[2][2]), (1.0, 2.0, -3.0));
        assert_eq!((m[0][3], m[1][3], m[2][3]), (1.0, 2.0, 3.0));
    }

    #[test]
    fn bounding_box_is_tight() {
        let mut v = Array3::<u8>::zeros((5, 6, 7));
        v[[1, 2, 3]] = 1;
        v[[3, 4, 5]] = 1;
        assert_eq!(
            bounding_box(v.view(), |&x| x > 0),
            Some(([1, 2, 3], [4, 5, 6]))
        );
        assert_eq!(
            bounding_box(Array3::<u8>::zeros((2, 2, 2)).view(), |&x| x > 0),
            None
        );
    }
}
