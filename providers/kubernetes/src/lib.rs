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

mod batch;
pub mod cluster;
mod features;
pub mod live;
mod monitor;
mod objects;
pub mod render;
mod serving;
mod training;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mlops_provider_api::Configuration;
use mlops_provider_api::{
    ApplyContext, ApplyRequest, ApplyResponse, AttributeProblem, Kinds, PlanRequest, PlanResponse, Provider, ProviderResult, ReadRequest,
    ReadResponse, ResourceType, ValidateRequest,
};
use serde_json::Value as Json;

use crate::cluster::Cluster;

pub const PROVIDER: &str = "kubernetes";

/// The provider: its kinds, sharing one [`Connections`].
pub struct KubernetesProvider {
    kinds: Kinds,
}

impl Default for KubernetesProvider {
    fn default() -> Self {
        KubernetesProvider::new()
    }
}

impl KubernetesProvider {
    pub fn new() -> Self {
        let connections = Arc::new(Connections::default());
        KubernetesProvider {
            kinds: Kinds::new()
                .resource("training", TrainingType(connections.clone()))
                .resource("serving", ServingType(connections.clone()))
                .resource("monitor", MonitorType(connections.clone()))
                .resource("batch_prediction", BatchPredictionType(connections.clone()))
                .resource("feature_set", FeatureSetType(connections)),
        }
    }
}

/// One tokio runtime drives kube-rs; clusters are connected once per
/// provider configuration and shared between threads and kinds.
#[derive(Default)]
struct Connections {
    runtime: OnceLock<tokio::runtime::Runtime>,
    clusters: Mutex<HashMap<String, Cluster>>,
}

impl Connections {
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
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn kinds(&self) -> &Kinds {
        &self.kinds
    }
}

/// A training: a Job, or a Kubeflow TrainJob when distributed.
struct TrainingType(Arc<Connections>);

impl ResourceType for TrainingType {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        training::validate(request)
    }

    // A finished run is a record: its results stay valid when the Job
    // object is cleaned up, so it is read as recorded (the default).

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        training::plan(&request)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            training::apply(&cluster, &request, context).await
        })
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            training::delete(&cluster, &request).await.map(|_| ())
        })
    }
}

/// A serving: a KServe InferenceService, or a Deployment and Service.
struct ServingType(Arc<Connections>);

impl ResourceType for ServingType {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            Ok(objects::read(&cluster, &request).await?.0)
        })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        serving::plan(&request)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            serving::apply(&cluster, &request, context).await
        })
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            objects::delete_all(&cluster, &request.prior_private).await
        })
    }
}

/// A monitor: a CronJob that computes drift in the cluster.
struct MonitorType(Arc<Connections>);

impl ResourceType for MonitorType {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            monitor::read(&cluster, &request).await
        })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        monitor::plan(&request)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            monitor::apply(&cluster, &request, context).await
        })
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            objects::delete_all(&cluster, &request.prior_private).await
        })
    }
}

/// A batch prediction: a Job over a dataset, its predictions uploaded.
struct BatchPredictionType(Arc<Connections>);

impl ResourceType for BatchPredictionType {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        batch::validate(request)
    }

    /// A single run's predictions stay valid when its Job is cleaned up
    /// (read as recorded); a scheduled one's follow its newest run.
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        if request.private.get("applied").is_none() {
            return Ok(ReadResponse::as_recorded(request));
        }
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            batch::read(&cluster, &request).await
        })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        batch::plan(&request)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            batch::apply(&cluster, &request, context).await
        })
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            batch::delete(&cluster, &request).await
        })
    }
}

/// A feature set computed in the cluster as an Indexed Job.
struct FeatureSetType(Arc<Connections>);

impl ResourceType for FeatureSetType {
    fn validate(&self, request: &ValidateRequest) -> Vec<AttributeProblem> {
        features::validate(request)
    }

    // Computed features stay valid when the Job is cleaned up: read as
    // recorded (the default).

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        Ok(mlops_data::plan_feature_set(&request, mlops_provider_api::configuration_unchanged(&request)))
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            features::apply(&cluster, &request, context).await
        })
    }

    /// The run's Job goes; its parts stay in object storage, as a
    /// training's outputs do.
    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        self.0.block_on(async {
            let cluster = self.0.cluster(&request.target.provider_config).await?;
            training::delete(&cluster, &request).await.map(|_| ())
        })
    }
}
