//! Training sets: labels joined point-in-time to feature sets, the way
//! Feast's `get_historical_features` joins an entity frame.
//!
//! For each label row (an entity and the time its label was observed),
//! each feature set gives its latest row for that entity at or before the
//! label's time (and no older than `max_age`, when set), so that no
//! feature computed from the future reaches a training row. Feature sets
//! are held in memory as sorted (entity, time) indexes with their columns;
//! the labels stream through in batches and the result is written like
//! features, versioned by its content.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use mlops_provider_api::{ApplyContext, ProviderError, ProviderResult};
use serde_json::Value as Json;

use crate::features::{
    entity_array, entity_type, timestamp_array, write_file, ComputedFeatures, DatasetFiles, Encoded, OutputFormat, Values,
};
use crate::frame::{read_batches, Batch, ColumnData, ReadPlan};
use crate::Column;

/// A computed feature set to join.
pub struct FeatureSource {
    /// `feature_set.NAME`, for messages.
    pub address: String,
    pub files: Vec<PathBuf>,
    /// `parquet` or `jsonl`.
    pub format: String,
    pub entity: String,
    pub timestamp: String,
    /// The columns to take: its features and aggregates.
    pub columns: Vec<String>,
}

/// The labels: a dataset with an entity and an event time on each row.
pub struct Labels<'a> {
    pub dataset: DatasetFiles<'a>,
    pub entity: &'a str,
    pub timestamp: &'a str,
}

/// A feature set in memory: its rows sorted by entity and time.
struct Index {
    entity_ids: HashMap<String, u32, foldhash::fast::RandomState>,
    /// `starts[id]..starts[id + 1]` are the entity's positions in `rows` and `times`.
    starts: Vec<usize>,
    times: Vec<i64>,
    /// The row (in `values`) of each sorted position.
    rows: Vec<u32>,
    values: Vec<Values>,
}

/// The text of an entity, as both sides compare it.
fn entity_key(data: &ColumnData, index: usize) -> Option<String> {
    match data.json(index) {
        Json::Null => None,
        Json::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

fn column_of<'b>(batch: &'b Batch, name: &str, owner: &str) -> ProviderResult<&'b ColumnData> {
    batch.names.iter().position(|candidate| candidate == name).and_then(|at| batch.columns[at].as_ref()).ok_or_else(|| {
        ProviderError::with_help(
            format!("`{}` ({owner}) has no column `{name}`", batch.file.display()),
            "compute the feature set again: `mlops apply -replace=ADDRESS`",
        )
    })
}

/// The typed column for values like `data`'s. Values read from JSON Lines
/// are typed by what they are: whole numbers, numbers, booleans, text.
fn empty_values(data: &ColumnData) -> Values {
    match data {
        ColumnData::Int(_) => Values::Int(Vec::new()),
        ColumnData::Float(_) => Values::Float(Vec::new()),
        ColumnData::Bool(_) => Values::Bool(Vec::new()),
        ColumnData::Text(_) => Values::Text(Vec::new()),
        ColumnData::Dynamic(values) => {
            let present: Vec<&Json> = values.iter().filter(|value| !value.is_null()).collect();
            if !present.is_empty() && present.iter().all(|value| value.is_i64()) {
                Values::Int(Vec::new())
            } else if !present.is_empty() && present.iter().all(|value| value.is_number()) {
                Values::Float(Vec::new())
            } else if !present.is_empty() && present.iter().all(|value| value.is_boolean()) {
                Values::Bool(Vec::new())
            } else {
                Values::Text(Vec::new())
            }
        }
    }
}

fn push_value(values: &mut Values, data: &ColumnData, index: usize) {
    match (values, data) {
        (Values::Int(out), ColumnData::Int(column)) => out.push(column[index]),
        (Values::Float(out), ColumnData::Float(column)) => out.push(column[index]),
        (Values::Float(out), ColumnData::Int(column)) => out.push(column[index].map(|number| number as f64)),
        (Values::Bool(out), ColumnData::Bool(column)) => out.push(column[index]),
        (Values::Text(out), data) => out.push(match data.json(index) {
            Json::Null => None,
            Json::String(text) => Some(text),
            other => Some(other.to_string()),
        }),
        (Values::Int(out), ColumnData::Dynamic(column)) => {
            out.push(column[index].as_i64().or_else(|| column[index].as_f64().map(|number| number.round() as i64)))
        }
        (Values::Float(out), ColumnData::Dynamic(column)) => out.push(column[index].as_f64()),
        (Values::Bool(out), ColumnData::Dynamic(column)) => out.push(column[index].as_bool()),
        (Values::Int(out), _) => out.push(None),
        (Values::Float(out), _) => out.push(None),
        (Values::Bool(out), _) => out.push(None),
    }
}

