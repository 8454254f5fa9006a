//! Experiment files: YAML with `extends` (deep merge: maps merge, lists replace, cycles detected),
//! Hydra-style `key=value` overrides, and typed validation whose errors name the file, the YAML path
//! and the line/column.

pub mod config;
mod validate;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::experiment::config::Experiment;
use dsma_data::error::{CoreError, Result};

/// One point of the experiment's `grid`: its settings and the typed experiment they give.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `(dotted key, value)` set by this grid point.
    pub settings: Vec<(String, Value)>,
    /// Appended to every row label, e.g. ` [beta=0.05]` (empty without a grid).
    pub suffix: String,
    /// The typed, validated experiment of this grid point.
    pub experiment: Experiment,
}

/// A loaded experiment: the typed form and the merged document it came from.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    /// The typed, validated experiment (without grid settings).
    pub experiment: Experiment,
    /// One variant per grid point (one, with no settings, when there is no grid).
    pub variants: Vec<Variant>,
    /// The merged document after `extends` and overrides (what `validate` prints).
    pub resolved: Value,
    /// Files read, the given file first, then its bases.
    pub files: Vec<PathBuf>,
    /// Overrides applied, as given.
    pub overrides: Vec<String>,
}

/// One file's source text and parsed document.
struct Source {
    path: PathBuf,
    text: String,
    doc: Value,
}

fn yaml_error(path: &Path, e: yaml_serde::Error) -> CoreError {
    let at = e
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
        .unwrap_or_default();
    CoreError::codec(format!("{}{at}", path.display()), e)
}

/// The most bytes an experiment file may have (the paper's files are a few KiB).
const MAX_EXPERIMENT_BYTES: u64 = 1 << 20;

/// The text of an experiment file: a regular file of at most [`MAX_EXPERIMENT_BYTES`] (a device
/// such as `/dev/zero` named in `extends` would never end), in UTF-8.
fn read_text(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| CoreError::io(path, e))?;
    if !meta.is_file() {
        return Err(CoreError::invalid(
            path.display().to_string(),
            "not a regular file; expected a YAML experiment file",
        ));
    }
    if meta.len() > MAX_EXPERIMENT_BYTES {
        return Err(CoreError::invalid(
            path.display().to_string(),
            format!(
                "{} bytes; an experiment file may have at most {MAX_EXPERIMENT_BYTES}",
                meta.len()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))
}

fn read_chain(path: &Path, chain: &mut Vec<Source>) -> Result<()> {
    let canonical = path.canonicalize().map_err(|e| CoreError::io(path, e))?;
    if chain.iter().any(|s| s.path == canonical) {
        let cycle: Vec<String> = chain
            .iter()
            .map(|s| s.path.display().to_string())
            .chain([canonical.display().to_string()])
            .collect();
        return Err(CoreError::invalid(
            "extends",
            format!("cycle: {}", cycle.join(" → ")),
        ));
    }
    let text = read_text(path)?;
    // YAML's own value type refuses duplicate keys (with their line); JSON's map would keep the last.
    yaml_serde::from_str::<yaml_serde::Value>(&text).map_err(|e| yaml_error(path, e))?;
    let doc: Value = yaml_serde::from_str(&text).map_err(|e| yaml_error(path, e))?;
    if !doc.is_object() {
        return Err(CoreError::invalid(
            path.display().to_string(),
            "expected a mapping at the top level",
        ));
    }
    let base = match doc.get("extends") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            canonical
                .parent()
                .map(|d| d.join(s))
                .unwrap_or_else(|| PathBuf::from(s)),
        ),
        Some(other) => {
            return Err(CoreError::invalid(
                format!("{}: extends", path.display()),
                format!("{other}; expected the path of a base file"),
            ))
        }
    };
    chain.push(Source {
        path: canonical,
        text,
        doc,
    });
    if let Some(base) = base {
        if !base.exists() {
            return Err(CoreError::invalid(
                format!("{}: extends", path.display()),
                format!("{} does not exist", base.display()),
            ));
        }
        read_chain(&base, chain)?;
    }
    Ok(())
}

/// Deep merge: maps merge key by key, everything else (lists included) is replaced by `top`. A nested
/// map whose `name` differs from the base's (a plugin reference switching plugin, e.g. `model:
/// {name: nestedformer}` over `unet3d`) replaces the base map, so the old plugin's params do not leak.
pub fn merge(base: Value, top: Value) -> Value {
    merge_at(base, top, 0)
}

