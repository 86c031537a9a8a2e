//! Gates and checks, evaluated during apply. A model's `gate` blocks are
//! evaluated before anything is registered, against what the candidate's
//! training reported; a dataset's `check` blocks after the data is stored,
//! against what was stored. A failure is one diagnostic that quotes the
//! condition and the message (never a message built from a secret) and
//! says what stays as it was.

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::residual::{resource_value, CompiledResidual, ResidualBindings};
use mlops_compiler::value::Value;
use mlops_provider_api::{Attributes, Configuration, Value as ProviderValue};

use crate::convert::values_from_json;
use crate::plan::ResourceChange;

/// A gate's or check's `error_message`: text to show, or one built from a
/// sensitive value, which is never shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Text(ProviderValue),
    Sensitive,
}

/// What a message built from a sensitive value shows instead.
const SENSITIVE_MESSAGE: &str = "(its error_message uses a sensitive value, so it is not shown)";

/// One gate of a model: its name, condition (a bool, or an expression
/// left for apply) and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub name: String,
    pub condition: ProviderValue,
    pub message: Message,
}

/// A message as configured: never shown when it is a secret.
fn message_of(value: Option<&ProviderValue>) -> Message {
    match value {
        Some(value) if value.is_sensitive() => Message::Sensitive,
        Some(value) => Message::Text(value.clone()),
        None => Message::Text(ProviderValue::Null),
    }
}

/// The gates in a model's resolved configuration.
pub fn gates_of(resolved: &Configuration) -> Vec<Gate> {
    let Some(gate_blocks) = resolved.get("gate").and_then(ProviderValue::as_object) else { return Vec::new() };
    gate_blocks
        .iter()
        .map(|(name, gate)| Gate {
            name: name.clone(),
            condition: gate.get("condition").cloned().unwrap_or(ProviderValue::Bool(true)),
            message: message_of(gate.get("error_message")),
        })
        .collect()
}

/// Every gate must hold; the first that does not is the error.
pub fn check_gates(gates: &[Gate], bindings: &ResidualBindings, resolved: &Configuration, address: &str) -> Result<(), Diagnostic> {
    for gate in gates {
        let holds = match (gate.condition.as_bool(), gate.condition.as_expression()) {
            (Some(flag), _) => Ok(flag),
            (None, Some(text)) => CompiledResidual::parse(text, bindings)
                .and_then(|compiled| compiled.evaluate(None, None))
                .map(|value| value.unmark().0.as_bool() == Some(true)),
            (None, None) => Ok(false),
        };
        let text = gate.condition.as_expression().map_or_else(|| gate.condition.to_string(), str::to_owned);
        let name = &gate.name;
        match holds {
            Ok(true) => {}
            Ok(false) => {
                let message = evaluate_message(&gate.message, bindings, None);
                let evidence = gate_evidence(resolved);
                return Err(Diagnostic::error(codes::GATE_FAILED, format!("gate `{name}` of {address} failed: {message}")).with_help(
                    format!(
                        "`{text}` is false{evidence}; no version was registered, and the previous version and its aliases are unchanged"
                    ),
                ));
            }
            Err(error) => {
                return Err(Diagnostic::error(codes::GATE_FAILED, format!("gate `{name}` of {address} could not be evaluated: {error}"))
                    .with_help("a gate may only use values its training reports (the declared metrics)"));
            }
        }
    }
    Ok(())
}

/// Runs the checks (`path` of each condition, and its expression) on what
/// was stored: the resolved configuration with the provider's state over it.
pub fn run_checks(
    checks: &[(Vec<String>, String)],
    bindings: &ResidualBindings,
    resolved: &Configuration,
    stored: &Attributes,
    change: &ResourceChange,
) -> Result<(), Diagnostic> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut merged = mlops_provider_api::configuration_to_json(resolved);
    for (name, value) in stored {
        merged.insert(name.clone(), value.clone());
    }
    let self_value = resource_value(&change.address, &change.kind, change.is_data, values_from_json(&merged, &[]));
    for (path, text) in checks {
        let holds = CompiledResidual::parse(text, bindings).and_then(|compiled| compiled.evaluate(Some(self_value.clone()), None));
        let name = path.get(1).cloned().unwrap_or_default();
        let block_path = &path[..path.len().saturating_sub(1)];
        let message_path = [block_path, &["error_message".to_owned()]].concat();
        let message = message_of(value_at(resolved, &message_path));
        match holds {
            Ok(value) if value.unmark().0.as_bool() == Some(true) => {}
            Ok(_) => {
                let message = evaluate_message(&message, bindings, Some(self_value.clone()));
                return Err(Diagnostic::error(codes::CHECK_FAILED, format!("check `{name}` of {} failed: {message}", change.address))
                    .with_help(format!("`{text}` is false for this data; the previous version stays current")));
            }
            Err(error) => {
                return Err(Diagnostic::error(
                    codes::CHECK_FAILED,
                    format!("check `{name}` of {} could not be evaluated: {error}", change.address),
                )
                .with_help("a check may use the dataset's computed attributes: row_count, size_bytes, version"));
            }
        }
    }
    Ok(())
}

