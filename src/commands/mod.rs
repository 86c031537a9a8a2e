//! The commands of the `mlops` binary, one file each. Every command
//! returns a [`CommandResult`]: its exit code, or the problem that ended
//! it, which [`exit_code`] reports. What several commands share (the
//! workspace and its state backend, the providers, variable values,
//! reporting) is here.

mod apply;
mod drift;
mod explain;
mod features_shard;
mod fmt;
mod force_unlock;
mod graph;
mod history;
mod import;
mod init;
mod lineage;
mod module_publish;
mod output;
mod plan;
mod schema;
mod show;
mod state;
mod validate;

pub use apply::apply_command;
pub use drift::drift_command;
pub use explain::explain_command;
pub use features_shard::features_shard_command;
pub use fmt::format_command;
pub use force_unlock::force_unlock_command;
pub use graph::{graph_command, GraphFormat};
pub use history::history_command;
pub use import::import_command;
pub use init::init_command;
pub use lineage::lineage_command;
pub use module_publish::module_publish_command;
pub use output::output_command;
pub use plan::{plan_command, PlanFormat};
pub use schema::schema_command;
pub use show::show_command;
pub use state::{state_command, StateCommand};
pub use validate::validate_command;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlops_compiler::check::VariableOrigin;
use mlops_compiler::diagnostic::render::{render_human_all, HumanOptions};
use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::source::SourceMap;
use mlops_compiler::value::Value;
use mlops_engine::plan::{Plan, Providers, SigningKey};
use mlops_engine::state::{Backend, LocalBackend, RemoteBackend, Secrets, State, StateError};
use serde_json::Value as Json;

/// What the planning commands share.
#[derive(Debug, Clone, Default)]
pub struct PlanArguments {
    pub directory: PathBuf,
    pub variables: Vec<String>,
    pub variable_files: Vec<PathBuf>,
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    pub refresh: bool,
    pub parallelism: usize,
}

/// Why a command ended without doing its work.
#[derive(Debug)]
pub enum CommandError {
    /// One problem, not shown yet.
    Problem(Box<Diagnostic>),
    /// Problems shown already (with their source snippets); the exit code.
    Reported(i32),
    /// No plan was made: the errors, shown already on standard error, for
    /// a format that also carries them on standard output.
    NotPlanned(Box<(SourceMap, Vec<Diagnostic>)>),
}

impl From<Diagnostic> for CommandError {
    fn from(diagnostic: Diagnostic) -> CommandError {
        CommandError::Problem(Box::new(diagnostic))
    }
}

impl From<StateError> for CommandError {
    fn from(error: StateError) -> CommandError {
        CommandError::Problem(Box::new(state_diagnostic(error)))
    }
}

/// A command's exit code (0 done, 2 "plan has changes" with
/// `-detailed-exitcode`, 1 for a refusal it has shown), or its problem.
pub type CommandResult<T = i32> = Result<T, CommandError>;

/// The exit code of a finished command, its problem shown first.
pub fn exit_code(result: CommandResult) -> i32 {
    match result {
        Ok(code) | Err(CommandError::Reported(code)) => code,
        Err(CommandError::NotPlanned(_)) => 1,
        Err(CommandError::Problem(diagnostic)) => {
            report(&[*diagnostic], &SourceMap::default());
            1
        }
    }
}

/// Ends a command with one problem.
fn fail<T>(diagnostic: Diagnostic) -> CommandResult<T> {
    Err(diagnostic.into())
}

fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

fn stderr_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

fn width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|columns| columns.parse().ok()).unwrap_or(100)
}

/// Prints diagnostics to stderr; returns how many were errors.
fn report(diagnostics: &[Diagnostic], sources: &SourceMap) -> usize {
    let rendered = render_human_all(diagnostics, sources, HumanOptions { colour: stderr_colour(), width: width() });
    let _ = std::io::stderr().write_all(rendered.as_bytes());
    diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count()
}