fn merge_at(base: Value, top: Value, depth: usize) -> Value {
    match (base, top) {
        (Value::Object(mut b), Value::Object(t)) => {
            let renamed =
                depth > 0 && matches!((b.get("name"), t.get("name")), (Some(x), Some(y)) if x != y);
            if renamed {
                return Value::Object(t);
            }
            for (k, v) in t {
                let merged = match b.remove(&k) {
                    Some(old) => merge_at(old, v, depth + 1),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Object(b)
        }
        (_, t) => t,
    }
}

/// Applies `key=value` overrides (dotted keys, list indices as numbers; values parsed as YAML).
pub fn apply_overrides(mut doc: Value, overrides: &[String]) -> Result<Value> {
    for o in overrides {
        let (key, raw) = o.split_once('=').ok_or_else(|| {
            CoreError::invalid(
                format!("override `{o}`"),
                "expected KEY=VALUE, e.g. train.stage1.epochs=5",
            )
        })?;
        let value: Value = yaml_serde::from_str(raw).map_err(|e| {
            CoreError::invalid(format!("override `{o}`"), format!("value is not YAML: {e}"))
        })?;
        let parts: Vec<&str> = key.split('.').collect();
        let mut node = &mut doc;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            node = match node {
                Value::Array(items) => {
                    let idx: usize = part.parse().map_err(|_| {
                        CoreError::invalid(
                            format!("override `{o}`"),
                            format!("`{part}` indexes a list; expected a number"),
                        )
                    })?;
                    let len = items.len();
                    items.get_mut(idx).ok_or_else(|| {
                        CoreError::invalid(
                            format!("override `{o}`"),
                            format!("index {idx} is past the end of a list of {len}"),
                        )
                    })?
                }
                Value::Object(map) => map.entry(part.to_string()).or_insert_with(|| {
                    if last {
                        Value::Null
                    } else {
                        Value::Object(Map::new())
                    }
                }),
                other => {
                    return Err(CoreError::invalid(
                        format!("override `{o}`"),
                        format!("`{part}` is inside {other}, which is not a mapping"),
                    ))
                }
            };
        }
        *node = value;
    }
    Ok(doc)
}

/// Line and column (1-based) of a YAML path such as `train.stage1.epocs` or `rows.1.weighter` in
/// block-style YAML text, found by indentation.
pub fn locate(text: &str, path: &[String]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0usize;
    let mut min_indent: isize = -1;
    let mut found = None;
    for seg in path {
        let mut hit = None;
        if let Ok(idx) = seg.parse::<usize>() {
            // The idx-th list item below the current key.
            let mut count = 0;
            for (i, line) in lines.iter().enumerate().skip(from) {
                let indent = line.len() - line.trim_start().len();
                let t = line.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                if (indent as isize) <= min_indent && !t.starts_with("- ") {
                    break;
                }
                if t.starts_with("- ") || t == "-" {
                    if count == idx {
                        hit = Some((i, indent + 2));
                        break;
                    }
                    count += 1;
                }
            }
        } else {
            for (i, line) in lines.iter().enumerate().skip(from) {
                let stripped = line.trim_start_matches([' ', '-']);
                let indent = line.len() - stripped.len();
                if stripped.is_empty() || stripped.starts_with('#') {
                    continue;
                }
                if (indent as isize) <= min_indent && i > from {
                    break;
                }
                if stripped.starts_with(&format!("{seg}:")) {
                    hit = Some((i, indent));
                    break;
                }
            }
        }
        let (line, indent) = hit?;
        found = Some((line + 1, indent + 1));
        from = line + 1;
        min_indent = indent as isize - if seg.parse::<usize>().is_ok() { 2 } else { 0 };
        if seg.parse::<usize>().is_ok() {
            // Keys of the item start on the item's own line.
            from = line;
        }
    }
    found
}

/// Loads `path` (following `extends`), applies `overrides`, and validates it into an [`Experiment`].
pub fn load(path: &Path, overrides: &[String]) -> Result<LoadedExperiment> {
    let mut chain = Vec::new();
    read_chain(path, &mut chain)?;
    let mut doc = Value::Object(Map::new());
    for s in chain.iter().rev() {
        doc = merge(doc, s.doc.clone());
    }
    if let Value::Object(m) = &mut doc {
        m.remove("extends");
    }
    let mut doc = apply_overrides(doc, overrides)?;
    let grid = match doc.as_object_mut().and_then(|m| m.remove("grid")) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(g)) => g,
        Some(other) => {
            return Err(CoreError::invalid(
                format!("{}: grid", chain[0].path.display()),
                format!("{other}; expected a mapping of dotted keys to lists"),
            ))
        }
    };
    let experiment = typed(&doc, &chain)?;
    let mut variants = Vec::new();
    for settings in expand_grid(&grid)? {
        let mut d = doc.clone();
        for (k, v) in &settings {
            let rendered = format!("{k}={}", serde_json::to_string(v).unwrap_or_default());
            d = apply_overrides(d, &[rendered])?;
        }
        let e = typed(&d, &chain)?;
        let suffix = if settings.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = settings
                .iter()
                .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
                .collect();
            format!(" [{}]", parts.join(", "))
        };
        variants.push(Variant {
            settings,
            suffix,
            experiment: e,
        });
    }
    let mut resolved = doc;
    if !grid.is_empty() {
        if let Value::Object(m) = &mut resolved {
            m.insert("grid".into(), Value::Object(grid));
        }
    }
    Ok(LoadedExperiment {
        experiment,
        variants,
        resolved,
        files: chain.into_iter().map(|s| s.path).collect(),
        overrides: overrides.to_vec(),
    })
}

