//! Checkpoints: a folder per save (model and EMA as safetensors via burn-store, optimizer state,
//! `state.json` with epoch, records, weighter state and a CRC-32 of every file), published atomically
//! (written under a temporary name, then renamed) and pointed to by a `latest` file.

pub mod crash_point;
pub mod module_state;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crash_point::CrashPoint;
use dsma_data::atomic_file::write_atomic;
use dsma_data::checksum::FileSum;
use dsma_data::error::{CoreError, Result};

/// Format version of `state.json`.
pub const FORMAT: u32 = 1;

/// A checkpoint in memory: named binary files plus the JSON state.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// File name → content (e.g. `model.safetensors`).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Training state (epoch, records, weighter, ...).
    pub state: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    files: BTreeMap<String, FileSum>,
    state: serde_json::Value,
}

/// Writes `ckpt` as `dir/<name>/` atomically and points `dir/latest` at it; removes older saves
/// except those in `keep`.
pub fn save(dir: &Path, name: &str, ckpt: &Checkpoint, keep: &[&str]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
    }
    if let Err(e) = write_folder(&tmp, ckpt) {
        // A full disk or a failed write leaves no half-written folder taking the space.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let number = name
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    crash_point::hit(CrashPoint::Checkpoint, number);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| CoreError::io(&target, e))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| CoreError::io(&target, e))?;
    write_atomic(&dir.join("latest"), name.as_bytes())?;
    // Prune older saves (and temporaries of dead processes).
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.path().is_dir();
            if is_dir && n != name && !keep.contains(&n.as_str()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(target)
}

/// Writes every file of `ckpt` and its `state.json` (sums included) into the new folder `tmp`,
/// each synced to disk before the folder is renamed into place.
fn write_folder(tmp: &Path, ckpt: &Checkpoint) -> Result<()> {
    std::fs::create_dir_all(tmp).map_err(|e| CoreError::io(tmp, e))?;
    let mut sums = BTreeMap::new();
    for (file, bytes) in &ckpt.files {
        let path = tmp.join(file);
        let written = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        written.map_err(|e| CoreError::io(&path, e))?;
        sums.insert(file.clone(), FileSum::of(bytes));
    }
    let envelope = Envelope {
        format: FORMAT,
        files: sums,
        state: ckpt.state.clone(),
    };
    let json = serde_json::to_vec_pretty(&envelope)
        .map_err(|e| CoreError::codec("checkpoint state", e))?;
    write_atomic(&tmp.join("state.json"), &json)
}

/// The checkpoint `dir/latest` points to, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = dir.join("latest");
    if !pointer.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&pointer).map_err(|e| CoreError::io(&pointer, e))?;
    let name = name.trim();
    if !dsma_data::volume::is_plain_name(name) {
        return Err(corrupt(
            &pointer,
            format!("`{name}` is not the name of a checkpoint folder"),
        ));
    }
    Ok(Some(dir.join(name)))
}

fn corrupt(path: &Path, problem: impl std::fmt::Display) -> CoreError {
    CoreError::invalid(
        format!("checkpoint {}", path.display()),
        format!("{problem}; the checkpoint is corrupt (delete it to restart that run)"),
    )
}

/// Reads and verifies a checkpoint folder; any mismatch is an error naming the file.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let state_path = path.join("state.json");
    let bytes = std::fs::read(&state_path).map_err(|e| CoreError::io(&state_path, e))?;
    let envelope: Envelope = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(&state_path, format!("unreadable JSON ({e})")))?;
    if envelope.format != FORMAT {
        return Err(corrupt(
            &state_path,
            format!("format {} (this dsma reads {FORMAT})", envelope.format),
        ));
    }
    let mut files = BTreeMap::new();
    for (name, want) in envelope.files {
        if !dsma_data::volume::is_plain_name(&name) {
            return Err(corrupt(
                &state_path,
                format!("lists `{name}`, which is not a file name"),
            ));
        }
        let file = path.join(&name);
        let bytes = std::fs::read(&file).map_err(|e| CoreError::io(&file, e))?;
        if let Some(problem) = want.mismatch(&FileSum::of(&bytes)) {
            return Err(corrupt(&file, problem));
        }
        files.insert(name, bytes);
    }
    Ok(Checkpoint {
        files,
        state: envelope.state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip_prunes_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::default();
        c.files.insert("a.bin".into(), vec![1, 2, 3]);
        c.state = serde_json::json!({"epoch": 3});
        save(dir.path(), "epoch-0003", &c, &[]).unwrap();
        c.state = serde_json::json!({"epoch": 4});
        save(dir.path(), "epoch-0004", &c, &[]).unwrap();
        assert!(!dir.path().join("epoch-0003").exists(), "older save pruned");
        let p = latest(dir.path()).unwrap().unwrap();
        let back = load(&p).unwrap();
        assert_eq!(back.state["epoch"], 4);
        assert_eq!(back.files["a.bin"], vec![1, 2, 3]);
        std::fs::write(p.join("a.bin"), [1, 2, 4]).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(err.contains("a.bin") && err.contains("corrupt"), "{err}");

        // A truncated state.json, a file name that climbs out, a pointer that does.
        let state = std::fs::read(p.join("state.json")).unwrap();
        std::fs::write(p.join("state.json"), &state[..state.len() / 2]).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(
            err.contains("state.json") && err.contains("unreadable JSON"),
            "{err}"
        );
        let climbing = String::from_utf8(state.clone())
            .unwrap()
            .replace("\"a.bin\"", "\"../a.bin\"");
        std::fs::write(p.join("state.json"), climbing).unwrap();
        let err = load(&p).unwrap_err().to_string();
        assert!(
            err.contains("`../a.bin`, which is not a file name"),
            "{err}"
        );
        std::fs::write(dir.path().join("latest"), "../elsewhere").unwrap();
        let err = latest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`../elsewhere`"), "{err}");
    }
}
