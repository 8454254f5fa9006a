//! `dsma plugins [--json] [--describe NAME] [--plugin PATH ...]`.

use std::process::ExitCode;

use dsma_plugin::{PluginInfo, PluginSource, Registry};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (a list of objects with name, kind, version, source, description, defaults).
    #[arg(long)]
    json: bool,
    /// Print one plugin's description and parameters with their defaults.
    #[arg(long, value_name = "NAME")]
    describe: Option<String>,
}

fn source(i: &PluginInfo) -> String {
    match &i.source {
        PluginSource::Builtin => "builtin".into(),
        PluginSource::Library(p) => p.display().to_string(),
    }
}

pub fn run(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    if let Some(name) = args.describe {
        let info = registry.describe(&name)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&info)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{} {} ({}, {})",
            info.name,
            info.version,
            info.kind.name(),
            source(&info)
        );
        println!("  {}", info.description);
        if info.kind == dsma_plugin::PluginKind::Model {
            let count = (registry.model(&info.name)?.parameter_count)(&serde_json::Value::Null)?;
            println!(
                "  trainable parameters at the defaults: {count} ({:.2} M)",
                count as f64 / 1e6
            );
        }
        let defaults = info.defaults.as_object().cloned().unwrap_or_default();
        if defaults.is_empty() {
            println!("  parameters: none");
        } else {
            println!("  parameters (default):");
            for (k, v) in &defaults {
                let doc = info
                    .params
                    .iter()
                    .find(|d| d.name == k)
                    .map(|d| d.doc)
                    .unwrap_or("");
                println!("    {k:<24} {v:<14} {doc}", v = v.to_string());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let infos = registry.infos();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
    } else {
        println!(
            "{:<22} {:<22} {:<9} {:<10} description",
            "name", "kind", "version", "source"
        );
        for i in &infos {
            println!(
                "{:<22} {:<22} {:<9} {:<10} {}",
                i.name,
                i.kind.name(),
                i.version,
                source(i),
                i.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
