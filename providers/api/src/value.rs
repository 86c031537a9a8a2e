//! The typed values a configuration hands a provider.
//!
//! A configuration is plain data (null, booleans, numbers, strings, lists,
//! maps) plus what only a plan has: a value known only after apply
//! ([`Value::Unknown`]), a reference to another resource
//! ([`Value::Reference`]), an expression the provider evaluates itself per
//! row ([`Value::Expression`]), a secret ([`Value::Sensitive`]), and the
//! values the language reads inside strings, already parsed
//! ([`Value::Duration`], [`Value::Quantity`]). Each is its own variant, so a
//! user's map key can never be mistaken for one.
//!
//! JSON is only how plans and state are written down: [`Value::to_json`]
//! and [`Value::from_json`] are the one encoding, used by the engine where
//! it writes and reads them and by nothing else.
//!
//! The readers (`get`, `as_str`, `as_f64`, …) see through secrets and
//! resolved references, so a provider reads `config.get("dataset")?.get("uri")`
//! whether the dataset was configured inline or referred to. `Debug` and
//! `Display` never show a secret.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

/// A resource's configuration: its attributes by name, in the order they
/// were declared (a feature set's features are written in that order).
pub type Configuration = indexmap::IndexMap<String, Value>;

#[derive(Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Value>),
    Map(Configuration),
    /// Known only after apply.
    Unknown,
    /// Another resource this one uses.
    Reference(Box<Reference>),
    /// An expression the provider evaluates itself, per row, through the
    /// engine's [`crate::RowEvaluator`] (a feature expression).
    Expression(String),
    /// A secret: readers see through it, `Debug` and `Display` do not.
    Sensitive(Box<Value>),
    /// A duration attribute (`"1h30m"`), parsed by the compiler's reader.
    Duration {
        written: String,
        duration: Duration,
    },
    /// A CPU or memory quantity (`"500m"`, `"16Gi"`) as written, and its
    /// amount (cores, bytes).
    Quantity {
        written: String,
        amount: f64,
    },
}

/// A reference to another resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub address: String,
    /// The target's identity (its version) when the plan was made, if
    /// known then.
    pub identity: Option<String>,
    /// The target as applied: present in what `apply` hands a provider.
    pub target: Option<ReferencedResource>,
}

/// What a reference points at, once applied: its kind, its identity and
/// its attributes (the target's secrets left out).
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencedResource {
    pub kind: String,
    pub identity: Option<String>,
    pub attributes: Configuration,
}

static NULL: Value = Value::Null;

impl Value {
    /// A duration read with the language's own reader, or `None` for text
    /// that is not a non-negative duration.
    pub fn duration_from_text(written: &str) -> Option<Value> {
        match mlops_units::parse_duration_signed(written) {
            Ok(milliseconds) if milliseconds >= 0 && !written.trim().starts_with('-') => {
                Some(Value::Duration { written: written.to_owned(), duration: Duration::from_millis(milliseconds as u64) })
            }
            _ => None,
        }
    }

    /// A quantity read with the language's own reader.
    pub fn quantity_from_text(written: &str) -> Option<Value> {
        mlops_units::parse_quantity(written).map(|amount| Value::Quantity { written: written.to_owned(), amount })
    }

    /// The value without its secret wrapper(s).
    pub fn revealed(&self) -> &Value {
        let mut value = self;
        while let Value::Sensitive(inner) = value {
            value = inner;
        }
        value
    }

    pub fn is_sensitive(&self) -> bool {
        matches!(self, Value::Sensitive(_))
    }

    /// Whether a secret is anywhere in the value.
    pub fn contains_sensitive(&self) -> bool {
        match self {
            Value::Sensitive(_) => true,
            Value::List(items) => items.iter().any(Value::contains_sensitive),
            Value::Map(entries) => entries.values().any(Value::contains_sensitive),
            _ => false,
        }
    }

