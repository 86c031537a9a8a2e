//! What apply hands a provider and keeps of what it made: the targets of
//! references as applied (secrets left out), the identities in the stored
//! configuration brought up to date, the expressions a provider
//! evaluates itself found, and the lineage a record keeps. No IO: the
//! executor in `apply.rs` calls these with the records it holds.

use std::collections::{BTreeMap, HashSet};

use mlops_compiler::schema::Schemas;
use mlops_provider_api::value::written::{as_expression, as_reference};
use mlops_provider_api::{Attributes, ReferencedResource};
use serde_json::Value as Json;

use crate::plan::ResourceChange;
use crate::redact::redact_paths;
use crate::state::Record;

/// Brings the identities of the references in `stored` up to date, and
/// returns what each reference points at now (its applied attributes,
/// secrets left out), for the configuration handed to the provider.
pub fn resolve_references(
    stored: &mut Attributes,
    records: &BTreeMap<String, Record>,
    inputs: &mut Vec<(String, Option<Json>)>,
) -> BTreeMap<String, ReferencedResource> {
    fn walk(
        stored: &mut Json,
        records: &BTreeMap<String, Record>,
        inputs: &mut Vec<(String, Option<Json>)>,
        targets: &mut BTreeMap<String, ReferencedResource>,
    ) {
        if let Some((address, _)) = as_reference(stored) {
            let address = address.to_owned();
            if let Some(record) = records.get(&address) {
                let identity = record.state.get(identity_attribute(record)).cloned();
                if let Json::Object(stored) = stored {
                    stored.insert("identity".to_owned(), identity.clone().unwrap_or(Json::Null));
                }
                if !targets.contains_key(&address) {
                    // What one resource hands another keeps the target's
                    // secrets out: a registry would record them as run
                    // parameters.
                    let attributes = redact_paths(&record.merged_attributes(), &record.sensitive_paths);
                    targets.insert(
                        address.clone(),
                        crate::convert::referenced_resource(&record.kind, record.is_data, identity.as_ref(), &attributes),
                    );
                }
                // What is downstream of a model was made from its current
                // version only.
                let mut lineage = record.lineage.to_json();
                if let Json::Object(lineage) = &mut lineage {
                    lineage.remove(crate::lineage::INPUTS_BY_VERSION);
                }
                inputs.push((address, Some(lineage)));
            }
            return;
        }
        match stored {
            Json::Object(stored) => stored.values_mut().for_each(|value| walk(value, records, inputs, targets)),
            Json::Array(stored) => stored.iter_mut().for_each(|value| walk(value, records, inputs, targets)),
            _ => {}
        }
    }
    let mut targets = BTreeMap::new();
    for value in stored.values_mut() {
        walk(value, records, inputs, &mut targets);
    }
    targets
}

