//! The remote state backend: the state as objects in a store that can
//! create an object only if it is absent (S3's `If-None-Match: *`).
//!
//! Under the backend's prefix:
//!
//! - `snapshots/SERIAL.json`: the whole state at that serial (sealed, as
//!   the local `state.json`). The newest is the base of every load.
//! - `journal/SERIAL.json`: one batch of changes (every resource that
//!   finished together), holding the serials `SERIAL`, `SERIAL + 1`, ... in
//!   order. A batch is created only if absent, so the journal is a chain in
//!   which each key is the serial after the previous batch's last: a writer
//!   that read the state at serial N writes its first batch at N + 1, and
//!   when anyone else has written since, that key is taken and the write
//!   fails. A key freed again by a fold is caught by the snapshot the fold
//!   stored first (see [`write_batch`]). No write is ever lost to a stale
//!   writer; the stale writer fails.
//! - `lock.json`: the lock, created only if absent, naming its holder.
//! - `history/TIME-ID.json`: one object per apply.
//! - `plan.key`: the key that signs saved plans, made by the first
//!   `plan -out` (created only if absent).
//!
//! Each resource's result costs one small object write (shared by those
//! finishing together), never a rewrite of the whole state. When an apply
//! ends, the journal is folded into a new snapshot, and the batches and
//! snapshots it covers are deleted.
//!
//! Readers take no lock (`mlops plan`), so a load may race with a fold:
//! a batch deleted between the two listings shows up as a gap, and the
//! load starts again.

use std::sync::Arc;

use mlops_provider_api::{ObjectStore, ObjectStoreError, PutCondition};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{
    new_id, open_state, parse_snapshot, replay, sealed_state, HeldLock, Journal, JournalEntry, JournalSink, LockHolder, Secrets, State,
    StateError, StateLock, STATE_FORMAT_VERSION,
};

const SNAPSHOTS: &str = "snapshots/";
const JOURNAL: &str = "journal/";
const HISTORY: &str = "history/";
const LOCK: &str = "lock.json";
const PLAN_KEY: &str = "plan.key";

/// How many times a load starts again when the objects move under it.
const LOAD_ATTEMPTS: u32 = 5;

fn serial_key(folder: &str, serial: u64) -> String {
    format!("{folder}{serial:020}.json")
}

fn key_serial(folder: &str, key: &str) -> Option<u64> {
    key.strip_prefix(folder)?.strip_suffix(".json")?.parse().ok()
}

/// One journal object.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    format_version: u32,
    lineage: String,
    entries: Vec<JournalEntry>,
}

fn store_error(error: ObjectStoreError) -> StateError {
    match error {
        ObjectStoreError::Failed { message, help } => StateError::Store { message, help },
        ObjectStoreError::PreconditionFailed => StateError::Other("the state changed meanwhile".to_owned()),
    }
}

/// Writes one batch of journal entries, only if its key is free and no
/// snapshot has folded that serial already.
pub(super) fn write_batch(store: &dyn ObjectStore, lineage: &str, batch: &[JournalEntry]) -> Result<(), StateError> {
    let Some(first) = batch.first().map(JournalEntry::serial) else { return Ok(()) };
    let bytes = serde_json::to_vec(&serde_json::json!({
        "format_version": STATE_FORMAT_VERSION,
        "lineage": lineage,
        "entries": batch,
    }))
    .map_err(|error| StateError::Other(error.to_string()))?;
    let key = serial_key(JOURNAL, first);
    let conflict = || StateError::Conflict { location: store.describe(), serial: first };
    let folded_past = || -> Result<bool, StateError> {
        Ok(store.list(SNAPSHOTS).map_err(store_error)?.iter().filter_map(|key| key_serial(SNAPSHOTS, key)).any(|serial| serial >= first))
    };
    // A serial folded since this process read the state: its key may be
    // free again (the fold deleted the batch), and writing it would give
    // that key a second version. Every state object is written once, so
    // this is refused before anything is written.
    if folded_past()? {
        return Err(conflict());
    }
    let etag = match store.put(&key, bytes, PutCondition::IfAbsent) {
        Ok(etag) => etag,
        Err(ObjectStoreError::PreconditionFailed) => return Err(conflict()),
        Err(error) => return Err(store_error(error)),
    };
    // A fold deletes the batches it covers, so a key being free is not
    // enough: the serial may have been written and folded since this
    // process read the state. Folds store their snapshot before deleting
    // anything, so a snapshot at or past this serial is there to see. The
    // batch just written is then below that snapshot, which loads skip.
    // A fold that finished between that look and the write (a window of
    // one request): the batch just written is below its snapshot, which
    // loads skip; it is removed, and this writer fails.
    if folded_past()? {
        let _ = store.delete(&key, etag.as_deref());
        return Err(conflict());
    }
    Ok(())
}

