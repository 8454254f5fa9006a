//! The host side of the C ABI against a hostile plugin: the manifest (ABI version, names,
//! descriptions, defaults JSON, entry counts) and every call's results (status codes, error text
//! longer than its buffer or not UTF-8, null states, NaN or out-of-convention synthetic output,
//! NaN, negative or infinite weights) come from the fuzzer's bytes. A plugin's answer is accepted
//! only when it is sound: finite intensities, labels in the convention, finite weights ≥ 0.
#![no_main]

use std::ffi::c_void;
use std::path::Path;
use std::sync::Mutex;

use dsma_data::labels::LabelConvention;
use dsma_data::volume::{Case, Grid};
use dsma_plugin::dylib;
use dsma_plugin::traits::EpochScores;
use dsma_plugin_sdk as abi;
use libfuzzer_sys::fuzz_target;
use ndarray::{Array3, Array4};
use rand::SeedableRng;

/// The fuzzer's bytes still to be read by the fake plugin's functions (zeros once used up).
static TAPE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn take(n: usize) -> Vec<u8> {
    let mut tape = TAPE.lock().unwrap_or_else(|p| p.into_inner());
    let k = n.min(tape.len());
    let mut out: Vec<u8> = tape.drain(..k).collect();
    out.resize(n, 0);
    out
}

fn byte() -> u8 {
    take(1)[0]
}

fn status() -> i32 {
    match byte() % 6 {
        0..=2 => abi::OK,
        3 => abi::ERROR,
        4 => abi::PARAMS_ERROR,
        _ => i32::from_le_bytes(take(4).try_into().unwrap_or_default()),
    }
}

/// Writes fuzzer text into the host's buffer and reports a length that may exceed it.
unsafe fn fill_error(err: *mut abi::ErrorBuf) {
    let n = byte() as usize;
    let text = take(n);
    if let Some(e) = err.as_mut() {
        let k = n.min(e.cap);
        std::ptr::copy_nonoverlapping(text.as_ptr(), e.ptr, k);
        e.len = if byte() % 4 == 0 { usize::MAX } else { n };
    }
}

static STATE: u8 = 0;

unsafe extern "C" fn create(
    _user: *const c_void,
    _params: abi::Str,
    out: *mut *mut c_void,
    err: *mut abi::ErrorBuf,
) -> i32 {
    let code = status();
    fill_error(err);
    if byte() % 8 != 0 {
        *out = &STATE as *const u8 as *mut c_void;
    }
    code
}

unsafe extern "C" fn destroy(_state: *mut c_void) {}

unsafe extern "C" fn synthesize(
    _state: *const c_void,
    _input: abi::ImageView,
    _input_labels: abi::LabelView,
    _seed: u64,
    output: abi::ImageView,
    output_labels: abi::LabelView,
    err: *mut abi::ErrorBuf,
) -> i32 {
    let code = status();
    fill_error(err);
    let [x, y, z] = output.dims;
    let voxels = x * y * z;
    for i in 0..(byte() as usize).min(voxels * output.modalities) {
        let v = f32::from_le_bytes(take(4).try_into().unwrap_or_default());
        *output.data.add(i) = v;
    }
    for i in 0..(byte() as usize).min(voxels) {
        *output_labels.data.add(i) = byte();
    }
    code
}

unsafe extern "C" fn weights(
    _state: *const c_void,
    _epoch: u64,
    _real: abi::F64Slice,
    synthetic: abi::F64Slice,
    out: *mut f64,
    err: *mut abi::ErrorBuf,
) -> i32 {
    let code = status();
    fill_error(err);
    for i in 0..synthetic.len {
        *out.add(i) = f64::from_le_bytes(take(8).try_into().unwrap_or_default());
    }
    code
}

/// A `Str` over fuzzer bytes kept alive in `keep`.
fn text(keep: &mut Vec<Vec<u8>>) -> abi::Str {
    let n = byte() as usize % 48;
    keep.push(take(n));
    let last = &keep[keep.len() - 1];
    abi::Str {
        ptr: last.as_ptr(),
        len: last.len(),
    }
}

fn case() -> Case {
    let dims = [3, 2, 2];
    Case {
        id: "fuzz-case".into(),
        image: Array4::from_elem((2, 2, 2, 3), 0.5),
        label: Array3::from_elem((2, 2, 3), 1),
        grid: Grid::axis_aligned(dims, [1.0; 3]),
        convention: LabelConvention::Brats2019,
    }
}

fn exercise(path: &Path) {
    let mut keep = Vec::new();
    let version = if byte() % 4 == 0 {
        u32::from_le_bytes(take(4).try_into().unwrap_or_default())
    } else {
        abi::ABI_VERSION
    };
    let (plugin_name, plugin_version) = (text(&mut keep), text(&mut keep));
    let synths: Vec<abi::SynthesizerEntry> = (0..byte() % 3)
        .map(|_| abi::SynthesizerEntry {
            name: text(&mut keep),
            description: text(&mut keep),
            defaults_json: text(&mut keep),
            user: std::ptr::null(),
            create,
            synthesize,
            destroy,
        })
        .collect();
    let weighters: Vec<abi::WeighterEntry> = (0..byte() % 3)
        .map(|_| abi::WeighterEntry {
            name: text(&mut keep),
            description: text(&mut keep),
            defaults_json: text(&mut keep),
            user: std::ptr::null(),
            create,
            weights,
            destroy,
        })
        .collect();
    let mut manifest = abi::Manifest {
        abi_version: version,
        core_api_version: abi::CORE_API_VERSION,
        plugin_name,
        plugin_version,
        synthesizers: synths.as_ptr(),
        n_synthesizers: synths.len(),
        weighters: weighters.as_ptr(),
        n_weighters: weighters.len(),
    };
    // SAFETY: the manifest and everything it points at (`keep`, `synths`, `weighters`) live until
    // the end of this function, and nothing built from it outlives it.
    let loaded = match unsafe { dylib::checked_manifest(path, &mut manifest) } {
        // SAFETY: as above.
        Ok(m) => unsafe { dylib::from_manifest(path, m) },
        Err(e) => Err(e),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => return assert!(e.to_string().contains("libfuzz.so"), "{e}"),
    };
    let case = case();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (info, build) in &loaded.synthesizers {
        let Ok(s) = build(&info.defaults) else { continue };
        if let Ok(out) = s.synthesize(&case, &mut rng) {
            assert!(out.case.image.iter().all(|v| v.is_finite()));
            assert!(out.case.label.iter().all(|&l| case.convention.is_valid(l)));
        }
    }
    let (real, synthetic) = ([0.5, 0.7], [0.2, 0.9, 1.0]);
    for (info, build) in &loaded.weighters {
        let Ok(mut w) = build(&info.defaults) else { continue };
        let scores = EpochScores { epoch: 0, real: &real, synthetic: &synthetic };
        if let Ok(ws) = w.weights(&scores) {
            assert_eq!(ws.len(), synthetic.len());
            assert!(ws.iter().all(|w| w.is_finite() && *w >= 0.0));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    *TAPE.lock().unwrap_or_else(|p| p.into_inner()) = data.to_vec();
    exercise(Path::new("libfuzz.so"));
});
