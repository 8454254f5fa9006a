//! `dsma figure RUNS_DIR --kind segmentation|weights`: the paper's Fig. 5 (ground truth and each row's
//! prediction on an axial slice of N test cases) and the MAS weight trajectories of a run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use dsma_data::brats::{discover, load_case, DatasetOptions};
use dsma_data::corruption::{is_corrupted, separation_auc};
use dsma_data::nifti_io::read_labels;
use dsma_data::slice_figure::{axial, render, slice_with_most_tumour, Overlay, Panel};
use dsma_data::{LabelConvention, Modality};
use dsma_plugin::Registry;
use dsma_train::runner::report::logs::read_weights;
use dsma_train::runner::report::record::{run_folders, RunRecord};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder of `dsma run`.
    runs: PathBuf,
    /// segmentation (Fig. 5) or weights (MAS weights per synthetic sample across stage-2 epochs).
    #[arg(long, value_parser = ["segmentation", "weights"])]
    kind: String,
    /// Test cases shown (segmentation).
    #[arg(long, default_value_t = 3)]
    cases: usize,
    /// Run folder to plot (weights; default: the first run with MAS weights).
    #[arg(long)]
    run: Option<PathBuf>,
    /// PNG to write.
    #[arg(long)]
    out: PathBuf,
}

impl Args {
    /// The arguments of `dsma figure RUNS --kind weights --run RUN --out OUT`.
    pub fn weights_of(runs: &Path, run: &Path, out: &Path) -> Args {
        Args {
            runs: runs.to_path_buf(),
            kind: "weights".into(),
            cases: 0,
            run: Some(run.to_path_buf()),
            out: out.to_path_buf(),
        }
    }

    /// The arguments of `dsma figure RUNS --kind segmentation --cases N --out OUT`.
    pub fn segmentation_of(runs: &Path, cases: usize, out: &Path) -> Args {
        Args {
            runs: runs.to_path_buf(),
            kind: "segmentation".into(),
            cases,
            run: None,
            out: out.to_path_buf(),
        }
    }
}

/// A finished run folder, its run record, and its dataset's folder and label convention.
struct RunInfo {
    dir: PathBuf,
    record: RunRecord,
    dataset_path: PathBuf,
    convention: LabelConvention,
}

fn runs(out: &Path) -> anyhow::Result<Vec<RunInfo>> {
    let mut infos = Vec::new();
    for dir in run_folders(out)? {
        let Ok(record) = RunRecord::read(&dir) else {
            continue;
        };
        let ds = record.dataset()?;
        infos.push(RunInfo {
            convention: ds.convention()?,
            dataset_path: ds.path,
            record,
            dir,
        });
    }
    // The table's order: dataset, then (grid point, row).
    infos.sort_by_key(|r| {
        let run = &r.record.run;
        (run.dataset_name.clone(), run.variant, run.row)
    });
    Ok(infos)
}

/// Fig. 5: ground truth and each row's prediction on test cases.
pub fn segmentation(a: &Args) -> anyhow::Result<()> {
    let all = runs(&a.runs)?;
    let Some(first) = all.iter().find(|r| r.dir.join("results.json").exists()) else {
        bail!(
            "{}: no finished run (results.json) to draw",
            a.runs.display()
        );
    };
    // Rows of the first dataset, repeat 0 only.
    let rows: Vec<&RunInfo> = all
        .iter()
        .filter(|r| {
            r.record.run.dataset_name == first.record.run.dataset_name && r.dir.ends_with("rep-0")
        })
        .filter(|r| r.dir.join("predictions").is_dir())
        .collect();
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.dir.join("split.json"))?)?;
    let test: Vec<String> = split["test"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let dirs = discover(&first.dataset_path, &DatasetOptions::new(first.convention))?;
    let mut panels = Vec::new();
    for id in test.iter().take(a.cases.max(1)) {
        let dir = dirs
            .iter()
            .find(|d| dsma_data::brats::case_id(d) == id.as_str())
            .with_context(|| {
                format!(
                    "test case {id} not found under {}",
                    first.dataset_path.display()
                )
            })?;
        let case = load_case(dir, first.convention)?;
        let z = slice_with_most_tumour(case.label.view());
        let flair = axial(case.modality(Modality::Flair), z);
        panels.push(Panel {
            title: format!("{id} ground truth"),
            slice: flair.clone(),
            labels: Some(axial(case.label.view(), z)),
            overlay: Overlay::Fill,
        });
        for r in &rows {
            let (_, pred) = read_labels(&r.dir.join("predictions").join(format!("{id}.nii.gz")))?;
            panels.push(Panel {
                title: r.record.run.label.clone(),
                slice: flair.clone(),
                labels: Some(axial(pred.view(), z)),
                overlay: Overlay::Fill,
            });
        }
    }
    let scale = if panels.first().is_some_and(|p| p.slice.ncols() < 120) {
        4
    } else {
        2
    };
    render(&a.out, &panels, rows.len() + 1, scale, first.convention)?;
    Ok(())
}

