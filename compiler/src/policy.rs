//! Policies: rules written in the language over every resource of a kind,
//! or over the plan as a whole, with an enforcement level.
//!
//! The checker type-checks each `policy` block in its module's scope and
//! keeps it as a [`PolicyProgram`]: the condition and message, and that
//! scope, so that it can be judged later against any resource of the
//! configuration (a module's policies apply to the whole tree). `validate`
//! judges every instance with `change` and `plan` unknown, and reports what
//! is already decided; `plan` judges again with both known (see the engine).
//! A violation points at the attribute that makes the condition false, not
//! only at the policy.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ast::{BinaryOperator, Body, Expr, ExprKind, UnaryOperator};
use crate::diagnostic::{codes, Diagnostic, Diagnostics};
use crate::eval::{Context, Evaluator, Scope};
use crate::schema::Schemas;
use crate::source::{FileId, SourceMap, Span};
use crate::types::Type;
use crate::value::{Value, ValueMap};

/// What a broken policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Validate and plan fail.
    Error,
    /// Shown; only `--warnings-as-errors` fails on it.
    Warning,
    /// Shown as advice; never fails.
    Advisory,
}

impl Enforcement {
    pub fn parse(text: &str) -> Option<Enforcement> {
        match text {
            "error" => Some(Enforcement::Error),
            "warning" => Some(Enforcement::Warning),
            "advisory" => Some(Enforcement::Advisory),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Error => "error",
            Enforcement::Warning => "warning",
            Enforcement::Advisory => "advisory",
        }
    }
}

/// The type of `change` in a policy: what the plan does to `self`.
pub fn change_type() -> Type {
    Type::Object([("action".to_owned(), Type::String), ("reasons".to_owned(), Type::list(Type::String))].into_iter().collect())
}

/// The type of `plan` in a policy.
pub fn plan_type() -> Type {
    let cost = Type::Object(
        [
            ("monthly_delta".to_owned(), Type::Number),
            ("monthly_delta_min".to_owned(), Type::Number),
            ("run".to_owned(), Type::Number),
            ("currency".to_owned(), Type::String),
        ]
        .into_iter()
        .collect(),
    );
    Type::Object(
        [
            ("creates".to_owned(), Type::Number),
            ("updates".to_owned(), Type::Number),
            ("replaces".to_owned(), Type::Number),
            ("deletes".to_owned(), Type::Number),
            ("forgets".to_owned(), Type::Number),
            ("destroy".to_owned(), Type::Bool),
            ("cost".to_owned(), cost),
        ]
        .into_iter()
        .collect(),
    )
}

/// A checked `policy` block, ready to be judged against resources.
#[derive(Debug, Clone)]
pub struct PolicyProgram {
    pub name: String,
    /// Module call names from the root: empty for the root module.
    pub module_path: Vec<String>,
    /// The resource kind it is about; `None` for a rule over the plan.
    pub kind: Option<String>,
    pub enforcement: Enforcement,
    pub description: Option<String>,
    /// The block header.
    pub header: Span,
    pub condition: Expr,
    pub error_message: Expr,
    /// The scope of the policy's module: its variables, locals and resources.
    pub scope: Arc<Scope>,
}

/// One thing a policy about a kind is judged against.
#[derive(Debug, Clone)]
pub struct PolicySubject {
    pub address: String,
    pub kind: String,
    /// The resource as configured (and, when planning, as planned).
    pub value: Value,
    /// What the plan does to it (`change`); unknown at validate.
    pub change: Value,
    /// Its block's header, when it is in the configuration (not when the
    /// plan deletes it).
    pub header: Option<Span>,
}

/// One policy's results, as plans list them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    pub name: String,
    /// `module.NAME...` of the module that declares it; empty for the root.
    pub module: String,
    /// Where it is written: `FILE:LINE`.
    pub source: String,
    pub enforcement: Enforcement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Subjects (or the plan) for which the condition holds.
    pub passed: usize,
    /// Subjects whose result is known only after apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<PolicyFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFailure {
    /// The resource's address; `None` for a rule over the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub message: String,
}

