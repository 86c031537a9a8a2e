//! `mlops.lock.hcl` and the module cache: every module source from an OCI
//! registry is pinned by manifest digest, and its files are kept in
//! `.mlops/modules/sha256-HEX/` next to the root configuration.
//!
//! `mlops init` writes both (it is the only thing that touches the
//! network). The compiler only reads them: a registry source must be in the
//! lock, and its cached files must still match the pinned digest, or the
//! configuration is refused before anything is evaluated. The check needs
//! no network: the cache keeps the manifest exactly as pulled, whose hash
//! is the digest and which lists the digest of every file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlops_units::digest::sha256_digest;

use crate::ast::{Body, ExprKind};
use crate::files::FileSystem;

pub const LOCK_FILE: &str = "mlops.lock.hcl";

/// Source (`oci://HOST/REPOSITORY:TAG`) -> manifest digest (`sha256:…`).
pub type Pins = BTreeMap<String, String>;

/// The pins in `root/mlops.lock.hcl`; empty when there is no lock file.
pub fn read(files: &dyn FileSystem, root: &Path) -> Result<Pins, String> {
    let path = root.join(LOCK_FILE);
    if files.kind(&path).is_none() {
        return Ok(Pins::new());
    }
    let text = files
        .read(&path, crate::limits::MAX_CONFIGURATION_FILE_BYTES)
        .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned()))
        .map_err(|reason| format!("cannot read {LOCK_FILE}: {reason}"))?;
    let body: Body = crate::syntax::parse_file(crate::source::FileId(0), &text).map_err(|diagnostic| {
        let line = diagnostic.primary.map_or(1, |label| text[..(label.span.start as usize).min(text.len())].matches('\n').count() + 1);
        format!("{LOCK_FILE} is not valid (line {line}): {}", diagnostic.message)
    })?;
    let mut pins = Pins::new();
    for block in body.blocks_named("module") {
        let source = block.labels.first().map(|label| label.value.clone()).unwrap_or_default();
        let digest = match block.body.attribute("digest").map(|attribute| &attribute.value.kind) {
            Some(ExprKind::String(digest)) => digest.clone(),
            _ => return Err(format!("{LOCK_FILE}: module \"{source}\" has no `digest`")),
        };
        pins.insert(source, digest);
    }
    Ok(pins)
}

/// The lock file's text for `pins`, in a stable order.
pub fn render(pins: &Pins) -> String {
    let mut text = String::from(
        "# Written by `mlops init`: every module source from a registry, pinned by\n\
         # the digest of its manifest. Commit this file; `mlops init -upgrade`\n\
         # moves the pins to what the tags point at now.\n",
    );
    for (source, digest) in pins {
        text.push_str(&format!("\nmodule \"{source}\" {{\n  digest = \"{digest}\"\n}}\n"));
    }
    text
}

/// Where the files of the module pinned at `digest` are cached.
pub fn cache_directory(root: &Path, digest: &str) -> PathBuf {
    root.join(".mlops").join("modules").join(digest.replace(':', "-"))
}

/// Why a cached module cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheProblem {
    /// Not downloaded (or only partly).
    Missing,
    /// Present, but a file differs from what the digest pins.
    Changed(String),
}

impl std::fmt::Display for CacheProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheProblem::Missing => write!(formatter, "files are missing"),
            CacheProblem::Changed(file) => write!(formatter, "`{file}` differs"),
        }
    }
}

