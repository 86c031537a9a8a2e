//! Dataset files, for every provider that stores data: content hashing,
//! reading rows (CSV, JSON Lines and Parquet), typing them by the declared
//! schema and validating them against it, and computing feature sets over
//! them in batches of columns ([`features`]).

pub mod features;
pub mod frame;
pub mod join;
pub mod vector;
pub mod window;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use mlops_provider_api::{Attributes, PlanRequest, PlanResponse, ProviderError, ProviderResult, Value};
pub use mlops_provider_support::unreadable;
use mlops_provider_support::{files_under, HiddenFiles};
use serde_json::Value as Json;

/// Plans a dataset whose data is the local files at `location`. Its version
/// is their content hash, re-computed only when a file's size or modification
/// time changed since the last apply; a new version is the reason for an
/// update. `unchanged_config` says whether the configuration is what was
/// applied. The row count and the stored location are known after apply.
pub fn plan_local_source(location: &Path, request: &PlanRequest, unchanged_config: bool) -> ProviderResult<PlanResponse> {
    let files = data_files(location)?;
    if files.is_empty() {
        return Err(ProviderError::with_help(
            format!("`{}` holds no data files", location.display()),
            "add the data, or point `source` at it",
        ));
    }
    let stamp = stamp(location, &files)?;
    let prior_version = request.prior_state.as_ref().and_then(|state| state.get("version")).and_then(Json::as_str).map(str::to_owned);
    // The prior hashes stand while the stamps (sizes and times) do.
    let (version, file_hashes) = match (&prior_version, request.prior_private.get("stamp")) {
        (Some(version), Some(prior_stamp)) if *prior_stamp == stamp => {
            (version.clone(), request.prior_private.get("files").cloned().unwrap_or(Json::Null))
        }
        _ => {
            let hashed = content_hash_by_file(location, &files)?;
            (hashed.version, serde_json::to_value(hashed.files).unwrap_or(Json::Null))
        }
    };
    let size: u64 = files.iter().filter_map(|file| fs::metadata(file).ok()).map(|metadata| metadata.len()).sum();
    let private = serde_json::json!({ "stamp": stamp, "version": version, "size_bytes": size, "files": file_hashes });
    let mut response = PlanResponse { private, ..PlanResponse::default() };
    if let (Some(prior), Some(prior_version)) = (&request.prior_state, &prior_version) {
        if *prior_version == version && unchanged_config {
            response.planned_state = prior.clone();
            return Ok(response);
        }
        if *prior_version != version {
            response.update_reasons.push(format!(
                "its data changed: version {} -> {}",
                short_version(prior_version),
                short_version(&version)
            ));
        }
    }
    let mut planned = Attributes::new();
    planned.insert("version".into(), Json::String(version));
    planned.insert("size_bytes".into(), serde_json::json!(size));
    response.planned_state = planned;
    response.unknown = vec![vec!["row_count".into()], vec!["uri".into()]];
    Ok(response)
}

/// Plans a feature set (or a training set), wherever it is stored:
/// unchanged while its configuration and its inputs are; computed again (a new version, known
/// after apply) when either changes.
pub fn plan_feature_set(request: &PlanRequest, unchanged_config: bool) -> PlanResponse {
    let mut response = PlanResponse { private: request.prior_private.clone(), ..PlanResponse::default() };
    if !request.changed_inputs.is_empty() {
        response.requires_replace.push(if request.target.kind == "training_set" {
            "an input has a new version, so the training set is joined again".into()
        } else {
            "its dataset has a new version, so the features are computed again".into()
        });
    }
    match &request.prior_state {
        Some(prior) if request.changed_inputs.is_empty() && unchanged_config => response.planned_state = prior.clone(),
        _ => response.unknown = vec![vec!["version".into()], vec!["uri".into()], vec!["row_count".into()]],
    }
    response
}

/// A local copy of the immutable data at `uri`, kept under `directory`:
/// made once by `fill` (into a fresh directory, renamed into place when
/// complete) and reused after. Safe when several threads or processes stage
/// the same data at once: one copy wins, the others are dropped.
pub fn stage_once(
    directory: &Path,
    uri: &str,
    version: Option<&str>,
    fill: impl FnOnce(&Path) -> ProviderResult<()>,
) -> ProviderResult<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // By location and version: data that lives at one location and changes
    // there (a listing version) is staged again when it changes.
    let key = format!("{uri}\0{}", version.unwrap_or_default());
    let staged = directory.join(&blake3::hash(key.as_bytes()).to_hex()[..32]);
    if staged.is_dir() {
        return Ok(staged);
    }
    let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let incoming = directory.join(format!(".incoming-{}-{unique}", std::process::id()));
    let cannot =
        |what: &str, path: &Path, error: std::io::Error| ProviderError::failed(format!("cannot {what} `{}`: {error}", path.display()));
    fs::create_dir_all(&incoming).map_err(|error| cannot("create", &incoming, error))?;
    if let Err(error) = fill(&incoming) {
        let _ = fs::remove_dir_all(&incoming);
        return Err(error);
    }
    if let Err(error) = fs::rename(&incoming, &staged) {
        let _ = fs::remove_dir_all(&incoming);
        if !staged.is_dir() {
            return Err(cannot("stage", &staged, error));
        }
    }
    Ok(staged)
}

/// The version of data known only by a listing (key, size and checksum or
/// ETag of each object), for data that lives in object storage already.
#[derive(Default)]
pub struct ListingHasher {
    entries: Vec<(String, u64, String)>,
}

