//! Training runs on a cluster: a Job, or a Kubeflow TrainJob for
//! `distributed` runs.
//!
//! A run is immutable: any change to what it runs makes a new run (a
//! replace), and the plan says which field forced it. Apply records the
//! run's object name in state *before* creating it, so an interrupted apply
//! re-attaches to the same run instead of starting a second one. Metrics come
//! back through the training container's termination message
//! (`MLOPS_METRICS_FILE` is `/dev/termination-log`); a failed run reports the
//! controller's reason and the last lines of the container's log.

use std::time::{Duration, Instant};

use mlops_provider_api::{
    configuration_unchanged, ApplyContext, ApplyRequest, ApplyResponse, AttributeProblem, Attributes, PlanRequest, PlanResponse,
    ProviderError, ProviderResult, ValidateRequest,
};
use mlops_provider_api::{Configuration, Value};
use mlops_provider_support::state_text;
use serde_json::{json, Value as Json};

use crate::cluster::{Cluster, ObjectRef};
use crate::render::{self, Settings};
use crate::{poll_interval, readable_in_cluster, strings};

pub fn validate(request: &ValidateRequest) -> Vec<AttributeProblem> {
    let mut problems = Vec::new();
    if crate::text(&request.target.provider_config, "artifact_root").is_none_or(str::is_empty) {
        problems.push(AttributeProblem {
            path: vec!["provider".into()],
            message: "a Kubernetes run uploads its outputs to object storage, and the kubernetes provider names none".into(),
            help: Some("set `artifact_root = \"s3://BUCKET/PREFIX\"` in the kubernetes provider block".into()),
        });
    }
    problems
}

/// What identifies what a run computes: image, command, parameters,
/// environment, inputs (by version) and the shape it runs in.
fn fingerprint(config: &Configuration) -> Option<String> {
    let inputs = mlops_provider_support::input_identities(config)?;
    let canonical = json!({
        "image": config.get("image"),
        "command": config.get("command"),
        "hyperparameters": config.get("hyperparameters"),
        "env": config.get("env"),
        "resources": config.get("resources"),
        "distributed": config.get("distributed"),
        "inputs": inputs,
    });
    Some(format!("b3:{}", blake3::hash(canonical.to_string().as_bytes()).to_hex()))
}

fn first_block(value: Option<&Value>) -> Option<&Configuration> {
    match value?.revealed() {
        Value::Map(object) => Some(object),
        Value::List(items) => items.first().and_then(Value::as_object),
        _ => None,
    }
}

/// Whether a setting is the same as configured (references by address).
fn same_setting(before: Option<&Value>, now: Option<&Value>) -> bool {
    match (before, now) {
        (Some(before), Some(now)) => before.same_configuration(now),
        (before, now) => before.is_none() && now.is_none(),
    }
}

/// Why a changed configuration cannot update the running object in place,
/// in the object's own terms.
fn immutable_changes(prior: &Configuration, config: &Configuration) -> Vec<String> {
    let distributed_now = first_block(config.get("distributed"));
    let distributed_before = first_block(prior.get("distributed"));
    let mut reasons = Vec::new();
    match (distributed_before, distributed_now) {
        (Some(before), Some(now)) => {
            for (setting, field) in [("nodes", "numNodes"), ("procs_per_node", "numProcPerNode")] {
                if before.get(setting) != now.get(setting) {
                    reasons.push(format!(
                        "`distributed.{setting}` changed ({} -> {}): a TrainJob's spec.trainer.{field} is immutable, so the run is replaced",
                        before.get(setting).map_or("(unset)".to_owned(), Value::to_string),
                        now.get(setting).map_or("(unset)".to_owned(), Value::to_string)
                    ));
                }
            }
        }
        (None, Some(_)) => reasons.push("`distributed` added: the run moves from a Job to a Kubeflow TrainJob".to_owned()),
        (Some(_), None) => reasons.push("`distributed` removed: the run moves from a Kubeflow TrainJob to a Job".to_owned()),
        (None, None) => {}
    }
    let object = if distributed_now.is_some() { "TrainJob's spec.trainer" } else { "Job's pod template" };
    for (setting, field) in
        [("image", "image"), ("command", "command"), ("resources", "resources"), ("env", "env"), ("hyperparameters", "env")]
    {
        if !same_setting(prior.get(setting), config.get(setting)) {
            reasons.push(format!("`{setting}` changed: a {object}.{field} is immutable, so the run is replaced"));
        }
    }
    reasons
}

