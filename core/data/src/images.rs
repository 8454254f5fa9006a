//! Cases without labels, for prediction: BraTS case folders that hold only the four modalities
//! (the challenges' validation sets; a `seg` file, if present, is ignored), a Decathlon task's
//! `imagesTs` through `dataset.json`'s `test` list, or one case given by its path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array4;
use rayon::prelude::*;

use crate::brats::{self, check_grids, dataset_err, decode_image, find_file, DatasetOptions};
use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;
use crate::msd::{self, MsdDataset};
use crate::nifti_io::RawNifti;
use crate::volume::{Grid, Modality};

/// The images of one case and their grid (the grid predictions are written on).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCase {
    /// Case identifier: the folder name, or a Decathlon image's file name without `.nii.gz`.
    pub id: String,
    /// Intensities, channels in [`Modality::ALL`] order.
    pub image: Array4<f32>,
    /// The voxel grid of the four modalities.
    pub grid: Grid,
}

/// Where a case's images are.
#[derive(Debug, Clone)]
enum Location {
    /// A BraTS case folder.
    Folder(PathBuf),
    /// One 4-D image of a Decathlon task.
    Msd {
        image: PathBuf,
        dataset: Arc<MsdDataset>,
    },
}

/// One unlabelled case on disk, read by [`ImageSource::load`].
#[derive(Debug, Clone)]
pub struct ImageSource {
    id: String,
    location: Location,
}

impl ImageSource {
    /// Case identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The folder or image file the case is read from.
    pub fn path(&self) -> &Path {
        match &self.location {
            Location::Folder(dir) => dir,
            Location::Msd { image, .. } => image,
        }
    }

    /// Checks that the case's files exist (a missing modality is an error naming the file it
    /// looked for), without reading them.
    pub fn check(&self) -> Result<()> {
        match &self.location {
            Location::Folder(dir) => {
                for m in Modality::ALL {
                    find_file(dir, &self.id, m.suffix())?;
                }
                Ok(())
            }
            Location::Msd { image, .. } if image.is_file() => Ok(()),
            Location::Msd { image, .. } => Err(dataset_err(
                &self.id,
                image,
                "listed in dataset.json's `test` list but missing",
            )),
        }
    }

    /// Reads the case: its four modalities on one grid (a missing or unreadable modality, grids that
    /// differ, or NaN/inf intensities are errors naming the file).
    pub fn load(&self) -> Result<ImageCase> {
        let (image, grid) = match &self.location {
            Location::Folder(dir) => load_folder(dir, &self.id)?,
            Location::Msd { image, dataset } => dataset.load_image(image, &self.id)?,
        };
        Ok(ImageCase {
            id: self.id.clone(),
            image,
            grid,
        })
    }
}

/// Every case of a dataset folder, labelled or not, sorted by identifier: BraTS case folders
/// (`HGG/` and `LGG/` both), or a Decathlon task's `test` images.
pub fn discover_images(root: &Path) -> Result<Vec<ImageSource>> {
    if !root.is_dir() {
        return Err(dataset_err(
            "-",
            root,
            "input folder does not exist or is not a folder",
        ));
    }
    if msd::is_msd(root) {
        let dataset = Arc::new(msd::read_dataset(root)?);
        if dataset.test.is_empty() {
            return Err(dataset_err(
                "-",
                &root.join(msd::DATASET_JSON),
                "its `test` list is empty; dsma predict reads the unlabelled images it lists (imagesTs)",
            ));
        }
        let mut sources: Vec<ImageSource> = dataset
            .test
            .iter()
            .map(|image| msd_source(image, &dataset))
            .collect();
        sources.sort_by(|a, b| a.id.cmp(&b.id));
        return Ok(sources);
    }
    let opts = DatasetOptions {
        include_lgg: true,
        ..DatasetOptions::new(LabelConvention::Brats2019)
    };
    Ok(brats::discover(root, &opts)?
        .into_iter()
        .map(|dir| ImageSource {
            id: brats::case_id(&dir),
            location: Location::Folder(dir),
        })
        .collect())
}

