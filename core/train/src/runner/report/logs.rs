//! Files of a run folder: `epochs.csv` / `epochs.jsonl`, `weights.csv`, `results.json`; each
//! rewritten atomically from the in-memory state, so a resumed run rewrites them identically.

use std::fmt::Write as _;
use std::path::Path;

use crate::runner::records::{EpochRecord, RunResults};
use dsma_data::atomic_file::write_atomic;
use dsma_data::case_store::StoredCase;
use dsma_data::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// Scores and weights of one stage-2 epoch (a block of `weights.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightLog {
    /// Global epoch (1-based) the weights were used in.
    pub epoch: usize,
    /// Score of every real training case.
    #[serde(deserialize_with = "dsma_data::json_nan::nans_if_null")]
    pub real_scores: Vec<f64>,
    /// Real case each synthetic sample derives from (or the generator sample id).
    pub sources: Vec<String>,
    /// Score of every synthetic sample (NaN when the row's weighter reads no scores).
    #[serde(deserialize_with = "dsma_data::json_nan::nans_if_null")]
    pub scores: Vec<f64>,
    /// Weight of every synthetic sample.
    pub weights: Vec<f64>,
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

/// Writes `epochs.csv` and `epochs.jsonl`.
pub fn write_records(dir: &Path, records: &[EpochRecord]) -> Result<()> {
    let mut csv = String::from(
        "stage,epoch,lr,loss,steps,synthetic,mean_weight,real_score,test_wt,test_tc,test_et,test_ave,wait_s,seconds\n",
    );
    let mut jsonl = String::new();
    for r in records {
        let d = |i: usize| opt(r.test_dice.map(|d| d[i]));
        let _ = writeln!(
            csv,
            "{},{},{:e},{:.6},{},{},{},{},{},{},{},{},{:.3},{:.3}",
            r.stage,
            r.epoch,
            r.lr,
            r.loss,
            r.steps,
            r.synthetic,
            opt(r.mean_weight),
            opt(r.real_score),
            d(0),
            d(1),
            d(2),
            d(3),
            r.wait_s,
            r.seconds
        );
        jsonl.push_str(&serde_json::to_string(r).map_err(|e| CoreError::codec("epoch record", e))?);
        jsonl.push('\n');
    }
    write_atomic(&dir.join("epochs.csv"), csv.as_bytes())?;
    write_atomic(&dir.join("epochs.jsonl"), jsonl.as_bytes())
}

/// Writes `weights.csv`: one line per synthetic sample and stage-2 epoch.
pub fn write_weights(dir: &Path, logs: &[WeightLog], real: &[StoredCase]) -> Result<()> {
    let mut csv = String::from("epoch,sample,source,real_case,score,weight\n");
    for log in logs {
        for (j, ((src, score), w)) in log
            .sources
            .iter()
            .zip(&log.scores)
            .zip(&log.weights)
            .enumerate()
        {
            let real_case = real.get(j).map(|c| c.id()).unwrap_or("");
            // An empty score: the row's weighter does not read scores, so none were computed.
            let score = if score.is_nan() {
                String::new()
            } else {
                format!("{score:.6}")
            };
            let _ = writeln!(csv, "{},{j},{src},{real_case},{score},{w:.6}", log.epoch);
        }
    }
    write_atomic(&dir.join("weights.csv"), csv.as_bytes())
}

/// One stage-2 epoch of `weights.csv` read back: each synthetic sample's source and weight.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochWeights {
    /// Global epoch (1-based).
    pub epoch: usize,
    /// Source of each sample: the real case a derived sample comes from (`~corrupted-<kind>`
    /// appended for a corrupted one) or a generated sample's id.
    pub sources: Vec<String>,
    /// Weight of each sample.
    pub weights: Vec<f64>,
}

/// Reads `dir/weights.csv` back, epochs in file order.
pub fn read_weights(dir: &Path) -> Result<Vec<EpochWeights>> {
    let path = dir.join("weights.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let mut out: Vec<EpochWeights> = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| {
            CoreError::invalid(
                format!("{}:{}", path.display(), n + 1),
                format!("{what}; expected epoch,sample,source,real_case,score,weight"),
            )
        };
        let [epoch, _, source, _, _, weight] = f[..] else {
            return Err(bad(&format!("{} fields", f.len())));
        };
        let epoch: usize = epoch
            .parse()
            .map_err(|_| bad(&format!("epoch `{epoch}`")))?;
        let weight: f64 = weight
            .parse()
            .map_err(|_| bad(&format!("weight `{weight}`")))?;
        if out.last().is_none_or(|e| e.epoch != epoch) {
            out.push(EpochWeights {
                epoch,
                sources: Vec::new(),
                weights: Vec::new(),
            });
        }
        if let Some(e) = out.last_mut() {
            e.sources.push(source.to_string());
            e.weights.push(weight);
        }
    }
    Ok(out)
}

/// Writes any JSON value as `dir/name`.
pub fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| CoreError::codec(name, e))?;
    write_atomic(&dir.join(name), &json)
}

/// Writes `results.json` (marks the run finished).
pub fn write_results(dir: &Path, results: &RunResults) -> Result<()> {
    let json = serde_json::to_vec_pretty(results).map_err(|e| CoreError::codec("results", e))?;
    write_atomic(&dir.join("results.json"), &json)
}

/// Reads `results.json` of a finished run, if present.
pub fn read_results(dir: &Path) -> Result<Option<serde_json::Value>> {
    let path = dir.join("results.json");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CoreError::codec(path.display().to_string(), e))
}
