//! The built-in plugins linked into `dsma`.
//!
//! A crate that nothing references is dropped by the linker together with its `inventory::submit!`,
//! so every built-in plugin crate is referenced here; `tests/plugins.rs` checks that each folder under
//! `plugins/` (except the example shared library) shows up in `dsma plugins`.

use dsma_plugin::Registry;

/// References every built-in plugin crate, then returns the registry of built-ins.
pub fn registry() -> Registry {
    dsma_augment::link();
    dsma_diffusion_wu::link();
    dsma_diffusion_yu::link();
    dsma_dtss::link();
    dsma_hagan::link();
    dsma_mas::link();
    dsma_nestedformer::link();
    dsma_stylegan3d::link();
    dsma_uniform::link();
    dsma_unet3d::link();
    Registry::builtin()
}
