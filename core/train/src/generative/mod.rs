//! Generative comparators (Tables 1–2): the protocol of §4.1 once, for every GAN and diffusion row.
//!
//! A comparator plugin implements [`GenerativeMethod`]: it fits on single-channel training volumes
//! in [-1, 1] at its own `output_shape` and draws new ones, generic over the burn backend. It
//! registers with [`crate::register_comparator!`], which wraps it in [`Comparator`], core's
//! [`TrainableSynthesizer`]: the adapter makes the generator's training data (the protocol's
//! modality of every training case, mapped by the training split's [`IntensityMap`] and resampled
//! to the generator's box), runs the fit on the run's backend, and turns samples into cases
//! (resampled to the segmentation patch, back to z-score space, four noisy copies). The runner
//! fits once per (generator, parameters, dataset split, seed) in a cache folder shared by tables,
//! samples every stage-2 epoch on the synthesis thread, and labels samples with the EMA teacher.

pub mod fit_loop;
pub mod fit_state;
pub mod protocol;

use std::path::{Path, PathBuf};

use ndarray::Array3;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::{BackendDispatch, BackendVisitor};
use dsma_data::atomic_file::write_atomic;
use dsma_data::error::{CoreError, Result};
use dsma_data::preprocess::brain_mask;
use dsma_data::volume::{Grid, Modality};
use dsma_kernels::KernelBackend;
use dsma_plugin::backend::BackendKind;
use dsma_plugin::registry::Plugin;
use dsma_plugin::{FitContext, SampledImage, TrainableSynthesizer, TrainingCases};

pub use fit_loop::{step_rng, GeneratorFit};
pub use fit_state::{AdamOn, FitCheckpoint, OptimOn};
pub use protocol::{IntensityMap, NoiseLayout, ProtocolParams};

/// A generative comparator: single-channel volumes in [-1, 1], generic over the burn backend.
pub trait GenerativeMethod: Plugin + Send + Sync + 'static {
    /// The protocol settings (each plugin's parameters carry them under `protocol:`).
    fn protocol(&self) -> &ProtocolParams;
    /// `[z, y, x]` shape of the volumes it fits and generates.
    fn output_shape(&self) -> [usize; 3];
    /// Training steps of a complete fit (a checkpoint at this step is final).
    fn steps(&self) -> usize;
    /// Fits on `data` (training volumes at `output_shape`, values in [-1, 1]), resuming from
    /// `ctx.dir`; returns at once when the checkpoint there is already final.
    fn fit<B: KernelBackend>(
        &self,
        data: &[Array3<f32>],
        ctx: &mut GeneratorFit<'_>,
        device: &B::Device,
    ) -> Result<()>;
    /// Draws `n` volumes at `output_shape` in [-1, 1] from the final checkpoint in `dir`; a
    /// conditional sampler reads real training volumes (same map and shape as the fit's data)
    /// from `real`.
    fn sample<B: KernelBackend>(
        &self,
        dir: &Path,
        n: usize,
        seed: u64,
        real: &RealVolumes<'_>,
        device: &B::Device,
    ) -> Result<Vec<Array3<f32>>>;
}

/// The real training volumes as a generator sees them (its modality in [-1, 1] at its shape),
/// read one at a time from the training split.
pub struct RealVolumes<'a> {
    train: &'a dyn TrainingCases,
    modality: Modality,
    map: IntensityMap,
    shape: [usize; 3],
    /// Sample `j` is conditioned on case `first + j` (a chunk of a larger draw).
    first: usize,
}

/// No training cases (for unconditional samplers).
static NO_CASES: Vec<dsma_data::volume::Case> = Vec::new();

