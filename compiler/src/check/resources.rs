//! Resources and data sources: each instance's body against its kind's
//! schema, the kind's ML rules, the provider it lives on, and what a
//! planner resolves for it.

use super::*;

impl Checker<'_> {
    pub(super) fn check_depends_on(&mut self, scope: &Scope, attribute: &Attribute) {
        let ExprKind::List(items) = &attribute.value.kind else {
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_REFERENCE, "`depends_on` must be a list of references")
                    .at(attribute.value.span, "not a list")
                    .with_help("write `depends_on = [dataset.NAME, ...]`"),
            );
            return;
        };
        for item in items {
            let valid_root = item.reference_path().is_some_and(|path| {
                let root = path[0].0.as_str();
                (root == "module" || root == "data" || self.schemas.resources.get(root).is_some_and(|schema| schema.declarable))
                    && path.len() >= if root == "data" { 3 } else { 2 }
            });
            if !valid_root {
                let help = match &item.kind {
                    ExprKind::String(text) => format!("write the reference without quotes: `{text}`"),
                    _ => "write a resource, data source or module reference, such as `dataset.NAME`".to_owned(),
                };
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::INVALID_REFERENCE,
                        "`depends_on` entries must be references to resources, data sources or modules",
                    )
                    .at(item.span, "not a reference")
                    .with_help(help),
                );
                continue;
            }
            // Resolve it (reports unknown names) without using the value.
            self.evaluate(scope, &Context { describe: "depends_on", ..Context::default() }, item);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_resource(
        &mut self,
        scope: &Scope,
        facts: &mut ModuleFacts,
        module_providers: &[(String, String)],
        module_path: &[String],
        kind: &str,
        name: &str,
        block: &Block,
        is_data: bool,
        depends_on: Vec<String>,
    ) -> (Value, CheckedResource) {
        let schema: &'static KindSchema = if is_data { &self.schemas.data[kind] } else { &self.schemas.resources[kind] };
        let body = &block.body;
        let what = if is_data { format!("data.{kind}.{name}") } else { format!("{kind} `{name}`") };
        let base_address = ResourceAddress::new(module_path, if is_data { Mode::Data } else { Mode::Managed }, kind, name);

        // provider
        let (provider_type, provider_alias) = self.resolve_provider(body, schema, module_providers, &what);
        let provider_settings =
            self.provider_settings.get(&(provider_type.clone(), provider_alias.clone().unwrap_or_default())).cloned().unwrap_or_default();
        // count / for_each
        let count_attribute = body.attribute("count");
        let for_each_attribute = body.attribute("for_each");
        if let (Some(_), Some(for_each)) = (count_attribute, for_each_attribute) {
            self.diagnostics.push(
                Diagnostic::error(codes::COUNT_AND_FOR_EACH, format!("{what} sets both `count` and `for_each`"))
                    .at(for_each.name.span, "conflicts with `count`")
                    .with_secondary(count_attribute.map(|count| count.name.span).unwrap_or(for_each.name.span), "`count` set here")
                    .with_help("keep one: `count` for N identical instances, `for_each` for one instance per key"),
            );
        }
        let meta_context = Context { describe: "count and for_each", ..Context::default() };
        enum Expansion {
            Single,
            Count(Option<usize>),
            ForEach(Option<Vec<(String, Value)>>, Type),
        }
        let mut expansion = Expansion::Single;
        if let Some(count) = count_attribute {
            self.check_static_expansion(&count.value, "count");
            let value = self.evaluate(scope, &meta_context, &count.value);
            expansion = match value.unmark().0 {
                Value::Number(number) if number.fract() == 0.0 && *number > crate::limits::MAX_INSTANCES_PER_BLOCK as f64 => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::LIMIT_EXCEEDED,
                            format!(
                                "`count` is {}, more than the {} instances one block may have",
                                crate::value::format_number(*number),
                                crate::limits::MAX_INSTANCES_PER_BLOCK
                            ),
                        )
                        .at(count.value.span, "too many instances")
                        .with_help("ask for fewer; a larger fleet belongs in several blocks or configurations"),
                    );
                    Expansion::Count(None)
                }
                Value::Number(number) if number.fract() == 0.0 && *number >= 0.0 => Expansion::Count(Some(*number as usize)),
                Value::Number(number) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::OUT_OF_RANGE,
                            format!("`count` must be a whole number of at least 0, not {}", crate::value::format_number(*number)),
                        )
                        .at(count.value.span, "invalid count")
                        .with_help("use 0 or a positive whole number"),
                    );
                    Expansion::Count(None)
                }
                Value::Unknown(Type::Number | Type::Any) => Expansion::Count(None),
                other => {
                    self.diagnostics.push(
                        Diagnostic::error(codes::TYPE_MISMATCH, format!("`count` must be a number, not {}", other.type_of()))
                            .at(count.value.span, format!("this is {}", other.type_of()))
                            .with_help("use for_each to make one instance per element of a collection"),
                    );
                    Expansion::Count(None)
                }
            };
        } else if let Some(for_each) = for_each_attribute {
            self.check_static_expansion(&for_each.value, "for_each");
            let value = self.evaluate(scope, &meta_context, &for_each.value);
            let instances = self.for_each_instances(&for_each.value, &value).filter(|instances| {
                let fits = instances.len() <= crate::limits::MAX_INSTANCES_PER_BLOCK;
                if !fits {
                    self.diagnostics.push(
                        Diagnostic::error(
                            codes::LIMIT_EXCEEDED,
                            format!(
                                "`for_each` has {} keys, more than the {} instances one block may have",
                                instances.len(),
                                crate::limits::MAX_INSTANCES_PER_BLOCK
                            ),
                        )
                        .at(for_each.value.span, "too many instances")
                        .with_help("ask for fewer; a larger fleet belongs in several blocks or configurations"),
                    );
                }
                fits
            });
            expansion = instances.map_or_else(
                || Expansion::ForEach(None, value.type_of().element().unwrap_or(Type::Any)),
                |instances| Expansion::ForEach(Some(instances), Type::Any),
            );
        }
        if let Some(depends) = body.attribute("depends_on") {
            self.check_depends_on(scope, depends);
        }
        let lifecycle = self.check_lifecycle(body, schema, &what);
        let meta_block_names: &[&str] = &["lifecycle"];

        // One evaluation per known instance; a single symbolic one otherwise.
        let symbolic: Vec<(InstanceKey, Context)> = match &expansion {
            Expansion::Single => vec![(InstanceKey::None, Context::default())],
            Expansion::Count(Some(count)) => (0..*count)
                .map(|index| (InstanceKey::Index(index), Context { count_index: Some(Value::Number(index as f64)), ..Context::default() }))
                .collect(),
            Expansion::Count(None) => {
                vec![(InstanceKey::Index(0), Context { count_index: Some(Value::Unknown(Type::Number)), ..Context::default() })]
            }
            Expansion::ForEach(Some(instances), _) => instances
                .iter()
                .map(|(key, value)| {
                    (
                        InstanceKey::Key(key.clone()),
                        Context { each: Some((Value::String(key.clone()), value.clone())), ..Context::default() },
                    )
                })
                .collect(),
            Expansion::ForEach(None, element) => vec![(
                InstanceKey::Key(String::new()),
                Context { each: Some((Value::Unknown(Type::String), Value::Unknown(element.clone()))), ..Context::default() },
            )],
        };
        let expansion_known = !matches!(expansion, Expansion::Count(None) | Expansion::ForEach(None, _));
        // The whole configuration's instances, modules included, are bounded
        // too: a fan-out of module calls multiplies.
        let symbolic = if self.instances + symbolic.len() > crate::limits::MAX_INSTANCES {
            if self.instances <= crate::limits::MAX_INSTANCES {
                self.diagnostics.push(
                    Diagnostic::error(
                        codes::LIMIT_EXCEEDED,
                        format!("the configuration makes more than {} resource instances", crate::limits::MAX_INSTANCES),
                    )
                    .at(block.header_span(), format!("{what} goes past the limit"))
                    .with_help("split the configuration into several, each with its own state"),
                );
            }
            self.instances = crate::limits::MAX_INSTANCES + 1;
            Vec::new()
        } else {
            self.instances += symbolic.len();
            symbolic
        };
        let mut instances = Vec::with_capacity(symbolic.len());
        for (key, mut context) in symbolic {
            context.describe = if is_data { "a data source" } else { "a resource" };
            let address = base_address.clone().with_key(key.clone()).to_string();
            let mut checker = BodyChecker {
                scope,
                schemas: self.schemas,
                diagnostics: &mut self.diagnostics,
                provider: Some(provider_type.as_str()),
                context: context.clone(),
                row: None,
                self_value: Some(Value::Unknown(Type::reference(kind, is_data))),
                deferred: self.resolver.is_some().then(Vec::new),
                path: Vec::new(),
            };
            if !is_data {
                checker.row = crate::rules::expression_row(kind, &mut checker, body, facts);
            }
            let mut reserved: Vec<&str> = RESERVED_META.to_vec();
            reserved.extend(meta_block_names);
            let mut attributes = checker.check(body, &schema.body, block.header_span(), &what, &reserved);
            if !is_data {
                let target = crate::rules::ProviderTarget { provider_type: &provider_type, settings: &provider_settings };
                crate::rules::check_kind(
                    kind,
                    &mut crate::rules::KindCheck {
                        checker: &mut checker,
                        name,
                        header: block.header_span(),
                        body,
                        attributes: &mut attributes,
                        target: &target,
                        facts,
                    },
                );
            }
            let deferred = checker.deferred.take().unwrap_or_default();
            // Computed attributes are known after apply.
            for (attribute_name, attribute) in &schema.body.attributes {
                if attribute.computed && (!attribute.configurable || attributes.get(attribute_name).is_none_or(Value::is_null)) {
                    attributes.insert(attribute_name.clone(), Value::Unknown(attribute.ty.clone()));
                }
                if attribute.reads_as.as_deref() == Some("metrics") {
                    let declared = attributes.get(attribute_name).and_then(|value| value.as_list().map(<[Value]>::to_vec));
                    let metrics = match declared {
                        Some(names) if names.iter().all(Value::is_known) => Value::Map(
                            names
                                .iter()
                                .filter_map(|name| name.as_str().map(|name| (name.to_owned(), Value::Unknown(Type::Number))))
                                .collect(),
                        ),
                        _ => Value::Unknown(Type::map(Type::Number)),
                    };
                    attributes.insert(attribute_name.clone(), metrics);
                }
            }
            if let Some(resolver) = self.resolver.as_deref_mut() {
                if expansion_known && !self.diagnostics.has_errors() {
                    let known = resolver.resolve(&InstanceDraft {
                        address: &address,
                        kind,
                        is_data,
                        provider_type: &provider_type,
                        provider_alias: provider_alias.as_deref(),
                        module_path,
                        module_directory: &scope.module_directory,
                        attributes: &attributes,
                        deferred: &deferred,
                        lifecycle: &lifecycle,
                        depends_on: &depends_on,
                        span: block.header_span(),
                    });
                    attributes.extend(known);
                }
            }
            instances.push(CheckedInstance {
                key,
                value: Arc::new(ResourceValue { address, kind: kind.to_owned(), is_data, attributes }),
                deferred,
            });
        }
        let value = match &expansion {
            Expansion::Single => instances.first().map_or(Value::unknown_any(), |instance| Value::Resource(instance.value.clone())),
            Expansion::Count(Some(_)) => Value::List(instances.iter().map(|instance| Value::Resource(instance.value.clone())).collect()),
            Expansion::ForEach(Some(_), _) => Value::Map(
                instances
                    .iter()
                    .filter_map(|instance| match &instance.key {
                        InstanceKey::Key(key) => Some((key.clone(), Value::Resource(instance.value.clone()))),
                        _ => None,
                    })
                    .collect(),
            ),
            Expansion::Count(None) => Value::Unknown(Type::list(Type::reference(kind, is_data))),
            Expansion::ForEach(None, _) => Value::Unknown(Type::map(Type::reference(kind, is_data))),
        };
        let checked = CheckedResource {
            kind: kind.to_owned(),
            name: name.to_owned(),
            is_data,
            provider_type,
            provider_alias,
            instances: if expansion_known { instances } else { Vec::new() },
            expansion_known,
            depends_on,
            lifecycle,
            span: block.header_span(),
        };
        (value, checked)
    }

    pub(super) fn resolve_provider(
        &mut self,
        body: &Body,
        schema: &KindSchema,
        module_providers: &[(String, String)],
        what: &str,
    ) -> (String, Option<String>) {
        let default = schema.providers.first().cloned().unwrap_or_else(|| "local".to_owned());
        let Some(attribute) = body.attribute("provider") else { return (default, None) };
        let Some(path) = attribute.value.reference_path().filter(|path| path.len() <= 2) else {
            let help = match &attribute.value.kind {
                ExprKind::String(text) => format!("write it without quotes: `provider = {text}`"),
                _ => "write `provider = TYPE` or `provider = TYPE.ALIAS`".to_owned(),
            };
            self.diagnostics.push(
                Diagnostic::error(codes::INVALID_REFERENCE, "`provider` must name a provider")
                    .at(attribute.value.span, "not a provider reference")
                    .with_help(help),
            );
            return (default, None);
        };
        let (provider_type, type_span) = path[0].clone();
        let alias = path.get(1).map(|(alias, _)| alias.clone());
        if !self.schemas.providers.contains_key(&provider_type) {
            self.diagnostics.push(
                Diagnostic::error(codes::UNKNOWN_PROVIDER, format!("there is no provider type `{provider_type}`"))
                    .at(type_span, "unknown provider type")
                    .with_help(
                        did_you_mean(&provider_type, self.schemas.providers.keys().map(String::as_str))
                            .unwrap_or_else(|| format!("{what} can use {}", one_of(&schema.providers))),
                    ),
            );
            return (default, None);
        }
        if let Some(alias) = &alias {
            let declared = module_providers
                .iter()
                .chain(self.root_providers.iter())
                .any(|(declared_type, declared_alias)| declared_type == &provider_type && declared_alias == alias);
            if !declared {
                let aliases: Vec<&str> = module_providers
                    .iter()
                    .chain(self.root_providers.iter())
                    .filter(|(declared_type, declared_alias)| declared_type == &provider_type && !declared_alias.is_empty())
                    .map(|(_, alias)| alias.as_str())
                    .collect();
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_PROVIDER, format!("no `{provider_type}` provider has the alias `{alias}`"))
                        .at(attribute.value.span, "undeclared provider configuration")
                        .with_help(match crate::suggest::closest(alias, aliases.iter().copied()) {
                            Some(closest) => format!("did you mean `{provider_type}.{closest}`?"),
                            None => format!("declare it: provider \"{provider_type}\" {{ alias = \"{alias}\" }}"),
                        }),
                );
            }
        }
        if !schema.providers.iter().any(|supported| supported == &provider_type) {
            self.diagnostics.push(
                Diagnostic::error(codes::PROVIDER_KIND_MISMATCH, format!("the {provider_type} provider cannot manage a {}", schema.name))
                    .at(attribute.value.span, format!("{provider_type} does not serve {}", schema.name))
                    .with_help(format!("a {} can live on {}", schema.name, one_of(&schema.providers))),
            );
            return (default, alias);
        }
        (provider_type, alias)
    }
}
