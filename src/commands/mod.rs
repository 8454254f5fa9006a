//! Subcommands of `dsma`.

mod data;
mod inspect;
mod phantom;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dsma: declarative 3-D brain-tumour segmentation experiments (DTSS + MAS, paper reproduction).
#[derive(Debug, Parser)]
#[command(name = "dsma", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a NIfTI file's header facts and intensity statistics.
    Inspect(inspect::Args),
    /// Write a procedural BraTS-like phantom dataset in the official BraTS layout.
    Phantom(phantom::Args),
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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect(a) => inspect::run(a),
        Command::Phantom(a) => phantom::run(a),
        Command::Data {
            command: DataCommand::Check(a),
        } => data::check(a),
    }
}

/// Parses `a,b,c` into three values.
pub fn parse_triple<T: std::str::FromStr>(s: &str) -> Result<[T; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(format!(
            "`{s}`: expected three comma-separated values, e.g. 64,64,48"
        ));
    }
    let mut out = Vec::with_capacity(3);
    for p in parts {
        out.push(
            p.parse::<T>()
                .map_err(|_| format!("`{p}` in `{s}` is not a valid number"))?,
        );
    }
    out.try_into()
        .map_err(|_| format!("`{s}`: expected three values"))
}

/// Path argument helper used by several commands.
pub type PathArg = PathBuf;
