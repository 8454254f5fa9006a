//! Sample weighter `uniform`: every synthetic case weighs 1, i.e. DTSS without MAS (paper Tables 3–4, row 2).

use dsma_data::Result;
use dsma_plugin::registry::Plugin;
use dsma_plugin::{EpochScores, PluginParams, SampleWeighter, UnitWeights};
use serde::{Deserialize, Serialize};

/// `uniform` has no parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniformParams {}

impl PluginParams for UniformParams {}

/// The `uniform` weighter: core's [`UnitWeights`] under a name YAML can give.
#[derive(Debug, Default)]
pub struct Uniform(UnitWeights);

impl Plugin for Uniform {
    const NAME: &'static str = "uniform";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "weight 1 for every synthetic case (MAS off)";
    type Params = UniformParams;
    fn new(_: UniformParams) -> Result<Self> {
        Ok(Uniform::default())
    }
}

impl SampleWeighter for Uniform {
    fn needs_scores(&self) -> bool {
        self.0.needs_scores()
    }
    fn unit(&self) -> bool {
        self.0.unit()
    }
    fn weights(&mut self, scores: &EpochScores<'_>) -> Result<Vec<f64>> {
        self.0.weights(scores)
    }
    fn history(&self) -> serde_json::Value {
        self.0.history()
    }
    fn restore(&mut self, history: serde_json::Value) -> Result<()> {
        self.0.restore(history)
    }
}

dsma_plugin::register_weighter!(Uniform);

/// Referenced by the `dsma` binary so the linker keeps this crate and its registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_synthetic_case_weighs_one() {
        let mut u = Uniform::new(UniformParams {}).unwrap();
        let w = u
            .weights(&EpochScores {
                epoch: 0,
                real: &[0.5, 0.9],
                synthetic: &[0.0, 0.3, 1.0],
            })
            .unwrap();
        assert_eq!(w, vec![1.0, 1.0, 1.0]);
    }
}
