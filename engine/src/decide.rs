//! The planner's decisions, with no IO: given what the state recorded,
//! what the configuration says, the kind's schema and the provider's
//! answer, which action a resource gets and why, and which of its values
//! are known before apply. `plan.rs` gathers the inputs (refresh, the
//! provider's `plan`) and calls these; the tests below drive them with
//! data alone.

use std::collections::{BTreeSet, HashMap, HashSet};

use mlops_compiler::schema::KindSchema;
use mlops_provider_api::value::written::unknown_marker;
use mlops_provider_api::{Action, AttributePath, Attributes, ChangedInput, PlanResponse};
use serde_json::Value as Json;

use crate::convert::{references, without_identities};
use crate::redact::touches_sensitive;
use crate::state::Record;

/// The references whose targets have a new identity since the prior apply.
pub fn changed_inputs(prior_config: &Attributes, config: &Attributes) -> Vec<ChangedInput> {
    let prior_references: HashMap<AttributePath, (String, Option<String>)> =
        references(prior_config).into_iter().map(|(path, address, identity)| (path, (address, identity))).collect();
    references(config)
        .into_iter()
        .filter_map(|(path, target, identity)| {
            let (prior_target, prior_identity) = prior_references.get(&path)?;
            (prior_target == &target && prior_identity != &identity).then(|| ChangedInput {
                path,
                address: target,
                before: prior_identity.clone(),
                after: identity,
            })
        })
        .collect()
}

/// Whether `ignore_changes` covers the attribute `name`.
pub fn ignored(ignore_changes: &[String], name: &str) -> bool {
    ignore_changes.iter().any(|ignored| ignored == name || ignored == "all")
}

/// The attributes the user changed since the prior apply, `ignore_changes`
/// honoured; an ignored attribute keeps its prior value in `config`.
pub fn changed_attributes(prior_config: &Attributes, config: &mut Attributes, ignore_changes: &[String]) -> Vec<String> {
    let names: BTreeSet<String> = config.keys().chain(prior_config.keys()).cloned().collect();
    let mut changed = Vec::new();
    for name in names {
        if ignored(ignore_changes, &name) {
            if let Some(prior_value) = prior_config.get(&name) {
                config.insert(name.clone(), prior_value.clone());
            }
            continue;
        }
        let before = prior_config.get(&name).map(without_identities).unwrap_or(Json::Null);
        let after = config.get(&name).map(without_identities).unwrap_or(Json::Null);
        if before != after {
            changed.push(name);
        }
    }
    changed
}

/// Everything one decision needs.
pub struct DecisionInput<'a> {
    pub schema: &'a KindSchema,
    pub is_data: bool,
    /// The recorded resource, refreshed; `None` when it does not exist yet.
    pub prior: Option<&'a Record>,
    /// The configuration as planned (markers and all).
    pub config: &'a Attributes,
    pub sensitive_paths: &'a [AttributePath],
    pub ignore_changes: &'a [String],
    pub changed_inputs: &'a [ChangedInput],
    pub changed_attributes: &'a [String],
    pub response: &'a PlanResponse,
    /// An interrupted apply left work under way for this resource.
    pub resuming: bool,
    /// The prior state with the secrets that were not stored taken from
    /// the configuration (they cannot be compared).
    pub live_state: Option<&'a Attributes>,
    /// The identity attribute of an input's kind, for the reasons.
    pub identity_of: &'a dyn Fn(&str) -> &'static str,
}

/// The action and its reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub reasons: Vec<String>,
}

