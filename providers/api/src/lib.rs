//! The provider API: the only thing a provider author must read.
//!
//! The engine talks to every provider (local, s3, kubernetes, mlflow, oci)
//! through the [`Provider`] trait. Each call takes one request struct and
//! returns one response struct. Every struct derives `Default` and is built
//! with `..Default::default()`, so fields can be added later without
//! breaking providers, which read only what they need.
//!
//! Values cross the boundary as JSON ([`Attributes`]). Two markers may
//! appear inside a *configuration* handed to `plan`:
//!
//! - `{"$ref": "dataset.transactions", "identity": "b3:…"}`: a reference to
//!   another resource, with the identity (its version) it had when planned.
//!   By the time `apply` runs, the engine has replaced every marker with the
//!   referenced resource's applied attributes plus an `"$address"` key.
//! - `{"$expr": "log1p(row.amount)"}`: an expression the provider evaluates
//!   itself, per row, through the [`RowEvaluator`] the engine passes in (the
//!   feature expressions of a feature set).
//!
//! A provider that can host remote state also implements [`ObjectStore`].
//! One that talks to a server reads its time limits and the user's Ctrl-C
//! through [`remote`].
//!
//! Invariants providers keep:
//! - `read` and `plan` never change anything outside the provider's caches.
//! - `apply` reports long-running work through [`ApplyContext::record_handle`]
//!   *before* waiting on it, and accepts that handle back in
//!   [`ApplyRequest::pending_handle`] to re-attach after an interruption.
//! - Errors are [`ProviderError`]s with a message meant for the user; they
//!   never contain credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod object_store;
pub mod registry;
pub mod remote;
pub use object_store::{ObjectStore, ObjectStoreError, PutCondition, StoredObject};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A resource's attributes, as a JSON object.
pub type Attributes = serde_json::Map<String, Json>;

/// A path to an attribute inside [`Attributes`]: `["lifecycle_rule", "0", "prefix"]`.
pub type AttributePath = Vec<String>;

/// What the engine asks a provider to do with one resource instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Destroy then create (or create then destroy with create_before_destroy).
    Replace,
    Delete,
    /// Drop from state without touching the real object (retained kinds).
    Forget,
    /// A data source read.
    Read,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::Forget => "⊘",
            Action::Read => "<=",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Forget => "forget",
            Action::Read => "read",
        }
    }
}

