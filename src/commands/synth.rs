//! `dsma synth --case CASE_DIR --out DIR --seed S [--set key=value ...] [--n N] [--figure out.png]`
//! for synthesizers that derive cases from a real one, and
//! `dsma synth --synthesizer NAME (--fit-on DATASET_DIR | --fitted GENERATOR_DIR) [--teacher RUN_DIR]`
//! for generative comparators (trainable synthesizers).

use std::path::PathBuf;
use std::process::ExitCode;

use dsma_data::brats::{discover, load_case, DatasetOptions};
use dsma_data::nifti_io::write_volume;
use dsma_data::phantom::write_case;
use dsma_data::preprocess::preprocess;
use dsma_data::seed::derive_seed;
use dsma_data::slice_figure::{axial, render, Overlay, Panel};
use dsma_data::{Case, LabelConvention, Modality};
use dsma_plugin::backend::BackendKind;
use dsma_plugin::Registry;
use dsma_plugin::{FitContext, FitProgress, PluginKind};
use dsma_train::runner::report::record::RunRecord;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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

/// The EMA teacher of a run folder: its experiment and labelling function.
struct Teacher {
    experiment: dsma_train::experiment::config::Experiment,
    checkpoints: PathBuf,
    label: dsma_train::runner::registration::LabelFn,
    convention: LabelConvention,
}

impl Teacher {
    fn open(run: &std::path::Path) -> anyhow::Result<Self> {
        let record = RunRecord::read(run)?;
        let mut doc = record.experiment.clone();
        if let Some(m) = doc.as_object_mut() {
            m.remove("grid");
        }
        let experiment: dsma_train::experiment::config::Experiment = serde_json::from_value(doc)
            .map_err(|e| anyhow::anyhow!("{}: config.json: {e}", run.display()))?;
        let convention = record.dataset()?.convention()?;
        let label = dsma_train::runner::registration::model(&experiment.model.name)?
            .labeller(experiment.train.backend)?;
        Ok(Teacher {
            checkpoints: run.join("checkpoints"),
            experiment,
            label,
            convention,
        })
    }
}

/// `dsma synth` for a trainable synthesizer: fit (or load a fit), sample, label with a teacher if
/// one is given, write NIfTI.
fn generative(
    args: Args,
    registry: &Registry,
    params: &serde_json::Value,
) -> anyhow::Result<ExitCode> {
    if args.case_dir.is_some() {
        anyhow::bail!("`{}` is a generative comparator: give --fit-on DATASET_DIR or --fitted GENERATOR_DIR, not --case", args.synthesizer);
    }
    let mut g = registry.trainable_synthesizer(&args.synthesizer, params)?;
    let teacher = args.teacher.as_deref().map(Teacher::open).transpose()?;
    if args.fit_on.is_none() && args.fitted.is_none() {
        anyhow::bail!(
            "`{}` is a generative comparator: give --fit-on DATASET_DIR (fit, or cases to condition on) and/or --fitted GENERATOR_DIR",
            args.synthesizer
        );
    }
    let cases = match &args.fit_on {
        Some(data) => discover(data, &DatasetOptions::new(args.labels))?
            .iter()
            .map(|d| Ok(preprocess(&load_case(d, args.labels)?)?))
            .collect::<anyhow::Result<Vec<Case>>>()?,
        None => Vec::new(),
    };
    let dir = args
        .fitted
        .clone()
        .unwrap_or_else(|| args.out.join("generator"));
    let [x, y, z] = args
        .size
        .or(teacher.as_ref().map(|t| t.experiment.train.patch.size))
        .unwrap_or([128; 3]);
    let backend = teacher
        .as_ref()
        .map_or(BackendKind::Cpu, |t| t.experiment.train.backend);
    let mut progress = |p: FitProgress| {
        if p.step == p.total || p.step % (p.total / 20).max(1) == 0 {
            eprintln!("fit: step {}/{}", p.step, p.total);
        }
    };
    g.fit(
        &cases,
        &mut FitContext {
            checkpoint_dir: &dir,
            seed: derive_seed(args.seed, 0x4749_5446),
            backend,
            sample_shape: [z, y, x],
            progress: &mut progress,
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let images = g.sample(args.n, &mut rng, &cases)?;
    let labels = match &teacher {
        Some(t) => {
            let imgs: Vec<_> = images.iter().map(|i| i.image.clone()).collect();
            Some((t.label)(
                &t.experiment,
                &t.checkpoints,
                &imgs,
                t.convention,
            )?)
        }
        None => None,
    };
    for (i, img) in images.into_iter().enumerate() {
        let id = format!("{}_{i}", args.synthesizer);
        let case_dir = args.out.join(&id);
        for (c, m) in Modality::ALL.iter().enumerate() {
            let path = case_dir.join(format!("{id}_{}.nii.gz", m.suffix()));
            write_volume(&path, img.image.index_axis(ndarray::Axis(0), c), &img.grid)?;
        }
        match &labels {
            Some(l) => {
                write_volume(
                    &case_dir.join(format!("{id}_seg.nii.gz")),
                    l[i].view(),
                    &img.grid,
                )?;
                println!(
                    "wrote {} (labels: the EMA teacher of {})",
                    case_dir.display(),
                    args.teacher
                        .as_deref()
                        .unwrap_or(std::path::Path::new(""))
                        .display()
                );
            }
            None => println!(
                "wrote {} (images only: no --teacher, so no labels)",
                case_dir.display()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
