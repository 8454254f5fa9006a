//! Loading shared-library plugins through the C ABI of `dsma-plugin-sdk`.
//!
//! The ABI version is the first field of the manifest and is checked before anything else is read.
//! Libraries are never unloaded (the handle is leaked), so the static data they export stays valid.

use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;

use dsma_plugin_sdk as abi;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::info::{Builder, PluginInfo, PluginKind, PluginSource};
use super::traits::{
    check_synthesized, check_weights, EpochScores, SampleWeighter, Synthesized, Synthesizer,
};
use dsma_data::error::{CoreError, Result};
use dsma_data::volume::Case;

/// Size of the host buffer a plugin writes error text into.
const ERROR_CAPACITY: usize = 4096;

/// What one library provides.
pub struct Loaded {
    /// Synthesizers with their builders.
    pub synthesizers: Vec<(PluginInfo, Builder<dyn Synthesizer>)>,
    /// Weighters with their builders.
    pub weighters: Vec<(PluginInfo, Builder<dyn SampleWeighter>)>,
}

fn load_err(path: &Path, problem: impl Into<String>) -> CoreError {
    CoreError::PluginLoad {
        path: path.to_path_buf(),
        problem: problem.into(),
        source: None,
    }
}

/// Opens `path` and returns its manifest once its ABI version is ours; the library is never
/// unloaded, so the manifest lives for the rest of the process.
fn open_manifest(path: &Path) -> Result<&'static abi::Manifest> {
    if !path.is_file() {
        return Err(load_err(path, "no such file"));
    }
    // SAFETY: loading a library runs its initialisers; a dsma plugin is trusted code the user named.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| CoreError::PluginLoad {
        path: path.to_path_buf(),
        problem: "cannot load as a shared library".into(),
        source: Some(e.into()),
    })?;
    // SAFETY: the symbol's type is fixed by the ABI; a library without it is refused.
    let manifest_fn: libloading::Symbol<unsafe extern "C" fn() -> *const abi::Manifest> =
        unsafe { lib.get(abi::MANIFEST_SYMBOL) }.map_err(|_| {
            load_err(
                path,
                "not a dsma plugin: it exports no `dsma_plugin_manifest` symbol",
            )
        })?;
    // SAFETY: the ABI guarantees a pointer to a manifest whose first field is a u32 ABI version.
    let manifest_ptr = unsafe { manifest_fn() };
    // SAFETY: the library is never unloaded (forgotten below), so what the pointer reaches stays.
    let manifest = unsafe { checked_manifest(path, manifest_ptr) }?;
    // Never unloaded: the manifest and the entries point into the library.
    std::mem::forget(lib);
    Ok(manifest)
}

