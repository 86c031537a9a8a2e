//! Planning: refresh, evaluate with what is known, diff, and the plan as data.
//!
//! 1. **Refresh** reads every record in state through its provider,
//!    concurrently (bounded by `parallelism`), and reports drift: what
//!    changed outside mlops. Nothing is written.
//! 2. **Evaluate**: the compiler evaluates the configuration with the
//!    [`Planner`] as its [`PlanResolver`]. Each instance is resolved in
//!    dependency order, so when a dataset's content hash changes, the feature
//!    set that reads it sees the new version, decides to rebuild, and its own
//!    version becomes unknown, and so on down the chain to the serving.
//! 3. **Diff**: per instance, one action with its reasons. State records no
//!    longer in the configuration are deleted, or forgotten for retained kinds.
//!
//! The result is a [`Plan`]: plain data that apply executes without
//! evaluating the configuration again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlops_compiler::address::{AddressPattern, Mode, ResourceAddress};
use mlops_compiler::check::{check_preloaded, CheckOptions, CheckResult, InstanceDraft, PlanResolver, VariableOrigin};
use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::policy::PolicyResult;
use mlops_compiler::schema::{KindSchema, Schemas};
use mlops_compiler::source::SourceMap;
use mlops_compiler::value::{Value, ValueMap};
use mlops_provider_api::{Action, AttributePath, Attributes, Configuration, PlanRequest, PlanResponse, Provider, Target, ValidateRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::convert::{config_json, references, values_from_json};
use crate::redact::Scrubber;
use crate::refresh::{refresh, Refreshed};
use crate::state::{Record, RecordLifecycle, Secrets, State};

pub const PLAN_FORMAT_VERSION: &str = "1.0";

/// The providers available to this run, by type.
#[derive(Clone, Default)]
pub struct Providers {
    by_type: HashMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn new() -> Providers {
        Providers::default()
    }

    pub fn register(&mut self, provider_type: &str, provider: Arc<dyn Provider>) {
        self.by_type.insert(provider_type.to_owned(), provider);
    }

    pub fn get(&self, provider_type: &str) -> Result<&Arc<dyn Provider>, String> {
        self.by_type.get(provider_type).ok_or_else(|| format!("the {provider_type} provider is not available in this build of mlops"))
    }
}

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub variables: HashMap<String, Value>,
    /// Where each variable value came from (see [`CheckOptions`]).
    pub variable_origins: HashMap<String, VariableOrigin>,
    pub refresh: bool,
    pub targets: Vec<String>,
    pub excludes: Vec<String>,
    pub parallelism: usize,
    /// Plan the removal of everything (`mlops destroy`).
    pub destroy: bool,
    /// With `destroy`: delete retained kinds (datasets, model versions) too.
    pub delete_retained: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            variables: HashMap::new(),
            variable_origins: HashMap::new(),
            refresh: true,
            targets: Vec::new(),
            excludes: Vec::new(),
            parallelism: 10,
            destroy: false,
            delete_retained: false,
        }
    }
}

/// One resource instance's change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ResourceChange {
    pub address: String,
    pub kind: String,
    #[serde(default)]
    pub is_data: bool,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module_path: Vec<String>,
    pub action: Action,
    /// Why: the attributes that changed or force replacement, the upstream
    /// changes that make it stale, what drifted.
    pub reasons: Vec<String>,
    /// Prior configuration and state merged (for display).
    pub before: Option<Attributes>,
    /// Desired configuration and the computed values known now.
    pub after: Option<Attributes>,
    pub after_unknown: Vec<AttributePath>,
    pub sensitive_paths: Vec<AttributePath>,
    /// What apply hands the provider (with markers).
    pub config: Attributes,
    pub depends_on: Vec<String>,
    pub lifecycle: RecordLifecycle,
    pub working_directory: PathBuf,
    /// Provider configuration key: `TYPE` or `TYPE.ALIAS`.
    pub provider_key: String,
    /// What the provider's plan kept for its apply (a content hash and the
    /// file stamps it was computed from, say), so that apply need not
    /// compute it again.
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub planned_private: Json,
    /// For a resource left as it is, what refresh found when that differs
    /// from the state (a version deleted in a registry): apply records it,
    /// so the same drift is not reported by every plan after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed: Option<RefreshedRecord>,
}

/// A record's attributes and private data as refresh read them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefreshedRecord {
    pub state: Attributes,
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub private: Json,
}

impl ResourceChange {
    pub fn is_change(&self) -> bool {
        self.action != Action::NoOp
    }
}

/// A change made outside mlops, found by refresh.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Drift {
    pub address: String,
    /// `None` when the object is gone.
    pub after: Option<Attributes>,
    pub before: Attributes,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputChange {
    pub name: String,
    pub before: Option<Json>,
    /// `None` when known only after apply.
    pub after: Option<Json>,
    /// The residual expression to evaluate after apply.
    pub residual: Option<String>,
    pub sensitive: bool,
    pub module_path: Vec<String>,
}

