//! The admission rules of the webhooks a cluster with KServe, Knative,
//! Kubeflow Trainer and JobSet runs, written out from their sources, so that
//! the fake API server refuses what a real cluster refuses.
//!
//! A validating webhook built on controller-runtime answers a denial with
//! HTTP 403 and the message `admission webhook "NAME" denied the request:
//! REASON`: the same status code as an RBAC denial, which is why the
//! provider must tell them apart by the message.

use std::collections::BTreeSet;

use serde_json::Value as Json;

/// What a webhook (or a CRD's own rules) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: u16,
    /// `Forbidden` (a webhook) or `Invalid` (the CRD's validation rules).
    pub reason: String,
    pub message: String,
}

fn webhook(name: &str, reason: impl std::fmt::Display) -> Denial {
    Denial { code: 403, reason: "Forbidden".into(), message: format!("admission webhook \"{name}\" denied the request: {reason}") }
}

/// How a cluster is set up, as the webhooks see it.
#[derive(Debug, Clone, Default)]
pub struct ClusterSettings {
    /// Knative's `config-features` flags that are `enabled`
    /// (`kubernetes.podspec-init-containers`, ...).
    pub knative_features: BTreeSet<String>,
}

/// The KServe annotation that picks the deployment mode.
pub const KSERVE_MODE_ANNOTATION: &str = "serving.kserve.io/deploymentMode";
pub const KSERVE_AUTOSCALER_ANNOTATION: &str = "serving.kserve.io/autoscalerClass";
pub const KNATIVE_AUTOSCALER_ANNOTATION: &str = "autoscaling.knative.dev/class";

/// Whether an InferenceService runs without Knative (KServe's
/// `RawDeployment`, called `Standard` from KServe 0.16). Without the
/// annotation the cluster's default applies; the clusters here default to
/// Serverless, KServe's default up to 0.15.
pub fn kserve_is_raw(object: &Json) -> bool {
    let mode = object.pointer("/metadata/annotations").and_then(|annotations| annotations.get(KSERVE_MODE_ANNOTATION));
    matches!(mode.and_then(Json::as_str), Some("RawDeployment" | "Standard"))
}

/// Reviews a create or update of `object` as the cluster's webhooks would.
/// `exists(api_version, kind, namespace, name)` looks up other objects
/// (an empty namespace for a cluster-scoped kind).
pub fn review(object: &Json, exists: &dyn Fn(&str, &str, &str, &str) -> bool) -> Result<(), Denial> {
    match object["kind"].as_str().unwrap_or_default() {
        "InferenceService" => inference_service(object),
        "TrainJob" => train_job(object, exists),
        "TrainingRuntime" | "ClusterTrainingRuntime" => training_runtime(object),
        _ => Ok(()),
    }
}

/// KServe's InferenceService validator (`inference_service_validation.go`,
/// v0.15.0 and main): the name, the autoscaler class, and which scale
/// metrics each mode's autoscaler knows.
fn inference_service(object: &Json) -> Result<(), Denial> {
    const NAME: &str = "inferenceservice.kserve-webhook-server.validator";
    let name = object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
    if !is_dns_1035_label(name) {
        return Err(webhook(
            NAME,
            format!("the InferenceService \"{name}\" is invalid: a InferenceService name must consist of lower case alphanumeric characters or '-', and must start with alphabetical character"),
        ));
    }
    let annotation =
        |key: &str| object.pointer("/metadata/annotations").and_then(|annotations| annotations.get(key)).and_then(Json::as_str);
    if let Some(class) = annotation(KSERVE_AUTOSCALER_ANNOTATION) {
        if !["hpa", "external", "keda", "none"].contains(&class) {
            return Err(webhook(NAME, format!("[{class}] is not a supported autoscaler class type")));
        }
    }
    let predictor = &object["spec"]["predictor"];
    let metric = predictor["scaleMetric"].as_str();
    let target = predictor["scaleTarget"].as_i64();
    let hpa = |metric: Option<&str>| -> Result<(), Denial> {
        let metric = metric.unwrap_or("cpu");
        if !["cpu", "memory"].contains(&metric) {
            return Err(webhook(NAME, format!("[{metric}] is not a supported metric")));
        }
        match (metric, target) {
            ("cpu", Some(target)) if !(1..=100).contains(&target) => {
                Err(webhook(NAME, "the target utilization percentage should be a [1-100] integer"))
            }
            ("memory", Some(target)) if target < 1 => Err(webhook(NAME, "the target memory should be greater than 1 MiB")),
            _ => Ok(()),
        }
    };
    if kserve_is_raw(object) {
        return match annotation(KSERVE_AUTOSCALER_ANNOTATION) {
            Some("hpa") => hpa(metric),
            Some("keda") if metric.is_some() => Err(webhook(NAME, "ScaleMetric is not supported for KEDA")),
            _ => Ok(()),
        };
    }
    if annotation(KNATIVE_AUTOSCALER_ANNOTATION) == Some("hpa.autoscaling.knative.dev") {
        return hpa(metric);
    }
    if predictor.get("deploymentStrategy").is_some() {
        return Err(webhook(NAME, "customizing deploymentStrategy is only supported for raw deployment mode"));
    }
    let metric = metric.unwrap_or("concurrency");
    if !["concurrency", "rps"].contains(&metric) {
        return Err(webhook(NAME, format!("[{metric}] is not a supported metric")));
    }
    if metric == "rps" && target.is_some_and(|target| target < 1) {
        return Err(webhook(NAME, "the target for rps should be greater than 1"));
    }
    Ok(())
}

