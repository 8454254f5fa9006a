//! `dsma report RUN_OUT_DIR --out report.html`: one self-contained HTML file (every image embedded
//! as a data URI, no network) with the tables and the published numbers beside them, Fig. 4 and
//! Fig. 5, the MAS weight trajectories, per-run curves, comparator samples, the resolved experiment,
//! the machine, and dsma's version and commit. Readable on a laptop screen and printable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use dsma_data::atomic_file::write_atomic;
use dsma_mas::{plot_weight_function, WeightFunction};
use dsma_plugin::Registry;
use dsma_train::pipeline::folder_table;
use dsma_train::runner::report::html::{escape, markdown_to_html};
use dsma_train::runner::report::index::collect_settings;
use dsma_train::runner::report::metric::TableMetric;
use dsma_train::runner::report::provenance::Provenance;
use dsma_train::runner::report::record::run_folders;
use dsma_train::runner::report::{render, TableFormat};

use super::figure;

/// `dsma report`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder of `dsma run`.
    runs: PathBuf,
    /// HTML file to write.
    #[arg(long)]
    out: PathBuf,
    /// Test cases in Fig. 5.
    #[arg(long, default_value_t = 3)]
    cases: usize,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#111}\
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}th,td{border:1px solid #bbb;padding:.2em .5em;text-align:right}\
thead th{background:#eee}tbody th{text-align:left}img{max-width:100%;height:auto;border:1px solid #ddd}\
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:.8em}p.item{margin:.1em 0 .1em 1.5em}\
.meta{color:#555}figure{margin:1em 0;break-inside:avoid}figcaption{font-size:.9em;color:#333}\
@media print{body{max-width:none}h2{break-before:auto}img{max-width:90%}}";

/// A PNG file as an `<img>` with a data URI.
fn image(path: &Path, caption: &str) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(format!(
        "<figure><img alt=\"{c}\" src=\"data:image/png;base64,{data}\"><figcaption>{c}</figcaption></figure>\n",
        c = escape(caption)
    ))
}

/// `dataset/row/rep-r` of a run folder.
fn run_name(dir: &Path) -> String {
    let parts: Vec<String> = dir
        .iter()
        .rev()
        .take(3)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The tables of Dice and HD95, with the published numbers and the tests' captions.
fn tables(out: &Path) -> anyhow::Result<String> {
    let mut html = String::from("<h2>Tables</h2>\n");
    for (metric, id) in [
        (TableMetric::Dice, "table-dice"),
        (TableMetric::Hd95, "table-hd95"),
    ] {
        let table = folder_table(out, metric)?;
        let _ = writeln!(
            html,
            "<h3>{} on the test split</h3>",
            escape(metric.caption())
        );
        html.push_str(&markdown_to_html(
            &render(&table, TableFormat::Markdown),
            id,
        ));
    }
    Ok(html)
}

/// Fig. 4 (the weight function of the last stage-2 epoch of the first MAS run, its synthetic
/// samples on it) and every MAS run's weight trajectories.
fn mas_figures(a: &Args, runs: &[PathBuf], tmp: &Path, registry: &Registry) -> String {
    let mut html = String::from("<h2>MAS weights (Fig. 4)</h2>\n");
    let mut drawn = 0;
    for dir in runs {
        let Ok(text) = std::fs::read(dir.join("weighter.json")) else {
            continue;
        };
        let Ok(history) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(last) = history.as_array().and_then(|h| h.last()) else {
            continue;
        };
        let (Some(eta), Some(theta), Some(beta)) = (
            last["eta"].as_f64(),
            last["theta"].as_f64(),
            last["beta"].as_f64(),
        ) else {
            continue;
        };
        let name = run_name(dir);
        if drawn == 0 {
            let f = WeightFunction { eta, theta, beta };
            let pairs = |k: &str| -> Vec<f64> {
                last[k]
                    .as_array()
                    .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
                    .unwrap_or_default()
            };
            let samples: Vec<(f64, f64)> =
                pairs("scores").into_iter().zip(pairs("weights")).collect();
            let png = tmp.join("fig4.png");
            if plot_weight_function(&png, &f, &samples).is_ok() {
                html.push_str(&image(&png, &format!("Fig. 4: the weight function of the last stage-2 epoch of {name}, its synthetic samples on it")).unwrap_or_default());
            }
        }
        let png = tmp.join(format!("weights-{drawn}.png"));
        let args = figure::Args::weights_of(&a.runs, dir, &png);
        if figure::weights(&args, registry).is_ok() {
            html.push_str(
                &image(&png, &format!("MAS weight trajectories of {name}")).unwrap_or_default(),
            );
        }
        drawn += 1;
        if drawn == 6 {
            break;
        }
    }
    if drawn == 0 {
        html.push_str("<p>No run with MAS weights in this folder.</p>\n");
    }
    html
}

/// Fig. 5, per-run curves and comparator samples.
fn run_figures(a: &Args, runs: &[PathBuf], tmp: &Path) -> String {
    let mut html = String::from("<h2>Segmentations (Fig. 5)</h2>\n");
    let png = tmp.join("fig5.png");
    match figure::segmentation(&figure::Args::segmentation_of(&a.runs, a.cases, &png)) {
        Ok(()) => html.push_str(
            &image(
                &png,
                "Fig. 5: ground truth and each row's prediction, test cases, FLAIR",
            )
            .unwrap_or_default(),
        ),
        Err(e) => {
            let _ = writeln!(html, "<p>Not drawn: {}</p>", escape(&format!("{e:#}")));
        }
    }
    html.push_str("<h2>Training curves</h2>\n");
    for dir in runs {
        if let Ok(img) = image(&dir.join("curves.png"), &run_name(dir)) {
            html.push_str(&img);
        }
    }
    let samples: Vec<String> = runs
        .iter()
        .filter(|d| d.ends_with("rep-0"))
        .filter_map(|d| {
            image(
                &d.join("synthesizer-samples.png"),
                &format!("generated images of {}", run_name(d)),
            )
            .ok()
        })
        .collect();
    if !samples.is_empty() {
        html.push_str("<h2>Comparator samples</h2>\n");
        html.extend(samples);
    }
    html
}

/// The first run's resolved experiment, as YAML.
fn resolved_experiment(runs: &[PathBuf]) -> String {
    let mut html = String::from("<h2>Resolved experiment</h2>\n");
    let config = runs.first().and_then(|d| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("config.json")).ok()?).ok()?;
        Some(v)
    });
    match config {
        Some(c) => {
            let files: Vec<String> = c["files"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                html,
                "<p>From {} (overrides: {}).</p>",
                escape(&files.join(" ← ")),
                escape(&c["overrides"].to_string())
            );
            let yaml = yaml_serde::to_string(&c["experiment"]).unwrap_or_default();
            let _ = writeln!(html, "<pre>{}</pre>", escape(&yaml));
        }
        None => html.push_str("<p>No run folder with config.json.</p>\n"),
    }
    html
}

