//! `dsma eval --pred P --label L [--json]` and `dsma eval --pred-dir D --label-dir D --out metrics.csv`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use dsma_data::atomic_file::write_atomic;
use dsma_data::brats::{self, discover, DatasetOptions};
use dsma_data::metrics::{
    case_metrics, mean_over_cases, CaseMetrics, EmptyDice, EmptyHd, HdMode, MetricOptions,
};
use dsma_data::nifti_io::read_labels;
use dsma_data::LabelConvention;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Predicted label map.
    #[arg(long, conflicts_with = "pred_dir", requires = "label")]
    pred: Option<PathBuf>,
    /// Ground-truth label map.
    #[arg(long)]
    label: Option<PathBuf>,
    /// Folder of predictions: `<case>.nii.gz`, `<case>_seg.nii.gz` or `<case>/<case>_seg.nii.gz`.
    #[arg(long, requires = "label_dir")]
    pred_dir: Option<PathBuf>,
    /// Dataset folder with the ground truth in the BraTS layout.
    #[arg(long)]
    label_dir: Option<PathBuf>,
    /// Per-case CSV to write (folder mode).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Label convention of both maps.
    #[arg(long, default_value = "brats2019", value_parser = |s: &str| LabelConvention::parse(s).map_err(|e| e.to_string()))]
    labels: LabelConvention,
    /// Dice with an empty ground truth: brats (both empty → 1) or nan (skipped in means, MONAI).
    #[arg(long, default_value = "brats", value_parser = ["brats", "nan"])]
    empty_dice: String,
    /// HD95 with one empty mask: nan (skipped) or brats-penalty (373.13 mm).
    #[arg(long, default_value = "nan", value_parser = ["nan", "brats-penalty"])]
    empty_hd: String,
    /// HD95: pooled (medpy / BraTS toolkit) or max-directed (MONAI).
    #[arg(long, default_value = "pooled", value_parser = ["pooled", "max-directed"])]
    hd_mode: String,
}

fn options(a: &Args) -> MetricOptions {
    MetricOptions {
        empty_dice: if a.empty_dice == "nan" {
            EmptyDice::Nan
        } else {
            EmptyDice::Brats
        },
        empty_hd: if a.empty_hd == "brats-penalty" {
            EmptyHd::BratsPenalty
        } else {
            EmptyHd::Nan
        },
        hd_mode: if a.hd_mode == "max-directed" {
            HdMode::MaxDirected
        } else {
            HdMode::Pooled
        },
    }
}

fn score(
    pred: &Path,
    label: &Path,
    convention: LabelConvention,
    opts: &MetricOptions,
) -> anyhow::Result<CaseMetrics> {
    let (pg, p) = read_labels(pred)?;
    let (lg, l) = read_labels(label)?;
    if pg.dims != lg.dims {
        anyhow::bail!(
            "{}: shape {:?} differs from the label's {:?} ({})",
            pred.display(),
            pg.dims,
            lg.dims,
            label.display()
        );
    }
    for (file, map) in [(pred, &p), (label, &l)] {
        if let Some(v) = map.iter().find(|&&v| !convention.is_valid(v)) {
            anyhow::bail!(
                "{}: label {v} is outside the {} convention {:?}",
                file.display(),
                convention.name(),
                convention.valid_labels()
            );
        }
    }
    Ok(case_metrics(
        p.view(),
        l.view(),
        convention,
        lg.spacing_zyx(),
        opts,
    ))
}

fn json_of(m: &CaseMetrics) -> serde_json::Value {
    let num = |v: f64| {
        if v.is_finite() {
            serde_json::json!(v)
        } else {
            serde_json::Value::Null
        }
    };
    let r = |x: dsma_data::metrics::RegionMetrics| serde_json::json!({ "dice": num(x.dice), "hd95": num(x.hd95) });
    serde_json::json!({ "WT": r(m.WT), "TC": r(m.TC), "ET": r(m.ET), "AVE": r(m.AVE) })
}

fn print_table(m: &CaseMetrics) {
    println!("region   Dice (%)   HD95 (mm)");
    for (name, r) in [("WT", m.WT), ("TC", m.TC), ("ET", m.ET), ("AVE", m.AVE)] {
        println!("{name:<6} {:>9.2}   {:>9.2}", r.dice * 100.0, r.hd95);
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = options(&args);
    if let (Some(pred), Some(label)) = (&args.pred, &args.label) {
        let m = score(pred, label, args.labels, &opts)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&json_of(&m))?);
        } else {
            print_table(&m);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(pred_dir), Some(label_dir)) = (&args.pred_dir, &args.label_dir) else {
        anyhow::bail!("give --pred P --label L, or --pred-dir D --label-dir D [--out metrics.csv]");
    };
    let cases = discover(label_dir, &DatasetOptions::new(args.labels))?;
    let mut rows = vec![];
    for dir in cases {
        let id = brats::case_id(&dir);
        let truth = brats::seg_file(&dir)?;
        let pred = brats::prediction_file(pred_dir, &id)
            .with_context(|| format!("no prediction for case {id} in {} (looked for {id}.nii.gz, {id}_seg.nii.gz, {id}/{id}_seg.nii.gz)", pred_dir.display()))?;
        rows.push((id, score(&pred, &truth, args.labels, &opts)?));
    }
    let mut csv =
        String::from("case,WT_dice,TC_dice,ET_dice,AVE_dice,WT_hd95,TC_hd95,ET_hd95,AVE_hd95\n");
    for (id, m) in &rows {
        let f = |v: f64| {
            if v.is_finite() {
                format!("{v:.6}")
            } else {
                "nan".into()
            }
        };
        csv.push_str(&format!(
            "{id},{},{},{},{},{},{},{},{}\n",
            f(m.WT.dice),
            f(m.TC.dice),
            f(m.ET.dice),
            f(m.AVE.dice),
            f(m.WT.hd95),
            f(m.TC.hd95),
            f(m.ET.hd95),
            f(m.AVE.hd95)
        ));
    }
    if let Some(out) = &args.out {
        write_atomic(out, csv.as_bytes())?;
    }
    let summary = mean_over_cases(&rows.iter().map(|(_, m)| m).collect::<Vec<_>>());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_of(&summary))?);
    } else {
        println!("{} case(s), mean over cases:", rows.len());
        print_table(&summary);
        if let Some(out) = &args.out {
            println!("per-case metrics written to {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
