//! What every model registry provider (local, mlflow, oci) shares: the
//! registered name, the lineage written onto a version, the plan of a
//! `model` (new version, pinned version, alias moves) and the alias
//! history kept in state for rollback.
//!
//! A registry provider's `read` puts where each alias points now into its
//! private data under [`LIVE_ALIASES`], so the plan can say "alias
//! `champion` moves from version 5 back to 3" instead of only "aliases
//! changed".

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use mlops_provider_api::{configuration_from_json, Attributes, Configuration, PlanRequest, PlanResponse, Target, Value};

/// The private key holding `{alias: version}` as the registry has it.
pub const LIVE_ALIASES: &str = "live_aliases";

/// How many alias moves state keeps per model: enough to roll back far,
/// bounded so the record stays small.
const HISTORY_LIMIT: usize = 100;

/// The name a model is registered under: `name`, or the block's name, with
/// the instance's key (`model.fraud["eu"]` registers as `fraud-eu`).
pub fn registered_model_name(target: &Target, config: &Configuration) -> String {
    config.get("name").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| match &target.instance_key {
        Some(key) => format!("{}-{key}", target.name),
        None => target.name.clone(),
    })
}

/// The version the configuration pins (`version = "3"`), if any.
pub fn pinned_version(config: &Configuration) -> Option<String> {
    config.get("version").and_then(|version| version.to_plain_json()).as_ref().and_then(version_text)
}

/// A version number as text, whether written as a string or a number.
pub fn version_text(value: &Json) -> Option<String> {
    match value {
        Json::String(version) => Some(version.clone()),
        Json::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The aliases the configuration asks for.
pub fn wanted_aliases(config: &Configuration) -> Vec<String> {
    strings(config, "aliases")
}

/// `{alias: version}` recorded by `read` in private data.
pub fn live_aliases(private: &Json) -> BTreeMap<String, String> {
    private.get(LIVE_ALIASES).and_then(Json::as_object).map(string_entries).unwrap_or_default()
}

/// The entries of a JSON object whose values are strings, such as an alias
/// index (`{alias: version}`) or recorded digests (`{version: digest}`).
pub fn string_entries(object: &serde_json::Map<String, Json>) -> BTreeMap<String, String> {
    object.iter().filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned()))).collect()
}

/// The lineage of a version as flat `(key, value)` tags: the training run,
/// its fingerprint, every upstream dataset and feature set version, and the
/// mlops state lineage id. Registries that only hold strings (MLflow tags,
/// OCI annotations) store these.
pub fn lineage_tags(source: &Value, lineage: &Json) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    if let Some(address) = lineage.get("address").and_then(Json::as_str) {
        tags.push(("mlops.address".to_owned(), address.to_owned()));
    }
    if let Some(reference) = source.as_reference() {
        tags.push(("mlops.training".to_owned(), reference.address.clone()));
    }
    if let Some(run_id) = source.get("run_id").and_then(Value::as_str) {
        tags.push(("mlops.training_run".to_owned(), run_id.to_owned()));
    }
    if let Some(fingerprint) = source.get("fingerprint").and_then(Value::as_str) {
        tags.push(("mlops.fingerprint".to_owned(), fingerprint.to_owned()));
    }
    if let Some(state_lineage) = lineage.get("state_lineage").and_then(Json::as_str) {
        tags.push(("mlops.state_lineage".to_owned(), state_lineage.to_owned()));
    }
    fn walk(node: &Json, tags: &mut BTreeMap<String, String>) {
        for input in node.get("inputs").and_then(Json::as_array).into_iter().flatten() {
            let kind = input.get("kind").and_then(Json::as_str).unwrap_or("");
            if let (Some(address), Some(identity)) = (input.get("address").and_then(Json::as_str), input.get("identity")) {
                if matches!(kind, "dataset" | "feature_set") {
                    let identity = identity.as_str().map_or_else(|| identity.to_string(), str::to_owned);
                    tags.insert(format!("mlops.input.{address}"), identity);
                }
            }
            walk(input, tags);
        }
    }
    let mut inputs = BTreeMap::new();
    walk(lineage, &mut inputs);
    tags.extend(inputs);
    tags
}

