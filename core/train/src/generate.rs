//! A generative comparator outside a run (`dsma synth --synthesizer NAME`): fit it on a dataset
//! folder (or load a fit), sample, label the samples with a run's EMA teacher when one is given,
//! and write each sample as a BraTS-layout case folder — the runner's fit → sample → label steps
//! on their own.

use std::path::{Path, PathBuf};

use dsma_data::brats::{discover, load_case, DatasetOptions};
use dsma_data::error::{CoreError, Result};
use dsma_data::labels::LabelConvention;
use dsma_data::nifti_io::write_volume;
use dsma_data::preprocess::preprocess;
use dsma_data::seed::derive_seed;
use dsma_data::volume::{Case, Modality};
use dsma_plugin::backend::BackendKind;
use dsma_plugin::{FitContext, FitProgress, Registry, SampledImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::runner::teacher::Teacher;

const SALT_FIT: u64 = 0x4749_5446; // "GITF"

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The trainable synthesizer (comparator) plugin.
    pub synthesizer: String,
    /// Its parameters (a JSON object).
    pub params: serde_json::Value,
    /// A dataset folder to fit on (and, for conditional samplers, to condition on).
    pub fit_on: Option<PathBuf>,
    /// The fit's folder (default `<out>/generator/`); an existing fit is loaded, a partial one resumed.
    pub fitted: Option<PathBuf>,
    /// A run folder whose EMA teacher labels the samples.
    pub teacher: Option<PathBuf>,
    /// Sample size (x, y, z); default the teacher's patch, else 128³.
    pub size: Option<[usize; 3]>,
    /// Output folder: sample `i` goes to `<out>/<synthesizer>_<i>/`.
    pub out: PathBuf,
    /// Seed of the fit and of the samples.
    pub seed: u64,
    /// Number of samples.
    pub n: usize,
    /// Label convention of `fit_on`'s cases.
    pub labels: LabelConvention,
}

/// One written sample.
#[derive(Debug, Clone)]
pub struct GeneratedCase {
    /// Its case folder.
    pub dir: PathBuf,
    /// Whether a `_seg` file (the teacher's labels) was written beside the images.
    pub labelled: bool,
}

/// Fits (or loads) the comparator, samples `req.n` images, labels them with the teacher when one
/// is given, and writes them; `progress` sees the fit's steps.
pub fn generate(
    req: &GenerateRequest,
    registry: &Registry,
    progress: &mut dyn FnMut(FitProgress),
) -> Result<Vec<GeneratedCase>> {
    if req.fit_on.is_none() && req.fitted.is_none() {
        return Err(CoreError::invalid(
            format!("synthesizer {}", req.synthesizer),
            "is a generative comparator: give a dataset folder to fit on (or to condition on) \
             and/or a fitted generator folder",
        ));
    }
    let mut g = registry.trainable_synthesizer(&req.synthesizer, &req.params)?;
    let teacher = req.teacher.as_deref().map(Teacher::open).transpose()?;
    let cases = match &req.fit_on {
        Some(data) => preprocessed_cases(data, req.labels)?,
        None => Vec::new(),
    };
    let dir = req
        .fitted
        .clone()
        .unwrap_or_else(|| req.out.join("generator"));
    let [x, y, z] = req
        .size
        .or(teacher.as_ref().map(|t| t.experiment.train.patch.size))
        .unwrap_or([128; 3]);
    let backend = teacher
        .as_ref()
        .map_or(BackendKind::Cpu, |t| t.experiment.train.backend);
    g.fit(
        &cases,
        &mut FitContext {
            checkpoint_dir: &dir,
            seed: derive_seed(req.seed, SALT_FIT),
            backend,
            sample_shape: [z, y, x],
            progress,
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let images = g.sample(req.n, &mut rng, &cases)?;
    let labels = match &teacher {
        Some(t) => {
            let imgs: Vec<_> = images.iter().map(|i| i.image.clone()).collect();
            Some(t.label(&imgs)?)
        }
        None => None,
    };
    images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let id = format!("{}_{i}", req.synthesizer);
            let label = labels.as_ref().map(|l| &l[i]);
            write_sample(&req.out.join(&id), &id, img, label)
        })
        .collect()
}

/// Every case of a dataset folder, cropped and z-scored as the runner prepares them.
fn preprocessed_cases(data: &Path, labels: LabelConvention) -> Result<Vec<Case>> {
    discover(data, &DatasetOptions::new(labels))?
        .iter()
        .map(|d| preprocess(&load_case(d, labels)?))
        .collect()
}

/// Writes one sample's four modalities (and its labels) as `<dir>/<id>_<modality>.nii.gz`.
fn write_sample(
    dir: &Path,
    id: &str,
    img: &SampledImage,
    label: Option<&ndarray::Array3<u8>>,
) -> Result<GeneratedCase> {
    for (c, m) in Modality::ALL.iter().enumerate() {
        let path = dir.join(format!("{id}_{}.nii.gz", m.suffix()));
        write_volume(&path, img.image.index_axis(ndarray::Axis(0), c), &img.grid)?;
    }
    if let Some(l) = label {
        write_volume(&dir.join(format!("{id}_seg.nii.gz")), l.view(), &img.grid)?;
    }
    Ok(GeneratedCase {
        dir: dir.to_path_buf(),
        labelled: label.is_some(),
    })
}
