//! Feature sets: the entity is a column of the dataset, each feature's
//! expression produces its declared type, and each aggregate reads a column
//! its function suits, over a timestamp column.

use crate::ast::Body;
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest::{did_you_mean, one_of};
use crate::types::Type;
use crate::value::{Value, ValueMap};

use super::{column_value_type, dataset_name, KindCheck, ModuleFacts};

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    let has_timestamp = check.attributes.get("timestamp").is_some_and(|value| !value.is_null());
    check.facts.feature_set_timestamps.insert(check.name.to_owned(), has_timestamp);
    check_feature_set(check.checker, check.body, check.attributes, check.facts);
    check_aggregates(check.checker, check.header, check.body, check.attributes, check.facts);
}

fn check_feature_set(checker: &mut BodyChecker<'_>, body: &Body, attributes: &ValueMap, facts: &ModuleFacts) {
    let columns = dataset_name(body, "dataset").and_then(|(dataset, _)| facts.dataset_columns.get(&dataset).cloned().flatten());
    if let (Some(columns), Some(entity)) = (&columns, body.attribute("entity")) {
        if let Some(entity_name) = attributes.get("entity").and_then(Value::as_str) {
            if !columns.iter().any(|(column, _)| column == entity_name) {
                let names: Vec<&str> = columns.iter().map(|(column, _)| column.as_str()).collect();
                checker.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_COLUMN, format!("the entity column `{entity_name}` is not in the dataset schema"))
                        .at(entity.value.span, "no such column")
                        .with_help(
                            did_you_mean(entity_name, names.iter().copied())
                                .unwrap_or_else(|| format!("the columns are {}", one_of(&names))),
                        ),
                );
            }
        }
    }
    let features = attributes.get("feature").and_then(Value::as_map).cloned().unwrap_or_default();
    for block in body.blocks_named("feature") {
        let Some(label) = block.labels.first() else { continue };
        let Some(feature) = features.get(&label.value).and_then(Value::as_map) else { continue };
        let (Some(declared), Some(expr_attribute)) = (feature.get("type").and_then(Value::as_str), block.body.attribute("expr")) else {
            continue;
        };
        let Some(value) = feature.get("expr") else { continue };
        if !["int", "float", "bool", "string"].contains(&declared) {
            continue;
        }
        let actual = value.type_of();
        let expected = column_value_type(declared);
        if !actual.is_any() && expected != actual {
            let help = match (declared, &actual) {
                ("bool", Type::Number) => "compare it to get a bool, such as `row.age >= 21`".to_owned(),
                ("int" | "float", Type::Bool) => "turn it into a number with a conditional: `cond ? 1 : 0`".to_owned(),
                ("int" | "float", Type::String) => "convert it with tonumber(...)".to_owned(),
                _ => format!("change the feature's type to match, or the expression to produce {expected}"),
            };
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::FEATURE_TYPE_MISMATCH,
                    format!("feature `{}` is declared {declared} but its expression is {actual}", label.value),
                )
                .at(expr_attribute.value.span, format!("this is {actual}"))
                .with_help(help),
            );
        }
    }
}

/// The columns of the feature set's dataset, when it declares them.
fn dataset_columns(body: &Body, facts: &ModuleFacts) -> Option<Vec<(String, String)>> {
    dataset_name(body, "dataset").and_then(|(dataset, _)| facts.dataset_columns.get(&dataset).cloned().flatten())
}

pub(super) fn unknown_column(column: &str, columns: &[(String, String)], span: crate::source::Span) -> Diagnostic {
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    Diagnostic::error(codes::UNKNOWN_COLUMN, format!("the column `{column}` is not in the dataset schema"))
        .at(span, "no such column")
        .with_help(did_you_mean(column, names.iter().copied()).unwrap_or_else(|| format!("the columns are {}", one_of(&names))))
}

