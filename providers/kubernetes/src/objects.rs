//! The life of a set of long-lived objects (a serving's Deployment, Service
//! and autoscaler; a monitor's CronJob): what the plan says about them, how
//! apply takes fields back, how refresh reads them, how they go.
//!
//! Private state keeps `applied`, the objects as last applied. State keeps
//! `manifests`: each object as live, projected onto what was applied
//! ([`crate::live`]), keyed `Kind/name`. The plan compares freshly rendered
//! objects with `manifests`; refresh's differences from `applied` are drift
//! the user sees in the plan, and the plan hands their field paths to apply
//! as `reviewed_drift`, so that apply may take exactly those fields back
//! from whichever field manager changed them.

use mlops_provider_api::{ApplyContext, Attributes, ProviderError, ProviderResult, ReadRequest, ReadResponse};
use mlops_provider_api::{Configuration, Value};
use serde_json::{json, Value as Json};

use crate::cluster::{ApplyFailure, Cluster, ObjectRef};
use crate::live::{brief, differences, project};

/// `Deployment/fraud-api`: how state and plans name an object.
pub fn key_of(object: &Json) -> String {
    format!(
        "{}/{}",
        object.get("kind").and_then(Json::as_str).unwrap_or_default(),
        object.pointer("/metadata/name").and_then(Json::as_str).unwrap_or_default()
    )
}

/// The objects as last applied, from private state.
pub fn applied(private: &Json) -> Vec<Json> {
    private.get("applied").and_then(Json::as_array).cloned().unwrap_or_default()
}

/// `manifests` for planned state: the desired objects by key.
pub fn manifests(objects: &[Json]) -> Json {
    Json::Object(objects.iter().map(|object| (key_of(object), object.clone())).collect())
}

/// Why the live objects (`prior_state.manifests`) must change to become
/// `desired`. A difference where `desired` matches what was applied last
/// (`previous`) was made outside mlops, and the reason says so; the others
/// are changes the configuration (or the provider block) asks for.
pub fn plan_reasons(desired: &[Json], prior_state: &Attributes, previous: &[Json]) -> Vec<String> {
    let live = prior_state.get("manifests").and_then(Json::as_object).cloned().unwrap_or_default();
    let mut reasons = Vec::new();
    for object in desired {
        let key = key_of(object);
        let applied = previous.iter().find(|applied| key_of(applied) == key);
        let Some(found) = live.get(&key) else {
            reasons.push(match applied {
                Some(_) => format!("{key} is missing from the cluster (deleted outside mlops): apply creates it again"),
                None => format!("{key} will be created"),
            });
            continue;
        };
        let configured: Vec<String> =
            applied.map(|applied| differences(object, applied).into_iter().map(|difference| difference.path).collect()).unwrap_or_default();
        for difference in differences(object, found) {
            let (live, desired) = (brief(difference.live.as_ref()), brief(difference.desired.as_ref()));
            if applied.is_some() && !configured.contains(&difference.path) {
                // What it was, what it is now, and what apply does.
                reasons
                    .push(format!("{key} {} was {desired} and is {live} now (changed outside mlops): apply sets it back", difference.path));
            } else {
                reasons.push(format!("{key} {}: {live} -> {desired}", difference.path));
            }
        }
    }
    for key in live.keys() {
        if !desired.iter().any(|object| key_of(object) == *key) {
            reasons.push(format!("{key} is no longer needed and will be deleted"));
        }
    }
    reasons
}

/// Adds `reviewed_drift` to the plan's private data: the fields refresh found
/// changed outside mlops (`Kind/name:path`), which the plan shows.
pub fn record_reviewed_drift(private: &mut Json, prior_private: &Json, prior_state: Option<&Attributes>) {
    let live = prior_state.and_then(|state| state.get("manifests")).and_then(Json::as_object).cloned().unwrap_or_default();
    let mut paths = Vec::new();
    for object in applied(prior_private) {
        let key = key_of(&object);
        if let Some(found) = live.get(&key) {
            paths.extend(differences(&object, found).into_iter().map(|difference| format!("{key}:{}", difference.path)));
        }
    }
    if let (false, Some(private)) = (paths.is_empty(), private.as_object_mut()) {
        private.insert("reviewed_drift".into(), json!(paths));
    }
}

/// A conflict's field in the API server's notation, as plan paths write it:
/// `.spec.template.spec.containers[name="server"].image` ->
/// `spec.template.spec.containers[server].image`, and
/// `...ports[containerPort=8080,protocol="TCP"]` -> `...ports[8080,TCP]`.
fn normalise_field(field: &str) -> String {
    let mut normalised = String::new();
    let mut rest = field.trim_start_matches('.');
    while let Some(start) = rest.find('[') {
        normalised.push_str(&rest[..start]);
        let Some(end) = rest[start..].find(']') else { break };
        let inside = &rest[start + 1..start + end];
        let values: Vec<&str> =
            inside.split(',').map(|pair| pair.split_once('=').map_or(pair, |(_, value)| value).trim_matches('"')).collect();
        normalised.push_str(&format!("[{}]", values.join(",")));
        rest = &rest[start + end + 1..];
    }
    normalised.push_str(rest);
    normalised
}

