//! The training loss: soft Dice per region channel and per sample (eq. 14), weighted per sample (eq. 15).
//!
//! `L_dice = 1 − (2 Σ P·G + ε_nr) / (Σ P + Σ G + ε_dr)` for each sample and each region channel
//! (WT, TC, ET), on sigmoid probabilities P of the network's logits, averaged over the channels; with
//! ε_nr = ε_dr = 1e-5 as in MONAI's `DiceLoss(sigmoid=True)` (the paper's eq. 14 has no smoothing; the
//! constants only matter for empty channels). The batch loss is `(1/N) Σ_n w_n L_dice,n` (eq. 15): real
//! samples weigh 1, synthetic samples their MAS weight. Dividing by N rather than by Σ w keeps each
//! sample's gradient proportional to its own weight only: a weight of 0 removes the sample's gradient
//! and 0.5 halves it, whatever the other samples weigh.

use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Smoothing added to the numerator of the Dice ratio (MONAI's default).
pub const SMOOTH_NR: f64 = 1e-5;
/// Smoothing added to the denominator of the Dice ratio (MONAI's default).
pub const SMOOTH_DR: f64 = 1e-5;

/// Soft Dice loss per sample, `[N]`, from logits and float targets shaped `[N, C, D, H, W]`.
pub fn soft_dice_per_sample<B: Backend>(
    logits: Tensor<B, 5>,
    targets: Tensor<B, 5>,
) -> Tensor<B, 1> {
    let [n, c, ..] = logits.dims();
    let p = sigmoid(logits).flatten::<3>(2, 4);
    let g = targets.flatten::<3>(2, 4);
    let intersection = (p.clone() * g.clone()).sum_dim(2).reshape([n, c]);
    let denominator = (p.sum_dim(2) + g.sum_dim(2)).reshape([n, c]);
    let dice = (intersection * 2.0 + SMOOTH_NR) / (denominator + SMOOTH_DR);
    (dice.neg() + 1.0).mean_dim(1).reshape([n])
}

/// Weighted batch loss `(1/N) Σ_n w_n · L_dice,n` (eq. 15); `weights` is `[N]`.
pub fn weighted_dice_loss<B: Backend>(
    logits: Tensor<B, 5>,
    targets: Tensor<B, 5>,
    weights: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let per_sample = soft_dice_per_sample(logits, targets);
    (per_sample * weights).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    type B = Autodiff<Flex>;

    fn random(shape: [usize; 5], seed: u64, binary: bool) -> TensorData {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                if binary {
                    rng.random_bool(0.3) as u8 as f32
                } else {
                    rng.random_range(-2.0..2.0)
                }
            })
            .collect();
        TensorData::new(v, shape)
    }

    fn grads(weights: [f32; 2]) -> Vec<f32> {
        let dev = Default::default();
        let shape = [2, 3, 4, 4, 4];
        let logits = Tensor::<B, 5>::from_data(random(shape, 1, false), &dev).require_grad();
        let targets = Tensor::<B, 5>::from_data(random(shape, 2, true), &dev);
        let w = Tensor::<B, 1>::from_data(TensorData::new(weights.to_vec(), [2]), &dev);
        let loss = weighted_dice_loss(logits.clone(), targets, w);
        let g = loss.backward();
        logits
            .grad(&g)
            .expect("gradient")
            .into_data()
            .to_vec::<f32>()
            .expect("f32")
    }

    #[test]
    fn perfect_prediction_has_near_zero_loss_and_wrong_has_near_one() {
        let dev = Default::default();
        let t = Tensor::<Flex, 5>::from_data(random([1, 3, 4, 4, 4], 3, true), &dev);
        let good = soft_dice_per_sample((t.clone() * 2.0 - 1.0) * 50.0, t.clone()).into_scalar();
        let bad = soft_dice_per_sample((t.clone() * 2.0 - 1.0) * -50.0, t).into_scalar();
        assert!(good < 1e-4, "{good}");
        assert!(bad > 0.999, "{bad}");
    }

    #[test]
    fn weight_zero_removes_a_samples_gradient_and_half_halves_it() {
        let half = 4 * 4 * 4 * 3;
        let full = grads([1.0, 1.0]);
        let zero = grads([0.0, 1.0]);
        let halved = grads([0.5, 1.0]);
        assert!(full[..half].iter().any(|g| g.abs() > 1e-7));
        assert!(
            zero[..half].iter().all(|&g| g == 0.0),
            "weight 0 must give zero gradient"
        );
        for i in 0..half {
            assert!(
                (halved[i] - 0.5 * full[i]).abs() <= 1e-6 * full[i].abs().max(1e-3),
                "at {i}"
            );
        }
        // The other sample's gradient does not depend on this sample's weight.
        for i in half..2 * half {
            assert!((zero[i] - full[i]).abs() < 1e-7 && (halved[i] - full[i]).abs() < 1e-7);
        }
    }

    #[test]
    fn per_sample_loss_matches_a_hand_computation() {
        let dev = Default::default();
        // One sample, one channel of two voxels: logits 0 → p = 0.5; targets [1, 0].
        let logits = Tensor::<Flex, 5>::zeros([1, 1, 1, 1, 2], &dev);
        let targets =
            Tensor::<Flex, 5>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 1, 1, 2]), &dev);
        let l = soft_dice_per_sample(logits, targets).into_scalar() as f64;
        let want = 1.0 - (2.0 * 0.5 + SMOOTH_NR) / (1.0 + 1.0 + SMOOTH_DR);
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }

    /// dL/dz by hand for one sample of two channels of two voxels:
    /// L = (w/N) · (1/C) Σ_c (1 − (2 I_c + ε_nr)/(S_c + ε_dr)), I_c = Σ p g, S_c = Σ p + Σ g, so
    /// dL/dz_i = −(w/(N C)) · (2 g_i (S_c + ε_dr) − (2 I_c + ε_nr)) / (S_c + ε_dr)² · p_i (1 − p_i).
    #[test]
    fn gradients_match_the_derivative_by_hand() {
        let dev = Default::default();
        let z = [0.0f64, 1.0, -0.5, 2.0];
        let g = [1.0f64, 0.0, 0.0, 1.0];
        let w = 0.7f64;
        let logits = Tensor::<B, 5>::from_data(
            TensorData::new(z.iter().map(|&v| v as f32).collect(), [1, 2, 1, 1, 2]),
            &dev,
        )
        .require_grad();
        let targets = Tensor::<B, 5>::from_data(
            TensorData::new(g.iter().map(|&v| v as f32).collect(), [1, 2, 1, 1, 2]),
            &dev,
        );
        let weights = Tensor::<B, 1>::from_data(TensorData::new(vec![w as f32], [1]), &dev);
        let loss = weighted_dice_loss(logits.clone(), targets, weights);
        let got: Vec<f32> = logits
            .grad(&loss.backward())
            .expect("gradient")
            .into_data()
            .to_vec()
            .expect("f32");
        let p: Vec<f64> = z.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
        for c in 0..2 {
            let (i0, i1) = (2 * c, 2 * c + 1);
            let inter = p[i0] * g[i0] + p[i1] * g[i1];
            let s = p[i0] + p[i1] + g[i0] + g[i1] + SMOOTH_DR;
            for i in [i0, i1] {
                let dl_dp = -(w / 2.0) * (2.0 * g[i] * s - (2.0 * inter + SMOOTH_NR)) / (s * s);
                let want = dl_dp * p[i] * (1.0 - p[i]);
                assert!(
                    (got[i] as f64 - want).abs() < 1e-6,
                    "voxel {i}: {} vs {want}",
                    got[i]
                );
            }
        }
    }
}
