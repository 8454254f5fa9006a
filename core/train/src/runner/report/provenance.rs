//! Who wrote an output folder: dsma's version and commit and the machine (`experiment.json`
//! records the last `dsma run` into it; `dsma report` prints it beside the report's own).

use serde::{Deserialize, Serialize};

/// dsma's version and commit, and a description of the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// dsma's version.
    pub dsma: String,
    /// The git commit dsma was built from.
    pub commit: String,
    /// CPU model, logical cores, memory, OS and architecture.
    pub machine: String,
}

impl Provenance {
    /// This process: its version, commit and machine.
    pub fn here() -> Provenance {
        Provenance {
            dsma: env!("CARGO_PKG_VERSION").to_string(),
            commit: crate::COMMIT.to_string(),
            machine: this_machine(),
        }
    }
}

/// CPU model, logical cores and memory of this machine (from /proc on Linux), OS and architecture.
pub fn this_machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    format!(
        "{model}, {cores} logical cores, {:.0} GB ({}, {})",
        mem_kb / 1024.0 / 1024.0,
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
