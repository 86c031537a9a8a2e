//! Residual expressions: what is left of an expression once everything known
//! at plan time has been folded into literals.
//!
//! The plan is data, and apply never re-evaluates the configuration. But a
//! gate's condition (`training.fraud.metrics.auc >= var.min_auc`) or a feature
//! expression (`log1p(row.amount)`) can only be decided once the training has
//! run or per row of data. For those, the planner stores the *residual*:
//! variables, locals and every known sub-expression become literals, and only
//! the references to values known after apply stay symbolic
//! (`training.fraud.metrics.auc >= 0.75`). The residual is valid language
//! text, readable in a plan, and [`evaluate_residual`] evaluates it against
//! the applied attributes of the resources it names.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::ast::{Expr, ExprKind, ObjectKey, StepKind, TemplatePart};
use crate::diagnostic::Diagnostics;
use crate::eval::{Context, Evaluator, Scope};
use crate::schema::Schemas;
use crate::source::FileId;
use crate::value::{format_number, ResourceValue, Value, ValueMap};

/// The residual text of `expr` in `scope` and `context`.
pub fn residual(expr: &Expr, scope: &Scope, context: &Context, schemas: &'static Schemas) -> String {
    let mut out = String::new();
    Printer { scope, context, schemas, keep_references: false }.print(expr, &mut out);
    out
}

/// Like [`residual`], but references to resources stay symbolic even when
/// their values are known. A gate's condition is decided on apply, against
/// the run that apply produces, and its text must not change just because
/// the current run's metrics are known.
pub fn residual_keeping_references(expr: &Expr, scope: &Scope, context: &Context, schemas: &'static Schemas) -> String {
    let mut out = String::new();
    Printer { scope, context, schemas, keep_references: true }.print(expr, &mut out);
    out
}

struct Printer<'a> {
    scope: &'a Scope,
    context: &'a Context,
    schemas: &'static Schemas,
    keep_references: bool,
}

/// Whether `expr` refers to a resource, data source or module output.
fn refers_to_resources(expr: &Expr, schemas: &Schemas) -> bool {
    let mut found = false;
    expr.walk(&mut |node| {
        if let ExprKind::Variable(name) = &node.kind {
            if schemas.resources.contains_key(name) || name == "data" || name == "module" {
                found = true;
            }
        }
    });
    found
}

impl Printer<'_> {
    fn known(&self, expr: &Expr) -> Option<Value> {
        if self.keep_references && refers_to_resources(expr, self.schemas) {
            return None;
        }
        let mut scratch = Diagnostics::default();
        let value = Evaluator::new(self.scope, self.context, self.schemas, &mut scratch).eval(expr);
        (scratch.is_empty() && value.is_wholly_known() && !value.contains_sensitive() && !contains_resource(&value)).then_some(value)
    }

    fn print(&self, expr: &Expr, out: &mut String) {
        if let Some(value) = self.known(expr) {
            literal(&value, out);
            return;
        }
        match &expr.kind {
            ExprKind::Null => out.push_str("null"),
            ExprKind::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
            ExprKind::Number(number) => out.push_str(&format_number(*number)),
            ExprKind::String(text) => quoted(text, out),
            ExprKind::Template(parts) => {
                out.push('"');
                self.template(parts, out);
                out.push('"');
            }
            ExprKind::List(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    self.print(item, out);
                }
                out.push(']');
            }
            ExprKind::Object(items) => {
                out.push('{');
                for (index, item) in items.iter().enumerate() {
                    out.push_str(if index > 0 { ", " } else { " " });
                    match &item.key {
                        ObjectKey::Ident(ident) => quoted(&ident.name, out),
                        ObjectKey::Expr(key) => {
                            out.push('(');
                            self.print(key, out);
                            out.push(')');
                        }
                    }
                    out.push_str(" = ");
                    self.print(&item.value, out);
                }
                out.push_str(" }");
            }
            ExprKind::Variable(name) => out.push_str(name),
            ExprKind::Traversal { root, steps } => {
                self.print(root, out);
                for step in steps {
                    match &step.kind {
                        StepKind::GetAttr(name) => {
                            out.push('.');
                            out.push_str(name);
                        }
                        StepKind::Index(index) => {
                            out.push('[');
                            self.print(index, out);
                            out.push(']');
                        }
                        StepKind::AttrSplat => out.push_str(".*"),
                        StepKind::FullSplat => out.push_str("[*]"),
                    }
                }
            }
            ExprKind::Call(call) => {
                let (name, args, expand_final) = (&call.name, &call.args, &call.expand_final);
                out.push_str(&name.name);
                out.push('(');
                for (index, argument) in args.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    self.print(argument, out);
                }
                if *expand_final {
                    out.push_str("...");
                }
                out.push(')');
            }
            ExprKind::Unary { operator, operand } => {
                out.push_str(operator.as_str());
                self.print(operand, out);
            }
            ExprKind::Binary { operator, left, right } => {
                self.print(left, out);
                let _ = write!(out, " {} ", operator.as_str());
                self.print(right, out);
            }
            ExprKind::Conditional { condition, then, otherwise } => {
                self.print(condition, out);
                out.push_str(" ? ");
                self.print(then, out);
                out.push_str(" : ");
                self.print(otherwise, out);
            }
            ExprKind::Parenthesis(inner) => {
                out.push('(');
                self.print(inner, out);
                out.push(')');
            }
            ExprKind::For(for_expr) => {
                let object = for_expr.key_expr.is_some();
                out.push_str(if object { "{for " } else { "[for " });
                if let Some(key) = &for_expr.key_var {
                    out.push_str(&key.name);
                    out.push_str(", ");
                }
                out.push_str(&for_expr.value_var.name);
                out.push_str(" in ");
                self.print(&for_expr.collection, out);
                out.push_str(" : ");
                if let Some(key) = &for_expr.key_expr {
                    self.print(key, out);
                    out.push_str(" => ");
                }
                self.print(&for_expr.value_expr, out);
                if for_expr.grouping {
                    out.push_str("...");
                }
                if let Some(condition) = &for_expr.condition {
                    out.push_str(" if ");
                    self.print(condition, out);
                }
                out.push(if object { '}' } else { ']' });
            }
        }
    }

    fn template(&self, parts: &[TemplatePart], out: &mut String) {
        for part in parts {
            match part {
                TemplatePart::Literal(text) => escape_template(text, out),
                TemplatePart::Interpolation(expr) => match self.known(expr) {
                    Some(value) if value.to_template_string().is_some() => {
                        escape_template(&value.to_template_string().unwrap_or_default(), out)
                    }
                    _ => {
                        out.push_str("${");
                        self.print(expr, out);
                        out.push('}');
                    }
                },
                TemplatePart::If { condition, then, otherwise } => {
                    out.push_str("%{ if ");
                    self.print(condition, out);
                    out.push_str(" }");
                    self.template(then, out);
                    if !otherwise.is_empty() {
                        out.push_str("%{ else }");
                        self.template(otherwise, out);
                    }
                    out.push_str("%{ endif }");
                }
                TemplatePart::For { key_var, value_var, collection, body } => {
                    out.push_str("%{ for ");
                    if let Some(key) = key_var {
                        out.push_str(&key.name);
                        out.push_str(", ");
                    }
                    out.push_str(&value_var.name);
                    out.push_str(" in ");
                    self.print(collection, out);
                    out.push_str(" }");
                    self.template(body, out);
                    out.push_str("%{ endfor }");
                }
            }
        }
    }
}

