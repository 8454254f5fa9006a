//! The C ABI between dsma and shared-library plugins, and the Rust side of it for plugin authors.
//!
//! No Rust type crosses the boundary: the library exports one symbol, [`MANIFEST_SYMBOL`], a function
//! returning a pointer to a `repr(C)` [`Manifest`] whose **first field is always the ABI version**, so a
//! host can refuse an incompatible library before reading anything else. Volumes travel as host-owned
//! `repr(C)` views, parameters as JSON text, errors as text written into a host buffer. Panics are caught
//! inside the library. Libraries are never unloaded, so the static strings they hand out stay valid.
//!
//! A plugin author writes a normal function and one [`export_plugin!`] call:
//!
//! ```no_run
//! use dsma_plugin_sdk::{SynthInput, SynthOutput};
//!
//! #[derive(serde::Deserialize, serde::Serialize, Default)]
//! #[serde(deny_unknown_fields)]
//! struct Params { gain: f32 }
//!
//! fn brighten(p: &Params, input: &SynthInput, output: &mut SynthOutput, seed: u64) -> Result<(), String> {
//!     output.image.iter_mut().for_each(|v| *v *= p.gain);
//!     Ok(())
//! }
//!
//! dsma_plugin_sdk::export_plugin! {
//!     name: "my-plugin", version: "0.1.0",
//!     synthesizers: [{ name: "brighten", description: "scales every intensity", params: Params, function: brighten }],
//!     weighters: [],
//! }
//! ```

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ndarray::{ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the binary interface described in this crate; bumped on any layout change.
pub const ABI_VERSION: u32 = 2;

/// Version of the host-side API semantics (what the host does with the results); informative.
pub const CORE_API_VERSION: u32 = 1;

/// Name of the exported function `extern "C" fn() -> *const Manifest`.
pub const MANIFEST_SYMBOL: &[u8] = b"dsma_plugin_manifest";

/// Return code: success.
pub const OK: i32 = 0;
/// Return code: the plugin reported an error (text in the error buffer).
pub const ERROR: i32 = 1;
/// Return code: the plugin panicked (message in the error buffer).
pub const PANIC: i32 = 2;
/// Return code: the parameters were rejected (the text names the field and what was expected).
pub const PARAMS_ERROR: i32 = 3;

/// Why a shim failed: the kind becomes the return code ([`PARAMS_ERROR`] or [`ERROR`]), the text
/// goes into the error buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The parameters were rejected.
    Params(String),
    /// Anything else the plugin reports.
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Other(s)
    }
}

/// A borrowed run of `f64` values: pointer and length.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct F64Slice {
    /// First value (may dangle when `len` is 0).
    pub ptr: *const f64,
    /// Number of values.
    pub len: usize,
}

impl F64Slice {
    /// Borrows `s` (valid while `s` lives).
    pub fn borrow(s: &[f64]) -> Self {
        F64Slice {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }
}

/// Borrowed UTF-8 text: pointer and byte length.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Str {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// Borrows a static string.
    pub const fn from_static(s: &'static str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Borrows a string for the duration of a call.
    pub fn borrow(s: &str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The text, lossily decoded.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes for the returned lifetime.
    pub unsafe fn to_string_lossy(&self) -> String {
        if self.ptr.is_null() {
            return String::new();
        }
        String::from_utf8_lossy(std::slice::from_raw_parts(self.ptr, self.len)).into_owned()
    }
}

/// A host-owned buffer the plugin writes error text into.
#[repr(C)]
#[derive(Debug)]
pub struct ErrorBuf {
    /// Start of the buffer.
    pub ptr: *mut u8,
    /// Capacity in bytes.
    pub cap: usize,
    /// Bytes written (set by the plugin).
    pub len: usize,
}

impl ErrorBuf {
    /// Writes `msg`, truncated to the capacity at a character boundary.
    ///
    /// # Safety
    /// `ptr` must point at `cap` writable bytes.
    pub unsafe fn write(&mut self, msg: &str) {
        let mut n = msg.len().min(self.cap);
        while n > 0 && !msg.is_char_boundary(n) {
            n -= 1;
        }
        std::ptr::copy_nonoverlapping(msg.as_ptr(), self.ptr, n);
        self.len = n;
    }
}

/// A multi-modal image: `modalities × z × y × x` f32 values, C order.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ImageView {
    /// First voxel.
    pub data: *mut f32,
    /// Voxel counts in NIfTI order (x, y, z).
    pub dims: [usize; 3],
    /// Number of modalities (4 for BraTS: FLAIR, T1, T1ce, T2).
    pub modalities: usize,
    /// Voxel size in mm (x, y, z).
    pub spacing: [f64; 3],
}

/// A label map: `z × y × x` u8 values, C order.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LabelView {
    /// First voxel.
    pub data: *mut u8,
    /// Voxel counts (x, y, z).
    pub dims: [usize; 3],
    /// Label of the enhancing tumour in this dataset's convention (4 for BraTS 2019/2020, 3 for 2021+).
    pub enhancing_label: u8,
}

