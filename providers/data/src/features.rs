//! Computing a feature set: the dataset read in batches, each feature's
//! expression evaluated over whole columns, and the result streamed to one
//! Parquet (or JSON Lines) file whose content hash is the version.
//!
//! Three stages run at once: a reader thread types and checks batches of
//! rows, the caller's thread evaluates the features, and a writer thread
//! encodes, compresses and hashes. Channels between them hold two batches
//! each, so memory is bounded by the batch size, not the dataset's size.
//! The output is the same whatever the timing: batches keep their order.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use mlops_provider_api::{ApplyContext, CompiledExpression, Configuration, ProviderError, ProviderResult, RowExpression, Value};
use serde_json::Value as Json;

use crate::frame::{read_batches, shown_value, Batch, ColumnData, ReadPlan};
use crate::vector::{columns_read, evaluate, supported, Vector};
use crate::window::{compute_aggregates, Aggregate, Function};
use crate::{json_number, Column};

/// What a feature set reads: the dataset's files, their format and schema.
pub struct DatasetFiles<'a> {
    pub files: &'a [PathBuf],
    pub format: &'a str,
    pub columns: Option<&'a [Column]>,
    /// Every row was checked against `columns` when the data was stored
    /// (and the data is that version): then only the columns read are
    /// checked again, as they are typed.
    pub validated: bool,
}

impl DatasetFiles<'_> {
    /// Whether a dataset's attributes say mlops checked every row when it
    /// stored the data (its row count is known: data versioned only by a
    /// listing never was).
    pub fn validated_by(dataset: &Value) -> bool {
        dataset.get("row_count").is_some_and(|count| !count.is_null())
    }
}

/// A written feature file.
#[derive(Debug)]
pub struct ComputedFeatures {
    /// The file, in the directory the caller gave.
    pub file: PathBuf,
    /// `features.parquet` or `features.jsonl`.
    pub file_name: &'static str,
    /// The content hash of the file (`b3:…`).
    pub version: String,
    pub row_count: usize,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FeatureType {
    Int,
    Float,
    Bool,
    String,
}

impl FeatureType {
    fn parse(text: &str) -> FeatureType {
        match text {
            "int" => FeatureType::Int,
            "bool" => FeatureType::Bool,
            "string" => FeatureType::String,
            _ => FeatureType::Float,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FeatureType::Int => "int",
            FeatureType::Float => "float",
            FeatureType::Bool => "bool",
            FeatureType::String => "string",
        }
    }

