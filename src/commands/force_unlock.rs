//! `mlops force-unlock`: release a lock whose holder is gone.

use std::path::Path;

use mlops_compiler::diagnostic::{codes, Diagnostic};

use super::{fail, workspace, CommandResult};

pub fn force_unlock_command(directory: &Path, id: &str) -> CommandResult {
    let workspace = workspace(directory)?;
    match workspace.backend.force_unlock(id) {
        Ok(holder) => {
            outln!("Released the lock held by {holder}.");
            Ok(0)
        }
        Err(error) => fail(
            Diagnostic::error(codes::STATE_LOCKED, format!("cannot force-unlock: {error}"))
                .with_help("`mlops apply` names the current holder and lock ID"),
        ),
    }
}
