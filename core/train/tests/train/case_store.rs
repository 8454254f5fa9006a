//! The case store: preprocessing runs once per case and source state, a changed source file
//! rebuilds only its case, a folder left by a killed build is never read, and what is read back is
//! exactly what preprocessing produced.

use std::path::{Path, PathBuf};

use dsma_data::brats::load_case;
use dsma_data::labels::LabelConvention;
use dsma_data::preprocess::{crop_to_brain, zscore_brain};
use dsma_train::experiment::config::DatasetConfig;
use dsma_train::runner::prepare::{prepare, store_folder};

fn config(root: &Path) -> DatasetConfig {
    serde_json::from_value(serde_json::json!({
        "name": "Phantom",
        "kind": "phantom",
        "path": root.join("phantom"),
        "phantom": {"cases": 4, "size": [24, 24, 16], "seed": 5},
    }))
    .unwrap()
}

fn meta_bytes(folder: &Path, id: &str) -> Vec<u8> {
    std::fs::read(folder.join(id).join("meta.json")).unwrap()
}

fn case_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("phantom"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn cases_are_stored_once_rebuilt_when_their_files_change_and_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, store) = (config(tmp.path()), tmp.path().join("cache"));
    let first = prepare(&cfg, &store).unwrap();
    let folder = store_folder(&store, &cfg, LabelConvention::Brats2019);
    let ids: Vec<String> = first
        .train
        .iter()
        .chain(&first.test)
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(ids.len(), 4);

    // Read back = crop + z-score of the source case, voxel for voxel.
    for dir in case_dirs(tmp.path()) {
        let original = load_case(&dir, LabelConvention::Brats2019).unwrap();
        let (mut want, start) = crop_to_brain(&original).unwrap();
        zscore_brain(&mut want);
        let stored = first
            .train
            .iter()
            .chain(&first.test)
            .find(|c| c.id() == want.id)
            .unwrap();
        let got = stored.load().unwrap();
        assert_eq!(got.image, want.image);
        assert_eq!(got.label, want.label);
        assert_eq!(stored.meta().crop_start, start);
        assert_eq!(stored.original_label().unwrap(), original.label);
        let tumour = want.label.iter().filter(|&&v| v != 0).count();
        assert_eq!(stored.foreground().unwrap().len(), tumour);
    }

    // A second prepare opens the same folders without rewriting them.
    let before: Vec<Vec<u8>> = ids.iter().map(|id| meta_bytes(&folder, id)).collect();
    let marker = folder.join(&ids[0]).join("label.u8");
    let written_at = std::fs::metadata(&marker).unwrap().modified().unwrap();
    prepare(&cfg, &store).unwrap();
    let after: Vec<Vec<u8>> = ids.iter().map(|id| meta_bytes(&folder, id)).collect();
    assert_eq!(before, after);
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        written_at
    );

    // Replacing one source file (another size) rebuilds that case only, from the new content.
    let dir = case_dirs(tmp.path()).remove(0);
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    let other = case_dirs(tmp.path()).remove(1);
    let seg = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains("_seg"))
            .unwrap()
    };
    // Case 0's label map becomes case 1's (same grid), so its stored labels must change.
    std::fs::copy(seg(&other), seg(&dir)).unwrap();
    let untouched = ids.iter().find(|i| **i != id).unwrap().clone();
    let untouched_meta = meta_bytes(&folder, &untouched);
    let rebuilt = prepare(&cfg, &store).unwrap();
    let case = rebuilt
        .train
        .iter()
        .chain(&rebuilt.test)
        .find(|c| c.id() == id)
        .unwrap();
    let fresh = load_case(&dir, LabelConvention::Brats2019).unwrap();
    assert_eq!(case.original_label().unwrap(), fresh.label);
    assert_eq!(meta_bytes(&folder, &untouched), untouched_meta);

    // A folder left by a killed build (no meta.json, or a truncated array) is rebuilt, never read.
    std::fs::remove_file(folder.join(&id).join("meta.json")).unwrap();
    let truncated = folder.join(&untouched).join("image.f32");
    std::fs::write(&truncated, [0u8; 8]).unwrap();
    let again = prepare(&cfg, &store).unwrap();
    for c in again.train.iter().chain(&again.test) {
        let n = c.meta().grid.voxel_count() * c.meta().modalities;
        assert_eq!(c.load().unwrap().image.len(), n, "{}", c.id());
    }
    assert!(folder.join(&id).join("meta.json").exists());
}

