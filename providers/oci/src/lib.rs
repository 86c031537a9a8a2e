//! The oci provider: model versions as OCI artifacts in any distribution
//! registry, `data "image"` (a tag resolved to its digest at plan time),
//! `data "model"`, and the module artifacts `mlops module publish` pushes
//! and `mlops init` pulls ([`modules`]).
//!
//! A model `NAME` lives in the repository `PREFIX/NAME` of the provider's
//! `registry` (`HOST[/PREFIX]`). Version N is the tag `N`; an alias is a tag
//! on the same manifest, so moving `champion` is one manifest PUT. Each
//! version's config blob holds the run id, fingerprint, metrics and the
//! whole lineage; the same lineage is repeated as manifest annotations, so
//! `oras manifest fetch` shows it. The version's `uri` is
//! `oci://HOST/REPO@sha256:…`: serving pulls exactly that manifest back.

pub mod credentials;
pub mod distribution;
pub mod modules;

use std::collections::BTreeMap;
use std::path::PathBuf;

use distribution::{parse_reference, Manifest, Registry};
use mlops_provider_api::{
    ApplyContext, ApplyRequest, ApplyResponse, Attributes, DataSourceType, FetchRequest, FetchResponse, ImportRequest, ImportResponse,
    Kinds, PlanRequest, PlanResponse, Provider, ProviderError, ProviderResult, ReadRequest, ReadResponse, ResourceType, Target,
};
use mlops_provider_api::{Configuration, Value};
use mlops_provider_support::registry::{
    alias_moves, lineage_tags, model_state, pinned_version, plan_model, registered_model_name, string_entries, wanted_aliases, LIVE_ALIASES,
};
use mlops_provider_support::{field, state_strings, state_text};
use mlops_provider_support::{short_version, text};
use serde_json::{json, Value as Json};

pub const MODEL_ARTIFACT: &str = "application/vnd.mlops.model.v1";
pub const MODEL_CONFIG: &str = "application/vnd.mlops.model.config.v1+json";
/// The private key holding `{version: manifest digest}`.
const DIGESTS: &str = "digests";
/// The private key holding `{version: digest}` for a version tag that now
/// points at another manifest than the one mlops pushed.
const RETAGGED: &str = "retagged";

pub struct OciProvider {
    kinds: Kinds,
}

impl Default for OciProvider {
    fn default() -> OciProvider {
        OciProvider::new()
    }
}

impl OciProvider {
    pub fn new() -> OciProvider {
        OciProvider { kinds: Kinds::new().resource("model", ModelType).data_source("model", ModelSource).data_source("image", ImageSource) }
    }
}

/// The provider's registry host and repository prefix.
fn registry_setting(target: &Target) -> ProviderResult<(String, String)> {
    let registry = text(&target.provider_config, "registry").ok_or_else(|| {
        ProviderError::with_help(
            "provider \"oci\" has no `registry` to keep models in",
            "add `registry = \"registry.example.com/models\"` to the provider \"oci\" block",
        )
    })?;
    let registry = registry.trim_start_matches("oci://").trim_end_matches('/');
    Ok(match registry.split_once('/') {
        Some((host, prefix)) => (host.to_owned(), prefix.to_owned()),
        None => (registry.to_owned(), String::new()),
    })
}

fn connect(target: &Target, host: &str) -> ProviderResult<Registry> {
    let config = &target.provider_config;
    Registry::connect(
        host,
        config.get("insecure").and_then(Value::as_bool).unwrap_or(false),
        text(config, "username"),
        text(config, "password"),
        mlops_provider_support::remote::RemoteLimits::from_config(config),
    )
}

/// The model's registry and repository.
fn model_repository(target: &Target, config: &Configuration) -> ProviderResult<(Registry, String)> {
    let (host, prefix) = registry_setting(target)?;
    let name = registered_model_name(target, config);
    if name.chars().any(|character| !(character.is_ascii_lowercase() || character.is_ascii_digit() || "._-/".contains(character))) {
        return Err(ProviderError::with_help(
            format!("`{name}` cannot name an OCI repository"),
            "OCI repository names are lower case letters, digits and . _ - /; set `name` on the model",
        ));
    }
    let repository = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
    Ok((connect(target, &host)?, repository))
}

