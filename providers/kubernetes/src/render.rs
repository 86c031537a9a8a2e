//! Rendering: a resource's configuration -> the Kubernetes objects that carry it out.
//!
//! The object layouts live in handlebars templates in `stdlib/kubernetes/`
//! (embedded here); this module computes every value that goes into them:
//! names, labels, the run contract's environment, resources, GPU placement,
//! staging containers. Rendering is pure: no cluster, no clock, no
//! randomness, so the same configuration always renders the same objects
//! and snapshots of them are stable.
//!
//! Values enter the templates only through the `json` helper, which writes
//! them as JSON (valid YAML flow values): a configuration value can never
//! break the YAML or add fields.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use handlebars::Handlebars;
use mlops_provider_api::{Configuration, Value};
use mlops_provider_api::{ProviderError, ProviderResult};
use mlops_provider_support::text;
use mlops_units::address::{InstanceKey, Mode, ResourceAddress};
use serde_json::{json, Value as Json};

const TEMPLATES: &[(&str, &str)] = &[
    ("job", include_str!("../../../stdlib/kubernetes/job.yaml.hbs")),
    ("trainjob", include_str!("../../../stdlib/kubernetes/trainjob.yaml.hbs")),
    ("deployment", include_str!("../../../stdlib/kubernetes/deployment.yaml.hbs")),
    ("service", include_str!("../../../stdlib/kubernetes/service.yaml.hbs")),
    ("hpa", include_str!("../../../stdlib/kubernetes/hpa.yaml.hbs")),
    ("inferenceservice", include_str!("../../../stdlib/kubernetes/inferenceservice.yaml.hbs")),
    ("cronjob", include_str!("../../../stdlib/kubernetes/cronjob.yaml.hbs")),
];

/// Where a run's files are, inside its pod.
pub const INPUTS_DIRECTORY: &str = "/mlops/inputs";
pub const OUTPUT_DIRECTORY: &str = "/mlops/output";
/// The kubelet copies this file into the container's status when it
/// terminates, which is how metrics come back without a side channel.
pub const METRICS_FILE: &str = "/dev/termination-log";
pub const MODEL_DIRECTORY: &str = "/mnt/models";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const ADDRESS_ANNOTATION: &str = "mlops.dev/address";
pub const RUN_LABEL: &str = "mlops.dev/run-id";
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const MONITOR_LABEL: &str = "mlops.dev/monitor";
pub const KSERVE_MODE_ANNOTATION: &str = "serving.kserve.io/deploymentMode";
/// What KServe names a predictor's Knative Service or Deployment.
pub fn kserve_predictor_name(name: &str) -> String {
    format!("{name}-predictor")
}

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(handlebars::no_escape);
        handlebars.register_helper(
            "json",
            Box::new(
                |helper: &handlebars::Helper<'_>,
                 _: &Handlebars<'_>,
                 _: &handlebars::Context,
                 _: &mut handlebars::RenderContext<'_, '_>,
                 out: &mut dyn handlebars::Output|
                 -> handlebars::HelperResult {
                    let value = helper.param(0).map(|parameter| parameter.value().clone()).unwrap_or(Json::Null);
                    out.write(&value.to_string())?;
                    Ok(())
                },
            ),
        );
        for (name, text) in TEMPLATES {
            // The templates are part of the binary and snapshot-tested; a
            // broken one is a build defect, not a user error.
            if let Err(error) = handlebars.register_template_string(name, *text) {
                panic!("the embedded template stdlib/kubernetes/{name}.yaml.hbs is invalid: {error}");
            }
        }
        handlebars
    })
}

/// Renders one template with `values` into a Kubernetes object.
fn render(template: &str, values: &Json) -> ProviderResult<Json> {
    let text = registry()
        .render(template, values)
        .map_err(|error| ProviderError::failed(format!("cannot render the {template} manifest: {error}")))?;
    serde_yaml::from_str(&text).map_err(|error| ProviderError::failed(format!("the rendered {template} manifest is not YAML: {error}")))
}

/// Everything rendering needs from outside the resource's own configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub namespace: String,
    /// Where training outputs are uploaded: `s3://bucket/prefix`.
    pub artifact_root: Option<String>,
    /// The image with the AWS CLI that stages inputs and uploads outputs.
    pub storage_image: String,
    /// A Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for staging.
    pub storage_secret: Option<String>,
    pub storage_endpoint: Option<String>,
    /// The node label that names a node's GPU model.
    pub gpu_node_label: String,
    pub training_runtime: String,
    pub monitor_image: String,
    /// The image with the ORAS CLI that pulls model versions kept in an OCI registry.
    pub oras_image: String,
    /// A `kubernetes.io/dockerconfigjson` Secret with the OCI registry's credentials.
    pub registry_secret: Option<String>,
    /// How long a run's outputs may take to upload once it has finished.
    pub upload_timeout_seconds: u64,
    /// How KServe deploys predictors on this cluster.
    pub kserve_mode: KserveMode,
    /// The Knative features the cluster has turned on (`init-containers`,
    /// `node-selector`, `tolerations`, `hpa-autoscaler`).
    pub knative_features: Vec<String>,
    /// How a pod asks for spot capacity on this cluster: node labels, and
    /// the tolerations of the spot nodes' taints.
    pub spot_node_selector: serde_json::Map<String, Json>,
    pub spot_tolerations: Vec<Json>,
}

/// KServe's deployment modes. mlops always names the mode on the
/// InferenceService, so that what runs does not depend on the cluster's
/// default (Serverless up to KServe 0.15, Standard from 0.16).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KserveMode {
    /// Knative Serving: revisions, traffic splitting, scale to zero.
    #[default]
    Serverless,
    /// A plain Deployment with an autoscaler: no traffic splitting.
    Raw,
}

impl KserveMode {
    /// The value of KServe's `serving.kserve.io/deploymentMode` annotation
    /// (KServe 0.16 and later also read these older names).
    pub fn annotation(self) -> &'static str {
        match self {
            KserveMode::Serverless => "Serverless",
            KserveMode::Raw => "RawDeployment",
        }
    }
}

impl Settings {
    /// The settings, with the namespace the cluster's kubeconfig context
    /// names when the provider block does not (read without connecting).
    pub fn resolved(config: &Configuration) -> ProviderResult<Settings> {
        Ok(Settings { namespace: crate::cluster::resolve_namespace(config), ..Settings::from_provider_config(config)? })
    }

    /// The settings as written (a namespace that is not set is `default`):
    /// what rendering alone, with no kubeconfig, sees. Every setting with a
    /// default in the stdlib schema arrives with it (the engine fills it
    /// in), so none is repeated here.
    pub fn from_provider_config(config: &Configuration) -> ProviderResult<Settings> {
        let text = |name: &str| config.get(name).and_then(Value::as_str).filter(|value| !value.is_empty()).map(str::to_owned);
        let required = |name: &str| {
            text(name).ok_or_else(|| {
                ProviderError::failed(format!(
                    "the kubernetes provider's `{name}` is missing: the schema's default did not reach the provider"
                ))
            })
        };
        Ok(Settings {
            namespace: text("namespace").unwrap_or_else(|| "default".to_owned()),
            artifact_root: text("artifact_root").map(|root| root.trim_end_matches('/').to_owned()),
            storage_image: required("storage_image")?,
            storage_secret: text("storage_secret"),
            storage_endpoint: text("storage_endpoint"),
            gpu_node_label: required("gpu_node_label")?,
            training_runtime: required("training_runtime")?,
            // The mlops image of this very version: a default no schema can write.
            monitor_image: text("monitor_image").unwrap_or_else(|| format!("ghcr.io/mlops-dev/mlops:{}", env!("CARGO_PKG_VERSION"))),
            oras_image: required("oras_image")?,
            registry_secret: text("registry_secret"),
            upload_timeout_seconds: whole_seconds(mlops_provider_support::duration(config, "upload_timeout")?),
            kserve_mode: if text("kserve_mode").as_deref() == Some("raw") { KserveMode::Raw } else { KserveMode::Serverless },
            knative_features: config
                .get("knative_features")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            spot_node_selector: config
                .get("spot_node_selector")
                .and_then(Value::to_plain_json)
                .and_then(|selector| selector.as_object().cloned())
                .unwrap_or_default(),
            spot_tolerations: config
                .get("spot_tolerations")
                .and_then(Value::to_plain_json)
                .and_then(|tolerations| tolerations.as_array().cloned())
                .unwrap_or_default(),
        })
    }
}

