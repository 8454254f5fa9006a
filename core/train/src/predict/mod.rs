//! `dsma predict`: segments cases without labels with one trained run or an ensemble of runs,
//! as `nnUNetv2_predict` does: each case read, preprocessed as in training (crop to the brain,
//! z-score), every run's sliding window (optionally mirrored) averaged as sigmoid probabilities,
//! thresholded, put back on the input grid and written as `<case>.nii.gz` in a BraTS label
//! convention. One case is in memory at a time; every file is written atomically.

pub mod model;
pub mod runs;

use std::path::{Path, PathBuf};

use ndarray::{s, Array3, Array4, ArrayView4};

use crate::predict::model::RegionModel;
use crate::predict::runs::{check_compatible, open_run, PredictRun};
use crate::runner::evaluate::labels_from_probabilities;
use dsma_data::error::{CoreError, Result};
use dsma_data::images::{discover_images, image_source, ImageCase, ImageSource};
use dsma_data::labels::LabelConvention;
use dsma_data::nifti_io::write_volume;
use dsma_data::preprocess::{crop_to_brain, zscore_brain};
use dsma_data::volume::Case;
use dsma_plugin::backend::BackendKind;

/// Which cases to segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PredictInput {
    /// Every case of a dataset folder (BraTS case folders, or a Decathlon task's `test` list).
    Folder(PathBuf),
    /// One case folder, or one Decathlon image.
    Case(PathBuf),
}

/// What `dsma predict` was asked.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictRequest {
    /// Run folders (`runs/<dataset>/<row>/rep-N`); more than one is an ensemble.
    pub runs: Vec<PathBuf>,
    /// The cases.
    pub input: PredictInput,
    /// Output folder for `<case>.nii.gz`.
    pub out: PathBuf,
    /// Label convention of the written maps (the runs' dataset's when `None`).
    pub labels: Option<LabelConvention>,
    /// Test-time mirroring over the 8 axis flips.
    pub mirror: bool,
    /// Backend to run on (each run's own when `None`).
    pub backend: Option<BackendKind>,
    /// Probability threshold (the runs' `eval.threshold` when `None`).
    pub threshold: Option<f32>,
}

/// What prediction reports as it goes.
pub trait PredictObserver {
    /// The runs are open and `cases` cases are about to be segmented.
    fn started(&mut self, _runs: &[PredictRun], _cases: usize) {}
    /// One case's prediction was written to `file`.
    fn written(&mut self, _id: &str, _file: &Path) {}
}

/// An observer that reports nothing.
pub struct Quiet;

impl PredictObserver for Quiet {}

/// What a prediction wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// The files written, in case order.
    pub files: Vec<PathBuf>,
    /// Their label convention.
    pub convention: LabelConvention,
}

/// Segments every case of `req.input` with the runs of `req.runs`.
pub fn predict(req: &PredictRequest, obs: &mut dyn PredictObserver) -> Result<PredictSummary> {
    let sources: Vec<ImageSource> = match &req.input {
        PredictInput::Folder(dir) => discover_images(dir)?,
        PredictInput::Case(path) => vec![image_source(path)?],
    };
    for source in &sources {
        source.check()?;
    }
    let runs = req
        .runs
        .iter()
        .map(|dir| open_run(dir, req.backend))
        .collect::<Result<Vec<_>>>()?;
    let threshold = check_compatible(&runs, req.threshold)?;
    let convention = req.labels.unwrap_or(runs[0].convention);
    std::fs::create_dir_all(&req.out).map_err(|e| CoreError::io(&req.out, e))?;
    obs.started(&runs, sources.len());
    let models: Vec<&dyn RegionModel> = runs.iter().map(|r| r.model.as_ref()).collect();
    let mut files = Vec::with_capacity(sources.len());
    for source in &sources {
        let case = source.load()?;
        let (id, grid) = (case.id.clone(), case.grid.clone());
        let labels = segment(&models, case, req.mirror, threshold, convention)?;
        let file = req.out.join(format!("{id}.nii.gz"));
        write_volume(&file, labels.view(), &grid)?;
        obs.written(&id, &file);
        files.push(file);
    }
    Ok(PredictSummary { files, convention })
}

/// The mean of the models' region probabilities on a preprocessed image.
pub fn ensemble_probabilities(
    models: &[&dyn RegionModel],
    image: ArrayView4<f32>,
    mirror: bool,
) -> Result<Array4<f32>> {
    let mut sum: Option<Array4<f32>> = None;
    for model in models {
        let p = model.probabilities(image, mirror)?;
        match &mut sum {
            Some(s) => *s += &p,
            None => sum = Some(p),
        }
    }
    let mut mean = sum.ok_or_else(|| CoreError::invalid("--run", "no run given"))?;
    mean /= models.len() as f32;
    Ok(mean)
}

/// The label map of one case on its input grid.
fn segment(
    models: &[&dyn RegionModel],
    case: ImageCase,
    mirror: bool,
    threshold: f32,
    convention: LabelConvention,
) -> Result<Array3<u8>> {
    let (_, nz, ny, nx) = case.image.dim();
    let full = Case {
        id: case.id,
        image: case.image,
        label: Array3::zeros((nz, ny, nx)),
        grid: case.grid,
        convention,
    };
    let (mut cropped, [z, y, x]) = crop_to_brain(&full)?;
    drop(full);
    zscore_brain(&mut cropped);
    let probs = ensemble_probabilities(models, cropped.image.view(), mirror)?;
    let labels = labels_from_probabilities(&probs, threshold, convention);
    let mut out = Array3::<u8>::zeros((nz, ny, nx));
    let (dz, dy, dx) = labels.dim();
    out.slice_mut(s![z..z + dz, y..y + dy, x..x + dx])
        .assign(&labels);
    Ok(out)
}
