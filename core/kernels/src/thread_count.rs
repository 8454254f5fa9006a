//! Test support: the thread-count check every kernel's tests make.

/// Runs `run` on pools of 1, 2, 3 and 7 threads and asserts that every buffer it returns is
/// bit-equal to the 1-thread run's (`what` names the case in a failure).
pub(crate) fn assert_same_bits_on_any_thread_count<const K: usize>(
    what: &str,
    run: impl Fn() -> [Vec<f32>; K] + Sync,
) {
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool");
        pool.install(&run)
    };
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let one = on(1);
    for threads in [2, 3, 7] {
        for (k, (a, b)) in one.iter().zip(on(threads).iter()).enumerate() {
            assert_eq!(bits(a), bits(b), "{what}: buffer {k}, {threads} threads");
        }
    }
}
