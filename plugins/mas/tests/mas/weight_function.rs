//! MAS weight function (eqs. 6–13): breakpoints, symmetry, continuity, range, edge cases, history.

use dsma_mas::{eta, theta, Mas, MasParams, WeightFunction};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{EpochScores, SampleWeighter};

fn f(eta: f64, theta: f64, beta: f64) -> WeightFunction {
    WeightFunction { eta, theta, beta }
}

#[test]
fn eta_and_theta_follow_eqs_7_and_8() {
    let real = [0.61, 0.8, 0.7, 0.75];
    assert!((eta(&real) - 0.715).abs() < 1e-12);
    assert!((theta(&real, 0.00002) - (0.095 + 0.00002)).abs() < 1e-12);
    let mas = Mas::new(MasParams::default()).unwrap();
    let w = mas.function(&real);
    assert_eq!(w.beta, 0.1);
}

#[test]
fn values_at_and_around_every_breakpoint() {
    let w = f(0.6, 0.1, 0.2);
    let eps = 1e-9;
    // Plateau edges u1 = 0.5, u2 = 0.7 and centre.
    for l in [0.5, 0.6, 0.7] {
        assert_eq!(w.weight(l), 1.0, "L = {l}");
    }
    assert!(w.weight(0.5 - eps) < 1.0 && w.weight(0.5 - eps) > 1.0 - 1e-6);
    assert!(w.weight(0.7 + eps) < 1.0 && w.weight(0.7 + eps) > 1.0 - 1e-6);
    // Zeros q1 = 0.3, q2 = 0.9.
    assert_eq!(w.weight(0.3), 0.0);
    assert_eq!(w.weight(0.9), 0.0);
    assert_eq!(w.weight(0.3 - 0.01), 0.0);
    assert_eq!(w.weight(0.9 + 0.01), 0.0);
    assert!(w.weight(0.3 + eps) > 0.0 && w.weight(0.3 + eps) < 1e-6);
    // Eq. 13 by hand at L = 0.4: a = −1/(0.2·0.4) = −12.5; (0.4 − 0.3)(0.4 − 0.9) = −0.05 → 0.625.
    assert!((w.weight(0.4) - 0.625).abs() < 1e-12);
    assert!((w.a() + 12.5).abs() < 1e-12);
}

#[test]
fn symmetric_about_eta_continuous_and_within_0_1() {
    for (e, t, b) in [
        (0.6, 0.1, 0.2),
        (0.3, 0.05, 0.4),
        (0.85, 0.12, 0.1),
        (0.5, 0.00002, 0.05),
    ] {
        let w = f(e, t, b);
        let mut prev = w.weight(0.0);
        for i in 0..=10_000 {
            let l = i as f64 / 10_000.0;
            let v = w.weight(l);
            assert!((0.0..=1.0).contains(&v), "w({l}) = {v}");
            assert!((v - prev).abs() < 0.02, "jump at L = {l} for {w:?}");
            prev = v;
            let mirror = 2.0 * e - l;
            if (0.0..=1.0).contains(&mirror) {
                assert!(
                    (v - w.weight(mirror)).abs() < 1e-9,
                    "not symmetric at {l} for {w:?}"
                );
            }
        }
    }
}

#[test]
fn theta_near_zero_still_gives_a_well_defined_function() {
    let w = f(0.7, 0.00002, 0.1);
    assert_eq!(w.weight(0.7), 1.0);
    assert!(w.weight(0.65) > 0.0 && w.weight(0.65) < 1.0);
    assert_eq!(w.weight(0.55), 0.0);
    // All real scores equal: θ = c, and the real-mean score itself gets weight 1.
    let mut mas = Mas::new(MasParams::default()).unwrap();
    let weights = mas
        .weights(&EpochScores {
            epoch: 0,
            real: &[0.8, 0.8, 0.8],
            synthetic: &[0.8, 0.75, 0.5],
        })
        .unwrap();
    assert_eq!(weights[0], 1.0);
    assert!(weights[1] > 0.0 && weights[1] < 1.0);
    assert_eq!(weights[2], 0.0);
}

