//! Between the compiler's values and the JSON attributes of the provider API.
//!
//! A configuration becomes JSON with markers: references to resources as
//! `{"$ref": ADDRESS, "identity": VERSION}`, values known only after apply as
//! `{"$unknown": true}` or, where the planner has a residual expression, as
//! `{"$expr": TEXT}`. Sensitive parts are unwrapped and their paths listed,
//! so whoever writes the JSON down can seal them.

use std::collections::BTreeMap;

use mlops_compiler::schema::Schemas;
use mlops_compiler::schema::{BlockSchema, KindSchema};
use mlops_compiler::value::{json_number, Value};
use mlops_provider_api::{unknown_marker, AttributePath, Attributes};
use serde_json::Value as Json;

/// The configuration part of an instance's attributes (computed-only
/// attributes left out), as JSON with markers.
pub fn config_json(
    attributes: &BTreeMap<String, Value>,
    schema: &KindSchema,
    deferred: &[(Vec<String>, String)],
) -> (Attributes, Vec<AttributePath>) {
    let mut sensitive = Vec::new();
    let mut config = Attributes::new();
    for (name, value) in attributes {
        let Some(attribute) = schema.body.attributes.get(name) else {
            if schema.body.blocks.contains_key(name) {
                let mut path = vec![name.clone()];
                config.insert(name.clone(), to_json(value, &mut path, &mut sensitive));
            }
            continue;
        };
        if attribute.computed && (!attribute.configurable || !value.is_known() || value.is_null()) {
            continue;
        }
        // Declared metrics read as a map of numbers in expressions; what the
        // user configured is the list of names.
        if attribute.reads_as.as_deref() == Some("metrics") {
            if let Value::Map(entries) = value.unmark().0 {
                config.insert(name.clone(), Json::Array(entries.keys().map(|key| Json::String(key.clone())).collect()));
                continue;
            }
        }
        let mut path = vec![name.clone()];
        config.insert(name.clone(), to_json(value, &mut path, &mut sensitive));
    }
    for (path, text) in deferred {
        if let Some(slot) = crate::state::json_at_mut(&mut config, path) {
            *slot = serde_json::json!({ "$expr": text });
        }
    }
    (config, sensitive)
}

fn to_json(value: &Value, path: &mut Vec<String>, sensitive: &mut Vec<AttributePath>) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Number(number) => json_number(*number),
        Value::String(text) => Json::String(text.clone()),
        Value::List(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    path.push(index.to_string());
                    let json = to_json(item, path, sensitive);
                    path.pop();
                    json
                })
                .collect(),
        ),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(key, item)| {
                    path.push(key.clone());
                    let json = to_json(item, path, sensitive);
                    path.pop();
                    (key.clone(), json)
                })
                .collect(),
        ),
        Value::Resource(resource) => {
            let identity =
                resource.attributes.get(Schemas::standard().identity_attribute(&resource.kind, resource.is_data)).and_then(identity_text);
            serde_json::json!({ "$ref": resource.address, "identity": identity })
        }
        Value::Unknown(_) => unknown_marker(),
        Value::Sensitive(inner) => {
            sensitive.push(path.clone());
            to_json(inner, path, sensitive)
        }
    }
}

/// An identity value as text, when known.
pub fn identity_text(value: &Value) -> Option<String> {
    match value.unmark().0 {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(mlops_compiler::value::format_number(*number)),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Every reference marker in `config`, with its path.
pub fn references(config: &Attributes) -> Vec<(AttributePath, String, Option<String>)> {
    fn walk(value: &Json, path: &mut Vec<String>, out: &mut Vec<(AttributePath, String, Option<String>)>) {
        if let Some((address, identity)) = mlops_provider_api::as_reference(value) {
            out.push((path.clone(), address.to_owned(), identity.map(str::to_owned)));
            return;
        }
        match value {
            Json::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(index.to_string());
                    walk(item, path, out);
                    path.pop();
                }
            }
            Json::Object(entries) => {
                for (key, item) in entries {
                    path.push(key.clone());
                    walk(item, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (name, value) in config {
        let mut path = vec![name.clone()];
        walk(value, &mut path, &mut out);
    }
    out
}

/// A copy of `value` with the identities of reference markers removed, so
/// that comparing configurations sees only what the user wrote.
pub fn without_identities(value: &Json) -> Json {
    match value {
        Json::Object(entries) if entries.contains_key("$ref") => {
            serde_json::json!({ "$ref": entries.get("$ref").cloned().unwrap_or(Json::Null) })
        }
        Json::Object(entries) => Json::Object(entries.iter().map(|(key, item)| (key.clone(), without_identities(item))).collect()),
        Json::Array(items) => Json::Array(items.iter().map(without_identities).collect()),
        other => other.clone(),
    }
}

/// Computed attributes as compiler values (sensitive parts marked).
pub fn values_from_json(attributes: &Attributes, sensitive_paths: &[AttributePath]) -> BTreeMap<String, Value> {
    attributes
        .iter()
        .map(|(name, json)| {
            let sensitive = sensitive_paths.iter().any(|path| path.first() == Some(name));
            (name.clone(), value_from_json(json).mark_if(sensitive))
        })
        .collect()
}

/// JSON (state, markers resolved) to a value; reference markers become the
/// address string, unknown markers unknown values.
pub fn value_from_json(json: &Json) -> Value {
    if mlops_provider_api::is_unknown(json) {
        return Value::unknown_any();
    }
    if let Some((address, _)) = mlops_provider_api::as_reference(json) {
        return Value::String(address.to_owned());
    }
    match json {
        Json::Array(items) => Value::List(items.iter().map(value_from_json).collect()),
        Json::Object(entries) => Value::Map(entries.iter().map(|(key, value)| (key.clone(), value_from_json(value))).collect()),
        other => Value::from_json(other),
    }
}

/// The `context` of the attribute at `path` (`row` for feature expressions,
/// `self` for checks), following nested blocks.
pub fn attribute_context<'a>(schema: &'a BlockSchema, path: &[String]) -> Option<&'a str> {
    let (first, rest) = path.split_first()?;
    if let Some(attribute) = schema.attributes.get(first) {
        return if rest.is_empty() { attribute.context.as_deref() } else { None };
    }
    let nested = schema.blocks.get(first)?;
    let rest = if !nested.labels.is_empty() || nested.max_items != Some(1) { rest.get(1..)? } else { rest };
    attribute_context(&nested.body, rest)
}