/// `timestamp` names a timestamp column; each aggregate has the column its
/// function needs, of a type it suits; names do not collide; and there is
/// something to compute.
fn check_aggregates(checker: &mut BodyChecker<'_>, header: crate::source::Span, body: &Body, attributes: &ValueMap, facts: &ModuleFacts) {
    let columns = dataset_columns(body, facts);
    let column_type = |name: &str| columns.as_ref()?.iter().find(|(column, _)| column == name).map(|(_, column_type)| column_type.clone());
    let timestamp = attributes.get("timestamp").and_then(Value::as_str);
    if let (Some(timestamp), Some(attribute), Some(columns)) = (timestamp, body.attribute("timestamp"), &columns) {
        match column_type(timestamp) {
            None => checker.diagnostics.push(unknown_column(timestamp, columns, attribute.value.span)),
            Some(found) if found != "timestamp" => checker.diagnostics.push(
                Diagnostic::error(
                    codes::AGGREGATE_COLUMN_TYPE,
                    format!("the time column `{timestamp}` is a {found} column, not a timestamp"),
                )
                .at(attribute.value.span, format!("a {found} column"))
                .with_help(format!("declare it in the dataset's schema: column \"{timestamp}\" {{ type = timestamp }}")),
            ),
            Some(_) => {}
        }
    }
    let aggregates: Vec<_> = body.blocks_named("aggregate").collect();
    let features: Vec<_> = body.blocks_named("feature").collect();
    if aggregates.is_empty() && features.is_empty() {
        checker.diagnostics.push(
            Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, "a feature set needs at least one `feature` or `aggregate` block")
                .at(header, "nothing to compute")
                .with_help("add `feature \"NAME\" { type = float, expr = row.COLUMN }`"),
        );
    }
    // A feature named like the entity or the time would be a second column
    // of that name in the output.
    for feature in &features {
        let Some(label) = feature.labels.first() else { continue };
        let name = Some(label.value.as_str());
        if name == attributes.get("entity").and_then(Value::as_str) || name == timestamp {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::DUPLICATE_NAME,
                    format!("the feature `{}` has the name of the feature set's own column", label.value),
                )
                .at(label.span, "already a column of the output")
                .with_help("give the feature a name of its own: the entity and the time are written already"),
            );
        }
    }
    let values = attributes.get("aggregate").and_then(Value::as_map).cloned().unwrap_or_default();
    for block in aggregates {
        let Some(label) = block.labels.first() else { continue };
        if features.iter().any(|feature| feature.labels.first().is_some_and(|feature_label| feature_label.value == label.value))
            || attributes.get("entity").and_then(Value::as_str) == Some(label.value.as_str())
            || timestamp == Some(label.value.as_str())
        {
            checker.diagnostics.push(
                Diagnostic::error(codes::DUPLICATE_NAME, format!("`{}` names another column of the features already", label.value))
                    .at(label.span, "already a column of the output")
                    .with_help("give the aggregate a name of its own, such as `spend_7d`"),
            );
        }
        if timestamp.is_none() {
            checker.diagnostics.push(
                Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, "an aggregate needs the feature set's `timestamp` column")
                    .at(block.header_span(), "over which time?")
                    .with_help("name the column of each row's event time: timestamp = \"COLUMN\""),
            );
        }
        let Some(aggregate) = values.get(&label.value).and_then(Value::as_map) else { continue };
        let Some(function) = aggregate.get("function").and_then(Value::as_str) else { continue };
        let column = aggregate.get("column").and_then(Value::as_str);
        let Some(column) = column else {
            if function != "count" {
                checker.diagnostics.push(
                    Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("the {function} aggregate needs a `column`"))
                        .at(block.header_span(), format!("{function} of which column?"))
                        .with_help("add column = \"NAME\""),
                );
            }
            continue;
        };
        let (Some(columns), Some(attribute)) = (&columns, block.body.attribute("column")) else { continue };
        let Some(found) = column_type(column) else {
            checker.diagnostics.push(unknown_column(column, columns, attribute.value.span));
            continue;
        };
        let numeric = found == "int" || found == "float";
        if matches!(function, "sum" | "mean" | "min" | "max") && !numeric {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::AGGREGATE_COLUMN_TYPE,
                    format!("{function} needs a number column, and `{column}` is a {found} column"),
                )
                .at(attribute.value.span, format!("a {found} column"))
                .with_help("aggregate an int or float column, or use count, count_distinct or last"),
            );
        }
    }
}
