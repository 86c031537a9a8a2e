//! A dataset read as batches of typed columns: CSV, JSON Lines and Parquet
//! files, typed by the declared schema and validated against it, a batch of
//! rows at a time, so that memory stays bounded by the batch size whatever
//! the dataset's size.
//!
//! The values and the errors are those of [`crate::for_each_row`]: a field
//! is typed and checked on a fast path, and a row that fails it is read
//! again the row-at-a-time way, whose words name the file, the line and the
//! column.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlops_provider_api::{ProviderError, ProviderResult};
use serde_json::Value as Json;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, StringArray};

use crate::{json_number, open_csv, parse_plain_decimal, parse_plain_integer, row_error, shown, type_field, validate_row, Column, Row};

/// Rows per batch: large enough that per-batch costs vanish, small enough
/// that a batch of a wide dataset stays a few megabytes.
pub const BATCH_ROWS: usize = 65_536;

/// One column of a batch. Declared columns have their declared type;
/// columns without one keep each value as it was read (typed the way a
/// schema-less row is).
#[derive(Debug, Clone)]
pub enum ColumnData {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    /// Strings and timestamps (kept as their text, as in rows), in one
    /// buffer: no allocation per value, and written out without a copy.
    Text(StringArray),
    Dynamic(Vec<Json>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int(values) => values.len(),
            ColumnData::Float(values) => values.len(),
            ColumnData::Bool(values) => values.len(),
            ColumnData::Text(values) => values.len(),
            ColumnData::Dynamic(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text at `index` of a text column.
    pub fn text(&self, index: usize) -> Option<&str> {
        match self {
            ColumnData::Text(values) => values.is_valid(index).then(|| values.value(index)),
            _ => None,
        }
    }

    /// The value at `index` as a row holds it.
    pub fn json(&self, index: usize) -> Json {
        match self {
            ColumnData::Int(values) => values[index].map_or(Json::Null, |number| Json::Number(number.into())),
            ColumnData::Float(values) => values[index].map_or(Json::Null, json_number),
            ColumnData::Bool(values) => values[index].map_or(Json::Null, Json::Bool),
            ColumnData::Text(_) => self.text(index).map_or(Json::Null, |text| Json::String(text.to_owned())),
            ColumnData::Dynamic(values) => values[index].clone(),
        }
    }
}

/// A column being read.
enum ColumnBuilder {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(StringBuilder),
    /// A timestamp column: its text, and the times it was checked to be,
    /// kept so that nothing reads them twice.
    Time(StringBuilder, Vec<Option<i64>>),
    Dynamic(Vec<Json>),
}

impl ColumnBuilder {
    fn for_type(column_type: &str, capacity: usize) -> ColumnBuilder {
        match column_type {
            "int" => ColumnBuilder::Int(Vec::with_capacity(capacity)),
            "float" => ColumnBuilder::Float(Vec::with_capacity(capacity)),
            "bool" => ColumnBuilder::Bool(Vec::with_capacity(capacity)),
            "timestamp" => ColumnBuilder::Time(StringBuilder::with_capacity(capacity, capacity * 20), Vec::with_capacity(capacity)),
            _ => ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 8)),
        }
    }

    /// Appends a value already typed and checked as a row holds it.
    fn push_json(&mut self, value: &Json) {
        match self {
            ColumnBuilder::Int(values) => values.push(value.as_i64().or_else(|| value.as_f64().map(|number| number as i64))),
            ColumnBuilder::Float(values) => values.push(value.as_f64()),
            ColumnBuilder::Bool(values) => values.push(value.as_bool()),
            ColumnBuilder::Text(values) => match value {
                Json::Null => values.append_null(),
                Json::String(text) => values.append_value(text),
                other => values.append_value(other.to_string()),
            },
            ColumnBuilder::Time(values, times) => match value {
                Json::String(text) => {
                    values.append_value(text);
                    times.push(mlops_units::parse_timestamp_micros(text));
                }
                _ => {
                    values.append_null();
                    times.push(None);
                }
            },
            ColumnBuilder::Dynamic(values) => values.push(value.clone()),
        }
    }

    /// The column, and the times of a timestamp column.
    fn finish(self) -> (ColumnData, Option<Vec<Option<i64>>>) {
        match self {
            ColumnBuilder::Int(values) => (ColumnData::Int(values), None),
            ColumnBuilder::Float(values) => (ColumnData::Float(values), None),
            ColumnBuilder::Bool(values) => (ColumnData::Bool(values), None),
            ColumnBuilder::Text(mut values) => (ColumnData::Text(values.finish()), None),
            ColumnBuilder::Time(mut values, times) => (ColumnData::Text(values.finish()), Some(times)),
            ColumnBuilder::Dynamic(values) => (ColumnData::Dynamic(values), None),
        }
    }
}

