//! The on-disk case store: each preprocessed case (cropped to the brain, z-scored, labels in its
//! convention) written once as raw arrays beside a `meta.json`, then read through memory maps.
//!
//! A case folder holds `image.f32` (`[modality, z, y, x]`, C order, native byte order), `label.u8`
//! (`[z, y, x]`), `foreground.u32` (flat indices of its tumour voxels, for the patch sampler),
//! `original_label.u8` only when the brain crop lost tumour voxels, and `meta.json` (id, grids, crop
//! start, byte order, the stamp of its sources, the length and CRC-32 of every array file). Folders
//! are written under a temporary name and renamed, so a killed build never leaves a half-written case
//! that looks complete; opening a folder reads every array file against its recorded sum, so a
//! flipped byte or a truncated file is rebuilt from the source, never trained on. Training reads
//! patches through a map that lives only for that patch: the pages stay in the page cache, not in
//! the process's heap or resident set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{s, Array3, ArrayView3, ArrayView4};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::checksum::FileSum;
use crate::error::{CoreError, Result};
use crate::labels::LabelConvention;
use crate::preprocess::{foreground_indices, sample_patch_from, Patch, PatchConfig};
use crate::volume::{Case, Grid};

/// Version of the folder layout; a store of another version is rebuilt.
pub const FORMAT: u32 = 2;

/// What `meta.json` records about a stored case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseMeta {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Case identifier.
    pub id: String,
    /// Label convention of `label.u8`.
    pub convention: LabelConvention,
    /// Number of image channels.
    pub modalities: usize,
    /// Grid of the stored (cropped) volume.
    pub grid: Grid,
    /// Start (z, y, x) of the crop in the original volume.
    pub crop_start: [usize; 3],
    /// Grid of the original volume (predictions are written on it).
    pub original_grid: Grid,
    /// Whether `original_label.u8` is stored (the crop lost tumour voxels).
    pub original_label: bool,
    /// Number of tumour voxels (entries of `foreground.u32`).
    pub foreground: usize,
    /// `little` or `big`: the byte order the arrays were written in.
    pub byte_order: String,
    /// Fingerprint of the source files and preprocessing the case was built from.
    pub stamp: String,
    /// Length and CRC-32 of each array file, by file name.
    pub files: BTreeMap<String, FileSum>,
}

/// Why a case folder cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// There is no case folder.
    Absent,
    /// The folder must be rebuilt from its source; the text says why, naming the file.
    Rebuild(String),
}

/// The array files of a case folder, written and checked by name.
#[derive(Default)]
struct Sums(BTreeMap<String, FileSum>);

impl Sums {
    /// Writes `bytes` as `tmp/name` and records their sum.
    fn put(&mut self, tmp: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&tmp.join(name), bytes)?;
        self.0.insert(name.to_string(), FileSum::of(bytes));
        Ok(())
    }
}

/// A preprocessed case to store, with what is needed to put predictions back on its input grid.
pub struct CaseParts<'a> {
    /// The cropped, z-scored case.
    pub case: &'a Case,
    /// Start (z, y, x) of the crop in the original volume.
    pub crop_start: [usize; 3],
    /// Grid of the original volume.
    pub original_grid: &'a Grid,
    /// The original labels, when the crop lost tumour voxels.
    pub original_label: Option<&'a Array3<u8>>,
    /// Fingerprint of the sources.
    pub stamp: &'a str,
}

/// A case in the store: its folder and metadata; the arrays stay on disk until asked for.
#[derive(Debug, Clone)]
pub struct StoredCase {
    dir: PathBuf,
    meta: CaseMeta,
}

fn byte_order() -> &'static str {
    if cfg!(target_endian = "little") {
        "little"
    } else {
        "big"
    }
}

fn corrupt(path: &Path, problem: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(
        format!("case store {}", path.display()),
        format!("{problem}; delete the folder to rebuild it"),
    )
}

/// Opens `path`; once more after a moment when it is missing, since another process may be
/// swapping a rebuilt folder of the case into place (two renames, see [`publish`]).
fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path).or_else(|e| {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(e);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::File::open(path)
    })
}

