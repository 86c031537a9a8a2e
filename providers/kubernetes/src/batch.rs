//! Batch predictions: a model version run over a dataset as a Job. The
//! model is fetched and the input staged by init containers, the user's
//! image writes predictions, and the upload reports their content version
//! (files, size and `sha256:` of the files), which becomes the predictions'
//! version. The run is re-attached after an interrupt, and made again
//! exactly when the model version, the input or the configuration changes.
//!
//! With `schedule`, the runs are a CronJob's, applied and refreshed as a
//! serving's objects are; refresh reads the newest successful run's report,
//! so `version` follows what the cluster last computed.

use mlops_provider_api::{
    ApplyContext, ApplyRequest, ApplyResponse, Attributes, PlanRequest, PlanResponse, ProviderError, ProviderResult, Value,
};
use serde_json::{json, Value as Json};

use crate::cluster::{Cluster, ObjectRef};
use crate::objects;
use crate::readable_in_cluster;
use crate::render::{self, ModelVersion, PredictionInput, Settings};
use crate::training::{container_status, delete_run, forget_previous_run, run_to_completion, FinishedRun};

/// `ADDRESS@IDENTITY` of a reference: planned, or as applied.
fn identity(value: Option<&Value>) -> Option<String> {
    let reference = value?.as_reference()?;
    let identity = match &reference.target {
        Some(target) => target.identity.clone(),
        None => reference.identity.clone(),
    }?;
    Some(format!("{}@{identity}", reference.address))
}

/// What the predictions are made from: image, command, environment,
/// resources, and the model version and input (by identity). `None` while
/// either identity is known only after apply.
fn fingerprint(config: &mlops_provider_api::Configuration) -> Option<String> {
    let canonical = json!({
        "image": config.get("image"),
        "command": config.get("command"),
        "env": config.get("env"),
        "resources": config.get("resources"),
        "model": identity(config.get("model"))?,
        "input": identity(config.get("input"))?,
    });
    Some(format!("b3:{}", blake3::hash(canonical.to_string().as_bytes()).to_hex()))
}

fn scheduled(config: &mlops_provider_api::Configuration) -> bool {
    config.get("schedule").and_then(Value::as_str).is_some_and(|schedule| !schedule.trim().is_empty())
}

/// The computed attributes of a batch prediction.
const COMPUTED: [&str; 5] = ["version", "uri", "run_id", "files", "size_bytes"];

/// A schedule runs one pod per run; shards are for single runs.
pub fn validate(request: &mlops_provider_api::ValidateRequest) -> Vec<mlops_provider_api::AttributeProblem> {
    let mut problems = crate::training::validate(request);
    if scheduled(&request.config) && request.config.get("shards").and_then(Value::as_u64).is_some_and(|shards| shards > 1) {
        problems.push(mlops_provider_api::AttributeProblem {
            path: vec!["shards".into()],
            message: "a scheduled batch prediction runs as one pod per run; `shards` is for a single run".into(),
            help: Some("remove `shards`, or `schedule`".into()),
        });
    }
    problems
}

pub fn plan(request: &PlanRequest) -> ProviderResult<PlanResponse> {
    if scheduled(&request.config) {
        return plan_scheduled(request);
    }
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    let fingerprint = fingerprint(&request.config);
    if let Some(prior) = &request.prior_state {
        for input in &request.changed_inputs {
            let what = if input.path.first().map(String::as_str) == Some("model") { "model version" } else { "input" };
            response.requires_replace.push(format!(
                "a new {what} ({} -> {}): the predictions are made again",
                input.before.as_deref().unwrap_or("none"),
                input.after.as_deref().unwrap_or("known after apply")
            ));
        }
        if request.changed_inputs.is_empty() && !mlops_provider_api::configuration_unchanged(request) {
            response.requires_replace.push("a new configuration: the predictions are made again".into());
        }
        if response.requires_replace.is_empty() {
            response.planned_state = prior.clone();
            return Ok(response);
        }
    }
    match fingerprint {
        Some(fingerprint) => {
            response.planned_state.insert("fingerprint".into(), Json::String(fingerprint));
        }
        None => response.unknown.push(vec!["fingerprint".into()]),
    }
    for computed in COMPUTED {
        response.unknown.push(vec![computed.into()]);
    }
    Ok(response)
}

