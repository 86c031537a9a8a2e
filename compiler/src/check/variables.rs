//! Variables: declarations (type, default, validation, sensitivity) and the
//! values given on the command line, in files, the environment or by a
//! module call.

use super::*;

impl Checker<'_> {
    /// A warning for each variable nothing in the module reads: not the
    /// graph's blocks, and not the lifecycle conditions it leaves out.
    pub(super) fn report_unused_variables(&mut self, graph: &DiGraph<Node, Span>, declarations: &Declarations<'_>) {
        let mut used: HashSet<&str> = HashSet::new();
        for edge in graph.raw_edges() {
            if let Node::Variable(name) = &graph[edge.target()] {
                used.insert(name);
            }
        }
        let mut in_lifecycle = Vec::new();
        for block in declarations.resources.values().chain(declarations.data.values()) {
            for lifecycle in block.body.blocks_named("lifecycle") {
                lower::collect_lifecycle_references(&lifecycle.body, &mut in_lifecycle);
            }
        }
        for (path, _) in &in_lifecycle {
            if let [(root, _), (name, _), ..] = path.as_slice() {
                if root == "var" {
                    used.insert(name);
                }
            }
        }
        for (name, block) in &declarations.variables {
            if used.contains(name.as_str()) {
                continue;
            }
            self.diagnostics.push(
                Diagnostic::warning(codes::UNUSED_VARIABLE, format!("variable `{name}` is declared, and nothing uses it"))
                    .at(block.header_span(), "never read")
                    .with_help(format!("use `var.{name}` where it was meant to go, or remove the declaration")),
            );
        }
    }

    /// Values given for variables the root module does not declare: a typo
    /// on the command line is an error, one in a shared variable file a
    /// warning, and the environment may hold anything.
    pub(super) fn report_undeclared_variables(&mut self, inputs: &Inputs, declared: &IndexMap<String, &Block>) {
        let mut names: Vec<&String> = inputs.keys().filter(|name| !declared.contains_key(*name)).collect();
        names.sort();
        for name in names {
            let origin = self.variable_origins.get(name).cloned().unwrap_or(VariableOrigin::CommandLine);
            let help = did_you_mean(name, declared.keys().map(String::as_str)).unwrap_or_else(|| {
                if declared.is_empty() {
                    "the configuration declares no variables".to_owned()
                } else {
                    format!("the variables are {}", one_of(&declared.keys().collect::<Vec<_>>()))
                }
            });
            let message = format!("{} sets `{name}`, which the configuration does not declare", origin.describe(name));
            match origin {
                VariableOrigin::CommandLine => self.diagnostics.push(Diagnostic::error(codes::UNKNOWN_VARIABLE, message).with_help(help)),
                VariableOrigin::File(_) => self.diagnostics.push(Diagnostic::warning(codes::UNKNOWN_VARIABLE, message).with_help(help)),
                VariableOrigin::Environment => {}
            }
        }
    }

    pub(super) fn check_variable(&mut self, scope: &Scope, name: &str, block: &Block, inputs: Option<&Inputs>) -> Value {
        let body = &block.body;
        for attribute in &body.attributes {
            if !["type", "default", "description", "sensitive", "nullable"].contains(&attribute.name.name.as_str()) {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("variable `{name}` has no attribute `{}`", attribute.name.name))
                        .at(attribute.name.span, "unknown attribute")
                        .with_help(
                            did_you_mean(&attribute.name.name, ["type", "default", "description", "sensitive", "nullable"]).unwrap_or_else(
                                || "a variable takes type, default, description, sensitive, nullable and validation blocks".to_owned(),
                            ),
                        ),
                );
            }
        }
        let ty = match body.attribute("type") {
            Some(attribute) => match parse_type_expr(&attribute.value, false) {
                Ok(ty) => ty,
                Err(error) => {
                    self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_TYPE_EXPRESSION, error.message).at(error.span, "not a type").with_help(
                            error.suggestion.unwrap_or_else(|| {
                                "types are string, number, bool, any, list(T), set(T), map(T), object({...}) and tuple([...])".to_owned()
                            }),
                        ),
                    );
                    Type::Any
                }
            },
            None => Type::Any,
        };
        let literal_flag = |attribute: &str| {
            body.attribute(attribute).and_then(|attribute| literal_value(&attribute.value)).and_then(|value| value.as_bool())
        };
        let sensitive = literal_flag("sensitive").unwrap_or(false);
        let context = Context { describe: "a variable declaration", ..Context::default() };
        let default = body.attribute("default").map(|attribute| {
            let value = self.evaluate(scope, &context, &attribute.value);
            check_type(&mut self.diagnostics, &attribute.value, &value, &ty, name);
            (value, attribute.value.span)
        });
        // The value the rest of the module sees.
        let given = inputs.and_then(|inputs| inputs.get(name).cloned());
        let value = match (&given, &default, inputs) {
            (Some((value, span)), _, _) => {
                let coerced = coerce_given(value.clone(), &ty);
                // A value from outside the configuration (`-var`, a file, the
                // environment) has no expression to check: check it here.
                if span.is_none() && !ty.accepts(&coerced.type_of()) {
                    let origin = self.variable_origins.get(name).cloned().unwrap_or(VariableOrigin::CommandLine);
                    let shown = if sensitive { "a sensitive value".to_owned() } else { coerced.describe() };
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::TYPE_MISMATCH,
                            format!("variable `{name}` is a {ty}, but {} gives it {shown}", origin.describe(name)),
                        )
                        .at(block.header_span(), format!("declared as {ty}"))
                        .with_help(format!("give `{name}` a value of type {ty}")),
                    );
                    Value::Unknown(ty.clone())
                } else {
                    coerced
                }
            }
            (None, _, Some(_)) if self.missing_variables_unknown => Value::Unknown(ty.clone()),
            (None, Some((value, _)), Some(_)) => value.clone(),
            // validate: not known until values are given.
            (None, _, None) => Value::Unknown(ty.clone()),
            (None, None, Some(_)) => {
                if self.call_stack.len() == 1 {
                    self.diagnostics.push(
                        Diagnostic::error(codes::MISSING_VARIABLE_VALUE, format!("variable `{name}` has no value"))
                            .at(block.header_span(), "no default, and no value given")
                            .with_help(format!("pass `-var {name}=VALUE` or `-var-file FILE`, or give the variable a default")),
                    );
                }
                Value::Unknown(ty.clone())
            }
        };
        for validation in body.blocks_named("validation") {
            let condition = validation.body.attribute("condition");
            let message = validation.body.attribute("error_message");
            for attribute in &validation.body.attributes {
                if attribute.name.name != "condition" && attribute.name.name != "error_message" {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::UNKNOWN_ATTRIBUTE,
                            format!("a validation block has no attribute `{}`", attribute.name.name),
                        )
                        .at(attribute.name.span, "unknown attribute")
                        .with_help("a validation block takes `condition` and `error_message`"),
                    );
                }
            }
            let Some(condition) = condition else {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, "a validation block needs a `condition`")
                        .at(validation.kind.span, "no condition")
                        .with_help(format!("add `condition = ...` testing var.{name}")),
                );
                continue;
            };
            let mut references = Vec::new();
            collect_references(&condition.value, &mut references);
            if !references.iter().any(|(path, _)| path.len() >= 2 && path[0].0 == "var" && path[1].0 == name) {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_VALIDATION_CONDITION, format!("this condition does not test `var.{name}`"))
                        .at(condition.value.span, "validates nothing")
                        .with_help(format!("a validation condition must refer to var.{name}")),
                );
                continue;
            }
            // Check the condition against the default (during validate) or the given value.
            let candidates: Vec<(Value, Span)> = match (&given, &default) {
                (Some((value, span)), _) => vec![(value.clone(), span.unwrap_or(condition.value.span))],
                (None, Some((value, span))) => vec![(value.clone(), *span)],
                (None, None) => vec![(Value::Unknown(ty.clone()), condition.value.span)],
            };
            for (candidate, span) in candidates {
                let mut validation_scope = Scope {
                    declared_variables: vec![name.to_owned()],
                    module_directory: scope.module_directory.clone(),
                    root_directory: scope.root_directory.clone(),
                    files: scope.files.clone(),
                    ..Scope::default()
                };
                validation_scope.variables.insert(name.to_owned(), candidate.clone());
                let result = self.evaluate(
                    &validation_scope,
                    &Context { describe: "a validation condition", ..Context::default() },
                    &condition.value,
                );
                match result.unmark().0 {
                    Value::Bool(false) => {
                        let error_message = message
                            .and_then(|message| literal_value(&message.value))
                            .and_then(|message| message.as_str().map(str::to_owned))
                            .unwrap_or_else(|| format!("invalid value for var.{name}"));
                        let shown = if sensitive { "(sensitive)".to_owned() } else { candidate.describe() };
                        self.diagnostics.push(
                            Diagnostic::error(
                                codes::VARIABLE_VALIDATION_FAILED,
                                format!("var.{name} = {shown} fails its validation: {error_message}"),
                            )
                            .at(span, "fails the validation")
                            .with_secondary(condition.value.span, "this condition is false")
                            .with_help(error_message),
                        );
                    }
                    Value::Bool(true) | Value::Unknown(_) => {}
                    other => {
                        self.diagnostics.push(
                            Diagnostic::error(
                                codes::INVALID_VALIDATION_CONDITION,
                                format!("a validation condition must be a bool, not {}", other.type_of()),
                            )
                            .at(condition.value.span, "not a bool"),
                        );
                    }
                }
            }
        }
        for nested in &body.blocks {
            if nested.kind.name != "validation" {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("a variable has no block `{}`", nested.kind.name))
                        .at(nested.kind.span, "unknown block")
                        .with_help("a variable takes `validation` blocks"),
                );
            }
        }
        value.mark_if(sensitive)
    }
}

/// Every static reference path in an expression, with the span of the
/// reference (root through the last named step).
/// A value given on the command line, converted to the declared type where
/// the text allows (`-var epochs=30` is a number for a number variable).
fn coerce_given(value: Value, ty: &Type) -> Value {
    let (value, sensitive) = value.into_unmarked();
    let value = match (ty, value) {
        (Type::Number, Value::String(text)) => text.trim().parse::<f64>().map_or(Value::String(text), Value::Number),
        (Type::Bool, Value::String(text)) if text == "true" || text == "false" => Value::Bool(text == "true"),
        (ty, value) => crate::body::convert(value, ty),
    };
    value.mark_if(sensitive)
}
