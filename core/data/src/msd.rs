//! The Medical Segmentation Decathlon's `Task01_BrainTumour` as downloaded: `dataset.json` lists
//! the cases (`training: [{image: ./imagesTr/BRATS_001.nii.gz, label: ./labelsTr/BRATS_001.nii.gz}]`;
//! never a folder glob, since the released archive also carries `._BRATS_*` AppleDouble files), each
//! image one 4-D NIfTI whose channels `dataset.json`'s `modality` names (FLAIR, T1w, t1gd, T2w), and
//! labels 1 oedema / 2 non-enhancing tumour / 3 enhancing tumour (`LabelConvention::Msd`).

use std::path::{Path, PathBuf};

use ndarray::{Array4, Axis};
use serde::Deserialize;

use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;
use crate::nifti_io::{read_labels, read_volumes};
use crate::volume::{Case, Grid, Modality};

/// The file that marks a Decathlon task folder.
pub const DATASET_JSON: &str = "dataset.json";

#[derive(Debug, Deserialize)]
struct DatasetJson {
    modality: std::collections::BTreeMap<String, String>,
    training: Vec<Pair>,
    /// Unlabelled images (`./imagesTs/BRATS_485.nii.gz`); absent in some copies.
    #[serde(default)]
    test: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Pair {
    image: String,
    label: String,
}

/// One case of a Decathlon task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsdCase {
    /// Identifier: the image file name without `.nii.gz` (`BRATS_001`).
    pub id: String,
    /// The 4-D image.
    pub image: PathBuf,
    /// The label map.
    pub label: PathBuf,
}

/// A Decathlon task folder read through its `dataset.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsdDataset {
    /// The task folder.
    pub root: PathBuf,
    /// Training cases in `dataset.json` order.
    pub cases: Vec<MsdCase>,
    /// For each of [`Modality::ALL`], the image channel that holds it.
    pub channels: [usize; 4],
    /// Unlabelled test images in `dataset.json` order (`imagesTs`).
    pub test: Vec<PathBuf>,
}

/// Whether `root` is a Decathlon task folder (it holds `dataset.json`).
pub fn is_msd(root: &Path) -> bool {
    root.join(DATASET_JSON).is_file()
}

/// Our modality for a `dataset.json` modality name.
fn modality_of(name: &str) -> Option<Modality> {
    match name.to_ascii_lowercase().as_str() {
        "flair" | "t2f" => Some(Modality::Flair),
        "t1w" | "t1" | "t1n" => Some(Modality::T1),
        "t1gd" | "t1ce" | "t1c" => Some(Modality::T1ce),
        "t2w" | "t2" => Some(Modality::T2),
        _ => None,
    }
}

fn file_id(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    crate::nifti_io::nifti_stem(&name).to_string()
}

/// Reads `root/dataset.json`: the training cases and the channel of each modality.
pub fn read_dataset(root: &Path) -> Result<MsdDataset> {
    let path = root.join(DATASET_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let json: DatasetJson =
        serde_json::from_str(&text).map_err(|e| CoreError::codec(path.display().to_string(), e))?;
    let mut channels = [usize::MAX; 4];
    for (index, name) in &json.modality {
        let channel: usize = index.parse().map_err(|_| {
            CoreError::invalid(
                format!("{}: modality", path.display()),
                format!("key `{index}`; expected a channel number"),
            )
        })?;
        if let Some(m) = modality_of(name) {
            channels[Modality::ALL.iter().position(|&x| x == m).unwrap_or(0)] = channel;
        }
    }
    if let Some(missing) = (0..4).find(|&i| channels[i] == usize::MAX) {
        return Err(CoreError::invalid(
            format!("{}: modality", path.display()),
            format!(
                "{:?}: no channel for {}; expected FLAIR, T1w, t1gd and T2w",
                json.modality,
                Modality::ALL[missing].display()
            ),
        ));
    }
    let inside = |text: &str, field: String| inside_task(root, &path, text, field);
    let mut cases: Vec<MsdCase> = Vec::with_capacity(json.training.len());
    let mut ids = ListedIds::new(&path, "training");
    for (i, p) in json.training.iter().enumerate() {
        let image = inside(&p.image, format!("training[{i}].image"))?;
        let label = inside(&p.label, format!("training[{i}].label"))?;
        let id = ids.add(i, ".image", &image, &p.image)?;
        cases.push(MsdCase { id, image, label });
    }
    let mut test = Vec::with_capacity(json.test.len());
    let mut ids = ListedIds::new(&path, "test");
    for (i, p) in json.test.iter().enumerate() {
        let image = inside(p, format!("test[{i}]"))?;
        ids.add(i, "", &image, p)?;
        test.push(image);
    }
    Ok(MsdDataset {
        root: root.to_path_buf(),
        cases,
        channels,
        test,
    })
}

/// The case ids of one list of `dataset.json` (`training` or `test`), each checked as it is added.
struct ListedIds<'a> {
    json: &'a Path,
    list: &'static str,
    seen: std::collections::HashMap<String, usize>,
}