/// Maps `path` read-only.
fn map(path: &Path) -> Result<Option<Mmap>> {
    let file = open_file(path).map_err(|e| CoreError::io(path, e))?;
    let len = file.metadata().map_err(|e| CoreError::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: store files are written once under a temporary name and renamed into place, never
    // modified afterwards, so the mapped bytes do not change while the map lives.
    unsafe { Mmap::map(&file) }
        .map(Some)
        .map_err(|e| CoreError::io(path, e))
}

/// The values of a mapped file (empty when the file is).
fn values<'a, T: bytemuck::Pod>(map: &'a Option<Mmap>, path: &Path) -> Result<&'a [T]> {
    match map {
        None => Ok(&[]),
        Some(m) => bytemuck::try_cast_slice(m).map_err(|e| corrupt(path, format!("{e:?}"))),
    }
}

/// Renames the finished folder `tmp` to `dir`. Another process (a shard of the same table) may
/// have published the same case meanwhile: its folder is then used (`Some`) and `tmp` dropped; a
/// stale or corrupt folder is renamed aside, replaced, then removed, so a process reading it (whose
/// maps stay valid) finds the path missing only between two renames.
fn publish(tmp: &Path, dir: &Path, stamp: &str) -> Result<Option<StoredCase>> {
    for _ in 0..3 {
        if std::fs::rename(tmp, dir).is_ok() {
            return Ok(None);
        }
        if let Some(theirs) = StoredCase::open(dir, stamp) {
            return Ok(Some(theirs));
        }
        if dir.exists() {
            let aside = tmp.with_extension("old");
            let _ = std::fs::remove_dir_all(&aside);
            let swapped = std::fs::rename(dir, &aside).is_ok() && std::fs::rename(tmp, dir).is_ok();
            let _ = std::fs::remove_dir_all(&aside);
            if swapped {
                return Ok(None);
            }
        }
    }
    std::fs::rename(tmp, dir)
        .map(|()| None)
        .map_err(|e| CoreError::io(dir, e))
}

/// Flat indices of the tumour voxels of `label` (case `id`), as stored.
fn tumour_indices(label: &Array3<u8>, id: &str) -> Result<Vec<u32>> {
    foreground_indices(label.view())
        .into_iter()
        .map(u32::try_from)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| CoreError::invalid(id, "more than 2³² voxels in one volume"))
}

/// Writes `label.u8` and `foreground.u32` into the folder `tmp`.
fn write_labels(tmp: &Path, label: &Array3<u8>, foreground: &[u32], sums: &mut Sums) -> Result<()> {
    let label = label.as_standard_layout();
    sums.put(tmp, "label.u8", label.as_slice().unwrap_or(&[]))?;
    sums.put(tmp, "foreground.u32", bytemuck::cast_slice(foreground))
}

