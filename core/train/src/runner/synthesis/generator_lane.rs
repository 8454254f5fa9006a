//! The generator lane: a background thread that works ahead of the trainer through an
//! experiment's generative rows. For each such run it takes the run's lock, fits the generator
//! (or loads the shared fit) and samples the run's first stage-2 set into `<run>/ahead/`, while
//! the trainer is still busy with earlier runs (or this run's stage 1). The trainer then finds the
//! images drawn when its stage 2 begins instead of waiting for the sampler.
//!
//! The lane works through its runs in the trainer's order and keeps at most
//! `train.synthesis.ahead_runs` drawn sets that the trainer has not taken yet (the bound on the
//! disk they use); fits are not bounded (they live in the shared cache anyway). What the trainer
//! receives is what its own queue would have drawn: the same generator fit, the same seed
//! ([`crate::runner::synthesis::queue::case_seed`]`(run seed, 0, usize::MAX)`), the same worker pool
//! size. Generators draw every random number from their own ChaCha streams, never from the
//! backend's global RNG, so the lane cannot disturb the trainer's seeded initialisation.
//!
//! Messages of the lane reach the run's observer through [`Relay`], between the trainer's own.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::Scope;
use std::time::Instant;

use crate::experiment::config::Experiment;
use crate::runner::plan::PlannedRun;
use crate::runner::prepare::PreparedData;
use crate::runner::progress::RunObserver;
use crate::runner::records::EpochRecord;
use crate::runner::stage_lock::StageLock;
use crate::runner::synthesis::generator_fit::{fit_generator, FitJob, TrainSplit};
use crate::runner::synthesis::queue::{sample_epoch, worker_pool, SpilledImage};
use dsma_data::error::{CoreError, Result};
use dsma_plugin::{AnySynthesizer, PluginKind, Registry, TrainableSynthesizer};

/// The folder of a run that holds the set the lane drew for it.
pub const AHEAD_DIR: &str = "ahead";

/// One run the lane may work on, with everything its job needs.
pub struct LaneRun<'a> {
    /// Position of the run in the trainer's list.
    pub index: usize,
    /// The resolved experiment of the run's grid point.
    pub experiment: &'a Experiment,
    /// The run.
    pub run: &'a PlannedRun,
    /// Its dataset, prepared.
    pub data: &'a PreparedData,
    /// Folder of the run's shared stage 1.
    pub stage1_dir: PathBuf,
    /// Folder of the run.
    pub run_dir: PathBuf,
}

/// Whether the lane should work on `run` of `exp`: a generative row with stage-2 epochs, and the
/// lane switched on.
pub fn wants(exp: &Experiment, run: &PlannedRun, registry: &Registry) -> bool {
    let Some(s) = &exp.rows[run.row].synthesizer else {
        return false;
    };
    exp.train.synthesis.ahead_runs > 0
        && exp.train.stage2.epochs > 0
        && registry
            .describe(&s.name)
            .is_ok_and(|i| i.kind == PluginKind::TrainableSynthesizer)
}

/// What the lane found when it took a run's lock.
pub enum Claim {
    /// The run was finished (by another process, meanwhile); lock released.
    Finished,
    /// The run has checkpoints of its own: the trainer resumes it the usual way, under this lock.
    Resume(StageLock),
    /// A fresh run: its first set will follow; the trainer holds this lock while training it.
    Fresh(StageLock),
}

/// A run's fitted generator and the first stage-2 set the lane drew with it.
pub struct Drawn {
    /// The fitted generator (the trainer samples later epochs' sets with it).
    pub generator: Box<dyn TrainableSynthesizer>,
    /// The images of stage 2's first set.
    pub images: Vec<SpilledImage>,
    /// Seconds the trainer waited for them.
    pub waited_s: f64,
}

/// What the lane sends to the trainer's thread.
enum Event {
    Message(String),
    Claimed(usize, Result<Claim>),
    Sampled(usize, Result<Drawn>),
}

/// The trainer's end of the lane (used on the trainer's thread only).
pub struct Inbox {
    rx: Receiver<Event>,
    tickets: Sender<()>,
    runs: Vec<usize>,
    claims: RefCell<Vec<(usize, Result<Claim>)>>,
    sets: RefCell<Vec<(usize, Result<Drawn>)>>,
    stop: std::sync::Arc<AtomicBool>,
}

