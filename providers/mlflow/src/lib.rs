//! The mlflow provider: a `model` registered in an MLflow model registry,
//! and `data "model"` read from one, through MLflow's REST API.
//!
//! Applying a model whose training produced a new run:
//! 1. makes sure the registered model exists;
//! 2. records the training as an MLflow run (experiment `mlops/NAME`, or
//!    the provider's `experiment`) with its hyperparameters as params, its
//!    metrics, and the lineage as tags, so the MLflow UI shows where a
//!    version came from;
//! 3. puts the artifacts where MLflow can read them: artifacts already in
//!    object storage (a run on a cluster) are referenced as they are;
//!    local ones are uploaded into the run's artifact location (through
//!    the server's artifact proxy for `mlflow-artifacts:` locations, or
//!    copied when the location is a directory on this machine);
//! 4. creates one model version from that source, tagged with the lineage:
//!    dataset and feature set versions, run fingerprint, training run id and
//!    the state's lineage id;
//! 5. points the configured aliases at it, appending each move to the
//!    `alias_history` kept in state.
//!
//! Each step first looks for what an interrupted apply already did (a run
//! or a version tagged with the training run id), so applying again never
//! registers the same run twice.
//!
//! Refresh reads the version and where every alias points: a version
//! deleted in MLflow, or an alias moved there, shows as drift, and the plan
//! moves it back.

mod client;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use client::{CallError, Client};
use mlops_provider_api::{
    ApplyContext, ApplyRequest, ApplyResponse, Attributes, DataSourceType, FetchRequest, FetchResponse, ImportRequest, ImportResponse,
    Kinds, PlanRequest, PlanResponse, Provider, ProviderError, ProviderResult, ReadRequest, ReadResponse, ResourceType, Target,
};
use mlops_provider_api::{Configuration, Value};
use mlops_provider_support::registry::{
    alias_moves, live_aliases, model_state, pinned_version, plan_model, registered_model_name, wanted_aliases, LIVE_ALIASES,
};
use mlops_provider_support::text;
use mlops_provider_support::{field, state_strings, state_text};
use serde_json::{json, Value as Json};

pub struct MlflowProvider {
    kinds: Kinds,
}

impl Default for MlflowProvider {
    fn default() -> MlflowProvider {
        MlflowProvider::new()
    }
}

impl MlflowProvider {
    pub fn new() -> MlflowProvider {
        MlflowProvider { kinds: Kinds::new().resource("model", ModelType).data_source("model", ModelSource) }
    }
}

fn client(target: &Target) -> ProviderResult<Client> {
    let url = target.provider_config.get("url").and_then(Value::as_str).ok_or_else(|| {
        ProviderError::with_help("provider \"mlflow\" has no `url`", "add `url = \"http://HOST:5000\"` to the provider \"mlflow\" block")
    })?;
    let limits = mlops_provider_support::remote::RemoteLimits::from_config(&target.provider_config);
    Client::new(url, target.provider_config.get("token").and_then(Value::as_str), limits)
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Provider for MlflowProvider {
    fn name(&self) -> &'static str {
        "mlflow"
    }

    fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    fn fetch(&self, request: FetchRequest) -> ProviderResult<FetchResponse> {
        let client = client(&request.target)?;
        fetch_artifacts(&client, &request.uri, &request.destination)
    }
}

/// A registered model's versions and aliases. Names and references are
/// checked by the schema; nothing else can be found without the registry.
struct ModelType;

