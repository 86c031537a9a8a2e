//! `mlops features-shard`: one shard of a feature set computed in the
//! cluster, what each pod of its Indexed Job runs. It downloads its share
//! of the dataset's files (the `index`-th of every `count`, in key order),
//! computes the features with the same engine as `apply` on this machine,
//! uploads its part, and reports the part's content version.
//!
//! Aggregates need every row of an entity: a feature set with `aggregate`
//! blocks is sharded by entity instead. Each shard reads every file and
//! keeps the rows whose entity hashes to it, so every entity's windows are
//! computed whole, by exactly one shard.

use std::path::Path;

use mlops_compiler::diagnostic::{codes, Diagnostic};
use mlops_provider_api::{ApplyContext, ProviderError, RowEvaluator, Value};
use serde_json::Value as Json;

use super::{fail, CommandResult};

/// What the shard is lent while computing: the language's evaluator.
struct ShardContext;

impl ApplyContext for ShardContext {
    fn record_handle(&self, _handle: Json) -> Result<(), ProviderError> {
        Ok(())
    }
    fn progress(&self, message: &str) {
        eprintln!("{message}");
    }
    fn interrupted(&self) -> bool {
        false
    }
    fn row_evaluator(&self) -> &dyn RowEvaluator {
        &mlops_engine::row_expression::LanguageRowEvaluator
    }
    fn fetch(&self, uri: &str, _destination: &Path) -> Result<(), ProviderError> {
        Err(ProviderError::failed(format!("a shard reads only its dataset, not `{uri}`")))
    }
}

/// The shard an entity's rows go to: BLAKE3 of its value's JSON, modulo.
pub fn entity_shard(value: &Json, count: usize) -> usize {
    let hash = blake3::hash(value.to_string().as_bytes());
    (u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or_default()) % count.max(1) as u64) as usize
}

/// Writes the rows of `files` whose `entity` belongs to shard `index` of
/// `count` into `destination` as JSON Lines (typed by the schema, so read
/// back the same); returns how many.
fn rows_of_entities(
    files: &[std::path::PathBuf],
    format: &str,
    columns: Option<&[mlops_data::Column]>,
    entity: &str,
    index: usize,
    count: usize,
    destination: &Path,
) -> Result<usize, ProviderError> {
    use std::io::Write as _;
    let unwritable = |error: std::io::Error| ProviderError::failed(format!("cannot write {}: {error}", destination.display()));
    std::fs::create_dir_all(destination.parent().unwrap_or(destination)).map_err(unwritable)?;
    let mut writer = std::io::BufWriter::new(std::fs::File::create(destination).map_err(unwritable)?);
    let mut kept = 0;
    mlops_data::for_each_row(files, format, columns, |_, _, row| {
        if entity_shard(row.get(entity).unwrap_or(&Json::Null), count) == index {
            serde_json::to_writer(&mut writer, &row).map_err(|error| ProviderError::failed(format!("cannot write a row: {error}")))?;
            writer.write_all(b"\n").map_err(unwritable)?;
            kept += 1;
        }
        Ok(())
    })?;
    writer.flush().map_err(unwritable)?;
    Ok(kept)
}

/// The shard's part name: `part-00003.parquet`.
pub fn part_name(index: usize, format: &str) -> String {
    format!("part-{index:05}.{}", if format == "jsonl" { "jsonl" } else { "parquet" })
}

/// `mlops features-shard`: `spec` is the feature set's written
/// configuration and its dataset (`{"config": …, "input": {"uri", "format",
/// "schema"}}`), `output` the prefix the parts go under.
pub fn features_shard_command(spec: &str, index: Option<usize>, count: usize, output: &str, report: Option<&Path>) -> CommandResult {
    let failed = |message: String, help: &str| fail(Diagnostic::error(codes::PROVIDER_ERROR, message).with_help(help));
    let Some(index) = index else {
        return failed("which shard this is is not known".into(), "pass --index, or run in an Indexed Job's pod (JOB_COMPLETION_INDEX)");
    };
    let spec: Json = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(error) => {
            return failed(format!("the shard's --spec is not JSON: {error}"), "the kubernetes provider writes it; render it again")
        }
    };
    // Typed as apply types it (windows are durations), by the stdlib schema.
    let schema = mlops_compiler::schema::Schemas::standard().kind("feature_set", false).map(|schema| &schema.body);
    let config = mlops_engine::convert::provider_configuration(
        &spec["config"].as_object().cloned().unwrap_or_default(),
        schema,
        &[],
        &std::collections::BTreeMap::new(),
    );
    let input = Value::from_json(&spec["input"]);
    let (Some(uri), Some(format)) = (input.get("uri").and_then(Value::as_str), input.get("format").and_then(Value::as_str)) else {
        return failed("the shard's --spec names no input uri and format".into(), "the kubernetes provider writes it; render it again");
    };
    let columns = mlops_data::columns_of(&input);
    let staging = std::env::temp_dir().join(format!("mlops-shard-{index}-{}", std::process::id()));
    let settings = super::drift::s3_settings_from_environment();
    let provider = mlops_provider_s3::S3Provider::new();
    let result = (|| {
        let inputs = staging.join("input");
        std::fs::create_dir_all(&inputs).map_err(|error| ProviderError::failed(format!("cannot create {}: {error}", inputs.display())))?;
        let by_entity = config.get("aggregate").and_then(Value::as_object).is_some_and(|aggregates| !aggregates.is_empty());
        let fetched = if by_entity {
            provider.download_shard(&settings, uri, &inputs, 0, 1)?
        } else {
            provider.download_shard(&settings, uri, &inputs, index, count)?
        };
        eprintln!("shard {index} of {count}: {} file(s) of {uri}", fetched.files);
        let mut files = mlops_data::data_files(&inputs)?;
        let mut format = format;
        if by_entity {
            let entity = config.get("entity").and_then(Value::as_str).unwrap_or_default();
            let kept = staging.join("entities").join("rows.jsonl");
            let rows = rows_of_entities(&files, format, columns.as_deref(), entity, index, count, &kept)?;
            eprintln!("shard {index} of {count}: {rows} row(s) of its entities");
            files = vec![kept];
            format = "jsonl";
        }
        let dataset = mlops_data::features::DatasetFiles { files: &files, format, columns: columns.as_deref(), validated: false };
        let computed = mlops_data::features::compute_features(&config, &dataset, &staging.join("output"), &ShardContext)?;
        let part = part_name(index, computed.file_name.rsplit('.').next().unwrap_or("parquet"));
        let destination = format!("{}/{part}", output.trim_end_matches('/'));
        provider.upload_file(&settings, &computed.file, &destination)?;
        Ok::<_, ProviderError>(serde_json::json!({
            "part": part,
            "version": computed.version,
            "rows": computed.row_count,
            "size_bytes": computed.size,
            "files": fetched.files,
        }))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let report_json = match result {
        Ok(report) => report,
        Err(error) => {
            let help = error.help().unwrap_or("check the dataset's files and the feature expressions").to_owned();
            return fail(Diagnostic::error(codes::PROVIDER_ERROR, format!("shard {index} of {count} failed: {error}")).with_help(help));
        }
    };
    outln!("{report_json}");
    if let Some(path) = report {
        if let Err(error) = std::fs::write(path, report_json.to_string()) {
            return failed(format!("cannot write {}: {error}", path.display()), "--report must name a writable file");
        }
    }
    Ok(0)
}
