//! Deliberately wrong synthetic cases, for studies of what a sample weighter sees: a known share of
//! a stage-2 set is corrupted after synthesis (`train.synthesis.corrupt`) and marked in its case id,
//! so `weights.csv` tells which samples were bad. A study option, not a method: no paper row uses it.

use ndarray::{s, Array3, Array4};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::volume::Case;

/// What goes in a corrupted case's id after the real case's: `<id>~corrupted-<kind>`.
pub const MARK: &str = "~corrupted-";

/// How a synthetic case is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptionKind {
    /// Every tumour label set to background; the image keeps its tumour.
    EraseTumour,
    /// Labels rolled by half the volume along y and x, so they lie beside the tumour.
    ShiftLabels,
    /// The image replaced by another real training case's (labels kept), overlapping corner first.
    SwapIntensities,
}

impl CorruptionKind {
    /// The name used in YAML and in case ids.
    pub fn name(self) -> &'static str {
        match self {
            CorruptionKind::EraseTumour => "erase_tumour",
            CorruptionKind::ShiftLabels => "shift_labels",
            CorruptionKind::SwapIntensities => "swap_intensities",
        }
    }
}

/// `train.synthesis.corrupt`: which share of each synthetic set is corrupted, and how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corruption {
    /// Share of the set corrupted: exactly `round(fraction · n)` samples, chosen by a seeded shuffle.
    pub fraction: f64,
    /// How.
    pub kind: CorruptionKind,
}

impl Corruption {
    /// Checks `fraction` ∈ (0, 1).
    pub fn validate(&self) -> Result<()> {
        if !(self.fraction > 0.0 && self.fraction < 1.0) {
            return Err(CoreError::invalid(
                "train.synthesis.corrupt.fraction",
                format!("{}; expected a share in (0, 1)", self.fraction),
            ));
        }
        Ok(())
    }

    /// For each of `n` samples, whether it is corrupted: `round(fraction · n)` of them, chosen by
    /// a shuffle seeded with `seed`.
    pub fn chosen(&self, n: usize, seed: u64) -> Vec<bool> {
        let k = (self.fraction * n as f64).round() as usize;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut out = vec![false; n];
        for &i in order.iter().take(k) {
            out[i] = true;
        }
        out
    }

    /// Spoils `case` in place and marks its id; `other` is another real case, read only by
    /// [`CorruptionKind::SwapIntensities`].
    pub fn apply(&self, case: &mut Case, other: Option<&Case>) -> Result<()> {
        match self.kind {
            CorruptionKind::EraseTumour => case.label.fill(0),
            CorruptionKind::ShiftLabels => case.label = shifted(&case.label),
            CorruptionKind::SwapIntensities => {
                let other = other.ok_or_else(|| {
                    CoreError::invalid(
                        "train.synthesis.corrupt.kind",
                        "swap_intensities needs at least two training cases".to_string(),
                    )
                })?;
                case.image = transplanted(&other.image, case.image.dim());
            }
        }
        case.id = format!("{}{MARK}{}", case.id, self.kind.name());
        Ok(())
    }
}

/// Whether a case id (a `weights.csv` source) marks a corrupted sample.
pub fn is_corrupted(id: &str) -> bool {
    id.contains(MARK)
}

