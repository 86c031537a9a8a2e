//! Apply: executes a plan's changes as a graph, with bounded parallelism.
//!
//! - A change starts when everything it depends on has finished; deletes go
//!   in reverse dependency order. Independent branches keep going when one
//!   fails; everything downstream of a failure is skipped and reported.
//! - Each finished change is one journal line (see [`crate::state`]). The
//!   coordinator makes everything that finished meanwhile durable with one
//!   write and one fsync before anything downstream starts or the change is
//!   reported done; workers meanwhile go on with queued work, so the disk's
//!   latency does not bound throughput.
//! - Long-running work records its handle through [`ApplyContext`] before
//!   waiting, so the next apply re-attaches instead of starting again.
//! - Gates are evaluated before a model version is registered, checks after
//!   a dataset is stored; a false one fails that branch with its message.
//! - On interrupt, nothing new starts; what runs finishes or records its
//!   handle, and the state is saved.
//!
//! Apply evaluates only the residual expressions the plan carries, never the
//! configuration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mlops_compiler::address::{InstanceKey, Mode, ResourceAddress};
use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::residual::{resource_value, CompiledResidual, ResidualBindings};
use mlops_compiler::schema::Schemas;
use mlops_compiler::value::{Value, ValueMap};
use mlops_provider_api::value::written::as_expression;
use mlops_provider_api::{Action, ApplyContext, ApplyRequest, Attributes, ProviderError, RowEvaluator};
use serde_json::Value as Json;

use crate::convert::{attribute_context, values_from_json};
use crate::plan::{Plan, Providers, ResourceChange};
use crate::redact::{redact_paths, Scrubber};
use crate::resolve::{identity_attribute, lineage_details, lineage_for, resolve_references, visit_expressions};
use crate::state::{now, Journal, OutputRecord, Record, Secrets, State, StateError};

/// What apply tells whoever shows progress.
#[derive(Debug, Clone)]
pub enum ApplyEvent {
    Started { address: String, action: Action },
    Progress { address: String, message: String },
    Finished { address: String, action: Action, elapsed: Duration },
    Failed { address: String, action: Action, message: String },
    Skipped { address: String, because: String },
}

pub trait Reporter: Send + Sync {
    fn event(&self, event: ApplyEvent);
}

pub struct ApplyOptions {
    pub parallelism: usize,
    pub interrupt: Arc<AtomicBool>,
    pub reporter: Arc<dyn Reporter>,
    /// Who and what, for the history record.
    pub command: String,
}

/// How a change ended.
#[derive(Debug, Clone)]
pub enum ChangeOutcome {
    Done,
    Failed(Diagnostic),
    Skipped(String),
    NotStarted,
}

pub struct ApplyResult {
    pub state: State,
    pub outcomes: BTreeMap<String, (Action, ChangeOutcome)>,
    pub interrupted: bool,
    pub state_error: Option<StateError>,
}

impl ApplyResult {
    pub fn failures(&self) -> impl Iterator<Item = (&String, &Diagnostic)> {
        self.outcomes.iter().filter_map(|(address, (_, outcome))| match outcome {
            ChangeOutcome::Failed(diagnostic) => Some((address, diagnostic)),
            _ => None,
        })
    }

    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.state_error.is_none() && self.outcomes.values().all(|(_, outcome)| matches!(outcome, ChangeOutcome::Done))
    }

    pub fn count(&self, action: Action) -> usize {
        self.outcomes.values().filter(|(done, outcome)| *done == action && matches!(outcome, ChangeOutcome::Done)).count()
    }
}

struct Shared<'a> {
    plan: &'a Plan,
    providers: &'a Providers,
    secrets: &'a Secrets,
    state: Mutex<State>,
    journal: Journal,
    options: &'a ApplyOptions,
    /// Every secret the plan holds, kept out of progress lines and errors.
    scrubber: Scrubber,
}

struct Context<'a> {
    shared: &'a Shared<'a>,
    change: &'a ResourceChange,
    prior: Option<Record>,
}

