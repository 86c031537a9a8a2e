//! State: what mlops manages, as it was after the last apply.
//!
//! Only this module (with [`remote`]) knows the stored format. Commands and
//! the engine see a [`Backend`]: the local one below, or the remote one
//! ([`RemoteBackend`], objects in S3 or any [`ObjectStore`]). Either way
//! every change goes through a [`Journal`], which hands out the serials.
//!
//! The local backend keeps, in the state directory (default `.mlops/state/`):
//!
//! - `state.json`: a snapshot (format version, lineage id, serial, records,
//!   outputs), replaced atomically (write, fsync, rename) when an apply ends;
//! - `journal.jsonl`: one line per change since the snapshot, each with its
//!   serial and a checksum, appended and fsynced as each resource finishes.
//!   Writes are group-committed: threads finishing together share one fsync.
//!   Loading replays the lines newer than the snapshot and stops at the
//!   first torn or corrupt line, so a `kill -9` at any instant leaves a state
//!   that loads and loses at most the operations still in flight;
//! - `history.jsonl`: one line per apply (time, user, host, plan hash, changes);
//! - `lock`: an OS file lock naming its holder.
//!
//! Sensitive values are never written in clear: with `MLOPS_STATE_KEY` set
//! they are encrypted (ChaCha20-Poly1305, key derived with BLAKE3); without
//! it they are not stored at all.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use mlops_provider_api::{AttributePath, Attributes, ObjectStore};
use mlops_units::digest::hex;

mod local;
mod remote;
pub mod surgery;
pub use local::{Backup, LocalBackend, Restored};
pub use remote::RemoteBackend;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub const STATE_FORMAT_VERSION: u32 = 1;

/// How a resource may be removed, recorded at apply time because the block
/// may be gone when it is removed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RecordLifecycle {
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_before_destroy: bool,
    /// Datasets and model versions are kept when their block goes away.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retained: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub destroy: bool,
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// A record's lineage tree, kept as its compact JSON text. Only `mlops
/// lineage` and the apply of a downstream resource read it, while every
/// plan loads every record: as text it costs a fraction of the memory of a
/// parsed tree (each record nests its inputs' trees).
#[derive(Debug, Clone, Default)]
pub struct Lineage(Option<Box<serde_json::value::RawValue>>);

impl Lineage {
    pub fn from_json(tree: &Json) -> Lineage {
        if tree.is_null() {
            return Lineage(None);
        }
        Lineage(serde_json::value::to_raw_value(tree).ok())
    }

    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The tree, parsed (`null` when there is none).
    pub fn to_json(&self) -> Json {
        self.0.as_ref().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Json::Null)
    }
}

impl PartialEq for Lineage {
    fn eq(&self, other: &Lineage) -> bool {
        self.0.as_ref().map(|raw| raw.get()) == other.0.as_ref().map(|raw| raw.get())
    }
}

impl Serialize for Lineage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(raw) => raw.serialize(serializer),
            None => serializer.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Lineage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Lineage, D::Error> {
        let raw: Option<Box<serde_json::value::RawValue>> = Deserialize::deserialize(deserializer)?;
        Ok(Lineage(raw.filter(|raw| raw.get() != "null")))
    }
}

/// One managed resource instance (or data source read).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub address: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_data: bool,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module_path: Vec<String>,
    /// The configuration applied, with references as `{"$ref", "identity"}`.
    pub config: Attributes,
    /// The attributes the provider reported, computed ones included.
    pub state: Attributes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive_paths: Vec<AttributePath>,
    /// Full addresses of the resources this one refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub lifecycle: RecordLifecycle,
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub private: Json,
    /// Long-running work started but not seen to finish (re-attached by the next apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_handle: Option<Json>,
    /// What produced this resource's current version.
    #[serde(default, skip_serializing_if = "Lineage::is_null")]
    pub lineage: Lineage,
    #[serde(default)]
    pub updated_at: String,
}