/// A batch being read.
struct BatchBuilder {
    file: Arc<PathBuf>,
    word: &'static str,
    numbers: Vec<u64>,
    names: Arc<[String]>,
    columns: Vec<Option<ColumnBuilder>>,
}

impl BatchBuilder {
    fn finish(self) -> Batch {
        let (columns, times) = self
            .columns
            .into_iter()
            .map(|column| match column.map(ColumnBuilder::finish) {
                Some((data, times)) => (Some(data), times),
                None => (None, None),
            })
            .unzip();
        Batch {
            file: self.file,
            rows: self.numbers.len(),
            positions: Positions { word: self.word, numbers: self.numbers },
            names: self.names,
            columns,
            times,
        }
    }
}

/// Where each row of a batch came from, for messages: `line N` of a text
/// file, `row N` of a Parquet file.
#[derive(Debug, Clone)]
pub struct Positions {
    pub word: &'static str,
    pub numbers: Vec<u64>,
}

/// Rows of one file, as columns.
#[derive(Debug, Clone)]
pub struct Batch {
    pub file: Arc<PathBuf>,
    pub positions: Positions,
    /// The names of `columns`.
    pub names: Arc<[String]>,
    /// The columns read (`None` for a wanted column the file lacks).
    pub columns: Vec<Option<ColumnData>>,
    /// For each column of declared timestamps read from text, the times
    /// (microseconds since the epoch) its values were checked to be.
    pub times: Vec<Option<Vec<Option<i64>>>>,
    pub rows: usize,
}

impl Batch {
    /// The times of the timestamp column `name`, when the reader kept them.
    pub fn times(&self, name: &str) -> Option<&[Option<i64>]> {
        let at = self.names.iter().position(|candidate| candidate == name)?;
        self.times.get(at)?.as_deref()
    }

    /// The time at `index` of the timestamp column `name`: the one the
    /// reader kept, or read from the value's text; `None` for a null (or a
    /// column the batch lacks). A value that is not a time is an error
    /// naming the file, the row and the column.
    pub fn time(&self, name: &str, index: usize) -> ProviderResult<Option<i64>> {
        if let Some(times) = self.times(name) {
            // Kept times were checked when read; a null stays null.
            return Ok(times[index]);
        }
        let Some(data) = self.names.iter().position(|candidate| candidate == name).and_then(|at| self.columns[at].as_ref()) else {
            return Ok(None);
        };
        match data.json(index) {
            Json::Null => Ok(None),
            value => value.as_str().and_then(mlops_units::parse_timestamp_micros).map(Some).ok_or_else(|| {
                ProviderError::with_help(
                    format!(
                        "`{}` {}, column `{name}`: {} is not a timestamp",
                        self.file.display(),
                        self.position(index),
                        shown_value(&value)
                    ),
                    "write times as RFC 3339 (2026-11-27T09:30:00Z), a date and time (2026-11-27 09:30:00) or a date",
                )
            }),
        }
    }

    /// [`Batch::time`] where a time is needed: a null is an error too.
    pub fn required_time(&self, name: &str, index: usize) -> ProviderResult<i64> {
        self.time(name, index)?.ok_or_else(|| {
            ProviderError::with_help(
                format!("`{}` {}, column `{name}`: the row has no time", self.file.display(), self.position(index)),
                "every row needs the time it happened: fill the column in",
            )
        })
    }

    /// `line 12` or `row 12`.
    pub fn position(&self, index: usize) -> String {
        format!("{} {}", self.positions.word, self.positions.numbers[index])
    }

    /// The row at `index` (its columns that were read), as
    /// [`crate::for_each_row`] gives it.
    pub fn row(&self, index: usize) -> Row {
        self.row_with(index, |_| true)
    }

    /// [`Batch::row`] with only the columns in `names` (those read).
    pub fn row_of(&self, index: usize, names: &[String]) -> Row {
        self.row_with(index, |name| names.iter().any(|wanted| wanted == name))
    }

    fn row_with(&self, index: usize, wanted: impl Fn(&str) -> bool) -> Row {
        self.names
            .iter()
            .zip(&self.columns)
            .filter(|(name, _)| wanted(name))
            .filter_map(|(name, column)| column.as_ref().map(|column| (name.clone(), column.json(index))))
            .collect()
    }
}

/// Which columns to read and how to type them.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    /// The columns batches hold, in order; every column of each file when
    /// `None` (then the names are per file: see [`ReadPlan::names_for`]).
    pub names: Option<Vec<String>>,
    pub declared: Option<Vec<Column>>,
    /// Whether declared columns that are not read are checked too (they
    /// need not be when every row was checked when the data was stored).
    pub check_unread: bool,
}

