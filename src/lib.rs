//! dsma_builtins: the built-in plugins linked into `dsma` and the Python package, in one registry.
//!
//! A crate that nothing references is dropped by the linker together with its `inventory::submit!`,
//! so every built-in plugin crate is referenced: `build.rs` writes a call of each plugin crate's
//! `link()` for every `dsma-*` dependency in `Cargo.toml` (the core crates aside); `tests/cli/plugins.rs`
//! checks that each folder under `plugins/` (except the example shared library) shows up in
//! `dsma plugins`.

use dsma_plugin::Registry;

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

/// References every built-in plugin crate, then returns the registry of built-ins.
/// With the `python` feature, the registry also loads plugins written in Python (`*.py`).
pub fn registry() -> Registry {
    link_all();
    #[allow(unused_mut)]
    let mut registry = Registry::builtin();
    #[cfg(feature = "python")]
    registry.set_python_loader(dsma_pyhost::load);
    registry
}