/// One module call's outputs: known values, or residuals to evaluate with
/// that module's applied resources.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModuleOutputs {
    pub module_path: Vec<String>,
    pub outputs: Vec<OutputChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderConfiguration {
    pub config: Attributes,
    pub sensitive_paths: Vec<AttributePath>,
    /// [`ProviderConfiguration::typed`], made once: every resource on the
    /// provider is handed the same settings.
    #[serde(skip)]
    typed: std::sync::OnceLock<Configuration>,
}

impl ProviderConfiguration {
    pub fn new(config: Attributes, sensitive_paths: Vec<AttributePath>) -> ProviderConfiguration {
        ProviderConfiguration { config, sensitive_paths, typed: std::sync::OnceLock::new() }
    }

    /// The settings as the provider is handed them: typed by the provider
    /// block's schema, secrets marked, and the schema's default for what
    /// is not set (so a provider never repeats the stdlib's defaults).
    pub fn typed(&self, provider_type: &str) -> Configuration {
        self.typed
            .get_or_init(|| {
                let schema = Schemas::standard().providers.get(provider_type).map(|schema| &schema.body);
                let mut config = self.config.clone();
                if let Some(schema) = schema {
                    crate::convert::fill_defaults(&mut config, schema);
                }
                crate::convert::provider_configuration(&config, schema, &self.sensitive_paths, &BTreeMap::new())
            })
            .clone()
    }
}

/// The settings of the provider `key` (`kubernetes`, `s3.eu`) as its
/// provider is handed them; a provider with no block gets its defaults
/// (the same for every configuration: made once per provider type).
pub(crate) fn provider_settings(configurations: &BTreeMap<String, ProviderConfiguration>, key: &str, provider_type: &str) -> Configuration {
    static DEFAULTS: std::sync::OnceLock<std::sync::Mutex<HashMap<String, Configuration>>> = std::sync::OnceLock::new();
    match configurations.get(key) {
        Some(configuration) => configuration.typed(provider_type),
        None => {
            let defaults = DEFAULTS.get_or_init(Default::default);
            let mut defaults = defaults.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            defaults
                .entry(provider_type.to_owned())
                .or_insert_with(|| ProviderConfiguration::new(Attributes::new(), Vec::new()).typed(provider_type))
                .clone()
        }
    }
}

