//! The `mlops` block: required versions and the state backend.

use super::*;

impl Checker<'_> {
    pub(super) fn check_settings(&mut self, scope: &Scope, settings: &[&Block], is_root: bool) -> Option<(String, ValueMap)> {
        let block = settings.first()?;
        for attribute in &block.body.attributes {
            if attribute.name.name != "required_version" {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("the mlops block has no attribute `{}`", attribute.name.name))
                        .at(attribute.name.span, "unknown attribute")
                        .with_help("the mlops block takes `required_version` and a `backend` block"),
                );
            }
        }
        if let Some(attribute) = block.body.attribute("required_version") {
            let value = self.evaluate(scope, &Context { describe: "the mlops block", ..Context::default() }, &attribute.value);
            if let Some(constraint) = value.as_str() {
                let version = env!("CARGO_PKG_VERSION");
                match units::version_satisfies(constraint, version) {
                    Ok(true) => {}
                    Ok(false) => self.diagnostics.push(
                        Diagnostic::error(
                            codes::UNSUPPORTED_VERSION,
                            format!("this configuration needs mlops {constraint}, but this is mlops {version}"),
                        )
                        .at(attribute.value.span, "not satisfied")
                        .with_help("install a version of mlops that satisfies the constraint"),
                    ),
                    Err(message) => self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_VERSION_CONSTRAINT, message)
                            .at(attribute.value.span, "unreadable constraint")
                            .with_help("write comparisons such as \">= 0.1\" or \"~> 0.1, < 1.0\""),
                    ),
                }
            } else if value.is_known() {
                check_type(&mut self.diagnostics, &attribute.value, &value, &Type::String, "required_version");
            }
        }
        let mut backend = None;
        for nested in &block.body.blocks {
            if nested.kind.name != "backend" {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("the mlops block has no block `{}`", nested.kind.name))
                        .at(nested.kind.span, "unknown block")
                        .with_optional_help(
                            did_you_mean(&nested.kind.name, ["backend"]).or(Some("the mlops block takes a `backend` block".to_owned())),
                        ),
                );
                continue;
            }
            let [label] = nested.labels.as_slice() else {
                self.diagnostics.push(
                    Diagnostic::error(codes::WRONG_LABEL_COUNT, "a `backend` block takes one label: its type")
                        .at(nested.header_span(), "wants: type")
                        .with_help("write `backend \"s3\" { ... }`"),
                );
                continue;
            };
            let Some(schema) = self.schemas.backends.get(&label.value) else {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_BACKEND, format!("there is no state backend `{}`", label.value))
                        .at(label.span, "unknown backend")
                        .with_help(
                            did_you_mean(&label.value, self.schemas.backends.keys().map(String::as_str)).unwrap_or_else(|| {
                                format!("the backends are {}", one_of(&self.schemas.backends.keys().collect::<Vec<_>>()))
                            }),
                        ),
                );
                continue;
            };
            let mut checker = self.body_checker(scope, None, "a backend block");
            let values = checker.check(&nested.body, &schema.body, nested.header_span(), &format!("backend `{}`", label.value), &[]);
            if is_root && backend.is_none() {
                backend = Some((label.value.clone(), values));
            }
        }
        backend
    }
}
