//! End-to-end tests of the kubernetes provider: the built binary, through
//! the real kube-rs client, against the fake API server in
//! `support/fake_kube.rs`. The tests play the controllers (Job, Kubeflow
//! Trainer, Deployment, KServe) by creating pods and writing status through
//! the status subresource.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlops_kubernetes_conformance::admission::{self, ClusterSettings};
use serde_json::{json, Value as Json};
use support::fake_kube::{Addon, FakeKube, Setup};
use support::Workspace;

const NAMESPACE: &str = "ml-test";
/// Where a test moves things to; the controllers watch both.
const OTHER_NAMESPACE: &str = "ml-other";

/// How the simulated controllers finish training pods.
#[derive(Clone)]
enum Outcome {
    Succeed {
        metrics: Json,
    },
    Fail {
        exit_code: i64,
        log: String,
    },
    /// The training succeeds and the upload of its outputs fails.
    UploadFails {
        log: String,
    },
    /// Staging the inputs fails: the training never starts.
    StagingFails {
        log: String,
    },
    /// Leave runs going (an apply waits until it is interrupted).
    Hold,
}

/// The controllers a real cluster runs, reduced to what the provider
/// observes, and no kinder than the real ones: the Job controller and the
/// kubelet (pods from the Job's template, init containers and the upload
/// sidecar included), Kubeflow Trainer with JobSet (pods from the run's
/// TrainingRuntime; a name too long for JobSet never starts), the
/// Deployment controller, and KServe (a Knative Service or a Deployment per
/// predictor, refused as Knative refuses it, `observedGeneration` copied
/// from that child as KServe does).
struct Controllers {
    stop: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
    /// KServe's controller and the Knative and Deployment controllers under
    /// it stop reconciling (a busy or slow cluster).
    serving_paused: Arc<AtomicBool>,
}

