//! The generator lane: generative rows are fitted and their first stage-2 set drawn in the
//! background while earlier runs train. What the trainer gets must be what it would have drawn
//! itself, the drawn sets waiting on disk are bounded, a failure in the lane fails its run (after
//! the runs before it finished), and a lane-drawn run cut in stage 2 resumes exactly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{run_aborted_at, run_own_root, tiny_experiment};
use dsma_data::{CoreError, Result};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{FitContext, PluginParams, SampledImage, TrainableSynthesizer, TrainingCases};
use dsma_train::experiment::load;
use dsma_train::runner::execute::{execute, ExecuteOptions};
use dsma_train::runner::progress::RunObserver;
use dsma_train::runner::records::EpochRecord;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A tiny `diffusion-wu` (4 fit steps) drawing with `steps` reverse steps.
fn wu(steps: usize) -> String {
    format!(
        "{{name: diffusion-wu, params: {{size: [16, 16, 16], sample_steps: {steps}, diffusion: \
         {{denoiser: {{channels: 4, mults: [1, 2], groups: 2}}, batch: 2, steps: 4, \
         checkpoint_every: 2}}}}}}"
    )
}

/// Rows: a baseline, then three generative rows (distinct fits).
fn rows() -> String {
    format!(
        "  - label: baseline\n    synthesizer: {{name: augment}}\n\
         \x20 - label: Wu 3\n    synthesizer: {}\n\
         \x20 - label: Wu 2\n    synthesizer: {}\n\
         \x20 - label: Wu 1\n    synthesizer: {}\n",
        wu(3),
        wu(2),
        wu(1)
    )
}

/// Every run folder under `out/runs` (links into the shared root).
fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for ds in std::fs::read_dir(out.join("runs")).unwrap() {
        for row in std::fs::read_dir(ds.unwrap().path()).unwrap() {
            dirs.push(row.unwrap().path().join("rep-0"));
        }
    }
    dirs.sort();
    dirs
}

/// `epochs.jsonl` without the timing fields (wall-clock seconds, synthesis wait).
fn epochs_without_timing(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("epochs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("seconds");
            m.remove("wait_s");
            v
        })
        .collect()
}

#[test]
fn a_set_drawn_ahead_trains_exactly_as_one_drawn_when_stage_two_begins() {
    let tmp = tempfile::tempdir().unwrap();
    crate::support::phantom_dataset(tmp.path(), 6, [24, 24, 16], 3);
    let exp = tiny_experiment(tmp.path(), 2, 2, &rows());
    let exp = exp.to_str().unwrap();
    let (ahead, own) = (tmp.path().join("ahead"), tmp.path().join("own"));
    let (code, o1, e1) = run_own_root(exp, &ahead, &[]);
    assert_eq!(code, 0, "{o1}{e1}");
    let (code, o2, e2) = run_own_root(exp, &own, &["train.synthesis.ahead_runs=0"]);
    assert_eq!(code, 0, "{o2}{e2}");
    let (log_ahead, log_own) = (format!("{o1}{e1}"), format!("{o2}{e2}"));
    for label in ["Wu 3", "Wu 2", "Wu 1"] {
        assert!(
            log_ahead.contains(&format!(
                "[ahead: {label} on Phantom] generator diffusion-wu:"
            )),
            "{log_ahead}"
        );
    }
    assert!(
        log_ahead.contains("images drawn for stage 2"),
        "{log_ahead}"
    );
    assert!(!log_own.contains("[ahead:"), "{log_own}");
    let (a, b) = (run_dirs(&ahead), run_dirs(&own));
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        for file in ["results.json", "weights.csv"] {
            assert_eq!(
                std::fs::read(x.join(file)).unwrap(),
                std::fs::read(y.join(file)).unwrap(),
                "{} differs between the lane and the trainer's own draw",
                x.join(file).display()
            );
        }
        assert_eq!(epochs_without_timing(x), epochs_without_timing(y));
        assert!(!x.join("ahead").exists(), "{}: ahead/ left", x.display());
        assert!(!x.join("spill").exists(), "{}: spill/ left", x.display());
    }
}

#[test]
fn a_lane_drawn_run_cut_in_stage_two_resumes_to_the_uninterrupted_results() {
    let tmp = tempfile::tempdir().unwrap();
    crate::support::phantom_dataset(tmp.path(), 6, [24, 24, 16], 3);
    let rows = format!("  - label: Wu\n    synthesizer: {}\n", wu(2));
    let exp = tiny_experiment(tmp.path(), 2, 3, &rows);
    let exp = exp.to_str().unwrap();
    let (cut, whole) = (tmp.path().join("cut"), tmp.path().join("whole"));
    // Epoch 4 is stage 2's second: the lane's set trained one epoch before the cut.
    assert!(!run_aborted_at(exp, &cut, "epoch:4").success());
    let run = cut.join("runs/phantom/wu/rep-0");
    assert!(run.join("checkpoints").exists() && !run.join("results.json").exists());
    let (code, o, e) = run_own_root(exp, &cut, &["--resume"]);
    assert_eq!(code, 0, "{o}{e}");
    let (code, o, e) = run_own_root(exp, &whole, &[]);
    assert_eq!(code, 0, "{o}{e}");
    let other = whole.join("runs/phantom/wu/rep-0");
    for file in ["results.json", "weights.csv"] {
        assert_eq!(
            std::fs::read(run.join(file)).unwrap(),
            std::fs::read(other.join(file)).unwrap(),
            "{file}"
        );
    }
}

