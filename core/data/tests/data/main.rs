//! The data layer's integration tests, one binary: NIfTI I/O against hand-built files, the BraTS
//! and Decathlon layouts, properties of preprocessing and metrics.

mod brats_dataset;
mod fixtures;
mod lesion_reference;
mod msd_dataset;
mod nifti_io;
mod properties;