/// The plan: data, saved with `-out` and executed by apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub config_hash: String,
    /// The hash of the configuration files alone: a saved plan is stale once they change.
    pub files_hash: String,
    pub state_lineage: String,
    pub state_serial: u64,
    pub root_directory: PathBuf,
    pub data_directory: PathBuf,
    pub destroy: bool,
    /// Made with -target/-exclude: only part of the configuration.
    #[serde(default)]
    pub partial: bool,
    pub changes: Vec<ResourceChange>,
    pub drift: Vec<Drift>,
    /// What refresh found worth saying that is neither drift nor a change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub outputs: Vec<OutputChange>,
    /// The outputs of every child module, for residuals that use them.
    #[serde(default)]
    pub module_outputs: Vec<ModuleOutputs>,
    pub provider_configurations: BTreeMap<String, ProviderConfiguration>,
    /// True when sensitive values could not be stored in the saved plan
    /// (no `MLOPS_STATE_KEY`), so it cannot be applied.
    #[serde(default)]
    pub secrets_withheld: bool,
    /// What every policy found, in the order they are declared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyResult>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(ResourceChange::is_change)
            || self.outputs.iter().any(|output| output.before.as_ref() != output.after.as_ref() || output.residual.is_some())
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|change| change.action == action).count()
    }

    /// How many records apply brings up to date with what refresh found,
    /// for resources that otherwise stay as they are.
    pub fn refreshed_records(&self) -> usize {
        self.changes.iter().filter(|change| !change.is_change() && change.refreshed.is_some()).count()
    }

    /// The plan as written by `-out`: secrets sealed, and signed with `key`
    /// (a keyed BLAKE3 hash of the plan's exact bytes), so that apply can
    /// refuse a plan changed after it was made.
    pub fn to_saved_json(&self, secrets: &Secrets, key: &SigningKey) -> Vec<u8> {
        let mut saved = self.clone();
        for change in &mut saved.changes {
            let paths = change.sensitive_paths.clone();
            secrets.seal_paths(&mut change.config, &paths);
            if let Some(after) = change.after.as_mut() {
                secrets.seal_paths(after, &paths);
            }
            if let Some(before) = change.before.as_mut() {
                secrets.seal_paths(before, &paths);
            }
            if let Some(refreshed) = change.refreshed.as_mut() {
                secrets.seal_paths(&mut refreshed.state, &paths);
            }
            saved.secrets_withheld |= !paths.is_empty() && !secrets.has_key();
        }
        for configuration in saved.provider_configurations.values_mut() {
            let paths = configuration.sensitive_paths.clone();
            secrets.seal_paths(&mut configuration.config, &paths);
            saved.secrets_withheld |= !paths.is_empty() && !secrets.has_key();
        }
        for output in &mut saved.outputs {
            if output.sensitive {
                output.after = output.after.as_ref().map(|value| secrets.seal(value));
                output.before = output.before.as_ref().map(|value| secrets.seal(value));
            }
        }
        let plan_text = serde_json::to_string(&saved).unwrap_or_default();
        let integrity = format!("b3-keyed:{}", blake3::keyed_hash(&key.key, plan_text.as_bytes()).to_hex());
        let mut bytes = format!(
            "{{\"mlops_saved_plan\":{plan_text},\"signed_with\":{},\"integrity\":\"{integrity}\"}}",
            Json::String(key.source.to_owned())
        )
        .into_bytes();
        bytes.push(b'\n');
        bytes
    }

    /// Where a saved plan says it was made, read without trusting it: only
    /// to find the state whose key checks it.
    pub fn saved_root_directory(bytes: &[u8]) -> Option<PathBuf> {
        let saved: SavedPlan<'_> = serde_json::from_slice(bytes).ok()?;
        #[derive(Deserialize)]
        struct Root {
            root_directory: PathBuf,
        }
        serde_json::from_str::<Root>(saved.plan.get()).ok().map(|root| root.root_directory)
    }

    /// Reads a saved plan, checking first that it is exactly what was
    /// signed: `key_for` gives the key for the `signed_with` the file names.
    pub fn from_saved_json(bytes: &[u8], secrets: &Secrets, key_for: &dyn Fn(&str) -> Result<SigningKey, String>) -> Result<Plan, String> {
        let saved: SavedPlan<'_> = serde_json::from_slice(bytes).map_err(|_| "not a saved plan".to_owned())?;
        let (Some(signed_with), Some(integrity)) = (saved.signed_with.as_deref(), saved.integrity.as_deref()) else {
            return Err("the saved plan has no integrity check (it was made by an older mlops, or edited)".to_owned());
        };
        let key = key_for(signed_with)?;
        let expected = format!("b3-keyed:{}", blake3::keyed_hash(&key.key, saved.plan.get().as_bytes()).to_hex());
        // Both are hex of a fixed length: comparing as hashes is constant-time.
        let matches = blake3::Hash::from_hex(integrity.trim_start_matches("b3-keyed:"))
            .ok()
            .zip(blake3::Hash::from_hex(expected.trim_start_matches("b3-keyed:")).ok())
            .is_some_and(|(found, wanted)| found == wanted);
        if !matches {
            return Err(format!(
                "the saved plan was changed after it was made, or made for another state{}: its integrity check fails",
                if signed_with == SigningKey::STATE_KEY { " or with another MLOPS_STATE_KEY" } else { "" }
            ));
        }
        let mut plan: Plan = serde_json::from_str(saved.plan.get()).map_err(|error| format!("the saved plan cannot be read: {error}"))?;
        if plan.format_version != PLAN_FORMAT_VERSION {
            return Err(format!("the saved plan has format {}; this mlops reads {PLAN_FORMAT_VERSION}", plan.format_version));
        }
        for change in &mut plan.changes {
            let paths = change.sensitive_paths.clone();
            secrets.open_paths(&mut change.config, &paths);
            if let Some(refreshed) = change.refreshed.as_mut() {
                secrets.open_paths(&mut refreshed.state, &paths);
            }
        }
        for configuration in plan.provider_configurations.values_mut() {
            let paths = configuration.sensitive_paths.clone();
            secrets.open_paths(&mut configuration.config, &paths);
        }
        for output in &mut plan.outputs {
            if output.sensitive {
                output.after = output.after.as_ref().map(|value| secrets.open(value).unwrap_or_else(|| value.clone()));
            }
        }
        Ok(plan)
    }
}

/// A saved plan file: the plan's exact text, and its signature.
#[derive(Deserialize)]
struct SavedPlan<'a> {
    #[serde(borrow, rename = "mlops_saved_plan")]
    plan: &'a serde_json::value::RawValue,
    #[serde(default)]
    signed_with: Option<String>,
    #[serde(default)]
    integrity: Option<String>,
}

/// The key a saved plan is signed with, and where it comes from.
#[derive(Clone)]
pub struct SigningKey {
    pub key: [u8; 32],
    /// [`SigningKey::STATE_KEY`] or [`SigningKey::STATE`].
    pub source: &'static str,
}

impl SigningKey {
    /// Derived from `MLOPS_STATE_KEY`.
    pub const STATE_KEY: &'static str = "MLOPS_STATE_KEY";
    /// The random key kept with the state (`Backend::plan_key`).
    pub const STATE: &'static str = "state";

    /// The key for plans of `backend`'s state: from `MLOPS_STATE_KEY` when
    /// it is set, else the one kept with the state.
    pub fn for_state(backend: &crate::state::Backend) -> Result<SigningKey, crate::state::StateError> {
        match std::env::var("MLOPS_STATE_KEY").ok().filter(|key| !key.is_empty()) {
            Some(passphrase) => Ok(SigningKey::from_passphrase(&passphrase)),
            None => Ok(SigningKey { key: backend.plan_key()?, source: SigningKey::STATE }),
        }
    }

    pub fn from_passphrase(passphrase: &str) -> SigningKey {
        SigningKey { key: blake3::derive_key("mlops 2026 saved plan v1", passphrase.as_bytes()), source: SigningKey::STATE_KEY }
    }
}

/// The result of planning: the compiler's findings, and the plan when there
/// were no errors.
pub struct PlanOutcome {
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
    pub plan: Option<Plan>,
}

