//! `lifecycle` blocks: prevent_destroy, create_before_destroy,
//! ignore_changes and the conditions, checked against the kind.

use super::*;

impl Checker<'_> {
    pub(super) fn check_lifecycle(&mut self, body: &Body, schema: &KindSchema, what: &str) -> Lifecycle {
        let mut lifecycle = Lifecycle::default();
        let mut blocks = body.blocks_named("lifecycle");
        let Some(block) = blocks.next() else { return lifecycle };
        if let Some(extra) = blocks.next() {
            self.diagnostics.push(
                Diagnostic::error(codes::TOO_MANY_BLOCKS, format!("{what} may have one `lifecycle` block"))
                    .at(extra.kind.span, "one too many")
                    .with_secondary(block.kind.span, "first one here")
                    .with_help("merge the lifecycle blocks"),
            );
        }
        for attribute in &block.body.attributes {
            let setting = attribute.name.name.as_str();
            match setting {
                "prevent_destroy" | "create_before_destroy" | "destroy" => {
                    match literal_value(&attribute.value) {
                        Some(Value::Bool(flag)) => match setting {
                            "prevent_destroy" => lifecycle.prevent_destroy = flag,
                            "create_before_destroy" => lifecycle.create_before_destroy = flag,
                            _ => {
                                if !schema.retained {
                                    self.diagnostics.push(
                                    Diagnostic::error(codes::INVALID_LIFECYCLE, format!("`destroy` only applies to retained kinds, and a {} is not retained", schema.name))
                                        .at(attribute.name.span, "has no effect here")
                                        .with_help("datasets and models are retained when their block is removed; other kinds are always destroyed"),
                                );
                                }
                                lifecycle.destroy = flag;
                            }
                        },
                        _ => self.diagnostics.push(
                            Diagnostic::error(codes::INVALID_LIFECYCLE, format!("`{setting}` must be a literal true or false"))
                                .at(attribute.value.span, "not a literal bool")
                                .with_help("lifecycle settings are read before anything is evaluated"),
                        ),
                    }
                }
                "ignore_changes" => {
                    let ExprKind::List(items) = &attribute.value.kind else {
                        self.diagnostics.push(
                            Diagnostic::error(codes::INVALID_LIFECYCLE, "`ignore_changes` must be a list of attribute names")
                                .at(attribute.value.span, "not a list")
                                .with_help("write `ignore_changes = [tags, description]`"),
                        );
                        continue;
                    };
                    for item in items {
                        let name = match &item.kind {
                            ExprKind::Variable(name) | ExprKind::String(name) => name.clone(),
                            _ => {
                                self.diagnostics.push(
                                    Diagnostic::error(codes::INVALID_LIFECYCLE, "`ignore_changes` entries are attribute names")
                                        .at(item.span, "not an attribute name")
                                        .with_help("write the bare attribute name, such as `tags`"),
                                );
                                continue;
                            }
                        };
                        if !schema.body.attributes.get(&name).is_some_and(|attribute| attribute.is_settable())
                            && !schema.body.blocks.contains_key(&name)
                        {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::INVALID_LIFECYCLE,
                                    format!("a {} has no attribute `{name}` to ignore", schema.name),
                                )
                                .at(item.span, "not an attribute of this kind")
                                .with_optional_help(did_you_mean(&name, schema.body.settable_names())),
                            );
                            continue;
                        }
                        lifecycle.ignore_changes.push(name);
                    }
                }
                other => self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("a lifecycle block has no setting `{other}`"))
                        .at(attribute.name.span, "unknown setting")
                        .with_help(
                            did_you_mean(other, ["prevent_destroy", "create_before_destroy", "ignore_changes", "destroy"]).unwrap_or_else(
                                || "lifecycle takes prevent_destroy, create_before_destroy, ignore_changes and destroy".to_owned(),
                            ),
                        ),
                ),
            }
        }
        lifecycle
    }
}
