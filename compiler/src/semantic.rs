//! The rules that need to understand ML, beyond what a schema can say:
//! feature expressions typed against the dataset schema, column constraints,
//! drift methods against column types, serving runtimes against providers
//! and rollout strategies against runtimes, replica bounds.

use std::collections::{BTreeMap, HashSet};

use crate::ast::{Body, ExprKind};
use crate::body::BodyChecker;
use crate::check::ModuleFacts;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest::{did_you_mean, one_of};
use crate::types::Type;
use crate::value::{format_number, Value};

/// The type a column's values have in expressions.
pub fn column_value_type(column_type: &str) -> Type {
    match column_type {
        "int" | "float" => Type::Number,
        "bool" => Type::Bool,
        _ => Type::String,
    }
}

fn dataset_name(body: &Body, attribute: &str) -> Option<(String, crate::source::Span)> {
    let expr = &body.attribute(attribute)?.value;
    let path = expr.reference_path()?;
    (path.len() == 2 && path[0].0 == "dataset").then(|| (path[1].0.clone(), expr.span))
}

/// The `row` a feature set's expressions see: one value per dataset column.
pub fn feature_row(checker: &mut BodyChecker<'_>, body: &Body, facts: &ModuleFacts) -> Value {
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
    pub settings: &'a BTreeMap<String, Value>,
}

impl ProviderTarget<'_> {
    /// A string setting: `Some(None)` when it is written as an expression
    /// (unknown here), `None` when absent.
    fn text(&self, name: &str) -> Option<Option<&str>> {
        self.settings.get(name).map(Value::as_str)
    }

    /// Whether a list setting names `element`; `None` when it is unknown.
    fn lists(&self, name: &str, element: &str) -> Option<bool> {
        match self.settings.get(name) {
            None => Some(false),
            Some(value) => value.as_list().map(|items| items.iter().any(|item| item.as_str() == Some(element))),
        }
    }
}

pub fn check_kind(
    checker: &mut BodyChecker<'_>,
    kind: &str,
    name: &str,
    body: &Body,
    attributes: &mut BTreeMap<String, Value>,
    target: &ProviderTarget<'_>,
    facts: &mut ModuleFacts,
) {
    match kind {
        "dataset" => check_dataset(checker, name, body, facts),
        "feature_set" => check_feature_set(checker, body, attributes, facts),
        "training" => check_training(checker, body),
        "model" => {
            facts.model_providers.insert(name.to_owned(), target.provider_type.to_owned());
        }
        "serving" => {
            check_serving(checker, body, attributes, target.provider_type);
            if target.provider_type == "kubernetes" && attributes.get("runtime").and_then(Value::as_str) == Some("kserve") {
                check_kserve_mode(checker, body, attributes, target, facts);
            }
        }
        "monitor" => check_monitor(checker, body, attributes, facts),
        _ => {}
    }
}

