//! Datasets: the column constraints of a `schema` block (bounds only on
//! numeric columns, and so on), and the columns recorded for the rules of
//! what reads the dataset.

use crate::ast::{Body, ExprKind};
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};
use crate::value::format_number;

use super::{KindCheck, ModuleFacts};

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check_dataset(check.checker, check.name, check.body, check.facts);
}

fn check_dataset(checker: &mut BodyChecker<'_>, name: &str, body: &Body, facts: &mut ModuleFacts) {
    let Some(schema) = body.blocks_named("schema").next() else {
        facts.dataset_columns.insert(name.to_owned(), None);
        return;
    };
    let mut columns = Vec::new();
    for column in schema.body.blocks_named("column") {
        let Some(label) = column.labels.first() else { continue };
        let column_type = column.body.attribute("type").and_then(|attribute| match &attribute.value.kind {
            ExprKind::String(text) => Some(text.clone()),
            // `type = float` written bare, as in the language reference.
            ExprKind::Variable(text) => Some(text.clone()),
            _ => None,
        });
        let Some(column_type) = column_type else { continue };
        let numeric = column_type == "int" || column_type == "float";
        for bound in ["min", "max"] {
            if let Some(attribute) = column.body.attribute(bound) {
                if !numeric {
                    checker.diagnostics.push(
                        Diagnostic::error(
                            codes::CONSTRAINT_TYPE_MISMATCH,
                            format!("`{bound}` only applies to int and float columns, and `{}` is {column_type}", label.value),
                        )
                        .at(attribute.name.span, format!("not for {column_type} columns"))
                        .with_help(if column_type == "string" {
                            "use `allowed = [...]` to restrict a string column".to_owned()
                        } else {
                            "remove it, or change the column type".to_owned()
                        }),
                    );
                }
            }
        }
        if let Some(attribute) = column.body.attribute("allowed") {
            if column_type != "string" {
                checker.diagnostics.push(
                    Diagnostic::error(
                        codes::CONSTRAINT_TYPE_MISMATCH,
                        format!("`allowed` only applies to string columns, and `{}` is {column_type}", label.value),
                    )
                    .at(attribute.name.span, format!("not for {column_type} columns"))
                    .with_help(if numeric { "use `min` and `max` to bound a numeric column" } else { "remove it" }),
                );
            }
        }
        let bound = |name: &str| {
            column
                .body
                .attribute(name)
                .and_then(|attribute| crate::schema::literal_value(&attribute.value))
                .and_then(|value| value.as_number())
        };
        if let (Some(min), Some(max)) = (bound("min"), bound("max")) {
            if min > max && numeric {
                let span = column.body.attribute("min").map_or(label.span, |attribute| attribute.span);
                checker.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_BOUNDS,
                        format!("column `{}` has min {} above max {}", label.value, format_number(min), format_number(max)),
                    )
                    .at(span, "min is above max")
                    .with_secondary(column.body.attribute("max").map_or(label.span, |attribute| attribute.span), "max")
                    .with_help("no value could satisfy both; swap or correct them"),
                );
            }
        }
        columns.push((label.value.clone(), column_type));
    }
    facts.dataset_columns.insert(name.to_owned(), Some(columns));
}