/// Chooses the action for one resource, and says why.
pub fn decide(input: &DecisionInput<'_>) -> Decision {
    let mut reasons: Vec<String> = input
        .changed_inputs
        .iter()
        .map(|changed| {
            format!(
                "input {} changed: {} {} -> {}",
                changed.address,
                (input.identity_of)(&changed.address),
                changed.before.as_deref().map_or("(none)".to_owned(), crate::plan::short_identity),
                changed.after.as_deref().map_or("(known after apply)".to_owned(), crate::plan::short_identity)
            )
        })
        .collect();
    let mut replace_reasons: Vec<String> = input.response.requires_replace.clone();
    for name in input.changed_attributes {
        let forces = input.schema.body.attributes.get(name).is_some_and(|attribute| attribute.force_new);
        if forces {
            replace_reasons.push(format!("`{name}` changed, which forces replacement"));
        } else {
            reasons.push(format!("`{name}` changed"));
        }
    }
    // Settings the provider reads back that differ from the configuration:
    // changed outside mlops, corrected by an update.
    if let Some(live_state) = input.live_state {
        for (name, live) in live_state {
            // Nested blocks the provider reads back (a bucket's lifecycle
            // rules) count as much as attributes.
            let configured =
                input.schema.body.attributes.get(name).is_some_and(|attribute| !attribute.computed && attribute.reads_as.is_none())
                    || input.schema.body.blocks.contains_key(name);
            if !configured || input.changed_attributes.contains(name) || input.ignore_changes.iter().any(|ignored| ignored == name) {
                continue;
            }
            let Some(wanted) = input.config.get(name) else { continue };
            if without_identities(wanted) == *live {
                continue;
            }
            if touches_sensitive(name, input.sensitive_paths) {
                reasons.push(format!("`{name}` was changed outside mlops (it holds a sensitive value, not shown)"));
            } else {
                reasons.push(format!("`{name}` was {wanted} and is {live} now (changed outside mlops): apply sets it back"));
            }
        }
    }
    reasons.extend(input.response.update_reasons.iter().cloned());
    if input.resuming {
        reasons.push(
            "an interrupted apply left work under way: apply resumes it if it was started with these settings, and stops it otherwise"
                .to_owned(),
        );
    }
    let planned_state = &input.response.planned_state;
    let action = if input.is_data {
        // A data source is read while planning; it is a change only when
        // what it reads differs from the last apply.
        match input.prior {
            Some(prior) if prior.state == *planned_state && input.changed_attributes.is_empty() => Action::NoOp,
            Some(prior) => {
                let changed: Vec<&String> =
                    planned_state.keys().filter(|name| prior.state.get(*name) != planned_state.get(*name)).collect();
                if changed.is_empty() {
                    reasons.push("its configuration changed".to_owned());
                } else {
                    reasons.push(format!(
                        "it reads something new: {}",
                        changed.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
                    ));
                }
                Action::Read
            }
            None => Action::Read,
        }
    } else if input.prior.is_none() {
        Action::Create
    } else if !replace_reasons.is_empty() {
        Action::Replace
    } else if !reasons.is_empty() {
        Action::Update
    } else {
        Action::NoOp
    };
    if action == Action::Replace {
        reasons.extend(replace_reasons);
    }
    Decision { action, reasons }
}

/// The computed attributes known before apply: the prior state for an
/// unchanged resource, the prior state updated by what the provider
/// planned for an update, and what it planned for anything else.
pub fn known_values(action: Action, prior: Option<&Record>, response: &PlanResponse) -> Attributes {
    let unknown: HashSet<&str> = response.unknown.iter().filter_map(|path| path.first().map(String::as_str)).collect();
    match action {
        Action::NoOp => prior.map(|prior| prior.state.clone()).unwrap_or_default(),
        Action::Update => {
            let mut known = prior.map(|prior| prior.state.clone()).unwrap_or_default();
            for (name, value) in &response.planned_state {
                known.insert(name.clone(), value.clone());
            }
            for name in &unknown {
                known.remove(*name);
            }
            known
        }
        _ => response.planned_state.clone(),
    }
}

