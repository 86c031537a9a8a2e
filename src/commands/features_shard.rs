//! `mlops features-shard`: one shard of a feature set computed in the
//! cluster, what each pod of its Indexed Job runs. It downloads its share
//! of the dataset's files (the `index`-th of every `count`, in key order),
//! computes the features with the same engine as `apply` on this machine,
//! uploads its part, and reports the part's content version.

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
    let config = mlops_provider_api::configuration_from_json(&spec["config"].as_object().cloned().unwrap_or_default());
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
        let fetched = provider.download_shard(&settings, uri, &inputs, index, count)?;
        eprintln!("shard {index} of {count}: {} file(s) of {uri}", fetched.files);
        let files = mlops_data::data_files(&inputs)?;
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
