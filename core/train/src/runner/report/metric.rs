//! The metric a table shows: the paper's Dice, or HD95, NSD and the lesion-wise numbers of runs
//! evaluated with `eval.metrics.compute: [dice, hd95, nsd, lesion]`.

use serde::Serialize;

/// The metric a table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum TableMetric {
    /// Dice (%), the paper's.
    #[default]
    Dice,
    /// HD95 (mm).
    Hd95,
    /// Normalised surface Dice (%).
    Nsd,
    /// Lesion-wise DSC (%), `sq_dsc`.
    LesionDsc,
    /// Lesion-wise panoptic quality (%), `pq_dsc`.
    LesionPq,
    /// Lesion-wise HD95 (mm), `sq_hd95`.
    LesionHd95,
    /// Lesion-wise NSD (%), `sq_nsd`.
    LesionNsd,
}

impl TableMetric {
    /// Parses `dice`, `hd95`, `nsd`, `lesion-dsc`, `lesion-pq`, `lesion-hd95` or `lesion-nsd`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "dice" => TableMetric::Dice,
            "hd95" => TableMetric::Hd95,
            "nsd" => TableMetric::Nsd,
            "lesion-dsc" => TableMetric::LesionDsc,
            "lesion-pq" => TableMetric::LesionPq,
            "lesion-hd95" => TableMetric::LesionHd95,
            "lesion-nsd" => TableMetric::LesionNsd,
            _ => return None,
        })
    }

    /// The name, as in "per-case AVE Dice".
    pub fn name(self) -> &'static str {
        match self {
            TableMetric::Dice => "Dice",
            TableMetric::Hd95 => "HD95",
            TableMetric::Nsd => "NSD",
            TableMetric::LesionDsc => "lesion-wise DSC",
            TableMetric::LesionPq => "lesion-wise PQ",
            TableMetric::LesionHd95 => "lesion-wise HD95",
            TableMetric::LesionNsd => "lesion-wise NSD",
        }
    }

    /// The caption: name and unit.
    pub fn caption(self) -> &'static str {
        match self {
            TableMetric::Dice => "DSC (%)",
            TableMetric::Hd95 => "HD95 (mm)",
            TableMetric::Nsd => "NSD (%)",
            TableMetric::LesionDsc => "lesion-wise DSC (%)",
            TableMetric::LesionPq => "lesion-wise PQ (%)",
            TableMetric::LesionHd95 => "lesion-wise HD95 (mm)",
            TableMetric::LesionNsd => "lesion-wise NSD (%)",
        }
    }

    pub(crate) fn scale(self) -> f64 {
        match self {
            TableMetric::Hd95 | TableMetric::LesionHd95 => 1.0,
            _ => 100.0,
        }
    }

    /// The value for region `k` (WT, TC, ET, AVE) of `m`; lesion-wise AVE is the mean of the
    /// regions that have a value; NaN where the run was evaluated without the metric.
    pub(crate) fn of(self, m: &dsma_data::metrics::CaseMetrics, k: usize) -> f64 {
        let regions = [m.WT, m.TC, m.ET, m.AVE];
        let lesion = |f: fn(&dsma_data::lesion::LesionMetrics) -> f64| {
            if k == 3 {
                // As the Dice AVE: the mean of the regions that have a value (∞ kept).
                dsma_data::metrics::mean_skipping_nan(
                    regions[..3].iter().filter_map(|r| r.lesion.as_ref().map(f)),
                )
            } else {
                regions[k].lesion.as_ref().map_or(f64::NAN, f)
            }
        };
        match self {
            TableMetric::Dice => regions[k].dice,
            TableMetric::Hd95 => regions[k].hd95,
            TableMetric::Nsd => regions[k].nsd.unwrap_or(f64::NAN),
            TableMetric::LesionDsc => lesion(|l| l.sq_dsc),
            TableMetric::LesionPq => lesion(|l| l.pq_dsc),
            TableMetric::LesionHd95 => lesion(|l| l.sq_hd95),
            TableMetric::LesionNsd => lesion(|l| l.sq_nsd),
        }
    }
}
