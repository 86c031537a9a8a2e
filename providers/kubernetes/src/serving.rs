//! Serving on a cluster: a Deployment + Service (+ HorizontalPodAutoscaler),
//! or a KServe InferenceService, rolled out as the configuration says.
//!
//! - `all_at_once`: one apply; the Deployment rolls every replica over
//!   (never below the ready count), KServe moves all traffic.
//! - `canary` (KServe): `canaryTrafficPercent` sends that share to the new
//!   revision; setting `traffic_percent = 100` promotes it.
//! - `blue_green` (KServe): the new revision is deployed with no traffic,
//!   waited on until ready, then receives all of it in a second apply.
//!
//! State keeps `manifests`: each object as live, projected onto what mlops
//! applied ([`crate::live`]). The plan renders the desired objects and
//! compares: a difference with an unchanged configuration was made outside
//! mlops, and apply restores it.

use std::time::{Duration, Instant};

use mlops_provider_api::{
    configuration_unchanged, ApplyContext, ApplyRequest, ApplyResponse, Attributes, PlanRequest, PlanResponse, ProviderError,
    ProviderResult,
};
use mlops_provider_api::{Configuration, Value};
use mlops_provider_support::{field, state_text};
use serde_json::{json, Value as Json};

use crate::cluster::{Cluster, ObjectRef};
use crate::objects::{self, key_of};
use crate::render::{self, ModelVersion, RolloutPhase, Settings};
use crate::{poll_interval, readable_in_cluster, text};

fn strategy(config: &Configuration) -> (String, Option<f64>) {
    let rollout = match config.get("rollout").map(Value::revealed) {
        Some(Value::List(items)) => items.first().cloned(),
        other => other.cloned(),
    };
    let strategy = rollout.as_ref().and_then(|rollout| rollout.get("strategy")).and_then(Value::as_str).unwrap_or("all_at_once").to_owned();
    let percent = rollout.as_ref().and_then(|rollout| rollout.get("traffic_percent")).and_then(Value::as_f64);
    (strategy, percent)
}

fn describe_rollout(config: &Configuration) -> String {
    match strategy(config) {
        (strategy, Some(percent)) if strategy == "canary" => format!("canary, {percent}% of traffic"),
        (strategy, _) => strategy.replace('_', " "),
    }
}

/// True when a value anywhere in the configuration (the model aside) is
/// known only after apply, so the objects cannot be rendered yet.
fn has_unknown_values(config: &Configuration) -> bool {
    fn walk(value: &Value) -> bool {
        match value.revealed() {
            Value::Unknown => true,
            Value::Map(entries) => entries.values().any(walk),
            Value::List(items) => items.iter().any(walk),
            _ => false,
        }
    }
    config.iter().any(|(name, value)| name != "model" && walk(value))
}

pub fn plan(request: &PlanRequest) -> ProviderResult<PlanResponse> {
    let target = &request.target;
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    let model_change = request.changed_inputs.iter().find(|input| input.path.first().map(String::as_str) == Some("model"));
    let prior_model: Option<ModelVersion> =
        request.prior_private.get("model").cloned().and_then(|model| serde_json::from_value(model).ok());
    let settings = Settings::resolved(&target.provider_config)?;
    let desired = match (&prior_model, model_change) {
        (Some(model), None) if !has_unknown_values(&request.config) => {
            // Compared and recorded without a Secret's values.
            Some(render::without_secret_values(&render::serving(&target.address, &request.config, model, RolloutPhase::Final, &settings)?))
        }
        _ => None,
    };
    let planned_version = match model_change {
        Some(change) => change.after.clone(),
        None => request.config.get("model").and_then(Value::as_reference).and_then(|reference| reference.identity.clone()),
    };

    let mut changes = Vec::new();
    if let Some(prior) = &request.prior_state {
        if let Some(change) = model_change {
            changes.push(format!(
                "rollout ({}) of model version {} (live: {})",
                describe_rollout(&request.config),
                change.after.as_deref().unwrap_or("(known after apply)"),
                state_text(prior, "live_version").unwrap_or("(none)")
            ));
        }
        if let Some(desired) = &desired {
            changes.extend(objects::plan_reasons(desired, prior, &objects::applied(&request.prior_private)));
        }
        if changes.is_empty() && desired.is_some() {
            response.planned_state = prior.clone();
            return Ok(response);
        }
        response.planned_state = prior.clone();
        if desired.is_none() && model_change.is_none() && !configuration_unchanged(request) {
            changes.push("the configuration changed".to_owned());
        }
    }
    response.update_reasons = changes;
    objects::record_reviewed_drift(&mut response.private, &request.prior_private, request.prior_state.as_ref());
    match &desired {
        Some(desired) => {
            response.planned_state.insert("manifests".into(), objects::manifests(desired));
        }
        None => {
            response.planned_state.remove("manifests");
            response.unknown.push(vec!["manifests".into()]);
        }
    }
    match planned_version {
        Some(version) => {
            response.planned_state.insert("live_version".into(), Json::String(version));
        }
        None => {
            response.planned_state.remove("live_version");
            response.unknown.push(vec!["live_version".into()]);
        }
    }
    let runtime = text(&request.config, "runtime").unwrap_or("deployment");
    if runtime == "deployment" {
        let name = render::object_name(&target.address, 45);
        response.planned_state.insert("url".into(), Json::String(format!("http://{name}.{}.svc.cluster.local", settings.namespace)));
    } else if !response.planned_state.contains_key("url") {
        response.unknown.push(vec!["url".into()]);
    }
    response.planned_state.remove("ready_replicas");
    response.unknown.push(vec!["ready_replicas".into()]);
    Ok(response)
}