impl PlanOutcome {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The hash of everything a plan was made from: the configuration files and
/// the variable values.
pub fn config_hash(sources: &SourceMap, variables: &HashMap<String, Value>) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut files: Vec<(&str, &str)> = sources.files().map(|(_, file)| (file.display_path.as_str(), file.text.as_str())).collect();
    files.sort();
    for (path, text) in files {
        hasher.update(path.as_bytes());
        hasher.update(&[0]);
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    for name in names {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(variables[name].to_json_unredacted().to_string().as_bytes());
        hasher.update(&[0]);
    }
    format!("b3:{}", hasher.finalize().to_hex())
}

/// The provider's view of one resource instance. The address's parts come
/// from the compiler's address parser, so no provider splits the string.
pub(crate) fn target_of(
    address: &str,
    kind: &str,
    is_data: bool,
    provider_config: Configuration,
    working_directory: &Path,
    data_directory: &Path,
) -> Target {
    let (name, instance_key) = match address.parse::<ResourceAddress>() {
        Ok(parsed) => {
            let key = match parsed.key {
                mlops_compiler::address::InstanceKey::None => None,
                mlops_compiler::address::InstanceKey::Index(index) => Some(index.to_string()),
                mlops_compiler::address::InstanceKey::Key(key) => Some(key),
            };
            (parsed.name, key)
        }
        Err(_) => (address.to_owned(), None),
    };
    Target {
        address: address.to_owned(),
        kind: kind.to_owned(),
        name,
        instance_key,
        is_data,
        provider_config,
        working_directory: working_directory.to_path_buf(),
        data_directory: data_directory.to_path_buf(),
    }
}

pub fn provider_key(provider_type: &str, alias: Option<&str>) -> String {
    match alias {
        Some(alias) => format!("{provider_type}.{alias}"),
        None => provider_type.to_owned(),
    }
}

/// The planner's side of evaluation.
pub struct Planner<'a> {
    pub providers: &'a Providers,
    pub state: &'a State,
    pub refreshed: &'a Refreshed,
    pub configurations: &'a BTreeMap<String, ProviderConfiguration>,
    pub data_directory: PathBuf,
    /// Addresses selected by -target/-exclude; `None` selects all.
    pub selected: Option<HashSet<String>>,
    pub changes: Vec<ResourceChange>,
    pub problems: Vec<Diagnostic>,
    pub seen: HashSet<String>,
    schemas: &'static Schemas,
}

impl<'a> Planner<'a> {
    pub fn new(
        providers: &'a Providers,
        state: &'a State,
        refreshed: &'a Refreshed,
        configurations: &'a BTreeMap<String, ProviderConfiguration>,
        data_directory: PathBuf,
    ) -> Planner<'a> {
        Planner {
            providers,
            state,
            refreshed,
            configurations,
            data_directory,
            selected: None,
            changes: Vec::new(),
            problems: Vec::new(),
            seen: HashSet::new(),
            schemas: Schemas::standard(),
        }
    }

    fn kind_schema(&self, kind: &str, is_data: bool) -> Option<&'static KindSchema> {
        if is_data {
            self.schemas.data.get(kind)
        } else {
            self.schemas.resources.get(kind)
        }
    }
}