pub fn plan(request: &PlanRequest) -> ProviderResult<PlanResponse> {
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    let fingerprint = fingerprint(&request.config);
    if let Some(prior) = &request.prior_state {
        if !request.changed_inputs.is_empty() {
            response.requires_replace.push("a run is immutable: new inputs need a new run".into());
        } else if !configuration_unchanged(request) {
            let reasons = request.prior_config.as_ref().map(|prior| immutable_changes(prior, &request.config)).unwrap_or_default();
            if reasons.is_empty() {
                response.requires_replace.push("a run is immutable: a new configuration needs a new run".into());
            } else {
                response.requires_replace.extend(reasons);
            }
        }
        let any_true = |values: &Vec<Value>| values.iter().any(|value| value.as_bool() == Some(true));
        let now_true = request.config.get("retrain_on").and_then(Value::as_array).is_some_and(any_true);
        let before_true =
            request.prior_config.as_ref().and_then(|config| config.get("retrain_on")).and_then(Value::as_array).is_some_and(any_true);
        if now_true && !before_true {
            response.requires_replace.push("retrain_on turned true (drift detected)".into());
        }
        if response.requires_replace.is_empty() {
            response.planned_state = prior.clone();
            return Ok(response);
        }
        if let (Some(before), Some(after)) = (state_text(prior, "fingerprint"), fingerprint.as_deref()) {
            if before != after {
                response.update_reasons.push(format!(
                    "run fingerprint {} -> {}",
                    mlops_provider_support::short_version(before),
                    mlops_provider_support::short_version(after)
                ));
            }
        }
    }
    match fingerprint {
        Some(fingerprint) => {
            response.planned_state.insert("fingerprint".into(), Json::String(fingerprint));
        }
        None => response.unknown.push(vec!["fingerprint".into()]),
    }
    response.unknown.extend([vec!["run_id".into()], vec!["artifact_uri".into()], vec!["metrics".into()], vec!["duration_seconds".into()]]);
    Ok(response)
}

/// `NAME-YYYYmmddHHMMSS-XXXXXX`: at most 62 characters for a Job, and
/// [`render::TRAINJOB_NAME_LIMIT`] for a TrainJob.
pub(crate) fn new_run_id(address: &str, distributed: bool) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let nonce = blake3::hash(format!("{address}{:?}{}", Instant::now(), std::process::id()).as_bytes()).to_hex();
    // The stamp and the nonce take 22 characters.
    let limit = if distributed { render::TRAINJOB_NAME_LIMIT - 22 } else { 40 };
    format!("{}-{stamp}-{}", render::object_name(address, limit), &nonce[..6])
}

/// The Trainer runtime a distributed run's own TrainingRuntime is derived
/// from: the ClusterTrainingRuntime named by `training_runtime` (what a
/// TrainJob's runtimeRef means by default), else a TrainingRuntime of that
/// name in the namespace.
async fn base_runtime(cluster: &Cluster, name: &str, namespace: &str) -> ProviderResult<render::BaseRuntime> {
    for (kind, scope) in [("ClusterTrainingRuntime", ""), ("TrainingRuntime", namespace)] {
        let reference = ObjectRef {
            api_version: "trainer.kubeflow.org/v1alpha1".into(),
            kind: kind.into(),
            namespace: scope.into(),
            name: name.into(),
        };
        if let Some(object) = cluster.get(&reference).await? {
            return Ok(render::BaseRuntime {
                kind: kind.into(),
                name: name.into(),
                spec: object.get("spec").cloned().unwrap_or(Json::Null),
                labels: object.pointer("/metadata/labels").cloned().unwrap_or(Json::Null),
            });
        }
    }
    Err(ProviderError::with_help(
        format!(
            "the cluster {} has no ClusterTrainingRuntime `{name}` (nor a TrainingRuntime `{name}` in namespace `{namespace}`), which distributed runs are derived from",
            cluster.label
        ),
        "install Kubeflow Trainer's runtimes (`kubectl apply --server-side -k \"https://github.com/kubeflow/trainer.git/manifests/overlays/runtimes?ref=v2.3.0\"`), or set `training_runtime` on the kubernetes provider to one the cluster has",
    ))
}

