//! A finished (or running) run's EMA teacher outside the runner: `dsma synth --teacher RUN_DIR`
//! labels generated images with it, as stage 2 labels a comparator's images (§4.1).

use std::path::{Path, PathBuf};

use dsma_data::error::Result;
use dsma_data::labels::LabelConvention;
use ndarray::{Array3, Array4};

use crate::experiment::config::Experiment;
use crate::runner::registration::{self, LabelFn};
use crate::runner::report::record::RunRecord;

/// The EMA teacher of a run folder: its experiment, checkpoints and labelling function.
pub struct Teacher {
    /// The experiment the run was trained with (its grid point).
    pub experiment: Experiment,
    /// The run folder.
    pub run_dir: PathBuf,
    checkpoints: PathBuf,
    label: LabelFn,
    convention: LabelConvention,
}

impl Teacher {
    /// The teacher of the run in `run` (a folder with `config.json` and `checkpoints/`).
    pub fn open(run: &Path) -> Result<Self> {
        let record = RunRecord::read(run)?;
        let experiment = record.typed_experiment()?;
        let convention = record.dataset()?.convention()?;
        let label =
            registration::model(&experiment.model.name)?.labeller(experiment.train.backend)?;
        Ok(Teacher {
            checkpoints: run.join("checkpoints"),
            run_dir: run.to_path_buf(),
            experiment,
            label,
            convention,
        })
    }

    /// Hard labels of `images` (`[modality, z, y, x]`) in the run's label convention: the EMA
    /// teacher of its latest checkpoint, sliding window, the evaluation threshold.
    pub fn label(&self, images: &[Array4<f32>]) -> Result<Vec<Array3<u8>>> {
        (self.label)(&self.experiment, &self.checkpoints, images, self.convention)
    }
}
