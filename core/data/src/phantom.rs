//! A procedural BraTS-like phantom: the embedded default dataset when no BraTS data is on the machine.
//!
//! Each case is a skull-stripped cartoon brain in normalised coordinates `p ∈ [-1, 1]³` (x left→right,
//! y posterior→anterior, z inferior→superior): cortex with sulci, white matter, deep grey nuclei,
//! lateral ventricles, an interhemispheric fissure, and one glioma of random position, size and
//! irregular shape with necrotic core (1), enhancing rim (ET) and oedema (2). Contrasts follow real MRI
//! qualitatively (FLAIR: oedema bright, CSF dark; T1: tumour dark; T1ce: enhancing rim bright; T2: CSF,
//! oedema and necrosis bright). A smooth multiplicative bias field and Rician-like noise are added.
//! Everything is drawn from one seed with `ChaCha8Rng`, so the same seed gives the same bytes everywhere.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, ArrayViewMut3, Axis, Zip};
use ndarray_ndimage::{gaussian_filter, BorderMode};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;
use crate::nifti_io::write_volume;
use crate::seed::derive_seed;
use crate::volume::{Case, Grid, Modality};

/// Settings of a phantom dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhantomSpec {
    /// Number of cases.
    pub cases: usize,
    /// Volume size in NIfTI order (x, y, z); BraTS is 240×240×155.
    pub size: [usize; 3],
    /// Voxel spacing in mm (x, y, z).
    #[serde(default = "default_spacing")]
    pub spacing: [f64; 3],
    /// Master seed; case `i` uses a seed derived from it.
    pub seed: u64,
}

fn default_spacing() -> [f64; 3] {
    [1.0, 1.0, 1.0]
}

/// Smallest edge length accepted, so that every label is resolvable.
pub const MIN_EDGE: usize = 12;

/// Tissue classes of the phantom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tissue {
    Background,
    Csf,
    Grey,
    White,
    DeepGrey,
    Oedema,
    Necrosis,
    Enhancing,
}

impl Tissue {
    /// Mean intensity per modality (FLAIR, T1, T1ce, T2), in units of 1000.
    fn intensity(self) -> [f32; 4] {
        match self {
            Tissue::Background => [0.0; 4],
            Tissue::Csf => [0.12, 0.15, 0.16, 1.00],
            Tissue::Grey => [0.62, 0.55, 0.56, 0.62],
            Tissue::White => [0.46, 0.82, 0.82, 0.40],
            Tissue::DeepGrey => [0.58, 0.63, 0.64, 0.55],
            Tissue::Oedema => [1.00, 0.46, 0.47, 0.88],
            Tissue::Necrosis => [0.52, 0.22, 0.26, 0.96],
            Tissue::Enhancing => [0.80, 0.50, 1.30, 0.70],
        }
    }

    fn label(self, c: LabelConvention) -> u8 {
        match self {
            Tissue::Oedema => c.oedema(),
            Tissue::Necrosis => c.necrosis(),
            Tissue::Enhancing => c.enhancing(),
            _ => 0,
        }
    }

    fn is_tumour(self) -> bool {
        matches!(self, Tissue::Oedema | Tissue::Necrosis | Tissue::Enhancing)
    }
}

/// A smooth random field on `[-1, 1]³`: N(0,1) values on an n³ control grid, smoothstep-interpolated.
struct SmoothField {
    n: usize,
    values: Vec<f32>,
}

impl SmoothField {
    fn new(rng: &mut ChaCha8Rng, n: usize) -> Self {
        let values = (0..n * n * n).map(|_| StandardNormal.sample(rng)).collect();
        SmoothField { n, values }
    }

    fn at(&self, p: [f64; 3]) -> f32 {
        let n = self.n;
        let mut i0 = [0usize; 3];
        let mut w = [0f32; 3];
        for a in 0..3 {
            let t = ((p[a] + 1.0) * 0.5).clamp(0.0, 1.0) * (n - 1) as f64;
            let i = (t.floor() as usize).min(n - 2);
            let f = (t - i as f64) as f32;
            i0[a] = i;
            w[a] = f * f * (3.0 - 2.0 * f);
        }
        let v = |dx: usize, dy: usize, dz: usize| {
            self.values[((i0[2] + dz) * n + i0[1] + dy) * n + i0[0] + dx]
        };
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        let x00 = lerp(v(0, 0, 0), v(1, 0, 0), w[0]);
        let x10 = lerp(v(0, 1, 0), v(1, 1, 0), w[0]);
        let x01 = lerp(v(0, 0, 1), v(1, 0, 1), w[0]);
        let x11 = lerp(v(0, 1, 1), v(1, 1, 1), w[0]);
        lerp(lerp(x00, x10, w[1]), lerp(x01, x11, w[1]), w[2])
    }
}

