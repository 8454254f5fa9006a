//! `dsma synth --case CASE_DIR --out DIR --seed S [--set key=value ...] [--n N] [--figure out.png]`.

use std::path::PathBuf;
use std::process::ExitCode;

use dsma_core::brats::load_case;
use dsma_core::phantom::write_case;
use dsma_core::plugin::Registry;
use dsma_core::seed::derive_seed;
use dsma_core::slice_figure::{axial, render, Overlay, Panel};
use dsma_core::{Case, LabelConvention, Modality};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::set_values;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A case folder in the BraTS layout.
    #[arg(long = "case")]
    case_dir: PathBuf,
    /// Output folder; derived case `i` goes to `<out>/<case>_synth<i>/`.
    #[arg(long)]
    out: PathBuf,
    /// Seed; derived case `i` uses a seed derived from it.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of derived cases.
    #[arg(long, default_value_t = 1)]
    n: usize,
    /// Synthesizer plugin.
    #[arg(long, default_value = "dtss")]
    synthesizer: String,
    /// Synthesizer parameter, `key=value` with a YAML value (repeatable), e.g. `monomer_radius=[3,6]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Label convention of the case.
    #[arg(long, default_value = "brats2019", value_parser = |s: &str| LabelConvention::parse(s).map_err(|e| e.to_string()))]
    labels: LabelConvention,
    /// Also draw each modality real vs synthetic on the slice through the biggest change (Fig. 3 style).
    #[arg(long)]
    figure: Option<PathBuf>,
}

pub fn run(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let params = set_values(&args.set)?;
    let synth = registry.synthesizer(&args.synthesizer, &params)?;
    let case = load_case(&args.case_dir, args.labels)?;
    let mut first: Option<Case> = None;
    for i in 0..args.n {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(args.seed, i as u64));
        let result = synth.synthesize(&case, &mut rng)?;
        if let Some(reason) = &result.unchanged_reason {
            eprintln!(
                "note: {} left {} unchanged: {reason}",
                args.synthesizer, case.id
            );
        }
        let mut derived = result.case;
        derived.id = format!("{}_synth{i}", case.id);
        let dir = write_case(&args.out, &derived)?;
        println!("wrote {}", dir.display());
        if first.is_none() {
            first = Some(derived);
        }
    }
    if let (Some(path), Some(syn)) = (args.figure, first) {
        // The axial slice where the synthetic case differs most from the real one.
        let z = (0..case.label.dim().0)
            .max_by(|&a, &b| {
                let diff = |z: usize| -> f64 {
                    let r = case.image.index_axis(ndarray::Axis(1), z);
                    let s = syn.image.index_axis(ndarray::Axis(1), z);
                    r.iter()
                        .zip(s.iter())
                        .map(|(a, b)| (a - b).abs() as f64)
                        .sum::<f64>()
                        + case
                            .label
                            .index_axis(ndarray::Axis(0), z)
                            .iter()
                            .zip(syn.label.index_axis(ndarray::Axis(0), z).iter())
                            .filter(|(a, b)| a != b)
                            .count() as f64
                };
                diff(a).total_cmp(&diff(b))
            })
            .unwrap_or(0);
        let panel = |c: &Case, m: Modality, which: &str| Panel {
            title: format!("{} {which}", m.display()),
            slice: axial(c.modality(m), z),
            labels: Some(axial(c.label.view(), z)),
            overlay: Overlay::Contour,
        };
        let mut panels: Vec<Panel> = Modality::ALL
            .iter()
            .map(|&m| panel(&case, m, "real"))
            .collect();
        panels.extend(Modality::ALL.iter().map(|&m| panel(&syn, m, "synthetic")));
        let scale = (256 / case.grid.dims[0].max(case.grid.dims[1]).max(1)).clamp(1, 8) as u32;
        render(&path, &panels, 4, scale, case.convention)?;
        println!("figure (axial slice z={z}) written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
