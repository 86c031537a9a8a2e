//! `policy` blocks: the settings checked against the stdlib's `policy`
//! schema, the kind named by `resource`, and the condition and message
//! type-checked with `self`, `change` and `plan` unknown. Judging them
//! against resources is [`crate::policy`]'s.

use super::*;
use crate::policy::{change_type, plan_type, Enforcement, PolicyProgram, PolicySubject};

/// A checked policy before its module's scope is kept for it.
pub(super) struct PolicyDraft {
    name: String,
    kind: Option<String>,
    enforcement: Enforcement,
    description: Option<String>,
    header: Span,
    condition: Expr,
    error_message: Expr,
}

impl PolicyDraft {
    pub(super) fn into_program(self, module_path: Vec<String>, scope: Arc<Scope>) -> PolicyProgram {
        PolicyProgram {
            name: self.name,
            module_path,
            kind: self.kind,
            enforcement: self.enforcement,
            description: self.description,
            header: self.header,
            condition: self.condition,
            error_message: self.error_message,
            scope,
        }
    }
}

impl Checker<'_> {
    pub(super) fn check_policy(&mut self, scope: &Scope, name: &str, block: &Block) -> Option<PolicyDraft> {
        let schema = &self.schemas.language["policy"];
        let what = format!("policy `{name}`");
        let mut checker = self.body_checker(scope, None, "a policy");
        let settings = checker.check(&block.body, &schema.body, block.header_span(), &what, &["resource", "condition", "error_message"]);
        for nested in &block.body.blocks {
            self.diagnostics.push(
                Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, "a policy holds attributes only")
                    .at(nested.kind.span, "a block inside a policy")
                    .with_help("write `resource`, `condition`, `error_message` and `enforcement` as attributes"),
            );
        }
        let enforcement = match settings.get("enforcement") {
            None => Some(Enforcement::Error),
            Some(value) => match value.as_str() {
                Some(text) => Enforcement::parse(text),
                // The allowed values were checked with the schema.
                None if value.is_known() => None,
                None => {
                    let span = block.body.attribute("enforcement").map_or(block.header_span(), |attribute| attribute.value.span);
                    self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_POLICY, "a policy's `enforcement` must be known before anything is planned")
                            .at(span, "not known until apply")
                            .with_help("write \"error\", \"warning\" or \"advisory\", or a variable's value"),
                    );
                    None
                }
            },
        };
        let description = settings.get("description").and_then(|value| value.as_str().map(str::to_owned));
        let kind = self.policy_kind(block)?;

        let context = Context {
            self_value: kind.as_ref().map(|kind| Value::Unknown(Type::reference(kind, false))),
            change: kind.as_ref().map(|_| Value::Unknown(change_type())),
            plan: Some(Value::Unknown(plan_type())),
            describe: if kind.is_some() { "a policy" } else { "a policy without `resource`" },
            ..Context::default()
        };
        let condition = block.body.attribute("condition")?;
        let error_message = block.body.attribute("error_message")?;
        let before = self.diagnostics.error_count();
        let condition_value = self.evaluate(scope, &context, &condition.value);
        let message_value = self.evaluate(scope, &context, &error_message.value);
        if self.diagnostics.error_count() > before {
            return None;
        }
        for (attribute, value, wanted) in [(condition, &condition_value, Type::Bool), (error_message, &message_value, Type::String)] {
            let found = value.type_of();
            // A message may be a number or bool: it reads as text.
            let readable =
                found.is_any() || wanted.accepts(&found) || (wanted == Type::String && matches!(found, Type::Number | Type::Bool));
            if !readable {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_POLICY,
                        format!("a policy's `{}` must be a {wanted}, not a {found}", attribute.name.name),
                    )
                    .at(attribute.value.span, format!("a {found}"))
                    .with_help(if wanted == Type::Bool {
                        "write a comparison, such as `self.replicas.min >= 2`"
                    } else {
                        "write the message as a string; it may interpolate `${self.name}`"
                    }),
                );
                return None;
            }
        }
        Some(PolicyDraft {
            name: name.to_owned(),
            kind,
            enforcement: enforcement?,
            description,
            header: block.header_span(),
            condition: condition.value.clone(),
            error_message: error_message.value.clone(),
        })
    }

    /// The kind `resource = KIND` names: `Some(None)` for a policy over the
    /// plan, `None` after a reported mistake.
    fn policy_kind(&mut self, block: &Block) -> Option<Option<String>> {
        let Some(attribute) = block.body.attribute("resource") else { return Some(None) };
        let word = match &attribute.value.kind {
            ExprKind::Variable(word) | ExprKind::String(word) => word.clone(),
            ExprKind::Traversal { root, .. } if matches!(&root.kind, ExprKind::Variable(word) if word == "data") => {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_POLICY, "a policy is about managed resources, not data sources")
                        .at(attribute.value.span, "a data source")
                        .with_help("a policy can read a data source in its condition: data.KIND.NAME.ATTRIBUTE"),
                );
                return None;
            }
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_POLICY, "`resource` names a resource kind")
                        .at(attribute.value.span, "not a kind")
                        .with_help("write the kind bare, such as `resource = serving`"),
                );
                return None;
            }
        };
        match self.schemas.resources.get(&word) {
            Some(schema) if schema.declarable => Some(Some(word)),
            Some(_) => {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_POLICY, format!("a {word} is not declared on its own, so no policy can be about it"))
                        .at(attribute.value.span, "not a declarable kind")
                        .with_help(if word == "model_version" {
                            "versions are registered and deleted with their model: write `resource = model` and read `change.action`"
                                .to_owned()
                        } else {
                            format!("the kinds are {}", one_of(&self.schemas.declarable_kinds().collect::<Vec<_>>()))
                        }),
                );
                None
            }
            None => {
                self.diagnostics.push(
                    Diagnostic::error(codes::INVALID_POLICY, format!("there is no resource kind `{word}`"))
                        .at(attribute.value.span, "not a kind")
                        .with_help(
                            did_you_mean(&word, self.schemas.declarable_kinds()).unwrap_or_else(|| {
                                format!("the kinds are {}", one_of(&self.schemas.declarable_kinds().collect::<Vec<_>>()))
                            }),
                        ),
                );
                None
            }
        }
    }
}

/// Every managed resource instance of the tree, as validate judges them:
/// what the plan will do to them is not known yet.
pub(super) fn subjects(root: &CheckedModule) -> Vec<PolicySubject> {
    let change = Value::Unknown(change_type());
    root.all_resources()
        .into_iter()
        .filter(|(_, resource)| !resource.is_data)
        .flat_map(|(_, resource)| {
            resource.instances.iter().map(|instance| PolicySubject {
                address: instance.value.address.clone(),
                kind: resource.kind.clone(),
                value: Value::Resource(instance.value.clone()),
                change: change.clone(),
                header: Some(resource.span),
            })
        })
        .collect()
}