/// The attributes after apply as far as they are known, and the paths known
/// only after apply: computed attributes not known yet, and what a run
/// reports (its metrics) until it has.
pub fn after_values(
    schema: &KindSchema,
    config: &Attributes,
    planned_config: &Attributes,
    known: &Attributes,
) -> (Attributes, Vec<AttributePath>) {
    let mut after = planned_config.clone();
    for (name, value) in known {
        after.insert(name.clone(), value.clone());
    }
    let mut unknown = Vec::new();
    for (name, attribute) in &schema.body.attributes {
        let reported = attribute.reads_as.as_deref() == Some("metrics");
        if reported && !known.contains_key(name) {
            after.insert(name.clone(), unknown_marker());
            unknown.push(vec![name.clone()]);
            continue;
        }
        if !attribute.computed {
            continue;
        }
        match known.get(name) {
            Some(value) => {
                after.insert(name.clone(), value.clone());
            }
            None if !config.contains_key(name) => {
                after.insert(name.clone(), unknown_marker());
                unknown.push(vec![name.clone()]);
            }
            None => {}
        }
    }
    (after, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_compiler::schema::Schemas;
    use serde_json::json;

    fn attributes(value: Json) -> Attributes {
        value.as_object().cloned().unwrap_or_default()
    }

    fn record(kind: &str, config: Json, state: Json) -> Record {
        Record {
            address: format!("{kind}.x"),
            kind: kind.to_owned(),
            provider: "local".to_owned(),
            config: attributes(config),
            state: attributes(state),
            ..Record::default()
        }
    }

    /// One row of the decision table.
    struct Case {
        name: &'static str,
        kind: &'static str,
        is_data: bool,
        prior: Option<(Json, Json)>,
        config: Json,
        ignore_changes: &'static [&'static str],
        response: Json,
        action: Action,
        reasons: &'static [&'static str],
    }

    fn run(case: &Case) -> Decision {
        let schemas = Schemas::standard();
        let schema = schemas.kind(case.kind, case.is_data).unwrap();
        let prior = case.prior.as_ref().map(|(config, state)| record(case.kind, config.clone(), state.clone()));
        let mut config = attributes(case.config.clone());
        let ignore_changes: Vec<String> = case.ignore_changes.iter().map(|name| (*name).to_owned()).collect();
        let changed_inputs = prior.as_ref().map(|prior| changed_inputs(&prior.config, &config)).unwrap_or_default();
        let changed = prior.as_ref().map(|prior| changed_attributes(&prior.config, &mut config, &ignore_changes)).unwrap_or_default();
        let response: PlanResponse = serde_json::from_value(case.response.clone()).unwrap();
        decide(&DecisionInput {
            schema,
            is_data: case.is_data,
            prior: prior.as_ref(),
            config: &config,
            sensitive_paths: &[],
            ignore_changes: &ignore_changes,
            changed_inputs: &changed_inputs,
            changed_attributes: &changed,
            response: &response,
            resuming: false,
            live_state: prior.as_ref().map(|prior| &prior.state),
            identity_of: &|_| "version",
        })
    }

    #[test]
    fn the_decision_table() {
        let nothing = json!({ "planned_state": {}, "unknown": [], "requires_replace": [], "update_reasons": [], "private": null });
        let cases = [
            Case {
                name: "a new resource is created",
                kind: "bucket",
                is_data: false,
                prior: None,
                config: json!({ "name": "lake" }),
                ignore_changes: &[],
                response: nothing.clone(),
                action: Action::Create,
                reasons: &[],
            },
            Case {
                name: "the same configuration changes nothing",
                kind: "bucket",
                is_data: false,
                prior: Some((json!({ "name": "lake", "versioning": false }), json!({ "uri": "file:///lake", "versioning": false }))),
                config: json!({ "name": "lake", "versioning": false }),
                ignore_changes: &[],
                response: nothing.clone(),
                action: Action::NoOp,
                reasons: &[],
            },
            Case {
                name: "a changed setting is an update",
                kind: "bucket",
                is_data: false,
                prior: Some((json!({ "name": "lake", "versioning": false }), json!({ "versioning": false }))),
                config: json!({ "name": "lake", "versioning": true }),
                ignore_changes: &[],
                response: nothing.clone(),
                action: Action::Update,
                reasons: &["`versioning` changed"],
            },
            Case {
                name: "a replace-forcing setting replaces",
                kind: "bucket",
                is_data: false,
                prior: Some((json!({ "name": "lake" }), json!({}))),
                config: json!({ "name": "pond" }),
                ignore_changes: &[],
                response: nothing.clone(),
                action: Action::Replace,
                reasons: &["`name` changed, which forces replacement"],
            },
            Case {
                name: "ignore_changes keeps the prior value",
                kind: "bucket",
                is_data: false,
                prior: Some((json!({ "name": "lake", "versioning": false }), json!({}))),
                config: json!({ "name": "lake", "versioning": true }),
                ignore_changes: &["versioning"],
                response: nothing.clone(),
                action: Action::NoOp,
                reasons: &[],
            },
            Case {
                name: "a setting changed outside mlops is taken back",
                kind: "bucket",
                is_data: false,
                prior: Some((json!({ "name": "lake", "versioning": true }), json!({ "versioning": false }))),
                config: json!({ "name": "lake", "versioning": true }),
                ignore_changes: &[],
                response: nothing.clone(),
                action: Action::Update,
                reasons: &["`versioning` was true and is false now (changed outside mlops): apply sets it back"],
            },
            Case {
                name: "a new input version is an update with the identities",
                kind: "feature_set",
                is_data: false,
                prior: Some((
                    json!({ "dataset": { "$ref": "dataset.d", "identity": "b3:1111111111111111aaaa" } }),
                    json!({ "uri": "file:///f" }),
                )),
                config: json!({ "dataset": { "$ref": "dataset.d", "identity": "b3:2222222222222222bbbb" } }),
                ignore_changes: &[],
                response: nothing.clone(),
                action: Action::Update,
                reasons: &["input dataset.d changed: version b3:11111111… -> b3:22222222…"],
            },
            Case {
                name: "the provider's replace reasons come after the others",
                kind: "training",
                is_data: false,
                prior: Some((json!({ "command": ["a"] }), json!({ "run_id": "r1" }))),
                config: json!({ "command": ["b"] }),
                ignore_changes: &[],
                response: json!({ "planned_state": {}, "unknown": [["run_id"]], "requires_replace": ["the run fingerprint changed"], "update_reasons": [], "private": null }),
                action: Action::Replace,
                reasons: &["`command` changed", "the run fingerprint changed"],
            },
            Case {
                name: "a data source reading what it read before is unchanged",
                kind: "image",
                is_data: true,
                prior: Some((json!({ "ref": "r:1" }), json!({ "digest": "sha256:1" }))),
                config: json!({ "ref": "r:1" }),
                ignore_changes: &[],
                response: json!({ "planned_state": { "digest": "sha256:1" }, "unknown": [], "requires_replace": [], "update_reasons": [], "private": null }),
                action: Action::NoOp,
                reasons: &[],
            },
            Case {
                name: "a data source reading something new is read and says what",
                kind: "image",
                is_data: true,
                prior: Some((json!({ "ref": "r:1" }), json!({ "digest": "sha256:1" }))),
                config: json!({ "ref": "r:1" }),
                ignore_changes: &[],
                response: json!({ "planned_state": { "digest": "sha256:2" }, "unknown": [], "requires_replace": [], "update_reasons": [], "private": null }),
                action: Action::Read,
                reasons: &["it reads something new: `digest`"],
            },
        ];
        for case in &cases {
            let decision = run(case);
            assert_eq!(decision.action, case.action, "{}: {:?}", case.name, decision.reasons);
            assert_eq!(decision.reasons, case.reasons, "{}", case.name);
        }
    }

    #[test]
    fn known_values_follow_the_action() {
        let prior = record("dataset", json!({}), json!({ "version": "b3:1", "row_count": 10 }));
        let response: PlanResponse = serde_json::from_value(
            json!({ "planned_state": { "version": "b3:2" }, "unknown": [["row_count"]], "requires_replace": [], "update_reasons": [], "private": null }),
        )
        .unwrap();
        assert_eq!(known_values(Action::NoOp, Some(&prior), &response), prior.state);
        assert_eq!(known_values(Action::Update, Some(&prior), &response), attributes(json!({ "version": "b3:2" })));
        assert_eq!(known_values(Action::Create, None, &response), attributes(json!({ "version": "b3:2" })));
    }

    #[test]
    fn after_values_mark_what_is_known_only_after_apply() {
        let schema = Schemas::standard().kind("training", false).unwrap();
        let config = attributes(json!({ "command": ["python3", "train.py"], "metrics": ["auc"] }));
        let (after, unknown) = after_values(schema, &config, &config, &attributes(json!({ "fingerprint": "b3:9" })));
        assert_eq!(after["fingerprint"], "b3:9");
        assert_eq!(after["run_id"], unknown_marker());
        assert!(unknown.contains(&vec!["metrics".to_owned()]) && unknown.contains(&vec!["run_id".to_owned()]), "{unknown:?}");
        assert!(!unknown.contains(&vec!["fingerprint".to_owned()]));
    }
}