impl PlanResolver for Planner<'_> {
    fn resolve(&mut self, draft: &InstanceDraft<'_>) -> ValueMap {
        let address = draft.address.to_owned();
        self.seen.insert(address.clone());
        let Some(schema) = self.kind_schema(draft.kind, draft.is_data) else { return ValueMap::new() };
        let recorded = self.refreshed.get(self.state, &address);
        // Work an interrupted apply started before the resource ever existed:
        // it is still a create, which resumes that work.
        let resuming = recorded.is_some_and(|record| record.pending_handle.is_some());
        let prior = recorded.filter(|record| !(record.state.is_empty() && record.pending_handle.is_some()));
        let prior_known = |prior: &Record| values_from_json(&prior.state, &prior.sensitive_paths);
        let (config, sensitive_paths) = config_json(draft.attributes, schema, draft.deferred);
        let depends_on = self.dependencies(draft, &config);
        let lifecycle = RecordLifecycle {
            prevent_destroy: draft.lifecycle.prevent_destroy,
            create_before_destroy: draft.lifecycle.create_before_destroy,
            retained: schema.retained,
            destroy: draft.lifecycle.destroy,
        };
        let provider_key = provider_key(draft.provider_type, draft.provider_alias);
        let mut change = ResourceChange {
            address: address.clone(),
            kind: draft.kind.to_owned(),
            is_data: draft.is_data,
            provider: draft.provider_type.to_owned(),
            provider_alias: draft.provider_alias.map(str::to_owned),
            module_path: draft.module_path.to_vec(),
            action: Action::NoOp,
            reasons: Vec::new(),
            before: prior.map(Record::merged_attributes),
            after: None,
            after_unknown: Vec::new(),
            sensitive_paths,
            config: config.clone(),
            depends_on,
            lifecycle,
            working_directory: draft.module_directory.to_path_buf(),
            provider_key: provider_key.clone(),
            planned_private: Json::Null,
            refreshed: None,
        };

        // Not selected by -target/-exclude: left as it is.
        if self.selected.as_ref().is_some_and(|selected| !selected.contains(&address)) {
            change.after = change.before.clone();
            let known = prior.map(prior_known).unwrap_or_default();
            if prior.is_some() {
                self.changes.push(change);
            }
            return known;
        }

        // Secrets not stored (no MLOPS_STATE_KEY) cannot be compared: the
        // prior configuration is taken to hold the current value.
        let prior_config: Option<Attributes> = prior.map(|prior| restore_withheld(&prior.config, &config, &prior.sensitive_paths));

        // References whose targets have a new identity since the prior
        // apply, and the attributes the user changed (ignore_changes honoured).
        let changed_inputs =
            prior_config.as_ref().map(|prior_config| crate::decide::changed_inputs(prior_config, &config)).unwrap_or_default();
        let changed_attributes = match &prior_config {
            Some(prior_config) => crate::decide::changed_attributes(prior_config, &mut change.config, &draft.lifecycle.ignore_changes),
            None => Vec::new(),
        };

        let provider = match self.providers.get(draft.provider_type) {
            Ok(provider) => provider.clone(),
            Err(message) => {
                self.problems.push(
                    Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot plan {address}: {message}"))
                        .at(draft.span, "declared here")
                        .with_help("use a provider this build supports (`mlops schema` lists them), or upgrade mlops"),
                );
                return ValueMap::new();
            }
        };
        let target = target_of(
            &address,
            draft.kind,
            draft.is_data,
            provider_settings(self.configurations, &provider_key, draft.provider_type),
            draft.module_directory,
            &self.data_directory,
        );
        let typed = |config: &Attributes, sensitive_paths: &[AttributePath]| {
            crate::convert::provider_configuration(config, Some(&schema.body), sensitive_paths, &BTreeMap::new())
        };
        let typed_config = typed(&change.config, &change.sensitive_paths);
        // What only the provider can tell is wrong, before it plans anything.
        let problems = match provider.validate(&ValidateRequest { target: target.clone(), config: typed_config.clone() }) {
            Ok(problems) => problems,
            Err(error) => {
                self.problems.push(
                    Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot plan {address}: {error}"))
                        .at(draft.span, "this resource")
                        .with_help(error.help().unwrap_or("use a provider that supports this kind").to_owned()),
                );
                return prior.map(prior_known).unwrap_or_default();
            }
        };
        if !problems.is_empty() {
            for problem in problems {
                self.problems.push(
                    Diagnostic::error(codes::PROVIDER_ERROR, format!("{address}: `{}`: {}", problem.path.join("."), problem.message))
                        .at(draft.span, "this resource")
                        .with_help(problem.help.unwrap_or_else(|| "fix the configuration and plan again".to_owned())),
                );
            }
            return prior.map(prior_known).unwrap_or_default();
        }
        let response: PlanResponse = match provider.plan(PlanRequest {
            target,
            config: typed_config,
            prior_config: prior_config
                .as_ref()
                .map(|prior_config| typed(prior_config, &prior.map(|prior| prior.sensitive_paths.clone()).unwrap_or_default())),
            prior_state: prior.map(|prior| prior.state.clone()),
            prior_private: prior.map(|prior| prior.private.clone()).unwrap_or_default(),
            changed_inputs: changed_inputs.clone(),
        }) {
            Ok(response) => response,
            Err(error) => {
                let mut diagnostic = Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot plan {address}: {error}"))
                    .at(draft.span, "this resource")
                    .with_optional_help(error.help().map(str::to_owned));
                if error.help().is_none() {
                    diagnostic = diagnostic.with_help("fix the cause and plan again");
                }
                self.problems.push(diagnostic);
                return prior.map(prior_known).unwrap_or_default();
            }
        };

        // One action, and why.
        let live_state = prior.map(|prior| restore_withheld(&prior.state, &config, &change.sensitive_paths));
        let identity_of = |input: &str| {
            self.kind_of_address(input).map_or("version", |(kind, is_data)| Schemas::standard().identity_attribute(&kind, is_data))
        };
        let decision = crate::decide::decide(&crate::decide::DecisionInput {
            schema,
            is_data: draft.is_data,
            prior,
            config: &config,
            sensitive_paths: &change.sensitive_paths,
            ignore_changes: &draft.lifecycle.ignore_changes,
            changed_inputs: &changed_inputs,
            changed_attributes: &changed_attributes,
            response: &response,
            resuming,
            live_state: live_state.as_ref(),
            identity_of: &identity_of,
        });
        change.action = decision.action;
        let reasons = decision.reasons;
        if change.action == Action::Replace && draft.lifecycle.prevent_destroy {
            self.problems.push(
                Diagnostic::error(codes::PREVENT_DESTROY, format!("{address} would be replaced, but lifecycle.prevent_destroy is set"))
                    .at(draft.span, "protected by prevent_destroy")
                    .with_help(format!("why it would be replaced: {}", reasons.join("; "))),
            );
        }
        change.reasons = reasons;
        if change.action != Action::NoOp {
            change.planned_private = response.private.clone();
        }

        // The computed attributes known now, and the attributes after apply.
        let known = crate::decide::known_values(change.action, prior, &response);
        let (after, after_unknown) = crate::decide::after_values(schema, &config, &change.config, &known);
        change.after_unknown = after_unknown;
        let values = values_from_json(&known, &change.sensitive_paths);
        if change.action == Action::NoOp {
            // Nothing to show or apply: keep the plan small for large states.
            change.before = None;
            change.config = Attributes::new();
            // Only what a user sees as drift: private data (a registry's
            // live aliases) is read afresh by every refresh anyway.
            let recorded = self.state.resources.get(&address);
            if let Some(found) =
                self.refreshed.changed.get(&address).filter(|found| recorded.is_some_and(|recorded| recorded.state != found.state))
            {
                change.refreshed = Some(RefreshedRecord { state: found.state.clone(), private: found.private.clone() });
            }
        } else {
            change.after = Some(after);
        }
        // Computed attributes, and what a run reports (its metrics).
        let values = values
            .into_iter()
            .filter(|(name, _)| {
                schema
                    .body
                    .attributes
                    .get(name)
                    .is_some_and(|attribute| attribute.computed || attribute.reads_as.as_deref() == Some("metrics"))
            })
            .collect();
        self.changes.push(change);
        values
    }
}