impl ReadPlan {
    /// Reads `wanted` (every column of the files when `None`), typed and
    /// checked by `declared`. Every declared column is checked on every row,
    /// read or not.
    pub fn new(declared: Option<&[Column]>, wanted: Option<&[String]>) -> ReadPlan {
        ReadPlan { names: wanted.map(<[String]>::to_vec), declared: declared.map(<[Column]>::to_vec), check_unread: true }
    }

    pub fn checking_unread(mut self, check: bool) -> ReadPlan {
        self.check_unread = check;
        self
    }

    /// The names a batch of a file with these columns holds.
    pub fn names_for(&self, present: &[String]) -> Vec<String> {
        self.names.clone().unwrap_or_else(|| present.to_vec())
    }

    fn declared_column(&self, name: &str) -> Option<&Column> {
        self.declared.as_ref()?.iter().find(|column| column.name == name)
    }

    fn new_column(&self, name: &str, capacity: usize) -> ColumnBuilder {
        match self.declared_column(name) {
            Some(column) => ColumnBuilder::for_type(&column.column_type, capacity),
            None => ColumnBuilder::Dynamic(Vec::with_capacity(capacity)),
        }
    }
}

/// Reads `files` in order and hands each batch to `deliver`. Returns the
/// row count. `wanted: None` in the plan with no declared columns reads
/// every column each file has.
pub fn read_batches(
    files: &[PathBuf],
    format: &str,
    plan: &ReadPlan,
    mut deliver: impl FnMut(Batch) -> ProviderResult<()>,
) -> ProviderResult<usize> {
    let mut count = 0;
    for file in files {
        let file = Arc::new(file.clone());
        count += match format {
            "csv" => read_csv(&file, plan, &mut deliver)?,
            "jsonl" => read_jsonl(&file, plan, &mut deliver)?,
            "parquet" => read_parquet(&file, plan, &mut deliver)?,
            other => return Err(ProviderError::failed(format!("unknown dataset format `{other}`"))),
        };
    }
    Ok(count)
}

/// How one header field is read: into which batch column (if any), with
/// which declared column's checks (if any).
struct CsvSlot<'a> {
    target: Option<usize>,
    declared: Option<&'a Column>,
}

fn read_csv(file: &Arc<PathBuf>, plan: &ReadPlan, deliver: &mut dyn FnMut(Batch) -> ProviderResult<()>) -> ProviderResult<usize> {
    let (mut reader, headers) = open_csv(file, plan.declared.as_deref())?;
    let names: Arc<[String]> = plan.names_for(&headers).into();
    let slots: Vec<CsvSlot> = headers
        .iter()
        .map(|header| {
            let target = names.iter().position(|name| name == header);
            let declared = plan.declared_column(header).filter(|_| target.is_some() || plan.check_unread);
            CsvSlot { target, declared }
        })
        .collect();
    let new_batch = || BatchBuilder {
        file: Arc::clone(file),
        word: "line",
        numbers: Vec::with_capacity(BATCH_ROWS),
        names: Arc::clone(&names),
        columns: names.iter().map(|name| headers.iter().any(|header| header == name).then(|| plan.new_column(name, BATCH_ROWS))).collect(),
    };
    let mut batch = new_batch();
    let mut count = 0;
    // The common CSV (no quotes, no carriage returns) is split on bytes;
    // from the first region that is not, the CSV parser reads the rest.
    let start = reader.position().clone();
    let plain = PlainCsv { file, headers: &headers, slots: &slots, declared: plan.declared.as_deref() };
    let resume = plain.read(start.byte(), start.line(), &mut batch, &mut count, &new_batch, deliver)?;
    let Some((byte, line)) = resume else {
        if !batch.numbers.is_empty() {
            deliver(batch.finish())?;
        }
        return Ok(count);
    };
    let mut position = csv::Position::new();
    position.set_byte(byte).set_line(line);
    reader.seek(position).map_err(|error| ProviderError::failed(format!("cannot read `{}`: {error}", file.display())))?;
    let mut record = csv::ByteRecord::new();
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|error| {
            let line = error.position().map_or(0, |position| position.line());
            ProviderError::failed(format!("`{}` line {line}: {error}", file.display()))
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |position| position.line());
        if record.len() != slots.len() || !push_csv_record(&mut batch, &slots, &record) {
            // The row-at-a-time reading says exactly what is wrong.
            return Err(csv_row_error(file, line, &headers, &record, plan.declared.as_deref()));
        }
        batch.numbers.push(line);
        count += 1;
        if batch.numbers.len() == BATCH_ROWS {
            deliver(std::mem::replace(&mut batch, new_batch()).finish())?;
        }
    }
    if !batch.numbers.is_empty() {
        deliver(batch.finish())?;
    }
    Ok(count)
}

