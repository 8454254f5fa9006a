//! diffusion-yu: the discriminator's layout by hand count, exact resume, both generation modes.

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::Tensor;
use dsma_data::{Case, Grid, LabelConvention, Modality};
use dsma_diffusion_yu::{
    AdversarialTarget, DiffusionYu, DiffusionYuParams, DiscriminatorParams, Generation,
};
use dsma_plugin::registry::Plugin;
use dsma_train::diffusion::{DenoiserConfig, DiffusionParams};
use dsma_train::generative::{GenerativeMethod, GeneratorFit, IntensityMap, RealVolumes};
use ndarray::{Array3, Array4};

type B = Flex;

#[test]
fn the_discriminator_matches_a_hand_count() {
    let m = DiffusionYu::new(DiffusionYuParams::default()).unwrap();
    let d = m.discriminator::<B>(0, &Default::default());
    let c = 16;
    // 4³ convolutions 1→C, C→2C, 2C→4C, 4C→8C with bias; t-embedding linear C→C; output 8C→1.
    let convs = (c * 64 + c)
        + (2 * c * c * 64 + 2 * c)
        + (4 * c * 2 * c * 64 + 4 * c)
        + (8 * c * 4 * c * 64 + 8 * c);
    assert_eq!(d.num_params(), convs + (c * c + c) + (8 * c + 1));
    let logits = d.forward(
        Tensor::zeros([2, 1, 32, 32, 32], &Default::default()),
        &[1, 500],
    );
    assert_eq!(logits.dims(), [2]);
}

fn params(steps: usize, target: AdversarialTarget, generation: Generation) -> DiffusionYuParams {
    DiffusionYuParams {
        size: [16, 16, 16],
        sample_steps: 4,
        adversarial_target: target,
        generation,
        partial_t: 100,
        discriminator: DiscriminatorParams {
            channels: 2,
            ..DiscriminatorParams::default()
        },
        diffusion: DiffusionParams {
            denoiser: DenoiserConfig {
                channels: 4,
                mults: vec![1, 2],
                groups: 2,
                attention: false,
            },
            batch: 2,
            steps,
            checkpoint_every: 2,
            ema_decay: 0.9,
            lr: 1e-3,
            ..DiffusionParams::default()
        },
        ..DiffusionYuParams::default()
    }
}

fn fit(m: &DiffusionYu, data: &[Array3<f32>], dir: &std::path::Path) {
    let mut progress = |_| {};
    let mut ctx = GeneratorFit {
        dir,
        seed: 5,
        progress: &mut progress,
    };
    m.fit::<B>(data, &mut ctx, &Default::default()).unwrap();
}

#[test]
fn a_resumed_fit_samples_what_an_uninterrupted_one_does_in_both_modes() {
    let data: Vec<Array3<f32>> = (0..3)
        .map(|i| Array3::from_elem((16, 16, 16), 0.2 * i as f32 - 0.2))
        .collect();
    let train: Vec<Case> = (0..2)
        .map(|i| Case {
            id: format!("c{i}"),
            image: Array4::from_elem((4, 16, 16, 16), 0.3 * i as f32),
            label: Array3::zeros((16, 16, 16)),
            grid: Grid::axis_aligned([16, 16, 16], [1.0; 3]),
            convention: LabelConvention::Brats2019,
        })
        .collect();
    let real = RealVolumes::new(
        &train,
        Modality::Flair,
        IntensityMap { lo: -1.0, hi: 1.0 },
        [16, 16, 16],
    );
    let dev = Default::default();
    for target in [
        AdversarialTarget::PreviousStep,
        AdversarialTarget::CleanImage,
    ] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let m = |s, g| DiffusionYu::new(params(s, target, g)).unwrap();
        fit(&m(4, Generation::FromNoise), &data, a.path());
        fit(&m(2, Generation::FromNoise), &data, b.path());
        fit(&m(4, Generation::FromNoise), &data, b.path());
        for g in [Generation::FromNoise, Generation::Partial] {
            let s1 = m(4, g).sample::<B>(a.path(), 3, 9, &real, &dev).unwrap();
            assert_eq!(
                s1,
                m(4, g).sample::<B>(b.path(), 3, 9, &real, &dev).unwrap(),
                "{target:?} {g:?}"
            );
            assert_eq!(s1[0].dim(), (16, 16, 16));
        }
        let err = m(4, Generation::Partial)
            .sample::<B>(a.path(), 1, 9, &RealVolumes::none(), &dev)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("conditioned on real training cases"),
            "{err}"
        );
    }
}
