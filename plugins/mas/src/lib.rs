//! Sample weighter `mas`: Model-Data Adaptive Supervision (DSMA paper §3.2).
//!
//! After stage-2 epoch k the runner scores every real training case (L'_j) and every synthetic case
//! (L_k^j). MAS sets η_k = mean of the real scores (eq. 7), θ_k = (max − min)/2 + c over the real
//! scores (eq. 8), and gives synthetic case j the weight w_k^j of eq. 6: 1 on the plateau
//! [η − θ, η + θ], the downward parabola of eq. 13 with zeros q1 = η − θ − β and q2 = η + θ + β on
//! either side of it, and 0 beyond q1 and q2.
//!
//! Choices where the paper is silent (see `README.md`):
//! - **β** (not given in the paper) defaults to 0.1: full weight within θ of the real-data mean, tapering
//!   to 0 over a further 10 Dice points. It is the `beta` parameter.
//! - **Points eq. 6 leaves uncovered.** Eq. 6 leaves L out of every branch when q1 < 0 and L ∈ [0, max(0, q1)]
//!   (e.g. L = 0), and symmetrically when q2 > 1. We use the parabola there, clamped to [0, 1], which is
//!   the continuous extension; the resulting w is continuous on all of [0, 1] and symmetric about η.
//! - **Score.** L is a case's Dice averaged over WT/TC/ET by default (`score: mean`), or one region.

mod figure;

use dsma_data::{CoreError, Result};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{EpochScores, ParamDoc, PluginParams, SampleWeighter, ScoreKind};
use serde::{Deserialize, Serialize};

pub use figure::{plot_history, plot_weight_function};

/// Parameters of `mas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasParams {
    /// Taper width β of eqs. 6/10–13 (the paper gives no value).
    pub beta: f64,
    /// Constant c of eq. 8 (§4.2: 0.00002).
    pub c: f64,
    /// Which Dice is the score L.
    pub score: ScoreKind,
}

impl Default for MasParams {
    fn default() -> Self {
        MasParams {
            beta: 0.1,
            c: 0.00002,
            score: ScoreKind::Mean,
        }
    }
}

impl PluginParams for MasParams {
    fn docs() -> Vec<ParamDoc> {
        vec![
            ParamDoc {
                name: "beta",
                doc: "β of eqs. 6/13: width of the taper from weight 1 to 0 (paper: unspecified)",
            },
            ParamDoc {
                name: "c",
                doc: "c of eq. 8: added to the half range of real scores (§4.2: 0.00002)",
            },
            ParamDoc {
                name: "score",
                doc: "score L: mean (of WT/TC/ET Dice), WT, TC or ET",
            },
        ]
    }
}

/// η_k of eq. 7: the mean score on the real training cases.
pub fn eta(real: &[f64]) -> f64 {
    real.iter().sum::<f64>() / real.len().max(1) as f64
}

/// θ_k of eq. 8: half the range of the real scores plus `c`.
pub fn theta(real: &[f64], c: f64) -> f64 {
    let max = real.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = real.iter().copied().fold(f64::INFINITY, f64::min);
    if real.is_empty() {
        c
    } else {
        (max - min) / 2.0 + c
    }
}

/// The weight function of one epoch (eq. 6 with the parabola of eq. 13).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightFunction {
    /// η_k.
    pub eta: f64,
    /// θ_k.
    pub theta: f64,
    /// β.
    pub beta: f64,
}

impl WeightFunction {
    /// u1 = η − θ (start of the plateau).
    pub fn u1(&self) -> f64 {
        self.eta - self.theta
    }
    /// u2 = η + θ (end of the plateau).
    pub fn u2(&self) -> f64 {
        self.eta + self.theta
    }
    /// q1 = η − θ − β (lower discard point).
    pub fn q1(&self) -> f64 {
        self.eta - self.theta - self.beta
    }
    /// q2 = η + θ + β (upper discard point).
    pub fn q2(&self) -> f64 {
        self.eta + self.theta + self.beta
    }
    /// Coefficient a of eq. 12.
    pub fn a(&self) -> f64 {
        -1.0 / (self.beta * (2.0 * self.theta + self.beta))
    }