/// "dsma V (commit C) on MACHINE".
fn provenance_text(p: &Provenance) -> String {
    format!("dsma {} (commit {}) on {}", p.dsma, p.commit, p.machine)
}

/// Writes the report of the output folder `a.runs` to `a.out`.
pub fn run(a: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let runs = run_folders(&a.runs)?;
    anyhow::ensure!(
        !runs.is_empty(),
        "{}: no run folders (expected the output folder of `dsma run`)",
        a.runs.display()
    );
    let name = a
        .runs
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| a.runs.display().to_string());
    let tmp = std::env::temp_dir().join(format!("dsma-report-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    let body = [
        tables(&a.runs)?,
        mas_figures(&a, &runs, &tmp, registry),
        run_figures(&a, &runs, &tmp),
        resolved_experiment(&runs),
    ]
    .concat();
    let _ = std::fs::remove_dir_all(&tmp);
    let written = match collect_settings(&a.runs).1 {
        Some(p) => format!("runs written by {}", provenance_text(&p)),
        None => "who wrote the runs is not recorded (an output folder of an older dsma)".into(),
    };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>dsma report: {n}</title><style>{STYLE}</style></head><body>\n\
         <h1>dsma report: {n}</h1>\n<p class=\"meta\">{runs} run(s) in {dir}; {w}; report by {r}</p>\n\
         {body}</body></html>\n",
        n = escape(&name),
        runs = runs.len(),
        dir = escape(&a.runs.display().to_string()),
        w = escape(&written),
        r = escape(&provenance_text(&Provenance::here())),
    );
    write_atomic(&a.out, html.as_bytes())?;
    println!("wrote {} ({} KB)", a.out.display(), html.len() / 1024);
    Ok(ExitCode::SUCCESS)
}