fn display_directory(directory: &Path) -> String {
    let text = directory.display().to_string();
    let trimmed = text.trim_end_matches('/').trim_start_matches("./");
    if trimmed.is_empty() || trimmed == "." {
        String::new()
    } else {
        trimmed.to_owned()
    }
}

/// Where a configuration keeps its state and provider data.
struct Workspace {
    directory: PathBuf,
    data_directory: PathBuf,
    backend: Backend,
}

/// The configuration directory and its state backend.
fn workspace(directory: &Path) -> CommandResult<Workspace> {
    let directory = directory.canonicalize().map_err(|error| {
        CommandError::from(
            Diagnostic::error(
                codes::UNREADABLE_FILE,
                format!("cannot open the configuration directory `{}`: {error}", directory.display()),
            )
            .with_help("run mlops in a configuration directory, or pass its path"),
        )
    })?;
    // The backend block, if any: parsing is enough (a backend takes literals),
    // and the configuration is checked in full by the command itself.
    let mut sources = SourceMap::default();
    let mut ignored = mlops_compiler::diagnostic::Diagnostics::default();
    let loaded = mlops_compiler::loader::load_directory(&mlops_compiler::files::DiskFiles, &directory, "", &mut sources, &mut ignored);
    let block = loaded
        .iter()
        .flat_map(|loaded| &loaded.files)
        .flat_map(|(_, body)| body.blocks_named("mlops"))
        .flat_map(|settings| settings.body.blocks_named("backend"))
        .next();
    let data_directory = directory.join(".mlops");
    let Some(block) = block else {
        return Ok(Workspace { backend: Backend::Local(LocalBackend::new(data_directory.join("state"))), data_directory, directory });
    };
    let reported = |diagnostic: Diagnostic| {
        report(&[diagnostic], &sources);
        CommandError::Reported(1)
    };
    let mut settings = mlops_provider_api::Attributes::new();
    for attribute in &block.body.attributes {
        let Some(value) = mlops_compiler::schema::literal_value(&attribute.value) else {
            return Err(reported(
                Diagnostic::error(codes::UNKNOWN_BACKEND, format!("the backend's `{}` must be a literal value", attribute.name.name))
                    .at(attribute.value.span, "not a literal")
                    .with_help("the backend is read before variables and resources are known: write the value itself"),
            ));
        };
        settings.insert(attribute.name.name.clone(), value.to_json_unredacted());
    }
    let kind = block.labels.first().map(|label| label.value.clone()).unwrap_or_default();
    let backend = match kind.as_str() {
        "local" => {
            let path = settings.get("path").and_then(Json::as_str).unwrap_or(".mlops/state");
            Backend::Local(LocalBackend::new(directory.join(path)))
        }
        "s3" => match mlops_provider_s3::S3StateStore::new(&mlops_engine::convert::provider_configuration(
            &settings,
            mlops_compiler::schema::Schemas::standard().backends.get(&kind).map(|schema| &schema.body),
            &[],
            &std::collections::BTreeMap::new(),
        )) {
            Ok(store) => Backend::Remote(RemoteBackend::new(std::sync::Arc::new(store))),
            Err(error) => {
                let help = error.help().unwrap_or("see `mlops explain E0606`").to_owned();
                return Err(reported(
                    Diagnostic::error(codes::UNKNOWN_BACKEND, error.to_string()).at(block.header_span(), "this backend").with_help(help),
                ));
            }
        },
        other => {
            return Err(reported(
                Diagnostic::error(codes::UNKNOWN_BACKEND, format!("there is no state backend `{other}`"))
                    .at(block.header_span(), "unknown backend")
                    .with_help("the backends are `local` and `s3`"),
            ))
        }
    };
    Ok(Workspace { backend, data_directory, directory })
}

/// Says so when the state holds secrets this run cannot decrypt: they are
/// compared as unchanged, as if no key had ever been set.
fn note_unreadable_secrets(state: &State) {
    let count = mlops_engine::state::unreadable_secrets(state);
    if count > 0 {
        errln!(
            "note: {count} sensitive value{} in the state {} encrypted with a key this run does not have (MLOPS_STATE_KEY is unset or different); {} treated as unchanged",
            if count == 1 { "" } else { "s" },
            if count == 1 { "is" } else { "are" },
            if count == 1 { "it is" } else { "they are" }
        );
    }
}

