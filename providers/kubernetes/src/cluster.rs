//! The connection to one cluster, and the few operations the provider needs:
//! server-side apply, get, delete, pods and their logs.
//!
//! Everything goes through kube-rs against whatever kubeconfig or in-cluster
//! configuration the provider block names; nothing here knows about tests.
//! Errors are turned into one message that names the cluster and says what
//! to do: an unreachable API server, a kind the cluster does not serve (a
//! missing CRD such as KServe's), an RBAC denial, refused credentials, and
//! field-manager conflicts.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mlops_provider_api::{Configuration, Value};
use mlops_provider_api::{ProviderError, ProviderResult};
use serde_json::Value as Json;

pub const FIELD_MANAGER: &str = "mlops";

/// One cluster, as a provider block configures it.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// How messages name the cluster: the context, or the server URL.
    pub label: String,
    pub server: String,
    pub namespace: String,
    resources: std::sync::Arc<Mutex<HashMap<(String, String), ApiResource>>>,
}

/// A field another manager owns, from a server-side apply conflict.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// `.spec.replicas`
    pub field: String,
    /// `conflict with "kubectl" using apps/v1`
    pub message: String,
}

#[derive(Debug)]
pub enum ApplyFailure {
    Conflicts(Vec<Conflict>),
    Other(ProviderError),
}