/// What one judgement found.
enum Verdict {
    Pass,
    Fail,
    Unknown,
    /// The condition could not be evaluated with known values: as good as
    /// false, with the reason.
    Error(String),
}

/// What a message built from a secret shows instead.
const SENSITIVE_MESSAGE: &str = "(the policy's error_message uses a sensitive value, so it is not shown)";

impl PolicyProgram {
    fn context(&self, subject: Option<&PolicySubject>, plan: &Value) -> Context {
        Context {
            self_value: subject.map(|subject| subject.value.clone()),
            change: subject.map(|subject| subject.change.clone()),
            plan: Some(plan.clone()),
            describe: "a policy",
            ..Context::default()
        }
    }

    fn evaluate(&self, expr: &Expr, context: &Context) -> Result<Value, String> {
        let mut diagnostics = Diagnostics::default();
        let value = Evaluator::new(&self.scope, context, Schemas::standard(), &mut diagnostics).eval(expr);
        let error = diagnostics.iter().find(|diagnostic| diagnostic.is_error()).map(|diagnostic| diagnostic.message.clone());
        match error {
            Some(message) => Err(message),
            None => Ok(value),
        }
    }

    fn judge(&self, context: &Context) -> Verdict {
        match self.evaluate(&self.condition, context) {
            Err(reason) => Verdict::Error(reason),
            Ok(value) => match value.unmark().0 {
                Value::Bool(true) => Verdict::Pass,
                Value::Bool(false) => Verdict::Fail,
                Value::Unknown(_) => Verdict::Unknown,
                Value::Null => Verdict::Error("the condition is null".to_owned()),
                other => Verdict::Error(format!("the condition is {}, not a bool", other.describe())),
            },
        }
    }

    fn message(&self, context: &Context) -> String {
        match self.evaluate(&self.error_message, context) {
            Ok(value) if value.contains_sensitive() => SENSITIVE_MESSAGE.to_owned(),
            Ok(value) => match value.unmark().0 {
                Value::String(text) => text.clone(),
                _ => "the condition is false".to_owned(),
            },
            Err(_) => "the condition is false".to_owned(),
        }
    }

    /// `module.a.module.b`, or empty for the root.
    pub fn module_address(&self) -> String {
        self.module_path.iter().map(|name| format!("module.{name}")).collect::<Vec<_>>().join(".")
    }

    /// The attribute of `self` to blame for a false condition: in `a || b`
    /// the last alternative (the usual form is `!when || requirement`), in
    /// `a && b` the first part that is false.
    fn blame(&self, expr: &Expr, context: &Context) -> Option<Vec<String>> {
        match &expr.kind {
            ExprKind::Parenthesis(inner) => self.blame(inner, context),
            ExprKind::Unary { operator: UnaryOperator::Not, operand } => self.blame(operand, context),
            ExprKind::Binary { operator: BinaryOperator::Or, left, right } => {
                self.blame(right, context).or_else(|| self.blame(left, context))
            }
            ExprKind::Binary { operator: BinaryOperator::And, left, right } => {
                let left_holds = matches!(self.evaluate(left, context).map(|value| value.unmark().0.as_bool()), Ok(Some(true)));
                if left_holds {
                    self.blame(right, context).or_else(|| self.blame(left, context))
                } else {
                    self.blame(left, context).or_else(|| self.blame(right, context))
                }
            }
            _ => self_paths(expr).into_iter().next(),
        }
    }
}

/// The attribute paths of `self` an expression reads, in order.
fn self_paths(expr: &Expr) -> Vec<Vec<String>> {
    let mut references = Vec::new();
    crate::check::collect_references(expr, &mut references);
    references
        .into_iter()
        .filter(|(path, _)| path.first().is_some_and(|(root, _)| root == "self") && path.len() > 1)
        .map(|(path, _)| path[1..].iter().map(|(name, _)| name.clone()).collect())
        .collect()
}

/// Where an attribute of a resource block is written, found by parsing the
/// block's file again (only for violations, so that checking keeps no spans
/// of every attribute of every resource).
pub(crate) struct AttributeLocator<'a> {
    sources: &'a SourceMap,
    parsed: HashMap<FileId, Option<Body>>,
}

