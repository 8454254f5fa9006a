//! `dsma run`, `dsma validate` and `dsma table`: experiments from YAML to the paper's table.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use dsma_plugin::Registry;
use dsma_train::pipeline::{folder_table, run_experiment, validate_experiment, RunRequest};
use dsma_train::runner::progress::PrepareSummary;
use dsma_train::runner::progress::RunObserver;
use dsma_train::runner::records::EpochRecord;
use dsma_train::runner::report::index::unfinished_runs;
use dsma_train::runner::report::interval::Interval;
use dsma_train::runner::report::{render, TableFormat, TableMetric};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Experiment file (YAML).
    experiment: PathBuf,
    /// Overrides, e.g. `train.stage1.epochs=5` (dotted keys; list items by index).
    overrides: Vec<String>,
    /// Output folder (default: runs/<experiment name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder shared between experiments: the case store (preprocessed cases) and the fitted
    /// generators of Tables 1 and 2 (default: `cache/` beside the output folder, i.e. runs/cache
    /// for the default runs/<name>).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Continue runs that stopped.
    #[arg(long)]
    resume: bool,
    /// Only these rows (repeatable).
    #[arg(long = "only", value_name = "ROW")]
    only: Vec<String>,
    /// Run every n-th run starting at i (1-based `i/n`), e.g. for a Slurm job array.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Print only the final table.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Experiment file (YAML).
    experiment: PathBuf,
    /// Overrides, e.g. `train.stage1.epochs=5`.
    overrides: Vec<String>,
    /// Only these rows (repeatable).
    #[arg(long = "only", value_name = "ROW")]
    only: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TableArgs {
    /// Output folder of `dsma run`.
    runs: PathBuf,
    /// md, csv or latex.
    #[arg(long, default_value = "md", value_parser = ["md", "csv", "latex"])]
    format: String,
    /// The metric in the cells: dice, hd95, nsd, lesion-dsc, lesion-pq, lesion-hd95 or
    /// lesion-nsd (all but dice and hd95 need runs evaluated with `eval.metrics.compute`).
    #[arg(long, default_value = "dice", value_parser = |s: &str| TableMetric::parse(s).ok_or_else(|| format!("`{s}`; expected dice, hd95, nsd, lesion-dsc, lesion-pq, lesion-hd95 or lesion-nsd")))]
    metric: TableMetric,
    /// What ± means with repeats: std (sample standard deviation) or ci95 (95 % confidence
    /// interval of the mean, Student's t); default: the experiment's `eval.interval`.
    #[arg(long, value_parser = ["std", "ci95"])]
    interval: Option<String>,
    /// Refuse (exit 1, naming them) when a run of the experiment has not finished, instead of
    /// rendering the cells that are there (the Slurm table job uses it).
    #[arg(long)]
    complete: bool,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected i/n, e.g. 1/4"))?;
    let (i, n): (usize, usize) = (
        i.trim()
            .parse()
            .map_err(|_| format!("`{i}` is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| format!("`{n}` is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        return Err(format!("`{s}`: expected 1 ≤ i ≤ n"));
    }
    Ok((i - 1, n))
}

/// Progress bars for epochs and batches on a terminal, plain log lines on stderr otherwise (a
/// Slurm log, CI), or nothing with `--quiet`.
struct Bars {
    quiet: bool,
    /// stderr is not a terminal: log lines instead of bars.
    plain: bool,
    multi: MultiProgress,
    epochs: Option<ProgressBar>,
    steps: Option<ProgressBar>,
    /// The case-store bar of the dataset being prepared.
    preparing: Option<ProgressBar>,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        Bars {
            quiet,
            plain: !std::io::stderr().is_terminal(),
            multi: MultiProgress::new(),
            epochs: None,
            steps: None,
            preparing: None,
        }
    }
}

impl Bars {
    /// Clears the bars still shown.
    fn clear(&mut self) {
        if let Some(b) = self.steps.take() {
            b.finish_and_clear();
        }
        if let Some(b) = self.epochs.take() {
            b.finish_and_clear();
        }
    }
}

impl RunObserver for Bars {
    fn preparing(&mut self, name: &str) -> Box<dyn Fn(bool) + Sync> {
        let bar = if self.quiet {
            ProgressBar::hidden()
        } else {
            let style = ProgressStyle::with_template("{msg}: {pos} cases prepared ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            self.multi
                .add(ProgressBar::no_length())
                .with_style(style)
                .with_message(name.to_string())
        };
        self.preparing = Some(bar.clone());
        Box::new(move |_| bar.inc(1))
    }
    fn prepared(&mut self, summary: &PrepareSummary) {
        if let Some(bar) = self.preparing.take() {
            bar.finish_and_clear();
        }
        // On stderr even with --quiet, which keeps stdout to the table.
        if summary.built > 0 {
            eprintln!("{summary}");
        }
    }
    fn stage(&mut self, stage: u8, first: usize, total: usize) {
        if self.quiet {
            return;
        }
        if self.plain {
            eprintln!("stage {stage}: epochs {} to {total}", first + 1);
            return;
        }
        if let Some(b) = self.epochs.take() {
            b.finish_and_clear();
        }
        let bar = self.multi.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template(
                "stage {msg} [{bar:30}] epoch {pos}/{len}  elapsed {elapsed_precise}  eta {eta_precise}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(stage.to_string());
        bar.set_position(first as u64);
        bar.enable_steady_tick(Duration::from_millis(500));
        self.epochs = Some(bar);
    }
    fn epoch_start(&mut self, _epoch: usize, steps: usize) {
        if self.quiet || self.plain {
            return;
        }
        let bar = match self.steps.take() {
            Some(b) => {
                b.reset();
                b.set_length(steps as u64);
                b
            }
            None => {
                let b = self.multi.add(ProgressBar::new(steps as u64));
                b.set_style(
                    ProgressStyle::with_template(
                        "  batches [{bar:30}] {pos}/{len}  loss {msg}  eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b
            }
        };
        self.steps = Some(bar);
    }
    fn step(&mut self, loss: f64) {
        if let Some(b) = &self.steps {
            b.set_message(format!("{loss:.4}"));
            b.inc(1);
        }
    }
    fn epoch_end(&mut self, r: &EpochRecord) {
        if self.quiet {
            return;
        }
        let mut line = format!(
            "epoch {:>4} (stage {}) lr {:.0e} loss {:.4}  {:.1}s",
            r.epoch, r.stage, r.lr, r.loss, r.seconds
        );
        if let Some(w) = r.mean_weight {
            line.push_str(&format!("  mean weight {w:.3} ({} synthetic)", r.synthetic));
        }
        if r.wait_s > 0.05 {
            line.push_str(&format!("  waited {:.2}s for synthesis", r.wait_s));
        }
        if let Some(d) = r.test_dice {
            line.push_str(&format!(
                "  test Dice WT {:.3} TC {:.3} ET {:.3}",
                d[0], d[1], d[2]
            ));
        }
        match &self.epochs {
            Some(b) => {
                b.inc(1);
                b.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
    fn message(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        if self.plain {
            eprintln!("{text}");
        } else {
            let _ = self.multi.println(text);
        }
    }
}

pub fn run(a: RunArgs, mut registry: Registry) -> anyhow::Result<ExitCode> {
    let request = RunRequest {
        experiment: a.experiment,
        overrides: a.overrides,
        out: a.out,
        cache: a.cache,
        resume: a.resume,
        only: a.only,
        shard: a.shard,
    };
    let mut bars = Bars::new(a.quiet);
    let outcome = run_experiment(&request, &mut registry, &mut bars);
    bars.clear();
    let outcome = outcome?;
    if !a.quiet {
        println!(
            "\n{} — DSC (%) on the test split ({} run(s), {:.0} s); runs in {}\n",
            outcome.name,
            outcome.results.len(),
            outcome.seconds,
            outcome.out.display()
        );
    }
    print!("{}", render(&outcome.table, TableFormat::Markdown));
    if let Some(t) = &outcome.ensembles {
        println!("\nEnsembles of the repeats (sigmoid probabilities averaged), DSC (%):\n");
        print!("{}", render(t, TableFormat::Markdown));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn validate(a: ValidateArgs, mut registry: Registry) -> anyhow::Result<ExitCode> {
    let v = validate_experiment(&a.experiment, &a.overrides, &a.only, &mut registry)?;
    println!(
        "# resolved from {}",
        v.loaded
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" ← ")
    );
    print!("{}", yaml_serde::to_string(&v.loaded.resolved)?);
    println!("\n# {} run(s)", v.runs.len());
    for (r, finished) in &v.runs {
        let state = if *finished { " (finished)" } else { "" };
        println!(
            "- {} | {} | repeat {} | seed {} | stage 1 {}{state}",
            r.label, r.dataset_name, r.repeat, r.seed, r.stage1_hash
        );
    }
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
    if v.problems.is_empty() {
        println!("\nok: every plugin exists and accepts its parameters");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "\n{}: {} problem(s):",
            a.experiment.display(),
            v.problems.len()
        );
        for p in &v.problems {
            eprintln!("  {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

pub fn table(a: TableArgs) -> anyhow::Result<ExitCode> {
    let format = match a.format.as_str() {
        "csv" => TableFormat::Csv,
        "latex" => TableFormat::Latex,
        _ => TableFormat::Markdown,
    };
    if a.complete {
        let unfinished = unfinished_runs(&a.runs)?;
        if !unfinished.is_empty() {
            let list: Vec<String> = unfinished.iter().map(|p| p.display().to_string()).collect();
            anyhow::bail!(
                "{}: {} run(s) have not finished: {}",
                a.runs.display(),
                list.len(),
                list.join(", ")
            );
        }
    }
    let mut table = folder_table(&a.runs, a.metric)?;
    match a.interval.as_deref() {
        Some("ci95") => table = table.with_interval(Interval::Ci95),
        Some(_) => table = table.with_interval(Interval::Std),
        None => {}
    }
    if a.metric != TableMetric::Dice && format != TableFormat::Csv {
        println!("{} on the test split\n", a.metric.caption());
    }
    print!("{}", render(&table, format));
    Ok(ExitCode::SUCCESS)
}