/// Creates plugin state from JSON parameters; writes the state pointer to `out`.
pub type CreateFn = unsafe extern "C" fn(
    user: *const c_void,
    params_json: Str,
    out: *mut *mut c_void,
    err: *mut ErrorBuf,
) -> i32;
/// Frees plugin state.
pub type DestroyFn = unsafe extern "C" fn(state: *mut c_void);
/// Makes one derived case: reads `input`/`input_labels`, writes `output`/`output_labels` (pre-filled
/// by the host with a copy of the input, same shapes).
pub type SynthesizeFn = unsafe extern "C" fn(
    state: *const c_void,
    input: ImageView,
    input_labels: LabelView,
    seed: u64,
    output: ImageView,
    output_labels: LabelView,
    err: *mut ErrorBuf,
) -> i32;
/// Computes one weight per synthetic score into `out` (length `synthetic.len`).
pub type WeightsFn = unsafe extern "C" fn(
    state: *const c_void,
    epoch: u64,
    real: F64Slice,
    synthetic: F64Slice,
    out: *mut f64,
    err: *mut ErrorBuf,
) -> i32;

/// One synthesizer exported by a library.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SynthesizerEntry {
    /// Registered name.
    pub name: Str,
    /// One-line description.
    pub description: Str,
    /// JSON object of the default parameters.
    pub defaults_json: Str,
    /// Opaque value passed back to `create`.
    pub user: *const c_void,
    /// Constructor.
    pub create: CreateFn,
    /// The synthesis call.
    pub synthesize: SynthesizeFn,
    /// Destructor.
    pub destroy: DestroyFn,
}

/// One sample weighter exported by a library.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WeighterEntry {
    /// Registered name.
    pub name: Str,
    /// One-line description.
    pub description: Str,
    /// JSON object of the default parameters.
    pub defaults_json: Str,
    /// Opaque value passed back to `create`.
    pub user: *const c_void,
    /// Constructor.
    pub create: CreateFn,
    /// The weighting call.
    pub weights: WeightsFn,
    /// Destructor.
    pub destroy: DestroyFn,
}

/// What a library exports. `abi_version` stays the first field in every ABI version.
#[repr(C)]
#[derive(Debug)]
pub struct Manifest {
    /// Must equal the host's [`ABI_VERSION`]; checked before any other field is read.
    pub abi_version: u32,
    /// [`CORE_API_VERSION`] the plugin was built against.
    pub core_api_version: u32,
    /// Library name.
    pub plugin_name: Str,
    /// Library version.
    pub plugin_version: Str,
    /// Synthesizers.
    pub synthesizers: *const SynthesizerEntry,
    /// Number of synthesizers.
    pub n_synthesizers: usize,
    /// Weighters.
    pub weighters: *const WeighterEntry,
    /// Number of weighters.
    pub n_weighters: usize,
}

// SAFETY: the manifest only holds pointers to immutable statics of the library.
unsafe impl Sync for Manifest {}
// SAFETY: as above.
unsafe impl Send for Manifest {}
// SAFETY: an entry holds function pointers and pointers to immutable statics.
unsafe impl Sync for SynthesizerEntry {}
// SAFETY: as above.
unsafe impl Send for SynthesizerEntry {}
// SAFETY: as above.
unsafe impl Sync for WeighterEntry {}
// SAFETY: as above.
unsafe impl Send for WeighterEntry {}

/// Read-only input of a synthesizer, as ndarray views.
pub struct SynthInput<'a> {
    /// `modalities × z × y × x`.
    pub image: ArrayView4<'a, f32>,
    /// `z × y × x`.
    pub labels: ArrayView3<'a, u8>,
    /// Voxel size in mm (x, y, z).
    pub spacing: [f64; 3],
    /// Enhancing-tumour label of the dataset's convention.
    pub enhancing_label: u8,
}

/// Output of a synthesizer, pre-filled with a copy of the input.
pub struct SynthOutput<'a> {
    /// `modalities × z × y × x`.
    pub image: ArrayViewMut4<'a, f32>,
    /// `z × y × x`.
    pub labels: ArrayViewMut3<'a, u8>,
}

/// The Rust signature of a synthesizer function.
pub type SynthFunction<P> =
    fn(&P, &SynthInput<'_>, &mut SynthOutput<'_>, u64) -> Result<(), String>;
/// The Rust signature of a weighter function: (params, epoch, real scores, synthetic scores) → weights.
pub type WeightFunction<P> = fn(&P, u64, &[f64], &[f64]) -> Result<Vec<f64>, String>;

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("plugin panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("plugin panicked: {s}")
    } else {
        "plugin panicked".to_string()
    }
}

