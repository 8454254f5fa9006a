//! Fitting a row's generative comparator: once per (generator, parameters, dataset split, seed) in
//! the shared cache, the run's record of which fit it used, and its sample grid.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use dsma_data::error::Result;
use dsma_plugin::{Registry, TrainableSynthesizer};

use crate::experiment::config::Experiment;
use crate::runner::plan::PlannedRun;
use crate::runner::prepare::PreparedData;
use crate::runner::progress::RunObserver;
use crate::runner::report::logs;
use crate::runner::stage_lock::StageLock;
use dsma_data::seed::derive_seed;
use dsma_data::volume::Case;

const SALT_FIT: u64 = 0x4749_5446; // "GITF"

/// What fitting a row's generator needs of its run ([`crate::runner::run_job::RunJob::fit_job`];
/// the generator lane builds one before the run's trainer starts).
pub struct FitJob<'a> {
    /// The resolved experiment.
    pub experiment: &'a Experiment,
    /// The run whose row names the generator.
    pub run: &'a PlannedRun,
    /// Its dataset, prepared (the fit sees the training split only).
    pub data: &'a PreparedData,
    /// Plugins.
    pub registry: &'a Registry,
    /// The run's folder (`synthesizer.json`, the sample grid).
    pub run_dir: &'a Path,
    /// The shared root (`generators/`).
    pub cache_dir: &'a Path,
}

/// Trains a generative comparator on the real training split, once per (generator, parameters,
/// dataset split, seed): the fit lives in `cache/generators/<name>-<hash>/` under a stage lock, so
/// other rows, tables (U-Net and NestedFormer) and resumed runs reuse it. The run folder records
/// which fit it used (`synthesizer.json`) and gets the sample grid (`synthesizer-samples.png`).
pub fn fit_generator(
    g: &mut dyn TrainableSynthesizer,
    job: &FitJob<'_>,
    obs: &mut dyn RunObserver,
) -> Result<()> {
    let row = &job.experiment.rows[job.run.row];
    let Some(spec) = &row.synthesizer else {
        return Ok(());
    };
    let (key, dir) = generator_dir(job, &spec.name, &spec.params)?;
    let _lock = StageLock::acquire(&dir, obs)?;
    obs.message(&format!("generator {}: {}", spec.name, dir.display()));
    let mut last = 0usize;
    let started = Instant::now();
    let mut progress = |p: dsma_plugin::FitProgress| {
        if p.step == p.total || p.step >= last + (p.total / 20).max(1) {
            last = p.step;
            obs.message(&format!(
                "generator {}: step {}/{}{} ({:.0} s)",
                spec.name,
                p.step,
                p.total,
                p.loss.map(|l| format!(", loss {l:.4}")).unwrap_or_default(),
                started.elapsed().as_secs_f64()
            ));
        }
    };
    let [x, y, z] = job.experiment.train.patch.size;
    let train = TrainSplit(&job.data.train);
    let fit_seed = derive_seed(
        derive_seed(job.experiment.seed, job.run.repeat as u64),
        SALT_FIT,
    );
    g.fit(
        &train,
        &mut dsma_plugin::FitContext {
            checkpoint_dir: &dir,
            seed: fit_seed,
            backend: job.experiment.train.backend,
            sample_shape: [z, y, x],
            progress: &mut progress,
        },
    )?;
    logs::write_json(
        job.run_dir,
        "synthesizer.json",
        &serde_json::json!({
            "name": spec.name,
            "fit": dir,
            "key": key,
            "fit_seed": fit_seed,
            // Stage-2 epoch k draws its images (and the noise of their four copies) from
            // ChaCha8(case_seed(run seed, k, usize::MAX)); only k = 0 when the set is drawn once.
            "sample_seeds": (0..job.experiment.train.stage2.epochs)
                .map(|k| crate::runner::synthesis::queue::case_seed(job.run.seed, k, usize::MAX))
                .collect::<Vec<u64>>(),
        }),
    )?;
    let png = job.run_dir.join("synthesizer-samples.png");
    if !png.exists() {
        sample_grid(g, job, &png)?;
    }
    Ok(())
}

/// The cache key (JSON) and folder of a generator fit.
fn generator_dir(
    job: &FitJob<'_>,
    name: &str,
    params: &serde_json::Value,
) -> Result<(serde_json::Value, PathBuf)> {
    let info = job.registry.describe(name)?;
    let ds = &job.experiment.datasets[job.run.dataset];
    let path = std::fs::canonicalize(&ds.path).unwrap_or_else(|_| ds.path.clone());
    // Defaults filled in, so `{steps: 200}` and the same values spelled out share a fit; whether
    // stage 2 draws one set or many is not part of the fit.
    let mut params = crate::experiment::merge(info.defaults.clone(), params.clone());
    if let Some(protocol) = params.get_mut("protocol").and_then(|p| p.as_object_mut()) {
        protocol.remove("regenerate");
    }
    let key = serde_json::json!({
        "generator": name,
        "version": info.version,
        "params": params,
        "dataset": { "kind": ds.kind, "path": path, "phantom": ds.phantom, "labels": ds.labels },
        "train": job.data.split.train,
        "seed": job.experiment.seed,
        "repeat": job.run.repeat,
    });
    let hash = crate::runner::plan::stable_hash(key.to_string().as_bytes());
    let dir = job
        .cache_dir
        .join("generators")
        .join(format!("{}-{hash:016x}", crate::runner::plan::slug(name)));
    Ok((key, dir))
}

/// The training split as [`dsma_plugin::TrainingCases`].
pub struct TrainSplit<'a>(pub &'a [dsma_data::case_store::StoredCase]);

impl dsma_plugin::TrainingCases for TrainSplit<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn case(&self, i: usize) -> Result<std::borrow::Cow<'_, Case>> {
        Ok(std::borrow::Cow::Owned(self.0[i].load()?))
    }
}

/// Axial mid-slices of generated images (channel 0, before the teacher) beside real training
/// cases, so a user sees what the generator learned.
fn sample_grid(g: &dyn TrainableSynthesizer, job: &FitJob<'_>, png: &Path) -> Result<()> {
    use dsma_data::slice_figure::{axial, render, Overlay, Panel};
    let n = 4.min(job.data.train.len()).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(job.run.seed, SALT_FIT));
    let images = g.sample(n, &mut rng, &TrainSplit(&job.data.train))?;
    let mut panels = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let ch = img.image.index_axis(ndarray::Axis(0), 0);
        panels.push(Panel {
            title: format!("generated {}", i + 1),
            slice: axial(ch, ch.dim().0 / 2),
            labels: None,
            overlay: Overlay::None,
        });
    }
    for c in job.data.train.iter().take(n) {
        let c = c.load()?;
        let ch = c.image.index_axis(ndarray::Axis(0), 0);
        panels.push(Panel {
            title: format!("real {}", c.id),
            slice: axial(ch, ch.dim().0 / 2),
            labels: None,
            overlay: Overlay::None,
        });
    }
    render(png, &panels, n, 3, job.data.convention)
}