impl Controllers {
    fn start(fake: &Arc<FakeKube>, outcome: Outcome, settings: ClusterSettings) -> Controllers {
        let stop = Arc::new(AtomicBool::new(false));
        let serving_paused = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(outcome));
        let (fake, stopped, wanted, paused) = (fake.clone(), stop.clone(), outcome.clone(), serving_paused.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let outcome = wanted.lock().unwrap().clone();
                reconcile(&fake, &outcome, &settings, paused.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Controllers { stop, outcome, serving_paused }
    }

    fn pause_serving(&self, paused: bool) {
        self.serving_paused.store(paused, Ordering::Relaxed);
    }

    fn set(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap() = outcome;
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn finished(object: &Json) -> bool {
    object.pointer("/status/conditions").and_then(Json::as_array).is_some_and(|conditions| !conditions.is_empty())
}

fn reconcile(fake: &FakeKube, outcome: &Outcome, settings: &ClusterSettings, serving_paused: bool) {
    for namespace in [NAMESPACE, OTHER_NAMESPACE] {
        reconcile_namespace(fake, outcome, settings, serving_paused, namespace);
    }
}

fn terminated(exit_code: i64, message: Option<&Json>) -> Json {
    let mut state = json!({ "exitCode": exit_code, "reason": if exit_code == 0 { "Completed" } else { "Error" } });
    if let Some(message) = message {
        // The kubelet keeps at most 4096 bytes of a termination message.
        let text = message.to_string();
        state["message"] = json!(text[..text.len().min(4096)]);
    }
    json!({ "terminated": state })
}

/// Runs one pod of a run to its outcome, as the kubelet would: the pod is
/// made from `spec`, its init containers and training container end as the
/// outcome says, and the logs are set. Returns whether the run succeeded.
fn run_pod(fake: &FakeKube, namespace: &str, pod_name: &str, labels: Json, spec: Json, training: &str, outcome: &Outcome) -> bool {
    let init_names: Vec<String> = spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|container| container["name"].as_str().map(str::to_owned))
        .collect();
    let state_of = |name: &str| -> (Json, bool) {
        let staging = name == "stage-inputs";
        let upload = name == "upload-outputs";
        match outcome {
            Outcome::StagingFails { log } if staging => {
                fake.set_log(namespace, pod_name, name, log);
                (terminated(1, None), false)
            }
            Outcome::StagingFails { .. } if upload => (json!({ "running": {} }), false),
            Outcome::StagingFails { .. } => (json!({ "waiting": { "reason": "PodInitializing" } }), false),
            Outcome::UploadFails { log } if upload => {
                fake.set_log(namespace, pod_name, name, log);
                (terminated(1, None), true)
            }
            Outcome::Fail { exit_code, log } if name == training => {
                fake.set_log(namespace, pod_name, name, log);
                (terminated(*exit_code, None), false)
            }
            Outcome::Succeed { metrics } if name == training => (terminated(0, Some(metrics)), true),
            Outcome::UploadFails { .. } if name == training => (terminated(0, Some(&json!({ "auc": 0.93 }))), true),
            _ => (terminated(0, None), true),
        }
    };
    let image_id = json!("ghcr.io/acme/fraud-train@sha256:0123abcd");
    // An upload that reports what it uploaded (a batch prediction's) ends
    // with the report its script writes: the fake kubelet runs no script, so
    // the report names the pod.
    let reports = |name: &str| {
        spec["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|container| container["name"] == name && container["command"].to_string().contains("termination-log"))
    };
    let init_statuses: Vec<Json> = init_names
        .iter()
        .map(|name| {
            let mut state = state_of(name).0;
            if reports(name) && state["terminated"]["exitCode"] == 0 {
                let named: String = pod_name.bytes().map(|byte| format!("{byte:02x}")).collect();
                let digest = format!("{:0>64}", &named[..named.len().min(64)]);
                state["terminated"]["message"] =
                    json!(json!({ "version": format!("sha256:{digest}"), "files": 2, "size_bytes": 1234 }).to_string());
            }
            json!({ "name": name, "imageID": image_id, "state": state })
        })
        .collect();
    let (training_state, succeeded) = state_of(training);
    let phase = if succeeded { "Succeeded" } else { "Failed" };
    if fake.object("pods", namespace, pod_name).is_none() {
        fake.create_pod(
            namespace,
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": pod_name, "labels": labels }, "spec": spec }),
            json!({ "phase": phase, "initContainerStatuses": init_statuses,
                    "containerStatuses": [{ "name": training, "imageID": image_id, "state": training_state }] }),
        );
    }
    succeeded
}

/// An Indexed Job of the mlops image (a feature set computed in the
/// cluster), played as the kubelet would run it: each index's container
/// command is the real `mlops` binary run here with the pod's arguments and
/// environment, JOB_COMPLETION_INDEX set and the storage Secret's
/// credentials given; its report becomes the termination message, its
/// stderr the log. A failed shard fails the Job.
fn play_shards(fake: &FakeKube, namespace: &str, job: &Json) {
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    let completions = job["spec"]["completions"].as_u64().unwrap_or(1);
    let container = job["spec"]["template"]["spec"]["containers"][0].clone();
    let container_name = container["name"].as_str().unwrap_or_default().to_owned();
    let mut all_succeeded = true;
    for index in 0..completions {
        let report = std::env::temp_dir().join(format!("mlops-shard-report-{}-{name}-{index}", std::process::id()));
        let mut arguments: Vec<String> =
            container["args"].as_array().unwrap().iter().map(|argument| argument.as_str().unwrap().to_owned()).collect();
        if let Some(position) = arguments.iter().position(|argument| argument == "/dev/termination-log") {
            arguments[position] = report.display().to_string();
        }
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"));
        command.args(&arguments).env("JOB_COMPLETION_INDEX", index.to_string());
        command.env("AWS_ACCESS_KEY_ID", "testing").env("AWS_SECRET_ACCESS_KEY", "testing");
        for entry in container["env"].as_array().into_iter().flatten() {
            if let (Some(key), Some(value)) = (entry["name"].as_str(), entry["value"].as_str()) {
                command.env(key, value);
            }
        }
        let run = command.output().unwrap();
        let succeeded = run.status.success();
        all_succeeded &= succeeded;
        let pod_name = format!("{name}-{index}-x7k2p");
        fake.set_log(namespace, &pod_name, &container_name, &String::from_utf8_lossy(&run.stderr));
        let message = std::fs::read_to_string(&report).ok().and_then(|text| serde_json::from_str::<Json>(&text).ok());
        let _ = std::fs::remove_file(&report);
        let labels = json!({ "batch.kubernetes.io/job-name": name, "job-name": name, "batch.kubernetes.io/job-completion-index": index.to_string() });
        fake.create_pod(
            namespace,
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": pod_name, "labels": labels }, "spec": job["spec"]["template"]["spec"] }),
            json!({ "phase": if succeeded { "Succeeded" } else { "Failed" },
                    "containerStatuses": [{ "name": container_name, "state": terminated(run.status.code().unwrap_or(1).into(), message.as_ref()) }] }),
        );
    }
    fake.write_status(
        &format!("/apis/batch/v1/namespaces/{namespace}/jobs/{name}"),
        json!({ "conditions": [job_condition(all_succeeded)] }),
    );
}

fn job_condition(succeeded: bool) -> Json {
    if succeeded {
        json!({ "type": "Complete", "status": "True", "reason": "Completed", "message": "" })
    } else {
        json!({ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" })
    }
}

fn reconcile_namespace(fake: &FakeKube, outcome: &Outcome, settings: &ClusterSettings, serving_paused: bool, namespace: &str) {
    if !matches!(outcome, Outcome::Hold) {
        for job in fake.objects("jobs", namespace) {
            if finished(&job) {
                continue;
            }
            if job["spec"]["completionMode"] == "Indexed" {
                let container = &job["spec"]["template"]["spec"]["containers"][0];
                if container["args"][0] == "features-shard" {
                    play_shards(fake, namespace, &job);
                    continue;
                }
                // The user's image, once per index, as for a plain Job.
                let name = job["metadata"]["name"].as_str().unwrap().to_owned();
                let main = container["name"].as_str().unwrap_or("train").to_owned();
                let mut all_succeeded = true;
                for index in 0..job["spec"]["completions"].as_u64().unwrap_or(1) {
                    let mut labels = job["spec"]["template"]["metadata"]["labels"].clone();
                    labels["batch.kubernetes.io/job-name"] = json!(name);
                    labels["batch.kubernetes.io/job-completion-index"] = json!(index.to_string());
                    let spec = job["spec"]["template"]["spec"].clone();
                    all_succeeded &= run_pod(fake, namespace, &format!("{name}-{index}-x7k2p"), labels, spec, &main, outcome);
                }
                fake.write_status(
                    &format!("/apis/batch/v1/namespaces/{namespace}/jobs/{name}"),
                    json!({ "conditions": [job_condition(all_succeeded)] }),
                );
                continue;
            }
            let name = job["metadata"]["name"].as_str().unwrap().to_owned();
            let mut labels = job["spec"]["template"]["metadata"]["labels"].clone();
            labels["batch.kubernetes.io/job-name"] = json!(name);
            labels["job-name"] = json!(name);
            let spec = job["spec"]["template"]["spec"].clone();
            let main = spec["containers"][0]["name"].as_str().unwrap_or("train").to_owned();
            let succeeded = run_pod(fake, namespace, &format!("{name}-x7k2p"), labels, spec, &main, outcome);
            fake.write_status(
                &format!("/apis/batch/v1/namespaces/{namespace}/jobs/{name}"),
                json!({ "conditions": [job_condition(succeeded)] }),
            );
        }
        for trainjob in fake.objects("trainjobs", namespace) {
            let name = trainjob["metadata"]["name"].as_str().unwrap().to_owned();
            // JobSet names pods after the run; a longer name never starts.
            if finished(&trainjob) || !admission::jobset_starts(&name) {
                continue;
            }
            let runtime_name = trainjob["spec"]["runtimeRef"]["name"].as_str().unwrap();
            let runtime = fake
                .object("trainingruntimes", namespace, runtime_name)
                .or_else(|| fake.object("clustertrainingruntimes", "", runtime_name))
                .expect("Trainer's webhook lets no TrainJob in without its runtime");
            let jobs = runtime["spec"]["template"]["spec"]["replicatedJobs"].as_array().unwrap().clone();
            let step = jobs.iter().find(|job| job["name"] == "node").expect("a training step").clone();
            let mut spec = step["template"]["spec"]["template"]["spec"].clone();
            // Trainer puts the TrainJob's trainer settings on the node container.
            let trainer = &trainjob["spec"]["trainer"];
            for container in spec["containers"].as_array_mut().unwrap() {
                if container["name"] == "node" {
                    container["image"] = trainer["image"].clone();
                    container["command"] = trainer["command"].clone();
                    container["env"] = trainer["env"].clone();
                    container["resources"] = trainer["resourcesPerNode"].clone();
                }
            }
            let nodes = trainer["numNodes"].as_i64().unwrap_or(1);
            let mut all = true;
            for index in 0..nodes {
                let labels = json!({ "jobset.sigs.k8s.io/jobset-name": name, "jobset.sigs.k8s.io/replicatedjob-name": "node",
                                     "batch.kubernetes.io/job-completion-index": index.to_string() });
                all &= run_pod(fake, namespace, &format!("{name}-node-0-{index}-x7k2p"), labels, spec.clone(), "node", outcome);
            }
            fake.write_status(
                &format!("/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}"),
                json!({ "conditions": [job_condition(all)] }),
            );
        }
    }
    if serving_paused {
        return;
    }
    for deployment in fake.objects("deployments", namespace) {
        let generation = deployment["metadata"]["generation"].as_i64().unwrap();
        if deployment.pointer("/status/observedGeneration").and_then(Json::as_i64) == Some(generation) {
            continue;
        }
        let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        let name = deployment["metadata"]["name"].as_str().unwrap();
        fake.write_status(
            &format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}"),
            json!({ "observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas }),
        );
    }
    for service in fake.objects("inferenceservices", namespace) {
        reconcile_inference_service(fake, settings, namespace, &service);
    }
    for knative in fake.objects("services.serving.knative.dev", namespace) {
        let generation = knative["metadata"]["generation"].as_i64().unwrap();
        if knative.pointer("/status/observedGeneration").and_then(Json::as_i64) == Some(generation) {
            continue;
        }
        let name = knative["metadata"]["name"].as_str().unwrap();
        fake.write_status(
            &format!("/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"),
            json!({ "observedGeneration": generation, "latestReadyRevisionName": format!("{name}-{generation:05}"),
                    "conditions": [{ "type": "Ready", "status": "True" }] }),
        );
    }
}

/// KServe's controller: the predictor becomes a Knative Service
/// (Serverless), which Knative validates, or a Deployment (raw). The
/// InferenceService's status copies the child's `observedGeneration`.
fn reconcile_inference_service(fake: &FakeKube, settings: &ClusterSettings, namespace: &str, service: &Json) {
    let name = service["metadata"]["name"].as_str().unwrap();
    let uid = service["metadata"]["uid"].clone();
    let predictor = &service["spec"]["predictor"];
    let mut pod_spec = predictor.clone();
    for field in ["minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent"] {
        pod_spec.as_object_mut().unwrap().remove(field);
    }
    let child_name = format!("{name}-predictor");
    let owner = json!([{ "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": name, "uid": uid }]);
    let path = format!("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}");
    let (child, child_path) = if admission::kserve_is_raw(service) {
        let labels = json!({ "serving.kserve.io/inferenceservice": name });
        let child = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": child_name, "namespace": namespace, "ownerReferences": owner },
            "spec": { "replicas": predictor["minReplicas"].as_i64().unwrap_or(1), "selector": { "matchLabels": labels },
                      "template": { "metadata": { "labels": labels }, "spec": pod_spec } } });
        (child, format!("/apis/apps/v1/namespaces/{namespace}/deployments/{child_name}"))
    } else {
        if let Err(refused) = admission::knative_pod_spec(&pod_spec, settings) {
            let message = format!("admission webhook \"validation.webhook.serving.knative.dev\" denied the request: {refused}");
            fake.write_status(
                &path,
                json!({ "conditions": [{ "type": "Ready", "status": "False", "reason": "RevisionFailed", "message": message }] }),
            );
            return;
        }
        let child = json!({ "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": { "name": child_name, "namespace": namespace, "ownerReferences": owner },
            "spec": { "template": { "spec": pod_spec } } });
        (child, format!("/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{child_name}"))
    };
    // KServe settles a new child in two writes (its defaults come second),
    // so the child's generation runs ahead of the InferenceService's: a
    // status that copies it cannot tell whether it reflects the latest spec.
    let mut child = child;
    if fake.send("GET", &child_path, "application/json", &json!({})).0 == 404 {
        let (code, body) =
            fake.send("PATCH", &format!("{child_path}?fieldManager=kserve-controller&force=true"), "application/apply-patch+yaml", &child);
        assert_eq!(code, 201, "KServe's child {child_path}: {body}");
    }
    if admission::kserve_is_raw(service) {
        child["spec"]["minReadySeconds"] = json!(1);
    } else {
        child["spec"]["template"]["spec"]["timeoutSeconds"] = json!(300);
    }
    let (code, body) =
        fake.send("PATCH", &format!("{child_path}?fieldManager=kserve-controller&force=true"), "application/apply-patch+yaml", &child);
    assert!(code == 200 || code == 201, "KServe's child {child_path}: {body}");
    let live = fake.send("GET", &child_path, "application/json", &json!({})).1;
    let child_generation = live["metadata"]["generation"].clone();
    let child_ready = live.pointer("/status/observedGeneration") == Some(&child_generation);
    let status = json!({ "observedGeneration": child_generation, "url": format!("http://{name}.{namespace}.example.com"),
        "conditions": [{ "type": "Ready", "status": if child_ready { "True" } else { "Unknown" } }] });
    if service.get("status") != Some(&status) {
        fake.write_status(&path, status);
    }
}

/// A configuration on the fake cluster: a GPU training, a model gated on
/// its AUC, and the serving block given.
fn configuration(serving: &str, training_extra: &str) -> String {
    format!(
        r#"
variable "kubeconfig" {{
  type = string
}}
variable "learning_rate" {{
  type    = number
  default = 0.01
}}

provider "kubernetes" {{
  kubeconfig    = var.kubeconfig
  context       = "fake"
  namespace     = "{NAMESPACE}"
  artifact_root = "s3://acme-ml/runs"
}}

training "fraud" {{
  provider = kubernetes
  image    = "ghcr.io/acme/fraud-train:1.4"
  command  = ["python", "train.py"]
  hyperparameters = {{
    learning_rate = var.learning_rate
  }}
  resources {{
    cpu      = 2
    memory   = "8Gi"
    gpus     = 1
    gpu_type = "nvidia-h100"
  }}
  {training_extra}
  timeout = "1h"
  metrics = ["auc"]
}}

model "fraud" {{
  source = training.fraud
  gate "auc" {{
    condition     = training.fraud.metrics.auc >= 0.9
    error_message = "candidate AUC below 0.90"
  }}
}}

{serving}

output "url" {{
  value = serving.api.url
}}
"#
    )
}

const DEPLOYMENT: &str = r#"
serving "api" {
  provider = kubernetes
  model    = model.fraud
  runtime  = "deployment"
  image    = "ghcr.io/acme/fraud-serve:2.0"
  replicas {
    min = 2
    max = 2
  }
  resources {
    cpu    = "500m"
    memory = "1024Mi"
  }
}
"#;

struct Cluster {
    fake: Arc<FakeKube>,
    controllers: Controllers,
    // Dropped first: its destroy runs while the fake still answers.
    workspace: Workspace,
}

fn cluster_with(addons: &[Addon], serving: &str, training_extra: &str, outcome: Outcome) -> Cluster {
    cluster_set_up(Setup { addons: addons.to_vec(), ..Setup::default() }, serving, training_extra, outcome)
}

fn cluster_set_up(setup: Setup, serving: &str, training_extra: &str, outcome: Outcome) -> Cluster {
    let settings = setup.settings.clone();
    let trainer = setup.addons.contains(&Addon::Trainer);
    let fake = Arc::new(FakeKube::start_with(setup));
    if trainer {
        install_trainer_runtime(&fake);
    }
    let controllers = Controllers::start(&fake, outcome, settings);
    let mut workspace = Workspace::copy_of("tests/cases/kubernetes");
    let kubeconfig = fake.write_kubeconfig(workspace.path());
    workspace.write("main.mlops.hcl", &configuration(serving, training_extra));
    workspace.variables = vec![format!("kubeconfig={}", kubeconfig.display())];
    Cluster { workspace, fake, controllers }
}

/// Trainer's own torch-distributed ClusterTrainingRuntime, as installing
/// Trainer's runtimes puts it on a cluster.
fn install_trainer_runtime(fake: &FakeKube) {
    let path = support::repository().join("providers/kubernetes/tests/manifests/runtimes/torch-distributed-v2.3.0.json");
    let runtime: Json = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (code, body) = fake.send(
        "PATCH",
        "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes/torch-distributed?fieldManager=kubectl",
        "application/apply-patch+yaml",
        &runtime,
    );
    assert_eq!(code, 201, "{body}");
}

fn auc(value: f64) -> Outcome {
    Outcome::Succeed { metrics: json!({ "auc": value, "loss": 0.12 }) }
}

#[test]
fn training_and_serving_apply_through_the_api_and_replan_empty() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stdout.contains("Apply complete: 3 added"), "{}", apply.all());

    // The Job: GPUs as limits, the GPU model as a node selector, the
    // toleration, the deadline and the run contract.
    let jobs = cluster.fake.objects("jobs", NAMESPACE);
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(job["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"], "nvidia-h100");
    assert_eq!(job["spec"]["template"]["spec"]["tolerations"][0]["key"], "nvidia.com/gpu");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    let environment: Vec<&str> = container["env"].as_array().unwrap().iter().map(|entry| entry["name"].as_str().unwrap()).collect();
    for name in
        ["MLOPS_RUN_ID", "MLOPS_HYPERPARAMETERS", "MLOPS_HP_LEARNING_RATE", "MLOPS_METRICS_FILE", "MLOPS_OUTPUT_DIR", "MLOPS_ARTIFACT_URI"]
    {
        assert!(environment.contains(&name), "{name} missing from {environment:?}");
    }
    // Server-side apply by the field manager `mlops`.
    let managers: Vec<&str> =
        job["metadata"]["managedFields"].as_array().unwrap().iter().map(|entry| entry["manager"].as_str().unwrap()).collect();
    assert!(managers.contains(&"mlops"), "{managers:?}");

    // Metrics came back through the termination message; the gate held.
    let training = cluster.workspace.run(&["state", "show", "training.fraud"]).stdout;
    assert!(training.contains(r#""auc":0.93"#), "{training}");
    let run_id = job["metadata"]["name"].as_str().unwrap();
    assert!(training.contains(&format!("s3://acme-ml/runs/{run_id}/")), "{training}");

    // Serving: Deployment + Service, the model fetched from the run's artifacts.
    let deployment = cluster.fake.object("deployments", NAMESPACE, "api").expect("the Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"][2].as_str().unwrap();
    assert!(fetch.contains(&format!("s3://acme-ml/runs/{run_id}/")), "{fetch}");
    // The server stored 1024Mi as 1Gi and added defaults; neither is drift (the re-plan above was empty).
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"], "1Gi");
    assert!(cluster.fake.object("services", NAMESPACE, "api").is_some());
    assert_eq!(cluster.workspace.output("url"), format!("http://api.{NAMESPACE}.svc.cluster.local"));

    // Destroy removes what was created.
    let destroy = cluster.workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.all());
    assert!(cluster.fake.object("deployments", NAMESPACE, "api").is_none());
    assert!(cluster.fake.objects("jobs", NAMESPACE).is_empty());
}

/// A sensitive variable in a training's and a serving's `env` reaches the
/// pods through Secrets: it is in no Job or Deployment, in no state file
/// and in nothing printed; the run's Secret goes when the run ends, and a
/// new value rolls the serving to a new Secret.
#[test]
fn a_secret_in_env_reaches_pods_through_a_secret_and_nowhere_else() {
    const TOKEN: &str = "tok-do-not-leak-4242";
    let serving = DEPLOYMENT.replace(
        "  runtime  = \"deployment\"\n",
        "  runtime  = \"deployment\"\n  env = {\n    FEATURE_STORE_TOKEN = var.token\n    LOG_LEVEL           = \"info\"\n  }\n",
    );
    let mut cluster = cluster_with(&[], &serving, "env = { WANDB_API_KEY = var.token }", auc(0.93));
    cluster.workspace.write("secrets.mlops.hcl", "variable \"token\" {\n  type      = string\n  sensitive = true\n}\n");
    cluster.workspace.variables.push(format!("token={TOKEN}"));
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stdout.contains("Apply complete: 3 added"), "{}", apply.all());
    assert!(!apply.all().contains(TOKEN), "the token was printed");

    // The Job refers to the run's Secret, which is gone once the run ended.
    let job = &cluster.fake.objects("jobs", NAMESPACE)[0];
    assert!(!job.to_string().contains(TOKEN), "the Job holds the token: {job}");
    let run_id = job["metadata"]["name"].as_str().unwrap();
    let entry = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "WANDB_API_KEY")
        .cloned()
        .expect("WANDB_API_KEY in the Job");
    assert_eq!(entry["valueFrom"]["secretKeyRef"]["name"], format!("{run_id}-env"), "{entry}");
    assert!(cluster.fake.object("secrets", NAMESPACE, &format!("{run_id}-env")).is_none(), "the run's Secret outlived the run");

    // The Deployment reads the token from a Secret named by its content.
    let secret_name = |cluster: &Cluster| {
        let deployment = cluster.fake.object("deployments", NAMESPACE, "api").expect("the Deployment");
        assert!(!deployment.to_string().contains(TOKEN), "the Deployment holds the token: {deployment}");
        let environment = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
        let entry = environment.iter().find(|entry| entry["name"] == "FEATURE_STORE_TOKEN").expect("FEATURE_STORE_TOKEN").clone();
        assert!(environment.iter().any(|entry| entry["name"] == "LOG_LEVEL" && entry["value"] == "info"), "{environment:?}");
        entry["valueFrom"]["secretKeyRef"]["name"].as_str().unwrap().to_owned()
    };
    let first = secret_name(&cluster);
    assert!(first.starts_with("api-env-"), "{first}");
    let secret = cluster.fake.object("secrets", NAMESPACE, &first).expect("the serving's Secret");
    assert_eq!(secret["data"]["FEATURE_STORE_TOKEN"], support::base64(TOKEN.as_bytes()));

    // Nothing mlops wrote down holds the token.
    for (path, bytes) in cluster.workspace.files_under(".mlops") {
        assert!(!String::from_utf8_lossy(&bytes).contains(TOKEN), "{} holds the token", path.display());
    }
    let plan = cluster.workspace.run(&["plan"]);
    assert!(plan.stdout.contains("No changes"), "{}", plan.all());

    // A new token: a new Secret, the Deployment rolls to it, the old one goes.
    cluster.workspace.variables.retain(|variable| !variable.starts_with("token="));
    cluster.workspace.variables.push("token=tok-rotated-7777".to_owned());
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let second = secret_name(&cluster);
    assert_ne!(first, second, "the Secret's name follows its content");
    assert!(cluster.fake.object("secrets", NAMESPACE, &first).is_none(), "the old Secret was left behind");
    assert!(cluster.fake.object("secrets", NAMESPACE, &second).is_some());
}

#[test]
fn a_change_outside_mlops_is_drift_and_apply_takes_it_back() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.95));
    cluster.workspace.apply(&[]);
    let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api");

    // Another controller annotates the Deployment: its field, not drift.
    let (code, _) = cluster.fake.send(
        "PATCH",
        &format!("{path}?fieldManager=linkerd"),
        "application/merge-patch+json",
        &json!({ "metadata": { "annotations": { "linkerd.io/inject": "enabled" } } }),
    );
    assert_eq!(code, 200);
    cluster.workspace.assert_no_changes(&[]);

    // Someone scales it by hand and swaps the image.
    let scaled = json!({ "spec": { "replicas": 5, "template": { "spec": { "containers": [{ "name": "server", "image": "ghcr.io/acme/fraud-serve:hotfix" }] } } } });
    let (code, _) =
        cluster.fake.send("PATCH", &format!("{path}?fieldManager=kubectl-edit"), "application/strategic-merge-patch+json", &scaled);
    assert_eq!(code, 200);
    let plan = cluster.workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("serving.api: changed outside mlops: manifests"), "{}", plan.all());
    assert!(
        plan.stdout.contains("Deployment/api spec.replicas was 2 and is 5 now (changed outside mlops): apply sets it back"),
        "{}",
        plan.all()
    );

    // kubectl-edit now owns those fields; the apply the user approved takes them back.
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stderr.contains("taking back"), "{}", apply.all());
    let deployment = cluster.fake.object("deployments", NAMESPACE, "api").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["metadata"]["annotations"]["linkerd.io/inject"], "enabled", "another manager's field was lost");
    cluster.workspace.assert_no_changes(&[]);

    // Fields inside keyed list items (a port by containerPort and protocol, a
    // mount by its path) are taken back item by item, and an item another
    // manager added to the same list stays.
    let container = |deployment: &Json| deployment["spec"]["template"]["spec"]["containers"][0].clone();
    let mount_path = container(&deployment)["volumeMounts"][0]["mountPath"].clone();
    let edited = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "api", "namespace": NAMESPACE },
        "spec": { "template": { "spec": { "containers": [{
            "name": "server",
            "ports": [{ "containerPort": 8080, "protocol": "TCP", "name": "web" }, { "containerPort": 9090, "protocol": "TCP", "name": "metrics" }],
            "volumeMounts": [{ "mountPath": mount_path, "name": "model", "readOnly": false }]
        }] } } }
    });
    let (code, body) =
        cluster.fake.send("PATCH", &format!("{path}?fieldManager=kubectl-edit&force=true"), "application/apply-patch+yaml", &edited);
    assert_eq!(code, 200, "{body}");
    let plan = cluster.workspace.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("ports[8080,TCP]"), "{}", plan.all());
    cluster.workspace.apply(&[]);
    let deployment = cluster.fake.object("deployments", NAMESPACE, "api").unwrap();
    let ports = container(&deployment)["ports"].clone();
    assert_eq!(ports[0], json!({ "containerPort": 8080, "protocol": "TCP", "name": "http" }), "{ports:#}");
    assert_eq!(ports[1]["containerPort"], 9090, "another manager's port was lost: {ports:#}");
    assert_eq!(container(&deployment)["volumeMounts"][0]["readOnly"], true);
    cluster.workspace.assert_no_changes(&[]);

    // Deleted outside mlops: planned again.
    let (code, _) = cluster.fake.send("DELETE", &path, "application/json", &json!({}));
    assert_eq!(code, 200);
    let plan = cluster.workspace.run(&["plan"]);
    assert!(plan.stdout.contains("serving.api: deleted outside mlops"), "{}", plan.all());
    cluster.workspace.apply(&[]);
}

