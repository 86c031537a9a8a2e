//! `mlops import ADDRESS ID`: bring an object that already exists (a
//! bucket made by hand, by another tool) under management. The address
//! must be declared in the configuration; its provider reads the object by
//! its own identifier (`Provider::import`), and the record is added to the
//! state through the journal, under the lock, as any other state change.
//! The next plan then compares the configuration with what was imported.

use std::path::Path;

use mlops_compiler::address::{Mode, ResourceAddress};
use mlops_compiler::check::{check_directory, CheckOptions, CheckResult};
use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::schema::Schemas;
use mlops_provider_api::{Attributes, ImportRequest, ReadRequest};

use crate::plan::{target_of, PlanOptions, Providers};
use crate::state::{now, Backend, Record, RecordLifecycle, Secrets, StateError};

/// Why an import did not happen.
pub enum ImportError {
    /// The configuration has errors: shown with their sources.
    Configuration(Box<CheckResult>),
    Problem(Box<Diagnostic>),
    State(StateError),
}

impl From<StateError> for ImportError {
    fn from(error: StateError) -> ImportError {
        ImportError::State(error)
    }
}

fn problem(diagnostic: Diagnostic) -> ImportError {
    ImportError::Problem(Box::new(diagnostic))
}

/// What the command needs to know besides the address and the id.
pub struct ImportContext<'a> {
    pub directory: &'a Path,
    pub display: &'a str,
    pub options: &'a PlanOptions,
    pub providers: &'a Providers,
    pub backend: &'a Backend,
    pub secrets: &'a Secrets,
    pub data_directory: &'a Path,
    /// The command line, for the history.
    pub command: &'a str,
}

/// Imports the object `id` as `address`; returns the record added.
pub fn import(context: &ImportContext<'_>, address: &str, id: &str) -> Result<Record, ImportError> {
    let wanted: ResourceAddress = address.parse().map_err(|message: String| {
        problem(
            Diagnostic::error(codes::INVALID_VALUE, message)
                .with_help("write the address as in the plan: KIND.NAME, module.M.KIND.NAME[\"KEY\"]"),
        )
    })?;
    if wanted.mode == Mode::Data {
        return Err(problem(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{address}` is a data source, which is read, not imported"))
                .with_help("import a resource: data sources are read again by every plan"),
        ));
    }
    let check_options = CheckOptions {
        variables: Some(context.options.variables.clone()),
        variable_origins: context.options.variable_origins.clone(),
        // Adopting what exists is not a change policies judge: the next plan does.
        defer_policies: true,
        ..CheckOptions::default()
    };
    let checked = check_directory(context.directory, context.display, &check_options);
    if checked.has_errors() {
        return Err(ImportError::Configuration(Box::new(checked)));
    }
    let Some(root) = checked.root.as_ref() else { return Err(ImportError::Configuration(Box::new(checked))) };
    let found = root.all_resources().into_iter().find(|(module_path, resource)| {
        !resource.is_data && *module_path == wanted.module_path.as_slice() && resource.kind == wanted.kind && resource.name == wanted.name
    });
    let Some((module_path, resource)) = found else {
        return Err(problem(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{address}` is not declared in the configuration"))
                .with_help("declare the resource first (a block with the settings the object has), then import it into that address"),
        ));
    };
    let Some(instance) = resource.instances.iter().find(|instance| instance.key == wanted.key) else {
        return Err(problem(
            Diagnostic::error(codes::INVALID_VALUE, format!("the configuration makes no instance `{address}`"))
                .with_help("check the instance key against the block's `count` or `for_each`, which must be known before apply"),
        ));
    };
    let Some(schema) = Schemas::standard().resource(&resource.kind) else {
        return Err(problem(Diagnostic::error(codes::INVALID_VALUE, format!("there is no resource kind `{}`", resource.kind))));
    };
    // The record holds the configuration as declared: the next plan then
    // compares it with the object as it is, and says what apply would set.
    let (config, sensitive_paths) = crate::convert::config_json(&instance.value.attributes, schema, &instance.deferred);
    let provider_settings = root
        .providers
        .iter()
        .find(|(provider_type, alias, _)| *provider_type == resource.provider_type && *alias == resource.provider_alias)
        .map(|(_, _, values)| values.iter().map(|(name, value)| (name.clone(), value.to_json_unredacted())).collect::<Attributes>())
        .unwrap_or_default();
    let provider_settings = crate::convert::provider_configuration(
        &provider_settings,
        Schemas::standard().providers.get(&resource.provider_type).map(|schema| &schema.body),
        &[],
        &std::collections::BTreeMap::new(),
    );
    let provider = context.providers.get(&resource.provider_type).map_err(|message| {
        problem(
            Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot import {address}: {message}"))
                .with_help("use a provider this build supports"),
        )
    })?;
    let target = target_of(address, &resource.kind, false, provider_settings, context.directory, context.data_directory);
    let imported = provider.import(ImportRequest { target: target.clone(), id: id.to_owned() }).map_err(|error| {
        problem(
            Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot import `{id}` as {address}: {error}"))
                .with_help(error.help().unwrap_or("check the identifier: for a bucket, its name").to_owned()),
        )
    })?;
    let missing = || {
        problem(
            Diagnostic::error(codes::PROVIDER_ERROR, format!("there is no `{id}` to import as {address}"))
                .with_help("check the identifier and the provider block's settings (endpoint, region)"),
        )
    };
    let Some(state) = imported.state else { return Err(missing()) };
    // Read it in full, as refresh will: what import found may be only what
    // identifies the object.
    let read = provider.read(ReadRequest { target, config: imported.config, state, private: imported.private }).map_err(|error| {
        problem(
            Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot read `{id}` as {address}: {error}"))
                .with_optional_help(error.help().map(str::to_owned)),
        )
    })?;
    let Some(state) = read.state else { return Err(missing()) };
    // What it refers to or depends on goes after it when it is destroyed:
    // references in its configuration, and its `depends_on` (a resource, or
    // every resource of a module call), as a plan records them.
    let mut depends_on: std::collections::BTreeSet<String> =
        crate::convert::references(&config).into_iter().map(|(_, target, _)| target).collect();
    for dependency in &resource.depends_on {
        if let Ok(dependency) = dependency.parse::<ResourceAddress>() {
            depends_on.insert(ResourceAddress { module_path: module_path.to_vec(), ..dependency }.to_string());
        } else if let Some(module) = dependency.strip_prefix("module.") {
            let called: Vec<String> = module_path.iter().cloned().chain([module.to_owned()]).collect();
            for (other_path, other) in root.all_resources() {
                if other_path.starts_with(&called) {
                    depends_on.extend(other.instances.iter().map(|instance| instance.value.address.clone()));
                }
            }
        }
    }
    depends_on.remove(address);
    let depends_on: Vec<String> = depends_on.into_iter().collect();
    let record = Record {
        address: address.to_owned(),
        kind: resource.kind.clone(),
        is_data: false,
        provider: resource.provider_type.clone(),
        provider_alias: resource.provider_alias.clone(),
        module_path: module_path.to_vec(),
        config,
        state,
        sensitive_paths,
        depends_on,
        lifecycle: RecordLifecycle { retained: schema.retained, ..RecordLifecycle::default() },
        private: read.private,
        updated_at: now(),
        ..Record::default()
    };
    crate::state::surgery::add_record(context.backend, context.secrets, record.clone(), context.command)?;
    Ok(record)
}
