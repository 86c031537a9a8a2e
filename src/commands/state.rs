//! `mlops state`: list and show records, surgery (`rm`, `mv`, done by the
//! engine's state module), and `restore` from backups.

use std::path::PathBuf;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_engine::state::{surgery, Secrets, StateError};

use super::show::print_record;
use super::{fail, redacted_command, workspace, CommandResult, Workspace};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum StateCommand {
    /// List the addresses in state.
    List {
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Show one record.
    Show {
        address: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Stop managing a resource, without touching it.
    Rm {
        address: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Rename a record (after renaming its block).
    Mv {
        from: String,
        to: String,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
    /// Rebuild a damaged or missing local state from its backups.
    Restore {
        /// List what can be restored and what each choice would lose; change nothing.
        #[arg(long)]
        list: bool,
        /// What to restore: a backup's serial, or `current` (the files as they are, damaged lines skipped). Default: the newest.
        #[arg(long)]
        from: Option<String>,
        /// Restore although changes the files show were made are lost (with no backup at all: start from an empty state).
        #[arg(long)]
        accept_loss: bool,
        #[arg(long, default_value = ".")]
        directory: PathBuf,
    },
}

pub fn state_command(command: &StateCommand) -> CommandResult {
    let directory = match command {
        StateCommand::List { directory }
        | StateCommand::Show { directory, .. }
        | StateCommand::Rm { directory, .. }
        | StateCommand::Mv { directory, .. }
        | StateCommand::Restore { directory, .. } => directory,
    };
    let workspace = workspace(directory)?;
    let secrets = Secrets::from_environment();
    match command {
        StateCommand::Restore { list, from, accept_loss, .. } => restore_state(&workspace, &secrets, *list, from.as_deref(), *accept_loss),
        StateCommand::List { .. } => {
            for address in workspace.backend.load(&secrets)?.resources.keys() {
                outln!("{address}");
            }
            Ok(0)
        }
        StateCommand::Show { address, .. } => {
            let state = workspace.backend.load(&secrets)?;
            let Some(record) = state.resources.get(address) else {
                return Err(StateError::NotInState {
                    address: address.clone(),
                    suggestion: mlops_compiler::suggest::did_you_mean(address, state.resources.keys().map(String::as_str)),
                }
                .into());
            };
            print_record(record);
            Ok(0)
        }
        StateCommand::Rm { address, .. } => {
            surgery::remove_record(&workspace.backend, &secrets, address, &redacted_command())?;
            outln!("Removed {address} from the state; the object itself is untouched.");
            Ok(0)
        }
        StateCommand::Mv { from, to, .. } => {
            surgery::move_record(&workspace.backend, &secrets, from, to, &redacted_command())?;
            outln!("Moved {from} to {to}.");
            Ok(0)
        }
    }
}

/// `mlops state restore`: lists the backups, or makes one of them the state.
fn restore_state(workspace: &Workspace, secrets: &Secrets, list: bool, from: Option<&str>, accept_loss: bool) -> CommandResult {
    let lock = if list { None } else { Some(workspace.backend.lock("mlops state restore")?.0) };
    let candidates = workspace.backend.backups(secrets)?;
    let describe = |candidate: &mlops_engine::state::Backup| {
        let source = if candidate.label == "current" {
            "the state files as they are".to_owned()
        } else {
            format!("backup {}{}", candidate.label, candidate.time.as_deref().map(|time| format!(" ({time})")).unwrap_or_default())
        };
        let plural = if candidate.resources == 1 { "" } else { "s" };
        let mut text = format!("serial {}: {source}, {} resource{plural}", candidate.serial, candidate.resources);
        if candidate.losses.is_empty() {
            text.push_str("; loses nothing");
        }
        for loss in &candidate.losses {
            text.push_str(&format!("\n    loses {loss}"));
        }
        text
    };
    if list {
        if candidates.is_empty() {
            outln!("There is nothing to restore: no state files and no backups in {}.", workspace.backend.describe());
        }
        for candidate in &candidates {
            let label = if candidate.label == "current" { "current".to_owned() } else { candidate.label.clone() };
            outln!("--from {label}\n    {}", describe(candidate));
        }
        return Ok(0);
    }
    let chosen = match from {
        Some(label) => match candidates.iter().find(|candidate| candidate.label == label) {
            Some(candidate) => Some(candidate.clone()),
            None => {
                return fail(Diagnostic::error(codes::STATE_ERROR, format!("there is no backup `{label}` to restore")).with_help(format!(
                    "the choices are: {}",
                    candidates.iter().map(|candidate| candidate.label.clone()).collect::<Vec<_>>().join(", ")
                )))
            }
        },
        // The newest; between equals, the one that loses nothing.
        None => candidates.iter().max_by_key(|candidate| (candidate.serial, candidate.losses.is_empty())).cloned(),
    };
    let chosen = match chosen {
        Some(chosen) => chosen,
        None if accept_loss => mlops_engine::state::Backup::empty(),
        None => {
            return fail(Diagnostic::error(codes::STATE_ERROR, "there are no state files and no backups to restore from").with_help(
                "if everything this configuration managed is really gone, `mlops state restore --accept-loss` starts from an empty state",
            ))
        }
    };
    if !chosen.losses.is_empty() && !accept_loss {
        return fail(Diagnostic::error(codes::STATE_ERROR, format!("restoring {}", describe(&chosen).replace("\n   ", ";"))).with_help(
            "nothing was changed; `mlops state restore --list` shows every choice; add --accept-loss to restore this one anyway",
        ));
    }
    match workspace.backend.restore(&chosen, secrets, &redacted_command()) {
        Ok(restored) => {
            drop(lock);
            let plural = if restored.resources == 1 { "" } else { "s" };
            outln!(
                "Restored serial {} from {} ({} resource{plural}); the state is now at serial {}.",
                restored.restored_serial,
                if restored.from == "current" { "the state files".to_owned() } else { format!("backup {}", restored.from) },
                restored.resources,
                restored.new_serial
            );
            if let Some(aside) = restored.set_aside {
                outln!("The files it replaced are kept in {}.", aside.display());
            }
            outln!("Run `mlops plan` to compare it with what exists: refresh shows anything it is missing.");
            Ok(0)
        }
        Err(error) => Err(error.into()),
    }
}
