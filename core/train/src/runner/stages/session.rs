//! One run's training session: the student network, its EMA teacher, AdamW and the resumable
//! [`TrainState`]; what a run's checkpoint holds and how it is restored (exact resume).

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, HasAutodiffModule};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use dsma_data::error::{CoreError, Result};
use dsma_data::seed::derive_seed;
use dsma_plugin::parse_params;
use serde::{Deserialize, Serialize};

use crate::checkpoint::module_state::{
    materialize, module_bytes, parameter_paths, remap_ids, require_grad,
};
use crate::checkpoint::{self, Checkpoint};
use crate::experiment::config::TrainConfig;
use crate::model::{load_model, ModelFactory, SegmentationModel};
use crate::runner::records::EpochRecord;
use crate::runner::report::logs::WeightLog;
use crate::runner::run_job::RunJob;
use dsma_kernels::KernelBackend;

/// The autodiff (training) version of a factory's network.
pub(crate) type TrainModel<F, B> =
    <<F as ModelFactory>::Model<B> as HasAutodiffModule<Autodiff<B>>>::TrainModule;

/// AdamW on the training network.
pub(crate) type Optim<F, B> = OptimizerAdaptor<AdamW, TrainModel<F, B>, Autodiff<B>>;
/// Its state: per-parameter moments keyed by parameter id.
pub(crate) type OptimRecord<F, B> =
    <Optim<F, B> as Optimizer<TrainModel<F, B>, Autodiff<B>>>::Record;

const SALT_INIT: u64 = 0x494e_4954; // "INIT"

/// Resumable training state (the JSON part of a checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed (global).
    pub epoch: usize,
    /// One record per completed epoch.
    pub records: Vec<EpochRecord>,
    /// Weighter state ([`dsma_plugin::SampleWeighter::history`]).
    pub weighter: serde_json::Value,
    /// Stage-2 scores and weights per epoch.
    pub weights: Vec<WeightLog>,
    /// Best (epoch, mean test Dice) among periodic stage-2 evaluations.
    pub best: Option<(usize, f64)>,
    /// Parameter ids in visiting order when saved (keys of the optimizer state).
    pub param_ids: Vec<u64>,
    /// Parameter paths in visiting order (structure check on load).
    pub param_paths: Vec<String>,
}

pub(crate) struct Session<F: ModelFactory, B: KernelBackend> {
    /// Always `Some` between steps (taken by value for the optimizer step).
    pub(crate) student: Option<TrainModel<F, B>>,
    pub(crate) ema: F::Model<B>,
    pub(crate) optim: Optim<F, B>,
    pub(crate) state: TrainState,
    pub(crate) device: B::Device,
    pub(crate) params: F::Params,
}

impl<F: ModelFactory, B: KernelBackend> Session<F, B> {
    pub(crate) fn student(&self) -> &TrainModel<F, B> {
        self.student
            .as_ref()
            .expect("student present between steps")
    }

    pub(crate) fn checkpoint(&mut self) -> Result<Checkpoint> {
        let mut ckpt = Checkpoint::default();
        ckpt.files.insert(
            "model.safetensors".into(),
            module_bytes(&self.student().valid(), "model")?,
        );
        ckpt.files
            .insert("ema.safetensors".into(), module_bytes(&self.ema, "ema")?);
        let optim = BinBytesRecorder::<FullPrecisionSettings>::default()
            .record(self.optim.to_record(), ())
            .map_err(|e| CoreError::codec("optimizer state", e))?;
        ckpt.files.insert("optimizer.bin".into(), optim);
        let paths = parameter_paths(self.student());
        self.state.param_ids = paths.iter().map(|(_, id)| id.val()).collect();
        self.state.param_paths = paths.into_iter().map(|(p, _)| p).collect();
        ckpt.state =
            serde_json::to_value(&self.state).map_err(|e| CoreError::codec("training state", e))?;
        Ok(ckpt)
    }

    pub(crate) fn save(&mut self, dir: &Path, name: &str, keep: &[&str]) -> Result<()> {
        let ckpt = self.checkpoint()?;
        checkpoint::save(dir, name, &ckpt, keep)?;
        Ok(())
    }