impl ListingHasher {
    pub fn add(&mut self, key: &str, size: u64, checksum: &str) {
        self.entries.push((key.to_owned(), size, checksum.trim_matches('"').to_owned()));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `s3l:HASH` (the prefix says it comes from a listing, not the bytes) and the total size.
    pub fn finish(mut self) -> (String, u64) {
        self.entries.sort();
        let mut hasher = blake3::Hasher::new();
        let mut total = 0;
        for (key, size, checksum) in &self.entries {
            hasher.update(key.as_bytes());
            hasher.update(&[0]);
            hasher.update(&size.to_le_bytes());
            hasher.update(checksum.as_bytes());
            hasher.update(&[0]);
            total += size;
        }
        (format!("s3l:{}", hasher.finalize().to_hex()), total)
    }
}

/// A name safe in paths and object keys for a resource address:
/// `module.a.dataset.b["x"]` becomes `module.a.dataset.b__x` (each character
/// other than a letter, digit, `.`, `-` or `_` is `_`; ends are trimmed). The result is
/// always one ordinary path component: never empty, never `.` or `..`, never
/// hidden.
pub fn storage_name(address: &str) -> String {
    let name = address
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() || matches!(character, '.' | '-' | '_') { character } else { '_' })
        .collect::<String>()
        .trim_matches('_')
        .to_owned();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

pub use mlops_provider_support::short_version;

/// The first 32 hex digits of a content version: the name of its storage folder.
pub fn short_hash(version: &str) -> &str {
    let hash = version.strip_prefix("b3:").unwrap_or(version);
    &hash[..hash.len().min(32)]
}

/// The data files under `path` (itself, if a file), sorted, hidden files skipped.
pub fn data_files(path: &Path) -> ProviderResult<Vec<PathBuf>> {
    Ok(files_under(path, HiddenFiles::Skipped)?.into_iter().map(|(_, file)| file).collect())
}

/// Size and modification time of every file: a cheap stamp that lets a
/// plan skip re-hashing unchanged data.
pub fn stamp(root: &Path, files: &[PathBuf]) -> ProviderResult<Json> {
    let mut stamp = serde_json::Map::new();
    for file in files {
        let metadata = fs::metadata(file).map_err(|error| unreadable(file, &error))?;
        let modified =
            metadata.modified().ok().and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |time| time.as_nanos());
        stamp.insert(relative_name(root, file), serde_json::json!([metadata.len(), modified.to_string()]));
    }
    Ok(Json::Object(stamp))
}

pub fn relative_name(root: &Path, file: &Path) -> String {
    if root == file {
        return file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    }
    file.strip_prefix(root).unwrap_or(file).to_string_lossy().replace('\\', "/")
}

/// A local source's content at apply: its version, its size, and the stamp
/// (sizes and modification times) the version belongs to.
#[derive(Debug, Clone)]
pub struct HashedSource {
    pub version: String,
    pub size: u64,
    /// Each file's hash, by its relative name.
    pub files: FileHashes,
    stamp: Json,
}

/// The version and size of the files for an apply, which must be the
/// version its plan showed: what the plan computed when the files' stamps
/// are still those it hashed, else hashed again, and refused when the
/// content differs. A reviewed plan is never applied to other data.
pub fn content_hash_for_apply(root: &Path, files: &[PathBuf], planned_private: &Json) -> ProviderResult<HashedSource> {
    let stamp = stamp(root, files)?;
    let planned_version = planned_private.get("version").and_then(Json::as_str);
    let planned_files: Option<FileHashes> = planned_private.get("files").and_then(|files| serde_json::from_value(files.clone()).ok());
    let planned = (planned_version, planned_private.get("size_bytes").and_then(Json::as_u64), planned_private.get("stamp"), planned_files);
    let (version, size, file_hashes) = match planned {
        (Some(version), Some(size), Some(planned_stamp), Some(file_hashes)) if *planned_stamp == stamp => {
            (version.to_owned(), size, file_hashes)
        }
        _ => {
            let hashed = content_hash_by_file(root, files)?;
            (hashed.version, hashed.size, hashed.files)
        }
    };
    if let Some(planned) = planned_version.filter(|planned| *planned != version) {
        return Err(ProviderError::with_help(
            format!(
                "the data at `{}` changed since the plan was made: the plan showed version {}, the files are now version {}",
                root.display(),
                short_version(planned),
                short_version(&version)
            ),
            "nothing was stored; run `mlops plan` again and review the new version",
        ));
    }
    Ok(HashedSource { version, size, files: file_hashes, stamp })
}

impl HashedSource {
    /// Once the files are stored: an error when they changed meanwhile, so
    /// that what was stored may not be what was hashed.
    pub fn check_unchanged(&self, root: &Path, files: &[PathBuf]) -> ProviderResult<()> {
        if stamp(root, files)? == self.stamp {
            return Ok(());
        }
        Err(ProviderError::with_help(
            format!("the data at `{}` changed while it was being stored", root.display()),
            "what was stored is discarded; wait until the data is written, then run `mlops plan` again",
        ))
    }

    /// What the provider keeps in its private state so that the next plan
    /// need not hash unchanged files again: the stamp and each file's hash.
    pub fn private(&self) -> serde_json::Map<String, Json> {
        let mut private = serde_json::Map::new();
        private.insert("stamp".to_owned(), self.stamp.clone());
        private.insert("files".to_owned(), serde_json::to_value(&self.files).unwrap_or(Json::Null));
        private
    }
}

/// The BLAKE3 content hash of the files (names included, so a rename is a
/// new version), and their total size.
pub fn content_hash(root: &Path, files: &[PathBuf]) -> ProviderResult<(String, u64)> {
    content_hash_by_file(root, files).map(|hashed| (hashed.version, hashed.size))
}

/// Each file's BLAKE3 hash, by its name relative to the source (hex).
pub type FileHashes = std::collections::BTreeMap<String, String>;

/// The content version of a source, with the hash of each of its files.
#[derive(Debug, Clone)]
pub struct ContentHash {
    pub version: String,
    pub size: u64,
    pub files: FileHashes,
}