/// Fills a temporary folder beside `dir` with `fill`, adds `meta.json` (with the sums of what
/// `fill` wrote) and publishes it as `dir`.
fn write_folder(
    dir: &Path,
    mut meta: CaseMeta,
    fill: impl FnOnce(&Path, &mut Sums) -> Result<()>,
) -> Result<StoredCase> {
    let tmp = dir.with_file_name(format!(
        ".{}.{}.tmp",
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
        let mut sums = Sums::default();
        fill(&tmp, &mut sums)?;
        meta.files = sums.0;
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| CoreError::codec("case store meta.json", e))?;
        write_atomic(&tmp.join("meta.json"), &json)?;
        publish(&tmp, dir, &meta.stamp)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    written.map(|built| {
        built.unwrap_or(StoredCase {
            dir: dir.to_path_buf(),
            meta,
        })
    })
}

impl StoredCase {
    /// Writes `parts` as the case folder `dir` (replacing an older one) and returns its handle.
    pub fn write(dir: &Path, parts: &CaseParts<'_>) -> Result<StoredCase> {
        let c = parts.case;
        let foreground = tumour_indices(&c.label, &c.id)?;
        let meta = CaseMeta {
            format: FORMAT,
            id: c.id.clone(),
            convention: c.convention,
            modalities: c.image.dim().0,
            grid: c.grid.clone(),
            crop_start: parts.crop_start,
            original_grid: parts.original_grid.clone(),
            original_label: parts.original_label.is_some(),
            foreground: foreground.len(),
            byte_order: byte_order().into(),
            stamp: parts.stamp.to_string(),
            files: BTreeMap::new(),
        };
        write_folder(dir, meta, |tmp, sums| {
            let image = c.image.as_standard_layout();
            let image_bytes: &[u8] = bytemuck::cast_slice(image.as_slice().unwrap_or(&[]));
            sums.put(tmp, "image.f32", image_bytes)?;
            write_labels(tmp, &c.label, &foreground, sums)?;
            if let Some(l) = parts.original_label {
                let l = l.as_standard_layout();
                sums.put(tmp, "original_label.u8", l.as_slice().unwrap_or(&[]))?;
            }
            Ok(())
        })
    }

    /// This case with other labels, as the folder `dir` under the id `id`: the image file is
    /// linked, not rewritten (copied where the file system cannot link), so relabelling a
    /// generated image every epoch writes its labels only.
    pub fn relabelled(&self, dir: &Path, id: &str, label: &Array3<u8>) -> Result<StoredCase> {
        let (_, z, y, x) = self.shape();
        if label.dim() != (z, y, x) {
            return Err(CoreError::invalid(
                id,
                format!(
                    "labels of shape {:?}; the image is {:?}",
                    label.dim(),
                    (z, y, x)
                ),
            ));
        }
        let foreground = tumour_indices(label, id)?;
        let meta = CaseMeta {
            id: id.to_string(),
            original_label: false,
            foreground: foreground.len(),
            ..self.meta.clone()
        };
        let source = self.dir.join("image.f32");
        // The image's sum carries over with it (every stored case has one: `write` records it
        // and `check` requires it).
        let image_sum = self.meta.files.get("image.f32").copied();
        write_folder(dir, meta, |tmp, sums| {
            let target = tmp.join("image.f32");
            if std::fs::hard_link(&source, &target).is_err() {
                std::fs::copy(&source, &target).map_err(|e| CoreError::io(&source, e))?;
            }
            sums.0
                .extend(image_sum.map(|sum| ("image.f32".to_string(), sum)));
            write_labels(tmp, label, &foreground, sums)
        })
    }

    /// Opens the case folder `dir` when it is complete, of this layout and byte order, and built
    /// from `stamp`; `None` when it must be (re)built ([`StoredCase::check`] says why).
    pub fn open(dir: &Path, stamp: &str) -> Option<StoredCase> {
        StoredCase::check(dir, stamp).ok()
    }

    /// Opens the case folder `dir` after reading every array file against the length and CRC-32
    /// its `meta.json` records; otherwise says why it must be (re)built, naming the file.
    pub fn check(dir: &Path, stamp: &str) -> std::result::Result<StoredCase, Unusable> {
        let meta_path = dir.join("meta.json");
        // A problem of meta.json itself names it.
        let bad = |why: String| Unusable::Rebuild(format!("{}: {why}", meta_path.display()));
        let bytes = match std::fs::read(&meta_path) {
            Ok(bytes) => bytes,
            Err(_) if !dir.exists() => return Err(Unusable::Absent),
            Err(e) => return Err(bad(format!("unreadable ({e})"))),
        };
        let meta = serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| bad(format!("unreadable ({e})")))?;
        let format = meta.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            let found = format.map_or_else(|| "no format".into(), |f| format!("format {f}"));
            return Err(bad(format!("{found}, this dsma reads format {FORMAT}")));
        }
        let meta = serde_json::from_value::<CaseMeta>(meta)
            .map_err(|e| bad(format!("unreadable ({e})")))?;
        if meta.stamp != stamp {
            return Err(bad(
                "built from other source files (they changed since)".into()
            ));
        }
        if meta.byte_order != byte_order() {
            return Err(bad(format!("{}-endian arrays", meta.byte_order)));
        }
        let case = StoredCase {
            dir: dir.to_path_buf(),
            meta,
        };
        case.verify().map_err(Unusable::Rebuild)?;
        Ok(case)
    }

    /// Compares every array file with the sum `meta.json` records and the length the grids imply.
    fn verify(&self) -> std::result::Result<(), String> {
        let voxels = self.meta.grid.voxel_count();
        let mut want = vec![
            ("image.f32", voxels * self.meta.modalities * 4),
            ("label.u8", voxels),
            ("foreground.u32", self.meta.foreground * 4),
        ];
        if self.meta.original_label {
            want.push(("original_label.u8", self.meta.original_grid.voxel_count()));
        }
        for (name, len) in want {
            let path = self.dir.join(name);
            let Some(recorded) = self.meta.files.get(name) else {
                return Err(format!("{}: no checksum in meta.json", path.display()));
            };
            if recorded.len != len as u64 {
                return Err(format!(
                    "meta.json records {} bytes for {name}, its grid needs {len}",
                    recorded.len
                ));
            }
            let got = FileSum::of_file(&path).map_err(|e| e.to_string())?;
            if let Some(problem) = recorded.mismatch(&got) {
                return Err(format!("{}: {problem}", path.display()));
            }
        }
        Ok(())
    }

    /// The metadata.
    pub fn meta(&self) -> &CaseMeta {
        &self.meta
    }

    /// The case identifier.
    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// The case folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn shape(&self) -> (usize, usize, usize, usize) {
        let (z, y, x) = self.meta.grid.shape_zyx();
        (self.meta.modalities, z, y, x)
    }

    /// Runs `f` on views of the mapped image, labels and tumour indices; the maps end with it.
    fn with_views<T>(
        &self,
        f: impl FnOnce(ArrayView4<f32>, ArrayView3<u8>, &[u32]) -> T,
    ) -> Result<T> {
        let paths = ["image.f32", "label.u8", "foreground.u32"].map(|n| self.dir.join(n));
        let maps = [map(&paths[0])?, map(&paths[1])?, map(&paths[2])?];
        let image = values::<f32>(&maps[0], &paths[0])?;
        let label = values::<u8>(&maps[1], &paths[1])?;
        let fg = values::<u32>(&maps[2], &paths[2])?;
        let shape = self.shape();
        let image = ArrayView4::from_shape(shape, image).map_err(|e| corrupt(&paths[0], e))?;
        let label = ArrayView3::from_shape((shape.1, shape.2, shape.3), label)
            .map_err(|e| corrupt(&paths[1], e))?;
        Ok(f(image, label, fg))
    }

    /// Reads the whole case into memory.
    pub fn load(&self) -> Result<Case> {
        let (image, label) = self.with_views(|i, l, _| (i.to_owned(), l.to_owned()))?;
        Ok(Case {
            id: self.meta.id.clone(),
            image,
            label,
            grid: self.meta.grid.clone(),
            convention: self.meta.convention,
        })
    }

    /// Flat indices of the tumour voxels.
    pub fn foreground(&self) -> Result<Vec<usize>> {
        self.with_views(|_, _, fg| fg.iter().map(|&i| i as usize).collect())
    }

    /// One training patch, read through maps that end with the call (see
    /// [`crate::preprocess::sample_patch`] for the sampling rule).
    pub fn sample_patch<R: Rng + ?Sized>(&self, cfg: &PatchConfig, rng: &mut R) -> Result<Patch> {
        self.with_views(|image, label, fg| sample_patch_from(image, label, fg, cfg, rng))
    }

    /// Places a label map of the cropped case back into the original volume.
    pub fn uncrop(&self, cropped: &Array3<u8>) -> Array3<u8> {
        let mut full = Array3::<u8>::zeros(self.meta.original_grid.shape_zyx());
        let (z, y, x) = cropped.dim();
        let [a, b, c] = self.meta.crop_start;
        full.slice_mut(s![a..a + z, b..b + y, c..c + x])
            .assign(cropped);
        full
    }

    /// Labels on the original grid (metrics are computed there).
    pub fn original_label(&self) -> Result<Array3<u8>> {
        if !self.meta.original_label {
            return self.with_views(|_, l, _| self.uncrop(&l.to_owned()));
        }
        let path = self.dir.join("original_label.u8");
        let bytes = std::fs::read(&path).map_err(|e| CoreError::io(&path, e))?;
        Array3::from_shape_vec(self.meta.original_grid.shape_zyx(), bytes)
            .map_err(|e| corrupt(&path, e))
    }

    /// Bytes the case takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}
