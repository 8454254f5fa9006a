//! The plugin registry: built-in plugins collected with `inventory`, plus shared libraries loaded at run time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::info::{Builder, PluginInfo, PluginKind, PluginSource};
use super::params::{defaults_of, parse_params, ParamDoc, PluginParams};
use super::traits::{SampleWeighter, Synthesizer, TrainableSynthesizer};
use dsma_data::error::{CoreError, Result};

/// A plugin type with its metadata and typed parameters.
pub trait Plugin: Sized + Send + 'static {
    /// Registered name.
    const NAME: &'static str;
    /// Plugin version.
    const VERSION: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Parameter struct (defaults = the paper's values).
    type Params: PluginParams;
    /// Builds the plugin from validated parameters.
    fn new(params: Self::Params) -> Result<Self>;
}

/// A built-in synthesizer.
pub trait SynthesizerPlugin: Plugin + Synthesizer {}
impl<T: Plugin + Synthesizer> SynthesizerPlugin for T {}
/// A built-in weighter.
pub trait WeighterPlugin: Plugin + SampleWeighter {}
impl<T: Plugin + SampleWeighter> WeighterPlugin for T {}

/// A static registration of one built-in plugin providing `D`.
pub struct Registration<D: ?Sized> {
    /// Registered name.
    pub name: &'static str,
    /// Plugin version.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Default parameters.
    pub defaults: fn() -> serde_json::Value,
    /// Parameter documentation.
    pub docs: fn() -> Vec<ParamDoc>,
    /// Builds an instance from parameters.
    pub build: fn(&serde_json::Value) -> Result<Box<D>>,
}

/// Registration of a built-in [`Synthesizer`].
pub type SynthesizerRegistration = Registration<dyn Synthesizer>;
/// Registration of a built-in [`SampleWeighter`].
pub type WeighterRegistration = Registration<dyn SampleWeighter>;
/// Registration of a built-in [`TrainableSynthesizer`].
pub type TrainableRegistration = Registration<dyn TrainableSynthesizer>;

inventory::collect!(SynthesizerRegistration);
inventory::collect!(WeighterRegistration);
inventory::collect!(TrainableRegistration);

fn typed<T: Plugin>(v: &serde_json::Value) -> Result<T> {
    T::new(parse_params::<T::Params>(T::NAME, v)?)
}

fn build_synthesizer<T: SynthesizerPlugin>(v: &serde_json::Value) -> Result<Box<dyn Synthesizer>> {
    Ok(Box::new(typed::<T>(v)?))
}

fn build_weighter<T: WeighterPlugin>(v: &serde_json::Value) -> Result<Box<dyn SampleWeighter>> {
    Ok(Box::new(typed::<T>(v)?))
}

fn build_trainable<T: Plugin + TrainableSynthesizer>(
    v: &serde_json::Value,
) -> Result<Box<dyn TrainableSynthesizer>> {
    Ok(Box::new(typed::<T>(v)?))
}

impl SynthesizerRegistration {
    /// The registration of synthesizer `T` (used by [`crate::register_synthesizer!`]).
    pub const fn of<T: SynthesizerPlugin>() -> Self {
        Registration {
            name: T::NAME,
            version: T::VERSION,
            description: T::DESCRIPTION,
            defaults: defaults_of::<T::Params>,
            docs: T::Params::docs,
            build: build_synthesizer::<T>,
        }
    }
}

impl WeighterRegistration {
    /// The registration of weighter `T` (used by [`crate::register_weighter!`]).
    pub const fn of<T: WeighterPlugin>() -> Self {
        Registration {
            name: T::NAME,
            version: T::VERSION,
            description: T::DESCRIPTION,
            defaults: defaults_of::<T::Params>,
            docs: T::Params::docs,
            build: build_weighter::<T>,
        }
    }
}

impl TrainableRegistration {
    /// The registration of trainable synthesizer `T` (used by [`crate::register_trainable_synthesizer!`]).
    pub const fn of<T: Plugin + TrainableSynthesizer>() -> Self {
        Registration {
            name: T::NAME,
            version: T::VERSION,
            description: T::DESCRIPTION,
            defaults: defaults_of::<T::Params>,
            docs: T::Params::docs,
            build: build_trainable::<T>,
        }
    }
}

/// Registers a built-in synthesizer type (implements [`Plugin`] + [`Synthesizer`]).
#[macro_export]
macro_rules! register_synthesizer {
    ($t:ty) => {
        $crate::inventory::submit! { $crate::SynthesizerRegistration::of::<$t>() }
    };
}

/// Registers a built-in weighter type (implements [`Plugin`] + [`SampleWeighter`]).
#[macro_export]
macro_rules! register_weighter {
    ($t:ty) => {
        $crate::inventory::submit! { $crate::WeighterRegistration::of::<$t>() }
    };
}

/// Registers a built-in trainable synthesizer type.
#[macro_export]
macro_rules! register_trainable_synthesizer {
    ($t:ty) => {
        $crate::inventory::submit! { $crate::registry::TrainableRegistration::of::<$t>() }
    };
}