/// Runs `f`, turning `Err` into [`PARAMS_ERROR`] or [`ERROR`] (by its [`Failure`] kind) and a
/// panic into [`PANIC`], with text in `err`.
///
/// # Safety
/// `err` must be a valid [`ErrorBuf`].
pub unsafe fn guarded<E: Into<Failure>>(
    err: *mut ErrorBuf,
    f: impl FnOnce() -> Result<(), E>,
) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => OK,
        Ok(Err(failure)) => {
            let (code, msg) = match failure.into() {
                Failure::Params(m) => (PARAMS_ERROR, m),
                Failure::Other(m) => (ERROR, m),
            };
            if let Some(e) = err.as_mut() {
                e.write(&msg);
            }
            code
        }
        Err(p) => {
            if let Some(e) = err.as_mut() {
                e.write(&panic_text(p));
            }
            PANIC
        }
    }
}

/// The values of `s` (empty when `len` is 0, whatever the pointer).
///
/// # Safety
/// When `len > 0`, `ptr` must point to `len` initialised values that outlive the borrow.
unsafe fn slice_or_empty<'a>(s: F64Slice) -> &'a [f64] {
    if s.len == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `len` readable values at `ptr`.
        unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
    }
}

/// Parses JSON parameters into `P`, naming the offending field on error.
pub fn parse_params<P: DeserializeOwned>(json: &str) -> Result<P, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("parameters: {}", e.inner())
        } else {
            format!("parameter `{path}`: {}", e.inner())
        }
    })
}

/// Default parameters of `P` as JSON text (leaked once: libraries are never unloaded).
pub fn defaults_json<P: Serialize + Default>() -> &'static str {
    let s = serde_json::to_string(&P::default()).unwrap_or_else(|_| "{}".to_string());
    Box::leak(s.into_boxed_str())
}

struct SynthState<P> {
    params: P,
    function: SynthFunction<P>,
}

/// `create` shim of a synthesizer; `user` is its [`SynthFunction`].
///
/// # Safety
/// Called by the host through the manifest with valid pointers.
pub unsafe extern "C" fn synth_create<P: DeserializeOwned>(
    user: *const c_void,
    params_json: Str,
    out: *mut *mut c_void,
    err: *mut ErrorBuf,
) -> i32 {
    guarded(err, || {
        // SAFETY: `user` was produced from a `SynthFunction<P>` by `synthesizer_entry::<P>`.
        let function: SynthFunction<P> =
            std::mem::transmute::<*const c_void, SynthFunction<P>>(user);
        let params = parse_params::<P>(&params_json.to_string_lossy()).map_err(Failure::Params)?;
        *out = Box::into_raw(Box::new(SynthState { params, function })) as *mut c_void;
        Ok::<(), Failure>(())
    })
}

/// `destroy` shim of a synthesizer.
///
/// # Safety
/// `state` must come from [`synth_create`] with the same `P`.
pub unsafe extern "C" fn synth_destroy<P>(state: *mut c_void) {
    if !state.is_null() {
        drop(Box::from_raw(state as *mut SynthState<P>));
    }
}

/// `synthesize` shim.
///
/// # Safety
/// Views must describe valid host buffers; `state` must come from [`synth_create`] with the same `P`.
pub unsafe extern "C" fn synth_run<P>(
    state: *const c_void,
    input: ImageView,
    input_labels: LabelView,
    seed: u64,
    output: ImageView,
    output_labels: LabelView,
    err: *mut ErrorBuf,
) -> i32 {
    guarded(err, || {
        let st = &*(state as *const SynthState<P>);
        let [x, y, z] = input.dims;
        let shape4 = (input.modalities, z, y, x);
        let inp = SynthInput {
            image: ArrayView4::from_shape_ptr(shape4, input.data as *const f32),
            labels: ArrayView3::from_shape_ptr((z, y, x), input_labels.data as *const u8),
            spacing: input.spacing,
            enhancing_label: input_labels.enhancing_label,
        };
        let mut out = SynthOutput {
            image: ArrayViewMut4::from_shape_ptr(shape4, output.data),
            labels: ArrayViewMut3::from_shape_ptr((z, y, x), output_labels.data),
        };
        (st.function)(&st.params, &inp, &mut out, seed)
    })
}

struct WeightState<P> {
    params: P,
    function: WeightFunction<P>,
}

