//! The generic two-stage trainer, instantiated per model and backend by
//! `registration::ModelRegistration::of`.
//!
//! Per run: build the network with a seeded backend RNG and initialise its weights at once (burn
//! 0.21 initialises lazily; the EMA copy must be made after that). Stage 1 (shared between rows with
//! the same stage-1 settings) trains on real patches; stage 2 adds one synthetic case per real case
//! per epoch from the row's synthesizer, each synthetic sample's Dice loss times its weight from the
//! row's weighter (eq. 15). Before every stage-2 epoch the current model scores every real training
//! case and every synthetic case of the epoch (full-volume sliding window, the `L'_j` and `L_k^j` of
//! eqs. 6–7), and the weighter turns the scores into weights. Every random choice of an epoch comes
//! from a ChaCha8 stream seeded by (run seed, epoch), so the RNG state of a checkpoint is its epoch.

use std::path::Path;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, HasAutodiffModule};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::case_store::StoredCase;
use crate::error::{CoreError, Result};
use crate::labels::region_targets;
use crate::loss::weighted_dice_loss;
use crate::model::{KernelBackend, ModelFactory, SegmentationModel};
use crate::plugin::AnySynthesizer;
use crate::plugin::{parse_params, EpochScores, SampleWeighter, ScoreKind, TrainableSynthesizer};
use crate::preprocess::crop_to_tumour;
use crate::runner::checkpoint::{self, Checkpoint};
use crate::runner::config::ScoringRegion;
use crate::runner::config::{Report, TrainConfig};
use crate::runner::crash_point::{self, CrashPoint};
use crate::runner::evaluate::{evaluate, labels_from_probabilities, mean_metrics, score_case};
use crate::runner::generator_fit::{fit_generator, TrainSplit};
use crate::runner::generator_lane::AHEAD_DIR;
use crate::runner::module_state::{
    ema_update, load_module_bytes, materialize, module_bytes, parameter_paths, remap_ids,
    require_grad,
};
use crate::runner::run_dir::{self, WeightLog};
use crate::runner::stage_lock::StageLock;
use crate::runner::synthesis::{sample_epoch, synthesize_epoch, SpilledImage, SynthesisQueue};
use crate::runner::{EpochRecord, RunJob, RunObserver, RunOutcome, RunResults};
use crate::seed::derive_seed;
use crate::volume::Case;

/// The autodiff (training) version of a factory's network.
type TrainModel<F, B> =
    <<F as ModelFactory>::Model<B> as HasAutodiffModule<Autodiff<B>>>::TrainModule;

/// AdamW on the training network.
type Optim<F, B> = OptimizerAdaptor<AdamW, TrainModel<F, B>, Autodiff<B>>;
/// Its state: per-parameter moments keyed by parameter id.
type OptimRecord<F, B> = <Optim<F, B> as Optimizer<TrainModel<F, B>, Autodiff<B>>>::Record;

const SALT_INIT: u64 = 0x494e_4954; // "INIT"
const SALT_EPOCH: u64 = 0x4550_4f43; // "EPOC"

/// Resumable training state (the JSON part of a checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed (global).
    pub epoch: usize,
    /// One record per completed epoch.
    pub records: Vec<EpochRecord>,
    /// Weighter state ([`SampleWeighter::history`]).
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

struct Session<F: ModelFactory, B: KernelBackend> {
    /// Always `Some` between steps (taken by value for the optimizer step).
    student: Option<TrainModel<F, B>>,
    ema: F::Model<B>,
    optim: Optim<F, B>,
    state: TrainState,
    device: B::Device,
    params: F::Params,
}

fn load_model<F: ModelFactory, B: KernelBackend>(
    params: &F::Params,
    bytes: &[u8],
    file: &Path,
    device: &B::Device,
) -> Result<F::Model<B>> {
    load_module_bytes(F::build::<B>(params, device)?, bytes, file)
}

impl<F: ModelFactory, B: KernelBackend> Session<F, B> {
    fn student(&self) -> &TrainModel<F, B> {
        self.student
            .as_ref()
            .expect("student present between steps")
    }

