//! Trainings: declared metric names are identifiers, each declared once;
//! a training on GPUs says how long it may take.

use crate::ast::{Body, ExprKind};
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};

use super::KindCheck;

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check_training(check.checker, check.body);
    warn_gpus_without_timeout(check.checker, check.body, check.attributes);
}

/// GPUs held by a hung run until the default timeout (a day) are the most
/// expensive mistake a training can make: say so when `timeout` is unset.
fn warn_gpus_without_timeout(checker: &mut BodyChecker<'_>, body: &Body, attributes: &crate::value::ValueMap) {
    if body.attribute("timeout").is_some() {
        return;
    }
    let Some(gpus) = body.blocks_named("resources").find_map(|resources| resources.body.attribute("gpus")) else { return };
    let asks_for_gpus = match attributes.get("resources").and_then(crate::value::Value::as_map).and_then(|resources| resources.get("gpus"))
    {
        Some(value) => value.as_number().is_none_or(|count| count > 0.0),
        None => true,
    };
    if asks_for_gpus {
        checker.diagnostics.push(
            Diagnostic::warning(
                codes::GPU_TRAINING_WITHOUT_TIMEOUT,
                "this training asks for GPUs and sets no `timeout`, so a hung run holds them for the default 24h",
            )
            .at(gpus.span, "GPUs for up to a day")
            .with_help("set `timeout` to a little more than a good run takes, such as `timeout = \"3h\"`"),
        );
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