/// The stored case of `id` as preprocessing defines it (crop to the brain, z-score).
fn expected(root: &Path, id: &str) -> dsma_data::Case {
    let dir = root.join("phantom").join(id);
    let (mut want, _) =
        crop_to_brain(&load_case(&dir, LabelConvention::Brats2019).unwrap()).unwrap();
    zscore_brain(&mut want);
    want
}

#[test]
fn a_flipped_byte_or_a_meta_json_of_another_format_rebuilds_that_case_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, store) = (config(tmp.path()), tmp.path().join("cache"));
    prepare(&cfg, &store).unwrap();
    let folder = store_folder(&store, &cfg, LabelConvention::Brats2019);
    let ids: Vec<String> = case_dirs(tmp.path())
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let flip = |id: &str, file: &str| {
        let path = folder.join(id).join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
    };
    // Same length, one bit off: the sizes alone would not show it.
    flip(&ids[0], "image.f32");
    flip(&ids[1], "foreground.u32");
    let meta = folder.join(&ids[2]).join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    let older = text.replace("\"format\": 2", "\"format\": 1");
    assert_ne!(older, text);
    std::fs::write(&meta, older).unwrap();

    let again = prepare(&cfg, &store).unwrap();
    assert_eq!(again.built, 3, "{:?}", again.rebuilt);
    let why = |id: &str| {
        let found: Vec<&String> = again.rebuilt.iter().filter(|w| w.starts_with(id)).collect();
        assert_eq!(found.len(), 1, "{:?}", again.rebuilt);
        found[0].clone()
    };
    let image = why(&ids[0]);
    assert!(
        image.contains("image.f32") && image.contains("CRC-32"),
        "{image}"
    );
    assert!(why(&ids[1]).contains("foreground.u32"));
    assert!(
        why(&ids[2]).contains("meta.json: format 1"),
        "{}",
        why(&ids[2])
    );
    assert_eq!(again.rebuilt.len(), 3);
    for c in again.train.iter().chain(&again.test) {
        let want = expected(tmp.path(), c.id());
        let got = c.load().unwrap();
        assert_eq!(got.image, want.image, "{}", c.id());
        let tumour = want.label.iter().filter(|&&v| v != 0).count();
        assert_eq!(c.foreground().unwrap().len(), tumour);
    }
    assert_eq!(prepare(&cfg, &store).unwrap().built, 0, "repaired for good");
}

#[test]
fn a_relabelled_case_links_the_image_and_holds_only_the_new_labels() {
    use dsma_data::case_store::{CaseParts, StoredCase};
    use dsma_data::{Case, Grid};
    use ndarray::{Array3, Array4};
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (z, y, x) = (3, 4, 5);
    let image = Array4::from_shape_fn((2, z, y, x), |(c, k, j, i)| {
        (c * 1000 + k * 100 + j * 10 + i) as f32
    });
    let case = Case {
        id: "image-0".into(),
        image: image.clone(),
        label: Array3::zeros((z, y, x)),
        grid: Grid::axis_aligned([x, y, z], [1.0; 3]),
        convention: LabelConvention::Brats2019,
    };
    let source = StoredCase::write(
        &tmp.path().join("images/00000"),
        &CaseParts {
            case: &case,
            crop_start: [0; 3],
            original_grid: &case.grid,
            original_label: None,
            stamp: "synthetic",
        },
    )
    .unwrap();
    // Two tumour voxels, at flat indices 0·20 + 1·5 + 2 = 7 and 2·20 + 3·5 + 4 = 59.
    let mut label = Array3::<u8>::zeros((z, y, x));
    label[[0, 1, 2]] = 1;
    label[[2, 3, 4]] = 4;
    let dir = tmp.path().join("labelled/00000");
    let relabelled = source.relabelled(&dir, "generated-3-0", &label).unwrap();
    assert_eq!(relabelled.id(), "generated-3-0");
    let back = relabelled.load().unwrap();
    assert_eq!(back.image, image);
    assert_eq!(back.label, label);
    assert_eq!(back.convention, LabelConvention::Brats2019);
    assert_eq!(relabelled.foreground().unwrap(), vec![7, 59]);
    // One file on disk for both images: linked, not written again.
    let inode = |p: &Path| std::fs::metadata(p.join("image.f32")).unwrap().ino();
    assert_eq!(inode(source.dir()), inode(&dir));
    // The source keeps its own labels; wrong-shaped labels are refused.
    assert_eq!(source.load().unwrap().label, Array3::<u8>::zeros((z, y, x)));
    let err = source
        .relabelled(&tmp.path().join("bad"), "bad", &Array3::zeros((1, 1, 1)))
        .unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
}
