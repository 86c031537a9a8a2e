//! Monitors on a cluster: a CronJob recomputes drift on a schedule and
//! writes the scores, as JSON, to its termination message. Refresh reads
//! the newest successful run's scores, so `monitor.NAME.drifted` (and
//! through it `retrain_on`) follows the cluster's latest computation.

use mlops_provider_api::{
    configuration_unchanged, ApplyRequest, ApplyResponse, Attributes, PlanRequest, PlanResponse, ProviderError, ProviderResult,
    ReadRequest, ReadResponse,
};
use serde_json::{json, Value as Json};

use crate::cluster::{identify, ApplyFailure, Cluster};
use crate::live::{brief, differences, project};
use crate::readable_in_cluster;
use crate::render::{self, Settings};

const KEY_PREFIX: &str = "CronJob/";

fn reference_uri(config: &Attributes) -> ProviderResult<String> {
    let reference = config.get("reference").and_then(Json::as_object).cloned().unwrap_or_default();
    let address = reference.get("$address").and_then(Json::as_str).unwrap_or("the reference dataset").to_owned();
    let uri = reference.get("uri").and_then(Json::as_str).ok_or_else(|| ProviderError::failed(format!("{address} has no stored data")))?;
    if !readable_in_cluster(uri) {
        return Err(ProviderError::with_help(
            format!("{address} is stored at `{uri}`, on this machine, where the monitor's CronJob cannot read it"),
            format!("store {address} in object storage (`provider = s3`)"),
        ));
    }
    Ok(uri.to_owned())
}

pub fn plan(request: &PlanRequest) -> ProviderResult<PlanResponse> {
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    let reference_changed = request.changed_inputs.iter().any(|input| input.path.first().map(String::as_str) == Some("reference"));
    let prior_reference = request.prior_private.get("reference_uri").and_then(Json::as_str);
    let desired = match prior_reference {
        Some(uri) if !reference_changed => {
            let settings = Settings::from_provider_config(&request.target.provider_config);
            Some(render::monitor(&request.target.address, &request.config, uri, &settings)?)
        }
        _ => None,
    };
    if let Some(prior) = &request.prior_state {
        response.planned_state = prior.clone();
        let mut reasons = Vec::new();
        if reference_changed {
            reasons.push("the reference dataset changed: the CronJob compares against the new version".to_owned());
        }
        if let Some(desired) = &desired {
            let key = format!("{KEY_PREFIX}{}", desired.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default());
            let unchanged = configuration_unchanged(request);
            match prior.get("manifests").and_then(|manifests| manifests.get(&key)) {
                None => reasons.push(format!("{key} is missing from the cluster: apply creates it again")),
                Some(live) => {
                    for difference in differences(desired, live) {
                        let outside = if unchanged { " was changed outside mlops" } else { "" };
                        reasons.push(format!(
                            "{key} {}{outside}: {} -> {}",
                            difference.path,
                            brief(difference.live.as_ref()),
                            brief(difference.desired.as_ref())
                        ));
                    }
                }
            }
            if reasons.is_empty() {
                return Ok(response);
            }
            response.planned_state.insert("manifests".into(), json!({ key: desired }));
        } else {
            response.unknown.push(vec!["manifests".into()]);
            if reasons.is_empty() && !configuration_unchanged(request) {
                reasons.push("the configuration changed".to_owned());
            }
        }
        response.update_reasons = reasons;
        return Ok(response);
    }
    response.unknown = vec![vec!["scores".into()], vec!["drifted".into()], vec!["manifests".into()]];
    Ok(response)
}

pub async fn apply(cluster: &Cluster, request: &ApplyRequest) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let mut settings = Settings::from_provider_config(&target.provider_config);
    settings.namespace = cluster.namespace.clone();
    let uri = reference_uri(&request.config)?;
    let manifest = render::monitor(&target.address, &request.config, &uri, &settings)?;
    let force = target.provider_config.get("force_conflicts").and_then(Json::as_bool).unwrap_or(false) || request.prior_state.is_some();
    let live = cluster.apply(&manifest, force).await.map_err(|failure| match failure {
        ApplyFailure::Other(error) => error,
        ApplyFailure::Conflicts(conflicts) => ProviderError::with_help(
            format!(
                "the CronJob of {} is managed by someone else: {}",
                target.address,
                conflicts.iter().map(|conflict| conflict.message.clone()).collect::<Vec<_>>().join(", ")
            ),
            "set `force_conflicts = true` on the kubernetes provider to take it over",
        ),
    })?;
    let key = format!("{KEY_PREFIX}{}", manifest.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default());
    let mut state = request.prior_state.clone().unwrap_or_default();
    // Until the first scheduled run reports, nothing has drifted.
    state.entry("scores").or_insert_with(|| json!({}));
    state.entry("drifted").or_insert(Json::Bool(false));
    state.insert("manifests".into(), json!({ key: project(&manifest, &live) }));
    Ok(ApplyResponse { state, private: json!({ "applied": manifest, "reference_uri": uri, "namespace": cluster.namespace }) })
}

pub async fn read(cluster: &Cluster, request: &ReadRequest) -> ProviderResult<ReadResponse> {
    let Some(applied) = request.private.get("applied").cloned() else {
        return Ok(ReadResponse { state: Some(request.state.clone()), private: request.private.clone() });
    };
    let (api_version, kind, name) = identify(&applied)?;
    let Some(live) = cluster.get(&api_version, &kind, &name).await? else {
        return Ok(ReadResponse { state: None, private: request.private.clone() });
    };
    let mut state = request.state.clone();
    state.insert("manifests".into(), json!({ format!("{KEY_PREFIX}{name}"): project(&applied, &live) }));
    if let Some(scores) = latest_scores(cluster, &name).await? {
        let threshold = request.config.get("threshold").and_then(Json::as_f64).unwrap_or(0.2);
        let drifted = scores.values().any(|score| score.as_f64().is_some_and(|score| score > threshold));
        state.insert("scores".into(), Json::Object(scores));
        state.insert("drifted".into(), Json::Bool(drifted));
    }
    Ok(ReadResponse { state: Some(state), private: request.private.clone() })
}

/// The scores reported by the newest successful run of the CronJob.
async fn latest_scores(cluster: &Cluster, name: &str) -> ProviderResult<Option<serde_json::Map<String, Json>>> {
    let mut pods = cluster.pods(&format!("{}={name}", render::MONITOR_LABEL)).await?;
    pods.retain(|pod| pod.pointer("/status/phase").and_then(Json::as_str) == Some("Succeeded"));
    pods.sort_by_key(|pod| pod.pointer("/metadata/creationTimestamp").and_then(Json::as_str).unwrap_or_default().to_owned());
    let Some(pod) = pods.pop() else { return Ok(None) };
    let message = pod
        .pointer("/status/containerStatuses")
        .and_then(Json::as_array)
        .and_then(|statuses| statuses.iter().find(|status| status.get("name") == Some(&json!("drift"))))
        .and_then(|status| status.pointer("/state/terminated/message"))
        .and_then(Json::as_str)
        .unwrap_or_default();
    Ok(serde_json::from_str::<Json>(message).ok().and_then(|report| report.get("scores").and_then(Json::as_object).cloned()))
}

pub async fn delete(cluster: &Cluster, request: &ApplyRequest) -> ProviderResult<ApplyResponse> {
    if let Some(applied) = request.prior_private.get("applied") {
        let (api_version, kind, name) = identify(applied)?;
        cluster.delete(&api_version, &kind, &name).await?;
    }
    Ok(ApplyResponse::default())
}