/// The typed experiment of a merged document; errors name file, YAML path and line/column.
fn typed(doc: &Value, chain: &[Source]) -> Result<Experiment> {
    let experiment: Experiment =
        serde_path_to_error::deserialize(doc.clone()).map_err(|e| located(e, chain))?;
    experiment
        .validate()
        .map_err(|e| CoreError::invalid(chain[0].path.display().to_string(), e.to_string()))?;
    Ok(experiment)
}

/// The cross product of a `grid` mapping (dotted key → list of values), keys in sorted order.
pub fn expand_grid(grid: &Map<String, Value>) -> Result<Vec<Vec<(String, Value)>>> {
    let mut points: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in grid {
        let list = values.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
            CoreError::invalid(
                format!("grid.{key}"),
                format!("{values}; expected a non-empty list of values"),
            )
        })?;
        points = points
            .into_iter()
            .flat_map(|p| {
                list.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    Ok(points)
}

fn located(e: serde_path_to_error::Error<serde_json::Error>, chain: &[Source]) -> CoreError {
    let segs: Vec<String> = e
        .path()
        .iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => index.to_string(),
            serde_path_to_error::Segment::Map { key } => key.clone(),
            serde_path_to_error::Segment::Enum { variant } => variant.clone(),
            serde_path_to_error::Segment::Unknown => "?".into(),
        })
        .collect();
    let mut dotted = segs.join(".");
    if dotted.is_empty() || dotted == "?" {
        dotted = "(top level)".into();
    }
    // For an unknown key the path ends at the offending key; find the file that defines it.
    let mut source_at = format!("{}", chain[0].path.display());
    for s in chain {
        let mut probe = segs.clone();
        while !probe.is_empty() {
            if let Some((l, c)) = locate(&s.text, &probe) {
                source_at = format!("{}:{l}:{c} (line {l}, column {c})", s.path.display());
                break;
            }
            probe.pop();
        }
        if !probe.is_empty() {
            break;
        }
    }
    CoreError::invalid(
        format!("{source_at}: `{dotted}`"),
        e.into_inner().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_lists_and_merges_maps() {
        let a = serde_json::json!({"a": {"x": 1, "y": 2}, "l": [1, 2]});
        let b = serde_json::json!({"a": {"y": 3}, "l": [9]});
        assert_eq!(
            merge(a, b),
            serde_json::json!({"a": {"x": 1, "y": 3}, "l": [9]})
        );
        // A plugin reference that switches plugin is replaced, not merged; the top level merges.
        let a =
            serde_json::json!({"name": "a", "model": {"name": "unet3d", "params": {"depth": 3}}});
        let b = serde_json::json!({"name": "b", "model": {"name": "nestedformer"}});
        assert_eq!(
            merge(a, b),
            serde_json::json!({"name": "b", "model": {"name": "nestedformer"}})
        );
    }

    #[test]
    fn overrides_set_nested_keys_and_list_items() {
        let doc =
            serde_json::json!({"train": {"stage1": {"epochs": 800}}, "rows": [{"label": "a"}]});
        let out = apply_overrides(
            doc,
            &[
                "train.stage1.epochs=5".into(),
                "rows.0.label=b".into(),
                "seed=3".into(),
            ],
        )
        .unwrap();
        assert_eq!(out["train"]["stage1"]["epochs"], 5);
        assert_eq!(out["rows"][0]["label"], "b");
        assert_eq!(out["seed"], 3);
        assert!(apply_overrides(out, &["rows.7.label=x".into()]).is_err());
    }

    #[test]
    fn locate_finds_nested_keys_and_list_items() {
        let text = "name: x\ntrain:\n  stage1:\n    epochs: 3\n    lr: 1e-4\nrows:\n  - label: a\n  - label: b\n    weighter: {name: mas}\n";
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(locate(text, &p("train.stage1.lr")), Some((5, 5)));
        assert_eq!(locate(text, &p("rows.1.weighter")), Some((9, 5)));
        assert_eq!(locate(text, &p("rows.0.label")), Some((7, 5)));
        assert_eq!(locate(text, &p("train.nope")), None);
    }
}