    fn checkpoint(&mut self) -> Result<Checkpoint> {
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

    fn save(&mut self, dir: &Path, name: &str, keep: &[&str]) -> Result<()> {
        let ckpt = self.checkpoint()?;
        checkpoint::save(dir, name, &ckpt, keep)?;
        Ok(())
    }

    /// Restores model, EMA, optimizer and state from the checkpoint folder `path`.
    fn restore(&mut self, path: &Path) -> Result<()> {
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

/// Trains and evaluates one run (both stages), resuming from checkpoints where they exist.
pub fn train<F: ModelFactory, B: KernelBackend>(
    job: &RunJob<'_>,
    obs: &mut dyn RunObserver,
) -> Result<RunOutcome> {
    let mut s = Session::<F, B>::new(job)?;
    let dirs = RunDirs::new(job)?;
    stage1(&mut s, job, &dirs, obs)?;
    stage2(&mut s, job, &dirs, obs)?;
    final_evaluation(&mut s, job, &dirs, obs)
}

/// The checkpoint folders of one run: the shared stage 1's and the run's own.
struct RunDirs {
    stage1: std::path::PathBuf,
    run: std::path::PathBuf,
}

impl RunDirs {
    /// The folders of `job`; writes the split into both run folders.
    fn new(job: &RunJob<'_>) -> Result<Self> {
        job.data.split.write(&job.stage1_dir.join("split.json"))?;
        job.data.split.write(&job.run_dir.join("split.json"))?;
        Ok(RunDirs {
            stage1: job.stage1_dir.join("checkpoints"),
            run: job.run_dir.join("checkpoints"),
        })
    }
}

impl<F: ModelFactory, B: KernelBackend> Session<F, B> {
    /// Builds the network with the run's seeded backend RNG, materialises its weights (before the
    /// EMA copy), checks patch and window sizes against it and sets up AdamW.
    fn new(job: &RunJob<'_>) -> Result<Self> {
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

/// Stage 1 (shared between rows by hash): resumes from the run's own stage-2 checkpoint if there is
/// one, else reads or trains the shared stage 1 under its lock.
fn stage1<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    dirs: &RunDirs,
    obs: &mut dyn RunObserver,
) -> Result<()> {
    let t = &job.experiment.train;
    let epochs = t.stage1.epochs;
    if let Some(p) = checkpoint::latest(&dirs.run)? {
        s.restore(&p)?;
        obs.message(&format!(
            "resumed {} at epoch {}",
            job.run_dir.display(),
            s.state.epoch
        ));
    } else {
        // Other shards may share this stage 1: one process at a time reads or trains it.
        let _lock = StageLock::acquire(job.stage1_dir, obs)?;
        if let Some(p) = checkpoint::latest(&dirs.stage1)? {
            s.restore(&p)?;
            if s.state.epoch < epochs {
                obs.message(&format!("resumed stage 1 at epoch {}", s.state.epoch));
            }
        }
        if s.state.epoch < epochs {
            obs.stage(1, s.state.epoch, epochs);
        }
        while s.state.epoch < epochs {
            let plan = EpochPlan::real_only(1, s.state.epoch, t.stage1.lr);
            let rec = run_epoch(s, job, &plan, obs)?;
            finish_epoch(s, job, rec, obs, false)?;
            if s.state.epoch == epochs || s.state.epoch % t.checkpoint_every == 0 {
                s.save(&dirs.stage1, &format!("epoch-{:05}", s.state.epoch), &[])?;
            }
            run_dir::write_records(job.stage1_dir, &s.state.records)?;
            crash_point::hit(CrashPoint::Epoch, s.state.epoch);
        }
    }
    let done = s.state.records.iter().filter(|r| r.stage == 1).count();
    if done < epochs {
        return Err(CoreError::invalid(
            format!("stage-1 run {}", job.stage1_dir.display()),
            "its checkpoint is from a different schedule; delete the folder to retrain it",
        ));
    }
    Ok(())
}

/// Where a row's stage-2 synthetic cases come from.
enum Source {
    /// No synthesizer: stage 2 continues on real data.
    None,
    /// A synthesizer deriving cases from real ones (made ahead by the synthesis queue).
    Derived(Box<dyn crate::plugin::Synthesizer>),
    /// A fitted generative comparator, sampled on the trainer's thread.
    Generative(Box<dyn TrainableSynthesizer>),
}

/// Stage 2's first set of generated images as the generator lane drew it, and the seconds the
/// trainer waited for it.
type AheadImages = (Vec<SpilledImage>, f64);

impl Source {
    /// The run's synthesizer: from the generator lane (fitted, with the first set drawn ahead of
    /// the trainer) when it works on this run, else built (and fitted) here.
    fn of_job(job: &RunJob<'_>, obs: &mut dyn RunObserver) -> Result<(Self, Option<AheadImages>)> {
        Ok(match job.ahead {
            Some(a) => {
                let d = a.take(obs)?;
                let images = Some((d.images, d.waited_s));
                (Source::Generative(d.generator), images)
            }
            None => (Source::of_row(job, obs)?, None),
        })
    }

    /// The row's synthesizer, built (and fitted, for a generative one).
    fn of_row(job: &RunJob<'_>, obs: &mut dyn RunObserver) -> Result<Self> {
        let Some(p) = &job.experiment.rows[job.run.row].synthesizer else {
            return Ok(Source::None);
        };
        Ok(match job.registry.any_synthesizer(&p.name, &p.params)? {
            AnySynthesizer::Derived(s) => Source::Derived(s),
            AnySynthesizer::Generative(mut g) => {
                fit_generator(g.as_mut(), job, obs)?;
                Source::Generative(g)
            }
        })
    }
}

/// Stage 2: the row's method. Each epoch: this epoch's synthetic set (queue or generator), scores
/// and weights (eqs. 6–8), one epoch of weighted steps (eq. 15), checkpoints and logs.
fn stage2<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    dirs: &RunDirs,
    obs: &mut dyn RunObserver,
) -> Result<()> {
    let t = &job.experiment.train;
    let (e1, e2) = (t.stage1.epochs, t.stage2.epochs);
    let mut weighter = job.experiment.rows[job.run.row].build_weighter(job.registry)?;
    if !s.state.weighter.is_null() {
        weighter.restore(s.state.weighter.clone())?;
    }
    let (source, ahead) = Source::of_job(job, obs)?;
    if s.state.epoch < e1 + e2 {
        obs.stage(2, s.state.epoch, e1 + e2);
    }
    // Synthetic sets live on disk while they are used (bounded memory), rebuilt on a resume.
    let spill = job.run_dir.join("spill");
    remove_spilled(Some(&spill))?;
    std::thread::scope(|scope| -> Result<()> {
        let (real, seed, spill) = (&job.data.train, job.run.seed, spill.as_path());
        let convention = job.data.convention;
        let regenerate = match &source {
            Source::Generative(g) => t.synthesis.regenerate && g.regenerate(),
            _ => t.synthesis.regenerate,
        };
        // The lane's set is stage 2's first; a run resumed after it draws its own sets.
        let first = ahead.filter(|_| s.state.epoch == e1);
        let mut epochs = s.state.epoch.saturating_sub(e1)..e2;
        if first.is_some() {
            epochs.start += 1;
        }
        let synthesis = crate::runner::config::SynthesisConfig {
            regenerate,
            ..t.synthesis
        };
        let queue = match &source {
            _ if s.state.epoch >= e1 + e2 => Queue::None,
            Source::Derived(synth) => Queue::Derived(SynthesisQueue::start(
                scope,
                move |k| synthesize_epoch(synth.as_ref(), real, seed, k, spill),
                epochs,
                &t.synthesis,
            )?),
            Source::Generative(_) if first.is_some() && (!regenerate || epochs.is_empty()) => {
                Queue::Generative(None)
            }
            Source::Generative(g) => Queue::Generative(Some(SynthesisQueue::start(
                scope,
                move |k| sample_epoch(g.as_ref(), &TrainSplit(real), seed, k, spill, convention),
                epochs,
                &synthesis,
            )?)),
            Source::None => Queue::None,
        };
        let mut sets = SyntheticSets {
            queue,
            first,
            fixed: None,
            fixed_images: None,
            regenerate,
            spill,
        };
        while s.state.epoch < e1 + e2 {
            let e = s.state.epoch;
            let (synthetic, wait_s) = sets.next(s, job, e, obs)?;
            let weights = if synthetic.is_empty() {
                Vec::new()
            } else {
                weigh(s, job, weighter.as_mut(), &synthetic, e)?
            };
            let plan = EpochPlan {
                stage: 2,
                epoch: e,
                lr: t.stage2.lr,
                synthetic: &synthetic,
                weights: &weights,
                wait_s,
            };
            let rec = run_epoch(s, job, &plan, obs)?;
            sets.release(&synthetic)?;
            s.state.weighter = weighter.history();
            finish_epoch(s, job, rec, obs, true)?;
            save_stage2_epoch(s, job, dirs)?;
        }
        drop(sets);
        Ok(())
    })?;
    remove_spilled(Some(&spill))?;
    remove_spilled(Some(&job.run_dir.join(AHEAD_DIR)))?;
    // The run is complete: even without stage-2 epochs, leave a checkpoint that marks it.
    if checkpoint::latest(&dirs.run)?.is_none() {
        s.save(&dirs.run, &format!("epoch-{:05}", s.state.epoch), &["best"])?;
    }
    Ok(())
}

/// After a stage-2 epoch: the run's checkpoint (every `checkpoint_every` epochs and at the end),
/// its logs (epochs, weights, the weighter's record), then the crash point the resume tests use.
fn save_stage2_epoch<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    dirs: &RunDirs,
) -> Result<()> {
    let t = &job.experiment.train;
    let (e1, e2) = (t.stage1.epochs, t.stage2.epochs);
    let done = s.state.epoch == e1 + e2;
    if done || (s.state.epoch - e1) % t.checkpoint_every == 0 {
        s.save(&dirs.run, &format!("epoch-{:05}", s.state.epoch), &["best"])?;
    }
    run_dir::write_records(job.run_dir, &s.state.records)?;
    run_dir::write_weights(job.run_dir, &s.state.weights, &job.data.train)?;
    run_dir::write_json(job.run_dir, "weighter.json", &s.state.weighter)?;
    crash_point::hit(CrashPoint::Epoch, s.state.epoch);
    Ok(())
}

/// Deletes a spill folder (a set's, or the run's whole spill area) if it is there.
fn remove_spilled(folder: Option<&Path>) -> Result<()> {
    match folder.filter(|f| f.exists()) {
        Some(f) => std::fs::remove_dir_all(f).map_err(|e| CoreError::io(f, e)),
        None => Ok(()),
    }
}

/// The background producer of a row's synthetic sets.
enum Queue {
    /// No synthesizer.
    None,
    /// Cases derived from real ones.
    Derived(SynthesisQueue<Vec<StoredCase>>),
    /// Images from a generative comparator, labelled by the teacher on arrival (no queue when the
    /// generator lane drew the only set).
    Generative(Option<SynthesisQueue<Vec<SpilledImage>>>),
}

/// The synthetic sets of stage 2's epochs from the background queue (a fresh set per epoch, or
/// the first set kept when `regenerate` is off; kept generated images are relabelled by each
/// epoch's teacher).
struct SyntheticSets<'a> {
    queue: Queue,
    /// The first set and the seconds waited for it, when the generator lane drew it.
    first: Option<AheadImages>,
    fixed: Option<Vec<StoredCase>>,
    fixed_images: Option<Vec<SpilledImage>>,
    regenerate: bool,
    /// Where the sets are written.
    spill: &'a Path,
}

impl SyntheticSets<'_> {
    /// Deletes the spilled folder of a set once its epoch is trained, unless it is the kept set.
    fn release(&self, set: &[StoredCase]) -> Result<()> {
        let kept = self
            .fixed
            .as_ref()
            .and_then(|f| f.first())
            .map(StoredCase::dir);
        let folder = set.first().and_then(|c| c.dir().parent());
        if folder == kept.and_then(Path::parent) {
            return Ok(());
        }
        remove_spilled(folder)
    }

