//! Expanding an experiment into runs (rows × datasets × repeats) and naming their folders.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use dsma_plugin::Registry;

use crate::experiment::config::{Experiment, PluginRef};
use dsma_data::seed::derive_seed;

/// One run: a row trained on a dataset with one seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Index of the grid point (0 without a grid).
    pub variant: usize,
    /// Index into `experiment.rows`.
    pub row: usize,
    /// Index into `experiment.datasets`.
    pub dataset: usize,
    /// Repeat index.
    pub repeat: usize,
    /// Seed of the run (model init, patches, synthesis).
    pub seed: u64,
    /// Row label.
    pub label: String,
    /// Dataset name.
    pub dataset_name: String,
    /// Hash of the stage-1 settings; runs with equal hashes share one stage-1 run.
    pub stage1_hash: String,
    /// Hash of everything the run's results depend on (not its row label, nor settings such as
    /// worker threads that change no number); experiment files whose runs hash equal share them.
    #[serde(default)]
    pub run_hash: String,
}

impl PlannedRun {
    /// Folder of the run, relative to the output folder.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from("runs")
            .join(slug(&self.dataset_name))
            .join(slug(&self.label))
            .join(format!("rep-{}", self.repeat))
    }

    /// Folder of its shared stage-1 run, relative to the shared root (`--cache`).
    pub fn stage1_dir(&self) -> PathBuf {
        PathBuf::from("stage1").join(&self.stage1_hash)
    }

    /// Folder of the run's content, relative to the shared root (`--cache`); the experiment's
    /// [`PlannedRun::dir`] links to it.
    pub fn shared_dir(&self) -> PathBuf {
        PathBuf::from("runs").join(&self.run_hash)
    }
}

/// A file-name-safe version of a label (`DTSS+MAS` → `dtss-mas`).
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "row".into()
    } else {
        trimmed
    }
}

/// FNV-1a, 64 bit: a stable hash (the standard library's is not stable across releases).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The evaluation settings a run's numbers depend on: `eval` without `predict.ensemble`, which
/// is evaluated from finished runs and changes none of them.
fn eval_key(exp: &Experiment) -> serde_json::Value {
    let mut eval = serde_json::to_value(&exp.eval).unwrap_or_default();
    if let Some(e) = eval.as_object_mut() {
        e.remove("interval");
    }
    if let Some(predict) = eval.get_mut("predict").and_then(|p| p.as_object_mut()) {
        predict.remove("ensemble");
        if predict.get("mirror") == Some(&serde_json::Value::Bool(false)) {
            predict.remove("mirror");
        }
        if predict.is_empty() {
            if let Some(e) = eval.as_object_mut() {
                e.remove("predict");
            }
        }
    }
    eval
}

/// A plugin reference with the plugin's defaults filled in, so that a changed default makes a new
/// run (a file that says `params: {}` would otherwise keep its hash) and spelled-out defaults
/// share runs with omitted ones; as written when the plugin is unknown.
fn with_defaults(registry: &Registry, r: &PluginRef) -> serde_json::Value {
    let params = match registry.describe(&r.name) {
        Ok(info) => crate::experiment::merge(info.defaults, r.params.clone()),
        Err(_) => r.params.clone(),
    };
    serde_json::json!({ "name": r.name, "params": params })
}

/// Every run of `exp`, datasets outermost, then repeats, then rows (`registry` says which
/// weighters are unit weights).
pub fn plan(exp: &Experiment, registry: &Registry) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for (d, dataset) in exp.datasets.iter().enumerate() {
        for repeat in 0..exp.repeats {
            let seed = derive_seed(exp.seed, repeat as u64);
            // Everything stage 1 depends on; stage-2 settings and the row are left out.
            let mut train = serde_json::to_value(&exp.train).unwrap_or_default();
            if let Some(t) = train.as_object_mut() {
                t.remove("stage2");
                t.remove("synthesis");
                t.remove("checkpoint_every");
            }
            let key = serde_json::json!({
                "dataset": dataset,
                "model": with_defaults(registry, &exp.model),
                "train": train,
                "seed": seed,
            });
            let hash = stable_hash(key.to_string().as_bytes());
            let eval = eval_key(exp);
            for (r, row) in exp.rows.iter().enumerate() {
                let mut run_key = serde_json::json!({
                    "stage1": key,
                    "stage2": exp.train.stage2,
                    "regenerate": exp.train.synthesis.regenerate,
                    "scoring": exp.train.scoring,
                    "eval": eval,
                    "synthesizer": row.synthesizer.as_ref().map(|s| with_defaults(registry, s)),
                    // A weighter that gives every synthetic case weight 1 and keeps no state
                    // (`SampleWeighter::unit`) is hashed as no weighter: the runs are the same.
                    "weighter": row
                        .weighter
                        .as_ref()
                        .filter(|w| !registry.is_unit_weighter(&w.name, &w.params))
                        .map(|w| with_defaults(registry, w)),
                });
                // A study's corruption (`train.synthesis.corrupt`) makes another run; without
                // one the key is as before the option existed.
                if let (Some(c), Some(k)) = (&exp.train.synthesis.corrupt, run_key.as_object_mut())
                {
                    k.insert("corrupt".into(), serde_json::json!(c));
                }
                let run_hash = stable_hash(run_key.to_string().as_bytes());
                runs.push(PlannedRun {
                    variant: 0,
                    row: r,
                    dataset: d,
                    repeat,
                    seed,
                    label: row.label.clone(),
                    dataset_name: dataset.name.clone(),
                    stage1_hash: format!("{hash:016x}"),
                    run_hash: format!("{run_hash:016x}"),
                });
            }
        }
    }
    runs
}

/// Every run of every grid point of `loaded`; row labels carry the grid point's suffix.
pub fn plan_all(
    loaded: &crate::experiment::LoadedExperiment,
    registry: &Registry,
) -> Vec<PlannedRun> {
    let mut runs = Vec::new();
    for (v, variant) in loaded.variants.iter().enumerate() {
        for mut r in plan(&variant.experiment, registry) {
            r.variant = v;
            r.label.push_str(&variant.suffix);
            runs.push(r);
        }
    }
    runs
}

/// Row labels of the table: every row of every grid point, in order.
pub fn row_labels(loaded: &crate::experiment::LoadedExperiment) -> Vec<String> {
    loaded
        .variants
        .iter()
        .flat_map(|v| {
            v.experiment
                .rows
                .iter()
                .map(move |r| format!("{}{}", r.label, v.suffix))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe() {
        assert_eq!(slug("DTSS+MAS"), "dtss-mas");
        assert_eq!(slug("Wu et al."), "wu-et-al");
        assert_eq!(slug("++"), "row");
    }
}