impl Record {
    /// Configuration and state merged: what expressions see.
    pub fn merged_attributes(&self) -> Attributes {
        let mut merged = self.config.clone();
        for (name, value) in &self.state {
            merged.insert(name.clone(), value.clone());
        }
        merged
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputRecord {
    pub value: Json,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sensitive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub format_version: u32,
    pub lineage: String,
    pub serial: u64,
    pub resources: BTreeMap<String, Record>,
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputRecord>,
}

impl State {
    pub fn new() -> State {
        State { format_version: STATE_FORMAT_VERSION, lineage: new_id(), serial: 0, resources: BTreeMap::new(), outputs: BTreeMap::new() }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// A random identifier (128 bits, hex).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Unreachable on supported systems; time and pid keep ids distinct anyway.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    }
    hex(&bytes)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: Arc<std::io::Error> },
    #[error("the state at {location} is not valid: {message}")]
    Corrupt { location: String, message: String },
    /// Stored state that is damaged or incomplete, which loading would read
    /// as less than exists.
    #[error("the state at {location} is damaged: {message}")]
    Damaged { location: String, message: String },
    #[error("the state at {location} has format version {found}; this mlops reads version {STATE_FORMAT_VERSION}")]
    NewerFormat { location: String, found: u32 },
    #[error("the state is locked by {holder}")]
    Locked { holder: Box<LockHolder> },
    /// Another writer saved state with the serial this one was about to use:
    /// this one's view is stale, and writing would lose the other's work.
    #[error("the state at {location} was changed by another process after this one read it (serial {serial} is taken)")]
    Conflict { location: String, serial: u64 },
    /// The remote store failed, in its own words.
    #[error("{message}")]
    Store { message: String, help: Option<String> },
    /// `mlops state rm` or `mv` named an address the state does not hold.
    #[error("there is no `{address}` in the state")]
    NotInState { address: String, suggestion: Option<String> },
    /// `mlops state mv` to an address the state already holds.
    #[error("`{address}` is already in the state")]
    AlreadyInState { address: String },
    #[error("{0}")]
    Other(String),
}

impl StateError {
    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            StateError::Io { .. } => Some("check the permissions and the free space of the state directory".to_owned()),
            StateError::Corrupt { .. } => {
                Some("restore the state from a backup (a versioned bucket keeps every version) or `mlops state` surgery".to_owned())
            }
            StateError::Damaged { .. } => Some(
                "nothing was planned, so nothing is created twice. `mlops state restore --list` shows the backups and what each would lose; `mlops state restore` rebuilds the newest complete one"
                    .to_owned(),
            ),
            StateError::NewerFormat { .. } => Some("upgrade mlops to the version that wrote this state".to_owned()),
            StateError::NotInState { suggestion, .. } => {
                Some(suggestion.clone().unwrap_or_else(|| "`mlops state list` shows the addresses".to_owned()))
            }
            StateError::AlreadyInState { .. } => Some("remove it first with `mlops state rm`".to_owned()),
            StateError::Locked { holder } => Some(format!(
                "wait for it to finish; if that process is gone for good, run `mlops force-unlock {}`",
                holder.id
            )),
            StateError::Conflict { .. } => Some(
                "another mlops ran at the same time (was its lock broken with `mlops force-unlock`?); run `mlops plan` to see the state as it is now: work applied here but not saved shows up as changes to make again"
                    .to_owned(),
            ),
            StateError::Store { help, .. } => help.clone(),
            StateError::Other(_) => None,
        }
    }
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StateError + 'p {
    move |source| StateError::Io { action, path: path.to_path_buf(), source: Arc::new(source) }
}

/// Who holds the lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockHolder {
    pub id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub time: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}@{} (pid {}, running `{}` since {}; lock ID {})",
            self.user, self.host, self.pid, self.command, self.time, self.id
        )
    }
}

impl LockHolder {
    pub fn current(command: &str) -> LockHolder {
        LockHolder {
            id: new_id(),
            user: std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".to_owned()),
            host: hostname(),
            pid: std::process::id(),
            command: command.to_owned(),
            time: now(),
        }
    }
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_owned())
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Whether a local process is still running.
pub fn process_alive(pid: u32) -> bool {
    // Signal 0 checks existence; EPERM means it exists but is not ours.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Encrypts and decrypts sensitive values with the key from `MLOPS_STATE_KEY`.
#[derive(Clone)]
pub struct Secrets {
    cipher: Option<chacha20poly1305::ChaCha20Poly1305>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(if self.cipher.is_some() { "Secrets(key set)" } else { "Secrets(no key)" })
    }
}