/// The plan of a `model` on any registry: whether a new version is
/// registered, which version is pinned, and where each alias moves.
pub fn plan_model(request: &PlanRequest) -> PlanResponse {
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    let pinned = pinned_version(&request.config);
    let pin_unknown = request.config.get("version").is_some_and(Value::is_unknown);
    let source_changed = request.changed_inputs.iter().any(|input| input.path.first().map(String::as_str) == Some("source"));
    let computed_later = |names: &[&str]| names.iter().map(|name| vec![(*name).to_owned()]).collect::<Vec<_>>();
    let Some(prior) = &request.prior_state else {
        match pinned {
            Some(version) => {
                response.planned_state.insert("version".into(), Json::String(version));
                response.unknown = computed_later(&["versions", "uri", "alias_history"]);
            }
            None => response.unknown = computed_later(&["version", "versions", "uri", "alias_history"]),
        }
        return response;
    };
    let current = prior.get("version").and_then(Json::as_str).map(str::to_owned);
    // The version this apply makes current: `None` when it is registered by the apply.
    let target_version = if pin_unknown {
        None
    } else if let Some(pinned) = &pinned {
        if current.as_deref() != Some(pinned) {
            response.update_reasons.push(match &current {
                Some(current) => format!("`version` pins version {pinned}: version {current} stops being the current version"),
                None => format!("`version` pins version {pinned}"),
            });
        }
        Some(pinned.clone())
    } else if source_changed {
        response.update_reasons.push("a new model version will be registered from the new run if its gates pass".into());
        None
    } else if let Some(was_pinned) = request.prior_config.as_ref().and_then(pinned_version) {
        // The pinned version need not be the newest run's: which version
        // that run has (or gets, if its gates pass) is known after apply.
        response.update_reasons.push(format!(
            "`version` no longer pins version {was_pinned}: the model follows its newest run again (registered if its gates pass)"
        ));
        None
    } else {
        current.clone()
    };
    let live = live_aliases(&request.prior_private);
    let held: Vec<String> = crate::state_strings(prior, "aliases");
    let mut moves = false;
    for alias in wanted_aliases(&request.config) {
        let now = live.get(&alias).cloned().or_else(|| held.contains(&alias).then(|| current.clone()).flatten());
        let to = target_version.as_deref().map_or("the new version".to_owned(), |version| format!("version {version}"));
        match (now, &target_version) {
            (Some(now), Some(target)) if &now == target => {}
            (Some(now), _) => {
                moves = true;
                let back = target_version.as_ref().and_then(|target| Some(target.parse::<u64>().ok()? < now.parse::<u64>().ok()?));
                let direction = if back == Some(true) { "back " } else { "" };
                let outside =
                    if current.as_deref() != Some(now.as_str()) && !held.contains(&alias) { " (it was moved outside mlops)" } else { "" };
                response.update_reasons.push(format!("alias `{alias}` moves from version {now}{outside} {direction}to {to}"));
            }
            (None, _) => {
                moves = true;
                response.update_reasons.push(format!("alias `{alias}` is set on {to}"));
            }
        }
    }
    let wanted = wanted_aliases(&request.config);
    let prior_config = request.prior_config.clone().unwrap_or_else(|| configuration_from_json(prior));
    for alias in wanted_aliases(&prior_config) {
        if !wanted.contains(&alias) {
            moves = true;
            let at = live.get(&alias).map_or(String::new(), |version| format!(" (it points at version {version})"));
            response.update_reasons.push(format!("alias `{alias}` is removed{at}"));
        }
    }
    if target_version.is_none() {
        response.unknown = computed_later(&["version", "versions", "uri", "alias_history"]);
    } else {
        if let Some(target) = &target_version {
            response.planned_state.insert("version".into(), Json::String(target.clone()));
        }
        if target_version != current {
            response.unknown.push(vec!["uri".to_owned()]);
        }
        if moves {
            response.unknown.push(vec!["alias_history".to_owned()]);
        }
    }
    response
}

/// One alias move, for the history.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasMove {
    pub alias: String,
    /// Where it pointed before; `None` when it was not set.
    pub from: Option<String>,
    /// Where it points now; `None` when it was removed.
    pub to: Option<String>,
}