pub(crate) fn model_of(config: &Configuration) -> ProviderResult<ModelVersion> {
    let model = config.get("model").cloned().unwrap_or_default();
    let address = model.as_reference().map_or_else(|| "the model".to_owned(), |reference| reference.address.clone());
    let version = field(&model, "version").ok_or_else(|| ProviderError::failed(format!("{address} has no registered version")))?.to_owned();
    let uri =
        field(&model, "uri").ok_or_else(|| ProviderError::failed(format!("{address} version {version} has no artifacts")))?.to_owned();
    if uri.starts_with("mlflow-artifacts:") {
        return Err(ProviderError::with_help(
            format!("{address} version {version} is stored in MLflow's artifact proxy (`{uri}`), which pods cannot read"),
            "give the MLflow server an object-storage artifact root, train on the cluster (artifacts in `artifact_root`), or keep the model in an OCI registry (`provider = oci`)",
        ));
    }
    if !readable_in_cluster(&uri) {
        return Err(ProviderError::with_help(
            format!("{address} version {version} is stored at `{uri}`, on this machine, where the cluster cannot read it"),
            "train it with the kubernetes provider (its artifacts go to `artifact_root`), or register it in a registry the cluster can reach",
        ));
    }
    Ok(ModelVersion { version, uri })
}

pub async fn apply(cluster: &Cluster, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let settings = Settings::resolved(&target.provider_config)?;
    let model = model_of(config)?;
    let runtime = text(config, "runtime").unwrap_or("deployment").to_owned();
    let (strategy, _) = strategy(config);
    let prior_model: Option<ModelVersion> =
        request.prior_private.get("model").cloned().and_then(|model| serde_json::from_value(model).ok());
    let new_version = prior_model.as_ref().is_some_and(|prior| prior.version != model.version);
    let phases: &[RolloutPhase] = if runtime == "kserve" && strategy == "blue_green" && new_version {
        &[RolloutPhase::GreenWithoutTraffic, RolloutPhase::Final]
    } else {
        &[RolloutPhase::Final]
    };
    let timeout = render::whole_seconds(mlops_provider_support::duration(&target.provider_config, "rollout_timeout")?);
    // Applying is idempotent, so an interrupted rollout is simply applied
    // again; the handle tells the next plan that one was under way.
    context.record_handle(json!({ "version": model.version, "namespace": cluster.namespace }))?;

    let previous = objects::applied(&request.prior_private);
    let mut rendered = Vec::new();
    for phase in phases {
        rendered = render::serving(&target.address, config, &model, *phase, &settings)?;
        let take_back = hand_over_replicas(cluster, &previous, &rendered, context).await?;
        objects::apply_all(cluster, &rendered, &request.planned_private, &target.provider_config, &take_back, context).await?;
        let what = match phase {
            RolloutPhase::GreenWithoutTraffic => format!("version {} (green, no traffic yet)", model.version),
            RolloutPhase::Final => format!("version {} ({})", model.version, describe_rollout(config)),
        };
        context.progress(&format!("rolling out {what}: waiting for {} to be ready", key_of(&rendered[0])));
        wait_ready(cluster, &rendered[0], timeout, context).await?;
    }

    // What the previous configuration had and this one does not goes once
    // the new objects serve.
    objects::delete_stale(cluster, &objects::applied(&request.prior_private), &rendered).await?;
    // State and private data keep the objects without a Secret's values.
    let rendered = render::without_secret_values(&rendered);
    let (manifests, primary) = objects::live_manifests(cluster, &rendered).await?;
    let primary = primary.unwrap_or(Json::Null);
    let name = render::object_name(&target.address, 45);
    let url = if runtime == "kserve" {
        primary.pointer("/status/url").and_then(Json::as_str).map(str::to_owned).unwrap_or_default()
    } else {
        format!("http://{name}.{}.svc.cluster.local", cluster.namespace)
    };
    let ready_replicas = ready_replicas(cluster, &runtime, &name, &primary).await;
    context.progress(&format!("version {} is live ({ready_replicas} ready)", model.version));
    let mut state = Attributes::new();
    state.insert("url".into(), Json::String(url));
    state.insert("live_version".into(), Json::String(model.version.clone()));
    state.insert("ready_replicas".into(), json!(ready_replicas));
    state.insert("manifests".into(), Json::Object(manifests));
    Ok(ApplyResponse { state, private: json!({ "applied": rendered, "model": model }) })
}

