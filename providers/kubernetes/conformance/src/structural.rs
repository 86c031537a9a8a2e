//! A CRD's structural schema as the JSON Schema a validator runs.
//!
//! The API server prunes and validates custom resources by their
//! `openAPIV3Schema` with rules of its own, which differ from plain JSON
//! Schema; this writes those rules out so that a standard validator enforces
//! what the server does:
//!
//! - an object schema with `properties` and neither `additionalProperties`
//!   nor `x-kubernetes-preserve-unknown-fields: true` declares every field
//!   it accepts (server-side apply answers "field not declared in schema");
//! - `x-kubernetes-int-or-string: true` accepts an integer or a string;
//! - `nullable: true` accepts null;
//! - OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` become
//!   JSON Schema's numbers;
//! - `x-kubernetes-embedded-resource` objects carry `apiVersion`, `kind`
//!   and `metadata`;
//! - the root `metadata` is checked by the server as ObjectMeta, not by the
//!   CRD, so it is left open here.

use serde_json::{json, Map, Value as Json};

/// The JSON Schema (2020-12) that enforces `schema` as the API server does.
pub fn to_json_schema(schema: &Json) -> Json {
    let mut converted = convert(schema, true);
    if let Some(properties) = converted.get_mut("properties").and_then(Json::as_object_mut) {
        properties.insert("metadata".into(), json!({ "type": "object" }));
        properties.entry("apiVersion").or_insert(json!({ "type": "string" }));
        properties.entry("kind").or_insert(json!({ "type": "string" }));
    }
    converted["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    converted
}

/// `structural` is false inside `allOf`/`anyOf`/`oneOf`/`not`, which in a
/// structural schema only check values: they never declare fields.
fn convert(node: &Json, structural: bool) -> Json {
    let Some(node) = node.as_object() else { return json!({}) };
    let mut out = Map::new();
    let flag = |name: &str| node.get(name).and_then(Json::as_bool).unwrap_or(false);
    let nullable = flag("nullable");
    if flag("x-kubernetes-int-or-string") {
        let mut choices = vec![json!({ "type": "integer" }), json!({ "type": "string" })];
        if nullable {
            choices.push(json!({ "type": "null" }));
        }
        out.insert("anyOf".into(), Json::Array(choices));
    } else if let Some(kind) = node.get("type").and_then(Json::as_str) {
        out.insert("type".into(), if nullable { json!([kind, "null"]) } else { json!(kind) });
    }
    for keyword in [
        "required",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(value) = node.get(keyword) {
            out.insert(keyword.into(), value.clone());
        }
    }
    if let Some(values) = node.get("enum").and_then(Json::as_array) {
        let mut values = values.clone();
        if nullable && !values.contains(&Json::Null) {
            values.push(Json::Null);
        }
        out.insert("enum".into(), Json::Array(values));
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if node.get(exclusive) == Some(&Json::Bool(true)) {
            if let Some(value) = out.remove(bound) {
                out.insert(exclusive.into(), value);
            }
        }
    }
    let mut properties = Map::new();
    for (name, child) in node.get("properties").and_then(Json::as_object).into_iter().flatten() {
        properties.insert(name.clone(), convert(child, structural));
    }
    let embedded = flag("x-kubernetes-embedded-resource");
    if embedded {
        for (name, kind) in [("apiVersion", "string"), ("kind", "string"), ("metadata", "object")] {
            properties.entry(name).or_insert(json!({ "type": kind }));
        }
    }
    let has_properties = !properties.is_empty();
    if has_properties {
        out.insert("properties".into(), Json::Object(properties));
    }
    match node.get("additionalProperties") {
        Some(Json::Bool(allowed)) => {
            out.insert("additionalProperties".into(), Json::Bool(*allowed));
        }
        Some(schema @ Json::Object(_)) => {
            out.insert("additionalProperties".into(), convert(schema, structural));
        }
        _ if structural && has_properties && !flag("x-kubernetes-preserve-unknown-fields") => {
            out.insert("additionalProperties".into(), Json::Bool(false));
        }
        _ => {}
    }
    if let Some(items) = node.get("items") {
        out.insert("items".into(), convert(items, structural));
    }
    // Each combinator goes in an `allOf` of its own, so that none replaces
    // the int-or-string choice above.
    let mut all_of = Vec::new();
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(choices) = node.get(combinator).and_then(Json::as_array) {
            all_of.push(json!({ combinator: choices.iter().map(|choice| convert(choice, false)).collect::<Vec<_>>() }));
        }
    }
    if let Some(negated) = node.get("not") {
        all_of.push(json!({ "not": convert(negated, false) }));
    }
    if !all_of.is_empty() {
        out.insert("allOf".into(), Json::Array(all_of));
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_rules_are_written_out() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": { "type": "object", "properties": {
                    "replicas": { "x-kubernetes-int-or-string": true },
                    "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": { "a": { "type": "string" } } },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                    "maybe": { "type": "string", "nullable": true, "enum": ["x"] },
                    "above": { "type": "integer", "minimum": 0, "exclusiveMinimum": true }
                } }
            }
        });
        let converted = to_json_schema(&schema);
        let spec = &converted["properties"]["spec"];
        assert_eq!(spec["additionalProperties"], false);
        assert_eq!(spec["properties"]["replicas"]["anyOf"], json!([{ "type": "integer" }, { "type": "string" }]));
        assert!(spec["properties"]["free"].get("additionalProperties").is_none());
        assert_eq!(spec["properties"]["labels"]["additionalProperties"], json!({ "type": "string" }));
        assert_eq!(spec["properties"]["maybe"]["type"], json!(["string", "null"]));
        assert_eq!(spec["properties"]["maybe"]["enum"], json!(["x", null]));
        assert_eq!(spec["properties"]["above"]["exclusiveMinimum"], 0);
        assert_eq!(converted["properties"]["metadata"], json!({ "type": "object" }));
    }
}
