//! One epoch of training: its plan (real and synthetic cases, their weights), the shuffled batches
//! with one AdamW step each and the EMA update, the periodic test evaluation and the best
//! checkpoint.

use std::path::Path;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use dsma_data::case_store::StoredCase;
use dsma_data::error::{CoreError, Result};
use dsma_data::labels::region_targets;
use dsma_data::seed::derive_seed;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::module_state::ema_update;
use crate::checkpoint::{self, Checkpoint};
use crate::loss::weighted_dice_loss;
use crate::model::{ModelFactory, SegmentationModel};
use crate::runner::evaluate::{evaluate, mean_metrics};
use crate::runner::progress::RunObserver;
use crate::runner::records::EpochRecord;
use crate::runner::run_job::RunJob;
use crate::runner::stages::session::Session;
use dsma_kernels::KernelBackend;

const SALT_EPOCH: u64 = 0x4550_4f43; // "EPOC"

/// What one epoch trains on.
pub(crate) struct EpochPlan<'a> {
    /// 1 or 2.
    pub(crate) stage: u8,
    /// Global epoch, 0-based.
    pub(crate) epoch: usize,
    /// Learning rate.
    pub(crate) lr: f64,
    /// This epoch's synthetic cases (empty in stage 1).
    pub(crate) synthetic: &'a [StoredCase],
    /// One weight per synthetic case.
    pub(crate) weights: &'a [f64],
    /// Seconds the trainer waited for the synthetic set.
    pub(crate) wait_s: f64,
}

impl EpochPlan<'static> {
    /// An epoch on real cases only.
    pub(crate) fn real_only(stage: u8, epoch: usize, lr: f64) -> Self {
        EpochPlan {
            stage,
            epoch,
            lr,
            synthetic: &[],
            weights: &[],
            wait_s: 0.0,
        }
    }
}