/// The manifest at `manifest_ptr` once it is non-null and of our ABI version.
///
/// # Safety
/// A non-null `manifest_ptr` must point at a `u32` ABI version, and, when that version is ours, at
/// a whole [`abi::Manifest`] that lives for `'a`.
pub unsafe fn checked_manifest<'a>(
    path: &Path,
    manifest_ptr: *const abi::Manifest,
) -> Result<&'a abi::Manifest> {
    if manifest_ptr.is_null() {
        return Err(load_err(
            path,
            "dsma_plugin_manifest returned a null manifest",
        ));
    }
    // SAFETY: non-null, and every ABI version starts the manifest with the u32 version.
    let abi_version = unsafe { *(manifest_ptr as *const u32) };
    if abi_version != abi::ABI_VERSION {
        return Err(load_err(
            path,
            format!(
                "plugin ABI version {abi_version} is not supported by this dsma (ABI version {}); rebuild the plugin against dsma-plugin-sdk {}",
                abi::ABI_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    // SAFETY: same ABI version, so the layout is ours, and the caller vouches for its lifetime.
    Ok(unsafe { &*manifest_ptr })
}

/// Opens `path`, checks its ABI version and reads its manifest.
pub fn load(path: &Path) -> Result<Loaded> {
    let manifest = open_manifest(path)?;
    // SAFETY: the manifest comes from the never-unloaded library, which exports it as the ABI says.
    unsafe { from_manifest(path, manifest) }
}

/// The plugins a manifest exports (`path` names the library in errors): names must be non-empty
/// and free of whitespace, descriptions and names UTF-8, defaults a JSON object.
///
/// # Safety
/// The manifest's strings and entry arrays must point at the lengths it declares, and its
/// function pointers must follow the ABI, for the rest of the process.
pub unsafe fn from_manifest(path: &Path, manifest: &abi::Manifest) -> Result<Loaded> {
    // SAFETY: (this and the three reads below) the manifest's `Str`s and entry arrays point at the
    // lengths it declares for the rest of the process, as the caller guarantees.
    let plugin_name = unsafe { manifest.plugin_name.to_string_lossy() };
    // SAFETY: as above.
    let plugin_version = unsafe { manifest.plugin_version.to_string_lossy() };
    // SAFETY: as above.
    let synth_entries = unsafe { slice(manifest.synthesizers, manifest.n_synthesizers) };
    // SAFETY: as above.
    let weight_entries = unsafe { slice(manifest.weighters, manifest.n_weighters) };

    let path_buf = path.to_path_buf();
    let info = |name: abi::Str, description: abi::Str, defaults: abi::Str, kind: PluginKind| {
        // SAFETY: entry strings point at their declared lengths, as the caller guarantees.
        let texts = unsafe { [name, description, defaults].map(|s| s.to_string_lossy()) };
        entry_info(path, texts, kind, &plugin_name, &plugin_version)
    };
    let synthesizers = synth_entries
        .iter()
        .map(|e| {
            let i = info(
                e.name,
                e.description,
                e.defaults_json,
                PluginKind::Synthesizer,
            )?;
            let entry = *e;
            let (name, lib_path) = (i.name.clone(), path_buf.clone());
            let build: Builder<dyn Synthesizer> = Arc::new(move |params| {
                let state = create(entry.create, entry.user, params, &name, &lib_path)?;
                Ok(Box::new(DylibSynthesizer {
                    entry,
                    state,
                    name: name.clone(),
                }) as Box<dyn Synthesizer>)
            });
            Ok((i, build))
        })
        .collect::<Result<_>>()?;
    let weighters = weight_entries
        .iter()
        .map(|e| {
            let i = info(e.name, e.description, e.defaults_json, PluginKind::Weighter)?;
            let entry = *e;
            let (name, lib_path) = (i.name.clone(), path_buf.clone());
            let build: Builder<dyn SampleWeighter> = Arc::new(move |params| {
                let state = create(entry.create, entry.user, params, &name, &lib_path)?;
                Ok(Box::new(DylibWeighter {
                    entry,
                    state,
                    name: name.clone(),
                }) as Box<dyn SampleWeighter>)
            });
            Ok((i, build))
        })
        .collect::<Result<_>>()?;
    Ok(Loaded {
        synthesizers,
        weighters,
    })
}

/// The description of one exported entry from its `[name, description, defaults_json]` texts.
fn entry_info(
    path: &Path,
    [name, description, defaults]: [String; 3],
    kind: PluginKind,
    plugin_name: &str,
    plugin_version: &str,
) -> Result<PluginInfo> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(load_err(
            path,
            format!(
                "exports a {} named {name:?}; expected a non-empty name without spaces or control characters",
                kind.name()
            ),
        ));
    }
    let defaults: serde_json::Value = match defaults.trim() {
        "" => serde_json::Value::Object(Default::default()),
        text => serde_json::from_str(text).map_err(|e| {
            load_err(
                path,
                format!("the defaults of `{name}` are not JSON ({e}): {text:.80}"),
            )
        })?,
    };
    if !defaults.is_object() {
        return Err(load_err(
            path,
            format!("the defaults of `{name}` are {defaults:.80}; expected a JSON object"),
        ));
    }
    Ok(PluginInfo {
        name,
        kind,
        version: plugin_version.to_string(),
        description: format!("{description} (library `{plugin_name}`)"),
        source: PluginSource::Library(path.to_path_buf()),
        defaults,
        params: vec![],
    })
}

unsafe fn slice<'a, T>(ptr: *const T, n: usize) -> &'a [T] {
    if ptr.is_null() || n == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, n)
    }
}