/// The moves that take the registry's aliases (`live`) to `wanted` on
/// `version`, plus the removal of `dropped` aliases.
pub fn alias_moves(live: &BTreeMap<String, String>, wanted: &[String], dropped: &[String], version: &str) -> Vec<AliasMove> {
    let mut moves = Vec::new();
    for alias in wanted {
        if live.get(alias).map(String::as_str) != Some(version) {
            moves.push(AliasMove { alias: alias.clone(), from: live.get(alias).cloned(), to: Some(version.to_owned()) });
        }
    }
    for alias in dropped {
        if !wanted.contains(alias) {
            if let Some(from) = live.get(alias) {
                moves.push(AliasMove { alias: alias.clone(), from: Some(from.clone()), to: None });
            }
        }
    }
    moves
}

/// The prior `alias_history` with `moves` appended (at time `at`), newest
/// last, bounded to the last [`HISTORY_LIMIT`] moves.
pub fn alias_history(prior_state: Option<&Attributes>, moves: &[AliasMove], at: &str) -> Json {
    let mut history: Vec<Json> =
        prior_state.and_then(|state| state.get("alias_history")).and_then(Json::as_array).cloned().unwrap_or_default();
    for change in moves {
        history.push(json!({
            "alias": change.alias,
            "from": change.from.clone().unwrap_or_default(),
            "to": change.to.clone().unwrap_or_default(),
            "at": at,
        }));
    }
    let excess = history.len().saturating_sub(HISTORY_LIMIT);
    history.drain(..excess);
    Json::Array(history)
}

/// A model's state after an apply: `version` current, appended to the
/// prior `versions`, its artifacts at `uri`, the `wanted` aliases on it and
/// `moves` appended to the alias history at time `at`.
pub fn model_state(
    prior_state: Option<&Attributes>,
    version: &str,
    uri: String,
    wanted: &[String],
    moves: &[AliasMove],
    at: &str,
) -> Attributes {
    let mut versions: Vec<String> = prior_state.map(|state| crate::state_strings(state, "versions")).unwrap_or_default();
    versions.push(version.to_owned());
    let mut state = Attributes::new();
    state.insert("version".into(), Json::String(version.to_owned()));
    state.insert("versions".into(), json!(sorted_versions(versions)));
    state.insert("uri".into(), Json::String(uri));
    state.insert("aliases".into(), json!(wanted));
    state.insert("alias_history".into(), alias_history(prior_state, moves, at));
    state
}

pub use crate::config::strings;