/// A scheduled batch prediction's plan: its CronJob as the configuration
/// renders it, against the one in the cluster. What the runs computed
/// stays as refresh read it.
fn plan_scheduled(request: &PlanRequest) -> ProviderResult<PlanResponse> {
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    let Some(prior) = request.prior_state.as_ref().filter(|_| request.prior_private.get("applied").is_some()) else {
        response.unknown = COMPUTED.iter().chain(["manifests"].iter()).map(|name| vec![(*name).to_owned()]).collect();
        return Ok(response);
    };
    response.planned_state = prior.clone();
    let mut reasons: Vec<String> = request
        .changed_inputs
        .iter()
        .map(|input| {
            let what = if input.path.first().map(String::as_str) == Some("model") { "model version" } else { "input" };
            format!(
                "a new {what} ({} -> {}): the scheduled runs use it",
                input.before.as_deref().unwrap_or("none"),
                input.after.as_deref().unwrap_or("known after apply")
            )
        })
        .collect();
    let recorded: Option<(ModelVersion, PredictionInput)> = request.prior_private.get("model").cloned().and_then(|model| {
        let input = request.prior_private.get("input")?;
        Some((
            serde_json::from_value(model).ok()?,
            PredictionInput { uri: input.get("uri")?.as_str()?.to_owned(), format: input.get("format")?.as_str()?.to_owned() },
        ))
    });
    match recorded.filter(|_| reasons.is_empty()) {
        Some((model, input)) => {
            let settings = Settings::resolved(&request.target.provider_config)?;
            let desired = render::without_secret_values(&render::scheduled_batch_prediction(
                &request.target.address,
                &request.config,
                &model,
                &input,
                &settings,
            )?);
            reasons.extend(objects::plan_reasons(&desired, prior, &objects::applied(&request.prior_private)));
            if !reasons.is_empty() {
                response.planned_state.insert("manifests".into(), objects::manifests(&desired));
            }
        }
        None => {
            response.unknown.push(vec!["manifests".into()]);
            if reasons.is_empty() && !mlops_provider_api::configuration_unchanged(request) {
                reasons.push("the configuration changed".to_owned());
            }
        }
    }
    objects::record_reviewed_drift(&mut response.private, &request.prior_private, request.prior_state.as_ref());
    response.update_reasons = reasons;
    Ok(response)
}

/// What every shard's upload reported, as one: the version of the shards'
/// versions (BLAKE3 of `shard-0000i VERSION` lines), files and bytes summed.
async fn shard_reports(cluster: &Cluster, run: &ObjectRef, shards: u64) -> ProviderResult<(String, u64, u64)> {
    let pods = cluster.pods(&run.namespace, &format!("batch.kubernetes.io/job-name={}", run.name)).await?;
    let (mut parts, mut files, mut size) = (Vec::new(), 0, 0);
    for index in 0..shards {
        let pod = pods.iter().find(|pod| {
            pod.pointer("/status/phase").and_then(Json::as_str) == Some("Succeeded")
                && pod.pointer("/metadata/labels/batch.kubernetes.io~1job-completion-index").and_then(Json::as_str)
                    == Some(index.to_string().as_str())
        });
        let (version, shard_files, shard_size) = upload_report(pod, &format!("{} (shard {index})", run.name))?;
        parts.push((format!("shard-{index}"), version));
        files += shard_files;
        size += shard_size;
    }
    Ok((crate::features::parts_version(&parts), files, size))
}