/// What KServe's deployment mode on the cluster (`kserve_mode`) and
/// Knative's features (`knative_features`) let a serving do: each of these
/// would otherwise be accepted by `apply` and then refused or silently
/// ignored by the cluster.
fn check_kserve_mode(
    checker: &mut BodyChecker<'_>,
    body: &Body,
    attributes: &BTreeMap<String, Value>,
    target: &ProviderTarget<'_>,
    facts: &ModuleFacts,
) {
    let mode = match target.text("kserve_mode") {
        None => "serverless",
        Some(Some(mode)) => mode,
        Some(None) => return,
    };
    let block_value = |name: &str, field: &str| attributes.get(name).and_then(Value::as_map).and_then(|values| values.get(field)).cloned();
    let block_span = |name: &str, field: &str| {
        body.blocks_named(name).next().map(|block| block.body.attribute(field).map_or(block.kind.span, |attribute| attribute.value.span))
    };
    let metric = block_value("autoscale", "metric").and_then(|value| value.as_str().map(str::to_owned));
    if mode == "raw" {
        let strategy = block_value("rollout", "strategy").and_then(|value| value.as_str().map(str::to_owned));
        if let (Some(strategy @ ("canary" | "blue_green")), Some(span)) = (strategy.as_deref(), block_span("rollout", "strategy")) {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::ROLLOUT_UNSUPPORTED,
                    format!("KServe in raw mode cannot do a {strategy} rollout: its predictor is a plain Deployment, and only Knative splits traffic"),
                )
                .at(span, "KServe would ignore this")
                .with_help("set `kserve_mode = \"serverless\"` on the kubernetes provider (the cluster needs Knative Serving), or use `strategy = \"all_at_once\"`"),
            );
        }
        if let (Some(metric @ ("concurrency" | "rps")), Some(span)) = (metric.as_deref(), block_span("autoscale", "metric")) {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::UNSUPPORTED_ON_PROVIDER,
                    format!("KServe in raw mode cannot autoscale on {metric}: it scales with a HorizontalPodAutoscaler, on cpu or memory"),
                )
                .at(span, "KServe's webhook refuses this")
                .with_help("use `metric = \"cpu\"` or `\"memory\"`, or `kserve_mode = \"serverless\"`, whose Knative autoscaler scales on concurrency and rps"),
            );
        }
        return;
    }
    let feature = |name: &str| target.lists("knative_features", name);
    if let (Some(metric @ ("cpu" | "memory")), Some(false), Some(span)) =
        (metric.as_deref(), feature("hpa-autoscaler"), block_span("autoscale", "metric"))
    {
        checker.diagnostics.push(
            Diagnostic::error(
                codes::UNSUPPORTED_ON_PROVIDER,
                format!("KServe in serverless mode cannot autoscale on {metric} without Knative's HPA autoscaler: Knative's own scales on concurrency and rps"),
            )
            .at(span, "KServe's webhook refuses this")
            .with_help("use `metric = \"concurrency\"` or `\"rps\"`; or, if the cluster runs Knative's HPA autoscaler extension, add \"hpa-autoscaler\" to `knative_features`; or set `kserve_mode = \"raw\"`"),
        );
    }
    // Knative sets these itself and refuses a Service that sets them.
    if let Some(env) = body.attribute("env") {
        for (variable, _) in attributes.get("env").and_then(Value::as_map).into_iter().flatten() {
            if ["PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"].contains(&variable.as_str()) {
                let span = match &env.value.kind {
                    ExprKind::Object(items) => items
                        .iter()
                        .find(|item| item.key.literal() == Some(variable.as_str()))
                        .map_or(env.value.span, |item| item.key.span()),
                    _ => env.value.span,
                };
                checker.diagnostics.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("Knative sets `{variable}` itself and refuses a Service that sets it"))
                        .at(span, "a reserved environment variable")
                        .with_help("remove it: the server reads PORT (8080), which Knative sets in serverless mode"),
                );
            }
        }
    }
    let gpus = block_value("resources", "gpus").and_then(|value| value.as_number()).unwrap_or(0.0);
    let gpu_type = block_value("resources", "gpu_type").is_some_and(|value| !value.is_null());
    let placement = [
        (gpus > 0.0, "gpus", "tolerations", "tolerations", "a GPU serving needs the GPU nodes' toleration"),
        (gpu_type, "gpu_type", "node-selector", "nodeSelector", "a GPU model is chosen by a node selector"),
    ];
    for (wanted, field, flag, pod_field, why) in placement {
        if !wanted || feature(flag) != Some(false) {
            continue;
        }
        let Some(span) = block_span("resources", field) else { continue };
        let knative_flag = if flag == "node-selector" { "kubernetes.podspec-nodeselector" } else { "kubernetes.podspec-tolerations" };
        checker.diagnostics.push(
            Diagnostic::error(
                codes::UNSUPPORTED_ON_PROVIDER,
                format!("{why}, and Knative refuses `{pod_field}` in a Service unless the cluster turns on {knative_flag}"),
            )
            .at(span, "serverless KServe cannot place this")
            .with_help(format!(
                "turn on {knative_flag} in Knative's config-features and add \"{flag}\" to `knative_features` on the kubernetes provider, or set `kserve_mode = \"raw\"`"
            )),
        );
    }
    let model_provider = body
        .attribute("model")
        .and_then(|attribute| attribute.value.reference_path().map(|path| (path, attribute.value.span)))
        .filter(|(path, _)| path.len() >= 2 && path[0].0 == "model")
        .and_then(|(path, span)| facts.model_providers.get(&path[1].0).map(|provider| (provider.clone(), span)));
    if let (Some((provider, span)), Some(false)) = (model_provider, feature("init-containers")) {
        if provider == "oci" {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::UNSUPPORTED_ON_PROVIDER,
                    "a model kept in an OCI registry is pulled by an init container, and Knative refuses init containers in a Service unless the cluster turns on kubernetes.podspec-init-containers",
                )
                .at(span, "serverless KServe cannot pull this model")
                .with_help("turn on kubernetes.podspec-init-containers in Knative's config-features and add \"init-containers\" to `knative_features` on the kubernetes provider, or set `kserve_mode = \"raw\"`"),
            );
        }
    }
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