impl Planner<'_> {
    /// Everything this instance must wait for: the resources it refers to
    /// (directly, or through a reference in its configuration), and every
    /// resource of a module whose outputs it uses. Modules are evaluated
    /// before what uses them, so their resources are planned already.
    fn dependencies(&self, draft: &InstanceDraft<'_>, config: &Attributes) -> Vec<String> {
        let mut depends_on: BTreeSet<String> = BTreeSet::new();
        for dependency in draft.depends_on {
            if let Ok(address) = dependency.parse::<ResourceAddress>() {
                depends_on.insert(ResourceAddress { module_path: draft.module_path.to_vec(), ..address }.to_string());
            } else if let Some(module) = dependency.strip_prefix("module.") {
                let mut path = draft.module_path.to_vec();
                path.push(module.to_owned());
                for change in &self.changes {
                    if change.module_path.starts_with(&path) {
                        depends_on.insert(change.address.clone());
                    }
                }
            }
        }
        for (_, address, _) in references(config) {
            depends_on.insert(address);
        }
        depends_on.remove(draft.address);
        depends_on.into_iter().collect()
    }

    /// The kind an address names, and whether it is a data source.
    fn kind_of_address(&self, address: &str) -> Option<(String, bool)> {
        address.parse::<ResourceAddress>().ok().map(|address| (address.kind, address.mode == Mode::Data))
    }
}

/// `prior` with every secret that was not stored replaced by the value in
/// `current`: without a key, a secret cannot be compared, so it counts as
/// unchanged.
///
/// A secret sealed with a key this run does not have counts as withheld too:
/// it cannot be compared either, and taking it for a change would replace
/// every run that uses it.
pub(crate) fn restore_withheld(prior: &Attributes, current: &Attributes, sensitive_paths: &[AttributePath]) -> Attributes {
    let mut restored = prior.clone();
    for path in sensitive_paths {
        let withheld = crate::state::json_at(prior, path).is_some_and(crate::state::is_sealed);
        if withheld {
            if let (Some(slot), Some(value)) = (crate::state::json_at_mut(&mut restored, path), crate::state::json_at(current, path)) {
                *slot = value.clone();
            }
        }
    }
    restored
}

/// Identities are long hashes: shown shortened in reasons.
pub use mlops_provider_support::short_version as short_identity;

/// Why a saved plan can no longer be applied as it is: its configuration
/// files changed since it was made, or the state moved on (another apply,
/// or state surgery). `None` while it is current.
pub fn saved_plan_staleness(plan: &Plan, state: &State) -> Option<String> {
    let current = mlops_compiler::check::check_directory(&plan.root_directory, "", &CheckOptions::default());
    if config_hash(&current.sources, &HashMap::new()) != plan.files_hash {
        return Some("the configuration files changed since it was made".to_owned());
    }
    if state.serial != plan.state_serial || state.lineage != plan.state_lineage {
        return Some(format!("the state changed since it was made (serial {} then, {} now)", plan.state_serial, state.serial));
    }
    None
}