    fn arrow(self) -> DataType {
        match self {
            FeatureType::Int => DataType::Int64,
            FeatureType::Float => DataType::Float64,
            FeatureType::Bool => DataType::Boolean,
            FeatureType::String => DataType::Utf8,
        }
    }
}

struct Feature {
    name: String,
    feature_type: FeatureType,
    /// The tree the kernels evaluate, when they can.
    lowered: Option<RowExpression>,
    /// The columns the expression reads, when `lowered` says which: a row
    /// the kernels defer is built of these alone.
    reads: Option<Vec<String>>,
    compiled: Box<dyn CompiledExpression>,
}

struct Constant(Json);

impl CompiledExpression for Constant {
    fn evaluate(&self, _row: &std::collections::BTreeMap<String, Json>) -> Result<Json, String> {
        Ok(self.0.clone())
    }
}

/// A constant's tree: scalars only (a list or map goes row by row).
fn literal(value: &Json) -> Option<RowExpression> {
    Some(match value {
        Json::Null => RowExpression::Null,
        Json::Bool(flag) => RowExpression::Bool(*flag),
        Json::Number(number) => RowExpression::Number(number.as_f64()?),
        Json::String(text) => RowExpression::String(text.clone()),
        _ => return None,
    })
}

/// Computes the features `config` declares over the dataset, into a new
/// file in `directory` (`format = "parquet"`, the default, or `"jsonl"`).
/// Nothing is left in `directory` when it fails.
pub fn compute_features(
    config: &Configuration,
    dataset: &DatasetFiles<'_>,
    directory: &Path,
    context: &dyn ApplyContext,
) -> ProviderResult<ComputedFeatures> {
    let evaluator = context.row_evaluator();
    let entity = config.get("entity").and_then(Value::as_str).map(str::to_owned);
    let mut features = Vec::new();
    for (name, feature) in config.get("feature").and_then(Value::as_object).into_iter().flatten() {
        let expression = feature.get("expr").ok_or_else(|| ProviderError::failed(format!("feature `{name}` has no expression")))?;
        let (compiled, lowered): (Box<dyn CompiledExpression>, Option<RowExpression>) = match expression.as_expression() {
            Some(text) => (
                evaluator.compile(text).map_err(|error| ProviderError::failed(format!("feature `{name}`: {error}")))?,
                evaluator.lower(text),
            ),
            None => {
                let constant = expression
                    .to_plain_json()
                    .ok_or_else(|| ProviderError::failed(format!("feature `{name}` is {expression}, not known")))?;
                let lowered = literal(&constant);
                (Box::new(Constant(constant)), lowered)
            }
        };
        let feature_type = FeatureType::parse(feature.get("type").and_then(Value::as_str).unwrap_or("float"));
        let lowered = lowered.filter(supported);
        let reads = lowered.as_ref().map(|lowered| {
            let mut reads = Vec::new();
            columns_read(lowered, &mut reads);
            reads
        });
        features.push(Feature { name: name.clone(), feature_type, lowered, reads, compiled });
    }
    let timestamp = config.get("timestamp").and_then(Value::as_str).map(str::to_owned);
    let aggregates = aggregates_of(config)?;
    let aggregate_values = match (&entity, &timestamp) {
        _ if aggregates.is_empty() => Vec::new(),
        (Some(entity), Some(timestamp)) => {
            context.progress("aggregating over time windows");
            compute_aggregates(dataset, entity, timestamp, &aggregates)?
        }
        _ => {
            return Err(ProviderError::with_help(
                "a feature set with `aggregate` blocks needs `entity` and `timestamp`",
                "name the column of each row's time: timestamp = \"COLUMN\"",
            ))
        }
    };
    // Only the columns the features read, when every one says which.
    let wanted = features.iter().all(|feature| feature.lowered.is_some()).then(|| {
        let mut wanted: Vec<String> = entity.iter().chain(&timestamp).cloned().collect();
        for feature in &features {
            columns_read(feature.lowered.as_ref().expect("lowered"), &mut wanted);
        }
        wanted
    });
    let plan = ReadPlan::new(dataset.columns, wanted.as_deref()).checking_unread(!dataset.validated);
    let entity_column = entity.as_ref().and_then(|entity| dataset.columns?.iter().find(|column| &column.name == entity));
    let format = match config.get("format").and_then(Value::as_str) {
        Some("jsonl") => OutputFormat::Jsonl,
        _ => OutputFormat::Parquet,
    };
    let file_name = match format {
        OutputFormat::Parquet => "features.parquet",
        OutputFormat::Jsonl => "features.jsonl",
    };
    let mut schema_fields = Vec::new();
    if let Some(entity) = &entity {
        schema_fields.push(Field::new(entity, entity_type(entity_column), true));
    }
    if let Some(timestamp) = &timestamp {
        schema_fields.push(Field::new(timestamp, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true));
    }
    for feature in &features {
        schema_fields.push(Field::new(&feature.name, feature.feature_type.arrow(), true));
    }
    for (aggregate, values) in aggregates.iter().zip(&aggregate_values) {
        schema_fields.push(Field::new(&aggregate.name, values.data_type(), true));
    }
    let schema = Arc::new(Schema::new(schema_fields));
    let output = Output {
        entity: entity.as_deref(),
        entity_column,
        timestamp: timestamp.as_deref(),
        features: &features,
        aggregates: aggregates.iter().map(|aggregate| aggregate.name.as_str()).zip(&aggregate_values).collect(),
        format,
        schema: &schema,
    };

    fs::create_dir_all(directory).map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", directory.display())))?;
    let partial = directory.join(format!(".{file_name}.partial-{}", std::process::id()));
    let result = std::thread::scope(|scope| -> ProviderResult<(usize, String, u64)> {
        let (batches_out, batches_in) = mpsc::sync_channel::<ProviderResult<Batch>>(2);
        let (encoded_out, encoded_in) = mpsc::sync_channel::<Encoded>(2);
        let plan = &plan;
        let reader = scope.spawn(move || {
            let result = read_batches(dataset.files, dataset.format, plan, |batch| {
                // The evaluating side hung up: it failed, and says why.
                batches_out.send(Ok(batch)).map_err(|_| ProviderError::Interrupted)
            });
            if let Err(error) = result {
                let _ = batches_out.send(Err(error));
            }
        });
        let writer_schema = Arc::clone(&schema);
        let partial_path = partial.clone();
        let identifiers: Vec<&str> = entity.as_deref().into_iter().collect();
        let writer = scope.spawn(move || write_file(&partial_path, format, writer_schema, &identifiers, encoded_in));
        let mut row_count = 0usize;
        let mut failure = None;
        for batch in batches_in {
            let outcome = batch.and_then(|batch| {
                if context.interrupted() {
                    return Err(ProviderError::Interrupted);
                }
                let encoded = encode_batch(&batch, &output, row_count)?;
                row_count += batch.rows;
                if row_count % (1 << 20) < batch.rows {
                    context.progress(&format!("features: {row_count} rows"));
                }
                encoded_out.send(encoded).map_err(|_| ProviderError::failed("the feature file's writer stopped"))
            });
            if let Err(error) = outcome {
                failure = Some(error);
                break;
            }
        }
        drop(encoded_out);
        let written = writer.join().unwrap_or_else(|_| Err(ProviderError::failed("the feature file's writer failed")));
        let read = reader.join();
        // A writer that failed says why (a full disk), not the evaluator
        // that found it gone; a reader that died must not pass for the end
        // of the data.
        let (version, size) = written?;
        if let Some(error) = failure {
            return Err(error);
        }
        if read.is_err() {
            return Err(ProviderError::failed("reading the dataset failed"));
        }
        Ok((row_count, version, size))
    });
    let (row_count, version, size) = match result {
        Ok(done) => done,
        Err(error) => {
            let _ = fs::remove_file(&partial);
            return Err(error);
        }
    };
    let file = directory.join(file_name);
    fs::rename(&partial, &file).map_err(|error| {
        let _ = fs::remove_file(&partial);
        ProviderError::failed(format!("cannot store `{}`: {error}", file.display()))
    })?;
    Ok(ComputedFeatures { file, file_name, version, row_count, size })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum OutputFormat {
    Parquet,
    Jsonl,
}

/// A batch of output, ready for the writer.
pub(crate) enum Encoded {
    Parquet(RecordBatch),
    Jsonl(Vec<u8>),
}

/// The entity column's Parquet type: its declared type, text otherwise.
pub(crate) fn entity_type(column: Option<&Column>) -> DataType {
    match column.map(|column| column.column_type.as_str()) {
        Some("int") => DataType::Int64,
        Some("float") => DataType::Float64,
        Some("bool") => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// Typed values of one output column: a feature's over a batch, or an
/// aggregate's over the whole dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Values {
    fn with_capacity(feature_type: FeatureType, rows: usize) -> Values {
        match feature_type {
            FeatureType::Int => Values::Int(Vec::with_capacity(rows)),
            FeatureType::Float => Values::Float(Vec::with_capacity(rows)),
            FeatureType::Bool => Values::Bool(Vec::with_capacity(rows)),
            FeatureType::String => Values::Text(Vec::with_capacity(rows)),
        }
    }

    /// Puts a value the compiled expression gave at `index`, converted as
    /// the declared type says; `Err` with what it was when it does not fit.
    fn set_json(&mut self, index: usize, value: &Json) -> Result<(), ()> {
        match (self, value) {
            (Values::Int(values), Json::Number(number)) => {
                values[index] = number.as_f64().filter(|number| number.is_finite()).map(|number| number.round() as i64)
            }
            (Values::Int(values), Json::Null) => values[index] = None,
            (Values::Float(values), Json::Number(number)) => values[index] = number.as_f64().filter(|number| number.is_finite()),
            (Values::Float(values), Json::Null) => values[index] = None,
            (Values::Bool(values), Json::Bool(flag)) => values[index] = Some(*flag),
            (Values::Bool(values), Json::Null) => values[index] = None,
            (Values::Text(values), Json::String(text)) => values[index] = Some(text.clone()),
            (Values::Text(values), Json::Null) => values[index] = None,
            _ => return Err(()),
        }
        Ok(())
    }

    /// The Arrow (and Parquet) type of the column.
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Values::Int(_) => DataType::Int64,
            Values::Float(_) => DataType::Float64,
            Values::Bool(_) => DataType::Boolean,
            Values::Text(_) => DataType::Utf8,
        }
    }

    pub fn json(&self, index: usize) -> Json {
        match self {
            Values::Int(values) => values[index].map_or(Json::Null, |number| Json::Number(number.into())),
            Values::Float(values) => values[index].map_or(Json::Null, json_number),
            Values::Bool(values) => values[index].map_or(Json::Null, Json::Bool),
            Values::Text(values) => values[index].as_ref().map_or(Json::Null, |text| Json::String(text.clone())),
        }
    }

    /// The values of `rows` as an Arrow array.
    pub(crate) fn array(&self, rows: std::ops::Range<usize>) -> ArrayRef {
        match self {
            Values::Int(values) => Arc::new(Int64Array::from(values[rows].to_vec())),
            Values::Float(values) => Arc::new(Float64Array::from(values[rows].to_vec())),
            Values::Bool(values) => Arc::new(BooleanArray::from(values[rows].to_vec())),
            Values::Text(values) => Arc::new(StringArray::from(values[rows].to_vec())),
        }
    }

    fn into_array(self) -> ArrayRef {
        match self {
            Values::Int(values) => Arc::new(Int64Array::from(values)),
            Values::Float(values) => Arc::new(Float64Array::from(values)),
            Values::Bool(values) => Arc::new(BooleanArray::from(values)),
            Values::Text(values) => Arc::new(StringArray::from(values)),
        }
    }
}

/// What a value is, for a message about a type that does not fit.
fn kind_of(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a map",
    }
}

