//! The expression evaluator.
//!
//! One evaluator serves `validate` and `plan`: anything not known yet is an
//! [`Value::Unknown`] of a type, so evaluating *is* type checking. Errors are
//! reported as diagnostics and evaluate to `unknown(any)`, which is accepted
//! everywhere, so one mistake is reported once rather than cascading.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::ast::{BinaryOperator, Expr, ExprKind, ObjectKey, StepKind, TemplatePart, TraversalStep, UnaryOperator};
use crate::diagnostic::{codes, Diagnostic, Diagnostics};
use crate::functions::{self, CallContext, CallError};
use crate::schema::Schemas;
use crate::source::Span;
use crate::suggest::{did_you_mean, one_of};
use crate::types::{unify, Type};
use crate::value::{format_number, Value, ValueMap};

/// Everything a module's expressions can refer to.
#[derive(Debug, Default)]
pub struct Scope {
    /// Declared names, whether evaluated yet or not (for suggestions, and to
    /// tell "declared but in a cycle" from "not declared").
    pub declared_variables: Vec<String>,
    pub declared_locals: Vec<String>,
    pub declared_modules: Vec<String>,
    pub declared_resources: HashMap<String, Vec<String>>,
    pub declared_data: HashMap<String, Vec<String>>,
    pub variables: HashMap<String, Value>,
    pub locals: HashMap<String, Value>,
    pub modules: HashMap<String, Value>,
    pub resources: HashMap<(String, String), Value>,
    pub data: HashMap<(String, String), Value>,
    pub module_directory: PathBuf,
    /// The module directory as the user sees it in messages.
    pub module_display: String,
    pub root_directory: PathBuf,
    /// Where `file()` and the existence checks of local paths read.
    pub files: crate::files::Files,
}

/// Names that only exist in some places.
#[derive(Debug, Default, Clone)]
pub struct Context {
    pub each: Option<(Value, Value)>,
    pub count_index: Option<Value>,
    pub self_value: Option<Value>,
    pub row: Option<Value>,
    /// In a policy: what the plan does to `self` (`change.action`,
    /// `change.reasons`), unknown until planned.
    pub change: Option<Value>,
    /// In a policy: the plan as a whole (counts and cost), unknown until planned.
    pub plan: Option<Value>,
    /// What to call the place, for "not available here" messages.
    pub describe: &'static str,
}

/// Special cases for better messages while following a reference.
#[derive(Debug, Clone)]
enum Flavor {
    Plain,
    Row,
    Metrics { training: String },
}

pub struct Evaluator<'a> {
    pub scope: &'a Scope,
    pub context: &'a Context,
    pub schemas: &'static Schemas,
    pub diagnostics: &'a mut Diagnostics,
    iterators: Vec<(String, Value)>,
    /// Steps spent, against [`crate::limits::MAX_EVALUATION_WORK`].
    work: usize,
    /// Past the limit: everything left evaluates to unknown at once.
    exhausted: bool,
    /// The expression this evaluator was given, which the limit names.
    outermost: Option<Span>,
}

/// Names that start a reference, besides resource kinds and `for` variables.
pub const ROOT_NAMES: &[&str] = &["var", "local", "module", "data", "each", "count", "self", "row", "path", "change", "plan"];

impl<'a> Evaluator<'a> {
    pub fn new(scope: &'a Scope, context: &'a Context, schemas: &'static Schemas, diagnostics: &'a mut Diagnostics) -> Self {
        Evaluator { scope, context, schemas, diagnostics, iterators: Vec::new(), work: 0, exhausted: false, outermost: None }
    }

    /// Spends `steps` of the expression's work; past the limit, reports it
    /// once (at the whole expression) and stops the evaluation.
    fn spend(&mut self, steps: usize, span: Span) {
        let span = self.outermost.unwrap_or(span);
        self.work = self.work.saturating_add(steps);
        if self.work > crate::limits::MAX_EVALUATION_WORK && !self.exhausted {
            self.exhausted = true;
            self.diagnostics.push(
                Diagnostic::error(
                    codes::LIMIT_EXCEEDED,
                    format!("this expression does more than {} steps of work", crate::limits::MAX_EVALUATION_WORK),
                )
                .at(span, "too much work")
                .with_help("a `for` over a large collection, nested loops, or a large value used inside a loop; keep data in datasets, not in expressions"),
            );
        }
    }

    fn error(&mut self, diagnostic: Diagnostic) -> Value {
        self.diagnostics.push(diagnostic);
        Value::unknown_any()
    }