/// Plans the configuration in `directory` against `state`.
pub fn plan(
    directory: &Path,
    display: &str,
    options: &PlanOptions,
    providers: &Providers,
    state: &State,
    data_directory: &Path,
) -> PlanOutcome {
    // Provider configurations come from a plain check first: refresh needs
    // them before the planning evaluation starts.
    let check_options = CheckOptions {
        variables: Some(options.variables.clone()),
        providers_only: false,
        variable_origins: options.variable_origins.clone(),
        missing_variables_unknown: false,
        files: Default::default(),
        // Judged below, once the plan says what happens to each resource.
        defer_policies: true,
    };
    // Selecting targets needs the whole graph; otherwise provider blocks are enough.
    let needs_graph = options.destroy || !options.targets.is_empty() || !options.excludes.is_empty();
    let preloaded = mlops_compiler::check::preload(directory, display);
    let first = check_preloaded(preloaded.clone(), &CheckOptions { providers_only: !needs_graph, ..check_options.clone() }, None);
    if first.has_errors() {
        return PlanOutcome { sources: first.sources, diagnostics: first.diagnostics, plan: None };
    }
    let Some(root) = first.root.as_ref() else {
        return PlanOutcome { sources: first.sources, diagnostics: first.diagnostics, plan: None };
    };
    let mut configurations = BTreeMap::new();
    for (provider_type, alias, values) in &root.providers {
        let mut sensitive_paths = Vec::new();
        let mut config = Attributes::new();
        for (name, value) in values {
            if value.contains_sensitive() {
                sensitive_paths.push(vec![name.clone()]);
            }
            config.insert(name.clone(), value.to_json_unredacted());
        }
        configurations.insert(provider_key(provider_type, alias.as_deref()), ProviderConfiguration::new(config, sensitive_paths));
    }

    let (refreshed, drift, notes, mut problems) = if options.refresh {
        refresh(state, providers, &configurations, directory, data_directory, options.parallelism)
    } else {
        (Refreshed::default(), Vec::new(), Vec::new(), Vec::new())
    };

    // -target selects its dependencies too; -exclude removes its dependents too.
    let parse_patterns = |patterns: &[String], flag: &str| -> Result<Vec<AddressPattern>, Diagnostic> {
        patterns
            .iter()
            .map(|pattern| {
                pattern.parse::<AddressPattern>().map_err(|message| {
                    Diagnostic::error(codes::INVALID_REFERENCE, format!("{flag} {message}"))
                        .with_help("give a resource address such as `training.fraud`, `dataset.events[\"eu\"]` or `module.features`")
                })
            })
            .collect()
    };
    let (targets, excludes) = match (parse_patterns(&options.targets, "-target"), parse_patterns(&options.excludes, "-exclude")) {
        (Ok(targets), Ok(excludes)) => (targets, excludes),
        (Err(diagnostic), _) | (_, Err(diagnostic)) => {
            let mut diagnostics = first.diagnostics;
            diagnostics.push(diagnostic);
            return PlanOutcome { sources: first.sources, diagnostics, plan: None };
        }
    };
    let selected =
        if options.targets.is_empty() && options.excludes.is_empty() { None } else { Some(select(&first, state, &targets, &excludes)) };

    let mut planner = Planner::new(providers, state, &refreshed, &configurations, data_directory.to_path_buf());
    planner.selected = selected.clone();
    let outcome: CheckResult = if options.destroy { first } else { check_preloaded(preloaded, &check_options, Some(&mut planner)) };
    let mut diagnostics = outcome.diagnostics;
    if diagnostics.iter().any(Diagnostic::is_error) {
        return PlanOutcome { sources: outcome.sources, diagnostics, plan: None };
    }
    let mut changes = std::mem::take(&mut planner.changes);
    problems.append(&mut planner.problems);
    let seen = std::mem::take(&mut planner.seen);

    // What state has and the configuration no longer does.
    for record in state.resources.values() {
        if seen.contains(&record.address) && !options.destroy {
            continue;
        }
        if selected.as_ref().is_some_and(|selected| !selected.contains(&record.address)) {
            continue;
        }
        let gone = refreshed.gone.contains(&record.address);
        let action = if record.is_data || gone || (record.lifecycle.retained && !record.lifecycle.destroy && !options.delete_retained) {
            Action::Forget
        } else {
            Action::Delete
        };
        let reason =
            if options.destroy { "destroy requested".to_owned() } else { "its block was removed from the configuration".to_owned() };
        let mut reasons = vec![reason];
        if action == Action::Forget && record.lifecycle.retained && !gone {
            reasons.push(format!(
                "{} is retained: it is kept, only dropped from state (use lifecycle {{ destroy = true }} to delete it)",
                record.kind
            ));
        }
        if gone {
            reasons.push("it no longer exists".to_owned());
        }
        if action == Action::Delete && record.lifecycle.prevent_destroy {
            problems.push(
                Diagnostic::error(
                    codes::PREVENT_DESTROY,
                    format!("{} would be destroyed, but lifecycle.prevent_destroy is set", record.address),
                )
                .with_help("remove prevent_destroy in a reviewed change first, if destroying it is intended"),
            );
        }
        changes.push(ResourceChange {
            address: record.address.clone(),
            kind: record.kind.clone(),
            is_data: record.is_data,
            provider: record.provider.clone(),
            provider_alias: record.provider_alias.clone(),
            module_path: record.module_path.clone(),
            action,
            reasons,
            before: Some(record.merged_attributes()),
            after: None,
            after_unknown: Vec::new(),
            sensitive_paths: record.sensitive_paths.clone(),
            config: record.config.clone(),
            depends_on: record.depends_on.clone(),
            lifecycle: record.lifecycle.clone(),
            working_directory: directory.to_path_buf(),
            provider_key: provider_key(&record.provider, record.provider_alias.as_deref()),
            planned_private: Json::Null,
            refreshed: None,
        });
    }

    let mut module_outputs = Vec::new();
    if let Some(root) = outcome.root.as_ref().filter(|_| !options.destroy) {
        let mut stack: Vec<&mlops_compiler::check::CheckedModule> = root.children.iter().collect();
        while let Some(module) = stack.pop() {
            module_outputs.push(ModuleOutputs {
                module_path: module.path.clone(),
                outputs: module.outputs.iter().map(|output| output_change(output, None, &module.path)).collect(),
            });
            stack.extend(module.children.iter());
        }
    }
    let outputs = if options.destroy {
        state
            .outputs
            .iter()
            .map(|(name, output)| OutputChange {
                name: name.clone(),
                before: Some(output.value.clone()),
                after: None,
                residual: None,
                sensitive: output.sensitive,
                module_path: Vec::new(),
            })
            .collect()
    } else {
        outcome
            .root
            .as_ref()
            .map(|root| {
                root.outputs
                    .iter()
                    .map(|output| output_change(output, state.outputs.get(&output.name).map(|prior| prior.value.clone()), &[]))
                    .collect()
            })
            .unwrap_or_default()
    };

    if let Some(root) = outcome.root.as_ref().filter(|_| !options.destroy) {
        diagnostics.extend(planned_rule_warnings(root, state, &refreshed));
    }

    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION.to_owned(),
        config_hash: config_hash(&outcome.sources, &options.variables),
        files_hash: config_hash(&outcome.sources, &HashMap::new()),
        state_lineage: state.lineage.clone(),
        state_serial: state.serial,
        root_directory: directory.to_path_buf(),
        data_directory: data_directory.to_path_buf(),
        destroy: options.destroy,
        partial: !options.targets.is_empty() || !options.excludes.is_empty(),
        changes,
        drift,
        notes,
        outputs,
        module_outputs,
        provider_configurations: configurations,
        secrets_withheld: false,
        policies: Vec::new(),
    };
    if !outcome.policies.is_empty() {
        let (results, violations) = crate::policy::judge(outcome.root.as_ref(), &outcome.policies, &outcome.sources, &plan);
        plan.policies = results;
        diagnostics.extend(violations);
    }
    let failed = diagnostics.iter().any(Diagnostic::is_error) || problems.iter().any(Diagnostic::is_error);
    // A provider's error may quote what it was given.
    let scrubber = Scrubber::for_plan(&plan);
    diagnostics.extend(problems.into_iter().map(|problem| scrubber.scrub_diagnostic(problem)));
    PlanOutcome { sources: outcome.sources, diagnostics, plan: (!failed).then_some(plan) }
}

