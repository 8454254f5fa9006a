//! Ensembles of finished runs on the test split (`eval.predict.ensemble: repeats`): each row's
//! repeats on each dataset open at their reported checkpoints, their sigmoid probabilities
//! averaged per test case (mirrored when `eval.predict.mirror`), thresholded, and scored like a
//! run; `OUT/ensembles/<dataset>/<row>/results.json` (and `predictions/`) hold the outcome, and
//! `members.json` the members' run hashes, so a later `dsma run` reuses it while they match.

use std::path::{Path, PathBuf};

use dsma_data::error::Result;
use dsma_data::metrics::case_metrics;
use dsma_data::nifti_io::write_volume;
use dsma_plugin::Registry;

use crate::experiment::config::{Ensemble, Experiment};
use crate::experiment::LoadedExperiment;
use crate::predict::ensemble_probabilities;
use crate::predict::model::RegionModel;
use crate::predict::runs::{check_compatible, open_run, PredictRun};
use crate::runner::evaluate::{labels_from_probabilities, mean_metrics};
use crate::runner::execute::{selected_runs, ExecuteOptions};
use crate::runner::plan::{slug, PlannedRun};
use crate::runner::prepare::prepare;
use crate::runner::progress::RunObserver;
use crate::runner::records::{CaseResult, RunResults};
use crate::runner::report::logs::{write_json, write_results};
use crate::runner::run_folder::is_finished;

/// The label of an ensemble's row in the table.
pub fn ensemble_label(row: &str, members: usize) -> String {
    format!("{row} (ensemble of {members})")
}

/// Evaluates the ensembles `loaded` asks for, over the selected runs that are all finished.
pub fn evaluate_ensembles(
    loaded: &LoadedExperiment,
    registry: &Registry,
    opts: &ExecuteOptions,
    obs: &mut dyn RunObserver,
) -> Result<Vec<RunResults>> {
    if loaded.experiment.eval.predict.ensemble == Ensemble::None {
        return Ok(vec![]);
    }
    let runs = selected_runs(loaded, registry, &opts.selection);
    let mut groups: Vec<Vec<&PlannedRun>> = vec![];
    for run in &runs {
        let key = (run.variant, run.dataset, run.row);
        match groups
            .iter_mut()
            .find(|g| (g[0].variant, g[0].dataset, g[0].row) == key)
        {
            Some(g) => g.push(run),
            None => groups.push(vec![run]),
        }
    }
    let mut out = vec![];
    for group in groups {
        let finished = group.iter().all(|r| is_finished(&opts.out, r));
        if group.len() < 2 || !finished {
            continue;
        }
        let exp = &loaded.variants[group[0].variant].experiment;
        obs.message(&format!(
            "evaluating the ensemble of {} repeats of {} on {}",
            group.len(),
            group[0].label,
            group[0].dataset_name
        ));
        out.push(evaluate_group(exp, &group, opts)?);
    }
    Ok(out)
}

/// The folder of an ensemble's results.
fn ensemble_dir(out: &Path, run: &PlannedRun) -> PathBuf {
    out.join("ensembles")
        .join(slug(&run.dataset_name))
        .join(slug(&run.label))
}

/// The members' run hashes, recorded beside an ensemble's results: equal hashes mean equal runs.
fn members_of(group: &[&PlannedRun]) -> serde_json::Value {
    serde_json::json!(group.iter().map(|r| r.run_hash.clone()).collect::<Vec<_>>())
}

/// The results of an earlier evaluation of the same ensemble, if `dir` holds one.
fn earlier(dir: &Path, group: &[&PlannedRun]) -> Option<RunResults> {
    let members: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("members.json")).ok()?).ok()?;
    if members != members_of(group) {
        return None;
    }
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).ok()?).ok()
}

fn evaluate_group(
    exp: &Experiment,
    group: &[&PlannedRun],
    opts: &ExecuteOptions,
) -> Result<RunResults> {
    let dir = ensemble_dir(&opts.out, group[0]);
    if let Some(done) = earlier(&dir, group) {
        return Ok(done);
    }
    let members = group
        .iter()
        .map(|r| open_run(&opts.out.join(r.dir()), None))
        .collect::<Result<Vec<PredictRun>>>()?;
    let threshold = check_compatible(&members, None)?;
    let models: Vec<&dyn RegionModel> = members.iter().map(|m| m.model.as_ref()).collect();
    let data = prepare(&exp.datasets[group[0].dataset], &opts.cache)?;
    let mut cases = Vec::with_capacity(data.test.len());
    for stored in &data.test {
        let case = stored.load()?;
        let probs = ensemble_probabilities(&models, case.image.view(), exp.eval.predict.mirror)?;
        let pred = stored.uncrop(&labels_from_probabilities(
            &probs,
            threshold,
            case.convention,
        ));
        let meta = stored.meta();
        let metrics = case_metrics(
            pred.view(),
            stored.original_label()?.view(),
            meta.convention,
            meta.original_grid.spacing_zyx(),
            &exp.eval.metrics,
        );
        if exp.eval.save_predictions {
            let file = dir
                .join("predictions")
                .join(format!("{}.nii.gz", stored.id()));
            write_volume(&file, pred.view(), &meta.original_grid)?;
        }
        cases.push(CaseResult {
            id: stored.id().to_string(),
            metrics,
        });
    }
    let first = group[0];
    let results = RunResults {
        row: ensemble_label(&first.label, group.len()),
        dataset: first.dataset_name.clone(),
        repeat: 0,
        seed: first.seed,
        reported: exp.eval.report,
        epoch: exp.train.stage1.epochs + exp.train.stage2.epochs,
        mean: mean_metrics(&cases),
        cases,
    };
    std::fs::create_dir_all(&dir).map_err(|e| dsma_data::error::CoreError::io(&dir, e))?;
    write_results(&dir, &results)?;
    write_json(&dir, "members.json", &members_of(group))?;
    Ok(results)
}