    /// Restores model, EMA, optimizer and state from the checkpoint folder `path`.
    pub(crate) fn restore(&mut self, path: &Path) -> Result<()> {
        let ckpt = checkpoint::load(path)?;
        let file = |n: &str| -> Result<&Vec<u8>> {
            ckpt.files.get(n).ok_or_else(|| {
                CoreError::invalid(
                    format!("checkpoint {}", path.display()),
                    format!("`{n}` is missing; the checkpoint is corrupt"),
                )
            })
        };
        let state: TrainState = serde_json::from_value(ckpt.state.clone()).map_err(|e| {
            CoreError::invalid(
                format!("checkpoint {}", path.join("state.json").display()),
                format!("unreadable training state ({e}); the checkpoint is corrupt"),
            )
        })?;
        let inner = load_model::<F, B>(
            &self.params,
            file("model.safetensors")?,
            &path.join("model.safetensors"),
            &self.device,
        )?;
        let ema = load_model::<F, B>(
            &self.params,
            file("ema.safetensors")?,
            &path.join("ema.safetensors"),
            &self.device,
        )?;
        let student = require_grad(TrainModel::<F, B>::from_inner(inner));
        let now = parameter_paths(&student);
        if now.len() != state.param_ids.len()
            || now.iter().map(|(p, _)| p).ne(state.param_paths.iter())
        {
            return Err(CoreError::invalid(
                format!("checkpoint {}", path.display()),
                "its parameters do not match this network; was the model changed?",
            ));
        }
        let record: OptimRecord<F, B> = BinBytesRecorder::<FullPrecisionSettings>::default()
            .load(file("optimizer.bin")?.clone(), &self.device)
            .map_err(|e| {
                CoreError::invalid(
                    format!("checkpoint {}", path.join("optimizer.bin").display()),
                    format!("unreadable optimizer state ({e}); the checkpoint is corrupt"),
                )
            })?;
        let record = remap_ids(record, &state.param_ids, &now, path)?;
        self.optim = self.optim.clone().load_record(record);
        self.student = Some(student);
        self.ema = ema;
        self.state = state;
        Ok(())
    }
}

impl<F: ModelFactory, B: KernelBackend> Session<F, B> {
    /// Builds the network with the run's seeded backend RNG, materialises its weights (before the
    /// EMA copy), checks patch and window sizes against it and sets up AdamW.
    pub(crate) fn new(job: &RunJob<'_>) -> Result<Self> {
        let exp = job.experiment;
        let t = &exp.train;
        let device = B::run_device(t.backend.is_gpu());
        let params: F::Params = parse_params(F::NAME, &exp.model.params)?;
        F::validate(&params)?;
        B::seed(&device, derive_seed(job.run.seed, SALT_INIT));
        let inner = F::build::<B>(&params, &device)?;
        materialize(&inner);
        check_sizes(
            inner.size_divisor(),
            inner.input_size(),
            t,
            &exp.eval.window.patch,
        )?;
        let student = require_grad(TrainModel::<F, B>::from_inner(inner.clone()));
        let optim = AdamWConfig::new()
            .with_beta_1(t.optimizer.beta1 as f32)
            .with_beta_2(t.optimizer.beta2 as f32)
            .with_epsilon(t.optimizer.eps as f32)
            .with_weight_decay(t.optimizer.weight_decay as f32)
            .init::<Autodiff<B>, TrainModel<F, B>>();
        Ok(Session {
            student: Some(student),
            ema: inner,
            optim,
            state: TrainState::default(),
            device,
            params,
        })
    }
}

/// Every patch edge and window edge must be a multiple of the network's size divisor.
pub(crate) fn check_sizes(
    divisor: usize,
    fixed: Option<[usize; 3]>,
    t: &TrainConfig,
    window: &[usize; 3],
) -> Result<()> {
    for (field, size) in [
        ("train.patch.size", &t.patch.size),
        ("eval.window.patch", window),
    ] {
        if let Some(f) = fixed {
            if *size != f {
                return Err(CoreError::invalid(
                    field,
                    format!(
                        "{size:?}; this model accepts exactly {f:?} (x, y, z): its `image_size` parameter"
                    ),
                ));
            }
        }
        if size.iter().any(|&v| v == 0 || v % divisor.max(1) != 0) {
            return Err(CoreError::invalid(
                field,
                format!(
                    "{size:?}; every edge must be a positive multiple of {divisor} for this model"
                ),
            ));
        }
    }
    Ok(())
}
