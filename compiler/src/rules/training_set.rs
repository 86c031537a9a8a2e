//! Training sets: the labels declare their entity and time columns (the
//! time a timestamp), and every feature set joined has a time to join by.

use crate::ast::ExprKind;
use crate::diagnostic::{codes, Diagnostic};
use crate::value::Value;

use super::feature_set::unknown_column;
use super::{dataset_name, KindCheck};

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    let (checker, body, attributes, facts) = (&mut *check.checker, check.body, &*check.attributes, &*check.facts);
    if let Some((dataset, span)) = dataset_name(body, "labels") {
        match facts.dataset_columns.get(&dataset) {
            Some(Some(columns)) => {
                for attribute_name in ["entity", "timestamp"] {
                    let (Some(column), Some(attribute)) =
                        (attributes.get(attribute_name).and_then(Value::as_str), body.attribute(attribute_name))
                    else {
                        continue;
                    };
                    match columns.iter().find(|(name, _)| name == column) {
                        None => checker.diagnostics.push(unknown_column(column, columns, attribute.value.span)),
                        Some((_, found)) if attribute_name == "timestamp" && found != "timestamp" => checker.diagnostics.push(
                            Diagnostic::error(
                                codes::AGGREGATE_COLUMN_TYPE,
                                format!("the labels' time column `{column}` is a {found} column, not a timestamp"),
                            )
                            .at(attribute.value.span, format!("a {found} column"))
                            .with_help(format!("declare it in the dataset's schema: column \"{column}\" {{ type = timestamp }}")),
                        ),
                        Some(_) => {}
                    }
                }
            }
            Some(None) => checker.diagnostics.push(
                Diagnostic::error(
                    codes::MISSING_DATASET_SCHEMA,
                    format!("dataset `{dataset}` declares no schema, so the labels cannot be joined"),
                )
                .at(span, "no schema on this dataset")
                .with_help(format!("add a `schema` block to dataset `{dataset}` with its entity and time columns")),
            ),
            None => {}
        }
    }
    let Some(features) = body.attribute("features") else { return };
    let ExprKind::List(items) = &features.value.kind else { return };
    for item in items {
        let Some(path) = item.reference_path() else { continue };
        let [(kind, _), (name, _), ..] = path.as_slice() else { continue };
        if kind != "feature_set" {
            continue;
        }
        if facts.feature_set_timestamps.get(name.as_str()) == Some(&false) {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::MISSING_REQUIRED_ATTRIBUTE,
                    format!("feature set `{name}` has no `timestamp`, so it cannot be joined point-in-time"),
                )
                .at(item.span, "no time to join by")
                .with_help(format!("set `timestamp = \"COLUMN\"` on feature set `{name}`: each of its rows needs the time it describes")),
            );
        }
    }
}
