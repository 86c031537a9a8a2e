//! Checking one block body against its schema: unknown and missing
//! attributes, nested blocks and their counts, types, allowed values, numeric
//! bounds, the string formats (quantities, durations, URIs, paths,
//! percentages), provider-specific attributes, and mutually exclusive ones.
//! Returns the evaluated attributes as a map, nested blocks included.

use std::collections::BTreeMap;

use crate::ast::{Body, Expr, ExprKind};
use crate::diagnostic::{codes, Diagnostic, Diagnostics};
use crate::eval::{Context, Evaluator, Scope};
use crate::schema::{AttributeSchema, BlockSchema, Format, Schemas};
use crate::source::Span;
use crate::suggest::{did_you_mean, one_of};
use crate::types::Type;
use crate::units;
use crate::value::{format_number, Value, ValueMap};

pub struct BodyChecker<'a> {
    pub scope: &'a Scope,
    pub schemas: &'static Schemas,
    pub diagnostics: &'a mut Diagnostics,
    /// The provider type the resource runs on, for `only_on`/`required_on`.
    pub provider: Option<&'a str>,
    pub context: Context,
    /// Values for attributes whose schema names a `context`.
    pub row: Option<Value>,
    pub self_value: Option<Value>,
    /// When set, the residual text (see [`crate::residual`]) of every
    /// attribute whose value is not wholly known, by attribute path. The
    /// planner needs them; `validate` does not.
    pub deferred: Option<Vec<(Vec<String>, String)>>,
    /// The path of the block being checked, for `deferred`.
    pub path: Vec<String>,
}