fn contains_resource(value: &Value) -> bool {
    match value {
        Value::Resource(_) => true,
        Value::List(items) => items.iter().any(contains_resource),
        Value::Map(entries) => entries.values().any(contains_resource),
        Value::Sensitive(inner) => contains_resource(inner),
        _ => false,
    }
}

/// Writes a known value as language text.
pub fn literal(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Unknown(_) | Value::Sensitive(_) | Value::Resource(_) => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) if number.is_finite() => out.push_str(&format_number(*number)),
        Value::Number(_) => out.push_str("null"),
        Value::String(text) => quoted(text, out),
        Value::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                literal(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (index, (key, item)) in entries.iter().enumerate() {
                out.push_str(if index > 0 { ", " } else { " " });
                quoted(key, out);
                out.push_str(" = ");
                literal(item, out);
            }
            out.push_str(if entries.is_empty() { "}" } else { " }" });
        }
    }
}

fn quoted(text: &str, out: &mut String) {
    out.push('"');
    escape_template(text, out);
    out.push('"');
}

fn escape_template(text: &str, out: &mut String) {
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if characters.peek() == Some(&'{') => {
                out.push(character);
                out.push(character);
            }
            other => out.push(other),
        }
    }
}

/// What a residual may refer to when it is finally evaluated.
#[derive(Debug, Default, Clone)]
pub struct ResidualBindings {
    /// Applied resources by (kind, name), as seen from the residual's module.
    pub resources: HashMap<(String, String), Value>,
    pub data: HashMap<(String, String), Value>,
    /// The outputs of the module calls in the residual's module, by call name.
    pub modules: HashMap<String, Value>,
    pub self_value: Option<Value>,
}

/// A residual parsed once, for evaluation many times (feature expressions
/// run once per row).
#[derive(Debug, Clone)]
pub struct CompiledResidual {
    expr: Expr,
    scope: Arc<Scope>,
}

impl CompiledResidual {
    pub fn parse(text: &str, bindings: &ResidualBindings) -> Result<CompiledResidual, String> {
        let expr = parse_expression(text)?;
        let mut scope = Scope::default();
        for (kind, name) in bindings.resources.keys() {
            scope.declared_resources.entry(kind.clone()).or_default().push(name.clone());
        }
        for (kind, name) in bindings.data.keys() {
            scope.declared_data.entry(kind.clone()).or_default().push(name.clone());
        }
        scope.resources = bindings.resources.clone();
        scope.data = bindings.data.clone();
        scope.declared_modules = bindings.modules.keys().cloned().collect();
        scope.modules = bindings.modules.clone();
        Ok(CompiledResidual { expr, scope: Arc::new(scope) })
    }