impl Secrets {
    pub fn from_environment() -> Secrets {
        Secrets::from_passphrase(std::env::var("MLOPS_STATE_KEY").ok().filter(|key| !key.is_empty()).as_deref())
    }

    pub fn from_passphrase(passphrase: Option<&str>) -> Secrets {
        use chacha20poly1305::KeyInit;
        let cipher = passphrase.map(|passphrase| {
            let key = blake3::derive_key("mlops 2026 state secrets v1", passphrase.as_bytes());
            chacha20poly1305::ChaCha20Poly1305::new(&key.into())
        });
        Secrets { cipher }
    }

    pub fn has_key(&self) -> bool {
        self.cipher.is_some()
    }

    /// The stored form of a secret: `{"$sensitive": "enc:v1:…"}` or `{"$sensitive": null}`.
    pub fn seal(&self, value: &Json) -> Json {
        use chacha20poly1305::aead::Aead;
        let Some(cipher) = &self.cipher else { return serde_json::json!({ "$sensitive": null }) };
        let mut nonce = [0u8; 12];
        let _ = getrandom::fill(&mut nonce);
        let plaintext = serde_json::to_vec(value).unwrap_or_default();
        match cipher.encrypt(&nonce.into(), plaintext.as_slice()) {
            Ok(ciphertext) => serde_json::json!({ "$sensitive": format!("enc:v1:{}{}", hex(&nonce), hex(&ciphertext)) }),
            Err(_) => serde_json::json!({ "$sensitive": null }),
        }
    }

    /// The secret back, or `None` when it was not stored or the key differs.
    pub fn open(&self, sealed: &Json) -> Option<Json> {
        use chacha20poly1305::aead::Aead;
        let text = sealed.as_object()?.get("$sensitive")?.as_str()?.strip_prefix("enc:v1:")?;
        let bytes = unhex(text)?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plaintext = self.cipher.as_ref()?.decrypt(nonce.into(), ciphertext).ok()?;
        serde_json::from_slice(&plaintext).ok()
    }

    /// Replaces each value at `paths` in `attributes` by its sealed form.
    pub fn seal_paths(&self, attributes: &mut Attributes, paths: &[AttributePath]) {
        for path in paths {
            if let Some(slot) = json_at_mut(attributes, path) {
                if !is_sealed(slot) {
                    *slot = self.seal(slot);
                }
            }
        }
    }

    /// Opens every sealed value it can; the others stay sealed.
    pub fn open_paths(&self, attributes: &mut Attributes, paths: &[AttributePath]) {
        for path in paths {
            if let Some(slot) = json_at_mut(attributes, path) {
                if let Some(opened) = self.open(slot) {
                    *slot = opened;
                }
            }
        }
    }
}

/// How many secrets in a loaded state stayed encrypted: sealed with a key
/// this run does not have (`MLOPS_STATE_KEY` unset or different).
pub fn unreadable_secrets(state: &State) -> usize {
    let encrypted = |value: &Json| value.get("$sensitive").and_then(Json::as_str).is_some_and(|text| text.starts_with("enc:"));
    let in_records: usize = state
        .resources
        .values()
        .map(|record| {
            record
                .sensitive_paths
                .iter()
                .flat_map(|path| [json_at(&record.config, path), json_at(&record.state, path)])
                .flatten()
                .filter(|value| encrypted(value))
                .count()
        })
        .sum();
    in_records + state.outputs.values().filter(|output| output.sensitive && encrypted(&output.value)).count()
}

/// A new random 256-bit key, as hex.
fn new_key_text() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = *blake3::hash(format!("{:?}{}{}", std::time::SystemTime::now(), std::process::id(), new_id()).as_bytes()).as_bytes();
    }
    hex(&bytes)
}

/// A key written by [`new_key_text`].
fn parse_key_text(text: &str) -> Option<[u8; 32]> {
    unhex(text.trim())?.try_into().ok()
}

pub fn is_sealed(value: &Json) -> bool {
    value.as_object().is_some_and(|object| object.len() == 1 && object.contains_key("$sensitive"))
}