/// Kubeflow Trainer's TrainJob validator (`trainjob_webhook.go`): the
/// runtime must exist before the TrainJob; and the TrainJob CRD's own rule
/// (main) on the name.
fn train_job(object: &Json, exists: &dyn Fn(&str, &str, &str, &str) -> bool) -> Result<(), Denial> {
    let name = object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default();
    let namespace = object.pointer("/metadata/namespace").and_then(Json::as_str).unwrap_or_default();
    if !is_dns_1035_label(name) || name.len() > 63 {
        return Err(Denial {
            code: 422,
            reason: "Invalid".into(),
            message: format!("TrainJob.trainer.kubeflow.org \"{name}\" is invalid: <nil>: Invalid value: \"object\": metadata.name must match RFC 1035 DNS label format and be no more than 63 characters"),
        });
    }
    let reference = &object["spec"]["runtimeRef"];
    let runtime = reference["name"].as_str().unwrap_or_default();
    let kind = reference["kind"].as_str().unwrap_or("ClusterTrainingRuntime");
    let (plural, scope) = match kind {
        "TrainingRuntime" => ("trainingruntimes", namespace),
        _ => ("clustertrainingruntimes", ""),
    };
    if !exists("trainer.kubeflow.org/v1alpha1", kind, scope, runtime) {
        return Err(webhook(
            "validator.trainjob.trainer.kubeflow.org",
            format!(
                "spec.runtimeRef: Invalid value: {{\"name\":\"{runtime}\",\"kind\":\"{kind}\"}}: {plural}.trainer.kubeflow.org \"{runtime}\" not found: specified {} must be created before the TrainJob is created",
                if kind == "TrainingRuntime" { "trainingRuntime" } else { "clusterTrainingRuntime" }
            ),
        ));
    }
    Ok(())
}

/// Kubeflow Trainer's runtime validators (`trainingruntime_webhook.go`):
/// each step Trainer knows runs once and has its container.
fn training_runtime(object: &Json) -> Result<(), Denial> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = format!("validator.{}.trainer.kubeflow.org", kind.to_lowercase());
    let jobs = object.pointer("/spec/template/spec/replicatedJobs").and_then(Json::as_array).cloned().unwrap_or_default();
    for (index, job) in jobs.iter().enumerate() {
        let step = job.pointer("/template/metadata/labels/trainer.kubeflow.org~1trainjob-ancestor-step").and_then(Json::as_str);
        let Some(step) = step.filter(|step| ["trainer", "dataset-initializer", "model-initializer"].contains(step)) else { continue };
        let path = format!("spec.template.spec.replicatedJobs[{index}]");
        if job.get("replicas").and_then(Json::as_i64).unwrap_or(1) != 1 {
            return Err(webhook(&name, format!("{path}.replicas: Invalid value: always must be 1")));
        }
        let wanted = if step == "trainer" { "node" } else { step };
        let containers = job.pointer("/template/spec/template/spec/containers").and_then(Json::as_array).cloned().unwrap_or_default();
        if !containers.iter().any(|container| container["name"] == wanted) {
            return Err(webhook(
                &name,
                format!("{path}.template.spec.template.spec.containers: Invalid value: must contain the required container for the ancestor: {step}"),
            ));
        }
    }
    Ok(())
}

/// What JobSet accepts as the name of a TrainJob's JobSet and still starts
/// pods for: a pod's hostname is `NAME-node-INDEX-INDEX`, which must stay a
/// DNS label. Longer names are accepted and never start, with no error.
pub fn jobset_starts(name: &str) -> bool {
    name.len() <= 48
}