pub fn visit_expressions(attributes: &mut Attributes, path: &mut Vec<String>, visit: &mut dyn FnMut(&[String], &mut Json)) {
    fn walk(value: &mut Json, path: &mut Vec<String>, visit: &mut dyn FnMut(&[String], &mut Json)) {
        if as_expression(value).is_some() {
            visit(path, value);
            return;
        }
        if as_reference(value).is_some() {
            return;
        }
        match value {
            Json::Object(entries) => {
                for (key, item) in entries.iter_mut() {
                    path.push(key.clone());
                    walk(item, path, visit);
                    path.pop();
                }
            }
            Json::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    path.push(index.to_string());
                    walk(item, path, visit);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    for (name, value) in attributes.iter_mut() {
        path.push(name.clone());
        walk(value, path, visit);
        path.pop();
    }
}

/// What produced this resource: its inputs' lineage, nested.
pub fn lineage_for(change: &ResourceChange, inputs: &[(String, Option<Json>)], records: &BTreeMap<String, Record>) -> Json {
    let mut seen = HashSet::new();
    let inputs: Vec<Json> = inputs
        .iter()
        .filter(|(address, _)| seen.insert(address.clone()))
        .map(|(address, lineage)| match lineage {
            Some(lineage) if !lineage.is_null() => lineage.clone(),
            _ => {
                let record = records.get(address);
                serde_json::json!({
                    "address": address,
                    "kind": record.map(|record| record.kind.clone()),
                    "identity": record.and_then(|record| record.state.get(identity_attribute(record)).cloned()),
                })
            }
        })
        .collect();
    serde_json::json!({
        "address": change.address,
        "kind": change.kind,
        "identity": Json::Null,
        "inputs": inputs,
    })
}

/// What lineage keeps of a resource: the attributes its schema marks
/// `lineage`, as configured and then as applied (applied values win).
pub fn lineage_details(kind: &str, is_data: bool, config: &Attributes, state: &Attributes) -> Json {
    let mut details = serde_json::Map::new();
    let Some(schema) = Schemas::standard().kind(kind, is_data) else { return Json::Object(details) };
    for attributes in [config, state] {
        for name in schema.lineage_attributes() {
            if let Some(value) = attributes.get(name).filter(|value| !value.is_null()) {
                details.insert(name.to_owned(), value.clone());
            }
        }
    }
    Json::Object(details)
}

/// The attribute that identifies a version of what a record holds.
pub fn identity_attribute(record: &Record) -> &'static str {
    Schemas::standard().identity_attribute(&record.kind, record.is_data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(address: &str, kind: &str, state: Json, sensitive: &[&str]) -> Record {
        Record {
            address: address.to_owned(),
            kind: kind.to_owned(),
            provider: "local".to_owned(),
            state: state.as_object().cloned().unwrap_or_default(),
            sensitive_paths: sensitive.iter().map(|name| vec![(*name).to_owned()]).collect(),
            ..Record::default()
        }
    }

    #[test]
    fn references_become_their_targets_applied_attributes_without_secrets() {
        let records: BTreeMap<String, Record> = [
            record("dataset.d", "dataset", json!({ "version": "b3:2", "uri": "s3://lake/d/", "token": "secret" }), &["token"]),
            record("training.t", "training", json!({ "run_id": "run-7" }), &[]),
        ]
        .into_iter()
        .map(|record| (record.address.clone(), record))
        .collect();
        let config = json!({
            "inputs": { "train": { "$ref": "dataset.d", "identity": "b3:1" } },
            "source": { "$ref": "training.t", "identity": null },
            "missing": { "$ref": "dataset.gone", "identity": "b3:0" },
            "name": "plain"
        });
        let mut stored = config.as_object().cloned().unwrap();
        let mut inputs = Vec::new();
        let targets = resolve_references(&mut stored, &records, &mut inputs);
        let resolved = crate::convert::provider_configuration(&config.as_object().cloned().unwrap(), None, &[], &targets);

        let train = &resolved["inputs"]["train"];
        assert_eq!(train["uri"].as_str(), Some("s3://lake/d/"));
        let target = train.as_reference().and_then(|reference| reference.target.as_ref()).unwrap();
        assert_eq!((target.kind.as_str(), target.identity.as_deref()), ("dataset", Some("b3:2")));
        assert_ne!(train["token"].as_str(), Some("secret"), "a target's secret was handed on: {train:?}");
        let source = resolved["source"].as_reference().and_then(|reference| reference.target.as_ref()).unwrap();
        assert_eq!(source.identity.as_deref(), Some("run-7"), "a training is identified by its run");
        // The stored configuration keeps the written form, with the identities applied.
        assert_eq!(stored["inputs"]["train"], json!({ "$ref": "dataset.d", "identity": "b3:2" }));
        assert_eq!(stored["source"], json!({ "$ref": "training.t", "identity": "run-7" }));
        // A reference to nothing recorded stays unresolved; plain values stay.
        assert!(resolved["missing"].as_reference().is_some_and(|reference| reference.target.is_none()));
        assert_eq!(resolved["name"].as_str(), Some("plain"));
        let addresses: Vec<&str> = inputs.iter().map(|(address, _)| address.as_str()).collect();
        assert_eq!(addresses, ["dataset.d", "training.t"]);
    }

    #[test]
    fn expressions_are_found_by_path_and_references_are_not_entered() {
        let mut attributes = json!({
            "feature": { "amount": { "expr": { "$expr": "log1p(row.amount)" } } },
            "dataset": { "$ref": "dataset.d", "identity": null },
            "list": [{ "$expr": "row.age" }]
        })
        .as_object()
        .cloned()
        .unwrap();
        let mut found = Vec::new();
        visit_expressions(&mut attributes, &mut Vec::new(), &mut |path, value| found.push((path.join("."), value.clone())));
        let paths: Vec<&str> = found.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(paths, ["feature.amount.expr", "list.0"]);
    }

    #[test]
    fn lineage_keeps_what_the_schema_marks() {
        let config = json!({ "command": ["python3", "train.py"], "image": null, "timeout": "1h" }).as_object().cloned().unwrap();
        let state = json!({ "run_id": "run-1", "fingerprint": "b3:f", "metrics": { "auc": 0.9 } }).as_object().cloned().unwrap();
        let details = lineage_details("training", false, &config, &state);
        assert_eq!(
            details,
            json!({ "command": ["python3", "train.py"], "run_id": "run-1", "fingerprint": "b3:f", "metrics": { "auc": 0.9 } })
        );
        assert_eq!(lineage_details("no-such-kind", false, &config, &state), json!({}));
    }
}