/// One epoch: every real case (and synthetic case) contributes `patches_per_case` patches, shuffled
/// and batched; one AdamW step per batch; the EMA teacher follows every step.
pub(crate) fn run_epoch<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    plan: &EpochPlan<'_>,
    obs: &mut dyn RunObserver,
) -> Result<EpochRecord> {
    let EpochPlan {
        stage,
        epoch,
        lr,
        synthetic,
        weights,
        wait_s,
    } = *plan;
    let started = Instant::now();
    let t = &job.experiment.train;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(
        derive_seed(job.run.seed, SALT_EPOCH),
        epoch as u64,
    ));
    // (case, weight) per sample.
    let mut samples: Vec<(&StoredCase, f64)> = Vec::new();
    for _ in 0..t.patches_per_case {
        for c in &job.data.train {
            samples.push((c, 1.0));
        }
        for (c, &w) in synthetic.iter().zip(weights) {
            samples.push((c, w));
        }
    }
    samples.shuffle(&mut rng);
    let steps = samples.len().div_ceil(t.batch);
    obs.epoch_start(epoch, steps);
    let mut loss_sum = 0.0;
    for batch in samples.chunks(t.batch) {
        let Batch { x, y, w } = batch_tensors::<B>(batch, &t.patch, &mut rng, &s.device)?;
        let step = crate::model::autodiff_step();
        let student = s.student.take().expect("student present between steps");
        let loss = weighted_dice_loss(student.forward(x), y, w);
        let value: f64 = loss.clone().into_scalar().elem();
        if !value.is_finite() {
            return Err(CoreError::invalid(
                "training",
                format!(
                    "the loss became {value} at epoch {} (lower the learning rate?)",
                    epoch + 1
                ),
            ));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &student);
        let student = s.optim.step(lr, student, grads);
        let ema = s.ema.clone();
        s.ema = ema_update(ema, &student.valid(), t.ema_decay);
        s.student = Some(student);
        drop(step);
        loss_sum += value;
        obs.step(value);
    }
    let synth_weights: Vec<f64> = weights.to_vec();
    Ok(EpochRecord {
        stage,
        epoch: epoch + 1,
        lr,
        loss: loss_sum / steps.max(1) as f64,
        steps,
        synthetic: synthetic.len(),
        mean_weight: (!synth_weights.is_empty())
            .then(|| synth_weights.iter().sum::<f64>() / synth_weights.len() as f64),
        real_score: s
            .state
            .weights
            .last()
            .filter(|l| l.epoch == epoch + 1 && !l.real_scores.is_empty())
            .map(|l| l.real_scores.iter().sum::<f64>() / l.real_scores.len() as f64),
        test_dice: None,
        wait_s,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One batch of (case, foreground, weight) samples as tensors: a random patch per sample
/// (`sample_patch`), its WT/TC/ET targets and the samples' loss weights.
fn batch_tensors<B: Backend>(
    batch: &[(&StoredCase, f64)],
    cfg: &dsma_data::preprocess::PatchConfig,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Result<Batch<B>> {
    let [px, py, pz] = cfg.size;
    let n = batch.len();
    let mut x = Vec::with_capacity(n * 4 * pz * py * px);
    let mut y = Vec::with_capacity(n * 3 * pz * py * px);
    let mut w = Vec::with_capacity(n);
    for (case, weight) in batch {
        let patch = case.sample_patch(cfg, rng)?;
        x.extend(patch.image.iter().copied());
        y.extend(
            region_targets(patch.label.view(), case.meta().convention)
                .iter()
                .copied(),
        );
        w.push(*weight as f32);
    }
    let channels = x.len() / (n * pz * py * px);
    Ok(Batch {
        x: Tensor::from_data(TensorData::new(x, [n, channels, pz, py, px]), device),
        y: Tensor::from_data(TensorData::new(y, [n, 3, pz, py, px]), device),
        w: Tensor::from_data(TensorData::new(w, [n]), device),
    })
}

/// Images, WT/TC/ET targets and per-sample loss weights of one training batch.
struct Batch<B: Backend> {
    x: Tensor<Autodiff<B>, 5>,
    y: Tensor<Autodiff<B>, 5>,
    w: Tensor<Autodiff<B>, 1>,
}

/// Periodic test evaluation (best checkpoint in stage 2), then the record is appended.
pub(crate) fn finish_epoch<F: ModelFactory, B: KernelBackend>(
    s: &mut Session<F, B>,
    job: &RunJob<'_>,
    mut rec: EpochRecord,
    obs: &mut dyn RunObserver,
    stage2: bool,
) -> Result<()> {
    let every = job.experiment.eval.every;
    s.state.epoch += 1;
    if every > 0 && s.state.epoch.is_multiple_of(every) {
        let model = s.student().valid();
        let cases = evaluate::<B, F::Model<B>>(
            &model,
            &job.data.test,
            &job.experiment.eval,
            &s.device,
            None,
        )?;
        let m = mean_metrics(&cases);
        rec.test_dice = Some([m.WT.dice, m.TC.dice, m.ET.dice, m.AVE.dice]);
        if stage2 && s.state.best.is_none_or(|(_, b)| m.AVE.dice > b) {
            s.state.best = Some((s.state.epoch, m.AVE.dice));
            s.state.records.push(rec.clone());
            let dir = job.run_dir.join("checkpoints");
            let ckpt = s.checkpoint()?;
            s.state.records.pop();
            save_best(&dir, &ckpt)?;
        }
    }
    obs.epoch_end(&rec);
    s.state.records.push(rec);
    Ok(())
}

/// Writes `dir/best/` atomically without moving the `latest` pointer.
fn save_best(dir: &Path, ckpt: &Checkpoint) -> Result<()> {
    let staging = dir.join(".best-staging");
    if let Err(e) = checkpoint::save(&staging, "best", ckpt, &[]) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let target = dir.join("best");
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| CoreError::io(&target, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    std::fs::rename(staging.join("best"), &target).map_err(|e| CoreError::io(&target, e))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}
