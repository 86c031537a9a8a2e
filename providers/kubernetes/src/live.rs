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

use serde_json::Value as Json;

/// `live` reduced to the fields present in `applied`.
pub fn project(applied: &Json, live: &Json) -> Json {
    match (applied, live) {
        (Json::Object(applied), Json::Object(live)) => Json::Object(
            applied.iter().filter_map(|(key, wanted)| live.get(key).map(|found| (key.clone(), project(wanted, found)))).collect(),
        ),
        (Json::Array(applied), Json::Array(live)) => {
            let named = |item: &Json| item.get("name").and_then(Json::as_str).map(str::to_owned);
            if !applied.is_empty() && applied.iter().all(|item| named(item).is_some()) && live.iter().all(|item| named(item).is_some()) {
                // Lists of named items (containers, env, ports, volumes) merge
                // by name on the server: entries others add are theirs.
                applied
                    .iter()
                    .filter_map(|wanted| {
                        let name = named(wanted)?;
                        live.iter().find(|found| named(found).as_deref() == Some(name.as_str())).map(|found| project(wanted, found))
                    })
                    .collect()
            } else {
                live.iter()
                    .enumerate()
                    .map(|(index, found)| applied.get(index).map_or_else(|| found.clone(), |wanted| project(wanted, found)))
                    .collect()
            }
        }
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

/// Where `desired` and `live` differ, as readable paths. Named list items
/// are addressed by name.
pub fn differences(desired: &Json, live: &Json) -> Vec<Difference> {
    let mut found = Vec::new();
    walk(desired, live, String::new(), &mut found);
    found
}

fn walk(desired: &Json, live: &Json, path: String, found: &mut Vec<Difference>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match (desired, live) {
        (Json::Object(desired), Json::Object(live)) => {
            for (key, wanted) in desired {
                match live.get(key) {
                    Some(value) => walk(wanted, value, join(key), found),
                    None => found.push(Difference { path: join(key), live: None, desired: Some(wanted.clone()) }),
                }
            }
            for (key, value) in live {
                if !desired.contains_key(key) {
                    found.push(Difference { path: join(key), live: Some(value.clone()), desired: None });
                }
            }
        }
        (Json::Array(desired_items), Json::Array(live_items)) if desired_items.len() == live_items.len() => {
            for (index, (wanted, value)) in desired_items.iter().zip(live_items).enumerate() {
                let label = wanted.get("name").and_then(Json::as_str).map_or_else(|| index.to_string(), str::to_owned);
                walk(wanted, value, format!("{path}[{label}]"), found);
            }
        }
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