/// The field manager that holds a Deployment's replica count while an
/// autoscaler takes it over.
const REPLICAS_HANDOVER_MANAGER: &str = "mlops-replicas-handover";

/// Moves `spec.replicas` of a Deployment between mlops and an autoscaler
/// without a drop in replicas or a conflict, as Kubernetes documents for
/// server-side apply:
///
/// - fixed -> autoscaled: mlops stops applying `replicas`, which would reset
///   it to 1 until the autoscaler acts; so another manager first applies
///   the current count and keeps it, until the autoscaler's scale updates
///   take the field over;
/// - autoscaled -> fixed: the autoscaler goes first (it would scale on),
///   and apply takes `replicas` back from it.
///
/// Returns the fields apply takes back.
async fn hand_over_replicas(
    cluster: &Cluster,
    previous: &[Json],
    rendered: &[Json],
    context: &dyn ApplyContext,
) -> ProviderResult<Vec<String>> {
    let Some(deployment) = rendered.iter().find(|object| object["kind"] == "Deployment") else { return Ok(Vec::new()) };
    let key = key_of(deployment);
    let had_replicas =
        previous.iter().any(|object| key_of(object) == key && object.pointer("/spec/replicas").is_some_and(|replicas| !replicas.is_null()));
    let has_replicas = deployment.pointer("/spec/replicas").is_some_and(|replicas| !replicas.is_null());
    let had_autoscaler = previous.iter().any(|object| object["kind"] == "HorizontalPodAutoscaler");
    let reference = ObjectRef::of(deployment)?;
    if had_replicas && !has_replicas {
        if let Some(live) = cluster.get(&reference).await? {
            let replicas = live.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
            let handover = json!({
                "apiVersion": reference.api_version, "kind": reference.kind,
                "metadata": { "name": reference.name, "namespace": reference.namespace },
                "spec": { "replicas": replicas }
            });
            context.progress(&format!("{key}: handing spec.replicas ({replicas}) over to the autoscaler"));
            cluster.apply_as(REPLICAS_HANDOVER_MANAGER, &handover, true).await.map_err(|failure| match failure {
                crate::cluster::ApplyFailure::Other(error) => error,
                crate::cluster::ApplyFailure::Conflicts(_) => ProviderError::failed(format!("{key}: a forced apply reported conflicts")),
            })?;
        }
        return Ok(Vec::new());
    }
    if has_replicas && had_autoscaler {
        for autoscaler in previous.iter().filter(|object| object["kind"] == "HorizontalPodAutoscaler") {
            cluster.delete(&ObjectRef::of(autoscaler)?).await?;
        }
        return Ok(vec![format!("{key}:spec.replicas")]);
    }
    Ok(Vec::new())
}

