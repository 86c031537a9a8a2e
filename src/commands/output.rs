//! `mlops output`: the outputs recorded in the state.

use std::path::Path;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_engine::state::Secrets;
use serde_json::{json, Value as Json};

use super::{fail, workspace, CommandResult};

pub fn output_command(directory: &Path, name: Option<&str>, json_output: bool) -> CommandResult {
    let workspace = workspace(directory)?;
    let state = workspace.backend.load(&Secrets::from_environment())?;
    match name {
        Some(name) => match state.outputs.get(name) {
            Some(output) if output.sensitive && mlops_engine::state::is_sealed(&output.value) => fail(
                Diagnostic::error(codes::STATE_ERROR, format!("output `{name}` is sensitive, and its value cannot be read from the state"))
                    .with_help(
                        "sensitive values are stored only encrypted, with MLOPS_STATE_KEY: set the key it was applied with (or apply again with one)",
                    ),
            ),
            Some(output) => {
                if json_output {
                    outln!("{}", output.value);
                } else {
                    match &output.value {
                        Json::String(text) => outln!("{text}"),
                        other => outln!("{other}"),
                    }
                }
                Ok(0)
            }
            None => fail(Diagnostic::error(codes::STATE_ERROR, format!("there is no output `{name}` in the state")).with_help(
                if state.outputs.is_empty() {
                    "apply the configuration first".to_owned()
                } else {
                    format!("the outputs are: {}", state.outputs.keys().cloned().collect::<Vec<_>>().join(", "))
                },
            )),
        },
        None => {
            if json_output {
                let map: serde_json::Map<String, Json> =
                    state.outputs.iter().map(|(name, output)| (name.clone(), json!({ "value": if output.sensitive { Json::String("(sensitive)".into()) } else { output.value.clone() }, "sensitive": output.sensitive }))).collect();
                outln!("{}", serde_json::to_string_pretty(&map).unwrap_or_default());
            } else {
                for (name, output) in &state.outputs {
                    outln!("{name} = {}", if output.sensitive { "(sensitive)".to_owned() } else { output.value.to_string() });
                }
            }
            Ok(0)
        }
    }
}