/// Server-side applies each object. A conflict on a field the plan showed
/// as changed outside mlops is resolved by taking the field back (forced);
/// any other conflict is an error, unless `force_conflicts` is set.
/// `take_back` adds fields (`Kind/name:path`) apply takes back because the
/// configuration itself hands them to mlops (replicas an autoscaler owned).
pub async fn apply_all(
    cluster: &Cluster,
    objects: &[Json],
    planned_private: &Json,
    provider_config: &Configuration,
    take_back: &[String],
    context: &dyn ApplyContext,
) -> ProviderResult<()> {
    let reviewed: Vec<&str> = planned_private
        .get("reviewed_drift")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .chain(take_back.iter().map(String::as_str))
        .collect();
    let force_all = provider_config.get("force_conflicts").and_then(Value::as_bool).unwrap_or(false);
    for object in objects {
        let key = key_of(object);
        let conflicts = match cluster.apply(object, force_all).await {
            Ok(_) => continue,
            Err(ApplyFailure::Other(error)) => return Err(error),
            Err(ApplyFailure::Conflicts(conflicts)) => conflicts,
        };
        let fields: Vec<String> = conflicts.iter().map(|conflict| normalise_field(&conflict.field)).collect();
        let unreviewed: Vec<String> = conflicts
            .iter()
            .zip(&fields)
            .filter(|(_, field)| !reviewed.contains(&format!("{key}:{field}").as_str()))
            .map(|(conflict, field)| format!("{field} ({})", conflict.message))
            .collect();
        if !unreviewed.is_empty() {
            return Err(ProviderError::with_help(
                format!("{key} in the cluster {}: another field manager owns {}", cluster.label, unreviewed.join(", ")),
                "stop the other manager from setting these fields, or set `force_conflicts = true` on the kubernetes provider to take them over",
            ));
        }
        context.progress(&format!("{key}: taking back {} (changed outside mlops; the plan showed it)", fields.join(", ")));
        cluster.apply(object, true).await.map_err(|failure| match failure {
            ApplyFailure::Other(error) => error,
            ApplyFailure::Conflicts(_) => ProviderError::failed(format!("{key}: the API server reported conflicts on a forced apply")),
        })?;
    }
    Ok(())
}

/// Deletes what `previous` applied that `current` no longer has (an
/// autoscaler no longer wanted, a runtime switch, a new namespace).
pub async fn delete_stale(cluster: &Cluster, previous: &[Json], current: &[Json]) -> ProviderResult<()> {
    let current: Vec<ObjectRef> = current.iter().filter_map(|object| ObjectRef::of(object).ok()).collect();
    for object in previous {
        let reference = ObjectRef::of(object)?;
        if !current.contains(&reference) {
            cluster.delete(&reference).await?;
        }
    }
    Ok(())
}

/// The objects as live now, projected onto `objects`, by key; and the live
/// first object (the one that serves or runs).
pub async fn live_manifests(cluster: &Cluster, objects: &[Json]) -> ProviderResult<(Attributes, Option<Json>)> {
    let mut manifests = Attributes::new();
    let mut primary = None;
    for (index, object) in objects.iter().enumerate() {
        let Some(live) = cluster.get(&ObjectRef::of(object)?).await? else { continue };
        manifests.insert(key_of(object), project(object, &live));
        if index == 0 {
            primary = Some(live);
        }
    }
    Ok((manifests, primary))
}

/// Refresh: the live objects replace `manifests`; the resource is gone when
/// its first object is.
pub async fn read(cluster: &Cluster, request: &ReadRequest) -> ProviderResult<(ReadResponse, Option<Json>)> {
    let objects = applied(&request.private);
    if objects.is_empty() {
        return Ok((
            ReadResponse { state: Some(request.state.clone()), private: request.private.clone(), ..ReadResponse::default() },
            None,
        ));
    }
    let (manifests, primary) = live_manifests(cluster, &objects).await?;
    if primary.is_none() {
        return Ok((ReadResponse { state: None, private: request.private.clone(), ..ReadResponse::default() }, None));
    }
    let mut state = request.state.clone();
    state.insert("manifests".into(), Json::Object(manifests));
    Ok((ReadResponse { state: Some(state), private: request.private.clone(), ..ReadResponse::default() }, primary))
}

/// Deletes every object applied, the first (the one that serves) last.
pub async fn delete_all(cluster: &Cluster, private: &Json) -> ProviderResult<()> {
    for object in applied(private).iter().rev() {
        cluster.delete(&ObjectRef::of(object)?).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalise_field;

    #[test]
    fn conflict_fields_read_like_plan_paths() {
        assert_eq!(normalise_field(".spec.replicas"), "spec.replicas");
        assert_eq!(normalise_field(".spec.template.spec.containers[name=\"server\"].image"), "spec.template.spec.containers[server].image");
        assert_eq!(
            normalise_field(".spec.template.spec.containers[name=\"server\"].ports[containerPort=8080,protocol=\"TCP\"].name"),
            "spec.template.spec.containers[server].ports[8080,TCP].name"
        );
    }
}
