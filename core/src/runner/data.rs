//! Loading a dataset for training: phantom generation on first use, split, preprocessing, caching.

use std::borrow::Cow;
use std::path::Path;

use ndarray::{s, Array3};
use rayon::prelude::*;

use crate::brats::{discover, load_case, split_cases, DatasetOptions, Split};
use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;
use crate::preprocess::{crop_to_brain, foreground_indices, zscore_brain};
use crate::runner::config::{DatasetConfig, DatasetKind};
use crate::volume::{Case, Grid};

/// A case ready for training and evaluation.
#[derive(Debug, Clone)]
pub struct PreparedCase {
    /// Preprocessed case: cropped to the brain and z-scored.
    pub case: Case,
    /// Flat indices of its tumour voxels (patch sampler).
    pub foreground: Vec<usize>,
    /// Start (z, y, x) of the crop in the original volume.
    pub crop_start: [usize; 3],
    /// Grid of the original volume (predictions are written on it).
    pub original_grid: Grid,
    /// Labels on the original grid, kept only where they are not the uncropped `case.label`
    /// (tumour labels outside the brain crop); see [`PreparedCase::original_label`].
    original_label: Option<Array3<u8>>,
}

impl PreparedCase {
    /// Prepares one loaded case.
    pub fn new(original: Case) -> Result<Self> {
        let (mut case, crop_start) = crop_to_brain(&original)?;
        zscore_brain(&mut case);
        let foreground = foreground_indices(case.label.view());
        // The original labels cost 9 MB per BraTS case; keep them only if the crop lost some
        // (the crop is a sub-box, so equal tumour counts mean uncropping restores them exactly).
        let tumour = |l: &Array3<u8>| l.iter().filter(|&&v| v != 0).count();
        let original_label =
            (tumour(&original.label) != tumour(&case.label)).then_some(original.label);
        Ok(PreparedCase {
            case,
            foreground,
            crop_start,
            original_grid: original.grid,
            original_label,
        })
    }

    /// Places a label map of the cropped case back into the original volume.
    pub fn uncrop(&self, cropped: &Array3<u8>) -> Array3<u8> {
        let mut full = Array3::<u8>::zeros(self.original_grid.shape_zyx());
        let (z, y, x) = cropped.dim();
        let [a, b, c] = self.crop_start;
        full.slice_mut(s![a..a + z, b..b + y, c..c + x])
            .assign(cropped);
        full
    }

    /// Labels on the original grid (metrics are computed there).
    pub fn original_label(&self) -> Cow<'_, Array3<u8>> {
        match &self.original_label {
            Some(l) => Cow::Borrowed(l),
            None => Cow::Owned(self.uncrop(&self.case.label)),
        }
    }
}

/// A dataset split into prepared training and test cases.
#[derive(Debug)]
pub struct PreparedData {
    /// Dataset name (column group).
    pub name: String,
    /// Label convention of its files.
    pub convention: LabelConvention,
    /// The train/test partition.
    pub split: Split,
    /// Training cases, in `split.train` order.
    pub train: Vec<PreparedCase>,
    /// Test cases, in `split.test` order.
    pub test: Vec<PreparedCase>,
}

/// Generates the phantom into `cfg.path` unless every case is already there.
fn ensure_phantom(cfg: &DatasetConfig, convention: LabelConvention) -> Result<()> {
    let spec = cfg.phantom.as_ref().ok_or_else(|| {
        CoreError::invalid(
            format!("datasets.{}.phantom", cfg.name),
            "missing; a phantom dataset needs `phantom: {cases, size, seed}`",
        )
    })?;
    let present = if cfg.path.is_dir() {
        discover(&cfg.path, &DatasetOptions::new(convention))
            .map(|d| d.len())
            .unwrap_or(0)
    } else {
        0
    };
    if present < spec.cases {
        crate::phantom::write_dataset(&cfg.path, spec)?;
    }
    Ok(())
}

/// Loads, splits and preprocesses a dataset (phantoms are generated on first use).
pub fn prepare(cfg: &DatasetConfig) -> Result<PreparedData> {
    let convention = cfg.convention()?;
    if cfg.kind == DatasetKind::Phantom {
        ensure_phantom(cfg, convention)?;
    }
    let dirs = discover(&cfg.path, &DatasetOptions::new(convention))?;
    let dirs: Vec<_> = match cfg.max_cases {
        Some(n) => dirs.into_iter().take(n).collect(),
        None => dirs,
    };
    let ids: Vec<String> = dirs.iter().map(|d| dir_id(d)).collect();
    let split = split_cases(&ids, cfg.split_seed, cfg.train_fraction).map_err(|e| {
        CoreError::invalid(
            format!("datasets.{} ({})", cfg.name, cfg.path.display()),
            e.to_string(),
        )
    })?;
    let load = |wanted: &[String]| -> Result<Vec<PreparedCase>> {
        wanted
            .par_iter()
            .map(|id| {
                let dir = dirs
                    .iter()
                    .find(|d| &dir_id(d) == id)
                    .ok_or_else(|| CoreError::invalid("split", format!("unknown case {id}")))?;
                PreparedCase::new(load_case(dir, convention)?)
            })
            .collect()
    };
    Ok(PreparedData {
        name: cfg.name.clone(),
        convention,
        train: load(&split.train)?,
        test: load(&split.test)?,
        split,
    })
}

fn dir_id(dir: &Path) -> String {
    crate::brats::case_id(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn case(label_outside_brain: bool) -> Case {
        let mut image = Array4::<f32>::zeros((4, 10, 12, 14));
        image.slice_mut(s![.., 2..8, 3..9, 4..10]).fill(5.0);
        image[[0, 4, 5, 6]] = 7.0;
        let mut label = Array3::<u8>::zeros((10, 12, 14));
        label[[4, 5, 6]] = 4;
        label[[3, 4, 5]] = 2;
        if label_outside_brain {
            label[[0, 0, 0]] = 1;
        }
        Case {
            id: "toy".into(),
            image,
            label,
            grid: Grid::axis_aligned([14, 12, 10], [1.0, 1.0, 1.0]),
            convention: LabelConvention::Brats2019,
        }
    }

    #[test]
    fn original_labels_are_rebuilt_from_the_crop_or_kept_when_the_crop_lost_some() {
        for outside in [false, true] {
            let original = case(outside);
            let expected = original.label.clone();
            let prepared = PreparedCase::new(original).unwrap();
            assert_eq!(prepared.case.label.dim(), (6, 6, 6));
            assert_eq!(prepared.original_label.is_some(), outside);
            assert_eq!(*prepared.original_label(), expected);
            assert_eq!(prepared.uncrop(&prepared.case.label).dim(), (10, 12, 14));
        }
    }
}
