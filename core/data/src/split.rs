//! The seeded train/test partition of a dataset's cases (paper §4.1: 80/20), independent of the
//! order the cases are listed in.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::error::{CoreError, Result};

/// A deterministic train/test partition of case identifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Seed the partition was drawn with.
    pub seed: u64,
    /// Fraction of cases used for training.
    pub train_fraction: f64,
    /// Training case identifiers (sorted).
    pub train: Vec<String>,
    /// Test case identifiers (sorted).
    pub test: Vec<String>,
}

impl Split {
    /// Writes the split as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| CoreError::codec("split", e))?;
        write_atomic(path, &json)
    }
}

/// Splits `ids` into train/test (paper §4.1: 80/20) from `seed`; independent of input order.
pub fn split_cases(ids: &[String], seed: u64, train_fraction: f64) -> Result<Split> {
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(CoreError::invalid(
            "train_fraction",
            format!("{train_fraction}, expected a value in (0, 1)"),
        ));
    }
    if ids.len() < 2 {
        return Err(CoreError::invalid(
            "dataset",
            format!("{} case(s); a train/test split needs at least 2", ids.len()),
        ));
    }
    let mut sorted = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut shuffled = sorted.clone();
    shuffled.shuffle(&mut rng);
    let n_train =
        ((sorted.len() as f64 * train_fraction).round() as usize).clamp(1, sorted.len() - 1);
    let mut train = shuffled[..n_train].to_vec();
    let mut test = shuffled[n_train..].to_vec();
    train.sort();
    test.sort();
    Ok(Split {
        seed,
        train_fraction,
        train,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_json_error_is_kept_as_the_source() {
        let bad = serde_json::from_str::<Split>("{").unwrap_err();
        let e = CoreError::codec("split.json", bad);
        let source = std::error::Error::source(&e).expect("source kept");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
        assert!(e.to_string().starts_with("split.json: "));
    }

    #[test]
    fn split_is_deterministic_order_independent_and_80_20() {
        let ids: Vec<String> = (0..25).map(|i| format!("case{i:03}")).collect();
        let mut reversed = ids.clone();
        reversed.reverse();
        let a = split_cases(&ids, 7, 0.8).unwrap();
        let b = split_cases(&reversed, 7, 0.8).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.train.len(), a.test.len()), (20, 5));
        let c = split_cases(&ids, 8, 0.8).unwrap();
        assert_ne!(a.test, c.test);
        let mut all: Vec<_> = a.train.iter().chain(&a.test).cloned().collect();
        all.sort();
        assert_eq!(all, ids);
    }

    #[test]
    fn split_rejects_bad_fraction_and_tiny_sets() {
        let ids = vec!["a".to_string(), "b".to_string()];
        assert!(split_cases(&ids, 0, 1.0)
            .unwrap_err()
            .to_string()
            .contains("train_fraction"));
        assert!(split_cases(&ids[..1], 0, 0.8).is_err());
        let s = split_cases(&ids, 0, 0.8).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (1, 1));
    }
}