/// The byte-splitting reader of [`read_csv`].
struct PlainCsv<'a> {
    file: &'a Path,
    headers: &'a [String],
    slots: &'a [CsvSlot<'a>],
    declared: Option<&'a [Column]>,
}

impl PlainCsv<'_> {
    /// Reads lines from `byte` (the start of line `line`) until the end, or
    /// until a region it cannot split exactly (a quote, a carriage return,
    /// a line longer than its buffer): then it returns where that region
    /// starts, for the CSV parser. Empty lines are skipped, as the parser
    /// skips them.
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        byte: u64,
        mut line: u64,
        batch: &mut BatchBuilder,
        count: &mut usize,
        new_batch: &dyn Fn() -> BatchBuilder,
        deliver: &mut dyn FnMut(Batch) -> ProviderResult<()>,
    ) -> ProviderResult<Option<(u64, u64)>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut handle = fs::File::open(self.file).map_err(|error| crate::unreadable(self.file, &error))?;
        handle.seek(SeekFrom::Start(byte)).map_err(|error| crate::unreadable(self.file, &error))?;
        let mut buffer = vec![0u8; 4 * 1024 * 1024];
        let (mut filled, mut offset, mut at_end) = (0usize, byte, false);
        while !at_end || filled > 0 {
            if !at_end && filled < buffer.len() {
                match handle.read(&mut buffer[filled..]) {
                    Ok(0) => at_end = true,
                    Ok(read) => filled += read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(crate::unreadable(self.file, &error)),
                }
                continue;
            }
            // Whole lines only; the rest waits for the next read.
            let complete = if at_end {
                filled
            } else {
                match memchr::memrchr(b'\n', &buffer[..filled]) {
                    Some(position) => position + 1,
                    None => return Ok(Some((offset, line))),
                }
            };
            let region = &buffer[..complete];
            if memchr::memchr2(b'"', b'\r', region).is_some() {
                return Ok(Some((offset, line)));
            }
            let mut fields: Vec<&[u8]> = Vec::with_capacity(self.slots.len());
            let mut start = 0;
            while start < region.len() {
                let end = memchr::memchr(b'\n', &region[start..]).map_or(region.len(), |at| start + at);
                let text = &region[start..end];
                start = end + 1;
                if text.is_empty() {
                    line += 1;
                    continue;
                }
                fields.clear();
                fields.extend(text.split(|character| *character == b','));
                if fields.len() != self.slots.len() || !push_csv_fields(batch, self.slots, fields.iter().copied()) {
                    let record = csv::ByteRecord::from(fields.clone());
                    return Err(csv_row_error(self.file, line, self.headers, &record, self.declared));
                }
                batch.numbers.push(line);
                *count += 1;
                line += 1;
                if batch.numbers.len() == BATCH_ROWS {
                    deliver(std::mem::replace(batch, new_batch()).finish())?;
                }
            }
            buffer.copy_within(complete..filled, 0);
            filled -= complete;
            offset += complete as u64;
        }
        Ok(None)
    }
}

/// Types and checks one record into the batch; false when a field fails
/// its checks (the caller then stops, so the columns left longer than
/// the positions are never used).
fn push_csv_record(batch: &mut BatchBuilder, slots: &[CsvSlot], record: &csv::ByteRecord) -> bool {
    push_csv_fields(batch, slots, record.iter())
}

fn push_csv_fields<'f>(batch: &mut BatchBuilder, slots: &[CsvSlot], fields: impl Iterator<Item = &'f [u8]>) -> bool {
    for (slot, field) in slots.iter().zip(fields) {
        let target = slot.target.and_then(|target| batch.columns[target].as_mut());
        let accepted = match slot.declared {
            Some(column) => push_declared(column, field, target),
            None => match target {
                Some(ColumnBuilder::Dynamic(values)) => match std::str::from_utf8(field) {
                    Ok(text) => {
                        values.push(type_field(text, None).unwrap_or(Json::Null));
                        true
                    }
                    Err(_) => false,
                },
                _ => true,
            },
        };
        if !accepted {
            return false;
        }
    }
    true
}