/// Version numbers in registry order ("2" before "10"), without repeats.
pub fn sorted_versions(versions: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut versions: Vec<String> = versions.into_iter().collect();
    versions.sort_by(|left, right| match (left.parse::<u64>(), right.parse::<u64>()) {
        (Ok(left), Ok(right)) => left.cmp(&right),
        _ => left.cmp(right),
    });
    versions.dedup();
    versions
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_provider_api::ChangedInput;

    fn attributes(value: Json) -> Attributes {
        value.as_object().cloned().unwrap_or_default()
    }

    fn config(value: Json) -> Configuration {
        configuration_from_json(&attributes(value))
    }

    #[test]
    fn pinning_an_older_version_moves_the_alias_back() {
        let request = PlanRequest {
            config: config(json!({"aliases": ["champion"], "version": "3"})),
            prior_config: Some(config(json!({"aliases": ["champion"]}))),
            prior_state: Some(attributes(json!({"version": "5", "aliases": ["champion"]}))),
            prior_private: json!({"live_aliases": {"champion": "5"}}),
            ..PlanRequest::default()
        };
        let response = plan_model(&request);
        assert_eq!(
            response.update_reasons,
            vec![
                "`version` pins version 3: version 5 stops being the current version".to_owned(),
                "alias `champion` moves from version 5 back to version 3".to_owned()
            ]
        );
        assert_eq!(response.planned_state.get("version"), Some(&json!("3")));
    }

    #[test]
    fn unpinning_follows_the_newest_run_again() {
        let request = PlanRequest {
            config: config(json!({"aliases": ["champion"]})),
            prior_config: Some(config(json!({"aliases": ["champion"], "version": "1"}))),
            prior_state: Some(attributes(json!({"version": "1", "aliases": ["champion"]}))),
            prior_private: json!({"live_aliases": {"champion": "1"}}),
            ..PlanRequest::default()
        };
        let response = plan_model(&request);
        assert_eq!(
            response.update_reasons[0],
            "`version` no longer pins version 1: the model follows its newest run again (registered if its gates pass)"
        );
        assert!(response.unknown.contains(&vec!["version".to_owned()]), "{:?}", response.unknown);
    }

    #[test]
    fn a_new_run_registers_a_new_version_and_moves_the_aliases() {
        let request = PlanRequest {
            config: config(json!({"aliases": ["challenger"]})),
            prior_config: Some(config(json!({"aliases": ["challenger"]}))),
            prior_state: Some(attributes(json!({"version": "2", "aliases": ["challenger"]}))),
            prior_private: json!({"live_aliases": {"challenger": "2"}}),
            changed_inputs: vec![ChangedInput { path: vec!["source".into()], ..ChangedInput::default() }],
            ..PlanRequest::default()
        };
        let response = plan_model(&request);
        assert_eq!(response.update_reasons[1], "alias `challenger` moves from version 2 to the new version");
        assert!(response.unknown.contains(&vec!["version".to_owned()]));
    }

    #[test]
    fn an_alias_moved_outside_is_moved_back_and_nothing_else_changes() {
        let request = PlanRequest {
            config: config(json!({"aliases": ["champion"]})),
            prior_config: Some(config(json!({"aliases": ["champion"]}))),
            prior_state: Some(attributes(json!({"version": "2", "aliases": []}))),
            prior_private: json!({"live_aliases": {"champion": "4"}}),
            ..PlanRequest::default()
        };
        let response = plan_model(&request);
        assert_eq!(response.update_reasons, vec!["alias `champion` moves from version 4 (it was moved outside mlops) back to version 2"]);
        let unchanged = PlanRequest {
            prior_state: Some(attributes(json!({"version": "2", "aliases": ["champion"]}))),
            prior_private: json!({"live_aliases": {"champion": "2"}}),
            ..request
        };
        assert!(plan_model(&unchanged).update_reasons.is_empty());
    }

    #[test]
    fn history_keeps_every_move_in_order() {
        let live = BTreeMap::from([("champion".to_owned(), "1".to_owned()), ("old".to_owned(), "1".to_owned())]);
        let moves = alias_moves(&live, &["champion".to_owned(), "challenger".to_owned()], &["old".to_owned()], "2");
        let history = alias_history(None, &moves, "2026-11-22T00:00:00Z");
        assert_eq!(
            history,
            json!([
                {"alias": "champion", "from": "1", "to": "2", "at": "2026-11-22T00:00:00Z"},
                {"alias": "challenger", "from": "", "to": "2", "at": "2026-11-22T00:00:00Z"},
                {"alias": "old", "from": "1", "to": "", "at": "2026-11-22T00:00:00Z"},
            ])
        );
    }

    #[test]
    fn lineage_becomes_flat_tags() {
        let lineage = json!({
            "address": "model.fraud", "state_lineage": "L1",
            "inputs": [{"address": "training.fraud", "kind": "training", "identity": "run-1",
                "inputs": [{"address": "feature_set.txn", "kind": "feature_set", "identity": "b3:f",
                    "inputs": [{"address": "dataset.tx", "kind": "dataset", "identity": "b3:d"}]}]}]
        });
        let source = Value::Reference(Box::new(mlops_provider_api::Reference {
            address: "training.fraud".into(),
            identity: Some("run-1".into()),
            target: Some(mlops_provider_api::ReferencedResource {
                kind: "training".into(),
                identity: Some("run-1".into()),
                attributes: config(json!({"run_id": "run-1", "fingerprint": "b3:p"})),
            }),
        }));
        let tags = lineage_tags(&source, &lineage);
        let keys: Vec<&str> = tags.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "mlops.address",
                "mlops.training",
                "mlops.training_run",
                "mlops.fingerprint",
                "mlops.state_lineage",
                "mlops.input.dataset.tx",
                "mlops.input.feature_set.txn"
            ]
        );
    }
}
