//! `dsma eval --pred P --label L [--json] [--metrics dice,hd95,nsd,lesion] [--reading panoptica]`
//! and `dsma eval --pred-dir D --label-dir D --out metrics.csv`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use dsma_data::atomic_file::write_atomic;
use dsma_data::brats::{self, discover, DatasetOptions};
use dsma_data::metrics::{
    case_metrics, mean_over_cases, CaseMetrics, EmptyDice, EmptyHd, HdMode, Metric, MetricOptions,
    MetricSet, Reading,
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
    /// Metrics: dice, hd95, nsd (normalised surface Dice), lesion (lesion-wise DSC / HD95 / NSD
    /// with tp, fp, fn, as the official `BraTS_evaluation` package computes them).
    #[arg(long, value_delimiter = ',', default_value = "dice,hd95", value_parser = parse_metric)]
    metrics: Vec<Metric>,
    /// NSD tolerance in mm (dsma reading).
    #[arg(long, default_value_t = 1.0, value_parser = parse_tolerance)]
    nsd_tolerance: f64,
    /// dsma (millimetres, the options above) or panoptica (the numbers of the official
    /// `BraTS_evaluation` 0.0.10 package, its voxel-unit global distances included).
    #[arg(long, default_value = "dsma", value_parser = ["dsma", "panoptica"])]
    reading: String,
}

fn parse_tolerance(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        _ => Err(format!("`{s}`; expected a positive number of millimetres")),
    }
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Metric::parse(s).ok_or_else(|| format!("`{s}`; expected dice, hd95, nsd or lesion"))
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
        compute: MetricSet::from(a.metrics.clone()),
        nsd_tolerance: a.nsd_tolerance,
        reading: if a.reading == "panoptica" {
            Reading::Panoptica
        } else {
            Reading::Dsma
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
    if !pg.same_space(&lg, AFFINE_TOLERANCE_MM) {
        anyhow::bail!(
            "{}: affine {:?} differs from the label's {:?} ({}) by more than {AFFINE_TOLERANCE_MM} mm",
            pred.display(),
            pg.affine,
            lg.affine,
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

/// Tolerance (mm) between the prediction's and the label's affines.
const AFFINE_TOLERANCE_MM: f64 = 1e-3;

/// Per region `dice`, `hd95`, and when asked `nsd` and `lesion {tp, fp, fn, sq_dsc, pq_dsc,
/// sq_hd95, sq_nsd}`; NaN and ∞ are `null`.
fn json_of(m: &CaseMetrics) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(m)?)
}

fn print_table(m: &CaseMetrics, reading: Reading) {
    let (nsd, lesion) = (m.WT.nsd.is_some(), m.WT.lesion.is_some());
    let mut head = String::from(match reading {
        Reading::Dsma => "region   Dice (%)   HD95 (mm)",
        Reading::Panoptica => "region   Dice (%)  HD95 (vox)",
    });
    if nsd {
        head.push_str("    NSD (%)");
    }
    if lesion {
        head.push_str("   lesions tp/fp/fn   LW-DSC (%)   LW-PQ (%)   LW-HD95   LW-NSD (%)");
    }
    println!("{head}");
    for (name, r) in [("WT", m.WT), ("TC", m.TC), ("ET", m.ET), ("AVE", m.AVE)] {
        let mut line = format!("{name:<6} {:>9.2}   {:>9.2}", r.dice * 100.0, r.hd95);
        if let Some(v) = r.nsd {
            line.push_str(&format!("   {:>8.2}", v * 100.0));
        }
        if let Some(l) = r.lesion {
            let counts = format!("{}/{}/{}", l.tp, l.fp, l.fn_);
            line.push_str(&format!(
                "   {counts:>16}   {:>10.2}   {:>9.2}   {:>7.2}   {:>10.2}",
                l.sq_dsc * 100.0,
                l.pq_dsc * 100.0,
                l.sq_hd95,
                l.sq_nsd * 100.0
            ));
        }
        println!("{line}");
    }
}

/// The per-case CSV: Dice and HD95 per region and AVE, then NSD and the lesion-wise numbers of
/// each region when they were computed.
fn csv_of(rows: &[(String, CaseMetrics)]) -> String {
    let f = |v: f64| {
        if v.is_nan() {
            "nan".into()
        } else {
            format!("{v:.6}")
        }
    };
    let regions = |m: &CaseMetrics| [m.WT, m.TC, m.ET, m.AVE];
    let names = ["WT", "TC", "ET", "AVE"];
    let first = rows.first().map(|(_, m)| *m);
    let (nsd, lesion) = first.map_or((false, false), |m| {
        (m.WT.nsd.is_some(), m.WT.lesion.is_some())
    });
    let mut head = vec!["case".to_string()];
    head.extend(names.iter().map(|r| format!("{r}_dice")));
    head.extend(names.iter().map(|r| format!("{r}_hd95")));
    if nsd {
        head.extend(names.iter().map(|r| format!("{r}_nsd")));
    }
    let lesion_keys = ["tp", "fp", "fn", "sq_dsc", "pq_dsc", "sq_hd95", "sq_nsd"];
    if lesion {
        for r in &names[..3] {
            head.extend(lesion_keys.iter().map(|k| format!("{r}_lesion_{k}")));
        }
    }
    let mut out = head.join(",") + "\n";
    for (id, m) in rows {
        let mut cells = vec![id.clone()];
        cells.extend(regions(m).iter().map(|r| f(r.dice)));
        cells.extend(regions(m).iter().map(|r| f(r.hd95)));
        if nsd {
            cells.extend(regions(m).iter().map(|r| f(r.nsd.unwrap_or(f64::NAN))));
        }
        if lesion {
            for r in &regions(m)[..3] {
                if let Some(l) = r.lesion {
                    cells.extend([l.tp.to_string(), l.fp.to_string(), l.fn_.to_string()]);
                    cells.extend([l.sq_dsc, l.pq_dsc, l.sq_hd95, l.sq_nsd].map(f));
                }
            }
        }
        out.push_str(&(cells.join(",") + "\n"));
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = options(&args);
    if let (Some(pred), Some(label)) = (&args.pred, &args.label) {
        let m = score(pred, label, args.labels, &opts)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&json_of(&m)?)?);
        } else {
            print_table(&m, opts.reading);
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
    let csv = csv_of(&rows);
    if let Some(out) = &args.out {
        write_atomic(out, csv.as_bytes())?;
    }
    let summary = mean_over_cases(&rows.iter().map(|(_, m)| m).collect::<Vec<_>>());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_of(&summary)?)?);
    } else {
        println!("{} case(s), mean over cases:", rows.len());
        print_table(&summary, opts.reading);
        if let Some(out) = &args.out {
            println!("per-case metrics written to {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