fn uri_of(registry: &Registry, repository: &str, digest: &str) -> String {
    format!("oci://{}/{repository}@{digest}", registry.host())
}

impl Provider for OciProvider {
    fn name(&self) -> &'static str {
        "oci"
    }

    fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    fn fetch(&self, request: FetchRequest) -> ProviderResult<FetchResponse> {
        let reference = parse_reference(&request.uri)?;
        let Some(digest) = reference.digest().map(str::to_owned) else {
            return Err(ProviderError::with_help(
                format!("`{}` is not pinned by digest", request.uri),
                "a model version's uri names its manifest digest: oci://HOST/REPOSITORY@sha256:…",
            ));
        };
        let registry = connect(&request.target, reference.resolve_registry())?;
        let manifest = registry.require_manifest(reference.repository(), None, Some(&digest))?;
        std::fs::create_dir_all(&request.destination)
            .map_err(|error| ProviderError::failed(format!("cannot create {}: {error}", request.destination.display())))?;
        let (copied, files) = registry.pull_files(reference.repository(), &manifest, &request.destination)?;
        Ok(FetchResponse { copied, files })
    }
}

/// A model's versions as OCI artifacts. Names and references are checked
/// by the schema; nothing else can be found without the registry.
struct ModelType;

impl ResourceType for ModelType {
    fn read(&self, request: ReadRequest) -> ProviderResult<ReadResponse> {
        let (registry, repository) = model_repository(&request.target, &request.config)?;
        let Some(version) = state_text(&request.state, "version").map(str::to_owned) else {
            return Ok(ReadResponse { state: None, private: request.private, ..ReadResponse::default() });
        };
        let Some(manifest) = registry.manifest(&repository, Some(&version), None)? else {
            return Ok(ReadResponse { state: None, private: request.private, ..ReadResponse::default() });
        };
        let mut digests = digests(&request.private);
        let mut state = request.state.clone();
        // A version tag pushed over outside mlops: the version mlops pushed
        // is still the one recorded; the plan tags it back.
        let retagged = match digests.get(&version) {
            Some(recorded) if *recorded != manifest.digest => Some(manifest.digest.clone()),
            Some(_) => None,
            None => {
                digests.insert(version.clone(), manifest.digest.clone());
                None
            }
        };
        // Versions deleted outside mlops (whichever version is current, a
        // pinned one included) drop out of the history of versions.
        if request.state.contains_key("versions") {
            let tags: std::collections::BTreeSet<String> = registry.tags(&repository)?.into_iter().collect();
            let kept: Vec<Json> = state_strings(&request.state, "versions")
                .into_iter()
                .filter(|registered| *registered == version || tags.contains(registered))
                .map(Json::String)
                .collect();
            state.insert("versions".into(), Json::Array(kept));
        }
        let mut names = state_strings(&request.state, "aliases");
        names.extend(wanted_aliases(&request.config));
        let live = alias_positions(&registry, &repository, &names, &digests)?;
        let held: Vec<Json> = state_strings(&request.state, "aliases")
            .into_iter()
            .filter(|alias| live.get(alias) == Some(&version))
            .map(Json::String)
            .collect();
        state.insert("aliases".into(), Json::Array(held));
        let mut private = request.private.as_object().cloned().unwrap_or_default();
        private.insert(LIVE_ALIASES.into(), json!(live));
        private.insert(DIGESTS.into(), json!(digests));
        match retagged {
            Some(digest) => private.insert(RETAGGED.into(), json!({ version: digest })),
            None => private.remove(RETAGGED),
        };
        Ok(ReadResponse { state: Some(state), private: Json::Object(private), ..ReadResponse::default() })
    }

    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        let mut response = plan_model(&request);
        let version = request.prior_state.as_ref().and_then(|state| state_text(state, "version"));
        if let Some((version, digest)) =
            version.and_then(|version| Some((version, request.prior_private.get(RETAGGED)?.get(version)?.as_str()?)))
        {
            response.update_reasons.push(format!(
                "tag {version} was pushed over outside mlops (it points at {}, not the version mlops pushed): apply tags it back",
                short_version(digest)
            ));
        }
        Ok(response)
    }

    fn apply(&self, request: ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let (registry, repository) = model_repository(&request.target, &request.config)?;
        apply_model(&registry, &repository, &request, context)
    }

    fn delete(&self, request: ApplyRequest, _context: &dyn ApplyContext) -> ProviderResult<()> {
        let (registry, repository) = model_repository(&request.target, &request.config)?;
        for digest in digests(&request.prior_private).values().collect::<std::collections::BTreeSet<_>>() {
            registry.delete_manifest(&repository, digest)?;
        }
        Ok(())
    }

    fn import(&self, request: ImportRequest) -> ProviderResult<ImportResponse> {
        Err(ProviderError::with_help(
            format!("the oci provider cannot import `{}`", request.id),
            "read existing versions with a `data \"model\"` block instead",
        ))
    }
}

