//! `dsma synth --case CASE_DIR --out DIR --seed S [--set key=value ...] [--n N] [--figure out.png]`
//! for synthesizers that derive cases from a real one, and
//! `dsma synth --synthesizer NAME (--fit-on DATASET_DIR | --fitted GENERATOR_DIR) [--teacher RUN_DIR]`
//! for generative comparators (trainable synthesizers).

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;

use dsma_data::brats::load_case;
use dsma_data::phantom::write_case;
use dsma_data::slice_figure::{axial, most_changed_axial_slice, render, Overlay, Panel};
use dsma_data::{Case, LabelConvention, Modality};
use dsma_plugin::Registry;
use dsma_plugin::{synthesize_seeded, FitProgress, PluginKind};
use dsma_train::generate::{generate, GenerateRequest};

use super::args::set_values;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A case folder in the BraTS layout (synthesizers that derive cases from a real one).
    #[arg(long = "case")]
    case_dir: Option<PathBuf>,
    /// Trainable synthesizers: every case of this dataset folder (BraTS layout) to fit on (the fit
    /// goes to `<out>/generator/`, or `--fitted`, and resumes there) and, for conditional samplers
    /// (diffusion-wu), to condition on.
    #[arg(long, value_name = "DATASET_DIR")]
    fit_on: Option<PathBuf>,
    /// Trainable synthesizers: a fit folder, e.g. `runs/cache/generators/hagan-<hash>/` (with the
    /// parameters it was fitted with).
    #[arg(long, value_name = "GENERATOR_DIR")]
    fitted: Option<PathBuf>,
    /// Trainable synthesizers: label the samples with the EMA teacher of this run folder
    /// (`runs/<experiment>/runs/<dataset>/<row>/rep-0`); without it, only images are written.
    #[arg(long, value_name = "RUN_DIR")]
    teacher: Option<PathBuf>,
    /// Trainable synthesizers: size x,y,z of the samples (default: the teacher's patch, else 128³).
    #[arg(long, value_parser = super::args::parse_triple::<usize>)]
    size: Option<[usize; 3]>,
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
    if matches!(
        registry.describe(&args.synthesizer).map(|i| i.kind),
        Ok(PluginKind::TrainableSynthesizer)
    ) {
        return generative(args, registry, &params);
    }
    for (given, flag) in [
        (args.fit_on.is_some(), "--fit-on"),
        (args.fitted.is_some(), "--fitted"),
        (args.teacher.is_some(), "--teacher"),
        (args.size.is_some(), "--size"),
    ] {
        if given {
            anyhow::bail!(
                "{flag} is for trainable synthesizers; `{}` derives cases from --case",
                args.synthesizer
            );
        }
    }
    let Some(case_dir) = &args.case_dir else {
        anyhow::bail!(
            "`{}` derives cases from a real one: give --case CASE_DIR",
            args.synthesizer
        );
    };
    let synth = registry.synthesizer(&args.synthesizer, &params)?;
    let case = load_case(case_dir, args.labels)?;
    let mut first: Option<Case> = None;
    for i in 0..args.n {
        let result = synthesize_seeded(synth.as_ref(), Cow::Borrowed(&case), args.seed, i)?;
        if let Some(reason) = &result.unchanged_reason {
            eprintln!(
                "note: {} left {} unchanged: {reason}",
                args.synthesizer, case.id
            );
        }
        let derived = result.case;
        let dir = write_case(&args.out, &derived)?;
        println!("wrote {}", dir.display());
        if first.is_none() {
            first = Some(derived);
        }
    }
    if let (Some(path), Some(syn)) = (args.figure, first) {
        let z = draw_comparison(&path, &case, &syn)?;
        println!("figure (axial slice z={z}) written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Each modality of `real` beside `synthetic` (contours of their labels) on the axial slice where
/// they differ most (Fig. 3 style); returns that slice.
fn draw_comparison(path: &std::path::Path, real: &Case, synthetic: &Case) -> anyhow::Result<usize> {
    let z = most_changed_axial_slice(real, synthetic);
    let panel = |c: &Case, m: Modality, which: &str| Panel {
        title: format!("{} {which}", m.display()),
        slice: axial(c.modality(m), z),
        labels: Some(axial(c.label.view(), z)),
        overlay: Overlay::Contour,
    };
    let mut panels: Vec<Panel> = Modality::ALL
        .iter()
        .map(|&m| panel(real, m, "real"))
        .collect();
    panels.extend(
        Modality::ALL
            .iter()
            .map(|&m| panel(synthetic, m, "synthetic")),
    );
    let scale = (256 / real.grid.dims[0].max(real.grid.dims[1]).max(1)).clamp(1, 8) as u32;
    render(path, &panels, 4, scale, real.convention)?;
    Ok(z)
}

/// `dsma synth` for a trainable synthesizer (dsma_train::generate): fit (or load a fit), sample,
/// label with a teacher if one is given, write NIfTI.
fn generative(
    args: Args,
    registry: &Registry,
    params: &serde_json::Value,
) -> anyhow::Result<ExitCode> {
    if args.case_dir.is_some() {
        anyhow::bail!("`{}` is a generative comparator: give --fit-on DATASET_DIR or --fitted GENERATOR_DIR, not --case", args.synthesizer);
    }
    let request = GenerateRequest {
        synthesizer: args.synthesizer.clone(),
        params: params.clone(),
        fit_on: args.fit_on,
        fitted: args.fitted,
        teacher: args.teacher.clone(),
        size: args.size,
        out: args.out,
        seed: args.seed,
        n: args.n,
        labels: args.labels,
    };
    let mut progress = |p: FitProgress| {
        if p.step == p.total || p.step.is_multiple_of((p.total / 20).max(1)) {
            eprintln!("fit: step {}/{}", p.step, p.total);
        }
    };
    for case in generate(&request, registry, &mut progress)? {
        match &args.teacher {
            Some(run) if case.labelled => println!(
                "wrote {} (labels: the EMA teacher of {})",
                case.dir.display(),
                run.display()
            ),
            _ => println!(
                "wrote {} (images only: no --teacher, so no labels)",
                case.dir.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