fn check_training(checker: &mut BodyChecker<'_>, body: &Body) {
    let Some(metrics) = body.attribute("metrics") else { return };
    let ExprKind::List(items) = &metrics.value.kind else { return };
    let mut seen: Vec<(String, crate::source::Span)> = Vec::new();
    for item in items {
        let ExprKind::String(metric) = &item.kind else { continue };
        if let Some((_, first)) = seen.iter().find(|(name, _)| name == metric) {
            checker.diagnostics.push(
                Diagnostic::error(codes::DUPLICATE_NAME, format!("the metric \"{metric}\" is declared twice"))
                    .at(item.span, "declared again")
                    .with_secondary(*first, "first declared here")
                    .with_help("remove the repeated name"),
            );
        } else if !crate::units::is_identifier(metric) {
            checker.diagnostics.push(
                Diagnostic::error(codes::INVALID_NAME, format!("\"{metric}\" is not a valid metric name"))
                    .at(item.span, "invalid name")
                    .with_help("metric names are read as training.NAME.metrics.METRIC, so they must be identifiers"),
            );
        }
        seen.push((metric.clone(), item.span));
    }
}

fn check_serving(checker: &mut BodyChecker<'_>, body: &Body, attributes: &mut BTreeMap<String, Value>, provider: &str) {
    let runtime_attribute = body.attribute("runtime");
    let runtime = attributes.get("runtime").and_then(Value::as_str).map(str::to_owned);
    let runtime = match runtime {
        Some(runtime) => runtime,
        None if provider == "local" && runtime_attribute.is_none() => {
            attributes.insert("runtime".to_owned(), Value::String("local".to_owned()));
            "local".to_owned()
        }
        None => return,
    };
    if let Some(attribute) = runtime_attribute {
        let mismatch = match (runtime.as_str(), provider) {
            ("local", "local") | ("kserve" | "deployment", "kubernetes") => None,
            ("local", other) => Some(format!("the local runtime runs a process on this machine; it cannot run on the {other} provider")),
            (runtime, "local") => Some(format!("the {runtime} runtime needs Kubernetes; the local provider runs the `local` runtime")),
            _ => None,
        };
        if let Some(message) = mismatch {
            checker.diagnostics.push(
                Diagnostic::error(codes::RUNTIME_PROVIDER_MISMATCH, message)
                    .at(attribute.value.span, format!("not available on {provider}"))
                    .with_help(if provider == "local" {
                        "set `provider = kubernetes`, or use `runtime = \"local\"` with a `command`".to_owned()
                    } else {
                        "use `runtime = \"kserve\"` or `\"deployment\"`".to_owned()
                    }),
            );
        }
    }
    if let Some(rollout) = body.blocks_named("rollout").next() {
        let rollout_values = attributes.get("rollout").and_then(Value::as_map);
        let strategy = rollout_values.and_then(|values| values.get("strategy")).and_then(Value::as_str).unwrap_or("all_at_once").to_owned();
        let supported: &[&str] = match runtime.as_str() {
            "kserve" => &["canary", "blue_green", "all_at_once"],
            "local" => &["blue_green", "all_at_once"],
            _ => &["all_at_once"],
        };
        if !supported.contains(&strategy.as_str()) {
            let span = rollout.body.attribute("strategy").map_or(rollout.kind.span, |attribute| attribute.value.span);
            let why = match runtime.as_str() {
                "deployment" => "a plain Deployment rolls every replica over; it cannot split traffic",
                "local" => "the local runtime runs one server process; it cannot split traffic",
                _ => "this runtime cannot carry it out",
            };
            checker.diagnostics.push(
                Diagnostic::error(codes::ROLLOUT_UNSUPPORTED, format!("the {runtime} runtime cannot do a {strategy} rollout: {why}"))
                    .at(span, format!("{runtime} would ignore this"))
                    .with_help(if strategy == "canary" {
                        "use `runtime = \"kserve\"` on the kubernetes provider for a canary, or choose another strategy".to_owned()
                    } else {
                        format!("the {runtime} runtime supports {}", one_of(supported))
                    }),
            );
        }
        if let Some(percent) = rollout.body.attribute("traffic_percent") {
            if strategy != "canary" {
                checker.diagnostics.push(
                    Diagnostic::error(
                        codes::ROLLOUT_UNSUPPORTED,
                        format!("`traffic_percent` only applies to canary rollouts, and this one is {strategy}"),
                    )
                    .at(percent.name.span, "would be ignored")
                    .with_help("set `strategy = \"canary\"`, or remove traffic_percent"),
                );
            }
        } else if strategy == "canary" {
            checker.diagnostics.push(
                Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, "a canary rollout needs `traffic_percent`")
                    .at(rollout.kind.span, "no traffic_percent")
                    .with_help("add `traffic_percent = 10` (the share of traffic for the new version)"),
            );
        }
    }
    if let Some(autoscale) = body.blocks_named("autoscale").next() {
        let metric = attributes.get("autoscale").and_then(Value::as_map).and_then(|values| values.get("metric")).and_then(Value::as_str);
        if let (Some(metric @ ("concurrency" | "rps")), "deployment") = (metric, runtime.as_str()) {
            let span = autoscale.body.attribute("metric").map_or(autoscale.kind.span, |attribute| attribute.value.span);
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::UNSUPPORTED_ON_PROVIDER,
                    format!("the deployment runtime cannot autoscale on {metric}: a HorizontalPodAutoscaler scales on cpu or memory"),
                )
                .at(span, "the autoscaler would never see it")
                .with_help("use `metric = \"cpu\"` or `\"memory\"`, or `runtime = \"kserve\"`, which scales on concurrency and rps"),
            );
        }
    }
    if let Some(replicas) = body.blocks_named("replicas").next() {
        let values = attributes.get("replicas").and_then(Value::as_map);
        let bound = |name: &str| values.and_then(|values| values.get(name)).and_then(Value::as_number);
        if let (Some(min), Some(max)) = (bound("min"), bound("max")) {
            if min > max {
                let min_span = replicas.body.attribute("min").map_or(replicas.kind.span, |attribute| attribute.span);
                let max_span = replicas.body.attribute("max").map_or(replicas.kind.span, |attribute| attribute.span);
                checker.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_REPLICA_BOUNDS,
                        format!("replicas min {} is greater than max {}", format_number(min), format_number(max)),
                    )
                    .at(min_span, "min")
                    .with_secondary(max_span, "max")
                    .with_help("min must be at most max; swap them or correct one"),
                );
            }
            if runtime == "local" && max > 1.0 {
                checker.diagnostics.push(
                    Diagnostic::error(
                        codes::UNSUPPORTED_ON_PROVIDER,
                        format!("the local runtime runs one server process, not up to {}", format_number(max)),
                    )
                    .at(replicas.body.attribute("max").map_or(replicas.kind.span, |attribute| attribute.span), "would be ignored")
                    .with_help("use the kubernetes provider for several replicas, or set max = 1"),
                );
            }
        }
    }
}