/// Server-side applies an object of a run, with a conflict as an error.
async fn apply_object(cluster: &Cluster, object: &Json) -> ProviderResult<Json> {
    cluster.apply(object, false).await.map_err(|failure| match failure {
        crate::cluster::ApplyFailure::Other(error) => error,
        crate::cluster::ApplyFailure::Conflicts(conflicts) => ProviderError::failed(format!(
            "{} is already managed by someone else: {}",
            crate::objects::key_of(object),
            conflicts.iter().map(|conflict| format!("{} ({})", conflict.field, conflict.message)).collect::<Vec<_>>().join(", ")
        )),
    })
}

/// The inputs' data locations, each one a pod can read.
fn resolved_inputs(config: &Configuration) -> ProviderResult<render::Inputs> {
    let mut inputs = render::Inputs::new();
    for (name, input) in config.get("inputs").and_then(Value::as_object).into_iter().flatten() {
        let address = input.as_reference().map_or(name.as_str(), |reference| reference.address.as_str());
        let uri = input
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::failed(format!("input `{name}` ({address}) has no stored data")))?;
        if !readable_in_cluster(uri) {
            return Err(ProviderError::with_help(
                format!("input `{name}` ({address}) is stored at `{uri}`, on this machine, where a pod cannot read it"),
                format!("store {address} in object storage (`provider = s3`, in a bucket the cluster can reach)"),
            ));
        }
        inputs.insert(name.clone(), uri.to_owned());
    }
    Ok(inputs)
}

/// A run that finished well: its object, its pod (when still there), the
/// status of its main container, and when it started.
pub(crate) struct FinishedRun {
    pub handle: ObjectRef,
    pub run_id: String,
    pub pod: Option<Json>,
    pub container: Option<Json>,
    pub started: Instant,
    /// How long the run took: from the object's start to its completion
    /// as the cluster recorded them, else as this apply saw it.
    pub duration: Duration,
    pub rendered: render::RenderedTraining,
}

/// A Job's (or TrainJob's) recorded start and completion, apart.
fn recorded_duration(object: &Json) -> Option<Duration> {
    let time = |pointer: &str| chrono::DateTime::parse_from_rfc3339(object.pointer(pointer)?.as_str()?).ok();
    let (start, end) = (time("/status/startTime")?, time("/status/completionTime")?);
    (end - start).to_std().ok()
}

