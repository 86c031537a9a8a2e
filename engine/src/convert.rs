//! Between the compiler's values, the written form of plans and state, and
//! the typed values handed to providers.
//!
//! A configuration is written (in plans and state) as JSON with markers:
//! references to resources as `{"$ref": ADDRESS, "identity": VERSION}`,
//! values known only after apply as `{"$unknown": true}` or, where the
//! planner has a residual expression, as `{"$expr": TEXT}`. Sensitive parts
//! are unwrapped and their paths listed, so whoever writes the JSON down can
//! seal them. [`provider_configuration`] reads the written form back into
//! the typed [`Configuration`] a provider is handed: secrets marked,
//! durations and quantities parsed as the schema says, references resolved.

use std::collections::BTreeMap;

use mlops_compiler::schema::Schemas;
use mlops_compiler::schema::{BlockSchema, Format, KindSchema};
use mlops_compiler::value::{json_number, Value, ValueMap};
use mlops_provider_api::value::written::unknown_marker;
use mlops_provider_api::{AttributePath, Attributes, Configuration, ReferencedResource};
use serde_json::Value as Json;

/// The configuration part of an instance's attributes (computed-only
/// attributes left out), as JSON with markers.
pub fn config_json(attributes: &ValueMap, schema: &KindSchema, deferred: &[(Vec<String>, String)]) -> (Attributes, Vec<AttributePath>) {
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
        if let Some((address, identity)) = mlops_provider_api::value::written::as_reference(value) {
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
pub fn values_from_json(attributes: &Attributes, sensitive_paths: &[AttributePath]) -> ValueMap {
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
    if mlops_provider_api::value::written::is_unknown(json) {
        return Value::unknown_any();
    }
    if let Some((address, _)) = mlops_provider_api::value::written::as_reference(json) {
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

/// What a provider is handed: the written configuration `config` read back
/// typed. The values at `sensitive_paths` are marked secret; duration,
/// memory and CPU attributes (by `schema`) arrive parsed by the compiler's
/// reader; references to the addresses in `targets` carry their target.
pub fn provider_configuration(
    config: &Attributes,
    schema: Option<&BlockSchema>,
    sensitive_paths: &[AttributePath],
    targets: &BTreeMap<String, ReferencedResource>,
) -> Configuration {
    let mut configuration = mlops_provider_api::configuration_from_json(config);
    if let Some(schema) = schema {
        type_body(&mut configuration, schema);
    }
    if !targets.is_empty() {
        for value in configuration.values_mut() {
            attach_targets(value, targets);
        }
    }
    for path in sensitive_paths {
        if let Some(slot) = value_at_mut(&mut configuration, path) {
            if !slot.is_sensitive() {
                *slot = ProviderValue::Sensitive(Box::new(std::mem::take(slot)));
            }
        }
    }
    configuration
}

/// Adds the schema's default for each settable attribute `config` does not
/// set: what the compiler does for a block that is written, for a provider
/// that has none.
pub fn fill_defaults(config: &mut Attributes, schema: &BlockSchema) {
    for (name, attribute) in &schema.attributes {
        if let (false, true, Some(default)) = (config.contains_key(name), attribute.is_settable(), &attribute.default) {
            config.insert(name.clone(), default.to_json_unredacted());
        }
    }
}

/// A resource as a reference to it hands it on: kind, identity and its
/// applied attributes (`attributes`, its secrets already left out).
pub fn referenced_resource(kind: &str, is_data: bool, identity: Option<&Json>, attributes: &Attributes) -> ReferencedResource {
    let identity = identity
        .filter(|identity| !identity.is_null())
        .map(|identity| identity.as_str().map_or_else(|| identity.to_string(), str::to_owned));
    let schema = Schemas::standard().kind(kind, is_data).map(|schema| &schema.body);
    ReferencedResource { kind: kind.to_owned(), identity, attributes: provider_configuration(attributes, schema, &[], &BTreeMap::new()) }
}

use mlops_provider_api::Value as ProviderValue;

fn type_body(entries: &mut Configuration, schema: &BlockSchema) {
    for (name, value) in entries.iter_mut() {
        if let Some(attribute) = schema.attributes.get(name) {
            let parsed = match (attribute.format, &*value) {
                (Some(Format::Duration), ProviderValue::String(text)) => ProviderValue::duration_from_text(text),
                (Some(Format::Memory | Format::Cpu), ProviderValue::String(text)) => ProviderValue::quantity_from_text(text),
                _ => None,
            };
            if let Some(parsed) = parsed {
                *value = parsed;
            }
        } else if let Some(nested) = schema.blocks.get(name) {
            let bodies: Vec<&mut ProviderValue> = match value {
                ProviderValue::Map(body) if nested.labels.is_empty() && nested.max_items == Some(1) => {
                    type_body(body, &nested.body);
                    Vec::new()
                }
                ProviderValue::Map(labelled) => labelled.values_mut().collect(),
                ProviderValue::List(items) => items.iter_mut().collect(),
                _ => Vec::new(),
            };
            for body in bodies {
                if let ProviderValue::Map(body) = body {
                    type_body(body, &nested.body);
                }
            }
        }
    }
}

fn attach_targets(value: &mut ProviderValue, targets: &BTreeMap<String, ReferencedResource>) {
    match value {
        ProviderValue::Reference(reference) => {
            if let Some(target) = targets.get(&reference.address) {
                reference.target = Some(target.clone());
            }
        }
        ProviderValue::List(items) => items.iter_mut().for_each(|item| attach_targets(item, targets)),
        ProviderValue::Map(entries) => entries.values_mut().for_each(|item| attach_targets(item, targets)),
        ProviderValue::Sensitive(inner) => attach_targets(inner, targets),
        _ => {}
    }
}

fn value_at_mut<'a>(configuration: &'a mut Configuration, path: &[String]) -> Option<&'a mut ProviderValue> {
    let (first, rest) = path.split_first()?;
    let mut value = configuration.get_mut(first)?;
    for part in rest {
        value = match value {
            ProviderValue::Map(entries) => entries.get_mut(part)?,
            ProviderValue::List(items) => items.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_provider_gets_secrets_marked_durations_parsed_and_references_resolved() {
        let schema = &Schemas::standard().kind("training", false).unwrap().body;
        let written = json!({
            "timeout": "1h30m",
            "env": { "TOKEN": "hunter2", "MODE": "fast" },
            "resources": { "memory": "16Gi", "cpu": "500m" },
            "inputs": { "train": { "$ref": "dataset.d", "identity": "b3:1" } },
            "notes": { "$ref": "x" }
        });
        let targets = BTreeMap::from([(
            "dataset.d".to_owned(),
            referenced_resource(
                "dataset",
                false,
                Some(&json!("b3:2")),
                json!({ "uri": "s3://b/d", "version": "b3:2" }).as_object().unwrap(),
            ),
        )]);
        let sensitive = vec![vec!["env".to_owned(), "TOKEN".to_owned()]];
        let configuration = provider_configuration(written.as_object().unwrap(), Some(schema), &sensitive, &targets);
        assert_eq!(configuration["timeout"].as_duration(), Some(std::time::Duration::from_secs(5400)));
        assert!(configuration["env"]["TOKEN"].is_sensitive() && configuration["env"]["TOKEN"].as_str() == Some("hunter2"));
        assert!(!format!("{:?}", configuration).contains("hunter2"));
        assert!(!configuration["env"]["MODE"].is_sensitive());
        assert_eq!(configuration["resources"]["memory"].as_quantity(), Some(16.0 * 1_073_741_824.0));
        assert_eq!(configuration["resources"]["cpu"].as_quantity(), Some(0.5));
        let train = &configuration["inputs"]["train"];
        assert_eq!(train["uri"].as_str(), Some("s3://b/d"));
        assert_eq!(
            train.as_reference().and_then(|reference| reference.target.as_ref()).and_then(|target| target.identity.as_deref()),
            Some("b3:2")
        );
        // A user's map that only looks like a reference in the written form
        // is refused by the compiler (E0417); one that names an address
        // nothing resolves stays an unresolved reference.
        assert!(configuration["notes"].as_reference().is_some_and(|reference| reference.target.is_none()));
    }
}
