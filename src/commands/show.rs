//! `mlops show`: a saved plan, or the state with sensitive values hidden.

use std::path::{Path, PathBuf};

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_engine::state::{Secrets, State};
use serde_json::Value as Json;

use super::{colour, fail, print_outputs, read_saved_plan, workspace, CommandResult};
use crate::plan_render::{render_json, render_text, Style};

pub fn show_command(path: Option<&Path>, json_output: bool) -> CommandResult {
    let secrets = Secrets::from_environment();
    match path {
        Some(path) if path.is_file() => {
            let bytes = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(error) => {
                    return fail(
                        Diagnostic::error(codes::STATE_ERROR, format!("cannot read `{}`: {error}", path.display()))
                            .with_help("give a file written by `mlops plan -out`"),
                    )
                }
            };
            let (plan, _) = read_saved_plan(path, &bytes, &secrets)?;
            if json_output {
                outln!("{}", serde_json::to_string_pretty(&render_json(&plan, &[])).unwrap_or_default());
            } else {
                out!("{}", render_text(&plan, Style { colour: colour() }));
            }
            Ok(0)
        }
        other => {
            let directory = other.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let workspace = workspace(&directory)?;
            let state = workspace.backend.load(&Secrets::from_passphrase(None))?;
            if json_output {
                let redacted = redacted_state(&state);
                outln!("{}", serde_json::to_string_pretty(&redacted).unwrap_or_default());
                return Ok(0);
            }
            if state.resources.is_empty() {
                outln!("The state is empty: nothing is managed yet.");
                return Ok(0);
            }
            outln!("# state serial {}, lineage {}", state.serial, state.lineage);
            for record in state.resources.values() {
                outln!();
                print_record(record);
            }
            print_outputs(&state);
            Ok(0)
        }
    }
}

fn redacted_state(state: &State) -> Json {
    let mut copy = state.clone();
    for record in copy.resources.values_mut() {
        let paths = record.sensitive_paths.clone();
        for attributes in [&mut record.config, &mut record.state] {
            for path in &paths {
                if let Some(slot) = mlops_engine::state::json_at_mut(attributes, path) {
                    *slot = Json::String("(sensitive)".into());
                }
            }
        }
    }
    for output in copy.outputs.values_mut() {
        if output.sensitive {
            output.value = Json::String("(sensitive)".into());
        }
    }
    serde_json::to_value(copy).unwrap_or(Json::Null)
}

pub(super) fn print_record(record: &mlops_engine::state::Record) {
    outln!("# {}", record.address);
    outln!("{} {{", record.kind);
    let merged = record.merged_attributes();
    for (name, value) in &merged {
        let sensitive = record.sensitive_paths.iter().any(|path| path.first() == Some(name));
        let shown = if sensitive {
            "(sensitive)".to_owned()
        } else if let Some((address, _)) = mlops_provider_api::value::written::as_reference(value) {
            address.to_owned()
        } else {
            value.to_string()
        };
        outln!("  {name} = {shown}");
    }
    outln!("}}");
}
