//! Trainings: declared metric names are identifiers, each declared once.

use crate::ast::{Body, ExprKind};
use crate::body::BodyChecker;
use crate::diagnostic::{codes, Diagnostic};

use super::KindCheck;

pub(super) fn check(check: &mut KindCheck<'_, '_>) {
    check_training(check.checker, check.body);
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
