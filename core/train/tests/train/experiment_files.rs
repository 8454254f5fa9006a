//! Experiment files: inheritance and overrides, grid × rows × datasets × repeats expansion, shard
//! partition, shared stage-1 hashes, and table rendering from fixture results.

use std::path::Path;

use dsma_data::metrics::{CaseMetrics, RegionMetrics};
use dsma_train::experiment::config::Report;
use dsma_train::experiment::load;
use dsma_train::runner::execute::{selected_runs, Selection};
use dsma_train::runner::plan::{plan_all, row_labels};
use dsma_train::runner::records::{CaseResult, RunResults};
use dsma_train::runner::report::{build, build_metric, render, TableFormat, TableMetric};

const BASE: &str = "name: base
seed: 1
datasets:
  - name: A
    kind: phantom
    path: data/a
    phantom: {cases: 6, size: [24, 24, 16], seed: 1}
model: {name: unet3d, params: {base_width: 4, depth: 2}}
train:
  stage1: {epochs: 4, lr: 1.0e-3}
  stage2: {epochs: 2, lr: 1.0e-4}
  patch: {size: [16, 16, 16]}
rows:
  - label: baseline
  - label: DSMA
    synthesizer: {name: dtss}
    weighter: {name: mas}
";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn extends_deep_merges_maps_replaces_lists_and_overrides_win() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "base.yaml", BASE);
    let child = write(
        tmp.path(),
        "child.yaml",
        "extends: base.yaml
name: child
train:
  stage2: {epochs: 5}
rows:
  - label: only
",
    );
    let l = load(&child, &["train.stage1.lr=0.01".into(), "seed=9".into()]).unwrap();
    let e = &l.experiment;
    assert_eq!(e.name, "child");
    assert_eq!(e.train.stage2.epochs, 5, "child value");
    assert_eq!(
        e.train.stage2.lr, 1e-4,
        "kept from the base by the deep merge"
    );
    assert_eq!(e.train.stage1.lr, 0.01, "override");
    assert_eq!(e.seed, 9);
    assert_eq!(e.rows.len(), 1, "lists replace");
    assert_eq!(l.files.len(), 2);
}

#[test]
fn extends_cycles_and_missing_bases_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.yaml", "extends: b.yaml\nname: a\n");
    let b = write(tmp.path(), "b.yaml", "extends: a.yaml\nname: b\n");
    let err = load(&b, &[]).unwrap_err().to_string();
    assert!(err.contains("cycle") && err.contains("a.yaml"), "{err}");
    let c = write(tmp.path(), "c.yaml", "extends: nowhere.yaml\nname: c\n");
    let err = load(&c, &[]).unwrap_err().to_string();
    assert!(
        err.contains("nowhere.yaml") && err.contains("c.yaml"),
        "{err}"
    );
}

#[test]
fn a_typo_in_a_base_file_is_reported_in_that_file_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "base.yaml",
        &BASE.replace("  stage2: {epochs: 2", "  stage2: {epohcs: 2"),
    );
    let child = write(
        tmp.path(),
        "child.yaml",
        "extends: base.yaml\nname: child\n",
    );
    let err = load(&child, &[]).unwrap_err().to_string();
    assert!(
        err.contains("base.yaml:11") && err.contains("epohcs"),
        "{err}"
    );
}

#[test]
fn runs_expand_over_grid_rows_datasets_and_repeats_and_shards_partition_them() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "{BASE}repeats: 2
grid:
  train.stage2.lr: [1.0e-4, 1.0e-5]
  rows.1.weighter.params.beta: [0.05, 0.1, 0.2]
