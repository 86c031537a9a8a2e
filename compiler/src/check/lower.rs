//! Lowering: a module's files into declarations (variables, locals,
//! resources, data sources, outputs, module calls, provider blocks), and the
//! dependency graph between them, built from the references in each.

use super::*;

impl Checker<'_> {
    /// Sorts the top-level blocks of a module into declarations.
    pub(super) fn lower<'l>(&mut self, loaded: &'l LoadedModule) -> Declarations<'l> {
        let mut declarations = Declarations::default();
        let mut first_spans: HashMap<(String, String), Span> = HashMap::new();
        for (_, body) in &loaded.files {
            for attribute in &body.attributes {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_ATTRIBUTE, format!("`{}` is set outside of any block", attribute.name.name))
                        .at(attribute.name.span, "top-level attribute")
                        .with_help(format!("put it inside a block, or in `locals {{ {} = ... }}`", attribute.name.name)),
                );
            }
            for block in &body.blocks {
                let kind = block.kind.name.as_str();
                let is_resource = self.schemas.resources.get(kind).is_some_and(|schema| schema.declarable);
                let labels_wanted: &[&str] = match kind {
                    "mlops" | "locals" => &[],
                    "variable" | "output" | "module" | "policy" => &["name"],
                    "provider" => &["type"],
                    "data" => &["kind", "name"],
                    _ if is_resource => &["name"],
                    _ => {
                        let mut candidates: Vec<&str> = TOP_LEVEL.to_vec();
                        candidates.extend(self.schemas.declarable_kinds());
                        self.diagnostics.push(
                            Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, format!("unknown block kind `{kind}`"))
                                .at(block.kind.span, "not a block kind")
                                .with_help(did_you_mean(kind, candidates.iter().copied()).unwrap_or_else(|| {
                                    format!("the resource kinds are {}", one_of(&self.schemas.declarable_kinds().collect::<Vec<_>>()))
                                })),
                        );
                        continue;
                    }
                };
                if block.labels.len() != labels_wanted.len() {
                    let example = match kind {
                        "mlops" | "locals" => format!("{kind} {{ ... }}"),
                        "data" => "data \"model\" \"baseline\" { ... }".to_owned(),
                        "provider" => "provider \"s3\" { ... }".to_owned(),
                        _ => format!("{kind} \"NAME\" {{ ... }}"),
                    };
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::WRONG_LABEL_COUNT,
                            format!(
                                "a `{kind}` block takes {} label{}, not {}",
                                labels_wanted.len(),
                                if labels_wanted.len() == 1 { "" } else { "s" },
                                block.labels.len()
                            ),
                        )
                        .at(
                            block.header_span(),
                            if labels_wanted.is_empty() {
                                "no labels wanted".to_owned()
                            } else {
                                format!("wants: {}", labels_wanted.join(", "))
                            },
                        )
                        .with_help(format!("write `{example}`")),
                    );
                    continue;
                }
                if let Some(label) = block.labels.last().filter(|label| !units::is_identifier(&label.value)) {
                    let fixed: String = label
                        .value
                        .chars()
                        .map(|character| if character.is_ascii_alphanumeric() || character == '-' { character } else { '_' })
                        .collect();
                    let fixed = if fixed.starts_with(|character: char| character.is_ascii_digit()) { format!("_{fixed}") } else { fixed };
                    self.diagnostics.push(
                        Diagnostic::error(codes::INVALID_NAME, format!("\"{}\" is not a valid name", label.value))
                            .at(label.span, "invalid name")
                            .with_help(format!("names start with a letter and hold letters, digits, `_` and `-`, such as \"{fixed}\"")),
                    );
                    continue;
                }
                // A provider is named by its type and alias together.
                let provider_alias = block
                    .body
                    .attribute("alias")
                    .and_then(|alias| literal_value(&alias.value))
                    .and_then(|alias| alias.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let key = match kind {
                    "mlops" | "locals" => None,
                    "provider" => {
                        if !self.schemas.providers.contains_key(&block.labels[0].value) {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::UNKNOWN_PROVIDER,
                                    format!("there is no provider type `{}`", block.labels[0].value),
                                )
                                .at(block.labels[0].span, "unknown provider type")
                                .with_help(
                                    did_you_mean(&block.labels[0].value, self.schemas.providers.keys().map(String::as_str)).unwrap_or_else(
                                        || format!("the provider types are {}", one_of(&self.schemas.providers.keys().collect::<Vec<_>>())),
                                    ),
                                ),
                            );
                            continue;
                        }
                        Some(("provider".to_owned(), format!("{}.{provider_alias}", block.labels[0].value)))
                    }
                    "data" => {
                        if !self.schemas.data.contains_key(&block.labels[0].value) {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    codes::UNKNOWN_BLOCK_KIND,
                                    format!("there is no data source kind `{}`", block.labels[0].value),
                                )
                                .at(block.labels[0].span, "unknown data kind")
                                .with_help(
                                    did_you_mean(&block.labels[0].value, self.schemas.data.keys().map(String::as_str)).unwrap_or_else(
                                        || format!("the data kinds are {}", one_of(&self.schemas.data.keys().collect::<Vec<_>>())),
                                    ),
                                ),
                            );
                            continue;
                        }
                        Some((format!("data.{}", block.labels[0].value), block.labels[1].value.clone()))
                    }
                    _ => Some((kind.to_owned(), block.labels[0].value.clone())),
                };
                if let Some(key) = &key {
                    if let Some(first) = first_spans.get(key) {
                        let what = if kind == "provider" {
                            format!("provider `{}`", key.1.trim_end_matches('.'))
                        } else {
                            format!("{kind} `{}`", key.1)
                        };
                        self.diagnostics.push(
                            Diagnostic::error(codes::DUPLICATE_NAME, format!("{what} is declared twice"))
                                .at(block.header_span(), "declared again here")
                                .with_secondary(*first, "first declared here")
                                .with_help(if kind == "provider" {
                                    "give the second one an `alias = \"...\"`".to_owned()
                                } else {
                                    "rename or remove one of them".to_owned()
                                }),
                        );
                        continue;
                    }
                    first_spans.insert(key.clone(), block.header_span());
                }
                match kind {
                    "mlops" => {
                        if let Some(first) = declarations.settings.first() {
                            self.diagnostics.push(
                                Diagnostic::error(codes::DUPLICATE_NAME, "the `mlops` settings block is declared twice")
                                    .at(block.kind.span, "declared again here")
                                    .with_secondary(first.kind.span, "first declared here")
                                    .with_help("merge them into one"),
                            );
                            continue;
                        }
                        declarations.settings.push(block);
                    }
                    "locals" => {
                        for attribute in &block.body.attributes {
                            let name = attribute.name.name.clone();
                            if let Some(first) = declarations.locals.get(&name) {
                                self.diagnostics.push(
                                    Diagnostic::error(codes::DUPLICATE_NAME, format!("local value `{name}` is declared twice"))
                                        .at(attribute.name.span, "declared again here")
                                        .with_secondary(first.name.span, "first declared here")
                                        .with_help("rename or remove one of them"),
                                );
                                continue;
                            }
                            declarations.locals.insert(name, attribute);
                        }
                        for nested in &block.body.blocks {
                            self.diagnostics.push(
                                Diagnostic::error(codes::UNKNOWN_BLOCK_KIND, "`locals` holds attributes only")
                                    .at(nested.kind.span, "a block inside locals")
                                    .with_help("write `name = value` lines"),
                            );
                        }
                    }
                    "variable" => {
                        declarations.variables.insert(block.labels[0].value.clone(), block);
                    }
                    "output" => {
                        declarations.outputs.insert(block.labels[0].value.clone(), block);
                    }
                    "module" => {
                        declarations.modules.insert(block.labels[0].value.clone(), block);
                    }
                    "policy" => {
                        declarations.policies.insert(block.labels[0].value.clone(), block);
                    }
                    "provider" => {
                        declarations.providers.insert((block.labels[0].value.clone(), provider_alias), block);
                    }
                    "data" => {
                        declarations.data.insert((block.labels[0].value.clone(), block.labels[1].value.clone()), block);
                    }
                    _ => {
                        declarations.resources.insert((kind.to_owned(), block.labels[0].value.clone()), block);
                    }
                }
            }
        }
        declarations
    }
}