/// `data "model"`: a version in the registry, by alias, version, or the latest.
struct ModelSource;

impl DataSourceType for ModelSource {
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        plan_data_model(&request.target, &request.config)
    }
}

/// `data "image"`: an image tag resolved to its digest.
struct ImageSource;

impl DataSourceType for ImageSource {
    fn plan(&self, request: PlanRequest) -> ProviderResult<PlanResponse> {
        plan_image(&request)
    }
}

fn digests(private: &Json) -> BTreeMap<String, String> {
    private.get(DIGESTS).and_then(Json::as_object).map(string_entries).unwrap_or_default()
}

/// Where each alias tag points, as a version number (or the digest, for a
/// manifest that is none of this model's versions).
fn alias_positions(
    registry: &Registry,
    repository: &str,
    aliases: &[String],
    digests: &BTreeMap<String, String>,
) -> ProviderResult<BTreeMap<String, String>> {
    let mut live = BTreeMap::new();
    for alias in aliases {
        if live.contains_key(alias) {
            continue;
        }
        if let Some(manifest) = registry.manifest(repository, Some(alias), None)? {
            let version = digests
                .iter()
                .find(|(_, digest)| **digest == manifest.digest)
                .map(|(version, _)| version.clone())
                .or_else(|| manifest.annotation("mlops.version").map(str::to_owned))
                .unwrap_or(manifest.digest.clone());
            live.insert(alias.clone(), version);
        }
    }
    Ok(live)
}

fn apply_model(registry: &Registry, repository: &str, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
    let config = &request.config;
    let source = config.get("source").cloned().unwrap_or_default();
    let mut digests = digests(&request.prior_private);
    let (version, manifest) = match pinned_version(config) {
        Some(pinned) => {
            // The manifest mlops pushed as that version, when it knows it.
            let recorded = match digests.get(&pinned) {
                Some(digest) => registry.manifest(repository, None, Some(digest))?,
                None => None,
            };
            if let Some(manifest) = &recorded {
                if registry.manifest(repository, Some(&pinned), None)?.map(|tagged| tagged.digest) != Some(manifest.digest.clone()) {
                    registry.tag(repository, &pinned, &manifest.raw)?;
                }
            }
            let manifest = match recorded {
                Some(manifest) => Some(manifest),
                None => registry.manifest(repository, Some(&pinned), None)?,
            };
            let manifest = manifest.ok_or_else(|| {
                ProviderError::with_help(
                    format!("cannot pin version {pinned}: {}/{repository} has no tag {pinned}", registry.host()),
                    "pin a version listed in `versions` (mlops state show), or remove `version` to register new runs again",
                )
            })?;
            (pinned, manifest)
        }
        None => register_version(registry, repository, request, &source, context)?,
    };
    digests.insert(version.clone(), manifest.digest.clone());

    // Aliases are tags on the version's manifest.
    let wanted = wanted_aliases(config);
    let dropped: Vec<String> = request.prior_state.as_ref().map(|state| state_strings(state, "aliases")).unwrap_or_default();
    let mut names = wanted.clone();
    names.extend(dropped.iter().cloned());
    let live = alias_positions(registry, repository, &names, &digests)?;
    let moves = alias_moves(&live, &wanted, &dropped, &version);
    let mut live_after = live.clone();
    for change in &moves {
        match &change.to {
            Some(to) => {
                registry.tag(repository, &change.alias, &manifest.raw)?;
                context.progress(&format!("tag {} of {}/{repository} -> version {to}", change.alias, registry.host()));
                live_after.insert(change.alias.clone(), to.clone());
            }
            None => {
                // Distribution registries cannot untag; deleting by tag is
                // refused by most, and would delete the version itself.
                context.progress(&format!(
                    "alias {} is no longer managed; the tag stays in {}/{repository} (registries cannot remove one tag of a manifest)",
                    change.alias,
                    registry.host()
                ));
                live_after.remove(&change.alias);
            }
        }
    }
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let state = model_state(request.prior_state.as_ref(), &version, uri_of(registry, repository, &manifest.digest), &wanted, &moves, &at);
    let mut private = request.prior_private.as_object().cloned().unwrap_or_default();
    private.insert(LIVE_ALIASES.into(), json!(live_after));
    private.insert(DIGESTS.into(), json!(digests));
    Ok(ApplyResponse { state, private: Json::Object(private) })
}