/// Runs a Job or TrainJob to its end: re-attaches to the run an interrupted
/// apply started (its handle recorded before the object exists), else
/// renders a new one with `render(run_id)`; creates its Secret and runtime
/// before it; waits within `timeout`; and fails with the log of whichever
/// container failed (staging, the `main_container`, the upload).
pub(crate) async fn run_to_completion(
    cluster: &Cluster,
    request: &ApplyRequest,
    context: &dyn ApplyContext,
    settings: &Settings,
    distributed: bool,
    main_container: &str,
    render: impl Fn(&str) -> ProviderResult<render::RenderedTraining>,
) -> ProviderResult<FinishedRun> {
    let target = &request.target;
    let config = &request.config;
    // The handle is the run's object reference.
    let pending: Option<ObjectRef> = request.pending_handle.clone().and_then(|handle| serde_json::from_value(handle).ok());

    // Re-attach to the run an interrupted apply started, unless it failed.
    let mut attached = None;
    if let Some(handle) = pending {
        match cluster.get(&handle).await? {
            Some(object) if terminal_condition(&object).is_none_or(|(complete, _, _)| complete) => {
                context.progress(&format!("re-attaching to {} {}", handle.kind, handle.name));
                attached = Some(handle);
            }
            Some(_) => context.progress(&format!("{} {} failed earlier; starting a new run", handle.kind, handle.name)),
            // Recorded, but the interruption came before it was created.
            None => attached = Some(handle),
        }
    }
    let run_id = attached.as_ref().map_or_else(|| new_run_id(&target.address, distributed), |handle| handle.name.clone());
    let rendered = render(&run_id)?;
    let handle = attached.clone().map_or_else(|| ObjectRef::of(&rendered.manifest), Ok)?;
    let kind = handle.kind.clone();
    if attached.is_none() {
        // Durable before the object exists: an interruption at any point
        // finds this run again.
        context.record_handle(serde_json::to_value(&handle).unwrap_or(Json::Null))?;
    }
    if cluster.get(&handle).await?.is_none() {
        // A TrainJob's runtime must exist before it (Trainer's webhook
        // refuses it otherwise), and goes with it (owned by it).
        let runtime = if rendered.distributed {
            let base = base_runtime(cluster, &settings.training_runtime, &cluster.namespace).await?;
            let runtime = render::training_runtime(&target.address, &rendered, &base, settings)?;
            apply_object(cluster, &runtime).await?;
            Some(runtime)
        } else {
            None
        };
        // The secret environment exists before the pods that read it.
        if let Some(secret) = &rendered.secret {
            apply_object(cluster, secret).await?;
        }
        let created = apply_object(cluster, &rendered.manifest).await?;
        if let Some(uid) = created.pointer("/metadata/uid").and_then(Json::as_str) {
            let owner = json!([{ "apiVersion": handle.api_version, "kind": handle.kind, "name": handle.name, "uid": uid }]);
            for mut owned in runtime.into_iter().chain(rendered.secret.clone()) {
                owned["metadata"]["ownerReferences"] = owner.clone();
                apply_object(cluster, &owned).await?;
            }
        }
        let shape = if rendered.distributed {
            let nodes = rendered.manifest.pointer("/spec/trainer/numNodes").cloned().unwrap_or(Json::Null);
            let procs = rendered.manifest.pointer("/spec/trainer/numProcPerNode").cloned().unwrap_or(Json::Null);
            format!(" on {nodes} nodes x {procs} processes")
        } else {
            String::new()
        };
        context.progress(&format!("started {handle}{shape}"));
    }

    let timeout = render::whole_seconds(mlops_provider_support::duration(config, "timeout")?);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut attempt = 0;
    let mut transient_failures = 0;
    let object = loop {
        if context.interrupted() {
            return Err(ProviderError::Interrupted);
        }
        match cluster.get(&handle).await {
            Ok(Some(object)) => {
                transient_failures = 0;
                if terminal_condition(&object).is_some() {
                    break object;
                }
                if last_report.elapsed().as_secs() >= 10 {
                    context.progress(&format!("{kind} {run_id}: {} ({}s)", running_summary(&object), started.elapsed().as_secs()));
                    last_report = Instant::now();
                }
            }
            Ok(None) => {
                return Err(ProviderError::with_help(
                    format!("{handle} was deleted while mlops waited for it"),
                    "apply again to start a new run",
                ))
            }
            // The run goes on whatever the API server's hiccups; only a
            // long outage ends the wait (the handle is recorded).
            Err(ProviderError::Transient { message }) => {
                transient_failures += 1;
                if transient_failures > 60 {
                    return Err(ProviderError::failed(message));
                }
            }
            Err(error) => return Err(error),
        }
        // A Job enforces activeDeadlineSeconds itself; a TrainJob does not.
        if rendered.distributed && started.elapsed().as_secs() > timeout {
            let _ = delete_run(cluster, &handle).await;
            return Err(ProviderError::with_help(
                format!("{kind} {run_id} timed out after {timeout}s and was deleted"),
                "raise `timeout`, or make the training faster",
            ));
        }
        tokio::time::sleep(poll_interval(attempt)).await;
        attempt += 1;
    };

    // A finished run never starts a pod again: its secrets go now.
    if rendered.secret.is_some() {
        cluster.delete(&secret_of(&handle)).await?;
    }
    let pod = training_pod(cluster, &handle).await?;
    let training_container = main_container;
    let container = pod.as_ref().and_then(|pod| container_status(pod, "containerStatuses", training_container));
    let pod_name = pod.as_ref().and_then(|pod| pod.pointer("/metadata/name")).and_then(Json::as_str).unwrap_or_default().to_owned();
    let (complete, reason, message) = terminal_condition(&object).unwrap_or((false, String::new(), String::new()));
    if !complete {
        // Staging that failed stopped the pod before training began: its
        // log is the one that says why.
        let staging = pod.as_ref().and_then(|pod| container_status(pod, "initContainerStatuses", render::STAGE_INPUTS_CONTAINER));
        let (container_name, status, what) = match staging.filter(|status| exit_code(status).is_some_and(|code| code != 0)) {
            Some(status) => (render::STAGE_INPUTS_CONTAINER, Some(status), "staging its inputs failed"),
            None => (training_container, container.clone(), "failed"),
        };
        let log =
            if pod_name.is_empty() { String::new() } else { cluster.log_tail(&handle.namespace, &pod_name, container_name, 20).await };
        let exit = status.as_ref().and_then(exit_code).map(|code| format!(", exit code {code}")).unwrap_or_default();
        let detail = if log.trim().is_empty() { "(no log could be read)".to_owned() } else { log.trim_end().to_owned() };
        return Err(ProviderError::with_help(
            format!(
                "{kind} {run_id} {what} ({reason}{exit}): {message}; the last lines of the {container_name} container's log:\n{detail}"
            ),
            format!("the full log: kubectl -n {} logs {pod_name} -c {container_name}", handle.namespace),
        ));
    }
    // The upload runs after the training container has exited, and its exit
    // code does not change the pod's phase: a run whose outputs did not
    // arrive has failed all the same.
    if let Some(uri) = &rendered.artifact_uri {
        let upload = pod.as_ref().and_then(|pod| container_status(pod, "initContainerStatuses", render::UPLOAD_OUTPUTS_CONTAINER));
        let code = upload.as_ref().and_then(exit_code);
        if code != Some(0) {
            let log = if pod_name.is_empty() {
                String::new()
            } else {
                cluster.log_tail(&handle.namespace, &pod_name, render::UPLOAD_OUTPUTS_CONTAINER, 20).await
            };
            let outcome = match code {
                Some(code) => format!("failed (exit code {code})"),
                None => "did not finish".to_owned(),
            };
            let detail = if log.trim().is_empty() { "(no log could be read)".to_owned() } else { log.trim_end().to_owned() };
            return Err(ProviderError::with_help(
                format!("{kind} {run_id} finished, but uploading its outputs to {uri} {outcome}; the last lines of its log:\n{detail}"),
                format!(
                    "check that the pods can write there (`storage_secret`, `storage_endpoint`), and that the upload fits in `upload_timeout`; the full log: kubectl -n {} logs {pod_name} -c {}",
                    handle.namespace,
                    render::UPLOAD_OUTPUTS_CONTAINER
                ),
            ));
        }
    }
    let duration = recorded_duration(&object).unwrap_or_else(|| started.elapsed());
    Ok(FinishedRun { handle, run_id, pod, container, started, duration, rendered })
}

