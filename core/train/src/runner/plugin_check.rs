//! Plugin checks before anything trains: every plugin an experiment names exists and accepts its
//! parameters; each problem names the row, the plugin and where the file sets it.

use std::path::PathBuf;

use dsma_plugin::Registry;

use crate::experiment::config::Experiment;
use crate::experiment::LoadedExperiment;

/// Checks every plugin of every grid point of `loaded`; one line per problem, naming the row, the
/// plugin, and where the file sets it (file:line:column) when it can be found.
pub fn check_all_plugins(
    loaded: &LoadedExperiment,
    registry: &Registry,
    only: &[String],
) -> Vec<String> {
    let texts: Vec<(PathBuf, String)> = loaded
        .files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok().map(|t| (f.clone(), t)))
        .collect();
    let mut problems = Vec::new();
    for v in &loaded.variants {
        for p in check_plugins(&v.experiment, registry, only) {
            let at = texts.iter().find_map(|(f, t)| {
                crate::experiment::locate(t, &p.path)
                    .map(|(l, c)| format!(" [{}:{l}:{c}]", f.display()))
            });
            let line = format!("{}{}", p.message, at.unwrap_or_default());
            if !problems.contains(&line) {
                problems.push(line);
            }
        }
    }
    problems
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
            if let Err(e) = registry.any_synthesizer(&s.name, &s.params) {
                problems.push(PluginProblem::at(
                    &["rows", &index, "synthesizer"],
                    format!("rows.{i} ({}): synthesizer: {e}", row.label),
                ));
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