/// Pushes the source run's artifacts as the next version, or finds the
/// version an earlier (perhaps interrupted) apply pushed for the same run.
fn register_version(
    registry: &Registry,
    repository: &str,
    request: &ApplyRequest,
    source: &Value,
    context: &dyn ApplyContext,
) -> ProviderResult<(String, Manifest)> {
    let run_id = field(source, "run_id").unwrap_or_default();
    // The current version, when it is this run's: its manifest by digest,
    // tagged again if its tag was pushed over.
    let current = request.prior_state.as_ref().and_then(|state| state_text(state, "version")).map(str::to_owned);
    let recorded = current.and_then(|version| Some((digests(&request.prior_private).get(&version)?.clone(), version)));
    if let Some((digest, version)) = recorded {
        if let Some(manifest) = registry.manifest(repository, None, Some(&digest))? {
            if manifest.annotation("mlops.training_run") == Some(run_id) {
                if registry.manifest(repository, Some(&version), None)?.map(|tagged| tagged.digest) != Some(manifest.digest.clone()) {
                    registry.tag(repository, &version, &manifest.raw)?;
                    context
                        .progress(&format!("tag {version} of {}/{repository} points at the version mlops pushed again", registry.host()));
                }
                return Ok((version, manifest));
            }
        }
    }
    let mut numbered: Vec<u64> = registry.tags(repository)?.iter().filter_map(|tag| tag.parse().ok()).collect();
    numbered.sort_unstable();
    // The newest versions are the likely ones; a run is looked for among the last few.
    for version in numbered.iter().rev().take(20) {
        if let Some(manifest) = registry.manifest(repository, Some(&version.to_string()), None)? {
            if manifest.annotation("mlops.training_run") == Some(run_id) {
                return Ok((version.to_string(), manifest));
            }
        }
    }
    let version = (numbered.last().copied().unwrap_or(0) + 1).to_string();
    let artifact_uri = field(source, "artifact_uri").ok_or_else(|| {
        ProviderError::failed(format!("{} has no artifacts to push", field(source, "$address").unwrap_or("the source training")))
    })?;
    let staging = staging_directory(&request.target, run_id);
    let _ = std::fs::remove_dir_all(&staging);
    context.fetch(artifact_uri, &staging)?;
    let mut annotations = serde_json::Map::new();
    for (key, value) in lineage_tags(source, &request.lineage) {
        annotations.insert(key, Json::String(value));
    }
    annotations.insert("mlops.version".into(), Json::String(version.clone()));
    annotations.insert(
        "org.opencontainers.image.created".into(),
        Json::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    if let Some(description) = text(&request.config, "description") {
        annotations.insert("org.opencontainers.image.description".into(), Json::String(description.to_owned()));
    }
    for (key, value) in request.config.get("tags").and_then(Value::as_object).into_iter().flatten() {
        annotations.insert(key.clone(), Json::String(mlops_provider_support::tag_text(value)));
    }
    let description = json!({
        "name": registered_model_name(&request.target, &request.config),
        "version": version,
        "run_id": run_id,
        "fingerprint": source.get("fingerprint"),
        "metrics": source.get("metrics"),
        "hyperparameters": source.get("hyperparameters"),
        "artifact_uri": artifact_uri,
        "lineage": request.lineage,
    });
    let files = distribution::files_under(&staging, distribution::HiddenFiles::Listed)?;
    let artifact = distribution::Artifact {
        artifact_type: MODEL_ARTIFACT,
        config_media_type: MODEL_CONFIG,
        config: &description,
        annotations: &annotations,
    };
    let pushed = registry.push_files(repository, &files, &artifact, std::slice::from_ref(&version), &|line| context.progress(line));
    let _ = std::fs::remove_dir_all(&staging);
    let manifest = pushed?;
    context.progress(&format!("pushed {}/{repository}:{version} ({})", registry.host(), manifest.digest));
    Ok((version, manifest))
}

fn staging_directory(target: &Target, run: &str) -> PathBuf {
    let safe: String =
        run.chars().map(|character| if character.is_ascii_alphanumeric() || character == '-' { character } else { '_' }).collect();
    target.data_directory.join("staged").join(format!("oci-{safe}"))
}

/// `data "model"`: a version of a model kept in this registry, by alias,
/// version, or the latest.
fn plan_data_model(target: &Target, config: &Configuration) -> ProviderResult<PlanResponse> {
    let (registry, repository) = model_repository(target, config)?;
    let (tag, manifest) = if let Some(alias) = text(config, "alias") {
        let manifest = registry.manifest(&repository, Some(alias), None)?.ok_or_else(|| {
            ProviderError::with_help(
                format!("model `{repository}` has no alias `{alias}` in the OCI registry {}", registry.host()),
                "set the alias first (a `model` block with `aliases = [...]`), or read a `version`",
            )
        })?;
        (alias.to_owned(), manifest)
    } else {
        let version = match pinned_version(config) {
            Some(version) => version,
            None => registry
                .tags(&repository)?
                .iter()
                .filter_map(|tag| tag.parse::<u64>().ok())
                .max()
                .map(|version| version.to_string())
                .ok_or_else(|| {
                ProviderError::with_help(
                    format!("model `{repository}` has no versions in the OCI registry {}", registry.host()),
                    "register one first, or check the name",
                )
            })?,
        };
        let manifest = registry.require_manifest(&repository, Some(&version), None)?;
        (version, manifest)
    };
    let description = registry.config(&repository, &manifest)?;
    let mut planned = Attributes::new();
    let version = manifest.annotation("mlops.version").map(str::to_owned).unwrap_or(tag);
    planned.insert("version".into(), Json::String(version));
    planned.insert("uri".into(), Json::String(uri_of(&registry, &repository, &manifest.digest)));
    planned.insert("run_id".into(), description.get("run_id").cloned().unwrap_or(Json::Null));
    planned.insert("metrics".into(), description.get("metrics").cloned().filter(Json::is_object).unwrap_or(json!({})));
    Ok(PlanResponse { planned_state: planned, ..PlanResponse::default() })
}

/// `data "image"`: the digest a tag points at now, so training and serving
/// run exactly that image; the plan says when the tag moved.
fn plan_image(request: &PlanRequest) -> ProviderResult<PlanResponse> {
    let written = text(&request.config, "ref").unwrap_or_default();
    let reference = parse_reference(written)?;
    let registry = connect(&request.target, reference.resolve_registry())?;
    let digest = match reference.digest() {
        Some(pinned) => {
            registry.require_manifest(reference.repository(), None, Some(pinned))?;
            pinned.to_owned()
        }
        None => registry.resolve(&reference)?,
    };
    let name = written.split('@').next().unwrap_or(written);
    let mut response = PlanResponse::default();
    response.planned_state.insert("digest".into(), Json::String(digest.clone()));
    response.planned_state.insert("resolved".into(), Json::String(format!("{name}@{digest}")));
    if let Some(before) = request.prior_state.as_ref().and_then(|state| state_text(state, "digest")) {
        if before != digest {
            response.update_reasons.push(format!(
                "`{name}` now points at {} (it pointed at {})",
                short_version(&digest),
                short_version(before)
            ));
        }
    }
    Ok(response)
}