/// [`content_hash`], keeping the hash of each file: a store that already
/// holds a file (under an older version) is asked to copy it rather than
/// sent it again.
pub fn content_hash_by_file(root: &Path, files: &[PathBuf]) -> ProviderResult<ContentHash> {
    // Many small files cost system calls more than hashing: several at once.
    let workers = std::thread::available_parallelism().map_or(1, |count| count.get()).min(files.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut hashes: Vec<Option<ProviderResult<(blake3::Hash, u64)>>> = (0..files.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(file) = files.get(index) else { break };
                        done.push((index, hash_file(file)));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            for (index, result) in handle.join().unwrap_or_default() {
                hashes[index] = Some(result);
            }
        }
    });
    let mut whole = blake3::Hasher::new();
    let mut total = 0u64;
    let mut by_file = FileHashes::new();
    for (file, hash) in files.iter().zip(hashes) {
        let (hash, length) = hash.unwrap_or_else(|| Err(ProviderError::failed(format!("cannot hash `{}`", file.display()))))?;
        total += length;
        let name = relative_name(root, file);
        whole.update(&(name.len() as u64).to_le_bytes());
        whole.update(name.as_bytes());
        whole.update(hash.as_bytes());
        by_file.insert(name, hash.to_hex().to_string());
    }
    Ok(ContentHash { version: format!("b3:{}", whole.finalize().to_hex()), size: total, files: by_file })
}

/// Checks that the data staged in `directory` is `expected`: the content
/// version of a source (`b3:` over the files and their names), or the
/// BLAKE3 of a single file (a feature set's version). Listing versions
/// (`s3l:`) are checked by the store that lists them.
pub fn verify_version(directory: &Path, expected: &str, what: &str) -> ProviderResult<()> {
    if !expected.starts_with("b3:") {
        return Ok(());
    }
    let files = data_files(directory)?;
    let hashed = content_hash_by_file(directory, &files)?;
    let single = match hashed.files.values().collect::<Vec<_>>().as_slice() {
        [only] => Some(format!("b3:{only}")),
        _ => None,
    };
    if hashed.version == expected || single.as_deref() == Some(expected) {
        return Ok(());
    }
    Err(ProviderError::with_help(
        format!(
            "{what} does not hold the version that was recorded: it should be {}, it is {}; it was changed outside mlops",
            short_version(expected),
            short_version(&hashed.version)
        ),
        "nothing was computed from it; run `mlops plan`: refresh shows what changed, and apply stores the recorded data again",
    ))
}
/// One file's BLAKE3 hash and length.
fn hash_file(file: &Path) -> ProviderResult<(blake3::Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let handle = fs::File::open(file).map_err(|error| unreadable(file, &error))?;
    let length = handle.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    if length > 16 * 1024 * 1024 {
        // Mapped a window at a time and hashed on every core: no copy, and
        // only a window counts as this process's memory (mapping the whole
        // file would count all of it).
        const WINDOW: u64 = 64 * 1024 * 1024;
        let mut offset = 0;
        while offset < length {
            let size = WINDOW.min(length - offset);
            // SAFETY: the map is read-only and dropped before the next one. A
            // file changed while it is hashed yields a hash of neither
            // version, as any reader would; the stamp check catches it next time.
            let window = unsafe { memmap2::MmapOptions::new().offset(offset).len(size as usize).map(&handle) }
                .map_err(|error| unreadable(file, &error))?;
            let _ = window.advise(memmap2::Advice::Sequential);
            hasher.update_rayon(&window);
            offset += size;
        }
    } else {
        hasher.update_reader(handle).map_err(|error| unreadable(file, &error))?;
    }
    Ok((hasher.finalize(), length))
}

/// One declared column.
#[derive(Debug, Clone, Default)]
pub struct Column {
    pub name: String,
    pub column_type: String,
    pub nullable: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub allowed: Option<Vec<String>>,
}

/// A duration attribute in microseconds (`None` when not set), as the
/// compiler's reader parsed it.
pub(crate) fn duration_micros(value: Option<&Value>, what: &str) -> ProviderResult<Option<i64>> {
    match value.filter(|value| !value.is_null()) {
        Some(value) => value
            .as_duration()
            .map(|duration| Some(duration.as_micros() as i64))
            .ok_or_else(|| ProviderError::failed(format!("{what} is {value}, not a parsed duration"))),
        None => Ok(None),
    }
}

/// The columns of a dataset's `schema` block, in declaration order: from
/// its configuration, or from a reference to it.
pub fn columns_of(dataset: &Value) -> Option<Vec<Column>> {
    columns_in_schema(dataset.get("schema")?)
}

/// The columns of a dataset's `schema` block, from its configuration.
pub fn configured_columns(config: &mlops_provider_api::Configuration) -> Option<Vec<Column>> {
    columns_in_schema(config.get("schema")?)
}

fn columns_in_schema(schema: &Value) -> Option<Vec<Column>> {
    let columns = schema.get("column")?.as_object()?;
    Some(
        columns
            .iter()
            .map(|(name, column)| Column {
                name: name.clone(),
                column_type: column.get("type").and_then(Value::as_str).unwrap_or("string").to_owned(),
                nullable: column.get("nullable").and_then(Value::as_bool).unwrap_or(false),
                min: column.get("min").and_then(Value::as_f64),
                max: column.get("max").and_then(Value::as_f64),
                allowed: column
                    .get("allowed")
                    .and_then(Value::as_array)
                    .map(|values| values.iter().filter_map(|value| value.as_str().map(str::to_owned)).collect()),
            })
            .collect(),
    )
}

pub type Row = BTreeMap<String, Json>;

