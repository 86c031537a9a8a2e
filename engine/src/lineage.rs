//! Lineage: which data, code and parameters produced a resource's current
//! version, read from state.
//!
//! Apply records, with each resource, a lineage node: its address, kind,
//! identity (version, run id, …), the details that matter for its kind
//! (hyperparameters and metrics for a training, row counts for data) and,
//! nested, the lineage of each input *as it was when this version was
//! produced*. So the lineage of a serving names the exact dataset version
//! that trained the model it serves, even after newer data has arrived.

use std::fmt::Write as _;

use serde_json::{json, Value as Json};

use crate::apply::INPUTS_BY_VERSION;
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
            let current =
                object.get("identity").map(|identity| identity.as_str().map(str::to_owned).unwrap_or_else(|| identity.to_string()));
            if current.as_deref() != Some(version) {
                let inputs = by_version.as_ref().and_then(|versions| versions.get(version)).ok_or_else(|| {
                    let known = by_version
                        .as_ref()
                        .and_then(Json::as_object)
                        .map(|versions| mlops_provider_api::registry::sorted_versions(versions.keys().cloned()).join(", "))
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
        Json::String(text) => match text.split_once(':') {
            Some((scheme, hash)) if hash.len() > 16 && hash.chars().all(|character| character.is_ascii_hexdigit()) => {
                format!("{scheme}:{}…", &hash[..12])
            }
            _ => text.clone(),
        },
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
