//! Loading a dataset for training: phantom generation on first use, split, preprocessing, caching.

use std::path::{Path, PathBuf};

use ndarray::Array3;
use rayon::prelude::*;

use crate::experiment::config::{DatasetConfig, DatasetKind};
use crate::runner::plan::stable_hash;
use crate::runner::progress::{PrepareSummary, RunObserver, Silent};
use crate::runner::stage_lock::StageLock;
use dsma_data::brats::{discover, load_case, DatasetOptions};
use dsma_data::case_store::{CaseParts, StoredCase, Unusable};
use dsma_data::error::{CoreError, Result};
use dsma_data::labels::LabelConvention;
use dsma_data::preprocess::{crop_to_brain, zscore_brain};
use dsma_data::split::{split_cases, Split};
use dsma_data::volume::Case;

/// Preprocessing version: part of every stored case's stamp, so a change rebuilds the store.
const PREPROCESSING: &str = "crop-to-brain, z-score in brain, v1";

/// Preprocesses one loaded case (crop to the brain, z-score) into the store folder `dir`.
fn store_case(original: Case, dir: &Path, stamp: &str) -> Result<StoredCase> {
    let (mut case, crop_start) = crop_to_brain(&original)?;
    zscore_brain(&mut case);
    // The original labels cost 9 MB per BraTS case; keep them only if the crop lost some
    // (the crop is a sub-box, so equal tumour counts mean uncropping restores them exactly).
    let tumour = |l: &Array3<u8>| l.iter().filter(|&&v| v != 0).count();
    let lost = tumour(&original.label) != tumour(&case.label);
    StoredCase::write(
        dir,
        &CaseParts {
            case: &case,
            crop_start,
            original_grid: &original.grid,
            original_label: lost.then_some(&original.label),
            stamp,
        },
    )
}