impl Cluster {
    /// Connects as the provider block says: `kubeconfig` and `context` when
    /// given, otherwise the in-cluster service account, otherwise the
    /// default kubeconfig.
    pub async fn connect(config: &Configuration) -> ProviderResult<Cluster> {
        let text = |name: &str| config.get(name).and_then(Value::as_str).filter(|value| !value.is_empty()).map(str::to_owned);
        let context = text("context");
        let options = KubeConfigOptions { context: context.clone(), ..KubeConfigOptions::default() };
        let configuration = if let Some(kubeconfig) = read_kubeconfig(config)? {
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|error| kubeconfig_failure(context.as_deref(), &error.to_string()))?
        } else if context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            Config::incluster().map_err(|error| {
                ProviderError::with_help(
                    format!("cannot use the in-cluster configuration: {error}"),
                    "run mlops in a pod with a service account, or set `context` on the kubernetes provider",
                )
            })?
        } else {
            Config::from_kubeconfig(&options).await.map_err(|error| kubeconfig_failure(context.as_deref(), &error.to_string()))?
        };
        let server = configuration.cluster_url.to_string();
        // The provider block's namespace, else the context's (or the service
        // account's, in a pod), as kubectl does.
        let namespace = text("namespace").unwrap_or_else(|| configuration.default_namespace.clone());
        let client = Client::try_from(configuration).map_err(|error| {
            ProviderError::with_help(
                format!("cannot set up a client for the cluster at {server}: {error}"),
                "check the kubeconfig's cluster and user",
            )
        })?;
        let label = match &context {
            Some(context) => format!("`{context}` ({})", server.trim_end_matches('/')),
            None => format!("at {}", server.trim_end_matches('/')),
        };
        Ok(Cluster { client, label, server, namespace, resources: Default::default() })
    }

    /// The API resource for `apiVersion`/`kind`, from the cluster's
    /// discovery (cached). A kind the cluster does not serve is a missing
    /// CRD or API, and the error says which component provides it.
    pub async fn resource(&self, api_version: &str, kind: &str) -> ProviderResult<ApiResource> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(resource) = self.resources.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return Ok(resource.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind_id = GroupVersionKind::gvk(group, version, kind);
        let resource = match kube::discovery::pinned_kind(&self.client, &kind_id).await {
            Ok((resource, _)) => resource,
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(self.missing_kind(api_version, kind)),
            Err(kube::Error::Discovery(_)) => return Err(self.missing_kind(api_version, kind)),
            Err(error) => return Err(self.failure(&error, &format!("discover {kind} ({api_version})"))),
        };
        self.resources.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, resource.clone());
        Ok(resource)
    }

    fn missing_kind(&self, api_version: &str, kind: &str) -> ProviderError {
        let component = match api_version.split('/').next().unwrap_or_default() {
            "serving.kserve.io" => "KServe (https://kserve.github.io/website/), or use `runtime = \"deployment\"`",
            "trainer.kubeflow.org" => {
                "Kubeflow Trainer v2 (its CRDs and its ClusterTrainingRuntimes), or drop `distributed` to run a single-node Job"
            }
            _ => "the component that provides it",
        };
        ProviderError::with_help(
            format!("the cluster {} does not serve {kind} ({api_version}): its CRD is not installed", self.label),
            format!("install {component}"),
        )
    }

    /// The API of a kind in `namespace`; an empty namespace is a
    /// cluster-scoped kind (a ClusterTrainingRuntime).
    async fn api_for(&self, api_version: &str, kind: &str, namespace: &str) -> ProviderResult<Api<DynamicObject>> {
        let resource = self.resource(api_version, kind).await?;
        Ok(if namespace.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, &resource)
        })
    }

    /// Server-side apply with field manager `mlops`. Without `force`, fields
    /// owned by another manager with a different value come back as
    /// [`ApplyFailure::Conflicts`].
    pub async fn apply(&self, object: &Json, force: bool) -> Result<Json, ApplyFailure> {
        self.apply_as(FIELD_MANAGER, object, force).await
    }

    /// Server-side apply as another field manager (a handover of a field).
    pub async fn apply_as(&self, manager: &str, object: &Json, force: bool) -> Result<Json, ApplyFailure> {
        let reference = ObjectRef::of(object).map_err(ApplyFailure::Other)?;
        let ObjectRef { api_version, kind, namespace, name } = &reference;
        let api = self.api_for(api_version, kind, namespace).await.map_err(ApplyFailure::Other)?;
        let mut parameters = PatchParams::apply(manager);
        if force {
            parameters = parameters.force();
        }
        match api.patch(name, &parameters, &Patch::Apply(object)).await {
            Ok(applied) => Ok(serde_json::to_value(applied).unwrap_or(Json::Null)),
            Err(kube::Error::Api(status)) if status.code == 409 && status.reason == "Conflict" => {
                let conflicts = status
                    .details
                    .as_ref()
                    .map(|details| {
                        details.causes.iter().map(|cause| Conflict { field: cause.field.clone(), message: cause.message.clone() }).collect()
                    })
                    .unwrap_or_default();
                Err(ApplyFailure::Conflicts(conflicts))
            }
            Err(error) => Err(ApplyFailure::Other(self.failure(&error, &format!("apply {reference}")))),
        }
    }

    /// The live object, or `None` when it does not exist.
    pub async fn get(&self, reference: &ObjectRef) -> ProviderResult<Option<Json>> {
        let api = self.api_for(&reference.api_version, &reference.kind, &reference.namespace).await?;
        match api.get_opt(&reference.name).await {
            Ok(object) => Ok(object.map(|object| serde_json::to_value(object).unwrap_or(Json::Null))),
            Err(error) => Err(self.failure(&error, &format!("read {reference}"))),
        }
    }

    /// Deletes an object (and, in the background, what it owns); an object
    /// already gone is fine.
    pub async fn delete(&self, reference: &ObjectRef) -> ProviderResult<()> {
        let api = self.api_for(&reference.api_version, &reference.kind, &reference.namespace).await?;
        match api.delete(&reference.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(self.failure(&error, &format!("delete {reference}"))),
        }
    }

    pub async fn pods(&self, namespace: &str, label_selector: &str) -> ProviderResult<Vec<Json>> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.list(&ListParams::default().labels(label_selector)).await {
            Ok(list) => Ok(list.items.into_iter().map(|pod| serde_json::to_value(pod).unwrap_or(Json::Null)).collect()),
            Err(error) => Err(self.failure(&error, &format!("list pods in {namespace}"))),
        }
    }

    /// The last lines of a container's log; empty when it cannot be had
    /// (the pod is gone, or the kubelet no longer has it).
    pub async fn log_tail(&self, namespace: &str, pod: &str, container: &str, lines: i64) -> String {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let parameters = LogParams { container: Some(container.to_owned()), tail_lines: Some(lines), ..LogParams::default() };
        api.logs(pod, &parameters).await.unwrap_or_default()
    }

    /// One clear message for a failed call: what could not be done, on
    /// which cluster, why, and what to do.
    pub fn failure(&self, error: &kube::Error, doing: &str) -> ProviderError {
        match error {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
                match status.code {
                    401 => ProviderError::with_help(
                        format!("the cluster {} refused the credentials when trying to {doing}: {message}", self.label),
                        "refresh the kubeconfig user's token or certificate (log in to the cluster again)",
                    ),
                    // A validating webhook's denial comes back as 403 too.
                    403 if message.contains("admission webhook") => ProviderError::with_help(
                        format!("an admission webhook of the cluster {} refused to {doing}: {message}", self.label),
                        "this is the webhook's rule, not a missing permission: change what it names (see `kserve_mode`, `knative_features` and `training_runtime` on the kubernetes provider)",
                    ),
                    403 => ProviderError::with_help(
                        format!("the cluster {} denied permission to {doing}: {message}", self.label),
                        format!(
                            "grant the user RBAC permission for it in namespace `{}` (check with `kubectl auth can-i`), or use another context",
                            self.namespace
                        ),
                    ),
                    // The object has a field the cluster's schema for its kind
                    // does not have (a CRD of another release): sending it
                    // again cannot help.
                    500 if message.contains("field not declared in schema") => ProviderError::with_help(
                        format!("the cluster {} refused to {doing}: {message}", self.label),
                        "the cluster runs a version of this kind (its CRD) without that field; the README lists the KServe and Kubeflow Trainer versions mlops supports",
                    ),
                    408 | 429 | 500..=599 => ProviderError::Transient {
                        message: format!("the cluster {} could not {doing} just now ({}): {message}", self.label, status.code),
                    },
                    404 => ProviderError::with_help(
                        format!("the cluster {} could not {doing}: {message}", self.label),
                        format!("check that namespace `{}` exists (`kubectl create namespace {}`)", self.namespace, self.namespace),
                    ),
                    422 => ProviderError::with_help(
                        format!("the cluster {} rejected the object when trying to {doing}: {message}", self.label),
                        "this is what the API server says is invalid; if it comes from mlops's rendering, please report it",
                    ),
                    _ => ProviderError::failed(format!("the cluster {} could not {doing} ({}): {message}", self.label, status.code)),
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => ProviderError::with_help(
                format!("cannot reach the Kubernetes API server of the cluster {} to {doing}: {}", self.label, root_cause(error)),
                "check that the cluster is up and that the kubeconfig context points at it (`kubectl cluster-info`)",
            ),
            other => ProviderError::failed(format!("the cluster {} could not {doing}: {}", self.label, first_line(&other.to_string()))),
        }
    }
}