impl<'a> AttributeLocator<'a> {
    pub(crate) fn new(sources: &'a SourceMap) -> AttributeLocator<'a> {
        AttributeLocator { sources, parsed: HashMap::new() }
    }

    /// The span of `path` inside the block whose header is `header`, or
    /// `None` when the block does not set it.
    pub(crate) fn locate(&mut self, header: Span, path: &[String]) -> Option<Span> {
        let sources = self.sources;
        let body = self
            .parsed
            .entry(header.file)
            .or_insert_with(|| crate::syntax::parse_file(header.file, &sources.get(header.file).text).ok())
            .as_ref()?;
        let mut body = &body.blocks.iter().find(|block| block.header_span() == header)?.body;
        for (index, name) in path.iter().enumerate() {
            if let Some(attribute) = body.attribute(name) {
                return Some(attribute.name.span.to(attribute.value.span));
            }
            let nested = body.blocks_named(name).next()?;
            if index + 1 == path.len() {
                return Some(nested.header_span());
            }
            body = &nested.body;
        }
        None
    }
}

/// The value at an attribute path of `self`, for the violation's label.
fn value_at(value: &Value, path: &[String]) -> Option<Value> {
    let mut current = value.clone();
    for name in path {
        let (unmarked, sensitive) = current.into_unmarked();
        let next = match unmarked {
            Value::Resource(resource) => resource.attributes.get(name).cloned()?,
            Value::Map(entries) => entries.get(name).cloned()?,
            Value::List(items) if items.len() == 1 => match items.into_iter().next()?.unmark().0 {
                Value::Map(entries) => entries.get(name).cloned()?,
                _ => return None,
            },
            _ => return None,
        };
        current = next.mark_if(sensitive);
    }
    Some(current)
}

/// `self` as a policy reads it: a single nested block that is not written
/// reads as its defaults (`self.resources.gpus` is 0 for a training with no
/// `resources` block), so that conditions need not guard against null.
fn policy_view(value: &Value) -> Value {
    let Value::Resource(resource) = value.unmark().0 else { return value.clone() };
    let Some(schema) = Schemas::standard().kind(&resource.kind, resource.is_data) else { return value.clone() };
    let mut attributes = resource.attributes.clone();
    fill_absent_blocks(&mut attributes, &schema.body);
    Value::Resource(Arc::new(crate::value::ResourceValue {
        address: resource.address.clone(),
        kind: resource.kind.clone(),
        is_data: resource.is_data,
        attributes,
    }))
}

fn fill_absent_blocks(attributes: &mut ValueMap, schema: &crate::schema::BlockSchema) {
    for nested in schema.blocks.values().filter(|nested| nested.labels.is_empty() && nested.max_items == Some(1)) {
        match attributes.get_mut(&nested.name) {
            Some(Value::Map(entries)) => fill_absent_blocks(entries, &nested.body),
            Some(Value::Null) | None => {
                attributes.insert(nested.name.clone(), nested.absent_value());
            }
            Some(_) => {}
        }
    }
}

/// Judges every policy: those about a kind against each subject of that
/// kind, the others once against `plan`. Returns each policy's results and
/// the diagnostics of its violations. `deciding` is false at validate,
/// where a condition that cannot be decided yet is left for plan.
pub fn judge_all(
    programs: &[PolicyProgram],
    subjects: &[PolicySubject],
    plan: &Value,
    sources: &SourceMap,
    deciding: bool,
) -> (Vec<PolicyResult>, Vec<Diagnostic>) {
    let judged_kinds: std::collections::HashSet<&str> = programs.iter().filter_map(|program| program.kind.as_deref()).collect();
    let viewed: Vec<PolicySubject> = subjects
        .iter()
        .filter(|subject| judged_kinds.contains(subject.kind.as_str()))
        .map(|subject| PolicySubject { value: policy_view(&subject.value), ..subject.clone() })
        .collect();
    let mut by_kind: HashMap<&str, Vec<&PolicySubject>> = HashMap::new();
    for subject in &viewed {
        by_kind.entry(subject.kind.as_str()).or_default().push(subject);
    }
    let mut locator = AttributeLocator::new(sources);
    let mut results = Vec::new();
    let mut diagnostics = Vec::new();
    for program in programs {
        let source = sources.get(program.header.file);
        let mut result = PolicyResult {
            name: program.name.clone(),
            module: program.module_address(),
            source: format!("{}:{}", source.display_path, source.line_column(program.header.start as usize).line),
            enforcement: program.enforcement,
            resource: program.kind.clone(),
            passed: 0,
            unknown: Vec::new(),
            failures: Vec::new(),
        };
        // A resource the plan deletes is no longer configured: only a
        // policy about what the plan does (one that reads `change`) judges it.
        let reads_change = program.reads(&["change"]);
        let judged: Vec<Option<&PolicySubject>> = match &program.kind {
            Some(kind) => by_kind
                .get(kind.as_str())
                .into_iter()
                .flatten()
                .filter(|subject| reads_change || !subject.is_removed())
                .map(|subject| Some(*subject))
                .collect(),
            None => vec![None],
        };
        for subject in judged {
            let context = program.context(subject, plan);
            let reason = match program.judge(&context) {
                Verdict::Pass => {
                    result.passed += 1;
                    continue;
                }
                Verdict::Unknown => {
                    result.unknown.push(subject.map_or_else(|| "the plan".to_owned(), |subject| subject.address.clone()));
                    continue;
                }
                Verdict::Fail => None,
                // At validate, a value the plan would give may be missing.
                Verdict::Error(_) if !deciding => continue,
                Verdict::Error(reason) => Some(reason),
            };
            let mut message = program.message(&context);
            if let Some(reason) = &reason {
                message = format!("{message} (the condition could not be evaluated: {reason})");
            }
            diagnostics.push(violation(program, subject, &context, &message, reason.is_some(), &mut locator, &result.source));
            result.failures.push(PolicyFailure { subject: subject.map(|subject| subject.address.clone()), message });
        }
        results.push(result);
    }
    (results, diagnostics)
}

fn violation(
    program: &PolicyProgram,
    subject: Option<&PolicySubject>,
    context: &Context,
    message: &str,
    unevaluated: bool,
    locator: &mut AttributeLocator<'_>,
    source: &str,
) -> Diagnostic {
    let name = &program.name;
    let whose = match subject {
        Some(subject) => subject.address.clone(),
        None => "the plan".to_owned(),
    };
    let text = format!("{whose} breaks policy `{name}`: {message}");
    let diagnostic = match program.enforcement {
        Enforcement::Error => Diagnostic::error(codes::POLICY_VIOLATED, text),
        Enforcement::Warning => Diagnostic::warning(codes::POLICY_WARNING, text),
        Enforcement::Advisory => Diagnostic::advice(codes::POLICY_ADVISORY, text),
    };
    let from = if program.module_path.is_empty() { String::new() } else { format!(" (from {})", program.module_address()) };
    let diagnostic = match subject {
        Some(subject) => {
            let blamed = program.blame(&program.condition, context);
            match (subject.header, blamed) {
                (Some(header), Some(path)) => {
                    let shown = path.join(".");
                    let value = value_at(&subject.value, &path).map(|value| {
                        if value.contains_sensitive() {
                            "(sensitive)".to_owned()
                        } else {
                            value.describe()
                        }
                    });
                    match locator.locate(header, &path) {
                        Some(span) => diagnostic.at(
                            span,
                            match value {
                                Some(value) => format!("`{shown}` is {value} here"),
                                None => format!("`{shown}` breaks the policy"),
                            },
                        ),
                        None => diagnostic.at(
                            header,
                            match value.filter(|value| value != "null") {
                                Some(value) => format!("`{shown}` is {value} (not set here)"),
                                None => format!("`{shown}` is not set"),
                            },
                        ),
                    }
                }
                (Some(header), None) => diagnostic.at(header, "breaks the policy"),
                (None, _) => {
                    let action = context.change.as_ref().and_then(|change| value_at(change, &["action".to_owned()]));
                    let action = action.as_ref().and_then(|action| action.as_str().map(str::to_owned)).unwrap_or_default();
                    diagnostic.at(program.condition.span, format!("false for {whose} ({action})"))
                }
            }
        }
        None => diagnostic.at(program.condition.span, "false for this plan"),
    };
    let diagnostic = if subject.is_some_and(|subject| subject.header.is_some()) {
        diagnostic.with_secondary(program.condition.span, format!("policy `{name}`{from}"))
    } else {
        diagnostic
    };
    let consequence = match program.enforcement {
        Enforcement::Error => "nothing is planned until it holds",
        Enforcement::Warning => "a warning: only --warnings-as-errors fails on it",
        Enforcement::Advisory => "advice: nothing fails on it",
    };
    let help = if unevaluated && program.reads(&["plan", "cost"]) {
        format!("policy `{name}` ({source}) needs the plan's cost: set `prices` in the provider block of the resources it prices")
    } else {
        format!("policy `{name}` is written at {source}, with enforcement = \"{}\": {consequence}", program.enforcement.as_str())
    };
    let diagnostic = diagnostic.with_help(help);
    match &program.description {
        Some(description) => diagnostic.with_note(description.clone()),
        None => diagnostic,
    }
}

impl PolicySubject {
    /// Whether the plan deletes it or drops it from state.
    fn is_removed(&self) -> bool {
        value_at(&self.change, &["action".to_owned()]).is_some_and(|action| matches!(action.as_str(), Some("delete" | "forget")))
    }
}

impl PolicyProgram {
    /// Whether the condition reads a reference that starts with `prefix`
    /// (`["change"]`, `["plan", "cost"]`).
    fn reads(&self, prefix: &[&str]) -> bool {
        let mut references = Vec::new();
        crate::check::collect_references(&self.condition, &mut references);
        references.iter().any(|(path, _)| path.len() >= prefix.len() && path.iter().zip(prefix).all(|((name, _), wanted)| name == wanted))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::check::{check_directory, CheckOptions, CheckResult};
    use crate::files::{Files, MemoryFiles};

    const RESOURCES: &str = r#"
training "t" {
  command = ["python3", "train.py"]
}

model "m" {
  source = training.t
}

serving "api" {
  model   = model.m
  command = ["python3", "serve.py"]
  replicas {
    min = 1
  }
}
"#;

    /// Checks `policies` beside [`RESOURCES`], leaving them for [`judge_all`].
    fn checked(policies: &str) -> CheckResult {
        let files = MemoryFiles::new().with("/config/main.mlops.hcl", RESOURCES).with("/config/policies.mlops.hcl", policies);
        let options = CheckOptions { files: Files(Arc::new(files)), defer_policies: true, ..CheckOptions::default() };
        let result = check_directory(Path::new("/config"), "", &options);
        assert!(result.diagnostics.is_empty(), "{:?}", result.diagnostics);
        result
    }

    fn change(action: &str) -> Value {
        Value::Map(ValueMap::from([
            ("action".to_owned(), Value::String(action.to_owned())),
            ("reasons".to_owned(), Value::List(Vec::new())),
        ]))
    }

    /// Every configured instance as a plan would hand it over, with `action`.
    fn subjects(result: &CheckResult, action: &str) -> Vec<PolicySubject> {
        let root = result.root.as_ref().unwrap();
        root.all_resources()
            .into_iter()
            .flat_map(|(_, resource)| {
                resource.instances.iter().map(|instance| PolicySubject {
                    address: instance.value.address.clone(),
                    kind: resource.kind.clone(),
                    value: Value::Resource(instance.value.clone()),
                    change: change(action),
                    header: Some(resource.span),
                })
            })
            .collect()
    }

    fn plan_with(creates: f64) -> Value {
        Value::Map(ValueMap::from([("creates".to_owned(), Value::Number(creates)), ("cost".to_owned(), Value::Null)]))
    }

    #[test]
    fn a_violation_points_at_the_requirement_not_at_the_guard() {
        let result = checked(
            r#"
policy "replicas" {
  resource      = serving
  condition     = !contains(self.command, "python3") || (self.command[0] == "python3" && self.replicas.min >= 2)
  error_message = "two replicas"
}
"#,
        );
        let (results, diagnostics) = judge_all(&result.policies, &subjects(&result, "create"), &plan_with(0.0), &result.sources, true);
        assert_eq!(results[0].failures.len(), 1, "{results:?}");
        let label = diagnostics[0].primary.as_ref().unwrap();
        assert_eq!(result.sources.text(label.span), "min = 1");
        assert_eq!(label.message.as_deref(), Some("`replicas.min` is 1 here"));
    }

    #[test]
    fn a_block_left_out_reads_as_its_defaults() {
        let result = checked(
            r#"
policy "cpu_only" {
  resource      = training
  condition     = self.resources.gpus == 0 && self.resources.gpu_type == null
  error_message = "no GPUs"
}
"#,
        );
        let (results, diagnostics) = judge_all(&result.policies, &subjects(&result, "create"), &plan_with(0.0), &result.sources, true);
        assert_eq!(results[0].passed, 1, "{results:?} {diagnostics:?}");
        assert!(diagnostics.is_empty());
    }

    #[test]
    fn only_a_policy_that_reads_change_judges_what_the_plan_deletes() {
        let result = checked(
            r#"
policy "keep_models" {
  resource      = model
  condition     = change.action != "delete"
  error_message = "models stay"
}

policy "described" {
  resource      = model
  condition     = self.description != null
  error_message = "models say what they do"
  enforcement   = "warning"
}
"#,
        );
        let (results, diagnostics) = judge_all(&result.policies, &subjects(&result, "delete"), &plan_with(0.0), &result.sources, true);
        assert_eq!(results[0].failures[0].subject.as_deref(), Some("model.m"));
        assert_eq!(results[1].passed + results[1].failures.len(), 0, "a deleted model is not judged by `described`");
        assert_eq!(diagnostics.len(), 1);
        assert!(diagnostics[0].is_error());
    }

    /// A secret never reaches a violation: not through the message, not
    /// through the label that quotes the attribute at fault.
    #[test]
    fn a_secret_in_the_message_or_the_attribute_is_never_shown() {
        let configuration = r#"
variable "token" {
  type      = string
  sensitive = true
}

training "leaky" {
  command = ["python3", "train.py"]
  env     = { TOKEN = var.token }
}

policy "no_tokens_in_env" {
  resource      = training
  condition     = !contains(keys(self.env), "TOKEN") || self.env.TOKEN == ""
  error_message = "training leaks ${var.token}"
}
"#;
        let files = MemoryFiles::new().with("/config/main.mlops.hcl", configuration);
        let variables = std::collections::HashMap::from([("token".to_owned(), Value::String("s3cr3t-value".to_owned()))]);
        let options = CheckOptions { files: Files(Arc::new(files)), variables: Some(variables), ..CheckOptions::default() };
        let result = check_directory(Path::new("/config"), "", &options);
        let violation = result.diagnostics.iter().find(|diagnostic| diagnostic.code.id == "E0420").expect("a violation");
        let rendered = crate::diagnostic::render::render_human_all(std::slice::from_ref(violation), &result.sources, Default::default());
        assert!(rendered.contains("(sensitive)"), "{rendered}");
        assert!(violation.message.contains(SENSITIVE_MESSAGE), "{}", violation.message);
        let (results, _) = judge_all(&result.policies, &subjects(&result, "create"), &plan_with(0.0), &result.sources, true);
        let shown = format!("{rendered}{results:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn a_policy_over_the_plan_is_judged_once_and_undecided_until_planned() {
        let result = checked(
            r#"
policy "small" {
  condition     = plan.creates <= 2
  error_message = "at most two at once, not ${plan.creates}"
  enforcement   = "advisory"
}
"#,
        );
        let unknown = Value::Unknown(plan_type());
        let (results, diagnostics) = judge_all(&result.policies, &[], &unknown, &result.sources, false);
        assert_eq!(results[0].unknown, vec!["the plan".to_owned()]);
        assert!(diagnostics.is_empty());
        let (results, diagnostics) = judge_all(&result.policies, &[], &plan_with(3.0), &result.sources, true);
        assert_eq!(results[0].failures[0].message, "at most two at once, not 3");
        assert_eq!(diagnostics[0].severity, crate::diagnostic::Severity::Advice);
    }
}
