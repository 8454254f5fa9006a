//! Plugins: the traits a method implements, the static registry (`inventory`) and shared libraries.

pub mod dylib;
pub mod params;
pub mod registry;
pub mod traits;

pub use params::{parse_params, ParamDoc, PluginParams};
pub use registry::{
    PluginInfo, PluginKind, PluginSource, Registry, SynthesizerPlugin, SynthesizerRegistration,
    WeighterPlugin, WeighterRegistration,
};
pub use traits::{
    EpochScores, FitContext, FitProgress, SampleWeighter, SampledImage, ScoreKind, Synthesized,
    Synthesizer, TrainableSynthesizer, UnitWeights,
};