impl ApplyContext for Context<'_> {
    fn record_handle(&self, handle: Json) -> Result<(), ProviderError> {
        let mut record = self.prior.clone().unwrap_or_else(|| placeholder_record(self.change));
        record.pending_handle = Some(handle);
        record.updated_at = now();
        self.shared.journal.put(&record, self.shared.secrets).map_err(|error| ProviderError::failed(error.to_string()))?;
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).resources.insert(record.address.clone(), record);
        Ok(())
    }

    fn progress(&self, message: &str) {
        let message = self.shared.scrubber.scrub(message);
        self.shared.options.reporter.event(ApplyEvent::Progress { address: self.change.address.clone(), message });
    }

    fn interrupted(&self) -> bool {
        self.shared.options.interrupt.load(Ordering::SeqCst)
    }

    fn row_evaluator(&self) -> &dyn RowEvaluator {
        &crate::row_expression::LanguageRowEvaluator
    }

    fn fetch(&self, uri: &str, destination: &std::path::Path) -> Result<(), ProviderError> {
        // The input this resource refers to that has this uri, and the
        // provider (and configuration) that stored it.
        let owner = {
            let state = self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.change
                .depends_on
                .iter()
                .filter_map(|address| state.resources.get(address))
                .find(|record| {
                    Schemas::standard().kind(&record.kind, record.is_data).is_some_and(|schema| {
                        schema.data_location_attributes().any(|name| record.state.get(name).and_then(Json::as_str) == Some(uri))
                    })
                })
                .cloned()
        };
        let Some(owner) = owner else {
            return Err(ProviderError::failed(format!("{} does not refer to anything stored at `{uri}`", self.change.address)));
        };
        let provider = self.shared.providers.get(&owner.provider).map_err(ProviderError::failed)?;
        let key = crate::plan::provider_key(&owner.provider, owner.provider_alias.as_deref());
        let target = crate::plan::target_of(
            &owner.address,
            &owner.kind,
            owner.is_data,
            crate::plan::provider_settings(&self.shared.plan.provider_configurations, &key, &owner.provider),
            &self.change.working_directory,
            &self.shared.plan.data_directory,
        );
        // The version the owner recorded: what is fetched must be it.
        let version = owner.state.get("version").and_then(Json::as_str).filter(|version| version.contains(':')).map(str::to_owned);
        let request = mlops_provider_api::FetchRequest { target, uri: uri.to_owned(), destination: destination.to_path_buf(), version };
        let response = provider.fetch(request)?;
        self.progress(&format!(
            "staged {} from {uri} ({} copied, {} already here)",
            owner.address,
            response.copied,
            response.files - response.copied
        ));
        Ok(())
    }
}

/// A record for work started on a resource that has none yet: it only
/// carries the pending handle, and the next plan still creates the resource.
fn placeholder_record(change: &ResourceChange) -> Record {
    Record {
        address: change.address.clone(),
        kind: change.kind.clone(),
        provider: change.provider.clone(),
        provider_alias: change.provider_alias.clone(),
        module_path: change.module_path.clone(),
        config: Attributes::new(),
        state: Attributes::new(),
        depends_on: change.depends_on.clone(),
        lifecycle: change.lifecycle.clone(),
        private: serde_json::json!({ "placeholder": true }),
        ..Record::default()
    }
}

