//! Servings: the runtime against the provider, the rollout strategy and
//! scale metric against the runtime, replica bounds, and what KServe's
//! deployment mode and Knative's features let a serving do.

use crate::ast::{Body, ExprKind};
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};
use crate::suggest::one_of;
use crate::value::{format_number, Value, ValueMap};

use super::{KindCheck, ModuleFacts, ProviderTarget};

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check_serving(check.checker, check.body, check.attributes, check.target.provider_type);
    if check.target.provider_type == "kubernetes" && check.attributes.get("runtime").and_then(Value::as_str) == Some("kserve") {
        check_kserve_mode(check.checker, check.body, check.attributes, check.target, check.facts);
        check_readiness(check.checker, check.body);
    }
}

/// W0104: a KServe predictor with no `readiness` gets traffic as soon as
/// its port opens, before the model may be loaded.
fn check_readiness(checker: &mut BodyChecker<'_>, body: &Body) {
    if body.blocks_named("readiness").next().is_some() {
        return;
    }
    let Some(runtime) = body.attribute("runtime") else { return };
    checker.diagnostics.push(
        Diagnostic::warning(
            codes::SERVING_WITHOUT_READINESS,
            "this KServe serving has no `readiness`, so its predictor gets traffic as soon as its port opens, loaded or not",
        )
        .at(runtime.value.span, "no readiness probe")
        .with_help("add `readiness { path = \"/health\" }` with a path that answers 200 once the model is loaded"),
    );
}

fn check_serving(checker: &mut BodyChecker<'_>, body: &Body, attributes: &mut ValueMap, provider: &str) {
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

/// What KServe's deployment mode on the cluster (`kserve_mode`) and
/// Knative's features (`knative_features`) let a serving do: each of these
/// would otherwise be accepted by `apply` and then refused or silently
/// ignored by the cluster.
fn check_kserve_mode(checker: &mut BodyChecker<'_>, body: &Body, attributes: &ValueMap, target: &ProviderTarget<'_>, facts: &ModuleFacts) {
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