/// What the output file holds, and how.
struct Output<'a> {
    entity: Option<&'a str>,
    entity_column: Option<&'a Column>,
    timestamp: Option<&'a str>,
    features: &'a [Feature],
    /// Each aggregate's name and its values for every row of the dataset.
    aggregates: Vec<(&'a str, &'a Values)>,
    format: OutputFormat,
    schema: &'a Arc<Schema>,
}

/// The `aggregate` blocks of a feature set's configuration.
fn aggregates_of(config: &Configuration) -> ProviderResult<Vec<Aggregate>> {
    let mut aggregates = Vec::new();
    for (name, block) in config.get("aggregate").and_then(Value::as_object).into_iter().flatten() {
        let function_name = block.get("function").and_then(Value::as_str).unwrap_or_default();
        let function = Function::parse(function_name)
            .ok_or_else(|| ProviderError::failed(format!("aggregate `{name}`: `{function_name}` is not an aggregate function")))?;
        let window_micros = crate::duration_micros(block.get("window"), &format!("aggregate `{name}`: `window`"))?;
        aggregates.push(Aggregate {
            name: name.clone(),
            function,
            column: block.get("column").and_then(Value::as_str).map(str::to_owned),
            window_micros,
            exclusive: block.get("exclusive").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Ok(aggregates)
}

/// A batch's event times, for a Parquet timestamp column.
pub(crate) fn timestamp_array(batch: &Batch, column: &str) -> ProviderResult<ArrayRef> {
    let micros = match batch.times(column) {
        Some(times) => times.to_vec(),
        None => (0..batch.rows).map(|index| batch.time(column, index)).collect::<ProviderResult<_>>()?,
    };
    Ok(Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")))
}

/// Evaluates every feature over the batch, as the output format wants it.
/// `offset` is the dataset row the batch starts at.
fn encode_batch(batch: &Batch, output: &Output<'_>, offset: usize) -> ProviderResult<Encoded> {
    let rows = batch.rows;
    let (entity, features) = (output.entity, output.features);
    let mut computed = Vec::with_capacity(features.len());
    for feature in features {
        computed.push(feature_values(batch, feature)?);
    }
    let column_data = |name: &str| batch.names.iter().position(|candidate| candidate == name).and_then(|at| batch.columns[at].as_ref());
    let entity_data = entity.and_then(column_data);
    let timestamp_data = output.timestamp.and_then(column_data);
    match output.format {
        OutputFormat::Parquet => {
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(output.schema.fields().len());
            if entity.is_some() {
                arrays.push(entity_array(entity_data, output.entity_column, rows));
            }
            if let Some(timestamp) = output.timestamp {
                arrays.push(timestamp_array(batch, timestamp)?);
            }
            arrays.extend(computed.into_iter().map(Values::into_array));
            for (_, values) in &output.aggregates {
                arrays.push(values.array(offset..offset + rows));
            }
            let batch =
                RecordBatch::try_new(Arc::clone(output.schema), arrays).map_err(|error| ProviderError::failed(error.to_string()))?;
            Ok(Encoded::Parquet(batch))
        }
        OutputFormat::Jsonl => {
            // Keys serialised once; each line is an object, the entity first.
            let mut keys: Vec<String> = Vec::new();
            for name in entity.iter().chain(&output.timestamp) {
                keys.push(serde_json::to_string(name).unwrap_or_default());
            }
            keys.extend(features.iter().map(|feature| serde_json::to_string(&feature.name).unwrap_or_default()));
            keys.extend(output.aggregates.iter().map(|(name, _)| serde_json::to_string(name).unwrap_or_default()));
            let mut bytes = Vec::with_capacity(rows * 64);
            for index in 0..rows {
                bytes.push(b'{');
                let mut key = keys.iter();
                let mut first = true;
                let mut put = |bytes: &mut Vec<u8>, value: &Json| {
                    if !first {
                        bytes.push(b',');
                    }
                    first = false;
                    bytes.extend_from_slice(key.next().map(String::as_bytes).unwrap_or_default());
                    bytes.push(b':');
                    let _ = serde_json::to_writer(&mut *bytes, value);
                };
                if entity.is_some() {
                    put(&mut bytes, &entity_data.map_or(Json::Null, |data| data.json(index)));
                }
                if output.timestamp.is_some() {
                    put(&mut bytes, &timestamp_data.map_or(Json::Null, |data| data.json(index)));
                }
                for values in &computed {
                    put(&mut bytes, &values.json(index));
                }
                for (_, values) in &output.aggregates {
                    put(&mut bytes, &values.json(offset + index));
                }
                bytes.extend_from_slice(b"}\n");
            }
            Ok(Encoded::Jsonl(bytes))
        }
    }
}

pub(crate) fn entity_array(data: Option<&ColumnData>, declared: Option<&Column>, rows: usize) -> ArrayRef {
    let Some(data) = data else { return arrow_array::new_null_array(&entity_type(declared), rows) };
    match (entity_type(declared), data) {
        (DataType::Int64, ColumnData::Int(values)) => Arc::new(Int64Array::from(values.clone())),
        (DataType::Float64, ColumnData::Float(values)) => Arc::new(Float64Array::from(values.clone())),
        (DataType::Boolean, ColumnData::Bool(values)) => Arc::new(BooleanArray::from(values.clone())),
        (_, ColumnData::Text(values)) => Arc::new(values.clone()),
        (_, data) => Arc::new(StringArray::from(
            (0..rows)
                .map(|index| match data.json(index) {
                    Json::Null => None,
                    Json::String(text) => Some(text),
                    other => Some(other.to_string()),
                })
                .collect::<Vec<_>>(),
        )),
    }
}

/// One feature over a batch: the kernels where they can, the compiled
/// expression for the rows they leave (or every row).
fn feature_values(batch: &Batch, feature: &Feature) -> ProviderResult<Values> {
    let rows = batch.rows;
    let mut values = Values::with_capacity(feature.feature_type, rows);
    let evaluated = feature.lowered.as_ref().map(|lowered| evaluate(lowered, batch));
    let mut deferred: Vec<usize> = Vec::new();
    match evaluated {
        Some(evaluated) if !evaluated.all_deferred() => {
            let fits = fill(&mut values, evaluated.vector, rows);
            if !fits {
                // The kernels' values are not the declared type: every row
                // goes the exact way, which says which row and what it is.
                values = Values::with_capacity(feature.feature_type, rows);
                fill_nulls(&mut values, rows);
                deferred.extend(0..rows);
            } else {
                deferred.extend(evaluated.deferred.iter().enumerate().filter(|(_, deferred)| **deferred).map(|(index, _)| index));
            }
        }
        _ => {
            fill_nulls(&mut values, rows);
            deferred.extend(0..rows);
        }
    }
    for index in deferred {
        // A null in one column defers a row (a twentieth of them, say): a
        // row of every column, the entity's text copied, cost more than the
        // kernels of the whole batch.
        let row = match &feature.reads {
            Some(reads) => batch.row_of(index, reads),
            None => batch.row(index),
        };
        let value = feature.compiled.evaluate(&row).map_err(|error| {
            ProviderError::with_help(
                format!("`{}` {}, feature `{}`: {error}", batch.file.display(), batch.position(index), feature.name),
                "fix the data, or the feature's expression",
            )
        })?;
        if values.set_json(index, &value).is_err() {
            return Err(ProviderError::with_help(
                format!(
                    "`{}` {}, feature `{}`: the feature is declared {}, but its value here is {} ({})",
                    batch.file.display(),
                    batch.position(index),
                    feature.name,
                    feature.feature_type.name(),
                    kind_of(&value),
                    shown_value(&value)
                ),
                "change the feature's type, or convert the value in its expression",
            ));
        }
    }
    Ok(values)
}

fn fill_nulls(values: &mut Values, rows: usize) {
    match values {
        Values::Int(values) => values.resize(rows, None),
        Values::Float(values) => values.resize(rows, None),
        Values::Bool(values) => values.resize(rows, None),
        Values::Text(values) => values.resize(rows, None),
    }
}

/// Puts the kernels' values; false when they are not the declared type.
fn fill(values: &mut Values, vector: Vector<'_>, rows: usize) -> bool {
    match (values, vector) {
        (values, Vector::Null) => fill_nulls(values, rows),
        (Values::Int(out), Vector::Number(numbers)) => {
            out.extend(numbers.into_iter().map(|number| number.filter(|number| number.is_finite()).map(|number| number.round() as i64)))
        }
        (Values::Float(out), Vector::Number(numbers)) => {
            out.extend(numbers.into_iter().map(|number| number.filter(|number| number.is_finite())))
        }
        (Values::Bool(out), Vector::Bool(flags)) => out.extend(flags),
        (Values::Text(out), Vector::Text(texts)) => out.extend(texts.into_iter().map(|text| text.map(|text| text.into_owned()))),
        _ => return false,
    }
    true
}

/// A file writer that hashes what it writes.
struct HashingFile {
    file: std::io::BufWriter<fs::File>,
    hasher: blake3::Hasher,
    size: u64,
}

impl Write for HashingFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes what arrives, in order, and returns the content hash and size.
/// `identifiers` are columns of mostly distinct values (entities), written
/// without a dictionary: one would be about as large as the column, and
/// building it took a sixth of the time.
pub(crate) fn write_file(
    path: &Path,
    format: OutputFormat,
    schema: Arc<Schema>,
    identifiers: &[&str],
    encoded: mpsc::Receiver<Encoded>,
) -> ProviderResult<(String, u64)> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    let cannot = |error: &dyn std::fmt::Display| ProviderError::failed(format!("cannot write `{}`: {error}", path.display()));
    let file = fs::File::create(path).map_err(|error| cannot(&error))?;
    let mut out = HashingFile { file: std::io::BufWriter::with_capacity(1 << 20, file), hasher: blake3::Hasher::new(), size: 0 };
    match format {
        OutputFormat::Jsonl => {
            for chunk in encoded {
                if let Encoded::Jsonl(bytes) = chunk {
                    out.write_all(&bytes).map_err(|error| cannot(&error))?;
                }
            }
        }
        OutputFormat::Parquet => {
            let mut properties = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|error| cannot(&error))?))
                // Fixed, so that the same features give the same bytes
                // (and version) whatever the library's version.
                .set_created_by("mlops".to_owned());
            for identifier in identifiers {
                properties = properties.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(*identifier), false);
            }
            let properties = properties.build();
            let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).map_err(|error| cannot(&error))?;
            for chunk in encoded {
                if let Encoded::Parquet(batch) = chunk {
                    writer.write(&batch).map_err(|error| cannot(&error))?;
                }
            }
            writer.close().map_err(|error| cannot(&error))?;
        }
    }
    out.flush().map_err(|error| cannot(&error))?;
    out.file.get_ref().sync_all().map_err(|error| cannot(&error))?;
    Ok((format!("b3:{}", out.hasher.finalize().to_hex()), out.size))
}
