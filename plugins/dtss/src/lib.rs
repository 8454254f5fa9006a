//! Synthesizer `dtss`: Deformation Tumor Synthesis (DSMA paper §3.1). See `README.md` beside this file for
//! the map from each equation to its function and every reading of the paper's ambiguities.
//!
//! All work happens inside the lesion's bounding box grown by [`Dtss::margin`]; the only whole-volume
//! operation is the one output copy. Modalities are processed in parallel.

mod params;

use dsma_data::volume::bounding_box;
use dsma_data::{Case, Result};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{Synthesized, Synthesizer};
use ndarray::{s, Array3, Array4, ArrayView3, Axis, Zip};
use ndarray_ndimage::{binary_erosion, gaussian_filter, BorderMode};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use rayon::prelude::*;

pub use params::{AreaMode, DtssParams, FusionMask, NewLabel, RadiusDraw, ReduceMode};

/// Gaussian kernels are truncated at this many σ (as `scipy.ndimage` with `truncate=3`).
const TRUNCATE: usize = 3;

/// The `dtss` synthesizer.
#[derive(Debug, Clone)]
pub struct Dtss {
    p: DtssParams,
}

impl Plugin for Dtss {
    const NAME: &'static str = "dtss";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Deformation Tumor Synthesis: iterative deformed-monomer tumours fused into the real lesion (§3.1)";
    type Params = DtssParams;
    fn new(p: DtssParams) -> Result<Self> {
        p.validate()?;
        Ok(Dtss { p })
    }
}

dsma_plugin::register_synthesizer!(Dtss);

/// Referenced by the `dsma` binary so the linker keeps this crate and its registration.
pub fn link() {}

/// A voxel box `[lo, lo + dims)` in array order (z, y, x) (named so as not to shadow core's
/// `Region`, the WT/TC/ET evaluation regions).
#[derive(Debug, Clone, Copy)]
struct VoxelBox {
    lo: [usize; 3],
    dims: [usize; 3],
}

impl VoxelBox {
    fn slice(&self) -> ndarray::SliceInfo<[ndarray::SliceInfoElem; 3], ndarray::Ix3, ndarray::Ix3> {
        let (l, d) = (self.lo, self.dims);
        s![l[0]..l[0] + d[0], l[1]..l[1] + d[1], l[2]..l[2] + d[2]]
    }
}

/// What a monomer does where it meets the real tumour (§3.1, step 3), drawn per monomer with
/// `collision_probabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collision {
    /// The tumour stays as it is.
    Retain,
    /// Lesion texture is added on top of the tumour.
    Overlap,
    /// The tumour is reduced (`reduce_mode`: subtract texture or delete voxels).
    Reduce,
}

/// An elastically deformed ellipsoid, centred in a cube of edge `2·half + 1`.
#[derive(Debug, Clone)]
pub struct Monomer {
    /// Binary mask (z, y, x).
    pub mask: Array3<bool>,
    /// Half edge of the cube.
    pub half: usize,
}

/// Step 3's result: the prototype `t` and what eq. 3 needs, inside the work region.
struct Prototype {
    /// Voxel-wise intensity change per modality, in the sign of eq. 4 (`i' = i − t`).
    t: Array4<f32>,
    /// Union of the placed monomers (1 inside), blurred together with `t` by eq. 2.
    q: Array3<f32>,
    /// Class of each newly added voxel (0 where none).
    new_label: Array3<u8>,
    /// Voxels deleted by `reduce` in `delete` mode.
    deleted: Array3<bool>,
}

/// Everything steps 2–3 need about one case: the work region around the tumour, the tumour and
/// the deformation area inside it, the tumour's voxels (full-volume coordinates) and statistics.
struct WorkArea {
    region: VoxelBox,
    lesion: Array3<bool>,
    area: Array3<bool>,
    lesion_voxels: Vec<[usize; 3]>,
    stats: Stats,
}

/// One monomer's placement: its shape, centre (work-region coordinates), texture source voxel
/// (full-volume coordinates) and collision mode.
struct Placement {
    mono: Monomer,
    centre: [usize; 3],
    src: [usize; 3],
    mode: Collision,
}

/// Per-modality intensity statistics inside the work region.
struct Stats {
    lesion_mean: [f32; 4],
    healthy_mean: [f32; 4],
    brain_std: [f32; 4],
}

fn gaussian_radius(sigma: f64) -> usize {
    (TRUNCATE as f64 * sigma + 0.5) as usize
}