/// The random anatomy of one case.
struct Anatomy {
    brain_radii: [f64; 3],
    brain_wobble: SmoothField,
    cortex_depth: f64,
    cortex_wobble: SmoothField,
    sulci: SmoothField,
    ventricle: [f64; 3],
    tumour: Tumour,
}

struct Tumour {
    centre: [f64; 3],
    /// Radii (normalised units) of oedema, core (TC) and necrosis.
    radii: [f64; 3],
    shape: [SmoothField; 3],
}

fn sq(v: f64) -> f64 {
    v * v
}

impl Anatomy {
    fn draw(rng: &mut ChaCha8Rng, size: [usize; 3]) -> Self {
        let brain_radii = [
            rng.random_range(0.80..0.88),
            rng.random_range(0.84..0.92),
            rng.random_range(0.80..0.88),
        ];
        let brain_wobble = SmoothField::new(rng, 5);
        let cortex_depth = rng.random_range(0.74..0.80);
        let cortex_wobble = SmoothField::new(rng, 11);
        let sulci = SmoothField::new(rng, 20);
        let ventricle = [
            rng.random_range(0.09..0.13),
            rng.random_range(0.22..0.30),
            rng.random_range(0.05..0.09),
        ];
        // Tumour radii in normalised units, no smaller than ~1.6 voxels for the necrotic core.
        let voxel = 2.0 / *size.iter().min().unwrap_or(&MIN_EDGE) as f64;
        let oedema = rng.random_range(0.22..0.36f64);
        let core = oedema * rng.random_range(0.38..0.55);
        let necrosis = (core * rng.random_range(0.40..0.60)).max(1.6 * voxel);
        let core = core.max(necrosis + 1.4 * voxel);
        let oedema = oedema.max(core + 1.4 * voxel);
        let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let centre = [
            side * rng.random_range(0.22..0.40),
            rng.random_range(-0.35..0.35),
            rng.random_range(-0.15..0.30),
        ];
        let shape = [
            SmoothField::new(rng, 7),
            SmoothField::new(rng, 7),
            SmoothField::new(rng, 7),
        ];
        Anatomy {
            brain_radii,
            brain_wobble,
            cortex_depth,
            cortex_wobble,
            sulci,
            ventricle,
            tumour: Tumour {
                centre,
                radii: [oedema, core, necrosis],
                shape,
            },
        }
    }

    fn tissue(&self, p: [f64; 3]) -> Tissue {
        let r = (0..3)
            .map(|a| sq(p[a] / self.brain_radii[a]))
            .sum::<f64>()
            .sqrt();
        if r > 1.0 + 0.04 * self.brain_wobble.at(p) as f64 {
            return Tissue::Background;
        }
        let t = &self.tumour;
        let d = (0..3).map(|a| sq(p[a] - t.centre[a])).sum::<f64>().sqrt();
        let inside = |k: usize, amp: f64| d < t.radii[k] * (1.0 + amp * t.shape[k].at(p) as f64);
        if inside(1, 0.22) {
            return if inside(2, 0.25) {
                Tissue::Necrosis
            } else {
                Tissue::Enhancing
            };
        }
        let normal = self.normal_tissue(p, r);
        if normal != Tissue::Csf && inside(0, 0.30) {
            return Tissue::Oedema;
        }
        normal
    }