/// Starts the lane in `scope` over `runs` (in the trainer's order). Returns `None` when there is
/// nothing for it to do.
pub fn start<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    runs: Vec<LaneRun<'env>>,
    registry: &'env Registry,
    cache_dir: &'env Path,
) -> Option<Inbox> {
    if runs.is_empty() {
        return None;
    }
    let (tx, rx) = channel();
    let (tickets, ticket_rx) = channel();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let inbox = Inbox {
        rx,
        tickets,
        runs: runs.iter().map(|r| r.index).collect(),
        claims: RefCell::new(Vec::new()),
        sets: RefCell::new(Vec::new()),
        stop: stop.clone(),
    };
    scope.spawn(move || {
        let mut drawn = 0usize;
        for item in &runs {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut obs = LaneObserver {
                tx: tx.clone(),
                prefix: format!("[ahead: {} on {}]", item.run.label, item.run.dataset_name),
            };
            let claim = claim(item, &mut obs, &|| stop.load(Ordering::Relaxed));
            let fresh = matches!(claim, Ok(Claim::Fresh(_)));
            let failed = claim.is_err();
            if tx.send(Event::Claimed(item.index, claim)).is_err() || failed {
                break;
            }
            if !fresh {
                continue;
            }
            // Beyond `ahead_runs` sets not taken yet, wait until the trainer takes one.
            let ahead = item.experiment.train.synthesis.ahead_runs;
            if drawn >= ahead && ticket_rx.recv().is_err() {
                break;
            }
            let set = draw(item, registry, cache_dir, &mut obs, &stop);
            drawn += 1;
            let failed = set.is_err();
            if tx.send(Event::Sampled(item.index, set)).is_err() || failed {
                break;
            }
        }
    });
    Some(inbox)
}

/// Takes the run's lock (unless told to stop while another process holds it) and judges what
/// the run needs.
fn claim(item: &LaneRun<'_>, obs: &mut dyn RunObserver, stop: &dyn Fn() -> bool) -> Result<Claim> {
    let timings = crate::runner::stage_lock::LockTimings::default();
    let lock = StageLock::acquire_unless(&item.run_dir, timings, obs, stop)?
        .ok_or_else(|| CoreError::invalid("generator lane", "stopped"))?;
    if item.run_dir.join("results.json").exists() {
        return Ok(Claim::Finished);
    }
    if item.run_dir.join("checkpoints").exists() {
        return Ok(Claim::Resume(lock));
    }
    Ok(Claim::Fresh(lock))
}

/// Fits the run's generator and draws its first stage-2 set into `<run>/ahead/`.
fn draw(
    item: &LaneRun<'_>,
    registry: &Registry,
    cache_dir: &Path,
    obs: &mut dyn RunObserver,
    stop: &AtomicBool,
) -> Result<Drawn> {
    let exp = item.experiment;
    let job = FitJob {
        experiment: exp,
        run: item.run,
        data: item.data,
        registry,
        run_dir: &item.run_dir,
        cache_dir,
    };
    let spec = exp.rows[item.run.row]
        .synthesizer
        .as_ref()
        .ok_or_else(|| CoreError::invalid("generator lane", "the row has no synthesizer"))?;
    let AnySynthesizer::Generative(mut g) = registry.any_synthesizer(&spec.name, &spec.params)?
    else {
        return Err(CoreError::invalid(
            format!("synthesizer {}", spec.name),
            "is not a generative comparator",
        ));
    };
    fit_generator(g.as_mut(), &job, obs)?;
    if stop.load(Ordering::Relaxed) {
        return Err(CoreError::invalid("generator lane", "stopped"));
    }
    let folder = item.run_dir.join(AHEAD_DIR);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| CoreError::io(&folder, e))?;
    }
    let started = Instant::now();
    let pool = worker_pool(exp.train.synthesis.workers, "dsma-ahead")?;
    let set = pool.install(|| {
        sample_epoch(
            g.as_ref(),
            &TrainSplit(&item.data.train),
            item.run.seed,
            0,
            &folder,
            item.data.convention,
        )
    })?;
    obs.message(&format!(
        "generator {}: {} images drawn for stage 2 ({:.1} s)",
        spec.name,
        set.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Drawn {
        generator: g,
        images: set,
        waited_s: 0.0,
    })
}

