//! Scoring and weighting before a stage-2 epoch: the current model scores every real training case
//! and every synthetic case of the epoch (sliding window over the whole case or the tumour box,
//! the `L'_j` and `L_k^j` of eqs. 6–7), and the row's weighter turns the scores into weights.

use dsma_data::case_store::StoredCase;
use dsma_data::error::Result;
use dsma_data::preprocess::crop_to_tumour;
use dsma_data::volume::Case;
use dsma_plugin::{EpochScores, SampleWeighter, ScoreKind};

use crate::experiment::config::ScoringRegion;
use crate::model::SegmentationModel;
use crate::runner::evaluate::score_case;
use crate::runner::report::logs::WeightLog;
use crate::runner::run_job::RunJob;
use dsma_kernels::KernelBackend;

/// Scores the real training cases and this epoch's synthetic cases (unless the weighter does not
/// read scores) with `model` (made only when they are read); asks the weighter for weights (eqs.
/// 6–8) and returns them with the scores as the epoch's [`WeightLog`].
pub(crate) fn weigh<B: KernelBackend, M: SegmentationModel<B>>(
    model: impl FnOnce() -> M,
    device: &B::Device,
    job: &RunJob<'_>,
    weighter: &mut dyn SampleWeighter,
    synthetic: &[StoredCase],
    epoch: usize,
) -> Result<WeightLog> {
    let (real, scores) = if weighter.needs_scores() {
        let model = model();
        let kind: ScoreKind = weighter.score_kind();
        let cfg = &job.experiment.eval;
        let region = job.experiment.train.scoring;
        // At least one training patch and one inference window around the tumour.
        let (tp, wp) = (job.experiment.train.patch.size, cfg.window.patch);
        let patch = [0, 1, 2].map(|a| tp[a].max(wp[a]));
        let score = |c: &Case| match region {
            ScoringRegion::Full => score_case::<B, M>(&model, c, kind, cfg, device),
            ScoringRegion::Tumour => {
                let crop = crop_to_tumour(c, patch);
                score_case::<B, M>(&model, &crop, kind, cfg, device)
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
        // The weighter ignores scores (unit weights, no weighter): no scoring pass.
        (Vec::new(), vec![f64::NAN; synthetic.len()])
    };
    let k = epoch - job.experiment.train.stage1.epochs;
    let weights = weighter.weights(&EpochScores {
        epoch: k,
        real: &real,
        synthetic: &scores,
    })?;
    let weighter_name = job.experiment.rows[job.run.row].weighter_name();
    dsma_plugin::check_weights(weighter_name, &weights, scores.len())?;
    Ok(WeightLog {
        epoch: epoch + 1,
        real_scores: real,
        sources: synthetic.iter().map(|c| c.id().to_string()).collect(),
        scores,
        weights,
    })
}
