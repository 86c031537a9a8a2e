//! `mlops lineage`: which data, features and run produced a resource,
//! read from the state.

use std::path::Path;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_engine::state::Secrets;

use super::{fail, workspace, CommandResult};

pub fn lineage_command(directory: &Path, address: &str, json_output: bool, version: Option<&str>) -> CommandResult {
    let workspace = workspace(directory)?;
    let state = workspace.backend.load(&Secrets::from_passphrase(None))?;
    let Some(record) = state.resources.get(address) else {
        return fail(
            Diagnostic::error(codes::STATE_ERROR, format!("there is no `{address}` in the state")).with_help(
                mlops_compiler::suggest::did_you_mean(address, state.resources.keys().map(String::as_str))
                    .unwrap_or_else(|| "lineage is read from state: apply first".to_owned()),
            ),
        );
    };
    let tree = match mlops_engine::lineage::lineage_of(&state, record, version) {
        Ok(tree) => tree,
        Err(message) => {
            return fail(Diagnostic::error(codes::STATE_ERROR, message).with_help(
                "a version's lineage is recorded when mlops registers it; the registry's tags on the version name its run and data",
            ))
        }
    };
    if json_output {
        outln!("{}", serde_json::to_string_pretty(&tree).unwrap_or_default());
    } else {
        out!("{}", mlops_engine::lineage::render_tree(&tree));
    }
    Ok(0)
}