    fn normal_tissue(&self, p: [f64; 3], r: f64) -> Tissue {
        // Interhemispheric fissure in the upper brain.
        if p[0].abs() < 0.018 && p[1].abs() > 0.30 && p[2] > -0.25 {
            return Tissue::Csf;
        }
        // Lateral ventricles: a pair of ellipsoids beside the midline.
        let v = self.ventricle;
        for side in [-1.0, 1.0] {
            let q = [
                p[0] - side * (v[0] * 0.9 + 0.02),
                p[1] + 0.03,
                p[2] - 0.12 - 0.15 * sq(p[1]),
            ];
            if sq(q[0] / v[0]) + sq(q[1] / v[1]) + sq(q[2] / v[2]) < 1.0 {
                return Tissue::Csf;
            }
            // Deep grey nuclei (basal ganglia / thalamus) lateral to the ventricles.
            let g = [p[0] - side * 0.24, p[1] + 0.02, p[2] + 0.02];
            if sq(g[0] / 0.09) + sq(g[1] / 0.20) + sq(g[2] / 0.11) < 1.0 {
                return Tissue::DeepGrey;
            }
        }
        let cortex = self.cortex_depth + 0.05 * self.cortex_wobble.at(p) as f64;
        if r > cortex {
            // Sulci: thin CSF clefts where the fine field crosses a band, more at the surface.
            let s = self.sulci.at(p);
            if s.abs() < 0.16 && r > cortex + 0.04 || r > 0.97 {
                return Tissue::Csf;
            }
            return Tissue::Grey;
        }
        Tissue::White
    }
}

/// Normalised coordinate of voxel `i` along an axis of `n` voxels.
fn norm(i: usize, n: usize) -> f64 {
    (i as f64 + 0.5) / n as f64 * 2.0 - 1.0
}

/// Identifier of phantom case `index`.
pub fn case_id(index: usize) -> String {
    format!("Phantom_{index:03}")
}

/// The largest phantom edge (voxels); BraTS volumes are 240×240×155.
const MAX_EDGE: usize = 1024;

fn validate_size(size: [usize; 3]) -> Result<()> {
    if size.iter().any(|&s| s > MAX_EDGE) {
        return Err(CoreError::invalid(
            "phantom size",
            format!(
                "{}×{}×{}: every edge must be at most {MAX_EDGE} voxels (BraTS is 240×240×155)",
                size[0], size[1], size[2]
            ),
        ));
    }
    if size.iter().any(|&s| s < MIN_EDGE) {
        return Err(CoreError::invalid(
            "phantom size",
            format!(
                "{}×{}×{}: every edge must be at least {MIN_EDGE} voxels",
                size[0], size[1], size[2]
            ),
        ));
    }
    Ok(())
}

/// Generates one phantom case from `seed`.
pub fn generate_case(id: &str, size: [usize; 3], spacing: [f64; 3], seed: u64) -> Result<Case> {
    validate_size(size)?;
    let convention = LabelConvention::Brats2019;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let grid = Grid::axis_aligned(size, spacing);
    let (nz, ny, nx) = grid.shape_zyx();
    let tissue = tissue_map(&mut rng, size, (nz, ny, nx));
    let label = tissue.mapv(|t| t.label(convention));
    // Drawn in this order after the anatomy: the phantom of a seed never changes.
    let look = Appearance {
        texture: SmoothField::new(&mut rng, 14),
        tumour_texture: SmoothField::new(&mut rng, 10),
        bias: (0..4).map(|_| SmoothField::new(&mut rng, 3)).collect(),
        noise_seed: rng.next_u64(),
    };
    let mut image = Array4::<f32>::zeros((4, nz, ny, nx));
    image
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(m, channel)| look.render(m, channel, &tissue));
    Ok(Case {
        id: id.to_string(),
        image,
        label,
        grid,
        convention,
    })
}

/// The tissue of every voxel: an anatomy drawn from `rng`, its tumour grown until the grid
/// resolves necrosis, enhancing tumour and oedema.
fn tissue_map(
    rng: &mut ChaCha8Rng,
    size: [usize; 3],
    (nz, ny, nx): (usize, usize, usize),
) -> Array3<Tissue> {
    let mut anatomy = Anatomy::draw(rng, size);
    let tissue_of = |a: &Anatomy| {
        let mut t = Array3::from_elem((nz, ny, nx), Tissue::Background);
        Zip::indexed(&mut t)
            .par_for_each(|(z, y, x), t| *t = a.tissue([norm(x, nx), norm(y, ny), norm(z, nz)]));
        t
    };
    let mut tissue = tissue_of(&anatomy);
    for _ in 0..8 {
        let present = |k: Tissue| tissue.iter().any(|&t| t == k);
        if present(Tissue::Necrosis) && present(Tissue::Enhancing) && present(Tissue::Oedema) {
            break;
        }
        anatomy.tumour.radii = anatomy.tumour.radii.map(|r| r * 1.25);
        tissue = tissue_of(&anatomy);
    }
    tissue
}