/// Kinds whose objects already say what they are (a Job or TrainJob, a
/// Deployment or InferenceService, a CronJob): their names leave the kind out.
const KINDS_NAMED_BY_THEIR_OBJECTS: &[&str] = &["training", "serving", "monitor"];

/// A Kubernetes object name for the resource at `address`: its module
/// names, its kind (unless the object's kind says it), its name and its
/// instance key, in lowercase letters, digits and dashes, at most `limit`
/// characters (`module.team.serving.fraud_api` is `team-fraud-api`). The
/// parts come from the address parser: a module or resource named like a
/// kind keeps its name.
pub fn object_name(address: &str, limit: usize) -> String {
    let Ok(parsed) = address.parse::<ResourceAddress>() else { return dns_name(address, address, limit) };
    let mut words = parsed.module_path.clone();
    if parsed.mode == Mode::Data {
        words.push("data".to_owned());
    }
    if !KINDS_NAMED_BY_THEIR_OBJECTS.contains(&parsed.kind.as_str()) {
        words.push(parsed.kind.clone());
    }
    words.push(parsed.name.clone());
    match parsed.key {
        InstanceKey::None => {}
        InstanceKey::Index(index) => words.push(index.to_string()),
        InstanceKey::Key(key) => words.push(key),
    }
    dns_name(&words.join("-"), address, limit)
}

/// `text` as a DNS label (a label value, an object name): lowercase
/// letters, digits and dashes, at most `limit` characters. A longer one is
/// cut and ends with a hash of `identity`, so two things never share a name.
pub fn dns_name(text: &str, identity: &str, limit: usize) -> String {
    let mut name = String::new();
    for character in text.chars() {
        let character = character.to_ascii_lowercase();
        if character.is_ascii_alphanumeric() {
            name.push(character);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_matches('-').to_owned();
    let name = if name.is_empty() { "mlops".to_owned() } else { name };
    if name.len() <= limit {
        return name;
    }
    let hash = &blake3::hash(identity.as_bytes()).to_hex()[..8];
    format!("{}-{hash}", name[..limit - 9].trim_end_matches('-'))
}

fn block<'a>(config: &'a Configuration, name: &str) -> Option<&'a Configuration> {
    match config.get(name)?.revealed() {
        Value::Map(object) => Some(object),
        Value::List(items) => items.first().and_then(Value::as_object),
        _ => None,
    }
}

/// The `image` a workload runs, which `what` cannot do without.
fn required_image<'a>(config: &'a Configuration, what: &str) -> ProviderResult<&'a str> {
    text(config, "image")
        .filter(|image| !image.is_empty())
        .ok_or_else(|| ProviderError::with_help(format!("{what} needs `image`"), "set `image = \"REGISTRY/NAME:TAG\"`"))
}

/// A value as an environment variable holds it: text as written, anything
/// else as JSON.
fn scalar_text(value: &Value) -> String {
    match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_plain_json().map(|json| json.to_string()).unwrap_or_default(),
    }
}

fn environment_entry(name: &str, value: impl Into<String>) -> Json {
    json!({ "name": name, "value": value.into() })
}

/// The secrets a pod's environment holds: they reach the pod through a
/// Secret object (`secretKeyRef`), never through the manifest of the
/// workload, which the cluster shows to whoever may read it and mlops
/// keeps in state.
struct SecretEnvironment {
    /// The Secret's name (for a serving, known only once the values are:
    /// see [`SecretEnvironment::finish`]).
    name: String,
    values: std::collections::BTreeMap<String, String>,
}

/// Stands for the Secret's name in entries made before it is known.
impl SecretEnvironment {
    fn new(name: impl Into<String>) -> SecretEnvironment {
        SecretEnvironment { name: name.into(), values: std::collections::BTreeMap::new() }
    }

    /// An environment entry for `value`: in the manifest when it holds no
    /// secret, else a reference into the Secret.
    fn entry(&mut self, name: &str, value: &Value) -> Json {
        if !value.contains_sensitive() {
            return environment_entry(name, scalar_text(value));
        }
        self.values.insert(name.to_owned(), scalar_text(value));
        json!({ "name": name, "valueFrom": { "secretKeyRef": { "name": self.name, "key": name } } })
    }

    /// The Secret, if any value needed one. A name ending in `-env-HASH`
    /// (`content_named`) changes with the values, as kustomize's
    /// secretGenerator does, so that a Deployment referring to it rolls
    /// out when a secret changes; the entries in `env` are renamed to match.
    fn finish(self, env: &mut [Json], content_named: bool, namespace: &str, labels: &Json, annotations: &Json) -> Option<Json> {
        if self.values.is_empty() {
            return None;
        }
        let name = if content_named {
            let mut hasher = blake3::Hasher::new();
            for (key, value) in &self.values {
                hasher.update(&(key.len() as u64).to_le_bytes());
                hasher.update(key.as_bytes());
                hasher.update(&(value.len() as u64).to_le_bytes());
                hasher.update(value.as_bytes());
            }
            format!("{}-env-{}", self.name, &hasher.finalize().to_hex()[..10])
        } else {
            self.name.clone()
        };
        for entry in env.iter_mut() {
            if let Some(reference) = entry.pointer_mut("/valueFrom/secretKeyRef/name") {
                if reference.as_str() == Some(self.name.as_str()) {
                    *reference = Json::String(name.clone());
                }
            }
        }
        Some(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": name, "namespace": namespace, "labels": labels, "annotations": annotations },
            "type": "Opaque",
            "stringData": self.values,
        }))
    }
}

/// The user's `env`, as container environment entries.
fn user_environment(config: &Configuration, secrets: &mut SecretEnvironment) -> Vec<Json> {
    config.get("env").and_then(Value::as_object).into_iter().flatten().map(|(name, value)| secrets.entry(name, value)).collect()
}

/// `objects` as mlops records and compares them: a Secret's values left
/// out. They are in the cluster only; state keeps its name, which changes
/// with them.
pub fn without_secret_values(objects: &[Json]) -> Vec<Json> {
    objects
        .iter()
        .map(|object| {
            let mut object = object.clone();
            if object.get("kind").and_then(Json::as_str) == Some("Secret") {
                if let Some(fields) = object.as_object_mut() {
                    fields.remove("stringData");
                    fields.remove("data");
                }
            }
            object
        })
        .collect()
}

/// The serving's readiness probe: GET `path` (on `port`, when the runtime
/// names it), with the block's timing. Without a `readiness` block, `None`
/// (a Deployment then probes GET /health on its own).
fn readiness_probe(config: &Configuration, port: Option<&str>) -> ProviderResult<Option<Json>> {
    let Some(readiness) = block(config, "readiness") else { return Ok(None) };
    let mut http_get = json!({ "path": text(readiness, "path").unwrap_or("/health") });
    if let Some(port) = port {
        http_get["port"] = json!(port);
    }
    let mut probe = json!({ "httpGet": http_get });
    let initial_delay = whole_seconds(mlops_provider_support::duration(readiness, "initial_delay")?);
    if initial_delay > 0 {
        probe["initialDelaySeconds"] = json!(initial_delay);
    }
    probe["periodSeconds"] = json!(whole_seconds(mlops_provider_support::duration(readiness, "period")?).max(1));
    probe["failureThreshold"] = json!(readiness.get("failure_threshold").and_then(Value::as_u64).unwrap_or(3).max(1));
    Ok(Some(probe))
}

