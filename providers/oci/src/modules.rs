//! Shared modules as OCI artifacts: `mlops module publish` pushes a
//! module directory, `mlops init` pulls one by digest into the module
//! cache. A module artifact has one layer per file (its relative path in
//! the title annotation) and a config listing the files; nothing in it
//! depends on time or place, so publishing the same files again gives the
//! same digest.
//!
//! The cache directory of a module holds its files and `manifest.json`,
//! the manifest exactly as pulled: its SHA-256 is the digest pinned in
//! `mlops.lock.hcl`, and it lists every file's digest, so the compiler can
//! check the cache against the lock without the network.

use std::path::{Path, PathBuf};

use mlops_provider_api::{ProviderError, ProviderResult};
use mlops_provider_support::remote::RemoteLimits;
use serde_json::{json, Value as Json};

use crate::distribution::{parse_reference, Registry};

pub const MODULE_ARTIFACT: &str = "application/vnd.mlops.module.v1";
pub const MODULE_CONFIG: &str = "application/vnd.mlops.module.config.v1+json";

/// The files of a module directory: everything but hidden entries (`.mlops/`,
/// `.git/`, editor files) and a lock file of its own.
pub fn module_files(directory: &Path) -> ProviderResult<Vec<(String, PathBuf)>> {
    Ok(crate::distribution::files_under(directory, crate::distribution::HiddenFiles::Skipped)?
        .into_iter()
        .filter(|(relative, _)| relative != "mlops.lock.hcl")
        .collect())
}

/// Pushes `directory` to `destination` (`oci://HOST/REPOSITORY:TAG`).
/// Returns the manifest digest and the number of files.
pub fn publish(directory: &Path, destination: &str, progress: &dyn Fn(&str)) -> ProviderResult<(String, usize)> {
    let reference = parse_reference(destination)?;
    let Some(tag) = reference.tag().map(str::to_owned) else {
        return Err(ProviderError::with_help(
            format!("`{destination}` has no tag to publish under"),
            "name a version: oci://HOST/REPOSITORY:1.4.0",
        ));
    };
    if reference.digest().is_some() {
        return Err(ProviderError::with_help(
            format!("`{destination}` names a digest; a digest is what publishing produces"),
            "publish under a tag: oci://HOST/REPOSITORY:TAG",
        ));
    }
    let files = module_files(directory)?;
    if !files.iter().any(|(relative, _)| relative.ends_with(".mlops.hcl") && !relative.contains('/')) {
        return Err(ProviderError::with_help(
            format!("{} has no *.mlops.hcl files: it is not a module", directory.display()),
            "publish the directory that holds the module's *.mlops.hcl files",
        ));
    }
    let registry = Registry::connect(reference.resolve_registry(), false, None, None, RemoteLimits::default())?;
    let config = json!({ "files": files.iter().map(|(relative, _)| relative.clone()).collect::<Vec<_>>() });
    let artifact = crate::distribution::Artifact {
        artifact_type: MODULE_ARTIFACT,
        config_media_type: MODULE_CONFIG,
        config: &config,
        annotations: &serde_json::Map::new(),
    };
    let manifest = registry.push_files(reference.repository(), &files, &artifact, &[tag], progress)?;
    Ok((manifest.digest, files.len()))
}

/// The digest `source` (`oci://HOST/REPOSITORY:TAG`) points at now.
pub fn resolve(source: &str) -> ProviderResult<String> {
    let reference = parse_reference(source)?;
    if let Some(digest) = reference.digest() {
        return Ok(digest.to_owned());
    }
    let registry = Registry::connect(reference.resolve_registry(), false, None, None, RemoteLimits::default())?;
    registry.resolve(&reference)
}

/// Downloads the module `source` at `digest` into `destination` (replaced
/// whole), refusing content that does not match the digest.
pub fn pull(source: &str, digest: &str, destination: &Path) -> ProviderResult<usize> {
    let reference = parse_reference(source)?;
    let registry = Registry::connect(reference.resolve_registry(), false, None, None, RemoteLimits::default())?;
    let manifest = registry.require_manifest(reference.repository(), None, Some(digest))?;
    let actual = mlops_units::digest::sha256_digest(&manifest.raw);
    if actual != digest {
        return Err(ProviderError::with_help(
            format!("the OCI registry {} answered {source}@{digest} with different content ({actual})", registry.host()),
            "the registry or something between it and you altered the module; do not use it",
        ));
    }
    if manifest.body.get("artifactType").and_then(Json::as_str) != Some(MODULE_ARTIFACT) {
        return Err(ProviderError::with_help(
            format!("{source}@{digest} is not an mlops module (its artifactType is not {MODULE_ARTIFACT})"),
            "module sources name artifacts pushed by `mlops module publish`",
        ));
    }
    let partial = destination.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(|error| ProviderError::failed(format!("cannot create {}: {error}", partial.display())))?;
    let (_, files) = registry.pull_files(reference.repository(), &manifest, &partial)?;
    std::fs::write(partial.join("manifest.json"), &manifest.raw)
        .map_err(|error| ProviderError::failed(format!("cannot write {}: {error}", partial.display())))?;
    let _ = std::fs::remove_dir_all(destination);
    std::fs::rename(&partial, destination)
        .map_err(|error| ProviderError::failed(format!("cannot move the module into {}: {error}", destination.display())))?;
    Ok(files)
}
