//! The `local` provider: the embedded default, which needs nothing installed.
//!
//! Everything lives under the provider's root (default `.mlops/` next to the
//! configuration):
//!
//! | kind        | what it is                                                                 |
//! |-------------|----------------------------------------------------------------------------|
//! | bucket      | `objects/NAME/`, settings in `objects/NAME/.bucket.json`                   |
//! | dataset     | files validated against the schema, stored at `objects/BUCKET/datasets/ADDRESS/HASH/` (content-addressed, BLAKE3) |
//! | feature_set | `features.parquet` (or `.jsonl`) from evaluating each feature over the dataset's columns, content-addressed like datasets |
//! | training    | the user's command as a child process in `runs/RUN_ID/` (the run contract: `MLOPS_*` variables in, metrics file out) |
//! | model       | `registry/NAME/versions/N/`, immutable, with `aliases.json`                |
//! | serving     | the user's server as a background process; pid and url recorded           |
//! | monitor     | drift scores per column between the reference dataset and current files  |
//!
//! URIs are `local://PATH`, relative to the root, so state does not depend on
//! where the configuration is checked out.

pub mod drift;
mod kinds;

use mlops_data as data;
mod process;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlops_provider_api::*;
use mlops_provider_support::registry::{alias_history, alias_moves, pinned_version, registered_model_name, string_entries, LIVE_ALIASES};
use mlops_provider_support::{field, files_under, short_version as short, state_strings, state_text, strings, text, HiddenFiles};
use serde_json::{json, Value as Json};

pub use mlops_data::content_hash;

pub struct LocalProvider {
    kinds: Kinds,
}

impl LocalProvider {
    pub fn new() -> LocalProvider {
        use kinds::*;
        LocalProvider {
            kinds: Kinds::new()
                .resource("bucket", Here(Bucket))
                .resource("dataset", Here(Dataset))
                .resource("feature_set", Here(Computed { compute: apply_feature_set }))
                .resource("training_set", Here(Computed { compute: apply_training_set }))
                .resource("training", Here(Training))
                .resource("model", Here(Model))
                .resource("serving", Here(Serving))
                .resource("monitor", Here(Monitor))
                .resource("batch_prediction", Here(BatchPrediction))
                .data_source("model", ModelSource)
                .data_source("dataset", DatasetSource),
        }
    }
}

impl Default for LocalProvider {
    fn default() -> LocalProvider {
        LocalProvider::new()
    }
}

/// The provider's root directory for a target.
fn root(target: &Target) -> PathBuf {
    match target.provider_config.get("root").and_then(Value::as_str) {
        Some(root) if root != ".mlops" => target.working_directory.join(root),
        _ => target.data_directory.clone(),
    }
}

/// Where a record was made, kept in its private state.
const PLACE: &str = "place";
/// A monitor's private data: the reference dataset it was applied with.
const MONITOR_REFERENCE: &str = "reference";

/// This machine and provider root, as `HOST:/path/.mlops`: another
/// checkout of the same configuration is another place.
fn place(target: &Target) -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_owned());
    let root = root(target);
    format!("{host}:{}", root.canonicalize().unwrap_or(root).display())
}

/// Whether a record made at `recorded` lives somewhere other than here: on
/// another host, or in another checkout on this one that still exists (a
/// checkout that was moved is still this one).
fn elsewhere(recorded: &str, target: &Target) -> bool {
    let here = place(target);
    if recorded == here {
        return false;
    }
    let host_of = |place: &str| place.split_once(':').map(|(host, _)| host.to_owned());
    let same_host = host_of(recorded) == host_of(&here);
    let recorded_root = recorded.split_once(':').map(|(_, path)| path.to_owned()).unwrap_or_default();
    !same_host || Path::new(&recorded_root).exists()
}

fn uri_for(relative: &str) -> String {
    format!("local://{relative}")
}

fn path_of_uri(target: &Target, uri: &str) -> PathBuf {
    match uri.strip_prefix("local://") {
        Some(relative) => root(target).join(relative),
        None => match uri.strip_prefix("file://") {
            Some(path) => PathBuf::from(path),
            None => target.working_directory.join(uri),
        },
    }
}

/// True for a URI some other provider must fetch: `s3://…`, `oci://…`,
/// `mlflow-artifacts:/…`; false for paths and `local://`/`file://`.
fn has_remote_scheme(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, rest)) => {
            scheme.len() > 1
                && scheme.chars().all(|character| character.is_ascii_alphanumeric() || "+-.".contains(character))
                && rest.starts_with('/')
                && !matches!(scheme, "local" | "file")
        }
        None => false,
    }
}

/// A file-system-safe name for an address: `module.a.dataset.b["x"]` -> `module.a.dataset.b__x`.
fn slug(address: &str) -> String {
    mlops_data::storage_name(address)
}

fn short_hash(version: &str) -> &str {
    data::short_hash(version)
}

fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::failed(message)
}

fn io_failed(what: &str, path: &Path, error: std::io::Error) -> ProviderError {
    failed(format!("cannot {what} `{}`: {error}", path.display()))
}

/// The directory of the bucket called `name`. The compiler checks bucket
/// names against S3's rules; this refuses, once more, any name that is not
/// one plain path component, so no configuration or state can point a
/// bucket outside `objects/`.
fn bucket_path(target: &Target, name: &str) -> ProviderResult<PathBuf> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if !plain {
        return Err(ProviderError::with_help(
            format!("`{}` cannot name a local bucket: a bucket is one folder under objects/", name.escape_debug()),
            "use a bucket name of lowercase letters, digits, dots and hyphens",
        ));
    }
    Ok(root(target).join("objects").join(name))
}

/// The directory of the bucket a resolved `bucket` reference points at.
fn bucket_directory(target: &Target, config: &Configuration) -> ProviderResult<PathBuf> {
    let name = config.get("bucket").and_then(|bucket| bucket.get("name")).and_then(Value::as_str).unwrap_or("_default");
    bucket_path(target, name)
}

/// The folders under the provider's root that mlops creates, and the only
/// places it ever deletes in.
const OWNED_AREAS: &[&str] = &["objects", "registry", "runs", "serving", "staged"];

