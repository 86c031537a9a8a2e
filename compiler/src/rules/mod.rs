//! The rules that need to understand ML, beyond what a schema can say, one
//! file per kind: feature expressions typed against the dataset schema
//! (`feature_set.rs`), column constraints (`dataset.rs`), metric names
//! (`training.rs`), labels and time joins (`training_set.rs`), serving runtimes against providers, rollout strategies
//! against runtimes and KServe's modes (`serving.rs`), drift methods
//! against column types (`monitor.rs`). Each kind's rule is registered in
//! [`RULES`]; the checker calls [`check_kind`] for every resource after its
//! schema checks, in declaration order, so a rule may read what an earlier
//! declaration recorded in [`ModuleFacts`]. A kind may also have a rule
//! over what refresh found (a monitor that drifted), registered in
//! [`PLANNED_RULES`] and run by `plan` through [`check_planned`].

mod dataset;
mod feature_set;
mod model;
mod monitor;
mod serving;
mod training;
mod training_set;

use std::collections::HashMap;

use crate::ast::Body;
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};
use crate::types::Type;
use crate::value::{Value, ValueMap};

/// Per-module facts the ML rules need about other declarations.
#[derive(Default)]
pub struct ModuleFacts {
    /// Dataset name -> its columns (name, type), or None without a schema.
    pub dataset_columns: HashMap<String, Option<Vec<(String, String)>>>,
    /// Feature set name -> whether it has a `timestamp` (can be joined by time).
    pub feature_set_timestamps: HashMap<String, bool>,
    /// Model name -> the provider type its registry is on.
    pub model_providers: HashMap<String, String>,
}

/// One resource under a kind's rule: where its diagnostics go, its block,
/// its evaluated attributes, the provider it lives on, and the module's facts.
pub struct KindCheck<'c, 'b> {
    pub checker: &'c mut BodyChecker<'b>,
    pub name: &'c str,
    /// The span of the resource's block header, for what its block lacks.
    pub header: crate::source::Span,
    pub body: &'c Body,
    pub attributes: &'c mut ValueMap,
    pub target: &'c ProviderTarget<'c>,
    pub facts: &'c mut ModuleFacts,
}

/// A kind's rule.
type Rule = fn(&mut KindCheck<'_, '_>);

/// The rule of each kind that has one.
const RULES: &[(&str, Rule)] = &[
    ("dataset", dataset::check),
    ("feature_set", feature_set::check),
    ("training_set", training_set::check),
    ("training", training::check),
    ("model", model::check),
    ("serving", serving::check),
    ("monitor", monitor::check),
];

/// What a kind's plan-time rule sees of a resource once refresh has read
/// it: what its module depends on, and the live value of an attribute of
/// each of its instances (by instance address).
pub struct PlannedCheck<'a> {
    pub resource: &'a crate::check::CheckedResource,
    /// What the module's resources depend on (`depends_on`, local
    /// addresses), gathered once per module: a rule asking "does anything
    /// use this?" of every resource was quadratic in the module's size.
    pub depended_on: &'a std::collections::HashSet<&'a str>,
    pub live: &'a dyn Fn(&str, &str) -> Option<serde_json::Value>,
}

/// A kind's rule that needs the resource as it is now (warnings about
/// what refresh found), run by `plan`.
type PlannedRule = fn(&PlannedCheck<'_>) -> Vec<Diagnostic>;

const PLANNED_RULES: &[(&str, PlannedRule)] = &[("monitor", monitor::check_planned)];

/// Runs the plan-time rule of the resource's kind, if it has one.
pub fn check_planned(check: &PlannedCheck<'_>) -> Vec<Diagnostic> {
    if check.resource.is_data {
        return Vec::new();
    }
    PLANNED_RULES.iter().find(|(kind, _)| *kind == check.resource.kind).map(|(_, rule)| rule(check)).unwrap_or_default()
}

/// Runs `kind`'s rule, if it has one.
pub fn check_kind(kind: &str, check: &mut KindCheck<'_, '_>) {
    if let Some((_, rule)) = RULES.iter().find(|(name, _)| *name == kind) {
        rule(check);
    }
}

/// The type a column's values have in expressions.
pub fn column_value_type(column_type: &str) -> Type {
    match column_type {
        "int" | "float" => Type::Number,
        "bool" => Type::Bool,
        _ => Type::String,
    }
}

/// The dataset a reference attribute (`dataset = dataset.NAME`) names,
/// with the reference's span.
pub(crate) fn dataset_name(body: &Body, attribute: &str) -> Option<(String, crate::source::Span)> {
    let expr = &body.attribute(attribute)?.value;
    let path = expr.reference_path()?;
    (path.len() == 2 && path[0].0 == "dataset").then(|| (path[1].0.clone(), expr.span))
}

/// The `row` a kind's row expressions see, for the kinds that have them
/// (a feature set's features: one value per column of its dataset).
pub fn expression_row(kind: &str, checker: &mut BodyChecker<'_>, body: &Body, facts: &ModuleFacts) -> Option<Value> {
    (kind == "feature_set").then(|| feature_row(checker, body, facts))
}

/// The `row` a feature set's expressions see: one value per dataset column.
fn feature_row(checker: &mut BodyChecker<'_>, body: &Body, facts: &ModuleFacts) -> Value {
    let Some((dataset, span)) = dataset_name(body, "dataset") else { return Value::unknown_any() };
    match facts.dataset_columns.get(&dataset) {
        Some(Some(columns)) => {
            Value::Unknown(Type::Object(columns.iter().map(|(name, column_type)| (name.clone(), column_value_type(column_type))).collect()))
        }
        Some(None) => {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::MISSING_DATASET_SCHEMA,
                    format!("dataset `{dataset}` declares no schema, so feature expressions cannot be checked"),
                )
                .at(span, "no schema on this dataset")
                .with_help(format!("add a `schema {{ column \"NAME\" {{ type = ... }} }}` block to dataset `{dataset}`")),
            );
            Value::unknown_any()
        }
        None => Value::unknown_any(),
    }
}

/// The provider a resource lives on, and the literal settings of its
/// configuration block (an unknown value where one is an expression).
pub struct ProviderTarget<'a> {
    pub provider_type: &'a str,
    pub settings: &'a ValueMap,
}

impl ProviderTarget<'_> {
    /// A string setting: `Some(None)` when it is written as an expression
    /// (unknown here), `None` when absent.
    pub(crate) fn text(&self, name: &str) -> Option<Option<&str>> {
        self.settings.get(name).map(Value::as_str)
    }

    /// Whether a list setting names `element`; `None` when it is unknown.
    pub(crate) fn lists(&self, name: &str, element: &str) -> Option<bool> {
        match self.settings.get(name) {
            None => Some(false),
            Some(value) => value.as_list().map(|items| items.iter().any(|item| item.as_str() == Some(element))),
        }
    }
}
