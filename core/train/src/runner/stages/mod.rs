//! The stage loop: the generic two-stage trainer, instantiated per model and backend by
//! `runner::registration::ModelRegistration::of` ([`session`]: the networks and their checkpoint;
//! [`epoch`]: one epoch of steps).
//!
//! Per run: build the network with a seeded backend RNG and initialise its weights at once (burn
//! 0.21 initialises lazily; the EMA copy must be made after that). Stage 1 (shared between rows with
//! the same stage-1 settings) trains on real patches; stage 2 adds one synthetic case per real case
//! per epoch from the row's synthesizer, each synthetic sample's Dice loss times its weight from the
//! row's weighter (eq. 15). Before every stage-2 epoch the current model scores every real training
//! case and every synthetic case of the epoch (full-volume sliding window, the `L'_j` and `L_k^j` of
//! eqs. 6–7), and the weighter turns the scores into weights. Every random choice of an epoch comes
//! from a ChaCha8 stream seeded by (run seed, epoch), so the RNG state of a checkpoint is its epoch.

pub mod epoch;
pub mod session;

use burn::module::AutodiffModule;
use dsma_data::error::{CoreError, Result};

use crate::checkpoint::crash_point::{self, CrashPoint};
use crate::checkpoint::{self};
use crate::experiment::config::Report;
use crate::model::ModelFactory;
use crate::runner::evaluate::{evaluate, mean_metrics};
use crate::runner::progress::RunObserver;
use crate::runner::records::RunResults;
use crate::runner::report::logs;
use crate::runner::run_job::{RunJob, RunOutcome};
use crate::runner::scoring::weigh;
use crate::runner::stage_lock::StageLock;
use crate::runner::synthesis::generator_lane::AHEAD_DIR;
use crate::runner::synthesis::sets::{remove_spilled, Source, SyntheticSets};
use dsma_kernels::KernelBackend;
use epoch::{finish_epoch, run_epoch, EpochPlan};
use session::Session;

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
            if s.state.epoch == epochs || s.state.epoch.is_multiple_of(t.checkpoint_every) {
                s.save(&dirs.stage1, &format!("epoch-{:05}", s.state.epoch), &[])?;
            }
            logs::write_records(job.stage1_dir, &s.state.records)?;
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
        let mut sets = SyntheticSets::start(scope, &source, ahead, s.state.epoch, job, &spill)?;
        while s.state.epoch < e1 + e2 {
            let e = s.state.epoch;
            let (synthetic, wait_s) = sets.next(&s.ema, &s.device, job, e, obs)?;
            let weights = if synthetic.is_empty() {
                Vec::new()
            } else {
                let student = s.student();
                let log = weigh(
                    || student.valid(),
                    &s.device,
                    job,
                    weighter.as_mut(),
                    &synthetic,
                    e,
                )?;
                let weights = log.weights.clone();
                s.state.weights.push(log);
                weights
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
    if done || (s.state.epoch - e1).is_multiple_of(t.checkpoint_every) {
        s.save(&dirs.run, &format!("epoch-{:05}", s.state.epoch), &["best"])?;
    }
    logs::write_records(job.run_dir, &s.state.records)?;
    logs::write_weights(job.run_dir, &s.state.weights, &job.data.train)?;
    logs::write_json(job.run_dir, "weighter.json", &s.state.weighter)?;
    crash_point::hit(CrashPoint::Epoch, s.state.epoch);
    Ok(())
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
            let m = crate::model::load_model::<F, B>(
                &s.params,
                bytes,
                &p.join("model.safetensors"),
                &s.device,
            )?;
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
        logs::write_records(job.run_dir, &s.state.records)?;
    }
    let e1 = exp.train.stage1.epochs;
    crate::runner::report::curves::draw(&job.run_dir.join("curves.png"), &s.state.records, e1)?;
    logs::write_results(job.run_dir, &results)?;
    Ok(RunOutcome {
        results,
        run_dir: job.run_dir.to_path_buf(),
    })
}