/// Deletes a directory that mlops made, and nothing else. Whatever a name in
/// the configuration or a path in a (possibly damaged) state says, `path`
/// must resolve, links followed, to something at least one level inside
/// one of the [`OWNED_AREAS`] of the provider's root; otherwise nothing is
/// deleted and the apply fails. A link in the owned place is removed as a
/// link: what it points at is never touched.
fn remove_owned(target: &Target, path: &Path) -> ProviderResult<()> {
    let Ok(metadata) = fs::symlink_metadata(path) else { return Ok(()) };
    let refuse = || {
        ProviderError::with_help(
            format!("refusing to delete `{}`: it is not inside the folders mlops owns under `{}`", path.display(), root(target).display()),
            "nothing was deleted; if the state names this path, it was edited or damaged: check it with `mlops state show`",
        )
    };
    let root = root(target).canonicalize().map_err(|_| refuse())?;
    let (Some(parent), Some(leaf)) = (path.parent(), path.file_name()) else { return Err(refuse()) };
    if leaf == ".." || leaf == "." {
        return Err(refuse());
    }
    let resolved = parent.canonicalize().map_err(|_| refuse())?.join(leaf);
    let relative = resolved.strip_prefix(&root).map_err(|_| refuse())?;
    let mut components = relative.components();
    let area = components.next().and_then(|component| component.as_os_str().to_str()).unwrap_or_default();
    if !OWNED_AREAS.contains(&area) || components.next().is_none() {
        return Err(refuse());
    }
    let removed = if metadata.is_dir() { fs::remove_dir_all(&resolved) } else { fs::remove_file(&resolved) };
    match removed {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_failed("delete", &resolved, error)),
    }
}

fn relative_to_root(target: &Target, path: &Path) -> String {
    path.strip_prefix(root(target)).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// Copies local data (a run's artifacts, a registered version) into
    /// `destination`, for providers that publish it elsewhere (a registry).
    fn fetch(&self, request: FetchRequest) -> ProviderResult<FetchResponse> {
        if has_remote_scheme(&request.uri) {
            return Err(failed(format!("the local provider cannot read `{}`", request.uri)));
        }
        let source = path_of_uri(&request.target, &request.uri);
        if source.is_file() {
            fs::create_dir_all(&request.destination).map_err(|error| io_failed("create", &request.destination, error))?;
            let name = source.file_name().unwrap_or_default();
            fs::copy(&source, request.destination.join(name)).map_err(|error| io_failed("copy", &source, error))?;
            return Ok(FetchResponse { copied: 1, files: 1 });
        }
        if !source.is_dir() {
            return Err(ProviderError::with_help(
                format!("`{}` is not on this machine any more ({} is missing)", request.uri, source.display()),
                "apply again: the resource that produced it is recreated first",
            ));
        }
        copy_directory(&source, &request.destination)?;
        // What is handed on must be the version recorded for it.
        if let Some(version) = &request.version {
            data::verify_version(&request.destination, version, &format!("`{}`", request.uri))?;
        }
        let files = data::data_files(&request.destination).map(|files| files.len()).unwrap_or(0);
        Ok(FetchResponse { copied: files, files })
    }
}

fn same_config(request: &PlanRequest) -> bool {
    configuration_unchanged(request)
}

