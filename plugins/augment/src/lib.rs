//! Synthesizer `augment`: the "simple data augmentation" row of the paper's ablation (§4.4, Tables 3
//! and 4): translation, random rotation and centre cropping of the real case, no synthetic tumour.
//!
//! One random transform per call, applied to image and labels in a single resampling pass:
//! * translation by a uniform integer offset in `[-translation, translation]` voxels per axis (x, y, z);
//! * rotation by a uniform angle in `[-rotation_degrees, rotation_degrees]` about the volume's centre
//!   in the axial plane (brain MRI is rotated in-plane in practice; `axes: all` adds the two other
//!   planes with the same range);
//! * centre crop of a uniform fraction in `crop` of every edge, resized back to the input size (a
//!   synthesizer keeps the input's grid, so "crop" means crop-and-resize, i.e. a zoom by 1/fraction).
//!
//! Images are resampled trilinearly (outside the volume: 0, the background after z-scoring), labels
//! by nearest neighbour. The transform is composed and applied once; ndarray-ndimage has shift and
//! zoom but no rotation, and three separate passes would blur the image three times.

use dsma_data::{Case, CoreError, Result};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{ParamDoc, PluginParams, Synthesized, Synthesizer};
use ndarray::{Array3, Array4, Axis, Zip};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Planes the rotation acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationAxes {
    /// In the axial (x–y) plane only.
    Axial,
    /// A composition of rotations in the three orthogonal planes.
    All,
}

/// Parameters of `augment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentParams {
    /// Largest shift in voxels along x, y, z.
    pub translation: [usize; 3],
    /// Largest rotation angle in degrees.
    pub rotation_degrees: f64,
    /// Planes of rotation.
    pub axes: RotationAxes,
    /// Range of the kept fraction of every edge in the centre crop (1 = no crop).
    pub crop: [f64; 2],
}

impl Default for AugmentParams {
    fn default() -> Self {
        AugmentParams {
            translation: [10, 10, 5],
            rotation_degrees: 15.0,
            axes: RotationAxes::Axial,
            crop: [0.85, 1.0],
        }
    }
}

impl PluginParams for AugmentParams {
    fn docs() -> Vec<ParamDoc> {
        let d = |name, doc| ParamDoc { name, doc };
        vec![
            d("translation", "largest shift in voxels along x, y, z"),
            d("rotation_degrees", "largest rotation angle in degrees"),
            d("axes", "axial (x–y plane) or all three planes"),
            d(
                "crop",
                "range of the kept edge fraction of the centre crop, resized back",
            ),
        ]
    }
}

/// The `augment` synthesizer.
#[derive(Debug, Clone)]
pub struct Augment {
    p: AugmentParams,
}

impl Plugin for Augment {
    const NAME: &'static str = "augment";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "translation, random rotation and centre crop of the real case (ablation baseline, §4.4)";
    type Params = AugmentParams;
    fn new(p: AugmentParams) -> Result<Self> {
        let bad = |field: &str, problem: String| CoreError::param(Self::NAME, field, problem);
        if !(0.0..=180.0).contains(&p.rotation_degrees) {
            return Err(bad(
                "rotation_degrees",
                format!("{}; expected a value in [0, 180]", p.rotation_degrees),
            ));
        }
        let [lo, hi] = p.crop;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(bad(
                "crop",
                format!("{:?}; expected [lo, hi] with 0 < lo ≤ hi ≤ 1", p.crop),
            ));
        }
        Ok(Augment { p })
    }
}

/// A 3×3 rotation in array order (z, y, x).
type Mat3 = [[f64; 3]; 3];

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// Rotation by `angle` in the plane of array axes `a` and `b`.
fn plane_rotation(a: usize, b: usize, angle: f64) -> Mat3 {
    let mut m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let (s, c) = angle.sin_cos();
    m[a][a] = c;
    m[a][b] = -s;
    m[b][a] = s;
    m[b][b] = c;
    m
}

/// The drawn transform: output voxel `o` samples input position `R·((o − c)·f) + c − t`.
#[derive(Debug, Clone, Copy)]
pub struct Transform {
    /// Rotation (array order z, y, x).
    pub rotation: Mat3,
    /// Shift in voxels (z, y, x).
    pub shift: [f64; 3],
    /// Kept edge fraction of the centre crop.
    pub fraction: f64,
}