/// The MAS weight trajectories of a run (the first with a drawable history without `--run`).
pub fn weights(a: &Args, registry: &Registry) -> anyhow::Result<()> {
    let candidates: Vec<(PathBuf, RunRecord)> = match &a.run {
        Some(d) => RunRecord::read(d)
            .map(|r| vec![(d.clone(), r)])
            .unwrap_or_default(),
        None => runs(&a.runs)?
            .into_iter()
            .map(|r| (r.dir, r.record))
            .collect(),
    };
    for (dir, record) in &candidates {
        let Some(w) = record.weighter()? else {
            continue;
        };
        let Ok(text) = std::fs::read(dir.join("weighter.json")) else {
            continue;
        };
        let mut history: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}", dir.join("weighter.json").display()))?;
        mark_corrupted(dir, &mut history)?;
        // The run's own name (dataset/row/rep), not the absolute folder.
        let name: PathBuf = dir
            .iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let title = format!("{} in {}", w.name, name.display());
        let weighter = registry.weighter(&w.name, &w.params)?;
        if weighter.plot_history(&history, &a.out, &title)? {
            return Ok(());
        }
    }
    bail!(
        "{}: no run whose weighter draws its history (e.g. mas with at least one stage-2 epoch)",
        a.runs.display()
    )
}

/// A run with `train.synthesis.corrupt`: adds each epoch's corrupted sample indices to the
/// weighter's history (`corrupted`, drawn in red) and prints the ROC AUC of the weights, clean
/// against corrupted, per stage-2 epoch.
fn mark_corrupted(dir: &Path, history: &mut serde_json::Value) -> anyhow::Result<()> {
    let Ok(epochs) = read_weights(dir) else {
        return Ok(());
    };
    if !epochs
        .iter()
        .flat_map(|e| &e.sources)
        .any(|s| is_corrupted(s))
    {
        return Ok(());
    }
    println!("ROC AUC of the weights, clean vs corrupted samples (1 = every corrupted sample weighs less):");
    for (i, e) in epochs.iter().enumerate() {
        let bad: Vec<usize> = (0..e.sources.len())
            .filter(|j| is_corrupted(&e.sources[*j]))
            .collect();
        let pick = |want: bool| -> Vec<f64> {
            (0..e.weights.len())
                .filter(|j| bad.contains(j) == want)
                .map(|j| e.weights[j])
                .collect()
        };
        if let Some(auc) = separation_auc(&pick(false), &pick(true)) {
            println!(
                "  epoch {}: {auc:.3} ({} clean, {} corrupted)",
                e.epoch,
                e.weights.len() - bad.len(),
                bad.len()
            );
        }
        if let Some(h) = history.get_mut(i).and_then(|h| h.as_object_mut()) {
            h.insert("corrupted".into(), serde_json::json!(bad));
        }
    }
    Ok(())
}

pub fn run(a: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    match a.kind.as_str() {
        "segmentation" => segmentation(&a)?,
        _ => weights(&a, registry)?,
    }
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
