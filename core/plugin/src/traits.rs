//! The traits a method plugin implements.

use std::borrow::Cow;
use std::path::Path;

use ndarray::{Array3, Array4};
use rand_chacha::ChaCha8Rng;

use dsma_data::error::Result;
use dsma_data::volume::{Case, Grid};

use crate::backend::BackendKind;

/// A derived synthetic case and, when the synthesizer left the input unchanged, why.
#[derive(Debug, Clone)]
pub struct Synthesized {
    /// The synthetic case (same grid and convention as the input).
    pub case: Case,
    /// Set when nothing was changed (e.g. "no lesion"), for the run log.
    pub unchanged_reason: Option<String>,
}

/// Makes one derived synthetic case (image + labels) from one preprocessed real training case.
///
/// Called from data-loader threads: implementations hold only their parameters and must be pure
/// functions of `(case, rng)`, so the same seed gives the same output.
pub trait Synthesizer: Send + Sync {
    /// Derives one synthetic case from `case`, taking every random choice from `rng`.
    fn synthesize(&self, case: &Case, rng: &mut ChaCha8Rng) -> Result<Synthesized>;

    /// [`Synthesizer::synthesize`] of a case the caller gives away, with the same result: an
    /// implementation that writes into a copy of its input can write into this one and spare the
    /// copy (DTSS does; the Python package hands it the one copy it makes of a NumPy array).
    fn synthesize_owned(&self, case: Case, rng: &mut ChaCha8Rng) -> Result<Synthesized> {
        self.synthesize(&case, rng)
    }
}

/// Derived case `index` of `case` from seed `seed`, as `dsma synth --seed SEED` writes it: the RNG
/// is ChaCha8 seeded with `derive_seed(seed, index)` and the result is named `<case>_synth<index>`.
/// A case given away (`Cow::Owned`) goes to [`Synthesizer::synthesize_owned`].
pub fn synthesize_seeded(
    synth: &dyn Synthesizer,
    case: Cow<'_, Case>,
    seed: u64,
    index: usize,
) -> Result<Synthesized> {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(dsma_data::seed::derive_seed(seed, index as u64));
    let id = format!("{}_synth{index}", case.id);
    let mut result = match case {
        Cow::Borrowed(c) => synth.synthesize(c, &mut rng)?,
        Cow::Owned(c) => synth.synthesize_owned(c, &mut rng)?,
    };
    result.case.id = id;
    Ok(result)
}

/// Checks a plugin's synthetic copy of `input` (written into a copy of it, so of its shape): finite
/// intensities and labels in the input's convention; the error names `plugin` and what is wrong.
pub fn check_synthesized(plugin: &str, input: &Case, out: &Case) -> Result<()> {
    let non_finite = out.image.iter().filter(|v| !v.is_finite()).count();
    let problem = if non_finite > 0 {
        format!(
            "wrote {non_finite} non-finite (NaN or infinite) intensities into the synthetic copy of {}",
            input.id
        )
    } else if let Some(bad) = out.label.iter().find(|&&v| !input.convention.is_valid(v)) {
        format!(
            "wrote label {bad}, outside the {} convention ({:?})",
            input.convention.name(),
            input.convention.valid_labels()
        )
    } else {
        return Ok(());
    };
    Err(dsma_data::error::CoreError::Plugin {
        plugin: plugin.to_string(),
        problem,
    })
}

/// Progress of a [`TrainableSynthesizer::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitProgress {
    /// Steps done.
    pub step: usize,
    /// Total steps.
    pub total: usize,
    /// Latest training loss, if any.
    pub loss: Option<f64>,
}

/// The real training cases a generator is fitted on, read one at a time (so neither the runner
/// nor a plugin needs the whole training set in memory at once).
pub trait TrainingCases: Sync {
    /// Number of cases.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Case `i` (preprocessed: cropped to the brain, z-scored).
    fn case(&self, i: usize) -> Result<Cow<'_, Case>>;
}

impl TrainingCases for Vec<Case> {
    fn len(&self) -> usize {
        <[Case]>::len(self)
    }
    fn case(&self, i: usize) -> Result<Cow<'_, Case>> {
        Ok(Cow::Borrowed(&self[i]))
    }
}

/// What the runner hands to [`TrainableSynthesizer::fit`].
pub struct FitContext<'a> {
    /// Folder for the synthesizer's checkpoints; `fit` resumes from what it finds there, and a
    /// folder holding a finished fit makes `fit` only load it.
    pub checkpoint_dir: &'a Path,
    /// Seed of every random choice of the fit.
    pub seed: u64,
    /// Where to fit and sample (the run's `train.backend`).
    pub backend: BackendKind,
    /// `[z, y, x]` shape samples are delivered at (the segmentation patch).
    pub sample_shape: [usize; 3],
    /// Called as training advances (drives the progress bar).
    pub progress: &'a mut dyn FnMut(FitProgress),
}

/// An image sampled from a generative model; without labels the runner asks the EMA teacher (§4.1).
#[derive(Debug, Clone)]
pub struct SampledImage {
    /// `modality × z × y × x` intensities.
    pub image: Array4<f32>,
    /// Labels, if the model generates them.
    pub label: Option<Array3<u8>>,
    /// Grid of the sample.
    pub grid: Grid,
}