impl Augment {
    /// Draws one transform from `rng`.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> Transform {
        let p = &self.p;
        let max = p.rotation_degrees.to_radians();
        let mut angle = || {
            if max > 0.0 {
                rng.random_range(-max..=max)
            } else {
                0.0
            }
        };
        let rotation = match p.axes {
            // Axial plane = the (y, x) axes of a [z, y, x] array.
            RotationAxes::Axial => plane_rotation(1, 2, angle()),
            RotationAxes::All => {
                let (a, b, c) = (angle(), angle(), angle());
                mul(
                    &mul(&plane_rotation(1, 2, a), &plane_rotation(0, 2, b)),
                    &plane_rotation(0, 1, c),
                )
            }
        };
        let [tx, ty, tz] = p.translation;
        let mut shift = |m: usize| rng.random_range(-(m as i64)..=m as i64) as f64;
        let shift = [shift(tz), shift(ty), shift(tx)];
        let [lo, hi] = p.crop;
        let fraction = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        Transform {
            rotation,
            shift,
            fraction,
        }
    }

    /// Applies `t` to `case` (image trilinear, labels nearest).
    pub fn apply(&self, case: &Case, t: &Transform) -> Case {
        let (m, nz, ny, nx) = case.image.dim();
        let centre = [
            (nz as f64 - 1.0) / 2.0,
            (ny as f64 - 1.0) / 2.0,
            (nx as f64 - 1.0) / 2.0,
        ];
        let source = |z: usize, y: usize, x: usize| {
            let o = [z as f64, y as f64, x as f64];
            let d = [
                (o[0] - centre[0]) * t.fraction,
                (o[1] - centre[1]) * t.fraction,
                (o[2] - centre[2]) * t.fraction,
            ];
            let mut s = [0.0; 3];
            for i in 0..3 {
                s[i] =
                    (0..3).map(|k| t.rotation[i][k] * d[k]).sum::<f64>() + centre[i] - t.shift[i];
            }
            s
        };
        let mut label = Array3::<u8>::zeros((nz, ny, nx));
        Zip::indexed(&mut label).par_for_each(|(z, y, x), out| {
            let s = source(z, y, x);
            let (iz, iy, ix) = (s[0].round(), s[1].round(), s[2].round());
            if iz >= 0.0 && iy >= 0.0 && ix >= 0.0 {
                let (iz, iy, ix) = (iz as usize, iy as usize, ix as usize);
                if iz < nz && iy < ny && ix < nx {
                    *out = case.label[[iz, iy, ix]];
                }
            }
        });
        let mut image = Array4::<f32>::zeros((m, nz, ny, nx));
        image
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(case.image.axis_iter(Axis(0)).into_par_iter())
            .for_each(|(mut out, input)| {
                let at = |z: isize, y: isize, x: isize| -> f32 {
                    if z < 0
                        || y < 0
                        || x < 0
                        || z >= nz as isize
                        || y >= ny as isize
                        || x >= nx as isize
                    {
                        0.0
                    } else {
                        input[[z as usize, y as usize, x as usize]]
                    }
                };
                for ((z, y, x), v) in out.indexed_iter_mut() {
                    let s = source(z, y, x);
                    let (fz, fy, fx) = (s[0].floor(), s[1].floor(), s[2].floor());
                    let (dz, dy, dx) = ((s[0] - fz) as f32, (s[1] - fy) as f32, (s[2] - fx) as f32);
                    let (z0, y0, x0) = (fz as isize, fy as isize, fx as isize);
                    let mut acc = 0.0f32;
                    for (cz, wz) in [(z0, 1.0 - dz), (z0 + 1, dz)] {
                        for (cy, wy) in [(y0, 1.0 - dy), (y0 + 1, dy)] {
                            for (cx, wx) in [(x0, 1.0 - dx), (x0 + 1, dx)] {
                                let w = wz * wy * wx;
                                if w != 0.0 {
                                    acc += w * at(cz, cy, cx);
                                }
                            }
                        }
                    }
                    *v = acc;
                }
            });
        Case {
            id: case.id.clone(),
            image,
            label,
            grid: case.grid.clone(),
            convention: case.convention,
        }
    }
}

impl Synthesizer for Augment {
    fn synthesize(&self, case: &Case, rng: &mut ChaCha8Rng) -> Result<Synthesized> {
        let t = self.draw(rng);
        Ok(Synthesized {
            case: self.apply(case, &t),
            unchanged_reason: None,
        })
    }
}

dsma_plugin::register_synthesizer!(Augment);

/// Referenced by the `dsma` binary so the linker keeps this crate and its registration.
pub fn link() {}
