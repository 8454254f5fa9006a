//! DTSS parameters; defaults are the paper's values (§4.2) or, where it gives none, documented choices.

use dsma_data::{CoreError, Modality, Result};
use dsma_plugin::{ParamDoc, PluginParams};
use serde::{Deserialize, Serialize};

/// How the threshold mask `m` of eq. 1 is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaMode {
    /// `m = I ≥ τ`, τ the `area_quantile` of `area_modality` inside the lesion (default).
    Intensity,
    /// `m` = lesion eroded by `area_erosion_fraction` × its equivalent-sphere radius.
    Erosion,
}

/// What "reduce" does to a collision region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReduceMode {
    /// Subtract the monomer texture voxel-wise; labels unchanged (default).
    Subtract,
    /// Delete tumour voxel-wise: intensities become healthy tissue, labels become background.
    Delete,
}

/// Which lesion mask `l` eqs. 4–5 use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FusionMask {
    /// Union of the real lesion and the deformation tumour, so image and labels change together (default).
    NewLesion,
    /// The annotated lesion only; the deformation tumour is then clipped to it and labels never grow.
    OriginalLesion,
}

/// Class given to voxels the deformation tumour adds outside the real lesion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewLabel {
    /// The label of the lesion voxel the texture was copied from (default).
    Source,
    /// Oedema (2).
    Oedema,
    /// Necrosis / non-enhancing core (1).
    Necrosis,
    /// Enhancing tumour (4, or 3 in BraTS 2021+).
    Enhancing,
}

/// How monomer semi-axes are drawn from `monomer_radius`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RadiusDraw {
    /// Whole voxels, uniform over the integers in the range, as SyntheticTumors'
    /// `random.randint(3, 5)` that §4.2's r ∈ [3, 5] comes from (default).
    Integer,
    /// Uniform over the real interval.
    Continuous,
}

/// A `[low, high]` range that YAML may also give as one number (`1.5` means `[1.5, 1.5]`).
fn scalar_or_range<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<[f64; 2], D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrTwo {
        One(f64),
        Two([f64; 2]),
    }
    Ok(match OneOrTwo::deserialize(d)? {
        OneOrTwo::One(v) => [v, v],
        OneOrTwo::Two(r) => r,
    })
}

/// Parameters of `dtss`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DtssParams {
    /// Eq. 1: how `m` is built.
    pub area_mode: AreaMode,
    /// Eq. 1 (intensity mode): modality the threshold is taken on.
    pub area_modality: Modality,
    /// Eq. 1 (intensity mode): quantile of the lesion's intensities used as threshold.
    pub area_quantile: f64,
    /// Eq. 1 (erosion mode): erosion depth as a fraction of the lesion's equivalent-sphere radius.
    pub area_erosion_fraction: f64,
    /// §4.2: monomer semi-axis range r ∈ [r_min, r_max], voxels.
    pub monomer_radius: [f64; 2],
    /// Whole-voxel (default) or real-valued semi-axes.
    pub radius_draw: RadiusDraw,
    /// §4.2: iteration count range (inclusive).
    pub iterations: [usize; 2],
    /// Elastic deformation: σ range (voxels) of the control-point displacements.
    pub deform_sigma: [f64; 2],
    /// Elastic deformation: control points per axis.
    pub deform_grid: usize,
    /// Collision handling probabilities: retain, overlap, reduce.
    pub collision_probabilities: [f64; 3],
    /// Overlap/subtract: fraction of the texture's contrast to healthy tissue (texture − healthy mean) added or subtracted.
    pub texture_strength: f64,
    /// What "reduce" does.
    pub reduce_mode: ReduceMode,
    /// Eq. 2: range of σ (voxels) of the Gaussian blur of the prototype, drawn once per case.
    #[serde(deserialize_with = "scalar_or_range")]
    pub blur_sigma: [f64; 2],
    /// Eq. 4: std of the Gaussian noise added to G_t, as a fraction of the brain's intensity std.
    pub noise_std: f64,
    /// Eqs. 4–5: which lesion mask `l` is.
    pub fusion_mask: FusionMask,
    /// Eq. 3: class of new tumour voxels.
    pub new_label: NewLabel,
}