impl BodyChecker<'_> {
    pub fn eval(&mut self, expr: &Expr) -> Value {
        Evaluator::new(self.scope, &self.context, self.schemas, self.diagnostics).eval(expr)
    }

    fn context_for(&self, extra: Option<&str>) -> Context {
        let mut context = self.context.clone();
        match extra {
            Some("row") => {
                context.row = self.row.clone();
                context.describe = "a feature expression";
            }
            Some("self") => {
                context.self_value = self.self_value.clone();
                context.describe = "a check condition";
            }
            _ => {}
        }
        context
    }

    fn eval_in(&mut self, expr: &Expr, extra: Option<&str>) -> Value {
        let context = self.context_for(extra);
        Evaluator::new(self.scope, &context, self.schemas, self.diagnostics).eval(expr)
    }

    /// Checks `body` against `schema`. `reserved` names attributes and blocks
    /// handled by the caller (meta-arguments). `what` names the block in messages.
    pub fn check(&mut self, body: &Body, schema: &BlockSchema, header: Span, what: &str, reserved: &[&str]) -> ValueMap {
        // Every settable attribute ends up here (its default if not set), and
        // the caller adds the computed ones: room for all of them at once.
        let mut values = ValueMap::with_capacity(schema.attributes.len() + schema.blocks.len());
        for attribute in &body.attributes {
            let name = attribute.name.name.as_str();
            if reserved.contains(&name) {
                continue;
            }
            let Some(attribute_schema) = schema.attributes.get(name).filter(|attribute| attribute.is_settable()) else {
                self.unknown_attribute(schema, name, attribute.name.span, what);
                // Still evaluate it, so mistakes inside are reported too.
                self.eval(&attribute.value);
                continue;
            };
            if !attribute_schema.only_on.is_empty() {
                if let Some(provider) = self.provider {
                    if !attribute_schema.only_on.iter().any(|supported| supported == provider) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                codes::UNSUPPORTED_ON_PROVIDER,
                                format!("`{name}` is not supported on the {provider} provider"),
                            )
                            .at(attribute.name.span, format!("{provider} would ignore this"))
                            .with_help(format!(
                                "`{name}` works with {}; set `provider` accordingly, or remove it",
                                one_of(&attribute_schema.only_on)
                            )),
                        );
                    }
                }
            }
            // Enumerated settings may be written bare, as in `type = float`.
            let value = match &attribute.value.kind {
                ExprKind::Variable(word) if !attribute_schema.allowed.is_empty() && !is_root_name(self.schemas, word) => {
                    Value::String(word.clone())
                }
                _ => self.eval_in(&attribute.value, attribute_schema.context.as_deref()),
            };
            let value = self.check_value(&attribute.value, value, attribute_schema);
            self.refuse_reserved_keys(&attribute.value, &value, name);
            // Gates are decided on apply, against the run apply produces.
            let in_gate = self.path.first().map(String::as_str) == Some("gate") && name == "condition";
            if self.deferred.is_some() && (!value.is_wholly_known() || in_gate) {
                let context = self.context_for(attribute_schema.context.as_deref());
                let text = if in_gate {
                    crate::residual::residual_keeping_references(&attribute.value, self.scope, &context, self.schemas)
                } else {
                    crate::residual::residual(&attribute.value, self.scope, &context, self.schemas)
                };
                let mut path = self.path.clone();
                path.push(name.to_owned());
                if let Some(deferred) = self.deferred.as_mut() {
                    deferred.push((path, text));
                }
            }
            values.insert(name.to_owned(), value);
        }

        for (name, attribute_schema) in &schema.attributes {
            if values.contains_key(name) || body.attribute(name).is_some() {
                continue;
            }
            if attribute_schema.required {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("{what} is missing the required attribute `{name}`"))
                        .at(header, format!("`{name}` is required"))
                        .with_help(format!("add `{name} = ...` ({}){}", attribute_schema.ty, describe_suffix(attribute_schema))),
                );
            } else if let Some(provider) =
                self.provider.filter(|provider| attribute_schema.required_on.iter().any(|required| required == provider))
            {
                self.diagnostics.push(
                    Diagnostic::error(codes::REQUIRED_ON_PROVIDER, format!("{what} needs `{name}` on the {provider} provider"))
                        .at(header, format!("`{name}` is missing"))
                        .with_help(format!("add `{name} = ...` ({}){}", attribute_schema.ty, describe_suffix(attribute_schema))),
                );
            }
        }
        for (name, attribute_schema) in &schema.attributes {
            if let Some(attribute) = body.attribute(name) {
                for needed in &attribute_schema.requires {
                    if body.attribute(needed).is_none() {
                        self.diagnostics.push(
                            Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("`{name}` needs `{needed}` to be set as well"))
                                .at(attribute.name.span, format!("needs `{needed}`"))
                                .with_help(format!("add `{needed} = ...` to {what}")),
                        );
                    }
                }
            }
        }
        if !schema.exactly_one_of.is_empty() {
            let set: Vec<&crate::ast::Attribute> = schema.exactly_one_of.iter().filter_map(|name| body.attribute(name)).collect();
            match set.as_slice() {
                [] => self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_ONE_OF, format!("{what} needs one of {}", one_of(&schema.exactly_one_of)))
                        .at(header, "none of them is set")
                        .with_help(format!("set exactly one of {}", one_of(&schema.exactly_one_of))),
                ),
                [_] => {}
                [first, rest @ ..] => {
                    let mut diagnostic = Diagnostic::error(
                        codes::CONFLICTING_ATTRIBUTES,
                        format!("{what} sets both `{}` and `{}`, which exclude each other", first.name.name, rest[0].name.name),
                    )
                    .at(rest[0].name.span, "conflicts with the other")
                    .with_help(format!("keep only one of {}", one_of(&schema.exactly_one_of)));
                    diagnostic = diagnostic.with_secondary(first.name.span, "set here too");
                    self.diagnostics.push(diagnostic);
                }
            }
        }

        // Nested blocks.
        let mut seen_counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut labelled: BTreeMap<String, BTreeMap<String, (Value, Span)>> = BTreeMap::new();
        let mut repeated: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for block in &body.blocks {
            let name = block.kind.name.as_str();
            if reserved.contains(&name) {
                continue;
            }
            let Some(nested) = schema.blocks.get(name) else {
                if let Some(attribute) = schema.attributes.get(name).filter(|attribute| attribute.is_settable()) {
                    self.diagnostics.push(
                        Diagnostic::error(codes::BLOCK_ATTRIBUTE_CONFUSION, format!("`{name}` is an attribute, not a block"))
                            .at(block.kind.span, "written as a block")
                            .with_help(format!("write `{name} = ...` ({})", attribute.ty)),
                    );
                } else {
                    let candidates: Vec<&str> = schema.blocks.keys().map(String::as_str).collect();
                    self.diagnostics.push(
                        Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("{what} has no block `{name}`"))
                            .at(block.kind.span, "unknown block")
                            .with_help(did_you_mean(name, candidates.iter().copied()).unwrap_or_else(|| {
                                if candidates.is_empty() {
                                    format!("{what} takes no nested blocks")
                                } else {
                                    format!("the blocks allowed here are {}", one_of(&candidates))
                                }
                            })),
                    );
                }
                continue;
            };
            let count = seen_counts.entry(name).or_default();
            *count += 1;
            if nested.max_items.is_some_and(|max| *count > max) {
                let first = body.blocks_named(name).next().map(|first| first.kind.span);
                let mut diagnostic = Diagnostic::error(
                    codes::TOO_MANY_BLOCKS,
                    format!(
                        "{what} may have {} `{name}` block{}",
                        nested.max_items.unwrap_or(1),
                        if nested.max_items == Some(1) { "" } else { "s" }
                    ),
                )
                .at(block.kind.span, "one too many")
                .with_help(format!("merge the `{name}` blocks into one"));
                if let Some(first) = first {
                    diagnostic = diagnostic.with_secondary(first, "first one here");
                }
                self.diagnostics.push(diagnostic);
                continue;
            }
            if !nested.only_on.is_empty() {
                if let Some(provider) = self.provider.filter(|provider| !nested.only_on.iter().any(|supported| supported == provider)) {
                    self.diagnostics.push(
                        Diagnostic::error(codes::UNSUPPORTED_ON_PROVIDER, format!("`{name}` is not supported on the {provider} provider"))
                            .at(block.kind.span, format!("{provider} would ignore this"))
                            .with_help(format!(
                                "`{name}` works with {}; set `provider` accordingly, or remove the block",
                                one_of(&nested.only_on)
                            )),
                    );
                }
            }
            if block.labels.len() != nested.labels.len() {
                let expected = if nested.labels.is_empty() {
                    "no labels".to_owned()
                } else {
                    format!(
                        "{} label{} ({})",
                        nested.labels.len(),
                        if nested.labels.len() == 1 { "" } else { "s" },
                        nested.labels.join(", ")
                    )
                };
                self.diagnostics.push(
                    Diagnostic::error(codes::WRONG_LABEL_COUNT, format!("a `{name}` block takes {expected}"))
                        .at(block.header_span(), format!("{} given", block.labels.len()))
                        .with_help(if nested.labels.is_empty() {
                            format!("write `{name} {{ ... }}`")
                        } else {
                            format!("write `{name} \"{}\" {{ ... }}`", nested.labels[0].to_uppercase())
                        }),
                );
                continue;
            }
            let nested_what = match block.labels.first() {
                Some(label) => format!("{name} `{}`", label.value),
                None => format!("the `{name}` block"),
            };
            let saved_depth = self.path.len();
            self.path.push(name.to_owned());
            match block.labels.first() {
                Some(label) => self.path.push(label.value.clone()),
                None if nested.max_items != Some(1) => self.path.push(seen_counts.get(name).map_or(0, |count| count - 1).to_string()),
                None => {}
            }
            let nested_values = self.check(&block.body, &nested.body, block.header_span(), &nested_what, &[]);
            self.path.truncate(saved_depth);
            let nested_value = Value::Map(nested_values);
            match block.labels.first() {
                Some(label) => {
                    let entries = labelled.entry(name.to_owned()).or_default();
                    if let Some((_, first_span)) = entries.get(&label.value) {
                        self.diagnostics.push(
                            Diagnostic::error(codes::DUPLICATE_NAME, format!("{what} has two `{name}` blocks named `{}`", label.value))
                                .at(label.span, "declared again here")
                                .with_secondary(*first_span, "first declared here")
                                .with_help("give each a different name"),
                        );
                    } else {
                        entries.insert(label.value.clone(), (nested_value, label.span));
                    }
                }
                None => repeated.entry(name.to_owned()).or_default().push(nested_value),
            }
        }
        for (name, nested) in &schema.blocks {
            let count = seen_counts.get(name.as_str()).copied().unwrap_or(0);
            if count < nested.min_items {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::MISSING_REQUIRED_ATTRIBUTE,
                        format!(
                            "{what} needs at least {} `{name}` block{}",
                            nested.min_items,
                            if nested.min_items == 1 { "" } else { "s" }
                        ),
                    )
                    .at(header, format!("no `{name}` block"))
                    .with_help(if nested.labels.is_empty() {
                        format!("add `{name} {{ ... }}`")
                    } else {
                        format!("add `{name} \"NAME\" {{ ... }}`")
                    }),
                );
            }
            let value = if !nested.labels.is_empty() {
                Value::Map(labelled.remove(name).unwrap_or_default().into_iter().map(|(label, (value, _))| (label, value)).collect())
            } else if nested.max_items == Some(1) {
                repeated.remove(name).and_then(|mut blocks| blocks.pop()).unwrap_or(Value::Null)
            } else {
                Value::List(repeated.remove(name).unwrap_or_default())
            };
            values.insert(name.clone(), value);
        }
        // Defaults for what was not set; an attribute only another provider
        // takes is null here, whatever its default there.
        for (name, attribute_schema) in &schema.attributes {
            let applies = attribute_schema.only_on.is_empty()
                || self.provider.is_none_or(|provider| attribute_schema.only_on.iter().any(|supported| supported == provider));
            if !values.contains_key(name) && attribute_schema.is_settable() {
                let default = if applies { attribute_schema.default.clone() } else { None };
                values.insert(name.clone(), default.unwrap_or(Value::Null));
            }
        }
        values
    }

    fn unknown_attribute(&mut self, schema: &BlockSchema, name: &str, span: Span, what: &str) {
        if schema.blocks.contains_key(name) {
            self.diagnostics.push(
                Diagnostic::error(codes::BLOCK_ATTRIBUTE_CONFUSION, format!("`{name}` is a block, not an attribute"))
                    .at(span, "written as an attribute")
                    .with_help(format!("write it as a block: `{name} {{ ... }}`, without `=`")),
            );
            return;
        }
        if schema.attributes.get(name).is_some_and(|attribute| attribute.computed) {
            self.diagnostics.push(
                Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("`{name}` is computed by the provider and cannot be set"))
                    .at(span, "computed attribute")
                    .with_help(format!("remove it; read it elsewhere as a reference to {what}")),
            );
            return;
        }
        let credentials = ["access_key", "secret_key", "aws_access_key_id", "aws_secret_access_key", "session_token"];
        let help = if credentials.contains(&name) {
            "credentials never go in configuration files: they come from the standard AWS chain (environment variables, profile)".to_owned()
        } else {
            did_you_mean(name, schema.settable_names()).unwrap_or_else(|| {
                let names: Vec<&str> = schema.settable_names().collect();
                if names.is_empty() {
                    format!("{what} takes no attributes")
                } else {
                    format!("the attributes here are {}", one_of(&names))
                }
            })
        };
        self.diagnostics.push(
            Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("{what} has no attribute `{name}`"))
                .at(span, "unknown attribute")
                .with_help(help),
        );
    }

    /// Checks a value against an attribute schema; returns it converted to
    /// the attribute's type where the conversion is implicit.
    /// Keys starting with `$` are mlops's own markers (`$ref`, `$expr`,
    /// `$unknown`): a map of the user's with one would be read as one of
    /// them. Pointed at the key where it is written, else at the value.
    fn refuse_reserved_keys(&mut self, expr: &Expr, value: &Value, name: &str) {
        let mut written = Vec::new();
        expr.walk(&mut |inner| {
            if let ExprKind::Object(items) = &inner.kind {
                for item in items {
                    let key = match &item.key {
                        crate::ast::ObjectKey::Ident(ident) => Some(ident.name.as_str()),
                        crate::ast::ObjectKey::Expr(Expr { kind: ExprKind::String(text), .. }) => Some(text.as_str()),
                        crate::ast::ObjectKey::Expr(_) => None,
                    };
                    if let Some(key) = key.filter(|key| key.starts_with('$')) {
                        written.push((key.to_owned(), item.key.span()));
                    }
                }
            }
        });
        fn made(value: &Value) -> Option<String> {
            match value.unmark().0 {
                Value::Map(entries) => entries.keys().find(|key| key.starts_with('$')).cloned().or_else(|| entries.values().find_map(made)),
                Value::List(items) => items.iter().find_map(made),
                _ => None,
            }
        }
        let found: Vec<(String, Span)> =
            if written.is_empty() { made(value).map(|key| (key, expr.span)).into_iter().collect() } else { written };
        for (key, span) in found {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::RESERVED_KEY,
                    format!("the key `{key}` in `{name}` starts with `$`, which mlops keeps for its own markers"),
                )
                .at(span, "a reserved key")
                .with_help(format!("name it without the `$`, such as `{}`", key.trim_start_matches('$'))),
            );
        }
    }

    fn check_value(&mut self, expr: &Expr, value: Value, schema: &AttributeSchema) -> Value {
        if !check_type(self.diagnostics, expr, &value, &schema.ty, &schema.name) {
            return Value::unknown_any();
        }
        let (unmarked, sensitive) = value.unmark();
        if let Value::String(text) = unmarked {
            if !schema.allowed.is_empty() && !schema.allowed.iter().any(|allowed| allowed == text) {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("\"{text}\" is not a valid `{}`", schema.name))
                        .at(expr.span, "not allowed")
                        .with_help(match did_you_mean(text, schema.allowed.iter().map(String::as_str)) {
                            Some(suggestion) => format!("{suggestion} `{}` takes {}", schema.name, one_of(&schema.allowed)),
                            None => format!("`{}` takes {}", schema.name, one_of(&schema.allowed)),
                        }),
                );
            }
        }
        // A list of strings takes the allowed values element by element.
        if let (Value::List(items), false) = (unmarked, schema.allowed.is_empty()) {
            for (index, item) in items.iter().enumerate() {
                let Some(text) = item.as_str() else { continue };
                if schema.allowed.iter().any(|allowed| allowed == text) {
                    continue;
                }
                let span = match &expr.kind {
                    crate::ast::ExprKind::List(elements) => elements.get(index).map_or(expr.span, |element| element.span),
                    _ => expr.span,
                };
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("\"{text}\" is not a valid element of `{}`", schema.name))
                        .at(span, "not allowed")
                        .with_help(match did_you_mean(text, schema.allowed.iter().map(String::as_str)) {
                            Some(suggestion) => format!("{suggestion} `{}` takes {}", schema.name, one_of(&schema.allowed)),
                            None => format!("`{}` takes {}", schema.name, one_of(&schema.allowed)),
                        }),
                );
            }
        }
        if let Value::Number(number) = unmarked {
            let below = schema.min.is_some_and(|min| *number < min);
            let above = schema.max.is_some_and(|max| *number > max);
            if below || above {
                let range = match (schema.min, schema.max) {
                    (Some(min), Some(max)) => format!("from {} to {}", format_number(min), format_number(max)),
                    (Some(min), None) => format!("at least {}", format_number(min)),
                    (None, Some(max)) => format!("at most {}", format_number(max)),
                    (None, None) => String::new(),
                };
                self.diagnostics.push(
                    Diagnostic::error(codes::OUT_OF_RANGE, format!("`{}` must be {range}, not {}", schema.name, format_number(*number)))
                        .at(expr.span, "out of range")
                        .with_help(format!("use a number {range}")),
                );
            } else if schema.integer && number.fract() != 0.0 {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::OUT_OF_RANGE,
                        format!("`{}` must be a whole number, not {}", schema.name, format_number(*number)),
                    )
                    .at(expr.span, "not a whole number")
                    .with_help(format!("use {} or {}", format_number(number.floor()), format_number(number.ceil()))),
                );
            }
        }
        if let Some(format) = schema.format {
            self.check_format(expr, unmarked, format, &schema.name);
        }
        convert(unmarked.clone(), &schema.ty).mark_if(sensitive || schema.sensitive)
    }

    fn check_format(&mut self, expr: &Expr, value: &Value, format: Format, name: &str) {
        let rejection = match (format, value) {
            (Format::Memory, Value::String(text)) => units::check_memory(text).err().map(|rejection| (codes::INVALID_QUANTITY, rejection)),
            (Format::Cpu, Value::String(text)) => units::check_cpu(text).err().map(|rejection| (codes::INVALID_QUANTITY, rejection)),
            (Format::Cpu, Value::Number(number)) if *number <= 0.0 => Some((
                codes::INVALID_QUANTITY,
                units::Rejection {
                    message: format!("CPU must be positive, not {}", format_number(*number)),
                    help: "write a number of cores, such as 2, or millicores, such as \"500m\"".into(),
                },
            )),
            (Format::Cpu, Value::Bool(_) | Value::List(_) | Value::Map(_)) => Some((
                codes::TYPE_MISMATCH,
                units::Rejection { message: format!("`{name}` must be a number or a quantity string"), help: "write 2 or \"500m\"".into() },
            )),
            (Format::Duration, Value::String(text)) => {
                units::check_duration(text).err().map(|rejection| (codes::INVALID_DURATION, rejection))
            }
            (Format::Uri, Value::String(text)) => units::check_uri(text, false).err().map(|rejection| (codes::INVALID_URI, rejection)),
            (Format::Cron, Value::String(text)) => units::check_cron(text).err().map(|rejection| (codes::INVALID_SCHEDULE, rejection)),
            (Format::UriOrPath, Value::String(text)) => units::check_uri(text, true).err().map(|rejection| (codes::INVALID_URI, rejection)),
            (Format::Percent, Value::Number(number)) if !(0.0..=100.0).contains(number) => Some((
                codes::INVALID_PERCENTAGE,
                units::Rejection {
                    message: format!("`{name}` must be a percentage from 0 to 100, not {}", format_number(*number)),
                    help: "use a number from 0 to 100".into(),
                },
            )),
            (Format::BucketName, Value::String(text)) => {
                units::check_bucket_name(text).err().map(|rejection| (codes::INVALID_STORAGE_NAME, rejection))
            }
            (Format::RegistryName, Value::String(text)) => {
                units::check_registry_name(text).err().map(|rejection| (codes::INVALID_STORAGE_NAME, rejection))
            }
            (Format::LocalPath, Value::String(text)) => {
                let path = self.scope.module_directory.join(text);
                self.scope.files.kind(&path).is_none().then(|| {
                    (
                        codes::MISSING_SOURCE_FILE,
                        units::Rejection {
                            message: format!("the source \"{text}\" does not exist"),
                            help: "paths are relative to the directory holding this configuration file".to_owned(),
                        },
                    )
                })
            }
            _ => None,
        };
        if let Some((code, rejection)) = rejection {
            self.diagnostics.push(Diagnostic::error(code, rejection.message).at(expr.span, "invalid value").with_help(rejection.help));
        }
    }
}