/// What a phantom's intensities are made of besides its tissue: textures, a bias field per
/// modality, and the seed of its noise.
struct Appearance {
    texture: SmoothField,
    tumour_texture: SmoothField,
    bias: Vec<SmoothField>,
    noise_seed: u64,
}

impl Appearance {
    /// Modality `m`'s intensities into `channel`: tissue intensity with texture, partial-volume
    /// blur at tissue borders (σ = 0.7 voxel), then bias field and Rician noise.
    fn render(&self, m: usize, mut channel: ArrayViewMut3<f32>, tissue: &Array3<Tissue>) {
        let (nz, ny, nx) = tissue.dim();
        let mut clean = Array3::<f32>::zeros((nz, ny, nx));
        Zip::indexed(&mut clean)
            .and(tissue)
            .for_each(|(z, y, x), v, &t| {
                if t == Tissue::Background {
                    return;
                }
                let p = [norm(x, nx), norm(y, ny), norm(z, nz)];
                let amp = if t.is_tumour() {
                    0.14 * self.tumour_texture.at(p)
                } else {
                    0.05 * self.texture.at(p)
                };
                *v = t.intensity()[m] * (1.0 + amp);
            });
        let smooth = gaussian_filter(&clean, 0.7, 0, BorderMode::Reflect, 3);
        let bias = &self.bias[m];
        channel
            .outer_iter_mut()
            .into_par_iter()
            .enumerate()
            .for_each(|(z, mut plane)| {
                let seed = derive_seed(self.noise_seed, (m * nz + z) as u64);
                let mut noise = ChaCha8Rng::seed_from_u64(seed);
                for ((y, x), v) in plane.indexed_iter_mut() {
                    if tissue[[z, y, x]] == Tissue::Background {
                        continue;
                    }
                    let p = [norm(x, nx), norm(y, ny), norm(z, nz)];
                    let gain = (0.12 * bias.at(p)).exp();
                    let s = smooth[[z, y, x]] * gain;
                    let (n1, n2): (f32, f32) = (
                        StandardNormal.sample(&mut noise),
                        StandardNormal.sample(&mut noise),
                    );
                    // Rician magnitude: |s + n1 + i n2| with σ = 2.5 % of white matter.
                    let sigma = 0.025;
                    let mag = ((s + sigma * n1).powi(2) + (sigma * n2).powi(2)).sqrt();
                    *v = (mag * 1000.0).max(1.0);
                }
            });
    }
}

/// Writes `spec.cases` cases under `out` in the official BraTS layout; returns the case folders.
pub fn write_dataset(out: &Path, spec: &PhantomSpec) -> Result<Vec<PathBuf>> {
    validate_size(spec.size)?;
    if spec.cases == 0 {
        return Err(CoreError::invalid(
            "phantom cases",
            "0; expected at least 1",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| CoreError::io(out, e))?;
    (0..spec.cases)
        .into_par_iter()
        .map(|i| {
            let id = case_id(i);
            let case = generate_case(
                &id,
                spec.size,
                spec.spacing,
                derive_seed(spec.seed, i as u64),
            )?;
            write_case(out, &case)
        })
        .collect()
}

/// Writes a case as `<out>/<id>/<id>_{flair,t1,t1ce,t2,seg}.nii.gz`; returns its folder.
pub fn write_case(out: &Path, case: &Case) -> Result<PathBuf> {
    let dir = out.join(&case.id);
    Modality::ALL.par_iter().try_for_each(|&m| {
        write_volume(
            &dir.join(format!("{}_{}.nii.gz", case.id, m.suffix())),
            case.modality(m),
            &case.grid,
        )
    })?;
    write_volume(
        &dir.join(format!("{}_seg.nii.gz", case.id)),
        case.label.view(),
        &case.grid,
    )?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_field_is_continuous_and_bounded_by_its_nodes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let f = SmoothField::new(&mut rng, 4);
        let max = f.values.iter().fold(0f32, |a, v| a.max(v.abs()));
        for i in 0..200 {
            let t = -1.0 + i as f64 / 100.0;
            let a = f.at([t, 0.1, -0.3]);
            let b = f.at([t + 1e-4, 0.1, -0.3]);
            assert!(a.abs() <= max + 1e-5);
            assert!((a - b).abs() < 1e-2);
        }
    }

    #[test]
    fn rejects_tiny_volumes() {
        let err = generate_case("x", [8, 16, 16], [1.0; 3], 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("8×16×16") && err.contains("12"), "{err}");
    }
}
