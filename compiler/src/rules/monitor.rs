//! Monitors: the columns exist in the reference dataset, and the drift
//! method can measure each column's type.

use std::collections::HashSet;

use crate::ast::{Body, ExprKind};
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest::{did_you_mean, one_of};
use crate::value::{Value, ValueMap};

use super::{dataset_name, KindCheck, ModuleFacts};

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check_monitor(check.checker, check.body, check.attributes, check.facts);
}

/// W0103: a monitor that reports drift (as refreshed) while nothing in its
/// module refers to it: no training retrains on it.
pub(super) fn check_planned(check: &super::PlannedCheck<'_>) -> Vec<Diagnostic> {
    let monitor = check.resource;
    let local = format!("monitor.{}", monitor.name);
    if check.depended_on.contains(local.as_str()) {
        return Vec::new();
    }
    monitor
        .instances
        .iter()
        .filter(|instance| (check.live)(&instance.value.address, "drifted").and_then(|drifted| drifted.as_bool()).unwrap_or(false))
        .map(|instance| {
            Diagnostic::warning(
                codes::DRIFT_WITHOUT_RETRAINING,
                format!("{} reports drift, and nothing retrains on it", instance.value.address),
            )
            .at(monitor.span, "drifted past its threshold")
            .with_help(format!(
                "add `retrain_on = [{local}.drifted]` to the training it watches, or raise its `threshold` if this drift is expected"
            ))
        })
        .collect()
}

fn check_monitor(checker: &mut BodyChecker<'_>, body: &Body, attributes: &ValueMap, facts: &ModuleFacts) {
    let Some((dataset, span)) = dataset_name(body, "reference") else { return };
    let columns = match facts.dataset_columns.get(&dataset) {
        Some(Some(columns)) => columns.clone(),
        Some(None) => {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::MISSING_DATASET_SCHEMA,
                    format!("dataset `{dataset}` declares no schema, so the monitor's columns cannot be checked"),
                )
                .at(span, "no schema on this dataset")
                .with_help(format!("add a `schema` block to dataset `{dataset}`")),
            );
            return;
        }
        None => return,
    };
    let method = attributes.get("method").and_then(Value::as_str).unwrap_or("psi").to_owned();
    let Some(columns_attribute) = body.attribute("columns") else { return };
    let ExprKind::List(items) = &columns_attribute.value.kind else { return };
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let mut seen = HashSet::new();
    for item in items {
        let ExprKind::String(column) = &item.kind else { continue };
        if !seen.insert(column.clone()) {
            continue;
        }
        let Some((_, column_type)) = columns.iter().find(|(name, _)| name == column) else {
            checker.diagnostics.push(
                Diagnostic::error(codes::UNKNOWN_COLUMN, format!("dataset `{dataset}` has no column `{column}`"))
                    .at(item.span, "not in the reference schema")
                    .with_help(
                        did_you_mean(column, names.iter().copied()).unwrap_or_else(|| format!("its columns are {}", one_of(&names))),
                    ),
            );
            continue;
        };
        let numeric = column_type == "int" || column_type == "float";
        let needs_numeric = method == "ks" || method == "wasserstein";
        if needs_numeric && !numeric || column_type == "timestamp" {
            checker.diagnostics.push(
                Diagnostic::error(codes::MONITOR_METHOD_COLUMN_TYPE, format!("the {method} method cannot measure drift on `{column}`, a {column_type} column"))
                    .at(item.span, format!("{column_type} column"))
                    .with_help(if column_type == "timestamp" { "drift is not computed on timestamps; remove the column".to_owned() } else { format!("{method} compares numeric distributions; use method = \"psi\" or \"kl_div\" for categorical columns, or a separate monitor") }),
            );
        }
    }
}