/// `data "model"`: a version in the local registry, by alias, version, or
/// the latest.
fn plan_data_model(target: &Target, config: &Configuration) -> ProviderResult<PlanResponse> {
    let mut planned = Attributes::new();
    let name = text(config, "name").unwrap_or_default();
    let registry = root(target).join("registry").join(slug(name));
    let aliases: Json =
        fs::read(registry.join("aliases.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or(json!({}));
    let version = match text(config, "alias") {
        Some(alias) => aliases.get(alias).and_then(Json::as_str).map(str::to_owned).ok_or_else(|| {
            ProviderError::with_help(
                format!("model `{name}` has no alias `{alias}` in the local registry"),
                "apply the configuration that sets the alias first",
            )
        })?,
        None => match text(config, "version") {
            Some(version) => version.to_owned(),
            // Neither: the latest version.
            None => fs::read_dir(registry.join("versions"))
                .ok()
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u64>().ok())
                .max()
                .map(|version| version.to_string())
                .ok_or_else(|| {
                    ProviderError::with_help(
                        format!("model `{name}` has no versions in the local registry"),
                        "apply the configuration that registers it first",
                    )
                })?,
        },
    };
    let directory = registry.join("versions").join(&version);
    if !directory.is_dir() {
        return Err(ProviderError::with_help(
            format!("model `{name}` has no version {version} in the local registry"),
            "check the version, or read it by alias",
        ));
    }
    let description: Json =
        fs::read(directory.join("version.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or(Json::Null);
    planned.insert("version".into(), Json::String(version.clone()));
    planned.insert("uri".into(), Json::String(uri_for(&relative_to_root(target, &directory))));
    planned.insert("run_id".into(), description.get("run_id").cloned().unwrap_or(Json::Null));
    planned.insert("metrics".into(), description.get("metrics").cloned().filter(Json::is_object).unwrap_or(json!({})));
    Ok(PlanResponse { planned_state: planned, ..PlanResponse::default() })
}

/// The dataset's files: the local `source`, or a `uri` on this machine.
fn dataset_location(target: &Target, config: &Configuration) -> ProviderResult<PathBuf> {
    if let Some(source) = text(config, "source") {
        return Ok(target.working_directory.join(source));
    }
    match text(config, "uri") {
        Some(uri) if uri.starts_with("file://") || uri.starts_with("local://") => Ok(path_of_uri(target, uri)),
        Some(uri) => Err(ProviderError::with_help(
            format!("the local provider cannot read `{uri}`"),
            "use a local `source`, a file:// uri, or `provider = s3` for data in object storage",
        )),
        None => Err(failed("a dataset needs `source` or `uri`")),
    }
}

fn apply_bucket(request: &ApplyRequest) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let name = text(&request.config, "name").unwrap_or_default();
    if let (Some(Action::Replace), Some(prior)) = (request.action, &request.prior_state) {
        let old = state_text(prior, "uri").map(|uri| path_of_uri(target, uri));
        if let Some(old) = old.filter(|old| old.file_name().map(|file| file.to_string_lossy() != name).unwrap_or(false)) {
            remove_bucket(target, &old, request.config.get("force_destroy").and_then(Value::as_bool).unwrap_or(false), name)?;
        }
    }
    let directory = bucket_path(target, name)?;
    fs::create_dir_all(&directory).map_err(|error| io_failed("create", &directory, error))?;
    let settings = json!({
        "versioning": request.config.get("versioning").and_then(Value::to_plain_json).unwrap_or(Json::Bool(false)),
        "tags": request.config.get("tags").and_then(Value::to_plain_json).unwrap_or(json!({})),
        "lifecycle_rule": request.config.get("lifecycle_rule").and_then(Value::to_plain_json).unwrap_or(json!([])),
    });
    let settings_path = directory.join(".bucket.json");
    fs::write(&settings_path, serde_json::to_vec_pretty(&settings).unwrap_or_default())
        .map_err(|error| io_failed("write", &settings_path, error))?;
    let mut state = Attributes::new();
    state.insert("uri".into(), Json::String(uri_for(&format!("objects/{name}"))));
    for (key, value) in settings.as_object().into_iter().flatten() {
        state.insert(key.clone(), value.clone());
    }
    Ok(ApplyResponse { state, private: Json::Null })
}

fn remove_bucket(target: &Target, directory: &Path, force_destroy: bool, name: &str) -> ProviderResult<()> {
    if !directory.exists() {
        return Ok(());
    }
    // Every file counts, hidden ones included: a `.git/` or a `.env` is not nothing.
    let holds = files_under(directory, HiddenFiles::Listed)?.into_iter().filter(|(relative, _)| relative != ".bucket.json").count();
    if holds > 0 && !force_destroy {
        return Err(ProviderError::with_help(
            format!("bucket `{name}` is not empty: it holds {holds} file{}", if holds == 1 { "" } else { "s" }),
            "set `force_destroy = true` on the bucket to delete it with its contents",
        ));
    }
    remove_owned(target, directory)
}

fn apply_dataset(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let location = dataset_location(target, &request.config)?;
    let files = data::data_files(&location)?;
    context.progress(&format!("hashing {} file(s)", files.len()));
    let hashed = data::content_hash_for_apply(&location, &files, &request.planned_private)?;
    let (version, size) = (hashed.version.clone(), hashed.size);
    let format = text(&request.config, "format").unwrap_or("csv");
    let columns = data::configured_columns(&request.config);
    context.progress("validating rows against the schema");
    let row_count = data::validate_rows(&files, format, columns.as_deref(), &std::sync::atomic::AtomicBool::new(false))?;
    let external = text(&request.config, "source").is_none();
    let uri = if external {
        text(&request.config, "uri").unwrap_or_default().to_owned()
    } else {
        let destination =
            bucket_directory(target, &request.config)?.join("datasets").join(slug(&target.address)).join(short_hash(&version));
        data::store_files(&location, &files, &destination)?;
        if let Err(error) = hashed.check_unchanged(&location, &files) {
            remove_owned(target, &destination)?;
            return Err(error);
        }
        uri_for(&relative_to_root(target, &destination))
    };
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(version));
    state.insert("uri".into(), Json::String(uri));
    state.insert("row_count".into(), json!(row_count));
    state.insert("size_bytes".into(), json!(size));
    Ok(ApplyResponse { state, private: Json::Object(hashed.private()) })
}

/// The rows of a resolved dataset reference, typed by its schema.
/// A local directory holding the data at `uri`: the data itself when it is
/// on this machine, else a copy staged (once) through the provider that
/// stored it, under `staged/`.
fn local_copy(target: &Target, uri: &str, version: Option<&str>, context: Option<&dyn ApplyContext>) -> ProviderResult<PathBuf> {
    if !has_remote_scheme(uri) {
        return Ok(path_of_uri(target, uri));
    }
    let Some(context) = context else {
        return Err(ProviderError::with_help(
            format!("`{uri}` is not on this machine, and it cannot be fetched here"),
            "monitors on the local provider read local data; use a local dataset as the reference",
        ));
    };
    data::stage_once(&root(target).join("staged"), uri, version, |incoming| context.fetch(uri, incoming))
}

fn dataset_rows(
    target: &Target,
    dataset: &Value,
    context: Option<&dyn ApplyContext>,
    mut visit: impl FnMut(data::Row) -> ProviderResult<()>,
) -> ProviderResult<usize> {
    let uri = field(dataset, "uri").ok_or_else(|| failed("the dataset has no stored data yet"))?;
    let location = local_copy(target, uri, field(dataset, "version"), context)?;
    let files = data::data_files(&location)?;
    let format = field(dataset, "format").unwrap_or("csv");
    let columns = data::columns_of(dataset);
    data::for_each_row(&files, format, columns.as_deref(), |_, _, row| visit(row))
}

fn apply_feature_set(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let dataset = request.config.get("dataset").cloned().unwrap_or_default();
    let uri = field(&dataset, "uri").ok_or_else(|| failed("the dataset has no stored data yet"))?;
    let location = local_copy(target, uri, field(&dataset, "version"), Some(context))?;
    let files = data::data_files(&location)?;
    let columns = data::columns_of(&dataset);
    let input = data::features::DatasetFiles {
        files: &files,
        format: field(&dataset, "format").unwrap_or("csv"),
        columns: columns.as_deref(),
        validated: data::features::DatasetFiles::validated_by(&dataset),
    };
    // Next to the dataset, in its bucket, unless the feature set names one.
    let bucket = match request.config.get("bucket").and_then(|bucket| bucket.get("name")).and_then(Value::as_str) {
        Some(name) => bucket_path(target, name)?,
        None => {
            let bucket_name = uri.strip_prefix("local://objects/").and_then(|rest| rest.split('/').next()).unwrap_or("_default");
            bucket_path(target, bucket_name)?
        }
    };
    let features_directory = bucket.join("features").join(slug(&target.address));
    // Computed into a fresh directory, renamed into place once whole: a
    // crash leaves no partial version behind.
    let staging = fresh_staging(target, &features_directory)?;
    context.progress("computing the features");
    let features = match data::features::compute_features(&request.config, &input, &staging, context) {
        Ok(features) => features,
        Err(error) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    let destination = features_directory.join(short_hash(&features.version));
    if destination.exists() {
        let _ = fs::remove_dir_all(&staging);
    } else {
        fs::rename(&staging, &destination).map_err(|error| io_failed("store", &destination, error))?;
    }
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(features.version));
    state.insert("uri".into(), Json::String(uri_for(&relative_to_root(target, &destination))));
    state.insert("row_count".into(), json!(features.row_count));
    Ok(ApplyResponse { state, private: Json::Null })
}

/// A staging directory in `directory` for this apply, after removing what
/// an apply killed mid-way left there: the state lock lets one apply at a
/// time work on a resource, so any other staging directory is abandoned.
fn fresh_staging(target: &Target, directory: &Path) -> ProviderResult<PathBuf> {
    if let Ok(entries) = fs::read_dir(directory) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".staging-") {
                remove_owned(target, &entry.path())?;
            }
        }
    }
    Ok(directory.join(format!(".staging-{}", std::process::id())))
}