    /// The set of global epoch `e` and the seconds the trainer waited for the queue.
    fn next<F: ModelFactory, B: KernelBackend>(
        &mut self,
        s: &Session<F, B>,
        job: &RunJob<'_>,
        e: usize,
        obs: &mut dyn RunObserver,
    ) -> Result<(Vec<StoredCase>, f64)> {
        match &self.queue {
            Queue::None => Ok((Vec::new(), 0.0)),
            Queue::Derived(q) => {
                if let Some(set) = self.fixed.as_ref().filter(|_| !self.regenerate) {
                    return Ok((set.clone(), 0.0));
                }
                let (_, set, wait) = q.next()?;
                if !self.regenerate {
                    self.fixed = Some(set.clone());
                }
                Ok((set, wait))
            }
            Queue::Generative(q) => {
                let (images, wait) = match self.fixed_images.as_ref().filter(|_| !self.regenerate) {
                    Some(images) => (images.clone(), 0.0),
                    None => {
                        let (images, wait) = match (self.first.take(), q) {
                            (Some(set), _) => set,
                            (None, Some(q)) => q.next().map(|(_, images, w)| (images, w))?,
                            (None, None) => {
                                return Err(CoreError::invalid(
                                    "synthesis",
                                    "no generator queue for this epoch",
                                ))
                            }
                        };
                        if !self.regenerate {
                            self.fixed_images = Some(images.clone());
                        }
                        (images, wait)
                    }
                };
                let start = Instant::now();
                let folder = self.spill.join(format!("labelled-{e:04}"));
                let set = label_generated(&images, &s.ema, job, e, &s.device, &folder)?;
                // Images drawn for this epoch only are not needed once labelled.
                if self.fixed_images.is_none() {
                    remove_spilled(images.first().and_then(|i| i.case.dir().parent()))?;
                }
                obs.message(&format!(
                    "epoch {}: {} generated images labelled by the EMA teacher after epoch {e} \
                     ({:.1} s; waited {wait:.1} s for the generator)",
                    e + 1,
                    set.len(),
                    start.elapsed().as_secs_f64()
                ));
                Ok((set, wait))
            }
        }
    }
}

