//! Checkpoints of a generator fit: any number of networks and Adam optimizers plus a JSON state,
//! saved with core's checkpoint format (CRC per file, atomic publish, `latest` pointer) every
//! `checkpoint_every` steps, so a fit killed anywhere resumes at the last save and — because every
//! step's random choices are seeded by (fit seed, step) — continues exactly as if never stopped.

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, Optimizer, SimpleOptimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::checkpoint::module_state::{
    load_module_bytes, module_bytes, parameter_paths, remap_ids, require_grad,
};
use crate::checkpoint::{self, Checkpoint};
use dsma_data::error::{CoreError, Result};
use dsma_kernels::KernelBackend;

/// Adam on a training network of backend `Autodiff<B>`.
pub type AdamOn<M, B> = OptimizerAdaptor<Adam, M, Autodiff<B>>;
/// Optimizer `O` (Adam, AdamW) on a training network of backend `Autodiff<B>`.
pub type OptimOn<O, M, B> = OptimizerAdaptor<O, M, Autodiff<B>>;

/// The JSON part of a fit checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FitState {
    step: usize,
    /// Parameter ids (visiting order) of the network each optimizer was saved with.
    optimizer_ids: std::collections::BTreeMap<String, Vec<u64>>,
    extra: serde_json::Value,
}

/// A fit checkpoint being written or read.
#[derive(Debug, Default)]
pub struct FitCheckpoint {
    ckpt: Checkpoint,
    state: FitState,
    path: PathBuf,
}

impl FitCheckpoint {
    /// An empty checkpoint of `step` completed steps carrying the plugin's `extra` state.
    pub fn new(step: usize, extra: serde_json::Value) -> Self {
        FitCheckpoint {
            state: FitState {
                step,
                extra,
                ..FitState::default()
            },
            ..FitCheckpoint::default()
        }
    }

    /// Steps completed when saved.
    pub fn step(&self) -> usize {
        self.state.step
    }

    /// The plugin's own state.
    pub fn extra(&self) -> &serde_json::Value {
        &self.state.extra
    }

    /// Adds network `name` (safetensors).
    pub fn put_module<B: Backend, M: Module<B>>(&mut self, name: &str, m: &M) -> Result<()> {
        let bytes = module_bytes(m, name)?;
        self.ckpt.files.insert(format!("{name}.safetensors"), bytes);
        Ok(())
    }

    /// Adds optimizer `name` of training network `m`.
    pub fn put_optimizer<O, B, M>(
        &mut self,
        name: &str,
        optim: &OptimOn<O, M, B>,
        m: &M,
    ) -> Result<()>
    where
        O: SimpleOptimizer<B>,
        B: KernelBackend,
        M: AutodiffModule<Autodiff<B>>,
    {
        let bytes = BinBytesRecorder::<FullPrecisionSettings>::default()
            .record(optim.to_record(), ())
            .map_err(|e| CoreError::codec(format!("optimizer {name}"), e))?;
        self.ckpt.files.insert(format!("{name}.bin"), bytes);
        let ids = parameter_paths(m).iter().map(|(_, id)| id.val()).collect();
        self.state.optimizer_ids.insert(name.to_string(), ids);
        Ok(())
    }

    /// Publishes it as `dir/step-NNNNNNN/` and moves `latest` there (older saves are removed).
    pub fn save(mut self, dir: &Path) -> Result<()> {
        self.ckpt.state =
            serde_json::to_value(&self.state).map_err(|e| CoreError::codec("fit state", e))?;
        checkpoint::save(
            dir,
            &format!("step-{:07}", self.state.step),
            &self.ckpt,
            &[],
        )?;
        Ok(())
    }

    /// The latest checkpoint in `dir`, if any.
    pub fn latest(dir: &Path) -> Result<Option<Self>> {
        let Some(path) = checkpoint::latest(dir)? else {
            return Ok(None);
        };
        let ckpt = checkpoint::load(&path)?;
        let state: FitState = serde_json::from_value(ckpt.state.clone()).map_err(|e| {
            CoreError::invalid(
                format!("checkpoint {}", path.join("state.json").display()),
                format!("unreadable fit state ({e}); the checkpoint is corrupt"),
            )
        })?;
        Ok(Some(FitCheckpoint { ckpt, state, path }))
    }