pub async fn apply(cluster: &Cluster, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let settings = Settings::resolved(&target.provider_config)?;
    let inputs = resolved_inputs(config)?;
    let distributed = first_block(config.get("distributed")).is_some();
    let main_container = if distributed { render::TRAINER_TRAINING_CONTAINER } else { render::JOB_TRAINING_CONTAINER };
    let FinishedRun { handle, run_id, container, started, duration, rendered, .. } =
        run_to_completion(cluster, request, context, &settings, distributed, main_container, |run_id| {
            render::training(&target.address, run_id, config, &inputs, &settings)
        })
        .await?;
    let kind = handle.kind.clone();
    let written = container.as_ref().and_then(|status| status.pointer("/state/terminated/message")).and_then(Json::as_str);
    if written.is_some_and(|text| text.len() >= TERMINATION_MESSAGE_LIMIT && serde_json::from_str::<Json>(text).is_err()) {
        return Err(ProviderError::with_help(
            format!(
                "{kind} {run_id} wrote more metrics than the {TERMINATION_MESSAGE_LIMIT} bytes the kubelet keeps of MLOPS_METRICS_FILE (its termination message), so they were cut off"
            ),
            "report fewer metrics (the ones gates and outputs read), and write the rest into MLOPS_OUTPUT_DIR",
        ));
    }
    let reported = mlops_provider_support::declared_metrics(&format!("{kind} {run_id}"), written, &strings(config, "metrics"))?;
    // The run this one replaces is history now; its results live on in
    // the registry and in state history.
    forget_previous_run(cluster, request, &handle).await;
    let image_id = container.as_ref().and_then(|status| status.get("imageID")).cloned().unwrap_or(Json::Null);
    context.progress(&format!("{kind} {run_id} finished in {:.0}s", started.elapsed().as_secs_f64()));
    let mut state = Attributes::new();
    state.insert("run_id".into(), Json::String(run_id.clone()));
    state.insert("fingerprint".into(), fingerprint(config).map_or(Json::Null, Json::String));
    state.insert("artifact_uri".into(), rendered.artifact_uri.map_or(Json::Null, Json::String));
    state.insert("metrics".into(), Json::Object(reported));
    state.insert("duration_seconds".into(), json!(duration.as_secs()));
    Ok(ApplyResponse { state, private: json!({ "run": handle, "image_id": image_id }) })
}

pub async fn delete(cluster: &Cluster, request: &ApplyRequest) -> ProviderResult<ApplyResponse> {
    for handle in [request.prior_private.get("run").cloned(), request.pending_handle.clone()].into_iter().flatten() {
        if let Ok(handle) = serde_json::from_value::<ObjectRef>(handle) {
            delete_run(cluster, &handle).await?;
        }
    }
    Ok(ApplyResponse::default())
}