/// A uniform draw from `[lo, hi]`, or `lo` without a draw when the range is one value.
fn uniform_in<R: Rng + ?Sized>(rng: &mut R, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

impl Dtss {
    /// Parameters in use.
    pub fn params(&self) -> &DtssParams {
        &self.p
    }

    /// Voxels by which the deformation area is grown to bound every change: the largest monomer
    /// (semi-axis plus clipped displacement) and the blur kernel radius.
    pub fn margin(&self) -> usize {
        let p = &self.p;
        (p.monomer_radius[1] + 3.0 * p.deform_sigma[1]).ceil() as usize
            + 1
            + gaussian_radius(p.blur_sigma[1])
    }

    /// Eq. 1: the deformation area d = l × m inside `region`.
    pub fn deformation_area(
        &self,
        case: &Case,
        lesion: ArrayView3<bool>,
        region_lo: [usize; 3],
    ) -> Array3<bool> {
        let p = &self.p;
        let m: Array3<bool> = match p.area_mode {
            AreaMode::Intensity => {
                let channel = Case::modality(case, p.area_modality);
                let d = lesion.dim();
                let view = channel.slice(s![
                    region_lo[0]..region_lo[0] + d.0,
                    region_lo[1]..region_lo[1] + d.1,
                    region_lo[2]..region_lo[2] + d.2
                ]);
                let mut values: Vec<f32> = view
                    .iter()
                    .zip(lesion.iter())
                    .filter(|(_, &l)| l)
                    .map(|(&v, _)| v)
                    .collect();
                if values.is_empty() {
                    return lesion.to_owned();
                }
                values.sort_by(|a, b| a.total_cmp(b));
                let tau = values[((values.len() - 1) as f64 * p.area_quantile).round() as usize];
                view.mapv(|v| v >= tau)
            }
            AreaMode::Erosion => {
                let n = lesion.iter().filter(|&&l| l).count() as f64;
                let radius = (3.0 * n / (4.0 * std::f64::consts::PI)).cbrt();
                let depth = (p.area_erosion_fraction * radius).round() as usize;
                if depth == 0 {
                    Array3::from_elem(lesion.dim(), true)
                } else {
                    let kernel = Array3::from_shape_fn((3, 3, 3), |(a, b, c)| {
                        (a == 1) as u8 + (b == 1) as u8 + (c == 1) as u8 >= 2
                    });
                    binary_erosion(&lesion.to_owned(), &kernel, depth)
                }
            }
        };
        let mut d = lesion.to_owned();
        Zip::from(&mut d).and(&m).for_each(|d, &m| *d &= m);
        d
    }

    /// Step 2: one monomer, an ellipsoid with semi-axes drawn from `monomer_radius`, elastically deformed
    /// by a random displacement field on a `deform_grid`³ control grid (σ drawn from `deform_sigma`),
    /// smoothly interpolated and sampled nearest-neighbour so the mask stays binary.
    pub fn monomer<R: Rng + ?Sized>(&self, rng: &mut R) -> Monomer {
        let p = &self.p;
        let [rlo, rhi] = p.monomer_radius;
        let radii: [f64; 3] = std::array::from_fn(|_| match p.radius_draw {
            RadiusDraw::Integer if rhi.floor() > rlo.ceil() => {
                rng.random_range(rlo.ceil() as u64..=rhi.floor() as u64) as f64
            }
            RadiusDraw::Integer => rlo.ceil(),
            RadiusDraw::Continuous => uniform_in(rng, p.monomer_radius),
        });
        let sigma = uniform_in(rng, p.deform_sigma);
        let n = p.deform_grid;
        let clip = 3.0 * sigma;
        let grid: Vec<[f64; 3]> = (0..n * n * n)
            .map(|_| {
                std::array::from_fn(|_| {
                    let v: f64 = StandardNormal.sample(rng);
                    (v * sigma).clamp(-clip, clip)
                })
            })
            .collect();
        let half = (rhi + 3.0 * p.deform_sigma[1]).ceil() as usize + 1;
        let edge = 2 * half + 1;
        let smooth = |t: f64| t * t * (3.0 - 2.0 * t);
        let mask = Array3::from_shape_fn((edge, edge, edge), |(z, y, x)| {
            let pos = [z, y, x];
            // Control grid spans the cube; smoothstep-weighted trilinear interpolation of displacements.
            let mut i0 = [0usize; 3];
            let mut w = [0f64; 3];
            for a in 0..3 {
                let t = pos[a] as f64 / (edge - 1) as f64 * (n - 1) as f64;
                let i = (t.floor() as usize).min(n - 2);
                i0[a] = i;
                w[a] = smooth(t - i as f64);
            }
            let mut disp = [0f64; 3];
            for c in 0..8usize {
                let corner = [c & 1, (c >> 1) & 1, (c >> 2) & 1];
                let weight: f64 = (0..3)
                    .map(|a| if corner[a] == 1 { w[a] } else { 1.0 - w[a] })
                    .product();
                let g =
                    &grid[((i0[0] + corner[0]) * n + i0[1] + corner[1]) * n + i0[2] + corner[2]];
                for a in 0..3 {
                    disp[a] += weight * g[a];
                }
            }
            // radii are (x, y, z); array axes are (z, y, x).
            let r = [radii[2], radii[1], radii[0]];
            (0..3)
                .map(|a| {
                    let src = (pos[a] as f64 + disp[a]).round() - half as f64;
                    (src / r[a]).powi(2)
                })
                .sum::<f64>()
                <= 1.0
        });
        Monomer { mask, half }
    }

    fn stats(case: &Case, region: VoxelBox, lesion: &Array3<bool>) -> Stats {
        let mut st = Stats {
            lesion_mean: [0.0; 4],
            healthy_mean: [0.0; 4],
            brain_std: [1.0; 4],
        };
        for (m, channel) in case.image.outer_iter().enumerate().take(4) {
            let view = channel.slice(region.slice());
            let (mut ls, mut ln, mut hs, mut hn, mut bs, mut bq, mut bn) =
                (0f64, 0usize, 0f64, 0usize, 0f64, 0f64, 0usize);
            for (&v, &l) in view.iter().zip(lesion.iter()) {
                let v = v as f64;
                if l {
                    ls += v;
                    ln += 1;
                } else if v != 0.0 {
                    hs += v;
                    hn += 1;
                }
                if l || v != 0.0 {
                    bs += v;
                    bq += v * v;
                    bn += 1;
                }
            }
            st.lesion_mean[m] = (ls / ln.max(1) as f64) as f32;
            st.healthy_mean[m] = if hn > 0 { (hs / hn as f64) as f32 } else { 0.0 };
            let mean = bs / bn.max(1) as f64;
            st.brain_std[m] =
                ((bq / bn.max(1) as f64 - mean * mean).max(0.0).sqrt() as f32).max(1e-6);
        }
        st
    }

    /// Step 3: places monomers in the deformation area, fills them with lesion texture and resolves
    /// collisions with the real tumour (retain / overlap / reduce).
    fn prototype<R: Rng + ?Sized>(&self, rng: &mut R, case: &Case, work: &WorkArea) -> Prototype {
        let p = &self.p;
        let WorkArea {
            region,
            area,
            lesion_voxels,
            ..
        } = work;
        let dims = region.dims;
        let nm = case.image.dim().0.min(4);
        let mut proto = Prototype {
            t: Array4::zeros((nm, dims[0], dims[1], dims[2])),
            q: Array3::zeros((dims[0], dims[1], dims[2])),
            new_label: Array3::zeros((dims[0], dims[1], dims[2])),
            deleted: Array3::from_elem((dims[0], dims[1], dims[2]), false),
        };
        let centres: Vec<[usize; 3]> = area
            .indexed_iter()
            .filter(|(_, &a)| a)
            .map(|((z, y, x), _)| [z, y, x])
            .collect();
        if centres.is_empty() || lesion_voxels.is_empty() {
            return proto;
        }
        let iterations = rng.random_range(p.iterations[0]..=p.iterations[1]);
        let total: f64 = p.collision_probabilities.iter().sum();
        for _ in 0..iterations {
            let mono = self.monomer(rng);
            let c = centres[rng.random_range(0..centres.len())];
            let src = lesion_voxels[rng.random_range(0..lesion_voxels.len())];
            let draw = rng.random_range(0.0..total);
            let mode = if draw < p.collision_probabilities[0] {
                Collision::Retain
            } else if draw < p.collision_probabilities[0] + p.collision_probabilities[1] {
                Collision::Overlap
            } else {
                Collision::Reduce
            };
            let placement = Placement {
                mono,
                centre: c,
                src,
                mode,
            };
            self.place(&mut proto, case, work, &placement);
        }
        proto
    }

    /// Writes one monomer into the prototype: new growth takes lesion texture (and its class);
    /// inside the real tumour the collision mode decides (retain / overlap / reduce).
    fn place(&self, proto: &mut Prototype, case: &Case, work: &WorkArea, placement: &Placement) {
        let p = &self.p;
        let WorkArea {
            region,
            lesion,
            stats: st,
            ..
        } = work;
        let (mono, c) = (&placement.mono, placement.centre);
        let (src, mode) = (placement.src, placement.mode);
        let dims = region.dims;
        let nm = proto.t.dim().0;
        let full = case.label.dim();
        let full = [full.0, full.1, full.2];
        let h = mono.half as isize;
        let src_label = case.label[src];
        for ((z, y, x), &inside) in mono.mask.indexed_iter() {
            if !inside {
                continue;
            }
            let o = [z as isize - h, y as isize - h, x as isize - h];
            let v = [
                c[0] as isize + o[0],
                c[1] as isize + o[1],
                c[2] as isize + o[2],
            ];
            if (0..3).any(|a| v[a] < 0 || v[a] >= dims[a] as isize) {
                continue;
            }
            let v = [v[0] as usize, v[1] as usize, v[2] as usize];
            // Texture source: same offset around a random lesion voxel (full-volume coordinates).
            let sv = [
                src[0] as isize + o[0],
                src[1] as isize + o[1],
                src[2] as isize + o[2],
            ];
            let in_vol = (0..3).all(|a| sv[a] >= 0 && sv[a] < full[a] as isize);
            let s_idx = [
                sv[0].max(0) as usize,
                sv[1].max(0) as usize,
                sv[2].max(0) as usize,
            ];
            let s_lesion = in_vol && case.label[s_idx] != 0;
            let texture = |m: usize| {
                if s_lesion {
                    case.image[[m, s_idx[0], s_idx[1], s_idx[2]]]
                } else {
                    st.lesion_mean[m]
                }
            };
            let g = [
                v[0] + region.lo[0],
                v[1] + region.lo[1],
                v[2] + region.lo[2],
            ];
            if !lesion[v] {
                // New growth: i' = i − t = texture.
                for m in 0..nm {
                    proto.t[[m, v[0], v[1], v[2]]] = case.image[[m, g[0], g[1], g[2]]] - texture(m);
                }
                proto.q[v] = 1.0;
                proto.new_label[v] = if s_lesion {
                    case.label[s_idx]
                } else {
                    src_label
                };
                proto.deleted[v] = false;
                continue;
            }
            match mode {
                Collision::Retain => {}
                Collision::Overlap => {
                    for m in 0..nm {
                        proto.t[[m, v[0], v[1], v[2]]] -=
                            p.texture_strength as f32 * (texture(m) - st.healthy_mean[m]);
                    }
                    proto.q[v] = 1.0;
                }
                Collision::Reduce => match p.reduce_mode {
                    ReduceMode::Subtract => {
                        for m in 0..nm {
                            proto.t[[m, v[0], v[1], v[2]]] +=
                                p.texture_strength as f32 * (texture(m) - st.healthy_mean[m]);
                        }
                        proto.q[v] = 1.0;
                    }
                    ReduceMode::Delete => {
                        for m in 0..nm {
                            proto.t[[m, v[0], v[1], v[2]]] =
                                case.image[[m, g[0], g[1], g[2]]] - st.healthy_mean[m];
                        }
                        proto.q[v] = 1.0;
                        proto.deleted[v] = true;
                    }
                },
            }
        }
    }

    /// Steps 1–2: the work region (tumour bounding box plus the deformation margin), the tumour
    /// and the deformation area inside it, the tumour's voxels and the intensity statistics; `None`
    /// when the label map has no tumour.
    fn work_area(&self, case: &Case) -> Option<WorkArea> {
        let (llo, lhi) = bounding_box(case.label.view(), |&v| v != 0)?;
        let (nz, ny, nx) = case.label.dim();
        let full = [nz, ny, nx];
        let margin = self.margin();
        let lo: [usize; 3] = std::array::from_fn(|a| llo[a].saturating_sub(margin));
        let hi: [usize; 3] = std::array::from_fn(|a| (lhi[a] + margin).min(full[a]));
        let region = VoxelBox {
            lo,
            dims: std::array::from_fn(|a| hi[a] - lo[a]),
        };
        let lesion: Array3<bool> = case.label.slice(region.slice()).mapv(|v| v != 0);
        let mut area = self.deformation_area(case, lesion.view(), lo);
        if !area.iter().any(|&a| a) {
            area = lesion.clone();
        }
        let lesion_voxels: Vec<[usize; 3]> = case
            .label
            .slice(s![llo[0]..lhi[0], llo[1]..lhi[1], llo[2]..lhi[2]])
            .indexed_iter()
            .filter(|(_, &v)| v != 0)
            .map(|((z, y, x), _)| [z + llo[0], y + llo[1], x + llo[2]])
            .collect();
        let st = Self::stats(case, region, &lesion);
        Some(WorkArea {
            region,
            lesion,
            area,
            lesion_voxels,
            stats: st,
        })
    }

    fn blur(a: &Array3<f32>, sigma: f64) -> Array3<f32> {
        let r = gaussian_radius(sigma);
        if sigma <= 0.0 || a.shape().iter().any(|&n| n <= r) {
            return a.clone();
        }
        gaussian_filter(a, sigma as f32, 0, BorderMode::Reflect, TRUNCATE)
    }
}

impl Synthesizer for Dtss {
    fn synthesize(&self, case: &Case, rng: &mut ChaCha8Rng) -> Result<Synthesized> {
        self.synthesize_owned(case.clone(), rng)
    }

    /// DTSS writes into the case it is given (the copy `synthesize` makes, or the caller's own).
    fn synthesize_owned(&self, case: Case, rng: &mut ChaCha8Rng) -> Result<Synthesized> {
        let p = &self.p;
        let Some(work) = self.work_area(&case) else {
            return Ok(Synthesized {
                case,
                unchanged_reason: Some("no lesion in the label map".into()),
            });
        };
        let region = work.region;
        let proto = self.prototype(rng, &case, &work);
        let WorkArea {
            lesion, stats: st, ..
        } = work;
        let noise_seeds: Vec<u64> = (0..case.image.dim().0).map(|_| rng.next_u64()).collect();
        let sigma = uniform_in(rng, p.blur_sigma);

        // Eq. 2: T = t ⊗ g(σ), σ drawn once per case, and the same blur of the monomer union.
        let q = Self::blur(&proto.q, sigma);
        let support = q.mapv(|v| v > 1e-3);
        // Eq. 3: G_L = L + G_t, with G_t = {Q ≥ 0.5}; additions take their class, deletions become 0.
        let convention = case.convention;
        let mut out = case;
        let fallback = match p.new_label {
            NewLabel::Source | NewLabel::Oedema => convention.oedema(),
            NewLabel::Necrosis => convention.necrosis(),
            NewLabel::Enhancing => convention.enhancing(),
        };
        let grown = p.fusion_mask == FusionMask::NewLesion;
        {
            let mut labels = out.label.slice_mut(region.slice());
            Zip::from(&mut labels)
                .and(&q)
                .and(&proto.new_label)
                .and(&proto.deleted)
                .and(&lesion)
                .for_each(|l, &qv, &nl, &del, &les| {
                    if qv < 0.5 {
                        return;
                    }
                    if del {
                        *l = 0;
                    } else if !les && grown {
                        *l = match p.new_label {
                            NewLabel::Source if nl != 0 => nl,
                            _ => fallback,
                        };
                    }
                });
        }
        // Eqs. 4–5 per modality: G_t' = T + noise; l' = (i − G_t') ⊙ l; i' = i ⊙ (1 − l) + l'.
        let fusion: Array3<bool> = {
            let new = out.label.slice(region.slice());
            let mut m = lesion.clone();
            if grown {
                Zip::from(&mut m).and(&new).for_each(|m, &n| *m |= n != 0);
            }
            m
        };
        let nm = proto.t.dim().0;
        out.image
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .take(nm)
            .for_each(|(m, mut channel)| {
                let t = Self::blur(&proto.t.index_axis(Axis(0), m).to_owned(), sigma);
                let mut noise_rng = ChaCha8Rng::seed_from_u64(noise_seeds[m]);
                let normal =
                    Normal::new(0.0f32, (p.noise_std as f32 * st.brain_std[m]).max(0.0)).ok();
                let mut view = channel.slice_mut(region.slice());
                Zip::from(&mut view)
                    .and(&t)
                    .and(&support)
                    .and(&fusion)
                    .for_each(|i, &tv, &s, &l| {
                        if s && l {
                            let n = normal.map(|d| d.sample(&mut noise_rng)).unwrap_or(0.0);
                            *i -= tv + n;
                        }
                    });
            });
        Ok(Synthesized {
            case: out,
            unchanged_reason: None,
        })
    }
}
