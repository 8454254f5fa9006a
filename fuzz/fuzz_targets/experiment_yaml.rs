//! The experiment loader (`extends`, duplicate keys, anchors, typed validation) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dsma_fuzz::load_experiment("fuzz.yaml", data, &[]));
