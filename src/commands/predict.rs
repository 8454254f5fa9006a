//! `dsma predict --run RUN [--run RUN ...] (--input DIR | --case PATH) --out DIR [--mirror]`:
//! segments cases without labels with a trained run or an ensemble of runs (see
//! [`dsma_train::predict`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dsma_data::LabelConvention;
use dsma_plugin::backend::BackendKind;
use dsma_train::predict::runs::PredictRun;
use dsma_train::predict::{predict, PredictInput, PredictObserver, PredictRequest};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A finished run folder (`runs/<dataset>/<row>/rep-N`); repeat for an ensemble, whose
    /// sigmoid probabilities are averaged.
    #[arg(long = "run", value_name = "RUN_DIR", required = true)]
    runs: Vec<PathBuf>,
    /// Folder of cases: BraTS case folders (no `seg` needed), or a Decathlon task folder (its
    /// `dataset.json` `test` list).
    #[arg(long, conflicts_with = "case", required_unless_present = "case")]
    input: Option<PathBuf>,
    /// One case folder, or one Decathlon image (`imagesTs/<id>.nii.gz`).
    #[arg(long)]
    case: Option<PathBuf>,
    /// Output folder; each case is written as `<case>.nii.gz` on its input grid.
    #[arg(long)]
    out: PathBuf,
    /// Label convention of the written maps (default: the runs' dataset's).
    #[arg(long, value_parser = |s: &str| LabelConvention::parse(s).map_err(|e| e.to_string()))]
    labels: Option<LabelConvention>,
    /// Test-time mirroring: average every window over its 8 axis flips (nnU-Net's default).
    #[arg(long)]
    mirror: bool,
    /// Backend to run on: cpu, cuda, tch or tch-cuda (default: each run's training backend).
    #[arg(long, value_parser = parse_backend)]
    backend: Option<BackendKind>,
    /// Probability threshold of every region, in [0, 1] (default: the runs' `eval.threshold`).
    #[arg(long, value_parser = parse_threshold)]
    threshold: Option<f32>,
}

fn parse_threshold(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("`{s}`; expected a probability in [0, 1]")),
    }
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    BackendKind::parse(s).ok_or_else(|| format!("`{s}`; expected cpu, cuda, tch or tch-cuda"))
}

/// A progress bar over the cases.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl PredictObserver for Progress {
    fn started(&mut self, runs: &[PredictRun], cases: usize) {
        for r in runs {
            println!(
                "run {} ({}, checkpoint {})",
                r.dir.display(),
                r.experiment.model.name,
                r.checkpoint
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            );
        }
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} cases ({elapsed}, ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        self.bar = Some(indicatif::ProgressBar::new(cases as u64).with_style(style));
    }
    fn written(&mut self, id: &str, _file: &Path) {
        if let Some(bar) = &self.bar {
            bar.set_message(id.to_string());
            bar.inc(1);
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = match (args.input, args.case) {
        (Some(dir), None) => PredictInput::Folder(dir),
        (None, Some(case)) => PredictInput::Case(case),
        _ => anyhow::bail!("give --input DIR or --case PATH"),
    };
    let req = PredictRequest {
        runs: args.runs,
        input,
        out: args.out,
        labels: args.labels,
        mirror: args.mirror,
        backend: args.backend,
        threshold: args.threshold,
    };
    let mut progress = Progress { bar: None };
    let summary = predict(&req, &mut progress)?;
    if let Some(bar) = progress.bar.take() {
        bar.finish_and_clear();
    }
    println!(
        "wrote {} prediction(s) to {} ({} labels{}{})",
        summary.files.len(),
        req.out.display(),
        summary.convention.name(),
        if req.mirror { ", mirrored" } else { "" },
        if req.runs.len() > 1 {
            format!(", ensemble of {} runs", req.runs.len())
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