/// Labels joined point-in-time to feature sets, stored in the labels'
/// bucket like features.
fn apply_training_set(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let inputs =
        data::join::TrainingSetInputs::from_config(&request.config, |uri, version| local_copy(target, uri, version, Some(context)))?;
    let labels_uri = inputs.labels_uri.as_str();
    let bucket_name = labels_uri.strip_prefix("local://objects/").and_then(|rest| rest.split('/').next()).unwrap_or("_default");
    let sets_directory = bucket_path(target, bucket_name)?.join("training-sets").join(slug(&target.address));
    let staging = fresh_staging(target, &sets_directory)?;
    context.progress("joining the labels to the features, point-in-time");
    let joined = match inputs.join(&staging, context) {
        Ok(joined) => joined,
        Err(error) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    let destination = sets_directory.join(short_hash(&joined.version));
    if destination.exists() {
        let _ = fs::remove_dir_all(&staging);
    } else {
        fs::rename(&staging, &destination).map_err(|error| io_failed("store", &destination, error))?;
    }
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(joined.version));
    state.insert("uri".into(), Json::String(uri_for(&relative_to_root(target, &destination))));
    state.insert("row_count".into(), json!(joined.row_count));
    Ok(ApplyResponse { state, private: Json::Null })
}

/// The training fingerprint: command, hyperparameters, environment, the
/// identities of the inputs and the content of the code files the command
/// names. `None` while an input's identity is known only after apply.
fn fingerprint(target: &Target, config: &Configuration) -> Option<String> {
    let mut hasher = blake3::Hasher::new();
    let inputs = mlops_provider_support::input_identities(config)?;
    let canonical = json!({
        "command": config.get("command"),
        "image": config.get("image"),
        "hyperparameters": config.get("hyperparameters"),
        "env": config.get("env"),
        "inputs": inputs,
    });
    hasher.update(canonical.to_string().as_bytes());
    for argument in config.get("command").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        let path = target.working_directory.join(argument);
        if path.is_file() {
            if let Ok(bytes) = fs::read(&path) {
                hasher.update(argument.as_bytes());
                hasher.update(blake3::hash(&bytes).as_bytes());
            }
        }
    }
    Some(format!("b3:{}", hasher.finalize().to_hex()))
}

/// Why a run (a training, a batch prediction) must run again: new inputs,
/// a new configuration, or changed code. Empty when it need not.
fn run_again_reasons(request: &PlanRequest, fingerprint: Option<&str>) -> Vec<String> {
    let prior_fingerprint = request.prior_state.as_ref().and_then(|state| state_text(state, "fingerprint"));
    if !request.changed_inputs.is_empty() {
        vec!["a run is immutable: new inputs need a new run".into()]
    } else if !same_config(request) {
        vec!["a run is immutable: a new configuration needs a new run".into()]
    } else if fingerprint.is_some() && fingerprint != prior_fingerprint {
        vec![format!(
            "code fingerprint changed: {} -> {}",
            prior_fingerprint.map_or("(none)".to_owned(), short),
            fingerprint.map_or("(known after apply)".to_owned(), short)
        )]
    } else {
        Vec::new()
    }
}

fn plan_training(request: &PlanRequest, response: &mut PlanResponse) -> ProviderResult<()> {
    let target = &request.target;
    let fingerprint = fingerprint(target, &request.config);
    if let Some(prior) = &request.prior_state {
        response.requires_replace.extend(run_again_reasons(request, fingerprint.as_deref()));
        // retrain_on: a value that turned true since the last run.
        let now_true = request
            .config
            .get("retrain_on")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|value| value.as_bool() == Some(true)));
        let before_true = request
            .prior_config
            .as_ref()
            .and_then(|config| config.get("retrain_on"))
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|value| value.as_bool() == Some(true)));
        if now_true && !before_true {
            response.requires_replace.push("retrain_on turned true (drift detected)".into());
        }
        if response.requires_replace.is_empty() {
            response.planned_state = prior.clone();
            return Ok(());
        }
    }
    if let Some(fingerprint) = fingerprint {
        response.planned_state.insert("fingerprint".into(), Json::String(fingerprint));
    } else {
        response.unknown.push(vec!["fingerprint".into()]);
    }
    response.unknown.extend([vec!["run_id".into()], vec!["artifact_uri".into()], vec!["metrics".into()], vec!["duration_seconds".into()]]);
    Ok(())
}

/// A run an interrupted apply started: its id, the fingerprint of the
/// settings it was started with, and its process.
struct PendingRun {
    run_id: String,
    fingerprint: Option<String>,
    process: Option<process::Started>,
}