    /// The final checkpoint (step ≥ `steps`) of the fit in `dir`, else an error naming `plugin`.
    pub fn finished(dir: &Path, steps: usize, plugin: &str) -> Result<Self> {
        Self::latest(dir)?
            .filter(|c| c.step() >= steps)
            .ok_or_else(|| {
                CoreError::invalid(
                    format!("generator folder {}", dir.display()),
                    format!("holds no finished {plugin} fit"),
                )
            })
    }

    fn file(&self, name: &str) -> Result<&Vec<u8>> {
        self.ckpt.files.get(name).ok_or_else(|| {
            CoreError::invalid(
                format!("checkpoint {}", self.path.display()),
                format!("`{name}` is missing; the checkpoint is corrupt"),
            )
        })
    }

    /// Loads network `name` into `m`.
    pub fn module<B: Backend, M: Module<B>>(&self, name: &str, m: M) -> Result<M> {
        let file = format!("{name}.safetensors");
        load_module_bytes(m, self.file(&file)?, &self.path.join(&file))
    }

    /// Loads optimizer `name` into `optim`, re-keyed to the parameters of the rebuilt `m`.
    pub fn optimizer<O, B, M>(
        &self,
        name: &str,
        optim: OptimOn<O, M, B>,
        m: &M,
        device: &B::Device,
    ) -> Result<OptimOn<O, M, B>>
    where
        O: SimpleOptimizer<B>,
        B: KernelBackend,
        M: AutodiffModule<Autodiff<B>>,
    {
        let file = format!("{name}.bin");
        let path = self.path.join(&file);
        let record: <OptimOn<O, M, B> as Optimizer<M, Autodiff<B>>>::Record =
            BinBytesRecorder::<FullPrecisionSettings>::default()
                .load(self.file(&file)?.clone(), device)
                .map_err(|e| {
                    CoreError::invalid(
                        format!("checkpoint {}", path.display()),
                        format!("unreadable optimizer state ({e}); the checkpoint is corrupt"),
                    )
                })?;
        let old = self
            .state
            .optimizer_ids
            .get(name)
            .cloned()
            .unwrap_or_default();
        let now = parameter_paths(m);
        if old.len() != now.len() {
            return Err(CoreError::invalid(
                format!("checkpoint {}", path.display()),
                "its parameters do not match this network; were the generator's parameters changed?",
            ));
        }
        let record = remap_ids(record, &old, &now, &self.path)?;
        Ok(optim.load_record(record))
    }

    /// Adds training network `name` and its optimizer (as `name` and `name_optim`): a GAN's
    /// generator or discriminator.
    pub fn put_trained<O, B, M>(
        &mut self,
        name: &str,
        m: &M,
        optim: &OptimOn<O, M, B>,
    ) -> Result<()>
    where
        O: SimpleOptimizer<B>,
        B: KernelBackend,
        M: AutodiffModule<Autodiff<B>>,
    {
        self.put_module(name, m)?;
        self.put_optimizer(&format!("{name}_optim"), optim, m)
    }

    /// Loads training network `name` into `m` (gradients on) and its optimizer (`name_optim`)
    /// into `optim`, as [`FitCheckpoint::put_trained`] stored them.
    pub fn trained<O, B, M>(
        &self,
        name: &str,
        m: M,
        optim: OptimOn<O, M, B>,
        device: &B::Device,
    ) -> Result<(M, OptimOn<O, M, B>)>
    where
        O: SimpleOptimizer<B>,
        B: KernelBackend,
        M: AutodiffModule<Autodiff<B>>,
    {
        let m = require_grad(self.module(name, m)?);
        let optim = self.optimizer(&format!("{name}_optim"), optim, &m, device)?;
        Ok((m, optim))
    }
}
