//! Live objects seen through what mlops applied.
//!
//! An object read back from the API server carries much that mlops never
//! wrote: server-populated defaults (`restartPolicy`, `dnsPolicy`,
//! `terminationGracePeriodSeconds`), metadata (`uid`, `resourceVersion`,
//! `managedFields`), status, annotations and env entries other controllers
//! add, and quantities in the server's canonical spelling (`4096Mi` comes
//! back as `4Gi`). Comparing that with the rendered manifest would show
//! drift after every apply. So refresh *projects* the live object onto the
//! fields of the manifest mlops applied: only those fields are compared,
//! lists of named items are matched by name, and equal quantities compare
//! equal. What remains different was changed outside mlops.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value as Json;

/// The key fields of the list at `fields` (field names from the object's
/// root, list items stepped through), as the API server keys it when it
/// merges: `containers` by `name`, a container's `ports` by `containerPort`
/// and `protocol`. `None` for a list merged as a whole. The facts live in
/// `stdlib/kubernetes/list-keys.json`.
pub fn list_keys(fields: &[String]) -> Option<&'static [String]> {
    static TABLE: OnceLock<BTreeMap<String, Option<Vec<String>>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let text = include_str!("../../../stdlib/kubernetes/list-keys.json");
        let parsed: Json =
            serde_json::from_str(text).unwrap_or_else(|error| panic!("the embedded stdlib/kubernetes/list-keys.json is invalid: {error}"));
        parsed["keys"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, keys)| {
                let keys = keys.as_array().map(|keys| keys.iter().filter_map(Json::as_str).map(str::to_owned).collect());
                (path.clone(), keys)
            })
            .collect()
    });
    let field = fields.last()?;
    let parent = fields.len().checked_sub(2).map(|index| fields[index].as_str()).unwrap_or("");
    table.get(&format!("{parent}.{field}")).or_else(|| table.get(&format!("*.{field}")))?.as_deref()
}

/// An item's key values (`["8080", "TCP"]`), with the defaults the server
/// fills in before it keys an item (a port's protocol is TCP).
fn key_values(item: &Json, keys: &[String]) -> Option<Vec<String>> {
    keys.iter()
        .map(|key| match item.get(key) {
            Some(Json::String(text)) => Some(text.clone()),
            Some(other) if !other.is_null() => Some(other.to_string()),
            _ if key == "protocol" => Some("TCP".to_owned()),
            _ => None,
        })
        .collect()
}

/// `live` reduced to the fields present in `applied`.
pub fn project(applied: &Json, live: &Json) -> Json {
    project_at(applied, live, &mut Vec::new())
}

fn project_at(applied: &Json, live: &Json, fields: &mut Vec<String>) -> Json {
    match (applied, live) {
        (Json::Object(applied), Json::Object(live)) => Json::Object(
            applied
                .iter()
                .filter_map(|(key, wanted)| {
                    let found = live.get(key)?;
                    fields.push(key.clone());
                    let projected = project_at(wanted, found, fields);
                    fields.pop();
                    Some((key.clone(), projected))
                })
                .collect(),
        ),
        (Json::Array(applied), Json::Array(live)) => match list_keys(fields) {
            // Keyed lists (containers, env, ports, volumes) merge item by
            // item on the server: entries others add are theirs.
            Some(keys) if applied.iter().all(|item| key_values(item, keys).is_some()) => applied
                .iter()
                .filter_map(|wanted| {
                    let key = key_values(wanted, keys);
                    live.iter().find(|found| key_values(found, keys) == key).map(|found| project_at(wanted, found, fields))
                })
                .collect(),
            _ => live
                .iter()
                .enumerate()
                .map(|(index, found)| applied.get(index).map_or_else(|| found.clone(), |wanted| project_at(wanted, found, fields)))
                .collect(),
        },
        (wanted, found) if equivalent_scalars(wanted, found) => wanted.clone(),
        (_, found) => found.clone(),
    }
}

/// Equal as Kubernetes compares them: `2` and `"2"`, `"4096Mi"` and `"4Gi"`,
/// `"500m"` and `"0.5"`.
fn equivalent_scalars(wanted: &Json, found: &Json) -> bool {
    if wanted == found {
        return true;
    }
    let as_text = |value: &Json| match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        _ => None,
    };
    match (as_text(wanted), as_text(found)) {
        (Some(wanted), Some(found)) => match (quantity(&wanted), quantity(&found)) {
            (Some(wanted), Some(found)) => (wanted - found).abs() <= f64::EPSILON * wanted.abs().max(found.abs()) * 4.0,
            _ => false,
        },
        _ => false,
    }
}

/// A Kubernetes quantity's value: `500m`, `2`, `4Gi`, `1.5G`, `1e3`.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|character: char| !(character.is_ascii_digit() || character == '.' || character == '-' || character == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * multiplier)
}

/// One difference between the desired and the live (projected) object.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `spec.template.spec.containers[server].image`
    pub path: String,
    pub live: Option<Json>,
    pub desired: Option<Json>,
}

