//! Seed derivation for the whole program: every independent random stream (phantom cases and noise,
//! run plans, model initialisation, epochs, synthesis jobs, `dsma synth`) is seeded by
//! [`derive_seed`] from a parent seed and a salt, so parallel work stays deterministic.

/// Derives an independent seed (one SplitMix64 step) from `seed` and `salt`.
pub fn derive_seed(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 (Steele, Lea & Flood 2014) written out from its published constants: with salt 0
    /// the mix of `seed` alone; the first output of the reference generator seeded with 0 is
    /// 0xE220A8397B1DCDAF (its state advanced by the golden-ratio increment once).
    #[test]
    fn matches_the_splitmix64_reference() {
        assert_eq!(derive_seed(0x9E37_79B9_7F4A_7C15, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(derive_seed(0, 1), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn derived_seeds_differ() {
        assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
    }
}
