//! The gzip path of the NIfTI reader: the input is gzipped first, so every header the fuzzer
//! invents reaches the decompression cap (which trusts the inner header, never the gzip trailer).
#![no_main]

use std::io::Write;

use dsma_fuzz::read_all_ways;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gz.write_all(data).is_ok() {
        if let Ok(bytes) = gz.finish() {
            read_all_ways(&bytes);
        }
    }
});