#[test]
fn zeros_outside_0_1_use_the_continuous_extension() {
    // η = 0.25, θ = 0.1, β = 0.3: u1 = 0.15, q1 = −0.15 < 0, so L = 0 lies between q1 and the
    // plateau, where eq. 6 gives no value on [0, 1] and the parabola of eq. 13 is used. By hand:
    // a = −1/(β(2θ + β)) = −1/0.15, and w(0) = a·(0 − q1)(0 − q2) = (0.15 · 0.65)/0.15 = 0.65.
    let low = f(0.25, 0.1, 0.3);
    assert!(
        (low.weight(0.0) - 0.65).abs() < 1e-12,
        "{}",
        low.weight(0.0)
    );
    // The mirror image near 1: η = 0.95, θ = 0.02, β = 0.3 give q1 = 0.63, q2 = 1.27 > 1 and
    // w(1) = (0.37 · 0.27)/(0.3 · 0.34) = 0.0999/0.102.
    let high = f(0.95, 0.02, 0.3);
    assert!(
        (high.weight(1.0) - 0.0999 / 0.102).abs() < 1e-12,
        "{}",
        high.weight(1.0)
    );
    // Plateau covering all of [0, 1].
    assert_eq!(f(0.5, 0.6, 0.1).weight(0.0), 1.0);
}

#[test]
fn history_records_every_epoch_and_restores() {
    let mut mas = Mas::new(MasParams {
        beta: 0.2,
        ..MasParams::default()
    })
    .unwrap();
    mas.weights(&EpochScores {
        epoch: 0,
        real: &[0.5, 0.7],
        synthetic: &[0.6, 0.1],
    })
    .unwrap();
    mas.weights(&EpochScores {
        epoch: 1,
        real: &[0.6, 0.8],
        synthetic: &[0.7, 0.95],
    })
    .unwrap();
    let h = mas.history();
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[1]["epoch"], 1);
    assert!((h[0]["eta"].as_f64().unwrap() - 0.6).abs() < 1e-12);
    assert_eq!(h[0]["weights"][0], 1.0);
    let mut again = Mas::new(MasParams {
        beta: 0.2,
        ..MasParams::default()
    })
    .unwrap();
    again.restore(h.clone()).unwrap();
    assert_eq!(again.history(), h);
}

#[test]
fn bad_parameters_and_scores_are_errors() {
    let e = Mas::new(MasParams {
        beta: 0.0,
        ..MasParams::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("mas") && e.contains("beta"), "{e}");
    let mut mas = Mas::new(MasParams::default()).unwrap();
    assert!(mas
        .weights(&EpochScores {
            epoch: 0,
            real: &[],
            synthetic: &[0.5]
        })
        .is_err());
    assert!(mas
        .weights(&EpochScores {
            epoch: 0,
            real: &[f64::NAN],
            synthetic: &[0.5]
        })
        .is_err());
}

#[test]
fn its_own_history_is_drawn_and_other_histories_are_declined() {
    let dir = std::env::temp_dir().join(format!("dsma-mas-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("weights.png");
    let mut mas = Mas::new(MasParams::default()).unwrap();
    for epoch in 0..2 {
        mas.weights(&EpochScores {
            epoch,
            real: &[0.5, 0.7],
            synthetic: &[0.2, 0.6, 0.9],
        })
        .unwrap();
    }
    assert!(mas.plot_history(&mas.history(), &png, "t").unwrap());
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    // The unit weighter's history ({"epochs": n}) is not MAS's: declined, nothing written.
    let other = dir.join("other.png");
    let unit = serde_json::json!({"epochs": 2});
    assert!(!mas.plot_history(&unit, &other, "t").unwrap());
    assert!(!other.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
