//! The metric values of one region and of one case.

use serde::{Deserialize, Serialize};

use crate::labels::Region;
use crate::lesion::LesionMetrics;

/// Dice and HD95 of one region, and NSD and lesion-wise metrics when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegionMetrics {
    /// Dice in [0, 1] (NaN when undefined; `null` in JSON).
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub dice: f64,
    /// HD95 in mm (NaN when undefined; `null` in JSON).
    #[serde(deserialize_with = "crate::json_nan::nan_if_null")]
    pub hd95: f64,
    /// Normalised surface Dice in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsd: Option<f64>,
    /// Lesion-wise metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesion: Option<LesionMetrics>,
}

impl RegionMetrics {
    /// Dice and HD95 only.
    pub fn new(dice: f64, hd95: f64) -> Self {
        RegionMetrics {
            dice,
            hd95,
            nsd: None,
            lesion: None,
        }
    }
}

/// Metrics of one case: WT, TC, ET and their mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct CaseMetrics {
    /// Whole tumour.
    pub WT: RegionMetrics,
    /// Tumour core.
    pub TC: RegionMetrics,
    /// Enhancing tumour.
    pub ET: RegionMetrics,
    /// Mean of the three (NaN entries skipped).
    pub AVE: RegionMetrics,
}

impl CaseMetrics {
    /// The metrics of `region`.
    pub fn region(&self, r: Region) -> RegionMetrics {
        match r {
            Region::Wt => self.WT,
            Region::Tc => self.TC,
            Region::Et => self.ET,
        }
    }
}