/// Types, checks and keeps one field of a declared column, exactly as
/// [`type_field`] and [`validate_row`] decide, without allocating: plain
/// numbers and booleans are read from the bytes, and anything unusual
/// (non-ASCII space around a number, a huge integer) takes the text path.
fn push_declared(column: &Column, field: &[u8], target: Option<&mut ColumnBuilder>) -> bool {
    let trimmed = field.trim_ascii();
    let in_range = |number: f64| column.min.is_none_or(|min| number >= min) && column.max.is_none_or(|max| number <= max);
    if trimmed.is_empty() {
        // Empty is null; a field of other whitespace goes the text path.
        if !field.iter().all(u8::is_ascii_whitespace) || !column.nullable {
            return push_declared_text(column, field, target);
        }
        match target {
            Some(ColumnBuilder::Int(values)) => values.push(None),
            Some(ColumnBuilder::Float(values)) => values.push(None),
            Some(ColumnBuilder::Bool(values)) => values.push(None),
            Some(ColumnBuilder::Text(values)) => values.append_null(),
            Some(ColumnBuilder::Time(values, times)) => {
                values.append_null();
                times.push(None);
            }
            Some(ColumnBuilder::Dynamic(values)) => values.push(Json::Null),
            None => {}
        }
        return true;
    }
    match column.column_type.as_str() {
        "int" => match parse_plain_integer(trimmed) {
            Some(number) if in_range(number as f64) => {
                if let Some(ColumnBuilder::Int(values)) = target {
                    values.push(Some(number));
                }
                true
            }
            _ => push_declared_text(column, field, target),
        },
        "float" => match parse_plain_decimal(trimmed) {
            Some(number) if in_range(number) => {
                if let Some(ColumnBuilder::Float(values)) = target {
                    values.push(Some(number));
                }
                true
            }
            _ => push_declared_text(column, field, target),
        },
        "bool" => {
            let flag = if [&b"true"[..], b"1", b"yes"].iter().any(|word| trimmed.eq_ignore_ascii_case(word)) {
                true
            } else if [&b"false"[..], b"0", b"no"].iter().any(|word| trimmed.eq_ignore_ascii_case(word)) {
                false
            } else {
                return push_declared_text(column, field, target);
            };
            if let Some(ColumnBuilder::Bool(values)) = target {
                values.push(Some(flag));
            }
            true
        }
        // A string with nothing to check but its encoding, not padded with
        // anything a Unicode trim would take (then it goes the text path).
        "string" if column.allowed.is_none() && trimmed[0].is_ascii() && trimmed[trimmed.len() - 1].is_ascii() => {
            let Ok(text) = std::str::from_utf8(field) else { return false };
            if let Some(ColumnBuilder::Text(values)) = target {
                values.append_value(text);
            }
            true
        }
        // A time, read once: checked and kept.
        "timestamp" => {
            let read = std::str::from_utf8(field).ok().and_then(|text| Some((text, mlops_units::parse_timestamp_micros(text.trim())?)));
            match (read, target) {
                (Some((text, micros)), Some(ColumnBuilder::Time(values, times))) => {
                    values.append_value(text);
                    times.push(Some(micros));
                    true
                }
                (Some(_), _) => true,
                (None, target) => push_declared_text(column, field, target),
            }
        }
        _ => push_declared_text(column, field, target),
    }
}

/// [`push_declared`] the unhurried way, on the field's text.
fn push_declared_text(column: &Column, field: &[u8], target: Option<&mut ColumnBuilder>) -> bool {
    let Ok(text) = std::str::from_utf8(field) else { return false };
    if !field_passes(column, text) {
        return false;
    }
    let Some(data) = target else { return true };
    let trimmed = text.trim();
    let present = !trimmed.is_empty();
    match data {
        ColumnBuilder::Int(values) => values.push(if present { parse_int(trimmed) } else { None }),
        ColumnBuilder::Float(values) => {
            values.push(if present { parse_plain_decimal(trimmed.as_bytes()).or_else(|| trimmed.parse().ok()) } else { None })
        }
        ColumnBuilder::Bool(values) => values.push(if present { parse_bool(trimmed) } else { None }),
        ColumnBuilder::Text(values) => {
            if present {
                values.append_value(text)
            } else {
                values.append_null()
            }
        }
        ColumnBuilder::Time(values, times) => {
            if present {
                values.append_value(text);
                times.push(mlops_units::parse_timestamp_micros(trimmed));
            } else {
                values.append_null();
                times.push(None);
            }
        }
        ColumnBuilder::Dynamic(values) => values.push(type_field(text, Some(column)).unwrap_or(Json::Null)),
    }
    true
}

