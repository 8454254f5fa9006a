//! dsma-train: the training layer of dsma (burn). Experiment files ([`experiment`]), model plugins
//! generic over the backend ([`model`]), the layers, loss and sliding-window inference they share,
//! checkpoints ([`checkpoint`]), the comparator protocol ([`generative`], [`diffusion`]), the
//! two-stage runner ([`runner`]) and the one entry point that runs an experiment file
//! ([`pipeline`]); a comparator outside a run ([`generate`]). The data layer is `dsma-data`, the plugin layer `dsma-plugin`, the compute
//! backends `dsma-kernels`.

// Index loops over 3×3 / 4×4 matrices and 3 axes read better than iterator chains.
#![allow(clippy::needless_range_loop)]

/// The git commit dsma was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("DSMA_COMMIT");

pub mod checkpoint;
pub mod diffusion;
pub mod experiment;
pub mod generate;
pub mod generative;
pub mod inference;
pub mod layers;
pub mod loss;
pub mod model;
pub mod pipeline;
pub mod predict;
pub mod runner;

// What `register_model!` and `register_comparator!` expand to, reachable from any plugin crate.
#[doc(hidden)]
pub use dsma_plugin as __plugin;
#[doc(hidden)]
pub use dsma_plugin::inventory;
