//! Stage 2's synthetic sets: where a row's synthetic cases come from (`Source`: none, a
//! synthesizer deriving cases from real ones, or a fitted generative comparator), the background
//! queue that makes them ahead of the trainer, the set of each epoch (fresh, or the first one kept
//! when `regenerate` is off) and the EMA teacher's labels of generated images (§4.1).

use std::path::Path;
use std::thread::Scope;
use std::time::Instant;

use burn::tensor::backend::Backend;
use dsma_data::case_store::StoredCase;
use dsma_data::error::{CoreError, Result};
use dsma_plugin::{AnySynthesizer, TrainableSynthesizer};

use crate::experiment::config::SynthesisConfig;
use crate::model::SegmentationModel;
use crate::runner::evaluate::labels_from_probabilities;
use crate::runner::progress::RunObserver;
use crate::runner::run_job::RunJob;
use crate::runner::synthesis::generator_fit::{fit_generator, TrainSplit};
use crate::runner::synthesis::queue::{
    sample_epoch, synthesize_epoch, SpilledImage, SynthesisQueue,
};

/// Where a row's stage-2 synthetic cases come from.
pub(crate) enum Source {
    /// No synthesizer: stage 2 continues on real data.
    None,
    /// A synthesizer deriving cases from real ones (made ahead by the synthesis queue).
    Derived(Box<dyn dsma_plugin::Synthesizer>),
    /// A fitted generative comparator, sampled on the trainer's thread.
    Generative(Box<dyn TrainableSynthesizer>),
}

/// Stage 2's first set of generated images as the generator lane drew it, and the seconds the
/// trainer waited for it.
pub(crate) type AheadImages = (Vec<SpilledImage>, f64);

impl Source {
    /// The run's synthesizer: from the generator lane (fitted, with the first set drawn ahead of
    /// the trainer) when it works on this run, else built (and fitted) here.
    pub(crate) fn of_job(
        job: &RunJob<'_>,
        obs: &mut dyn RunObserver,
    ) -> Result<(Self, Option<AheadImages>)> {
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
                fit_generator(g.as_mut(), &job.fit_job(), obs)?;
                Source::Generative(g)
            }
        })
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
pub(crate) struct SyntheticSets<'a> {
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
    pub(crate) fn release(&self, set: &[StoredCase]) -> Result<()> {
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
    pub(crate) fn next<B: Backend, M: SegmentationModel<B>>(
        &mut self,
        teacher: &M,
        device: &B::Device,
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
                let set = label_generated(&images, teacher, job, e, device, &folder)?;
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

impl<'a> SyntheticSets<'a> {
    /// Starts the background synthesis of the stage-2 epochs still to train (from global epoch
    /// `epoch`; the generator lane's set, when it drew one, is the first) inside `scope`.
    pub(crate) fn start<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        source: &'scope Source,
        ahead: Option<AheadImages>,
        epoch: usize,
        job: &'scope RunJob<'env>,
        spill: &'a Path,
    ) -> Result<Self>
    where
        'a: 'scope,
    {
        let t = &job.experiment.train;
        let (e1, e2) = (t.stage1.epochs, t.stage2.epochs);
        let (real, seed) = (&job.data.train, job.run.seed);
        let convention = job.data.convention;
        let corrupt = t.synthesis.corrupt;
        let regenerate = match source {
            Source::Generative(g) => t.synthesis.regenerate && g.regenerate(),
            _ => t.synthesis.regenerate,
        };
        // The lane's set is stage 2's first; a run resumed after it draws its own sets.
        let first = ahead.filter(|_| epoch == e1);
        let mut epochs = epoch.saturating_sub(e1)..e2;
        if first.is_some() {
            epochs.start += 1;
        }
        let synthesis = SynthesisConfig {
            regenerate,
            ..t.synthesis
        };
        let queue = match source {
            _ if epoch >= e1 + e2 => Queue::None,
            Source::Derived(synth) => Queue::Derived(SynthesisQueue::start(
                scope,
                move |k| synthesize_epoch(synth.as_ref(), real, seed, k, spill, corrupt),
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
        Ok(SyntheticSets {
            queue,
            first,
            fixed: None,
            fixed_images: None,
            regenerate,
            spill,
        })
    }
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

/// Deletes a spill folder (a set's, or the run's whole spill area) if it is there.
pub(crate) fn remove_spilled(folder: Option<&Path>) -> Result<()> {
    match folder.filter(|f| f.exists()) {
        Some(f) => std::fs::remove_dir_all(f).map_err(|e| CoreError::io(f, e)),
        None => Ok(()),
    }
}