impl ResourceType for ModelType {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let client = client(&request.target)?;
        let name = registered_model_name(&request.target, &request.config);
        let Some(version) = state_text(&request.state, "version").map(str::to_owned) else {
            return Ok(ReadResponse { state: None, private: request.private, ..ReadResponse::default() });
        };
        match client.get("model-versions/get", &[("name", &name), ("version", &version)]) {
            Ok(_) => {}
            Err(CallError::NotFound(_)) => return Ok(ReadResponse { state: None, private: request.private, ..ReadResponse::default() }),
            Err(error) => return Err(error.into()),
        }
        let live = registry_aliases(&client, &name)?;
        let mut state = request.state.clone();
        // Versions deleted outside mlops drop out of the history of versions
        // (one listing, not a request per version).
        if request.state.contains_key("versions") {
            let existing: std::collections::BTreeSet<String> = all_versions(&client, &name)?
                .iter()
                .filter_map(|described| described.get("version").and_then(Json::as_str).map(str::to_owned))
                .collect();
            let kept: Vec<Json> = state_strings(&request.state, "versions")
                .into_iter()
                .filter(|registered| *registered == version || existing.contains(registered))
                .map(Json::String)
                .collect();
            state.insert("versions".into(), Json::Array(kept));
        }
        let held: Vec<Json> = state_strings(&request.state, "aliases")
            .into_iter()
            .filter(|alias| live.get(alias) == Some(&version))
            .map(Json::String)
            .collect();
        state.insert("aliases".into(), Json::Array(held));
        let mut private = request.private.as_object().cloned().unwrap_or_default();
        private.insert(LIVE_ALIASES.into(), json!(live));
        Ok(ReadResponse { state: Some(state), private: Json::Object(private), ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        Ok(plan_model(&request))
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        apply_model(&client(&request.target)?, &request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        delete_model(&client(&request.target)?, &request)
    }

    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        Err(ProviderError::with_help(
            format!("the mlflow provider cannot import `{}`", request.id),
            "read existing versions with a `data \"model\"` block instead",
        ))
    }
}

/// `data "model"`: a registered version, by alias, version, or the latest.
struct ModelSource;

impl DataSourceType for ModelSource {
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        plan_data_model(&request.target, &request.config)
    }
}

/// `{alias: version}` for every alias of the registered model.
fn registry_aliases(client: &Client, name: &str) -> ProviderResult<BTreeMap<String, String>> {
    let model = match client.get("registered-models/get", &[("name", name)]) {
        Ok(model) => model,
        Err(CallError::NotFound(_)) => return Ok(BTreeMap::new()),
        Err(error) => return Err(error.into()),
    };
    Ok(model
        .pointer("/registered_model/aliases")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| Some((entry.get("alias")?.as_str()?.to_owned(), entry.get("version")?.as_str()?.to_owned())))
        .collect())
}