/// Knative Serving's validation of a Service's pod spec
/// (`pkg/apis/serving/k8s_validation.go`), as KServe's controller meets it
/// when it creates the predictor's Knative Service in Serverless mode: the
/// environment variables Knative sets itself, and the pod-spec fields that
/// need a feature flag.
pub fn knative_pod_spec(pod_spec: &Json, settings: &ClusterSettings) -> Result<(), String> {
    const RESERVED: &[&str] = &["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"];
    for (index, container) in pod_spec["containers"].as_array().into_iter().flatten().enumerate() {
        for (position, variable) in container["env"].as_array().into_iter().flatten().enumerate() {
            let name = variable["name"].as_str().unwrap_or_default();
            if RESERVED.contains(&name) {
                return Err(format!(
                    "validation failed: \"{name}\" is a reserved environment variable: spec.template.spec.containers[{index}].env[{position}].name"
                ));
            }
        }
    }
    let flags = [
        ("nodeSelector", "kubernetes.podspec-nodeselector"),
        ("tolerations", "kubernetes.podspec-tolerations"),
        ("initContainers", "kubernetes.podspec-init-containers"),
    ];
    let refused: Vec<String> = flags
        .iter()
        .filter(|(field, flag)| pod_spec.get(*field).is_some_and(|value| !value.is_null()) && !settings.knative_features.contains(*flag))
        .map(|(field, _)| format!("spec.template.spec.{field}"))
        .collect();
    if !refused.is_empty() {
        return Err(format!("validation failed: must not set the field(s): {}", refused.join(", ")));
    }
    Ok(())
}

fn is_dns_1035_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn isvc(annotations: Json, predictor: Json) -> Json {
        json!({ "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "metadata": { "name": "api", "annotations": annotations }, "spec": { "predictor": predictor } })
    }

    #[test]
    fn kserve_refuses_metrics_the_mode_cannot_scale_on() {
        let cpu = json!({ "scaleMetric": "cpu", "scaleTarget": 80 });
        let denial = inference_service(&isvc(json!({}), cpu.clone())).unwrap_err();
        assert_eq!(denial.code, 403);
        assert_eq!(
            denial.message,
            "admission webhook \"inferenceservice.kserve-webhook-server.validator\" denied the request: [cpu] is not a supported metric"
        );
        assert!(inference_service(&isvc(json!({ KNATIVE_AUTOSCALER_ANNOTATION: "hpa.autoscaling.knative.dev" }), cpu.clone())).is_ok());
        let raw = json!({ KSERVE_MODE_ANNOTATION: "RawDeployment", KSERVE_AUTOSCALER_ANNOTATION: "hpa" });
        assert!(inference_service(&isvc(raw.clone(), cpu)).is_ok());
        assert!(inference_service(&isvc(raw, json!({ "scaleMetric": "concurrency" }))).is_err());
        assert!(inference_service(&isvc(json!({}), json!({ "scaleMetric": "rps", "scaleTarget": 5 }))).is_ok());
    }

    #[test]
    fn knative_refuses_reserved_variables_and_flagged_fields() {
        let settings = ClusterSettings::default();
        let port = json!({ "containers": [{ "name": "c", "env": [{ "name": "PORT", "value": "8080" }] }] });
        assert!(knative_pod_spec(&port, &settings).unwrap_err().contains("\"PORT\" is a reserved environment variable"));
        let gpu = json!({ "containers": [{ "name": "c" }], "nodeSelector": { "a": "b" }, "tolerations": [] });
        assert_eq!(
            knative_pod_spec(&gpu, &settings).unwrap_err(),
            "validation failed: must not set the field(s): spec.template.spec.nodeSelector, spec.template.spec.tolerations"
        );
        let enabled = ClusterSettings {
            knative_features: ["kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations"].map(str::to_owned).into(),
        };
        assert!(knative_pod_spec(&gpu, &enabled).is_ok());
    }

    #[test]
    fn a_trainjob_needs_its_runtime_first() {
        let trainjob = json!({ "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": { "name": "run", "namespace": "ml" }, "spec": { "runtimeRef": { "name": "torch-distributed" } } });
        let denial = train_job(&trainjob, &|_, _, _, _| false).unwrap_err();
        assert!(denial.message.contains("clustertrainingruntimes.trainer.kubeflow.org \"torch-distributed\" not found"), "{denial:?}");
        assert!(train_job(&trainjob, &|_, kind, scope, name| kind == "ClusterTrainingRuntime"
            && scope.is_empty()
            && name == "torch-distributed")
        .is_ok());
    }
}
