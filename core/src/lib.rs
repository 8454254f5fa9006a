//! dsma-core: the training layer of dsma (burn): model factories and backends, loss, sliding-window
//! inference, experiment files, the two-stage runner, the report and `dsma doctor`. It re-exports the
//! data layer (`dsma-data`) and the plugin layer (`dsma-plugin`) under their old paths.

// Index loops over 3×3 / 4×4 matrices and 3 axes read better than iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod diffusion;
pub mod doctor;
pub mod experiment;
pub mod generative;
pub mod inference;
pub mod layers;
pub mod loss;
pub mod model;
pub mod runner;

pub use dsma_data::{
    atomic_file, brats, case_store, error, json_nan, labels, metrics, nifti_io, phantom,
    preprocess, seed, slice_figure, volume,
};
pub use dsma_data::{Case, CoreError, Grid, LabelConvention, Modality, Region, Result};
pub use dsma_kernels as kernels;
pub use dsma_plugin as plugin;
pub use dsma_plugin::inventory;
pub use dsma_plugin::{register_synthesizer, register_trainable_synthesizer, register_weighter};