impl<'a> ListedIds<'a> {
    fn new(json: &'a Path, list: &'static str) -> Self {
        ListedIds {
            json,
            list,
            seen: std::collections::HashMap::new(),
        }
    }

    /// The id of entry `i` (field `list[i]<suffix>`, written `text`, resolved to `image`): its file
    /// name less `.nii[.gz]`. It must be a plain name, since predictions and the case store are
    /// named after it, and appear once in the list.
    fn add(&mut self, i: usize, suffix: &str, image: &Path, text: &str) -> Result<String> {
        let id = file_id(image);
        let field = format!("{}: {}[{i}]{suffix}", self.json.display(), self.list);
        if !crate::volume::is_plain_name(&id) {
            return Err(CoreError::invalid(
                field,
                format!(
                    "`{text}` gives the case id `{id}`, which cannot name the case's output files; \
                     expected a name such as BRATS_001.nii.gz"
                ),
            ));
        }
        if let Some(first) = self.seen.insert(id.clone(), i) {
            let list = self.list;
            return Err(CoreError::invalid(
                field,
                format!("case `{id}` is listed twice ({list}[{first}] too); every case once"),
            ));
        }
        Ok(id)
    }
}

/// `text` (a path of `dataset.json`'s field `field`) as a path inside the task folder `root`:
/// relative, and without a `..` component, so a hostile or mistaken `dataset.json` cannot make dsma
/// read (or name an output after) a file outside the folder it was given.
fn inside_task(root: &Path, json: &Path, text: &str, field: String) -> Result<PathBuf> {
    let rel = Path::new(text.trim_start_matches("./"));
    let escapes = rel.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if escapes || text.is_empty() {
        return Err(CoreError::invalid(
            format!("{}: {field}", json.display()),
            format!("`{text}` is not a path inside the task folder; expected e.g. ./imagesTr/BRATS_001.nii.gz"),
        ));
    }
    Ok(root.join(rel))
}

impl MsdDataset {
    /// The case whose image is `image`, if `dataset.json` lists it.
    pub fn case(&self, image: &Path) -> Option<&MsdCase> {
        self.cases.iter().find(|c| c.image == image)
    }

    /// Reads a 4-D image with its channels in [`Modality::ALL`] order, and its grid.
    pub fn load_image(&self, path: &Path, id: &str) -> Result<(Array4<f32>, Grid)> {
        let vols = read_volumes(path)?;
        let count = vols.data.len_of(Axis(0));
        if let Some(&c) = self.channels.iter().find(|&&c| c >= count) {
            return Err(CoreError::Dataset {
                case: id.to_string(),
                file: path.to_path_buf(),
                problem: format!("{count} volumes, but dataset.json names channel {c}; expected 4 (FLAIR, T1w, t1gd, T2w)"),
            });
        }
        let (_, z, y, x) = vols.data.dim();
        let mut image = Array4::<f32>::zeros((4, z, y, x));
        for (ours, &theirs) in self.channels.iter().enumerate() {
            image
                .index_axis_mut(Axis(0), ours)
                .assign(&vols.data.index_axis(Axis(0), theirs));
        }
        let bad = image.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(CoreError::Dataset {
                case: id.to_string(),
                file: path.to_path_buf(),
                problem: format!("{bad} NaN/inf intensities"),
            });
        }
        Ok((image, vols.grid))
    }

    /// Loads one case: the 4-D image with its channels in our order, the labels checked against
    /// `convention` (the error names the file, the values and the convention that would fit).
    pub fn load(&self, case: &MsdCase, convention: LabelConvention) -> Result<Case> {
        let bad = |file: &Path, problem: String| CoreError::Dataset {
            case: case.id.clone(),
            file: file.to_path_buf(),
            problem,
        };
        let (image, image_grid) = self.load_image(&case.image, &case.id)?;
        let (grid, label) = read_labels(&case.label)?;
        if grid.dims != image_grid.dims {
            return Err(bad(
                &case.label,
                format!(
                    "shape {:?} differs from the image's {:?}",
                    grid.dims, image_grid.dims
                ),
            ));
        }
        if let Some(e) = crate::labels::label_problem(&case.id, &case.label, &label, convention) {
            return Err(e);
        }
        Ok(Case {
            id: case.id.clone(),
            image,
            label,
            grid: image_grid,
            convention,
        })
    }
}