/// A CPU count in Kubernetes' canonical spelling: `2`, `500m`.
fn cpu_quantity(value: &Value) -> Option<String> {
    match value.revealed() {
        Value::Number(number) => {
            let cores = number.as_f64()?;
            if cores.fract() == 0.0 {
                Some(format!("{}", cores as i64))
            } else {
                Some(format!("{}m", (cores * 1000.0).round() as i64))
            }
        }
        other => other.as_str().map(str::to_owned),
    }
}

/// `resources { cpu, memory, gpus }` as requests and limits. GPUs are
/// limits only (the device plugin's rule); cpu and memory are both, so the
/// scheduler reserves what the run was promised.
fn resource_requirements(resources: Option<&Configuration>) -> Json {
    let mut limits = serde_json::Map::new();
    let mut requests = serde_json::Map::new();
    if let Some(resources) = resources {
        if let Some(cpu) = resources.get("cpu").and_then(cpu_quantity) {
            limits.insert("cpu".into(), Json::String(cpu.clone()));
            requests.insert("cpu".into(), Json::String(cpu));
        }
        if let Some(memory) = text(resources, "memory") {
            limits.insert("memory".into(), Json::String(memory.to_owned()));
            requests.insert("memory".into(), Json::String(memory.to_owned()));
        }
        let gpus = resources.get("gpus").and_then(Value::as_f64).unwrap_or(0.0);
        if gpus > 0.0 {
            limits.insert("nvidia.com/gpu".into(), Json::String(format!("{}", gpus as i64)));
        }
    }
    let mut requirements = serde_json::Map::new();
    if !limits.is_empty() {
        requirements.insert("limits".into(), Json::Object(limits));
    }
    if !requests.is_empty() {
        requirements.insert("requests".into(), Json::Object(requests));
    }
    Json::Object(requirements)
}

/// GPU placement: the GPU model as a node selector, and the toleration for
/// the taint GPU node pools carry so that only GPU work lands on them.
/// Where a training's pods go: the GPU model's nodes, the GPU taint, and
/// spot capacity when the training asks for it.
fn gpu_placement(resources: Option<&Configuration>, settings: &Settings, spot: bool) -> (Json, Json) {
    let gpus = resources.and_then(|resources| resources.get("gpus")).and_then(Value::as_f64).unwrap_or(0.0);
    let mut selector = serde_json::Map::new();
    if let Some(gpu_type) = resources.and_then(|resources| text(resources, "gpu_type")) {
        selector.insert(settings.gpu_node_label.clone(), Json::String(gpu_type.to_owned()));
    }
    let mut tolerations = Vec::new();
    if gpus > 0.0 {
        tolerations.push(json!({ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }));
    }
    if spot {
        selector.extend(settings.spot_node_selector.clone());
        tolerations.extend(settings.spot_tolerations.iter().cloned());
    }
    (Json::Object(selector), Json::Array(tolerations))
}

fn storage_environment(settings: &Settings) -> (Vec<Json>, Json) {
    let mut environment = Vec::new();
    if let Some(endpoint) = &settings.storage_endpoint {
        environment.push(environment_entry("AWS_ENDPOINT_URL", endpoint.clone()));
    }
    let from = match &settings.storage_secret {
        Some(secret) => json!([{ "secretRef": { "name": secret } }]),
        None => json!([]),
    };
    (environment, from)
}

fn storage_container(name: &str, script: String, settings: &Settings, mounts: Json) -> Json {
    let (environment, from) = storage_environment(settings);
    let mut container = json!({
        "name": name,
        "image": settings.storage_image,
        "command": ["sh", "-c", script],
        "env": environment,
        "volumeMounts": mounts,
    });
    if from.as_array().is_some_and(|from| !from.is_empty()) {
        container["envFrom"] = from;
    }
    container
}

/// The init container that puts a model version's files into
/// [`MODEL_DIRECTORY`], and the volumes it needs besides the model's own:
/// `oras pull` of the exact manifest for versions in an OCI registry (its
/// layers are the files, titled with their paths), the AWS CLI otherwise.
fn model_fetch(model: &ModelVersion, settings: &Settings) -> (Json, Vec<Json>) {
    let model_mount = json!({ "name": "model", "mountPath": MODEL_DIRECTORY });
    let Some(reference) = model.uri.strip_prefix("oci://") else {
        let script = format!("set -eu\naws s3 cp --recursive --only-show-errors {} {MODEL_DIRECTORY}\n", shell_quote(&model.uri));
        return (storage_container("fetch-model", script, settings, json!([model_mount])), Vec::new());
    };
    let host = reference.split('/').next().unwrap_or_default();
    let host_name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let mut arguments = vec!["pull".to_owned()];
    if host_name == "localhost" || host_name.starts_with("127.") {
        arguments.push("--plain-http".to_owned());
    }
    let mut mounts = vec![model_mount];
    let mut volumes = Vec::new();
    if let Some(secret) = &settings.registry_secret {
        arguments.extend(["--registry-config".to_owned(), "/etc/mlops/registry/.dockerconfigjson".to_owned()]);
        mounts.push(json!({ "name": "registry-credentials", "mountPath": "/etc/mlops/registry", "readOnly": true }));
        volumes.push(json!({ "name": "registry-credentials", "secret": { "secretName": secret } }));
    }
    arguments.extend([reference.to_owned(), "--output".to_owned(), MODEL_DIRECTORY.to_owned()]);
    (json!({ "name": "fetch-model", "image": settings.oras_image, "args": arguments, "volumeMounts": mounts }), volumes)
}

/// Single-quotes a value for `sh`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The resolved inputs of a training: name -> the data's uri.
pub type Inputs = BTreeMap<String, String>;

/// The longest name a TrainJob may have: JobSet names each pod
/// `NAME-node-INDEX-INDEX-XXXXX` and its hostname after it, which must stay a
/// DNS label; a longer TrainJob is accepted and then never starts, without
/// an error anywhere.
pub const TRAINJOB_NAME_LIMIT: usize = 48;
/// What the upload of a batch prediction's outputs reports once they are
/// uploaded, as its termination message (or into `$MLOPS_REPORT`): how
/// many files, their size, and their content version, `sha256:` of the
/// sorted lines `SHA256  ./PATH` of every file (see [`content_version`]).
pub const UPLOAD_REPORT: &str = r#"cd "${MLOPS_REPORT_DIR:-/mlops/output}" && files=$(( $(find . -type f | wc -l) )) && size=$(( $(find . -type f -exec cat {} + | wc -c) )) && digest=$(find . -type f | LC_ALL=C sort | while IFS= read -r file; do printf '%s  %s\n' "$(sha256sum < "$file" | cut -d' ' -f1)" "$file"; done | sha256sum | cut -d' ' -f1) && printf '{"version":"sha256:%s","files":%s,"size_bytes":%s}' "$digest" "$files" "$size" > "${MLOPS_REPORT:-/dev/termination-log}""#;

/// The content version [`UPLOAD_REPORT`] computes, of `(path, bytes)`
/// pairs (paths relative, `/`-separated): what a test checks the script
/// against, and what names predictions whoever computed them.
pub fn content_version(files: &[(String, Vec<u8>)]) -> String {
    let mut lines: Vec<String> =
        files.iter().map(|(path, bytes)| format!("{}  ./{path}\n", mlops_units::digest::sha256_hex(bytes))).collect();
    lines.sort_by(|left, right| left.split_once("  ").map(|(_, path)| path).cmp(&right.split_once("  ").map(|(_, path)| path)));
    mlops_units::digest::sha256_digest(lines.concat().as_bytes())
}