    pub fn eval(&mut self, expr: &Expr) -> Value {
        if self.exhausted {
            return Value::unknown_any();
        }
        self.outermost.get_or_insert(expr.span);
        match &expr.kind {
            ExprKind::Null => Value::Null,
            ExprKind::Bool(flag) => Value::Bool(*flag),
            ExprKind::Number(number) => Value::Number(*number),
            ExprKind::String(text) => Value::String(text.clone()),
            ExprKind::Template(parts) => {
                let value = self.template(parts);
                let length = value.unmark().0.as_str().map_or(0, str::len);
                if length > crate::limits::MAX_STRING_BYTES {
                    self.exhausted = true;
                    return self.error(
                        Diagnostic::error(
                            codes::LIMIT_EXCEEDED,
                            format!(
                                "this template makes a string of {length} bytes, more than the {} a string may have",
                                crate::limits::MAX_STRING_BYTES
                            ),
                        )
                        .at(expr.span, "too long")
                        .with_help("keep large text in files a resource reads, not in expressions"),
                    );
                }
                self.spend(value.weight(), expr.span);
                value
            }
            ExprKind::List(items) => Value::List(items.iter().map(|item| self.eval(item)).collect()),
            ExprKind::Object(items) => {
                let mut entries = ValueMap::with_capacity(items.len());
                let mut unknown_key = false;
                for item in items {
                    let key = match &item.key {
                        ObjectKey::Ident(ident) => Some(ident.name.clone()),
                        ObjectKey::Expr(key_expr) => {
                            let key = self.eval(key_expr);
                            match key.to_template_string() {
                                Some(text) => Some(text),
                                None if !key.is_known() => {
                                    unknown_key = true;
                                    None
                                }
                                None => {
                                    self.error(
                                        Diagnostic::error(
                                            codes::TYPE_MISMATCH,
                                            format!("object keys must be strings, not {}", key.type_of()),
                                        )
                                        .at(key_expr.span, "not a string"),
                                    );
                                    None
                                }
                            }
                        }
                    };
                    let value = self.eval(&item.value);
                    if let Some(key) = key {
                        entries.insert(key, value);
                    }
                }
                if unknown_key {
                    Value::Unknown(Type::map(unify(entries.values().map(Value::type_of))))
                } else {
                    Value::Map(entries)
                }
            }
            ExprKind::Variable(_) | ExprKind::Traversal { .. } => {
                let value = self.reference(expr);
                self.spend(value.weight(), expr.span);
                value
            }
            ExprKind::Call(call) => {
                let value = self.call(expr, &call.name.name, call.name.span, &call.args, call.expand_final);
                self.spend(value.weight(), expr.span);
                value
            }
            ExprKind::Unary { operator, operand } => self.unary(*operator, operand),
            ExprKind::Binary { operator, left, right } => self.binary(*operator, left, right),
            ExprKind::Conditional { condition, then, otherwise } => {
                let condition_value = self.eval(condition);
                let then_value = self.eval(then);
                let otherwise_value = self.eval(otherwise);
                let (unmarked, sensitive) = condition_value.unmark();
                match unmarked {
                    Value::Bool(true) => then_value.mark_if(sensitive),
                    Value::Bool(false) => otherwise_value.mark_if(sensitive),
                    Value::Unknown(Type::Bool | Type::Any) => {
                        Value::Unknown(unify([then_value.type_of(), otherwise_value.type_of()])).mark_if(sensitive)
                    }
                    other => self.error(
                        Diagnostic::error(codes::TYPE_MISMATCH, format!("a condition must be a bool, not {}", other.type_of()))
                            .at(condition.span, "not a bool"),
                    ),
                }
            }
            ExprKind::For(for_expr) => self.for_expression(for_expr),
            ExprKind::Parenthesis(inner) => self.eval(inner),
        }
    }

