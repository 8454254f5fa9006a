//! BraTS datasets on disk: case discovery, loading with validation, `data check`, and the train/test split.
//!
//! Layouts: `<root>/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]` (BraTS 2020–2022),
//! `<root>/<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii[.gz]` (BraTS 2023, `BraTS-GLI-…`), and
//! BraTS 2019's `<root>/HGG/<case>/...` + `<root>/LGG/<case>/...`, of which only HGG is used unless
//! `include_lgg` is set (the paper uses HGG only, §4.1), and a Decathlon task folder with a
//! `dataset.json` (see `msd`), whose cases are its image files.

use std::path::{Path, PathBuf};

use ndarray::{Array4, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;
use crate::nifti_io::{read_labels, RawNifti};
use crate::volume::{Case, Grid, Modality};

/// Tolerance (mm) when comparing the affines of a case's five files.
pub(crate) const AFFINE_TOLERANCE_MM: f64 = 1e-3;

/// How to read a dataset folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetOptions {
    /// Label encoding of the `_seg` files.
    pub convention: LabelConvention,
    /// In a BraTS 2019 `HGG/` + `LGG/` layout, also use the LGG cases.
    pub include_lgg: bool,
}

impl DatasetOptions {
    /// Options for a convention, HGG only.
    pub fn new(convention: LabelConvention) -> Self {
        DatasetOptions {
            convention,
            include_lgg: false,
        }
    }
}

/// The five files of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFiles {
    /// Case identifier (folder name).
    pub id: String,
    /// Case folder.
    pub dir: PathBuf,
    /// Modality files in [`Modality::ALL`] order.
    pub modalities: [PathBuf; 4],
    /// Label file.
    pub seg: PathBuf,
}

/// Lists the case folders of a dataset, sorted by identifier.
pub fn discover(root: &Path, opts: &DatasetOptions) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Err(CoreError::Dataset {
            case: "-".into(),
            file: root.to_path_buf(),
            problem: "dataset folder does not exist or is not a folder".into(),
        });
    }
    if crate::msd::is_msd(root) {
        let mut images: Vec<PathBuf> = crate::msd::read_dataset(root)?
            .cases
            .into_iter()
            .map(|c| c.image)
            .collect();
        images.sort_by_key(|p| case_id(p));
        if images.is_empty() {
            return Err(CoreError::Dataset {
                case: "-".into(),
                file: root.join(crate::msd::DATASET_JSON),
                problem: "its `training` list is empty".into(),
            });
        }
        return Ok(images);
    }
    let hgg = root.join("HGG");
    let lgg = root.join("LGG");
    let parents: Vec<PathBuf> = if hgg.is_dir() || lgg.is_dir() {
        let mut p = vec![];
        if hgg.is_dir() {
            p.push(hgg);
        }
        if opts.include_lgg && lgg.is_dir() {
            p.push(lgg);
        }
        p
    } else {
        vec![root.to_path_buf()]
    };
    let mut cases = vec![];
    for parent in parents {
        let entries = std::fs::read_dir(&parent).map_err(|e| CoreError::io(&parent, e))?;
        for entry in entries {
            let path = entry.map_err(|e| CoreError::io(&parent, e))?.path();
            if path.is_dir() && contains_nifti(&path) {
                cases.push(path);
            }
        }
    }
    cases.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if cases.is_empty() {
        return Err(CoreError::Dataset {
            case: "-".into(),
            file: root.to_path_buf(),
            problem: "no case folders found; expected <root>/<case>/<case>_flair.nii.gz ... (or HGG/<case>/...)".into(),
        });
    }
    Ok(cases)
}

fn contains_nifti(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| is_nifti_name(&e.file_name().to_string_lossy()))
        })
        .unwrap_or(false)
}