/// Checks the cached module in `directory` against `digest`.
pub fn verify(files: &dyn FileSystem, directory: &Path, digest: &str) -> Result<(), CacheProblem> {
    let limit = crate::limits::MAX_CONFIGURATION_FILE_BYTES;
    let manifest_bytes = files.read(&directory.join("manifest.json"), limit).map_err(|_| CacheProblem::Missing)?;
    if sha256_digest(&manifest_bytes) != digest {
        return Err(CacheProblem::Changed("manifest.json".to_owned()));
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).map_err(|_| CacheProblem::Changed("manifest.json".to_owned()))?;
    let mut listed = Vec::new();
    for layer in manifest.get("layers").and_then(serde_json::Value::as_array).into_iter().flatten() {
        let title = layer.pointer("/annotations/org.opencontainers.image.title").and_then(serde_json::Value::as_str).unwrap_or("");
        let expected = layer.get("digest").and_then(serde_json::Value::as_str).unwrap_or("");
        let bytes = files.read(&directory.join(title), limit).map_err(|_| CacheProblem::Changed(title.to_owned()))?;
        if sha256_digest(&bytes) != expected {
            return Err(CacheProblem::Changed(title.to_owned()));
        }
        listed.push(title.to_owned());
    }
    // A configuration file the publisher did not ship would be loaded too.
    for file in crate::loader::configuration_files(files, directory).map_err(|_| CacheProblem::Missing)? {
        let name = file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if !listed.contains(&name) {
            return Err(CacheProblem::Changed(name));
        }
    }
    Ok(())
}

/// The registry module sources a module directory calls, directly or
/// through its local child modules: `(source, calling directory)`.
pub fn registry_sources(files: &dyn FileSystem, directory: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    let mut seen: Vec<PathBuf> = Vec::new();
    while let Some(current) = pending.pop() {
        let canonical = current.canonicalize().unwrap_or_else(|_| current.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        for file in crate::loader::configuration_files(files, &current).unwrap_or_default() {
            let Ok(text) = files.read(&file, crate::limits::MAX_CONFIGURATION_FILE_BYTES).map(String::from_utf8) else { continue };
            let Ok(text) = text else { continue };
            let Ok(body) = crate::syntax::parse_file(crate::source::FileId(0), &text) else { continue };
            for block in body.blocks_named("module") {
                let Some(ExprKind::String(source)) = block.body.attribute("source").map(|attribute| &attribute.value.kind) else {
                    continue;
                };
                if source.starts_with("oci://") {
                    if !found.contains(source) {
                        found.push(source.clone());
                    }
                } else if source.starts_with("./") || source.starts_with("../") {
                    pending.push(current.join(source));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_round_trips() {
        let directory = std::env::temp_dir().join(format!("mlops-lock-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let pins = Pins::from([
            ("oci://registry.example.com/platform/training:1.4.0".to_owned(), format!("sha256:{}", "a".repeat(64))),
            ("oci://127.0.0.1:5000/features:2".to_owned(), format!("sha256:{}", "b".repeat(64))),
        ]);
        std::fs::write(directory.join(LOCK_FILE), render(&pins)).unwrap();
        assert_eq!(read(&crate::files::DiskFiles, &directory).unwrap(), pins);
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn a_changed_file_in_the_cache_is_named() {
        let directory = std::env::temp_dir().join(format!("mlops-cache-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("main.mlops.hcl"), "variable \"x\" {}\n").unwrap();
        let manifest = serde_json::json!({"layers": [{
            "digest": sha256_digest(b"variable \"x\" {}\n"),
            "annotations": {"org.opencontainers.image.title": "main.mlops.hcl"}
        }]});
        let bytes = serde_json::to_vec(&manifest).unwrap();
        std::fs::write(directory.join("manifest.json"), &bytes).unwrap();
        let digest = sha256_digest(&bytes);
        assert_eq!(verify(&crate::files::DiskFiles, &directory, &digest), Ok(()));
        std::fs::write(directory.join("main.mlops.hcl"), "variable \"y\" {}\n").unwrap();
        assert_eq!(verify(&crate::files::DiskFiles, &directory, &digest), Err(CacheProblem::Changed("main.mlops.hcl".into())));
        std::fs::write(directory.join("main.mlops.hcl"), "variable \"x\" {}\n").unwrap();
        std::fs::write(directory.join("extra.mlops.hcl"), "\n").unwrap();
        assert_eq!(verify(&crate::files::DiskFiles, &directory, &digest), Err(CacheProblem::Changed("extra.mlops.hcl".into())));
        assert_eq!(verify(&crate::files::DiskFiles, &directory.join("absent"), &digest), Err(CacheProblem::Missing));
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