/// Where `desired` and `live` differ, as readable paths. Items of keyed
/// lists are addressed by their key values (`containers[server]`,
/// `ports[8080,TCP]`), others by index.
pub fn differences(desired: &Json, live: &Json) -> Vec<Difference> {
    let mut found = Vec::new();
    walk(desired, live, String::new(), &mut Vec::new(), &mut found);
    found
}

fn walk(desired: &Json, live: &Json, path: String, fields: &mut Vec<String>, found: &mut Vec<Difference>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match (desired, live) {
        (Json::Object(desired), Json::Object(live)) => {
            for (key, wanted) in desired {
                match live.get(key) {
                    Some(value) => {
                        fields.push(key.clone());
                        walk(wanted, value, join(key), fields, found);
                        fields.pop();
                    }
                    None => found.push(Difference { path: join(key), live: None, desired: Some(wanted.clone()) }),
                }
            }
            for (key, value) in live {
                if !desired.contains_key(key) {
                    found.push(Difference { path: join(key), live: Some(value.clone()), desired: None });
                }
            }
        }
        (Json::Array(desired_items), Json::Array(live_items)) => match list_keys(fields) {
            Some(keys) if desired_items.iter().chain(live_items).all(|item| key_values(item, keys).is_some()) => {
                let label = |item: &Json| format!("{path}[{}]", key_values(item, keys).unwrap_or_default().join(","));
                for wanted in desired_items {
                    let key = key_values(wanted, keys);
                    match live_items.iter().find(|item| key_values(item, keys) == key) {
                        Some(value) => walk(wanted, value, label(wanted), fields, found),
                        None => found.push(Difference { path: label(wanted), live: None, desired: Some(wanted.clone()) }),
                    }
                }
                for value in live_items {
                    let key = key_values(value, keys);
                    if !desired_items.iter().any(|item| key_values(item, keys) == key) {
                        found.push(Difference { path: label(value), live: Some(value.clone()), desired: None });
                    }
                }
            }
            _ if desired_items.len() == live_items.len() => {
                for (index, (wanted, value)) in desired_items.iter().zip(live_items).enumerate() {
                    walk(wanted, value, format!("{path}[{index}]"), fields, found);
                }
            }
            _ => found.push(Difference { path, live: Some(live.clone()), desired: Some(desired.clone()) }),
        },
        (wanted, value) => {
            if !equivalent_scalars(wanted, value) {
                found.push(Difference { path, live: Some(value.clone()), desired: Some(wanted.clone()) });
            }
        }
    }
}

/// A short rendering of a value for a plan reason.
pub fn brief(value: Option<&Json>) -> String {
    match value {
        None => "(absent)".to_owned(),
        Some(Json::String(text)) => format!("\"{text}\""),
        Some(other) => {
            let text = other.to_string();
            if text.len() > 60 {
                format!("{}…", &text[..text.char_indices().nth(57).map_or(text.len(), |(index, _)| index)])
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_defaults_and_foreign_entries_are_projected_away() {
        let applied = json!({
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "server", "image": "a:1", "resources": {"limits": {"memory": "4096Mi", "cpu": "2"}},
                 "env": [{"name": "PORT", "value": "8080"}]}
            ]}}}
        });
        let live = json!({
            "metadata": {"uid": "x", "resourceVersion": "7"},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"spec": {
                "dnsPolicy": "ClusterFirst",
                "containers": [
                    {"name": "istio-proxy", "image": "proxy"},
                    {"name": "server", "image": "a:1", "imagePullPolicy": "IfNotPresent",
                     "resources": {"limits": {"memory": "4Gi", "cpu": "2000m"}},
                     "env": [{"name": "INJECTED", "value": "1"}, {"name": "PORT", "value": "8080"}]}
                ]}}},
            "status": {"readyReplicas": 2}
        });
        let projected = project(&applied, &live);
        assert_eq!(projected, applied);
        assert!(differences(&applied, &projected).is_empty());
    }

    #[test]
    fn a_change_outside_mlops_remains_and_is_named() {
        let applied = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "server", "image": "a:1"}]}}}});
        let live = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "server", "image": "a:2"}]}}}});
        let projected = project(&applied, &live);
        let paths: Vec<String> = differences(&applied, &projected).into_iter().map(|difference| difference.path).collect();
        assert_eq!(paths, ["spec.replicas", "spec.template.spec.containers[server].image"]);
    }

    #[test]
    fn quantities_compare_by_value() {
        for (left, right) in [("500m", "0.5"), ("4Gi", "4096Mi"), ("1k", "1000"), ("2", "2000m")] {
            assert!(equivalent_scalars(&json!(left), &json!(right)), "{left} = {right}");
        }
        assert!(!equivalent_scalars(&json!("4Gi"), &json!("4G")));
        assert!(!equivalent_scalars(&json!("a:1"), &json!("a:2")));
    }
}
