//! The local state backend: a directory (default `.mlops/state/`).
//!
//! - `state.json`: the snapshot, replaced atomically (write, fsync, rename)
//!   when an apply ends;
//! - `journal.jsonl`: one checksummed line per change since the snapshot,
//!   appended and fsynced as each resource finishes;
//! - `history.jsonl`: one line per apply or state surgery, with the serial
//!   it left the state at;
//! - `backups/SERIAL/`: what each compaction replaced, the previous
//!   `state.json` and the journal that led from it to SERIAL, kept by hard
//!   links (no copy is written). Replaying one rebuilds the state at SERIAL
//!   exactly, so a deleted or damaged `state.json` is never the end of it;
//! - `plan.key`: the key that signs saved plans (owner-readable only);
//! - `lock`: who holds the lock. The lock itself is the OS's lock on the
//!   state directory, so deleting this file cannot let a second writer in.
//!
//! **A damaged or missing state never reads as "nothing exists".** A `kill
//! -9` can only leave a torn *last* line in the journal, which loading
//! ignores and the next writer cuts off. Anything else (a bad line with good
//! ones after it, a gap in the serials, a snapshot missing or older than the
//! history says) makes [`LocalBackend::load`] fail with
//! [`StateError::Damaged`], naming the line, the serials and what would be
//! lost, and nothing plans or applies until `mlops state restore` rebuilds
//! the state from a backup or the user accepts the loss.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::{
    hostname, io, now, open_state, parse_journal_line, parse_snapshot, replay, sealed_state, write_atomically, HeldLock, Journal,
    JournalEntry, JournalSink, LockHolder, Secrets, State, StateError, StateLock,
};

/// How many compactions' backups are kept.
const BACKUPS_KEPT: usize = 5;

/// What the history's last readable line says.
#[derive(Debug, Clone, PartialEq)]
struct HistoryMark {
    serial: u64,
    time: String,
    command: String,
}

/// The journal file as read: its valid entries in order, where a torn tail
/// starts, and damage that is not a torn tail.
struct JournalRead {
    entries: Vec<JournalEntry>,
    /// Bytes of the lines that parse, up to the first one that does not.
    valid_length: u64,
    total_length: u64,
    damage: Option<String>,
}

/// A state the backups (or the current files) can rebuild.
#[derive(Debug, Clone)]
pub struct Backup {
    /// `current` for the state directory as it is; otherwise the backup folder's serial.
    pub label: String,
    pub serial: u64,
    pub resources: usize,
    pub time: Option<String>,
    /// What restoring it loses that the files show existed.
    pub losses: Vec<String>,
    state: State,
}

impl Backup {
    /// Nothing: what `--accept-loss` starts from when nothing can be restored.
    pub fn empty() -> Backup {
        Backup {
            label: "empty".to_owned(),
            serial: 0,
            resources: 0,
            time: None,
            losses: vec!["everything the state recorded".to_owned()],
            state: State::new(),
        }
    }
}

/// What `mlops state restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub from: String,
    pub restored_serial: u64,
    pub new_serial: u64,
    pub resources: usize,
    pub set_aside: Option<PathBuf>,
}

/// The local state backend: a directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    pub directory: PathBuf,
}

impl LocalBackend {
    pub fn new(directory: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { directory: directory.into() }
    }

    fn snapshot_path(&self) -> PathBuf {
        self.directory.join("state.json")
    }

    fn journal_path(&self) -> PathBuf {
        self.directory.join("journal.jsonl")
    }

    fn history_path(&self) -> PathBuf {
        self.directory.join("history.jsonl")
    }

    fn lock_path(&self) -> PathBuf {
        self.directory.join("lock")
    }

    fn backups_path(&self) -> PathBuf {
        self.directory.join("backups")
    }

    fn location(&self) -> String {
        self.directory.display().to_string()
    }