/// `create` shim of a weighter; `user` is its [`WeightFunction`].
///
/// # Safety
/// Called by the host through the manifest with valid pointers.
pub unsafe extern "C" fn weight_create<P: DeserializeOwned>(
    user: *const c_void,
    params_json: Str,
    out: *mut *mut c_void,
    err: *mut ErrorBuf,
) -> i32 {
    guarded(err, || {
        // SAFETY: `user` was produced from a `WeightFunction<P>` by `weighter_entry::<P>`.
        let function: WeightFunction<P> =
            std::mem::transmute::<*const c_void, WeightFunction<P>>(user);
        let params = parse_params::<P>(&params_json.to_string_lossy()).map_err(Failure::Params)?;
        *out = Box::into_raw(Box::new(WeightState { params, function })) as *mut c_void;
        Ok::<(), Failure>(())
    })
}

/// `destroy` shim of a weighter.
///
/// # Safety
/// `state` must come from [`weight_create`] with the same `P`.
pub unsafe extern "C" fn weight_destroy<P>(state: *mut c_void) {
    if !state.is_null() {
        drop(Box::from_raw(state as *mut WeightState<P>));
    }
}

/// `weights` shim.
///
/// # Safety
/// Slices must be valid for their lengths; `state` must come from [`weight_create`] with the same `P`.
pub unsafe extern "C" fn weight_run<P>(
    state: *const c_void,
    epoch: u64,
    real: F64Slice,
    synthetic: F64Slice,
    out: *mut f64,
    err: *mut ErrorBuf,
) -> i32 {
    let n_synthetic = synthetic.len;
    guarded(err, || {
        let st = &*(state as *const WeightState<P>);
        let real = slice_or_empty(real);
        let synthetic = slice_or_empty(synthetic);
        let w = (st.function)(&st.params, epoch, real, synthetic)?;
        if w.len() != n_synthetic {
            return Err(format!(
                "returned {} weights for {} synthetic scores",
                w.len(),
                n_synthetic
            ));
        }
        std::slice::from_raw_parts_mut(out, n_synthetic).copy_from_slice(&w);
        Ok(())
    })
}

/// Builds the manifest entry of a synthesizer function.
pub fn synthesizer_entry<P: DeserializeOwned + Serialize + Default>(
    name: &'static str,
    description: &'static str,
    function: SynthFunction<P>,
) -> SynthesizerEntry {
    SynthesizerEntry {
        name: Str::from_static(name),
        description: Str::from_static(description),
        defaults_json: Str::from_static(defaults_json::<P>()),
        user: function as *const c_void,
        create: synth_create::<P>,
        synthesize: synth_run::<P>,
        destroy: synth_destroy::<P>,
    }
}

/// Builds the manifest entry of a weighter function.
pub fn weighter_entry<P: DeserializeOwned + Serialize + Default>(
    name: &'static str,
    description: &'static str,
    function: WeightFunction<P>,
) -> WeighterEntry {
    WeighterEntry {
        name: Str::from_static(name),
        description: Str::from_static(description),
        defaults_json: Str::from_static(defaults_json::<P>()),
        user: function as *const c_void,
        create: weight_create::<P>,
        weights: weight_run::<P>,
        destroy: weight_destroy::<P>,
    }
}

/// Builds a leaked manifest (libraries are never unloaded).
pub fn manifest(
    name: &'static str,
    version: &'static str,
    synthesizers: Vec<SynthesizerEntry>,
    weighters: Vec<WeighterEntry>,
) -> &'static Manifest {
    let s: &'static [SynthesizerEntry] = Box::leak(synthesizers.into_boxed_slice());
    let w: &'static [WeighterEntry] = Box::leak(weighters.into_boxed_slice());
    Box::leak(Box::new(Manifest {
        abi_version: ABI_VERSION,
        core_api_version: CORE_API_VERSION,
        plugin_name: Str::from_static(name),
        plugin_version: Str::from_static(version),
        synthesizers: s.as_ptr(),
        n_synthesizers: s.len(),
        weighters: w.as_ptr(),
        n_weighters: w.len(),
    }))
}

/// Exports a library's synthesizers and weighters through the dsma C ABI (one call per library).
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:literal, version: $version:expr,
        synthesizers: [ $( { name: $sn:literal, description: $sd:literal, params: $sp:ty, function: $sf:path } ),* $(,)? ],
        weighters: [ $( { name: $wn:literal, description: $wd:literal, params: $wp:ty, function: $wf:path } ),* $(,)? ] $(,)?
    ) => {
        /// The dsma plugin manifest of this library.
        #[no_mangle]
        pub extern "C" fn dsma_plugin_manifest() -> *const $crate::Manifest {
            static MANIFEST: ::std::sync::OnceLock<&'static $crate::Manifest> = ::std::sync::OnceLock::new();
            *MANIFEST.get_or_init(|| {
                $crate::manifest(
                    $name,
                    $version,
                    vec![ $( $crate::synthesizer_entry::<$sp>($sn, $sd, $sf) ),* ],
                    vec![ $( $crate::weighter_entry::<$wp>($wn, $wd, $wf) ),* ],
                )
            })
        }
    };
}
