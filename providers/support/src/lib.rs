//! What the built-in providers share beyond the protocol of
//! `mlops-provider-api`: the model registry plan ([`registry`]), time limits
//! and Ctrl-C for calls to remote servers ([`remote`]), reading
//! configuration values as the compiler checked them ([`config`]), the
//! metrics a run reports ([`declared_metrics`]), directory walks
//! ([`files_under`]) and error wording.
//!
//! A third-party provider needs only `mlops-provider-api`; this crate is a
//! convenience, not part of the contract.

pub mod config;
pub mod registry;
pub mod remote;

use std::path::PathBuf;

use mlops_provider_api::{Attributes, ProviderError, ProviderResult};
use serde_json::Value as Json;

pub use config::{duration, field, input_identities, state_strings, state_text, strings, tag_text, text};

/// The declared metrics out of what a run wrote to `MLOPS_METRICS_FILE`
/// (`None` when it wrote nothing). `run` names the run in messages ("run
/// run-2026…", "Job fraud-…"). A run must report every declared metric as a
/// number; undeclared ones are dropped.
pub fn declared_metrics(run: &str, written: Option<&str>, declared: &[String]) -> ProviderResult<Attributes> {
    let written = written.filter(|text| !text.trim().is_empty());
    let metrics: Json = match written {
        Some(text) => serde_json::from_str(text)
            .map_err(|error| ProviderError::failed(format!("{run} wrote metrics that are not a JSON object: {error}")))?,
        None if declared.is_empty() => Json::Object(Attributes::new()),
        None => {
            return Err(ProviderError::with_help(
                format!("{run} did not write its metrics file"),
                "write a JSON object of metric name to number to the path in MLOPS_METRICS_FILE",
            ))
        }
    };
    if !metrics.is_object() {
        return Err(ProviderError::with_help(
            format!("{run} wrote metrics that are not a JSON object"),
            "write a JSON object of metric name to number to the path in MLOPS_METRICS_FILE",
        ));
    }
    let mut reported = Attributes::new();
    for name in declared {
        let wrong = |what: String| {
            ProviderError::with_help(
                format!("{run} reported the declared metric `{name}` as {what}, not a number"),
                format!("write \"{name}\": NUMBER (a JSON number, unquoted, finite) into MLOPS_METRICS_FILE"),
            )
        };
        match metrics.get(name) {
            Some(Json::Number(number)) => match number.as_f64().filter(|value| value.is_finite()) {
                Some(value) => {
                    reported.insert(name.clone(), serde_json::json!(value));
                }
                None => return Err(wrong(format!("{number}"))),
            },
            Some(Json::String(text)) => {
                let shown: String = text.chars().take(40).collect();
                return Err(wrong(format!("the string \"{shown}\"")));
            }
            Some(other) => {
                let what = match other {
                    Json::Null => "null",
                    Json::Bool(_) => "a bool",
                    Json::Array(_) => "a list",
                    _ => "an object",
                };
                return Err(wrong(what.to_owned()));
            }
            None => {
                return Err(ProviderError::with_help(
                    format!("{run} did not report the declared metric `{name}`"),
                    format!("write \"{name}\": NUMBER into MLOPS_METRICS_FILE, or remove it from `metrics`"),
                ))
            }
        }
    }
    Ok(reported)
}

/// Whether [`files_under`] lists hidden files (names starting with `.`) and
/// looks into hidden directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenFiles {
    Listed,
    Skipped,
}

/// The files under `path` (`path` itself, if it is a file) as `(path
/// relative to it with /, path)`, sorted, so the same files always come in
/// the same order. Symbolic links to files are listed (model snapshots are
/// often links into a blob store); links to directories are not followed,
/// so a link cannot make the walk loop.
pub fn files_under(path: &std::path::Path, hidden: HiddenFiles) -> ProviderResult<Vec<(String, PathBuf)>> {
    let metadata = std::fs::metadata(path).map_err(|error| unreadable(path, &error))?;
    if metadata.is_file() {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(vec![(name, path.to_path_buf())]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let entries = std::fs::read_dir(&directory).map_err(|error| unreadable(&directory, &error))?;
        for entry in entries {
            let entry = entry.map_err(|error| unreadable(&directory, &error))?;
            if hidden == HiddenFiles::Skipped && entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let entry_path = entry.path();
            let file_type = entry.file_type().map_err(|error| unreadable(&entry_path, &error))?;
            let is_file = file_type.is_file() || (file_type.is_symlink() && entry_path.is_file());
            if file_type.is_dir() {
                pending.push(entry_path);
            } else if is_file {
                let relative = entry_path.strip_prefix(path).unwrap_or(&entry_path).to_string_lossy().replace('\\', "/");
                files.push((relative, entry_path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// An IO error on a user's file or directory, with help when it is missing.
pub fn unreadable(path: &std::path::Path, error: &std::io::Error) -> ProviderError {
    if error.kind() == std::io::ErrorKind::NotFound {
        ProviderError::with_help(
            format!("`{}` does not exist", path.display()),
            "check the path; relative paths start at the configuration's directory",
        )
    } else {
        ProviderError::failed(format!("cannot read `{}`: {error}", path.display()))
    }
}

/// The innermost cause of an error (`connection refused` rather than
/// `error sending request`), for messages that must say what went wrong.
pub fn root_cause(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    // Its first line, unless that is a debug dump (some SDKs' innermost
    // errors display as their structs).
    let text = current.to_string();
    let first_line = text.lines().next().unwrap_or_default().trim();
    if first_line.is_empty() || first_line.contains("{ ") || first_line.ends_with(')') && first_line.contains("})") {
        "the connection failed".to_owned()
    } else {
        first_line.to_owned()
    }
}

/// `b3:4f1a2b3c…`: a content version, identity or digest shortened for
/// messages and plans. Anything that is not `SCHEME:HEX` with a long hash
/// (a registry version `7`, a run id) is shown whole.
pub fn short_version(version: &str) -> String {
    match version.split_once(':') {
        Some((scheme, hash)) if hash.len() > 12 && hash.chars().all(|character| character.is_ascii_hexdigit()) => {
            format!("{scheme}:{}…", &hash[..8])
        }
        _ => version.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_lists_linked_files_skips_hidden_ones_on_request_and_never_loops() {
        let root = std::env::temp_dir().join(format!("mlops-files-under-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("model/weights")).unwrap();
        std::fs::create_dir_all(root.join("model/.cache")).unwrap();
        std::fs::write(root.join("model/weights/layer0.bin"), b"w").unwrap();
        std::fs::write(root.join("model/.cache/blob"), b"b").unwrap();
        std::fs::write(root.join("blob"), b"linked").unwrap();
        std::os::unix::fs::symlink(root.join("blob"), root.join("model/config.json")).unwrap();
        std::os::unix::fs::symlink(root.join("model"), root.join("model/weights/loop")).unwrap();

        let names = |hidden| -> Vec<String> {
            files_under(&root.join("model"), hidden).unwrap().into_iter().map(|(relative, _)| relative).collect()
        };
        assert_eq!(names(HiddenFiles::Listed), [".cache/blob", "config.json", "weights/layer0.bin"]);
        assert_eq!(names(HiddenFiles::Skipped), ["config.json", "weights/layer0.bin"]);
        let single = files_under(&root.join("blob"), HiddenFiles::Skipped).unwrap();
        assert_eq!(single, [("blob".to_owned(), root.join("blob"))]);
        let missing = files_under(&root.join("nothing"), HiddenFiles::Skipped).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
