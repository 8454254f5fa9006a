//! The paired Wilcoxon signed-rank test of the table's `*` markers: exact distribution up to 50
//! non-zero pairs, normal approximation with tie correction above (as SciPy's `method='approx'`,
//! `correction=False`).

/// Two-sided p-value of the Wilcoxon signed-rank test for paired samples (zero differences dropped,
/// tied ranks averaged); exact distribution up to 50 non-zero pairs, normal approximation with tie
/// correction above. None with no non-zero difference.
pub fn wilcoxon_signed_rank(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut d: Vec<f64> = pairs
        .iter()
        .map(|(x, y)| x - y)
        .filter(|v| *v != 0.0 && v.is_finite())
        .collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Doubled average ranks (integers even with ties).
    let mut ranks2 = vec![0usize; n];
    let mut i = 0;
    let mut tie_term = 0.0;
    while i < n {
        let mut j = i;
        while j + 1 < n && d[j + 1].abs() == d[i].abs() {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        for r in ranks2.iter_mut().take(j + 1).skip(i) {
            *r = i + j + 2; // 2 × average of ranks i+1 ..= j+1
        }
        i = j + 1;
    }
    let w2: usize = d
        .iter()
        .zip(&ranks2)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| *r)
        .sum();
    let total2: usize = ranks2.iter().sum();
    if n <= 50 {
        // Number of sign assignments giving each doubled sum.
        let mut counts = vec![0f64; total2 + 1];
        counts[0] = 1.0;
        for &r in &ranks2 {
            for s in (r..=total2).rev() {
                counts[s] += counts[s - r];
            }
        }
        let all = 2f64.powi(n as i32);
        let lower: f64 = counts[..=w2].iter().sum::<f64>() / all;
        let upper: f64 = counts[w2..].iter().sum::<f64>() / all;
        Some((2.0 * lower.min(upper)).min(1.0))
    } else {
        let nf = n as f64;
        let mean = nf * (nf + 1.0) / 4.0;
        let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
        let z = (w2 as f64 / 2.0 - mean).abs() / var.sqrt();
        Some((2.0 * (1.0 - normal_cdf(z))).min(1.0))
    }
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz & Stegun 7.1.26 (error < 1.5e-7).
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs() / std::f64::consts::SQRT_2);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-(z * z) / 2.0).exp();
    if z >= 0.0 {
        0.5 * (1.0 + y)
    } else {
        0.5 * (1.0 - y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilcoxon_matches_scipy_on_small_samples() {
        // scipy.stats.wilcoxon([1,2,3,4,5,6,7,8], [0]*8) → statistic 0, p = 0.0078125 (exact).
        let pairs: Vec<(f64, f64)> = (1..=8).map(|i| (i as f64, 0.0)).collect();
        assert!((wilcoxon_signed_rank(&pairs).unwrap() - 0.0078125).abs() < 1e-12);
        // Symmetric differences → p = 1.
        let sym = [(1.0, 0.0), (0.0, 1.0), (2.0, 0.0), (0.0, 2.0)];
        assert!((wilcoxon_signed_rank(&sym).unwrap() - 1.0).abs() < 1e-12);
        // d = [1, -2, 3, 4, 5]: W- = 2, exact two-sided p = 2 · 3/32 = 0.1875 (scipy).
        let mixed = [(1.0, 0.0), (0.0, 2.0), (3.0, 0.0), (4.0, 0.0), (5.0, 0.0)];
        assert!((wilcoxon_signed_rank(&mixed).unwrap() - 0.1875).abs() < 1e-12);
        assert_eq!(wilcoxon_signed_rank(&[(1.0, 1.0)]), None);
    }

    #[test]
    fn normal_approximation_matches_scipy_above_50_pairs() {
        // 70 pairs, 66 non-zero differences with ties. SciPy 1.17.1:
        // wilcoxon(x, y, method='approx', correction=False, zero_method='wilcox').pvalue
        for (shift, want) in [(0.0, 0.8452678601113146), (0.02, 0.000207172765919562)] {
            let pairs: Vec<(f64, f64)> = (0..70)
                .map(|i: i64| {
                    let mut v = (((i * 7) % 13) - 6) as f64 * 0.01;
                    v += if i % 5 == 0 { 0.004 } else { 0.0 };
                    v += shift;
                    (0.8 + v, 0.8)
                })
                .collect();
            let p = wilcoxon_signed_rank(&pairs).unwrap();
            assert!((p - want).abs() < 1e-6, "shift {shift}: {p} vs {want}");
        }
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert!((normal_cdf(1.959964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    }
}