#[test]
fn replicas_an_autoscaler_moves_are_not_drift_and_switching_to_and_from_fixed_replicas_keeps_the_pods() {
    let autoscaled = r#"
serving "api" {
  provider = kubernetes
  model    = model.fraud
  runtime  = "deployment"
  image    = "ghcr.io/acme/fraud-serve:2.0"
  replicas {
    min = 1
    max = 6
  }
  autoscale {
    metric = "cpu"
    target = 70
  }
}
"#;
    let fixed = autoscaled
        .replace("min = 1\n    max = 6", "min = 3\n    max = 3")
        .replace("autoscale {\n    metric = \"cpu\"\n    target = 70\n  }", "");
    assert!(!fixed.contains("autoscale"));
    let cluster = cluster_with(&[], autoscaled, "", auc(0.91));
    cluster.workspace.apply(&[]);
    let autoscaler = cluster.fake.object("horizontalpodautoscalers", NAMESPACE, "api").expect("an autoscaler");
    assert_eq!(autoscaler["spec"]["maxReplicas"], 6);
    assert_eq!(autoscaler["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
    // The autoscaler scales up through the scale subresource, as a real one
    // does: expected, not drift.
    let scale = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api/scale?fieldManager=horizontal-pod-autoscaler");
    let (code, body) = cluster.fake.send("PATCH", &scale, "application/merge-patch+json", &json!({ "spec": { "replicas": 4 } }));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["spec"]["replicas"], 4);
    cluster.workspace.assert_no_changes(&[]);

    // To fixed replicas: spec.replicas belongs to the autoscaler, and apply
    // takes it back and removes the autoscaler instead of failing on a conflict.
    cluster.workspace.write("main.mlops.hcl", &configuration(&fixed, ""));
    let apply = cluster.workspace.apply(&[]);
    assert!(!apply.all().contains("conflict"), "{}", apply.all());
    let deployment = cluster.fake.object("deployments", NAMESPACE, "api").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert!(cluster.fake.object("horizontalpodautoscalers", NAMESPACE, "api").is_none(), "the autoscaler is left behind");
    cluster.workspace.assert_no_changes(&[]);

    // Back to autoscaled: the Deployment keeps its three pods until the
    // autoscaler decides, instead of falling to the default of one.
    cluster.workspace.write("main.mlops.hcl", &configuration(autoscaled, ""));
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stderr.contains("handing spec.replicas (3) over to the autoscaler"), "{}", apply.all());
    let deployment = cluster.fake.object("deployments", NAMESPACE, "api").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3, "{deployment:#}");
    assert!(cluster.fake.object("horizontalpodautoscalers", NAMESPACE, "api").is_some());
    let (code, body) = cluster.fake.send("PATCH", &scale, "application/merge-patch+json", &json!({ "spec": { "replicas": 2 } }));
    assert_eq!(code, 200, "{body}");
    cluster.workspace.assert_no_changes(&[]);
}