"
    )
    .replace(
        "datasets:\n",
        "datasets:\n  - name: B\n    kind: phantom\n    path: data/b\n    phantom: {cases: 6, size: [24, 24, 16], seed: 2}\n",
    );
    let p = write(tmp.path(), "grid.yaml", &text);
    let l = load(&p, &[]).unwrap();
    assert_eq!(l.variants.len(), 6);
    let registry = dsma_plugin::Registry::builtin();
    let runs = plan_all(&l, &registry);
    assert_eq!(
        runs.len(),
        6 * 2 * 2 * 2,
        "grid × rows × datasets × repeats"
    );
    assert!(l
        .variants
        .iter()
        .any(|v| v.experiment.rows[1].weighter.as_ref().unwrap().params["beta"] == 0.2));
    let labels = row_labels(&l);
    assert_eq!(labels.len(), 12);
    assert!(
        labels.contains(&"DSMA [beta=0.05, lr=0.0001]".to_string()),
        "{labels:?}"
    );
    // Run folders are unique.
    let mut dirs: Vec<_> = runs.iter().map(|r| r.dir()).collect();
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), runs.len());
    // Rows that share data, model, stage-1 schedule and seed share one stage 1: the grid only
    // changes stage 2 here, so there is one stage-1 run per dataset and repeat.
    let mut hashes: Vec<_> = runs.iter().map(|r| r.stage1_hash.clone()).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 2 * 2);
    // Shards cover every run exactly once.
    let mut seen = Vec::new();
    for i in 0..5 {
        let selection = Selection {
            shard: Some((i, 5)),
            ..Selection::default()
        };
        seen.extend(
            selected_runs(&l, &registry, &selection)
                .into_iter()
                .map(|r| r.dir()),
        );
    }
    seen.sort();
    let mut all: Vec<_> = runs.iter().map(|r| r.dir()).collect();
    all.sort();
    assert_eq!(seen, all);
    // --only keeps a row across grid points.
    let only = Selection {
        only: vec!["baseline".into()],
        ..Selection::default()
    };
    assert_eq!(selected_runs(&l, &registry, &only).len(), 6 * 2 * 2);
}

fn metrics(wt: f64, tc: f64, et: f64) -> CaseMetrics {
    let m = |d| RegionMetrics::new(d, 1.0);
    CaseMetrics {
        WT: m(wt),
        TC: m(tc),
        ET: m(et),
        AVE: m((wt + tc + et) / 3.0),
    }
}

fn result(row: &str, ds: &str, repeat: usize, shift: f64) -> RunResults {
    let cases: Vec<CaseResult> = (0..10)
        .map(|i| CaseResult {
            id: format!("c{i}"),
            metrics: metrics(0.8 + 0.01 * i as f64 + shift, 0.7 + shift, 0.6 + shift),
        })
        .collect();
    let mean = dsma_train::runner::evaluate::mean_metrics(&cases);
    RunResults {
        row: row.into(),
        dataset: ds.into(),
        repeat,
        seed: repeat as u64,
        reported: Report::Last,
        epoch: 10,
        cases,
        mean,
    }
}

#[test]
fn tables_render_mean_std_and_wilcoxon_marks_in_three_formats() {
    let rows = vec!["baseline".to_string(), "DSMA".to_string()];
    let datasets = vec!["BraTS2019".to_string(), "BraTS2020".to_string()];
    let results = vec![
        result("baseline", "BraTS2019", 0, 0.0),
        result("baseline", "BraTS2019", 1, 0.002),
        result("DSMA", "BraTS2019", 0, 0.02),
        result("DSMA", "BraTS2019", 1, 0.03),
        result("baseline", "BraTS2020", 0, 0.0),
    ];
    let t = build(&rows, &datasets, &results);
    let md = render(&t, TableFormat::Markdown);
    // baseline WT mean over repeats: (0.845 + 0.847) / 2 = 84.60 %, std 0.14.
    assert!(md.contains("| baseline | 84.60 ± 0.14 |"), "{md}");
    // DSMA is better on every one of the 10 cases: exact two-sided p = 2 / 2^10 < 0.05 → marked.
    assert!(t.p_values[1][0].unwrap() < 0.01);
    let lines: Vec<&str> = md.lines().collect();
    assert!(lines[3].contains("* |") && !lines[2].contains('*'), "{md}");
    assert!(md.contains("DSMA on BraTS2019: p = 0.0020"), "{md}");
    // The missing DSMA/BraTS2020 run renders as dashes.
    assert!(
        md.lines().nth(3).unwrap().ends_with("| – | – | – | – |"),
        "{md}"
    );
    let csv = render(&t, TableFormat::Csv);
    assert!(csv.starts_with("method,dataset,region,mean,std,repeats,p_value\n"));
    assert!(csv.contains("DSMA,BraTS2019,AVE,"));
    let tex = render(&t, TableFormat::Latex);
    assert!(
        tex.contains("\\multicolumn{4}{c}{BraTS2019}") && tex.contains("$\\pm$"),
        "{tex}"
    );
}

