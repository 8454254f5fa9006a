//! `dsma figure RUNS_DIR --kind segmentation|weights`: the paper's Fig. 5 (ground truth and each row's
//! prediction on an axial slice of N test cases) and the MAS weight trajectories of a run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use dsma_core::brats::{discover, load_case, DatasetOptions};
use dsma_core::nifti_io::read_labels;
use dsma_core::runner::run_record::{run_folders, RunRecord};
use dsma_core::slice_figure::{axial, draw_png, render, slice_with_most_tumour, Overlay, Panel};
use dsma_core::{LabelConvention, Modality};
use plotters::prelude::*;

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

/// A finished run folder and what its run record says.
struct RunInfo {
    dir: PathBuf,
    label: String,
    dataset: String,
    dataset_path: PathBuf,
    convention: LabelConvention,
    /// (grid point, row): the table's order.
    order: (usize, usize),
}

fn runs(out: &Path) -> anyhow::Result<Vec<RunInfo>> {
    let mut infos = Vec::new();
    for dir in run_folders(out)? {
        let Ok(record) = RunRecord::read(&dir) else {
            continue;
        };
        let ds = record.dataset()?;
        infos.push(RunInfo {
            label: record.run.label.clone(),
            dataset: record.run.dataset_name.clone(),
            convention: ds.convention()?,
            dataset_path: ds.path,
            order: (record.run.variant, record.run.row),
            dir,
        });
    }
    infos.sort_by(|a, b| (&a.dataset, a.order).cmp(&(&b.dataset, b.order)));
    Ok(infos)
}

fn segmentation(a: &Args) -> anyhow::Result<()> {
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
        .filter(|r| r.dataset == first.dataset && r.dir.ends_with("rep-0"))
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
            .find(|d| d.file_name().is_some_and(|n| n == id.as_str()))
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
                title: r.label.clone(),
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

fn weights(a: &Args) -> anyhow::Result<()> {
    let dir = match &a.run {
        Some(d) => d.clone(),
        None => runs(&a.runs)?
            .into_iter()
            .find(|r| {
                std::fs::read_to_string(r.dir.join("weighter.json"))
                    .is_ok_and(|t| t.contains("\"eta\""))
            })
            .map(|r| r.dir)
            .with_context(|| {
                format!(
                    "{}: no run with MAS weights (weighter.json with η)",
                    a.runs.display()
                )
            })?,
    };
    let history: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("weighter.json"))
            .with_context(|| format!("{}", dir.join("weighter.json").display()))?,
    )?;
    let epochs = history.as_array().cloned().unwrap_or_default();
    if epochs.is_empty() {
        bail!("{}: weighter.json has no epochs", dir.display());
    }
    let mas = MasHistory::of(&epochs);
    // The run's own name (row/rep), not the absolute folder.
    let title = format!(
        "MAS in {}",
        dir.iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<PathBuf>()
            .display()
    );
    draw_png(&a.out, (1100, 800), |root| {
        root.fill(&WHITE).map_err(|x| x.to_string())?;
        let (top, bottom) = root.split_vertically(400);
        scores_panel(&top, &mas, &title)?;
        weights_panel(&bottom, &mas)
    })?;
    Ok(())
}

/// What `weighter.json` of MAS holds per stage-2 epoch: η, θ, β, the synthetic scores and weights.
struct MasHistory {
    /// (η, θ, β) per epoch.
    band: Vec<(f64, f64, f64)>,
    scores: Vec<Vec<f64>>,
    weights: Vec<Vec<f64>>,
}

impl MasHistory {
    fn of(epochs: &[serde_json::Value]) -> Self {
        let get = |e: &serde_json::Value, k: &str| e[k].as_f64().unwrap_or(f64::NAN);
        let series = |k: &str| -> Vec<Vec<f64>> {
            epochs
                .iter()
                .map(|e| {
                    e[k].as_array()
                        .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
                        .unwrap_or_default()
                })
                .collect()
        };
        MasHistory {
            band: epochs
                .iter()
                .map(|ep| (get(ep, "eta"), get(ep, "theta"), get(ep, "beta")))
                .collect(),
            scores: series("scores"),
            weights: series("weights"),
        }
    }

    /// The x range: stage-2 epochs 0..k centred on integers.
    fn x_range(&self) -> std::ops::Range<f64> {
        -0.5..self.band.len() as f64 - 0.5
    }
}

/// Integer epoch labels (stage-2 epochs are whole numbers; ticks between them stay blank).
fn epoch_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// Synthetic scores per epoch over the band η ± θ and its edges η ± (θ + β).
fn scores_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    mas: &MasHistory,
    title: &str,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut c = ChartBuilder::on(area)
        .caption(
            format!("{title}: synthetic scores vs η ± θ (± β)"),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(mas.x_range(), 0.0..1.0)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc("stage-2 epoch")
        .y_desc("Dice")
        .x_labels(mas.band.len().clamp(2, 20))
        .x_label_formatter(&epoch_label)
        .draw()
        .map_err(|x| e(&x))?;
    for (i, (eta, theta, _)) in mas.band.iter().enumerate() {
        let i = i as f64;
        c.draw_series(std::iter::once(Rectangle::new(
            [(i - 0.4, eta - theta), (i + 0.4, eta + theta)],
            RGBColor(0, 160, 0).mix(0.25).filled(),
        )))
        .map_err(|x| e(&x))?;
    }
    c.draw_series(LineSeries::new(
        mas.band.iter().enumerate().map(|(i, b)| (i as f64, b.0)),
        RGBColor(0, 120, 0).stroke_width(2),
    ))
    .map_err(|x| e(&x))?
    .label("η (mean real score), band η ± θ")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(0, 120, 0)));
    for sign in [-1.0, 1.0] {
        let edge = c
            .draw_series(LineSeries::new(
                mas.band
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (i as f64, b.0 + sign * (b.1 + b.2))),
                RGBColor(200, 0, 0),
            ))
            .map_err(|x| e(&x))?;
        if sign > 0.0 {
            edge.label("η ± (θ + β): weight 0 beyond")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(200, 0, 0)));
        }
    }
    for (i, s) in mas.scores.iter().enumerate() {
        c.draw_series(
            s.iter()
                .map(|v| Circle::new((i as f64, *v), 2, BLACK.filled())),
        )
        .map_err(|x| e(&x))?;
    }
    // Below the plot area's lower edge scores are rare (Dice near 0): keep the legend there.
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// The weight of every synthetic sample across epochs, one line per sample.
fn weights_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    mas: &MasHistory,
) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut d = ChartBuilder::on(area)
        .caption(
            "weight of every synthetic sample (one line per sample)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(mas.x_range(), 0.0..1.05)
        .map_err(|x| e(&x))?;
    d.configure_mesh()
        .x_desc("stage-2 epoch")
        .y_desc("weight")
        .x_labels(mas.band.len().clamp(2, 20))
        .x_label_formatter(&epoch_label)
        .draw()
        .map_err(|x| e(&x))?;
    let n = mas.weights.iter().map(Vec::len).max().unwrap_or(0);
    for j in 0..n {
        let colour = Palette99::pick(j).mix(0.7);
        d.draw_series(LineSeries::new(
            mas.weights
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.get(j).map(|v| (i as f64, *v))),
            colour,
        ))
        .map_err(|x| e(&x))?;
    }
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    match a.kind.as_str() {
        "segmentation" => segmentation(&a)?,
        _ => weights(&a)?,
    }
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
