//! Progress of an experiment's runs as it happens: the [`RunObserver`] every layer reports to (the
//! CLI draws bars from it), and what preparing a dataset reports.

use std::path::PathBuf;

use crate::runner::records::EpochRecord;

/// What preparing one dataset did: `dsma data prepare` prints it, `dsma run` when it built cases.
#[derive(Debug, Clone)]
pub struct PrepareSummary {
    /// Dataset name.
    pub dataset: String,
    /// Cases in the dataset (training and test).
    pub cases: usize,
    /// Cases preprocessed now (the others were in the store).
    pub built: usize,
    /// Why each case that was in the store had to be rebuilt, one line per case.
    pub rebuilt: Vec<String>,
    /// The dataset's folder in the case store.
    pub folder: PathBuf,
    /// Seconds it took.
    pub seconds: f64,
    /// Bytes its cases take in the store.
    pub bytes: u64,
}

impl std::fmt::Display for PrepareSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} cases in {}: {} built, {} reused, {:.1} s, {:.2} GB on disk ({:.1} MB per case)",
            self.dataset,
            self.cases,
            self.folder.display(),
            self.built,
            self.cases - self.built,
            self.seconds,
            self.bytes as f64 / 1e9,
            self.bytes as f64 / 1e6 / self.cases.max(1) as f64,
        )?;
        for why in &self.rebuilt {
            write!(f, "\n  {why}")?;
        }
        Ok(())
    }
}

/// Receives progress of a run (progress bars, logs); every method has a silent default.
pub trait RunObserver {
    /// A stage begins at global epoch `first` (0-based) of `total`.
    fn stage(&mut self, _stage: u8, _first: usize, _total: usize) {}
    /// An epoch begins with `steps` optimizer steps.
    fn epoch_start(&mut self, _epoch: usize, _steps: usize) {}
    /// One optimizer step ended with `loss`.
    fn step(&mut self, _loss: f64) {}
    /// An epoch ended.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
    /// A line for the log.
    fn message(&mut self, _text: &str) {}
    /// Dataset `name` is being preprocessed into the case store; the returned function is called
    /// after each case (from worker threads) with whether it was built (`true`) or reused.
    fn preparing(&mut self, _name: &str) -> Box<dyn Fn(bool) + Sync> {
        Box::new(|_| {})
    }
    /// A dataset is ready in the case store.
    fn prepared(&mut self, _summary: &PrepareSummary) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl RunObserver for Silent {}
