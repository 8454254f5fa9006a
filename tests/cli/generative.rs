//! The comparators' protocol (§4.1) through the runner: a trainable synthesizer is fitted once on the
//! real training cases, sampled every stage-2 epoch, and its unlabelled samples get the EMA teacher's
//! pseudo-labels before they enter training with their weights.

use std::sync::atomic::{AtomicUsize, Ordering};

use dsma_data::{Case, Result};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{FitContext, PluginParams, SampledImage, TrainableSynthesizer, TrainingCases};
use dsma_train::experiment::load;
use dsma_train::runner::execute::{execute, ExecuteOptions};
use dsma_train::runner::progress::Silent;
use ndarray::Array4;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

static FITS: AtomicUsize = AtomicUsize::new(0);
static SAMPLES: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoiseParams {}

impl PluginParams for NoiseParams {}

/// "Generates" a copy of a training image plus noise, without labels.
struct NoiseGenerator {
    images: Vec<Case>,
}

impl Plugin for NoiseGenerator {
    const NAME: &'static str = "test-noise-generator";
    const VERSION: &'static str = "0";
    const DESCRIPTION: &'static str = "test: unlabelled noisy copies of training images";
    type Params = NoiseParams;
    fn new(_: NoiseParams) -> Result<Self> {
        Ok(NoiseGenerator { images: Vec::new() })
    }
}

impl TrainableSynthesizer for NoiseGenerator {
    fn fit(&mut self, train: &dyn TrainingCases, ctx: &mut FitContext<'_>) -> Result<()> {
        FITS.fetch_add(1, Ordering::SeqCst);
        std::fs::create_dir_all(ctx.checkpoint_dir).unwrap();
        std::fs::write(ctx.checkpoint_dir.join("fitted"), b"1").unwrap();
        self.images = (0..train.len())
            .map(|i| train.case(i).map(|c| c.into_owned()))
            .collect::<Result<_>>()?;
        Ok(())
    }
    fn sample(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
        _real: &dyn TrainingCases,
    ) -> Result<Vec<SampledImage>> {
        SAMPLES.fetch_add(n, Ordering::SeqCst);
        Ok((0..n)
            .map(|i| {
                let c = &self.images[i % self.images.len()];
                let noise =
                    Array4::from_shape_simple_fn(c.image.dim(), || rng.random_range(-0.1f32..0.1));
                SampledImage {
                    image: &c.image + &noise,
                    label: None,
                    grid: c.grid.clone(),
                }
            })
            .collect())
    }
}

dsma_plugin::register_trainable_synthesizer!(NoiseGenerator);

#[test]
fn generated_samples_are_pseudo_labelled_by_the_ema_teacher_and_weighted() {
    let _serial = crate::support::in_process();
    dsma_unet3d::link();
    dsma_mas::link();
    dsma_uniform::link();
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("gen.yaml");
    std::fs::write(
        &exp,
        format!(
            "name: gen
datasets:
  - name: Phantom
    kind: phantom
    path: {}
    phantom: {{cases: 5, size: [24, 24, 16], seed: 2}}
model: {{name: unet3d, params: {{base_width: 4, depth: 2}}}}
train:
  stage1: {{epochs: 2, lr: 3.0e-3}}
  stage2: {{epochs: 2, lr: 1.0e-4}}
  patch: {{size: [16, 16, 16]}}
  synthesis: {{regenerate: true}}
eval:
  window: {{patch: [16, 16, 16]}}
rows:
  - label: generator
    synthesizer: {{name: test-noise-generator}}
    weighter: {{name: mas}}
",
            tmp.path().join("phantom").display()
        ),
    )
    .unwrap();
    let loaded = load(&exp, &[]).unwrap();
    let registry = dsma_plugin::Registry::builtin();
    let out = tmp.path().join("out");
    let opts = ExecuteOptions::new(out.clone());
    let results = execute(&loaded, &registry, &opts, &mut Silent).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(FITS.load(Ordering::SeqCst), 1, "fitted once");
    assert_eq!(
        SAMPLES.load(Ordering::SeqCst),
        2 * 4 + 4,
        "4 samples (one per training case) per stage-2 epoch, plus 4 for the sample grid"
    );
    let run = out.join("runs/phantom/generator/rep-0");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("synthesizer.json")).unwrap()).unwrap();
    let fit_dir = std::path::PathBuf::from(record["fit"].as_str().unwrap());
    assert!(
        fit_dir.starts_with(tmp.path().join("cache/generators")),
        "{fit_dir:?}"
    );
    assert!(fit_dir.join("fitted").exists());
    assert!(run.join("synthesizer-samples.png").exists());
    let weights = std::fs::read_to_string(run.join("weights.csv")).unwrap();
    let rows: Vec<&str> = weights.lines().skip(1).collect();
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(2).unwrap().starts_with("generated-")),
        "{weights}"
    );
    // The teacher's pseudo-labels make the samples scorable: scores are Dice values in [0, 1].
    for r in &rows {
        let score: f64 = r.split(',').nth(4).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
    }
}
