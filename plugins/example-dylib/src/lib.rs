//! An example third-party plugin built as a shared library (`cdylib`), loaded with `--plugin PATH`.
//!
//! Synthesizer `tumour-intensity`: multiplies every modality inside the whole-tumour region by a smooth
//! random gain field `1 + amplitude · g(x)`, where `g ∈ [-1, 1]` is a sum of three low-frequency waves
//! whose phases come from the seed. Labels are unchanged. It is written as a plain Rust function and
//! exported with one `export_plugin!` call.

use dsma_plugin_sdk::{export_plugin, SynthInput, SynthOutput};
use serde::{Deserialize, Serialize};

/// Parameters of `tumour-intensity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TumourIntensity {
    /// Largest relative intensity change (0.15 = ±15 %).
    pub amplitude: f32,
    /// Spatial period of the gain field in mm.
    pub period_mm: f64,
    /// Panic inside the plugin (exists to demonstrate that the host survives a plugin panic).
    pub panic: bool,
    /// Write NaN into the tumour (exists to demonstrate that the host refuses non-finite output).
    pub emit_nan: bool,
}

impl Default for TumourIntensity {
    fn default() -> Self {
        TumourIntensity {
            amplitude: 0.15,
            period_mm: 20.0,
            panic: false,
            emit_nan: false,
        }
    }
}

/// SplitMix64: a tiny seeded generator, enough for three phases.
fn splitmix(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// The synthesizer function.
pub fn tumour_intensity(
    p: &TumourIntensity,
    input: &SynthInput,
    output: &mut SynthOutput,
    seed: u64,
) -> Result<(), String> {
    if p.panic {
        panic!("tumour-intensity was asked to panic");
    }
    if !(0.0..1.0).contains(&p.amplitude) {
        return Err(format!(
            "parameter `amplitude`: {} is outside [0, 1)",
            p.amplitude
        ));
    }
    let mut s = seed;
    let phase: [f64; 3] = std::array::from_fn(|_| splitmix(&mut s) * std::f64::consts::TAU);
    let k = std::f64::consts::TAU / p.period_mm.max(1e-3);
    let sp = input.spacing;
    for ((z, y, x), &l) in input.labels.indexed_iter() {
        if l == 0 {
            continue;
        }
        let pos = [x as f64 * sp[0], y as f64 * sp[1], z as f64 * sp[2]];
        let g = (0..3).map(|a| (k * pos[a] + phase[a]).sin()).sum::<f64>() / 3.0;
        let gain = if p.emit_nan {
            f32::NAN
        } else {
            1.0 + p.amplitude * g as f32
        };
        for m in 0..input.image.dim().0 {
            output.image[[m, z, y, x]] = input.image[[m, z, y, x]] * gain;
        }
    }
    Ok(())
}

export_plugin! {
    name: "example-dylib",
    version: env!("CARGO_PKG_VERSION"),
    synthesizers: [{
        name: "tumour-intensity",
        description: "smooth random intensity change inside the tumour (example shared-library plugin)",
        params: TumourIntensity,
        function: tumour_intensity
    }],
    weighters: [],
}
