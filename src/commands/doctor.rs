//! `dsma doctor [--json] [--require BACKEND ...]`: what this build can run on here, and why not.

use std::process::ExitCode;

use dsma_kernels::doctor::diagnose;
use dsma_kernels::doctor::report::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also time the U-Net's building blocks (first and second call) on every usable backend, to
    /// locate a slow kernel compile or autotune.
    #[arg(long, conflicts_with = "json")]
    ops: bool,
    /// Exit with status 1 unless this backend (cpu, cuda, tch, tch-cuda) passed every check (repeatable).
    #[arg(long, value_name = "BACKEND")]
    require: Vec<String>,
}

fn mark(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok  ",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = diagnose();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &report.checks {
            println!(
                "[{}] {:<8} {:<20} {}",
                mark(c.status),
                c.backend,
                c.item,
                c.detail
            );
            if let Some(fix) = &c.fix {
                println!("{:>37}fix: {fix}", "");
            }
        }
        println!("usable backends: {}", report.usable.join(", "));
    }
    if args.ops {
        use std::io::Write;
        println!("operation timings (first call / second call):");
        dsma_kernels::doctor::ops::time_ops_on(&report.usable, &mut |t| {
            println!(
                "  {:<8} {:<40} {:>9.4} s {:>9.4} s",
                t.backend, t.op, t.first_s, t.second_s
            );
            let _ = std::io::stdout().flush();
        });
    }
    let missing: Vec<&String> = args
        .require
        .iter()
        .filter(|b| !report.usable.contains(&b.as_str()))
        .collect();
    if missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: required backend(s) not usable here: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ExitCode::from(1))
    }
}