impl<'a> RealVolumes<'a> {
    /// The cases of `train` through `map`, channel `modality`, resampled to `shape` (`[z, y, x]`).
    pub fn new(
        train: &'a dyn TrainingCases,
        modality: Modality,
        map: IntensityMap,
        shape: [usize; 3],
    ) -> Self {
        RealVolumes {
            train,
            modality,
            map,
            shape,
            first: 0,
        }
    }
    /// No real volumes (what unconditional samplers are given outside the runner).
    pub fn none() -> RealVolumes<'static> {
        RealVolumes {
            train: &NO_CASES,
            modality: Modality::Flair,
            map: IntensityMap { lo: -1.0, hi: 1.0 },
            shape: [0; 3],
            first: 0,
        }
    }
    /// The same volumes for a chunk of a larger draw: sample `j` of the chunk is conditioned on
    /// case `first + j` (modulo the number of cases).
    pub fn offset(mut self, first: usize) -> Self {
        self.first = first;
        self
    }
    /// Number of training cases.
    pub fn len(&self) -> usize {
        self.train.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
    }
    /// Volumes `first .. first + count` (case index modulo the number of cases, so every case
    /// conditions in turn) as a `[count, 1, D, H, W]` tensor; an error names `plugin` when there
    /// are no cases.
    pub fn batch<B: burn::tensor::backend::Backend>(
        &self,
        first: usize,
        count: usize,
        plugin: &str,
        device: &B::Device,
    ) -> Result<burn::tensor::Tensor<B, 5>> {
        if self.is_empty() {
            return Err(CoreError::invalid(
                plugin,
                "samples conditioned on real training cases, and none were given (dsma synth: add --fit-on DATASET_DIR)",
            ));
        }
        let [d, h, w] = self.shape;
        let mut flat = Vec::with_capacity(count * d * h * w);
        for j in first..first + count {
            flat.extend(self.volume((self.first + j) % self.len())?.iter().copied());
        }
        Ok(
            burn::tensor::Tensor::<B, 1>::from_floats(flat.as_slice(), device)
                .reshape([count, 1, d, h, w]),
        )
    }

    /// Training case `i` as a generator volume.
    pub fn volume(&self, i: usize) -> Result<Array3<f32>> {
        let case = self.train.case(i)?;
        let c = channel_of(self.modality).min(case.image.dim().0 - 1);
        let unit = case
            .image
            .index_axis(ndarray::Axis(0), c)
            .mapv(|z| self.map.to_unit(z));
        Ok(protocol::resample(unit.view(), self.shape))
    }
}

/// What the protocol derived from the training split (saved as `protocol.json` in the fit folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fitted {
    modality: Modality,
    map: IntensityMap,
    /// Mean extent of the cropped training cases in mm, `[z, y, x]`.
    extent_mm: [f64; 3],
    channels: usize,
    #[serde(skip)]
    dir: PathBuf,
    #[serde(skip)]
    backend: BackendKind,
    #[serde(skip)]
    sample_shape: [usize; 3],
}

/// Core's [`TrainableSynthesizer`] for a [`GenerativeMethod`]: the protocol around the generator.
pub struct Comparator<T> {
    method: T,
    fitted: Option<Fitted>,
}

impl<T: GenerativeMethod> Plugin for Comparator<T> {
    const NAME: &'static str = T::NAME;
    const VERSION: &'static str = T::VERSION;
    const DESCRIPTION: &'static str = T::DESCRIPTION;
    type Params = T::Params;
    fn new(params: T::Params) -> Result<Self> {
        let method = T::new(params)?;
        method.protocol().validate()?;
        Ok(Comparator {
            method,
            fitted: None,
        })
    }
}

impl<T: GenerativeMethod> Comparator<T> {
    /// The wrapped generator.
    pub fn method(&self) -> &T {
        &self.method
    }
}

/// Channel index of `m` (cases hold FLAIR, T1, T1ce, T2 in that order).
fn channel_of(m: Modality) -> usize {
    Modality::ALL.iter().position(|x| *x == m).unwrap_or(0)
}