/// The container of a batch prediction's Job that runs the user's image.
pub const PREDICT_CONTAINER: &str = "predict";

/// The data a batch prediction runs on: where it is and its format.
#[derive(Debug, Clone)]
pub struct PredictionInput {
    pub uri: String,
    pub format: String,
}

/// The label that marks the pods of a scheduled batch prediction's runs.
pub const PREDICTION_LABEL: &str = "mlops.dev/batch-prediction";

/// What names a batch prediction's run: a run of its own, or, scheduled,
/// the Job its CronJob made (read from the pod's label at run time).
#[derive(Debug, Clone, Copy)]
pub enum RunName<'a> {
    Fixed(&'a str),
    FromJob,
}

/// Where a batch prediction's runs upload: `artifact_root/predictions/NAME/`.
pub fn predictions_prefix(address: &str, settings: &Settings) -> ProviderResult<String> {
    let root = settings.artifact_root.as_ref().ok_or_else(|| {
        ProviderError::with_help(
            "a Kubernetes batch prediction uploads its predictions to object storage, and the kubernetes provider names none",
            "set `artifact_root = \"s3://BUCKET/PREFIX\"` in the kubernetes provider block",
        )
    })?;
    Ok(format!("{root}/predictions/{}/", object_name(address, 63)))
}

/// The environment entry that holds a pod's index in its Indexed Job.
fn shard_entry() -> Json {
    json!({ "name": "MLOPS_SHARD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']" } } })
}

/// Stages the `MLOPS_SHARD`-th of every `shards` objects under `uri` (in
/// key order, folders left out): one shard's share of a batch prediction's
/// input.
fn shard_staging_script(uri: &str, shards: u64) -> String {
    let (bucket, prefix) = uri.trim_start_matches("s3://").split_once('/').unwrap_or((uri.trim_start_matches("s3://"), ""));
    format!(
        "set -eu\nbucket={}\nprefix={}\nmkdir -p {INPUTS_DIRECTORY}/input\naws s3api list-objects-v2 --bucket \"$bucket\" --prefix \"$prefix\" --query 'Contents[].Key' --output text | tr '\\t' '\\n' | grep -v -e '/$' -e '^None$' | LC_ALL=C sort | awk -v shard=\"$MLOPS_SHARD\" -v count={shards} '(NR - 1) % count == shard' | while IFS= read -r key; do aws s3 cp --only-show-errors \"s3://$bucket/$key\" \"{INPUTS_DIRECTORY}/input/${{key#\"$prefix\"}}\"; done\n",
        shell_quote(bucket),
        shell_quote(prefix)
    )
}

/// The environment entry that holds the name of the Job a pod belongs to.
fn job_name_entry(name: &str) -> Json {
    json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['batch.kubernetes.io/job-name']" } } })
}

/// A batch prediction as a Job: the model version fetched into
/// `MLOPS_MODEL_DIR`, the input staged into `MLOPS_INPUT_DIR`, the user's
/// image run, and what it writes into `MLOPS_OUTPUT_DIR` uploaded to
/// `artifact_root/predictions/NAME/RUN/` with its content version reported.
pub fn batch_prediction(
    address: &str,
    run_id: &str,
    config: &Configuration,
    model: &ModelVersion,
    input: &PredictionInput,
    settings: &Settings,
) -> ProviderResult<RenderedTraining> {
    let shards = config.get("shards").and_then(Value::as_u64).unwrap_or(1).max(1);
    let (values, secret, output_uri, pod) =
        batch_prediction_values(address, RunName::Fixed(run_id), shards, config, model, input, settings)?;
    Ok(RenderedTraining { manifest: render("job", &values)?, secret, distributed: false, artifact_uri: Some(output_uri), pod })
}

/// A scheduled batch prediction: a CronJob whose every run is the Job
/// [`batch_prediction`] renders, named after the Job the CronJob made;
/// and, when `env` holds secrets, their Secret, named by its content.
pub fn scheduled_batch_prediction(
    address: &str,
    config: &Configuration,
    model: &ModelVersion,
    input: &PredictionInput,
    settings: &Settings,
) -> ProviderResult<Vec<Json>> {
    let schedule = text(config, "schedule").ok_or_else(|| ProviderError::failed("a scheduled batch prediction needs `schedule`"))?;
    let (values, secret, _, _) = batch_prediction_values(address, RunName::FromJob, 1, config, model, input, settings)?;
    let job = render("job", &values)?;
    // A CronJob's name leaves room for the Jobs it names after itself.
    let mut metadata = job["metadata"].clone();
    metadata["name"] = json!(object_name(address, 52));
    let cronjob = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata,
        "spec": {
            "schedule": schedule,
            // A run still going when the next is due finishes first.
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": { "metadata": { "labels": job["metadata"]["labels"].clone() }, "spec": job["spec"].clone() },
        },
    });
    Ok([cronjob].into_iter().chain(secret).collect())
}

type BatchValues = (Json, Option<Json>, String, PodAdditions);

