//! `count` and `for_each`: which instances a block expands into, from
//! values known before anything is applied.

use super::*;

impl Checker<'_> {
    /// `count`/`for_each` must be known when planning: no resource, data
    /// source or module references.
    pub(super) fn check_static_expansion(&mut self, expr: &Expr, what: &str) {
        let mut references = Vec::new();
        collect_references(expr, &mut references);
        for (path, span) in references {
            let root = path[0].0.as_str();
            if root == "module" || root == "data" || self.schemas.resources.contains_key(root) {
                let shown: Vec<&str> = path.iter().map(|(part, _)| part.as_str()).collect();
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::COUNT_DEPENDS_ON_APPLY,
                        format!("`{what}` depends on `{}`, which is only known after apply", shown.join(".")),
                    )
                    .at(span, "known after apply")
                    .with_help(format!(
                        "the number of instances must be known when planning; base `{what}` on variables, locals and literals"
                    )),
                );
            }
        }
    }

    pub(super) fn for_each_instances(&mut self, expr: &Expr, value: &Value) -> Option<Vec<(String, Value)>> {
        let (unmarked, sensitive) = value.unmark();
        if sensitive {
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_FOR_EACH, "`for_each` cannot use a sensitive value: its keys appear in every address")
                    .at(expr.span, "sensitive")
                    .with_help("iterate over something that is not secret"),
            );
            return None;
        }
        match unmarked {
            Value::Map(entries) => Some(entries.iter().map(|(key, value)| (key.clone(), value.clone())).collect()),
            Value::List(items) => {
                let mut seen = HashSet::new();
                let mut instances = Vec::new();
                for item in items {
                    match item.unmark().0 {
                        Value::String(key) => {
                            if !seen.insert(key.clone()) {
                                self.diagnostics.push(
                                    Diagnostic::error(codes::INVALID_FOR_EACH, format!("`for_each` has the key \"{key}\" twice"))
                                        .at(expr.span, "duplicate key")
                                        .with_help("each key names one instance, so keys must be unique"),
                                );
                                return None;
                            }
                            instances.push((key.clone(), Value::String(key.clone())));
                        }
                        Value::Unknown(_) => return None,
                        other => {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::INVALID_FOR_EACH,
                                    format!("`for_each` over a list needs strings, not {}", other.type_of()),
                                )
                                .at(expr.span, "not a list of strings")
                                .with_help("give a map, or a list of unique strings"),
                            );
                            return None;
                        }
                    }
                }
                Some(instances)
            }
            Value::Unknown(ty) if ty.is_collection() => None,
            other => {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_FOR_EACH,
                        format!("`for_each` needs a map or a list of strings, not {}", other.type_of()),
                    )
                    .at(expr.span, "not a collection")
                    .with_help("give a map, or a list of unique strings"),
                );
                None
            }
        }
    }
}
