//! A run's folder: `OUT/runs/<dataset>/<row>/rep-r`, a link to its content-addressed folder under
//! the shared root, whether it holds a finished run, and the refusal to restart an unfinished one
//! without `--resume` or with other settings.

use std::path::{Path, PathBuf};

use dsma_data::error::{CoreError, Result};

use crate::experiment::LoadedExperiment;
use crate::runner::plan::slug;
use crate::runner::plan::PlannedRun;
use crate::runner::report::record::RunRecord;

/// The output folder of an experiment when none is given: `runs/<slug of its name>`.
pub fn default_out(experiment_name: &str) -> PathBuf {
    PathBuf::from("runs").join(slug(experiment_name))
}

/// The shared root (case store, shared runs and stage 1s, fitted generators) when none is given:
/// `cache/` beside the output folder, so `runs/<name>` of every experiment shares `runs/cache`.
pub fn default_cache(out: &Path) -> PathBuf {
    match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join("cache"),
        _ => PathBuf::from("cache"),
    }
}

/// Whether a run folder holds a finished run.
pub fn is_finished(out: &Path, run: &PlannedRun) -> bool {
    let dir = out.join(run.dir());
    dir.join("results.json").exists() && !links_elsewhere(&dir, run)
}

/// Whether `dir` is a link to another run's content-addressed folder: the experiment file changed
/// since the link was made, so the folder holds a run of other settings.
fn links_elsewhere(dir: &Path, run: &PlannedRun) -> bool {
    std::fs::read_link(dir).is_ok_and(|target| !target.ends_with(run.shared_dir()))
}

/// The run's folder under `out`: a link to its content-addressed folder under the shared root
/// `cache` (made on first use), so identical runs of different experiment files are one run. An
/// existing plain folder (runs made before links) is used as it is; where links are unavailable
/// the folder is plain.
pub fn run_folder(out: &Path, cache: &Path, run: &PlannedRun) -> Result<PathBuf> {
    let link = out.join(run.dir());
    // A link to a finished run of other settings is moved to this run's folder (the other run
    // stays in the shared root); one to an unfinished run is kept, and `check_unfinished` refuses
    // to continue it with other settings.
    let finished_elsewhere = links_elsewhere(&link, run) && link.join("results.json").exists();
    if link.is_dir() && !finished_elsewhere {
        return Ok(link);
    }
    if link.symlink_metadata().is_ok() {
        // A link whose target is gone (the shared root was deleted), or to a finished run of other
        // settings: make it again.
        std::fs::remove_file(&link).map_err(|e| CoreError::io(&link, e))?;
    }
    let parent = link.parent().unwrap_or(out);
    std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    #[cfg(unix)]
    {
        let target = std::path::absolute(cache.join(run.shared_dir()))
            .map_err(|e| CoreError::io(cache, e))?;
        std::fs::create_dir_all(&target).map_err(|e| CoreError::io(&target, e))?;
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            // A concurrent shard may have made the same link.
            if !link.is_dir() {
                return Err(CoreError::io(&link, e));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = cache;
    Ok(link)
}

/// Refuses to start in a folder that holds an unfinished run unless `resume` is set, and to resume a
/// run that was started with other settings (each change named).
pub fn check_unfinished(
    dir: &Path,
    loaded: &LoadedExperiment,
    run: &PlannedRun,
    resume: bool,
) -> Result<()> {
    if dir.join("checkpoints").exists() && !resume {
        return Err(CoreError::invalid(
            dir.display().to_string(),
            "holds an unfinished run; pass --resume to continue it (or delete the folder)",
        ));
    }
    if let Ok(record) = RunRecord::read(dir) {
        let changed = record.changed_settings(&loaded.resolved, run);
        if !changed.is_empty() {
            return Err(CoreError::invalid(
                dir.display().to_string(),
                format!(
                    "was started with other settings; restore them or delete the folder:\n  {}",
                    changed.join("\n  ")
                ),
            ));
        }
    }
    Ok(())
}