/// Checks every row of the files against `columns` and counts them, as
/// [`for_each_row`] with a visitor that does nothing, but without building
/// the rows: storing a large dataset is not held up by its validation.
/// `stop` is polled so that a caller can give up early.
pub fn validate_rows(
    files: &[PathBuf],
    format: &str,
    columns: Option<&[Column]>,
    stop: &std::sync::atomic::AtomicBool,
) -> ProviderResult<usize> {
    if format != "csv" {
        return for_each_row(files, format, columns, |_, _, _| {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ProviderError::Interrupted);
            }
            Ok(())
        });
    }
    let mut count = 0;
    for file in files {
        if let Some(result) = validate_plain_csv(file, columns, stop) {
            count += result?;
            continue;
        }
        let (mut reader, headers) = open_csv(file, columns)?;
        // Each field's checks, found once rather than per row.
        let field_checks = FieldCheck::for_headers(headers.iter().map(String::as_str), columns);
        let mut record = csv::StringRecord::new();
        let mut line = 1;
        loop {
            line += 1;
            let more = reader
                .read_record(&mut record)
                .map_err(|error| ProviderError::failed(format!("`{}` line {line}: {error}", file.display())))?;
            if !more {
                break;
            }
            let valid = record.iter().zip(&field_checks).all(|(field, check)| check.is_none_or(|check| check.accepts(field)));
            if !valid {
                // The slow path says exactly what is wrong, in the same words as for_each_row.
                let mut row = Row::new();
                for (header, (field, check)) in headers.iter().zip(record.iter().zip(&field_checks)) {
                    let value = type_field(field, check.map(|check| check.column))
                        .map_err(|message| row_error(file, &format!("line {line}"), header, &message))?;
                    row.insert(header.clone(), value);
                }
                if let Some(columns) = columns {
                    validate_row(&row, columns).map_err(|(column, message)| row_error(file, &format!("line {line}"), &column, &message))?;
                }
            }
            count += 1;
            if count % 65_536 == 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ProviderError::Interrupted);
            }
        }
    }
    Ok(count)
}

/// A CSV reader past the header, and the header's names (trimmed), checked
/// to hold every declared column.
pub(crate) fn open_csv(file: &Path, columns: Option<&[Column]>) -> ProviderResult<(csv::Reader<fs::File>, Vec<String>)> {
    let handle = fs::File::open(file).map_err(|error| unreadable(file, &error))?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).buffer_capacity(1 << 20).from_reader(handle);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|error| ProviderError::failed(format!("`{}` is not valid CSV: {error}", file.display())))?
        .iter()
        .map(|header| header.trim().to_owned())
        .collect();
    if let Some(missing) = columns.into_iter().flatten().find(|column| !headers.contains(&column.name)) {
        return Err(ProviderError::with_help(
            format!("`{}` has no column `{}` (its header is: {})", file.display(), missing.name, shown(&headers.join(", "))),
            "fix the file's header, or the dataset's schema",
        ));
    }
    Ok((reader, headers))
}

/// The fast path of [`validate_rows`] for the common CSV: no quotes, no
/// carriage returns, no empty lines, every row as wide as the header.
/// There, a line is a record and a comma a separator, so splitting bytes
/// is exact. Returns the row count when the whole file is such CSV and every
/// field is valid; `None` when anything is unusual or wrong, and the caller
/// reads the file with the CSV parser, which also words any error.
fn validate_plain_csv(file: &Path, columns: Option<&[Column]>, stop: &std::sync::atomic::AtomicBool) -> Option<ProviderResult<usize>> {
    let mut handle = fs::File::open(file).ok()?;
    let mut buffer = vec![0u8; 4 * 1024 * 1024];
    let mut filled = 0;
    let mut field_checks: Option<Vec<Option<FieldCheck>>> = None;
    let mut count = 0usize;
    let mut at_end = false;
    while !at_end {
        if filled == buffer.len() {
            // A line longer than the buffer: leave it to the parser.
            return None;
        }
        match handle.read(&mut buffer[filled..]) {
            Ok(0) => at_end = true,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
        // Whole lines only; the rest waits for the next read.
        let complete = if at_end {
            filled
        } else {
            match memchr::memrchr(b'\n', &buffer[..filled]) {
                Some(position) => position + 1,
                None => continue,
            }
        };
        let region = &buffer[..complete];
        if memchr::memchr2(b'"', b'\r', region).is_some() {
            return None;
        }
        let mut text = std::str::from_utf8(region).ok()?;
        if field_checks.is_none() {
            if text.starts_with('\u{feff}') {
                return None;
            }
            let (header, rest) = text.split_once('\n').unwrap_or((text, ""));
            let headers: Vec<&str> = header.split(',').map(str::trim).collect();
            // A declared column missing from the header: the parser's error says which.
            if header.is_empty() || columns.is_some_and(|columns| columns.iter().any(|column| !headers.contains(&column.name.as_str()))) {
                return None;
            }
            field_checks = Some(FieldCheck::for_headers(headers.into_iter(), columns));
            text = rest;
        }
        count += plain_csv_rows(text, field_checks.as_deref().unwrap_or_default())?;
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(Err(ProviderError::Interrupted));
        }
        buffer.copy_within(complete..filled, 0);
        filled -= complete;
    }
    field_checks.is_some().then_some(Ok(count))
}

/// The rows in `text` (whole lines, the last one maybe without its line
/// end), when every line is as wide as `checks` and every field passes.
fn plain_csv_rows(text: &str, checks: &[Option<FieldCheck>]) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut rows, mut field, mut field_start, mut line_start) = (0, 0, 0, 0);
    let unterminated = (!bytes.is_empty() && !bytes.ends_with(b"\n")).then_some(bytes.len());
    for position in memchr::memchr2_iter(b',', b'\n', bytes).chain(unterminated) {
        let check = checks.get(field)?;
        if check.is_some_and(|check| !check.accepts(&text[field_start..position])) {
            return None;
        }
        field += 1;
        field_start = position + 1;
        if position == bytes.len() || bytes[position] == b'\n' {
            // An empty line is skipped by the parser, not a row: leave it to it.
            if field != checks.len() || position == line_start {
                return None;
            }
            rows += 1;
            field = 0;
            line_start = position + 1;
        }
    }
    Some(rows)
}

/// A column's checks, decided once per file rather than per field.
#[derive(Clone, Copy)]
struct FieldCheck<'a> {
    column: &'a Column,
    kind: FieldKind,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldKind {
    Int,
    Float,
    Bool,
    Text,
    Timestamp,
    Unchecked,
}