/// Calls a plugin function with an error buffer; maps its return code to a `CoreError`.
fn call(plugin: &str, f: impl FnOnce(*mut abi::ErrorBuf) -> i32) -> Result<()> {
    let mut text = vec![0u8; ERROR_CAPACITY];
    let mut buf = abi::ErrorBuf {
        ptr: text.as_mut_ptr(),
        cap: text.len(),
        len: 0,
    };
    let code = f(&mut buf);
    call_outcome(plugin, code, &text, buf.len)
}

/// Decodes a plugin call's return code and the error text it wrote into `buffer` (`written` is
/// the length the plugin reported, trusted only up to the buffer's size).
pub fn call_outcome(plugin: &str, code: i32, buffer: &[u8], written: usize) -> Result<()> {
    let msg = String::from_utf8_lossy(&buffer[..written.min(buffer.len())]);
    let problem = match code {
        abi::OK => return Ok(()),
        abi::PARAMS_ERROR => {
            return Err(CoreError::PluginParams {
                plugin: plugin.to_string(),
                problem: msg.into_owned(),
            })
        }
        // The SDK's own panic text already says "plugin panicked".
        abi::ERROR | abi::PANIC => msg.into_owned(),
        other => format!("returned status {other}, which ABI version {} does not define (0 ok, 1 error, 2 panic, 3 bad parameters); its message: {msg}", abi::ABI_VERSION),
    };
    Err(CoreError::Plugin {
        plugin: plugin.to_string(),
        problem,
    })
}

/// Owned plugin state pointer.
struct State(*mut c_void);
// SAFETY: plugin states are created per instance and only read through `&self` calls, as the ABI requires.
unsafe impl Send for State {}
// SAFETY: as above: concurrent calls only read the state.
unsafe impl Sync for State {}

fn create(
    f: abi::CreateFn,
    user: *const c_void,
    params: &serde_json::Value,
    name: &str,
    lib: &Path,
) -> Result<State> {
    let json = if params.is_null() {
        "{}".to_string()
    } else {
        params.to_string()
    };
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: `f` and `user` come from the same manifest entry; `json` outlives the call and
    // `out`/`err` are live locals.
    call(name, |err| unsafe {
        f(user, abi::Str::borrow(&json), &mut out, err)
    })?;
    if out.is_null() {
        return Err(load_err(lib, format!("`{name}` created no state")));
    }
    Ok(State(out))
}

struct DylibSynthesizer {
    entry: abi::SynthesizerEntry,
    state: State,
    name: String,
}

impl Drop for DylibSynthesizer {
    fn drop(&mut self) {
        // SAFETY: the state was made by this entry's `create` and is destroyed exactly once.
        unsafe { (self.entry.destroy)(self.state.0) }
    }
}