/// Everything common to the calls: which instance, on which configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Target {
    /// The canonical address, e.g. `module.fp.dataset.events["eu"]`.
    pub address: String,
    pub kind: String,
    /// True for `data` blocks.
    pub is_data: bool,
    /// The provider block's settings (sensitive values included: never log them).
    pub provider_config: Attributes,
    /// The configuration's directory: relative paths and the working
    /// directory of user code are resolved against it.
    pub working_directory: PathBuf,
    /// Where the provider may keep files of its own for this configuration
    /// (the local provider's objects, registry and runs live here).
    pub data_directory: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaRequest {}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchemaResponse {
    /// The kinds this provider manages, and the data source kinds it reads.
    pub resource_kinds: Vec<String>,
    pub data_kinds: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidateRequest {
    pub target: Target,
    pub config: Attributes,
}

/// Problems the compiler cannot know about, found without touching the
/// outside world (e.g. a source file that does not exist).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ValidateResponse {
    pub problems: Vec<AttributeProblem>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttributeProblem {
    pub path: AttributePath,
    pub message: String,
    pub help: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadRequest {
    pub target: Target,
    /// The configuration last applied (markers resolved as at apply).
    pub config: Attributes,
    /// The attributes recorded in state after the last apply.
    pub state: Attributes,
    /// Provider-private data recorded with the state.
    pub private: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadResponse {
    /// The live attributes, or `None` when the object no longer exists.
    pub state: Option<Attributes>,
    pub private: Json,
    /// Changes made outside mlops that the attributes do not show (an
    /// object of a dataset replaced or deleted in the store), in words. The
    /// engine reports them as drift; `private` tells the provider's `plan`.
    pub changed_outside: Vec<String>,
    /// What the user should know about the object that is neither drift nor
    /// a change (it was recorded on another machine, say), in words.
    pub notes: Vec<String>,
}

/// A reference whose target's identity differs from what the prior apply saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChangedInput {
    pub path: AttributePath,
    pub address: String,
    pub before: Option<String>,
    /// `None` when the new identity is known only after apply.
    pub after: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanRequest {
    pub target: Target,
    /// The desired configuration, with `$ref`/`$expr` markers and
    /// `{"$unknown": true}` where a value is known only after apply.
    pub config: Attributes,
    /// The configuration applied last time, if the instance exists.
    pub prior_config: Option<Attributes>,
    /// The refreshed state, if the instance exists.
    pub prior_state: Option<Attributes>,
    pub prior_private: Json,
    /// References whose targets changed since the prior apply.
    pub changed_inputs: Vec<ChangedInput>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlanResponse {
    /// Computed attributes known now (e.g. a dataset's content hash).
    pub planned_state: Attributes,
    /// Computed attributes known only after apply.
    pub unknown: Vec<AttributePath>,
    /// Why the change cannot be made in place; empty for an update.
    pub requires_replace: Vec<String>,
    /// Why an update is needed even though the configuration is the same
    /// (e.g. "content changed"). Empty when nothing changes.
    pub update_reasons: Vec<String>,
    pub private: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub target: Target,
    pub action: Option<Action>,
    /// The configuration with every marker resolved (except `$expr`
    /// markers meant for the provider's own [`RowEvaluator`]).
    pub config: Attributes,
    pub prior_state: Option<Attributes>,
    pub prior_private: Json,
    /// The `private` this provider's plan returned for this change, for
    /// apply to reuse what the plan computed when its inputs are unchanged.
    pub planned_private: Json,
    /// The handle recorded by an interrupted apply of this instance.
    pub pending_handle: Option<Json>,
    /// What produced this: upstream addresses and their versions, the code
    /// fingerprint, hyperparameters. Registries store it with a version.
    pub lineage: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The new attributes (all computed ones known). Ignored for deletes.
    pub state: Attributes,
    pub private: Json,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The configuration of the provider that stored the data.
    pub target: Target,
    pub uri: String,
    pub destination: PathBuf,
    /// The version the data must have (`b3:` content hash, `s3l:` listing),
    /// when the engine knows it: what is fetched is checked against it, so
    /// downstream work never runs on data changed since it was recorded.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FetchResponse {
    /// How many files were copied (files already there are skipped).
    pub copied: usize,
    pub files: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    pub target: Target,
    /// The provider's own identifier for the existing object.
    pub id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportResponse {
    pub state: Option<Attributes>,
    pub config: Attributes,
    pub private: Json,
}

/// Evaluates `$expr` markers (feature expressions) for providers. The
/// engine implements it with the language's own evaluator.
pub trait RowEvaluator: Send + Sync {
    /// Compiles an expression once, for evaluation over many rows.
    fn compile(&self, expression: &str) -> Result<Box<dyn CompiledExpression>, String>;
}

pub trait CompiledExpression: Send + Sync {
    /// Evaluates with `row` bound to the given columns.
    fn evaluate(&self, row: &BTreeMap<String, Json>) -> Result<Json, String>;
}

/// What the engine lends a provider during `apply`.
pub trait ApplyContext: Send + Sync {
    /// Makes `handle` durable in state before the provider waits on remote
    /// work, so an interrupted apply can re-attach.
    fn record_handle(&self, handle: Json) -> Result<(), ProviderError>;
    /// A progress line ("training fraud: epoch 3/10"); shown on a terminal
    /// or logged, depending on where mlops runs.
    fn progress(&self, message: &str);
    /// True once the user asked to stop (Ctrl-C): long waits should return
    /// with [`ProviderError::Interrupted`] after recording their handle.
    fn interrupted(&self) -> bool;
    fn row_evaluator(&self) -> &dyn RowEvaluator;
    /// Copies the data at `uri` (the `uri` of an input this resource refers
    /// to, such as `s3://bucket/datasets/...`) into the local directory
    /// `destination`, through the provider that stored it. This is how a
    /// local training reads a dataset that lives in object storage.
    fn fetch(&self, uri: &str, destination: &std::path::Path) -> ProviderResult<()>;
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProviderError {
    /// The user's input or the outside world is wrong; the message says
    /// what and what to do.
    #[error("{message}")]
    Failed { message: String, help: Option<String> },
    /// Worth retrying with backoff (timeouts, 429, 5xx).
    #[error("{message}")]
    Transient { message: String },
    /// Stopped because the user interrupted; the handle is recorded.
    #[error("interrupted")]
    Interrupted,
    /// The work belongs to another place (another machine or checkout,
    /// sharing the state): nothing was done, and its handle is kept for the
    /// place that can resume it.
    #[error("{message}")]
    Elsewhere { message: String, help: String },
}

impl ProviderError {
    pub fn failed(message: impl Into<String>) -> Self {
        ProviderError::Failed { message: message.into(), help: None }
    }

    pub fn with_help(message: impl Into<String>, help: impl Into<String>) -> Self {
        ProviderError::Failed { message: message.into(), help: Some(help.into()) }
    }

    pub fn help(&self) -> Option<&str> {
        match self {
            ProviderError::Failed { help, .. } => help.as_deref(),
            ProviderError::Elsewhere { help, .. } => Some(help),
            _ => None,
        }
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// A provider. Implementations are shared between threads: the engine
/// refreshes and applies independent resources concurrently.
pub trait Provider: Send + Sync {
    fn schema(&self, request: SchemaRequest) -> SchemaResponse;
    fn validate(&self, request: ValidateRequest) -> ValidateResponse;
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse>;
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse>;
    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse>;
    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse>;

    /// Copies the objects at `request.uri` into `request.destination`.
    /// Providers that store data implement it; the default says they do not.
    fn fetch(&self, request: FetchRequest) -> ProviderResult<FetchResponse> {
        Err(ProviderError::failed(format!("the data at `{}` cannot be read from this provider", request.uri)))
    }
}

/// The `identity` of a resource: the attribute whose change means "a new
/// version of this thing exists" to whatever refers to it.
pub fn identity_attribute(kind: &str) -> &'static str {
    match kind {
        "bucket" | "feature_store" => "uri",
        "training" => "run_id",
        "serving" => "live_version",
        "monitor" => "drifted",
        "image" => "digest",
        _ => "version",
    }
}

/// Reads a reference marker: the address and planned identity.
pub fn as_reference(value: &Json) -> Option<(&str, Option<&str>)> {
    let object = value.as_object()?;
    let address = object.get("$ref")?.as_str()?;
    Some((address, object.get("identity").and_then(Json::as_str)))
}

/// Reads an expression marker.
pub fn as_expression(value: &Json) -> Option<&str> {
    value.as_object().filter(|object| object.len() == 1)?.get("$expr")?.as_str()
}

/// True for the marker of a value known only after apply.
pub fn is_unknown(value: &Json) -> bool {
    value.as_object().is_some_and(|object| object.len() == 1 && object.get("$unknown") == Some(&Json::Bool(true)))
}

pub fn unknown_marker() -> Json {
    serde_json::json!({"$unknown": true})
}

/// A copy of `value` with the identities of reference markers removed.
fn without_identities(value: &Json) -> Json {
    match value {
        Json::Object(entries) if entries.contains_key("$ref") => serde_json::json!({ "$ref": entries["$ref"] }),
        Json::Object(entries) => Json::Object(entries.iter().map(|(key, value)| (key.clone(), without_identities(value))).collect()),
        Json::Array(items) => Json::Array(items.iter().map(without_identities).collect()),
        other => other.clone(),
    }
}

/// Whether a plan request's configuration is what was applied last time,
/// the identities of referenced resources aside (those changes arrive as
/// [`PlanRequest::changed_inputs`]).
pub fn configuration_unchanged(request: &PlanRequest) -> bool {
    request
        .prior_config
        .as_ref()
        .is_some_and(|prior| without_identities(&Json::Object(prior.clone())) == without_identities(&Json::Object(request.config.clone())))
}

/// A duration as the language writes it: `90s`, `10m`, `6h`, `1d`, `500ms`,
/// or several of them together, `1h30m`. `None` for anything else (the
/// compiler has refused it before a provider sees it).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_length = rest.find(|character: char| !character.is_ascii_digit() && character != '.').unwrap_or(rest.len());
        let number: f64 = rest[..number_length].parse().ok()?;
        rest = &rest[number_length..];
        let unit_length = rest.find(|character: char| !character.is_ascii_alphabetic()).unwrap_or(rest.len());
        seconds += number
            * match &rest[..unit_length] {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                _ => return None,
            };
        rest = &rest[unit_length..];
    }
    std::time::Duration::try_from_secs_f64(seconds).ok()
}

/// The identities of a training's `inputs`, by input name: `address@version`
/// from reference markers (planning) or resolved inputs (applying), so plan
/// and apply compute the same run fingerprint. `None` while an identity is
/// known only after apply.
pub fn input_identities(config: &Attributes) -> Option<Vec<(String, String)>> {
    let mut identities = Vec::new();
    for (name, input) in config.get("inputs").and_then(Json::as_object).into_iter().flatten() {
        let identity = if let Some((address, identity)) = as_reference(input) {
            format!("{address}@{}", identity?)
        } else {
            let attributes = input.as_object()?;
            let kind = attributes.get("$kind").and_then(Json::as_str).unwrap_or("");
            format!(
                "{}@{}",
                attributes.get("$address").and_then(Json::as_str).unwrap_or(""),
                attributes.get(identity_attribute(kind)).map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_owned))?
            )
        };
        identities.push((name.clone(), identity));
    }
    Some(identities)
}

/// The declared metrics out of what a run wrote to `MLOPS_METRICS_FILE`
/// (`None` when it wrote nothing). `run` names the run in messages ("run
/// run-2026…", "Job fraud-…"). A run must report every declared metric as a
/// number; undeclared ones are dropped.
pub fn declared_metrics(run: &str, written: Option<&str>, declared: &[String]) -> ProviderResult<Attributes> {
    let written = written.filter(|text| !text.trim().is_empty());
    let metrics: Json = match written {
        Some(text) => serde_json::from_str(text)
            .map_err(|error| ProviderError::failed(format!("{run} wrote metrics that are not a JSON object: {error}")))?,
        None if declared.is_empty() => Json::Object(Attributes::new()),
        None => {
            return Err(ProviderError::with_help(
                format!("{run} did not write its metrics file"),
                "write a JSON object of metric name to number to the path in MLOPS_METRICS_FILE",
            ))
        }
    };
    if !metrics.is_object() {
        return Err(ProviderError::with_help(
            format!("{run} wrote metrics that are not a JSON object"),
            "write a JSON object of metric name to number to the path in MLOPS_METRICS_FILE",
        ));
    }
    let mut reported = Attributes::new();
    for name in declared {
        let wrong = |what: String| {
            ProviderError::with_help(
                format!("{run} reported the declared metric `{name}` as {what}, not a number"),
                format!("write \"{name}\": NUMBER (a JSON number, unquoted, finite) into MLOPS_METRICS_FILE"),
            )
        };
        match metrics.get(name) {
            Some(Json::Number(number)) => match number.as_f64().filter(|value| value.is_finite()) {
                Some(value) => {
                    reported.insert(name.clone(), serde_json::json!(value));
                }
                None => return Err(wrong(format!("{number}"))),
            },
            Some(Json::String(text)) => {
                let shown: String = text.chars().take(40).collect();
                return Err(wrong(format!("the string \"{shown}\"")));
            }
            Some(other) => {
                let what = match other {
                    Json::Null => "null",
                    Json::Bool(_) => "a bool",
                    Json::Array(_) => "a list",
                    _ => "an object",
                };
                return Err(wrong(what.to_owned()));
            }
            None => {
                return Err(ProviderError::with_help(
                    format!("{run} did not report the declared metric `{name}`"),
                    format!("write \"{name}\": NUMBER into MLOPS_METRICS_FILE, or remove it from `metrics`"),
                ))
            }
        }
    }
    Ok(reported)
}

/// Whether [`files_under`] lists hidden files (names starting with `.`) and
/// looks into hidden directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenFiles {
    Listed,
    Skipped,
}

/// The files under `path` (`path` itself, if it is a file) as `(path
/// relative to it with /, path)`, sorted, so the same files always come in
/// the same order. Symbolic links to files are listed (model snapshots are
/// often links into a blob store); links to directories are not followed,
/// so a link cannot make the walk loop.
pub fn files_under(path: &std::path::Path, hidden: HiddenFiles) -> ProviderResult<Vec<(String, PathBuf)>> {
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(path, &error))?;
    if metadata.is_file() {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(vec![(name, path.to_path_buf())]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(&directory).map_err(|error| unreadable(&directory, &error))?;
        for entry in entries {
            let entry = entry.map_err(|error| unreadable(&directory, &error))?;
            if hidden == HiddenFiles::Skipped && entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let entry_path = entry.path();
            let file_type = entry.file_type().map_err(|error| unreadable(&entry_path, &error))?;
            let is_file = file_type.is_file() || (file_type.is_symlink() && entry_path.is_file());
            if file_type.is_dir() {
                pending.push(entry_path);
            } else if is_file {
                let relative = entry_path.strip_prefix(path).unwrap_or(&entry_path).to_string_lossy().replace('\\', "/");
                files.push((relative, entry_path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// An IO error on a user's file or directory, with help when it is missing.
pub fn unreadable(path: &std::path::Path, error: &std::io::Error) -> ProviderError {
    if error.kind() == std::io::ErrorKind::NotFound {
        ProviderError::with_help(
            format!("`{}` does not exist", path.display()),
            "check the path; relative paths start at the configuration's directory",
        )
    } else {
        ProviderError::failed(format!("cannot read `{}`: {error}", path.display()))
    }
}

/// The innermost cause of an error (`connection refused` rather than
/// `error sending request`), for messages that must say what went wrong.
pub fn root_cause(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    // Its first line, unless that is a debug dump (some SDKs' innermost
    // errors display as their structs).
    let text = current.to_string();
    let first_line = text.lines().next().unwrap_or_default().trim();
    if first_line.is_empty() || first_line.contains("{ ") || first_line.ends_with(')') && first_line.contains("})") {
        "the connection failed".to_owned()
    } else {
        first_line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_lists_linked_files_skips_hidden_ones_on_request_and_never_loops() {
        let root = std::env::temp_dir().join(format!("mlops-files-under-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("model/weights")).unwrap();
        std::fs::create_dir_all(root.join("model/.cache")).unwrap();
        std::fs::write(root.join("model/weights/layer0.bin"), b"w").unwrap();
        std::fs::write(root.join("model/.cache/blob"), b"b").unwrap();
        std::fs::write(root.join("blob"), b"linked").unwrap();
        std::os::unix::fs::symlink(root.join("blob"), root.join("model/config.json")).unwrap();
        std::os::unix::fs::symlink(root.join("model"), root.join("model/weights/loop")).unwrap();

        let names = |hidden| -> Vec<String> {
            files_under(&root.join("model"), hidden).unwrap().into_iter().map(|(relative, _)| relative).collect()
        };
        assert_eq!(names(HiddenFiles::Listed), [".cache/blob", "config.json", "weights/layer0.bin"]);
        assert_eq!(names(HiddenFiles::Skipped), ["config.json", "weights/layer0.bin"]);
        let single = files_under(&root.join("blob"), HiddenFiles::Skipped).unwrap();
        assert_eq!(single, [("blob".to_owned(), root.join("blob"))]);
        let missing = files_under(&root.join("nothing"), HiddenFiles::Skipped).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
