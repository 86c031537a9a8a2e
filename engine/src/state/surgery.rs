//! State surgery: `mlops state rm` (stop managing a resource, leaving it
//! alone), `mlops state mv` (follow a renamed block) and the record
//! `mlops import` adds. Each locks the
//! state and go through the journal as an apply does, so a writer that
//! raced them fails instead of losing their change. A move also rewrites
//! every other record that refers to the old address (its `depends_on`
//! and the reference markers inside its configuration), which only this
//! module, beside the rest of the state format, knows how to do.

use serde_json::{json, Value as Json};

use super::{new_id, now, Backend, Record, Secrets, State, StateError};
use mlops_provider_api::Attributes;

/// Removes `address` from the state; the object itself is untouched.
/// `command` is recorded in the history.
pub fn remove_record(backend: &Backend, secrets: &Secrets, address: &str, command: &str) -> Result<(), StateError> {
    change(backend, secrets, address, None, command)
}

/// Renames `from` to `to` in the state, and every reference to it.
pub fn move_record(backend: &Backend, secrets: &Secrets, from: &str, to: &str, command: &str) -> Result<(), StateError> {
    change(backend, secrets, from, Some(to), command)
}

fn change(backend: &Backend, secrets: &Secrets, address: &str, to: Option<&str>, command: &str) -> Result<(), StateError> {
    let (lock, _) = backend.lock("mlops state")?;
    let mut state = backend.load(secrets)?;
    let Some(record) = state.resources.get(address).cloned() else { return Err(not_in_state(address, &state)) };
    let changed = match to {
        Some(to) if state.resources.contains_key(to) => return Err(StateError::AlreadyInState { address: to.to_owned() }),
        Some(to) => moved_records(&state, record, to),
        None => Vec::new(),
    };
    write(backend, secrets, &mut state, Some(address), changed, command)?;
    drop(lock);
    Ok(())
}

/// Adds `record` (an imported object) to the state, refusing an address
/// the state already holds.
pub fn add_record(backend: &Backend, secrets: &Secrets, record: Record, command: &str) -> Result<(), StateError> {
    let (lock, _) = backend.lock("mlops import")?;
    let mut state = backend.load(secrets)?;
    if state.resources.contains_key(&record.address) {
        return Err(StateError::AlreadyInState { address: record.address });
    }
    write(backend, secrets, &mut state, None, vec![record], command)?;
    drop(lock);
    Ok(())
}

/// Removes `removed` and puts `changed` through the journal (each entry
/// takes the next serial), then folds the journal and notes the command.
fn write(
    backend: &Backend,
    secrets: &Secrets,
    state: &mut State,
    removed: Option<&str>,
    changed: Vec<Record>,
    command: &str,
) -> Result<(), StateError> {
    if state.lineage.is_empty() {
        state.lineage = new_id();
    }
    let journal = backend.open_journal(state)?;
    let mut written = match removed {
        Some(address) => journal.remove_deferred(address),
        None => Ok(0),
    };
    for record in &changed {
        written = written.and_then(|_| journal.put_deferred(record, secrets));
    }
    written.and_then(|serial| journal.wait_durable(serial))?;
    if let Some(address) = removed {
        state.resources.remove(address);
    }
    for record in changed {
        state.resources.insert(record.address.clone(), record);
    }
    state.serial = journal.serial();
    drop(journal);
    backend.compact(state, secrets)?;
    // The history is a convenience; the change itself is saved.
    let _ = backend.append_history(&json!({
        "time": now(),
        "user": std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
        "host": super::hostname(),
        "command": command,
        "serial": state.serial
    }));
    Ok(())
}

/// The record under its new address, and every other record that refers
/// to the old one, rewritten to refer to the new one.
fn moved_records(state: &State, mut record: Record, to: &str) -> Vec<Record> {
    let from = record.address.clone();
    let mut changed = Vec::new();
    for other in state.resources.values().filter(|other| other.address != from) {
        let mut renamed = other.clone();
        for dependency in &mut renamed.depends_on {
            if *dependency == from {
                *dependency = to.to_owned();
            }
        }
        rename_references(&mut renamed.config, &from, to);
        if renamed != *other {
            changed.push(renamed);
        }
    }
    record.address = to.to_owned();
    changed.push(record);
    changed
}