    /// Loads the snapshot and replays the journal. A state never written is
    /// empty; a damaged or missing one is an error that says what is wrong.
    pub fn load(&self, secrets: &Secrets) -> Result<State, StateError> {
        let (mut state, snapshot_found) = self.read_snapshot()?;
        let journal = self.read_journal(&self.journal_path(), state.serial)?;
        if let Some(damage) = journal.damage {
            return Err(self.damaged(damage));
        }
        for entry in journal.entries {
            if entry.serial() <= state.serial && state.serial != 0 {
                continue;
            }
            replay(&mut state, entry);
        }
        if !snapshot_found && state.serial > 0 {
            // A first apply that never finished: keep the lineage stable across loads.
            if let Some(lineage) = self.journal_lineage() {
                state.lineage = lineage;
            }
        }
        if let Some(mark) = self.history_mark()? {
            if mark.serial > state.serial {
                let found = if snapshot_found {
                    format!("the state files hold serial {}", state.serial)
                } else if state.serial > 0 {
                    format!("state.json is missing and the journal alone reaches serial {}", state.serial)
                } else {
                    "state.json is missing".to_owned()
                };
                return Err(self.damaged(format!(
                    "history.jsonl records serial {} (`{}` at {}), but {found}: the resources written since would be read as never created",
                    mark.serial, mark.command, mark.time
                )));
            }
        }
        open_state(&mut state, secrets);
        Ok(state)
    }

    fn damaged(&self, message: String) -> StateError {
        StateError::Damaged { location: self.location(), message }
    }

    /// The snapshot, and whether there was one.
    fn read_snapshot(&self) -> Result<(State, bool), StateError> {
        let path = self.snapshot_path();
        match fs::read(&path) {
            Ok(bytes) => parse_snapshot(&bytes, &path.display().to_string()).map(|state| (state, true)).map_err(|error| match error {
                StateError::Corrupt { message, .. } => self.damaged(format!("state.json cannot be read: {message}")),
                other => other,
            }),
            // No state yet: its lineage is set by the first write, so plans
            // made before it compare equal.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((State { lineage: String::new(), ..State::new() }, false)),
            Err(error) => Err(io("read", &path)(error)),
        }
    }

    fn journal_lineage(&self) -> Option<String> {
        fs::read_to_string(self.directory.join("lineage")).ok().map(|text| text.trim().to_owned())
    }

    /// Reads a journal file whose entries continue a snapshot at
    /// `snapshot_serial`. Lines that do not parse at the very end are a torn
    /// tail (a write cut short); a bad line with good ones after it, or a
    /// serial missing from the sequence, is damage.
    fn read_journal(&self, path: &Path, snapshot_serial: u64) -> Result<JournalRead, StateError> {
        let mut contents = Vec::new();
        match File::open(path) {
            Ok(mut file) => {
                file.read_to_end(&mut contents).map_err(io("read", path))?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io("read", path)(error)),
        }
        let mut entries = Vec::new();
        let mut valid_length = 0u64;
        let mut first_bad: Option<(usize, &[u8])> = None;
        let mut after_bad: Vec<(usize, JournalEntry)> = Vec::new();
        for (index, line) in contents.split_inclusive(|byte| *byte == b'\n').enumerate() {
            let parsed = line.strip_suffix(b"\n").and_then(parse_journal_line);
            match (parsed, &first_bad) {
                (Some(entry), None) => {
                    entries.push(entry);
                    valid_length += line.len() as u64;
                }
                (Some(entry), Some(_)) => after_bad.push((index + 1, entry)),
                (None, None) => first_bad = Some((index + 1, line)),
                (None, Some(_)) => {}
            }
        }
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let mut damage = None;
        if let Some((line, text)) = first_bad.filter(|_| !after_bad.is_empty()) {
            let before = entries.last().map_or(snapshot_serial, JournalEntry::serial);
            let probably = address_in(text).map(|address| format!(", probably a change of {address}")).unwrap_or_default();
            let later: Vec<String> = after_bad.iter().take(5).map(|(_, entry)| describe_entry(entry)).collect();
            let more = if after_bad.len() > 5 { format!(" and {} more", after_bad.len() - 5) } else { String::new() };
            damage = Some(format!(
                "line {line} of {name} is damaged (it should hold serial {}{probably}); the {} valid change{} after it cannot be replayed without it: {}{more}",
                before + 1,
                after_bad.len(),
                if after_bad.len() == 1 { "" } else { "s" },
                later.join("; ")
            ));
        }
        // The serials after the snapshot must follow one another.
        let mut expected = None;
        for entry in entries.iter().filter(|entry| entry.serial() > snapshot_serial || snapshot_serial == 0) {
            let wanted = expected.unwrap_or(if snapshot_serial == 0 { entry.serial().min(1) } else { snapshot_serial + 1 });
            if entry.serial() != wanted && damage.is_none() {
                damage = Some(format!(
                    "{name} skips from serial {} to serial {}: {} change{} are missing (the state after them would be incomplete)",
                    wanted.saturating_sub(1),
                    entry.serial(),
                    entry.serial().saturating_sub(wanted),
                    if entry.serial().saturating_sub(wanted) == 1 { "" } else { "s" }
                ));
            }
            expected = Some(entry.serial() + 1);
        }
        Ok(JournalRead { entries, valid_length, total_length: contents.len() as u64, damage })
    }

