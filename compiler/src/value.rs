//! Values, including values that are not known yet and values that are secret.
//!
//! Evaluation works the same way in `validate` and in `plan`: what is not
//! known (a variable during `validate`, a computed attribute before apply) is
//! a [`Value::Unknown`] carrying its type, so type checking *is* evaluation
//! with unknowns. Sensitive values are wrapped in [`Value::Sensitive`]; every
//! operation on a sensitive input yields a sensitive result.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::types::{unify, Type};
pub use crate::value_map::ValueMap;

/// A resource instance as seen from expressions: its identity and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceValue {
    /// The canonical address, e.g. `dataset.transactions` or `module.fp.dataset.x["eu"]`.
    pub address: String,
    pub kind: String,
    /// A data source (`data.KIND.NAME`) rather than a resource.
    pub is_data: bool,
    pub attributes: ValueMap,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Value>),
    Map(ValueMap),
    Resource(Arc<ResourceValue>),
    /// Not known until apply (or, during `validate`, until variables are given).
    Unknown(Type),
    Sensitive(Box<Value>),
}

impl Value {
    pub fn unknown_any() -> Value {
        Value::Unknown(Type::Any)
    }

    /// The value without its sensitive mark, and whether it had one.
    pub fn unmark(&self) -> (&Value, bool) {
        match self {
            Value::Sensitive(inner) => (inner.unmark().0, true),
            other => (other, false),
        }
    }

    pub fn into_unmarked(self) -> (Value, bool) {
        match self {
            Value::Sensitive(inner) => (inner.into_unmarked().0, true),
            other => (other, false),
        }
    }

    pub fn mark_if(self, sensitive: bool) -> Value {
        if sensitive && !matches!(self, Value::Sensitive(_)) {
            Value::Sensitive(Box::new(self))
        } else {
            self
        }
    }

    pub fn is_sensitive(&self) -> bool {
        matches!(self, Value::Sensitive(_))
    }

    /// How much there is of the value, in evaluation steps: one per element,
    /// and one per 64 bytes of string (see [`crate::limits::MAX_EVALUATION_WORK`]).
    pub fn weight(&self) -> usize {
        match self {
            Value::String(text) => 1 + text.len() / 64,
            Value::List(items) => 1 + items.iter().map(Value::weight).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|(key, value)| key.len() / 64 + value.weight()).sum::<usize>(),
            Value::Sensitive(inner) => inner.weight(),
            _ => 1,
        }
    }

    /// Whether any part of the value is sensitive.
    pub fn contains_sensitive(&self) -> bool {
        match self {
            Value::Sensitive(_) => true,
            Value::List(items) => items.iter().any(Value::contains_sensitive),
            Value::Map(entries) => entries.values().any(Value::contains_sensitive),
            _ => false,
        }
    }

    /// Whether the top of the value is known (its parts may still be unknown).
    pub fn is_known(&self) -> bool {
        !matches!(self.unmark().0, Value::Unknown(_))
    }

    /// Whether every part of the value is known.
    pub fn is_wholly_known(&self) -> bool {
        match self.unmark().0 {
            Value::Unknown(_) => false,
            Value::List(items) => items.iter().all(Value::is_wholly_known),
            Value::Map(entries) => entries.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.unmark().0, Value::Null)
    }

    pub fn type_of(&self) -> Type {
        match self {
            Value::Null | Value::Unknown(Type::Any) => Type::Any,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(items) => {
                let types: Vec<Type> = items.iter().map(Value::type_of).collect();
                let unified = unify(types.iter().cloned());
                if types.is_empty() || !unified.is_any() || types.iter().all(Type::is_any) {
                    Type::list(unified)
                } else {
                    Type::Tuple(types)
                }
            }
            Value::Map(entries) => Type::Object(entries.iter().map(|(key, value)| (key.clone(), value.type_of())).collect()),
            Value::Resource(resource) => Type::reference(&resource.kind, resource.is_data),
            Value::Unknown(ty) => ty.clone(),
            Value::Sensitive(inner) => inner.type_of(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.unmark().0 {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self.unmark().0 {
            Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.unmark().0 {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self.unmark().0 {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&ValueMap> {
        match self.unmark().0 {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A primitive rendered as a string, the way templates and `tostring` do.
    pub fn to_template_string(&self) -> Option<String> {
        match self.unmark().0 {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(format_number(*number)),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// A short rendering for messages: strings quoted, secrets hidden,
    /// unknowns as `(known after apply)`, long values cut.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.describe_into(&mut out, 0);
        if out.chars().count() > 80 {
            let cut: String = out.chars().take(77).collect();
            return format!("{cut}...");
        }
        out
    }

    fn describe_into(&self, out: &mut String, depth: usize) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(flag) => {
                let _ = write!(out, "{flag}");
            }
            Value::Number(number) => out.push_str(&format_number(*number)),
            Value::String(text) => {
                let _ = write!(out, "{text:?}");
            }
            Value::List(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    if depth > 2 {
                        out.push_str("...");
                        break;
                    }
                    item.describe_into(out, depth + 1);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    if depth > 2 {
                        out.push_str("...");
                        break;
                    }
                    let _ = write!(out, "{key} = ");
                    value.describe_into(out, depth + 1);
                }
                out.push('}');
            }
            Value::Resource(resource) => out.push_str(&resource.address),
            Value::Unknown(_) => out.push_str("(known after apply)"),
            Value::Sensitive(_) => out.push_str("(sensitive)"),
        }
    }

    /// JSON for known values; unknowns become null and secrets the string
    /// "(sensitive)". Resource references become their address.
    pub fn to_json_redacted(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Unknown(_) => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Number(number) => json_number(*number),
            Value::String(text) => serde_json::Value::String(text.clone()),
            Value::List(items) => serde_json::Value::Array(items.iter().map(Value::to_json_redacted).collect()),
            Value::Map(entries) => {
                serde_json::Value::Object(entries.iter().map(|(key, value)| (key.clone(), value.to_json_redacted())).collect())
            }
            Value::Resource(resource) => serde_json::Value::String(resource.address.clone()),
            Value::Sensitive(_) => serde_json::Value::String("(sensitive)".to_owned()),
        }
    }

    /// JSON with secrets in clear, for functions like `jsonencode` whose
    /// result is itself marked sensitive.
    pub fn to_json_unredacted(&self) -> serde_json::Value {
        match self {
            Value::Sensitive(inner) => inner.to_json_unredacted(),
            Value::List(items) => serde_json::Value::Array(items.iter().map(Value::to_json_unredacted).collect()),
            Value::Map(entries) => {
                serde_json::Value::Object(entries.iter().map(|(key, value)| (key.clone(), value.to_json_unredacted())).collect())
            }
            other => other.to_json_redacted(),
        }
    }

    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(*flag),
            serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(text) => Value::String(text.clone()),
            serde_json::Value::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(entries) => {
                Value::Map(entries.iter().map(|(key, value)| (key.clone(), Value::from_json(value))).collect())
            }
        }
    }
}

pub fn json_number(number: f64) -> serde_json::Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        serde_json::Value::Number((number as i64).into())
    } else {
        serde_json::Number::from_f64(number).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Numbers print without a trailing `.0` when they are whole.
pub fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}