    /// Evaluates with `self` and `row` bound as given. Unknown results are errors.
    pub fn evaluate(&self, self_value: Option<Value>, row: Option<Value>) -> Result<Value, String> {
        let context = Context { self_value, row, describe: "an expression", ..Context::default() };
        let mut diagnostics = Diagnostics::default();
        let value = Evaluator::new(&self.scope, &context, Schemas::standard(), &mut diagnostics).eval(&self.expr);
        if let Some(diagnostic) = diagnostics.iter().find(|diagnostic| diagnostic.is_error()) {
            return Err(diagnostic.message.clone());
        }
        if !value.is_wholly_known() {
            return Err("the value is still unknown after apply".to_owned());
        }
        Ok(value)
    }
}

/// The syntax tree of a residual's text.
pub fn parse_expression(text: &str) -> Result<Expr, String> {
    let source = format!("residual = {text}\n");
    let body = crate::syntax::parse_file(FileId(u32::MAX), &source).map_err(|diagnostic| diagnostic.message.clone())?;
    body.attributes.into_iter().next().map(|attribute| attribute.value).ok_or_else(|| "empty expression".to_owned())
}

/// Parses and evaluates a residual once.
pub fn evaluate_residual(text: &str, bindings: &ResidualBindings) -> Result<Value, String> {
    CompiledResidual::parse(text, bindings)?.evaluate(bindings.self_value.clone(), None)
}

/// A resource value for bindings, from applied attributes.
pub fn resource_value(address: &str, kind: &str, is_data: bool, attributes: ValueMap) -> Value {
    Value::Resource(Arc::new(ResourceValue { address: address.to_owned(), kind: kind.to_owned(), is_data, attributes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Expr {
        let body = crate::syntax::parse_file(FileId(0), &format!("x = {text}\n")).expect("parses");
        body.attributes.into_iter().next().expect("one attribute").value
    }

    #[test]
    fn folds_what_is_known_and_keeps_the_rest() {
        let mut scope = Scope { declared_variables: vec!["min".into()], ..Scope::default() };
        scope.variables.insert("min".into(), Value::Number(0.75));
        scope.declared_resources.insert("training".into(), vec!["fraud".into()]);
        let mut metrics = ValueMap::new();
        metrics.insert("auc".to_owned(), Value::Unknown(crate::types::Type::Number));
        let mut attributes = ValueMap::new();
        attributes.insert("metrics".to_owned(), Value::Map(metrics));
        scope.resources.insert(("training".into(), "fraud".into()), resource_value("training.fraud", "training", false, attributes));
        let text = residual(
            &parse("training.fraud.metrics.auc >= var.min && \"${var.min}\" != \"\""),
            &scope,
            &Context::default(),
            Schemas::standard(),
        );
        assert_eq!(text, "training.fraud.metrics.auc >= 0.75 && true");

        let mut bindings = ResidualBindings::default();
        let mut metrics = ValueMap::new();
        metrics.insert("auc".to_owned(), Value::Number(0.8));
        let mut attributes = ValueMap::new();
        attributes.insert("metrics".to_owned(), Value::Map(metrics));
        bindings.resources.insert(("training".into(), "fraud".into()), resource_value("training.fraud", "training", false, attributes));
        assert_eq!(evaluate_residual(&text, &bindings), Ok(Value::Bool(true)));
    }

    #[test]
    fn gates_keep_their_references_even_when_the_values_are_known() {
        let mut scope = Scope { declared_variables: vec!["min".into()], ..Scope::default() };
        scope.variables.insert("min".into(), Value::Number(0.75));
        scope.declared_resources.insert("training".into(), vec!["fraud".into()]);
        let mut metrics = ValueMap::new();
        metrics.insert("auc".to_owned(), Value::Number(0.9));
        let mut attributes = ValueMap::new();
        attributes.insert("metrics".to_owned(), Value::Map(metrics));
        scope.resources.insert(("training".into(), "fraud".into()), resource_value("training.fraud", "training", false, attributes));
        let expr = parse("training.fraud.metrics.auc >= var.min");
        assert_eq!(residual(&expr, &scope, &Context::default(), Schemas::standard()), "true");
        assert_eq!(
            residual_keeping_references(&expr, &scope, &Context::default(), Schemas::standard()),
            "training.fraud.metrics.auc >= 0.75"
        );
    }

    #[test]
    fn literals_round_trip_through_the_parser() {
        let mut entries = ValueMap::new();
        entries.insert("a \"b\"".to_owned(), Value::String("${not} %{interpolated}\n".into()));
        entries.insert("list".to_owned(), Value::List(vec![Value::Number(1.5), Value::Bool(false), Value::Null]));
        let value = Value::Map(entries);
        let mut text = String::new();
        literal(&value, &mut text);
        assert_eq!(evaluate_residual(&text, &ResidualBindings::default()), Ok(value));
    }
}
