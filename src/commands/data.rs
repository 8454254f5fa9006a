//! `dsma data check DIR`.

use std::process::ExitCode;

use dsma_core::brats::{check_dataset, DatasetOptions};
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