/// What a `data "model"` reads: the version an alias points at, a given
/// version, or the latest.
fn plan_data_model(target: &Target, config: &Configuration) -> ProviderResult<PlanResponse> {
    let client = client(target)?;
    let name = text(config, "name").unwrap_or_default().to_owned();
    let version = if let Some(alias) = text(config, "alias") {
        match client.get("registered-models/alias", &[("name", &name), ("alias", alias)]) {
            Ok(found) => found,
            Err(CallError::NotFound(_)) => {
                let aliases = registry_aliases(&client, &name)?;
                let help = if aliases.is_empty() {
                    "set the alias first (a `model` block with `aliases = [...]`), or read a `version`".to_owned()
                } else {
                    format!("its aliases are: {}", aliases.keys().cloned().collect::<Vec<_>>().join(", "))
                };
                return Err(ProviderError::with_help(
                    format!("registered model `{name}` has no alias `{alias}` on the MLflow server at {}", client.base()),
                    help,
                ));
            }
            Err(error) => return Err(error.into()),
        }
    } else if let Some(version) = pinned_version(config) {
        match client.get("model-versions/get", &[("name", &name), ("version", &version)]) {
            Ok(found) => found,
            Err(CallError::NotFound(_)) => {
                return Err(ProviderError::with_help(
                    format!("registered model `{name}` has no version {version} on the MLflow server at {}", client.base()),
                    "check the version, or read it by `alias`",
                ))
            }
            Err(error) => return Err(error.into()),
        }
    } else {
        let latest = all_versions(&client, &name)?.into_iter().last();
        match latest {
            Some(latest) => json!({ "model_version": latest }),
            None => {
                return Err(ProviderError::with_help(
                    format!("registered model `{name}` has no versions on the MLflow server at {}", client.base()),
                    "register one first, or check the name",
                ))
            }
        }
    };
    let version = version.get("model_version").cloned().unwrap_or(Json::Null);
    let mut planned = Attributes::new();
    planned.insert("version".into(), version.get("version").cloned().unwrap_or(Json::Null));
    planned.insert("uri".into(), Json::String(source_uri(version.get("source").and_then(Json::as_str).unwrap_or(""))));
    let run_id = version
        .get("tags")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .find(|tag| tag.get("key").and_then(Json::as_str) == Some("mlops.training_run"))
        .and_then(|tag| tag.get("value").cloned())
        .or_else(|| version.get("run_id").cloned())
        .unwrap_or(Json::Null);
    planned.insert("run_id".into(), run_id);
    // The run's metrics: what a candidate's gate compares against.
    let mut metrics = Attributes::new();
    if let Some(mlflow_run) = version.get("run_id").and_then(Json::as_str).filter(|id| !id.is_empty()) {
        let run = client.get("runs/get", &[("run_id", mlflow_run)]).map_err(ProviderError::from)?;
        for metric in run.pointer("/run/data/metrics").and_then(Json::as_array).into_iter().flatten() {
            if let (Some(key), Some(value)) = (metric.get("key").and_then(Json::as_str), metric.get("value")) {
                metrics.insert(key.to_owned(), value.clone());
            }
        }
    }
    planned.insert("metrics".into(), Json::Object(metrics));
    Ok(PlanResponse { planned_state: planned, ..PlanResponse::default() })
}

/// Every version of a registered model, oldest first.
fn all_versions(client: &Client, name: &str) -> ProviderResult<Vec<Json>> {
    let filter = format!("name='{}'", name.replace('\'', "\\'"));
    let mut versions = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut query = vec![("filter", filter.as_str()), ("max_results", "1000")];
        if !page_token.is_empty() {
            query.push(("page_token", page_token.as_str()));
        }
        let page = client.get("model-versions/search", &query).map_err(ProviderError::from)?;
        versions.extend(page.get("model_versions").and_then(Json::as_array).cloned().unwrap_or_default());
        match page.get("next_page_token").and_then(Json::as_str) {
            Some(token) if !token.is_empty() => page_token = token.to_owned(),
            _ => break,
        }
    }
    versions.sort_by_key(|version| version.get("version").and_then(Json::as_str).and_then(|text| text.parse::<u64>().ok()).unwrap_or(0));
    Ok(versions)
}

/// A model version's `source` as a URI the rest of mlops can fetch: local
/// paths become `file://`.
fn source_uri(source: &str) -> String {
    if source.starts_with('/') {
        format!("file://{source}")
    } else {
        source.to_owned()
    }
}

