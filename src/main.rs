//! The `dsma` command-line tool.

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Training, prediction and fitting allocate large short-lived buffers every step.
    dsma_kernels::heap::retain_freed_memory();
    // Every refused input exits 1, command-line values included (clap's own code for them is 2);
    // `--help` and `--version` print and exit 0.
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain_text(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes joined by `: ` (`dsma_data::error::chain_text`).
fn chain_text(e: &anyhow::Error) -> String {
    dsma_data::error::chain_text(e.as_ref())
}

#[cfg(test)]
mod tests {
    use super::chain_text;

    #[test]
    fn chain_text_shows_each_message_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let core = dsma_data::CoreError::io("/x.yaml", io);
        let e = anyhow::Error::new(core).context("loading the experiment");
        assert_eq!(chain_text(&e), "loading the experiment: /x.yaml: gone");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain_text(&plain), "outer: inner");
    }
}
