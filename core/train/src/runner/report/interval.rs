//! What the ± of a table cell with repeats means: the sample standard deviation (default) or the
//! half-width of the 95 % confidence interval of the mean (Student's t with n − 1 degrees of freedom).

use serde::{Deserialize, Serialize};

/// The ± of a cell over repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Sample standard deviation over repeats.
    #[default]
    Std,
    /// Half-width of the 95 % confidence interval of the mean: t₀.₉₇₅(n − 1) · s / √n.
    Ci95,
}

impl Interval {
    /// The ± of `n` values with sample standard deviation `std`.
    pub fn half_width(self, std: f64, n: usize) -> f64 {
        match self {
            Interval::Std => std,
            Interval::Ci95 if n > 1 => t975(n - 1) * std / (n as f64).sqrt(),
            Interval::Ci95 => 0.0,
        }
    }

    /// A cell's text: `mean ± half-width` with repeats (`$\pm$` in LaTeX), the mean alone without.
    pub fn cell(self, mean: f64, std: f64, n: usize, latex: bool) -> String {
        if n <= 1 {
            return format!("{mean:.2}");
        }
        let hw = self.half_width(std, n);
        if latex {
            format!("{mean:.2} $\\pm$ {hw:.2}")
        } else {
            format!("{mean:.2} ± {hw:.2}")
        }
    }

    /// The sentence under a table that says what ± is.
    pub fn caption(self) -> &'static str {
        match self {
            Interval::Std => "mean ± sample standard deviation over repeats",
            Interval::Ci95 => {
                "mean ± half-width of the 95 % confidence interval of the mean over repeats (Student's t, n − 1 df)"
            }
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (standard tables, 3 decimals),
/// above 30 df the table's value at the next lower tabulated df (30, 40, 60, 120), so the interval
/// is never narrower than the exact one (at most 1 % wider).
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        31..=39 => 2.042,
        40..=59 => 2.021,
        60..=119 => 2.000,
        _ => 1.980,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci95_of_five_values_is_t4_times_the_standard_error() {
        // Values 1..=5: mean 3, s = √2.5; t₀.₉₇₅(4) = 2.776 (tables): 2.776 · √2.5 / √5 = 1.963.
        let s = 2.5f64.sqrt();
        let hw = Interval::Ci95.half_width(s, 5);
        assert!((hw - 2.776 * (0.5f64).sqrt()).abs() < 1e-12, "{hw}");
        assert!((hw - 1.963).abs() < 1e-3);
        assert_eq!(Interval::Std.half_width(s, 5), s);
        assert_eq!(Interval::Ci95.half_width(s, 1), 0.0);
    }
}
