//! dsma-pyhost: what both Python hosts share, the Python package (`python/`) and the binary built
//! with `--features python`: NumPy arguments checked into dsma's types with errors that name the
//! argument ([`arrays`]), and plugins written as Python classes, registered in dsma's
//! [`dsma_plugin::Registry`] like a shared library's ([`plugin`]).

pub mod arrays;
pub mod plugin;

pub use plugin::load;
