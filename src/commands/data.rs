//! `dsma data check DIR` and `dsma data prepare EXPERIMENT`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dsma_core::brats::{check_dataset, DatasetOptions};
use dsma_core::runner::config::DatasetConfig;
use dsma_core::LabelConvention;

use super::PathArg;

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
    /// The case store's folder (default: runs/cache, where `dsma run` looks by default).
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Builds (or checks) the case store of every dataset of an experiment, with a progress bar.
pub fn prepare(args: PrepareArgs) -> anyhow::Result<ExitCode> {
    let exp = dsma_core::experiment::load(&args.experiment, &args.overrides)?;
    let cache = args.cache.unwrap_or_else(|| PathBuf::from("runs/cache"));
    let datasets: Vec<&DatasetConfig> = exp
        .variants
        .iter()
        .flat_map(|v| &v.experiment.datasets)
        .collect();
    for line in store_datasets(&datasets, &cache, true)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Preprocesses `datasets` into the case store under `cache` (each distinct one once), with a
/// progress line per dataset when `bar`; returns one summary line per dataset.
pub fn store_datasets(
    datasets: &[&DatasetConfig],
    cache: &Path,
    bar: bool,
) -> anyhow::Result<Vec<Summary>> {
    let mut seen: Vec<&DatasetConfig> = Vec::new();
    let mut lines = Vec::new();
    for &cfg in datasets {
        if seen.contains(&cfg) {
            continue;
        }
        seen.push(cfg);
        let style =
            indicatif::ProgressStyle::with_template("{msg}: {pos} cases prepared ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let progress = if bar {
            indicatif::ProgressBar::no_length()
        } else {
            indicatif::ProgressBar::hidden()
        }
        .with_style(style)
        .with_message(cfg.name.clone());
        let started = std::time::Instant::now();
        let data = dsma_core::runner::data::prepare_with(cfg, cache, &|_| progress.inc(1))?;
        progress.finish_and_clear();
        let cases: Vec<_> = data.train.iter().chain(&data.test).collect();
        let bytes: u64 = cases.iter().map(|c| c.disk_bytes()).sum();
        let folder = cases
            .first()
            .and_then(|c| c.dir().parent())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let built = data.built;
        lines.push(Summary {
            built,
            text: format!(
                "{}: {} cases in {folder}: {built} built, {} reused, {:.1} s, {:.2} GB on disk ({:.1} MB per case)",
                cfg.name,
                cases.len(),
                cases.len() - built,
                started.elapsed().as_secs_f64(),
                bytes as f64 / 1e9,
                bytes as f64 / 1e6 / cases.len().max(1) as f64,
            ),
        });
    }
    Ok(lines)
}

/// What [`store_datasets`] did for one dataset.
pub struct Summary {
    /// Cases preprocessed now (the rest were in the store).
    pub built: usize,
    /// The line printed for it.
    pub text: String,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}
