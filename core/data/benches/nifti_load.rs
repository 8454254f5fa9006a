//! Loading one 4-modality 240×240×155 BraTS-sized case from `.nii.gz` (issue: data layer speed).
//!
//! Also times the decompression alone, the floor our decoding should approach.
//! Set `DSMA_BENCH_CASE=/path/to/BraTS20_Training_001` to time a real case instead of a phantom.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use dsma_data::brats::{case_files, load_case};
use dsma_data::nifti_io::read_decompressed;
use dsma_data::phantom::{generate_case, write_case};
use dsma_data::LabelConvention;

fn bench_case() -> (Option<tempfile::TempDir>, PathBuf) {
    if let Ok(p) = std::env::var("DSMA_BENCH_CASE") {
        return (None, PathBuf::from(p));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let case = generate_case("Phantom_000", [240, 240, 155], [1.0; 3], 0).expect("phantom");
    let dir = write_case(tmp.path(), &case).expect("write");
    (Some(tmp), dir)
}

fn load(c: &mut Criterion) {
    let (_keep, dir) = bench_case();
    let files =
        case_files(&dir).unwrap_or_else(|_| panic!("{} is not a BraTS case folder", dir.display()));
    let mut g = c.benchmark_group("nifti_load_240x240x155");
    g.sample_size(10);
    g.bench_function("load_case (4 modalities + seg, validated)", |b| {
        b.iter(|| load_case(&dir, LabelConvention::Brats2019).expect("load"))
    });
    g.bench_function("gunzip only (5 files, sequential)", |b| {
        b.iter(|| {
            files
                .modalities
                .iter()
                .chain([&files.seg])
                .map(|p| read_decompressed(p).expect("read").len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
