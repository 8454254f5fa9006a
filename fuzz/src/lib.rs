//! What the fuzz targets share: the NIfTI reader driven every way dsma reads a file, and the
//! experiment loader driven through a real file on disk.

use std::path::{Path, PathBuf};

use dsma_data::nifti_io::{self, RawNifti};

/// The name every NIfTI error must carry.
const NIFTI_NAME: &str = "fuzz-input.nii.gz";

/// Asserts that an error message names `name` (every bad input gets a named error).
fn named(err: impl std::fmt::Display, name: &str) {
    let text = err.to_string();
    assert!(text.contains(name), "error does not name {name}: {text}");
}

/// Decompresses `data` as dsma does a `.nii`/`.nii.gz` file, then reads it as one volume (header,
/// size checks, decoding) and as a stack of volumes; a successful read must have the header's shape.
pub fn read_all_ways(data: &[u8]) {
    let path = Path::new(NIFTI_NAME);
    let bytes = match nifti_io::decompress(path, data.to_vec()) {
        Ok(b) => b,
        Err(e) => return named(e, NIFTI_NAME),
    };
    match RawNifti::from_bytes(path, bytes.clone()) {
        Ok(raw) => {
            let (volume, _) = raw.decode();
            let [x, y, z] = raw.grid.dims;
            assert_eq!(volume.dim(), (z, y, x));
        }
        Err(e) => named(e, NIFTI_NAME),
    }
    match nifti_io::volumes_from_bytes(path, &bytes) {
        Ok(v) => {
            let [x, y, z] = v.grid.dims;
            assert_eq!(&v.data.shape()[1..], &[z, y, x]);
        }
        Err(e) => named(e, NIFTI_NAME),
    }
}

/// A scratch folder of this fuzzing process, made once.
pub fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var_os("DSMA_FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("dsma-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        // The repository's experiment files sit beside the input, so `extends:` of them resolves.
        let experiments = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
        for entry in std::fs::read_dir(experiments).into_iter().flatten().flatten() {
            let _ = std::fs::copy(entry.path(), dir.join(entry.file_name()));
        }
        dir
    })
}

/// Loads `text` as the experiment file `name` in the scratch folder with `overrides`; any error
/// must be a named one (the file, or the override it comes from).
pub fn load_experiment(name: &str, text: &[u8], overrides: &[String]) {
    let path = scratch().join(name);
    std::fs::write(&path, text).expect("write the experiment file");
    if let Err(e) = dsma_train::experiment::load(&path, overrides) {
        let msg = e.to_string();
        let names_input = msg.contains(name)
            || msg.contains("override")
            || msg.contains("extends")
            || overrides.iter().any(|o| msg.contains(o.as_str()));
        assert!(names_input, "error names neither file nor override: {msg}");
    }
}