/// The final evaluation on the test split (the last or the best stage-2 model), the curves and
/// `results.json`.
fn final_evaluation<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    dirs: &RunDirs,
    obs: &mut dyn RunObserver,
) -> Result<RunOutcome> {
    let exp = job.experiment;
    let (reported, epoch, model) = match (exp.eval.report, s.state.best) {
        (Report::Best, Some((epoch, _))) => {
            let p = dirs.run.join("best");
            let ckpt = checkpoint::load(&p)?;
            let bytes = ckpt.files.get("model.safetensors").ok_or_else(|| {
                CoreError::invalid(
                    format!("checkpoint {}", p.display()),
                    "model.safetensors is missing",
                )
            })?;
            let m = load_model::<F, B>(&s.params, bytes, &p.join("model.safetensors"), &s.device)?;
            (Report::Best, epoch, m)
        }
        _ => (Report::Last, s.state.epoch, s.student().valid()),
    };
    obs.message("evaluating the test split");
    let pred_dir = job.run_dir.join("predictions");
    let cases = evaluate::<B, F::Model<B>>(
        &model,
        &job.data.test,
        &exp.eval,
        &s.device,
        exp.eval.save_predictions.then_some(pred_dir.as_path()),
    )?;
    let results = RunResults {
        row: job.run.label.clone(),
        dataset: job.run.dataset_name.clone(),
        repeat: job.run.repeat,
        seed: job.run.seed,
        reported,
        epoch,
        mean: mean_metrics(&cases),
        cases,
    };
    // The final evaluation of the last model is the curves' last test point.
    if reported == Report::Last {
        if let Some(last) = s.state.records.last_mut().filter(|r| r.test_dice.is_none()) {
            let m = &results.mean;
            last.test_dice = Some([m.WT.dice, m.TC.dice, m.ET.dice, m.AVE.dice]);
        }
        run_dir::write_records(job.run_dir, &s.state.records)?;
    }
    let e1 = exp.train.stage1.epochs;
    crate::runner::curves::draw(&job.run_dir.join("curves.png"), &s.state.records, e1)?;
    run_dir::write_results(job.run_dir, &results)?;
    Ok(RunOutcome {
        results,
        run_dir: job.run_dir.to_path_buf(),
    })
}