#[test]
fn a_failed_job_reports_its_reason_and_the_end_of_its_log() {
    let log =
        "loading data\nepoch 1/10\nTraceback (most recent call last):\n  File \"train.py\", line 12\nValueError: column amount has NaN";
    let cluster = cluster_with(&[], DEPLOYMENT, "", Outcome::Fail { exit_code: 1, log: log.into() });
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    apply.assert_stderr_mentions(&[
        "failed (BackoffLimitExceeded, exit code 1): Job has reached the specified backoff limit",
        "ValueError: column amount has NaN",
        "kubectl -n ml-test logs",
    ]);
    // Nothing downstream ran, and the next apply starts a new run.
    assert!(cluster.fake.object("deployments", NAMESPACE, "api").is_none());
    cluster.controllers.set(auc(0.92));
    cluster.workspace.apply(&[]);
    assert_eq!(cluster.fake.objects("jobs", NAMESPACE).len(), 2, "the failed Job is kept for its logs, and one new run was made");
}

#[test]
fn a_spot_training_goes_to_spot_nodes_and_survives_their_preemption() {
    let cluster = cluster_with(&[], DEPLOYMENT, "spot = true", auc(0.95));
    cluster.workspace.apply(&[]);
    let job = &cluster.fake.objects("jobs", NAMESPACE)[0];
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["karpenter.sh/capacity-type"], "spot", "{pod:#}");
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.product"], "nvidia-h100", "the GPU model still chooses the node");
    let rules = &job["spec"]["podFailurePolicy"]["rules"];
    assert_eq!(rules[0]["action"], "Ignore", "{job:#}");
    assert_eq!(rules[0]["onPodConditions"][0]["type"], "DisruptionTarget");
    // The serving is not on spot capacity: a preempted predictor is an outage.
    let deployment = cluster.fake.object("deployments", NAMESPACE, "api").unwrap();
    assert!(deployment["spec"]["template"]["spec"]["nodeSelector"].get("karpenter.sh/capacity-type").is_none());
}

#[test]
fn a_failed_upload_of_the_outputs_fails_the_run_with_its_log() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", Outcome::UploadFails { log: "upload failed: AccessDenied".into() });
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    apply.assert_stderr_mentions(&[
        "finished, but uploading its outputs to s3://acme-ml/runs/",
        "failed (exit code 1)",
        "upload failed: AccessDenied",
        "-c upload-outputs",
    ]);
    // The upload has the pod's grace period (upload_timeout) to run in.
    let job = &cluster.fake.objects("jobs", NAMESPACE)[0];
    assert_eq!(job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 600);
    assert!(cluster.fake.object("deployments", NAMESPACE, "api").is_none(), "a model was served from outputs that never arrived");
}

/// A batch prediction on Kubernetes: a Job that fetches the model the
/// cluster trained, stages the input from S3, runs the image, and records
/// the content version the upload reported; it runs again when the input
/// changes, and not otherwise. With `schedule` it becomes a CronJob, and
/// refresh takes the newest scheduled run's predictions.
#[test]
fn a_batch_prediction_runs_as_a_job_again_when_its_input_changes_and_then_on_a_schedule() {
    let Some(endpoint) = support::s3_endpoint() else { return };
    let mut cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    let bucket = format!("scoring-lake-{}", std::process::id());
    std::fs::create_dir_all(cluster.workspace.path().join("data")).unwrap();
    cluster.workspace.write("data/customers.csv", "id,amount\n1,10\n2,20\n");
    cluster.workspace.write(
        "scoring.mlops.hcl",
        &format!(
            r#"variable "s3_endpoint" {{
  type = string
}}
provider "s3" {{
  endpoint = var.s3_endpoint
}}
bucket "lake" {{
  provider      = s3
  name          = "{bucket}"
  force_destroy = true
}}
dataset "customers" {{
  provider = s3
  bucket   = bucket.lake
  source   = "./data/customers.csv"
  schema {{
    column "id" {{ type = int }}
    column "amount" {{ type = int }}
  }}
}}
batch_prediction "scores" {{
  provider = kubernetes
  model    = model.fraud
  input    = dataset.customers
  image    = "ghcr.io/acme/fraud-score:1.0"
  command  = ["python", "score.py"]
  timeout  = "30m"
}}
"#
        ),
    );
    cluster.workspace.variables.push(format!("s3_endpoint={endpoint}"));
    cluster.workspace.environment =
        vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());

    let jobs = cluster.fake.objects("jobs", NAMESPACE);
    let job = jobs
        .iter()
        .find(|job| job["metadata"]["name"].as_str().unwrap().starts_with("batch-prediction-scores-"))
        .expect("the prediction Job");
    let spec = &job["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(container["name"], "predict");
    let environment: Vec<&str> = container["env"].as_array().unwrap().iter().filter_map(|entry| entry["name"].as_str()).collect();
    for name in ["MLOPS_MODEL_DIR", "MLOPS_MODEL_VERSION", "MLOPS_INPUT_DIR", "MLOPS_INPUT_FORMAT", "MLOPS_OUTPUT_DIR"] {
        assert!(environment.contains(&name), "{name} missing from {environment:?}");
    }
    let init: Vec<&str> = spec["initContainers"].as_array().unwrap().iter().filter_map(|container| container["name"].as_str()).collect();
    assert_eq!(init, ["fetch-model", "stage-inputs", "upload-outputs"]);
    let fetch = spec["initContainers"][0]["command"][2].as_str().unwrap();
    assert!(fetch.contains("s3://acme-ml/runs/"), "the model the cluster trained: {fetch}");
    let staging = spec["initContainers"][1]["command"][2].as_str().unwrap();
    assert!(staging.contains(&format!("s3://{bucket}/datasets/dataset.customers/")), "{staging}");

    let run_id = job["metadata"]["name"].as_str().unwrap().to_owned();
    let shown = cluster.workspace.run(&["state", "show", "batch_prediction.scores"]).stdout;
    assert!(shown.contains(&format!("s3://acme-ml/runs/predictions/batch-prediction-scores/{run_id}/")), "{shown}");
    assert!(shown.contains("\"version\":\"sha256:") || shown.contains("version = \"sha256:"), "{shown}");
    cluster.workspace.assert_no_changes(&[]);

    // New input rows: the predictions are made again, by a new Job.
    cluster.workspace.write("data/customers.csv", "id,amount\n1,10\n2,20\n3,30\n");
    let plan = cluster.workspace.run(&["plan"]);
    assert!(plan.stdout.contains("a new input (b3:"), "{}", plan.all());
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let jobs = cluster.fake.objects("jobs", NAMESPACE);
    let runs: Vec<&str> = jobs
        .iter()
        .filter_map(|job| job["metadata"]["name"].as_str())
        .filter(|name| name.starts_with("batch-prediction-scores-"))
        .collect();
    assert_eq!(runs.len(), 1, "the previous run's Job goes: {runs:?}");
    assert_ne!(runs[0], run_id);

    // Sharded: an Indexed Job, each pod staging its share of the files and
    // uploading under its own folder; the version is the shards'.
    let text = cluster.workspace.read("scoring.mlops.hcl").replace("  timeout  = \"30m\"\n", "  timeout  = \"30m\"\n  shards   = 3\n");
    cluster.workspace.write("scoring.mlops.hcl", &text);
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let jobs = cluster.fake.objects("jobs", NAMESPACE);
    let job = jobs.iter().find(|job| job["metadata"]["name"].as_str().unwrap().starts_with("batch-prediction-scores-")).unwrap();
    assert_eq!((job["spec"]["completionMode"].as_str(), job["spec"]["completions"].as_u64()), (Some("Indexed"), Some(3)));
    let init = job["spec"]["template"]["spec"]["initContainers"].as_array().unwrap();
    assert!(init[1]["command"][2].as_str().unwrap().contains("(NR - 1) % count == shard"), "{}", init[1]["command"][2]);
    assert!(init[2]["command"][2].as_str().unwrap().contains("/shard-'\"$MLOPS_SHARD\"/"), "{}", init[2]["command"][2]);
    let shown = cluster.workspace.run(&["state", "show", "batch_prediction.scores"]).stdout;
    assert!(shown.contains("\"files\":6") || shown.contains("files = 6"), "three shards' files: {shown}");
    assert!(shown.contains("\"version\":\"b3:") || shown.contains("version = \"b3:"), "the shards' version: {shown}");
    cluster.workspace.assert_no_changes(&[]);
    let text = cluster.workspace.read("scoring.mlops.hcl").replace("  shards   = 3\n", "");
    cluster.workspace.write("scoring.mlops.hcl", &text);

    // Scheduled: a CronJob replaces the single run; each run uploads under
    // its Job's name, and refresh takes the newest run's report.
    let text =
        cluster.workspace.read("scoring.mlops.hcl").replace("  timeout  = \"30m\"\n", "  timeout  = \"30m\"\n  schedule = \"0 6 * * *\"\n");
    cluster.workspace.write("scoring.mlops.hcl", &text);
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let cronjob = cluster.fake.object("cronjobs", NAMESPACE, "batch-prediction-scores").expect("the CronJob");
    assert_eq!(cronjob["spec"]["schedule"], "0 6 * * *");
    let template = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let upload = template["initContainers"].as_array().unwrap().iter().find(|container| container["name"] == "upload-outputs").unwrap();
    let script = upload["command"][2].as_str().unwrap();
    assert!(script.contains("s3://acme-ml/runs/predictions/batch-prediction-scores/'\"$MLOPS_RUN_ID\"/"), "{script}");
    assert!(
        cluster
            .fake
            .objects("jobs", NAMESPACE)
            .iter()
            .all(|job| !job["metadata"]["name"].as_str().unwrap().starts_with("batch-prediction-scores-")),
        "the single run's Job goes"
    );
    cluster.workspace.assert_no_changes(&[]);

    // One scheduled run, played here: the report is what the pod's upload
    // script computes, run by this machine's sh over the predictions.
    let predictions = cluster.workspace.path().join("predictions");
    std::fs::create_dir_all(&predictions).unwrap();
    std::fs::write(predictions.join("part-0.csv"), "id,score\n1,0.91\n2,0.12\n").unwrap();
    let report_file = cluster.workspace.path().join("report.json");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(mlops_provider_kubernetes::render::UPLOAD_REPORT)
        .env("MLOPS_REPORT_DIR", &predictions)
        .env("MLOPS_REPORT", &report_file)
        .status()
        .unwrap();
    assert!(status.success());
    let report = std::fs::read_to_string(&report_file).unwrap();
    let job = "batch-prediction-scores-29012345";
    cluster.fake.create_pod(
        NAMESPACE,
        json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": format!("{job}-abcde"), "labels": { "mlops.dev/batch-prediction": "batch-prediction-scores", "batch.kubernetes.io/job-name": job } },
                "spec": { "containers": [{ "name": "predict", "image": "ghcr.io/acme/fraud-score:1.0" }] } }),
        json!({ "phase": "Succeeded",
                "initContainerStatuses": [{ "name": "upload-outputs", "state": { "terminated": { "exitCode": 0, "message": report } } }],
                "containerStatuses": [{ "name": "predict", "state": { "terminated": { "exitCode": 0 } } }] }),
    );
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let shown = cluster.workspace.run(&["state", "show", "batch_prediction.scores"]).stdout;
    let reported: Json = serde_json::from_str(&report).unwrap();
    assert!(shown.contains(reported["version"].as_str().unwrap()), "{shown}");
    assert!(shown.contains(&format!("s3://acme-ml/runs/predictions/batch-prediction-scores/{job}/")), "{shown}");

    // Destroy removes the CronJob.
    let destroy = cluster.workspace.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.all());
    assert!(cluster.fake.object("cronjobs", NAMESPACE, "batch-prediction-scores").is_none());
}

