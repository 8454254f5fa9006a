//! dsma-plugin: the traits a method implements (synthesizers, generative synthesizers, weighters),
//! typed parameters, the one registry of every plugin kind (`inventory`) and the host of shared-library
//! plugins. No burn: synthesizer and weighter plugins build on this and `dsma-data` alone.

pub use inventory;

pub mod backend;
pub mod dylib;
pub mod info;
pub mod params;
pub mod registry;
pub mod traits;

pub use backend::BackendKind;
pub use info::{PluginInfo, PluginKind, PluginSource};
pub use params::{parse_params, ParamDoc, PluginParams};
pub use registry::{
    AnySynthesizer, ModelInfoRegistration, PythonLoader, Registry, SynthesizerPlugin,
    SynthesizerRegistration, WeighterPlugin, WeighterRegistration,
};
pub use traits::{
    check_synthesized, check_weights, synthesize_seeded, EpochScores, FitContext, FitProgress,
    SampleWeighter, SampledImage, ScoreKind, Synthesized, Synthesizer, TrainableSynthesizer,
    TrainingCases, UnitWeights,
};