/// Every patch edge and window edge must be a multiple of the network's size divisor.
fn check_sizes(
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

/// Scores the real training cases and this epoch's synthetic cases (unless the weighter does not
/// read scores); asks the weighter for weights.
fn weigh<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    weighter: &mut dyn SampleWeighter,
    synthetic: &[StoredCase],
    epoch: usize,
) -> Result<Vec<f64>> {
    let (real, scores) = if weighter.needs_scores() {
        let model = s.student().valid();
        let kind: ScoreKind = weighter.score_kind();
        let cfg = &job.experiment.eval;
        let region = job.experiment.train.scoring;
        // At least one training patch and one inference window around the tumour.
        let (tp, wp) = (job.experiment.train.patch.size, cfg.window.patch);
        let patch = [0, 1, 2].map(|a| tp[a].max(wp[a]));
        let score = |c: &Case| match region {
            ScoringRegion::Full => score_case::<B, F::Model<B>>(&model, c, kind, cfg, &s.device),
            ScoringRegion::Tumour => {
                let crop = crop_to_tumour(c, patch);
                score_case::<B, F::Model<B>>(&model, &crop, kind, cfg, &s.device)
            }
        };
        (
            job.data
                .train
                .iter()
                .map(|c| score(&c.load()?))
                .collect::<Result<Vec<_>>>()?,
            synthetic
                .iter()
                .map(|c| score(&c.load()?))
                .collect::<Result<Vec<_>>>()?,
        )
    } else {
        // The weighter ignores scores (`uniform`, no weighter): no scoring pass.
        (Vec::new(), vec![f64::NAN; synthetic.len()])
    };
    let k = epoch - job.experiment.train.stage1.epochs;
    let weights = weighter.weights(&EpochScores {
        epoch: k,
        real: &real,
        synthetic: &scores,
    })?;
    let weighter_name = job.experiment.rows[job.run.row].weighter_name();
    crate::plugin::check_weights(weighter_name, &weights, scores.len())?;
    s.state.weights.push(WeightLog {
        epoch: epoch + 1,
        real_scores: real,
        sources: synthetic.iter().map(|c| c.id().to_string()).collect(),
        scores,
        weights: weights.clone(),
    });
    Ok(weights)
}