fn batch_prediction_values(
    address: &str,
    run: RunName<'_>,
    shards: u64,
    config: &Configuration,
    model: &ModelVersion,
    input: &PredictionInput,
    settings: &Settings,
) -> ProviderResult<BatchValues> {
    let image = required_image(config, "a Kubernetes batch prediction")?;
    let prefix = predictions_prefix(address, settings)?;
    let name = object_name(address, 63);
    let sharded = shards > 1 && matches!(run, RunName::Fixed(_));
    let (output_uri, labels, secrets) = match run {
        // Each shard uploads under its own folder (the kubelet expands
        // `$(MLOPS_SHARD)`; the upload's shell reads it).
        RunName::Fixed(run_id) if sharded => (
            format!("{prefix}{run_id}/shard-$(MLOPS_SHARD)/"),
            json!({ MANAGED_BY_LABEL: "mlops", NAME_LABEL: name, RUN_LABEL: run_id }),
            SecretEnvironment::new(format!("{run_id}-env")),
        ),
        RunName::Fixed(run_id) => (
            format!("{prefix}{run_id}/"),
            json!({ MANAGED_BY_LABEL: "mlops", NAME_LABEL: name, RUN_LABEL: run_id }),
            SecretEnvironment::new(format!("{run_id}-env")),
        ),
        // The kubelet expands `$(MLOPS_RUN_ID)` in later entries; the
        // upload's shell reads it from its own environment.
        RunName::FromJob => (
            format!("{prefix}$(MLOPS_RUN_ID)/"),
            json!({ MANAGED_BY_LABEL: "mlops", NAME_LABEL: name, PREDICTION_LABEL: object_name(address, 52) }),
            SecretEnvironment::new(object_name(address, 45)),
        ),
    };
    let mut secrets = secrets;
    let annotations = json!({ ADDRESS_ANNOTATION: address });
    let run_id_entry = match run {
        RunName::Fixed(run_id) => environment_entry("MLOPS_RUN_ID", run_id),
        RunName::FromJob => job_name_entry("MLOPS_RUN_ID"),
    };
    let mut env = vec![run_id_entry];
    if sharded {
        env.push(shard_entry());
        env.push(environment_entry("MLOPS_SHARD_COUNT", shards.to_string()));
    }
    env.extend([
        environment_entry("MLOPS_MODEL_DIR", MODEL_DIRECTORY),
        environment_entry("MLOPS_MODEL_VERSION", model.version.clone()),
        environment_entry("MLOPS_INPUT_DIR", format!("{INPUTS_DIRECTORY}/input")),
        environment_entry("MLOPS_INPUT_FORMAT", input.format.clone()),
    ]);
    let inputs = Inputs::from([("input".to_owned(), input.uri.clone())]);
    let mut pod = run_pod_additions(&inputs, Some(&output_uri), settings, false, true, &mut env);
    if let (true, RunName::Fixed(run_id)) = (sharded, run) {
        for container in &mut pod.init_containers {
            let script = if container["name"] == STAGE_INPUTS_CONTAINER {
                Some(shard_staging_script(&input.uri, shards))
            } else if container["name"] == UPLOAD_OUTPUTS_CONTAINER {
                let quoted = shell_quote(&output_uri);
                let expanded = format!("{}\"$MLOPS_SHARD\"/", shell_quote(&format!("{prefix}{run_id}/shard-")));
                container.pointer("/command/2").and_then(Json::as_str).map(|script| script.replace(&quoted, &expanded))
            } else {
                None
            };
            if let Some(script) = script {
                container["command"][2] = json!(script);
                if let Some(environment) = container["env"].as_array_mut() {
                    environment.push(shard_entry());
                }
            }
        }
    }
    if let RunName::FromJob = run {
        // The upload names its destination after the Job, at run time.
        for container in &mut pod.init_containers {
            if container["name"] == UPLOAD_OUTPUTS_CONTAINER {
                if let Some(script) = container.pointer_mut("/command/2") {
                    let quoted = shell_quote(&output_uri);
                    let expanded = format!("{}\"$MLOPS_RUN_ID\"/", shell_quote(&prefix));
                    *script = json!(script.as_str().unwrap_or_default().replace(&quoted, &expanded));
                }
                if let Some(environment) = container["env"].as_array_mut() {
                    environment.push(job_name_entry("MLOPS_RUN_ID"));
                }
            }
        }
    }
    let (fetch, model_volumes) = model_fetch(model, settings);
    pod.init_containers.insert(0, fetch);
    pod.volumes.push(json!({ "name": "model", "emptyDir": {} }));
    pod.volumes.extend(model_volumes);
    pod.mounts.push(json!({ "name": "model", "mountPath": MODEL_DIRECTORY, "readOnly": true }));
    env.extend(user_environment(config, &mut secrets));
    let secret = secrets.finish(&mut env, matches!(run, RunName::FromJob), &settings.namespace, &labels, &annotations);
    let resources = block(config, "resources");
    let (node_selector, tolerations) = gpu_placement(resources, settings, false);
    let command = config.get("command").filter(|command| command.as_array().is_some_and(|items| !items.is_empty())).cloned();
    let values = json!({
        "name": match run { RunName::Fixed(run_id) => run_id, RunName::FromJob => name.as_str() },
        "namespace": settings.namespace,
        "labels": labels,
        "annotations": annotations,
        "timeout_seconds": whole_seconds(mlops_provider_support::duration(config, "timeout")?),
        "spot": false,
        "grace_seconds": pod.grace_seconds,
        "node_selector": non_empty(node_selector),
        "tolerations": non_empty(tolerations),
        "init_containers": non_empty(Json::Array(pod.init_containers.clone())),
        "completions": if sharded { json!(shards) } else { Json::Null },
        "container": PREDICT_CONTAINER,
        "image": image,
        "command": command,
        "env": env,
        "resources": resource_requirements(resources),
        "volume_mounts": pod.mounts,
        "volumes": pod.volumes,
    });
    Ok((values, secret, output_uri, pod))
}

/// The container of a feature set's Indexed Job.
pub const SHARD_CONTAINER: &str = "shard";

/// A feature set computed in the cluster: an Indexed Job of `shards` pods
/// of the mlops image, each running `mlops features-shard` over its share
/// of the dataset's files and uploading its Parquet part under
/// `output_uri`; each reports its part's version as its termination
/// message. `spec` is the feature set's written configuration and dataset.
pub fn feature_shards(
    address: &str,
    run_id: &str,
    spec: &Json,
    shards: u64,
    output_uri: &str,
    config: &Configuration,
    settings: &Settings,
) -> ProviderResult<RenderedTraining> {
    let (env, env_from) = storage_environment(settings);
    let labels = json!({ MANAGED_BY_LABEL: "mlops", NAME_LABEL: object_name(address, 63), RUN_LABEL: run_id });
    let shards = shards.max(1);
    let mut container = json!({
        "name": SHARD_CONTAINER,
        "image": settings.monitor_image,
        "args": ["features-shard", "--spec", spec.to_string(), "--count", shards.to_string(), "--output", output_uri, "--report", METRICS_FILE],
        "env": env,
        "terminationMessagePath": METRICS_FILE,
        "terminationMessagePolicy": "File",
    });
    if env_from.as_array().is_some_and(|from| !from.is_empty()) {
        container["envFrom"] = env_from;
    }
    let resources = resource_requirements(block(config, "resources"));
    if resources.as_object().is_some_and(|resources| !resources.is_empty()) {
        container["resources"] = resources;
    }
    let manifest = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": run_id, "namespace": settings.namespace, "labels": labels, "annotations": { ADDRESS_ANNOTATION: address } },
        "spec": {
            // One pod per shard, told its index by JOB_COMPLETION_INDEX; a
            // failed shard fails the run, never retried silently.
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            "backoffLimit": 0,
            "activeDeadlineSeconds": whole_seconds(mlops_provider_support::duration(config, "timeout")?),
            "template": {
                "metadata": { "labels": labels },
                "spec": { "restartPolicy": "Never", "containers": [container] },
            },
        },
    });
    Ok(RenderedTraining {
        manifest,
        secret: None,
        distributed: false,
        // The shards upload their parts themselves: there is no upload
        // sidecar to check (`artifact_uri` is for that).
        artifact_uri: None,
        pod: PodAdditions::default(),
    })
}

/// The init containers a run's pod gets around the training container.
pub const STAGE_INPUTS_CONTAINER: &str = "stage-inputs";
pub const UPLOAD_OUTPUTS_CONTAINER: &str = "upload-outputs";
/// The training container of a Job, and of a Kubeflow Trainer run (Trainer's name).
pub const JOB_TRAINING_CONTAINER: &str = "train";
pub const TRAINER_TRAINING_CONTAINER: &str = "node";
/// The label Kubeflow Trainer marks its training step's replicated job with.
const TRAINER_STEP_LABEL: &str = "trainer.kubeflow.org/trainjob-ancestor-step";

/// What a run's pod gets besides the training container's own settings:
/// staging of the inputs, the upload of the outputs, their volumes and
/// mounts, and GPU placement.
#[derive(Debug, Clone, Default)]
pub struct PodAdditions {
    pub init_containers: Vec<Json>,
    pub volumes: Vec<Json>,
    /// Mounts of the training container.
    pub mounts: Vec<Json>,
    pub node_selector: serde_json::Map<String, Json>,
    pub tolerations: Vec<Json>,
    /// The pod's termination grace period: the time the upload has once
    /// the training container has exited.
    pub grace_seconds: Option<u64>,
}

/// What a training renders to: the object, and facts the provider needs.
#[derive(Debug, Clone)]
pub struct RenderedTraining {
    pub manifest: Json,
    /// The Secret the run's pods read their secret environment from,
    /// created before the run and deleted once it ends.
    pub secret: Option<Json>,
    pub distributed: bool,
    pub artifact_uri: Option<String>,
    /// For a distributed run, what the TrainingRuntime it runs in adds to
    /// the runtime it is derived from ([`training_runtime`]).
    pub pod: PodAdditions,
}

