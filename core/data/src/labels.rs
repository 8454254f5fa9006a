//! BraTS label conventions and the three evaluated regions (WT, TC, ET).

use ndarray::{Array3, Array4, ArrayView3, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// How tumour sub-regions are encoded in a label map; chosen by dataset config, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelConvention {
    /// BraTS 2017–2020: 0 background, 1 necrotic/non-enhancing core, 2 oedema, 4 enhancing tumour.
    #[serde(alias = "brats2020", alias = "brats2017", alias = "brats2018")]
    Brats2019,
    /// BraTS 2021 and later: as above but the enhancing tumour is 3.
    #[serde(alias = "brats2022", alias = "brats2023")]
    Brats2021,
}

impl LabelConvention {
    /// The label values allowed in this convention, background first.
    pub fn valid_labels(self) -> [u8; 4] {
        match self {
            LabelConvention::Brats2019 => [0, 1, 2, 4],
            LabelConvention::Brats2021 => [0, 1, 2, 3],
        }
    }

    /// Whether `value` is a label of this convention.
    pub fn is_valid(self, value: u8) -> bool {
        self.valid_labels().contains(&value)
    }

    /// Label of the necrotic / non-enhancing tumour core.
    pub fn necrosis(self) -> u8 {
        1
    }

    /// Label of the peritumoural oedema.
    pub fn oedema(self) -> u8 {
        2
    }

    /// Label of the enhancing tumour.
    pub fn enhancing(self) -> u8 {
        match self {
            LabelConvention::Brats2019 => 4,
            LabelConvention::Brats2021 => 3,
        }
    }

    /// Parses a convention name as written in configs and on the command line.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "brats2017" | "brats2018" | "brats2019" | "brats2020" => Ok(LabelConvention::Brats2019),
            "brats2021" | "brats2022" | "brats2023" => Ok(LabelConvention::Brats2021),
            other => Err(CoreError::invalid(
                "label convention",
                format!("`{other}`; expected brats2019 (labels 0,1,2,4; also BraTS 2020) or brats2021 (labels 0,1,2,3)"),
            )),
        }
    }

    /// Short name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            LabelConvention::Brats2019 => "brats2019",
            LabelConvention::Brats2021 => "brats2021",
        }
    }
}

/// A BraTS evaluation region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Region {
    /// Whole tumour: every tumour label.
    #[serde(rename = "WT")]
    Wt,
    /// Tumour core: necrosis and enhancing tumour.
    #[serde(rename = "TC")]
    Tc,
    /// Enhancing tumour.
    #[serde(rename = "ET")]
    Et,
}

impl Region {
    /// The three regions in the order of the network's output channels.
    pub const ALL: [Region; 3] = [Region::Wt, Region::Tc, Region::Et];

    /// Upper-case abbreviation as in the paper's tables.
    pub fn name(self) -> &'static str {
        match self {
            Region::Wt => "WT",
            Region::Tc => "TC",
            Region::Et => "ET",
        }
    }

    /// Whether a voxel with label `value` belongs to this region.
    pub fn contains(self, convention: LabelConvention, value: u8) -> bool {
        let et = convention.enhancing();
        match self {
            Region::Wt => value != 0,
            Region::Tc => value == 1 || value == et,
            Region::Et => value == et,
        }
    }
}

/// Binary mask of `region` in a label map.
pub fn region_mask(
    label: ArrayView3<u8>,
    region: Region,
    convention: LabelConvention,
) -> Array3<bool> {
    label.mapv(|v| region.contains(convention, v))
}

/// Region targets as float channels (WT, TC, ET) × z × y × x, the network's training target.
pub fn region_targets(label: ArrayView3<u8>, convention: LabelConvention) -> Array4<f32> {
    let (z, y, x) = label.dim();
    let mut out = Array4::<f32>::zeros((3, z, y, x));
    for (channel, region) in Region::ALL.iter().enumerate() {
        Zip::from(out.index_axis_mut(Axis(0), channel))
            .and(&label)
            .for_each(|o, &v| {
                *o = if region.contains(convention, v) {
                    1.0
                } else {
                    0.0
                }
            });
    }
    out
}

/// Label map in `convention` from per-region binary predictions (WT ⊇ TC ⊇ ET enforced by nesting).
pub fn labels_from_regions(
    wt: ArrayView3<bool>,
    tc: ArrayView3<bool>,
    et: ArrayView3<bool>,
    convention: LabelConvention,
) -> Array3<u8> {
    let mut out = Array3::<u8>::zeros(wt.dim());
    Zip::from(&mut out)
        .and(&wt)
        .and(&tc)
        .and(&et)
        .for_each(|o, &w, &t, &e| {
            *o = if e {
                convention.enhancing()
            } else if t {
                convention.necrosis()
            } else if w {
                convention.oedema()
            } else {
                0
            };
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn regions_follow_brats_2019_and_2021_conventions() {
        let c19 = LabelConvention::Brats2019;
        let c21 = LabelConvention::Brats2021;
        assert!(Region::Et.contains(c19, 4) && !Region::Et.contains(c19, 3));
        assert!(Region::Et.contains(c21, 3) && !Region::Et.contains(c21, 4));
        assert!(Region::Tc.contains(c19, 1) && !Region::Tc.contains(c19, 2));
        assert!(Region::Wt.contains(c19, 2) && !Region::Wt.contains(c19, 0));
    }

    #[test]
    fn parse_rejects_unknown_convention_with_the_choices() {
        assert_eq!(
            LabelConvention::parse("BraTS2020").ok(),
            Some(LabelConvention::Brats2019)
        );
        let err = LabelConvention::parse("kits").unwrap_err().to_string();
        assert!(err.contains("kits") && err.contains("brats2021"), "{err}");
    }

    #[test]
    fn labels_round_trip_through_region_masks() {
        let label = array![[[0u8, 1, 2, 4]]];
        let c = LabelConvention::Brats2019;
        let wt = region_mask(label.view(), Region::Wt, c);
        let tc = region_mask(label.view(), Region::Tc, c);
        let et = region_mask(label.view(), Region::Et, c);
        assert_eq!(
            labels_from_regions(wt.view(), tc.view(), et.view(), c),
            label
        );
        let t = region_targets(label.view(), c);
        assert_eq!(
            t.index_axis(Axis(0), 1).iter().copied().collect::<Vec<_>>(),
            vec![0.0, 1.0, 0.0, 1.0]
        );
    }
}