/// The kubeconfig the provider block names (`kubeconfig`), else the files
/// `KUBECONFIG` lists (merged as kubectl merges them: the first file to set
/// a value wins); `None` when neither is set.
fn read_kubeconfig(config: &Configuration) -> ProviderResult<Option<Kubeconfig>> {
    let listed = config
        .get("kubeconfig")
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .or_else(|| std::env::var("KUBECONFIG").ok().filter(|value| !value.is_empty()));
    let Some(listed) = listed else { return Ok(None) };
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(&listed).filter(|path| !path.as_os_str().is_empty()) {
        let file = Kubeconfig::read_from(&path).map_err(|error| {
            ProviderError::with_help(
                format!("cannot read the kubeconfig `{}`: {}", path.display(), first_line(&error.to_string())),
                "set `kubeconfig` on the kubernetes provider to readable files (several separated by ':'), or fix KUBECONFIG",
            )
        })?;
        merged = Some(match merged {
            None => file,
            Some(earlier) => earlier.merge(file).map_err(|error| {
                ProviderError::with_help(
                    format!("cannot merge the kubeconfig files `{listed}`: {}", first_line(&error.to_string())),
                    "the files must be kubeconfigs of the same apiVersion and kind",
                )
            })?,
        });
    }
    Ok(merged)
}

/// The namespace objects go to, without connecting: the provider block's,
/// else the kubeconfig context's, else the service account's (in a pod),
/// else `default`.
pub fn resolve_namespace(config: &Configuration) -> String {
    if let Some(namespace) = config.get("namespace").and_then(Value::as_str).filter(|value| !value.is_empty()) {
        return namespace.to_owned();
    }
    let context_name = config.get("context").and_then(Value::as_str).filter(|value| !value.is_empty()).map(str::to_owned);
    let kubeconfig = read_kubeconfig(config).ok().flatten().or_else(|| {
        let home = std::env::var_os("HOME")?;
        Kubeconfig::read_from(std::path::Path::new(&home).join(".kube/config")).ok()
    });
    if let Some(kubeconfig) = kubeconfig {
        let wanted = context_name.or_else(|| kubeconfig.current_context.clone());
        let namespace = kubeconfig
            .contexts
            .iter()
            .find(|named| Some(&named.name) == wanted.as_ref())
            .and_then(|named| named.context.as_ref())
            .and_then(|context| context.namespace.clone());
        if let Some(namespace) = namespace {
            return namespace;
        }
    } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        if let Ok(namespace) = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace") {
            return namespace.trim().to_owned();
        }
    }
    "default".to_owned()
}

fn kubeconfig_failure(context: Option<&str>, error: &str) -> ProviderError {
    match context {
        Some(context) => ProviderError::with_help(
            format!("cannot use the kubeconfig context `{context}`: {}", first_line(error)),
            "check `context` on the kubernetes provider against `kubectl config get-contexts`",
        ),
        None => ProviderError::with_help(
            format!("no Kubernetes configuration found: {}", first_line(error)),
            "set `context` (and `kubeconfig` if it is not ~/.kube/config) on the kubernetes provider",
        ),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// The innermost cause, which is the one that says what happened
/// ("Connection refused").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    first_line(&current.to_string())
}

/// Which object: what every get, apply and delete names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// The reference of a rendered or stored object (every rendered object
    /// names its namespace).
    pub fn of(object: &Json) -> ProviderResult<ObjectRef> {
        let field = |pointer: &str| object.pointer(pointer).and_then(Json::as_str).map(str::to_owned);
        match (field("/apiVersion"), field("/kind"), field("/metadata/namespace"), field("/metadata/name")) {
            (Some(api_version), Some(kind), Some(namespace), Some(name)) => Ok(ObjectRef { api_version, kind, namespace, name }),
            _ => Err(ProviderError::failed("a manifest lacks apiVersion, kind, metadata.namespace or metadata.name")),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(formatter, "{} {}", self.kind, self.name)
        } else {
            write!(formatter, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}