fn is_nifti_name(name: &str) -> bool {
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// The identifier of a case path from [`discover`]: the folder name, or for a Decathlon case (an
/// image file) the file name without `.nii[.gz]`.
pub fn case_id(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    if dir.is_file() {
        crate::nifti_io::nifti_stem(&name).to_string()
    } else {
        name
    }
}

/// The Decathlon dataset and case of an image path from [`discover`] (`<root>/imagesTr/<id>.nii.gz`).
fn msd_case(image: &Path) -> Result<(crate::msd::MsdDataset, crate::msd::MsdCase)> {
    let root = image.parent().and_then(Path::parent).unwrap_or(image);
    let ds = crate::msd::read_dataset(root)?;
    let case = ds.case(image).cloned().ok_or_else(|| CoreError::Dataset {
        case: case_id(image),
        file: image.to_path_buf(),
        problem: format!(
            "not listed in {}",
            root.join(crate::msd::DATASET_JSON).display()
        ),
    })?;
    Ok((ds, case))
}

/// Finds `<case>_<suffix>.nii.gz` or `.nii` in `dir`.
/// The label file of the case `dir` from [`discover`] (`<id>_seg.nii[.gz]`, BraTS 2023's
/// `<id>-seg.nii[.gz]`, BraTS 2020's one `*Segm.nii`, or a Decathlon case's `labelsTr/<id>.nii.gz`).
pub fn seg_file(dir: &Path) -> Result<PathBuf> {
    if dir.is_file() {
        return Ok(msd_case(dir)?.1.label);
    }
    find_file(dir, &case_id(dir), "seg")
}

/// Where the prediction for `case` lies in the predictions folder `dir`: `<case>.nii[.gz]`
/// (nnU-Net, dsma predict), `<case>_seg.nii[.gz]` or `<case>/<case>_seg.nii[.gz]` (BraTS layout).
pub fn prediction_file(dir: &Path, case: &str) -> Option<PathBuf> {
    [
        format!("{case}.nii.gz"),
        format!("{case}.nii"),
        format!("{case}_seg.nii.gz"),
        format!("{case}_seg.nii"),
        format!("{case}/{case}_seg.nii.gz"),
        format!("{case}/{case}_seg.nii"),
    ]
    .iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

/// BraTS 2023's file suffix for one of ours (`<id>-t2f.nii.gz` is FLAIR, `-t1n` T1, `-t1c` T1ce,
/// `-t2w` T2, `-seg` the labels).
fn brats2023_suffix(suffix: &str) -> &str {
    match suffix {
        "flair" => "t2f",
        "t1" => "t1n",
        "t1ce" => "t1c",
        "t2" => "t2w",
        other => other,
    }
}

pub(crate) fn find_file(dir: &Path, id: &str, suffix: &str) -> Result<PathBuf> {
    let names = [
        format!("{id}_{suffix}"),
        format!("{id}-{}", brats2023_suffix(suffix)),
    ];
    for name in &names {
        for ext in ["nii.gz", "nii"] {
            let p = dir.join(format!("{name}.{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    // BraTS 2020's case 355 ships its label as `W39_1998.09.19_Segm.nii`: accept one `*Segm.nii[.gz]`.
    if suffix == "seg" {
        let alt: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| CoreError::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_lowercase())
                    .unwrap_or_default();
                n.ends_with("segm.nii") || n.ends_with("segm.nii.gz")
            })
            .collect();
        if let [one] = alt.as_slice() {
            return Ok(one.clone());
        }
    }
    Err(CoreError::Dataset {
        case: id.to_string(),
        file: dir.join(format!("{id}_{suffix}.nii.gz")),
        problem: format!(
            "missing {suffix} file (expected {id}_{suffix}.nii[.gz], or {id}-{}.nii[.gz] in BraTS 2023 naming)",
            brats2023_suffix(suffix)
        ),
    })
}

/// Resolves the five files of a case folder, or every missing one as an error.
pub fn case_files(dir: &Path) -> std::result::Result<CaseFiles, Vec<CoreError>> {
    let id = case_id(dir);
    let mut paths = Vec::with_capacity(5);
    let mut errors = vec![];
    for suffix in Modality::ALL.iter().map(|m| m.suffix()).chain(["seg"]) {
        match find_file(dir, &id, suffix) {
            Ok(p) => paths.push(p),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let seg = paths.pop().unwrap_or_default();
    let modalities: [PathBuf; 4] = paths.try_into().unwrap_or_default();
    Ok(CaseFiles {
        id,
        dir: dir.to_path_buf(),
        modalities,
        seg,
    })
}

pub(crate) fn dataset_err(id: &str, file: &Path, problem: impl Into<String>) -> CoreError {
    CoreError::Dataset {
        case: id.to_string(),
        file: file.to_path_buf(),
        problem: problem.into(),
    }
}

/// Every volume of a case must have the first one's shape and affine.
pub(crate) fn check_grids(id: &str, grids: &[(&Path, Grid)], problems: &mut Vec<CoreError>) {
    if let Some((ref_path, reference)) = grids.first().cloned() {
        for (path, g) in &grids[1..] {
            if g.dims != reference.dims {
                problems.push(dataset_err(
                    id,
                    path,
                    format!(
                        "shape {:?} differs from {:?} of {}",
                        g.dims,
                        reference.dims,
                        ref_path.display()
                    ),
                ));
            } else if !g.same_space(&reference, AFFINE_TOLERANCE_MM) {
                problems.push(dataset_err(
                    id,
                    path,
                    format!(
                        "affine {:?} differs from {:?} of {}",
                        g.affine,
                        reference.affine,
                        ref_path.display()
                    ),
                ));
            }
        }
    }
}

/// Reads and validates a case, collecting every problem; returns the case only when there are none.
pub fn read_case_checked(
    files: &CaseFiles,
    convention: LabelConvention,
) -> (Option<Case>, Vec<CoreError>) {
    let id = &files.id;
    let as_case_err = |path: &Path, e: CoreError| match e {
        CoreError::Nifti { problem, .. } => dataset_err(id, path, problem),
        CoreError::Io { source, .. } => dataset_err(id, path, format!("unreadable: {source}")),
        other => dataset_err(id, path, other.to_string()),
    };
    let (volumes, seg) = rayon::join(
        || {
            files
                .modalities
                .par_iter()
                .map(|p| RawNifti::read(p).map_err(|e| as_case_err(p, e)))
                .collect::<Vec<_>>()
        },
        || read_labels(&files.seg).map_err(|e| as_case_err(&files.seg, e)),
    );
    let mut problems = vec![];
    let mut grids: Vec<(&Path, Grid)> = vec![];
    let mut raws = vec![];
    for (path, vol) in files.modalities.iter().zip(volumes) {
        match vol {
            Ok(v) => {
                grids.push((path, v.grid.clone()));
                raws.push((path, v));
            }
            Err(e) => problems.push(e),
        }
    }
    let label = match seg {
        Ok((grid, label)) => {
            problems.extend(crate::labels::label_problem(
                id, &files.seg, &label, convention,
            ));
            grids.push((&files.seg, grid));
            Some(label)
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    check_grids(id, &grids, &mut problems);
    let Some((_, reference)) = grids.first() else {
        return (None, problems);
    };
    let image = decode_image(id, &raws, reference, &mut problems);
    if !problems.is_empty() {
        return (None, problems);
    }
    let (Some(image), Some(label), Some((_, grid))) = (image, label, grids.into_iter().next())
    else {
        return (None, problems);
    };
    (
        Some(Case {
            id: id.clone(),
            image,
            label,
            grid,
            convention,
        }),
        problems,
    )
}

/// Decodes the four modalities straight into their slabs of the case image (`None` unless there
/// are four of `reference`'s size), adding a problem per file holding NaN/inf intensities.
pub(crate) fn decode_image(
    id: &str,
    raws: &[(&PathBuf, RawNifti)],
    reference: &Grid,
    problems: &mut Vec<CoreError>,
) -> Option<Array4<f32>> {
    let consistent = raws.len() == 4 && raws.iter().all(|(_, r)| r.grid.dims == reference.dims);
    if !consistent {
        return None;
    }
    let (nz, ny, nx) = reference.shape_zyx();
    let mut image = Array4::<f32>::zeros((4, nz, ny, nx));
    let bad: Vec<usize> = image
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(raws.par_iter())
        .map(|(mut slab, (_, raw))| slab.as_slice_mut().map(|s| raw.decode_into(s)).unwrap_or(0))
        .collect();
    for ((path, _), n) in raws.iter().zip(bad) {
        if n > 0 {
            problems.push(dataset_err(id, path, format!("{n} NaN/inf intensities")));
        }
    }
    Some(image)
}

/// Loads one case from [`discover`] (a case folder, or a Decathlon image); the first problem found
/// is the error.
pub fn load_case(dir: &Path, convention: LabelConvention) -> Result<Case> {
    if dir.is_file() {
        let (ds, case) = msd_case(dir)?;
        return ds.load(&case, convention);
    }
    let files = case_files(dir).map_err(first)?;
    let (case, problems) = read_case_checked(&files, convention);
    match case {
        Some(c) => Ok(c),
        None => Err(first(problems)),
    }
}

fn first(mut errors: Vec<CoreError>) -> CoreError {
    if errors.is_empty() {
        CoreError::invalid("case", "unknown failure")
    } else {
        errors.swap_remove(0)
    }
}

/// Summary of `dsma data check`.
#[derive(Debug)]
pub struct CheckReport {
    /// Case folders examined.
    pub cases: usize,
    /// Every problem found, in case order.
    pub problems: Vec<CoreError>,
}

/// Validates every case of a dataset in one pass, collecting all problems.
pub fn check_dataset(root: &Path, opts: &DatasetOptions) -> Result<CheckReport> {
    let dirs = discover(root, opts)?;
    if crate::msd::is_msd(root) {
        let ds = crate::msd::read_dataset(root)?;
        let problems: Vec<CoreError> = ds
            .cases
            .par_iter()
            .filter_map(|c| ds.load(c, opts.convention).err())
            .collect();
        return Ok(CheckReport {
            cases: ds.cases.len(),
            problems,
        });
    }
    let problems: Vec<Vec<CoreError>> = dirs
        .par_iter()
        .map(|dir| match case_files(dir) {
            Err(errs) => errs,
            Ok(files) => read_case_checked(&files, opts.convention).1,
        })
        .collect();
    Ok(CheckReport {
        cases: dirs.len(),
        problems: problems.into_iter().flatten().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_prediction_files_are_found_in_each_naming() {
        let root = tempfile::tempdir().unwrap();
        let case = root.path().join("BraTS2021_00001");
        std::fs::create_dir(&case).unwrap();
        assert!(seg_file(&case).is_err());
        std::fs::write(case.join("BraTS2021_00001_seg.nii"), b"").unwrap();
        assert_eq!(
            seg_file(&case).unwrap(),
            case.join("BraTS2021_00001_seg.nii")
        );
        let odd = root.path().join("BraTS20_Training_355");
        std::fs::create_dir(&odd).unwrap();
        std::fs::write(odd.join("W39_1998.09.19_Segm.nii"), b"").unwrap();
        assert_eq!(seg_file(&odd).unwrap(), odd.join("W39_1998.09.19_Segm.nii"));

        let preds = root.path().join("preds");
        std::fs::create_dir_all(preds.join("c2")).unwrap();
        assert_eq!(prediction_file(&preds, "c1"), None);
        std::fs::write(preds.join("c1.nii.gz"), b"").unwrap();
        std::fs::write(preds.join("c2/c2_seg.nii"), b"").unwrap();
        assert_eq!(prediction_file(&preds, "c1"), Some(preds.join("c1.nii.gz")));
        assert_eq!(
            prediction_file(&preds, "c2"),
            Some(preds.join("c2/c2_seg.nii"))
        );
    }
}