fn load(source: &FeatureSource) -> ProviderResult<Index> {
    let owner = source.address.as_str();
    let mut wanted = vec![source.entity.clone(), source.timestamp.clone()];
    wanted.extend(source.columns.iter().cloned());
    let plan = ReadPlan::new(None, Some(&wanted));
    let mut entity_ids: HashMap<String, u32, foldhash::fast::RandomState> = HashMap::default();
    let (mut entities, mut times) = (Vec::new(), Vec::new());
    let mut values: Option<Vec<Values>> = None;
    read_batches(&source.files, &source.format, &plan, |batch| {
        let entity = column_of(&batch, &source.entity, owner)?;
        // Its absence is an error; its values are read by `required_time`.
        column_of(&batch, &source.timestamp, owner)?;
        let columns: Vec<&ColumnData> = source.columns.iter().map(|name| column_of(&batch, name, owner)).collect::<ProviderResult<_>>()?;
        let values = values.get_or_insert_with(|| columns.iter().map(|data| empty_values(data)).collect());
        for index in 0..batch.rows {
            // A row without an entity joins nothing.
            let Some(key) = entity_key(entity, index) else { continue };
            let next = entity_ids.len() as u32;
            entities.push(*entity_ids.entry(key).or_insert(next));
            times.push(batch.required_time(&source.timestamp, index)?);
            for (out, data) in values.iter_mut().zip(&columns) {
                push_value(out, data, index);
            }
        }
        Ok(())
    })?;
    // By entity (a counting sort: ids are dense), then time, then file order.
    let mut starts = vec![0usize; entity_ids.len() + 1];
    for &entity in &entities {
        starts[entity as usize + 1] += 1;
    }
    for index in 1..starts.len() {
        starts[index] += starts[index - 1];
    }
    let mut keyed: Vec<(i64, u32)> = vec![(0, 0); entities.len()];
    let mut next = starts.clone();
    for (row, &entity) in entities.iter().enumerate() {
        keyed[next[entity as usize]] = (times[row], row as u32);
        next[entity as usize] += 1;
    }
    for window in starts.windows(2) {
        keyed[window[0]..window[1]].sort_unstable();
    }
    Ok(Index {
        entity_ids,
        starts,
        times: keyed.iter().map(|(time, _)| *time).collect(),
        rows: keyed.iter().map(|(_, row)| *row).collect(),
        values: values.unwrap_or_default(),
    })
}

impl Index {
    /// The row to use for `entity` at `time`: its latest at or before it,
    /// no older than `max_age`.
    fn as_of(&self, entity: &str, time: i64, max_age: Option<i64>) -> Option<usize> {
        let id = *self.entity_ids.get(entity)? as usize;
        let (start, end) = (self.starts[id], self.starts[id + 1]);
        let after = self.times[start..end].partition_point(|&candidate| candidate <= time);
        let position = start + after.checked_sub(1)?;
        if max_age.is_some_and(|max_age| time - self.times[position] > max_age) {
            return None;
        }
        Some(self.rows[position] as usize)
    }
}