struct Entry<D: ?Sized> {
    info: PluginInfo,
    build: Builder<D>,
}

impl<D: ?Sized> Entry<D> {
    fn builtin(r: &Registration<D>, kind: PluginKind) -> Self
    where
        D: 'static,
    {
        let build = r.build;
        Entry {
            info: PluginInfo {
                name: r.name.to_string(),
                kind,
                version: r.version.to_string(),
                description: r.description.to_string(),
                source: PluginSource::Builtin,
                defaults: (r.defaults)(),
                params: (r.docs)(),
            },
            build: Arc::new(build),
        }
    }
}

/// The backend-free registration of a model plugin (submitted by `register_model!` through
/// `model::model_info`, in the training layer): what listing, parameter checks and parameter counts need.
pub struct ModelInfoRegistration {
    /// Registered name.
    pub name: &'static str,
    /// Plugin version.
    pub version: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Default parameters.
    pub defaults: fn() -> serde_json::Value,
    /// Parameter documentation.
    pub docs: fn() -> Vec<ParamDoc>,
    /// Parses and validates parameters.
    pub check: fn(&serde_json::Value) -> Result<()>,
    /// Trainable parameters for given parameters.
    pub parameter_count: fn(&serde_json::Value) -> Result<usize>,
}

inventory::collect!(ModelInfoRegistration);

/// A built synthesizer of either kind.
pub enum AnySynthesizer {
    /// Derives synthetic cases from real ones.
    Derived(Box<dyn Synthesizer>),
    /// A generative model, fitted before it is sampled.
    Generative(Box<dyn TrainableSynthesizer>),
}

/// Every plugin known to this process: built-ins, then loaded libraries.
pub struct Registry {
    synthesizers: Vec<Entry<dyn Synthesizer>>,
    trainables: Vec<Entry<dyn TrainableSynthesizer>>,
    weighters: Vec<Entry<dyn SampleWeighter>>,
    models: Vec<&'static ModelInfoRegistration>,
    python: Option<PythonLoader>,
}

/// Loads a Python plugin file (`*.py`) into a registry; installed by a host that embeds Python
/// (the `python` feature of the binary, the Python package) with [`Registry::set_python_loader`].
pub type PythonLoader = fn(&Path, &mut Registry) -> Result<()>;

impl Registry {
    /// The built-in plugins linked into this binary.
    pub fn builtin() -> Self {
        let mut synthesizers: Vec<_> = inventory::iter::<SynthesizerRegistration>()
            .map(|r| Entry::builtin(r, PluginKind::Synthesizer))
            .collect();
        let mut trainables: Vec<_> = inventory::iter::<TrainableRegistration>()
            .map(|r| Entry::builtin(r, PluginKind::TrainableSynthesizer))
            .collect();
        let mut weighters: Vec<_> = inventory::iter::<WeighterRegistration>()
            .map(|r| Entry::builtin(r, PluginKind::Weighter))
            .collect();
        synthesizers.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        trainables.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        weighters.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        Registry {
            synthesizers,
            trainables,
            weighters,
            models: {
                let mut m: Vec<_> = inventory::iter::<ModelInfoRegistration>().collect();
                m.sort_by_key(|m| m.name);
                m
            },
            python: None,
        }
    }

    /// Lets [`Registry::load_library`] load `*.py` plugin files with `loader`.
    pub fn set_python_loader(&mut self, loader: PythonLoader) {
        self.python = Some(loader);
    }

    /// Loads a plugin file and registers what it exports: a shared library, or a Python file
    /// (`*.py`) where a Python loader is installed.
    pub fn load_library(&mut self, path: &Path) -> Result<()> {
        if path.extension().is_some_and(|e| e == "py") {
            return match self.python {
                Some(load) => load(path, self),
                None => Err(CoreError::PluginLoad {
                    path: path.to_path_buf(),
                    problem: "is a Python plugin, and this dsma has no Python in it: build the \
                              binary with `--features python`, or run through the Python package \
                              (`python -m dsma run ...`)"
                        .into(),
                    source: None,
                }),
            };
        }
        let loaded = super::dylib::load(path)?;
        for (info, build) in loaded.synthesizers {
            self.add_synthesizer(info, build)?;
        }
        for (info, build) in loaded.weighters {
            self.add_weighter(info, build)?;
        }
        Ok(())
    }

    /// Registers a synthesizer made by a plugin host (a name already taken is an error).
    pub fn add_synthesizer(
        &mut self,
        info: PluginInfo,
        build: Builder<dyn Synthesizer>,
    ) -> Result<()> {
        self.check_new(&info)?;
        self.synthesizers.push(Entry { info, build });
        Ok(())
    }

    /// Registers a weighter made by a plugin host (a name already taken is an error).
    pub fn add_weighter(
        &mut self,
        info: PluginInfo,
        build: Builder<dyn SampleWeighter>,
    ) -> Result<()> {
        self.check_new(&info)?;
        self.weighters.push(Entry { info, build });
        Ok(())
    }