fn apply_model(client: &Client, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let name = registered_model_name(target, config);
    let mut create = json!({ "name": name });
    if let Some(description) = text(config, "description") {
        create["description"] = json!(description);
    }
    match client.post("registered-models/create", create) {
        Ok(_) | Err(CallError::AlreadyExists(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let source = config.get("source").cloned().unwrap_or_default();
    let mut private = request.prior_private.as_object().cloned().unwrap_or_default();
    let version = match pinned_version(config) {
        Some(pinned) => match client.get("model-versions/get", &[("name", &name), ("version", &pinned)]) {
            Ok(_) => pinned,
            Err(CallError::NotFound(_)) => {
                return Err(ProviderError::with_help(
                    format!(
                        "cannot pin version {pinned}: registered model `{name}` has no such version on the MLflow server at {}",
                        client.base()
                    ),
                    "pin a version listed in `versions` (mlops state show), or remove `version` to register new runs again",
                ))
            }
            Err(error) => return Err(error.into()),
        },
        None => register_version(client, request, &name, &source, &mut private, context)?,
    };
    // Tags on the version follow the configuration.
    for (key, value) in config.get("tags").and_then(Value::as_object).into_iter().flatten() {
        let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        client
            .post("model-versions/set-tag", json!({ "name": name, "version": version, "key": key, "value": value }))
            .map_err(ProviderError::from)?;
    }

    // Aliases: point the wanted ones here, remove the ones no longer set.
    let live = registry_aliases(client, &name)?;
    let wanted = wanted_aliases(config);
    let dropped: Vec<String> = request.prior_state.as_ref().map(|state| state_strings(state, "aliases")).unwrap_or_default();
    let moves = alias_moves(&live, &wanted, &dropped, &version);
    for change in &moves {
        match &change.to {
            Some(to) => {
                client
                    .post("registered-models/alias", json!({ "name": name, "alias": change.alias, "version": to }))
                    .map_err(ProviderError::from)?;
                context.progress(&format!("alias {} of {name} -> version {to}", change.alias));
            }
            None => match client.delete("registered-models/alias", json!({ "name": name, "alias": change.alias })) {
                Ok(_) | Err(CallError::NotFound(_)) => {}
                Err(error) => return Err(error.into()),
            },
        }
    }
    let mut live_after = live.clone();
    for change in &moves {
        match &change.to {
            Some(to) => live_after.insert(change.alias.clone(), to.clone()),
            None => live_after.remove(&change.alias),
        };
    }
    private.insert(LIVE_ALIASES.into(), json!(live_after));

    let described = client.get("model-versions/get", &[("name", &name), ("version", &version)]).map_err(ProviderError::from)?;
    let uri = source_uri(described.pointer("/model_version/source").and_then(Json::as_str).unwrap_or(""));
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let state = model_state(request.prior_state.as_ref(), &version, uri, &wanted, &moves, &at);
    Ok(ApplyResponse { state, private: Json::Object(private) })
}

/// Registers the source run as a new version, or finds the version an
/// earlier (perhaps interrupted) apply registered for it.
fn register_version(
    client: &Client,
    request: &ApplyRequest,
    name: &str,
    source: &Value,
    private: &mut serde_json::Map<String, Json>,
    context: &dyn ApplyContext,
) -> ProviderResult<String> {
    let training_run = field(source, "run_id").unwrap_or_default().to_owned();
    let quoted = training_run.replace('\'', "\\'");
    let filter = format!("name='{}' and tags.`mlops.training_run` = '{quoted}'", name.replace('\'', "\\'"));
    let existing = client.get("model-versions/search", &[("filter", &filter), ("max_results", "10")]).map_err(ProviderError::from)?;
    if let Some(version) = existing.get("model_versions").and_then(Json::as_array).and_then(|versions| {
        versions.iter().filter_map(|version| version.get("version")?.as_str()).max_by_key(|v| v.parse::<u64>().unwrap_or(0))
    }) {
        return Ok(version.to_owned());
    }

    let mlflow_run = training_run_in_mlflow(client, request, name, source, context)?;
    private.insert("mlflow_run_id".into(), Json::String(mlflow_run.id.clone()));
    let tags: Vec<Json> = mlops_provider_support::registry::lineage_tags(source, &request.lineage)
        .into_iter()
        .chain(
            request
                .config
                .get("tags")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(key, value)| (key.clone(), mlops_provider_support::tag_text(value))),
        )
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    let mut create = json!({ "name": name, "source": mlflow_run.source, "run_id": mlflow_run.id, "tags": tags });
    if let Some(description) = text(&request.config, "description") {
        create["description"] = json!(description);
    }
    let created = client.post("model-versions/create", create).map_err(|error| match error {
        CallError::Provider(ProviderError::Failed { message, .. }) if message.contains("source") => ProviderError::with_help(
            format!("MLflow refused the version's source `{}`: {message}", mlflow_run.source),
            "MLflow accepts object-storage URIs, its own artifact locations (mlflow-artifacts:/...), and paths inside the run's artifact directory",
        ),
        other => other.into(),
    })?;
    let version = created.pointer("/model_version/version").and_then(Json::as_str).unwrap_or_default().to_owned();
    wait_until_ready(client, name, &version, context)?;
    context.progress(&format!("registered {name} version {version} in MLflow (run {})", mlflow_run.id));
    Ok(version)
}

/// A version is usable once MLflow has finished registering it.
fn wait_until_ready(client: &Client, name: &str, version: &str, context: &dyn ApplyContext) -> ProviderResult<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        let described = client.get("model-versions/get", &[("name", name), ("version", version)]).map_err(ProviderError::from)?;
        match described.pointer("/model_version/status").and_then(Json::as_str).unwrap_or("READY") {
            "READY" => return Ok(()),
            "FAILED_REGISTRATION" => {
                let message = described.pointer("/model_version/status_message").and_then(Json::as_str).unwrap_or("no reason given");
                return Err(ProviderError::failed(format!("MLflow could not register {name} version {version}: {message}")));
            }
            _ if context.interrupted() => return Err(ProviderError::Interrupted),
            _ if std::time::Instant::now() > deadline => {
                return Err(ProviderError::failed(format!("{name} version {version} is still being registered after 10 minutes")))
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

struct MlflowRun {
    id: String,
    /// The model version's source: where its artifacts are.
    source: String,
}

/// The MLflow run standing for the training run: found by its tag, or
/// created with params, metrics, lineage tags and the artifacts.
fn training_run_in_mlflow(
    client: &Client,
    request: &ApplyRequest,
    name: &str,
    source: &Value,
    context: &dyn ApplyContext,
) -> ProviderResult<MlflowRun> {
    let training_run = field(source, "run_id").unwrap_or_default();
    let artifact_uri = field(source, "artifact_uri").ok_or_else(|| {
        ProviderError::failed(format!("{} has no artifacts to register", field(source, "$address").unwrap_or("the source training")))
    })?;
    let experiment_name =
        request.target.provider_config.get("experiment").and_then(Value::as_str).map_or_else(|| format!("mlops/{name}"), str::to_owned);
    let experiment_id =
        experiment(client, &experiment_name, request.target.provider_config.get("artifact_location").and_then(Value::as_str))?;

    let filter = format!("tags.`mlops.training_run` = '{}'", training_run.replace('\'', "\\'"));
    let found = client
        .post("runs/search", json!({ "experiment_ids": [experiment_id], "filter": filter, "max_results": 1 }))
        .map_err(ProviderError::from)?;
    let (run_id, run_artifacts, finished) = match found.pointer("/runs/0/info") {
        Some(info) => (
            info.get("run_id").and_then(Json::as_str).unwrap_or_default().to_owned(),
            info.get("artifact_uri").and_then(Json::as_str).unwrap_or_default().to_owned(),
            info.get("status").and_then(Json::as_str) == Some("FINISHED"),
        ),
        None => {
            let tags: Vec<Json> = mlops_provider_support::registry::lineage_tags(source, &request.lineage)
                .into_iter()
                .map(|(key, value)| json!({ "key": key, "value": value }))
                .chain([json!({ "key": "mlops.artifact_uri", "value": artifact_uri })])
                .collect();
            let created = client
                .post(
                    "runs/create",
                    json!({
                        "experiment_id": experiment_id,
                        "run_name": field(source, "$address").unwrap_or(training_run),
                        "start_time": now_millis(),
                        "tags": tags,
                    }),
                )
                .map_err(ProviderError::from)?;
            let info = created.pointer("/run/info").cloned().unwrap_or(Json::Null);
            let run_id = info.get("run_id").and_then(Json::as_str).unwrap_or_default().to_owned();
            context.record_handle(json!({ "mlflow_run_id": run_id }))?;
            log_parameters_and_metrics(client, &run_id, source)?;
            (run_id, info.get("artifact_uri").and_then(Json::as_str).unwrap_or_default().to_owned(), false)
        }
    };

    // Artifacts in object storage stay where they are; MLflow takes them as
    // the source directly. Local ones go into the run.
    let remote = artifact_uri.contains("://") && !artifact_uri.starts_with("local://") && !artifact_uri.starts_with("file://");
    let version_source = if remote {
        artifact_uri.to_owned()
    } else {
        let destination = format!("{}/model", run_artifacts.trim_end_matches('/'));
        if !finished {
            let staging = staging_directory(&request.target, training_run);
            let _ = std::fs::remove_dir_all(&staging);
            context.fetch(artifact_uri, &staging)?;
            let uploaded = upload_artifacts(client, &staging, &destination);
            let _ = std::fs::remove_dir_all(&staging);
            uploaded?;
        }
        destination
    };
    if !finished {
        client
            .post("runs/update", json!({ "run_id": run_id, "status": "FINISHED", "end_time": now_millis() }))
            .map_err(ProviderError::from)?;
    }
    Ok(MlflowRun { id: run_id, source: version_source })
}

fn staging_directory(target: &Target, run: &str) -> PathBuf {
    let safe: String =
        run.chars().map(|character| if character.is_ascii_alphanumeric() || character == '-' { character } else { '_' }).collect();
    target.data_directory.join("staged").join(format!("mlflow-{safe}"))
}

/// The experiment's id, created when missing.
fn experiment(client: &Client, name: &str, artifact_location: Option<&str>) -> ProviderResult<String> {
    match client.get("experiments/get-by-name", &[("experiment_name", name)]) {
        Ok(found) => return Ok(found.pointer("/experiment/experiment_id").and_then(Json::as_str).unwrap_or_default().to_owned()),
        Err(CallError::NotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let mut create = json!({ "name": name });
    if let Some(location) = artifact_location {
        create["artifact_location"] = json!(location);
    }
    match client.post("experiments/create", create) {
        Ok(created) => Ok(created.get("experiment_id").and_then(Json::as_str).unwrap_or_default().to_owned()),
        // Created meanwhile by a concurrent apply.
        Err(CallError::AlreadyExists(_)) => Ok(client
            .get("experiments/get-by-name", &[("experiment_name", name)])
            .map_err(ProviderError::from)?
            .pointer("/experiment/experiment_id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned()),
        Err(error) => Err(error.into()),
    }
}

/// Hyperparameters become params and the declared metrics metrics, so the
/// MLflow UI compares versions the way it compares its own runs.
fn log_parameters_and_metrics(client: &Client, run_id: &str, source: &Value) -> ProviderResult<()> {
    let timestamp = now_millis();
    let params: Vec<Json> = source
        .get("hyperparameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(key, value)| json!({ "key": key, "value": mlops_provider_support::tag_text(value) }))
        .collect();
    let metrics: Vec<Json> = source
        .get("metrics")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some(json!({ "key": key, "value": value.as_f64()?, "timestamp": timestamp, "step": 0 })))
        .collect();
    // log-batch takes at most 100 params and 1000 metrics per call.
    for chunk in params.chunks(100) {
        client.post("runs/log-batch", json!({ "run_id": run_id, "params": chunk })).map_err(ProviderError::from)?;
    }
    for chunk in metrics.chunks(1000) {
        client.post("runs/log-batch", json!({ "run_id": run_id, "metrics": chunk })).map_err(ProviderError::from)?;
    }
    Ok(())
}

/// Puts the files of `staging` under the run's artifact `destination`.
fn upload_artifacts(client: &Client, staging: &Path, destination: &str) -> ProviderResult<()> {
    let files: Vec<PathBuf> = mlops_provider_support::files_under(staging, mlops_provider_support::HiddenFiles::Listed)?
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    if let Some(proxied) = destination.strip_prefix("mlflow-artifacts:") {
        let base = proxied.trim_start_matches('/');
        for file in &files {
            let relative = file.strip_prefix(staging).unwrap_or(file).to_string_lossy().replace('\\', "/");
            client.upload_artifact(&format!("{base}/{relative}"), file).map_err(ProviderError::from)?;
        }
        return Ok(());
    }
    let local = destination.strip_prefix("file://").unwrap_or(destination);
    if !local.starts_with('/') {
        return Err(ProviderError::with_help(
            format!("mlops cannot upload into the MLflow run's artifact location `{destination}`"),
            "set `artifact_location = \"mlflow-artifacts:/mlops\"` on provider \"mlflow\" so artifacts go through the server's artifact proxy, or train where the artifacts land in object storage",
        ));
    }
    for file in &files {
        let relative = file.strip_prefix(staging).unwrap_or(file);
        let target = Path::new(local).join(relative);
        let copied = target.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::copy(file, &target).map(|_| ()));
        copied.map_err(|error| {
            ProviderError::with_help(
                format!("cannot write the run's artifacts to {}: {error}", target.display()),
                "the MLflow server keeps artifacts in a directory this machine cannot write; set `artifact_location = \"mlflow-artifacts:/mlops\"` on provider \"mlflow\" to upload through the server instead",
            )
        })?;
    }
    Ok(())
}

/// Copies a version's artifacts (`uri`) into `destination`.
fn fetch_artifacts(client: &Client, uri: &str, destination: &Path) -> ProviderResult<FetchResponse> {
    std::fs::create_dir_all(destination)
        .map_err(|error| ProviderError::failed(format!("cannot create {}: {error}", destination.display())))?;
    if let Some(proxied) = uri.strip_prefix("mlflow-artifacts:") {
        let mut pending = vec![proxied.trim_start_matches('/').to_owned()];
        let base = pending[0].clone();
        let mut files = 0;
        while let Some(directory) = pending.pop() {
            for (path, is_dir) in client.list_artifacts(&directory).map_err(ProviderError::from)? {
                let full = format!("{directory}/{path}");
                if is_dir {
                    pending.push(full);
                } else {
                    let relative = full.strip_prefix(&base).unwrap_or(&full).trim_start_matches('/').to_owned();
                    client.download_artifact(&full, &destination.join(relative)).map_err(ProviderError::from)?;
                    files += 1;
                }
            }
        }
        return Ok(FetchResponse { copied: files, files });
    }
    let Some(local) = uri.strip_prefix("file://") else {
        return Err(ProviderError::with_help(
            format!("the artifacts at `{uri}` cannot be fetched through the MLflow server"),
            "artifacts in object storage are read by the provider of that storage",
        ));
    };
    let files: Vec<PathBuf> = mlops_provider_support::files_under(Path::new(local), mlops_provider_support::HiddenFiles::Listed)?
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    for file in &files {
        let relative = file.strip_prefix(local).unwrap_or(file);
        let target = destination.join(relative);
        target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::copy(file, &target).map(|_| ()))
            .map_err(|error| ProviderError::failed(format!("cannot copy {} to {}: {error}", file.display(), target.display())))?;
    }
    Ok(FetchResponse { copied: files.len(), files: files.len() })
}

/// `lifecycle { destroy = true }`: the versions mlops registered go, and the
/// registered model with them once it has none left.
fn delete_model(client: &Client, request: &ApplyRequest) -> ProviderResult<()> {
    let name = registered_model_name(&request.target, &request.config);
    let state = request.prior_state.clone().unwrap_or_default();
    let live = live_aliases(&request.prior_private);
    for alias in state_strings(&state, "aliases") {
        if live.get(&alias).is_some_and(|version| Some(version.as_str()) == state_text(&state, "version")) {
            let _ = client.delete("registered-models/alias", json!({ "name": name, "alias": alias }));
        }
    }
    for version in state.get("versions").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
        match client.delete("model-versions/delete", json!({ "name": name, "version": version })) {
            Ok(_) | Err(CallError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    if all_versions(client, &name)?.is_empty() {
        match client.delete("registered-models/delete", json!({ "name": name })) {
            Ok(_) | Err(CallError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
