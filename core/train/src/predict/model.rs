//! A run's network behind one object-safe trait, so that runs of different models and backends
//! can be ensembled: [`RegionModel`] gives region probabilities of a preprocessed image.

use std::path::Path;

use ndarray::{Array4, ArrayView4};

use crate::experiment::config::Experiment;
use crate::inference::{sliding_window_mirrored, SlidingWindow};
use crate::model::{load_model, ModelFactory};
use dsma_data::error::{CoreError, Result};
use dsma_kernels::KernelBackend;
use dsma_plugin::parse_params;

/// A loaded network with its sliding-window settings.
pub trait RegionModel {
    /// Region probabilities `[3, z, y, x]` (WT, TC, ET) of a preprocessed image `[4, z, y, x]`;
    /// with `mirror`, averaged over the 8 axis flips of every window.
    fn probabilities(&self, image: ArrayView4<f32>, mirror: bool) -> Result<Array4<f32>>;
}

/// A run's model, opened from one checkpoint.
pub struct OpenedModel {
    /// The network.
    pub model: Box<dyn RegionModel>,
    /// Input and output channels its parameters build (`None`: the model has no such parameter).
    pub channels: Option<[usize; 2]>,
}

struct Loaded<F: ModelFactory, B: KernelBackend> {
    model: F::Model<B>,
    window: SlidingWindow,
    device: B::Device,
}

impl<F: ModelFactory, B: KernelBackend> RegionModel for Loaded<F, B> {
    fn probabilities(&self, image: ArrayView4<f32>, mirror: bool) -> Result<Array4<f32>> {
        sliding_window_mirrored::<B, F::Model<B>>(
            &self.model,
            image,
            &self.window,
            mirror,
            &self.device,
        )
    }
}

/// Builds `exp`'s model `F` on backend `B` (on the GPU when `gpu`) and loads the student weights
/// (`model.safetensors`) of the checkpoint folder `checkpoint`.
pub fn open_model<F: ModelFactory, B: KernelBackend>(
    exp: &Experiment,
    checkpoint: &Path,
    gpu: bool,
) -> Result<OpenedModel> {
    let params: F::Params = parse_params(F::NAME, &exp.model.params)?;
    let ckpt = crate::checkpoint::load(checkpoint)?;
    let file = checkpoint.join("model.safetensors");
    let bytes = ckpt.files.get("model.safetensors").ok_or_else(|| {
        CoreError::invalid(
            format!("checkpoint {}", checkpoint.display()),
            "model.safetensors is missing",
        )
    })?;
    let device = B::run_device(gpu);
    let model = load_model::<F, B>(&params, bytes, &file, &device)?;
    Ok(OpenedModel {
        channels: F::channels(&params),
        model: Box::new(Loaded::<F, B> {
            model,
            window: exp.eval.window.clone(),
            device,
        }),
    })
}
