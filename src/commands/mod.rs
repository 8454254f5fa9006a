//! Subcommands of `dsma`.

mod args;
mod data;
mod doctor;
mod eval;
mod figure;
mod inspect;
mod phantom;
mod plugins;
mod predict;
mod report;
mod run;
mod synth;
mod weights;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dsma: declarative 3-D brain-tumour segmentation experiments (DTSS + MAS, paper reproduction).
#[derive(Debug, Parser)]
#[command(name = "dsma", version, about)]
pub struct Cli {
    /// Load a plugin file (repeatable): a shared library, or a Python file (`.py`) in a build with `--features python`.
    #[arg(long = "plugin", value_name = "PATH", global = true)]
    plugins: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a NIfTI file's header facts and intensity statistics.
    Inspect(inspect::Args),
    /// Write a procedural BraTS-like phantom dataset in the official BraTS layout.
    Phantom(phantom::Args),
    /// List registered plugins (built-in and loaded), or describe one.
    Plugins(plugins::Args),
    /// Derive synthetic cases from one real case with a synthesizer plugin (DTSS by default).
    Synth(synth::Args),
    /// MAS weights for given scores (η, θ, one weight per synthetic score), or a Fig. 4 plot.
    Weights(weights::Args),
    /// Dice and HD95 per region (WT, TC, ET, AVE) of a prediction, or of a folder of predictions.
    Eval(eval::Args),
    /// Segment cases without labels with a trained run or an ensemble of runs (BraTS portal
    /// submissions, a Decathlon task's imagesTs, one case).
    Predict(predict::Args),
    /// Train every row of an experiment (two stages), evaluate, and print the table.
    Run(run::RunArgs),
    /// Print the resolved experiment and its runs; check every plugin and parameter.
    Validate(run::ValidateArgs),
    /// Render the table of a finished (or partial) `dsma run` output folder.
    Table(run::TableArgs),
    /// Draw a figure from a `dsma run` output folder: segmentations (Fig. 5) or MAS weights.
    Figure(figure::Args),
    /// One self-contained HTML report of a `dsma run` output folder: tables with the published
    /// numbers, Fig. 4/5, MAS weights, curves, comparator samples, the experiment, the machine.
    Report(report::Args),
    /// What this build can run on here (CPU, CUDA), and for each backend that cannot, why and the fix.
    Doctor(doctor::Args),
    /// Dataset utilities.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Validate every case of a BraTS dataset folder, reporting all problems in one pass.
    Check(data::CheckArgs),
    /// Preprocess an experiment's datasets into the case store (what `dsma run` does first),
    /// reporting cases built and reused, time and disk footprint.
    Prepare(data::PrepareArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut registry = dsma_builtins::registry();
    for path in &cli.plugins {
        registry.load_library(path)?;
    }
    match cli.command {
        Command::Run(a) => run::run(a, registry),
        Command::Validate(a) => run::validate(a, registry),
        Command::Table(a) => run::table(a),
        Command::Figure(a) => figure::run(a, &registry),
        Command::Report(a) => report::run(a, &registry),
        Command::Plugins(a) => plugins::run(a, &registry),
        Command::Synth(a) => synth::run(a, &registry),
        Command::Weights(a) => weights::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Phantom(a) => phantom::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Data {
            command: DataCommand::Check(a),
        } => data::check(a),
        Command::Data {
            command: DataCommand::Prepare(a),
        } => data::prepare(a),
    }
}
