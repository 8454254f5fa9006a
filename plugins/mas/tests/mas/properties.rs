//! Properties of the MAS weight function (eqs. 6 and 13) over random η, θ, β and scores.

use dsma_mas::WeightFunction;
use proptest::prelude::*;

fn function() -> impl Strategy<Value = WeightFunction> {
    (0.0f64..=1.0, 0.0f64..=0.5, 0.01f64..=0.5).prop_map(|(eta, theta, beta)| WeightFunction {
        eta,
        theta,
        beta,
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Fixed seed and no regression files: the same inputs on every run and machine.
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_d5a1),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn weights_lie_in_0_1_with_a_plateau_of_1(f in function(), l in 0.0f64..=1.0) {
        let w = f.weight(l);
        prop_assert!((0.0..=1.0).contains(&w), "w({l}) = {w}");
        if (f.eta - f.theta..=f.eta + f.theta).contains(&l) {
            prop_assert_eq!(w, 1.0);
        }
        if l <= f.eta - f.theta - f.beta || l >= f.eta + f.theta + f.beta {
            prop_assert_eq!(w, 0.0);
        }
    }

    #[test]
    fn the_function_is_symmetric_about_eta(f in function(), d in 0.0f64..=1.0) {
        prop_assert!((f.weight(f.eta + d) - f.weight(f.eta - d)).abs() < 1e-12);
    }

    #[test]
    fn it_is_continuous_at_the_four_joins(f in function()) {
        let eps = 1e-9;
        let (u1, u2) = (f.eta - f.theta, f.eta + f.theta);
        let (q1, q2) = (u1 - f.beta, u2 + f.beta);
        for (at, value) in [(u1, 1.0), (u2, 1.0), (q1, 0.0), (q2, 0.0)] {
            for x in [at - eps, at + eps] {
                prop_assert!((f.weight(x) - value).abs() < 1e-6, "w({x}) = {} near {at}", f.weight(x));
            }
        }
    }

    #[test]
    fn it_falls_monotonically_away_from_the_plateau(f in function(), a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
        let (near, far) = if a < b { (a, b) } else { (b, a) };
        prop_assert!(f.weight(f.eta + near) >= f.weight(f.eta + far));
    }
}