/// One case by path: a BraTS case folder, or a Decathlon image (`<task>/imagesTs/<id>.nii.gz`,
/// with the task's `dataset.json` two folders up naming the channels).
pub fn image_source(path: &Path) -> Result<ImageSource> {
    // `.` or `case/..` name no case: use the folder's real name.
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let path = canonical.as_path();
    if path.is_dir() {
        let id = brats::case_id(path);
        if !crate::volume::is_plain_name(&id) {
            return Err(dataset_err(
                &id,
                path,
                "names no case folder (its predictions are named after the folder); give a case folder such as BraTS2021_00000",
            ));
        }
        return Ok(ImageSource {
            id,
            location: Location::Folder(path.to_path_buf()),
        });
    }
    if !path.is_file() {
        return Err(dataset_err(
            "-",
            path,
            "case folder or image does not exist",
        ));
    }
    let root = path.parent().and_then(Path::parent).unwrap_or(path);
    if !msd::is_msd(root) {
        return Err(dataset_err(
            &brats::case_id(path),
            path,
            format!(
                "a single file is read as a Decathlon image, but {} is missing; give a BraTS case folder instead",
                root.join(msd::DATASET_JSON).display()
            ),
        ));
    }
    let dataset = Arc::new(msd::read_dataset(root)?);
    Ok(msd_source(path, &dataset))
}

fn msd_source(image: &Path, dataset: &Arc<MsdDataset>) -> ImageSource {
    ImageSource {
        id: brats::case_id(image),
        location: Location::Msd {
            image: image.to_path_buf(),
            dataset: Arc::clone(dataset),
        },
    }
}

/// The four modalities of a BraTS case folder, checked like `dsma data check` checks them.
fn load_folder(dir: &Path, id: &str) -> Result<(Array4<f32>, Grid)> {
    let paths = Modality::ALL
        .iter()
        .map(|m| find_file(dir, id, m.suffix()))
        .collect::<Result<Vec<PathBuf>>>()?;
    let raws = paths
        .par_iter()
        .map(|p| {
            RawNifti::read(p).map_err(|e| match e {
                CoreError::Nifti { problem, .. } => dataset_err(id, p, problem),
                other => other,
            })
        })
        .collect::<Result<Vec<RawNifti>>>()?;
    let grids: Vec<(&Path, Grid)> = paths
        .iter()
        .zip(&raws)
        .map(|(p, r)| (p.as_path(), r.grid.clone()))
        .collect();
    let mut problems = vec![];
    check_grids(id, &grids, &mut problems);
    let reference = grids[0].1.clone();
    let pairs: Vec<(&PathBuf, RawNifti)> = paths.iter().zip(raws).collect();
    let image = decode_image(id, &pairs, &reference, &mut problems);
    match (problems.into_iter().next(), image) {
        (Some(problem), _) => Err(problem),
        (None, Some(image)) => Ok((image, reference)),
        (None, None) => Err(dataset_err(id, dir, "the four modalities differ in shape")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti_io::write_volume;
    use ndarray::Array3;

    fn write_case(root: &Path, id: &str, skip: Option<&str>) -> PathBuf {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let grid = Grid::axis_aligned([4, 3, 2], [1.0, 1.0, 2.0]);
        for (i, m) in Modality::ALL.iter().enumerate() {
            if Some(m.suffix()) == skip {
                continue;
            }
            let v =
                Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (i * 100 + z * 12 + y * 4 + x) as f32);
            write_volume(
                &dir.join(format!("{id}_{}.nii.gz", m.suffix())),
                v.view(),
                &grid,
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn folders_without_seg_load_in_modality_order() {
        let tmp = tempfile::tempdir().unwrap();
        write_case(tmp.path(), "Val_002", None);
        write_case(tmp.path(), "Val_001", None);
        let sources = discover_images(tmp.path()).unwrap();
        let ids: Vec<&str> = sources.iter().map(|s| s.id()).collect();
        assert_eq!(ids, ["Val_001", "Val_002"]);
        let case = sources[0].load().unwrap();
        assert_eq!(case.image.dim(), (4, 2, 3, 4));
        // Channel i holds i*100 + flat index (z, y, x) by construction.
        assert_eq!(case.image[[2, 1, 2, 3]], (200 + 12 + 8 + 3) as f32);
        assert_eq!(case.grid.dims, [4, 3, 2]);
    }

    #[test]
    fn a_missing_modality_names_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_case(tmp.path(), "Val_003", Some("t1ce"));
        let err = image_source(&dir).unwrap().load().unwrap_err().to_string();
        assert!(
            err.contains("Val_003_t1ce.nii.gz") && err.contains("missing t1ce"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_input_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = discover_images(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no case folders"), "{err}");
    }
}
