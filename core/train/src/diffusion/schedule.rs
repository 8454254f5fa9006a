//! The DDPM noise schedule and its closed forms (Ho et al. 2020): `q(x_t | x_0)`, the posterior
//! `q(x_{t−1} | x_t, x_0)`, and strided (respaced) timesteps. Timesteps are 1-based as in the
//! paper: `t ∈ 1..=T`, `ᾱ_0 = 1`.

use serde::{Deserialize, Serialize};

use dsma_data::error::{CoreError, Result};

/// A linear β schedule (DDPM's, and AnoDDPM's `get_beta_schedule("linear")`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// `β_t` for `t = 1..=T` (index `t − 1`).
    betas: Vec<f64>,
    /// `ᾱ_t = Π_{s ≤ t} (1 − β_s)` for `t = 0..=T` (index `t`; `ᾱ_0 = 1`).
    alpha_bar: Vec<f64>,
}

impl Schedule {
    /// `T` steps with β linear from `start` to `end`.
    pub fn linear(steps: usize, start: f64, end: f64) -> Result<Self> {
        if steps == 0 || !(0.0 < start && start <= end && end < 1.0) {
            return Err(CoreError::invalid(
                "diffusion schedule",
                format!("T = {steps}, β from {start} to {end}; expected T ≥ 1 and 0 < β_start ≤ β_end < 1"),
            ));
        }
        let betas: Vec<f64> = (0..steps)
            .map(|i| {
                if steps == 1 {
                    start
                } else {
                    start + (end - start) * i as f64 / (steps - 1) as f64
                }
            })
            .collect();
        let mut alpha_bar = Vec::with_capacity(steps + 1);
        alpha_bar.push(1.0);
        for b in &betas {
            let prev = *alpha_bar.last().unwrap_or(&1.0);
            alpha_bar.push(prev * (1.0 - b));
        }
        Ok(Schedule { betas, alpha_bar })
    }

    /// `T`.
    pub fn steps(&self) -> usize {
        self.betas.len()
    }

    /// `β_t` (`t ≥ 1`).
    pub fn beta(&self, t: usize) -> f64 {
        self.betas[t - 1]
    }

    /// `ᾱ_t` (`t ≥ 0`).
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bar[t]
    }

    /// `(√ᾱ_t, √(1 − ᾱ_t))`: `x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`.
    pub fn q_coefficients(&self, t: usize) -> (f64, f64) {
        let a = self.alpha_bar[t];
        (a.sqrt(), (1.0 - a).sqrt())
    }

    /// One reverse step from timestep `t` to the earlier timestep `s < t` (`s = t − 1` for
    /// ancestral sampling; any earlier step for a strided sampler, whose effective
    /// `β = 1 − ᾱ_t/ᾱ_s`): the coefficients of the posterior mean on `x̂_0` and `x_t`, and its
    /// variance.
    pub fn posterior(&self, t: usize, s: usize) -> Posterior {
        let (at, as_) = (self.alpha_bar[t], self.alpha_bar[s]);
        let beta = 1.0 - at / as_;
        Posterior {
            coef_x0: as_.sqrt() * beta / (1.0 - at),
            coef_xt: (1.0 - beta).sqrt() * (1.0 - as_) / (1.0 - at),
            variance: beta * (1.0 - as_) / (1.0 - at),
            beta,
        }
    }

    /// `count` timesteps from `T` down to 1, evenly spaced (`count = T`: every step).
    pub fn strided(&self, count: usize) -> Vec<usize> {
        self.strided_from(self.steps(), count)
    }

    /// `count` timesteps from `start` (≤ T) down to 1, evenly spaced (partial re-synthesis).
    pub fn strided_from(&self, start: usize, count: usize) -> Vec<usize> {
        let t = start.clamp(1, self.steps());
        let count = count.clamp(1, t);
        let mut steps: Vec<usize> = (0..count).map(|i| t - (i * t) / count).collect();
        steps.dedup();
        steps
    }
}

/// The Gaussian of one reverse step: mean `coef_x0 · x̂_0 + coef_xt · x_t`, `variance`, and the
/// step's effective `β` (DDPM's "fixed large" variance uses `β` instead of `variance`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// Coefficient of `x̂_0`.
    pub coef_x0: f64,
    /// Coefficient of `x_t`.
    pub coef_xt: f64,
    /// `β̃ = β (1 − ᾱ_s)/(1 − ᾱ_t)`.
    pub variance: f64,
    /// `β = 1 − ᾱ_t/ᾱ_s`.
    pub beta: f64,
}
