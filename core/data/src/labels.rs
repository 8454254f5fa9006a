//! BraTS label conventions and the three evaluated regions (WT, TC, ET).

use ndarray::{Array3, Array4, ArrayView3, Axis, Zip};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// How tumour sub-regions are encoded in a label map, by release; declared by the dataset config
/// or `--labels`, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelConvention {
    /// BraTS 2017–2022 as released (2021/2022 included: the RSNA-ASNR-MICCAI data keeps label 4):
    /// 0 background, 1 necrotic / non-enhancing core, 2 oedema, 4 enhancing tumour.
    #[serde(
        alias = "brats2017",
        alias = "brats2018",
        alias = "brats2020",
        alias = "brats2021",
        alias = "brats2022"
    )]
    Brats2019,
    /// BraTS 2023 adult glioma (`BraTS-GLI-*`): 1 non-enhancing core, 2 oedema, 3 enhancing tumour.
    Brats2023,
    /// Medical Segmentation Decathlon `Task01_BrainTumour`, per its `dataset.json`: 1 oedema,
    /// 2 non-enhancing tumour, 3 enhancing tumour (WT = {1,2,3}, TC = {2,3}, ET = {3}).
    Msd,
}

impl LabelConvention {
    /// The label values allowed in this convention, background first.
    pub fn valid_labels(self) -> [u8; 4] {
        match self {
            LabelConvention::Brats2019 => [0, 1, 2, 4],
            LabelConvention::Brats2023 | LabelConvention::Msd => [0, 1, 2, 3],
        }
    }

    /// Whether `value` is a label of this convention.
    pub fn is_valid(self, value: u8) -> bool {
        self.valid_labels().contains(&value)
    }

    /// Label of the necrotic / non-enhancing tumour core.
    pub fn necrosis(self) -> u8 {
        match self {
            LabelConvention::Brats2019 | LabelConvention::Brats2023 => 1,
            LabelConvention::Msd => 2,
        }
    }

    /// Label of the peritumoural oedema.
    pub fn oedema(self) -> u8 {
        match self {
            LabelConvention::Brats2019 | LabelConvention::Brats2023 => 2,
            LabelConvention::Msd => 1,
        }
    }

    /// Label of the enhancing tumour.
    pub fn enhancing(self) -> u8 {
        match self {
            LabelConvention::Brats2019 => 4,
            LabelConvention::Brats2023 | LabelConvention::Msd => 3,
        }
    }