impl<'a> FieldCheck<'a> {
    fn new(column: &'a Column) -> FieldCheck<'a> {
        let kind = match column.column_type.as_str() {
            "int" => FieldKind::Int,
            "float" => FieldKind::Float,
            "bool" => FieldKind::Bool,
            "string" => FieldKind::Text,
            "timestamp" => FieldKind::Timestamp,
            _ => FieldKind::Unchecked,
        };
        FieldCheck { column, kind }
    }

    /// For each field of a header, its column's checks, if it has a column.
    fn for_headers<'h>(headers: impl Iterator<Item = &'h str>, columns: Option<&'a [Column]>) -> Vec<Option<FieldCheck<'a>>> {
        headers.map(|header| columns.and_then(|columns| columns.iter().find(|column| column.name == header)).map(FieldCheck::new)).collect()
    }

    /// Whether a CSV field certainly passes the column's checks. It may
    /// answer false for a valid field (the caller then asks the slow path),
    /// never true for an invalid one.
    fn accepts(&self, field: &str) -> bool {
        let column = self.column;
        let trimmed = field.trim_ascii();
        if trimmed.is_empty() {
            return column.nullable && field.trim().is_empty();
        }
        let in_range = |number: f64| column.min.is_none_or(|min| number >= min) && column.max.is_none_or(|max| number <= max);
        match self.kind {
            FieldKind::Int => parse_plain_integer(trimmed.as_bytes()).is_some_and(|number| in_range(number as f64)),
            FieldKind::Float => parse_plain_decimal(trimmed.as_bytes())
                .or_else(|| trimmed.parse::<f64>().ok())
                .is_some_and(|number| number.is_finite() && in_range(number)),
            FieldKind::Bool => matches!(trimmed.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "false" | "0" | "no"),
            FieldKind::Text => column.allowed.as_ref().is_none_or(|allowed| allowed.iter().any(|value| value == field)),
            FieldKind::Timestamp => mlops_units::parse_timestamp_micros(trimmed).is_some(),
            FieldKind::Unchecked => true,
        }
    }
}

/// A decimal like `-123.45` with at most 15 digits: its integer mantissa is
/// exact in an f64 and so is the power of ten, and one division rounds
/// correctly, so this is exactly what `str::parse::<f64>` gives. Anything
/// else is `None`.
pub(crate) fn parse_plain_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0;
    let mut decimals: Option<i32> = None;
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                count += 1;
                if let Some(decimals) = &mut decimals {
                    *decimals += 1;
                }
            }
            b'.' if decimals.is_none() => decimals = Some(0),
            _ => return None,
        }
    }
    if count == 0 || count > 15 {
        return None;
    }
    const POWERS_OF_TEN: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    let value = mantissa as f64 / POWERS_OF_TEN[decimals.unwrap_or(0) as usize];
    Some(if negative { -value } else { value })
}

/// An integer of at most 18 digits with an optional sign: what almost every
/// integer field is. Anything else is `None` (and goes the slow way).
pub(crate) fn parse_plain_integer(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(byte - b'0');
    }
    Some(if negative { -value } else { value })
}

/// Reads every row of the files, typed by `columns` when given.
/// `format` is csv or jsonl; the row visitor may stop early by returning an error.
pub fn for_each_row(
    files: &[PathBuf],
    format: &str,
    columns: Option<&[Column]>,
    mut visit: impl FnMut(&Path, usize, Row) -> ProviderResult<()>,
) -> ProviderResult<usize> {
    let mut count = 0;
    for file in files {
        match format {
            "csv" => {
                let (mut reader, headers) = open_csv(file, columns)?;
                for (index, record) in reader.records().enumerate() {
                    let line = index + 2;
                    let record = record.map_err(|error| ProviderError::failed(format!("`{}` line {line}: {error}", file.display())))?;
                    let mut row = Row::new();
                    for (header, field) in headers.iter().zip(record.iter()) {
                        let column = columns.and_then(|columns| columns.iter().find(|column| &column.name == header));
                        let value =
                            type_field(field, column).map_err(|message| row_error(file, &format!("line {line}"), header, &message))?;
                        row.insert(header.clone(), value);
                    }
                    if let Some(columns) = columns {
                        validate_row(&row, columns)
                            .map_err(|(column, message)| row_error(file, &format!("line {line}"), &column, &message))?;
                    }
                    count += 1;
                    visit(file, line, row)?;
                }
            }
            "jsonl" => {
                let handle = fs::File::open(file).map_err(|error| unreadable(file, &error))?;
                for (index, line_text) in BufReader::new(handle).lines().enumerate() {
                    let line = index + 1;
                    let line_text = line_text.map_err(|error| unreadable(file, &error))?;
                    if line_text.trim().is_empty() {
                        continue;
                    }
                    let row = json_line_row(file, line, &line_text, columns)?;
                    count += 1;
                    visit(file, line, row)?;
                }
            }
            "parquet" => {
                use parquet::file::reader::{FileReader, SerializedFileReader};
                let not_parquet = |error: parquet::errors::ParquetError| {
                    ProviderError::with_help(
                        format!("`{}` is not a readable Parquet file: {error}", file.display()),
                        "check the file, or the dataset's `format`",
                    )
                };
                let reader = SerializedFileReader::try_from(file.as_path()).map_err(not_parquet)?;
                let present: Vec<String> =
                    reader.metadata().file_metadata().schema_descr().columns().iter().map(|column| column.name().to_owned()).collect();
                if let Some(columns) = columns {
                    for column in columns {
                        if !present.contains(&column.name) {
                            return Err(ProviderError::with_help(
                                format!("`{}` has no column `{}` (its columns are: {})", file.display(), column.name, present.join(", ")),
                                "fix the file, or the dataset's schema",
                            ));
                        }
                    }
                }
                for (index, row) in reader.get_row_iter(None).map_err(not_parquet)?.enumerate() {
                    let line = index + 1;
                    let row = row.map_err(not_parquet)?;
                    let row: Row = row.get_column_iter().map(|(name, field)| (name.clone(), parquet_field(field))).collect();
                    if let Some(columns) = columns {
                        validate_row(&row, columns)
                            .map_err(|(column, message)| row_error(file, &format!("row {line}"), &column, &message))?;
                    }
                    count += 1;
                    visit(file, line, row)?;
                }
            }
            other => return Err(ProviderError::failed(format!("unknown dataset format `{other}`"))),
        }
    }
    Ok(count)
}