impl Synthesizer for DylibSynthesizer {
    fn synthesize(&self, case: &Case, rng: &mut ChaCha8Rng) -> Result<Synthesized> {
        let seed = rng.next_u64();
        // The input is only read by the plugin (the SDK builds read-only views from it), so it is
        // passed without a copy; the output is the one copy, pre-filled with the input.
        let input = case.image.as_standard_layout();
        let input_labels = case.label.as_standard_layout();
        let mut out = Case {
            id: case.id.clone(),
            image: input.to_owned(),
            label: input_labels.to_owned(),
            grid: case.grid.clone(),
            convention: case.convention,
        };
        let et = case.convention.enhancing();
        let view = |data: *mut f32| abi::ImageView {
            data,
            dims: case.grid.dims,
            modalities: case.image.dim().0,
            spacing: case.grid.spacing,
        };
        let labels = |data: *mut u8| abi::LabelView {
            data,
            dims: case.grid.dims,
            enhancing_label: et,
        };
        let (ip, lp) = (input.as_ptr() as *mut f32, input_labels.as_ptr() as *mut u8);
        let (op, olp) = (out.image.as_mut_ptr(), out.label.as_mut_ptr());
        // SAFETY: the views describe `input` and `out`, which outlive the call; the state belongs
        // to this entry.
        call(&self.name, |err| unsafe {
            (self.entry.synthesize)(
                self.state.0,
                view(ip),
                labels(lp),
                seed,
                view(op),
                labels(olp),
                err,
            )
        })?;
        check_synthesized(&self.name, case, &out)?;
        Ok(Synthesized {
            case: out,
            unchanged_reason: None,
        })
    }
}

struct DylibWeighter {
    entry: abi::WeighterEntry,
    state: State,
    name: String,
}

impl Drop for DylibWeighter {
    fn drop(&mut self) {
        // SAFETY: the state was made by this entry's `create` and is destroyed exactly once.
        unsafe { (self.entry.destroy)(self.state.0) }
    }
}

impl SampleWeighter for DylibWeighter {
    fn weights(&mut self, s: &EpochScores<'_>) -> Result<Vec<f64>> {
        let mut out = vec![0f64; s.synthetic.len()];
        // SAFETY: the slices borrow `s`'s scores and `out` has one slot per synthetic score, all
        // alive for the call; the state belongs to this entry.
        call(&self.name, |err| unsafe {
            (self.entry.weights)(
                self.state.0,
                s.epoch as u64,
                abi::F64Slice::borrow(s.real),
                abi::F64Slice::borrow(s.synthetic),
                out.as_mut_ptr(),
                err,
            )
        })?;
        check_weights(&self.name, &out, s.synthetic.len())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(texts: [&str; 3]) -> Result<PluginInfo> {
        entry_info(
            Path::new("libx.so"),
            texts.map(String::from),
            PluginKind::Weighter,
            "x",
            "1.0",
        )
    }

    #[test]
    fn a_reported_error_length_past_the_buffer_is_clamped() {
        let err = call_outcome("p", abi::ERROR, b"bad thing", usize::MAX).unwrap_err();
        assert!(err.to_string().contains("bad thing"), "{err}");
        let err = call_outcome("p", abi::ERROR, b"bad thing", 3).unwrap_err();
        assert!(err.to_string().contains("bad") && !err.to_string().contains("thing"));
    }

    #[test]
    fn status_codes_map_to_their_errors() {
        assert!(call_outcome("p", abi::OK, b"ignored", 7).is_ok());
        assert!(matches!(
            call_outcome("p", abi::PARAMS_ERROR, b"beta < 0", 8),
            Err(CoreError::PluginParams { .. })
        ));
        let err = call_outcome("p", 77, &[0xff, b'x'], 2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("status 77") && msg.contains("x"), "{msg}");
    }

    #[test]
    fn entry_names_and_defaults_are_checked() {
        assert_eq!(
            info(["w", "d", ""]).unwrap().defaults,
            serde_json::json!({})
        );
        assert_eq!(
            info(["w", "d", r#"{"a": 1}"#]).unwrap().defaults,
            serde_json::json!({"a": 1})
        );
        for (texts, needle) in [
            (["", "d", "{}"], "named \"\""),
            (["two words", "d", "{}"], "two words"),
            (["w", "d", "{"], "not JSON"),
            (["w", "d", "[1]"], "expected a JSON object"),
        ] {
            let msg = info(texts).unwrap_err().to_string();
            assert!(msg.contains(needle) && msg.contains("libx.so"), "{msg}");
        }
    }
}