/// The staging init container, the upload sidecar and their volumes.
///
/// The upload is a native sidecar (an init container with `restartPolicy:
/// Always`): the kubelet stops it with SIGTERM once the training container
/// has exited, and it uploads then, within the pod's termination grace
/// period. Its exit code does not change the pod's phase, so the provider
/// reads it from the pod's status after the run. On a distributed run only
/// the pod of node 0 uploads.
fn run_pod_additions(
    inputs: &Inputs,
    artifact_uri: Option<&str>,
    settings: &Settings,
    rank_zero_only: bool,
    report_content: bool,
    env: &mut Vec<Json>,
) -> PodAdditions {
    let mut additions = PodAdditions::default();
    if !inputs.is_empty() {
        let mut script = String::from("set -eu\n");
        for (name, uri) in inputs {
            let directory = format!("{INPUTS_DIRECTORY}/{name}");
            env.push(environment_entry(&format!("MLOPS_INPUT_{}", name.to_uppercase()), directory.clone()));
            script.push_str(&format!("aws s3 cp --recursive --only-show-errors {} {}\n", shell_quote(uri), shell_quote(&directory)));
        }
        additions.volumes.push(json!({ "name": "inputs", "emptyDir": {} }));
        additions.mounts.push(json!({ "name": "inputs", "mountPath": INPUTS_DIRECTORY, "readOnly": true }));
        additions.init_containers.push(storage_container(
            STAGE_INPUTS_CONTAINER,
            script,
            settings,
            json!([{ "name": "inputs", "mountPath": INPUTS_DIRECTORY }]),
        ));
    }
    env.push(environment_entry("MLOPS_OUTPUT_DIR", OUTPUT_DIRECTORY));
    additions.volumes.push(json!({ "name": "output", "emptyDir": {} }));
    additions.mounts.push(json!({ "name": "output", "mountPath": OUTPUT_DIRECTORY }));
    if let Some(uri) = artifact_uri {
        let mut upload = format!("aws s3 cp --recursive --only-show-errors {OUTPUT_DIRECTORY} {}", shell_quote(uri));
        if report_content {
            upload = format!("{upload} || exit $?; {UPLOAD_REPORT}");
        }
        let script = if rank_zero_only {
            format!("upload() {{ if [ \"$MLOPS_NODE_INDEX\" != 0 ]; then exit 0; fi; {upload}; exit $?; }}\ntrap upload TERM\nwhile :; do sleep 1; done\n")
        } else {
            format!("upload() {{ {upload}; exit $?; }}\ntrap upload TERM\nwhile :; do sleep 1; done\n")
        };
        let mut uploader =
            storage_container(UPLOAD_OUTPUTS_CONTAINER, script, settings, json!([{ "name": "output", "mountPath": OUTPUT_DIRECTORY }]));
        uploader["restartPolicy"] = json!("Always");
        if rank_zero_only {
            // The pod's index among the run's nodes, from the label the Job
            // controller puts on every pod of an indexed Job.
            if let Some(environment) = uploader["env"].as_array_mut() {
                environment.push(json!({ "name": "MLOPS_NODE_INDEX", "valueFrom": { "fieldRef": {
                    "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']" } } }));
            }
        }
        additions.init_containers.push(uploader);
        additions.grace_seconds = Some(settings.upload_timeout_seconds);
        env.push(environment_entry("MLOPS_ARTIFACT_URI", uri.to_owned()));
    }
    additions
}

/// A training as a Job (one node) or a Kubeflow TrainJob (`distributed`).
pub fn training(
    address: &str,
    run_id: &str,
    config: &Configuration,
    inputs: &Inputs,
    settings: &Settings,
) -> ProviderResult<RenderedTraining> {
    let image = required_image(config, "a Kubernetes training")?;
    let resources = block(config, "resources");
    let distributed = block(config, "distributed");
    let artifact_uri = settings.artifact_root.as_ref().map(|root| format!("{root}/{run_id}/"));
    let mut secrets = SecretEnvironment::new(format!("{run_id}-env"));
    let hyperparameters = config.get("hyperparameters").cloned().unwrap_or_else(|| Value::Map(Configuration::new()));
    let all_hyperparameters = match hyperparameters.to_plain_json() {
        Some(json) if hyperparameters.contains_sensitive() => Value::Sensitive(Box::new(Value::String(json.to_string()))),
        Some(json) => Value::String(json.to_string()),
        None => Value::String("{}".to_owned()),
    };
    let mut env = vec![environment_entry("MLOPS_RUN_ID", run_id), secrets.entry("MLOPS_HYPERPARAMETERS", &all_hyperparameters)];
    for (name, value) in hyperparameters.as_object().into_iter().flatten() {
        env.push(secrets.entry(&format!("MLOPS_HP_{}", name.to_uppercase()), value));
    }
    env.push(environment_entry("MLOPS_METRICS_FILE", METRICS_FILE));
    let labels = json!({
        MANAGED_BY_LABEL: "mlops",
        NAME_LABEL: object_name(address, 63),
        RUN_LABEL: run_id,
    });
    let annotations = json!({ ADDRESS_ANNOTATION: address });
    let timeout_seconds = whole_seconds(mlops_provider_support::duration(config, "timeout")?);
    let spot = config.get("spot").and_then(Value::as_bool).unwrap_or(false);
    let (node_selector, tolerations) = gpu_placement(resources, settings, spot);
    let command = config.get("command").filter(|command| command.as_array().is_some_and(|items| !items.is_empty())).cloned();
    let mut pod = run_pod_additions(inputs, artifact_uri.as_deref(), settings, distributed.is_some(), false, &mut env);
    pod.node_selector = node_selector.as_object().cloned().unwrap_or_default();
    pod.tolerations = tolerations.as_array().cloned().unwrap_or_default();
    env.extend(user_environment(config, &mut secrets));
    let secret = secrets.finish(&mut env, false, &settings.namespace, &labels, &annotations);

    if let Some(distributed) = distributed {
        if run_id.len() > TRAINJOB_NAME_LIMIT {
            return Err(ProviderError::failed(format!(
                "the run name `{run_id}` is longer than the {TRAINJOB_NAME_LIMIT} characters a TrainJob's JobSet can name its pods after"
            )));
        }
        // The run's own TrainingRuntime (named like the run) carries the
        // staging, the upload and the placement: a TrainJob cannot add
        // containers in any Trainer release, and its overrides differ
        // between releases.
        let values = json!({
            "name": run_id,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": annotations,
            "runtime": run_id,
            "image": image,
            "command": command,
            "env": env,
            "nodes": distributed.get("nodes").and_then(Value::as_f64).unwrap_or(1.0) as i64,
            "procs_per_node": distributed.get("procs_per_node").and_then(Value::as_f64).unwrap_or(1.0) as i64,
            "resources": resource_requirements(resources),
        });
        return Ok(RenderedTraining { manifest: render("trainjob", &values)?, secret, distributed: true, artifact_uri, pod });
    }

    let values = json!({
        "name": run_id,
        "namespace": settings.namespace,
        "labels": labels,
        "annotations": annotations,
        "timeout_seconds": timeout_seconds,
        "spot": spot,
        "grace_seconds": pod.grace_seconds,
        "node_selector": non_empty(Json::Object(pod.node_selector.clone())),
        "tolerations": non_empty(Json::Array(pod.tolerations.clone())),
        "init_containers": non_empty(Json::Array(pod.init_containers.clone())),
        "container": JOB_TRAINING_CONTAINER,
        "image": image,
        "command": command,
        "env": env,
        "resources": resource_requirements(resources),
        "volume_mounts": pod.mounts,
        "volumes": pod.volumes,
    });
    Ok(RenderedTraining { manifest: render("job", &values)?, secret, distributed: false, artifact_uri, pod })
}

/// The runtime a distributed run's TrainingRuntime is derived from: a
/// ClusterTrainingRuntime or TrainingRuntime as the cluster has it.
#[derive(Debug, Clone)]
pub struct BaseRuntime {
    /// `ClusterTrainingRuntime` or `TrainingRuntime`.
    pub kind: String,
    pub name: String,
    /// Its `spec`.
    pub spec: Json,
    /// Its labels (Trainer reads `trainer.kubeflow.org/framework`).
    pub labels: Json,
}

