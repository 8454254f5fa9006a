//! Plugin parameters: documented, defaulted, deserialized strictly with errors naming plugin and field.

use serde::de::DeserializeOwned;
use serde::Serialize;

use dsma_data::error::{CoreError, Result};

/// Documentation of one parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamDoc {
    /// Field name as written in YAML.
    pub name: &'static str,
    /// What it controls, with the paper's equation or section where there is one.
    pub doc: &'static str,
}

/// A plugin's parameter struct: `Deserialize` with `deny_unknown_fields`, `Default` = the paper's values.
pub trait PluginParams: DeserializeOwned + Serialize + Default + Send + Sync + 'static {
    /// One entry per field.
    fn docs() -> Vec<ParamDoc> {
        Vec::new()
    }
}

/// Deserializes `value` (YAML/JSON; `null` = all defaults) into `P`; errors name the plugin and field.
pub fn parse_params<P: DeserializeOwned + Default>(
    plugin: &str,
    value: &serde_json::Value,
) -> Result<P> {
    if value.is_null() {
        return Ok(P::default());
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(" `{path}`")
        };
        CoreError::PluginParams {
            plugin: plugin.to_string(),
            problem: format!("parameter{field}: {}", e.inner()),
        }
    })
}

/// The defaults of `P` as a JSON object.
pub fn defaults_of<P: PluginParams>() -> serde_json::Value {
    serde_json::to_value(P::default()).unwrap_or(serde_json::Value::Null)
}
