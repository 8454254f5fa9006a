//! `KEY=VALUE` overrides (one per input line) applied to the quickstart experiment.
#![no_main]

use libfuzzer_sys::fuzz_target;

const QUICKSTART: &[u8] = include_bytes!("../../experiments/quickstart.yaml");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let overrides: Vec<String> = text.lines().take(8).map(String::from).collect();
    dsma_fuzz::load_experiment("quickstart.yaml", QUICKSTART, &overrides);
});