/// The graph node a reference path names, if it names one.
pub(super) fn reference_target(schemas: &Schemas, path: &[(String, Span)], index_of: &NodeIndices) -> Option<NodeIndex> {
    let name = |position: usize| path.get(position).map(|(name, _)| name.clone());
    let node = match path.first()?.0.as_str() {
        "var" => Node::Variable(name(1)?),
        "local" => Node::Local(name(1)?),
        "module" => Node::Module(name(1)?),
        "data" => Node::Data(name(1)?, name(2)?),
        kind if schemas.resources.contains_key(kind) => Node::Resource(kind.to_owned(), name(1)?),
        provider if schemas.providers.contains_key(provider) => Node::Provider(provider.to_owned(), name(1).unwrap_or_default()),
        _ => return None,
    };
    index_of.get(&node).copied()
}

pub fn collect_references(expr: &Expr, out: &mut Vec<(Vec<(String, Span)>, Span)>) {
    // A traversal's root is visited again on its own, right after the
    // traversal (the walk is depth-first): count it once.
    let mut root_of_last_traversal: Option<Span> = None;
    expr.walk(&mut |inner| {
        if let ExprKind::Traversal { root, .. } = &inner.kind {
            root_of_last_traversal = Some(root.span);
        } else if matches!(inner.kind, ExprKind::Variable(_)) && root_of_last_traversal == Some(inner.span) {
            return;
        }
        if let Some(path) = inner.reference_path() {
            let span = path.iter().take(3).fold(path[0].1, |span, (_, step)| span.to(*step));
            out.push((path, span));
        }
    });
}

/// The references inside a `lifecycle` block (its conditions), which the
/// dependency graph leaves out.
pub(super) fn collect_lifecycle_references(body: &Body, out: &mut Vec<(Vec<(String, Span)>, Span)>) {
    for attribute in &body.attributes {
        collect_references(&attribute.value, out);
    }
    for block in &body.blocks {
        collect_lifecycle_references(&block.body, out);
    }
}

pub(super) fn collect_block_references(body: &Body, out: &mut Vec<(Vec<(String, Span)>, Span)>) {
    for attribute in &body.attributes {
        collect_references(&attribute.value, out);
    }
    for block in &body.blocks {
        if block.kind.name == "lifecycle" {
            continue;
        }
        collect_block_references(&block.body, out);
    }
}
