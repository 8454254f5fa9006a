//! The `dsma` binary's integration tests, one binary (each `tests/*.rs` would link burn and every
//! plugin again): the CLI end to end, the runner in process, plugins, bad input, Slurm arrays.

mod bad_input;
mod bad_input_corpus;
mod cli_inspect;
mod comparators_cli;
mod concurrency;
mod confined_writes;
mod datasets_cli;
mod generative;
mod generator_lane;
mod gpu_check;
mod metrics_cli;
mod phantom;
mod plugins;
mod predict_cli;
mod report_cli;
mod run_cli;
mod slurm_array;
mod slurm_real;
mod soak;
mod storage_failures;
mod studies;
mod support;
mod synth_cli;