/// The TrainingRuntime a distributed run runs in: `base` with the run's
/// staging, upload, volumes and GPU placement added to the pods of its
/// training step. It is named like the run, lives and goes with it.
pub fn training_runtime(address: &str, rendered: &RenderedTraining, base: &BaseRuntime, settings: &Settings) -> ProviderResult<Json> {
    let run_id = rendered.manifest.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default().to_owned();
    let mut spec = base.spec.clone();
    let described = format!("{} `{}`", base.kind, base.name);
    let jobs = spec
        .pointer_mut("/template/spec/replicatedJobs")
        .and_then(Json::as_array_mut)
        .ok_or_else(|| ProviderError::failed(format!("{described} has no replicated jobs (spec.template.spec.replicatedJobs)")))?;
    let is_training_step = |job: &Json| {
        job.pointer(&format!("/template/metadata/labels/{}", TRAINER_STEP_LABEL.replace('/', "~1"))).and_then(Json::as_str)
            == Some("trainer")
    };
    let index = jobs
        .iter()
        .position(is_training_step)
        .or_else(|| jobs.iter().position(|job| job.get("name").and_then(Json::as_str) == Some(TRAINER_TRAINING_CONTAINER)))
        .ok_or_else(|| {
            ProviderError::with_help(
                format!("{described} has no training step (a replicated job labelled {TRAINER_STEP_LABEL}: trainer)"),
                "set `training_runtime` on the kubernetes provider to a Kubeflow Trainer runtime such as torch-distributed",
            )
        })?;
    let pod_spec = jobs[index]
        .pointer_mut("/template/spec/template/spec")
        .and_then(Json::as_object_mut)
        .ok_or_else(|| ProviderError::failed(format!("{described}'s training step has no pod template")))?;
    let pod = &rendered.pod;
    let init_containers = pod_spec.entry("initContainers").or_insert(json!([]));
    for container in &pod.init_containers {
        let name = container["name"].as_str().unwrap_or_default();
        let list =
            init_containers.as_array_mut().ok_or_else(|| ProviderError::failed(format!("{described}: initContainers is not a list")))?;
        if list.iter().any(|existing| existing["name"] == container["name"]) {
            return Err(ProviderError::failed(format!("{described} already has an init container named `{name}`, which mlops adds")));
        }
        list.push(container.clone());
    }
    let volumes = pod_spec.entry("volumes").or_insert(json!([]));
    volumes.as_array_mut().into_iter().for_each(|list| list.extend(pod.volumes.iter().cloned()));
    let containers = pod_spec.get_mut("containers").and_then(Json::as_array_mut);
    let trainer = containers
        .and_then(|containers| containers.iter_mut().find(|container| container["name"] == TRAINER_TRAINING_CONTAINER))
        .ok_or_else(|| {
            ProviderError::failed(format!("{described}'s training step has no container named `{TRAINER_TRAINING_CONTAINER}`"))
        })?;
    if let Some(entries) = trainer.as_object_mut() {
        let mounts = entries.entry("volumeMounts").or_insert(json!([]));
        mounts.as_array_mut().into_iter().for_each(|list| list.extend(pod.mounts.iter().cloned()));
    }
    if !pod.node_selector.is_empty() {
        let selector = pod_spec.entry("nodeSelector").or_insert(json!({}));
        selector.as_object_mut().into_iter().for_each(|selector| selector.extend(pod.node_selector.clone()));
    }
    if !pod.tolerations.is_empty() {
        let tolerations = pod_spec.entry("tolerations").or_insert(json!([]));
        tolerations.as_array_mut().into_iter().for_each(|list| list.extend(pod.tolerations.iter().cloned()));
    }
    if let Some(seconds) = pod.grace_seconds {
        pod_spec.insert("terminationGracePeriodSeconds".into(), json!(seconds));
    }
    let mut labels = base.labels.as_object().cloned().unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.into(), json!("mlops"));
    labels.insert(RUN_LABEL.into(), json!(run_id));
    Ok(json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainingRuntime",
        "metadata": {
            "name": run_id,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": { ADDRESS_ANNOTATION: address, "mlops.dev/base-runtime": format!("{}/{}", base.kind, base.name) },
        },
        "spec": spec,
    }))
}

/// `null` for an empty object or list, so `{{#if}}` leaves the field out.
fn non_empty(value: Json) -> Json {
    match &value {
        Json::Object(object) if object.is_empty() => Json::Null,
        Json::Array(items) if items.is_empty() => Json::Null,
        _ => value,
    }
}

/// A duration in whole seconds, rounded up, at least one (what
/// `activeDeadlineSeconds` and grace periods take).
pub fn whole_seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

/// The model version a serving runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelVersion {
    pub version: String,
    pub uri: String,
}

/// Which phase of a rollout to render (KServe blue/green applies twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutPhase {
    /// The steady state the configuration asks for.
    Final,
    /// The new version deployed with no traffic, before the switch.
    GreenWithoutTraffic,
}

fn replica_bounds(config: &Configuration) -> (i64, i64) {
    let replicas = block(config, "replicas");
    let bound =
        |name: &str, default: f64| replicas.and_then(|replicas| replicas.get(name)).and_then(Value::as_f64).unwrap_or(default) as i64;
    let min = bound("min", 1.0);
    let max = bound("max", min.max(1) as f64).max(min);
    (min, max)
}

