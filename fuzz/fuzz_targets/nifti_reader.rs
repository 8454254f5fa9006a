//! The NIfTI reader on arbitrary file bytes: plain `.nii` of either version and byte order, and
//! (when the bytes start with the gzip magic) the capped gzip path. Every outcome must be a value
//! or a named error: no panic, no abort, no allocation beyond what the header's size allows.
#![no_main]

use dsma_fuzz::read_all_ways;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| read_all_ways(data));