    fn check_new(&self, info: &PluginInfo) -> Result<()> {
        if let Some(existing) = self
            .infos()
            .into_iter()
            .find(|i| i.name == info.name && i.kind == info.kind)
        {
            let from = match &existing.source {
                PluginSource::Builtin => "built in".to_string(),
                PluginSource::Library(p) => format!("loaded from {}", p.display()),
            };
            let path = match &info.source {
                PluginSource::Library(p) => p.clone(),
                PluginSource::Builtin => PathBuf::new(),
            };
            return Err(CoreError::PluginLoad {
                path,
                problem: format!(
                    "{} `{}` is already registered ({from})",
                    info.kind.name(),
                    info.name
                ),
                source: None,
            });
        }
        Ok(())
    }

    /// Every registered plugin, sorted by kind then name.
    pub fn infos(&self) -> Vec<PluginInfo> {
        let mut all: Vec<PluginInfo> = self
            .synthesizers
            .iter()
            .map(|e| e.info.clone())
            .chain(self.trainables.iter().map(|e| e.info.clone()))
            .chain(self.weighters.iter().map(|e| e.info.clone()))
            .chain(self.models.iter().map(|m| PluginInfo {
                name: m.name.to_string(),
                kind: PluginKind::Model,
                version: m.version.to_string(),
                description: m.description.to_string(),
                source: PluginSource::Builtin,
                defaults: (m.defaults)(),
                params: (m.docs)(),
            }))
            .collect();
        all.sort_by(|a, b| (a.kind.name(), &a.name).cmp(&(b.kind.name(), &b.name)));
        all
    }

    /// The description of the plugin called `name` (any kind).
    pub fn describe(&self, name: &str) -> Result<PluginInfo> {
        let all = self.infos();
        match all.iter().find(|i| i.name == name) {
            Some(i) => Ok(i.clone()),
            None => Err(unknown(
                "plugin",
                name,
                all.iter().map(|i| i.name.clone()).collect(),
            )),
        }
    }

    /// Model `name`, or an "unknown model" error with a suggestion.
    pub fn model(&self, name: &str) -> Result<&'static ModelInfoRegistration> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .copied()
            .ok_or_else(|| {
                unknown(
                    "model",
                    name,
                    self.models.iter().map(|m| m.name.to_string()).collect(),
                )
            })
    }

    /// Builds synthesizer `name` with `params`.
    pub fn synthesizer(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Synthesizer>> {
        find(&self.synthesizers, PluginKind::Synthesizer, name).and_then(|e| (e.build)(params))
    }

    /// Builds trainable synthesizer `name` with `params`.
    pub fn trainable_synthesizer(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<Box<dyn TrainableSynthesizer>> {
        find(&self.trainables, PluginKind::TrainableSynthesizer, name)
            .and_then(|e| (e.build)(params))
    }

    /// Builds the synthesizer `name` of either kind (what an experiment row's `synthesizer` names);
    /// an unknown name gets the synthesizer lookup's error, which lists the synthesizers.
    pub fn any_synthesizer(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<AnySynthesizer> {
        match self.describe(name).map(|i| i.kind) {
            Ok(PluginKind::TrainableSynthesizer) => self
                .trainable_synthesizer(name, params)
                .map(AnySynthesizer::Generative),
            Ok(PluginKind::Synthesizer) => {
                self.synthesizer(name, params).map(AnySynthesizer::Derived)
            }
            Err(_) => {
                let mut known: Vec<String> = self
                    .synthesizers
                    .iter()
                    .map(|e| e.info.name.clone())
                    .chain(self.trainables.iter().map(|e| e.info.name.clone()))
                    .collect();
                known.sort();
                Err(unknown("synthesizer", name, known))
            }
            Ok(other) => Err(CoreError::invalid(
                "synthesizer",
                format!("`{name}` is a {}, not a synthesizer", other.name()),
            )),
        }
    }

    /// Builds weighter `name` with `params`.
    pub fn weighter(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<Box<dyn SampleWeighter>> {
        find(&self.weighters, PluginKind::Weighter, name).and_then(|e| (e.build)(params))
    }

    /// Whether weighter `name` with `params` gives every synthetic case weight 1
    /// ([`SampleWeighter::unit`]); `false` for a name or parameters it cannot build.
    pub fn is_unit_weighter(&self, name: &str, params: &serde_json::Value) -> bool {
        self.weighter(name, params).is_ok_and(|w| w.unit())
    }
}

fn find<'a, D: ?Sized>(
    entries: &'a [Entry<D>],
    kind: PluginKind,
    name: &str,
) -> Result<&'a Entry<D>> {
    entries.iter().find(|e| e.info.name == name).ok_or_else(|| {
        unknown(
            kind.name(),
            name,
            entries.iter().map(|e| e.info.name.clone()).collect(),
        )
    })
}

/// The "unknown plugin" error, with the closest known name when one is close.
pub fn unknown(kind: &str, name: &str, known: Vec<String>) -> CoreError {
    let suggestion = known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&name.to_lowercase(), &k.to_lowercase()),
                k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone());
    CoreError::UnknownPlugin {
        kind: kind.to_string(),
        name: name.to_string(),
        known,
        suggestion,
    }
}