/// Applies `plan` to `state` (already loaded under the lock).
pub fn apply(
    plan: &Plan,
    backend: &crate::state::Backend,
    mut state: State,
    providers: &Providers,
    secrets: &Secrets,
    options: &ApplyOptions,
) -> ApplyResult {
    if state.lineage.is_empty() {
        state.lineage = crate::state::new_id();
    }
    let journal = match backend.open_journal(&state) {
        Ok(journal) => journal,
        Err(error) => return ApplyResult { state, outcomes: BTreeMap::new(), interrupted: false, state_error: Some(error) },
    };
    let scrubber = Scrubber::for_plan(plan);
    let shared = Shared { plan, providers, secrets, state: Mutex::new(state), journal, options, scrubber };
    record_refreshed(&shared);

    // The order: changes that do something, each after what it waits on.
    let nodes: Vec<usize> = plan.changes.iter().enumerate().filter(|(_, change)| change.is_change()).map(|(index, _)| index).collect();
    let steps: Vec<crate::schedule::Step<'_>> = plan
        .changes
        .iter()
        .map(|change| crate::schedule::Step { address: &change.address, action: change.action, depends_on: &change.depends_on })
        .collect();
    let mut schedule = crate::schedule::Schedule::new(&steps, &nodes);

    let mut outcomes: BTreeMap<String, (Action, ChangeOutcome)> = BTreeMap::new();
    let mut interrupted = false;

    let (job_sender, job_receiver) = mpsc::channel::<usize>();
    let job_receiver = Mutex::new(job_receiver);
    let (done_sender, done_receiver) = mpsc::channel::<Finished>();
    let workers = options.parallelism.clamp(1, 256).min(nodes.len().max(1));
    // Jobs queued ahead of the workers, so that they keep going while the
    // coordinator waits for the disk.
    let queue_depth = workers * 4;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_sender = done_sender.clone();
            let job_receiver = &job_receiver;
            let shared = &shared;
            scope.spawn(move || loop {
                let job = job_receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
                let Ok(index) = job else { break };
                // A panic (a bug) fails its change; it must not leave the
                // coordinator waiting for an answer that never comes.
                let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(shared, index))).unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let address = &shared.plan.changes[index].address;
                    Finished {
                        index,
                        outcome: ChangeOutcome::Failed(
                            Diagnostic::error(codes::PROVIDER_ERROR, format!("{address} failed on an internal error: {what}"))
                                .with_help("this is a bug in mlops: please report it with the plan; finished work is saved"),
                        ),
                        sequence: None,
                        elapsed: Duration::ZERO,
                    }
                });
                if done_sender.send(finished).is_err() {
                    break;
                }
            });
        }
        drop(done_sender);
        let mut queued = 0usize;
        loop {
            if options.interrupt.load(Ordering::SeqCst) {
                interrupted = true;
            }
            while !interrupted && queued < queue_depth {
                let Some(index) = schedule.next_ready() else { break };
                if job_sender.send(index).is_err() {
                    break;
                }
                queued += 1;
            }
            if queued == 0 {
                break;
            }
            // Everything that finished meanwhile becomes durable in one
            // fsync before anything downstream starts or is reported done.
            let Ok(first) = done_receiver.recv() else { break };
            let mut batch = vec![first];
            batch.extend(done_receiver.try_iter());
            queued -= batch.len();
            let durable = match batch.iter().filter_map(|finished| finished.sequence).max() {
                Some(sequence) => shared.journal.wait_durable(sequence),
                None => Ok(()),
            };
            for Finished { index, outcome, sequence, elapsed } in batch {
                let change = &plan.changes[index];
                let outcome = match (&durable, sequence, outcome) {
                    (Err(error), Some(_), ChangeOutcome::Done) => ChangeOutcome::Failed(
                        Diagnostic::error(
                            codes::STATE_ERROR,
                            format!("{} was applied but its state could not be saved: {error}", change.address),
                        )
                        .with_help(error.help().unwrap_or_else(|| "fix the cause and run `mlops apply` again".to_owned())),
                    ),
                    (_, _, outcome) => outcome,
                };
                match &outcome {
                    ChangeOutcome::Done => {
                        options.reporter.event(ApplyEvent::Finished { address: change.address.clone(), action: change.action, elapsed })
                    }
                    ChangeOutcome::Failed(diagnostic) => options.reporter.event(ApplyEvent::Failed {
                        address: change.address.clone(),
                        action: change.action,
                        message: diagnostic.message.clone(),
                    }),
                    _ => {}
                }
                if matches!(outcome, ChangeOutcome::NotStarted) {
                    continue;
                }
                let succeeded = matches!(outcome, ChangeOutcome::Done);
                outcomes.insert(change.address.clone(), (change.action, outcome));
                // Everything downstream of a failure is skipped.
                for dependent in schedule.finished(index, succeeded) {
                    let address = plan.changes[dependent].address.clone();
                    let because = format!("{} did not complete", change.address);
                    options.reporter.event(ApplyEvent::Skipped { address: address.clone(), because: because.clone() });
                    outcomes.insert(address, (plan.changes[dependent].action, ChangeOutcome::Skipped(because)));
                }
            }
        }
        drop(job_sender);
    });
    for &index in &nodes {
        let change = &plan.changes[index];
        outcomes.entry(change.address.clone()).or_insert((change.action, ChangeOutcome::NotStarted));
    }

    // Outputs, from what is now in state.
    let mut state_error = None;
    let Shared { state, journal, scrubber, .. } = shared;
    let mut state = state.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.serial = journal.serial();
    // A journal that failed holds less than the state in memory: folding
    // that into a snapshot would save what was never durable, or (when
    // another process won a race) overwrite its work.
    if let Some(failure) = journal.failure() {
        state_error = Some(failure);
    }
    let all_done = outcomes.values().all(|(_, outcome)| matches!(outcome, ChangeOutcome::Done));
    if all_done && !interrupted {
        let mut outputs = BTreeMap::new();
        for output in &plan.outputs {
            if plan.destroy {
                continue;
            }
            let value = match (&output.after, &output.residual) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(residual)) => {
                    let bindings = bindings_with_modules(plan, &state.resources, &[], None);
                    match CompiledResidual::parse(residual, &bindings).and_then(|compiled| compiled.evaluate(None, None)) {
                        Ok(value) => Some(value.to_json_unredacted()),
                        // A targeted apply leaves outputs it cannot compute as they were.
                        Err(_) if plan.partial => state.outputs.get(&output.name).map(|prior| prior.value.clone()),
                        Err(message) => {
                            outcomes.insert(
                                format!("output.{}", output.name),
                                (
                                    Action::Update,
                                    ChangeOutcome::Failed(
                                        scrubber.scrub_diagnostic(
                                            Diagnostic::error(
                                                codes::PROVIDER_ERROR,
                                                format!("output `{}` cannot be computed: {message}", output.name),
                                            )
                                            .with_help("check the output's expression"),
                                        ),
                                    ),
                                ),
                            );
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            if let Some(value) = value {
                outputs.insert(output.name.clone(), OutputRecord { value, sensitive: output.sensitive });
            }
        }
        if outputs != state.outputs && state_error.is_none() {
            match journal.outputs(&outputs, secrets) {
                Ok(serial) => state.serial = serial,
                Err(error) => state_error = Some(error),
            }
            state.outputs = outputs;
        }
    }
    let durable_serial = journal.durable_serial();
    drop(journal);
    if state_error.is_none() {
        if let Err(error) = backend.compact(&state, secrets) {
            state_error = Some(error);
        }
    }
    let changes: Vec<Json> = outcomes
        .iter()
        .map(|(address, (action, outcome))| {
            serde_json::json!({
                "address": address,
                "action": action.verb(),
                "result": match outcome {
                    ChangeOutcome::Done => "done",
                    ChangeOutcome::Failed(_) => "failed",
                    ChangeOutcome::Skipped(_) => "skipped",
                    ChangeOutcome::NotStarted => "not started",
                },
            })
        })
        .collect();
    if !changes.is_empty() {
        let entry = serde_json::json!({
            "time": now(),
            "user": std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
            "host": crate::state::hostname(),
            "command": options.command,
            "plan_hash": plan.config_hash,
            // What was made durable, which a later load finds: the history
            // is how a load knows that a missing state is missing.
            "serial": durable_serial,
            "interrupted": interrupted,
            "changes": changes,
        });
        if let Err(error) = backend.append_history(&entry) {
            state_error.get_or_insert(error);
        }
    }
    ApplyResult { state, outcomes, interrupted, state_error }
}

/// Records what refresh found for resources that stay as they are (a
/// version deleted in a registry), so the same drift is not reported by every
/// plan after. Nothing is asked of a provider.
fn record_refreshed(shared: &Shared<'_>) {
    let mut last = None;
    for change in shared.plan.changes.iter().filter(|change| !change.is_change()) {
        let Some(found) = &change.refreshed else { continue };
        let mut state = shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(recorded) = state.resources.get(&change.address).cloned() else { continue };
        let mut record = Record { state: found.state.clone(), private: found.private.clone(), updated_at: now(), ..recorded };
        crate::lineage::keep_registered_versions(&mut record);
        match shared.journal.put_deferred(&record, shared.secrets) {
            Ok(serial) => last = Some(serial),
            Err(_) => break,
        }
        state.resources.insert(record.address.clone(), record);
    }
    if let Some(serial) = last {
        let _ = shared.journal.wait_durable(serial);
    }
}

/// Values the residuals of a change may refer to: the applied resources of
/// its module, each resource as one value (a list for `count`, a map for
/// `for_each`).
fn bindings_for(records: &BTreeMap<String, Record>, module_path: &[String], self_value: Option<Value>) -> ResidualBindings {
    let mut grouped: BTreeMap<ResourceAddress, Vec<(InstanceKey, Value)>> = BTreeMap::new();
    for record in records.values() {
        if record.module_path != module_path || record.pending_handle.is_some() && record.state.is_empty() {
            continue;
        }
        let Ok(address) = record.address.parse::<ResourceAddress>() else { continue };
        let attributes = values_from_json(&record.merged_attributes(), &record.sensitive_paths);
        let value = resource_value(&record.address, &record.kind, record.is_data, attributes);
        grouped.entry(address.without_key().local()).or_default().push((address.key, value));
    }
    let mut bindings = ResidualBindings { self_value, ..ResidualBindings::default() };
    for (resource, mut instances) in grouped {
        let value = if let [(InstanceKey::None, _)] = instances.as_slice() {
            instances.remove(0).1
        } else if instances.iter().all(|(key, _)| matches!(key, InstanceKey::Index(_))) {
            instances.sort_by(|left, right| left.0.cmp(&right.0));
            Value::List(instances.into_iter().map(|(_, value)| value).collect())
        } else {
            Value::Map(
                instances
                    .into_iter()
                    .map(|(key, value)| {
                        let key = match key {
                            InstanceKey::Key(key) => key,
                            InstanceKey::Index(index) => index.to_string(),
                            InstanceKey::None => String::new(),
                        };
                        (key, value)
                    })
                    .collect(),
            )
        };
        let slot = (resource.kind, resource.name);
        match resource.mode {
            Mode::Data => bindings.data.insert(slot, value),
            Mode::Managed => bindings.resources.insert(slot, value),
        };
    }
    bindings
}

/// [`bindings_for`] plus the outputs of the module calls in that module,
/// computed (recursively) from their own resources.
fn bindings_with_modules(
    plan: &Plan,
    records: &BTreeMap<String, Record>,
    module_path: &[String],
    self_value: Option<Value>,
) -> ResidualBindings {
    let mut bindings = bindings_for(records, module_path, self_value);
    for module in &plan.module_outputs {
        let Some((name, parent)) = module.module_path.split_last() else { continue };
        if parent != module_path {
            continue;
        }
        let inner = bindings_with_modules(plan, records, &module.module_path, None);
        let outputs: ValueMap = module
            .outputs
            .iter()
            .filter_map(|output| {
                let value = match (&output.after, &output.residual) {
                    (Some(value), _) => Some(Value::from_json(value)),
                    (None, Some(residual)) => {
                        CompiledResidual::parse(residual, &inner).and_then(|compiled| compiled.evaluate(None, None)).ok()
                    }
                    (None, None) => None,
                };
                value.map(|value| (output.name.clone(), value.mark_if(output.sensitive)))
            })
            .collect();
        bindings.modules.insert(name.clone(), Value::Map(outputs));
    }
    bindings
}

/// What a worker reports: how the change ended, and the journal sequence
/// number that makes its result durable.
struct Finished {
    index: usize,
    outcome: ChangeOutcome,
    sequence: Option<u64>,
    elapsed: Duration,
}

fn execute(shared: &Shared<'_>, index: usize) -> Finished {
    let change = &shared.plan.changes[index];
    let started = Instant::now();
    // Queued before the interrupt, not started: it stays as it is.
    if shared.options.interrupt.load(Ordering::SeqCst) {
        return Finished { index, outcome: ChangeOutcome::NotStarted, sequence: None, elapsed: Duration::ZERO };
    }
    shared.options.reporter.event(ApplyEvent::Started { address: change.address.clone(), action: change.action });
    match execute_inner(shared, change) {
        Ok(sequence) => Finished { index, outcome: ChangeOutcome::Done, sequence, elapsed: started.elapsed() },
        Err(Failure { diagnostic, keeps_handle }) => {
            // A handle is for resuming interrupted work. Work that failed on
            // its own is started afresh next time, so its handle goes; work
            // that belongs to another place keeps it for that place.
            if !keeps_handle && !shared.options.interrupt.load(Ordering::SeqCst) {
                forget_handle(shared, &change.address);
            }
            let diagnostic = shared.scrubber.scrub_diagnostic(diagnostic);
            Finished { index, outcome: ChangeOutcome::Failed(diagnostic), sequence: None, elapsed: started.elapsed() }
        }
    }
}

fn forget_handle(shared: &Shared<'_>, address: &str) {
    let mut state = shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(record) = state.resources.get(address).filter(|record| record.pending_handle.is_some()).cloned() else { return };
    if record.state.is_empty() {
        if shared.journal.remove(address).is_ok() {
            state.resources.remove(address);
        }
    } else {
        let record = Record { pending_handle: None, ..record };
        if shared.journal.put(&record, shared.secrets).is_ok() {
            state.resources.insert(address.to_owned(), record);
        }
    }
}

/// Why a change did not complete, and whether its pending handle stays.
struct Failure {
    diagnostic: Diagnostic,
    keeps_handle: bool,
}

impl From<Diagnostic> for Failure {
    fn from(diagnostic: Diagnostic) -> Failure {
        Failure { diagnostic, keeps_handle: false }
    }
}

fn provider_failure(plan: &Plan, change: &ResourceChange, error: &ProviderError) -> Failure {
    Failure { diagnostic: provider_diagnostic(plan, change, error), keeps_handle: matches!(error, ProviderError::Elsewhere { .. }) }
}

fn provider_diagnostic(plan: &Plan, change: &ResourceChange, error: &ProviderError) -> Diagnostic {
    let verb = match change.action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        _ => "apply",
    };
    let message = match error {
        ProviderError::Interrupted => format!("{} was interrupted; its progress is recorded and the next apply resumes it", change.address),
        other => format!("cannot {verb} {}: {other}", change.address),
    };
    Diagnostic::error(codes::PROVIDER_ERROR, message).with_help(error.help().map_or_else(
        || {
            let command = if plan.destroy { "destroy" } else { "apply" };
            format!("fix the cause and run `mlops {command}` again; finished work is not repeated")
        },
        str::to_owned,
    ))
}