/// A cluster whose training reads a feature set computed in the cluster
/// by two shards over three files of a dataset in S3 (one customer's rows
/// in every file), with an aggregate; and the dataset's bucket.
fn sharded_features_cluster(endpoint: &str, name: &str, outcome: Outcome) -> (Cluster, String) {
    let mut cluster = cluster_with(&[], DEPLOYMENT, "inputs = { features = feature_set.txn }", outcome);
    let bucket = format!("{name}-{}", std::process::id());
    std::fs::create_dir_all(cluster.workspace.path().join("data/events")).unwrap();
    // Customer 1's rows are in all three files.
    for (part, rows) in [
        ("a", "1,10,2026-01-01T00:00:00Z\n2,20,2026-01-02T00:00:00Z\n"),
        ("b", "1,30,2026-01-03T00:00:00Z\n3,40,2026-01-03T00:00:00Z\n"),
        ("c", "1,50,2026-01-20T00:00:00Z\n2,60,2026-01-04T00:00:00Z\n"),
    ] {
        cluster.workspace.write(&format!("data/events/{part}.csv"), &format!("id,amount,time\n{rows}"));
    }
    cluster.workspace.write(
        "features.mlops.hcl",
        &format!(
            r#"variable "s3_endpoint" {{
  type = string
}}
provider "s3" {{
  endpoint = var.s3_endpoint
}}
bucket "lake" {{
  provider      = s3
  name          = "{bucket}"
  force_destroy = true
}}
dataset "events" {{
  provider = s3
  bucket   = bucket.lake
  source   = "./data/events"
  schema {{
    column "id" {{ type = int }}
    column "amount" {{ type = int }}
    column "time" {{ type = timestamp }}
  }}
}}
feature_set "txn" {{
  provider  = kubernetes
  dataset   = dataset.events
  entity    = "id"
  timestamp = "time"
  format    = "jsonl"
  shards    = 2
  feature "doubled" {{
    type = float
    expr = row.amount * 2
  }}
  aggregate "spend_7d" {{
    function = "sum"
    column   = "amount"
    window   = "7d"
  }}
}}
"#
        ),
    );
    let text = cluster.workspace.read("main.mlops.hcl").replace(
        "  artifact_root = \"s3://acme-ml/runs\"",
        &format!("  artifact_root    = \"s3://{bucket}/runs\"\n  storage_endpoint = var.s3_endpoint"),
    );
    cluster.workspace.write("main.mlops.hcl", &text);
    cluster.workspace.variables.push(format!("s3_endpoint={endpoint}"));
    cluster.workspace.environment =
        vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    (cluster, bucket)
}

/// A feature set computed in the cluster: an Indexed Job whose shards (the
/// real `mlops features-shard`, run by the simulated kubelet) each read
/// their share of the dataset from S3 and upload a part; the feature set's
/// version is the parts'. With an aggregate, shards split by entity, so an
/// entity whose rows are in several files still gets whole windows. A bad
/// row fails its shard, and the error quotes the shard's log.
#[test]
fn a_feature_set_is_computed_in_the_cluster_by_shards_over_the_files() {
    let Some(endpoint) = support::s3_endpoint() else { return };
    let (cluster, bucket) = sharded_features_cluster(&endpoint, "sharded-lake", auc(0.93));
    let apply = cluster.workspace.apply(&[]);
    assert_eq!(apply.code, 0, "{}", apply.all());

    let jobs = cluster.fake.objects("jobs", NAMESPACE);
    let job = jobs.iter().find(|job| job["spec"]["completionMode"] == "Indexed").expect("an Indexed Job");
    assert_eq!(job["spec"]["completions"], 2);
    let shown = cluster.workspace.run(&["state", "show", "feature_set.txn"]).stdout;
    assert!(shown.contains(&format!("s3://{bucket}/runs/features/feature-set-txn/")), "{shown}");
    assert!(shown.contains("\"row_count\":6") || shown.contains("row_count = 6"), "every row, once: {shown}");
    // Every row once, with its 7-day spend computed over all of its
    // customer's rows, whichever file they were in.
    let prefix = format!("s3://{bucket}/runs/features/feature-set-txn/");
    let start = shown.find(&prefix).unwrap() + prefix.len();
    let run = shown[start..].split('/').next().unwrap().to_owned();
    let mut computed = Vec::new();
    for index in 0..2 {
        let (code, body) =
            support::raw_exchange(&endpoint, "GET", &format!("/{bucket}/runs/features/feature-set-txn/{run}/part-0000{index}.jsonl"), "");
        assert_eq!(code, 200, "part {index}: {body}");
        for line in body.lines().filter(|line| !line.is_empty()) {
            let row: Json = serde_json::from_str(line).unwrap();
            computed.push((row["id"].as_i64().unwrap(), row["time"].as_str().unwrap()[..10].to_owned(), row["spend_7d"].as_f64().unwrap()));
        }
    }
    computed.sort_by(|left, right| left.partial_cmp(right).unwrap());
    let expected = [
        (1, "2026-01-01", 10.0),
        (1, "2026-01-03", 40.0),
        (1, "2026-01-20", 50.0),
        (2, "2026-01-02", 20.0),
        (2, "2026-01-04", 80.0),
        (3, "2026-01-03", 40.0),
    ];
    let expected: Vec<(i64, String, f64)> = expected.iter().map(|(id, day, spend)| (*id, (*day).to_owned(), *spend)).collect();
    assert_eq!(computed, expected);

    // The training reads the parts the shards wrote.
    let training_job = jobs.iter().find(|job| job["spec"]["completionMode"] != "Indexed").expect("the training's Job");
    let staging = training_job["spec"]["template"]["spec"]["initContainers"][0]["command"][2].as_str().unwrap();
    assert!(staging.contains(&format!("s3://{bucket}/runs/features/feature-set-txn/")), "{staging}");
    cluster.workspace.assert_no_changes(&[]);

    // A row the expression cannot compute: its shard fails, with its log.
    let features = cluster.workspace.read("features.mlops.hcl").replace("row.amount * 2", "1 / (row.amount - 40)");
    cluster.workspace.write("features.mlops.hcl", &features);
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("shard"), "{}", apply.all());
    assert!(apply.stderr.contains("division by zero") || apply.stderr.contains("divid"), "{}", apply.all());
}