fn parse_int(text: &str) -> Option<i64> {
    parse_plain_integer(text.as_bytes()).or_else(|| text.parse().ok()).or_else(|| {
        let number: f64 = text.parse().ok()?;
        (number.fract() == 0.0).then_some(number as i64)
    })
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Whether a CSV field passes its column's type and checks, exactly as
/// [`type_field`] and [`validate_row`] decide.
fn field_passes(column: &Column, field: &str) -> bool {
    let trimmed = field.trim();
    if trimmed.is_empty() {
        return column.nullable;
    }
    let in_range = |number: f64| column.min.is_none_or(|min| number >= min) && column.max.is_none_or(|max| number <= max);
    match column.column_type.as_str() {
        "int" => parse_int(trimmed).is_some_and(|number| in_range(number as f64)),
        "float" => parse_plain_decimal(trimmed.as_bytes())
            .or_else(|| trimmed.parse::<f64>().ok())
            .is_some_and(|number| number.is_finite() && in_range(number)),
        "bool" => parse_bool(trimmed).is_some(),
        "string" => column.allowed.as_ref().is_none_or(|allowed| allowed.iter().any(|value| value == field)),
        "timestamp" => mlops_units::parse_timestamp_micros(trimmed).is_some(),
        _ => true,
    }
}

fn csv_row_error(file: &Path, line: u64, headers: &[String], record: &csv::ByteRecord, declared: Option<&[Column]>) -> ProviderError {
    let position = format!("line {line}");
    let Ok(record) = csv::StringRecord::from_byte_record(record.clone()) else {
        return ProviderError::failed(format!("`{}` line {line} is not valid UTF-8", file.display()));
    };
    if record.len() != headers.len() {
        return ProviderError::failed(format!(
            "`{}` line {line}: found record with {} fields, but the previous record has {} fields",
            file.display(),
            record.len(),
            headers.len()
        ));
    }
    let mut row = Row::new();
    for (header, field) in headers.iter().zip(record.iter()) {
        let column = declared.and_then(|columns| columns.iter().find(|column| &column.name == header));
        match type_field(field, column) {
            Ok(value) => {
                row.insert(header.clone(), value);
            }
            Err(message) => return row_error(file, &position, header, &message),
        }
    }
    if let Some(columns) = declared {
        if let Err((column, message)) = validate_row(&row, columns) {
            return row_error(file, &position, &column, &message);
        }
    }
    ProviderError::failed(format!("`{}` {position} cannot be read", file.display()))
}

fn read_jsonl(file: &Arc<PathBuf>, plan: &ReadPlan, deliver: &mut dyn FnMut(Batch) -> ProviderResult<()>) -> ProviderResult<usize> {
    let handle = fs::File::open(file.as_path()).map_err(|error| crate::unreadable(file, &error))?;
    let mut names: Option<Arc<[String]>> = plan.names.clone().map(Into::into);
    let mut batch: Option<BatchBuilder> = None;
    let mut count = 0;
    let new_batch = |names: &Arc<[String]>| BatchBuilder {
        file: Arc::clone(file),
        word: "line",
        numbers: Vec::with_capacity(BATCH_ROWS),
        names: Arc::clone(names),
        columns: names.iter().map(|name| Some(plan.new_column(name, BATCH_ROWS))).collect(),
    };
    for (index, line_text) in BufReader::with_capacity(1 << 20, handle).lines().enumerate() {
        let line = index + 1;
        let line_text = line_text.map_err(|error| crate::unreadable(file, &error))?;
        if line_text.trim().is_empty() {
            continue;
        }
        let row = crate::json_line_row(file, line, &line_text, plan.declared.as_deref())?;
        // Every column wanted: the first row's keys, and the declared columns.
        let names = names.get_or_insert_with(|| {
            let mut names: Vec<String> = row.keys().cloned().collect();
            for column in plan.declared.iter().flatten() {
                if !names.contains(&column.name) {
                    names.push(column.name.clone());
                }
            }
            names.into()
        });
        let current = batch.get_or_insert_with(|| new_batch(names));
        for (name, column) in names.iter().zip(current.columns.iter_mut()) {
            if let Some(column) = column {
                // A declared column's value is already typed and checked.
                column.push_json(row.get(name).unwrap_or(&Json::Null));
            }
        }
        current.numbers.push(line as u64);
        count += 1;
        if current.numbers.len() == BATCH_ROWS {
            deliver(batch.take().expect("a batch").finish())?;
        }
    }
    if let Some(batch) = batch.filter(|batch| !batch.numbers.is_empty()) {
        deliver(batch.finish())?;
    }
    Ok(count)
}

fn read_parquet(file: &Arc<PathBuf>, plan: &ReadPlan, deliver: &mut dyn FnMut(Batch) -> ProviderResult<()>) -> ProviderResult<usize> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let not_parquet = |error: &dyn std::fmt::Display| {
        ProviderError::with_help(
            format!("`{}` is not a readable Parquet file: {error}", file.display()),
            "check the file, or the dataset's `format`",
        )
    };
    let handle = fs::File::open(file.as_path()).map_err(|error| crate::unreadable(file, &error))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|error| not_parquet(&error))?;
    let present: Vec<String> = builder.schema().fields().iter().map(|field| field.name().clone()).collect();
    for column in plan.declared.iter().flatten() {
        if !present.contains(&column.name) {
            return Err(ProviderError::with_help(
                format!("`{}` has no column `{}` (its columns are: {})", file.display(), column.name, present.join(", ")),
                "fix the file, or the dataset's schema",
            ));
        }
    }
    let names: Arc<[String]> = plan.names_for(&present).into();
    // The columns read: the wanted ones, and the declared ones to check.
    let mut wanted: Vec<String> = names.iter().filter(|name| present.contains(name)).cloned().collect();
    for column in plan.declared.iter().flatten().filter(|_| plan.check_unread) {
        if !wanted.contains(&column.name) {
            wanted.push(column.name.clone());
        }
    }
    // Only those are decoded.
    let projection = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), wanted.iter().map(String::as_str));
    let reader = builder.with_projection(projection).with_batch_size(BATCH_ROWS).build().map_err(|error| not_parquet(&error))?;
    let mut count = 0u64;
    for record_batch in reader {
        let record_batch = record_batch.map_err(|error| not_parquet(&error))?;
        let rows = record_batch.num_rows();
        let mut checked: Vec<(String, ColumnData)> = Vec::with_capacity(wanted.len());
        for name in &wanted {
            let Some(array) = record_batch.column_by_name(name) else { continue };
            checked
                .push((name.clone(), column_from_arrow(array.as_ref(), plan.declared_column(name)).map_err(|error| not_parquet(&error))?));
        }
        let first = count + 1;
        if let Some(columns) = &plan.declared {
            for index in 0..rows {
                let passes = columns.iter().all(|column| {
                    checked.iter().find(|(name, _)| name == &column.name).is_none_or(|(_, data)| value_passes(column, data, index))
                });
                if !passes {
                    let row: Row = checked.iter().map(|(name, data)| (name.clone(), data.json(index))).collect();
                    let position = format!("row {}", first + index as u64);
                    return Err(match validate_row(&row, columns) {
                        Err((column, message)) => row_error(file, &position, &column, &message),
                        Ok(()) => ProviderError::failed(format!("`{}` {position} cannot be read", file.display())),
                    });
                }
            }
        }
        let mut kept: Vec<Option<(String, ColumnData)>> = checked.into_iter().map(Some).collect();
        let columns = names
            .iter()
            .map(|name| {
                kept.iter_mut().find(|column| column.as_ref().is_some_and(|(kept_name, _)| kept_name == name))?.take().map(|(_, data)| data)
            })
            .collect();
        count += rows as u64;
        deliver(Batch {
            file: Arc::clone(file),
            positions: Positions { word: "row", numbers: (first..first + rows as u64).collect() },
            names: Arc::clone(&names),
            columns,
            times: Vec::new(),
            rows,
        })?;
    }
    Ok(count as usize)
}

