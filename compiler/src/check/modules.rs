//! Module calls: local and registry sources (registry modules are read from
//! the cache that `mlops init` filled, checked against the lock), the
//! arguments against the child's variables, and the child module itself.

use super::*;

impl Checker<'_> {
    /// The cached directory of a registry module, checked against the
    /// digest `mlops.lock.hcl` pins for it.
    pub(super) fn installed_module(&mut self, name: &str, source: &str) -> Result<PathBuf, Diagnostic> {
        if let Some(directory) = self.installed_modules.get(source) {
            return Ok(directory.clone());
        }
        let pins = crate::lock::read(&*self.files, &self.root_directory).map_err(|message| {
            Diagnostic::error(codes::REMOTE_MODULE_NOT_INSTALLED, message).with_help("run `mlops init` to write mlops.lock.hcl again")
        })?;
        let pinned_digest = source.split_once('@').map(|(_, digest)| digest.to_owned());
        let Some(digest) = pins.get(source).cloned() else {
            return Err(Diagnostic::error(
                codes::REMOTE_MODULE_NOT_INSTALLED,
                format!("module `{name}`: \"{source}\" comes from a registry and is not installed"),
            )
            .with_help("run `mlops init` to download it and pin it in mlops.lock.hcl"));
        };
        if pinned_digest.as_ref().is_some_and(|pinned| *pinned != digest) {
            return Err(Diagnostic::error(
                codes::MODULE_CONTENT_MISMATCH,
                format!("module `{name}`: mlops.lock.hcl pins \"{source}\" to {digest}, which is not the digest the source names"),
            )
            .with_help("run `mlops init` to pin the digest in the source"));
        }
        let directory = crate::lock::cache_directory(&self.root_directory, &digest);
        match crate::lock::verify(&*self.files, &directory, &digest) {
            Ok(()) => {
                self.installed_modules.insert(source.to_owned(), directory.clone());
                Ok(directory)
            }
            Err(crate::lock::CacheProblem::Missing) => Err(Diagnostic::error(
                codes::REMOTE_MODULE_NOT_INSTALLED,
                format!("module `{name}`: \"{source}\" is pinned in mlops.lock.hcl but not downloaded"),
            )
            .with_help("run `mlops init` to download it")),
            Err(crate::lock::CacheProblem::Changed(file)) => Err(Diagnostic::error(
                codes::MODULE_CONTENT_MISMATCH,
                format!(
                    "module `{name}`: the content of \"{source}\" no longer matches the digest pinned in mlops.lock.hcl ({digest}): `{file}` differs",
                ),
            )
            .with_help("run `mlops init` to download the pinned content again; if the new content is intended, review it and run `mlops init -upgrade`")),
        }
    }

    pub(super) fn check_module_call(
        &mut self,
        scope: &Scope,
        parent_path: &[String],
        name: &str,
        block: &Block,
    ) -> (Value, Option<CheckedModule>) {
        let context = Context { describe: "a module call", ..Context::default() };
        let Some(source_attribute) = block.body.attribute("source") else {
            self.diagnostics.push(
                Diagnostic::error(codes::MISSING_REQUIRED_ATTRIBUTE, format!("module `{name}` has no `source`"))
                    .at(block.header_span(), "`source` is required")
                    .with_help("add `source = \"./modules/NAME\"`"),
            );
            return (Value::unknown_any(), None);
        };
        let Some(Value::String(source)) = literal_value(&source_attribute.value) else {
            self.diagnostics.push(
                Diagnostic::error(codes::TYPE_MISMATCH, "a module `source` must be a literal string")
                    .at(source_attribute.value.span, "not a literal string")
                    .with_help("sources are resolved before anything is evaluated; write the path as a plain string"),
            );
            return (Value::unknown_any(), None);
        };
        let registry_directory = if source.starts_with("oci://") {
            match self.installed_module(name, &source) {
                Ok(directory) => Some(directory),
                Err(diagnostic) => {
                    self.diagnostics.push(diagnostic.at(source_attribute.value.span, "registry module"));
                    return (Value::unknown_any(), None);
                }
            }
        } else {
            None
        };
        if registry_directory.is_none() && !(source.starts_with("./") || source.starts_with("../") || source.starts_with('/')) {
            self.diagnostics.push(
                Diagnostic::error(codes::MODULE_NOT_FOUND, format!("\"{source}\" is not a module source"))
                    .at(source_attribute.value.span, "unknown source form")
                    .with_help("local modules start with ./ or ../; registry modules with oci://"),
            );
            return (Value::unknown_any(), None);
        }
        let directory = registry_directory.clone().unwrap_or_else(|| scope.module_directory.join(&source));
        let canonical = directory.canonicalize().unwrap_or_else(|_| crate::files::normal(&directory));
        if self.call_stack.contains(&canonical) {
            self.diagnostics.push(
                Diagnostic::error(
                    codes::MODULE_RECURSION,
                    format!("module `{name}` calls a module that is already being called: \"{source}\""),
                )
                .at(source_attribute.value.span, "recursive module")
                .with_help("a module cannot call itself, directly or through other modules"),
            );
            return (Value::unknown_any(), None);
        }
        let is_directory = self.files.kind(&directory) == Some(crate::files::EntryKind::Directory);
        if !is_directory || crate::loader::configuration_files(&*self.files, &directory).map_or(true, |files| files.is_empty()) {
            let parent = directory.parent().map(Path::to_path_buf).unwrap_or_default();
            let siblings: Vec<String> = self
                .files
                .entries(&parent)
                .unwrap_or_default()
                .into_iter()
                .filter(|entry| self.files.kind(entry) == Some(crate::files::EntryKind::Directory))
                .filter_map(|entry| entry.file_name().map(|name| name.to_string_lossy().into_owned()))
                .collect();
            let wanted = directory.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let help = did_you_mean(&wanted, siblings.iter().map(String::as_str))
                .unwrap_or_else(|| "the path is relative to the directory of the calling module".to_owned());
            self.diagnostics.push(
                Diagnostic::error(
                    codes::MODULE_NOT_FOUND,
                    format!("module `{name}`: \"{source}\" is not a directory of *.mlops.hcl files"),
                )
                .at(source_attribute.value.span, "no module here")
                .with_help(help),
            );
            return (Value::unknown_any(), None);
        }
        let display = if registry_directory.is_some() {
            source.clone()
        } else {
            crate::loader::display_join(&scope.module_display, source.trim_start_matches("./"))
        };
        let loaded = match self.loaded_modules.get(&canonical) {
            Some(loaded) => loaded.clone(),
            None => {
                let Some(loaded) = load_directory(&*self.files, &directory, &display, &mut self.sources, &mut self.diagnostics) else {
                    return (Value::unknown_any(), None);
                };
                let loaded = std::rc::Rc::new(loaded);
                self.loaded_modules.insert(canonical.clone(), loaded.clone());
                loaded
            }
        };
        // The child's declared variables decide which arguments are inputs.
        let mut child_variables: IndexMap<String, bool> = IndexMap::new();
        for (_, body) in &loaded.files {
            for variable in body.blocks_named("variable") {
                if let Some(label) = variable.labels.first() {
                    child_variables.insert(label.value.clone(), variable.body.attribute("default").is_some());
                }
            }
        }
        let mut inputs: Inputs = HashMap::new();
        for attribute in &block.body.attributes {
            let argument = attribute.name.name.as_str();
            if ["source", "version", "count", "for_each", "depends_on", "providers"].contains(&argument) {
                if argument == "depends_on" {
                    self.check_depends_on(scope, attribute);
                }
                continue;
            }
            let value = self.evaluate(scope, &context, &attribute.value);
            if !child_variables.contains_key(argument) {
                self.diagnostics.push(
                    Diagnostic::error(codes::UNKNOWN_MODULE_INPUT, format!("module `{name}` has no variable `{argument}`"))
                        .at(attribute.name.span, "not a module input")
                        .with_help(did_you_mean(argument, child_variables.keys().map(String::as_str)).unwrap_or_else(|| {
                            if child_variables.is_empty() {
                                "the module declares no variables".to_owned()
                            } else {
                                format!("its variables are {}", one_of(&child_variables.keys().collect::<Vec<_>>()))
                            }
                        })),
                );
                continue;
            }
            inputs.insert(argument.to_owned(), (value, Some(attribute.value.span)));
        }
        for (variable, has_default) in &child_variables {
            if !has_default && !inputs.contains_key(variable) {
                self.diagnostics.push(
                    Diagnostic::error(codes::MISSING_MODULE_INPUT, format!("module `{name}` needs the input `{variable}`"))
                        .at(block.header_span(), format!("`{variable}` is not set"))
                        .with_help(format!("add `{variable} = ...` to the module block")),
                );
                inputs.insert(variable.clone(), (Value::unknown_any(), None));
            }
        }
        let mut path = parent_path.to_vec();
        path.push(name.to_owned());
        let child = self.check_module(&loaded, path, Some(inputs));
        let outputs: ValueMap = child.outputs.iter().map(|output| (output.name.clone(), output.value.clone())).collect();
        (Value::Map(outputs), Some(child))
    }
}