/// One line of a JSON Lines file as a row: an object whose declared
/// columns are typed (numbers and booleans written as strings are read)
/// and checked against the schema.
pub(crate) fn json_line_row(file: &Path, line: usize, text: &str, columns: Option<&[Column]>) -> ProviderResult<Row> {
    let value: Json = serde_json::from_str(text)
        .map_err(|error| ProviderError::failed(format!("`{}` line {line} is not a JSON object: {error}", file.display())))?;
    let Json::Object(object) = value else {
        return Err(ProviderError::failed(format!("`{}` line {line} is not a JSON object", file.display())));
    };
    let mut row: Row = object.into_iter().collect();
    if let Some(columns) = columns {
        for column in columns {
            if let Some(Json::String(text)) = row.get(&column.name) {
                if column.column_type != "string" && column.column_type != "timestamp" {
                    let typed = type_field(text, Some(column))
                        .map_err(|message| row_error(file, &format!("line {line}"), &column.name, &message))?;
                    row.insert(column.name.clone(), typed);
                }
            }
        }
        validate_row(&row, columns).map_err(|(column, message)| row_error(file, &format!("line {line}"), &column, &message))?;
    }
    Ok(row)
}

/// A Parquet value as JSON: numbers, booleans and text as themselves,
/// dates, times and nested values as their text form.
fn parquet_field(field: &parquet::record::Field) -> Json {
    use parquet::record::Field;
    match field {
        Field::Null => Json::Null,
        Field::Bool(flag) => Json::Bool(*flag),
        Field::Byte(number) => Json::from(*number),
        Field::Short(number) => Json::from(*number),
        Field::Int(number) => Json::from(*number),
        Field::Long(number) => Json::from(*number),
        Field::UByte(number) => Json::from(*number),
        Field::UShort(number) => Json::from(*number),
        Field::UInt(number) => Json::from(*number),
        Field::ULong(number) => Json::from(*number),
        Field::Float(number) => json_number(f64::from(*number)),
        Field::Double(number) => json_number(*number),
        Field::Str(text) => Json::String(text.clone()),
        other => Json::String(other.to_string()),
    }
}

/// `position` is `line N` in text formats and `row N` in Parquet.
/// A value from the data as a message shows it: cut to 80 characters, with
/// control characters escaped. A bad row of a file that is not what it
/// seems (`/proc/self/environ`, a binary blob) must not flood the terminal
/// or print what it holds.
pub(crate) fn shown(text: &str) -> String {
    const SHOWN: usize = 80;
    let escaped: String = text
        .chars()
        .take(SHOWN)
        .flat_map(|character| {
            let escaped: Vec<char> = if character.is_control() { character.escape_default().collect() } else { vec![character] };
            escaped
        })
        .collect();
    let total = text.chars().count();
    if total > SHOWN {
        format!("{escaped}… ({} more characters)", total - SHOWN)
    } else {
        escaped
    }
}

pub(crate) fn row_error(file: &Path, position: &str, column: &str, message: &str) -> ProviderError {
    ProviderError::with_help(
        format!("`{}` {position}, column `{column}`: {message}", file.display()),
        "the data does not match the dataset's schema: fix the data, or the schema",
    )
}

/// A CSV field as a typed JSON value. Empty fields are null.
pub(crate) fn type_field(field: &str, column: Option<&Column>) -> Result<Json, String> {
    let trimmed = field.trim();
    if trimmed.is_empty() {
        return Ok(Json::Null);
    }
    let Some(column) = column else {
        // No schema: numbers and booleans where they look like them.
        if let Ok(number) = trimmed.parse::<f64>() {
            return Ok(json_number(number));
        }
        return Ok(match trimmed {
            "true" | "True" | "TRUE" => Json::Bool(true),
            "false" | "False" | "FALSE" => Json::Bool(false),
            _ => Json::String(field.to_owned()),
        });
    };
    match column.column_type.as_str() {
        "int" => trimmed.parse::<i64>().map(|number| Json::Number(number.into())).or_else(|_| match trimmed.parse::<f64>() {
            Ok(number) if number.fract() == 0.0 => Ok(Json::Number((number as i64).into())),
            _ => Err(format!("`{}` is not a whole number", shown(field))),
        }),
        "float" => trimmed
            .parse::<f64>()
            .ok()
            .filter(|number| number.is_finite())
            .map(json_number)
            .ok_or_else(|| format!("`{}` is not a number", shown(field))),
        "bool" => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Json::Bool(true)),
            "false" | "0" | "no" => Ok(Json::Bool(false)),
            _ => Err(format!("`{}` is not a boolean (true/false)", shown(field))),
        },
        _ => Ok(Json::String(field.to_owned())),
    }
}

pub(crate) fn json_number(number: f64) -> Json {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Json::Number((number as i64).into())
    } else {
        serde_json::Number::from_f64(number).map_or(Json::Null, Json::Number)
    }
}