/// Deletes the run an earlier apply made, once `current` replaced it: its
/// results live on in state (and the registry), its objects need not.
pub(crate) async fn forget_previous_run(cluster: &Cluster, request: &ApplyRequest, current: &ObjectRef) {
    if let Some(previous) = request.prior_private.get("run").and_then(|run| serde_json::from_value::<ObjectRef>(run.clone()).ok()) {
        if previous != *current {
            let _ = delete_run(cluster, &previous).await;
        }
    }
}

/// The Secret a run's pods read their secret environment from (whether or
/// not the run has one).
pub(crate) fn secret_of(run: &ObjectRef) -> ObjectRef {
    ObjectRef { api_version: "v1".into(), kind: "Secret".into(), name: format!("{}-env", run.name), ..run.clone() }
}

/// Deletes a run's object, its Secret, and a TrainJob's own TrainingRuntime (which its
/// owner reference removes too, unless the apply that made it was
/// interrupted before the TrainJob existed).
pub(crate) async fn delete_run(cluster: &Cluster, run: &ObjectRef) -> ProviderResult<()> {
    cluster.delete(run).await?;
    // Owned by the run, so the cluster deletes it with the run anyway; this
    // covers an apply interrupted before the run existed. A user who may
    // not delete Secrets (and has none here) is not stopped by it.
    let _ = cluster.delete(&secret_of(run)).await;
    if run.kind == "TrainJob" {
        cluster.delete(&ObjectRef { kind: "TrainingRuntime".into(), ..run.clone() }).await?;
    }
    Ok(())
}

/// `Some((complete, reason, message))` once a Job or TrainJob has finished.
fn terminal_condition(object: &Json) -> Option<(bool, String, String)> {
    let conditions = object.pointer("/status/conditions").and_then(Json::as_array)?;
    for condition in conditions {
        if condition.get("status").and_then(Json::as_str) != Some("True") {
            continue;
        }
        let field = |name: &str| condition.get(name).and_then(Json::as_str).unwrap_or_default().to_owned();
        match condition.get("type").and_then(Json::as_str) {
            Some("Complete") => return Some((true, field("reason"), field("message"))),
            Some("Failed") => return Some((false, field("reason"), field("message"))),
            _ => {}
        }
    }
    None
}

fn running_summary(object: &Json) -> String {
    match object.pointer("/status/active").and_then(Json::as_i64) {
        Some(active) => format!("running, {active} active pod(s)"),
        None => "waiting for pods to start".to_owned(),
    }
}

/// The most the kubelet keeps of a container's termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

pub(crate) fn exit_code(status: &Json) -> Option<i64> {
    status.pointer("/state/terminated/exitCode").and_then(Json::as_i64)
}

/// The pod that ran the training: the Job's pod, or node 0 of a TrainJob
/// (the rank that reports metrics and uploads the outputs).
async fn training_pod(cluster: &Cluster, run: &ObjectRef) -> ProviderResult<Option<Json>> {
    let run_id = &run.name;
    let selector = if run.kind == "TrainJob" {
        format!(
            "jobset.sigs.k8s.io/jobset-name={run_id},jobset.sigs.k8s.io/replicatedjob-name={},batch.kubernetes.io/job-completion-index=0",
            render::TRAINER_TRAINING_CONTAINER
        )
    } else {
        format!("batch.kubernetes.io/job-name={run_id}")
    };
    let mut pods = cluster.pods(&run.namespace, &selector).await?;
    // The newest pod is the one whose result counts; of an Indexed Job's
    // pods (one per shard), a failed one says why the run failed.
    pods.sort_by(|left, right| {
        let created = |pod: &Json| pod.pointer("/metadata/creationTimestamp").and_then(Json::as_str).unwrap_or_default().to_owned();
        created(left).cmp(&created(right))
    });
    let failed = pods.iter().rposition(|pod| pod.pointer("/status/phase").and_then(Json::as_str) == Some("Failed"));
    Ok(match failed {
        Some(position) => Some(pods.swap_remove(position)),
        None => pods.pop(),
    })
}

pub(crate) fn container_status(pod: &Json, list: &str, name: &str) -> Option<Json> {
    pod.pointer(&format!("/status/{list}"))
        .and_then(Json::as_array)?
        .iter()
        .find(|status| status.get("name").and_then(Json::as_str) == Some(name))
        .cloned()
}
