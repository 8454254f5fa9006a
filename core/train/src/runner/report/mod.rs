//! The paper's table: rows = methods, column groups = datasets, columns WT / TC / ET / AVE as DSC (%);
//! with repeats, mean ± std over repeats and a paired Wilcoxon signed-rank test of every row against
//! the first (baseline) row over test cases.

pub mod curves;
pub mod html;
pub mod index;
pub mod interval;
pub mod logs;
pub mod metric;
pub mod provenance;
pub mod record;
pub mod wilcoxon;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::experiment::config::Reference;
use crate::runner::records::RunResults;
pub use metric::TableMetric;
use wilcoxon::wilcoxon_signed_rank;

/// Output format of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// GitHub-flavoured Markdown.
    Markdown,
    /// Comma-separated values.
    Csv,
    /// A LaTeX `tabular` with one `\multicolumn` per dataset.
    Latex,
}

/// One cell: mean and standard deviation over repeats (percent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cell {
    /// Mean of the table's metric (DSC in %).
    pub mean: f64,
    /// Sample standard deviation over repeats (%), 0 with one repeat.
    pub std: f64,
    /// Repeats averaged.
    pub n: usize,
}

/// The assembled table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Row labels in experiment order.
    pub rows: Vec<String>,
    /// Dataset names in experiment order.
    pub datasets: Vec<String>,
    /// `cells[row][dataset]` = WT, TC, ET, AVE (None when the run is missing).
    pub cells: Vec<Vec<Option<[Cell; 4]>>>,
    /// Two-sided p-value of the paired Wilcoxon test against the first row on the per-case AVE
    /// of the table's metric.
    pub p_values: Vec<Vec<Option<f64>>>,
    /// Published numbers: their source and `[row][dataset]` = WT, TC, ET, AVE (%), if any.
    pub reference: Option<(String, PublishedCells)>,
    /// The metric in the cells.
    pub metric: TableMetric,
    /// What ± means in cells with repeats.
    pub interval: interval::Interval,
}

/// Published `[row][dataset]` = WT, TC, ET, AVE (%), `None` where the source has no number.
pub type PublishedCells = Vec<Vec<Option<[f64; 4]>>>;

impl Table {
    /// The table with ± meaning `interval`.
    pub fn with_interval(mut self, interval: interval::Interval) -> Table {
        self.interval = interval;
        self
    }

    /// The table with the published numbers of `reference` (if any, and if it names a cell).
    pub fn with_reference(mut self, reference: Option<&Reference>) -> Table {
        if self.metric != TableMetric::Dice {
            // Published numbers are Dice.
            return self;
        }
        self.reference = reference.and_then(|r| {
            let cells: PublishedCells = self
                .rows
                .iter()
                .map(|row| self.datasets.iter().map(|ds| r.of(ds, row)).collect())
                .collect();
            cells
                .iter()
                .flatten()
                .any(Option::is_some)
                .then(|| (r.source.clone(), cells))
        });
        self
    }
}

fn cell(values: &[f64]) -> Cell {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n.max(1) as f64;
    let std = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Cell { mean, std, n }
}

