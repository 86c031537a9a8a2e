//! The `kubernetes` provider: trainings, servings and monitors on a cluster.
//!
//! - `training` becomes a batch/v1 Job (one node) or a Kubeflow Trainer
//!   TrainJob (`distributed`); apply records the run's name in state before
//!   waiting, waits for completion with progress, and reads the metrics back
//!   from the training container's termination message.
//! - `serving` becomes a Deployment + Service (+ HorizontalPodAutoscaler)
//!   or a KServe InferenceService; apply waits for the rollout to be ready.
//! - `monitor` becomes a CronJob that recomputes drift on a schedule.
//!
//! Manifests are rendered from the handlebars templates in
//! `stdlib/kubernetes/` ([`render`]) and applied with server-side apply,
//! field manager `mlops` ([`cluster`]). Refresh projects live objects onto
//! what was applied ([`live`]), so server defaults and other managers'
//! fields never show as drift, while a change made outside mlops does.

pub mod cluster;
pub mod live;
mod monitor;
mod objects;
pub mod render;
mod serving;
mod training;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use mlops_provider_api::Configuration;
use mlops_provider_api::{
    Action, ApplyContext, ApplyRequest, ApplyResponse, ImportRequest, ImportResponse, PlanRequest, PlanResponse, Provider, ProviderError,
    ProviderResult, ReadRequest, ReadResponse, SchemaRequest, SchemaResponse, ValidateRequest, ValidateResponse,
};
use serde_json::Value as Json;

use crate::cluster::Cluster;

pub const PROVIDER: &str = "kubernetes";

/// The provider. One tokio runtime drives kube-rs; clusters are connected
/// once per provider configuration and shared between threads.
#[derive(Default)]
pub struct KubernetesProvider {
    runtime: OnceLock<tokio::runtime::Runtime>,
    clusters: Mutex<HashMap<String, Cluster>>,
}

impl KubernetesProvider {
    pub fn new() -> Self {
        Self::default()
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap_or_else(|error| panic!("cannot start the runtime for the kubernetes provider: {error}"))
        });
        runtime.block_on(work)
    }

    async fn cluster(&self, config: &Configuration) -> ProviderResult<Cluster> {
        let key = Json::Object(mlops_provider_api::configuration_to_json(config)).to_string();
        if let Some(cluster) = self.clusters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
            return Ok(cluster.clone());
        }
        let cluster = Cluster::connect(config).await?;
        self.clusters.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, cluster.clone());
        Ok(cluster)
    }
}

pub(crate) use mlops_provider_support::{strings, text};

/// How long to wait between polls: quick at first (short jobs and tests
/// finish fast), then every two seconds.
pub(crate) fn poll_interval(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(4)).min(2000))
}

/// Whether a uri names storage a pod can read (not this machine's disk).
pub(crate) fn readable_in_cluster(uri: &str) -> bool {
    uri.split_once("://").is_some_and(|(scheme, _)| !matches!(scheme, "local" | "file"))
}

impl Provider for KubernetesProvider {
    fn schema(&self, _request: SchemaRequest) -> SchemaResponse {
        SchemaResponse { resource_kinds: ["training", "serving", "monitor"].map(str::to_owned).to_vec(), data_kinds: Vec::new() }
    }

    fn validate(&self, request: ValidateRequest) -> ValidateResponse {
        let problems = match request.target.kind.as_str() {
            "training" => training::validate(&request),
            _ => Vec::new(),
        };
        ValidateResponse { problems }
    }

    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        match request.target.kind.as_str() {
            // A finished run is a record: its results stay valid when the
            // Job object is cleaned up.
            "training" => Ok(ReadResponse { state: Some(request.state), private: request.private, ..ReadResponse::default() }),
            "serving" => self.block_on(async {
                let cluster = self.cluster(&request.target.provider_config).await?;
                Ok(objects::read(&cluster, &request).await?.0)
            }),
            "monitor" => self.block_on(async {
                let cluster = self.cluster(&request.target.provider_config).await?;
                monitor::read(&cluster, &request).await
            }),
            other => Err(ProviderError::failed(format!("the kubernetes provider does not manage `{other}`"))),
        }
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        match request.target.kind.as_str() {
            "training" => training::plan(&request),
            "serving" => serving::plan(&request),
            "monitor" => monitor::plan(&request),
            other => Err(ProviderError::failed(format!("the kubernetes provider does not manage `{other}`"))),
        }
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let action = request.action.unwrap_or(Action::Create);
        self.block_on(async {
            let cluster = self.cluster(&request.target.provider_config).await?;
            match (request.target.kind.as_str(), action) {
                ("training", Action::Delete) => training::delete(&cluster, &request).await,
                ("training", _) => training::apply(&cluster, &request, context).await,
                ("serving" | "monitor", Action::Delete) => {
                    objects::delete_all(&cluster, &request.prior_private).await?;
                    Ok(ApplyResponse::default())
                }
                ("serving", _) => serving::apply(&cluster, &request, context).await,
                ("monitor", _) => monitor::apply(&cluster, &request, context).await,
                (other, _) => Err(ProviderError::failed(format!("the kubernetes provider does not manage `{other}`"))),
            }
        })
    }

    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        Err(ProviderError::failed(format!("the kubernetes provider cannot import a `{}` yet", request.target.kind)))
    }
}