    /// w(L): 1 on [u1, u2], eq. 13 between the plateau and q1/q2 (clamped to [0, 1]), 0 beyond.
    pub fn weight(&self, l: f64) -> f64 {
        if l >= self.u1() && l <= self.u2() {
            return 1.0;
        }
        if l <= self.q1() || l >= self.q2() {
            return 0.0;
        }
        (self.a() * (l - self.q1()) * (l - self.q2())).clamp(0.0, 1.0)
    }
}

/// What MAS recorded for one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Stage-2 epoch.
    pub epoch: usize,
    /// η_k.
    pub eta: f64,
    /// θ_k.
    pub theta: f64,
    /// β.
    pub beta: f64,
    /// Score of every synthetic case.
    pub scores: Vec<f64>,
    /// Weight of every synthetic case.
    pub weights: Vec<f64>,
}

/// The `mas` weighter.
#[derive(Debug, Clone)]
pub struct Mas {
    p: MasParams,
    history: Vec<EpochRecord>,
}

impl Plugin for Mas {
    const NAME: &'static str = "mas";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Model-Data Adaptive Supervision: weights from the model's live scores (§3.2, eqs. 6–13)";
    type Params = MasParams;
    fn new(p: MasParams) -> Result<Self> {
        let bad = |field: &str, v: f64, want: &str| {
            CoreError::param("mas", field, format!("{v}; expected {want}"))
        };
        if !(p.beta > 0.0 && p.beta.is_finite()) {
            return Err(bad("beta", p.beta, "a positive number"));
        }
        if !(p.c >= 0.0 && p.c.is_finite()) {
            return Err(bad("c", p.c, "a non-negative number"));
        }
        Ok(Mas { p, history: vec![] })
    }
}

dsma_plugin::register_weighter!(Mas);

/// Referenced by the `dsma` binary so the linker keeps this crate and its registration.
pub fn link() {}

impl Mas {
    /// The weight function for real-case scores `real` (eqs. 7–8).
    pub fn function(&self, real: &[f64]) -> WeightFunction {
        WeightFunction {
            eta: eta(real),
            theta: theta(real, self.p.c),
            beta: self.p.beta,
        }
    }

    /// Every epoch recorded so far.
    pub fn records(&self) -> &[EpochRecord] {
        &self.history
    }
}

impl SampleWeighter for Mas {
    fn score_kind(&self) -> ScoreKind {
        self.p.score
    }

    fn weights(&mut self, s: &EpochScores<'_>) -> Result<Vec<f64>> {
        if s.real.is_empty() {
            return Err(CoreError::Plugin {
                plugin: "mas".into(),
                problem: "no real-case scores to compute η and θ from".into(),
            });
        }
        if let Some(bad) = s.real.iter().chain(s.synthetic).find(|v| !v.is_finite()) {
            return Err(CoreError::Plugin {
                plugin: "mas".into(),
                problem: format!("score {bad} is not a finite number"),
            });
        }
        let f = self.function(s.real);
        let weights: Vec<f64> = s.synthetic.iter().map(|&l| f.weight(l)).collect();
        self.history.push(EpochRecord {
            epoch: s.epoch,
            eta: f.eta,
            theta: f.theta,
            beta: f.beta,
            scores: s.synthetic.to_vec(),
            weights: weights.clone(),
        });
        Ok(weights)
    }

    fn history(&self) -> serde_json::Value {
        serde_json::to_value(&self.history).unwrap_or(serde_json::Value::Null)
    }

    fn restore(&mut self, history: serde_json::Value) -> Result<()> {
        self.history = serde_json::from_value(history).map_err(|e| CoreError::Plugin {
            plugin: "mas".into(),
            problem: format!("cannot restore history: {e}"),
        })?;
        Ok(())
    }

    fn plot_history(
        &self,
        history: &serde_json::Value,
        path: &std::path::Path,
        title: &str,
    ) -> Result<bool> {
        plot_history(path, history, title)
    }
}