/// Deletes the lock if it is still this holder's.
pub(super) fn release_lock(store: &dyn ObjectStore, etag: Option<&str>, holder: &LockHolder) {
    let result = match etag {
        Some(etag) => store.delete(LOCK, Some(etag)),
        None => match store.get(LOCK) {
            Ok(Some(object)) if serde_json::from_slice::<LockHolder>(&object.bytes).is_ok_and(|found| found.id == holder.id) => {
                store.delete(LOCK, object.etag.as_deref())
            }
            Ok(_) => Ok(()),
            Err(error) => Err(error),
        },
    };
    match result {
        // Not ours any more: it was broken with force-unlock and taken again.
        Ok(()) | Err(ObjectStoreError::PreconditionFailed) => {}
        Err(error) => eprintln!(
            "warning: could not release the state lock at {}: {error}; once this is fixed, run `mlops force-unlock {}`",
            store.describe(),
            holder.id
        ),
    }
}

enum Loaded {
    State(State),
    /// The objects moved while being read (a fold ran meanwhile): read again.
    Moved(String),
}

/// State kept in an [`ObjectStore`].
#[derive(Clone)]
pub struct RemoteBackend {
    store: Arc<dyn ObjectStore>,
}

impl RemoteBackend {
    pub fn new(store: Arc<dyn ObjectStore>) -> RemoteBackend {
        RemoteBackend { store }
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    fn corrupt(&self, message: impl Into<String>) -> StateError {
        StateError::Corrupt { location: self.store.describe(), message: message.into() }
    }

    /// The serials of the objects in a folder, in order.
    fn serials(&self, folder: &str) -> Result<Vec<u64>, StateError> {
        let keys = self.store.list(folder).map_err(store_error)?;
        let mut serials: Vec<u64> = keys.iter().filter_map(|key| key_serial(folder, key)).collect();
        serials.sort_unstable();
        Ok(serials)
    }

    /// The newest snapshot plus the journal after it. A state never
    /// written is empty, with no lineage yet.
    pub fn load(&self, secrets: &Secrets) -> Result<State, StateError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_load()? {
                Loaded::State(mut state) => {
                    open_state(&mut state, secrets);
                    return Ok(state);
                }
                Loaded::Moved(message) if attempt >= LOAD_ATTEMPTS => return Err(self.corrupt(message)),
                Loaded::Moved(_) => std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))),
            }
        }
    }

    fn try_load(&self) -> Result<Loaded, StateError> {
        let location = self.store.describe();
        let snapshots = self.serials(SNAPSHOTS)?;
        let mut state = match snapshots.last() {
            Some(&serial) => {
                let key = serial_key(SNAPSHOTS, serial);
                let Some(object) = self.store.get(&key).map_err(store_error)? else {
                    return Ok(Loaded::Moved(format!("the snapshot `{key}` disappeared while it was read")));
                };
                let state = parse_snapshot(&object.bytes, &format!("{location}, object `{key}`"))?;
                if state.serial != serial {
                    return Err(self.corrupt(format!("the snapshot `{key}` holds serial {}", state.serial)));
                }
                state
            }
            None => State { lineage: String::new(), ..State::new() },
        };
        let base = state.serial;
        for first in self.serials(JOURNAL)?.into_iter().filter(|&first| first > base) {
            let expected = serial_key(JOURNAL, state.serial + 1);
            if first != state.serial + 1 {
                return Ok(Loaded::Moved(format!("the journal object `{expected}` is missing")));
            }
            let Some(object) = self.store.get(&expected).map_err(store_error)? else {
                return Ok(Loaded::Moved(format!("the journal object `{expected}` disappeared while it was read")));
            };
            let batch: Batch = serde_json::from_slice(&object.bytes).map_err(|error| {
                #[derive(Deserialize)]
                struct Probe {
                    format_version: u32,
                }
                match serde_json::from_slice::<Probe>(&object.bytes) {
                    Ok(probe) if probe.format_version > STATE_FORMAT_VERSION => {
                        StateError::NewerFormat { location: format!("{location}, object `{expected}`"), found: probe.format_version }
                    }
                    _ => self.corrupt(format!("the journal object `{expected}` cannot be read: {error}")),
                }
            })?;
            if state.lineage.is_empty() {
                state.lineage = batch.lineage;
            } else if batch.lineage != state.lineage {
                return Err(self.corrupt(format!(
                    "the journal object `{expected}` belongs to another state (lineage {}, not {})",
                    batch.lineage, state.lineage
                )));
            }
            for entry in batch.entries {
                if entry.serial() != state.serial + 1 {
                    return Err(self.corrupt(format!(
                        "the journal object `{expected}` holds serial {} where {} was expected",
                        entry.serial(),
                        state.serial + 1
                    )));
                }
                replay(&mut state, entry);
            }
        }
        Ok(Loaded::State(state))
    }

    pub fn open_journal(&self, state: &State) -> Journal {
        Journal::new(JournalSink::Remote { store: self.store.clone(), lineage: state.lineage.clone() }, state.serial)
    }

    /// Writes `state` as the snapshot at its serial and deletes the batches
    /// and snapshots it covers. `state` must be what the chain holds up to
    /// its serial: the state this process loaded plus its own durable
    /// journal, which is all a successful apply leaves in memory.
    pub fn compact(&self, state: &State, secrets: &Secrets) -> Result<(), StateError> {
        let journal = self.serials(JOURNAL)?;
        if journal.last().is_some_and(|&last| last > state.serial) {
            // Another writer's chain goes further; folding is left to it.
            return Ok(());
        }
        let snapshots = self.serials(SNAPSHOTS)?;
        let newest = snapshots.last().copied();
        if newest.is_none_or(|newest| newest < state.serial) {
            let bytes = serde_json::to_vec_pretty(&sealed_state(state, secrets)).map_err(|error| StateError::Other(error.to_string()))?;
            match self.store.put(&serial_key(SNAPSHOTS, state.serial), bytes, PutCondition::IfAbsent) {
                // Written by another process folding the same chain: the same content.
                Ok(_) | Err(ObjectStoreError::PreconditionFailed) => {}
                Err(error) => return Err(store_error(error)),
            }
        }
        // What is folded is only ever deleted after the snapshot holding it
        // is stored; a failed delete leaves objects that loads skip.
        for &first in journal.iter().filter(|&&first| first <= state.serial) {
            let _ = self.store.delete(&serial_key(JOURNAL, first), None);
        }
        for &serial in snapshots.iter().filter(|&&serial| serial < state.serial) {
            let _ = self.store.delete(&serial_key(SNAPSHOTS, serial), None);
        }
        Ok(())
    }

    /// Every history object, oldest first (their keys start with the time),
    /// and how many could not be read.
    pub fn history(&self) -> Result<(Vec<Json>, usize), StateError> {
        let mut keys = self.store.list(HISTORY).map_err(store_error)?;
        keys.sort();
        let mut entries = Vec::new();
        let mut unreadable = 0;
        for key in keys {
            match self.store.get(&key).map_err(store_error)?.map(|object| serde_json::from_slice::<Json>(&object.bytes)) {
                Some(Ok(entry)) if entry.is_object() => entries.push(entry),
                // Deleted between the listing and the read: nothing to show.
                None => {}
                _ => unreadable += 1,
            }
        }
        Ok((entries, unreadable))
    }

    pub fn append_history(&self, entry: &Json) -> Result<(), StateError> {
        let time = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let key = format!("{HISTORY}{time}-{}.json", &new_id()[..8]);
        let bytes = serde_json::to_vec(entry).map_err(|error| StateError::Other(error.to_string()))?;
        self.store.put(&key, bytes, PutCondition::IfAbsent).map(|_| ()).map_err(store_error)
    }

    /// Creates the lock object, or fails naming whoever holds it.
    pub fn lock(&self, command: &str) -> Result<StateLock, StateError> {
        let holder = LockHolder::current(command);
        let bytes = serde_json::to_vec_pretty(&holder).map_err(|error| StateError::Other(error.to_string()))?;
        for _ in 0..3 {
            match self.store.put(LOCK, bytes.clone(), PutCondition::IfAbsent) {
                Ok(etag) => return Ok(StateLock { held: HeldLock::Remote { store: self.store.clone(), etag }, holder }),
                Err(ObjectStoreError::PreconditionFailed) => {}
                Err(error) => return Err(store_error(error)),
            }
            match self.store.get(LOCK).map_err(store_error)? {
                Some(object) => {
                    let holder = serde_json::from_slice(&object.bytes).unwrap_or_else(|_| LockHolder {
                        id: "unknown".into(),
                        user: "unknown".into(),
                        host: "unknown".into(),
                        pid: 0,
                        command: "mlops".into(),
                        time: "unknown".into(),
                    });
                    return Err(StateError::Locked { holder: Box::new(holder) });
                }
                // Released between the two requests: try again.
                None => continue,
            }
        }
        Err(StateError::Other(format!("the lock at {} keeps changing; try again", self.store.describe())))
    }

    /// Deletes the lock whose ID is `id`, whoever holds it.
    pub fn force_unlock(&self, id: &str) -> Result<LockHolder, StateError> {
        let Some(object) = self.store.get(LOCK).map_err(store_error)? else {
            return Err(StateError::Other("the state is not locked".to_owned()));
        };
        let Ok(holder) = serde_json::from_slice::<LockHolder>(&object.bytes) else {
            return Err(self.corrupt(format!("the lock object `{LOCK}` cannot be read; delete it by hand once no mlops is running")));
        };
        if holder.id != id {
            return Err(StateError::Other(format!("the lock ID is {}, not {id}; the lock is held by {holder}", holder.id)));
        }
        match self.store.delete(LOCK, object.etag.as_deref()) {
            Ok(()) => Ok(holder),
            Err(ObjectStoreError::PreconditionFailed) => {
                Err(StateError::Other("the lock changed meanwhile (released, or taken again); look again with `mlops plan`".to_owned()))
            }
            Err(error) => Err(store_error(error)),
        }
    }

    /// The saved-plan signing key, the object `plan.key`, made on first use
    /// (created only if absent, so racing makers agree on one).
    pub fn plan_key(&self) -> Result<[u8; 32], StateError> {
        for _ in 0..LOAD_ATTEMPTS {
            if let Some(object) = self.store.get(PLAN_KEY).map_err(store_error)? {
                let text = String::from_utf8_lossy(&object.bytes);
                return super::parse_key_text(&text).ok_or_else(|| self.corrupt(format!("`{PLAN_KEY}` does not hold a key")));
            }
            match self.store.put(PLAN_KEY, super::new_key_text().into_bytes(), PutCondition::IfAbsent) {
                Ok(_) | Err(ObjectStoreError::PreconditionFailed) => continue,
                Err(error) => return Err(store_error(error)),
            }
        }
        Err(StateError::Other(format!("the plan key at {} keeps changing; try again", self.store.describe())))
    }

    pub fn existing_plan_key(&self) -> Result<Option<[u8; 32]>, StateError> {
        match self.store.get(PLAN_KEY).map_err(store_error)? {
            Some(object) => super::parse_key_text(&String::from_utf8_lossy(&object.bytes))
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("`{PLAN_KEY}` does not hold a key"))),
            None => Ok(None),
        }
    }

    pub fn initialise(&self) -> Result<Option<String>, StateError> {
        self.store.initialise().map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use mlops_provider_api::StoredObject;

    use super::super::tests::record;
    use super::*;

    /// A store in memory, with conditional writes, for the chain's logic.
    /// The same tests run against real S3 servers in the CLI's tests.
    #[derive(Default)]
    struct MemoryStore {
        objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
        /// Every key ever written, in order (a versioned bucket keeps them all).
        written: Mutex<Vec<String>>,
    }

    impl ObjectStore for MemoryStore {
        fn describe(&self) -> String {
            "memory://state".to_owned()
        }

        fn get(&self, key: &str) -> Result<Option<StoredObject>, ObjectStoreError> {
            let objects = self.objects.lock().unwrap();
            Ok(objects.get(key).map(|(bytes, etag)| StoredObject { bytes: bytes.clone(), etag: Some(etag.clone()) }))
        }

        fn put(&self, key: &str, bytes: Vec<u8>, condition: PutCondition) -> Result<Option<String>, ObjectStoreError> {
            let mut objects = self.objects.lock().unwrap();
            if condition == PutCondition::IfAbsent && objects.contains_key(key) {
                return Err(ObjectStoreError::PreconditionFailed);
            }
            let etag = blake3::hash(&bytes).to_hex()[..16].to_owned();
            objects.insert(key.to_owned(), (bytes, etag.clone()));
            self.written.lock().unwrap().push(key.to_owned());
            Ok(Some(etag))
        }

        fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), ObjectStoreError> {
            let mut objects = self.objects.lock().unwrap();
            if let (Some(wanted), Some((_, etag))) = (if_match, objects.get(key)) {
                if wanted != etag {
                    return Err(ObjectStoreError::PreconditionFailed);
                }
            }
            objects.remove(key);
            Ok(())
        }

        fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
            Ok(self.objects.lock().unwrap().keys().filter(|key| key.starts_with(prefix)).cloned().collect())
        }

        fn initialise(&self) -> Result<Option<String>, ObjectStoreError> {
            Ok(None)
        }
    }

    impl MemoryStore {
        fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }
    }

    fn backend() -> (Arc<MemoryStore>, RemoteBackend) {
        let store = Arc::new(MemoryStore::default());
        (store.clone(), RemoteBackend::new(store))
    }

    #[test]
    fn two_writers_racing_on_the_same_serial_the_loser_fails_and_loses_nothing() {
        let (_, backend) = backend();
        let secrets = Secrets::from_passphrase(Some("key"));
        let mut first = backend.load(&secrets).unwrap();
        first.lineage = new_id();
        let journal = backend.open_journal(&first);
        journal.put(&record("bucket.base"), &secrets).unwrap();
        first.resources.insert("bucket.base".into(), record("bucket.base"));
        first.serial = journal.serial();
        backend.compact(&first, &secrets).unwrap();

        // Both read serial 1.
        let winner_view = backend.load(&secrets).unwrap();
        let loser_view = backend.load(&secrets).unwrap();
        assert_eq!((winner_view.serial, loser_view.serial), (1, 1));
        let winner = backend.open_journal(&winner_view);
        let loser = backend.open_journal(&loser_view);
        assert_eq!(winner.put(&record("bucket.winner"), &secrets).unwrap(), 2);
        match loser.put(&record("bucket.loser"), &secrets) {
            Err(StateError::Conflict { serial: 2, .. }) => {}
            other => panic!("the second writer of serial 2 must fail, got {other:?}"),
        }
        // A failed journal takes nothing more, and says why.
        assert!(matches!(loser.put(&record("bucket.later"), &secrets), Err(StateError::Conflict { .. })));
        assert!(matches!(loser.failure(), Some(StateError::Conflict { .. })));

        let loaded = backend.load(&secrets).unwrap();
        assert_eq!(loaded.serial, 2);
        assert_eq!(loaded.resources.keys().collect::<Vec<_>>(), vec!["bucket.base", "bucket.winner"]);
        assert_eq!(loaded.lineage, first.lineage);
    }

    #[test]
    fn a_serial_folded_since_it_was_read_is_a_conflict_even_once_its_batch_is_gone() {
        let (store, backend) = backend();
        let secrets = Secrets::from_passphrase(None);
        let mut state = backend.load(&secrets).unwrap();
        state.lineage = new_id();
        backend.open_journal(&state).put(&record("bucket.base"), &secrets).unwrap();
        let stale_view = backend.load(&secrets).unwrap();

        // Another process writes serial 2 and folds it: `journal/…2` is deleted.
        let mut winner = backend.load(&secrets).unwrap();
        let journal = backend.open_journal(&winner);
        journal.put(&record("bucket.winner"), &secrets).unwrap();
        winner.resources.insert("bucket.winner".into(), record("bucket.winner"));
        winner.serial = journal.serial();
        backend.compact(&winner, &secrets).unwrap();
        assert_eq!(store.keys(), vec!["snapshots/00000000000000000002.json"]);

        let stale = backend.open_journal(&stale_view);
        assert!(matches!(stale.put(&record("bucket.stale"), &secrets), Err(StateError::Conflict { serial: 2, .. })));
        assert_eq!(store.keys(), vec!["snapshots/00000000000000000002.json"], "the stale batch is cleaned up");
        let written = store.written.lock().unwrap().clone();
        let mut unique = written.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), written.len(), "a state object was written twice: {written:?}");
        assert_eq!(backend.load(&secrets).unwrap().resources.keys().collect::<Vec<_>>(), vec!["bucket.base", "bucket.winner"]);
    }

    #[test]
    fn a_fold_keeps_what_loads_and_deletes_what_it_covers() {
        let (store, backend) = backend();
        let secrets = Secrets::from_passphrase(Some("key"));
        let mut state = backend.load(&secrets).unwrap();
        assert_eq!(state.lineage, "", "a state never written has no lineage yet");
        state.lineage = new_id();
        let journal = backend.open_journal(&state);
        // Two batches: group commit puts what is queued together in one object.
        let first = journal.put_deferred(&record("bucket.a"), &secrets).unwrap();
        let second = journal.put_deferred(&record("bucket.b"), &secrets).unwrap();
        journal.wait_durable(second).unwrap();
        assert_eq!((first, second), (1, 2));
        journal.remove("bucket.a").unwrap();
        assert_eq!(store.keys(), vec!["journal/00000000000000000001.json", "journal/00000000000000000003.json"]);
        let before = backend.load(&secrets).unwrap();
        assert_eq!(before.serial, 3);
        assert_eq!(before.resources.keys().collect::<Vec<_>>(), vec!["bucket.b"]);
        assert_eq!(before.resources["bucket.b"].config["token"], Json::String("hunter2-secret".into()));

        backend.compact(&before, &secrets).unwrap();
        assert_eq!(store.keys(), vec!["snapshots/00000000000000000003.json"]);
        assert_eq!(backend.load(&secrets).unwrap(), before);
        for key in store.keys() {
            let text = String::from_utf8(store.get(&key).unwrap().unwrap().bytes).unwrap();
            assert!(!text.contains("hunter2"), "{key} holds the secret in clear");
        }

        // A stale process folding an older state changes nothing.
        let mut stale = before.clone();
        stale.serial = 2;
        stale.resources.clear();
        backend.compact(&stale, &secrets).unwrap();
        assert_eq!(backend.load(&secrets).unwrap(), before);
    }

    #[test]
    fn a_missing_journal_object_is_reported_not_skipped() {
        let (store, backend) = backend();
        let secrets = Secrets::from_passphrase(None);
        let mut state = backend.load(&secrets).unwrap();
        state.lineage = new_id();
        let journal = backend.open_journal(&state);
        journal.put(&record("bucket.a"), &secrets).unwrap();
        journal.put(&record("bucket.b"), &secrets).unwrap();
        store.delete("journal/00000000000000000001.json", None).unwrap();
        match backend.load(&secrets) {
            Err(StateError::Corrupt { message, .. }) => assert!(message.contains("journal/00000000000000000001.json"), "{message}"),
            other => panic!("expected a corrupt state, got {other:?}"),
        }
    }

    #[test]
    fn the_lock_names_its_holder_and_force_unlock_needs_its_id() {
        let (store, backend) = backend();
        let lock = backend.lock("mlops apply").unwrap();
        match backend.lock("mlops apply") {
            Err(StateError::Locked { holder }) => {
                assert_eq!(holder.id, lock.holder.id);
                assert_eq!(holder.command, "mlops apply");
            }
            other => panic!("expected the lock to be held, got {:?}", other.map(|lock| lock.holder.clone())),
        }
        assert!(matches!(backend.force_unlock("not-the-id"), Err(StateError::Other(message)) if message.contains(&lock.holder.id)));
        let broken = backend.force_unlock(&lock.holder.id).unwrap();
        assert_eq!(broken.id, lock.holder.id);
        // Someone takes it; the first holder's release must not free it.
        let second = backend.lock("mlops apply").unwrap();
        drop(lock);
        assert!(matches!(backend.lock("mlops plan"), Err(StateError::Locked { holder }) if holder.id == second.holder.id));
        drop(second);
        assert!(store.keys().is_empty(), "a released lock leaves nothing: {:?}", store.keys());
        assert!(matches!(backend.force_unlock("any"), Err(StateError::Other(message)) if message.contains("not locked")));
    }
}
