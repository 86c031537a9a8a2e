//! Feature sets: the entity is a column of the dataset, and each feature's
//! expression produces its declared type.

use std::collections::BTreeMap;

use crate::ast::Body;
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest::{did_you_mean, one_of};
use crate::types::Type;
use crate::value::Value;

use super::{column_value_type, dataset_name, KindCheck, ModuleFacts};

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check_feature_set(check.checker, check.body, check.attributes, check.facts);
}

fn check_feature_set(checker: &mut BodyChecker<'_>, body: &Body, attributes: &BTreeMap<String, Value>, facts: &ModuleFacts) {
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