fn state_diagnostic(error: StateError) -> Diagnostic {
    match error {
        StateError::Locked { holder } => {
            // A remote lock outlives its process; one from this machine can be checked.
            let help =
                if holder.pid != 0 && holder.host == mlops_engine::state::hostname() && !mlops_engine::state::process_alive(holder.pid) {
                    format!("process {} on this machine is no longer running; run `mlops force-unlock {}`", holder.pid, holder.id)
                } else {
                    format!("wait for it to finish; if that process is gone for good, run `mlops force-unlock {}`", holder.id)
                };
            Diagnostic::error(codes::STATE_LOCKED, format!("the state is locked by {holder}")).with_help(help)
        }
        other => {
            let help = other.help().unwrap_or_else(|| "nothing was changed".to_owned());
            Diagnostic::error(codes::STATE_ERROR, other.to_string()).with_help(help)
        }
    }
}

pub fn providers() -> Providers {
    let mut providers = Providers::new();
    providers.register("local", Arc::new(mlops_provider_local::LocalProvider::new()));
    providers.register("s3", Arc::new(mlops_provider_s3::S3Provider::new()));
    providers.register("kubernetes", Arc::new(mlops_provider_kubernetes::KubernetesProvider::new()));
    providers.register("mlflow", Arc::new(mlops_provider_mlflow::MlflowProvider::new()));
    providers.register("oci", Arc::new(mlops_provider_oci::OciProvider::new()));
    providers
}

/// Variable values and where each came from.
pub(crate) type VariableValues = (HashMap<String, Value>, HashMap<String, VariableOrigin>);

/// Parses `-var NAME=VALUE`, `-var-file FILE` and (with `environment`)
/// `MLOPS_VAR_NAME` values. `-var` wins, then `-var-file`, then the environment.
pub(crate) fn variable_values(assignments: &[String], files: &[PathBuf], environment: bool) -> Result<VariableValues, Diagnostic> {
    let mut values = HashMap::new();
    let mut origins = HashMap::new();
    if environment {
        for (name, value) in std::env::vars() {
            if let Some(name) = name.strip_prefix("MLOPS_VAR_") {
                values.insert(name.to_owned(), parse_value(&value));
                origins.insert(name.to_owned(), VariableOrigin::Environment);
            }
        }
    }
    for file in files {
        let bytes = mlops_compiler::limits::read_regular_file(file, mlops_compiler::limits::MAX_READ_FILE_BYTES).map_err(|reason| {
            Diagnostic::error(codes::UNREADABLE_FILE, format!("cannot read the variable file `{}`: {reason}", file.display()))
                .with_help("-var-file names a text file of `name = value` lines")
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Diagnostic::error(codes::INVALID_UTF8, format!("the variable file `{}` is not UTF-8 text", file.display()))
                .with_help("save the file as UTF-8")
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let body = mlops_compiler::syntax::parse_file(mlops_compiler::source::FileId(0), text).map_err(|diagnostic| {
            Diagnostic::error(codes::SYNTAX_ERROR, format!("`{}`: {}", file.display(), diagnostic.message))
                .with_help("a variable file holds lines like `name = \"value\"`")
        })?;
        for attribute in &body.attributes {
            let value = mlops_compiler::schema::literal_value(&attribute.value).ok_or_else(|| {
                Diagnostic::error(
                    codes::SYNTAX_ERROR,
                    format!("`{}`: the value of `{}` must be a literal", file.display(), attribute.name.name),
                )
                .with_help("variable files hold literal values: strings, numbers, bools, lists and maps")
            })?;
            values.insert(attribute.name.name.clone(), value);
            origins.insert(attribute.name.name.clone(), VariableOrigin::File(file.display().to_string()));
        }
    }
    for assignment in assignments {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(Diagnostic::error(codes::SYNTAX_ERROR, format!("`-var {assignment}` is not NAME=VALUE"))
                .with_help("write `-var name=value`"));
        };
        values.insert(name.trim().to_owned(), parse_value(value));
        origins.insert(name.trim().to_owned(), VariableOrigin::CommandLine);
    }
    Ok((values, origins))
}

/// A command-line value: a literal when it reads as one (`[1, 2]`, `true`), else a string.
fn parse_value(text: &str) -> Value {
    let trimmed = text.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') || trimmed.starts_with('"') {
        if let Ok(body) = mlops_compiler::syntax::parse_file(mlops_compiler::source::FileId(0), &format!("v = {trimmed}\n")) {
            if let Some(value) = body.attributes.first().and_then(|attribute| mlops_compiler::schema::literal_value(&attribute.value)) {
                return value;
            }
        }
    }
    Value::String(text.to_owned())
}