impl Default for DtssParams {
    fn default() -> Self {
        DtssParams {
            area_mode: AreaMode::Intensity,
            area_modality: Modality::Flair,
            area_quantile: 0.25,
            area_erosion_fraction: 0.25,
            monomer_radius: [3.0, 5.0],
            radius_draw: RadiusDraw::Integer,
            iterations: [3, 10],
            deform_sigma: [0.5, 1.0],
            deform_grid: 3,
            collision_probabilities: [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
            texture_strength: 0.5,
            reduce_mode: ReduceMode::Subtract,
            blur_sigma: [1.0, 2.0],
            noise_std: 0.05,
            fusion_mask: FusionMask::NewLesion,
            new_label: NewLabel::Source,
        }
    }
}

impl PluginParams for DtssParams {
    fn docs() -> Vec<ParamDoc> {
        let d = |name, doc| ParamDoc { name, doc };
        vec![
            d("area_mode", "eq. 1: `intensity` (m = I ≥ lesion quantile) or `erosion` (lesion eroded in proportion to its size)"),
            d("area_modality", "eq. 1: modality of the intensity threshold (flair, t1, t1ce, t2)"),
            d("area_quantile", "eq. 1: quantile of lesion intensities used as threshold τ"),
            d("area_erosion_fraction", "eq. 1: erosion depth / equivalent-sphere radius (erosion mode)"),
            d("monomer_radius", "§4.2: semi-axis range [r_min, r_max] in voxels, drawn per axis"),
            d("radius_draw", "`integer` (whole voxels, as SyntheticTumors' randint) or `continuous`"),
            d("iterations", "§4.2: range of the number of monomers per case (inclusive)"),
            d("deform_sigma", "elastic deformation: range of the control-point displacement σ (voxels; SyntheticTumors' [0.5, 1])"),
            d("deform_grid", "elastic deformation: control points per axis (elasticdeform uses 3)"),
            d("collision_probabilities", "probabilities of retain / overlap / reduce in a collision"),
            d("texture_strength", "fraction of the texture's contrast to healthy tissue added (overlap) or subtracted (reduce)"),
            d("reduce_mode", "`subtract` (labels kept) or `delete` (tissue becomes healthy, labels 0)"),
            d("blur_sigma", "eq. 2: range of σ of the Gaussian blur of t, drawn per case (voxels; SyntheticTumors' [1, 2]); one number fixes it"),
            d("noise_std", "eq. 4: noise std added to G_t, relative to the brain's intensity std"),
            d("fusion_mask", "eqs. 4–5: `new_lesion` (L ∪ G_t) or `original_lesion` (L only)"),
            d("new_label", "eq. 3: class of added voxels: source, oedema, necrosis, enhancing"),
        ]
    }
}

fn range<T: PartialOrd + std::fmt::Debug>(field: &str, r: &[T; 2], min: T) -> Result<()> {
    if r[0] < min || r[1] < r[0] {
        return Err(CoreError::param(
            "dtss",
            field,
            format!("{r:?}; expected [low, high] with {min:?} ≤ low ≤ high"),
        ));
    }
    Ok(())
}

fn unit(field: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if !(lo..=hi).contains(&v) {
        return Err(CoreError::param(
            "dtss",
            field,
            format!("{v}; expected a value in [{lo}, {hi}]"),
        ));
    }
    Ok(())
}

impl DtssParams {
    /// Checks every range; errors name the field.
    pub fn validate(&self) -> Result<()> {
        range("monomer_radius", &self.monomer_radius, 0.5)?;
        range("iterations", &self.iterations, 1)?;
        range("deform_sigma", &self.deform_sigma, 0.0)?;
        range("blur_sigma", &self.blur_sigma, 0.0)?;
        unit("blur_sigma", self.blur_sigma[1], 0.0, 10.0)?;
        let [lo, hi] = self.monomer_radius;
        if self.radius_draw == RadiusDraw::Integer && lo.ceil() > hi.floor() {
            return Err(CoreError::param(
                "dtss",
                "monomer_radius",
                format!(
                    "{:?}; radius_draw: integer needs a whole number in the range",
                    self.monomer_radius
                ),
            ));
        }
        unit("area_quantile", self.area_quantile, 0.0, 1.0)?;
        unit(
            "area_erosion_fraction",
            self.area_erosion_fraction,
            0.0,
            1.0,
        )?;
        unit("texture_strength", self.texture_strength, 0.0, 10.0)?;
        unit("noise_std", self.noise_std, 0.0, 10.0)?;
        if self.deform_grid < 2 {
            return Err(CoreError::param(
                "dtss",
                "deform_grid",
                format!("{}; expected ≥ 2", self.deform_grid),
            ));
        }
        let p = self.collision_probabilities;
        if p.iter().any(|v| *v < 0.0 || !v.is_finite()) || p.iter().sum::<f64>() <= 0.0 {
            return Err(CoreError::param(
                "dtss",
                "collision_probabilities",
                format!("{p:?}; expected three non-negative weights, not all 0"),
            ));
        }
        Ok(())
    }
}