/// With prices in the provider block, the plan estimates what each change
/// costs, in text, markdown and JSON: a training per run (its pods for at
/// most its timeout), a serving per month, and the monthly change.
#[test]
fn the_plan_estimates_the_cost_of_trainings_and_servings_from_the_provider_prices() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    let text = cluster.workspace.read("main.mlops.hcl").replace(
        "  artifact_root = \"s3://acme-ml/runs\"\n",
        "  artifact_root = \"s3://acme-ml/runs\"\n  prices {\n    gpu_hour        = { \"nvidia-h100\" = 4 }\n    cpu_hour        = 0.05\n    memory_gib_hour = 0.01\n  }\n",
    );
    cluster.workspace.write("main.mlops.hcl", &text);
    let plan = cluster.workspace.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    // 1 x nvidia-h100 at 4, 2 cores at 0.05 and 8 GiB at 0.01, for at most 1h.
    assert!(plan.stdout.contains("Estimated cost (USD, from the provider's prices):"), "{}", plan.all());
    assert!(plan.stdout.contains("training.fraud  up to 4.18 per run: 1 pod(s) x 1 nvidia-h100 for at most 1h"), "{}", plan.all());
    // 2 replicas of 0.5 cores and 1 GiB for 730 hours.
    assert!(plan.stdout.contains("serving.api  51.10 per month: 2 replica(s) for 730 hours"), "{}", plan.all());
    assert!(plan.stdout.contains("monthly change: +51.10"), "{}", plan.all());
    let markdown = cluster.workspace.run(&["plan", "--format", "markdown"]);
    assert!(markdown.stdout.contains("**Estimated cost** (USD): monthly change +51.10"), "{}", markdown.all());
    let json = cluster.workspace.run(&["plan", "--format", "json"]);
    let plan: Json = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["cost"]["currency"], "USD");
    assert!((plan["cost"]["monthly_delta"][0].as_f64().unwrap() - 51.1).abs() < 1e-6, "{}", plan["cost"]);

    // A budget is a policy over the plan's cost: over it, no plan is made.
    let budget = |limit: u32| {
        format!(
            "policy \"budget\" {{\n  condition     = plan.cost.monthly_delta <= {limit}\n  error_message = \"this plan adds ${{plan.cost.monthly_delta}} ${{plan.cost.currency}} a month, over the budget of {limit}\"\n}}\n\npolicy \"spot_for_gpus\" {{\n  resource      = training\n  condition     = self.resources.gpus == 0 || self.spot\n  error_message = \"GPU trainings run on spot capacity\"\n  enforcement   = \"warning\"\n}}\n"
        )
    };
    cluster.workspace.write("policies.mlops.hcl", &budget(40));
    let over = cluster.workspace.run(&["plan"]);
    assert_eq!(over.code, 1, "{}", over.all());
    over.assert_stderr_mentions(&[
        "E0420 policy-violated",
        "the plan breaks policy `budget`: this plan adds 51.1 USD a month, over the budget of 40",
        "W0105 policy-warning",
        "training.fraud breaks policy `spot_for_gpus`",
    ]);
    cluster.workspace.write("policies.mlops.hcl", &budget(100));
    let json = cluster.workspace.run(&["plan", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    let plan: Json = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["policies"][0]["name"], "budget");
    assert_eq!(plan["policies"][0]["passed"], 1);
    assert_eq!(plan["policies"][1]["failures"][0]["subject"], "training.fraud");
    std::fs::remove_file(cluster.workspace.path().join("policies.mlops.hcl")).unwrap();

    // Scaling the serving up: the change in monthly cost, and what it was.
    cluster.workspace.apply(&[]);
    let text = cluster.workspace.read("main.mlops.hcl").replace("    min = 2\n    max = 2\n", "    min = 4\n    max = 4\n");
    cluster.workspace.write("main.mlops.hcl", &text);
    let plan = cluster.workspace.run(&["plan"]);
    assert!(plan.stdout.contains("serving.api  102.20 per month (was 51.10): 4 replica(s) for 730 hours"), "{}", plan.all());
    assert!(plan.stdout.contains("monthly change: +51.10"), "{}", plan.all());

    // A training run again is expected to take as long as its last run.
    let plan = cluster.workspace.run(&["plan", "-var", "learning_rate=0.02"]);
    assert!(plan.stdout.contains("per run as long as the last one, up to 4.18"), "{}", plan.all());
}

#[test]
fn failed_staging_shows_the_staging_log_not_the_empty_training_log() {
    let Some(endpoint) = support::s3_endpoint() else { return };
    let log = "fatal error: An error occurred (AccessDenied) when calling the ListObjectsV2 operation";
    let mut cluster = cluster_with(&[], DEPLOYMENT, "inputs = { train = dataset.events }", Outcome::StagingFails { log: log.into() });
    let bucket = format!("staging-lake-{}", std::process::id());
    std::fs::create_dir_all(cluster.workspace.path().join("data")).unwrap();
    cluster.workspace.write("data/events.csv", "amount\n1\n2\n3\n");
    cluster.workspace.write(
        "data.mlops.hcl",
        &format!(
            "variable \"s3_endpoint\" {{\n  type = string\n}}\nprovider \"s3\" {{\n  endpoint = var.s3_endpoint\n}}\nbucket \"lake\" {{\n  provider      = s3\n  name          = \"{bucket}\"\n  force_destroy = true\n}}\ndataset \"events\" {{\n  provider = s3\n  bucket   = bucket.lake\n  source   = \"./data/events.csv\"\n  schema {{\n    column \"amount\" {{ type = int }}\n  }}\n}}\n"
        ),
    );
    cluster.workspace.variables.push(format!("s3_endpoint={endpoint}"));
    cluster.workspace.environment =
        vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("staging its inputs failed"), "{}", apply.all());
    assert!(apply.stderr.contains("AccessDenied"), "{}", apply.all());
    assert!(apply.stderr.contains("-c stage-inputs"), "{}", apply.all());
    let job = &cluster.fake.objects("jobs", NAMESPACE)[0];
    let staging = job["spec"]["template"]["spec"]["initContainers"][0]["command"][2].as_str().unwrap();
    assert!(staging.contains(&format!("s3://{bucket}/datasets/dataset.events/")), "{staging}");
}

/// `kill -9` while the shards of a feature set run: the next apply finds
/// the Indexed Job through the handle recorded before it was created, waits
/// for it, and starts no second one.
#[test]
fn a_killed_apply_reattaches_to_its_feature_shards() {
    let Some(endpoint) = support::s3_endpoint() else { return };
    let (cluster, _) = sharded_features_cluster(&endpoint, "killed-shards", Outcome::Hold);
    let mut child = cluster
        .workspace
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let indexed = |cluster: &Cluster| {
        cluster.fake.objects("jobs", NAMESPACE).into_iter().filter(|job| job["spec"]["completionMode"] == "Indexed").collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while indexed(&cluster).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the Indexed Job was never created");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let job = indexed(&cluster)[0]["metadata"]["name"].as_str().unwrap().to_owned();

    cluster.controllers.set(auc(0.94));
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stderr.contains(&format!("re-attaching to Job {job}")), "{}", apply.all());
    assert_eq!(indexed(&cluster).len(), 1, "a second run of the shards was started");
}

#[test]
fn an_interrupted_apply_reattaches_to_its_job() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", Outcome::Hold);
    let child = cluster
        .workspace
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while cluster.fake.objects("jobs", NAMESPACE).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the Job was never created");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let interrupted = support::Run::from(child.wait_with_output().unwrap());
    assert_ne!(interrupted.code, 0, "{}", interrupted.all());
    let job = cluster.fake.objects("jobs", NAMESPACE)[0]["metadata"]["name"].as_str().unwrap().to_owned();

    cluster.controllers.set(auc(0.94));
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stderr.contains(&format!("re-attaching to Job {job}")), "{}", apply.all());
    assert_eq!(cluster.fake.objects("jobs", NAMESPACE).len(), 1, "a second run was started");
}