/// Rewrites the reference markers (`{"$ref": ADDRESS, ...}`) to `from`
/// inside a record's configuration.
fn rename_references(attributes: &mut Attributes, from: &str, to: &str) {
    fn walk(value: &mut Json, from: &str, to: &str) {
        match value {
            Json::Object(entries) => {
                if mlops_provider_api::value::written::as_reference(&Json::Object(entries.clone()))
                    .is_some_and(|(address, _)| address == from)
                {
                    entries.insert("$ref".into(), Json::String(to.to_owned()));
                }
                for item in entries.values_mut() {
                    walk(item, from, to);
                }
            }
            Json::Array(items) => items.iter_mut().for_each(|item| walk(item, from, to)),
            _ => {}
        }
    }
    for value in attributes.values_mut() {
        walk(value, from, to);
    }
}

fn not_in_state(address: &str, state: &State) -> StateError {
    StateError::NotInState {
        address: address.to_owned(),
        suggestion: mlops_compiler::suggest::did_you_mean(address, state.resources.keys().map(String::as_str)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::LocalBackend;

    fn record(address: &str, depends_on: &[&str], config: Json) -> Record {
        Record {
            address: address.to_owned(),
            kind: address.split_once('.').unwrap().0.to_owned(),
            provider: "local".to_owned(),
            depends_on: depends_on.iter().map(|dependency| (*dependency).to_owned()).collect(),
            config: config.as_object().cloned().unwrap_or_default(),
            ..Record::default()
        }
    }

    /// A local state holding a dataset, a feature set reading it and a
    /// bucket that refers to neither.
    fn backend_with_records(directory: &std::path::Path) -> Backend {
        let backend = Backend::Local(LocalBackend::new(directory.join("state")));
        let secrets = Secrets::from_passphrase(None);
        let state = State { lineage: new_id(), ..State::default() };
        let journal = backend.open_journal(&state).unwrap();
        let records = [
            record("dataset.transactions", &[], json!({ "path": "data.csv" })),
            record(
                "feature_set.txn",
                &["dataset.transactions"],
                json!({ "source": { "$ref": "dataset.transactions", "identity": "b3:1" }, "nested": [{ "$ref": "dataset.transactions" }] }),
            ),
            record("bucket.lake", &[], json!({ "name": "lake", "tags": { "$ref": "dataset.transactionsX" } })),
        ];
        let mut serial = Ok(0);
        for record in &records {
            serial = journal.put_deferred(record, &secrets);
        }
        journal.wait_durable(serial.unwrap()).unwrap();
        backend
    }

    #[test]
    fn a_move_renames_the_record_and_every_reference_to_it() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_with_records(directory.path());
        let secrets = Secrets::from_passphrase(None);
        move_record(&backend, &secrets, "dataset.transactions", "dataset.payments", "mlops state mv").unwrap();
        let state = backend.load(&secrets).unwrap();
        let addresses: Vec<&str> = state.resources.keys().map(String::as_str).collect();
        assert_eq!(addresses, ["bucket.lake", "dataset.payments", "feature_set.txn"]);
        let features = &state.resources["feature_set.txn"];
        assert_eq!(features.depends_on, ["dataset.payments"]);
        assert_eq!(features.config["source"], json!({ "$ref": "dataset.payments", "identity": "b3:1" }));
        assert_eq!(features.config["nested"][0]["$ref"], "dataset.payments");
        // A marker naming another address, even one that starts the same, is left alone.
        assert_eq!(state.resources["bucket.lake"].config["tags"]["$ref"], "dataset.transactionsX");
    }

    #[test]
    fn a_move_onto_a_taken_address_or_of_a_missing_one_changes_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_with_records(directory.path());
        let secrets = Secrets::from_passphrase(None);
        let before = backend.load(&secrets).unwrap();
        let taken = move_record(&backend, &secrets, "dataset.transactions", "bucket.lake", "mlops state mv").unwrap_err();
        assert!(matches!(&taken, StateError::AlreadyInState { address } if address == "bucket.lake"), "{taken}");
        let missing = remove_record(&backend, &secrets, "dataset.transaction", "mlops state rm").unwrap_err();
        assert_eq!(missing.to_string(), "there is no `dataset.transaction` in the state");
        assert!(missing.help().unwrap().contains("dataset.transactions"), "{:?}", missing.help());
        assert_eq!(backend.load(&secrets).unwrap().resources, before.resources);
    }

    #[test]
    fn a_removal_takes_out_the_record_only() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_with_records(directory.path());
        let secrets = Secrets::from_passphrase(None);
        let serial = backend.load(&secrets).unwrap().serial;
        remove_record(&backend, &secrets, "bucket.lake", "mlops state rm bucket.lake").unwrap();
        let state = backend.load(&secrets).unwrap();
        assert!(!state.resources.contains_key("bucket.lake"));
        assert_eq!(state.resources.len(), 2);
        assert!(state.serial > serial, "the removal takes a new serial");
    }
}
