//! Monitors on a cluster: a CronJob recomputes drift on a schedule and
//! writes the scores, as JSON, to its termination message. Refresh reads
//! the newest successful run's scores, so `monitor.NAME.drifted` (and
//! through it `retrain_on`) follows the cluster's latest computation.

use mlops_provider_api::{
    configuration_unchanged, ApplyContext, ApplyRequest, ApplyResponse, PlanRequest, PlanResponse, ProviderError, ProviderResult,
    ReadRequest, ReadResponse,
};
use mlops_provider_api::{Configuration, Value};
use serde_json::{json, Value as Json};

use crate::cluster::Cluster;
use crate::objects;
use crate::readable_in_cluster;
use crate::render::{self, Settings};

fn reference_uri(config: &Configuration) -> ProviderResult<String> {
    let reference = config.get("reference").cloned().unwrap_or_default();
    let address = reference.as_reference().map_or_else(|| "the reference dataset".to_owned(), |reference| reference.address.clone());
    let uri = reference.get("uri").and_then(Value::as_str).ok_or_else(|| ProviderError::failed(format!("{address} has no stored data")))?;
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
    let Some(prior) = &request.prior_state else {
        response.unknown = vec![vec!["scores".into()], vec!["drifted".into()], vec!["manifests".into()]];
        return Ok(response);
    };
    response.planned_state = prior.clone();
    let reference_changed = request.changed_inputs.iter().any(|input| input.path.first().map(String::as_str) == Some("reference"));
    let mut reasons = Vec::new();
    if reference_changed {
        reasons.push("the reference dataset changed: the CronJob compares against the new version".to_owned());
    }
    match request.prior_private.get("reference_uri").and_then(Json::as_str).filter(|_| !reference_changed) {
        Some(uri) => {
            let settings = Settings::resolved(&request.target.provider_config)?;
            let desired = [render::monitor(&request.target.address, &request.config, uri, &settings)?];
            reasons.extend(objects::plan_reasons(&desired, prior, &objects::applied(&request.prior_private)));
            if !reasons.is_empty() {
                response.planned_state.insert("manifests".into(), objects::manifests(&desired));
            }
        }
        None => {
            response.unknown.push(vec!["manifests".into()]);
            if reasons.is_empty() && !configuration_unchanged(request) {
                reasons.push("the configuration changed".to_owned());
            }
        }
    }
    objects::record_reviewed_drift(&mut response.private, &request.prior_private, request.prior_state.as_ref());
    response.update_reasons = reasons;
    Ok(response)
}

pub async fn apply(cluster: &Cluster, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let target = &request.target;
    let settings = Settings::resolved(&target.provider_config)?;
    let uri = reference_uri(&request.config)?;
    let rendered = [render::monitor(&target.address, &request.config, &uri, &settings)?];
    objects::apply_all(cluster, &rendered, &request.planned_private, &target.provider_config, &[], context).await?;
    objects::delete_stale(cluster, &objects::applied(&request.prior_private), &rendered).await?;
    let (manifests, _) = objects::live_manifests(cluster, &rendered).await?;
    let mut state = request.prior_state.clone().unwrap_or_default();
    // Until the first scheduled run reports, nothing has drifted.
    state.entry("scores").or_insert_with(|| json!({}));
    state.entry("drifted").or_insert(Json::Bool(false));
    state.insert("manifests".into(), Json::Object(manifests));
    Ok(ApplyResponse { state, private: json!({ "applied": rendered, "reference_uri": uri }) })
}

pub async fn read(cluster: &Cluster, request: &ReadRequest) -> ProviderResult<ReadResponse> {
    let (mut response, cronjob) = objects::read(cluster, request).await?;
    let (Some(state), Some(cronjob)) = (response.state.as_mut(), cronjob) else { return Ok(response) };
    let namespace = cronjob.pointer("/metadata/namespace").and_then(Json::as_str).unwrap_or(&cluster.namespace).to_owned();
    let name = cronjob.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default().to_owned();
    if let Some(scores) = latest_scores(cluster, &namespace, &name).await? {
        let threshold = request.config.get("threshold").and_then(Value::as_f64).unwrap_or(0.2);
        let drifted = scores.values().any(|score| score.as_f64().is_some_and(|score| score > threshold));
        state.insert("scores".into(), Json::Object(scores));
        state.insert("drifted".into(), Json::Bool(drifted));
    }
    Ok(response)
}

/// The scores reported by the newest successful run of the CronJob.
async fn latest_scores(cluster: &Cluster, namespace: &str, name: &str) -> ProviderResult<Option<serde_json::Map<String, Json>>> {
    let mut pods = cluster.pods(namespace, &format!("{}={name}", render::MONITOR_LABEL)).await?;
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
