//! Evaluation: sliding-window inference of every test case, thresholding, metrics on the original
//! grid, NIfTI predictions in the dataset's label convention; and per-case scores for the weighter.

use std::path::Path;

use burn::tensor::backend::Backend;
use ndarray::{Array3, Array4, Axis};

use crate::checkpoint::crash_point::{self, CrashPoint};
use crate::experiment::config::EvalConfig;
use crate::inference::{sliding_window, sliding_window_mirrored};
use crate::model::{ModelFactory, SegmentationModel};
use crate::runner::records::CaseResult;
use dsma_data::case_store::StoredCase;
use dsma_data::error::{CoreError, Result};
use dsma_data::labels::{labels_from_regions, region_mask, LabelConvention, Region};
use dsma_data::metrics::{case_metrics, dice, CaseMetrics, EmptyDice};
use dsma_data::nifti_io::write_volume;
use dsma_data::volume::Case;
use dsma_kernels::KernelBackend;
use dsma_plugin::parse_params;
use dsma_plugin::ScoreKind;

/// Label map from region probabilities `[3, z, y, x]` thresholded at `threshold`.
pub fn labels_from_probabilities(
    probs: &Array4<f32>,
    threshold: f32,
    convention: LabelConvention,
) -> Array3<u8> {
    let mask = |c: usize| probs.index_axis(Axis(0), c).mapv(|p| p > threshold);
    labels_from_regions(mask(0).view(), mask(1).view(), mask(2).view(), convention)
}

/// Predicted label map of a preprocessed case.
pub fn predict<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    case: &Case,
    cfg: &EvalConfig,
    device: &B::Device,
) -> Result<Array3<u8>> {
    let probs = sliding_window::<B, M>(model, case.image.view(), &cfg.window, device)?;
    Ok(labels_from_probabilities(
        &probs,
        cfg.threshold,
        case.convention,
    ))
}

/// Metrics of every test case; predictions written to `predictions` as `<id>.nii.gz` when given.
pub fn evaluate<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    test: &[StoredCase],
    cfg: &EvalConfig,
    device: &B::Device,
    predictions: Option<&Path>,
) -> Result<Vec<CaseResult>> {
    let mut out = Vec::with_capacity(test.len());
    for (i, c) in test.iter().enumerate() {
        let case = c.load()?;
        let probs = sliding_window_mirrored::<B, M>(
            model,
            case.image.view(),
            &cfg.window,
            cfg.predict.mirror,
            device,
        )?;
        let labels = labels_from_probabilities(&probs, cfg.threshold, case.convention);
        let pred = c.uncrop(&labels);
        let meta = c.meta();
        let metrics = case_metrics(
            pred.view(),
            c.original_label()?.view(),
            meta.convention,
            meta.original_grid.spacing_zyx(),
            &cfg.metrics,
        );
        crash_point::hit(CrashPoint::Evaluate, i);
        if let Some(dir) = predictions {
            write_volume(
                &dir.join(format!("{}.nii.gz", c.id())),
                pred.view(),
                &meta.original_grid,
            )?;
            crash_point::hit(CrashPoint::Export, i);
        }
        out.push(CaseResult {
            id: c.id().to_string(),
            metrics,
        });
    }
    Ok(out)
}

/// Mean of per-case metrics (NaN entries skipped).
pub fn mean_metrics(cases: &[CaseResult]) -> CaseMetrics {
    dsma_data::metrics::mean_over_cases(&cases.iter().map(|c| &c.metrics).collect::<Vec<_>>())
}

/// The weighter's score of the model on one (preprocessed) case: Dice in [0, 1] per `kind`
/// (an empty region predicted empty scores 1).
pub fn score_case<B: Backend, M: SegmentationModel<B>>(
    model: &M,
    case: &Case,
    kind: ScoreKind,
    cfg: &EvalConfig,
    device: &B::Device,
) -> Result<f64> {
    let pred = predict::<B, M>(model, case, cfg, device)?;
    let d = |r: Region| {
        dice(
            region_mask(pred.view(), r, case.convention).view(),
            region_mask(case.label.view(), r, case.convention).view(),
            EmptyDice::Brats,
        )
    };
    Ok(match kind {
        ScoreKind::Mean => (d(Region::Wt) + d(Region::Tc) + d(Region::Et)) / 3.0,
        ScoreKind::WT => d(Region::Wt),
        ScoreKind::TC => d(Region::Tc),
        ScoreKind::ET => d(Region::Et),
    })
}

/// Labels `images` with the EMA teacher of the latest checkpoint in `checkpoints` (a run's
/// `checkpoints/` folder), as the runner labels generated images: sliding window, then hard labels
/// at the evaluation threshold ([`crate::runner::registration::LabelFn`]).
pub fn teacher_labels<F: ModelFactory, B: KernelBackend>(
    exp: &crate::experiment::config::Experiment,
    checkpoints: &Path,
    images: &[ndarray::Array4<f32>],
    convention: dsma_data::labels::LabelConvention,
) -> Result<Vec<ndarray::Array3<u8>>> {
    let params: F::Params = parse_params(F::NAME, &exp.model.params)?;
    let latest = crate::checkpoint::latest(checkpoints)?.ok_or_else(|| {
        CoreError::invalid(
            checkpoints.display().to_string(),
            "holds no checkpoint; is it the `checkpoints` folder of a run?",
        )
    })?;
    let ckpt = crate::checkpoint::load(&latest)?;
    let file = latest.join("ema.safetensors");
    let bytes = ckpt.files.get("ema.safetensors").ok_or_else(|| {
        CoreError::invalid(
            format!("checkpoint {}", latest.display()),
            "ema.safetensors is missing",
        )
    })?;
    let device = B::run_device(exp.train.backend.is_gpu());
    let teacher = crate::model::load_model::<F, B>(&params, bytes, &file, &device)?;
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