/// A serving's objects, in the order they are applied.
pub fn serving(
    address: &str,
    config: &Configuration,
    model: &ModelVersion,
    phase: RolloutPhase,
    settings: &Settings,
) -> ProviderResult<Vec<Json>> {
    let image = required_image(config, "Kubernetes serving")?;
    let runtime = text(config, "runtime").unwrap_or("deployment");
    let resources = block(config, "resources");
    // Servings stay on on-demand capacity: a preempted predictor is an outage.
    let (node_selector, tolerations) = gpu_placement(resources, settings, false);
    let name = object_name(address, 45);
    let labels = json!({ MANAGED_BY_LABEL: "mlops", NAME_LABEL: name });
    let annotations = json!({ ADDRESS_ANNOTATION: address });
    let (min_replicas, max_replicas) = replica_bounds(config);
    let autoscale = block(config, "autoscale");
    let mut env =
        vec![environment_entry("MLOPS_MODEL_DIR", MODEL_DIRECTORY), environment_entry("MLOPS_MODEL_VERSION", model.version.clone())];
    let mut secrets = SecretEnvironment::new(name.clone());
    // Knative sets PORT itself (to the container port) and refuses it in a
    // Service; everywhere else the server is told.
    if !(runtime == "kserve" && settings.kserve_mode == KserveMode::Serverless) {
        env.push(environment_entry("PORT", "8080"));
    }
    match runtime {
        "kserve" => {
            // KServe's storage initializer downloads STORAGE_URI to
            // /mnt/models; it cannot read OCI artifacts, so those are pulled
            // by an init container of the predictor's own.
            let oci = model.uri.starts_with("oci://");
            let (init_containers, volumes) = if oci {
                let (fetch, mut volumes) = model_fetch(model, settings);
                volumes.insert(0, json!({ "name": "model", "emptyDir": {} }));
                (json!([fetch]), json!(volumes))
            } else {
                env.insert(0, environment_entry("STORAGE_URI", model.uri.clone()));
                (Json::Null, Json::Null)
            };
            env.extend(user_environment(config, &mut secrets));
            let secret = secrets.finish(&mut env, true, &settings.namespace, &labels, &annotations);
            let rollout = block(config, "rollout");
            let strategy = rollout.and_then(|rollout| text(rollout, "strategy")).unwrap_or("all_at_once");
            // Only Knative splits traffic; validation refuses a canary or a
            // blue/green rollout in raw mode.
            let canary_traffic_percent = match (strategy, phase, settings.kserve_mode) {
                (_, _, KserveMode::Raw) => None,
                (_, RolloutPhase::GreenWithoutTraffic, _) => Some(0),
                ("canary", _, _) => {
                    rollout.and_then(|rollout| rollout.get("traffic_percent")).and_then(Value::as_f64).map(|percent| percent as i64)
                }
                _ => None,
            };
            let metric = autoscale.and_then(|autoscale| text(autoscale, "metric"));
            let mut annotations = annotations.clone();
            annotations[KSERVE_MODE_ANNOTATION] = json!(settings.kserve_mode.annotation());
            match settings.kserve_mode {
                // Raw mode scales with a HorizontalPodAutoscaler.
                KserveMode::Raw => annotations["serving.kserve.io/autoscalerClass"] = json!("hpa"),
                // Knative scales on cpu or memory only through its HPA class.
                KserveMode::Serverless if matches!(metric, Some("cpu" | "memory")) => {
                    annotations["autoscaling.knative.dev/class"] = json!("hpa.autoscaling.knative.dev")
                }
                KserveMode::Serverless => {}
            }
            let values = json!({
                "name": name,
                "namespace": settings.namespace,
                "labels": labels,
                "annotations": annotations,
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
                "scale_metric": autoscale.and_then(|autoscale| text(autoscale, "metric")),
                "scale_target": autoscale.and_then(|autoscale| autoscale.get("target")).and_then(Value::as_f64).map(|target| target.round() as i64),
                "has_canary": canary_traffic_percent.is_some(),
                "canary_traffic_percent": canary_traffic_percent,
                "node_selector": non_empty(node_selector),
                "tolerations": non_empty(tolerations),
                "image": image,
                "env": env,
                "resources": resource_requirements(resources),
                // Knative probes the container's own port: none is named.
                "readiness": readiness_probe(config, None)?,
                "init_containers": init_containers,
                "volumes": volumes,
            });
            // The object that serves comes first (refresh and delete go by
            // it); the Secret is applied with it, before anything waits.
            Ok([render("inferenceservice", &values)?].into_iter().chain(secret).collect())
        }
        _ => {
            env.extend(user_environment(config, &mut secrets));
            let secret = secrets.finish(&mut env, true, &settings.namespace, &labels, &annotations);
            let autoscaled = max_replicas > min_replicas;
            let (fetch, mut volumes) = model_fetch(model, settings);
            volumes.insert(0, json!({ "name": "model", "emptyDir": {} }));
            let selector = json!({ NAME_LABEL: name });
            let mut pod_labels = labels.clone();
            pod_labels["mlops.dev/model-version"] = Json::String(dns_name(&model.version, &model.version, 63));
            let values = json!({
                "name": name,
                "namespace": settings.namespace,
                "labels": labels,
                "annotations": annotations,
                "replicas": if autoscaled { Json::Null } else { json!(min_replicas) },
                "selector": selector,
                "pod_labels": pod_labels,
                "pod_annotations": { "mlops.dev/model-uri": model.uri },
                "node_selector": non_empty(node_selector),
                "tolerations": non_empty(tolerations),
                "init_containers": [fetch],
                "volumes": volumes,
                "image": image,
                "env": env,
                "resources": resource_requirements(resources),
                "readiness": readiness_probe(config, Some("http"))?
                    .unwrap_or_else(|| json!({ "httpGet": { "path": "/health", "port": "http" } })),
            });
            let mut objects = vec![render("deployment", &values)?];
            objects.push(render(
                "service",
                &json!({ "name": name, "namespace": settings.namespace, "labels": labels, "selector": selector }),
            )?);
            if autoscaled {
                let metric = autoscale.and_then(|autoscale| text(autoscale, "metric")).unwrap_or("cpu");
                let target = autoscale.and_then(|autoscale| autoscale.get("target")).and_then(Value::as_f64).unwrap_or(80.0);
                objects.push(render(
                    "hpa",
                    &json!({
                        "name": name,
                        "namespace": settings.namespace,
                        "labels": labels,
                        "min_replicas": min_replicas.max(1),
                        "max_replicas": max_replicas,
                        "metric": metric,
                        "target": target.round() as i64,
                    }),
                )?);
            }
            // The object that serves comes first (refresh and delete go by
            // it); the Secret is applied with it, before anything waits.
            objects.extend(secret);
            Ok(objects)
        }
    }
}

/// A monitor as a CronJob that recomputes drift on a schedule and reports
/// the scores in its termination message.
pub fn monitor(address: &str, config: &Configuration, reference_uri: &str, settings: &Settings) -> ProviderResult<Json> {
    let name = object_name(address, 52);
    let columns: Vec<String> =
        config.get("columns").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    let threshold = config.get("threshold").map(scalar_text).unwrap_or_else(|| "0.2".to_owned());
    let args = json!([
        "drift",
        "--reference",
        reference_uri,
        "--current",
        text(config, "current").unwrap_or_default(),
        "--columns",
        columns.join(","),
        "--method",
        text(config, "method").unwrap_or("psi"),
        "--threshold",
        threshold,
        "--output",
        METRICS_FILE,
    ]);
    let (env, env_from) = storage_environment(settings);
    let values = json!({
        "name": name,
        "namespace": settings.namespace,
        "labels": { MANAGED_BY_LABEL: "mlops", NAME_LABEL: name, MONITOR_LABEL: name },
        "annotations": { ADDRESS_ANNOTATION: address },
        "schedule": text(config, "schedule").unwrap_or("0 * * * *"),
        "image": settings.monitor_image,
        "args": args,
        "env": env,
        "env_from": non_empty(env_from),
    });
    render("cronjob", &values)
}

#[cfg(test)]
mod tests {
    use super::{dns_name, object_name};

    #[test]
    fn object_names_come_from_the_parts_of_the_address() {
        for (address, expected) in [
            ("serving.fraud_api", "fraud-api"),
            ("training.fraud", "fraud"),
            ("monitor.drift", "drift"),
            ("batch_prediction.score", "batch-prediction-score"),
            ("feature_set.txn", "feature-set-txn"),
            ("module.team.serving.api", "team-api"),
            ("module.a.module.b.training.t", "a-b-t"),
            ("training.t[0]", "t-0"),
            ("serving.s[\"eu west\"]", "s-eu-west"),
            ("serving.s[\"a.b\"]", "s-a-b"),
            ("data.model.baseline", "data-model-baseline"),
            // Names that are also kinds or keywords are names: splitting the
            // text dropped them, and these became `mlops`, `api` and `t`.
            ("serving.training", "training"),
            ("module.serving.serving.api", "serving-api"),
            ("module.module.training.t", "module-t"),
        ] {
            assert_eq!(object_name(address, 63), expected, "{address}");
        }
    }

    #[test]
    fn long_names_are_cut_and_keep_a_hash_of_the_whole_address() {
        let long = format!("serving.{}", "a".repeat(80));
        let other = format!("module.m.serving.{}", "a".repeat(80));
        let (first, second) = (object_name(&long, 45), object_name(&other, 45));
        assert_eq!(first.len(), 45);
        assert!(second.len() <= 45);
        assert_ne!(first, second);
        assert_eq!(first, object_name(&long, 45), "the same address gives the same name");
    }

    #[test]
    fn text_that_is_not_an_address_becomes_a_dns_label() {
        assert_eq!(dns_name("sha256:ABC.1", "sha256:ABC.1", 63), "sha256-abc-1");
        assert_eq!(dns_name("...", "...", 63), "mlops");
        assert_eq!(object_name("not an address", 63), "not-an-address");
    }
}
