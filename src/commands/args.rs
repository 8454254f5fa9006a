//! Argument parsing shared by several commands: `x,y,z` triples, `--set key=value` pairs, paths.

use std::path::PathBuf;

use anyhow::Context;

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

/// Builds a JSON object from `--set key=value` pairs (values are YAML, dotted keys nest) with the
/// experiment files' override rules (`experiment::apply_overrides`).
pub fn set_values(pairs: &[String]) -> anyhow::Result<serde_json::Value> {
    let root = serde_json::Value::Object(serde_json::Map::new());
    dsma_train::experiment::apply_overrides(root, pairs).context("--set")
}
