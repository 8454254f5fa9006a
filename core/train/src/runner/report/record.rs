//! `config.json` of a run folder, typed: written by `execute` when a run starts, read by the table
//! (`collect_results`) and by `dsma figure`, so no reader parses it by hand.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::experiment::config::DatasetConfig;
use crate::runner::plan::PlannedRun;
use dsma_data::error::{CoreError, Result};

/// What a run folder's `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The merged experiment document after `extends` and overrides.
    pub experiment: serde_json::Value,
    /// Experiment files read, the given file first.
    pub files: Vec<PathBuf>,
    /// Overrides applied, as given.
    pub overrides: Vec<String>,
    /// The run.
    pub run: PlannedRun,
    /// The run's dataset with its folder made absolute when the run started, so the record is
    /// usable from any working directory (the experiment keeps the path as written, which the
    /// stage-1 hash uses). Absent in records written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<DatasetConfig>,
}

impl RunRecord {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            CoreError::invalid(
                path.display().to_string(),
                format!("not a dsma run record: {e}"),
            )
        })
    }

    /// Writes `dir/config.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| CoreError::codec("config.json", e))?;
        dsma_data::atomic_file::write_atomic(&dir.join("config.json"), &bytes)
    }

    /// The settings of this run that differ in `now` (the experiment document `execute` is about to
    /// run), as `path: recorded → now` lines: model, train, eval, seed, grid, the run's dataset
    /// and row. A resume against any of them would mix two configurations in one run.
    pub fn changed_settings(&self, now: &serde_json::Value, run: &PlannedRun) -> Vec<String> {
        let old = &self.experiment;
        let mut out = Vec::new();
        for key in ["model", "seed", "grid"] {
            diff(&old[key], &now[key], key, &mut out);
        }
        // What ± means in the printed table is not a setting of the run.
        let shown = |v: &serde_json::Value| {
            let mut v = v.clone();
            if let Some(e) = v.as_object_mut() {
                e.remove("interval");
            }
            v
        };
        diff(&shown(&old["eval"]), &shown(&now["eval"]), "eval", &mut out);
        // How synthesis is scheduled (threads, queue depth, the generator lane) does not change
        // what a run computes; `regenerate` does.
        let scheduled = |v: &serde_json::Value| {
            let mut v = v.clone();
            if let Some(t) = v.as_object_mut() {
                if let Some(s) = t.get_mut("synthesis").and_then(|s| s.as_object_mut()) {
                    for k in ["workers", "prefetch_epochs", "ahead_runs"] {
                        s.remove(k);
                    }
                    if s.is_empty() {
                        t.remove("synthesis");
                    }
                }
            }
            v
        };
        diff(
            &scheduled(&old["train"]),
            &scheduled(&now["train"]),
            "train",
            &mut out,
        );
        diff(
            &old["datasets"][self.run.dataset],
            &now["datasets"][run.dataset],
            &format!("datasets.{}", run.dataset),
            &mut out,
        );
        // The label is not a setting: a run shared by two experiment files has one per file.
        let unlabelled = |v: &serde_json::Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("label");
            }
            v
        };
        diff(
            &unlabelled(&old["rows"][self.run.row]),
            &unlabelled(&now["rows"][run.row]),
            &format!("rows.{}", run.row),
            &mut out,
        );
        out
    }

    /// The run's dataset: the recorded one, else (older records) the experiment's entry as written.
    pub fn dataset(&self) -> Result<DatasetConfig> {
        if let Some(d) = &self.dataset {
            return Ok(d.clone());
        }
        let entry = self.experiment["datasets"][self.run.dataset].clone();
        serde_json::from_value(entry).map_err(|e| {
            CoreError::invalid(
                format!("config.json: datasets.{}", self.run.dataset),
                e.to_string(),
            )
        })
    }

    /// The typed experiment the run was trained with: the recorded document with its grid point's
    /// settings applied (a run of a grid is one point of it).
    pub fn typed_experiment(&self) -> Result<crate::experiment::config::Experiment> {
        let mut doc = self.experiment.clone();
        let grid = doc.as_object_mut().and_then(|m| m.remove("grid"));
        if let Some(serde_json::Value::Object(grid)) = grid {
            let points = crate::experiment::expand_grid(&grid)?;
            let settings = points.get(self.run.variant).ok_or_else(|| {
                CoreError::invalid(
                    "config.json: grid",
                    format!("has no grid point {} (the run's)", self.run.variant),
                )
            })?;
            let rendered: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            doc = crate::experiment::apply_overrides(doc, &rendered)?;
        }
        serde_json::from_value(doc)
            .map_err(|e| CoreError::invalid("config.json: experiment", e.to_string()))
    }

    /// The weighter the run's row names (`None` for unit weights).
    pub fn weighter(&self) -> Result<Option<crate::experiment::config::PluginRef>> {
        let w = &self.experiment["rows"][self.run.row]["weighter"];
        if w.is_null() {
            return Ok(None);
        }
        serde_json::from_value(w.clone()).map(Some).map_err(|e| {
            CoreError::invalid(
                format!("config.json: rows.{}.weighter", self.run.row),
                e.to_string(),
            )
        })
    }

    /// The experiment's row labels, in table order.
    pub fn row_labels(&self) -> Vec<String> {
        self.names("rows", "label")
    }

    /// The experiment's dataset names, in column order.
    pub fn dataset_names(&self) -> Vec<String> {
        self.names("datasets", "name")
    }

    fn names(&self, key: &str, field: &str) -> Vec<String> {
        self.experiment[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x[field].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The dataset of a run with its folder made absolute (relative to the working directory now).
pub fn absolute_dataset(d: &DatasetConfig) -> DatasetConfig {
    let mut d = d.clone();
    if let Ok(abs) = std::fs::canonicalize(&d.path).or_else(|_| std::path::absolute(&d.path)) {
        d.path = abs;
    }
    d
}

/// Every run folder under `out/runs` (one holding `config.json` or `results.json`), sorted.
pub fn run_folders(out: &Path) -> Result<Vec<PathBuf>> {
    let runs = out.join("runs");
    if !runs.is_dir() {
        return Err(CoreError::invalid(
            out.display().to_string(),
            "has no `runs` folder; expected the --out folder of `dsma run`",
        ));
    }
    let mut dirs = vec![runs];
    let mut found = Vec::new();
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d)
            .map_err(|e| CoreError::io(&d, e))?
            .flatten()
        {
            let p = entry.path();
            if !p.is_dir() {
                continue;
            }
            if p.join("config.json").exists() || p.join("results.json").exists() {
                found.push(p);
            } else {
                dirs.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Appends `path: a → b` for every leaf where `a` and `b` differ (objects compared key by key).
fn diff(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(va, vb, &format!("{path}.{k}"), out);
            }
        }
        _ if a != b => {
            let show = |v: &Value| {
                if v.is_null() {
                    "(unset)".to_string()
                } else {
                    v.to_string()
                }
            };
            out.push(format!("{path}: {} → {}", show(a), show(b)));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_dataset_paths_do_not_depend_on_the_working_directory() {
        let d: DatasetConfig = serde_json::from_value(serde_json::json!({
            "name": "P", "kind": "phantom", "path": "data/x"
        }))
        .unwrap();
        let abs = absolute_dataset(&d);
        assert!(abs.path.is_absolute(), "{:?}", abs.path);
        assert!(abs.path.ends_with("data/x"));
        assert_eq!(abs.name, "P");
    }
}