/// A generative comparator (GAN, diffusion): trained on the real training set, then sampled.
/// `Sync`, because sampling runs on the synthesis thread while the trainer trains.
pub trait TrainableSynthesizer: Send + Sync {
    /// Trains on the real training cases, writing checkpoints and resuming from them.
    fn fit(&mut self, train: &dyn TrainingCases, ctx: &mut FitContext<'_>) -> Result<()>;
    /// Whether stage 2 may draw a fresh set every epoch (when `train.synthesis.regenerate` asks for
    /// it); `false`: one set drawn when stage 2 starts, relabelled by each epoch's teacher.
    fn regenerate(&self) -> bool {
        true
    }
    /// `[z, y, x]` box the generator fits and draws at, before its samples are resampled to the
    /// segmentation patch (`dsma validate` warns when it is much coarser); `None`: not known.
    fn native_shape(&self) -> Option<[usize; 3]> {
        None
    }
    /// Draws `n` images (after `fit`). `real` is the training split, for samplers that condition
    /// on real cases (super-resolution, partial re-synthesis); unconditional ones ignore it.
    fn sample(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
        real: &dyn TrainingCases,
    ) -> Result<Vec<SampledImage>>;

    /// [`TrainableSynthesizer::sample`], handing each image to `sink` as it is made (the runner
    /// writes them to disk), so an implementation that draws in chunks never holds the set. The
    /// default draws all `n`, then hands them over.
    fn sample_into(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
        real: &dyn TrainingCases,
        sink: &mut dyn FnMut(SampledImage) -> Result<()>,
    ) -> Result<()> {
        for image in self.sample(n, rng, real)? {
            sink(image)?;
        }
        Ok(())
    }
}

/// The model's scores after a stage-2 epoch: what a weighter needs (paper eqs. 6–8).
#[derive(Debug, Clone, Copy)]
pub struct EpochScores<'a> {
    /// Stage-2 epoch index (0-based).
    pub epoch: usize,
    /// Score of every real training case (e.g. mean Dice over WT/TC/ET), in [0, 1].
    pub real: &'a [f64],
    /// Score of every synthetic case, in [0, 1].
    pub synthetic: &'a [f64],
}

/// Which per-case score a weighter wants (the runner computes it after every stage-2 epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ScoreKind {
    /// Mean of the WT, TC and ET Dice (default).
    #[default]
    #[serde(rename = "mean")]
    Mean,
    /// Whole-tumour Dice.
    WT,
    /// Tumour-core Dice.
    TC,
    /// Enhancing-tumour Dice.
    ET,
}

/// Checks a weighter's answer: `expected` weights, each finite and ≥ 0; the error names `plugin`
/// and the first weight that is not.
pub fn check_weights(plugin: &str, weights: &[f64], expected: usize) -> Result<()> {
    let problem = if weights.len() != expected {
        format!(
            "returned {} weights for {expected} synthetic cases",
            weights.len()
        )
    } else if let Some((i, w)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
    {
        format!("returned weight {w} for synthetic case {i}; expected a finite weight ≥ 0")
    } else {
        return Ok(());
    };
    Err(dsma_data::error::CoreError::Plugin {
        plugin: plugin.to_string(),
        problem,
    })
}

/// Gives each synthetic case a loss weight every stage-2 epoch, from the model's live scores.
pub trait SampleWeighter: Send {
    /// The per-case score this weighter is given.
    fn score_kind(&self) -> ScoreKind {
        ScoreKind::Mean
    }
    /// Whether this weighter reads the scores. `false` spares the runner the per-epoch scoring
    /// pass (a sliding-window inference of every real and synthetic training case); such a weighter
    /// gets no real scores and NaN synthetic scores, and `weights.csv` leaves its score column empty.
    fn needs_scores(&self) -> bool {
        true
    }
    /// Whether every weight is 1 whatever the scores (MAS off): a row with this weighter trains
    /// exactly as a row without one, so the planner hashes both as the same run.
    fn unit(&self) -> bool {
        false
    }
    /// One weight per synthetic score, in the order of `scores.synthetic`.
    fn weights(&mut self, scores: &EpochScores<'_>) -> Result<Vec<f64>>;
    /// Everything the weighter recorded so far (per-epoch statistics, weights), for logs and figures.
    fn history(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Restores the state returned by [`SampleWeighter::history`] when a run resumes.
    fn restore(&mut self, _history: serde_json::Value) -> Result<()> {
        Ok(())
    }
    /// Draws a run's `history` (its `weighter.json`) as a PNG at `path` with `title`; `false` when
    /// this weighter has no such figure (`dsma figure --kind weights` then looks further).
    fn plot_history(
        &self,
        _history: &serde_json::Value,
        _path: &Path,
        _title: &str,
    ) -> Result<bool> {
        Ok(false)
    }
}

/// The weighting of a row that names no weighter: every synthetic case weighs 1 (eq. 15 with all
/// `w_j = 1`). It is core's own, so "no weighter" needs no plugin linked; the `uniform` plugin is the
/// same rule under a name that YAML can give.
#[derive(Debug, Default)]
pub struct UnitWeights {
    epochs: usize,
}

impl SampleWeighter for UnitWeights {
    fn needs_scores(&self) -> bool {
        false
    }
    fn unit(&self) -> bool {
        true
    }
    fn weights(&mut self, scores: &EpochScores<'_>) -> Result<Vec<f64>> {
        self.epochs += 1;
        Ok(vec![1.0; scores.synthetic.len()])
    }
    fn history(&self) -> serde_json::Value {
        serde_json::json!({ "epochs": self.epochs })
    }
    fn restore(&mut self, history: serde_json::Value) -> Result<()> {
        self.epochs = history.get("epochs").and_then(|e| e.as_u64()).unwrap_or(0) as usize;
        Ok(())
    }
}
