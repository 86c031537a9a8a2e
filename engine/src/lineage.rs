//! Lineage: which data, code and parameters produced a resource's current
//! version, read from state.
//!
//! Apply records, with each resource, a lineage node: its address, kind,
//! identity (version, run id, …), the details that matter for its kind
//! (hyperparameters and metrics for a training, row counts for data) and,
//! nested, the lineage of each input *as it was when this version was
//! produced*. So the lineage of a serving names the exact dataset version
//! that trained the model it serves, even after newer data has arrived. A
//! model's node also keeps the inputs of its recent versions, so a model
//! pinned to an older version answers for that version.

use std::fmt::Write as _;

use mlops_provider_api::{configuration_from_json, Attributes, Configuration};
use mlops_provider_support::registry::{pinned_version, sorted_versions, version_text};
use serde_json::{json, Value as Json};

use crate::state::{Record, State};

/// The lineage tree of `record`, with the versions its registry still holds.
/// For a model, `version` asks for one of its recent versions instead of
/// the current one; the error says which versions are known.
pub fn lineage_of(state: &State, record: &Record, version: Option<&str>) -> Result<Json, String> {
    let mut tree = if record.lineage.is_null() {
        json!({ "address": record.address, "kind": record.kind, "inputs": [] })
    } else {
        record.lineage.to_json()
    };
    if let Json::Object(object) = &mut tree {
        let by_version = object.remove(INPUTS_BY_VERSION);
        if let Some(version) = version {
            let current = object.get("identity").and_then(version_text);
            if current.as_deref() != Some(version) {
                let inputs = by_version.as_ref().and_then(|versions| versions.get(version)).ok_or_else(|| {
                    let known = by_version
                        .as_ref()
                        .and_then(Json::as_object)
                        .map(|versions| sorted_versions(versions.keys().cloned()).join(", "))
                        .unwrap_or_default();
                    if known.is_empty() {
                        format!("{} keeps no lineage for version {version}", record.address)
                    } else {
                        format!("{} keeps no lineage for version {version}; it keeps the lineage of versions {known}", record.address)
                    }
                })?;
                object.insert("inputs".to_owned(), inputs.clone());
                object.insert("identity".to_owned(), Json::String(version.to_owned()));
                object.remove("note");
                // The details (uri, aliases) describe the current version.
                object.remove("details");
            }
        }
        if let Some(versions) = record.state.get("versions") {
            object.insert("versions".to_owned(), versions.clone());
        }
        object.insert("state_lineage".to_owned(), Json::String(state.lineage.clone()));
        object.insert("updated_at".to_owned(), Json::String(record.updated_at.clone()));
    } else if version.is_some() {
        return Err(format!("{} has no lineage recorded", record.address));
    }
    Ok(tree)
}

/// The tree as indented text.
pub fn render_tree(tree: &Json) -> String {
    let mut out = String::new();
    node(&mut out, tree, "", true, true);
    out
}

fn short(value: &Json) -> String {
    match value {
        Json::String(text) => mlops_provider_support::short_version(text),
        other => other.to_string(),
    }
}

fn node(out: &mut String, tree: &Json, prefix: &str, last: bool, root: bool) {
    let address = tree.get("address").and_then(Json::as_str).unwrap_or("?");
    let identity = tree.get("identity").filter(|identity| !identity.is_null()).map(short);
    let connector = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    let _ = writeln!(out, "{prefix}{connector}{address}{}", identity.map(|identity| format!("  {identity}")).unwrap_or_default());
    let child_prefix = if root { String::new() } else { format!("{prefix}{}", if last { "   " } else { "│  " }) };
    let details_prefix = format!(
        "{child_prefix}{}",
        if tree.get("inputs").and_then(Json::as_array).is_some_and(|inputs| !inputs.is_empty()) { "│    " } else { "     " }
    );
    if let Some(details) = tree.get("details").and_then(Json::as_object) {
        for (name, value) in details {
            let shown = match value {
                Json::Object(entries) => {
                    entries.iter().map(|(key, value)| format!("{key}={}", short(value))).collect::<Vec<_>>().join(", ")
                }
                Json::Array(items) => items.iter().map(short).collect::<Vec<_>>().join(" "),
                other => short(other),
            };
            let _ = writeln!(out, "{details_prefix}{name}: {shown}");
        }
    }
    if let Some(note) = tree.get("note").and_then(Json::as_str) {
        let _ = writeln!(out, "{details_prefix}note: {note}");
    }
    if let Some(versions) = tree.get("versions").and_then(Json::as_array) {
        let listed: Vec<String> = versions.iter().map(short).collect();
        let _ = writeln!(out, "{details_prefix}registered versions: {}", listed.join(", "));
    }
    let inputs = tree.get("inputs").and_then(Json::as_array).cloned().unwrap_or_default();
    for (index, input) in inputs.iter().enumerate() {
        node(out, input, &child_prefix, index + 1 == inputs.len(), false);
    }
}