/// The protocol's statistics of the training split: quantiles of `modality` over brain voxels
/// (at most ~4 M values, taken at a fixed stride), mean extent, channel count.
fn training_statistics(train: &dyn TrainingCases, p: &ProtocolParams) -> Result<Fitted> {
    let c = channel_of(p.modality);
    let mut values = Vec::new();
    let (mut extent, mut channels) = ([0.0f64; 3], 0usize);
    for i in 0..train.len() {
        let case = train.case(i)?;
        let mask = brain_mask(&case);
        let brain = mask.iter().filter(|m| **m).count().max(1);
        let stride = (brain * train.len()).div_ceil(4_000_000).max(1);
        let ch = case
            .image
            .index_axis(ndarray::Axis(0), c.min(case.image.dim().0 - 1));
        values.extend(
            ch.iter()
                .zip(mask.iter())
                .filter(|(_, m)| **m)
                .step_by(stride)
                .map(|(v, _)| *v),
        );
        let sp = case.grid.spacing_zyx();
        let (d, h, w) = case.grid.shape_zyx();
        for (e, (n, s)) in extent.iter_mut().zip([d, h, w].into_iter().zip(sp)) {
            *e += n as f64 * s / train.len() as f64;
        }
        channels = channels.max(case.image.dim().0);
    }
    Ok(Fitted {
        modality: p.modality,
        map: IntensityMap::from_values(values, p.range_quantiles)?,
        extent_mm: extent,
        channels,
        dir: PathBuf::new(),
        backend: BackendKind::Cpu,
        sample_shape: [0; 3],
    })
}

/// The generator's training volumes: the modality channel mapped to [-1, 1], resampled to `shape`.
fn generator_data(
    train: &dyn TrainingCases,
    f: &Fitted,
    shape: [usize; 3],
) -> Result<Vec<Array3<f32>>> {
    let real = RealVolumes::new(train, f.modality, f.map, shape);
    (0..train.len()).map(|i| real.volume(i)).collect()
}

struct FitOn<'a, 'b, T> {
    method: &'a T,
    data: &'a [Array3<f32>],
    ctx: &'a mut GeneratorFit<'b>,
}

impl<T: GenerativeMethod> BackendVisitor for FitOn<'_, '_, T> {
    type Output = Result<()>;
    fn visit<B: KernelBackend>(self, device: B::Device) -> Result<()> {
        self.method.fit::<B>(self.data, self.ctx, &device)
    }
}

struct SampleOn<'a, T> {
    method: &'a T,
    dir: &'a Path,
    n: usize,
    seed: u64,
    real: RealVolumes<'a>,
}

impl<T: GenerativeMethod> BackendVisitor for SampleOn<'_, T> {
    type Output = Result<Vec<Array3<f32>>>;
    fn visit<B: KernelBackend>(self, device: B::Device) -> Self::Output {
        self.method
            .sample::<B>(self.dir, self.n, self.seed, &self.real, &device)
    }
}

impl<T: GenerativeMethod> TrainableSynthesizer for Comparator<T> {
    fn regenerate(&self) -> bool {
        self.method.protocol().regenerate
    }

    fn native_shape(&self) -> Option<[usize; 3]> {
        Some(self.method.output_shape())
    }