    /// The newest serial the history records (its last readable line).
    fn history_mark(&self) -> Result<Option<HistoryMark>, StateError> {
        let path = self.history_path();
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io("read", &path)(error)),
        };
        // Only the end matters: the history grows by a line per apply.
        let length = file.metadata().map_err(io("read", &path))?.len();
        let start = length.saturating_sub(64 * 1024);
        file.seek(SeekFrom::Start(start)).map_err(io("read", &path))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(io("read", &path))?;
        let mark = tail
            .split(|byte| *byte == b'\n')
            .filter_map(|line| serde_json::from_slice::<Json>(line).ok())
            .filter_map(|entry| {
                Some(HistoryMark {
                    serial: entry.get("serial")?.as_u64()?,
                    time: entry.get("time").and_then(Json::as_str).unwrap_or("an unknown time").to_owned(),
                    command: entry.get("command").and_then(Json::as_str).unwrap_or("mlops").to_owned(),
                })
            })
            .max_by_key(|mark| mark.serial);
        Ok(mark)
    }

    /// Opens the journal for appending, cutting off a torn tail first. A
    /// journal with damage before its end is never cut: loading refuses it.
    pub fn open_journal(&self, state: &State) -> Result<Journal, StateError> {
        fs::create_dir_all(&self.directory).map_err(io("create", &self.directory))?;
        if !self.snapshot_path().exists() {
            let lineage_path = self.directory.join("lineage");
            if !lineage_path.exists() {
                fs::write(&lineage_path, &state.lineage).map_err(io("write", &lineage_path))?;
            }
        }
        let path = self.journal_path();
        let read = self.read_journal(&path, state.serial)?;
        if let Some(damage) = read.damage {
            return Err(self.damaged(damage));
        }
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io("open", &path))?;
        if read.valid_length < read.total_length {
            file.set_len(read.valid_length).map_err(io("repair", &path))?;
            let mut file = &file;
            file.seek(SeekFrom::End(0)).map_err(io("repair", &path))?;
        }
        Ok(Journal::new(JournalSink::File { file, path }, state.serial))
    }

    /// Writes `state` as the new snapshot and starts an empty journal. What
    /// it replaces (the previous snapshot, and the journal that leads from
    /// it to `state`) is kept under `backups/SERIAL/` by hard links.
    pub fn compact(&self, state: &State, secrets: &Secrets) -> Result<(), StateError> {
        fs::create_dir_all(&self.directory).map_err(io("create", &self.directory))?;
        let sealed = sealed_state(state, secrets);
        let bytes = serde_json::to_vec_pretty(&sealed).map_err(|error| StateError::Other(error.to_string()))?;
        self.keep_backup(state)?;
        let snapshot_path = self.snapshot_path();
        write_atomically(&snapshot_path, &bytes)?;
        // A new, empty journal takes the old one's name; the old file lives
        // on as the backup's journal. (Truncating it in place would empty
        // the backup too.) The old entries are all in the snapshot, so a
        // crash before the rename loses nothing: replay skips them by serial.
        let journal_path = self.journal_path();
        if journal_path.exists() {
            write_atomically(&journal_path, b"")?;
        }
        let _ = fs::remove_file(self.directory.join("lineage"));
        self.prune_backups();
        Ok(())
    }

    /// Links the current snapshot and journal into `backups/SERIAL/`.
    fn keep_backup(&self, state: &State) -> Result<(), StateError> {
        let folder = self.backups_path().join(state.serial.to_string());
        if folder.exists() {
            // Left by a compaction that died before finishing, or a restore
            // back to an older serial: this one supersedes it.
            fs::remove_dir_all(&folder).map_err(io("replace", &folder))?;
        }
        fs::create_dir_all(&folder).map_err(io("create", &folder))?;
        let snapshot = self.snapshot_path();
        let kept_snapshot = folder.join("state.json");
        if snapshot.exists() {
            fs::hard_link(&snapshot, &kept_snapshot).map_err(io("back up", &snapshot))?;
        } else {
            // The first compaction: the journal starts from nothing, but the
            // lineage must survive a restore.
            let empty = State { resources: Default::default(), outputs: Default::default(), serial: 0, ..state.clone() };
            let bytes = serde_json::to_vec_pretty(&empty).map_err(|error| StateError::Other(error.to_string()))?;
            write_atomically(&kept_snapshot, &bytes)?;
        }
        let journal = self.journal_path();
        if journal.exists() {
            fs::hard_link(&journal, folder.join("journal.jsonl")).map_err(io("back up", &journal))?;
        }
        Ok(())
    }

    fn backup_serials(&self) -> Vec<u64> {
        let mut serials: Vec<u64> = fs::read_dir(self.backups_path())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect();
        serials.sort_unstable();
        serials
    }

    fn prune_backups(&self) {
        let serials = self.backup_serials();
        for serial in &serials[..serials.len().saturating_sub(BACKUPS_KEPT)] {
            let _ = fs::remove_dir_all(self.backups_path().join(serial.to_string()));
        }
    }

    /// Everything a restore could return to: the current files (as far as
    /// they can be read) and each backup, newest first.
    pub fn backups(&self, secrets: &Secrets) -> Result<Vec<Backup>, StateError> {
        let mark = self.history_mark()?;
        let mut found = Vec::new();
        if let Some(current) = self.current_candidate()? {
            found.push(current);
        }
        for serial in self.backup_serials().into_iter().rev() {
            let folder = self.backups_path().join(serial.to_string());
            let time = fs::metadata(folder.join("state.json"))
                .and_then(|metadata| metadata.modified())
                .ok()
                .map(|time| chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let candidate = (|| -> Result<Backup, StateError> {
                let bytes = fs::read(folder.join("state.json")).map_err(io("read", &folder))?;
                let mut state = parse_snapshot(&bytes, &folder.display().to_string())?;
                let journal = self.read_journal(&folder.join("journal.jsonl"), state.serial)?;
                let mut losses = Vec::new();
                if let Some(damage) = journal.damage {
                    losses.push(damage);
                }
                for entry in journal.entries {
                    if entry.serial() > state.serial || state.serial == 0 {
                        replay(&mut state, entry);
                    }
                }
                Ok(Backup { label: serial.to_string(), serial: state.serial, resources: state.resources.len(), time, losses, state })
            })();
            if let Ok(candidate) = candidate {
                found.push(candidate);
            }
        }
        for candidate in &mut found {
            if let Some(mark) = mark.as_ref().filter(|mark| mark.serial > candidate.serial) {
                candidate.losses.push(format!(
                    "the changes from serial {} to {} (the history's last, `{}` at {})",
                    candidate.serial + 1,
                    mark.serial,
                    mark.command,
                    mark.time
                ));
            }
            open_state(&mut candidate.state, secrets);
        }
        Ok(found)
    }

    /// The current snapshot (if readable) with every journal line that
    /// reads, skipping damaged ones, which are listed as losses.
    fn current_candidate(&self) -> Result<Option<Backup>, StateError> {
        let path = self.snapshot_path();
        let mut losses = Vec::new();
        let mut state = match fs::read(&path) {
            Ok(bytes) => match parse_snapshot(&bytes, &path.display().to_string()) {
                Ok(state) => state,
                Err(StateError::Corrupt { message, .. }) => {
                    losses.push(format!("state.json, which cannot be read ({message})"));
                    State { lineage: String::new(), ..State::new() }
                }
                Err(other) => return Err(other),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // Before the first compaction there is no snapshot, only the
                // `lineage` file the journal started with.
                let lineage = self.journal_lineage();
                if lineage.is_none() {
                    losses.push("state.json, which is missing".to_owned());
                }
                State { lineage: lineage.unwrap_or_default(), ..State::new() }
            }
            Err(error) => return Err(io("read", &path)(error)),
        };
        let journal_path = self.journal_path();
        let mut contents = Vec::new();
        if let Ok(mut file) = File::open(&journal_path) {
            file.read_to_end(&mut contents).map_err(io("read", &journal_path))?;
        }
        let lines: Vec<&[u8]> = contents.split_inclusive(|byte| *byte == b'\n').collect();
        let last_good = lines.iter().rposition(|line| line.strip_suffix(b"\n").and_then(parse_journal_line).is_some());
        for (index, line) in lines.iter().enumerate() {
            match line.strip_suffix(b"\n").and_then(parse_journal_line) {
                Some(entry) if entry.serial() > state.serial || state.serial == 0 => replay(&mut state, entry),
                Some(_) => {}
                // A torn tail was never acknowledged: it is not a loss.
                None if last_good.is_some_and(|last| index < last) => losses.push(format!(
                    "journal.jsonl line {}{}",
                    index + 1,
                    address_in(line).map(|address| format!(" (probably a change of {address})")).unwrap_or_default()
                )),
                None => {}
            }
        }
        if state.serial == 0 && state.resources.is_empty() {
            return Ok(None);
        }
        Ok(Some(Backup { label: "current".to_owned(), serial: state.serial, resources: state.resources.len(), time: None, losses, state }))
    }

    /// Makes `chosen` the state, under the lock the caller holds. The files
    /// it replaces are set aside under `backups/damaged-TIME/`, the new
    /// snapshot takes a serial past everything recorded (so saved plans made
    /// before are stale), and the history says what was done.
    pub fn restore(&self, chosen: &Backup, secrets: &Secrets, command: &str) -> Result<Restored, StateError> {
        let mark = self.history_mark()?.map_or(0, |mark| mark.serial);
        let current = self.current_candidate()?.map_or(0, |current| current.serial);
        let new_serial = chosen.serial.max(mark).max(current) + 1;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string();
        let aside = self.backups_path().join(format!("damaged-{stamp}"));
        let mut set_aside = None;
        for name in ["state.json", "journal.jsonl"] {
            let path = self.directory.join(name);
            if fs::metadata(&path).is_ok_and(|metadata| metadata.len() > 0) {
                fs::create_dir_all(&aside).map_err(io("create", &aside))?;
                fs::rename(&path, aside.join(name)).map_err(io("set aside", &path))?;
                set_aside = Some(aside.clone());
            }
        }
        let mut state = chosen.state.clone();
        if state.lineage.is_empty() {
            state.lineage = super::new_id();
        }
        state.serial = new_serial;
        let bytes = serde_json::to_vec_pretty(&sealed_state(&state, secrets)).map_err(|error| StateError::Other(error.to_string()))?;
        write_atomically(&self.snapshot_path(), &bytes)?;
        let _ = fs::remove_file(self.directory.join("lineage"));
        self.append_history(&serde_json::json!({
            "time": now(),
            "user": std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
            "host": hostname(),
            "command": command,
            "restored_from": chosen.label,
            "restored_serial": chosen.serial,
            "accepted_losses": chosen.losses,
            "serial": new_serial,
        }))?;
        Ok(Restored { from: chosen.label.clone(), restored_serial: chosen.serial, new_serial, resources: state.resources.len(), set_aside })
    }

    /// The saved-plan signing key in `plan.key` (readable by the owner
    /// only), made on first use.
    pub fn plan_key(&self) -> Result<[u8; 32], StateError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.directory.join("plan.key");
        fs::create_dir_all(&self.directory).map_err(io("create", &self.directory))?;
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
            Ok(mut file) => {
                let text = super::new_key_text();
                file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io("write", &path))?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io("create", &path)(error)),
        }
        let text = fs::read_to_string(&path).map_err(io("read", &path))?;
        super::parse_key_text(&text).ok_or_else(|| self.damaged(format!("{} does not hold a key", path.display())))
    }

    pub fn existing_plan_key(&self) -> Result<Option<[u8; 32]>, StateError> {
        let path = self.directory.join("plan.key");
        match fs::read_to_string(&path) {
            Ok(text) => {
                super::parse_key_text(&text).map(Some).ok_or_else(|| self.damaged(format!("{} does not hold a key", path.display())))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io("read", &path)(error)),
        }
    }

    /// Every readable line of the history, oldest first, and the number of
    /// lines that could not be read (a line torn by a kill).
    pub fn history(&self) -> Result<(Vec<Json>, usize), StateError> {
        let path = self.history_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(error) => return Err(io("read", &path)(error)),
        };
        let mut entries = Vec::new();
        let mut unreadable = 0;
        for line in bytes.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()) {
            match serde_json::from_slice::<Json>(line) {
                Ok(entry) if entry.is_object() => entries.push(entry),
                _ => unreadable += 1,
            }
        }
        Ok((entries, unreadable))
    }

    pub fn append_history(&self, entry: &Json) -> Result<(), StateError> {
        fs::create_dir_all(&self.directory).map_err(io("create", &self.directory))?;
        let path = self.history_path();
        let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io("open", &path))?;
        let mut line = serde_json::to_vec(entry).map_err(|error| StateError::Other(error.to_string()))?;
        line.push(b'\n');
        file.write_all(&line).and_then(|()| file.sync_data()).map_err(io("write", &path))
    }

    /// Takes the lock, or fails at once naming the holder. Returns the lock
    /// and, when a process died holding it, that holder. The lock is the
    /// OS's lock on the state directory itself; the `lock` file only names
    /// the holder, so deleting it cannot let a second writer in.
    pub fn lock(&self, command: &str) -> Result<(StateLock, Option<LockHolder>), StateError> {
        fs::create_dir_all(&self.directory).map_err(io("create", &self.directory))?;
        let directory = File::open(&self.directory).map_err(io("open", &self.directory))?;
        let path = self.lock_path();
        match directory.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_else(|| LockHolder {
                    id: "unknown".into(),
                    user: "unknown".into(),
                    host: hostname(),
                    pid: 0,
                    command: "mlops".into(),
                    time: "unknown".into(),
                });
                return Err(StateError::Locked { holder: Box::new(holder) });
            }
            Err(fs::TryLockError::Error(error)) => return Err(io("lock", &self.directory)(error)),
        }
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io("open", &path))?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        // The OS released the lock of a process that died, but its holder
        // record is still there: report it.
        let dead_holder: Option<LockHolder> = serde_json::from_str(&text).ok();
        let holder = LockHolder::current(command);
        let bytes = serde_json::to_vec(&holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| file.write_all(&bytes))
            .and_then(|()| file.sync_data())
            .map_err(io("write", &path))?;
        Ok((StateLock { held: HeldLock::Local { directory, holder_file: file }, holder }, dead_holder))
    }

    /// Clears a lock whose holder is gone. A lock held by a live local
    /// process cannot be broken: stop that process instead.
    pub fn force_unlock(&self, id: &str) -> Result<LockHolder, StateError> {
        let path = self.lock_path();
        let text = fs::read_to_string(&path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                StateError::Other("the state is not locked".to_owned())
            } else {
                io("read", &path)(error)
            }
        })?;
        let Ok(holder) = serde_json::from_str::<LockHolder>(&text) else {
            return Err(StateError::Other("the state is not locked".to_owned()));
        };
        if holder.id != id {
            return Err(StateError::Other(format!("the lock ID is {}, not {id}; the lock is held by {holder}", holder.id)));
        }
        let directory = File::open(&self.directory).map_err(io("open", &self.directory))?;
        match directory.try_lock() {
            Ok(()) => {
                fs::write(&path, b"").map_err(io("write", &path))?;
                Ok(holder)
            }
            Err(_) => Err(StateError::Other(format!(
                "the lock is held by process {} on this machine, which is still running; stop it (it releases the lock when it exits)",
                holder.pid
            ))),
        }
    }
}