/// `--metric` tables: HD95 in mm as evaluated, lesion-wise DSC (%) from the per-region lesion
/// numbers with AVE their mean, and NaN for runs evaluated without the metric.
#[test]
fn tables_of_other_metrics_use_the_region_values_of_that_metric() {
    use dsma_data::lesion::LesionMetrics;
    let rows = vec!["baseline".to_string()];
    let datasets = vec!["A".to_string()];
    let mut r = result("baseline", "A", 0, 0.0);
    let lesion = |sq: f64| LesionMetrics {
        tp: 1,
        fp: 0,
        fn_: 1,
        sq_dsc: sq,
        pq_dsc: sq * 2.0 / 3.0,
        sq_hd95: 2.0,
        sq_nsd: 0.9,
    };
    for (region, sq) in [
        (&mut r.mean.WT, 0.9),
        (&mut r.mean.TC, 0.6),
        (&mut r.mean.ET, 0.3),
    ] {
        region.lesion = Some(lesion(sq));
        region.hd95 = sq * 10.0;
    }
    let hd = build_metric(
        &rows,
        &datasets,
        std::slice::from_ref(&r),
        TableMetric::Hd95,
    );
    let cells = hd.cells[0][0].unwrap();
    assert_eq!(
        [cells[0].mean, cells[1].mean, cells[2].mean],
        [9.0, 6.0, 3.0]
    );
    let lw = build_metric(
        &rows,
        &datasets,
        std::slice::from_ref(&r),
        TableMetric::LesionDsc,
    );
    let cells = lw.cells[0][0].unwrap();
    assert!((cells[0].mean - 90.0).abs() < 1e-9 && (cells[3].mean - 60.0).abs() < 1e-9);
    let pq = build_metric(
        &rows,
        &datasets,
        std::slice::from_ref(&r),
        TableMetric::LesionPq,
    );
    assert!(
        (pq.cells[0][0].unwrap()[0].mean - 60.0).abs() < 1e-9,
        "90 % · rq 2/3"
    );
    let nsd = build_metric(&rows, &datasets, &[r], TableMetric::Nsd);
    assert!(
        nsd.cells[0][0].unwrap()[0].mean.is_nan(),
        "evaluated without NSD"
    );
    let md = render(&lw, TableFormat::Markdown);
    assert!(md.contains("| baseline | 90.00 |"), "{md}");
}

/// A weighter whose weights are all 1 whatever the scores (`unit`), or not, for the run-hash test.
struct TestWeighter {
    unit: bool,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

impl dsma_plugin::PluginParams for NoParams {}

impl dsma_plugin::SampleWeighter for TestWeighter {
    fn unit(&self) -> bool {
        self.unit
    }
    fn weights(&mut self, s: &dsma_plugin::EpochScores<'_>) -> dsma_data::Result<Vec<f64>> {
        Ok(vec![1.0; s.synthetic.len()])
    }
}

struct UnitTestWeighter(TestWeighter);
struct OtherTestWeighter(TestWeighter);

macro_rules! test_weighter {
    ($t:ident, $name:literal, $unit:literal) => {
        impl dsma_plugin::registry::Plugin for $t {
            const NAME: &'static str = $name;
            const VERSION: &'static str = "0";
            const DESCRIPTION: &'static str = "test weighter";
            type Params = NoParams;
            fn new(_: NoParams) -> dsma_data::Result<Self> {
                Ok($t(TestWeighter { unit: $unit }))
            }
        }
        impl dsma_plugin::SampleWeighter for $t {
            fn unit(&self) -> bool {
                self.0.unit()
            }
            fn weights(&mut self, s: &dsma_plugin::EpochScores<'_>) -> dsma_data::Result<Vec<f64>> {
                self.0.weights(s)
            }
        }
        dsma_plugin::register_weighter!($t);
    };
}
test_weighter!(UnitTestWeighter, "test-unit", true);
test_weighter!(OtherTestWeighter, "test-other", false);

/// The planner hashes a row whose weighter declares unit weights as the row without a weighter
/// (their runs are the same), and any other weighter as a different run; core names no weighter.
#[test]
fn a_unit_weighter_hashes_as_no_weighter_and_another_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let text = BASE.replace(
        "rows:\n  - label: baseline\n  - label: DSMA\n    synthesizer: {name: dtss}\n    weighter: {name: mas}\n",
        "rows:\n  - label: none\n    synthesizer: {name: dtss}\n  - label: unit\n    synthesizer: {name: dtss}\n    weighter: {name: test-unit}\n  - label: other\n    synthesizer: {name: dtss}\n    weighter: {name: test-other}\n",
    );
    let l = load(&write(tmp.path(), "w.yaml", &text), &[]).unwrap();
    let runs = plan_all(&l, &dsma_plugin::Registry::builtin());
    let hash = |label: &str| {
        runs.iter()
            .find(|r| r.label == label)
            .map(|r| r.run_hash.clone())
            .unwrap()
    };
    assert_eq!(hash("none"), hash("unit"));
    assert_ne!(hash("none"), hash("other"));
    assert!(dsma_plugin::Registry::builtin().is_unit_weighter("test-unit", &serde_json::json!({})));
}
