//! dsma-train's integration tests, one binary (each file would link burn again): experiment
//! files and overrides, the case store, the comparator protocol, the diffusion core, the model
//! registry, sliding-window inference.

mod case_store;
mod diffusion;
mod experiment_files;
mod generative_protocol;
mod model_registry;
mod override_properties;
mod predict;
mod sliding_window;