    /// An attribute of a map, or of a resolved reference's target.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self.revealed() {
            Value::Map(entries) => entries.get(key),
            Value::Reference(reference) => reference.target.as_ref()?.attributes.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.revealed() {
            Value::String(text) => Some(text),
            Value::Duration { written, .. } | Value::Quantity { written, .. } => Some(written),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.revealed() {
            Value::Number(number) => number.as_f64(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self.revealed() {
            Value::Number(number) => number.as_u64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self.revealed() {
            Value::Number(number) => number.as_i64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.revealed() {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self.revealed() {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// A map's entries, or a resolved reference target's attributes.
    pub fn as_object(&self) -> Option<&Configuration> {
        match self.revealed() {
            Value::Map(entries) => Some(entries),
            Value::Reference(reference) => reference.target.as_ref().map(|target| &target.attributes),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.revealed(), Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self.revealed(), Value::Unknown)
    }

    pub fn as_reference(&self) -> Option<&Reference> {
        match self.revealed() {
            Value::Reference(reference) => Some(reference),
            _ => None,
        }
    }

    pub fn as_expression(&self) -> Option<&str> {
        match self.revealed() {
            Value::Expression(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_duration(&self) -> Option<Duration> {
        match self.revealed() {
            Value::Duration { duration, .. } => Some(*duration),
            _ => None,
        }
    }

    /// A quantity's amount (cores, bytes), or a plain number's.
    pub fn as_quantity(&self) -> Option<f64> {
        match self.revealed() {
            Value::Quantity { amount, .. } => Some(*amount),
            Value::Number(number) => number.as_f64(),
            _ => None,
        }
    }

    /// The value as plain JSON data, secrets revealed: what a provider puts
    /// in a manifest or a file. References become their target's
    /// attributes (or their address, unresolved), durations and quantities
    /// the text written; `None` where something is unknown or an
    /// expression.
    pub fn to_plain_json(&self) -> Option<Json> {
        Some(match self {
            Value::Null => Json::Null,
            Value::Bool(flag) => Json::Bool(*flag),
            Value::Number(number) => Json::Number(number.clone()),
            Value::String(text) => Json::String(text.clone()),
            Value::Duration { written, .. } | Value::Quantity { written, .. } => Json::String(written.clone()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_plain_json).collect::<Option<_>>()?),
            Value::Map(entries) => Json::Object(plain_entries(entries)?),
            Value::Reference(reference) => match &reference.target {
                Some(target) => Json::Object(plain_entries(&target.attributes)?),
                None => Json::String(reference.address.clone()),
            },
            Value::Sensitive(inner) => inner.to_plain_json()?,
            Value::Unknown | Value::Expression(_) => return None,
        })
    }

    /// The written form, for plans and state: references as
    /// `{"$ref": ADDRESS, "identity": VERSION}`, expressions as
    /// `{"$expr": TEXT}`, unknowns as `{"$unknown": true}`. Secrets are
    /// written in clear: whoever writes this down seals them.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(flag) => Json::Bool(*flag),
            Value::Number(number) => Json::Number(number.clone()),
            Value::String(text) => Json::String(text.clone()),
            Value::Duration { written, .. } | Value::Quantity { written, .. } => Json::String(written.clone()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(entries) => Json::Object(entries.iter().map(|(key, value)| (key.clone(), value.to_json())).collect()),
            Value::Unknown => written::unknown_marker(),
            Value::Reference(reference) => serde_json::json!({ "$ref": reference.address, "identity": reference.identity }),
            Value::Expression(text) => written::expression_marker(text),
            Value::Sensitive(inner) => inner.to_json(),
        }
    }

    /// Reads the written form back (the inverse of [`Value::to_json`],
    /// secrets and parsed strings aside: the engine adds those from the
    /// schema and the recorded sensitive paths).
    pub fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(flag) => Value::Bool(*flag),
            Json::Number(number) => Value::Number(number.clone()),
            Json::String(text) => Value::String(text.clone()),
            Json::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            Json::Object(entries) => {
                if let Some((address, identity)) = written::as_reference(json) {
                    let identity = identity.map(str::to_owned);
                    return Value::Reference(Box::new(Reference { address: address.to_owned(), identity, target: None }));
                }
                if let Some(text) = written::as_expression(json) {
                    return Value::Expression(text.to_owned());
                }
                if written::is_unknown(json) {
                    return Value::Unknown;
                }
                Value::Map(entries.iter().map(|(key, value)| (key.clone(), Value::from_json(value))).collect())
            }
        }
    }

    /// Equal as configured: the identities of references aside (a changed
    /// identity arrives as a [`crate::ChangedInput`]), secrets and parsed
    /// strings compared by what they hold.
    pub fn same_configuration(&self, other: &Value) -> bool {
        match (self.revealed(), other.revealed()) {
            (Value::Reference(left), Value::Reference(right)) => left.address == right.address,
            (Value::List(left), Value::List(right)) => {
                left.len() == right.len() && left.iter().zip(right).all(|(left, right)| left.same_configuration(right))
            }
            (Value::Map(left), Value::Map(right)) => same_configurations(left, right),
            (left, right) => left.to_json() == right.to_json(),
        }
    }
}

/// Whether two configurations are the same as configured (see
/// [`Value::same_configuration`]). An attribute one lacks and the other
/// has as null is the same: a newer schema's attribute nobody set does not
/// change what an older apply recorded.
pub fn same_configurations(left: &Configuration, right: &Configuration) -> bool {
    let null = Value::Null;
    left.iter().all(|(key, left)| left.same_configuration(right.get(key).unwrap_or(&null)))
        && right.iter().all(|(key, right)| left.contains_key(key) || right.is_null())
}

/// A configuration read from its written form (see [`Value::from_json`]).
pub fn configuration_from_json(json: &serde_json::Map<String, Json>) -> Configuration {
    json.iter().map(|(key, value)| (key.clone(), Value::from_json(value))).collect()
}

/// A configuration in its written form (see [`Value::to_json`]).
pub fn configuration_to_json(configuration: &Configuration) -> serde_json::Map<String, Json> {
    configuration.iter().map(|(key, value)| (key.clone(), value.to_json())).collect()
}

/// Readers of the written form, for what reads plans and state (the
/// engine, the CLI's renderers); providers read [`Value`]s instead.
pub mod written {
    use serde_json::Value as Json;

    /// A reference: the address and the identity planned.
    pub fn as_reference(value: &Json) -> Option<(&str, Option<&str>)> {
        let object = value.as_object()?;
        let address = object.get("$ref")?.as_str()?;
        Some((address, object.get("identity").and_then(Json::as_str)))
    }

    /// An expression's text.
    pub fn as_expression(value: &Json) -> Option<&str> {
        value.as_object().filter(|object| object.len() == 1)?.get("$expr")?.as_str()
    }

    /// True for a value known only after apply.
    pub fn is_unknown(value: &Json) -> bool {
        value.as_object().is_some_and(|object| object.len() == 1 && object.get("$unknown") == Some(&Json::Bool(true)))
    }

    pub fn unknown_marker() -> Json {
        serde_json::json!({ "$unknown": true })
    }

    pub fn expression_marker(text: &str) -> Json {
        serde_json::json!({ "$expr": text })
    }
}

fn plain_entries(entries: &Configuration) -> Option<serde_json::Map<String, Json>> {
    entries.iter().map(|(key, value)| Some((key.clone(), value.to_plain_json()?))).collect()
}

impl std::ops::Index<&str> for Value {
    type Output = Value;

    /// Like [`Value::get`], with null for what is not there.
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Sensitive(_) => formatter.write_str("(sensitive)"),
            Value::List(items) => formatter.debug_list().entries(items).finish(),
            Value::Map(entries) => formatter.debug_map().entries(entries).finish(),
            Value::Reference(reference) => write!(formatter, "{}", reference.address),
            Value::Unknown => formatter.write_str("(known after apply)"),
            Value::Expression(text) => write!(formatter, "expression `{text}`"),
            other => write!(formatter, "{}", other.to_json()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, formatter)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::String(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Value {
        Value::Bool(flag)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        Json::deserialize(deserializer).map(|json| Value::from_json(&json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_written_form_reads_back_as_the_same_value() {
        let written = json!({
            "dataset": { "$ref": "dataset.d", "identity": "b3:1" },
            "expr": { "$expr": "row.amount" },
            "later": { "$unknown": true },
            "plain": { "nested": [1, "two", null, true] }
        });
        let configuration = configuration_from_json(written.as_object().unwrap());
        assert!(configuration["dataset"].as_reference().is_some_and(|reference| reference.identity.as_deref() == Some("b3:1")));
        assert_eq!(configuration["expr"].as_expression(), Some("row.amount"));
        assert!(configuration["later"].is_unknown());
        assert_eq!(Json::Object(configuration_to_json(&configuration)), written);
    }

    #[test]
    fn readers_see_through_secrets_and_resolved_references_but_debug_does_not_show_secrets() {
        let secret = Value::Sensitive(Box::new(Value::from("hunter2")));
        assert_eq!(secret.as_str(), Some("hunter2"));
        assert_eq!(format!("{secret:?} {secret}"), "(sensitive) (sensitive)");
        let map = Value::Map(Configuration::from([("token".to_owned(), secret)]));
        assert!(!format!("{map:?}").contains("hunter2"));

        let reference = Value::Reference(Box::new(Reference {
            address: "dataset.d".into(),
            identity: Some("b3:1".into()),
            target: Some(ReferencedResource {
                kind: "dataset".into(),
                identity: Some("b3:1".into()),
                attributes: Configuration::from([("uri".to_owned(), Value::from("s3://b/d"))]),
            }),
        }));
        assert_eq!(reference["uri"].as_str(), Some("s3://b/d"));
        assert!(reference["absent"].is_null());
    }

    #[test]
    fn durations_and_quantities_arrive_parsed_and_keep_what_was_written() {
        let timeout = Value::duration_from_text("1h30m").unwrap();
        assert_eq!(timeout.as_duration(), Some(Duration::from_secs(5400)));
        assert_eq!(timeout.to_json(), json!("1h30m"));
        assert!(Value::duration_from_text("-5m").is_none());
        let memory = Value::quantity_from_text("16Gi").unwrap();
        assert_eq!(memory.as_quantity(), Some(16.0 * 1_073_741_824.0));
        assert_eq!(memory.as_str(), Some("16Gi"));
    }

    #[test]
    fn configurations_compare_as_configured_whatever_the_identities() {
        let before = configuration_from_json(json!({ "d": { "$ref": "dataset.d", "identity": "b3:1" }, "n": 1 }).as_object().unwrap());
        let after = configuration_from_json(json!({ "d": { "$ref": "dataset.d", "identity": "b3:2" }, "n": 1 }).as_object().unwrap());
        let other = configuration_from_json(json!({ "d": { "$ref": "dataset.e", "identity": "b3:1" }, "n": 1 }).as_object().unwrap());
        assert!(same_configurations(&before, &after));
        assert!(!same_configurations(&before, &other));
        let newer = configuration_from_json(
            json!({ "d": { "$ref": "dataset.d", "identity": "b3:1" }, "n": 1, "added": null }).as_object().unwrap(),
        );
        assert!(same_configurations(&before, &newer) && same_configurations(&newer, &before), "an attribute added as null changes nothing");
    }
}