/// A journal entry in a few words, for messages.
fn describe_entry(entry: &JournalEntry) -> String {
    match entry {
        JournalEntry::Put { serial, record } => format!("serial {serial} saves {}", record.address),
        JournalEntry::Remove { serial, address } => format!("serial {serial} removes {address}"),
        JournalEntry::Outputs { serial, .. } => format!("serial {serial} saves the outputs"),
    }
}

/// The resource address a damaged line probably names, read off its text.
fn address_in(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let start = text.find("\"address\":\"")? + "\"address\":\"".len();
    let rest = &text[start..];
    let address: String = rest.chars().take_while(|character| *character != '"').take(200).collect();
    (!address.is_empty()).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;

    fn backend() -> (tempfile::TempDir, LocalBackend, Secrets) {
        let directory = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(directory.path());
        (directory, backend, Secrets::from_passphrase(Some("key")))
    }

    /// An applied state: two compactions, so there are backups, and history.
    fn applied(backend: &LocalBackend, secrets: &Secrets) -> State {
        let mut state = backend.load(secrets).unwrap();
        state.lineage = super::super::new_id();
        for round in 0..2 {
            let journal = backend.open_journal(&state).unwrap();
            for name in ["a", "b", "c"] {
                let record = record(&format!("bucket.{name}{round}"));
                journal.put(&record, secrets).unwrap();
                state.resources.insert(record.address.clone(), record);
            }
            state.serial = journal.serial();
            drop(journal);
            backend.compact(&state, secrets).unwrap();
            backend.append_history(&serde_json::json!({ "time": now(), "command": "mlops apply", "serial": state.serial })).unwrap();
        }
        state
    }

    #[test]
    fn journal_survives_a_torn_tail_and_replays_in_order() {
        let (directory, backend, secrets) = backend();
        let mut state = backend.load(&secrets).unwrap();
        assert_eq!(state.lineage, "", "a state never written has no lineage yet");
        state.lineage = super::super::new_id();
        let journal = backend.open_journal(&state).unwrap();
        journal.put(&record("bucket.a"), &secrets).unwrap();
        journal.put(&record("bucket.b"), &secrets).unwrap();
        journal.remove("bucket.a").unwrap();
        drop(journal);
        // A write cut short by a crash.
        let mut file = OpenOptions::new().append(true).open(directory.path().join("journal.jsonl")).unwrap();
        file.write_all(b"{\"put\":{\"serial\":4,\"rec").unwrap();
        let loaded = backend.load(&secrets).unwrap();
        assert_eq!(loaded.serial, 3);
        assert_eq!(loaded.resources.keys().collect::<Vec<_>>(), vec!["bucket.b"]);
        assert_eq!(loaded.resources["bucket.b"].config["token"], Json::String("hunter2-secret".into()));
        assert_eq!(loaded.lineage, state.lineage);
        // Reopening cuts the torn tail, so new lines are readable.
        let journal = backend.open_journal(&loaded).unwrap();
        journal.put(&record("bucket.c"), &secrets).unwrap();
        drop(journal);
        let loaded = backend.load(&secrets).unwrap();
        assert_eq!(loaded.resources.len(), 2);
        backend.compact(&loaded, &secrets).unwrap();
        let compacted = backend.load(&secrets).unwrap();
        assert_eq!(compacted, loaded);
        for file in ["state.json", "journal.jsonl", "backups/4/journal.jsonl"] {
            let text = fs::read_to_string(directory.path().join(file)).unwrap_or_default();
            assert!(!text.contains("hunter2"), "{file} holds the secret in clear");
        }
    }

    #[test]
    fn a_damaged_line_before_good_ones_is_reported_and_never_cut_off() {
        let (directory, backend, secrets) = backend();
        let mut state = backend.load(&secrets).unwrap();
        state.lineage = super::super::new_id();
        let journal = backend.open_journal(&state).unwrap();
        for name in ["a", "b", "c", "d"] {
            journal.put(&record(&format!("bucket.{name}")), &secrets).unwrap();
        }
        drop(journal);
        let path = directory.path().join("journal.jsonl");
        let text = fs::read_to_string(&path).unwrap();
        let damaged = text.replacen("bucket.b\",\"kind", "bucket.b\",\"kinx", 1);
        fs::write(&path, &damaged).unwrap();
        let error = backend.load(&secrets).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, StateError::Damaged { .. }), "{message}");
        assert!(
            message.contains("line 2 of journal.jsonl is damaged (it should hold serial 2, probably a change of bucket.b)"),
            "{message}"
        );
        assert!(message.contains("serial 3 saves bucket.c; serial 4 saves bucket.d"), "{message}");
        assert!(error.help().unwrap().contains("mlops state restore"));
        // Opening it for writing refuses too, and cuts nothing.
        assert!(matches!(backend.open_journal(&state), Err(StateError::Damaged { .. })));
        assert_eq!(fs::read_to_string(&path).unwrap(), damaged);
        // The current files, damaged line skipped, are one way back; it says what it loses.
        let backups = backend.backups(&secrets).unwrap();
        let current = backups.iter().find(|backup| backup.label == "current").unwrap();
        assert_eq!(current.serial, 4);
        assert_eq!(current.losses, ["journal.jsonl line 2 (probably a change of bucket.b)"]);
        let restored = backend.restore(current, &secrets, "mlops state restore").unwrap();
        assert_eq!(restored.new_serial, 5);
        let loaded = backend.load(&secrets).unwrap();
        assert_eq!(loaded.resources.keys().collect::<Vec<_>>(), ["bucket.a", "bucket.c", "bucket.d"]);
        assert_eq!(loaded.serial, 5);
        assert!(restored.set_aside.unwrap().join("journal.jsonl").exists(), "the damaged journal is kept");
    }

    #[test]
    fn a_gap_in_the_serials_is_damage() {
        let (directory, backend, secrets) = backend();
        let mut state = backend.load(&secrets).unwrap();
        state.lineage = super::super::new_id();
        let journal = backend.open_journal(&state).unwrap();
        for name in ["a", "b", "c"] {
            journal.put(&record(&format!("bucket.{name}")), &secrets).unwrap();
        }
        drop(journal);
        let path = directory.path().join("journal.jsonl");
        let lines: Vec<String> = fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect();
        fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let message = backend.load(&secrets).unwrap_err().to_string();
        assert!(
            message.contains("journal.jsonl skips from serial 1 to serial 3: 1 change are missing")
                || message.contains("skips from serial 1 to serial 3"),
            "{message}"
        );
    }

    #[test]
    fn a_deleted_snapshot_is_reported_and_rebuilt_exactly_from_its_backup() {
        let (directory, backend, secrets) = backend();
        let state = applied(&backend, &secrets);
        assert_eq!(state.serial, 6);
        fs::remove_file(directory.path().join("state.json")).unwrap();
        let error = backend.load(&secrets).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("history.jsonl records serial 6 (`mlops apply` at"), "{message}");
        assert!(message.contains("but state.json is missing"), "{message}");
        let backups = backend.backups(&secrets).unwrap();
        let newest = &backups[0];
        assert_eq!((newest.label.as_str(), newest.serial, newest.resources), ("6", 6, 6));
        assert!(newest.losses.is_empty(), "{:?}", newest.losses);
        backend.restore(newest, &secrets, "mlops state restore").unwrap();
        let restored = backend.load(&secrets).unwrap();
        assert_eq!(restored.resources, state.resources);
        assert_eq!(restored.lineage, state.lineage);
        assert_eq!(restored.serial, 7, "a restore takes a new serial, so plans made before it are stale");
        assert_eq!(restored.resources["bucket.a1"].config["token"], Json::String("hunter2-secret".into()));
    }

    #[test]
    fn a_snapshot_older_than_the_history_is_reported() {
        let (directory, backend, secrets) = backend();
        applied(&backend, &secrets);
        // An old copy of state.json put back by hand.
        fs::copy(directory.path().join("backups/6/state.json"), directory.path().join("state.json")).unwrap();
        let message = backend.load(&secrets).unwrap_err().to_string();
        assert!(message.contains("history.jsonl records serial 6") && message.contains("the state files hold serial 3"), "{message}");
    }

    #[test]
    fn only_the_newest_backups_are_kept() {
        let (directory, backend, secrets) = backend();
        let mut state = State::new();
        for _ in 0..(BACKUPS_KEPT + 3) {
            let journal = backend.open_journal(&state).unwrap();
            journal.put(&record("bucket.a"), &secrets).unwrap();
            state.serial = journal.serial();
            drop(journal);
            backend.compact(&state, &secrets).unwrap();
        }
        let kept = fs::read_dir(directory.path().join("backups")).unwrap().count();
        assert_eq!(kept, BACKUPS_KEPT);
        assert_eq!(backend.backup_serials().first(), Some(&4));
    }

    #[test]
    fn a_second_lock_names_the_holder_and_a_dead_holder_is_reported() {
        let (directory, backend, _) = backend();
        let (lock, dead) = backend.lock("mlops apply").unwrap();
        assert!(dead.is_none());
        match backend.lock("mlops plan") {
            Err(StateError::Locked { holder }) => assert_eq!(holder.id, lock.holder.id),
            other => panic!("expected a lock error, got {:?}", other.map(|(lock, _)| lock.holder.clone())),
        }
        // Deleting the holder file does not let a second writer in.
        fs::remove_file(directory.path().join("lock")).unwrap();
        assert!(matches!(backend.lock("mlops apply"), Err(StateError::Locked { .. })));
        drop(lock);
        // A holder record left behind without an OS lock: its process died.
        let stale = LockHolder { pid: 999_999, ..LockHolder::current("mlops apply") };
        fs::write(directory.path().join("lock"), serde_json::to_vec(&stale).unwrap()).unwrap();
        let (_lock, dead) = backend.lock("mlops apply").unwrap();
        assert_eq!(dead.map(|holder| holder.pid), Some(999_999));
    }
}
