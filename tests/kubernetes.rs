//! End-to-end tests of the kubernetes provider: the built binary, through
//! the real kube-rs client, against the fake API server in
//! `support/fake_kube.rs`. The tests play the controllers (Job, Kubeflow
//! Trainer, Deployment, KServe) by creating pods and writing status through
//! the status subresource.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};
use support::fake_kube::{FakeKube, Kind, INFERENCE_SERVICE, TRAINJOB};
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
    /// Leave runs going (an apply waits until it is interrupted).
    Hold,
}

/// The controllers a real cluster runs, reduced to what the provider
/// observes: Job and TrainJob completion with a pod's termination message,
/// Deployment and InferenceService readiness.
struct Controllers {
    stop: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
}

impl Controllers {
    fn start(fake: &Arc<FakeKube>, outcome: Outcome) -> Controllers {
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(outcome));
        let (fake, stopped, wanted) = (fake.clone(), stop.clone(), outcome.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let outcome = wanted.lock().unwrap().clone();
                reconcile(&fake, &outcome);
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Controllers { stop, outcome }
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

fn reconcile(fake: &FakeKube, outcome: &Outcome) {
    for namespace in [NAMESPACE, OTHER_NAMESPACE] {
        reconcile_namespace(fake, outcome, namespace);
    }
}

fn reconcile_namespace(fake: &FakeKube, outcome: &Outcome, namespace: &str) {
    for (plural, api, container, labels) in
        [("jobs", "/apis/batch/v1", "train", None), ("trainjobs", "/apis/trainer.kubeflow.org/v1alpha1", "node", Some(()))]
    {
        for job in fake.objects(plural, namespace) {
            if finished(&job) || matches!(outcome, Outcome::Hold) {
                continue;
            }
            let name = job["metadata"]["name"].as_str().unwrap().to_owned();
            let pod_name = format!("{name}-node-0-x7k2p");
            let pod_labels = if labels.is_some() {
                json!({ "jobset.sigs.k8s.io/jobset-name": name, "batch.kubernetes.io/job-completion-index": "0" })
            } else {
                json!({ "batch.kubernetes.io/job-name": name, "job-name": name })
            };
            let (terminated, condition, phase) = match outcome {
                Outcome::Succeed { metrics } => (
                    json!({ "exitCode": 0, "reason": "Completed", "message": metrics.to_string() }),
                    json!({ "type": "Complete", "status": "True", "reason": "Completed", "message": "" }),
                    "Succeeded",
                ),
                Outcome::Fail { exit_code, log } => {
                    fake.set_log(namespace, &pod_name, container, log);
                    (
                        json!({ "exitCode": exit_code, "reason": "Error" }),
                        json!({ "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit" }),
                        "Failed",
                    )
                }
                Outcome::Hold => unreachable!(),
            };
            if fake.object("pods", namespace, &pod_name).is_none() {
                fake.create_pod(
                    namespace,
                    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": pod_name, "labels": pod_labels },
                            "spec": { "containers": [{ "name": container, "image": "trainer" }] } }),
                    json!({ "phase": phase, "containerStatuses": [{ "name": container, "imageID": "ghcr.io/acme/fraud-train@sha256:0123abcd", "state": { "terminated": terminated } }] }),
                );
            }
            fake.write_status(&format!("{api}/namespaces/{namespace}/{plural}/{name}"), json!({ "conditions": [condition] }));
        }
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
        let generation = service["metadata"]["generation"].as_i64().unwrap();
        if service.pointer("/status/observedGeneration").and_then(Json::as_i64) == Some(generation) {
            continue;
        }
        let name = service["metadata"]["name"].as_str().unwrap();
        fake.write_status(
            &format!("/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices/{name}"),
            json!({ "observedGeneration": generation, "url": format!("http://{name}.{namespace}.example.com"),
                    "conditions": [{ "type": "Ready", "status": "True" }] }),
        );
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

fn cluster_with(custom: &[Kind], serving: &str, training_extra: &str, outcome: Outcome) -> Cluster {
    let fake = Arc::new(FakeKube::start(custom));
    let controllers = Controllers::start(&fake, outcome);
    let mut workspace = Workspace::copy_of("tests/cases/kubernetes");
    let kubeconfig = fake.write_kubeconfig(workspace.path());
    workspace.write("main.mlops.hcl", &configuration(serving, training_extra));
    workspace.variables = vec![format!("kubeconfig={}", kubeconfig.display())];
    Cluster { workspace, fake, controllers }
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

    // Deleted outside mlops: planned again.
    let (code, _) = cluster.fake.send("DELETE", &path, "application/json", &json!({}));
    assert_eq!(code, 200);
    let plan = cluster.workspace.run(&["plan"]);
    assert!(plan.stdout.contains("serving.api: deleted outside mlops"), "{}", plan.all());
    cluster.workspace.apply(&[]);
}

#[test]
fn replicas_an_autoscaler_moves_are_not_drift() {
    let serving = r#"
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
    let cluster = cluster_with(&[], serving, "", auc(0.91));
    cluster.workspace.apply(&[]);
    let autoscaler = cluster.fake.object("horizontalpodautoscalers", NAMESPACE, "api").expect("an autoscaler");
    assert_eq!(autoscaler["spec"]["maxReplicas"], 6);
    assert_eq!(autoscaler["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
    // The autoscaler scales up: expected, not drift.
    let (code, _) = cluster.fake.send(
        "PATCH",
        &format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api?fieldManager=horizontal-pod-autoscaler"),
        "application/merge-patch+json",
        &json!({ "spec": { "replicas": 4 } }),
    );
    assert_eq!(code, 200);
    cluster.workspace.assert_no_changes(&[]);
}

#[test]
fn a_failed_job_reports_its_reason_and_the_end_of_its_log() {
    let log =
        "loading data\nepoch 1/10\nTraceback (most recent call last):\n  File \"train.py\", line 12\nValueError: column amount has NaN";
    let cluster = cluster_with(&[], DEPLOYMENT, "", Outcome::Fail { exit_code: 1, log: log.into() });
    let apply = cluster.workspace.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    for expected in [
        "failed (BackoffLimitExceeded, exit code 1): Job has reached the specified backoff limit",
        "ValueError: column amount has NaN",
        "kubectl -n ml-test logs",
    ] {
        assert!(apply.stderr.contains(expected), "missing {expected:?}:\n{}", apply.all());
    }
    // Nothing downstream ran, and the next apply starts a new run.
    assert!(cluster.fake.object("deployments", NAMESPACE, "api").is_none());
    cluster.controllers.set(auc(0.92));
    cluster.workspace.apply(&[]);
    assert_eq!(cluster.fake.objects("jobs", NAMESPACE).len(), 2, "the failed Job is kept for its logs, and one new run was made");
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
    let cluster = cluster_with(&[TRAINJOB], DEPLOYMENT, distributed, auc(0.96));
    let main = cluster.workspace.read("main.mlops.hcl");
    cluster.workspace.write("main.mlops.hcl", &format!("{main}\nvariable \"nodes\" {{\n  type    = number\n  default = 2\n}}\n"));
    cluster.workspace.apply(&[]);
    let trainjobs = cluster.fake.objects("trainjobs", NAMESPACE);
    assert_eq!(trainjobs.len(), 1);
    let trainer = &trainjobs[0]["spec"]["trainer"];
    assert_eq!(trainer["numNodes"], 2);
    assert_eq!(trainer["numProcPerNode"], 8);
    assert_eq!(trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(trainjobs[0]["spec"]["podSpecOverrides"][0]["nodeSelector"]["nvidia.com/gpu.product"], "nvidia-h100");

    let plan = cluster.workspace.run(&["plan", "-var", "nodes=4"]);
    assert!(plan.stdout.contains("-/+ training.fraud"), "{}", plan.all());
    assert!(
        plan.stdout
            .contains("`distributed.nodes` changed (2 -> 4): a TrainJob's spec.trainer.numNodes is immutable, so the run is replaced"),
        "{}",
        plan.all()
    );
}

#[test]
fn kserve_canary_and_blue_green_rollouts() {
    let serving = r#"
serving "api" {
  provider = kubernetes
  model    = model.fraud
  runtime  = "kserve"
  image    = "ghcr.io/acme/fraud-serve:2.0"
  replicas {
    min = 1
    max = 4
  }
  autoscale {
    metric = "concurrency"
    target = 20
  }
  rollout {
    strategy        = "canary"
    traffic_percent = 10
  }
}
"#;
    let cluster = cluster_with(&[INFERENCE_SERVICE], serving, "", auc(0.93));
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
    for expected in [
        "# training.fraud will be created",
        "# serving.fraud_api will be created",
        "# monitor.fraud_drift will be created",
        "Plan: 7 to add",
    ] {
        assert!(plan.stdout.contains(expected), "missing {expected:?}:\n{}", plan.all());
    }
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
