//! dsma-core: volumes, NIfTI I/O, the BraTS data layer, the phantom, preprocessing, the plugin
//! traits and the two-stage runner of dsma.

// Index loops over 3×3 / 4×4 matrices and 3 axes read better than iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod atomic_file;
pub mod brats;
pub mod doctor;
pub mod error;
pub mod experiment;
pub mod inference;
pub mod labels;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod nifti_io;
pub mod phantom;
pub mod plugin;
pub mod preprocess;
pub mod runner;
pub mod seed;
pub mod slice_figure;
pub mod volume;

pub use error::{CoreError, Result};
pub use inventory;
pub use labels::{LabelConvention, Region};
pub use volume::{Case, Grid, Modality};
