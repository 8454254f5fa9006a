//! DTSS on a 4×240×240×155 phantom case, beside one plain copy of the case (the floor).

use criterion::{criterion_group, criterion_main, Criterion};
use dsma_data::phantom::generate_case;
use dsma_dtss::{Dtss, DtssParams};
use dsma_plugin::registry::Plugin;
use dsma_plugin::Synthesizer;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn bench(c: &mut Criterion) {
    let case = generate_case("bench", [240, 240, 155], [1.0; 3], 0).expect("phantom");
    let dtss = Dtss::new(DtssParams::default()).expect("params");
    let mut g = c.benchmark_group("dtss_240x240x155");
    g.sample_size(20);
    g.bench_function("copy of the case (floor)", |b| b.iter(|| case.clone()));
    let mut seed = 0u64;
    g.bench_function("dtss synthesize", |b| {
        b.iter(|| {
            seed += 1;
            dtss.synthesize(&case, &mut ChaCha8Rng::seed_from_u64(seed))
                .expect("dtss")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
