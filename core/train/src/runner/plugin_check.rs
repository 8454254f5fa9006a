//! Plugin checks before anything trains: every plugin an experiment names exists and accepts its
//! parameters; each problem names the row, the plugin and where the file sets it.

use std::path::PathBuf;

use dsma_plugin::{AnySynthesizer, Registry};

use crate::experiment::config::Experiment;
use crate::experiment::LoadedExperiment;

/// Checks every plugin of every grid point of `loaded`; one line per problem, naming the row, the
/// plugin, and where the file sets it (file:line:column) when it can be found.
pub fn check_all_plugins(
    loaded: &LoadedExperiment,
    registry: &Registry,
    only: &[String],
) -> Vec<String> {
    let texts = file_texts(loaded);
    let mut problems = Vec::new();
    for v in &loaded.variants {
        for p in check_plugins(&v.experiment, registry, only) {
            let line = format!("{}{}", p.message, located(&texts, &p.path));
            if !problems.contains(&line) {
                problems.push(line);
            }
        }
    }
    problems
}

/// Warnings that do not stop a run: a generator whose box is more than 2× coarser than the
/// segmentation patch along some axis (its samples are up-sampled to the patch, so the comparator
/// competes at a fraction of the resolution). One line per row, with where the file sets it.
pub fn geometry_warnings(
    loaded: &LoadedExperiment,
    registry: &Registry,
    only: &[String],
) -> Vec<String> {
    let texts = file_texts(loaded);
    let mut warnings = Vec::new();
    for v in &loaded.variants {
        let exp = &v.experiment;
        let [px, py, pz] = exp.train.patch.size;
        let patch = [pz, py, px];
        for (i, row) in exp.rows.iter().enumerate() {
            if !only.is_empty() && !only.contains(&row.label) {
                continue;
            }
            let Some(s) = &row.synthesizer else { continue };
            let Ok(AnySynthesizer::Generative(g)) = registry.any_synthesizer(&s.name, &s.params)
            else {
                continue;
            };
            let Some(native) = g.native_shape() else {
                continue;
            };
            if let Some(line) = coarse_box_warning(native, patch) {
                let at = located(
                    &texts,
                    &["rows".into(), i.to_string(), "synthesizer".into()],
                );
                let line = format!(
                    "rows.{i} ({}): synthesizer {}: {line}{at}",
                    row.label, s.name
                );
                if !warnings.contains(&line) {
                    warnings.push(line);
                }
            }
        }
    }
    warnings
}

/// The warning for a generator box `native` and a patch, both `[z, y, x]`, when some axis of
/// the patch is more than twice the box's; `None` otherwise.
pub fn coarse_box_warning(native: [usize; 3], patch: [usize; 3]) -> Option<String> {
    let ratio: Vec<f64> = (0..3)
        .map(|a| patch[a] as f64 / native[a].max(1) as f64)
        .collect();
    if ratio.iter().all(|r| *r <= 2.0) {
        return None;
    }
    let names = ["z", "y", "x"];
    let axes: Vec<String> = (0..3)
        .filter(|a| ratio[*a] > 2.0)
        .map(|a| format!("{} {:.1}×", names[a], ratio[a]))
        .collect();
    Some(format!(
        "generates at {native:?} (z, y, x) and is up-sampled to the patch {patch:?}: coarser by \
         more than 2× along {} (give it a box of at least half the patch along every axis)",
        axes.join(", ")
    ))
}

/// The experiment's files and their texts (those that can be read), to locate YAML paths in.
fn file_texts(loaded: &LoadedExperiment) -> Vec<(PathBuf, String)> {
    loaded
        .files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok().map(|t| (f.clone(), t)))
        .collect()
}

/// ` [file:line:column]` of a YAML path in the first of `texts` that sets it, or nothing.
fn located(texts: &[(PathBuf, String)], path: &[String]) -> String {
    texts
        .iter()
        .find_map(|(f, t)| {
            crate::experiment::locate(t, path).map(|(l, c)| format!(" [{}:{l}:{c}]", f.display()))
        })
        .unwrap_or_default()
}

/// One problem with a plugin reference: where it is in the experiment and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginProblem {
    /// YAML path of the reference (`["rows", "1", "weighter"]`, `["model"]`, `["train", "backend"]`);
    /// empty for command-line problems (`--only`).
    pub path: Vec<String>,
    /// How the problem is printed (`rows.1 (DSMA): weighter: unknown weighter ...`).
    pub message: String,
}

impl PluginProblem {
    fn at(path: &[&str], message: String) -> Self {
        PluginProblem {
            path: path.iter().map(|s| s.to_string()).collect(),
            message,
        }
    }
}

/// Checks that every plugin the experiment names exists and accepts its parameters; one problem
/// per bad reference, naming the row and the plugin.
pub fn check_plugins(exp: &Experiment, registry: &Registry, only: &[String]) -> Vec<PluginProblem> {
    let mut problems = Vec::new();
    match registry.model(&exp.model.name) {
        Ok(m) => {
            if let Err(e) = (m.check)(&exp.model.params) {
                problems.push(PluginProblem::at(&["model"], format!("model: {e}")));
            }
            if let Err(e) = exp.train.backend.require() {
                problems.push(PluginProblem::at(
                    &["train", "backend"],
                    format!("train.backend: {e}"),
                ));
            }
        }
        Err(e) => problems.push(PluginProblem::at(&["model"], format!("model: {e}"))),
    }
    for (i, row) in exp.rows.iter().enumerate() {
        if !only.is_empty() && !only.contains(&row.label) {
            continue;
        }
        let index = i.to_string();
        if let Some(s) = &row.synthesizer {
            match registry.any_synthesizer(&s.name, &s.params) {
                Err(e) => problems.push(PluginProblem::at(
                    &["rows", &index, "synthesizer"],
                    format!("rows.{i} ({}): synthesizer: {e}", row.label),
                )),
                Ok(AnySynthesizer::Generative(_)) if exp.train.synthesis.corrupt.is_some() => {
                    problems.push(PluginProblem::at(
                        &["train", "synthesis", "corrupt"],
                        format!(
                            "train.synthesis.corrupt: corrupts derived synthetic sets only, and rows.{i} ({}) is the generator `{}`; leave the row out (--only) or the option",
                            row.label, s.name
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        if let Err(e) = row.build_weighter(registry) {
            problems.push(PluginProblem::at(
                &["rows", &index, "weighter"],
                format!("rows.{i} ({}): weighter: {e}", row.label),
            ));
        }
    }
    for label in only {
        if !exp.rows.iter().any(|r| &r.label == label) {
            let known: Vec<&str> = exp.rows.iter().map(|r| r.label.as_str()).collect();
            problems.push(PluginProblem::at(
                &[],
                format!("--only {label}: no such row (rows: {})", known.join(", ")),
            ));
        }
    }
    problems
}
