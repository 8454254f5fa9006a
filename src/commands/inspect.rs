//! `dsma inspect FILE [--json]`.

use std::process::ExitCode;

use dsma_data::nifti_io::{datatype_name, read_volumes, NiftiHeader, NiftiVolumes};
use serde_json::json;
use voxel_stats::Stats;

use super::args::PathArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A `.nii` or `.nii.gz` file of 1–7 dimensions (4-D and up: statistics also per volume).
    file: PathArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

mod voxel_stats {
    /// Statistics over the finite voxels of a volume.
    pub struct Stats {
        pub sum: f64,
        pub mean: f64,
        pub min: f64,
        pub max: f64,
        pub finite: usize,
        pub nan_count: usize,
        pub inf_count: usize,
    }

    impl Stats {
        pub fn of<'a>(values: impl Iterator<Item = &'a f32>) -> Stats {
            let mut s = Stats {
                sum: 0.0,
                mean: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                finite: 0,
                nan_count: 0,
                inf_count: 0,
            };
            for &v in values {
                if v.is_nan() {
                    s.nan_count += 1;
                } else if v.is_infinite() {
                    s.inf_count += 1;
                } else {
                    let v = v as f64;
                    s.sum += v;
                    s.min = s.min.min(v);
                    s.max = s.max.max(v);
                    s.finite += 1;
                }
            }
            if s.finite > 0 {
                s.mean = s.sum / s.finite as f64;
            } else {
                s.min = f64::NAN;
                s.max = f64::NAN;
                s.mean = f64::NAN;
            }
            s
        }
    }
}

fn finite_or_null(v: f64) -> serde_json::Value {
    if v.is_finite() {
        json!(v)
    } else {
        serde_json::Value::Null
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let vol = read_volumes(&args.file)?;
    let st = Stats::of(vol.data.iter());
    let per_volume: Vec<Stats> = if vol.data.shape()[0] > 1 {
        vol.data.outer_iter().map(|v| Stats::of(v.iter())).collect()
    } else {
        Vec::new()
    };
    if args.json {
        print_json(&args, &vol, &st, &per_volume)?;
    } else {
        print_text(&args, &vol, &st, &per_volume);
    }
    Ok(ExitCode::SUCCESS)
}

/// The header fields every report shows: dims and pixdim up to `dim[0]`.
fn dims_and_pixdim(h: &NiftiHeader) -> (Vec<i64>, Vec<f64>) {
    let ndim = h.dim[0].clamp(0, 7) as usize;
    (h.dim[1..=ndim].to_vec(), h.pixdim[1..=ndim.max(1)].to_vec())
}

fn print_json(
    args: &Args,
    vol: &NiftiVolumes,
    st: &Stats,
    per_volume: &[Stats],
) -> anyhow::Result<()> {
    let h = &vol.header;
    let (dims, pixdim) = dims_and_pixdim(h);
    let out = json!({
        "file": args.file.display().to_string(),
        "nifti_version": h.version,
        "byte_order": h.byte_order,
        "dims": dims,
        "datatype": datatype_name(h.datatype),
        "datatype_code": h.datatype,
        "bitpix": h.bitpix,
        "pixdim": pixdim,
        "vox_offset": h.vox_offset,
        "scl_slope": h.scl_slope,
        "scl_inter": h.scl_inter,
        "qform_code": h.qform_code,
        "sform_code": h.sform_code,
        "affine": vol.grid.affine,
        "descrip": h.descrip,
        "xyzt_units": h.xyzt_units,
        "quatern_bcd": h.quatern,
        "qoffset": h.qoffset,
        "srow": h.srow,
        "other": h.other,
        "voxels": vol.data.len(),
        "finite_count": st.finite,
        "sum": st.sum,
        "mean": finite_or_null(st.mean),
        "min": finite_or_null(st.min),
        "max": finite_or_null(st.max),
        "nan_count": st.nan_count,
        "inf_count": st.inf_count,
        "volumes": per_volume.iter().enumerate().map(|(i, v)| json!({
            "index": i,
            "finite_count": v.finite,
            "mean": finite_or_null(v.mean),
            "min": finite_or_null(v.min),
            "max": finite_or_null(v.max),
            "nan_count": v.nan_count,
            "inf_count": v.inf_count,
        })).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn print_text(args: &Args, vol: &NiftiVolumes, st: &Stats, per_volume: &[Stats]) {
    let h = &vol.header;
    let (dims, pixdim) = dims_and_pixdim(h);
    println!("file        {}", args.file.display());
    println!(
        "format      NIfTI-{} ({:?}-endian)",
        h.version, h.byte_order
    );
    println!(
        "dims        {}",
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" × ")
    );
    println!(
        "datatype    {} (code {}, {} bits)",
        datatype_name(h.datatype),
        h.datatype,
        h.bitpix
    );
    println!(
        "pixdim      {}",
        pixdim
            .iter()
            .map(|d| format!("{d}"))
            .collect::<Vec<_>>()
            .join(" × ")
    );
    println!("vox_offset  {}", h.vox_offset);
    let o = &h.other;
    println!(
        "magic       {:?}   dim_info {}   xyzt_units {}",
        o.magic, o.dim_info, h.xyzt_units
    );
    println!(
        "intent      code {}   p1..p3 {:?}   name {:?}",
        o.intent_code, o.intent_p, o.intent_name
    );
    println!(
        "slice       code {}   start {}   end {}   duration {}",
        o.slice_code, o.slice_start, o.slice_end, o.slice_duration
    );
    println!(
        "cal         min {}   max {}   toffset {}",
        o.cal_min, o.cal_max, o.toffset
    );
    println!("descrip     {:?}   aux_file {:?}", h.descrip, o.aux_file);
    println!(
        "quatern     b c d {:?}   qoffset {:?}",
        h.quatern, h.qoffset
    );
    println!("srow        {:?}", h.srow);
    println!("scl_slope   {}   scl_inter {}", h.scl_slope, h.scl_inter);
    println!("qform_code  {}   sform_code {}", h.qform_code, h.sform_code);
    print_affine_and_stats(vol, st, per_volume);
}

/// The affine the volume is read with, then the intensity statistics (whole file, per volume).
fn print_affine_and_stats(vol: &NiftiVolumes, st: &Stats, per_volume: &[Stats]) {
    let h = &vol.header;
    println!(
        "affine      (voxel → world mm, from {})",
        if h.sform_code > 0 {
            "sform"
        } else if h.qform_code > 0 {
            "qform"
        } else {
            "pixdim"
        }
    );
    for row in vol.grid.affine {
        println!(
            "            [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
            row[0], row[1], row[2], row[3]
        );
    }
    println!(
        "voxels      {} ({} finite, {} NaN, {} inf)",
        vol.data.len(),
        st.finite,
        st.nan_count,
        st.inf_count
    );
    println!("sum         {}", st.sum);
    println!("mean        {}", st.mean);
    println!("min / max   {} / {}", st.min, st.max);
    for (i, v) in per_volume.iter().enumerate() {
        println!(
            "volume {i:<4} mean {}   min / max {} / {}   ({} finite, {} NaN, {} inf)",
            v.mean, v.min, v.max, v.finite, v.nan_count, v.inf_count
        );
    }
}
