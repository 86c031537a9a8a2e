//! `mlops drift`: drift scores between a reference and a current dataset
//! (local or `s3://`); what a monitor's CronJob runs in the cluster.

use std::path::{Path, PathBuf};

use mlops_compiler::diagnostic::{codes, Diagnostic};

use super::{fail, CommandResult};

/// A local copy of the data at `location`: the path itself, or objects
/// under an `s3://` prefix downloaded into `staging`.
fn drift_input(location: &str, staging: &Path) -> mlops_provider_api::ProviderResult<PathBuf> {
    if !location.starts_with("s3://") {
        return Ok(PathBuf::from(location.strip_prefix("file://").unwrap_or(location)));
    }
    let target =
        mlops_provider_api::Target { kind: "dataset".into(), provider_config: s3_settings_from_environment(), ..Default::default() };
    let request = mlops_provider_api::FetchRequest { target, uri: location.to_owned(), destination: staging.to_path_buf(), version: None };
    mlops_provider_api::Provider::fetch(&mlops_provider_s3::S3Provider::new(), request)?;
    Ok(staging.to_path_buf())
}

/// The s3 provider's settings inside a pod: the endpoint and region the
/// AWS environment names (credentials come from the environment too).
pub(super) fn s3_settings_from_environment() -> mlops_provider_api::Configuration {
    use mlops_provider_api::Value;
    let mut settings = mlops_provider_api::Configuration::new();
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        settings.insert("endpoint".into(), Value::String(endpoint));
        settings.insert("force_path_style".into(), Value::Bool(true));
    }
    if let Ok(region) = std::env::var("AWS_REGION") {
        settings.insert("region".into(), Value::String(region));
    }
    settings
}

/// `mlops drift`: what a monitor's CronJob runs in the cluster.
pub fn drift_command(reference: &str, current: &str, columns: &str, method: &str, threshold: f64, output: Option<&Path>) -> CommandResult {
    let columns: Vec<String> = columns.split(',').map(str::trim).filter(|column| !column.is_empty()).map(str::to_owned).collect();
    if columns.is_empty() {
        return fail(Diagnostic::error(codes::PROVIDER_ERROR, "no columns to compare").with_help("name them with --columns amount,age"));
    }
    let staging = std::env::temp_dir().join(format!("mlops-drift-{}", std::process::id()));
    let result = (|| {
        let reference = drift_input(reference, &staging.join("reference"))?;
        let current = drift_input(current, &staging.join("current"))?;
        mlops_provider_local::drift::compute_between(&reference, &current, &columns, method, threshold)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let (scores, drifted) = match result {
        Ok(result) => result,
        Err(error) => {
            let help = error.help().unwrap_or("check both locations and the columns");
            return fail(Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot compute drift: {error}")).with_help(help));
        }
    };
    let report = serde_json::json!({ "scores": scores, "drifted": drifted });
    outln!("{report}");
    if let Some(path) = output {
        if let Err(error) = std::fs::write(path, report.to_string()) {
            return fail(
                Diagnostic::error(codes::PROVIDER_ERROR, format!("cannot write {}: {error}", path.display()))
                    .with_help("--output must name a writable file"),
            );
        }
    }
    Ok(0)
}
