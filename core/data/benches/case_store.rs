//! One training patch from a BraTS-sized case (240×240×155, four modalities, cropped to the brain):
//! copied from a case held in memory (before the case store) vs read through the store's per-patch
//! memory maps (issue 16), at the quickstart's 32³ and the paper's 128³ patch size; and a
//! generated image labelled by the teacher for a stage-2 epoch, written out whole vs with its
//! image linked (`StoredCase::relabelled`); and opening a stored case, which reads every array file
//! against its CRC-32 (issue 31; from the page cache).

use criterion::{criterion_group, criterion_main, Criterion};
use dsma_data::case_store::{CaseParts, StoredCase};
use dsma_data::phantom::generate_case;
use dsma_data::preprocess::{
    crop_to_brain, foreground_indices, sample_patch, zscore_brain, PatchConfig,
};
use dsma_data::Case;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A BraTS-sized phantom case, cropped and z-scored, stored as `tmp/case` with the stamp `bench`.
fn stored_case(tmp: &tempfile::TempDir) -> (Case, StoredCase) {
    let original = generate_case("Phantom_000", [240, 240, 155], [1.0; 3], 0).expect("phantom");
    let (mut case, start) = crop_to_brain(&original).expect("crop");
    zscore_brain(&mut case);
    let parts = CaseParts {
        case: &case,
        crop_start: start,
        original_grid: &original.grid,
        original_label: None,
        stamp: "bench",
    };
    let stored = StoredCase::write(&tmp.path().join("case"), &parts).expect("store");
    (case, stored)
}

fn patch(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (case, stored) = stored_case(&tmp);
    let fg = foreground_indices(case.label.view());
    let mut g = c.benchmark_group("training_patch_240x240x155");
    for size in [32, 128] {
        let cfg = PatchConfig {
            size: [size; 3],
            tumour_share: 0.5,
            flip_probability: 0.5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        g.bench_function(format!("{size}³ from memory"), |b| {
            b.iter(|| sample_patch(&case, &fg, &cfg, &mut rng))
        });
        g.bench_function(format!("{size}³ from the case store"), |b| {
            b.iter(|| stored.sample_patch(&cfg, &mut rng).expect("patch"))
        });
    }
    g.finish();
}

fn relabel(c: &mut Criterion) {
    let original = generate_case("Phantom_000", [240, 240, 155], [1.0; 3], 0).expect("phantom");
    let tmp = tempfile::tempdir().expect("tempdir");
    let parts = CaseParts {
        case: &original,
        crop_start: [0; 3],
        original_grid: &original.grid,
        original_label: None,
        stamp: "synthetic",
    };
    let image = StoredCase::write(&tmp.path().join("image"), &parts).expect("store");
    let mut g = c.benchmark_group("labelled_generated_image_240x240x155");
    g.sample_size(10);
    g.bench_function("written whole", |b| {
        b.iter(|| StoredCase::write(&tmp.path().join("whole"), &parts).expect("write"))
    });
    g.bench_function("image linked", |b| {
        b.iter(|| {
            let dir = tmp.path().join("linked");
            image
                .relabelled(&dir, "generated", &original.label)
                .expect("relabel")
        })
    });
    g.finish();
}

fn open(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, stored) = stored_case(&tmp);
    let dir = stored.dir().to_path_buf();
    let mut g = c.benchmark_group("open_stored_case_240x240x155");
    g.throughput(criterion::Throughput::Bytes(stored.disk_bytes()));
    g.bench_function("checked", |b| {
        b.iter(|| StoredCase::check(&dir, "bench").expect("open"))
    });
    g.finish();
}

criterion_group!(benches, patch, relabel, open);
criterion_main!(benches);