/// The input as a pod can read it.
fn prediction_input(config: &mlops_provider_api::Configuration) -> ProviderResult<PredictionInput> {
    let input = config.get("input").cloned().unwrap_or_default();
    let address = input.as_reference().map_or_else(|| "the input".to_owned(), |reference| reference.address.clone());
    let uri = input.get("uri").and_then(Value::as_str).ok_or_else(|| ProviderError::failed(format!("{address} has no stored data yet")))?;
    if !readable_in_cluster(uri) {
        return Err(ProviderError::with_help(
            format!("{address} is stored at `{uri}`, on this machine, where a pod cannot read it"),
            format!("store {address} in object storage (`provider = s3`, in a bucket the cluster can reach)"),
        ));
    }
    let format = input.get("format").and_then(Value::as_str).unwrap_or("csv").to_owned();
    Ok(PredictionInput { uri: uri.to_owned(), format })
}

/// What the upload reported of the predictions: version, files, bytes.
fn upload_report(pod: Option<&Json>, run_id: &str) -> ProviderResult<(String, u64, u64)> {
    let message = pod
        .and_then(|pod| container_status(pod, "initContainerStatuses", render::UPLOAD_OUTPUTS_CONTAINER))
        .and_then(|status| status.pointer("/state/terminated/message").and_then(Json::as_str).map(str::to_owned));
    let report: Option<Json> = message.as_deref().and_then(|message| serde_json::from_str(message).ok());
    let field = |name: &str| report.as_ref().and_then(|report| report.get(name));
    match (field("version").and_then(Json::as_str), field("files").and_then(Json::as_u64), field("size_bytes").and_then(Json::as_u64)) {
        (Some(version), Some(files), Some(size)) if version.starts_with("sha256:") => Ok((version.to_owned(), files, size)),
        _ => Err(ProviderError::with_help(
            format!(
                "batch prediction {run_id} finished, but the upload of its predictions reported no content version{}",
                message.map(|message| format!(" (it said: {})", message.chars().take(200).collect::<String>())).unwrap_or_default()
            ),
            "the pod is gone or its status was cut short; apply again to run it again",
        )),
    }
}

pub async fn apply(cluster: &Cluster, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let settings = Settings::resolved(&target.provider_config)?;
    let model = crate::serving::model_of(config)?;
    let input = prediction_input(config)?;
    if scheduled(config) {
        return apply_scheduled(cluster, request, context, &settings, &model, &input).await;
    }
    // A schedule dropped: its CronJob goes.
    objects::delete_stale(cluster, &objects::applied(&request.prior_private), &[]).await?;
    let FinishedRun { handle, run_id, pod, started, rendered, .. } =
        run_to_completion(cluster, request, context, &settings, false, render::PREDICT_CONTAINER, |run_id| {
            render::batch_prediction(&target.address, run_id, config, &model, &input, &settings)
        })
        .await?;
    let shards = config.get("shards").and_then(Value::as_u64).unwrap_or(1).max(1);
    let (version, files, size) =
        if shards > 1 { shard_reports(cluster, &handle, shards).await? } else { upload_report(pod.as_ref(), &run_id)? };
    if files == 0 {
        return Err(ProviderError::with_help(
            format!("batch prediction {run_id} wrote no predictions"),
            "write the predictions into the directory MLOPS_OUTPUT_DIR names",
        ));
    }
    // The run this one replaces is history now; its predictions stay
    // where they were uploaded.
    forget_previous_run(cluster, request, &handle).await;
    context.progress(&format!("batch prediction {run_id} wrote {files} file(s) of predictions in {:.0}s", started.elapsed().as_secs_f64()));
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(version));
    state.insert("uri".into(), rendered.artifact_uri.map_or(Json::Null, Json::String));
    state.insert("run_id".into(), Json::String(run_id));
    state.insert("fingerprint".into(), fingerprint(config).map_or(Json::Null, Json::String));
    state.insert("files".into(), json!(files));
    state.insert("size_bytes".into(), json!(size));
    Ok(ApplyResponse { state, private: json!({ "run": handle }) })
}