    fn template(&mut self, parts: &[TemplatePart]) -> Value {
        let mut out = String::new();
        let mut known = true;
        let mut sensitive = false;
        for part in parts {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Interpolation(inner) => {
                    let value = self.eval(inner);
                    sensitive |= value.contains_sensitive();
                    match value.unmark().0 {
                        Value::Unknown(ty) if !ty.is_collection() || ty.is_any() => known = false,
                        Value::Null => {
                            self.error(
                                Diagnostic::error(codes::TYPE_MISMATCH, "cannot interpolate null into a string")
                                    .at(inner.span, "this is null")
                                    .with_help("give a default with coalesce(value, \"\")"),
                            );
                            known = false;
                        }
                        unmarked => match unmarked.to_template_string() {
                            Some(text) => out.push_str(&text),
                            None => {
                                self.error(
                                    Diagnostic::error(
                                        codes::TYPE_MISMATCH,
                                        format!("cannot interpolate a {} into a string", unmarked.type_of()),
                                    )
                                    .at(inner.span, "not a string, number or bool")
                                    .with_help("use join(\", \", list) or jsonencode(value) to turn it into text"),
                                );
                                known = false;
                            }
                        },
                    }
                }
                TemplatePart::If { condition, then, otherwise } => {
                    let condition_value = self.eval(condition);
                    let then_value = self.template(then);
                    let otherwise_value = self.template(otherwise);
                    match condition_value.unmark().0 {
                        Value::Bool(true) => out.push_str(then_value.as_str().unwrap_or_default()),
                        Value::Bool(false) => out.push_str(otherwise_value.as_str().unwrap_or_default()),
                        _ => known = false,
                    }
                }
                TemplatePart::For { key_var, value_var, collection, body } => {
                    let collection_value = self.eval(collection);
                    let pairs = self.iteration_pairs(&collection_value, collection.span);
                    match pairs {
                        Some(pairs) => {
                            for (key, value) in pairs {
                                self.spend(1, collection.span);
                                if self.exhausted {
                                    known = false;
                                    break;
                                }
                                let pushed = self.bind(key_var.as_ref().map(|ident| ident.name.as_str()), &value_var.name, key, value);
                                let piece = self.template(body);
                                self.iterators.truncate(self.iterators.len() - pushed);
                                match piece.as_str() {
                                    Some(text) => out.push_str(text),
                                    None => known = false,
                                }
                            }
                        }
                        None => {
                            let element = collection_value.type_of().element().unwrap_or(Type::Any);
                            let pushed = self.bind(
                                key_var.as_ref().map(|ident| ident.name.as_str()),
                                &value_var.name,
                                Value::unknown_any(),
                                Value::Unknown(element),
                            );
                            self.template(body);
                            self.iterators.truncate(self.iterators.len() - pushed);
                            known = false;
                        }
                    }
                }
            }
        }
        let value = if known { Value::String(out) } else { Value::Unknown(Type::String) };
        value.mark_if(sensitive)
    }

    fn bind(&mut self, key_var: Option<&str>, value_var: &str, key: Value, value: Value) -> usize {
        let mut pushed = 0;
        if let Some(key_var) = key_var {
            self.iterators.push((key_var.to_owned(), key));
            pushed += 1;
        }
        self.iterators.push((value_var.to_owned(), value));
        pushed + 1
    }

    /// (key, value) pairs of a known collection; `None` when it is unknown or
    /// not a collection (reported).
    fn iteration_pairs(&mut self, collection: &Value, span: Span) -> Option<Vec<(Value, Value)>> {
        let (unmarked, sensitive) = collection.unmark();
        match unmarked {
            Value::List(items) => {
                Some(items.iter().enumerate().map(|(index, item)| (Value::Number(index as f64), item.clone().mark_if(sensitive))).collect())
            }
            Value::Map(entries) => {
                Some(entries.iter().map(|(key, value)| (Value::String(key.clone()), value.clone().mark_if(sensitive))).collect())
            }
            Value::Unknown(ty) if ty.is_collection() => None,
            Value::Null => Some(Vec::new()),
            other => {
                self.error(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("cannot iterate over a {}", other.type_of()))
                        .at(span, "not a list or map"),
                );
                None
            }
        }
    }

    fn for_expression(&mut self, for_expr: &crate::ast::ForExpr) -> Value {
        let collection = self.eval(&for_expr.collection);
        let key_var = for_expr.key_var.as_ref().map(|ident| ident.name.as_str());
        let value_var = for_expr.value_var.name.as_str();
        let producing_object = for_expr.key_expr.is_some();
        match self.iteration_pairs(&collection, for_expr.collection.span) {
            Some(pairs) => {
                let mut list = Vec::new();
                let mut object = ValueMap::new();
                let mut grouped: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                let mut unknown = false;
                for (key, value) in pairs {
                    self.spend(1, for_expr.collection.span);
                    if self.exhausted {
                        return Value::unknown_any();
                    }
                    let pushed = self.bind(key_var, value_var, key, value);
                    let include = match &for_expr.condition {
                        Some(condition) => match self.eval(condition).unmark().0 {
                            Value::Bool(flag) => *flag,
                            Value::Unknown(_) => {
                                unknown = true;
                                false
                            }
                            other => {
                                self.error(
                                    Diagnostic::error(
                                        codes::TYPE_MISMATCH,
                                        format!("a `for` filter must be a bool, not {}", other.type_of()),
                                    )
                                    .at(condition.span, "not a bool"),
                                );
                                false
                            }
                        },
                        None => true,
                    };
                    if include {
                        let produced = self.eval(&for_expr.value_expr);
                        match &for_expr.key_expr {
                            Some(key_expr) => {
                                let key_value = self.eval(key_expr);
                                match key_value.to_template_string() {
                                    Some(key) if for_expr.grouping => grouped.entry(key).or_default().push(produced),
                                    Some(key) => {
                                        if object.insert(key.clone(), produced).is_some() {
                                            self.error(
                                                Diagnostic::error(codes::INVALID_INDEX, format!("the key \"{key}\" is produced twice"))
                                                    .at(key_expr.span, "duplicate key")
                                                    .with_help("add `...` after the value to group values by key"),
                                            );
                                        }
                                    }
                                    None => unknown = true,
                                }
                            }
                            None => list.push(produced),
                        }
                    }
                    self.iterators.truncate(self.iterators.len() - pushed);
                }
                if unknown {
                    let element =
                        if producing_object { unify(object.values().map(Value::type_of)) } else { unify(list.iter().map(Value::type_of)) };
                    return Value::Unknown(if producing_object { Type::map(element) } else { Type::list(element) });
                }
                if producing_object {
                    if for_expr.grouping {
                        Value::Map(grouped.into_iter().map(|(key, values)| (key, Value::List(values))).collect())
                    } else {
                        Value::Map(object)
                    }
                } else {
                    Value::List(list)
                }
            }
            None => {
                let collection_type = collection.type_of();
                let element = collection_type.element().unwrap_or(Type::Any);
                let key_type = if collection_type.is_mapping() && !collection_type.is_any() { Type::String } else { Type::Number };
                let pushed = self.bind(key_var, value_var, Value::Unknown(key_type), Value::Unknown(element));
                if let Some(condition) = &for_expr.condition {
                    self.eval(condition);
                }
                let produced = self.eval(&for_expr.value_expr);
                if let Some(key_expr) = &for_expr.key_expr {
                    self.eval(key_expr);
                }
                self.iterators.truncate(self.iterators.len() - pushed);
                Value::Unknown(if producing_object { Type::map(produced.type_of()) } else { Type::list(produced.type_of()) })
            }
        }
    }

    fn call(&mut self, expr: &Expr, name: &str, name_span: Span, args: &[Expr], expand_final: bool) -> Value {
        let mut values: Vec<Value> = args.iter().map(|arg| self.eval(arg)).collect();
        if functions::signature(name).is_none() {
            return self.error(
                Diagnostic::error(codes::UNKNOWN_FUNCTION, format!("there is no function named `{name}`"))
                    .at(name_span, "unknown function")
                    .with_help(
                        did_you_mean(name, functions::names())
                            .unwrap_or_else(|| "see `mlops explain unknown-function` for the built-in functions".to_owned()),
                    ),
            );
        }
        let mut arg_spans: Vec<Span> = args.iter().map(|arg| arg.span).collect();
        if expand_final {
            if let Some(last) = values.pop() {
                let last_span = arg_spans.pop().unwrap_or(expr.span);
                match last.unmark().0 {
                    Value::List(items) => {
                        values.extend(items.iter().cloned());
                        arg_spans.extend(items.iter().map(|_| last_span));
                    }
                    _ => return Value::unknown_any(),
                }
            }
        }
        let context = CallContext { module_directory: &self.scope.module_directory, files: &*self.scope.files };
        match functions::call(name, &values, &context) {
            Ok(value) => value,
            Err(CallError::UnknownFunction) => Value::unknown_any(),
            Err(CallError::ArgumentCount { signature, given }) => self.error(
                Diagnostic::error(
                    codes::WRONG_ARGUMENT_COUNT,
                    format!("`{name}` called with {given} argument{}", if given == 1 { "" } else { "s" }),
                )
                .at(expr.span, "wrong number of arguments")
                .with_help(format!("the signature is `{signature}`")),
            ),
            Err(CallError::ArgumentType { index, expected, found }) => self.error(
                Diagnostic::error(codes::TYPE_MISMATCH, format!("argument {} of `{name}` must be {expected}, not {found}", index + 1))
                    .at(arg_spans.get(index).copied().unwrap_or(expr.span), format!("this is {found}"))
                    .with_help(format!("the signature is `{}`", functions::signature(name).unwrap_or(name))),
            ),
            Err(CallError::ArgumentValue { index, message }) => self.error(
                Diagnostic::error(codes::INVALID_FUNCTION_ARGUMENT, format!("`{name}` cannot use this value: {message}"))
                    .at(arg_spans.get(index).copied().unwrap_or(expr.span), "invalid value")
                    .with_help(format!("the signature is `{}`", functions::signature(name).unwrap_or(name))),
            ),
        }
    }

    fn unary(&mut self, operator: UnaryOperator, operand: &Expr) -> Value {
        let value = self.eval(operand);
        let (unmarked, sensitive) = value.unmark();
        let result = match (operator, unmarked) {
            (UnaryOperator::Neg, Value::Number(number)) => Value::Number(-number),
            (UnaryOperator::Not, Value::Bool(flag)) => Value::Bool(!flag),
            (UnaryOperator::Neg, Value::Unknown(Type::Number | Type::Any)) => Value::Unknown(Type::Number),
            (UnaryOperator::Not, Value::Unknown(Type::Bool | Type::Any)) => Value::Unknown(Type::Bool),
            (operator, other) => {
                let wanted = if operator == UnaryOperator::Neg { "number" } else { "bool" };
                return self.error(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("`{}` needs a {wanted}, not {}", operator.as_str(), other.type_of()))
                        .at(operand.span, format!("this is {}", other.type_of())),
                );
            }
        };
        result.mark_if(sensitive)
    }

    fn binary(&mut self, operator: BinaryOperator, left: &Expr, right: &Expr) -> Value {
        let left_value = self.eval(left);
        let right_value = self.eval(right);
        let sensitive = left_value.contains_sensitive() || right_value.contains_sensitive();
        let (left_unmarked, right_unmarked) = (left_value.unmark().0, right_value.unmark().0);
        use BinaryOperator::*;
        let operand_type = match operator {
            Plus | Minus | Mul | Div | Mod | Less | LessEq | Greater | GreaterEq => Some(Type::Number),
            And | Or => Some(Type::Bool),
            Eq | NotEq => None,
        };
        if let Some(expected) = &operand_type {
            let mut failed = false;
            for (value, expr) in [(left_unmarked, left), (right_unmarked, right)] {
                let found = value.type_of();
                // Known numeric strings convert, as in Terraform; anything else must already fit.
                let numeric_string = *expected == Type::Number && value.as_str().is_some_and(|text| text.trim().parse::<f64>().is_ok());
                if !expected.accepts(&found) && !numeric_string {
                    failed = true;
                    let help = (*expected == Type::Number && found == Type::String).then(|| "convert it with tonumber(...)".to_owned());
                    self.error(
                        Diagnostic::error(codes::TYPE_MISMATCH, format!("`{}` needs {expected} operands, not {found}", operator.as_str()))
                            .at(expr.span, format!("this is {found}"))
                            .with_optional_help(help),
                    );
                }
            }
            if failed {
                return Value::unknown_any();
            }
        }
        let result_type = match operator {
            Plus | Minus | Mul | Div | Mod => Type::Number,
            _ => Type::Bool,
        };
        if !left_unmarked.is_wholly_known() || !right_unmarked.is_wholly_known() {
            // `false && unknown` and `true || unknown` are still known.
            let short_circuit = match (operator, left_unmarked, right_unmarked) {
                (And, Value::Bool(false), _) | (And, _, Value::Bool(false)) => Some(false),
                (Or, Value::Bool(true), _) | (Or, _, Value::Bool(true)) => Some(true),
                _ => None,
            };
            return short_circuit.map_or(Value::Unknown(result_type), Value::Bool).mark_if(sensitive);
        }
        let number =
            |value: &Value| value.as_number().or_else(|| value.as_str().and_then(|text| text.trim().parse().ok())).unwrap_or(f64::NAN);
        let (l, r) = (number(left_unmarked), number(right_unmarked));
        let result = match operator {
            Plus => Value::Number(l + r),
            Minus => Value::Number(l - r),
            Mul => Value::Number(l * r),
            Div | Mod if r == 0.0 => {
                return self.error(Diagnostic::error(codes::INVALID_FUNCTION_ARGUMENT, "division by zero").at(right.span, "this is zero"))
            }
            Div => Value::Number(l / r),
            Mod => Value::Number(l % r),
            Less => Value::Bool(l < r),
            LessEq => Value::Bool(l <= r),
            Greater => Value::Bool(l > r),
            GreaterEq => Value::Bool(l >= r),
            And => Value::Bool(left_unmarked.as_bool() == Some(true) && right_unmarked.as_bool() == Some(true)),
            Or => Value::Bool(left_unmarked.as_bool() == Some(true) || right_unmarked.as_bool() == Some(true)),
            Eq => Value::Bool(functions::values_equal(left_unmarked, right_unmarked)),
            NotEq => Value::Bool(!functions::values_equal(left_unmarked, right_unmarked)),
        };
        result.mark_if(sensitive)
    }

    /// Evaluates a reference such as `dataset.transactions.version`.
    fn reference(&mut self, expr: &Expr) -> Value {
        let (root_name, root_span, steps): (&str, Span, &[TraversalStep]) = match &expr.kind {
            ExprKind::Variable(name) => (name, expr.span, &[]),
            ExprKind::Traversal { root, steps } => match &root.kind {
                ExprKind::Variable(name) => (name, root.span, steps.as_slice()),
                _ => {
                    let base = self.eval(root);
                    return self.apply_steps(base, steps, Flavor::Plain);
                }
            },
            _ => return Value::unknown_any(),
        };
        if let Some((_, value)) = self.iterators.iter().rev().find(|(name, _)| name == root_name) {
            let value = value.clone();
            return self.apply_steps(value, steps, Flavor::Plain);
        }
        let name_step = |index: usize| -> Option<(&str, Span)> {
            match steps.get(index) {
                Some(TraversalStep { kind: StepKind::GetAttr(name), span }) => Some((name.as_str(), *span)),
                _ => None,
            }
        };
        let whole = |upto: usize| -> Span { steps.get(upto).map_or(root_span, |step| root_span.to(step.span)) };
        match root_name {
            "var" | "local" => {
                let Some((name, _)) = name_step(0) else {
                    return self.error(
                        Diagnostic::error(codes::INVALID_REFERENCE, format!("`{root_name}` must be followed by a name"))
                            .at(root_span, "incomplete reference")
                            .with_help(format!("write `{root_name}.NAME`")),
                    );
                };
                let (declared, values, noun) = if root_name == "var" {
                    (&self.scope.declared_variables, &self.scope.variables, "variable")
                } else {
                    (&self.scope.declared_locals, &self.scope.locals, "local value")
                };
                let value = match values.get(name) {
                    Some(value) => value.clone(),
                    None if declared.iter().any(|declared| declared == name) => Value::unknown_any(),
                    None => {
                        let help = did_you_mean(name, declared.iter().map(String::as_str)).unwrap_or_else(|| {
                            if root_name == "var" {
                                format!("declare it: variable \"{name}\" {{ type = string }}")
                            } else {
                                format!("declare it in a locals block: locals {{ {name} = ... }}")
                            }
                        });
                        return self.error(
                            Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("there is no {noun} named `{name}`"))
                                .at(whole(0), format!("no such {noun}"))
                                .with_help(help),
                        );
                    }
                };
                self.apply_steps(value, &steps[1..], Flavor::Plain)
            }
            "module" => {
                let Some((name, _)) = name_step(0) else {
                    return self.error(
                        Diagnostic::error(codes::INVALID_REFERENCE, "`module` must be followed by a module name")
                            .at(root_span, "incomplete reference")
                            .with_help("write `module.NAME.OUTPUT`"),
                    );
                };
                let value = match self.scope.modules.get(name) {
                    Some(value) => value.clone(),
                    None if self.scope.declared_modules.iter().any(|declared| declared == name) => Value::unknown_any(),
                    None => {
                        return self.error(
                            Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("there is no module named `{name}`"))
                                .at(whole(0), "no such module")
                                .with_optional_help(did_you_mean(name, self.scope.declared_modules.iter().map(String::as_str))),
                        )
                    }
                };
                if let (Some((output, span)), Some(outputs)) = (name_step(1), value.as_map()) {
                    if !outputs.contains_key(output) {
                        return self.error(
                            Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("module `{name}` has no output named `{output}`"))
                                .at(span, "no such output")
                                .with_help(did_you_mean(output, outputs.keys().map(String::as_str)).unwrap_or_else(|| {
                                    format!(
                                        "its outputs are {}",
                                        if outputs.is_empty() { "none".to_owned() } else { one_of(&outputs.keys().collect::<Vec<_>>()) }
                                    )
                                })),
                        );
                    }
                }
                self.apply_steps(value, &steps[1..], Flavor::Plain)
            }
            "data" => {
                let (Some((kind, kind_span)), Some((name, _))) = (name_step(0), name_step(1)) else {
                    return self.error(
                        Diagnostic::error(codes::INVALID_REFERENCE, "`data` must be followed by a kind and a name")
                            .at(root_span, "incomplete reference")
                            .with_help("write `data.KIND.NAME.ATTRIBUTE`"),
                    );
                };
                if !self.schemas.data.contains_key(kind) {
                    return self.error(
                        Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("there is no data source kind `{kind}`"))
                            .at(kind_span, "unknown data kind")
                            .with_optional_help(did_you_mean(kind, self.schemas.data.keys().map(String::as_str))),
                    );
                }
                let value = match self.scope.data.get(&(kind.to_owned(), name.to_owned())) {
                    Some(value) => value.clone(),
                    None if self.scope.declared_data.get(kind).is_some_and(|names| names.iter().any(|declared| declared == name)) => {
                        Value::unknown_any()
                    }
                    None => {
                        return self.error(
                            Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("there is no data source `data.{kind}.{name}`"))
                                .at(whole(1), "not declared")
                                .with_optional_help(did_you_mean(
                                    name,
                                    self.scope.declared_data.get(kind).into_iter().flatten().map(String::as_str),
                                )),
                        )
                    }
                };
                self.apply_steps(value, &steps[2..], Flavor::Plain)
            }
            "each" => match &self.context.each {
                Some((key, value)) => match name_step(0) {
                    Some(("key", _)) => {
                        let key = key.clone();
                        self.apply_steps(key, &steps[1..], Flavor::Plain)
                    }
                    Some(("value", _)) => {
                        let value = value.clone();
                        self.apply_steps(value, &steps[1..], Flavor::Plain)
                    }
                    _ => self.error(
                        Diagnostic::error(codes::INVALID_REFERENCE, "`each` has only `each.key` and `each.value`")
                            .at(whole(0), "not available"),
                    ),
                },
                None => self.error(
                    Diagnostic::error(
                        codes::REFERENCE_OUT_OF_CONTEXT,
                        format!("`each` is only available in a block with `for_each`, not in {}", self.context.describe),
                    )
                    .at(whole(0), "no `for_each` here")
                    .with_help("add `for_each = ...` to the resource, or use a value that exists here"),
                ),
            },
            "count" => match (&self.context.count_index, name_step(0)) {
                (Some(index), Some(("index", _))) => {
                    let index = index.clone();
                    self.apply_steps(index, &steps[1..], Flavor::Plain)
                }
                (Some(_), _) => {
                    self.error(Diagnostic::error(codes::INVALID_REFERENCE, "`count` has only `count.index`").at(whole(0), "not available"))
                }
                (None, _) => self.error(
                    Diagnostic::error(
                        codes::REFERENCE_OUT_OF_CONTEXT,
                        format!("`count.index` is only available in a block with `count`, not in {}", self.context.describe),
                    )
                    .at(whole(0), "no `count` here")
                    .with_help("add `count = N` to the resource"),
                ),
            },
            "self" => match &self.context.self_value {
                Some(value) => {
                    let value = value.clone();
                    self.apply_steps(value, steps, Flavor::Plain)
                }
                None => self.error(
                    Diagnostic::error(
                        codes::REFERENCE_OUT_OF_CONTEXT,
                        format!(
                            "`self` is only available in a dataset's `check` conditions and a policy with `resource`, not in {}",
                            self.context.describe
                        ),
                    )
                    .at(root_span, "no `self` here")
                    .with_help("refer to the resource by its address, such as dataset.NAME"),
                ),
            },
            "change" | "plan" => {
                let value = if root_name == "change" { &self.context.change } else { &self.context.plan };
                match value {
                    Some(value) => {
                        let value = value.clone();
                        self.apply_steps(value, steps, Flavor::Plain)
                    }
                    None => self.error(
                        Diagnostic::error(
                            codes::REFERENCE_OUT_OF_CONTEXT,
                            format!("`{root_name}` is only available in a policy's condition, not in {}", self.context.describe),
                        )
                        .at(root_span, format!("no `{root_name}` here"))
                        .with_help(if root_name == "change" {
                            "`change` is what the plan does to the resource a policy with `resource` checks"
                        } else {
                            "`plan` is the plan as a whole, which only a policy sees"
                        }),
                    ),
                }
            }
            "row" => match &self.context.row {
                Some(value) => {
                    let value = value.clone();
                    self.apply_steps(value, steps, Flavor::Row)
                }
                None => self.error(
                    Diagnostic::error(
                        codes::REFERENCE_OUT_OF_CONTEXT,
                        format!("`row` is only available in a feature's `expr`, not in {}", self.context.describe),
                    )
                    .at(root_span, "no `row` here"),
                ),
            },
            "path" => {
                let value = match name_step(0) {
                    Some(("module", _)) => Value::String(self.scope.module_directory.display().to_string()),
                    Some(("root", _)) => Value::String(self.scope.root_directory.display().to_string()),
                    Some(("cwd", _)) => Value::String(std::env::current_dir().map(|path| path.display().to_string()).unwrap_or_default()),
                    _ => {
                        return self.error(
                            Diagnostic::error(codes::INVALID_REFERENCE, "`path` has `path.module`, `path.root` and `path.cwd`")
                                .at(whole(0), "not available"),
                        )
                    }
                };
                self.apply_steps(value, &steps[1..], Flavor::Plain)
            }
            kind if self.schemas.resources.get(kind).is_some_and(|schema| schema.declarable) => {
                let Some((name, _)) = name_step(0) else {
                    return self.error(
                        Diagnostic::error(codes::INVALID_REFERENCE, format!("`{kind}` must be followed by a resource name"))
                            .at(root_span, "incomplete reference")
                            .with_help(format!("write `{kind}.NAME`")),
                    );
                };
                let value = match self.scope.resources.get(&(kind.to_owned(), name.to_owned())) {
                    Some(value) => value.clone(),
                    None if self.scope.declared_resources.get(kind).is_some_and(|names| names.iter().any(|declared| declared == name)) => {
                        Value::Unknown(Type::resource(kind))
                    }
                    None => {
                        let same_kind = self.scope.declared_resources.get(kind).into_iter().flatten().map(String::as_str);
                        let mut help = crate::suggest::closest(name, same_kind).map(|closest| format!("did you mean `{kind}.{closest}`?"));
                        if help.is_none() {
                            help = self
                                .scope
                                .declared_resources
                                .iter()
                                .find(|(_, names)| names.iter().any(|declared| declared == name))
                                .map(|(other_kind, _)| format!("there is a `{other_kind}.{name}`; did you mean that?"));
                        }
                        return self.error(
                            Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("there is no {kind} named `{name}`"))
                                .at(whole(0), "not declared")
                                .with_help(help.unwrap_or_else(|| format!("declare it with a `{kind} \"{name}\" {{ ... }}` block"))),
                        );
                    }
                };
                self.apply_steps(value, &steps[1..], Flavor::Plain)
            }
            other => {
                let mut candidates: Vec<&str> = ROOT_NAMES.to_vec();
                candidates.extend(self.schemas.declarable_kinds());
                candidates.extend(self.iterators.iter().map(|(name, _)| name.as_str()));
                let help = did_you_mean(other, candidates.iter().copied())
                    .unwrap_or_else(|| "references start with var, local, module, data or a resource kind; strings need quotes".to_owned());
                self.error(
                    Diagnostic::error(codes::UNKNOWN_REFERENCE, format!("unknown name `{other}`"))
                        .at(root_span, "not a known name")
                        .with_help(help),
                )
            }
        }
    }

    fn apply_steps(&mut self, mut value: Value, steps: &[TraversalStep], mut flavor: Flavor) -> Value {
        for (index, step) in steps.iter().enumerate() {
            let (unmarked, sensitive) = value.clone().into_unmarked();
            if matches!(unmarked, Value::Unknown(Type::Any)) && !matches!(step.kind, StepKind::AttrSplat | StepKind::FullSplat) {
                return Value::unknown_any().mark_if(sensitive);
            }
            value = match &step.kind {
                StepKind::GetAttr(name) => {
                    let (next, next_flavor) = self.get_attribute(unmarked, name, step.span, &flavor);
                    flavor = next_flavor;
                    next
                }
                StepKind::Index(index_expr) => {
                    let key = self.eval(index_expr);
                    flavor = Flavor::Plain;
                    self.index(unmarked, &key, index_expr.span)
                }
                StepKind::AttrSplat | StepKind::FullSplat => {
                    let rest = &steps[index + 1..];
                    let items: Vec<Value> = match unmarked {
                        Value::List(items) => items,
                        Value::Null => Vec::new(),
                        Value::Unknown(ty) => {
                            let element = ty.element().unwrap_or(ty.clone());
                            let projected = self.apply_steps(Value::Unknown(element), rest, flavor.clone());
                            return Value::Unknown(Type::list(projected.type_of())).mark_if(sensitive);
                        }
                        single => vec![single],
                    };
                    let projected: Vec<Value> = items.into_iter().map(|item| self.apply_steps(item, rest, flavor.clone())).collect();
                    return Value::List(projected).mark_if(sensitive);
                }
            }
            .mark_if(sensitive);
        }
        value
    }

    fn get_attribute(&mut self, value: Value, name: &str, span: Span, flavor: &Flavor) -> (Value, Flavor) {
        match value {
            Value::Resource(resource) => {
                // An attribute read back as metrics (a training's `metrics`)
                // is known only once the run has reported them.
                let reads_metrics = self
                    .schemas
                    .kind(&resource.kind, resource.is_data)
                    .and_then(|schema| schema.body.attributes.get(name))
                    .is_some_and(|attribute| attribute.reads_as.as_deref() == Some("metrics"));
                let next_flavor = if reads_metrics { Flavor::Metrics { training: resource.address.clone() } } else { Flavor::Plain };
                match resource.attributes.get(name) {
                    Some(found) => (found.clone(), next_flavor),
                    None => {
                        let type_name = if resource.is_data { crate::types::data_type_name(&resource.kind) } else { resource.kind.clone() };
                        (self.unknown_resource_attribute(&type_name, &resource.address, name, span), Flavor::Plain)
                    }
                }
            }
            Value::Unknown(Type::Resource(kinds)) => {
                let attribute =
                    kinds.iter().find_map(|kind| self.schemas.of_reference_type(kind).and_then(|schema| schema.body.attributes.get(name)));
                let block =
                    kinds.iter().find_map(|kind| self.schemas.of_reference_type(kind).and_then(|schema| schema.body.blocks.get(name)));
                match attribute {
                    None if block.is_some() => (Value::Unknown(block.map(|block| block.value_type()).unwrap_or(Type::Any)), Flavor::Plain),
                    Some(attribute) if attribute.reads_as.as_deref() == Some("metrics") => {
                        (Value::Unknown(Type::map(Type::Number)), Flavor::Plain)
                    }
                    Some(attribute) => (Value::Unknown(attribute.ty.clone()), Flavor::Plain),
                    None => {
                        let kind = kinds.first().cloned().unwrap_or_default();
                        (self.unknown_resource_attribute(&kind, &kind, name, span), Flavor::Plain)
                    }
                }
            }
            Value::Map(entries) => match entries.get(name) {
                Some(found) => (found.clone(), Flavor::Plain),
                None => (self.missing_key(name, entries.keys().map(String::as_str).collect(), span, flavor), Flavor::Plain),
            },
            Value::Unknown(Type::Object(fields)) => match fields.get(name) {
                Some(field) => (Value::Unknown(field.clone()), Flavor::Plain),
                None => (self.missing_key(name, fields.keys().map(String::as_str).collect(), span, flavor), Flavor::Plain),
            },
            Value::Unknown(Type::Map(element)) => (Value::Unknown(*element), Flavor::Plain),
            Value::Unknown(Type::Any) => (Value::unknown_any(), Flavor::Plain),
            Value::List(items) if items.iter().any(|item| matches!(item.unmark().0, Value::Resource(_))) => (
                self.error(
                    Diagnostic::error(
                        codes::INVALID_REFERENCE,
                        format!("this refers to {} instances; `.{name}` needs one of them", items.len()),
                    )
                    .at(span, "several instances")
                    .with_help(format!("pick one with [INDEX] (such as [0].{name}), or all with [*].{name}")),
                ),
                Flavor::Plain,
            ),
            Value::Unknown(Type::List(element)) if matches!(*element, Type::Resource(_)) => (
                self.error(
                    Diagnostic::error(codes::INVALID_REFERENCE, format!("this refers to several instances; `.{name}` needs one of them"))
                        .at(span, "several instances")
                        .with_help(format!("pick one with [INDEX] (such as [0].{name}), or all with [*].{name}")),
                ),
                Flavor::Plain,
            ),
            Value::Null => (
                self.error(
                    Diagnostic::error(codes::INVALID_REFERENCE, format!("cannot read `{name}` of null")).at(span, "the value here is null"),
                ),
                Flavor::Plain,
            ),
            other => {
                let found = other.type_of();
                (
                    self.error(
                        Diagnostic::error(codes::TYPE_MISMATCH, format!("cannot read attribute `{name}` of a {found}"))
                            .at(span, format!("{found} has no attributes")),
                    ),
                    Flavor::Plain,
                )
            }
        }
    }

    /// `kind` is a reference type name: a resource kind or `data.KIND`.
    fn unknown_resource_attribute(&mut self, kind: &str, address: &str, name: &str, span: Span) -> Value {
        let attributes: Vec<&str> = self
            .schemas
            .of_reference_type(kind)
            .map(|schema| schema.body.attributes.keys().map(String::as_str).chain(schema.body.blocks.keys().map(String::as_str)).collect())
            .unwrap_or_default();
        let help = did_you_mean(name, attributes.iter().copied())
            .unwrap_or_else(|| format!("`{kind}` has {}; see `mlops schema {kind}`", one_of(&attributes)));
        self.error(
            Diagnostic::error(codes::UNKNOWN_ATTRIBUTE_REFERENCE, format!("`{address}` has no attribute `{name}`"))
                .at(span, format!("not an attribute of {kind}"))
                .with_help(help),
        )
    }

    fn missing_key(&mut self, name: &str, keys: Vec<&str>, span: Span, flavor: &Flavor) -> Value {
        let diagnostic = match flavor {
            Flavor::Row => Diagnostic::error(codes::UNKNOWN_COLUMN, format!("the dataset has no column `{name}`"))
                .at(span, "not in the dataset schema")
                .with_help(did_you_mean(name, keys.iter().copied()).unwrap_or_else(|| format!("its columns are {}", one_of(&keys)))),
            Flavor::Metrics { training } => {
                Diagnostic::error(codes::UNDECLARED_METRIC, format!("`{training}` does not declare the metric `{name}`"))
                    .at(span, "not in its `metrics` list")
                    .with_help(match did_you_mean(name, keys.iter().copied()) {
                        Some(suggestion) => suggestion,
                        None if keys.is_empty() => format!("declare it: metrics = [\"{name}\"] in {training}"),
                        None => format!("it declares {}; add \"{name}\" to its `metrics` list to gate on it", one_of(&keys)),
                    })
            }
            Flavor::Plain => Diagnostic::error(codes::UNKNOWN_ATTRIBUTE_REFERENCE, format!("this object has no attribute `{name}`"))
                .at(span, "no such attribute")
                .with_help(did_you_mean(name, keys.iter().copied()).unwrap_or_else(|| {
                    if keys.is_empty() {
                        "the object is empty".to_owned()
                    } else {
                        format!("its attributes are {}", one_of(&keys))
                    }
                })),
        };
        self.error(diagnostic)
    }

    fn index(&mut self, collection: Value, key: &Value, span: Span) -> Value {
        let key_sensitive = key.contains_sensitive();
        let key = key.unmark().0;
        let result = match (&collection, key) {
            (_, Value::Unknown(_)) => Value::Unknown(collection.type_of().element().unwrap_or(Type::Any)),
            (Value::List(items), Value::Number(number)) => {
                if number.fract() != 0.0 || *number < 0.0 || *number as usize >= items.len() {
                    return self.error(
                        Diagnostic::error(
                            codes::INVALID_INDEX,
                            format!(
                                "index {} is out of range for a list of {} element{}",
                                format_number(*number),
                                items.len(),
                                if items.len() == 1 { "" } else { "s" }
                            ),
                        )
                        .at(span, "no such element")
                        .with_help(if items.is_empty() {
                            "the list is empty".to_owned()
                        } else {
                            format!("use an index from 0 to {}", items.len() - 1)
                        }),
                    );
                }
                items[*number as usize].clone()
            }
            (Value::Map(entries), key) if key.to_template_string().is_some() => {
                let key_text = key.to_template_string().unwrap_or_default();
                match entries.get(&key_text) {
                    Some(found) => found.clone(),
                    None => {
                        return self.error(
                            Diagnostic::error(codes::INVALID_INDEX, format!("there is no key \"{key_text}\""))
                                .at(span, "no such key")
                                .with_help(did_you_mean(&key_text, entries.keys().map(String::as_str)).unwrap_or_else(|| {
                                    let keys: Vec<&String> = entries.keys().collect();
                                    if keys.is_empty() {
                                        "the map is empty".to_owned()
                                    } else {
                                        format!("its keys are {}", one_of(&keys))
                                    }
                                })),
                        )
                    }
                }
            }
            (Value::Unknown(Type::List(element) | Type::Set(element) | Type::Map(element)), _) => Value::Unknown((**element).clone()),
            (Value::Unknown(ty), _) if ty.is_collection() => Value::Unknown(ty.element().unwrap_or(Type::Any)),
            (Value::Unknown(Type::Resource(kinds)), _) if kinds.iter().any(|kind| kind == "model") => Value::unknown_any(),
            (other, key) => {
                return self.error(
                    Diagnostic::error(codes::INVALID_INDEX, format!("cannot index a {} with a {}", other.type_of(), key.type_of()))
                        .at(span, "invalid index"),
                )
            }
        };
        result.mark_if(key_sensitive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    fn eval_text(text: &str) -> (Value, Vec<String>) {
        let source = format!("x = {text}\n");
        let body = crate::syntax::parse_file(FileId(0), &source).expect("parses");
        let scope = Scope { declared_variables: vec!["n".into()], ..Scope::default() };
        let mut scope = scope;
        scope.variables.insert("n".into(), Value::Unknown(Type::Number));
        let context = Context { describe: "a test", ..Context::default() };
        let mut diagnostics = Diagnostics::default();
        let value = Evaluator::new(&scope, &context, Schemas::standard(), &mut diagnostics).eval(&body.attributes[0].value);
        (value, diagnostics.iter().map(|diagnostic| format!("{}: {}", diagnostic.code.name, diagnostic.message)).collect())
    }

    #[test]
    fn evaluates_known_expressions() {
        assert_eq!(eval_text("1 + 2 * 3").0, Value::Number(7.0));
        assert_eq!(eval_text("\"a-${1 + 1}\"").0, Value::String("a-2".into()));
        assert_eq!(eval_text("[for x in [1, 2] : x * 10]").0, Value::List(vec![Value::Number(10.0), Value::Number(20.0)]));
        assert_eq!(eval_text("{ a = 1 }.a").0, Value::Number(1.0));
        assert_eq!(eval_text("true ? \"y\" : \"n\"").0, Value::String("y".into()));
    }

    #[test]
    fn unknowns_keep_their_types_and_mistakes_are_reported() {
        assert_eq!(eval_text("var.n + 1").0, Value::Unknown(Type::Number));
        assert_eq!(eval_text("var.n > 1 && false").0, Value::Bool(false));
        let (_, diagnostics) = eval_text("var.nn");
        assert_eq!(diagnostics, ["unknown-reference: there is no variable named `nn`"]);
        let (_, diagnostics) = eval_text("\"a\" + 1");
        assert_eq!(diagnostics, ["type-mismatch: `+` needs number operands, not string"]);
        let (_, diagnostics) = eval_text("[1][3]");
        assert_eq!(diagnostics, ["invalid-index: index 3 is out of range for a list of 1 element"]);
    }
}