/// The stamp of a case's sources: the preprocessing version and every source file's name, size
/// and modification time (a changed or replaced file rebuilds the case; reading every byte of a
/// 369-case dataset to hash it would cost more than the preprocessing).
fn source_stamp(dir: &Path, convention: LabelConvention) -> Result<String> {
    let mut files: Vec<PathBuf> = if dir.is_file() {
        let mut v = vec![dir.to_path_buf()];
        if let (Some(name), Some(root)) = (dir.file_name(), dir.parent().and_then(Path::parent)) {
            v.push(root.join("labelsTr").join(name));
        }
        v
    } else {
        std::fs::read_dir(dir)
            .map_err(|e| CoreError::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect()
    };
    files.sort();
    let mut key = format!("{PREPROCESSING}|{}|", convention.name());
    for f in files {
        let meta = std::fs::metadata(&f).map_err(|e| CoreError::io(&f, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        key.push_str(&format!("{}:{}:{mtime}|", f.display(), meta.len()));
    }
    Ok(format!("{:016x}", stable_hash(key.as_bytes())))
}

/// What [`stored`] did with one case.
enum Stored {
    /// Opened from the store.
    Reused,
    /// Built: it was not in the store.
    Built,
    /// Built again; the text names the case and why its stored folder could not be used.
    Rebuilt(String),
}

/// The stored case of the source `dir`: opened when its stamp matches and its files their sums,
/// else built now; `told` hears which.
fn stored(
    dir: &Path,
    folder: &Path,
    convention: LabelConvention,
    told: &(dyn Fn(Stored) + Sync),
) -> Result<StoredCase> {
    let id = dir_id(dir);
    // The id names a folder of the store: one plain name, never `..` or a path.
    if !dsma_data::volume::is_plain_name(&id) {
        return Err(CoreError::Dataset {
            case: id.clone(),
            file: dir.to_path_buf(),
            problem: "its case id cannot name a folder of the case store".into(),
        });
    }
    let stamp = source_stamp(dir, convention)?;
    let target = folder.join(&id);
    let outcome = match StoredCase::check(&target, &stamp) {
        Ok(c) => {
            told(Stored::Reused);
            return Ok(c);
        }
        Err(Unusable::Absent) => Stored::Built,
        Err(Unusable::Rebuild(why)) => {
            Stored::Rebuilt(format!("{id}: rebuilt from {}: {why}", dir.display()))
        }
    };
    let c = store_case(load_case(dir, convention)?, &target, &stamp)?;
    told(outcome);
    Ok(c)
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
    pub train: Vec<StoredCase>,
    /// Test cases, in `split.test` order.
    pub test: Vec<StoredCase>,
    /// How many of them this call preprocessed (the others were in the store already).
    pub built: usize,
    /// Why each case that was in the store had to be rebuilt (a corrupt file, changed sources, an
    /// older layout), by case id.
    pub rebuilt: Vec<String>,
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
        // Shards of one table may start together: one generates, the others wait, then find it.
        let name = cfg
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let lock_dir = cfg
            .path
            .with_file_name(format!(".{}.phantom-lock", name.unwrap_or_default()));
        let _lock = StageLock::acquire(&lock_dir, &mut Silent)?;
        let present = discover(&cfg.path, &DatasetOptions::new(convention)).map_or(0, |d| d.len());
        if present < spec.cases {
            dsma_data::phantom::write_dataset(&cfg.path, spec)?;
        }
    }
    Ok(())
}

/// The store folder of a dataset under `root`: its name, and a hash of what decides its cases'
/// content besides the case files themselves (kind, folder, label convention). The layout version
/// is not part of it: each case's `meta.json` records it, so a store of an older layout is rebuilt
/// in place, case by case, rather than left behind beside a new one. (The key once held layout 1;
/// the `|1` keeps the folders stores already have.)
pub fn store_folder(root: &Path, cfg: &DatasetConfig, convention: LabelConvention) -> PathBuf {
    let path = cfg.path.canonicalize().unwrap_or_else(|_| cfg.path.clone());
    let key = format!("{:?}|{}|{}|1", cfg.kind, path.display(), convention.name());
    root.join("cases").join(format!(
        "{}-{:016x}",
        crate::runner::plan::slug(&cfg.name),
        stable_hash(key.as_bytes())
    ))
}

/// Prepares each distinct dataset of `datasets` once, in order, into the case store under
/// `store_root`; `obs` hears of every case ([`RunObserver::preparing`]) and of each dataset's
/// [`PrepareSummary`].
pub fn prepare_datasets(
    datasets: &[&DatasetConfig],
    store_root: &Path,
    obs: &mut dyn RunObserver,
) -> Result<Vec<(DatasetConfig, PreparedData)>> {
    let mut prepared: Vec<(DatasetConfig, PreparedData)> = Vec::new();
    for &cfg in datasets {
        if prepared.iter().any(|(c, _)| c == cfg) {
            continue;
        }
        let started = std::time::Instant::now();
        let tick = obs.preparing(&cfg.name);
        let data = prepare_with(cfg, store_root, tick.as_ref())?;
        drop(tick);
        let cases: Vec<&StoredCase> = data.train.iter().chain(&data.test).collect();
        obs.prepared(&PrepareSummary {
            dataset: cfg.name.clone(),
            cases: cases.len(),
            built: data.built,
            rebuilt: data.rebuilt.clone(),
            folder: store_folder(store_root, cfg, data.convention),
            seconds: started.elapsed().as_secs_f64(),
            bytes: cases.iter().map(|c| c.disk_bytes()).sum(),
        });
        prepared.push((cfg.clone(), data));
    }
    Ok(prepared)
}

/// Loads, splits and preprocesses a dataset into the case store under `store_root` (phantoms are
/// generated on first use; cases already stored from the same sources are opened, not rebuilt).
pub fn prepare(cfg: &DatasetConfig, store_root: &Path) -> Result<PreparedData> {
    prepare_with(cfg, store_root, &|_| {})
}

/// [`prepare`], telling `progress` after each case whether it was built (`true`) or reused.
pub fn prepare_with(
    cfg: &DatasetConfig,
    store_root: &Path,
    progress: &(dyn Fn(bool) + Sync),
) -> Result<PreparedData> {
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
    let folder = store_folder(store_root, cfg, convention);
    let built = std::sync::atomic::AtomicUsize::new(0);
    let rebuilt = std::sync::Mutex::new(Vec::new());
    let counted = |outcome: Stored| {
        let new = !matches!(outcome, Stored::Reused);
        if new {
            built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Stored::Rebuilt(why) = outcome {
            rebuilt.lock().unwrap_or_else(|e| e.into_inner()).push(why);
        }
        progress(new);
    };
    let load = |wanted: &[String]| -> Result<Vec<StoredCase>> {
        wanted
            .par_iter()
            .map(|id| {
                let dir = dirs
                    .iter()
                    .find(|d| &dir_id(d) == id)
                    .ok_or_else(|| CoreError::invalid("split", format!("unknown case {id}")))?;
                stored(dir, &folder, convention, &counted)
            })
            .collect()
    };
    let (train, test) = (load(&split.train)?, load(&split.test)?);
    let mut rebuilt = rebuilt.into_inner().unwrap_or_else(|e| e.into_inner());
    rebuilt.sort();
    Ok(PreparedData {
        name: cfg.name.clone(),
        convention,
        train,
        test,
        split,
        built: built.into_inner(),
        rebuilt,
    })
}

fn dir_id(dir: &Path) -> String {
    dsma_data::brats::case_id(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsma_data::volume::Grid;
    use ndarray::{s, Array4};

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
    fn a_case_whose_id_is_not_a_plain_name_is_refused_before_anything_is_read_or_written() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("sub")).unwrap();
        let store = tmp.path().join("store");
        // `sub/..` has no file name, so its id would be the whole path.
        let e = stored(
            &tmp.path().join("sub/.."),
            &store,
            LabelConvention::Brats2019,
            &|_: Stored| panic!("nothing is built"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot name a folder of the case store"), "{e}");
        assert!(!store.exists());
        for id in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(!dsma_data::volume::is_plain_name(id), "{id:?}");
        }
        for id in ["BraTS2021_00000", "...x", ".hidden", "a b"] {
            assert!(dsma_data::volume::is_plain_name(id), "{id:?}");
        }
    }

    #[test]
    fn original_labels_are_rebuilt_from_the_crop_or_kept_when_the_crop_lost_some() {
        let tmp = tempfile::tempdir().unwrap();
        for outside in [false, true] {
            let original = case(outside);
            let expected = original.label.clone();
            let dir = tmp.path().join(format!("toy-{outside}"));
            let stored = store_case(original, &dir, "s").unwrap();
            let loaded = stored.load().unwrap();
            // The brain box is voxels 2..8 × 3..9 × 4..10 (z, y, x).
            assert_eq!(loaded.label.dim(), (6, 6, 6));
            assert_eq!(
                loaded.label[[2, 2, 2]],
                4,
                "voxel (4, 5, 6) of the original"
            );
            assert_eq!(stored.meta().crop_start, [2, 3, 4]);
            assert_eq!(stored.meta().original_label, outside);
            assert_eq!(stored.original_label().unwrap(), expected);
            assert_eq!(stored.foreground().unwrap().len(), 2);
            assert!(StoredCase::open(&dir, "s").is_some());
            assert!(StoredCase::open(&dir, "other sources").is_none());
        }
    }
}