fn is_root_name(schemas: &Schemas, word: &str) -> bool {
    crate::eval::ROOT_NAMES.contains(&word) || schemas.resources.contains_key(word)
}

fn describe_suffix(schema: &AttributeSchema) -> String {
    if schema.description.is_empty() {
        String::new()
    } else {
        format!(": {}", schema.description.trim_end_matches('.').to_lowercase())
    }
}

/// Implicit conversions: numbers and bools to strings.
pub fn convert(value: Value, ty: &Type) -> Value {
    match (ty, value) {
        (Type::String, Value::Number(number)) => Value::String(format_number(number)),
        (Type::String, Value::Bool(flag)) => Value::String(flag.to_string()),
        (Type::List(element) | Type::Set(element), Value::List(items)) => {
            Value::List(items.into_iter().map(|item| convert_marked(item, element)).collect())
        }
        (Type::Map(element), Value::Map(entries)) => {
            Value::Map(entries.into_iter().map(|(key, item)| (key, convert_marked(item, element))).collect())
        }
        (_, value) => value,
    }
}

fn convert_marked(value: Value, ty: &Type) -> Value {
    let (unmarked, sensitive) = value.into_unmarked();
    convert(unmarked, ty).mark_if(sensitive)
}

/// Checks `value` (from `expr`) against `expected`, pointing into list and
/// object literals at the element that does not fit. Returns whether it fits.
pub fn check_type(diagnostics: &mut Diagnostics, expr: &Expr, value: &Value, expected: &Type, name: &str) -> bool {
    let actual = value.type_of();
    // A string never satisfies a reference, although strings accept any primitive.
    let string_for_reference = matches!((expected, value.unmark().0), (Type::Resource(_), Value::String(_)));
    if expected.accepts(&actual) && !string_for_reference {
        return true;
    }
    match (&expr.kind, expected) {
        (ExprKind::List(items), Type::List(element) | Type::Set(element)) => {
            let values = value.as_list().unwrap_or(&[]);
            let mut fits = true;
            for (item_expr, item) in items.iter().zip(values) {
                fits &= check_type(diagnostics, item_expr, item, element, name);
            }
            return fits;
        }
        (ExprKind::Object(items), Type::Map(element)) => {
            let mut fits = true;
            if let Some(entries) = value.as_map() {
                for item in items {
                    if let Some(item_value) = item.key.literal().and_then(|key| entries.get(key)) {
                        fits &= check_type(diagnostics, &item.value, item_value, element, name);
                    }
                }
            }
            return fits;
        }
        _ => {}
    }
    if matches!(value.unmark().0, Value::Null) {
        return true;
    }
    let found = describe_type(&actual);
    let help = match (expected, value.unmark().0) {
        (Type::Resource(kinds), Value::String(text)) => format!(
            "write the reference without quotes, such as `{} = {}.NAME`{}",
            name,
            kinds[0],
            if text.contains('.') { format!(" (here: `{text}`)") } else { String::new() }
        ),
        (Type::Resource(kinds), _) => {
            format!("`{name}` takes a reference to {}", kinds.iter().map(|kind| format!("a {kind}")).collect::<Vec<_>>().join(" or "))
        }
        (Type::Bool, Value::String(text)) if text == "true" || text == "false" => format!("write `{text}` without quotes"),
        (Type::Number, Value::String(text)) if text.trim().parse::<f64>().is_ok() => format!("write `{}` without quotes", text.trim()),
        (Type::List(_), _) if !actual.is_sequence() => "wrap the value in brackets to make a list: [value]".to_owned(),
        _ => format!("`{name}` takes {}", describe_type(expected)),
    };
    diagnostics.push(
        Diagnostic::error(codes::TYPE_MISMATCH, format!("`{name}` must be {}, not {found}", describe_type(expected)))
            .at(expr.span, format!("this is {found}"))
            .with_help(help),
    );
    false
}

/// Types for messages: references read as "a reference to a dataset".
pub fn describe_type(ty: &Type) -> String {
    match ty {
        Type::Resource(kinds) => {
            format!("a reference to {}", kinds.iter().map(|kind| format!("a {kind}")).collect::<Vec<_>>().join(" or "))
        }
        Type::List(element) if matches!(**element, Type::Resource(_)) => format!("a list of references ({ty})"),
        Type::Map(element) if matches!(**element, Type::Resource(_)) => format!("a map of references ({ty})"),
        Type::Tuple(_) => "a list".to_owned(),
        Type::Object(_) => "an object".to_owned(),
        other => other.to_string(),
    }
}