fn check_monitor(checker: &mut BodyChecker<'_>, body: &Body, attributes: &BTreeMap<String, Value>, facts: &ModuleFacts) {
    let Some((dataset, span)) = dataset_name(body, "reference") else { return };
    let columns = match facts.dataset_columns.get(&dataset) {
        Some(Some(columns)) => columns.clone(),
        Some(None) => {
            checker.diagnostics.push(
                Diagnostic::error(
                    codes::MISSING_DATASET_SCHEMA,
                    format!("dataset `{dataset}` declares no schema, so the monitor's columns cannot be checked"),
                )
                .at(span, "no schema on this dataset")
                .with_help(format!("add a `schema` block to dataset `{dataset}`")),
            );
            return;
        }
        None => return,
    };
    let method = attributes.get("method").and_then(Value::as_str).unwrap_or("psi").to_owned();
    let Some(columns_attribute) = body.attribute("columns") else { return };
    let ExprKind::List(items) = &columns_attribute.value.kind else { return };
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let mut seen = HashSet::new();
    for item in items {
        let ExprKind::String(column) = &item.kind else { continue };
        if !seen.insert(column.clone()) {
            continue;
        }
        let Some((_, column_type)) = columns.iter().find(|(name, _)| name == column) else {
            checker.diagnostics.push(
                Diagnostic::error(codes::UNKNOWN_COLUMN, format!("dataset `{dataset}` has no column `{column}`"))
                    .at(item.span, "not in the reference schema")
                    .with_help(
                        did_you_mean(column, names.iter().copied()).unwrap_or_else(|| format!("its columns are {}", one_of(&names))),
                    ),
            );
            continue;
        };
        let numeric = column_type == "int" || column_type == "float";
        let needs_numeric = method == "ks" || method == "wasserstein";
        if needs_numeric && !numeric || column_type == "timestamp" {
            checker.diagnostics.push(
                Diagnostic::error(codes::MONITOR_METHOD_COLUMN_TYPE, format!("the {method} method cannot measure drift on `{column}`, a {column_type} column"))
                    .at(item.span, format!("{column_type} column"))
                    .with_help(if column_type == "timestamp" { "drift is not computed on timestamps; remove the column".to_owned() } else { format!("{method} compares numeric distributions; use method = \"psi\" or \"kl_div\" for categorical columns, or a separate monitor") }),
            );
        }
    }
}
