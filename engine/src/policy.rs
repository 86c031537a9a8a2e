//! Policies judged with what the plan knows: each resource as planned (or,
//! for one the plan deletes, as recorded), what the plan does to it
//! (`change`), and the plan's counts and cost (`plan`). The judging itself
//! is the compiler's ([`mlops_compiler::policy`]), the same as `validate`.

use std::collections::HashMap;

use mlops_compiler::check::CheckedModule;
use mlops_compiler::diagnostic::Diagnostic;
use mlops_compiler::policy::{judge_all, PolicyProgram, PolicyResult, PolicySubject};
use mlops_compiler::residual::resource_value;
use mlops_compiler::source::SourceMap;
use mlops_compiler::value::{Value, ValueMap};
use mlops_provider_api::Action;

use crate::convert::values_from_json;
use crate::plan::Plan;

/// `change` for one resource: its action and the plan's reasons.
fn change_value(action: Action, reasons: &[String]) -> Value {
    Value::Map(ValueMap::from([
        ("action".to_owned(), Value::String(action.verb().to_owned())),
        ("reasons".to_owned(), Value::List(reasons.iter().cloned().map(Value::String).collect())),
    ]))
}

/// `plan`: how many of each action, and the cost when a provider has prices.
pub fn plan_value(plan: &Plan) -> Value {
    let count = |action: Action| Value::Number(plan.count(action) as f64);
    let priced = plan
        .provider_configurations
        .values()
        .any(|configuration| crate::cost::Prices::from_provider_config(&configuration.config).is_some());
    let cost = match crate::cost::estimate(plan) {
        Some(report) => Some((report.monthly_delta, report.lines.iter().filter_map(|line| line.per_run).sum::<f64>(), report.currency)),
        None if priced => {
            let currency = plan
                .provider_configurations
                .values()
                .find_map(|configuration| crate::cost::Prices::from_provider_config(&configuration.config))
                .map(|prices| prices.currency)
                .unwrap_or_default();
            Some(((0.0, 0.0), 0.0, currency))
        }
        None => None,
    };
    let cost = match cost {
        Some(((low, high), run, currency)) => Value::Map(ValueMap::from([
            ("monthly_delta".to_owned(), Value::Number(high)),
            ("monthly_delta_min".to_owned(), Value::Number(low)),
            ("run".to_owned(), Value::Number(run)),
            ("currency".to_owned(), Value::String(currency)),
        ])),
        None => Value::Null,
    };
    Value::Map(ValueMap::from([
        ("creates".to_owned(), count(Action::Create)),
        ("updates".to_owned(), count(Action::Update)),
        ("replaces".to_owned(), count(Action::Replace)),
        ("deletes".to_owned(), count(Action::Delete)),
        ("forgets".to_owned(), count(Action::Forget)),
        ("destroy".to_owned(), Value::Bool(plan.destroy)),
        ("cost".to_owned(), cost),
    ]))
}

/// Judges the configuration's policies against `plan`.
pub fn judge(
    root: Option<&CheckedModule>,
    policies: &[PolicyProgram],
    sources: &SourceMap,
    plan: &Plan,
) -> (Vec<PolicyResult>, Vec<Diagnostic>) {
    let mut configured = HashMap::new();
    if let Some(root) = root {
        for (_, resource) in root.all_resources() {
            for instance in &resource.instances {
                configured.insert(instance.value.address.as_str(), (instance, resource.span));
            }
        }
    }
    let subjects: Vec<PolicySubject> = plan
        .changes
        .iter()
        .filter(|change| !change.is_data)
        .map(|change| {
            let change_value = change_value(change.action, &change.reasons);
            match configured.get(change.address.as_str()).filter(|_| !matches!(change.action, Action::Delete | Action::Forget)) {
                Some((instance, span)) => PolicySubject {
                    address: change.address.clone(),
                    kind: change.kind.clone(),
                    value: Value::Resource(instance.value.clone()),
                    change: change_value,
                    header: Some(*span),
                },
                None => {
                    let recorded =
                        change.before.as_ref().map(|before| values_from_json(before, &change.sensitive_paths)).unwrap_or_default();
                    PolicySubject {
                        address: change.address.clone(),
                        kind: change.kind.clone(),
                        value: resource_value(&change.address, &change.kind, false, recorded),
                        change: change_value,
                        header: None,
                    }
                }
            }
        })
        .collect();
    judge_all(policies, &subjects, &plan_value(plan), sources, true)
}