    /// Parses a convention name as written in configs and on the command line. Releases whose
    /// labels mean something else (BraTS 2024 post-treatment glioma with its resection cavity,
    /// the paediatric, meningioma, metastasis and sub-Saharan cohorts) are refused by name.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "brats2017" | "brats2018" | "brats2019" | "brats2020" | "brats2021" | "brats2022" => {
                Ok(LabelConvention::Brats2019)
            }
            "brats2023" | "brats2023_gli" | "brats-gli" => Ok(LabelConvention::Brats2023),
            "msd" | "msd_task01" | "task01" => Ok(LabelConvention::Msd),
            other if other.starts_with("brats2024") || other.starts_with("brats2025") => {
                Err(CoreError::invalid(
                    "label convention",
                    format!("`{name}` is not supported: BraTS 2024+ post-treatment glioma adds label 4 (resection cavity), which WT/TC/ET do not cover; declare brats2023 only for the 2023 adult glioma release"),
                ))
            }
            other if ["ped", "men", "met", "ssa", "goat"].iter().any(|c| other.contains(c)) => {
                Err(CoreError::invalid(
                    "label convention",
                    format!("`{name}` is not supported: the paediatric, meningioma, metastasis and sub-Saharan BraTS cohorts are labelled differently from the adult glioma releases"),
                ))
            }
            _ => Err(CoreError::invalid(
                "label convention",
                format!("`{name}`; expected brats2019 (labels 0,1,2,4: BraTS 2017–2022, aliases brats2017…brats2022), brats2023 (0,1,2,3: BraTS 2023 adult glioma) or msd (0,1,2,3 with 1 = oedema: Decathlon Task01)"),
            )),
        }
    }

    /// Short name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            LabelConvention::Brats2019 => "brats2019",
            LabelConvention::Brats2023 => "brats2023",
            LabelConvention::Msd => "msd",
        }
    }

    /// For labels outside this convention, the convention that would fit them, said as advice.
    pub fn hint_for(self, invalid: &[u8]) -> Option<&'static str> {
        match self {
            LabelConvention::Brats2019 if invalid.iter().all(|&v| v == 3) => Some(
                "label 3 is enhancing tumour in brats2023 (BraTS 2023 adult glioma) and msd (Decathlon Task01); declare the release the data comes from",
            ),
            LabelConvention::Brats2023 | LabelConvention::Msd
                if invalid.iter().all(|&v| v == 4) =>
            {
                Some("label 4 is enhancing tumour in brats2019 (BraTS 2017–2022, 2021 included); declare labels: brats2019")
            }
            _ => None,
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
            Region::Tc => value == convention.necrosis() || value == et,
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

/// The error for a label map holding values outside `convention` (naming the file, the values
/// and the convention that would fit), if it does.
pub(crate) fn label_problem(
    id: &str,
    seg: &std::path::Path,
    label: &ndarray::Array3<u8>,
    convention: LabelConvention,
) -> Option<CoreError> {
    let mut seen = [false; 256];
    label.iter().for_each(|&v| seen[v as usize] = true);
    let invalid: Vec<u8> = (0..=255u8)
        .filter(|&v| seen[v as usize] && !convention.is_valid(v))
        .collect();
    (!invalid.is_empty()).then(|| {
        let hint = convention
            .hint_for(&invalid)
            .map(|h| format!("; {h}"))
            .unwrap_or_default();
        CoreError::Dataset {
            case: id.to_string(),
            file: seg.to_path_buf(),
            problem: format!(
                "label values {invalid:?} are outside the {} convention {:?}{hint}",
                convention.name(),
                convention.valid_labels()
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn regions_follow_each_release_by_hand() {
        // Hand table: label → (WT, TC, ET) per convention.
        type Rows = [(u8, [bool; 3]); 4];
        let table: [(LabelConvention, Rows); 3] = [
            (
                LabelConvention::Brats2019,
                [
                    (1, [true, true, false]),
                    (2, [true, false, false]),
                    (4, [true, true, true]),
                    (0, [false; 3]),
                ],
            ),
            (
                LabelConvention::Brats2023,
                [
                    (1, [true, true, false]),
                    (2, [true, false, false]),
                    (3, [true, true, true]),
                    (0, [false; 3]),
                ],
            ),
            (
                LabelConvention::Msd,
                [
                    (1, [true, false, false]),
                    (2, [true, true, false]),
                    (3, [true, true, true]),
                    (0, [false; 3]),
                ],
            ),
        ];
        for (c, rows) in table {
            for (label, want) in rows {
                let got = Region::ALL.map(|r| r.contains(c, label));
                assert_eq!(got, want, "{} label {label}", c.name());
            }
        }
        assert!(!Region::Et.contains(LabelConvention::Brats2019, 3));
        assert!(!Region::Et.contains(LabelConvention::Brats2023, 4));
    }

    #[test]
    fn parse_rejects_unknown_convention_with_the_choices() {
        for (name, want) in [
            ("BraTS2020", LabelConvention::Brats2019),
            ("brats2021", LabelConvention::Brats2019),
            ("brats2022", LabelConvention::Brats2019),
            ("brats2023", LabelConvention::Brats2023),
            ("msd", LabelConvention::Msd),
        ] {
            assert_eq!(LabelConvention::parse(name).ok(), Some(want), "{name}");
        }
        let err = LabelConvention::parse("kits").unwrap_err().to_string();
        assert!(
            err.contains("kits") && err.contains("brats2023") && err.contains("msd"),
            "{err}"
        );
        for refused in ["brats2024", "brats-ped", "brats2023_men"] {
            let err = LabelConvention::parse(refused).unwrap_err().to_string();
            assert!(err.contains("not supported"), "{refused}: {err}");
        }
    }

    #[test]
    fn a_wrong_declaration_gets_the_fitting_convention_as_advice() {
        let hint = LabelConvention::Brats2019
            .hint_for(&[3])
            .unwrap_or_default();
        assert!(hint.contains("brats2023") && hint.contains("msd"), "{hint}");
        let hint = LabelConvention::Brats2023
            .hint_for(&[4])
            .unwrap_or_default();
        assert!(hint.contains("brats2019"), "{hint}");
        assert_eq!(LabelConvention::Brats2019.hint_for(&[7]), None);
    }

    #[test]
    fn labels_round_trip_through_region_masks() {
        // (convention, label map, hand-written TC channel)
        for (c, label, tc_want) in [
            (
                LabelConvention::Brats2019,
                array![[[0u8, 1, 2, 4]]],
                [0.0, 1.0, 0.0, 1.0],
            ),
            (
                LabelConvention::Brats2023,
                array![[[0u8, 1, 2, 3]]],
                [0.0, 1.0, 0.0, 1.0],
            ),
            (
                LabelConvention::Msd,
                array![[[0u8, 1, 2, 3]]],
                [0.0, 0.0, 1.0, 1.0],
            ),
        ] {
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
                tc_want.to_vec()
            );
        }
    }
}