/// Joins `sources` to the labels and writes the training set into a new
/// file in `directory` (`format`: `parquet` or `jsonl`). Nothing is left
/// behind when it fails.
pub fn join_point_in_time(
    labels: &Labels<'_>,
    sources: &[FeatureSource],
    max_age_micros: Option<i64>,
    format: &str,
    directory: &Path,
    context: &dyn ApplyContext,
) -> ProviderResult<ComputedFeatures> {
    let declared: Vec<Column> = labels.dataset.columns.map(<[Column]>::to_vec).unwrap_or_default();
    if declared.is_empty() {
        return Err(ProviderError::with_help("the labels dataset declares no schema", "declare the labels' columns in a `schema` block"));
    }
    // Output columns: the labels', then each feature set's; a name twice is an error.
    let mut names: Vec<(String, String)> = declared.iter().map(|column| (column.name.clone(), "the labels".to_owned())).collect();
    for source in sources {
        for column in &source.columns {
            if let Some((_, owner)) = names.iter().find(|(name, _)| name == column) {
                return Err(ProviderError::with_help(
                    format!("the column `{column}` comes from both {owner} and {}", source.address),
                    "rename the feature in one of them: a training set's columns must have one name each",
                ));
            }
            names.push((column.clone(), source.address.clone()));
        }
    }
    let mut indexes = Vec::with_capacity(sources.len());
    for source in sources {
        context.progress(&format!("reading {}", source.address));
        indexes.push(load(source)?);
    }
    let output = match format {
        "jsonl" => OutputFormat::Jsonl,
        _ => OutputFormat::Parquet,
    };
    let mut fields: Vec<Field> = declared
        .iter()
        .map(|column| {
            let data_type = if column.column_type == "timestamp" {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            } else {
                entity_type(Some(column))
            };
            Field::new(&column.name, data_type, true)
        })
        .collect();
    for (source, index) in sources.iter().zip(&indexes) {
        for (name, values) in source.columns.iter().zip(&index.values) {
            fields.push(Field::new(name, values.data_type(), true));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let file_name = if output == OutputFormat::Jsonl { "features.jsonl" } else { "features.parquet" };
    std::fs::create_dir_all(directory)
        .map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", directory.display())))?;
    let partial = directory.join(format!(".{file_name}.partial-{}", std::process::id()));
    let plan = ReadPlan::new(Some(&declared), Some(&declared.iter().map(|column| column.name.clone()).collect::<Vec<_>>()));
    let result = std::thread::scope(|scope| -> ProviderResult<(usize, String, u64)> {
        let (encoded_out, encoded_in) = mpsc::sync_channel::<Encoded>(2);
        let writer_schema = Arc::clone(&schema);
        let partial_path = partial.clone();
        let identifiers = [labels.entity];
        let writer = scope.spawn(move || write_file(&partial_path, output, writer_schema, &identifiers, encoded_in));
        let joined = read_batches(labels.dataset.files, labels.dataset.format, &plan, |batch| {
            if context.interrupted() {
                return Err(ProviderError::Interrupted);
            }
            let entity = column_of(&batch, labels.entity, "the labels")?;
            column_of(&batch, labels.timestamp, "the labels")?;
            // For each feature set, the row each label row takes (if any).
            let mut picked: Vec<Vec<Option<usize>>> = vec![Vec::with_capacity(batch.rows); sources.len()];
            for index in 0..batch.rows {
                let key = entity_key(entity, index);
                let at = batch.required_time(labels.timestamp, index)?;
                for (rows, source_index) in picked.iter_mut().zip(&indexes) {
                    rows.push(key.as_deref().and_then(|key| source_index.as_of(key, at, max_age_micros)));
                }
            }
            let mut columns: Vec<Values> = Vec::new();
            for (rows, source_index) in picked.iter().zip(&indexes) {
                for values in &source_index.values {
                    columns.push(gather(values, rows));
                }
            }
            let encoded = match output {
                OutputFormat::Parquet => {
                    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
                    for (column, data) in declared.iter().zip(&batch.columns) {
                        arrays.push(if column.column_type == "timestamp" {
                            timestamp_array(&batch, &column.name)?
                        } else {
                            entity_array(data.as_ref(), Some(column), batch.rows)
                        });
                    }
                    arrays.extend(columns.iter().map(|values| values.array(0..batch.rows)));
                    Encoded::Parquet(
                        RecordBatch::try_new(Arc::clone(&schema), arrays).map_err(|error| ProviderError::failed(error.to_string()))?,
                    )
                }
                OutputFormat::Jsonl => {
                    let mut bytes = Vec::with_capacity(batch.rows * 96);
                    for index in 0..batch.rows {
                        let mut object = serde_json::Map::new();
                        for (column, data) in declared.iter().zip(&batch.columns) {
                            object.insert(column.name.clone(), data.as_ref().map_or(Json::Null, |data| data.json(index)));
                        }
                        for ((name, _), values) in names[declared.len()..].iter().zip(&columns) {
                            object.insert(name.clone(), values.json(index));
                        }
                        let _ = serde_json::to_writer(&mut bytes, &Json::Object(object));
                        bytes.push(b'\n');
                    }
                    Encoded::Jsonl(bytes)
                }
            };
            encoded_out.send(encoded).map_err(|_| ProviderError::failed("the training set's writer stopped"))
        });
        drop(encoded_out);
        let written = writer.join().unwrap_or_else(|_| Err(ProviderError::failed("the training set's writer failed")));
        // A writer that failed says why, not the joiner that found it gone.
        let (version, size) = written?;
        Ok((joined?, version, size))
    });
    let (row_count, version, size) = match result {
        Ok(done) => done,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    let file = directory.join(file_name);
    std::fs::rename(&partial, &file).map_err(|error| {
        let _ = std::fs::remove_file(&partial);
        ProviderError::failed(format!("cannot store `{}`: {error}", file.display()))
    })?;
    Ok(ComputedFeatures { file, file_name, version, row_count, size })
}

/// The values at `rows` (null where a label row found no feature row).
fn gather(values: &Values, rows: &[Option<usize>]) -> Values {
    match values {
        Values::Int(column) => Values::Int(rows.iter().map(|row| row.and_then(|row| column[row])).collect()),
        Values::Float(column) => Values::Float(rows.iter().map(|row| row.and_then(|row| column[row])).collect()),
        Values::Bool(column) => Values::Bool(rows.iter().map(|row| row.and_then(|row| column[row])).collect()),
        Values::Text(column) => Values::Text(rows.iter().map(|row| row.and_then(|row| column[row].clone())).collect()),
    }
}

/// What a training set's configuration names, with every input's data on
/// this machine: `locate` gives the local directory of the data at a `uri`
/// of a recorded `version` (staging it when it is remote).
pub struct TrainingSetInputs {
    pub labels_files: Vec<PathBuf>,
    pub labels_format: String,
    pub labels_columns: Option<Vec<Column>>,
    pub labels_uri: String,
    pub entity: String,
    pub timestamp: String,
    pub sources: Vec<FeatureSource>,
    pub max_age_micros: Option<i64>,
    pub format: String,
}

impl TrainingSetInputs {
    pub fn from_config(
        config: &mlops_provider_api::Configuration,
        mut locate: impl FnMut(&str, Option<&str>) -> ProviderResult<PathBuf>,
    ) -> ProviderResult<TrainingSetInputs> {
        use mlops_provider_api::Value;
        let text = |value: &Value, name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let labels = config.get("labels").cloned().unwrap_or_default();
        let labels_uri = text(&labels, "uri").ok_or_else(|| ProviderError::failed("the labels have no stored data yet"))?;
        let labels_files = crate::data_files(&locate(&labels_uri, text(&labels, "version").as_deref())?)?;
        let mut sources = Vec::new();
        for feature_set in config.get("features").and_then(Value::as_array).into_iter().flatten() {
            let address = feature_set.as_reference().map_or_else(|| "a feature set".to_owned(), |reference| reference.address.clone());
            let uri = text(feature_set, "uri").ok_or_else(|| ProviderError::failed(format!("{address} has no stored features yet")))?;
            let timestamp = text(feature_set, "timestamp").ok_or_else(|| {
                ProviderError::with_help(
                    format!("{address} has no `timestamp`, so it cannot be joined point-in-time"),
                    "set `timestamp = \"COLUMN\"` on the feature set",
                )
            })?;
            let location = locate(&uri, text(feature_set, "version").as_deref())?;
            let mut columns: Vec<String> = Vec::new();
            for block in ["feature", "aggregate"] {
                columns.extend(feature_set.get(block).and_then(Value::as_object).into_iter().flatten().map(|(name, _)| name.clone()));
            }
            sources.push(FeatureSource {
                address,
                files: crate::data_files(&location)?,
                format: text(feature_set, "format").unwrap_or_else(|| "parquet".to_owned()),
                entity: text(feature_set, "entity").unwrap_or_default(),
                timestamp,
                columns,
            });
        }
        let max_age_micros = crate::duration_micros(config.get("max_age"), "`max_age`")?;
        Ok(TrainingSetInputs {
            labels_files,
            labels_format: text(&labels, "format").unwrap_or_else(|| "csv".to_owned()),
            labels_columns: crate::columns_of(&labels),
            labels_uri,
            entity: config.get("entity").and_then(Value::as_str).unwrap_or_default().to_owned(),
            timestamp: config.get("timestamp").and_then(Value::as_str).unwrap_or_default().to_owned(),
            sources,
            max_age_micros,
            format: config.get("format").and_then(Value::as_str).unwrap_or("parquet").to_owned(),
        })
    }

    /// Joins them into a new file in `directory`.
    pub fn join(&self, directory: &Path, context: &dyn ApplyContext) -> ProviderResult<ComputedFeatures> {
        let labels = Labels {
            dataset: DatasetFiles {
                files: &self.labels_files,
                format: &self.labels_format,
                columns: self.labels_columns.as_deref(),
                validated: false,
            },
            entity: &self.entity,
            timestamp: &self.timestamp,
        };
        join_point_in_time(&labels, &self.sources, self.max_age_micros, &self.format, directory, context)
    }
}