/// Applies the CronJob (and its Secret); the runs it makes report on
/// refresh. A single run an earlier configuration made is history now.
async fn apply_scheduled(
    cluster: &Cluster,
    request: &ApplyRequest,
    context: &dyn ApplyContext,
    settings: &Settings,
    model: &ModelVersion,
    input: &PredictionInput,
) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let rendered = render::scheduled_batch_prediction(&target.address, &request.config, model, input, settings)?;
    objects::apply_all(cluster, &rendered, &request.planned_private, &target.provider_config, &[], context).await?;
    let rendered = render::without_secret_values(&rendered);
    objects::delete_stale(cluster, &objects::applied(&request.prior_private), &rendered).await?;
    if let Some(previous) = request.prior_private.get("run").and_then(|run| serde_json::from_value::<ObjectRef>(run.clone()).ok()) {
        let _ = delete_run(cluster, &previous).await;
    }
    let (manifests, _) = objects::live_manifests(cluster, &rendered).await?;
    let mut state = request.prior_state.clone().filter(|_| request.prior_private.get("applied").is_some()).unwrap_or_default();
    for computed in COMPUTED {
        state.entry(computed).or_insert(Json::Null);
    }
    state.insert("fingerprint".into(), fingerprint(&request.config).map_or(Json::Null, Json::String));
    state.insert("manifests".into(), Json::Object(manifests));
    context.progress(&format!("scheduled: {}", request.config.get("schedule").and_then(Value::as_str).unwrap_or_default()));
    Ok(ApplyResponse {
        state,
        private: json!({ "applied": rendered, "model": model, "input": { "uri": input.uri, "format": input.format } }),
    })
}

/// Refresh: a scheduled prediction's CronJob as live, and what its newest
/// successful run reported; a single run's record as recorded.
pub async fn read(cluster: &Cluster, request: &mlops_provider_api::ReadRequest) -> ProviderResult<mlops_provider_api::ReadResponse> {
    if request.private.get("applied").is_none() {
        return Ok(mlops_provider_api::ReadResponse::as_recorded(request.clone()));
    }
    let (mut response, cronjob) = objects::read(cluster, request).await?;
    let (Some(state), Some(cronjob)) = (response.state.as_mut(), cronjob) else { return Ok(response) };
    let namespace = cronjob.pointer("/metadata/namespace").and_then(Json::as_str).unwrap_or(&cluster.namespace).to_owned();
    let name = cronjob.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default().to_owned();
    let mut pods = cluster.pods(&namespace, &format!("{}={name}", render::PREDICTION_LABEL)).await?;
    pods.retain(|pod| pod.pointer("/status/phase").and_then(Json::as_str) == Some("Succeeded"));
    pods.sort_by_key(|pod| pod.pointer("/metadata/creationTimestamp").and_then(Json::as_str).unwrap_or_default().to_owned());
    let Some(pod) = pods.pop() else { return Ok(response) };
    let job = pod.pointer("/metadata/labels/batch.kubernetes.io~1job-name").and_then(Json::as_str).unwrap_or_default().to_owned();
    if let Ok((version, files, size)) = upload_report(Some(&pod), &job) {
        let settings = Settings::resolved(&request.target.provider_config)?;
        let uri = format!("{}{job}/", render::predictions_prefix(&request.target.address, &settings)?);
        state.insert("version".into(), Json::String(version));
        state.insert("uri".into(), Json::String(uri));
        state.insert("run_id".into(), Json::String(job));
        state.insert("files".into(), json!(files));
        state.insert("size_bytes".into(), json!(size));
    }
    Ok(response)
}

/// Deletes the CronJob and its Secret, or the single run and its Secret.
pub async fn delete(cluster: &Cluster, request: &ApplyRequest) -> ProviderResult<()> {
    objects::delete_all(cluster, &request.prior_private).await?;
    crate::training::delete(cluster, request).await.map(|_| ())
}
