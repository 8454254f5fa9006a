//! The one error type of `dsma-train`.

use std::path::PathBuf;

/// A library error kept as the source of a [`CoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong inside `dsma-train`; each variant names the file, field or value involved.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A NIfTI file is malformed, truncated or uses something we do not support.
    #[error("{path}: {problem}")]
    Nifti {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A BraTS case is incomplete or inconsistent.
    #[error("case {case}: {file}: {problem}")]
    Dataset {
        /// Case identifier (folder name).
        case: String,
        /// The file (or folder) involved.
        file: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A caller passed a value outside what a function accepts.
    #[error("invalid {what}: {problem}")]
    Invalid {
        /// The parameter or field name.
        what: String,
        /// What was expected and what was given.
        problem: String,
    },
    /// A plugin name that no registered plugin of that kind has.
    #[error("unknown {kind} `{name}`{}; known: {}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownPlugin {
        /// Plugin kind.
        kind: String,
        /// The name asked for.
        name: String,
        /// Registered names of that kind.
        known: Vec<String>,
        /// The closest known name, if close.
        suggestion: Option<String>,
    },
    /// A plugin's parameters do not deserialize.
    #[error("plugin `{plugin}`: {problem}")]
    PluginParams {
        /// Plugin name.
        plugin: String,
        /// Which field and what is wrong.
        problem: String,
    },
    /// A shared library could not be loaded as a plugin.
    #[error("plugin library {path}: {problem}")]
    PluginLoad {
        /// The library file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// The loader's error, when the library could not be opened.
        source: Option<BoxError>,
    },
    /// An error met while working on something the error itself does not name (the experiment
    /// file that names a plugin library); keeps the error as the source.
    #[error("{what}: {source}")]
    Within {
        /// What was being worked on.
        what: String,
        /// The error.
        source: Box<CoreError>,
    },
    /// A plugin failed (returned an error or panicked).
    #[error("plugin `{plugin}` failed: {problem}")]
    Plugin {
        /// Plugin name.
        plugin: String,
        /// Its message.
        problem: String,
    },
    /// Encoding or decoding failed in a library (JSON, YAML, safetensors, burn records); keeps the
    /// library's error as the source.
    #[error("{what}: {source}")]
    Codec {
        /// The file, field or value being encoded or decoded.
        what: String,
        /// The library's error.
        source: BoxError,
    },
    /// A runtime resource could not be set up (thread pool, tensor shape); keeps the library's error.
    #[error("{what}: {source}")]
    Runtime {
        /// The setting or value involved.
        what: String,
        /// The library's error.
        source: BoxError,
    },
    /// Rendering a figure failed.
    #[error("figure {path}: {problem}")]
    Figure {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
}

/// An error and its causes joined by `: `, skipping a cause whose text its parent already shows
/// (core errors name their file and include the library's message; the cause stays attached for
/// callers that walk it). What the binary prints after `error:` and the Python package raises.
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

impl CoreError {
    /// Builds an [`CoreError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds a [`CoreError::Nifti`] for `path`.
    pub fn nifti(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        CoreError::Nifti {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// A plugin parameter that deserialized but is out of range: names the plugin and the field
    /// (`plugin `unet3d`: parameter `depth`: 0; expected ≥ 1`).
    pub fn param(plugin: &str, field: &str, problem: impl std::fmt::Display) -> Self {
        CoreError::PluginParams {
            plugin: plugin.to_string(),
            problem: format!("parameter `{field}`: {problem}"),
        }
    }

    /// Builds a [`CoreError::Codec`] keeping `source`.
    pub fn codec(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CoreError::Codec {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Builds a [`CoreError::Runtime`] keeping `source`.
    pub fn runtime(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        CoreError::Runtime {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Builds a [`CoreError::Invalid`].
    pub fn invalid(what: impl Into<String>, problem: impl Into<String>) -> Self {
        CoreError::Invalid {
            what: what.into(),
            problem: problem.into(),
        }
    }
}

/// Result alias of `dsma-train`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