fn evaluate_message(message: &Message, bindings: &ResidualBindings, self_value: Option<Value>) -> String {
    let message = match message {
        Message::Sensitive => return SENSITIVE_MESSAGE.to_owned(),
        Message::Text(message) => message,
    };
    if let Some(text) = message.as_expression() {
        return match CompiledResidual::parse(text, bindings).and_then(|compiled| compiled.evaluate(self_value, None)) {
            Ok(value) if value.contains_sensitive() => SENSITIVE_MESSAGE.to_owned(),
            Ok(value) => value.unmark().0.as_str().map_or_else(|| text.to_owned(), str::to_owned),
            Err(_) => text.to_owned(),
        };
    }
    message.as_str().map_or_else(|| "the condition is false".to_owned(), str::to_owned)
}

fn value_at<'a>(configuration: &'a Configuration, path: &[String]) -> Option<&'a ProviderValue> {
    let (first, rest) = path.split_first()?;
    let mut value = configuration.get(first)?;
    for part in rest {
        value = match value.revealed() {
            ProviderValue::List(items) => items.get(part.parse::<usize>().ok()?)?,
            other => other.get(part)?,
        };
    }
    Some(value)
}

/// What a gate saw: the candidate's metrics.
fn gate_evidence(resolved: &Configuration) -> String {
    let metrics = resolved.get("source").and_then(|source| source.get("metrics")).and_then(ProviderValue::as_object);
    match metrics {
        Some(metrics) if !metrics.is_empty() => {
            let listed: Vec<String> = metrics.iter().map(|(name, value)| format!("{name} = {value}")).collect();
            format!(" (the candidate reported {})", listed.join(", "))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn model(gates: Json, metrics: Json) -> Configuration {
        model_with_secrets(gates, metrics, &[])
    }

    fn model_with_secrets(gates: Json, metrics: Json, sensitive: &[Vec<String>]) -> Configuration {
        let written = json!({ "gate": gates, "source": { "$ref": "training.t", "identity": "run-1" } });
        let training = crate::convert::referenced_resource(
            "training",
            false,
            Some(&json!("run-1")),
            json!({ "metrics": metrics }).as_object().unwrap(),
        );
        let targets = std::collections::BTreeMap::from([("training.t".to_owned(), training)]);
        crate::convert::provider_configuration(written.as_object().unwrap(), None, sensitive, &targets)
    }

    #[test]
    fn gates_hold_fail_with_their_evidence_or_cannot_be_evaluated() {
        let bindings = ResidualBindings::default();
        let resolved = model(
            json!({
                "auc": { "condition": true, "error_message": "AUC below 0.9" },
                "loss": { "condition": { "$expr": "0.3 <= 0.2" }, "error_message": "loss too high" }
            }),
            json!({ "auc": 0.93, "loss": 0.3 }),
        );
        let gates = gates_of(&resolved);
        assert_eq!(gates.len(), 2);
        let failed = check_gates(&gates, &bindings, &resolved, "model.fraud").unwrap_err();
        assert_eq!(failed.message, "gate `loss` of model.fraud failed: loss too high");
        let help = failed.help.unwrap();
        assert!(help.contains("`0.3 <= 0.2` is false (the candidate reported auc = 0.93, loss = 0.3)"), "{help}");
        assert!(help.contains("the previous version and its aliases are unchanged"), "{help}");

        let holding = model(json!({ "auc": { "condition": { "$expr": "0.93 >= 0.9" }, "error_message": "x" } }), json!({}));
        assert!(check_gates(&gates_of(&holding), &bindings, &holding, "model.fraud").is_ok());

        let broken =
            model(json!({ "auc": { "condition": { "$expr": "training.nowhere.metrics.auc >= 0.9" }, "error_message": "x" } }), json!({}));
        let error = check_gates(&gates_of(&broken), &bindings, &broken, "model.fraud").unwrap_err();
        assert!(error.message.contains("could not be evaluated"), "{}", error.message);
    }

    #[test]
    fn a_message_built_from_a_secret_is_never_shown() {
        let sensitive = vec![vec!["gate".to_owned(), "auc".to_owned(), "error_message".to_owned()]];
        let resolved =
            model_with_secrets(json!({ "auc": { "condition": false, "error_message": "the token is hunter2" } }), json!({}), &sensitive);
        let gates = gates_of(&resolved);
        assert_eq!(gates[0].message, Message::Sensitive);
        let failed = check_gates(&gates, &ResidualBindings::default(), &resolved, "model.fraud").unwrap_err();
        assert!(!failed.message.contains("hunter2") && failed.message.contains(SENSITIVE_MESSAGE), "{}", failed.message);
    }
}
