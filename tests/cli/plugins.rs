//! The plugin system: built-in registration, unknown names, parameter errors, shared-library plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{dsma, phantom_dataset};
use dsma_data::brats::load_case;
use dsma_data::LabelConvention;
use dsma_plugin::{EpochScores, Registry};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the example plugin's shared library into its own target folder (the outer cargo may hold
/// the lock on the main one, and a library left beside `dsma` by an earlier build could be stale).
fn example_library() -> PathBuf {
    let name = format!(
        "{}example_dylib{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    // A folder of its own inside the outer target folder (never that folder itself, whose lock
    // the outer cargo holds); offline and locked, as the outer build already fetched everything.
    let outer = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| repo().join(d))
        .unwrap_or_else(|| repo().join("target"));
    let target = outer.join("plugin-test");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "--offline",
            "--locked",
            "-p",
            "example-dylib",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(repo())
        .status()
        .expect("cargo build example-dylib");
    assert!(status.success());
    target.join("debug").join(name)
}

/// Compiles a C shared library from `source` with the system C compiler.
fn c_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&c)
        .status()
        .expect("cc");
    assert!(status.success(), "compiling {name}.c");
    lib
}

#[test]
fn every_builtin_plugin_folder_is_registered() {
    let (code, out, err) = dsma(&["plugins", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let builtin: Vec<&str> = list
        .iter()
        .filter(|p| p["source"] == "builtin")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut folders = 0;
    for entry in std::fs::read_dir(repo().join("plugins")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == "example-dylib" || name == "example-python" {
            continue;
        }
        folders += 1;
        assert!(
            builtin.contains(&name.as_str()),
            "plugins/{name} is not registered; registered: {builtin:?}"
        );
    }
    assert!(folders >= 1);
    for p in &list {
        for key in ["name", "kind", "version", "source"] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
    }
}

#[test]
fn unknown_names_list_the_known_ones_with_a_suggestion() {
    let reg = Registry::builtin();
    dsma_uniform::link();
    let err = Registry::builtin()
        .weighter("unifrom", &json!(null))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown weighter `unifrom`") && err.contains("did you mean `uniform`"),
        "{err}"
    );
    let err = reg
        .synthesizer("no-such-synthesizer", &json!(null))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unknown synthesizer `no-such-synthesizer`"),
        "{err}"
    );
    let (code, _, stderr) = dsma(&["plugins", "--describe", "unifrom"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("did you mean `uniform`"), "{stderr}");
}

#[test]
fn parameters_are_strict_and_errors_name_plugin_and_field() {
    dsma_uniform::link();
    let reg = Registry::builtin();
    let err = reg
        .weighter("uniform", &json!({"beta": 0.1}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("plugin `uniform`") && err.contains("beta"),
        "{err}"
    );
    let mut w = reg.weighter("uniform", &json!({})).unwrap();
    assert_eq!(
        w.weights(&EpochScores {
            epoch: 0,
            real: &[0.5],
            synthetic: &[0.1, 0.9]
        })
        .unwrap(),
        vec![1.0, 1.0]
    );
}

#[test]
fn shared_library_plugin_loads_runs_and_fails_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = example_library();
    let mut reg = Registry::builtin();
    reg.load_library(&lib).unwrap();
    let info = reg.describe("tumour-intensity").unwrap();
    assert_eq!(info.defaults["amplitude"], 0.15);

    let root = phantom_dataset(tmp.path(), 1, [20, 20, 16], 7);
    let case = load_case(&root.join("Phantom_000"), LabelConvention::Brats2019).unwrap();
    let synth = reg
        .synthesizer("tumour-intensity", &json!({"amplitude": 0.3}))
        .unwrap();
    let a = synth
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap()
        .case;
    let b = synth
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap()
        .case;
    let c = synth
        .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(2))
        .unwrap()
        .case;
    assert_eq!(a.image, b.image, "same seed, same output");
    assert_ne!(a.image, c.image, "different seed, different output");
    assert_eq!(a.label, case.label, "labels unchanged");
    let mut changed_inside = 0;
    for ((m, z, y, x), v) in a.image.indexed_iter() {
        if case.label[[z, y, x]] == 0 {
            assert_eq!(*v, case.image[[m, z, y, x]], "changed outside the tumour");
        } else if *v != case.image[[m, z, y, x]] {
            changed_inside += 1;
        }
    }
    assert!(changed_inside > 0);

    // Bad parameters: the error names the plugin and the field, and comes back through the ABI's
    // PARAMS_ERROR code as a parameter error (not as a plugin failure).
    let err = reg
        .synthesizer("tumour-intensity", &json!({"amplitud": 0.3}))
        .err()
        .unwrap();
    assert!(
        matches!(err, dsma_data::CoreError::PluginParams { .. }),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("tumour-intensity") && err.contains("amplitud"),
        "{err}"
    );
    let err = reg
        .synthesizer("tumour-intensity", &json!({"amplitude": "big"}))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("amplitude") && err.contains("invalid type"),
        "{err}"
    );
    // The error of synthesizing `case` with `params` (which must fail).
    let failure = |params: serde_json::Value| {
        reg.synthesizer("tumour-intensity", &params)
            .unwrap()
            .synthesize(&case, &mut ChaCha8Rng::seed_from_u64(1))
            .err()
            .unwrap()
            .to_string()
    };
    // A panic inside the library is an error, not an abort.
    let err = failure(json!({"panic": true}));
    assert!(
        err.contains("tumour-intensity")
            && err.contains("panicked")
            && err.contains("asked to panic"),
        "{err}"
    );
    // Non-finite output is refused, naming the plugin and the case (no NaN reaches training).
    let err = failure(json!({"emit_nan": true}));
    assert!(
        err.contains("tumour-intensity")
            && err.contains("non-finite")
            && err.contains("Phantom_000"),
        "{err}"
    );
    // Loading twice is refused by name.
    let err = reg.load_library(&lib).err().unwrap().to_string();
    assert!(err.contains("already registered"), "{err}");

    // Through the CLI.
    let (code, out, stderr) = dsma(&["plugins", "--json", "--plugin", lib.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let entry = list
        .iter()
        .find(|p| p["name"] == "tumour-intensity")
        .expect("listed");
    assert_eq!(entry["source"], lib.to_str().unwrap());
}

#[test]
fn wrong_abi_garbage_and_symbol_less_libraries_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let wrong = c_library(
        tmp.path(),
        "wrongabi",
        "struct m { unsigned int abi; unsigned int api; }; static struct m M = {999, 1};\n\
         const void* dsma_plugin_manifest(void) { return &M; }\n",
    );
    let err = Registry::builtin()
        .load_library(&wrong)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("libwrongabi.so") && err.contains("999") && err.contains("ABI version 2"),
        "{err}"
    );

    let nosym = c_library(
        tmp.path(),
        "nosym",
        "int something_else(void) { return 1; }\n",
    );
    let err = Registry::builtin()
        .load_library(&nosym)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("libnosym.so") && err.contains("dsma_plugin_manifest"),
        "{err}"
    );

    let garbage = tmp.path().join("garbage.so");
    std::fs::write(&garbage, b"\x7fELF but not really a library, just bytes").unwrap();
    let err = Registry::builtin()
        .load_library(&garbage)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("garbage.so") && err.contains("cannot load"),
        "{err}"
    );

    let (code, _, stderr) = dsma(&["plugins", "--plugin", garbage.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("garbage.so"), "{stderr}");
}