/// The ROC AUC of telling clean samples from corrupted ones by a score where clean should be
/// higher (a MAS weight): the share of (clean, corrupted) pairs ordered right, ties counting ½
/// (the Mann–Whitney U over the number of pairs); `None` when either group is empty.
pub fn separation_auc(clean: &[f64], corrupted: &[f64]) -> Option<f64> {
    if clean.is_empty() || corrupted.is_empty() {
        return None;
    }
    let mut u = 0.0;
    for a in clean {
        for b in corrupted {
            u += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(u / (clean.len() * corrupted.len()) as f64)
}

/// `label` rolled by half its extent along y and x (cyclically).
fn shifted(label: &Array3<u8>) -> Array3<u8> {
    let (d, h, w) = label.dim();
    let mut out = Array3::zeros((d, h, w));
    for ((z, y, x), v) in label.indexed_iter() {
        out[[z, (y + h / 2) % h, (x + w / 2) % w]] = *v;
    }
    out
}

/// `source`'s intensities on a `dim`-shaped image: the overlapping corner copied, the rest 0 (the
/// z-scored background).
fn transplanted(source: &Array4<f32>, dim: (usize, usize, usize, usize)) -> Array4<f32> {
    let mut out = Array4::zeros(dim);
    let (c, d, h, w) = source.dim();
    let (c, d, h, w) = (c.min(dim.0), d.min(dim.1), h.min(dim.2), w.min(dim.3));
    out.slice_mut(s![..c, ..d, ..h, ..w])
        .assign(&source.slice(s![..c, ..d, ..h, ..w]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelConvention;
    use crate::volume::Grid;

    fn case(id: &str, fill: f32) -> Case {
        let mut label = Array3::zeros((2, 4, 6));
        label[[1, 0, 1]] = 2;
        label[[0, 3, 5]] = 4;
        Case {
            id: id.into(),
            image: Array4::from_elem((4, 2, 4, 6), fill),
            label,
            grid: Grid::axis_aligned([6, 4, 2], [1.0; 3]),
            convention: LabelConvention::Brats2019,
        }
    }

    #[test]
    fn chosen_marks_exactly_the_rounded_share_and_depends_on_the_seed() {
        let c = Corruption {
            fraction: 0.25,
            kind: CorruptionKind::EraseTumour,
        };
        for n in [1, 4, 10, 13] {
            let k = c.chosen(n, 7).iter().filter(|b| **b).count();
            // round(0.25 n): 0, 1, 3 (2.5 rounds away from zero), 3.
            let expected = match n {
                1 => 0,
                4 => 1,
                10 => 3,
                _ => 3,
            };
            assert_eq!(k, expected, "n = {n}");
        }
        assert_eq!(c.chosen(40, 7), c.chosen(40, 7));
        assert_ne!(c.chosen(40, 7), c.chosen(40, 8));
    }

    #[test]
    fn each_kind_spoils_what_it_names_and_marks_the_id() {
        let erase = Corruption {
            fraction: 0.5,
            kind: CorruptionKind::EraseTumour,
        };
        let mut a = case("A", 1.0);
        erase.apply(&mut a, None).unwrap();
        assert!(a.label.iter().all(|v| *v == 0));
        assert_eq!(a.id, "A~corrupted-erase_tumour");
        assert!(is_corrupted(&a.id) && !is_corrupted("A"));

        let shift = Corruption {
            kind: CorruptionKind::ShiftLabels,
            ..erase
        };
        let mut b = case("B", 1.0);
        shift.apply(&mut b, None).unwrap();
        // (1, 0, 1) → (1, 2, 4); (0, 3, 5) → (0, 1, 2): h = 4, w = 6, shifts 2 and 3.
        assert_eq!(b.label[[1, 2, 4]], 2);
        assert_eq!(b.label[[0, 1, 2]], 4);
        assert_eq!(b.label.iter().filter(|v| **v != 0).count(), 2);

        let swap = Corruption {
            kind: CorruptionKind::SwapIntensities,
            ..erase
        };
        let mut c = case("C", 1.0);
        assert!(swap.apply(&mut c.clone(), None).is_err());
        let mut other = case("D", 5.0);
        other.image = Array4::from_elem((4, 1, 4, 6), 5.0);
        swap.apply(&mut c, Some(&other)).unwrap();
        assert_eq!(c.image.dim(), (4, 2, 4, 6));
        assert!(c.image.slice(s![.., 0, .., ..]).iter().all(|v| *v == 5.0));
        assert!(c.image.slice(s![.., 1, .., ..]).iter().all(|v| *v == 0.0));
        assert_eq!(c.label[[1, 0, 1]], 2, "labels kept");
    }

    #[test]
    fn auc_counts_ordered_pairs_with_ties_as_halves() {
        // Pairs (clean, corrupted): (1, 0) > , (1, 1) tie, (0.5, 0) >, (0.5, 1) <: (1 + ½ + 1 + 0) / 4.
        assert_eq!(separation_auc(&[1.0, 0.5], &[0.0, 1.0]), Some(0.625));
        assert_eq!(separation_auc(&[1.0], &[0.0, 0.0]), Some(1.0));
        assert_eq!(separation_auc(&[0.0], &[1.0]), Some(0.0));
        assert_eq!(separation_auc(&[], &[1.0]), None);
    }

    #[test]
    fn fractions_outside_the_open_unit_interval_are_refused() {
        for f in [0.0, 1.0, -0.1, f64::NAN] {
            let c = Corruption {
                fraction: f,
                kind: CorruptionKind::EraseTumour,
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("train.synthesis.corrupt.fraction"), "{e}");
        }
    }
}