async fn ready_replicas(cluster: &Cluster, runtime: &str, name: &str, primary: &Json) -> i64 {
    if runtime == "kserve" {
        let pods = cluster.pods(&cluster.namespace, &format!("serving.kserve.io/inferenceservice={name}")).await.unwrap_or_default();
        pods.iter()
            .filter(|pod| {
                pod.pointer("/status/conditions").and_then(Json::as_array).is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|condition| condition.get("type") == Some(&json!("Ready")) && condition.get("status") == Some(&json!("True")))
                })
            })
            .count() as i64
    } else {
        primary.pointer("/status/readyReplicas").and_then(Json::as_i64).unwrap_or(0)
    }
}

/// Whether the object's controller has rolled out its current generation.
fn rollout_state(object: &Json) -> Result<bool, String> {
    let generation = object.pointer("/metadata/generation").and_then(Json::as_i64).unwrap_or(0);
    let observed = object.pointer("/status/observedGeneration").and_then(Json::as_i64).unwrap_or(0);
    if observed < generation {
        return Ok(false);
    }
    match object.get("kind").and_then(Json::as_str) {
        Some("Deployment") => {
            let wanted = object.pointer("/spec/replicas").and_then(Json::as_i64).unwrap_or(1);
            let status = |name: &str| object.pointer(&format!("/status/{name}")).and_then(Json::as_i64).unwrap_or(0);
            let total = status("replicas");
            Ok(status("updatedReplicas") >= wanted && status("availableReplicas") >= wanted && total <= status("updatedReplicas"))
        }
        _ => {
            let conditions = object.pointer("/status/conditions").and_then(Json::as_array).cloned().unwrap_or_default();
            let ready = conditions.iter().find(|condition| condition.get("type") == Some(&json!("Ready")));
            match ready.and_then(|condition| condition.get("status")).and_then(Json::as_str) {
                Some("True") => Ok(true),
                Some("False") => Err(ready
                    .and_then(|condition| condition.get("message").or_else(|| condition.get("reason")))
                    .and_then(Json::as_str)
                    .unwrap_or("not ready")
                    .to_owned()),
                _ => Ok(false),
            }
        }
    }
}

/// Whether an InferenceService serves what was applied. KServe copies
/// `observedGeneration` from the predictor's own object, not from the
/// InferenceService, so a Ready condition left from the previous version
/// cannot be told apart by it. Instead the predictor's Knative Service
/// (Serverless) or Deployment (raw) is read: it must run the applied model
/// version, and be rolled out itself.
async fn kserve_state(cluster: &Cluster, live: &Json, applied: &Json) -> Result<bool, String> {
    let conditions = live.pointer("/status/conditions").and_then(Json::as_array).cloned().unwrap_or_default();
    let ready = conditions.iter().find(|condition| condition.get("type") == Some(&json!("Ready")));
    let message = |condition: Option<&Json>| {
        condition
            .and_then(|condition| condition.get("message").or_else(|| condition.get("reason")))
            .and_then(Json::as_str)
            .unwrap_or("not ready")
            .to_owned()
    };
    match ready.and_then(|condition| condition.get("status")).and_then(Json::as_str) {
        Some("True") => {}
        Some("False") => return Err(message(ready)),
        _ => return Ok(false),
    }
    let name = applied.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
    let raw =
        applied.pointer(&format!("/metadata/annotations/{}", render::KSERVE_MODE_ANNOTATION.replace('/', "~1"))).and_then(Json::as_str)
            == Some(render::KserveMode::Raw.annotation());
    let child = ObjectRef {
        api_version: if raw { "apps/v1" } else { "serving.knative.dev/v1" }.into(),
        kind: if raw { "Deployment" } else { "Service" }.into(),
        namespace: cluster.namespace.clone(),
        name: render::kserve_predictor_name(name),
    };
    let Ok(Some(child_object)) = cluster.get(&child).await else { return Ok(false) };
    let version_of = |object: &Json| -> Option<Json> {
        object
            .pointer("/spec/template/spec/containers")
            .or_else(|| object.pointer("/spec/predictor/containers"))
            .and_then(Json::as_array)?
            .iter()
            .flat_map(|container| container["env"].as_array().cloned().unwrap_or_default())
            .find(|variable| variable["name"] == "MLOPS_MODEL_VERSION")
            .map(|variable| variable["value"].clone())
    };
    if version_of(&child_object) != version_of(applied) {
        return Ok(false);
    }
    if raw {
        return rollout_state(&child_object);
    }
    let generation = child_object.pointer("/metadata/generation").and_then(Json::as_i64).unwrap_or(0);
    let observed = child_object.pointer("/status/observedGeneration").and_then(Json::as_i64).unwrap_or(0);
    let child_ready = child_object
        .pointer("/status/conditions")
        .and_then(Json::as_array)
        .is_some_and(|conditions| conditions.iter().any(|condition| condition["type"] == "Ready" && condition["status"] == "True"));
    Ok(observed >= generation && child_ready)
}