/// Per-case AVE of `metric` averaged over repeats, keyed by case id.
fn per_case(runs: &[&RunResults], metric: TableMetric) -> BTreeMap<String, f64> {
    let mut acc: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in runs {
        for c in &r.cases {
            let v = metric.of(&c.metrics, 3);
            if v.is_finite() {
                let e = acc.entry(c.id.clone()).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
    }
    acc.into_iter()
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect()
}

/// Builds the Dice table from run results; rows and datasets keep the order given.
pub fn build(rows: &[String], datasets: &[String], results: &[RunResults]) -> Table {
    build_metric(rows, datasets, results, TableMetric::Dice)
}

/// Builds the table of `metric` (runs evaluated without it show NaN).
pub fn build_metric(
    rows: &[String],
    datasets: &[String],
    results: &[RunResults],
    metric: TableMetric,
) -> Table {
    let runs_of = |row: &str, ds: &str| -> Vec<&RunResults> {
        results
            .iter()
            .filter(|r| r.row == row && r.dataset == ds)
            .collect()
    };
    let mut cells = Vec::new();
    let mut p_values = Vec::new();
    for row in rows {
        let mut crow = Vec::new();
        let mut prow = Vec::new();
        for ds in datasets {
            let runs = runs_of(row, ds);
            if runs.is_empty() {
                crow.push(None);
                prow.push(None);
                continue;
            }
            let col = |k: usize| {
                let scale = metric.scale();
                cell(
                    &runs
                        .iter()
                        .map(|r| scale * metric.of(&r.mean, k))
                        .collect::<Vec<_>>(),
                )
            };
            crow.push(Some([col(0), col(1), col(2), col(3)]));
            let base = runs_of(&rows[0], ds);
            let p = if row == &rows[0] || base.is_empty() {
                None
            } else {
                let (a, b) = (per_case(&runs, metric), per_case(&base, metric));
                let pairs: Vec<(f64, f64)> = a
                    .iter()
                    .filter_map(|(id, x)| b.get(id).map(|y| (*x, *y)))
                    .collect();
                wilcoxon_signed_rank(&pairs)
            };
            prow.push(p);
        }
        cells.push(crow);
        p_values.push(prow);
    }
    Table {
        rows: rows.to_vec(),
        datasets: datasets.to_vec(),
        cells,
        p_values,
        reference: None,
        metric,
        interval: interval::Interval::Std,
    }
}

/// Significance threshold of the `*` marker.
pub const ALPHA: f64 = 0.05;

const REGIONS: [&str; 4] = ["WT", "TC", "ET", "AVE"];

/// "*" where row `r`'s AVE on dataset `d` differs from the first row at p < [`ALPHA`].
fn mark(t: &Table, r: usize, d: usize) -> &'static str {
    t.p_values[r][d]
        .filter(|p| *p < ALPHA)
        .map(|_| "*")
        .unwrap_or("")
}

/// Renders the table.
pub fn render(t: &Table, format: TableFormat) -> String {
    let mut out = match format {
        TableFormat::Markdown => render_markdown(t),
        TableFormat::Csv => render_csv(t),
        TableFormat::Latex => render_latex(t),
    };
    if format == TableFormat::Markdown {
        out.push_str(&reference_section(t));
        if t.cells.iter().flatten().flatten().any(|c| c[3].n > 1) {
            let _ = writeln!(out, "\nCells: {}.", t.interval.caption());
        }
    }
    if format != TableFormat::Csv {
        out.push_str(&wilcoxon_footnote(t));
    }
    out
}

/// The published numbers beside ours: `published (ours − published)` per cell.
fn reference_section(t: &Table) -> String {
    let mut out = String::new();
    let Some((source, cells)) = &t.reference else {
        return out;
    };
    let _ = writeln!(
        out,
        "\nPublished DSC (%) from {source}, with ours − published in parentheses:\n"
    );
    out.push_str(&markdown_header(t));
    for (i, row) in t.rows.iter().enumerate() {
        let _ = write!(out, "| {row} |");
        for (j, published) in cells[i].iter().enumerate() {
            for k in 0..4 {
                let ours = t.cells[i][j].map(|c| c[k].mean);
                let text = match (published, ours) {
                    (Some(p), Some(o)) => format!("{:.2} ({:+.2})", p[k], o - p[k]),
                    (Some(p), None) => format!("{:.2}", p[k]),
                    (None, _) => "–".into(),
                };
                let _ = write!(out, " {text} |");
            }
        }
        out.push('\n');
    }
    out
}

/// The header and rule lines of a markdown table: one column per dataset and region.
fn markdown_header(t: &Table) -> String {
    let mut head = String::from("| Method |");
    let mut rule = String::from("|---|");
    for d in &t.datasets {
        for r in REGIONS {
            let _ = write!(head, " {d} {r} |");
            rule.push_str("---:|");
        }
    }
    format!("{head}\n{rule}\n")
}

fn render_markdown(t: &Table) -> String {
    let mut out = String::new();
    out.push_str(&markdown_header(t));
    for (i, row) in t.rows.iter().enumerate() {
        let _ = write!(out, "| {row} |");
        for (j, c) in t.cells[i].iter().enumerate() {
            match c {
                Some(cs) => {
                    for (k, c) in cs.iter().enumerate() {
                        let m = if k == 3 { mark(t, i, j) } else { "" };
                        let _ = write!(out, " {}{m} |", t.interval.cell(c.mean, c.std, c.n, false));
                    }
                }
                None => out.push_str(" – | – | – | – |"),
            }
        }
        out.push('\n');
    }
    out
}

fn render_csv(t: &Table) -> String {
    let mut out = String::from("method,dataset,region,mean,std,repeats,p_value\n");
    for (i, row) in t.rows.iter().enumerate() {
        for (j, ds) in t.datasets.iter().enumerate() {
            let Some(cs) = &t.cells[i][j] else { continue };
            for (k, c) in cs.iter().enumerate() {
                let p = match (k, t.p_values[i][j]) {
                    (3, Some(p)) => format!("{p:.6}"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "{row},{ds},{},{:.4},{:.4},{},{p}",
                    REGIONS[k], c.mean, c.std, c.n
                );
            }
        }
    }
    out
}

fn render_latex(t: &Table) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\\begin{{tabular}}{{l{}}}",
        "cccc".repeat(t.datasets.len())
    );
    out.push_str("\\hline\nMethod");
    for d in &t.datasets {
        let _ = write!(out, " & \\multicolumn{{4}}{{c}}{{{d}}}");
    }
    out.push_str(" \\\\\n");
    for _ in &t.datasets {
        out.push_str(" & WT & TC & ET & AVE");
    }
    out.push_str(" \\\\\n\\hline\n");
    for (i, row) in t.rows.iter().enumerate() {
        out.push_str(&row.replace('&', "\\&"));
        for (j, c) in t.cells[i].iter().enumerate() {
            match c {
                Some(cs) => {
                    for (k, c) in cs.iter().enumerate() {
                        let m = if k == 3 && !mark(t, i, j).is_empty() {
                            "$^*$"
                        } else {
                            ""
                        };
                        let _ = write!(out, " & {}{m}", t.interval.cell(c.mean, c.std, c.n, true));
                    }
                }
                None => out.push_str(" & -- & -- & -- & --"),
            }
        }
        out.push_str(" \\\\\n");
    }
    out.push_str("\\hline\n\\end{tabular}\n");
    out
}

