//! Feature sets computed in the cluster: an Indexed Job of the mlops image
//! whose pods each run `mlops features-shard` over their share of the
//! dataset's files (the `index`-th of every `shards`, in key order; with
//! aggregates, every file and the rows of its entities) and upload a
//! Parquet part. The feature set's version is the hash of the
//! parts' versions, its `uri` the prefix they are under. Nothing crosses
//! the machine that runs `mlops apply`. The run is re-attached after an
//! interrupt like a training's, and a failed shard is reported with its log.

use mlops_provider_api::{
    ApplyContext, ApplyRequest, ApplyResponse, AttributeProblem, Attributes, ProviderError, ProviderResult, ValidateRequest, Value,
};
use serde_json::{json, Value as Json};

use crate::cluster::{Cluster, ObjectRef};
use crate::readable_in_cluster;
use crate::render::{self, Settings};
use crate::training::{forget_previous_run, run_to_completion, FinishedRun};

/// What only the provider knows is wrong: no `artifact_root` for the parts.
pub fn validate(request: &ValidateRequest) -> Vec<AttributeProblem> {
    crate::training::validate(request)
}

/// The feature set's configuration and its dataset, as a shard reads them.
fn shard_spec(config: &mlops_provider_api::Configuration) -> ProviderResult<(Json, String)> {
    let dataset = config.get("dataset").cloned().unwrap_or_default();
    let address = dataset.as_reference().map_or_else(|| "the dataset".to_owned(), |reference| reference.address.clone());
    let uri =
        dataset.get("uri").and_then(Value::as_str).ok_or_else(|| ProviderError::failed(format!("{address} has no stored data yet")))?;
    if !readable_in_cluster(uri) {
        return Err(ProviderError::with_help(
            format!("{address} is stored at `{uri}`, on this machine, where the shards cannot read it"),
            format!("store {address} in object storage (`provider = s3`, in a bucket the cluster can reach)"),
        ));
    }
    let mut features = mlops_provider_api::Configuration::new();
    for name in ["entity", "format", "timestamp", "feature", "aggregate"] {
        if let Some(value) = config.get(name) {
            features.insert(name.to_owned(), value.clone());
        }
    }
    let spec = json!({
        "config": mlops_provider_api::configuration_to_json(&features),
        "input": {
            "uri": uri,
            "format": dataset.get("format").and_then(Value::as_str).unwrap_or("csv"),
            "schema": dataset.get("schema").map(Value::to_json).unwrap_or(Json::Null),
        },
    });
    Ok((spec, uri.to_owned()))
}

/// One shard's report: its part, the part's version, rows and bytes.
struct Part {
    name: String,
    version: String,
    rows: u64,
    size: u64,
}

/// The reports of every shard of a finished run, by index.
async fn parts(cluster: &Cluster, run: &ObjectRef, shards: u64) -> ProviderResult<Vec<Part>> {
    let pods = cluster.pods(&run.namespace, &format!("batch.kubernetes.io/job-name={}", run.name)).await?;
    let mut parts = Vec::new();
    for index in 0..shards {
        let report = pods
            .iter()
            .filter(|pod| pod.pointer("/status/phase").and_then(Json::as_str) == Some("Succeeded"))
            .filter(|pod| {
                pod.pointer("/metadata/labels/batch.kubernetes.io~1job-completion-index").and_then(Json::as_str)
                    == Some(index.to_string().as_str())
            })
            .find_map(|pod| {
                let status = crate::training::container_status(pod, "containerStatuses", render::SHARD_CONTAINER)?;
                serde_json::from_str::<Json>(status.pointer("/state/terminated/message")?.as_str()?).ok()
            });
        let part = report.as_ref().and_then(|report| {
            Some(Part {
                name: report.get("part")?.as_str()?.to_owned(),
                version: report.get("version")?.as_str()?.to_owned(),
                rows: report.get("rows")?.as_u64()?,
                size: report.get("size_bytes")?.as_u64()?,
            })
        });
        parts.push(part.ok_or_else(|| {
            ProviderError::with_help(
                format!("{} finished, but shard {index} reported no part", run.name),
                "its pod is gone or its status was cut short; apply again to compute the features again",
            )
        })?);
    }
    Ok(parts)
}

/// The version of the parts together: BLAKE3 of `NAME VERSION` lines in
/// name order.
pub fn parts_version(parts: &[(String, String)]) -> String {
    let mut lines: Vec<String> = parts.iter().map(|(name, version)| format!("{name} {version}\n")).collect();
    lines.sort();
    format!("b3:{}", blake3::hash(lines.concat().as_bytes()).to_hex())
}

pub async fn apply(cluster: &Cluster, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let config = &request.config;
    let settings = Settings::resolved(&target.provider_config)?;
    let (spec, dataset_uri) = shard_spec(config)?;
    let shards = config
        .get("shards")
        .and_then(Value::as_u64)
        .ok_or_else(|| ProviderError::failed("`shards` is missing: the schema's default did not reach the provider"))?;
    let root = settings.artifact_root.clone().ok_or_else(|| {
        ProviderError::with_help(
            "features computed in the cluster are written to object storage, and the kubernetes provider names none",
            "set `artifact_root = \"s3://BUCKET/PREFIX\"` in the kubernetes provider block",
        )
    })?;
    let prefix = format!("{root}/features/{}/", render::object_name(&target.address, 63));
    context.progress(&format!("computing the features of {dataset_uri} in {shards} shard(s)"));
    let FinishedRun { handle, run_id, started, .. } =
        run_to_completion(cluster, request, context, &settings, false, render::SHARD_CONTAINER, |run_id| {
            render::feature_shards(&target.address, run_id, &spec, shards, &format!("{prefix}{run_id}/"), config, &settings)
        })
        .await?;
    let parts = parts(cluster, &handle, shards).await?;
    let version = parts_version(&parts.iter().map(|part| (part.name.clone(), part.version.clone())).collect::<Vec<_>>());
    let rows: u64 = parts.iter().map(|part| part.rows).sum();
    let size: u64 = parts.iter().map(|part| part.size).sum();
    forget_previous_run(cluster, request, &handle).await;
    context.progress(&format!("{run_id}: {rows} row(s) of features in {shards} part(s), in {:.0}s", started.elapsed().as_secs_f64()));
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(version));
    state.insert("uri".into(), Json::String(format!("{prefix}{run_id}/")));
    state.insert("row_count".into(), json!(rows));
    state.insert("size_bytes".into(), json!(size));
    Ok(ApplyResponse { state, private: json!({ "run": handle }) })
}