/// The command line for the history, without variable values (which may be secret).
fn redacted_command() -> String {
    let mut redacted = Vec::new();
    let mut value_follows = false;
    // The program by its name, not the path it was run from.
    let program = std::env::args()
        .next()
        .map(|program| Path::new(&program).file_name().map_or_else(|| program.clone(), |name| name.to_string_lossy().into_owned()));
    for argument in program.into_iter().chain(std::env::args().skip(1)) {
        if value_follows {
            redacted.push(argument.split_once('=').map_or_else(|| "…".to_owned(), |(name, _)| format!("{name}=…")));
            value_follows = false;
            continue;
        }
        match argument.split_once('=') {
            Some((flag, rest)) if flag == "-var" || flag == "--var" => {
                redacted.push(format!("{flag}={}", rest.split_once('=').map_or("…".to_owned(), |(name, _)| format!("{name}=…"))));
            }
            _ => {
                value_follows = argument == "-var" || argument == "--var";
                redacted.push(argument);
            }
        }
    }
    redacted.join(" ")
}

fn print_outputs(state: &State) {
    if state.outputs.is_empty() {
        return;
    }
    outln!("\nOutputs:");
    for (name, output) in &state.outputs {
        let shown = if output.sensitive { "(sensitive)".to_owned() } else { output.value.to_string() };
        outln!("  {name} = {shown}");
    }
}

/// A saved plan, checked against the key of the state it was made for, and
/// the workspace of that state.
fn read_saved_plan(path: &Path, bytes: &[u8], secrets: &Secrets) -> CommandResult<(Plan, Workspace)> {
    let refused = |message: String| {
        CommandError::from(Diagnostic::error(codes::STALE_PLAN, format!("`{}`: {message}", path.display())).with_help(
            "nothing was applied; make a new plan with `mlops plan -out FILE` and review it (a saved plan is refused once edited)",
        ))
    };
    let Some(root) = Plan::saved_root_directory(bytes) else { return Err(refused("not a saved plan".to_owned())) };
    let workspace = workspace(&root)?;
    let key_for = |signed_with: &str| match signed_with {
        SigningKey::STATE_KEY => std::env::var("MLOPS_STATE_KEY")
            .ok()
            .filter(|key| !key.is_empty())
            .map(|key| SigningKey::from_passphrase(&key))
            .ok_or_else(|| "the saved plan was signed with MLOPS_STATE_KEY, which is not set".to_owned()),
        _ => match workspace.backend.existing_plan_key() {
            Ok(Some(key)) => Ok(SigningKey { key, source: SigningKey::STATE }),
            Ok(None) => Err(format!(
                "the saved plan was changed after it was made, or made for another state: the state at {} never signed a plan",
                workspace.backend.describe()
            )),
            Err(error) => Err(format!("the key that checks saved plans cannot be read: {error}")),
        },
    };
    match Plan::from_saved_json(bytes, secrets, &key_for) {
        Ok(plan) => Ok((plan, workspace)),
        Err(message) => Err(refused(message)),
    }
}
