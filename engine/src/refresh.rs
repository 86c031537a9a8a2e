//! Refresh: every recorded resource read back through its provider, a
//! bounded number at a time, before anything is planned. What changed
//! outside mlops becomes drift (shown first in the plan); what is gone is
//! planned again; notes are passed on.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_compiler::schema::Schemas;
use mlops_provider_api::ReadRequest;

use crate::plan::{provider_key, restore_withheld, target_of, Drift, ProviderConfiguration, Providers};
use crate::redact::redact_paths;
use crate::state::{Record, State};

/// Refreshes every record through its provider, `parallelism` at a time.
/// Returns what changed, drift, and problems.
pub fn refresh(
    state: &State,
    providers: &Providers,
    configurations: &BTreeMap<String, ProviderConfiguration>,
    root_directory: &Path,
    data_directory: &Path,
    parallelism: usize,
) -> (Refreshed, Vec<Drift>, Vec<String>, Vec<Diagnostic>) {
    let records: Vec<&Record> = state.resources.values().collect();
    let next = AtomicUsize::new(0);
    type RefreshResult = (String, Result<(RefreshOutcome, Vec<String>), (String, Option<String>)>);
    let results: Mutex<Vec<RefreshResult>> = Mutex::new(Vec::with_capacity(records.len()));
    std::thread::scope(|scope| {
        for _ in 0..parallelism.clamp(1, 64).min(records.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(record) = records.get(index) else { break };
                let result = refresh_one(record, providers, configurations, root_directory, data_directory);
                results.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((record.address.clone(), result));
            });
        }
    });
    let mut refreshed = Refreshed::default();
    let mut drift = Vec::new();
    let mut problems = Vec::new();
    let mut failures: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut results = results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    results.sort_by(|left, right| left.0.cmp(&right.0));
    for (address, result) in results {
        let prior = &state.resources[&address];
        let result = result.map(|(outcome, found)| {
            notes.extend(found.into_iter().map(|note| format!("{address}: {note}")));
            outcome
        });
        match result {
            Ok(RefreshOutcome::Unchanged) => {}
            Ok(RefreshOutcome::Changed(record, outside)) => {
                if !outside.is_empty() {
                    drift.push(Drift {
                        address: address.clone(),
                        before: redact_paths(&prior.state, &prior.sensitive_paths),
                        after: Some(redact_paths(&record.state, &prior.sensitive_paths)),
                        summary: format!("changed outside mlops: {}", outside.join(", ")),
                    });
                } else if record.state != prior.state {
                    let changed: Vec<String> = prior
                        .state
                        .keys()
                        .chain(record.state.keys())
                        .filter(|name| prior.state.get(*name) != record.state.get(*name))
                        .cloned()
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    drift.push(Drift {
                        address: address.clone(),
                        before: redact_paths(&prior.state, &prior.sensitive_paths),
                        after: Some(redact_paths(&record.state, &prior.sensitive_paths)),
                        summary: format!("changed outside mlops: {}", changed.join(", ")),
                    });
                }
                if record.state != prior.state || record.private != prior.private {
                    refreshed.changed.insert(address, *record);
                }
            }
            Ok(RefreshOutcome::Gone) => {
                refreshed.gone.insert(address.clone());
                drift.push(Drift {
                    address: address.clone(),
                    before: redact_paths(&prior.state, &prior.sensitive_paths),
                    after: None,
                    summary: "deleted outside mlops".to_owned(),
                })
            }
            Err(message) => failures.entry(message).or_default().push(address),
        }
    }
    // One store that cannot be reached is one problem, however many
    // resources live in it.
    for ((message, help), addresses) in failures {
        let named = match addresses.as_slice() {
            [one] => one.clone(),
            [first, second] => format!("{first} and {second}"),
            [first, rest @ ..] => format!("{first} and {} more", rest.len()),
            [] => continue,
        };
        let help = match help {
            Some(help) => format!("{help}; or plan with --refresh=false to use the recorded state as it is"),
            None => "fix the cause, or plan with --refresh=false to use the recorded state as it is".to_owned(),
        };
        problems.push(Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot refresh {named}: {message}")).with_help(help));
    }
    (refreshed, drift, notes, problems)
}

/// What refreshing one record found.
enum RefreshOutcome {
    Unchanged,
    /// The record as read, and changes the provider found that its
    /// attributes do not show.
    Changed(Box<Record>, Vec<String>),
    Gone,
}

/// What refresh found, as differences from the state (so that a large state
/// is not copied when nothing changed).
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Records whose live state differs from the recorded one.
    pub changed: BTreeMap<String, Record>,
    /// Records whose object no longer exists.
    pub gone: HashSet<String>,
}

impl Refreshed {
    /// The refreshed record at `address`, if the object still exists.
    pub fn get<'a>(&'a self, state: &'a State, address: &str) -> Option<&'a Record> {
        if self.gone.contains(address) {
            return None;
        }
        self.changed.get(address).or_else(|| state.resources.get(address))
    }
}

/// Refreshes one record, with the provider's notes; an error is the
/// provider's message and help.
fn refresh_one(
    record: &Record,
    providers: &Providers,
    configurations: &BTreeMap<String, ProviderConfiguration>,
    root_directory: &Path,
    data_directory: &Path,
) -> Result<(RefreshOutcome, Vec<String>), (String, Option<String>)> {
    let provider = providers.get(&record.provider).map_err(|message| (message, None))?;
    let key = provider_key(&record.provider, record.provider_alias.as_deref());
    let target = target_of(
        &record.address,
        &record.kind,
        record.is_data,
        crate::plan::provider_settings(configurations, &key, &record.provider),
        root_directory,
        data_directory,
    );
    let response = provider
        .read(ReadRequest {
            target,
            config: crate::convert::provider_configuration(
                &record.config,
                Schemas::standard().kind(&record.kind, record.is_data).map(|schema| &schema.body),
                &record.sensitive_paths,
                &BTreeMap::new(),
            ),
            state: record.state.clone(),
            private: record.private.clone(),
        })
        .map_err(|error| (error.to_string(), error.help().map(str::to_owned)))?;
    // Only a record that changed is copied: most do not. A secret that was
    // not stored (no MLOPS_STATE_KEY) cannot be compared, so it is taken to
    // be what the object holds now, rather than reported as drift.
    let notes = response.notes;
    let outcome = match response.state {
        None => RefreshOutcome::Gone,
        Some(state) if !response.changed_outside.is_empty() => {
            RefreshOutcome::Changed(Box::new(Record { state, private: response.private, ..record.clone() }), response.changed_outside)
        }
        Some(state) if state == record.state && response.private == record.private => RefreshOutcome::Unchanged,
        Some(state)
            if response.private == record.private
                && !record.sensitive_paths.is_empty()
                && restore_withheld(&record.state, &state, &record.sensitive_paths) == state =>
        {
            RefreshOutcome::Unchanged
        }
        Some(state) => RefreshOutcome::Changed(Box::new(Record { state, private: response.private, ..record.clone() }), Vec::new()),
    };
    Ok((outcome, notes))
}
