//! dsma-data: volumes, labels, NIfTI I/O, the BraTS data layer, preprocessing, the phantom,
//! metrics, slice figures and seed derivation. No burn: synthesizer and weighter plugins build on
//! this and `dsma-plugin` alone.

// Index loops over 3×3 / 4×4 matrices and 3 axes read better than iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod assignment;
pub mod atomic_file;
pub mod brats;
pub mod case_store;
pub mod checksum;
pub mod components;
pub mod corruption;
pub mod error;
pub mod images;
pub mod json_nan;
pub mod labels;
pub mod lesion;
pub mod metrics;
pub mod msd;
pub mod nifti_io;
pub mod phantom;
pub mod preprocess;
pub mod seed;
pub mod slice_figure;
pub mod split;
pub mod surface;
pub mod volume;

pub use error::{BoxError, CoreError, Result};
pub use labels::{LabelConvention, Region};
pub use volume::{Case, Grid, Modality};