/// The dotted parameter paths a documentation entry names: `a.b / c / d` is `a.b`, `a.c`, `a.d`.
fn documented_paths(name: &str) -> Vec<String> {
    let mut parts = name.split(" / ").map(str::trim);
    let first = parts.next().unwrap_or_default().to_string();
    let prefix = first
        .rsplit_once('.')
        .map(|(p, _)| format!("{p}."))
        .unwrap_or_default();
    std::iter::once(first)
        .chain(parts.map(|p| format!("{prefix}{p}")))
        .collect()
}

/// Every plugin documents each of its parameters twice (on the field, and in `PluginParams::docs`
/// for `dsma plugins`): every documented path must exist in the defaults, and every top-level
/// parameter must be documented, so the two cannot drift apart unnoticed.
#[test]
fn every_documented_parameter_exists_and_every_parameter_is_documented() {
    let (code, stdout, stderr) = dsma(&["plugins", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let infos: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert!(infos.len() >= 10, "{stdout}");
    for info in &infos {
        let name = info["name"].as_str().unwrap();
        let defaults = info["defaults"].as_object().cloned().unwrap_or_default();
        let docs: Vec<String> = info["params"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| documented_paths(d["name"].as_str().unwrap()))
            .collect();
        for path in &docs {
            let mut at = Some(&info["defaults"]);
            for key in path.split('.') {
                at = at.and_then(|v| v.get(key));
            }
            assert!(
                at.is_some(),
                "{name}: `{path}` is documented but not a parameter"
            );
        }
        for key in defaults.keys() {
            assert!(
                docs.iter()
                    .any(|d| d.split('.').next() == Some(key.as_str())),
                "{name}: parameter `{key}` has no documentation in docs()"
            );
        }
    }
}