#[test]
fn distributed_training_is_a_trainjob_whose_shape_forces_a_replace() {
    let distributed = "distributed {\n    nodes          = var.nodes\n    procs_per_node = 8\n  }";
    let cluster = cluster_with(&[Addon::Trainer], DEPLOYMENT, distributed, auc(0.96));
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write("main.mlops.hcl", &format!("{main}\nvariable \"nodes\" {{\n  type    = number\n  default = 2\n}}\n"));
    cluster.workspace.apply(&[]);
    let trainjobs = cluster.fake.objects("trainjobs", NAMESPACE);
    assert_eq!(trainjobs.len(), 1);
    let trainer = &trainjobs[0]["spec"]["trainer"];
    assert_eq!(trainer["numNodes"], 2);
    assert_eq!(trainer["numProcPerNode"], 8);
    assert_eq!(trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"], "1");
    // The run's own TrainingRuntime, derived from the cluster's
    // torch-distributed, carries the placement, the staging and the upload,
    // and goes with the TrainJob (it is owned by it).
    let name = trainjobs[0]["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.len() <= 48, "{name} is too long for JobSet");
    assert_eq!(trainjobs[0]["spec"]["runtimeRef"], json!({ "apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime", "name": name }));
    let runtime = cluster.fake.object("trainingruntimes", NAMESPACE, &name).expect("the run's TrainingRuntime");
    let pod = &runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.product"], "nvidia-h100");
    assert_eq!(pod["initContainers"][0]["name"], "upload-outputs");
    assert_eq!(runtime["metadata"]["annotations"]["mlops.dev/base-runtime"], "ClusterTrainingRuntime/torch-distributed");
    assert_eq!(runtime["metadata"]["ownerReferences"][0]["uid"], trainjobs[0]["metadata"]["uid"]);
    // Every node ran; rank 0 reported the metrics.
    assert_eq!(
        cluster.fake.objects("pods", NAMESPACE).iter().filter(|pod| pod["metadata"]["name"].as_str().unwrap().starts_with(&name)).count(),
        2
    );

    let plan = cluster.workspace.run(&["plan", "-var", "nodes=4"]);
    assert!(plan.stdout.contains("-/+ training.fraud"), "{}", plan.all());
    assert!(
        plan.stdout
            .contains("`distributed.nodes` changed (2 -> 4): a TrainJob's spec.trainer.numNodes is immutable, so the run is replaced"),
        "{}",
        plan.all()
    );
    // The new run replaces the old one, which goes with its runtime.
    cluster.workspace.apply(&["-var", "nodes=4"]);
    assert!(cluster.fake.object("trainjobs", NAMESPACE, &name).is_none());
    assert!(cluster.fake.object("trainingruntimes", NAMESPACE, &name).is_none());
    assert_eq!(cluster.fake.objects("trainjobs", NAMESPACE).len(), 1);
}

#[test]
fn a_distributed_run_without_its_base_runtime_names_what_to_install() {
    let distributed = "distributed {\n    nodes = 2\n  }";
    let cluster = cluster_with(&[Addon::Trainer], DEPLOYMENT, distributed, auc(0.96));
    let (code, _) = cluster.fake.send(
        "DELETE",
        "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes/torch-distributed",
        "application/json",
        &json!({}),
    );
    assert_eq!(code, 200);
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("has no ClusterTrainingRuntime `torch-distributed`"), "{}", apply.all());
    assert!(apply.stderr.contains("install Kubeflow Trainer's runtimes"), "{}", apply.all());
    assert!(cluster.fake.objects("trainjobs", NAMESPACE).is_empty());
}

const KSERVE_SERVING: &str = r#"
serving "api" {
  provider = kubernetes
  model    = model.fraud
  runtime  = "kserve"
  image    = "ghcr.io/acme/fraud-serve:2.0"
  replicas {
    min = 1
    max = 4
  }
}
"#;

#[test]
fn kserve_canary_and_blue_green_rollouts() {
    let serving = KSERVE_SERVING.replace(
        "    max = 4\n  }\n}",
        "    max = 4\n  }\n  autoscale {\n    metric = \"concurrency\"\n    target = 20\n  }\n  rollout {\n    strategy        = \"canary\"\n    traffic_percent = 10\n  }\n}",
    );
    let cluster = cluster_with(&[Addon::KServe], &serving, "", auc(0.93));
    cluster.workspace.apply(&[]);
    let service = cluster.fake.object("inferenceservices", NAMESPACE, "api").expect("an InferenceService");
    assert_eq!(service["spec"]["predictor"]["canaryTrafficPercent"], 10);
    assert_eq!(service["spec"]["predictor"]["scaleMetric"], "concurrency");
    assert_eq!(cluster.workspace.output("url"), format!("http://api.{NAMESPACE}.example.com"));

    // New hyperparameters: a new run, a new version, a canary of it.
    let plan = cluster.workspace.run(&["plan", "-var", "learning_rate=0.02"]);
    assert!(plan.stdout.contains("rollout (canary, 10% of traffic) of model version (known after apply) (live: 1)"), "{}", plan.all());
    cluster.workspace.apply(&["-var", "learning_rate=0.02"]);
    let service = cluster.fake.object("inferenceservices", NAMESPACE, "api").unwrap();
    let environment = service["spec"]["predictor"]["containers"][0]["env"].as_array().unwrap().clone();
    assert!(environment.contains(&json!({ "name": "MLOPS_MODEL_VERSION", "value": "2" })), "{environment:?}");

    // Blue/green: the green revision without traffic first, then all of it.
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster
        .workspace
        .write("main.mlops.hcl", &main.replace("strategy        = \"canary\"\n    traffic_percent = 10", "strategy = \"blue_green\""));
    cluster.workspace.apply(&["-var", "learning_rate=0.02"]);
    let before = cluster.fake.requests().len();
    cluster.workspace.apply(&["-var", "learning_rate=0.03"]);
    let patches = cluster.fake.requests()[before..]
        .iter()
        .filter(|request| request.starts_with("PATCH") && request.ends_with("/inferenceservices/api"))
        .count();
    assert_eq!(patches, 2, "blue/green applies the green revision, then switches traffic");
    let service = cluster.fake.object("inferenceservices", NAMESPACE, "api").unwrap();
    assert!(service["spec"]["predictor"].get("canaryTrafficPercent").is_none(), "{service}");
}

#[test]
fn kserve_in_raw_mode_runs_a_deployment_and_is_ready_when_it_is() {
    let serving = KSERVE_SERVING.replace("  replicas {", "  autoscale {\n    metric = \"cpu\"\n    target = 70\n  }\n  replicas {");
    let cluster = cluster_with(&[Addon::KServe], &serving, "", auc(0.93));
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write(
        "main.mlops.hcl",
        &main.replace("  artifact_root = \"s3://acme-ml/runs\"\n", "  artifact_root = \"s3://acme-ml/runs\"\n  kserve_mode   = \"raw\"\n"),
    );
    cluster.workspace.apply(&[]);
    let service = cluster.fake.object("inferenceservices", NAMESPACE, "api").unwrap();
    assert_eq!(service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"], "RawDeployment");
    assert_eq!(service["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"], "hpa");
    assert_eq!(service["spec"]["predictor"]["scaleMetric"], "cpu");
    // KServe made the predictor a Deployment; the server is told its port.
    let predictor = cluster.fake.object("deployments", NAMESPACE, "api-predictor").expect("KServe's Deployment");
    let environment = predictor["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
    assert!(environment.contains(&json!({ "name": "PORT", "value": "8080" })), "{environment:?}");
}

#[test]
fn a_stale_ready_inference_service_is_not_taken_for_the_new_version() {
    let cluster = cluster_with(&[Addon::KServe], KSERVE_SERVING, "", auc(0.93));
    cluster.workspace.apply(&[]);
    // KServe is slow to act on the next version: the InferenceService still
    // says Ready (for version 1), with an observedGeneration from its child.
    cluster.controllers.pause_serving(true);
    let mut child = cluster
        .workspace
        .command(&["apply", "--auto-approve", "-var", "learning_rate=0.02"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let service = cluster.fake.object("inferenceservices", NAMESPACE, "api").unwrap();
        let version = service["spec"]["predictor"]["containers"][0]["env"].as_array().unwrap().iter().any(|entry| entry["value"] == "2");
        if version {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "version 2 was never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "apply took a Ready left from version 1 for version 2");
    cluster.controllers.pause_serving(false);
    let output = support::Run::from(child.wait_with_output().unwrap());
    assert_eq!(output.code, 0, "{}", output.all());
    let knative = cluster.fake.object("services.serving.knative.dev", NAMESPACE, "api-predictor").expect("KServe's Knative Service");
    let environment = knative["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
    assert!(environment.contains(&json!({ "name": "MLOPS_MODEL_VERSION", "value": "2" })), "{environment:?}");
    assert!(!environment.iter().any(|entry| entry["name"] == "PORT"), "Knative sets PORT itself: {environment:?}");
}

#[test]
fn knative_refusing_the_predictor_ends_the_rollout_with_its_reason() {
    // The provider block says the cluster turned the GPU features on; it did not.
    let serving =
        KSERVE_SERVING.replace("  replicas {", "  resources {\n    gpus     = 1\n    gpu_type = \"nvidia-l4\"\n  }\n  replicas {");
    let cluster = cluster_with(&[Addon::KServe], &serving, "", auc(0.93));
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write(
        "main.mlops.hcl",
        &main.replace(
            "  artifact_root = \"s3://acme-ml/runs\"\n",
            "  artifact_root = \"s3://acme-ml/runs\"\n  knative_features = [\"node-selector\", \"tolerations\"]\n",
        ),
    );
    let started = std::time::Instant::now();
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(started.elapsed() < Duration::from_secs(60), "it waited for the rollout timeout");
    assert!(apply.stderr.contains("KServe's controller was refused"), "{}", apply.all());
    assert!(
        apply.stderr.contains("must not set the field(s): spec.template.spec.nodeSelector, spec.template.spec.tolerations"),
        "{}",
        apply.all()
    );
}

#[test]
fn a_policy_webhook_denial_is_reported_as_one_and_quoted() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    cluster.fake.add_policy(
        "Job",
        "validate.kyverno.svc-fail",
        "resource Job/ml-test/x was blocked: require-team-label: the label `team` is required",
    );
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("an admission webhook of the cluster `fake`"), "{}", apply.all());
    assert!(apply.stderr.contains("admission webhook \"validate.kyverno.svc-fail\" denied the request"), "{}", apply.all());
    assert!(apply.stderr.contains("the label `team` is required"), "{}", apply.all());
    assert!(apply.stderr.contains("not a missing permission"), "{}", apply.all());
    assert!(!apply.stderr.contains("grant the user RBAC permission"), "{}", apply.all());
}

#[test]
fn the_fake_refuses_an_undeclared_field_as_a_real_server_does() {
    let fake = FakeKube::start(&[Addon::Trainer]);
    let trainjob = json!({ "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": { "name": "run" }, "spec": { "runtimeRef": { "name": "torch-distributed" }, "datasetConfig": { "storageUri": "s3://a/b" } } });
    let (code, body) = fake.send(
        "PATCH",
        &format!("/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NAMESPACE}/trainjobs/run?fieldManager=mlops"),
        "application/apply-patch+yaml",
        &trainjob,
    );
    assert_eq!(code, 500, "{body}");
    assert!(body["message"].as_str().unwrap().ends_with(".spec.datasetConfig: field not declared in schema"), "{body}");
}

#[test]
fn metrics_beyond_the_kubelets_limit_are_named_as_such() {
    let metrics: serde_json::Map<String, Json> = (0..400).map(|index| (format!("metric_{index:03}"), json!(0.5))).collect();
    let mut metrics = Json::Object(metrics);
    metrics["auc"] = json!(0.93);
    let cluster = cluster_with(&[], DEPLOYMENT, "", Outcome::Succeed { metrics });
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("more metrics than the 4096 bytes the kubelet keeps"), "{}", apply.all());
    assert!(!apply.stderr.contains("not a JSON object"), "{}", apply.all());
}

#[test]
fn the_namespace_comes_from_the_kubeconfig_context_split_over_several_files() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    // KUBECONFIG=clusters:contexts, the context naming the namespace.
    let full = cluster.workspace.read("kubeconfig");
    let (head, users) = full.split_once("users:").unwrap();
    let clusters_only = format!("{}users:{users}", head.split("contexts:").next().unwrap());
    let contexts = format!(
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: {OTHER_NAMESPACE}\n"
    );
    cluster.workspace.write("clusters.yaml", &clusters_only);
    cluster.workspace.write("contexts.yaml", &contexts);
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write(
        "main.mlops.hcl",
        &main.replace("  kubeconfig    = var.kubeconfig\n", "").replace(&format!("  namespace     = \"{NAMESPACE}\"\n"), ""),
    );
    let listed = format!(
        "{}:{}",
        cluster.workspace.path().join("clusters.yaml").display(),
        cluster.workspace.path().join("contexts.yaml").display()
    );
    let apply = cluster.workspace.command(&["apply", "--auto-approve"]).env("KUBECONFIG", &listed).output().unwrap();
    let apply = support::Run::from(apply);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(cluster.fake.object("deployments", OTHER_NAMESPACE, "api").is_some(), "the context's namespace was not used");
    assert!(cluster.fake.objects("jobs", NAMESPACE).is_empty());
    let destroy = cluster.workspace.command(&["destroy", "--auto-approve"]).env("KUBECONFIG", &listed).output().unwrap();
    assert_eq!(destroy.status.code(), Some(0));
}

#[test]
fn a_missing_crd_a_denial_and_an_unreachable_cluster_each_give_one_clear_error() {
    // No KServe installed.
    let serving = DEPLOYMENT.replace("\"deployment\"", "\"kserve\"");
    let cluster = cluster_with(&[], &serving, "", auc(0.93));
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains("does not serve InferenceService (serving.kserve.io/v1beta1): its CRD is not installed"),
        "{}",
        apply.all()
    );
    assert!(apply.stderr.contains("install KServe"), "{}", apply.all());

    // RBAC: the user may not create Jobs.
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    cluster.fake.deny("patch", "jobs");
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(apply.stderr.contains("denied permission to apply Job"), "{}", apply.all());
    assert!(apply.stderr.contains("cannot patch resource \"jobs\" in API group \"batch\""), "{}", apply.all());
    assert!(apply.stderr.contains("grant the user RBAC permission"), "{}", apply.all());
    assert!(!apply.stderr.contains("not-a-secret"), "the token was printed");

    // Nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kubeconfig = cluster.workspace.path().join("kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).unwrap().replace(&cluster.fake.url(), &format!("http://127.0.0.1:{closed}"));
    std::fs::write(&kubeconfig, text).unwrap();
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains(&format!("cannot reach the Kubernetes API server of the cluster `fake` (http://127.0.0.1:{closed})")),
        "{}",
        apply.all()
    );
    assert!(apply.stderr.contains("Connection refused") || apply.stderr.contains("connection refused"), "{}", apply.all());
}

#[test]
fn the_provider_block_must_say_where_outputs_go() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write("main.mlops.hcl", &main.replace("  artifact_root = \"s3://acme-ml/runs\"\n", ""));
    let plan = cluster.workspace.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("set `artifact_root = \"s3://BUCKET/PREFIX\"` in the kubernetes provider block"), "{}", plan.all());
}