/// The lane's observer: its messages, prefixed with the run, go to the trainer's thread.
struct LaneObserver {
    tx: Sender<Event>,
    prefix: String,
}

impl RunObserver for LaneObserver {
    fn message(&mut self, text: &str) {
        let _ = self
            .tx
            .send(Event::Message(format!("{} {text}", self.prefix)));
    }
}

impl Inbox {
    /// Whether the lane works on run `index`.
    pub fn has(&self, index: usize) -> bool {
        self.runs.contains(&index)
    }

    /// Waits until the lane has taken run `index`'s lock and returns what it found.
    pub fn claim(&self, index: usize, obs: &mut dyn RunObserver) -> Result<Claim> {
        self.wait(index, obs, &self.claims, "take the lock of")
    }

    /// Waits for run `index`'s fitted generator and first stage-2 set.
    pub fn take(&self, index: usize, obs: &mut dyn RunObserver) -> Result<Drawn> {
        let started = Instant::now();
        let mut drawn = self.wait(index, obs, &self.sets, "draw the first set of")?;
        // The lane may now draw one more set ahead (it may have finished already).
        let _ = self.tickets.send(());
        drawn.waited_s = started.elapsed().as_secs_f64();
        Ok(drawn)
    }

    /// Passes the lane's messages to `obs` until event `index` is in `stash`.
    fn wait<T>(
        &self,
        index: usize,
        obs: &mut dyn RunObserver,
        stash: &RefCell<Vec<(usize, Result<T>)>>,
        what: &str,
    ) -> Result<T> {
        loop {
            let found = {
                let mut s = stash.borrow_mut();
                s.iter().position(|(i, _)| *i == index).map(|p| s.remove(p))
            };
            if let Some((_, r)) = found {
                return r;
            }
            match self.rx.recv() {
                Ok(e) => self.file(e, obs),
                Err(_) => {
                    return Err(CoreError::invalid(
                        "generator lane",
                        format!("stopped before it could {what} run {}", index + 1),
                    ))
                }
            }
        }
    }

    /// Passes a message on, or keeps a claim or set until the trainer asks for it.
    fn file(&self, e: Event, obs: &mut dyn RunObserver) {
        match e {
            Event::Message(m) => obs.message(&m),
            Event::Claimed(i, c) => self.claims.borrow_mut().push((i, c)),
            Event::Sampled(i, s) => self.sets.borrow_mut().push((i, s)),
        }
    }

    /// Passes on the messages the lane has sent so far.
    fn drain(&self, obs: &mut dyn RunObserver) {
        while let Ok(e) = self.rx.try_recv() {
            self.file(e, obs);
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        // The lane stops after its current step (a fit in progress runs to its end).
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A run's handle on the set the lane draws for it ([`crate::runner::run_job::RunJob::ahead`]).
#[derive(Clone, Copy)]
pub struct AheadSet<'a> {
    /// The lane.
    pub inbox: &'a Inbox,
    /// The run's position in the trainer's list.
    pub index: usize,
}

impl AheadSet<'_> {
    /// Waits for the fitted generator and the set.
    pub fn take(&self, obs: &mut dyn RunObserver) -> Result<Drawn> {
        self.inbox.take(self.index, obs)
    }
}

/// An observer that passes the lane's messages on before each of the trainer's events.
pub struct Relay<'a> {
    /// The trainer's observer.
    pub inner: &'a mut dyn RunObserver,
    /// The lane, if one runs.
    pub inbox: Option<&'a Inbox>,
}

impl Relay<'_> {
    fn drain(&mut self) {
        if let Some(i) = self.inbox {
            i.drain(self.inner);
        }
    }
}

impl RunObserver for Relay<'_> {
    fn stage(&mut self, stage: u8, first: usize, total: usize) {
        self.drain();
        self.inner.stage(stage, first, total);
    }
    fn epoch_start(&mut self, epoch: usize, steps: usize) {
        self.drain();
        self.inner.epoch_start(epoch, steps);
    }
    fn step(&mut self, loss: f64) {
        self.drain();
        self.inner.step(loss);
    }
    fn epoch_end(&mut self, record: &EpochRecord) {
        self.drain();
        self.inner.epoch_end(record);
    }
    fn message(&mut self, text: &str) {
        self.drain();
        self.inner.message(text);
    }
}