/// A Parquet column as batch data: typed as declared when it is, by its own
/// type when it is not (text for anything but numbers and booleans).
fn column_from_arrow(array: &dyn arrow_array::Array, declared: Option<&Column>) -> Result<ColumnData, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_schema::DataType;
    let cast = |to: &DataType| arrow_cast::cast(&arrow_array::make_array(array.to_data()), to).map_err(|error| error.to_string());
    if let DataType::Timestamp(unit, _) = array.data_type() {
        if declared.is_none_or(|column| column.column_type == "timestamp" || column.column_type == "string") {
            // Times as their RFC 3339 text, as rows and CSV hold them.
            let per_micro = match unit {
                arrow_schema::TimeUnit::Second => 1_000_000,
                arrow_schema::TimeUnit::Millisecond => 1_000,
                _ => 1,
            };
            let numbers = cast(&DataType::Int64)?;
            let numbers = numbers.as_primitive::<Int64Type>();
            let micros = |number: i64| match unit {
                arrow_schema::TimeUnit::Nanosecond => number.div_euclid(1_000),
                _ => number.saturating_mul(per_micro),
            };
            return Ok(ColumnData::Text(
                numbers.iter().map(|number| number.map(|number| mlops_units::format_timestamp_micros(micros(number)))).collect(),
            ));
        }
    }
    let wanted = match declared.map(|column| column.column_type.as_str()) {
        Some("int") => "int",
        Some("float") => "float",
        Some("bool") => "bool",
        Some(_) => "text",
        None => match array.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => "int",
            DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::UInt64 => "float",
            DataType::Boolean => "bool",
            _ => "text",
        },
    };
    Ok(match wanted {
        "int" => {
            // Whole floats are whole numbers, as in rows; fractions fail the checks.
            if matches!(array.data_type(), DataType::Float16 | DataType::Float32 | DataType::Float64) {
                let floats = cast(&DataType::Float64)?;
                let floats = floats.as_primitive::<Float64Type>();
                let mut fractional = false;
                let values = floats
                    .iter()
                    .map(|value| {
                        value.map(|number| {
                            fractional |= number.fract() != 0.0;
                            number as i64
                        })
                    })
                    .collect();
                if fractional {
                    return Ok(ColumnData::Float(floats.iter().collect()));
                }
                ColumnData::Int(values)
            } else {
                let ints = cast(&DataType::Int64)?;
                ColumnData::Int(ints.as_primitive::<Int64Type>().iter().collect())
            }
        }
        "float" => ColumnData::Float(cast(&DataType::Float64)?.as_primitive::<Float64Type>().iter().collect()),
        "bool" => ColumnData::Bool(cast(&DataType::Boolean)?.as_boolean().iter().collect()),
        _ => {
            let text = cast(&DataType::Utf8)?;
            ColumnData::Text(text.as_string::<i32>().clone())
        }
    })
}