/// What one epoch trains on.
struct EpochPlan<'a> {
    /// 1 or 2.
    stage: u8,
    /// Global epoch, 0-based.
    epoch: usize,
    /// Learning rate.
    lr: f64,
    /// This epoch's synthetic cases (empty in stage 1).
    synthetic: &'a [StoredCase],
    /// One weight per synthetic case.
    weights: &'a [f64],
    /// Seconds the trainer waited for the synthetic set.
    wait_s: f64,
}

impl EpochPlan<'static> {
    /// An epoch on real cases only.
    fn real_only(stage: u8, epoch: usize, lr: f64) -> Self {
        EpochPlan {
            stage,
            epoch,
            lr,
            synthetic: &[],
            weights: &[],
            wait_s: 0.0,
        }
    }
}

/// One epoch: every real case (and synthetic case) contributes `patches_per_case` patches, shuffled
/// and batched; one AdamW step per batch; the EMA teacher follows every step.
fn run_epoch<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    plan: &EpochPlan<'_>,
    obs: &mut dyn RunObserver,
) -> Result<EpochRecord> {
    let EpochPlan {
        stage,
        epoch,
        lr,
        synthetic,
        weights,
        wait_s,
    } = *plan;
    let started = Instant::now();
    let t = &job.experiment.train;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
        derive_seed(job.run.seed, SALT_EPOCH),
        epoch as u64,
    ));
    // (case, weight) per sample.
    let mut samples: Vec<(&StoredCase, f64)> = Vec::new();
    for _ in 0..t.patches_per_case {
        for c in &job.data.train {
            samples.push((c, 1.0));
        }
        for (c, &w) in synthetic.iter().zip(weights) {
            samples.push((c, w));
        }
    }
    samples.shuffle(&mut rng);
    let steps = samples.len().div_ceil(t.batch);
    obs.epoch_start(epoch, steps);
    let mut loss_sum = 0.0;
    for batch in samples.chunks(t.batch) {
        let Batch { x, y, w } = batch_tensors::<B>(batch, &t.patch, &mut rng, &s.device)?;
        let student = s.student.take().expect("student present between steps");
        let loss = weighted_dice_loss(student.forward(x), y, w);
        let value: f64 = loss.clone().into_scalar().elem();
        if !value.is_finite() {
            return Err(CoreError::invalid(
                "training",
                format!(
                    "the loss became {value} at epoch {} (lower the learning rate?)",
                    epoch + 1
                ),
            ));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        let student = s.optim.step(lr, student, grads);
        let ema = s.ema.clone();
        s.ema = ema_update(ema, &student.valid(), t.ema_decay);
        s.student = Some(student);
        loss_sum += value;
        obs.step(value);
    }
    let synth_weights: Vec<f64> = weights.to_vec();
    Ok(EpochRecord {
        stage,
        epoch: epoch + 1,
        lr,
        loss: loss_sum / steps.max(1) as f64,
        steps,
        synthetic: synthetic.len(),
        mean_weight: (!synth_weights.is_empty())
            .then(|| synth_weights.iter().sum::<f64>() / synth_weights.len() as f64),
        real_score: s
            .state
            .weights
            .last()
            .filter(|l| l.epoch == epoch + 1 && !l.real_scores.is_empty())
            .map(|l| l.real_scores.iter().sum::<f64>() / l.real_scores.len() as f64),
        test_dice: None,
        wait_s,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One batch of (case, foreground, weight) samples as tensors: a random patch per sample
/// (`sample_patch`), its WT/TC/ET targets and the samples' loss weights.
fn batch_tensors<B: Backend>(
    batch: &[(&StoredCase, f64)],
    cfg: &crate::preprocess::PatchConfig,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Result<Batch<B>> {
    let [px, py, pz] = cfg.size;
    let n = batch.len();
    let mut x = Vec::with_capacity(n * 4 * pz * py * px);
    let mut y = Vec::with_capacity(n * 3 * pz * py * px);
    let mut w = Vec::with_capacity(n);
    for (case, weight) in batch {
        let patch = case.sample_patch(cfg, rng)?;
        x.extend(patch.image.iter().copied());
        y.extend(
            region_targets(patch.label.view(), case.meta().convention)
                .iter()
                .copied(),
        );
        w.push(*weight as f32);
    }
    let channels = x.len() / (n * pz * py * px);
    Ok(Batch {
        x: Tensor::from_data(TensorData::new(x, [n, channels, pz, py, px]), device),
        y: Tensor::from_data(TensorData::new(y, [n, 3, pz, py, px]), device),
        w: Tensor::from_data(TensorData::new(w, [n]), device),
    })
}

/// Images, WT/TC/ET targets and per-sample loss weights of one training batch.
struct Batch<B: Backend> {
    x: Tensor<Autodiff<B>, 5>,
    y: Tensor<Autodiff<B>, 5>,
    w: Tensor<Autodiff<B>, 1>,
}

/// Periodic test evaluation (best checkpoint in stage 2), then the record is appended.
fn finish_epoch<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    mut rec: EpochRecord,
    obs: &mut dyn RunObserver,
    stage2: bool,
) -> Result<()> {
    let every = job.experiment.eval.every;
    s.state.epoch += 1;
    if every > 0 && s.state.epoch % every == 0 {
        let model = s.student().valid();
        let cases = evaluate::<B, F::Model<B>>(
            &model,
            &job.data.test,
            &job.experiment.eval,
            &s.device,
            None,
        )?;
        let m = mean_metrics(&cases);
        rec.test_dice = Some([m.WT.dice, m.TC.dice, m.ET.dice, m.AVE.dice]);
        if stage2 && s.state.best.is_none_or(|(_, b)| m.AVE.dice > b) {
            s.state.best = Some((s.state.epoch, m.AVE.dice));
            s.state.records.push(rec.clone());
            let dir = job.run_dir.join("checkpoints");
            let ckpt = s.checkpoint()?;
            s.state.records.pop();
            save_best(&dir, &ckpt)?;
        }
    }
    obs.epoch_end(&rec);
    s.state.records.push(rec);
    Ok(())
}

/// Writes `dir/best/` atomically without moving the `latest` pointer.
fn save_best(dir: &Path, ckpt: &Checkpoint) -> Result<()> {
    let staging = dir.join(".best-staging");
    if let Err(e) = checkpoint::save(&staging, "best", ckpt, &[]) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let target = dir.join("best");
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| CoreError::io(&target, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    std::fs::rename(staging.join("best"), &target).map_err(|e| CoreError::io(&target, e))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}

/// Turns generated images into cases: images without labels get the EMA teacher's hard labels
/// at the evaluation threshold (§4.1). The teacher is the EMA after global epoch `epoch`, which
/// the checkpoint of that epoch holds, so a resumed run labels the same images identically.
fn label_generated<B: Backend, M: SegmentationModel<B>>(
    images: &[SpilledImage],
    teacher: &M,
    job: &RunJob<'_>,
    epoch: usize,
    device: &B::Device,
    folder: &Path,
) -> Result<Vec<StoredCase>> {
    let convention = job.data.convention;
    images
        .iter()
        .enumerate()
        .map(|(j, img)| {
            let case = img.case.load()?;
            let label = if img.labelled {
                case.label
            } else {
                let probs = crate::inference::sliding_window::<B, M>(
                    teacher,
                    case.image.view(),
                    &job.experiment.eval.window,
                    device,
                )?;
                labels_from_probabilities(&probs, job.experiment.eval.threshold, convention)
            };
            // The image is linked into the labelled set, not written again.
            let id = format!("generated-{epoch}-{j}");
            img.case
                .relabelled(&folder.join(format!("{j:05}")), &id, &label)
        })
        .collect()
}

/// Labels `images` with the EMA teacher of the latest checkpoint in `checkpoints` (a run's
/// `checkpoints/` folder), as the runner labels generated images: sliding window, then hard labels
/// at the evaluation threshold ([`crate::runner::registration::LabelFn`]).
pub fn teacher_labels<F: ModelFactory, B: KernelBackend>(
    exp: &crate::runner::config::Experiment,
    checkpoints: &Path,
    images: &[ndarray::Array4<f32>],
    convention: crate::labels::LabelConvention,
) -> Result<Vec<ndarray::Array3<u8>>> {
    let params: F::Params = parse_params(F::NAME, &exp.model.params)?;
    let latest = checkpoint::latest(checkpoints)?.ok_or_else(|| {
        CoreError::invalid(
            checkpoints.display().to_string(),
            "holds no checkpoint; is it the `checkpoints` folder of a run?",
        )
    })?;
    let ckpt = checkpoint::load(&latest)?;
    let file = latest.join("ema.safetensors");
    let bytes = ckpt.files.get("ema.safetensors").ok_or_else(|| {
        CoreError::invalid(
            format!("checkpoint {}", latest.display()),
            "ema.safetensors is missing",
        )
    })?;
    let device = B::run_device(exp.train.backend.is_gpu());
    let teacher = load_model::<F, B>(&params, bytes, &file, &device)?;
    images
        .iter()
        .map(|img| {
            let probs = crate::inference::sliding_window::<B, F::Model<B>>(
                &teacher,
                img.view(),
                &exp.eval.window,
                &device,
            )?;
            Ok(labels_from_probabilities(
                &probs,
                exp.eval.threshold,
                convention,
            ))
        })
        .collect()
}
