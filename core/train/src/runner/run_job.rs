//! What the trainer of one run is given ([`RunJob`]) and returns ([`RunOutcome`]).

use std::path::{Path, PathBuf};

use dsma_plugin::Registry;

use crate::experiment::config::Experiment;
use crate::runner::plan::PlannedRun;
use crate::runner::prepare::PreparedData;
use crate::runner::records::RunResults;
use crate::runner::synthesis::generator_fit::FitJob;
use crate::runner::synthesis::generator_lane::AheadSet;

/// Everything one run needs.
pub struct RunJob<'a> {
    /// The resolved experiment.
    pub experiment: &'a Experiment,
    /// The run being trained.
    pub run: &'a PlannedRun,
    /// Its dataset, prepared.
    pub data: &'a PreparedData,
    /// Plugins (synthesizers, weighters).
    pub registry: &'a Registry,
    /// Folder of the shared stage-1 run.
    pub stage1_dir: &'a Path,
    /// Folder of this run.
    pub run_dir: &'a Path,
    /// Folder of fits shared between runs and experiments (generators).
    pub cache_dir: &'a Path,
    /// The first stage-2 set the generator lane draws for this run, if it does.
    pub ahead: Option<AheadSet<'a>>,
}

impl RunJob<'_> {
    /// What fitting the row's generator needs of this run.
    pub fn fit_job(&self) -> FitJob<'_> {
        FitJob {
            experiment: self.experiment,
            run: self.run,
            data: self.data,
            registry: self.registry,
            run_dir: self.run_dir,
            cache_dir: self.cache_dir,
        }
    }
}

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The results written to `results.json`.
    pub results: RunResults,
    /// Where the run folder is.
    pub run_dir: PathBuf,
}