impl PendingRun {
    fn from_handle(runs: &Path, handle: &Json) -> Option<PendingRun> {
        let run_id = handle.get("run_id")?.as_str()?.to_owned();
        // A run id names a folder under runs/: nothing else.
        if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
            return None;
        }
        let process = process::Started::from_json(handle).or_else(|| process::Started::from_pid_file(&runs.join(&run_id).join("pid")));
        Some(PendingRun { run_id, fingerprint: handle.get("fingerprint").and_then(Json::as_str).map(str::to_owned), process })
    }

    fn finished_well(&self, runs: &Path) -> bool {
        fs::read_to_string(runs.join(&self.run_id).join("exit_code")).is_ok_and(|code| code.trim() == "0")
    }
}

fn apply_training(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let declared: Vec<String> = strings(config, "metrics");
    let wanted_fingerprint = fingerprint(target, config);
    let finished = run_to_completion(request, context, wanted_fingerprint.clone(), |_, directory| {
        let mut environment = vec![
            ("MLOPS_METRICS_FILE".to_owned(), directory.join("metrics.json").to_string_lossy().into_owned()),
            (
                "MLOPS_HYPERPARAMETERS".to_owned(),
                config.get("hyperparameters").and_then(Value::to_plain_json).unwrap_or(json!({})).to_string(),
            ),
        ];
        for (name, value) in config.get("hyperparameters").and_then(Value::as_object).into_iter().flatten() {
            environment.push((format!("MLOPS_HP_{}", name.to_uppercase()), process::environment_text(value)));
        }
        for (name, input) in config.get("inputs").and_then(Value::as_object).into_iter().flatten() {
            let uri = field(input, "uri").ok_or_else(|| failed(format!("input `{name}` has no stored data")))?;
            let staged = local_copy(target, uri, field(input, "version"), Some(context))?;
            environment.push((format!("MLOPS_INPUT_{}", name.to_uppercase()), staged.to_string_lossy().into_owned()));
        }
        Ok(environment)
    })?;
    let (run_id, run_directory, started) = (finished.run_id, finished.directory, finished.started);
    let metrics_file = run_directory.join("metrics.json");
    let written = if metrics_file.exists() { Some(data::read_text(&metrics_file, 1024 * 1024)?) } else { None };
    let reported = mlops_provider_support::declared_metrics(&format!("run {run_id}"), written.as_deref(), &declared)?;
    let mut state = Attributes::new();
    state.insert("run_id".into(), Json::String(run_id.clone()));
    state.insert("fingerprint".into(), wanted_fingerprint.map_or(Json::Null, Json::String));
    state.insert("artifact_uri".into(), Json::String(uri_for(&relative_to_root(target, &run_directory.join("output")))));
    state.insert("metrics".into(), Json::Object(reported));
    state.insert("duration_seconds".into(), json!(started.elapsed().as_secs()));
    context.progress(&format!("run {run_id} finished in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(ApplyResponse { state, private: json!({ "run_id": run_id }) })
}

/// The fingerprint of a batch prediction: its command, environment and
/// code, and the identities of its model version and input.
fn prediction_fingerprint(target: &Target, config: &Configuration) -> Option<String> {
    let mut view = config.clone();
    let inputs = ["model", "input"].map(|name| (name.to_owned(), config.get(name).cloned().unwrap_or_default()));
    view.insert("inputs".into(), Value::Map(Configuration::from(inputs)));
    fingerprint(target, &view)
}

fn plan_batch_prediction(request: &PlanRequest, response: &mut PlanResponse) {
    let fingerprint = prediction_fingerprint(&request.target, &request.config);
    if let Some(prior) = &request.prior_state {
        response.requires_replace.extend(run_again_reasons(request, fingerprint.as_deref()));
        if response.requires_replace.is_empty() {
            response.planned_state = prior.clone();
            return;
        }
    }
    match fingerprint {
        Some(fingerprint) => {
            response.planned_state.insert("fingerprint".into(), Json::String(fingerprint));
        }
        None => response.unknown.push(vec!["fingerprint".into()]),
    }
    for computed in ["version", "uri", "run_id", "files", "size_bytes"] {
        response.unknown.push(vec![computed.into()]);
    }
}

/// The model version's files on this machine (fetched when the registry is
/// remote).
fn model_directory(target: &Target, model: &Value, context: &dyn ApplyContext) -> ProviderResult<PathBuf> {
    let model_uri = field(model, "uri").ok_or_else(|| failed("the model has no registered version"))?;
    if model_uri.starts_with("local://") {
        Ok(path_of_uri(target, model_uri).join("artifacts"))
    } else {
        local_copy(target, model_uri, field(model, "version"), Some(context))
    }
}

/// Runs the command on the model version and the input, and stores what it
/// wrote as the predictions, content-addressed in the input's bucket.
fn apply_batch_prediction(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let model = config.get("model").cloned().unwrap_or_default();
    let input = config.get("input").cloned().unwrap_or_default();
    let input_uri = field(&input, "uri").ok_or_else(|| failed("the input has no stored data yet"))?;
    let model_files = model_directory(target, &model, context)?;
    let input_files = local_copy(target, input_uri, field(&input, "version"), Some(context))?;
    let wanted_fingerprint = prediction_fingerprint(target, config);
    let finished = run_to_completion(request, context, wanted_fingerprint.clone(), |_, _| {
        Ok(vec![
            ("MLOPS_MODEL_DIR".to_owned(), model_files.to_string_lossy().into_owned()),
            ("MLOPS_MODEL_VERSION".to_owned(), field(&model, "version").unwrap_or_default().to_owned()),
            ("MLOPS_INPUT_DIR".to_owned(), input_files.to_string_lossy().into_owned()),
            ("MLOPS_INPUT_FORMAT".to_owned(), field(&input, "format").unwrap_or("csv").to_owned()),
        ])
    })?;
    let output = finished.directory.join("output");
    let files = data::data_files(&output)?;
    if files.is_empty() {
        return Err(ProviderError::with_help(
            format!("run {} wrote no predictions", finished.run_id),
            "write the predictions into the directory MLOPS_OUTPUT_DIR names",
        ));
    }
    let (version, size) = data::content_hash(&output, &files)?;
    let bucket_name = input_uri.strip_prefix("local://objects/").and_then(|rest| rest.split('/').next()).unwrap_or("_default");
    let destination = bucket_path(target, bucket_name)?.join("predictions").join(slug(&target.address)).join(short_hash(&version));
    data::store_files(&output, &files, &destination)?;
    context.progress(&format!(
        "run {} wrote {} file(s) of predictions in {:.1}s",
        finished.run_id,
        files.len(),
        finished.started.elapsed().as_secs_f64()
    ));
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(version));
    state.insert("uri".into(), Json::String(uri_for(&relative_to_root(target, &destination))));
    state.insert("run_id".into(), Json::String(finished.run_id.clone()));
    state.insert("fingerprint".into(), wanted_fingerprint.map_or(Json::Null, Json::String));
    state.insert("files".into(), json!(files.len()));
    state.insert("size_bytes".into(), json!(size));
    Ok(ApplyResponse { state, private: json!({ "run_id": finished.run_id }) })
}

/// A run that finished well: its id, its directory (with `output/` and
/// `log.txt`), and when it started.
struct FinishedRun {
    run_id: String,
    directory: PathBuf,
    started: Instant,
}

/// Runs the resource's `command` as a detached process (its handle
/// recorded first, so an interrupted apply re-attaches to a run started
/// with the same `fingerprint`), waits for it within `timeout`, and fails
/// with the end of its log unless it exits 0. `run_environment` gives the
/// variables beyond `MLOPS_RUN_ID`, `MLOPS_OUTPUT_DIR` and `env`.
fn run_to_completion(
    request: &ApplyRequest,
    context: &dyn ApplyContext,
    wanted_fingerprint: Option<String>,
    run_environment: impl FnOnce(&str, &Path) -> ProviderResult<Vec<(String, String)>>,
) -> ProviderResult<FinishedRun> {
    let target = &request.target;
    let config = &request.config;
    let command: Vec<String> = strings(config, "command");
    if command.is_empty() {
        return Err(ProviderError::with_help(
            "the local provider runs `command`, and none is set",
            "add `command = [\"python3\", \"train.py\"]`",
        ));
    }
    let timeout = mlops_provider_support::duration(config, "timeout")?;
    let runs = root(target).join("runs");

    // Re-attach to a run an interrupted apply started, when it was started
    // with these very settings and is still going or finished well. Any
    // other is stopped: adopting it would record settings it never ran with.
    let pending = request.pending_handle.as_ref().and_then(|handle| PendingRun::from_handle(&runs, handle));
    let adopted = match pending {
        Some(run) => {
            let same_settings = run.fingerprint.is_some() && run.fingerprint == wanted_fingerprint;
            let running = run.process.filter(process::Started::is_running);
            if same_settings && (running.is_some() || run.finished_well(&runs)) {
                Some(run)
            } else {
                if let Some(process) = running {
                    context.progress(&format!(
                        "stopping run {} (pid {}): an interrupted apply started it with other settings",
                        run.run_id, process.pid
                    ));
                    process.stop(Duration::from_secs(5));
                }
                // Stopped here, or never started: nothing in it to keep. A
                // run that failed on its own keeps its log.
                if running.is_some() || run.process.is_none() {
                    remove_owned(target, &runs.join(&run.run_id))?;
                }
                None
            }
        }
        None => None,
    };
    let (run_id, process, run_directory) = match adopted {
        Some(run) => {
            context.progress(&format!("re-attaching to run {}", run.run_id));
            let directory = runs.join(&run.run_id);
            (run.run_id, run.process, directory)
        }
        None => {
            let run_id = format!(
                "run-{}-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S"),
                &blake3::hash(format!("{}{:?}", target.address, Instant::now()).as_bytes()).to_hex()[..8]
            );
            let directory = runs.join(&run_id);
            let output = directory.join("output");
            fs::create_dir_all(&output).map_err(|error| io_failed("create", &output, error))?;
            let mut environment =
                vec![("MLOPS_RUN_ID".to_owned(), run_id.clone()), ("MLOPS_OUTPUT_DIR".to_owned(), output.to_string_lossy().into_owned())];
            environment.extend(run_environment(&run_id, &directory)?);
            for (name, value) in config.get("env").and_then(Value::as_object).into_iter().flatten() {
                environment.push((name.clone(), process::environment_text(value)));
            }
            // Recorded before the process exists: killed from here on, the
            // next apply finds it through the pid file the wrapper writes.
            let mut handle = json!({ "run_id": run_id, "fingerprint": wanted_fingerprint, PLACE: place(target) });
            context.record_handle(handle.clone())?;
            let started = process::spawn_detached(
                &command,
                &target.working_directory,
                &environment,
                &directory.join("log.txt"),
                &directory.join("pid"),
                Some(&directory.join("exit_code")),
            )?;
            handle["pid"] = json!(started.pid);
            handle["started"] = json!(started.ticks);
            context.record_handle(handle)?;
            context.progress(&format!("started run {run_id} (pid {}): {}", started.pid, command.join(" ")));
            (run_id, Some(started), directory)
        }
    };
    let started = Instant::now();
    let exit_file = run_directory.join("exit_code");
    let mut last_report = Instant::now();
    loop {
        if exit_file.exists() {
            break;
        }
        if !process.is_some_and(|process| process.is_running()) {
            std::thread::sleep(Duration::from_millis(100));
            if exit_file.exists() {
                break;
            }
            return Err(failed(format!(
                "run {run_id} stopped without reporting an exit code; its log ends with:\n{}",
                process::tail(&run_directory.join("log.txt"), 20)
            )));
        }
        if context.interrupted() {
            return Err(ProviderError::Interrupted);
        }
        if started.elapsed() > timeout {
            if let Some(process) = process {
                process.stop(Duration::from_secs(5));
            }
            return Err(ProviderError::with_help(
                format!("run {run_id} timed out after {}s", timeout.as_secs()),
                "raise `timeout`, or make the run faster",
            ));
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            context.progress(&format!("run {run_id} still running ({}s)", started.elapsed().as_secs()));
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(process) = process {
        process::reap(process.pid);
    }
    let code = fs::read_to_string(&exit_file).unwrap_or_default();
    if code.trim() != "0" {
        return Err(ProviderError::with_help(
            format!(
                "run {run_id} failed with exit code {}; the last lines of its output:\n{}",
                code.trim(),
                process::tail(&run_directory.join("log.txt"), 20)
            ),
            format!("the full log is {}", run_directory.join("log.txt").display()),
        ));
    }
    Ok(FinishedRun { run_id, directory: run_directory, started })
}

fn copy_directory(from: &Path, to: &Path) -> ProviderResult<()> {
    fs::create_dir_all(to).map_err(|error| io_failed("create", to, error))?;
    for entry in fs::read_dir(from).map_err(|error| io_failed("read", from, error))? {
        let entry = entry.map_err(|error| io_failed("read", from, error))?;
        let destination = to.join(entry.file_name());
        if entry.file_type().map(|file_type| file_type.is_dir()).unwrap_or(false) {
            copy_directory(&entry.path(), &destination)?;
        } else {
            fs::copy(entry.path(), &destination).map_err(|error| io_failed("copy", &entry.path(), error))?;
        }
    }
    Ok(())
}

fn apply_model(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let name = &registered_model_name(target, config);
    let registry = root(target).join("registry").join(slug(name));
    let versions_directory = registry.join("versions");
    fs::create_dir_all(&versions_directory).map_err(|error| io_failed("create", &versions_directory, error))?;
    let source = config.get("source").cloned().unwrap_or_default();
    let run_id = field(&source, "run_id").unwrap_or_default().to_owned();
    let mut versions: Vec<u64> = fs::read_dir(&versions_directory)
        .map_err(|error| io_failed("read", &versions_directory, error))?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_string_lossy().parse().ok())
        .collect();
    versions.sort_unstable();
    // The newest version from this run, if it is registered already (only an
    // alias moves, or an interrupted apply registered it).
    let existing = versions.iter().rev().find(|version| {
        fs::read(versions_directory.join(version.to_string()).join("version.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Json>(&bytes).ok())
            .and_then(|description| description.get("run_id").and_then(Json::as_str).map(|id| id == run_id))
            .unwrap_or(false)
    });
    let pinned = pinned_version(config).map(|pinned| {
        pinned.parse::<u64>().ok().filter(|version| versions.contains(version)).ok_or_else(|| {
            ProviderError::with_help(
                format!("cannot pin version {pinned}: model `{name}` has no such version in the local registry"),
                "pin a version listed in `versions` (mlops state show), or remove `version` to register new runs again",
            )
        })
    });
    let version = match (pinned.transpose()?, existing) {
        (Some(version), _) => version,
        (None, Some(version)) => *version,
        (None, None) => {
            let version = versions.last().copied().unwrap_or(0) + 1;
            let directory = versions_directory.join(version.to_string());
            let staging = versions_directory.join(format!(".staging-{version}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&staging);
            let artifact_uri = field(&source, "artifact_uri").ok_or_else(|| failed("the source training has no artifacts"))?;
            // Artifacts in object storage (a run on a cluster) stay there: a
            // run's artifacts are immutable, and a cluster serving this
            // version must be able to read them. Local ones are copied in.
            let remote = artifact_uri.contains("://") && !artifact_uri.starts_with("local://") && !artifact_uri.starts_with("file://");
            fs::create_dir_all(&staging).map_err(|error| io_failed("create", &staging, error))?;
            if !remote {
                copy_directory(&path_of_uri(target, artifact_uri), &staging.join("artifacts"))?;
            }
            let description = json!({
                "artifact_uri": if remote { Json::String(artifact_uri.to_owned()) } else { Json::Null },
                "version": version.to_string(),
                "name": name,
                "run_id": run_id,
                "fingerprint": source.get("fingerprint"),
                "metrics": source.get("metrics"),
                "lineage": request.lineage,
                "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            fs::write(staging.join("version.json"), serde_json::to_vec_pretty(&description).unwrap_or_default())
                .map_err(|error| io_failed("write", &staging, error))?;
            fs::rename(&staging, &directory).map_err(|error| io_failed("register", &directory, error))?;
            context.progress(&format!("registered {name} version {version}"));
            versions.push(version);
            version
        }
    };
    // Aliases: set the configured ones, drop the ones this model no longer sets.
    let aliases_path = registry.join("aliases.json");
    let mut aliases: serde_json::Map<String, Json> =
        fs::read(&aliases_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    let wanted: Vec<String> = strings(config, "aliases");
    let live = string_entries(&aliases);
    let dropped = request.prior_state.as_ref().map(|state| state_strings(state, "aliases")).unwrap_or_default();
    let moves = alias_moves(&live, &wanted, &dropped, &version.to_string());
    for change in &moves {
        match &change.to {
            Some(to) => aliases.insert(change.alias.clone(), Json::String(to.clone())),
            None => aliases.remove(&change.alias),
        };
    }
    let temporary = registry.join(".aliases.json.tmp");
    fs::write(&temporary, serde_json::to_vec_pretty(&aliases).unwrap_or_default())
        .map_err(|error| io_failed("write", &temporary, error))?;
    fs::rename(&temporary, &aliases_path).map_err(|error| io_failed("write", &aliases_path, error))?;
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(version.to_string()));
    state.insert("versions".into(), Json::Array(versions.iter().map(|version| Json::String(version.to_string())).collect()));
    let remote_artifacts = fs::read(versions_directory.join(version.to_string()).join("version.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Json>(&bytes).ok())
        .and_then(|description| description.get("artifact_uri").and_then(Json::as_str).map(str::to_owned));
    let uri = remote_artifacts.unwrap_or_else(|| uri_for(&relative_to_root(target, &versions_directory.join(version.to_string()))));
    state.insert("uri".into(), Json::String(uri));
    state.insert("aliases".into(), json!(wanted));
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    state.insert("alias_history".into(), alias_history(request.prior_state.as_ref(), &moves, &at));
    Ok(ApplyResponse { state, private: json!({ LIVE_ALIASES: aliases }) })
}

fn apply_serving(request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let command: Vec<String> = strings(config, "command");
    if command.is_empty() {
        return Err(ProviderError::with_help(
            "local serving runs `command`, and none is set",
            "add `command = [\"python3\", \"serve.py\"]`",
        ));
    }
    let model = config.get("model").cloned().unwrap_or_default();
    let version = field(&model, "version").unwrap_or_default().to_owned();
    let model_directory = model_directory(target, &model, context)?;
    let strategy = config.get("rollout").and_then(|rollout| rollout.get("strategy")).and_then(Value::as_str).unwrap_or("all_at_once");
    let old_server = request.prior_state.as_ref().and_then(|_| process::Started::from_json(&request.prior_private));
    let directory = root(target).join("serving").join(slug(&target.address));
    fs::create_dir_all(&directory).map_err(|error| io_failed("create", &directory, error))?;

    // The server an interrupted apply started: adopted when it serves this
    // version and becomes healthy (the rollout it was part of then
    // finishes: the old server goes), stopped otherwise. Never left running.
    if let Some(handle) = &request.pending_handle {
        let port = handle.get("port").and_then(Json::as_u64).and_then(|port| u16::try_from(port).ok()).unwrap_or(0);
        if let Some(server) = pending_server(&directory, handle).filter(process::Started::is_running) {
            let same_version = handle.get("version").and_then(Json::as_str) == Some(version.as_str());
            if same_version && port != 0 {
                context.progress(&format!("waiting for the server an interrupted apply started on port {port} (pid {})", server.pid));
                let log = directory.join(format!("server-{port}.log"));
                if wait_for_health(server, port, &readiness_path(config), &log, context, Duration::from_secs(60)).is_ok() {
                    context.progress(&format!("re-attached to the server on port {port}"));
                    if let Some(old) = old_server.filter(|old| old.pid != server.pid) {
                        old.stop(Duration::from_secs(10));
                    }
                    return Ok(serving_response(port, server, &version));
                }
            }
            context.progress(&format!("stopping the server an interrupted apply started on port {port} (pid {})", server.pid));
            server.stop(Duration::from_secs(5));
        }
    }
    if strategy == "all_at_once" {
        if let Some(old) = old_server {
            old.stop(Duration::from_secs(10));
        }
    }
    let port = process::free_port()?;
    let mut environment = vec![
        ("PORT".to_owned(), port.to_string()),
        ("MLOPS_MODEL_DIR".to_owned(), model_directory.to_string_lossy().into_owned()),
        ("MLOPS_MODEL_VERSION".to_owned(), version.clone()),
    ];
    for (name, value) in config.get("env").and_then(Value::as_object).into_iter().flatten() {
        environment.push((name.clone(), process::environment_text(value)));
    }
    let log = directory.join(format!("server-{port}.log"));
    let pid_file = format!("server-{port}.pid");
    // Recorded before the process exists: killed from here on, the next
    // apply finds it through the pid file the wrapper writes.
    let mut handle = json!({ "port": port, "version": version, "pid_file": pid_file, PLACE: place(target) });
    context.record_handle(handle.clone())?;
    let server = process::spawn_detached(&command, &target.working_directory, &environment, &log, &directory.join(&pid_file), None)?;
    handle["pid"] = json!(server.pid);
    handle["started"] = json!(server.ticks);
    context.record_handle(handle)?;
    context.progress(&format!("started version {version} on port {port} (pid {}); waiting for GET {}", server.pid, readiness_path(config)));
    if let Err(error) = wait_for_health(server, port, &readiness_path(config), &log, context, Duration::from_secs(60)) {
        server.stop(Duration::from_secs(5));
        return Err(error);
    }
    // blue_green: the new one is up; now the old one goes.
    if let Some(old) = old_server.filter(|old| old.pid != server.pid) {
        old.stop(Duration::from_secs(10));
    }
    Ok(serving_response(port, server, &version))
}

/// The server a pending handle names: by its pid and start time, or,
/// when the apply died before recording them, by the pid file.
fn pending_server(directory: &Path, handle: &Json) -> Option<process::Started> {
    process::Started::from_json(handle).or_else(|| {
        let name = handle.get("pid_file")?.as_str()?;
        // A file name in the serving's own folder, nothing else.
        (!name.contains(['/', '\\']) && !name.starts_with('.')).then(|| process::Started::from_pid_file(&directory.join(name)))?
    })
}

/// Waits until `GET /health` answers 200, the server exits, the apply is
/// interrupted, or `limit` passes.
/// The path a serving answers 200 on once ready: its `readiness` block's,
/// else `/health`.
fn readiness_path(config: &Configuration) -> String {
    config.get("readiness").and_then(|readiness| readiness.get("path")).and_then(Value::as_str).unwrap_or("/health").to_owned()
}

fn wait_for_health(
    server: process::Started,
    port: u16,
    path: &str,
    log: &Path,
    context: &dyn ApplyContext,
    limit: Duration,
) -> ProviderResult<()> {
    let deadline = Instant::now() + limit;
    loop {
        if process::http_status(port, path, Duration::from_secs(1)) == Some(200) {
            return Ok(());
        }
        if !server.is_running() {
            return Err(failed(format!("the server exited before it was ready; its log ends with:\n{}", process::tail(log, 20))));
        }
        if context.interrupted() {
            return Err(ProviderError::Interrupted);
        }
        if Instant::now() > deadline {
            return Err(ProviderError::with_help(
                format!(
                    "the server did not answer GET {path} with 200 within {}s; its log ends with:\n{}",
                    limit.as_secs(),
                    process::tail(log, 20)
                ),
                format!("the server must listen on 127.0.0.1:$PORT and answer GET {path} (`readiness.path`)"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serving_response(port: u16, server: process::Started, version: &str) -> ApplyResponse {
    let mut state = Attributes::new();
    state.insert("url".into(), Json::String(format!("http://127.0.0.1:{port}")));
    state.insert("live_version".into(), Json::String(version.to_owned()));
    state.insert("ready_replicas".into(), json!(1));
    let mut private = server.to_json();
    private["port"] = json!(port);
    ApplyResponse { state, private }
}
