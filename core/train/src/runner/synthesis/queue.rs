//! The background synthesis queue: each stage-2 epoch's synthetic set made on worker threads
//! ahead of the trainer (derived cases, or generated images awaiting the teacher), spilled to disk
//! as it is made, with seeds per (run, epoch, case).

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::Scope;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::experiment::config::SynthesisConfig;
use dsma_data::case_store::{CaseParts, StoredCase};
use dsma_data::corruption::{Corruption, CorruptionKind};
use dsma_data::error::{CoreError, Result};
use dsma_data::labels::LabelConvention;
use dsma_data::seed::derive_seed;
use dsma_data::volume::Case;
use dsma_plugin::{SampledImage, Synthesizer, TrainableSynthesizer};
use ndarray::Array3;

/// Salt of the synthesis seeds.
const SALT: u64 = 0x5359_4e54; // "SYNT"
/// Salt of the choice of corrupted samples (`train.synthesis.corrupt`).
const SALT_CORRUPT: u64 = 0x434f_5252; // "CORR"

/// The seed of synthetic case `case` of stage-2 epoch `epoch` in the run seeded `seed`.
pub fn case_seed(seed: u64, epoch: usize, case: usize) -> u64 {
    derive_seed(
        derive_seed(derive_seed(seed, SALT), epoch as u64),
        case as u64,
    )
}

/// Synthesizes one epoch's set: case `j` from real case `j`, each written to the spill folder
/// `spill/set-<epoch>/` as it is made, so memory holds one case per worker, not the set. With
/// `corrupt` (a study option), its share of the set is spoiled after synthesis (the swap takes
/// real case `j + 1`'s intensities).
pub fn synthesize_epoch(
    synth: &dyn Synthesizer,
    real: &[StoredCase],
    seed: u64,
    epoch: usize,
    spill: &Path,
    corrupt: Option<Corruption>,
) -> Result<Vec<StoredCase>> {
    let set = spill.join(format!("set-{epoch:04}"));
    let chosen = corrupt.map(|c| c.chosen(real.len(), case_seed(seed ^ SALT_CORRUPT, epoch, 0)));
    real.par_iter()
        .enumerate()
        .map(|(j, c)| {
            let mut rng = ChaCha8Rng::seed_from_u64(case_seed(seed, epoch, j));
            let mut case = synth.synthesize(&c.load()?, &mut rng)?.case;
            if let (Some(c), Some(true)) = (corrupt, chosen.as_ref().map(|v| v[j])) {
                let other = match c.kind {
                    CorruptionKind::SwapIntensities if real.len() > 1 => {
                        Some(real[(j + 1) % real.len()].load()?)
                    }
                    _ => None,
                };
                c.apply(&mut case, other.as_ref())?;
            }
            spill_case(&case, &set.join(format!("{j:05}")))
        })
        .collect()
}

/// Writes a synthetic (already cropped and normalised) case to the spill folder `dir`.
pub fn spill_case(case: &Case, dir: &Path) -> Result<StoredCase> {
    StoredCase::write(
        dir,
        &CaseParts {
            case,
            crop_start: [0; 3],
            original_grid: &case.grid,
            original_label: None,
            stamp: "synthetic",
        },
    )
}

/// The pool of `train.synthesis.workers` threads (named `<name>-<i>`) that synthetic sets are
/// made in; the trainer's queue and the generator lane use the same size, so they draw alike.
pub fn worker_pool(workers: usize, name: &'static str) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| CoreError::runtime("train.synthesis.workers", e))
}

/// The trainer's end of the queue: the set of each stage-2 epoch (synthetic cases, or generated
/// images awaiting the teacher's labels), made ahead on a background thread.
pub struct SynthesisQueue<T> {
    rx: Receiver<(usize, Result<T>)>,
}

impl<T: Send> SynthesisQueue<T> {
    /// Starts a producer thread in `scope` that makes the sets of the stage-2 epochs `epochs`
    /// (one set only when `cfg.regenerate` is false) with `produce(k)` inside a pool of
    /// `cfg.workers` threads, at most `cfg.prefetch_epochs` sets ahead.
    pub fn start<'scope, 'env, P>(
        scope: &'scope Scope<'scope, 'env>,
        produce: P,
        epochs: std::ops::Range<usize>,
        cfg: &SynthesisConfig,
    ) -> Result<Self>
    where
        P: Fn(usize) -> Result<T> + Send + Sync + 'scope,
        T: 'scope,
    {
        let SynthesisConfig {
            workers,
            prefetch_epochs: prefetch,
            regenerate,
            ..
        } = *cfg;
        let (first, last) = (epochs.start, epochs.end);
        let (tx, rx) = sync_channel(prefetch.max(1));
        let pool = worker_pool(workers, "dsma-synth")?;
        scope.spawn(move || {
            let epochs: Vec<usize> = if regenerate {
                (first..last).collect()
            } else {
                vec![0]
            };
            for k in epochs {
                let set = pool.install(|| produce(k));
                // The trainer hung up (error or finished): stop.
                if tx.send((k, set)).is_err() {
                    break;
                }
            }
        });
        Ok(SynthesisQueue { rx })
    }

    /// The next epoch's set and how long the trainer waited for it.
    pub fn next(&self) -> Result<(usize, T, f64)> {
        let t = Instant::now();
        let (k, set) = self
            .rx
            .recv()
            .map_err(|_| CoreError::invalid("synthesis", "the synthesis thread stopped early"))?;
        Ok((k, set?, t.elapsed().as_secs_f64()))
    }
}

/// A generated image in the spill folder, waiting for the teacher's labels unless the generator
/// made its own (`labelled`).
#[derive(Debug, Clone)]
pub struct SpilledImage {
    /// The image (labels all background unless `labelled`).
    pub case: StoredCase,
    /// Whether the generator gave labels.
    pub labelled: bool,
}

/// The images a generative comparator draws for stage-2 epoch `epoch` (one per real training
/// case), each written to `spill/images-<epoch>/` as the generator hands it over.
pub fn sample_epoch(
    g: &dyn TrainableSynthesizer,
    real: &dyn dsma_plugin::TrainingCases,
    seed: u64,
    epoch: usize,
    spill: &Path,
    convention: LabelConvention,
) -> Result<Vec<SpilledImage>> {
    let mut rng = ChaCha8Rng::seed_from_u64(case_seed(seed, epoch, usize::MAX));
    let folder = spill.join(format!("images-{epoch:04}"));
    let mut out = Vec::with_capacity(real.len());
    g.sample_into(real.len(), &mut rng, real, &mut |img: SampledImage| {
        let j = out.len();
        let labelled = img.label.is_some();
        let (_, z, y, x) = img.image.dim();
        let case = Case {
            id: format!("image-{j}"),
            label: img.label.unwrap_or_else(|| Array3::zeros((z, y, x))),
            image: img.image,
            grid: img.grid,
            convention,
        };
        let case = spill_case(&case, &folder.join(format!("{j:05}")))?;
        out.push(SpilledImage { case, labelled });
        Ok(())
    })?;
    Ok(out)
}
