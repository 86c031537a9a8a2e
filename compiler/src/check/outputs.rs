//! Outputs: their values, sensitivity and preconditions.

use super::*;

impl Checker<'_> {
    pub(super) fn check_output(&mut self, scope: &Scope, name: &str, block: &Block) -> CheckedOutput {
        let body = &block.body;
        for attribute in &body.attributes {
            if !["value", "description", "sensitive", "depends_on"].contains(&attribute.name.name.as_str()) {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("output `{name}` has no attribute `{}`", attribute.name.name))
                        .at(attribute.name.span, "unknown attribute")
                        .with_help(
                            did_you_mean(&attribute.name.name, ["value", "description", "sensitive", "depends_on"])
                                .unwrap_or_else(|| "an output takes value, description, sensitive and depends_on".to_owned()),
                        ),
                );
            }
        }
        let context = Context { describe: "an output", ..Context::default() };
        let sensitive_attribute = body.attribute("sensitive");
        let declared_sensitive =
            sensitive_attribute.and_then(|attribute| literal_value(&attribute.value)).and_then(|value| value.as_bool()).unwrap_or(false);
        let mut residual = None;
        let value = match body.attribute("value") {
            Some(attribute) => {
                let value = self.evaluate(scope, &context, &attribute.value);
                if value.contains_sensitive() && !declared_sensitive {
                    self.diagnostics.push(
                        Diagnostic::error(codes::SENSITIVE_OUTPUT, format!("output `{name}` exposes a sensitive value"))
                            .at(attribute.value.span, "contains a sensitive value")
                            .with_help("add `sensitive = true` to the output if showing it is intended"),
                    );
                }
                if self.resolver.is_some() && !value.is_wholly_known() {
                    residual = Some(crate::residual::residual(&attribute.value, scope, &context, self.schemas));
                }
                value
            }
            None => {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("output `{name}` has no `value`"))
                        .at(block.header_span(), "`value` is required")
                        .with_help("add `value = ...`"),
                );
                Value::unknown_any()
            }
        };
        if let Some(depends_on) = body.attribute("depends_on") {
            self.check_depends_on(scope, depends_on);
        }
        let description = body
            .attribute("description")
            .and_then(|attribute| literal_value(&attribute.value))
            .and_then(|value| value.as_str().map(str::to_owned));
        CheckedOutput {
            name: name.to_owned(),
            value: value.mark_if(declared_sensitive),
            residual,
            sensitive: declared_sensitive,
            description,
        }
    }
}