#[test]
fn the_kubernetes_example_validates_and_plans() {
    let workspace = Workspace::copy_of("examples/kubernetes");
    let validate = workspace.run(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all());
    // Planning a first apply needs neither the cluster nor the S3 store.
    let plan = workspace.run(&["plan", "-var", "s3_endpoint=http://127.0.0.1:9"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    plan.assert_stdout_mentions(&[
        "# training.fraud will be created",
        "# serving.fraud_api will be created",
        "# monitor.fraud_drift will be created",
        "Plan: 7 to add",
    ]);
}

#[test]
fn a_monitor_is_a_cronjob_whose_latest_scores_refresh_drift() {
    let Some(endpoint) = support::s3_endpoint() else { return };
    let fake = Arc::new(FakeKube::start(&[]));
    let mut workspace = Workspace::copy_of("tests/cases/kubernetes");
    let kubeconfig = fake.write_kubeconfig(workspace.path());
    std::fs::create_dir_all(workspace.path().join("data")).unwrap();
    let reference: String = (0..200).map(|row| format!("{},{}\n", 10 + row % 50, 20 + row % 40)).collect();
    workspace.write("data/reference.csv", &format!("amount,age\n{reference}"));
    workspace.write(
        "main.mlops.hcl",
        &format!(
            r#"
variable "kubeconfig" {{
  type = string
}}
variable "s3_endpoint" {{
  type = string
}}
provider "s3" {{
  endpoint         = var.s3_endpoint
  force_path_style = true
}}
provider "kubernetes" {{
  kubeconfig       = var.kubeconfig
  context          = "fake"
  namespace        = "{NAMESPACE}"
  storage_endpoint = var.s3_endpoint
  storage_secret   = "s3-credentials"
  monitor_image    = "registry.example.com/mlops:0.1.0"
}}
bucket "lake" {{
  provider      = s3
  name          = "monitored-lake"
  force_destroy = true
}}
dataset "reference" {{
  provider = s3
  bucket   = bucket.lake
  source   = "./data/reference.csv"
  schema {{
    column "amount" {{ type = float }}
    column "age" {{ type = int }}
  }}
}}
monitor "drift" {{
  provider  = kubernetes
  reference = dataset.reference
  current   = "s3://monitored-lake/inference-logs/"
  columns   = ["amount", "age"]
  threshold = 0.2
  schedule  = "*/15 * * * *"
}}
output "drifted" {{
  value = monitor.drift.drifted
}}
"#
        ),
    );
    workspace.environment = vec![("AWS_ACCESS_KEY_ID".into(), "testing".into()), ("AWS_SECRET_ACCESS_KEY".into(), "testing".into())];
    workspace.variables = vec![format!("kubeconfig={}", kubeconfig.display()), format!("s3_endpoint={endpoint}")];
    workspace.apply(&[]);

    let cronjob = fake.object("cronjobs", NAMESPACE, "drift").expect("a CronJob");
    assert_eq!(cronjob["spec"]["schedule"], "*/15 * * * *");
    let container = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/mlops:0.1.0");
    let arguments: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|argument| argument.as_str().unwrap().to_owned()).collect();
    assert_eq!(workspace.output("drifted"), "false");

    // One scheduled run, played here: the image's command (`mlops drift`
    // with the CronJob's own arguments) on shifted inference logs, its
    // report becoming the pod's termination message.
    let shifted: String = (0..200).map(|row| format!("{},{}\n", 80 + row % 50, 20 + row % 40)).collect();
    let logs = workspace.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("part-0.csv"), format!("amount,age\n{shifted}")).unwrap();
    let mut arguments: Vec<String> =
        arguments.into_iter().filter(|argument| argument != "--output" && argument != "/dev/termination-log").collect();
    let current = arguments.iter().position(|argument| argument == "--current").unwrap() + 1;
    arguments[current] = logs.display().to_string();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
        .args(&arguments)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report = String::from_utf8_lossy(&run.stdout).trim().to_owned();
    assert!(report.contains("\"drifted\":true"), "{report}");
    fake.create_pod(
        NAMESPACE,
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "drift-29012345-abcde", "labels": { "mlops.dev/monitor": "drift" } },
                "spec": { "containers": [{ "name": "drift", "image": "registry.example.com/mlops:0.1.0" }] } }),
        json!({ "phase": "Succeeded", "containerStatuses": [{ "name": "drift", "state": { "terminated": { "exitCode": 0, "message": report } } }] }),
    );
    let plan = workspace.run(&["plan"]);
    assert!(plan.stdout.contains("monitor.drift: changed outside mlops: drifted, scores"), "{}", plan.all());
    workspace.apply(&[]);
    assert_eq!(workspace.output("drifted"), "true");
}

#[test]
fn a_new_namespace_moves_the_serving_and_removes_the_old_objects() {
    let cluster = cluster_with(&[], DEPLOYMENT, "", auc(0.93));
    cluster.workspace.apply(&[]);
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write(
        "main.mlops.hcl",
        &main.replace(&format!("namespace     = \"{NAMESPACE}\""), &format!("namespace     = \"{OTHER_NAMESPACE}\"")),
    );
    let plan = cluster.workspace.run(&["plan"]);
    // The provider block changed, not the cluster behind mlops's back.
    assert!(
        plan.stdout.contains(&format!("Deployment/api metadata.namespace: \"{NAMESPACE}\" -> \"{OTHER_NAMESPACE}\"")),
        "{}",
        plan.all()
    );
    assert!(!plan.stdout.contains("changed outside mlops"), "{}", plan.all());
    cluster.workspace.apply(&[]);
    assert!(cluster.fake.object("deployments", OTHER_NAMESPACE, "api").is_some());
    assert!(cluster.fake.object("services", OTHER_NAMESPACE, "api").is_some());
    assert!(cluster.fake.object("deployments", NAMESPACE, "api").is_none(), "the old Deployment was left behind");
    assert!(cluster.fake.object("services", NAMESPACE, "api").is_none(), "the old Service was left behind");
}

/// What an older mlops wrote: the address split on dots with every part
/// spelled like a kind dropped, so `serving "training"` had objects named
/// `mlops`. Renames that serving's objects in a state document the way such
/// a version recorded them.
fn as_named_by_address_splitting(value: &mut Json) {
    match value {
        Json::Object(map) => {
            let renamed: Vec<(String, String)> = ["Deployment", "Service"]
                .iter()
                .filter(|kind| map.contains_key(&format!("{kind}/training")))
                .map(|kind| (format!("{kind}/training"), format!("{kind}/mlops")))
                .collect();
            for (old, new) in renamed {
                let object = map.remove(&old).unwrap();
                map.insert(new, object);
            }
            let is_serving_object = matches!(map.get("kind").and_then(Json::as_str), Some("Deployment" | "Service"));
            if is_serving_object && map.get("metadata").and_then(|metadata| metadata.get("name")) == Some(&json!("training")) {
                map["metadata"]["name"] = json!("mlops");
            }
            map.values_mut().for_each(as_named_by_address_splitting);
        }
        Json::Array(items) => items.iter_mut().for_each(as_named_by_address_splitting),
        Json::String(text) if text.starts_with("http://training.") => *text = text.replacen("http://training.", "http://mlops.", 1),
        _ => {}
    }
}

/// A serving named like a kind once lost its name to address splitting
/// (`serving "training"` made objects named `mlops`). Names now come from
/// the parsed address; the next apply of such a serving moves it to its own
/// name and deletes the objects under the old one, like any other rename.
#[test]
fn a_serving_named_like_a_kind_moves_from_its_old_object_names_at_the_next_apply() {
    let cluster = cluster_with(&[], &DEPLOYMENT.replace("serving \"api\"", "serving \"training\""), "", auc(0.93));
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write("main.mlops.hcl", &main.replace("serving.api.url", "serving.training.url"));
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stdout.contains("Apply complete: 3 added"), "{}", apply.all());
    assert!(cluster.fake.object("deployments", NAMESPACE, "training").is_some(), "the serving keeps its own name");

    // The cluster and the state as an older mlops left them.
    for resource in ["deployments", "services"] {
        let mut object = cluster.fake.object(resource, NAMESPACE, "training").unwrap();
        let metadata = object["metadata"].as_object_mut().unwrap();
        for server_field in ["uid", "resourceVersion", "managedFields", "creationTimestamp", "generation"] {
            metadata.remove(server_field);
        }
        metadata.insert("name".to_owned(), json!("mlops"));
        object.as_object_mut().unwrap().remove("status");
        let api = if resource == "deployments" { "/apis/apps/v1" } else { "/api/v1" };
        let (code, body) = cluster.fake.send(
            "PATCH",
            &format!("{api}/namespaces/{NAMESPACE}/{resource}/mlops?fieldManager=mlops"),
            "application/apply-patch+yaml",
            &object,
        );
        assert!(code == 200 || code == 201, "{body}");
        let (code, body) =
            cluster.fake.send("DELETE", &format!("{api}/namespaces/{NAMESPACE}/{resource}/training"), "application/json", &json!({}));
        assert_eq!(code, 200, "{body}");
    }
    let state_path = ".mlops/state/state.json";
    let mut state: Json = serde_json::from_str(&cluster.workspace.read(state_path)).unwrap();
    as_named_by_address_splitting(&mut state);
    cluster.workspace.write(state_path, &state.to_string());
    assert!(cluster.workspace.run(&["state", "show", "serving.training"]).stdout.contains("Deployment/mlops"));

    let plan = cluster.workspace.run(&["plan"]);
    // The plan says what moves, before anything does.
    plan.assert_stdout_mentions(&[
        "serving.training will be updated in place",
        "Deployment/training will be created",
        "Deployment/mlops is no longer needed and will be deleted",
        "Service/mlops is no longer needed and will be deleted",
    ]);
    let apply = cluster.workspace.apply(&[]);
    assert!(apply.stdout.contains("1 changed"), "{}", apply.all());
    for resource in ["deployments", "services"] {
        assert!(cluster.fake.object(resource, NAMESPACE, "training").is_some(), "{resource}/training was not made");
        assert!(cluster.fake.object(resource, NAMESPACE, "mlops").is_none(), "{resource}/mlops was left behind");
    }
    assert_eq!(cluster.workspace.output("url"), format!("http://training.{NAMESPACE}.svc.cluster.local"));
    cluster.workspace.assert_no_changes(&[]);
}
