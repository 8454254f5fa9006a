//! `dsma data check DIR` and `dsma data prepare EXPERIMENT`.

use std::path::PathBuf;
use std::process::ExitCode;

use dsma_data::brats::{check_dataset, DatasetOptions};
use dsma_data::LabelConvention;
use dsma_train::experiment::config::DatasetConfig;
use dsma_train::runner::prepare::prepare_datasets;
use dsma_train::runner::progress::PrepareSummary;
use dsma_train::runner::progress::RunObserver;
use dsma_train::runner::run_folder::{default_cache, default_out};

use super::args::PathArg;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Dataset folder (BraTS layout).
    dir: PathArg,
    /// Label convention of the `_seg` files: brats2019 (0,1,2,4: BraTS 2017–2022), brats2023 (0,1,2,3: 2023 adult glioma) or msd (Decathlon Task01).
    #[arg(long, default_value = "brats2019", value_parser = |s: &str| LabelConvention::parse(s).map_err(|e| e.to_string()))]
    labels: LabelConvention,
    /// In a BraTS 2019 HGG/LGG layout, also check LGG.
    #[arg(long)]
    include_lgg: bool,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let opts = DatasetOptions {
        convention: args.labels,
        include_lgg: args.include_lgg,
    };
    let report = check_dataset(&args.dir, &opts)?;
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
    if report.problems.is_empty() {
        println!(
            "{}: {} case(s), no problems",
            args.dir.display(),
            report.cases
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}: {} case(s), {} problem(s)",
            args.dir.display(),
            report.cases,
            report.problems.len()
        );
        Ok(ExitCode::from(1))
    }
}

#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// Experiment file (YAML) whose datasets to preprocess.
    experiment: PathArg,
    /// Overrides, e.g. `datasets.0.path=/data/BraTS2020`.
    overrides: Vec<String>,
    /// The shared root holding the case store (default: `cache/` beside the experiment's default
    /// output folder, i.e. runs/cache, where `dsma run` looks by default).
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Builds (or checks) the case store of every dataset of an experiment, with a progress bar.
pub fn prepare(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let exp = dsma_train::experiment::load(&args.experiment, &args.overrides)?;
    let cache = args
        .cache
        .unwrap_or_else(|| default_cache(&default_out(&exp.experiment.name)));
    let datasets: Vec<&DatasetConfig> = exp
        .variants
        .iter()
        .flat_map(|v| &v.experiment.datasets)
        .collect();
    prepare_datasets(&datasets, &cache, &mut Summaries { bar: None })?;
    Ok(ExitCode::SUCCESS)
}

/// Prints each dataset's summary, with a progress bar while it is prepared.
struct Summaries {
    bar: Option<indicatif::ProgressBar>,
}

impl RunObserver for Summaries {
    fn preparing(&mut self, name: &str) -> Box<dyn Fn(bool) + Sync> {
        let style =
            indicatif::ProgressStyle::with_template("{msg}: {pos} cases prepared ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bar = indicatif::ProgressBar::no_length()
            .with_style(style)
            .with_message(name.to_string());
        self.bar = Some(bar.clone());
        Box::new(move |_| bar.inc(1))
    }
    fn prepared(&mut self, summary: &PrepareSummary) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!("{summary}");
    }
}