    fn fit(&mut self, train: &dyn TrainingCases, ctx: &mut FitContext<'_>) -> Result<()> {
        std::fs::create_dir_all(ctx.checkpoint_dir)
            .map_err(|e| CoreError::io(ctx.checkpoint_dir, e))?;
        let meta = ctx.checkpoint_dir.join("protocol.json");
        let mut fitted = match std::fs::read(&meta) {
            Ok(bytes) => serde_json::from_slice::<Fitted>(&bytes).map_err(|e| {
                CoreError::invalid(
                    meta.display().to_string(),
                    format!("unreadable ({e}); delete the generator folder to refit"),
                )
            })?,
            Err(_) if train.is_empty() => {
                return Err(CoreError::invalid(
                    T::NAME,
                    format!(
                        "no training cases, and {} holds no fit; a generator needs training cases",
                        ctx.checkpoint_dir.display()
                    ),
                ))
            }
            Err(_) => {
                let f = training_statistics(train, self.method.protocol())?;
                let json = serde_json::to_vec_pretty(&f)
                    .map_err(|e| CoreError::codec("protocol.json", e))?;
                write_atomic(&meta, &json)?;
                f
            }
        };
        let done = FitCheckpoint::latest(ctx.checkpoint_dir)?.map_or(0, |c| c.step());
        let data = if done >= self.method.steps() {
            Vec::new() // finished: the fit only loads
        } else if train.is_empty() {
            return Err(CoreError::invalid(
                ctx.checkpoint_dir.display().to_string(),
                format!(
                    "holds an unfinished {} fit (step {done} of {}) and no training cases were given",
                    T::NAME,
                    self.method.steps()
                ),
            ));
        } else {
            generator_data(train, &fitted, self.method.output_shape())?
        };
        let mut gctx = GeneratorFit {
            dir: ctx.checkpoint_dir,
            seed: ctx.seed,
            progress: ctx.progress,
        };
        ctx.backend.dispatch(FitOn {
            method: &self.method,
            data: &data,
            ctx: &mut gctx,
        })??;
        fitted.dir = ctx.checkpoint_dir.to_path_buf();
        fitted.backend = ctx.backend;
        fitted.sample_shape = ctx.sample_shape;
        self.fitted = Some(fitted);
        Ok(())
    }

    fn sample(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
        real: &dyn TrainingCases,
    ) -> Result<Vec<SampledImage>> {
        let mut out = Vec::with_capacity(n);
        self.sample_into(n, rng, real, &mut |image| {
            out.push(image);
            Ok(())
        })?;
        Ok(out)
    }

    /// Draws the generator's volumes [`SAMPLE_CHUNK`] at a time (sample `j` still conditioned on
    /// real case `j`), so a draw of hundreds holds a chunk in memory, not the set.
    fn sample_into(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
        real: &dyn TrainingCases,
        sink: &mut dyn FnMut(SampledImage) -> Result<()>,
    ) -> Result<()> {
        let f = self
            .fitted
            .as_ref()
            .ok_or_else(|| CoreError::invalid(T::NAME, "sampled before it was fitted"))?;
        let p = self.method.protocol();
        let per = match p.layout {
            NoiseLayout::Channels => 1,
            NoiseLayout::Datasets => p.noise.len(),
        };
        let [d, h, w] = f.sample_shape;
        let spacing = [
            f.extent_mm[2] / w as f64,
            f.extent_mm[1] / h as f64,
            f.extent_mm[0] / d as f64,
        ];
        let grid = Grid::axis_aligned([w, h, d], spacing);
        let total = n.div_ceil(per);
        let mut emitted = 0;
        for first in (0..total).step_by(SAMPLE_CHUNK) {
            let volumes = f.backend.dispatch(SampleOn {
                method: &self.method,
                dir: &f.dir,
                n: SAMPLE_CHUNK.min(total - first),
                seed: rng.random(),
                real: RealVolumes::new(real, f.modality, f.map, self.method.output_shape())
                    .offset(first),
            })??;
            for v in volumes {
                let v = protocol::resample(v.view(), f.sample_shape);
                for image in protocol::noisy_copies(v.view(), &f.map, p, f.channels, rng) {
                    if emitted < n {
                        emitted += 1;
                        sink(SampledImage {
                            image,
                            label: None,
                            grid: grid.clone(),
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Generator volumes drawn per call of [`GenerativeMethod::sample`] when a comparator fills a
/// stage-2 set (a draw of up to this many gives the same images as one call).
pub const SAMPLE_CHUNK: usize = 8;

/// Registers a [`GenerativeMethod`] as a trainable synthesizer (wrapped in [`Comparator`]).
#[macro_export]
macro_rules! register_comparator {
    ($t:ty) => {
        $crate::inventory::submit! {
            $crate::__plugin::registry::TrainableRegistration::of::<$crate::generative::Comparator<$t>>()
        }
    };
}