// One error per resource at most, never on a hot path: boxing would only add noise.
#[allow(clippy::result_large_err)]
/// Applies one change; returns the journal sequence number of its record.
fn execute_inner(shared: &Shared<'_>, change: &ResourceChange) -> Result<Option<u64>, Failure> {
    let plan = shared.plan;
    let prior = shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).resources.get(&change.address).cloned();
    let state_failure = |error: StateError| {
        let help = error.help().unwrap_or_else(|| "fix the cause and run `mlops apply` again".to_owned());
        Diagnostic::error(codes::STATE_ERROR, format!("{} was applied but its state could not be saved: {error}", change.address))
            .with_help(help)
    };
    let provider = shared.providers.get(&change.provider).map_err(|message| {
        Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot apply {}: {message}", change.address))
            .with_help("use a provider this build supports")
    })?;
    let target = crate::plan::target_of(
        &change.address,
        &change.kind,
        change.is_data,
        crate::plan::provider_settings(&plan.provider_configurations, &change.provider_key, &change.provider),
        &change.working_directory,
        &plan.data_directory,
    );
    let context = Context { shared, change, prior: prior.clone() };

    match change.action {
        Action::Forget => {
            let sequence = shared.journal.remove_deferred(&change.address).map_err(state_failure)?;
            shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).resources.remove(&change.address);
            return Ok(Some(sequence));
        }
        Action::Delete => {
            if let Some(prior) = &prior {
                with_retries(&context, || {
                    provider.apply(
                        ApplyRequest {
                            target: target.clone(),
                            action: Some(Action::Delete),
                            config: crate::convert::provider_configuration(
                                &prior.config,
                                Schemas::standard().kind(&change.kind, change.is_data).map(|schema| &schema.body),
                                &prior.sensitive_paths,
                                &BTreeMap::new(),
                            ),
                            prior_state: Some(prior.state.clone()),
                            prior_private: prior.private.clone(),
                            planned_private: Json::Null,
                            pending_handle: prior.pending_handle.clone(),
                            lineage: Json::Null,
                        },
                        &context,
                    )
                })
                .map_err(|error| provider_failure(plan, change, &error))?;
            }
            let sequence = shared.journal.remove_deferred(&change.address).map_err(state_failure)?;
            shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).resources.remove(&change.address);
            return Ok(Some(sequence));
        }
        Action::NoOp => return Ok(None),
        _ => {}
    }

    // Resolve references and residuals against what is applied now.
    // Only what this resource refers to: copying the whole state per
    // resource would make apply quadratic.
    let (upstream, state_lineage): (BTreeMap<String, Record>, String) = {
        let state = shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut upstream = BTreeMap::new();
        for dependency in &change.depends_on {
            let instances = state
                .resources
                .range(dependency.clone()..)
                .take_while(|(address, _)| *address == dependency || address.starts_with(&format!("{dependency}[")));
            for (address, record) in instances {
                upstream.insert(address.clone(), record.clone());
            }
        }
        (upstream, state.lineage.clone())
    };
    let bindings = bindings_with_modules(plan, &upstream, &change.module_path, None);
    let mut stored_config = change.config.clone();
    let mut written = change.config.clone();
    let mut inputs = Vec::new();
    let targets = resolve_references(&mut stored_config, &upstream, &mut inputs);
    let schema = if change.is_data { Schemas::standard().data.get(&change.kind) } else { Schemas::standard().resources.get(&change.kind) };
    let mut post_checks: Vec<(Vec<String>, String)> = Vec::new();
    let mut failure: Option<String> = None;
    visit_expressions(&mut written, &mut Vec::new(), &mut |path, slot| {
        let Some(text) = as_expression(slot).map(str::to_owned) else { return };
        let context = schema.and_then(|schema| attribute_context(&schema.body, path));
        match context {
            Some("row") => {}
            Some("self") if path.last().map(String::as_str) == Some("condition") => post_checks.push((path.to_vec(), text)),
            Some("self") => {}
            _ if path.first().map(String::as_str) == Some("gate") => {}
            _ => match CompiledResidual::parse(&text, &bindings).and_then(|compiled| compiled.evaluate(None, None)) {
                Ok(value) => *slot = value.to_json_unredacted(),
                Err(message) => failure = Some(format!("`{}` could not be computed: {message}", path.join("."))),
            },
        }
    });
    if let Some(message) = failure {
        return Err(Failure::from(
            Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot apply {}: {message}", change.address))
                .with_help("the value depends on something that did not produce it"),
        ));
    }
    let resolved = crate::convert::provider_configuration(&written, schema.map(|schema| &schema.body), &change.sensitive_paths, &targets);
    // Gates guard registration; a model pinned to an existing version (a
    // rollback) registers nothing, so a failing candidate cannot block it.
    let pinned = change.kind == "model" && resolved.get("version").is_some_and(|version| !version.is_null());
    if !pinned {
        let gates = crate::gates::gates_of(&resolved);
        crate::gates::check_gates(&gates, &bindings, &resolved, &change.address).map_err(Failure::from)?;
    }

    let lineage = lineage_for(change, &inputs, &upstream);
    // Registries tag versions with the state's lineage id, so a version
    // names the state that produced it.
    let mut request_lineage = lineage.clone();
    if let Json::Object(object) = &mut request_lineage {
        object.insert("state_lineage".to_owned(), Json::String(state_lineage));
    }
    let request = ApplyRequest {
        target,
        action: Some(change.action),
        config: resolved.clone(),
        prior_state: prior.as_ref().filter(|prior| !prior.state.is_empty()).map(|prior| prior.state.clone()),
        prior_private: prior.as_ref().map(|prior| prior.private.clone()).unwrap_or_default(),
        planned_private: change.planned_private.clone(),
        pending_handle: prior.as_ref().and_then(|prior| prior.pending_handle.clone()),
        lineage: request_lineage,
    };
    let response = if change.is_data {
        // Data sources were read while planning.
        let mut state = Attributes::new();
        if let Some(after) = &change.after {
            for (name, value) in after {
                if !mlops_provider_api::value::written::is_unknown(value) && !change.config.contains_key(name) {
                    state.insert(name.clone(), value.clone());
                }
            }
        }
        mlops_provider_api::ApplyResponse { state, private: Json::Null }
    } else {
        with_retries(&context, || provider.apply(request.clone(), &context)).map_err(|error| provider_failure(plan, change, &error))?
    };

    // Checks: on what was actually stored.
    crate::gates::run_checks(&post_checks, &bindings, &resolved, &response.state, change).map_err(Failure::from)?;

    let record = Record {
        address: change.address.clone(),
        kind: change.kind.clone(),
        is_data: change.is_data,
        provider: change.provider.clone(),
        provider_alias: change.provider_alias.clone(),
        module_path: change.module_path.clone(),
        config: stored_config,
        state: response.state,
        sensitive_paths: change.sensitive_paths.clone(),
        depends_on: change.depends_on.clone(),
        lifecycle: change.lifecycle.clone(),
        private: response.private,
        pending_handle: None,
        lineage: crate::state::Lineage::default(),
        updated_at: now(),
    };
    let mut record = record;
    let mut lineage_tree = lineage;
    if let Json::Object(lineage) = &mut lineage_tree {
        if let Some(identity) = record.state.get(identity_attribute(&record)) {
            lineage.insert("identity".to_owned(), identity.clone());
        }
        let details = lineage_details(
            &change.kind,
            change.is_data,
            &redact_paths(&record.config, &change.sensitive_paths),
            &redact_paths(&record.state, &change.sensitive_paths),
        );
        lineage.insert("details".to_owned(), details);
    }
    if change.kind == "model" {
        crate::lineage::lineage_of_the_current_version(&mut lineage_tree, &resolved, &record.state, prior.as_ref());
    }
    record.lineage = crate::state::Lineage::from_json(&lineage_tree);
    // The identity the plan showed as known is what everything downstream
    // was planned from: if the provider produced another, the record is
    // kept (it is what exists now) but nothing downstream goes on.
    let identity = identity_attribute(&record);
    let planned_identity =
        change.after.as_ref().and_then(|after| after.get(identity)).filter(|value| !mlops_provider_api::value::written::is_unknown(value));
    let inconsistent = match (planned_identity, record.state.get(identity)) {
        (Some(planned), Some(applied)) if !change.is_data && planned != applied => Some((planned.clone(), applied.clone())),
        _ => None,
    };
    let sequence = shared.journal.put_deferred(&record, shared.secrets).map_err(state_failure)?;
    shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).resources.insert(record.address.clone(), record);
    if let Some((planned, applied)) = inconsistent {
        let _ = shared.journal.wait_durable(sequence);
        return Err(Failure::from(
            Diagnostic::error(
                codes::STALE_PLAN,
                format!("{} was applied, but its {identity} is {applied} where the plan showed {planned}", change.address),
            )
            .with_help("what depends on it was planned from the plan's value and is not applied; run `mlops plan` again and review it"),
        ));
    }
    Ok(Some(sequence))
}

/// Retries transient provider errors with backoff.
fn with_retries<T>(context: &Context<'_>, mut operation: impl FnMut() -> Result<T, ProviderError>) -> Result<T, ProviderError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match operation() {
            Err(ProviderError::Transient { message }) if attempt < 5 && !context.interrupted() => {
                context.progress(&format!("{message}; retrying in {:.1}s (attempt {attempt} of 5)", delay.as_secs_f64()));
                std::thread::sleep(delay);
                delay *= 2;
                attempt += 1;
            }
            Err(ProviderError::Transient { message }) => {
                return Err(ProviderError::failed(format!("{message} (gave up after {attempt} attempts)")))
            }
            other => return other,
        }
    }
}
