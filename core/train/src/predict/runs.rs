//! Opening trained runs for prediction: the reported checkpoint of each run folder (`results.json`
//! says which: the last epoch's or the best one's), and the refusal of runs that cannot be
//! ensembled (label convention, channels, threshold), each named.

use std::path::{Path, PathBuf};

use dsma_data::error::{CoreError, Result};
use dsma_data::labels::LabelConvention;
use dsma_plugin::backend::BackendKind;

use crate::experiment::config::{Experiment, Report};
use crate::predict::model::{OpenedModel, RegionModel};
use crate::runner::records::RunResults;
use crate::runner::registration;
use crate::runner::report::record::RunRecord;

/// A trained run, ready to predict.
pub struct PredictRun {
    /// The run folder.
    pub dir: PathBuf,
    /// The checkpoint folder the model was loaded from.
    pub checkpoint: PathBuf,
    /// The experiment the run was trained with.
    pub experiment: Experiment,
    /// The label convention of its dataset.
    pub convention: LabelConvention,
    /// Input and output channels of its model, where the model has such parameters.
    pub channels: Option<[usize; 2]>,
    /// The network.
    pub model: Box<dyn RegionModel>,
}

fn not_a_run(dir: &Path, problem: impl Into<String>) -> CoreError {
    CoreError::invalid(format!("run folder {}", dir.display()), problem)
}

/// The checkpoint folder of the model a finished run reports.
pub fn reported_checkpoint(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("results.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            not_a_run(
                dir,
                "has no results.json: the run is unfinished, or this is not a run folder (runs/<dataset>/<row>/rep-N)",
            )
        } else {
            CoreError::io(&path, e)
        }
    })?;
    let results: RunResults = serde_json::from_slice(&bytes)
        .map_err(|e| CoreError::codec(path.display().to_string(), e))?;
    let checkpoints = dir.join("checkpoints");
    let checkpoint = match results.reported {
        Report::Best => checkpoints.join("best"),
        Report::Last => checkpoints.join(format!("epoch-{:05}", results.epoch)),
    };
    if !checkpoint.join("model.safetensors").is_file() {
        return Err(not_a_run(
            dir,
            format!(
                "has no checkpoint of its reported model ({} of epoch {}): expected {}",
                match results.reported {
                    Report::Best => "best",
                    Report::Last => "last",
                },
                results.epoch,
                checkpoint.join("model.safetensors").display()
            ),
        ));
    }
    Ok(checkpoint)
}

/// Opens the run in `dir` on `backend` (the run's own backend when `None`).
pub fn open_run(dir: &Path, backend: Option<BackendKind>) -> Result<PredictRun> {
    if !dir.is_dir() {
        return Err(not_a_run(dir, "does not exist or is not a folder"));
    }
    let checkpoint = reported_checkpoint(dir)?;
    let record = RunRecord::read(dir)?;
    let experiment = record.typed_experiment()?;
    let convention = record.dataset()?.convention()?;
    let backend = backend.unwrap_or(experiment.train.backend);
    let open = registration::model(&experiment.model.name)?.opener(backend)?;
    let OpenedModel { model, channels } = open(&experiment, &checkpoint, backend.is_gpu())?;
    Ok(PredictRun {
        dir: dir.to_path_buf(),
        checkpoint,
        experiment,
        convention,
        channels,
        model,
    })
}

/// Refuses runs that disagree on what their models read or how their outputs become labels: the
/// label convention, the channels, the probability threshold (unless `threshold` overrides it).
/// Returns the common threshold.
pub fn check_compatible(runs: &[PredictRun], threshold: Option<f32>) -> Result<f32> {
    let Some(first) = runs.first() else {
        return Err(CoreError::invalid(
            "--run",
            "no run given; expected at least one run folder",
        ));
    };
    for run in &runs[1..] {
        let differs = |what: &str, a: String, b: String| {
            CoreError::invalid(
                format!("--run {}", run.dir.display()),
                format!(
                    "{what} {b} differs from {a} of {}; runs of one ensemble must agree",
                    first.dir.display()
                ),
            )
        };
        if run.convention != first.convention {
            return Err(differs(
                "label convention",
                first.convention.name().into(),
                run.convention.name().into(),
            ));
        }
        if run.channels != first.channels {
            let show = |c: Option<[usize; 2]>| {
                c.map_or("unknown".to_string(), |[i, o]| format!("{i} in, {o} out"))
            };
            return Err(differs(
                "model channels",
                show(first.channels),
                show(run.channels),
            ));
        }
        if threshold.is_none() && run.experiment.eval.threshold != first.experiment.eval.threshold {
            return Err(differs(
                "eval.threshold",
                first.experiment.eval.threshold.to_string(),
                format!(
                    "{} (give --threshold to set one for all)",
                    run.experiment.eval.threshold
                ),
            ));
        }
    }
    Ok(threshold.unwrap_or(first.experiment.eval.threshold))
}