pub(crate) fn validate_row(row: &Row, columns: &[Column]) -> Result<(), (String, String)> {
    for column in columns {
        let value = row.get(&column.name).unwrap_or(&Json::Null);
        if value.is_null() {
            if !column.nullable {
                return Err((column.name.clone(), "the value is missing and the column is not nullable".to_owned()));
            }
            continue;
        }
        match column.column_type.as_str() {
            "int" | "float" => {
                let Some(number) = value.as_f64() else {
                    return Err((column.name.clone(), format!("{} is not a number", shown(&value.to_string()))));
                };
                if column.column_type == "int" && number.fract() != 0.0 {
                    return Err((column.name.clone(), format!("{value} is not a whole number")));
                }
                if let Some(min) = column.min.filter(|min| number < *min) {
                    return Err((column.name.clone(), format!("{value} is below the minimum {min}")));
                }
                if let Some(max) = column.max.filter(|max| number > *max) {
                    return Err((column.name.clone(), format!("{value} is above the maximum {max}")));
                }
            }
            "bool" if !value.is_boolean() => return Err((column.name.clone(), format!("{} is not a boolean", shown(&value.to_string())))),
            "timestamp" if value.as_str().is_none_or(|text| mlops_units::parse_timestamp_micros(text).is_none()) => {
                return Err((
                    column.name.clone(),
                    format!(
                        "{} is not a timestamp (RFC 3339 such as 2026-11-27T09:30:00Z, a date and time, or a date)",
                        shown(&value.as_str().map_or_else(|| value.to_string(), |text| format!("`{text}`")))
                    ),
                ));
            }
            "string" => {
                let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
                if let Some(allowed) = &column.allowed {
                    if !allowed.contains(&text) {
                        return Err((column.name.clone(), format!("`{}` is not one of {}", shown(&text), allowed.join(", "))));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Copies `files` (named relative to `root`) into `destination`, through a
/// temporary directory renamed into place, so a crash leaves no partial copy.
pub fn store_files(root: &Path, files: &[PathBuf], destination: &Path) -> ProviderResult<()> {
    if destination.exists() {
        return Ok(());
    }
    let parent = destination.parent().ok_or_else(|| ProviderError::failed("invalid destination"))?;
    fs::create_dir_all(parent).map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", parent.display())))?;
    let staging = parent.join(format!(".staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    for file in files {
        let target = staging.join(relative_name(root, file));
        if let Some(directory) = target.parent() {
            fs::create_dir_all(directory)
                .map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", directory.display())))?;
        }
        fs::copy(file, &target).map_err(|error| ProviderError::failed(format!("cannot copy `{}`: {error}", file.display())))?;
    }
    fs::rename(&staging, destination)
        .map_err(|error| ProviderError::failed(format!("cannot store `{}`: {error}", destination.display())))?;
    Ok(())
}

/// Reads a whole file as text (for small files such as metrics).
/// A small text file a run writes (its metrics): at most `limit` bytes, and
/// a regular file (a FIFO left there would block the apply forever).
pub fn read_text(path: &Path, limit: u64) -> ProviderResult<String> {
    let metadata = fs::metadata(path).map_err(|error| unreadable(path, &error))?;
    if !metadata.is_file() {
        return Err(ProviderError::failed(format!("`{}` is not a regular file", path.display())));
    }
    let mut bytes = Vec::new();
    fs::File::open(path).and_then(|file| file.take(limit + 1).read_to_end(&mut bytes)).map_err(|error| unreadable(path, &error))?;
    if bytes.len() as u64 > limit {
        return Err(ProviderError::with_help(
            format!("`{}` is larger than the {limit} bytes mlops reads", path.display()),
            "a metrics file is one small JSON object of metric name to number",
        ));
    }
    String::from_utf8(bytes).map_err(|_| ProviderError::failed(format!("`{}` is not UTF-8 text", path.display())))
}

/// Helpers for tests of providers and of the engine that need data files.
/// They panic on failure, as test helpers do; nothing else uses them.
pub mod testing {
    use std::fs;
    use std::path::Path;

    /// Writes a Parquet file with an optional int64 column `age` and a
    /// required double column `amount`.
    pub fn write_parquet(path: &Path, ages: &[Option<i64>], amounts: &[f64]) {
        use parquet::data_type::{DoubleType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        let schema = std::sync::Arc::new(
            parquet::schema::parser::parse_message_type("message rows { OPTIONAL INT64 age; REQUIRED DOUBLE amount; }").unwrap(),
        );
        let file = fs::File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, std::sync::Arc::new(WriterProperties::builder().build())).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let values: Vec<i64> = ages.iter().flatten().copied().collect();
        let levels: Vec<i16> = ages.iter().map(|age| i16::from(age.is_some())).collect();
        column.typed::<Int64Type>().write_batch(&values, Some(&levels), None).unwrap();
        column.close().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column.typed::<DoubleType>().write_batch(amounts, None, None).unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_typed_and_checked_against_the_schema() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("data.csv");
        fs::write(&file, "id,amount,age,ok\na,1.5,30,true\nb,2,,false\n").unwrap();
        let columns = vec![
            Column { name: "id".into(), column_type: "string".into(), ..Column::default() },
            Column { name: "amount".into(), column_type: "float".into(), min: Some(0.0), ..Column::default() },
            Column { name: "age".into(), column_type: "int".into(), nullable: true, ..Column::default() },
            Column { name: "ok".into(), column_type: "bool".into(), ..Column::default() },
        ];
        let mut rows = Vec::new();
        let count = for_each_row(std::slice::from_ref(&file), "csv", Some(&columns), |_, _, row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 2);
        assert_eq!(rows[1]["age"], Json::Null);
        assert_eq!(rows[0]["ok"], Json::Bool(true));

        fs::write(&file, "id,amount,age,ok\na,-1,30,true\n").unwrap();
        let error = for_each_row(std::slice::from_ref(&file), "csv", Some(&columns), |_, _, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("line 2, column `amount`: -1 is below the minimum 0"), "{error}");
    }

    /// The fast validation must accept and refuse exactly what reading the
    /// rows does, with the same message.
    #[test]
    fn validating_without_building_rows_agrees_with_reading_them() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("data.csv");
        let columns = vec![
            Column { name: "id".into(), column_type: "string".into(), allowed: Some(vec!["a".into(), "b".into()]), ..Column::default() },
            Column { name: "amount".into(), column_type: "float".into(), min: Some(0.0), max: Some(10.0), ..Column::default() },
            Column { name: "age".into(), column_type: "int".into(), nullable: true, max: Some(150.0), ..Column::default() },
            Column { name: "ok".into(), column_type: "bool".into(), ..Column::default() },
            Column { name: "at".into(), column_type: "timestamp".into(), ..Column::default() },
        ];
        let header = "id,amount,age,ok,at\n";
        let cases = [
            "a,1.5,30,true,2026-01-01\nb,2,,no,2026-01-02\n",
            "a,1.5,30.0,TRUE,x\n",
            "a,-1,30,true,x\n",
            "a,11,30,true,x\n",
            "c,1,30,true,x\n",
            "a,1,151,true,x\n",
            "a,1,30.5,true,x\n",
            "a,,30,true,x\n",
            "a,nan,30,true,x\n",
            "a,1,30,maybe,x\n",
            "a,1,30,true,\n",
            "a,1,30\n",
            "a,1,30,true,x",
            "a,1,30,true,x\r\nb,2,31,false,y\r\n",
            "\"a\",1,30,true,\"x,y\"\n",
            "a,1,30,true,x\n\nb,2,31,false,y\n",
            "a,1,30,true,x,extra\n",
            "",
        ];
        let never = std::sync::atomic::AtomicBool::new(false);
        for case in cases {
            fs::write(&file, format!("{header}{case}")).unwrap();
            let slow =
                for_each_row(std::slice::from_ref(&file), "csv", Some(&columns), |_, _, _| Ok(())).map_err(|error| error.to_string());
            let fast = validate_rows(std::slice::from_ref(&file), "csv", Some(&columns), &never).map_err(|error| error.to_string());
            assert_eq!(fast, slow, "for {case:?}");
        }
        // Lines that straddle the fast path's 4 MiB reads.
        let rows: String =
            (0..300_000).map(|row| format!("a,{}.5,{},true,2026-01-01T00:00:{:02}\n", row % 10, row % 150, row % 60)).collect();
        assert!(rows.len() > 9 * 1024 * 1024);
        fs::write(&file, format!("{header}{rows}")).unwrap();
        let slow = for_each_row(std::slice::from_ref(&file), "csv", Some(&columns), |_, _, _| Ok(())).unwrap();
        assert_eq!(validate_rows(std::slice::from_ref(&file), "csv", Some(&columns), &never).unwrap(), slow);
        assert_eq!(slow, 300_000);
    }

    #[test]
    fn plain_numbers_parse_exactly_as_the_standard_parser() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let digits = 1 + next() % 15;
            let mut text: String = (0..digits).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
            if next() % 2 == 0 {
                text.insert((next() % (digits + 1)) as usize, '.');
            }
            if next() % 3 == 0 {
                text.insert(0, '-');
            }
            assert_eq!(parse_plain_decimal(text.as_bytes()), text.parse::<f64>().ok(), "{text}");
            if !text.contains('.') {
                assert_eq!(parse_plain_integer(text.as_bytes()), text.parse::<i64>().ok(), "{text}");
            }
        }
        for odd in ["", ".", "-", "1e5", "1.2.3", "0x10", "1234567890123456", " 1"] {
            assert!(parse_plain_decimal(odd.as_bytes()).is_none(), "{odd}");
        }
    }

    use crate::testing::write_parquet;

    #[test]
    fn parquet_rows_are_read_and_checked_against_the_schema() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("data.parquet");
        write_parquet(&file, &[Some(30), None, Some(70)], &[1.5, 2.0, 3.25]);
        let columns = vec![
            Column { name: "age".into(), column_type: "int".into(), nullable: true, min: Some(18.0), ..Column::default() },
            Column { name: "amount".into(), column_type: "float".into(), min: Some(0.0), ..Column::default() },
        ];
        let mut rows = Vec::new();
        let count = for_each_row(std::slice::from_ref(&file), "parquet", Some(&columns), |_, _, row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 3);
        assert_eq!(rows[0]["age"], Json::from(30));
        assert_eq!(rows[1]["age"], Json::Null);
        assert_eq!(rows[2]["amount"], Json::from(3.25));

        write_parquet(&file, &[Some(30), Some(12)], &[1.0, 2.0]);
        let error = for_each_row(std::slice::from_ref(&file), "parquet", Some(&columns), |_, _, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("row 2, column `age`: 12 is below the minimum 18"), "{error}");

        let missing = vec![Column { name: "customer".into(), column_type: "string".into(), ..Column::default() }];
        let error = for_each_row(std::slice::from_ref(&file), "parquet", Some(&missing), |_, _, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("has no column `customer` (its columns are: age, amount)"), "{error}");

        fs::write(&file, "not parquet").unwrap();
        let error = for_each_row(std::slice::from_ref(&file), "parquet", None, |_, _, _| Ok(())).unwrap_err();
        assert!(error.to_string().contains("is not a readable Parquet file"), "{error}");
    }

    #[test]
    fn a_large_file_hashed_a_window_at_a_time_is_hashed_whole() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("large.bin");
        // Past one 64 MiB window, ending mid-way through the second.
        let bytes: Vec<u8> = (0..70 * 1024 * 1024u32).map(|index| (index.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        fs::write(&file, &bytes).unwrap();
        let (hash, length) = hash_file(&file).unwrap();
        assert_eq!(length, bytes.len() as u64);
        assert_eq!(hash, blake3::hash(&bytes));
    }

    #[test]
    fn the_hash_changes_with_content_and_names() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("a.csv");
        fs::write(&file, "x\n1\n").unwrap();
        let (first, size) = content_hash(directory.path(), std::slice::from_ref(&file)).unwrap();
        assert_eq!(size, 4);
        fs::write(&file, "x\n2\n").unwrap();
        let (second, _) = content_hash(directory.path(), std::slice::from_ref(&file)).unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("b3:"));
    }
}