/// A pod that will not get ready without someone changing something.
async fn stuck_pod(cluster: &Cluster, object: &Json) -> Option<String> {
    let name = object.pointer("/metadata/name").and_then(Json::as_str)?;
    let selector = if object.get("kind").and_then(Json::as_str) == Some("Deployment") {
        format!("{}={name}", render::NAME_LABEL)
    } else {
        format!("serving.kserve.io/inferenceservice={name}")
    };
    for pod in cluster.pods(&cluster.namespace, &selector).await.ok()? {
        let statuses = pod.pointer("/status/containerStatuses").and_then(Json::as_array).cloned().unwrap_or_default();
        for status in statuses {
            let reason = status.pointer("/state/waiting/reason").and_then(Json::as_str).unwrap_or_default();
            if matches!(
                reason,
                "CrashLoopBackOff" | "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "CreateContainerConfigError"
            ) {
                let pod_name = pod.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
                let container = status.get("name").and_then(Json::as_str).unwrap_or_default();
                let message = status.pointer("/state/waiting/message").and_then(Json::as_str).unwrap_or_default();
                let log = cluster.log_tail(&cluster.namespace, pod_name, container, 20).await;
                let log = if log.trim().is_empty() { String::new() } else { format!("; the last lines of its log:\n{}", log.trim_end()) };
                return Some(format!("pod {pod_name} container {container}: {reason} {message}{log}"));
            }
        }
    }
    None
}

async fn wait_ready(cluster: &Cluster, object: &Json, timeout_seconds: u64, context: &dyn ApplyContext) -> ProviderResult<()> {
    let reference = ObjectRef::of(object)?;
    let ObjectRef { kind, name, .. } = &reference;
    let started = Instant::now();
    let mut attempt = 0;
    let mut last_report = Instant::now();
    let mut last_reason = String::from("waiting for the controller");
    loop {
        if context.interrupted() {
            return Err(ProviderError::Interrupted);
        }
        match cluster.get(&reference).await {
            Ok(Some(live)) => {
                let state = if kind == "InferenceService" { kserve_state(cluster, &live, object).await } else { rollout_state(&live) };
                match state {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    // A webhook's denial stays until the configuration changes.
                    Err(reason) if reason.contains("denied the request") => return Err(ProviderError::with_help(
                        format!("the rollout of {kind} {name} cannot finish: KServe's controller was refused: {reason}"),
                        "see `knative_features` and `kserve_mode` on the kubernetes provider: the cluster refuses what the serving needs",
                    )),
                    Err(reason) => last_reason = reason,
                }
            }
            Ok(None) => return Err(ProviderError::failed(format!("{kind} {name} was deleted during its rollout"))),
            Err(ProviderError::Transient { .. }) => {}
            Err(error) => return Err(error),
        }
        if attempt % 10 == 9 {
            if let Some(stuck) = stuck_pod(cluster, object).await {
                return Err(ProviderError::with_help(
                    format!("the rollout of {kind} {name} cannot finish: {stuck}"),
                    "fix the image or the server, then apply again",
                ));
            }
        }
        if started.elapsed() > Duration::from_secs(timeout_seconds) {
            return Err(ProviderError::with_help(
                format!("{kind} {}/{name} was not ready after {timeout_seconds}s: {last_reason}", cluster.namespace),
                format!(
                    "see `kubectl -n {} describe {} {name}`; raise `rollout_timeout` on the provider if it is only slow",
                    cluster.namespace,
                    kind.to_lowercase()
                ),
            ));
        }
        if last_report.elapsed().as_secs() >= 10 {
            context.progress(&format!("{kind} {name}: {last_reason} ({}s)", started.elapsed().as_secs()));
            last_report = Instant::now();
        }
        tokio::time::sleep(poll_interval(attempt)).await;
        attempt += 1;
    }
}