/// The p-values of the paired Wilcoxon tests (empty when there are none).
fn wilcoxon_footnote(t: &Table) -> String {
    let mut out = String::new();
    if !t.p_values.iter().flatten().any(|p| p.is_some()) {
        return out;
    }
    let _ = writeln!(
        out,
        "\nPaired Wilcoxon signed-rank test against `{}` on per-case AVE {} (* marks p < {ALPHA}):",
        t.rows[0],
        t.metric.name()
    );
    for (i, row) in t.rows.iter().enumerate() {
        for (j, ds) in t.datasets.iter().enumerate() {
            if let Some(p) = t.p_values[i][j] {
                let _ = writeln!(out, "  {row} on {ds}: p = {p:.4}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_numbers_print_beside_ours_with_the_difference() {
        let c = |mean| Cell {
            mean,
            std: 0.0,
            n: 1,
        };
        let table = Table {
            rows: vec!["baseline".into(), "DSMA".into()],
            datasets: vec!["BraTS2020".into()],
            cells: vec![
                vec![Some([c(89.94), c(80.0), c(78.0), c(82.0)])],
                vec![None],
            ],
            p_values: vec![vec![None], vec![None]],
            reference: None,
            metric: TableMetric::Dice,
            interval: interval::Interval::Std,
        };
        let reference: Reference = serde_json::from_value(serde_json::json!({
            "source": "Table 3",
            "dsc": {"BraTS2020": {
                "baseline": [88.94, 80.75, 78.21, 82.63],
                "DSMA": [89.43, 82.62, 78.73, 83.59]
            }}
        }))
        .unwrap();
        let md = render(
            &table.clone().with_reference(Some(&reference)),
            TableFormat::Markdown,
        );
        // 89.94 − 88.94 = +1.00; 80.00 − 80.75 = −0.75; a missing run shows the number alone.
        assert!(md.contains("from Table 3"), "{md}");
        assert!(
            md.contains("| baseline | 88.94 (+1.00) | 80.75 (-0.75) |"),
            "{md}"
        );
        assert!(
            md.contains("| DSMA | 89.43 | 82.62 | 78.73 | 83.59 |"),
            "{md}"
        );
        // No reference (a phantom file), or one naming other datasets: no section.
        assert!(!render(&table.clone(), TableFormat::Markdown).contains("Published"));
        let other: Reference = serde_json::from_value(serde_json::json!({
            "source": "x", "dsc": {"BraTS2019": {"baseline": [1.0, 1.0, 1.0, 1.0]}}
        }))
        .unwrap();
        assert!(table.with_reference(Some(&other)).reference.is_none());
    }

    fn run(row: &str, repeat: usize, dice: [f64; 4]) -> RunResults {
        let m = |d| dsma_data::metrics::RegionMetrics::new(d, 1.0);
        RunResults {
            row: row.into(),
            dataset: "BraTS2020".into(),
            repeat,
            seed: repeat as u64,
            reported: crate::experiment::config::Report::Last,
            epoch: 3,
            cases: vec![],
            mean: dsma_data::metrics::CaseMetrics {
                WT: m(dice[0]),
                TC: m(dice[1]),
                ET: m(dice[2]),
                AVE: m(dice[3]),
            },
        }
    }

    /// Two rows, the second over two repeats: means and sample standard deviations by hand
    /// (82 and 84 → 83.00 ± √2; 64 and 60 → 62.00 ± √8; 73 and 72 → 72.50 ± √0.5).
    fn two_rows() -> Table {
        let results = [
            run("baseline", 0, [0.80, 0.70, 0.60, 0.70]),
            run("DTSS&MAS", 0, [0.82, 0.72, 0.64, 0.73]),
            run("DTSS&MAS", 1, [0.84, 0.72, 0.60, 0.72]),
        ];
        build(
            &["baseline".into(), "DTSS&MAS".into()],
            &["BraTS2020".into()],
            &results,
        )
    }

    #[test]
    fn csv_body_lists_every_cell_with_mean_std_and_repeats() {
        let want = "method,dataset,region,mean,std,repeats,p_value
baseline,BraTS2020,WT,80.0000,0.0000,1,
baseline,BraTS2020,TC,70.0000,0.0000,1,
baseline,BraTS2020,ET,60.0000,0.0000,1,
baseline,BraTS2020,AVE,70.0000,0.0000,1,
DTSS&MAS,BraTS2020,WT,83.0000,1.4142,2,
DTSS&MAS,BraTS2020,TC,72.0000,0.0000,2,
DTSS&MAS,BraTS2020,ET,62.0000,2.8284,2,
DTSS&MAS,BraTS2020,AVE,72.5000,0.7071,2,
";
        assert_eq!(render(&two_rows(), TableFormat::Csv), want);
    }

    #[test]
    fn latex_body_escapes_ampersands_and_shows_mean_pm_std() {
        let want = r"\begin{tabular}{lcccc}
\hline
Method & \multicolumn{4}{c}{BraTS2020} \\
 & WT & TC & ET & AVE \\
\hline
baseline & 80.00 & 70.00 & 60.00 & 70.00 \\
DTSS\&MAS & 83.00 $\pm$ 1.41 & 72.00 $\pm$ 0.00 & 62.00 $\pm$ 2.83 & 72.50 $\pm$ 0.71 \\
\hline
\end{tabular}
";
        assert_eq!(render(&two_rows(), TableFormat::Latex), want);
    }
}
