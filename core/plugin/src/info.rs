//! What describes a plugin of any origin (built in or from a shared library): its kind, source,
//! listing and the builder that makes instances. Both the registry and the shared-library host
//! ([`crate::dylib`]) use these, so neither imports the other's internals.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::params::ParamDoc;

use dsma_data::error::Result;

/// What a plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Derives synthetic cases from real ones ([`crate::traits::Synthesizer`]).
    Synthesizer,
    /// A generative model trained then sampled ([`crate::traits::TrainableSynthesizer`]).
    TrainableSynthesizer,
    /// Per-sample loss weights ([`crate::traits::SampleWeighter`]).
    Weighter,
    /// A segmentation network.
    Model,
}

impl PluginKind {
    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Synthesizer => "synthesizer",
            PluginKind::TrainableSynthesizer => "trainable synthesizer",
            PluginKind::Weighter => "weighter",
            PluginKind::Model => "model",
        }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// Linked into the binary.
    Builtin,
    /// Loaded from a shared library.
    Library(PathBuf),
}

impl Serialize for PluginSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            PluginSource::Builtin => s.serialize_str("builtin"),
            PluginSource::Library(p) => s.serialize_str(&p.display().to_string()),
        }
    }
}

/// Everything `dsma plugins` shows about a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// Registered name (what YAML names).
    pub name: String,
    /// What it provides.
    pub kind: PluginKind,
    /// Plugin version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// `builtin` or the library path.
    pub source: PluginSource,
    /// Default parameters.
    pub defaults: serde_json::Value,
    /// Parameter documentation.
    pub params: Vec<ParamDoc>,
}

/// Builds an instance of a plugin from JSON parameters.
pub type Builder<D> = Arc<dyn Fn(&serde_json::Value) -> Result<Box<D>> + Send + Sync>;
