//! `mlops import ADDRESS ID`: an existing object brought under management
//! (the engine's `import` does the work; this reports it).

use std::path::{Path, PathBuf};

use mlops_engine::import::{import, ImportContext, ImportError};
use mlops_engine::plan::PlanOptions;
use mlops_engine::state::Secrets;

use super::{display_directory, providers, redacted_command, report, variable_values, workspace, CommandError, CommandResult};

pub fn import_command(directory: &Path, address: &str, id: &str, assignments: &[String], files: &[PathBuf]) -> CommandResult {
    let workspace = workspace(directory)?;
    let (variables, variable_origins) = variable_values(assignments, files, true)?;
    let options = PlanOptions { variables, variable_origins, ..PlanOptions::default() };
    let secrets = Secrets::from_environment();
    let display = display_directory(directory);
    let context = ImportContext {
        directory: &workspace.directory,
        display: &display,
        options: &options,
        providers: &providers(),
        backend: &workspace.backend,
        secrets: &secrets,
        data_directory: &workspace.data_directory,
        command: &redacted_command(),
    };
    match import(&context, address, id) {
        Ok(record) => {
            outln!("Imported `{id}` as {address} ({} provider).", record.provider);
            outln!("Run `mlops plan` to compare the configuration with what was imported.");
            Ok(0)
        }
        Err(ImportError::Configuration(checked)) => {
            let errors = report(&checked.diagnostics, &checked.sources);
            errln!("{errors} error{} found; nothing was imported.", if errors == 1 { "" } else { "s" });
            Err(CommandError::Reported(1))
        }
        Err(ImportError::Problem(diagnostic)) => Err(CommandError::Problem(diagnostic)),
        Err(ImportError::State(error)) => Err(error.into()),
    }
}
