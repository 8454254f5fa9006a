//! `dsma phantom --out DIR --cases N --size X,Y,Z --seed S [--preview out.png]`.

use std::path::PathBuf;
use std::process::ExitCode;

use dsma_data::brats::load_case;
use dsma_data::phantom::{write_dataset, PhantomSpec};
use dsma_data::slice_figure::{axial, render, slice_with_most_tumour, Overlay, Panel};
use dsma_data::{LabelConvention, Modality};

use super::args::parse_triple;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (created); cases go to `<out>/Phantom_NNN/`.
    #[arg(long)]
    out: PathBuf,
    /// Number of cases.
    #[arg(long, default_value_t = 10)]
    cases: usize,
    /// Volume size in NIfTI order x,y,z (BraTS: 240,240,155).
    #[arg(long, value_parser = parse_triple::<usize>, default_value = "64,64,48")]
    size: [usize; 3],
    /// Voxel spacing in mm, x,y,z.
    #[arg(long, value_parser = parse_triple::<f64>, default_value = "1,1,1")]
    spacing: [f64; 3],
    /// Master seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write a PNG of the first case: one axial slice per modality, plain and with labels.
    #[arg(long)]
    preview: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = PhantomSpec {
        cases: args.cases,
        size: args.size,
        spacing: args.spacing,
        seed: args.seed,
    };
    let dirs = write_dataset(&args.out, &spec)?;
    println!(
        "wrote {} phantom case(s) of {}×{}×{} voxels to {}",
        dirs.len(),
        spec.size[0],
        spec.size[1],
        spec.size[2],
        args.out.display()
    );
    if let (Some(path), Some(first)) = (args.preview, dirs.first()) {
        let case = load_case(first, LabelConvention::Brats2019)?;
        let z = slice_with_most_tumour(case.label.view());
        let labels = axial(case.label.view(), z);
        let panel = |m: Modality, overlay: Overlay| Panel {
            title: if overlay == Overlay::None {
                m.display().to_string()
            } else {
                format!("{} + labels", m.display())
            },
            slice: axial(case.modality(m), z),
            labels: Some(labels.clone()),
            overlay,
        };
        let mut panels: Vec<Panel> = Modality::ALL
            .iter()
            .map(|&m| panel(m, Overlay::None))
            .collect();
        panels.extend(Modality::ALL.iter().map(|&m| panel(m, Overlay::Fill)));
        let scale = (256 / spec.size[0].max(spec.size[1]).max(1)).clamp(1, 8) as u32;
        render(&path, &panels, 4, scale, case.convention)?;
        println!(
            "preview of {} (axial slice z={z}) written to {}",
            case.id,
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