/// Whether the value at `index` passes the column's checks, as
/// [`validate_row`] decides.
fn value_passes(column: &Column, data: &ColumnData, index: usize) -> bool {
    let in_range = |number: f64| column.min.is_none_or(|min| number >= min) && column.max.is_none_or(|max| number <= max);
    let number = match data {
        ColumnData::Int(values) => values[index].map(|number| number as f64),
        ColumnData::Float(values) => {
            if column.column_type == "int" {
                // A fraction in an int column.
                return values[index].is_none() && column.nullable;
            }
            values[index]
        }
        ColumnData::Bool(values) => return values[index].is_some() || column.nullable,
        ColumnData::Text(_) => {
            return match data.text(index) {
                None => column.nullable,
                Some(text) => match column.column_type.as_str() {
                    "string" => column.allowed.as_ref().is_none_or(|allowed| allowed.iter().any(|value| value == text)),
                    "timestamp" => mlops_units::parse_timestamp_micros(text).is_some(),
                    _ => true,
                },
            }
        }
        ColumnData::Dynamic(_) => return false,
    };
    match number {
        None => column.nullable,
        Some(number) => in_range(number),
    }
}

/// Shows a value of the data in a message (cut and escaped).
pub fn shown_value(value: &Json) -> String {
    match value {
        Json::String(text) => format!("\"{}\"", shown(text)),
        other => shown(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ReadPlan {
        let columns = vec![
            Column { name: "id".into(), column_type: "string".into(), ..Column::default() },
            Column { name: "amount".into(), column_type: "float".into(), min: Some(0.0), ..Column::default() },
        ];
        ReadPlan { names: Some(vec!["id".into(), "amount".into()]), declared: Some(columns), check_unread: true }
    }

    /// `rows` data lines, those in `bad` holding a negative amount, and an
    /// empty line after the 100,000th.
    fn write_csv(path: &Path, rows: usize, bad: &[usize]) {
        let mut text = String::from("id,amount\n");
        for row in 0..rows {
            let amount = if bad.contains(&row) { -1.0 } else { row as f64 / 4.0 };
            text.push_str(&format!("c{row},{amount}\n"));
            if row == 99_999 {
                text.push('\n');
            }
        }
        fs::write(path, text).unwrap();
    }

    #[test]
    fn plain_lines_keep_their_order_numbers_and_batches() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("data.csv");
        let rows = 3 * BATCH_ROWS + 1_234;
        write_csv(&file, rows, &[]);
        let mut batches = Vec::new();
        let count = read_batches(std::slice::from_ref(&file), "csv", &plan(), |batch| {
            batches.push(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(count, rows);
        let sizes: Vec<usize> = batches.iter().map(|batch| batch.rows).collect();
        assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, BATCH_ROWS, 1_234], "batches end where they always did");
        let mut row = 0;
        for batch in &batches {
            for index in 0..batch.rows {
                // Line 1 is the header; the empty line after row 99,999 is skipped.
                let line = row as u64 + 2 + u64::from(row >= 100_000);
                assert_eq!(batch.positions.numbers[index], line, "row {row}");
                assert_eq!(batch.row(index)["id"], Json::String(format!("c{row}")), "row {row}");
                row += 1;
            }
        }
    }

    #[test]
    fn the_first_bad_line_is_named_as_the_reader_names_it() {
        let directory = tempfile::tempdir().unwrap();
        // The first bad line is named, in any batch, before a later one.
        for (bad, also) in [(5, Some(150_000)), (BATCH_ROWS + 17, Some(3 * BATCH_ROWS - 1)), (150_000, None)] {
            let file = directory.path().join(format!("bad-{bad}.csv"));
            let lines: Vec<usize> = std::iter::once(bad).chain(also).collect();
            write_csv(&file, 3 * BATCH_ROWS, &lines);
            let error = read_batches(std::slice::from_ref(&file), "csv", &plan(), |_| Ok(())).unwrap_err().to_string();
            let line = bad + 2 + usize::from(bad >= 100_000);
            assert!(error.contains(&format!("line {line}")), "{bad}: {error}");
            assert!(error.contains("amount"), "{bad}: {error}");
        }
    }
}