pub fn json_at_mut<'a>(attributes: &'a mut Attributes, path: &[String]) -> Option<&'a mut Json> {
    let (first, rest) = path.split_first()?;
    let mut current = attributes.get_mut(first)?;
    for segment in rest {
        current = match current {
            Json::Object(object) => object.get_mut(segment)?,
            Json::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

pub fn json_at<'a>(attributes: &'a Attributes, path: &[String]) -> Option<&'a Json> {
    let (first, rest) = path.split_first()?;
    let mut current = attributes.get(first)?;
    for segment in rest {
        current = match current {
            Json::Object(object) => object.get(segment)?,
            Json::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum JournalEntry {
    Put { serial: u64, record: Box<Record> },
    Remove { serial: u64, address: String },
    Outputs { serial: u64, outputs: BTreeMap<String, OutputRecord> },
}

impl JournalEntry {
    fn serial(&self) -> u64 {
        match self {
            JournalEntry::Put { serial, .. } | JournalEntry::Remove { serial, .. } | JournalEntry::Outputs { serial, .. } => *serial,
        }
    }
}

fn sealed_state(state: &State, secrets: &Secrets) -> State {
    let mut sealed = state.clone();
    for record in sealed.resources.values_mut() {
        seal_record(record, secrets);
    }
    for output in sealed.outputs.values_mut() {
        if output.sensitive && !is_sealed(&output.value) {
            output.value = secrets.seal(&output.value);
        }
    }
    sealed
}

fn seal_record(record: &mut Record, secrets: &Secrets) {
    let paths = record.sensitive_paths.clone();
    secrets.seal_paths(&mut record.config, &paths);
    secrets.seal_paths(&mut record.state, &paths);
}

/// Writes a file so that readers see the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(io("write", &temporary))
        .and_then(|()| fs::rename(&temporary, path).map_err(io("replace", path)));
    if let Err(error) = written {
        // A full disk must not stay full of a half-written copy.
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    if let Some(parent) = path.parent() {
        if let Ok(directory) = File::open(parent) {
            let _ = directory.sync_all();
        }
    }
    Ok(())
}

fn parse_journal_line(line: &[u8]) -> Option<JournalEntry> {
    let text = std::str::from_utf8(line).ok()?;
    let (body, checksum) = text.rsplit_once('\t')?;
    if checksum != &blake3::hash(body.as_bytes()).to_hex()[..16] {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// A state document as stored (sealed), checked for its format version.
fn parse_snapshot(bytes: &[u8], location: &str) -> Result<State, StateError> {
    match serde_json::from_slice::<State>(bytes) {
        Ok(state) if state.format_version > STATE_FORMAT_VERSION => {
            Err(StateError::NewerFormat { location: location.to_owned(), found: state.format_version })
        }
        Ok(state) => Ok(state),
        Err(error) => {
            // A newer format may not parse as this one: say so rather than "corrupt".
            #[derive(Deserialize)]
            struct Probe {
                format_version: u32,
            }
            if let Ok(probe) = serde_json::from_slice::<Probe>(bytes) {
                if probe.format_version > STATE_FORMAT_VERSION {
                    return Err(StateError::NewerFormat { location: location.to_owned(), found: probe.format_version });
                }
            }
            Err(StateError::Corrupt { location: location.to_owned(), message: error.to_string() })
        }
    }
}

/// Decrypts the sensitive values of a loaded state.
fn open_state(state: &mut State, secrets: &Secrets) {
    for record in state.resources.values_mut() {
        let paths = record.sensitive_paths.clone();
        secrets.open_paths(&mut record.config, &paths);
        secrets.open_paths(&mut record.state, &paths);
    }
    for output in state.outputs.values_mut().filter(|output| output.sensitive) {
        if let Some(opened) = secrets.open(&output.value) {
            output.value = opened;
        }
    }
}

/// Applies one journal entry to a state.
fn replay(state: &mut State, entry: JournalEntry) {
    state.serial = entry.serial();
    match entry {
        JournalEntry::Put { record, .. } => {
            state.resources.insert(record.address.clone(), *record);
        }
        JournalEntry::Remove { address, .. } => {
            state.resources.remove(&address);
        }
        JournalEntry::Outputs { outputs, .. } => state.outputs = outputs,
    }
}

/// Where a journal's entries go.
enum JournalSink {
    /// Appended to `journal.jsonl`, one checksummed line per entry.
    File { file: File, path: PathBuf },
    /// One object per batch, created only if absent (see [`remote`]).
    Remote { store: Arc<dyn ObjectStore>, lineage: String },
}

impl JournalSink {
    fn write(&self, batch: &[JournalEntry]) -> Result<(), StateError> {
        match self {
            JournalSink::File { file, path } => {
                let mut bytes = Vec::new();
                for entry in batch {
                    let body = serde_json::to_string(entry).map_err(|error| StateError::Other(error.to_string()))?;
                    bytes.extend_from_slice(body.as_bytes());
                    bytes.push(b'\t');
                    bytes.extend_from_slice(&blake3::hash(body.as_bytes()).to_hex().as_bytes()[..16]);
                    bytes.push(b'\n');
                }
                let mut writer: &File = file;
                writer.write_all(&bytes).and_then(|()| file.sync_data()).map_err(io("write", path))
            }
            JournalSink::Remote { store, lineage } => remote::write_batch(store.as_ref(), lineage, batch),
        }
    }
}

struct JournalInner {
    /// Entries queued, not yet written.
    pending: Vec<JournalEntry>,
    /// The serial of the last entry queued.
    serial: u64,
    /// The serial of the last entry written durably.
    durable: u64,
    writing: bool,
    /// Once a write fails, nothing more is written: later entries would
    /// not replay without the lost ones.
    failed: Option<StateError>,
}

/// The journal of one apply (or one state surgery): every change becomes
/// an entry with the next serial, made durable in order.
pub struct Journal {
    sink: JournalSink,
    inner: Mutex<JournalInner>,
    durable: Condvar,
}

impl Journal {
    fn new(sink: JournalSink, serial: u64) -> Journal {
        Journal {
            sink,
            inner: Mutex::new(JournalInner { pending: Vec::new(), serial, durable: serial, writing: false, failed: None }),
            durable: Condvar::new(),
        }
    }

    /// The serial of the last change queued: the state's serial once all are durable.
    pub fn serial(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).serial
    }

    /// The serial of the last change written durably: what a load finds.
    pub fn durable_serial(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).durable
    }

    /// The failure that stopped this journal, if one did.
    pub fn failure(&self) -> Option<StateError> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).failed.clone()
    }

    /// Saves a record durably; returns its serial.
    pub fn put(&self, record: &Record, secrets: &Secrets) -> Result<u64, StateError> {
        let serial = self.put_deferred(record, secrets)?;
        self.wait_durable(serial).map(|()| serial)
    }

    /// Queues a record without waiting for the store; [`Journal::wait_durable`]
    /// with the returned serial makes it durable (together with everything
    /// queued before it, in one write: group commit).
    pub fn put_deferred(&self, record: &Record, secrets: &Secrets) -> Result<u64, StateError> {
        let mut sealed = record.clone();
        seal_record(&mut sealed, secrets);
        self.enqueue(|serial| JournalEntry::Put { serial, record: Box::new(sealed) })
    }

    pub fn remove(&self, address: &str) -> Result<u64, StateError> {
        let serial = self.remove_deferred(address)?;
        self.wait_durable(serial).map(|()| serial)
    }

    pub fn remove_deferred(&self, address: &str) -> Result<u64, StateError> {
        self.enqueue(|serial| JournalEntry::Remove { serial, address: address.to_owned() })
    }

    pub fn outputs(&self, outputs: &BTreeMap<String, OutputRecord>, secrets: &Secrets) -> Result<u64, StateError> {
        let mut sealed = outputs.clone();
        for output in sealed.values_mut() {
            if output.sensitive {
                output.value = secrets.seal(&output.value);
            }
        }
        let serial = self.enqueue(|serial| JournalEntry::Outputs { serial, outputs: sealed })?;
        self.wait_durable(serial).map(|()| serial)
    }

    /// Serials are handed out under the lock, so they follow the order of
    /// the queue and every batch is a contiguous run of them.
    fn enqueue(&self, entry: impl FnOnce(u64) -> JournalEntry) -> Result<u64, StateError> {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(failure) = &inner.failed {
            return Err(failure.clone());
        }
        inner.serial += 1;
        let serial = inner.serial;
        inner.pending.push(entry(serial));
        Ok(serial)
    }

    /// Returns once every entry up to `serial` is durable. The first thread
    /// to get here writes all that is queued; the others wait for it.
    pub fn wait_durable(&self, serial: u64) -> Result<(), StateError> {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(failure) = &inner.failed {
                return Err(failure.clone());
            }
            if inner.durable >= serial {
                return Ok(());
            }
            if inner.writing {
                inner = self.durable.wait(inner).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            inner.writing = true;
            let batch = std::mem::take(&mut inner.pending);
            let upto = inner.serial;
            drop(inner);
            let result = self.sink.write(&batch);
            inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            inner.writing = false;
            match result {
                Ok(()) => inner.durable = upto,
                Err(error) => inner.failed = Some(error),
            }
            self.durable.notify_all();
        }
    }
}

/// The held lock; released on drop (and, for the local backend, by the OS
/// if the process dies).
pub struct StateLock {
    held: HeldLock,
    pub holder: LockHolder,
}

enum HeldLock {
    /// The OS lock on the local state directory, and the file naming the holder.
    Local {
        directory: File,
        holder_file: File,
    },
    Remote {
        store: Arc<dyn ObjectStore>,
        etag: Option<String>,
    },
}

impl Drop for StateLock {
    fn drop(&mut self) {
        match &self.held {
            HeldLock::Local { directory, holder_file } => {
                let _ = holder_file.set_len(0);
                let _ = holder_file.sync_data();
                let _ = directory.unlock();
            }
            HeldLock::Remote { store, etag } => remote::release_lock(store.as_ref(), etag.as_deref(), &self.holder),
        }
    }
}

/// Where the state lives: the one type the commands and the engine use.
pub enum Backend {
    Local(LocalBackend),
    Remote(RemoteBackend),
}

impl Backend {
    /// Where the state is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(local) => local.directory.display().to_string(),
            Backend::Remote(remote) => remote.describe(),
        }
    }

    pub fn load(&self, secrets: &Secrets) -> Result<State, StateError> {
        match self {
            Backend::Local(local) => local.load(secrets),
            Backend::Remote(remote) => remote.load(secrets),
        }
    }

    pub fn open_journal(&self, state: &State) -> Result<Journal, StateError> {
        match self {
            Backend::Local(local) => local.open_journal(state),
            Backend::Remote(remote) => Ok(remote.open_journal(state)),
        }
    }

    /// Folds the journal into a new snapshot.
    pub fn compact(&self, state: &State, secrets: &Secrets) -> Result<(), StateError> {
        match self {
            Backend::Local(local) => local.compact(state, secrets),
            Backend::Remote(remote) => remote.compact(state, secrets),
        }
    }

    pub fn append_history(&self, entry: &Json) -> Result<(), StateError> {
        match self {
            Backend::Local(local) => local.append_history(entry),
            Backend::Remote(remote) => remote.append_history(entry),
        }
    }

    /// Every history entry (applies, state surgery, restores), oldest
    /// first, and how many stored entries could not be read.
    pub fn history(&self) -> Result<(Vec<Json>, usize), StateError> {
        match self {
            Backend::Local(local) => local.history(),
            Backend::Remote(remote) => remote.history(),
        }
    }

    /// Takes the lock, or fails at once naming the holder. Returns the lock
    /// and, when a process died holding it (local backend), that holder.
    pub fn lock(&self, command: &str) -> Result<(StateLock, Option<LockHolder>), StateError> {
        match self {
            Backend::Local(local) => local.lock(command),
            Backend::Remote(remote) => remote.lock(command).map(|lock| (lock, None)),
        }
    }

    /// [`Backend::lock`], waiting up to `timeout` while another process
    /// holds the lock (`waiting` is told once, with the holder). A lock
    /// still held at the end is the same error as without waiting.
    pub fn lock_waiting(
        &self,
        command: &str,
        timeout: std::time::Duration,
        waiting: &dyn Fn(&LockHolder),
    ) -> Result<(StateLock, Option<LockHolder>), StateError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut pause = std::time::Duration::from_millis(100);
        let mut told = false;
        loop {
            match self.lock(command) {
                Err(StateError::Locked { holder }) if std::time::Instant::now() + pause <= deadline => {
                    if !told {
                        waiting(&holder);
                        told = true;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    pub fn force_unlock(&self, id: &str) -> Result<LockHolder, StateError> {
        match self {
            Backend::Local(local) => local.force_unlock(id),
            Backend::Remote(remote) => remote.force_unlock(id),
        }
    }

    /// The key that signs saved plans of this state, made on first use and
    /// kept with the state: whoever can forge a plan for this state could
    /// write the state itself.
    pub fn plan_key(&self) -> Result<[u8; 32], StateError> {
        match self {
            Backend::Local(local) => local.plan_key(),
            Backend::Remote(remote) => remote.plan_key(),
        }
    }

    /// The saved-plan key if this state has one: checking a plan never
    /// makes one (a state without a key signed no plan).
    pub fn existing_plan_key(&self) -> Result<Option<[u8; 32]>, StateError> {
        match self {
            Backend::Local(local) => local.existing_plan_key(),
            Backend::Remote(remote) => remote.existing_plan_key(),
        }
    }

    /// What a restore could return to (local backend only: a versioned
    /// bucket keeps every version of a remote state).
    pub fn backups(&self, secrets: &Secrets) -> Result<Vec<Backup>, StateError> {
        match self {
            Backend::Local(local) => local.backups(secrets),
            Backend::Remote(remote) => Err(restore_is_local(remote)),
        }
    }

    /// Makes `chosen` the state (see [`LocalBackend::restore`]).
    pub fn restore(&self, chosen: &Backup, secrets: &Secrets, command: &str) -> Result<Restored, StateError> {
        match self {
            Backend::Local(local) => local.restore(chosen, secrets, command),
            Backend::Remote(remote) => Err(restore_is_local(remote)),
        }
    }

    /// Creates the place the state lives in, for `mlops init`; returns what
    /// was done, in words.
    pub fn initialise(&self) -> Result<Option<String>, StateError> {
        match self {
            Backend::Local(local) => {
                if local.directory.is_dir() {
                    return Ok(None);
                }
                fs::create_dir_all(&local.directory).map_err(io("create", &local.directory))?;
                Ok(Some(format!("created the state directory {}", local.directory.display())))
            }
            Backend::Remote(remote) => remote.initialise(),
        }
    }
}

fn restore_is_local(remote: &RemoteBackend) -> StateError {
    StateError::Store {
        message: format!("`mlops state restore` works on the local backend; the state at {} is remote", remote.describe()),
        help: Some("a versioned bucket keeps every version of every state object: restore one with the store's own tools".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with a sensitive `token`, for the backends' tests.
    pub(super) fn record(address: &str) -> Record {
        let mut config = Attributes::new();
        config.insert("name".into(), Json::String(address.into()));
        config.insert("token".into(), Json::String("hunter2-secret".into()));
        Record {
            address: address.into(),
            kind: "bucket".into(),
            provider: "local".into(),
            config,
            sensitive_paths: vec![vec!["token".into()]],
            ..Record::default()
        }
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temporary_file() {
        let directory = tempfile::tempdir().unwrap();
        // The rename cannot replace a directory that holds a file.
        let target = directory.path().join("state.json");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        assert!(write_atomically(&target, b"{}").is_err());
        let left: Vec<_> = fs::read_dir(directory.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("state.json")], "a temporary file was left");
    }

    #[test]
    fn secrets_are_not_stored_without_a_key() {
        let secrets = Secrets::from_passphrase(None);
        let sealed = secrets.seal(&Json::String("hunter2".into()));
        assert_eq!(sealed, serde_json::json!({"$sensitive": null}));
        let keyed = Secrets::from_passphrase(Some("k"));
        let sealed = keyed.seal(&Json::String("hunter2".into()));
        assert_eq!(keyed.open(&sealed), Some(Json::String("hunter2".into())));
        assert_eq!(Secrets::from_passphrase(Some("other")).open(&sealed), None);
    }
}