/// How many of a model's versions keep the lineage of their inputs in its
/// record: enough to roll back through any recent release, without letting
/// a record grow with every retraining.
const VERSIONS_WITH_LINEAGE: usize = 20;

/// A model's inputs are those of its newest run, but a pinned model serves
/// an older version, trained on older data. So a model's lineage keeps the
/// inputs each version was registered from (`inputs_by_version`), and the
/// lineage of a pinned model is that of its version, not of the newest run.
pub(crate) fn lineage_of_the_current_version(tree: &mut Json, config: &Configuration, state: &Attributes, prior: Option<&Record>) {
    let Some(current) = state.get("version").and_then(version_text) else { return };
    let pinned = pinned_version(config).is_some();
    let prior_lineage = prior.map(|prior| prior.lineage.to_json()).unwrap_or(Json::Null);
    let mut by_version = prior_lineage.get(INPUTS_BY_VERSION).and_then(Json::as_object).cloned().unwrap_or_default();
    // A record written before versions kept their own lineage still knows
    // the inputs of the version it was for, unless that version was pinned.
    let prior_pinned = prior.and_then(|prior| pinned_version(&configuration_from_json(&prior.config))).is_some();
    if let (false, Some(version), Some(inputs)) =
        (prior_pinned, prior_lineage.get("identity").and_then(version_text), prior_lineage.get("inputs"))
    {
        by_version.entry(version).or_insert_with(|| inputs.clone());
    }
    let Json::Object(tree) = tree else { return };
    if pinned {
        match by_version.get(&current) {
            Some(inputs) => {
                tree.insert("inputs".to_owned(), inputs.clone());
            }
            None => {
                tree.insert("inputs".to_owned(), Json::Array(Vec::new()));
                tree.insert(
                    "note".to_owned(),
                    Json::String(format!(
                        "version {current} was not registered by this state, so its inputs are not known here; \
                         the registry's tags on the version name its run and data"
                    )),
                );
            }
        }
    } else if let Some(inputs) = tree.get("inputs") {
        by_version.insert(current.clone(), inputs.clone());
    }
    let kept = sorted_versions(by_version.keys().cloned());
    let dropped = kept.len().saturating_sub(VERSIONS_WITH_LINEAGE);
    for version in &kept[..dropped] {
        by_version.remove(version);
    }
    if !by_version.is_empty() {
        tree.insert(INPUTS_BY_VERSION.to_owned(), Json::Object(by_version));
    }
}

/// The key of a model's lineage that holds each recent version's inputs.
pub const INPUTS_BY_VERSION: &str = "inputs_by_version";

/// Drops from a model's lineage the versions its registry no longer holds
/// (deleted outside mlops), so `mlops lineage --version` does not answer for them.
pub fn keep_registered_versions(record: &mut Record) {
    let Some(versions) = record.state.get("versions").and_then(Json::as_array) else { return };
    let registered: std::collections::BTreeSet<String> = versions.iter().filter_map(version_text).collect();
    let mut tree = record.lineage.to_json();
    let Some(by_version) = tree.get_mut(INPUTS_BY_VERSION).and_then(Json::as_object_mut) else { return };
    let before = by_version.len();
    by_version.retain(|version, _| registered.contains(version));
    if by_version.len() != before {
        record.lineage = crate::state::Lineage::from_json(&tree);
    }
}