/// Counts the drawn sets on disk (`ahead/` folders of run folders) at every event of the run.
struct CountingObserver {
    runs: PathBuf,
    most: usize,
    lane_messages: usize,
}

impl CountingObserver {
    fn look(&mut self) {
        let n = std::fs::read_dir(&self.runs)
            .map(|r| {
                r.filter(|e| e.as_ref().is_ok_and(|e| e.path().join("ahead").exists()))
                    .count()
            })
            .unwrap_or(0);
        self.most = self.most.max(n);
    }
}

impl RunObserver for CountingObserver {
    fn stage(&mut self, _: u8, _: usize, _: usize) {
        self.look();
    }
    fn epoch_start(&mut self, _: usize, _: usize) {
        self.look();
    }
    fn step(&mut self, _: f64) {
        self.look();
    }
    fn epoch_end(&mut self, _: &EpochRecord) {
        self.look();
    }
    fn message(&mut self, text: &str) {
        self.lane_messages += usize::from(text.starts_with("[ahead: "));
        self.look();
    }
}

fn link_plugins() {
    dsma_unet3d::link();
    dsma_augment::link();
    dsma_diffusion_wu::link();
}

#[test]
fn at_most_ahead_runs_drawn_sets_wait_beside_the_one_in_training() {
    let _serial = crate::support::in_process();
    link_plugins();
    let tmp = tempfile::tempdir().unwrap();
    crate::support::phantom_dataset(tmp.path(), 6, [24, 24, 16], 3);
    let exp = tiny_experiment(tmp.path(), 3, 2, &rows());
    let loaded = load(&exp, &[]).unwrap();
    let registry = dsma_plugin::Registry::builtin();
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let opts = ExecuteOptions {
        cache: cache.clone(),
        ..ExecuteOptions::new(out)
    };
    let mut obs = CountingObserver {
        runs: cache.join("runs"),
        most: 0,
        lane_messages: 0,
    };
    let results = execute(&loaded, &registry, &opts, &mut obs).unwrap();
    assert_eq!(results.len(), 4);
    assert!(
        obs.lane_messages > 0,
        "no lane message reached the observer"
    );
    // `ahead_runs: 1`: one set waiting, plus the one the trainer is using.
    assert!(
        (1..=2).contains(&obs.most),
        "{} sets on disk at once",
        obs.most
    );
}

static BROKEN_FITS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

impl PluginParams for NoParams {}

/// A generator whose fit always fails.
struct BrokenGenerator;

impl Plugin for BrokenGenerator {
    const NAME: &'static str = "test-broken-generator";
    const VERSION: &'static str = "0";
    const DESCRIPTION: &'static str = "test: a fit that fails";
    type Params = NoParams;
    fn new(_: NoParams) -> Result<Self> {
        Ok(BrokenGenerator)
    }
}

impl TrainableSynthesizer for BrokenGenerator {
    fn fit(&mut self, _: &dyn TrainingCases, _: &mut FitContext<'_>) -> Result<()> {
        BROKEN_FITS.fetch_add(1, Ordering::SeqCst);
        Err(CoreError::invalid(
            "test-broken-generator",
            "fit failed on purpose",
        ))
    }
    fn sample(
        &self,
        _: usize,
        _: &mut ChaCha8Rng,
        _: &dyn TrainingCases,
    ) -> Result<Vec<SampledImage>> {
        Err(CoreError::invalid("test-broken-generator", "never fitted"))
    }
}

dsma_plugin::register_trainable_synthesizer!(BrokenGenerator);

#[test]
fn a_fit_that_fails_in_the_lane_fails_its_run_after_the_runs_before_it() {
    let _serial = crate::support::in_process();
    link_plugins();
    let tmp = tempfile::tempdir().unwrap();
    crate::support::phantom_dataset(tmp.path(), 6, [24, 24, 16], 3);
    let rows = "  - label: baseline\n    synthesizer: {name: augment}\n\
                \x20 - label: broken\n    synthesizer: {name: test-broken-generator}\n";
    let exp = tiny_experiment(tmp.path(), 1, 1, rows);
    let loaded = load(&exp, &[]).unwrap();
    let registry = dsma_plugin::Registry::builtin();
    let out = tmp.path().join("out");
    let opts = ExecuteOptions::new(out.clone());
    let err = execute(
        &loaded,
        &registry,
        &opts,
        &mut dsma_train::runner::progress::Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("fit failed on purpose"), "{err}");
    assert_eq!(BROKEN_FITS.load(Ordering::SeqCst), 1);
    assert!(out
        .join("runs/phantom/baseline/rep-0/results.json")
        .exists());
    let broken = out.join("runs/phantom/broken/rep-0");
    assert!(!broken.join("results.json").exists());
    assert!(
        !broken.join(".lock").exists(),
        "the run's lock was not released"
    );
}