fn output_change(output: &mlops_compiler::check::CheckedOutput, before: Option<Json>, module_path: &[String]) -> OutputChange {
    let known = output.value.is_wholly_known();
    let after = known.then(|| output.value.to_json_unredacted());
    let sensitive = output.sensitive || output.value.contains_sensitive();
    // A sensitive output stored without a key cannot be compared: it is
    // taken to be unchanged, as a withheld secret in a resource is.
    let withheld = before.as_ref().is_some_and(crate::state::is_sealed);
    let before = if sensitive && withheld && after.is_some() { after.clone() } else { before };
    OutputChange {
        name: output.name.clone(),
        before,
        after,
        residual: if known { None } else { output.residual.clone() },
        sensitive,
        module_path: module_path.to_vec(),
    }
}

/// The addresses a -target/-exclude selection keeps.
/// The instances -target/-exclude select: the configuration's resource
/// blocks (with their dependencies and instances) and what the state
/// records, handed to [`crate::select::select`].
fn select(check: &CheckResult, state: &State, targets: &[AddressPattern], excludes: &[AddressPattern]) -> HashSet<String> {
    let mut blocks = Vec::new();
    if let Some(root) = &check.root {
        for (module_path, resource) in root.all_resources() {
            let mode = if resource.is_data { Mode::Data } else { Mode::Managed };
            let base = ResourceAddress::new(module_path, mode, &resource.kind, &resource.name);
            let depends = resource
                .depends_on
                .iter()
                .filter_map(|dependency| dependency.parse::<ResourceAddress>().ok())
                .map(|dependency| ResourceAddress { module_path: module_path.to_vec(), ..dependency })
                .collect();
            let instances =
                resource.instances.iter().filter_map(|instance| instance.value.address.parse::<ResourceAddress>().ok()).collect();
            blocks.push(crate::select::Block { address: base, depends_on: depends, instances });
        }
    }
    let recorded = state.resources.keys().filter_map(|address| address.parse::<ResourceAddress>().ok());
    crate::select::select(&blocks, recorded, targets, excludes)
}

/// The warnings of the kinds' plan-time rules (W0103, a monitor that
/// drifted with nothing retraining on it), on the resources as refreshed.
fn planned_rule_warnings(root: &mlops_compiler::check::CheckedModule, state: &State, refreshed: &Refreshed) -> Vec<Diagnostic> {
    let live = |address: &str, attribute: &str| refreshed.get(state, address).and_then(|record| record.state.get(attribute).cloned());
    let mut warnings = Vec::new();
    let mut modules = vec![root];
    while let Some(module) = modules.pop() {
        modules.extend(module.children.iter());
        let depended_on: HashSet<&str> =
            module.resources.iter().flat_map(|resource| resource.depends_on.iter().map(String::as_str)).collect();
        for resource in &module.resources {
            let check = mlops_compiler::rules::PlannedCheck { resource, depended_on: &depended_on, live: &live };
            warnings.extend(mlops_compiler::rules::check_planned(&check));
        }
    }
    warnings
}
