//! Talking to one OCI distribution registry: resolving tags, pushing and
//! pulling artifacts file by file, moving tags and deleting manifests,
//! with every failure worded to name the registry and the reference.
//!
//! Built on oci-client. An artifact here is an OCI image manifest with an
//! `artifactType`, a JSON config blob, and one layer per file whose
//! `org.opencontainers.image.title` annotation is the file's relative path
//! (the ORAS convention, so `oras pull` reads what mlops pushes). Files are
//! hashed first, skipped when the registry has the blob, and otherwise
//! streamed from disk in chunks (POST, PATCH…, PUT); nothing is held in
//! memory whole.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use mlops_provider_api::{ProviderError, ProviderResult};
use mlops_provider_support::remote::RemoteLimits;
use mlops_units::digest::{sha256_digest, Sha256Hasher};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{json, Value as Json};

pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const TITLE: &str = "org.opencontainers.image.title";
/// Manifests a tag may point at: images, indexes, and Docker's own.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A parsed `HOST/REPOSITORY[:TAG][@DIGEST]`, with `oci://` allowed in front.
pub fn parse_reference(text: &str) -> ProviderResult<Reference> {
    let bare = text.strip_prefix("oci://").unwrap_or(text);
    bare.parse::<Reference>().map_err(|error| {
        ProviderError::with_help(
            format!("`{text}` is not an OCI reference: {error}"),
            "write REGISTRY/REPOSITORY:TAG, such as registry.example.com/platform/training:1.4.0",
        )
    })
}

/// Whether to speak plain HTTP to `host`: when asked, for loopback (as
/// docker does), and for hosts listed in `MLOPS_OCI_INSECURE_REGISTRIES`.
pub fn plain_http(host: &str, insecure: bool) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    insecure
        || matches!(name, "localhost" | "127.0.0.1" | "[::1]")
        || name.starts_with("127.")
        || std::env::var("MLOPS_OCI_INSECURE_REGISTRIES")
            .is_ok_and(|list| list.split(',').any(|listed| listed.trim() == host || listed.trim() == name))
}

/// What an artifact is, besides its files: its type, its config blob and
/// the manifest's annotations.
#[derive(Clone, Copy)]
pub struct Artifact<'a> {
    pub artifact_type: &'a str,
    pub config_media_type: &'a str,
    pub config: &'a Json,
    pub annotations: &'a serde_json::Map<String, Json>,
}

/// A file of an artifact, as pulled or pushed.
#[derive(Debug, Clone)]
pub struct ArtifactFile {
    pub relative: String,
    pub digest: String,
    pub size: u64,
}

/// A pushed or read manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub body: Json,
    pub raw: Vec<u8>,
}

impl Manifest {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.body.get("annotations")?.get(key)?.as_str()
    }

    pub fn files(&self) -> Vec<ArtifactFile> {
        self.body
            .get("layers")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|layer| {
                Some(ArtifactFile {
                    relative: layer.get("annotations")?.get(TITLE)?.as_str()?.to_owned(),
                    digest: layer.get("digest")?.as_str()?.to_owned(),
                    size: layer.get("size").and_then(Json::as_u64).unwrap_or(0),
                })
            })
            .collect()
    }
}

pub struct Registry {
    runtime: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    host: String,
    limits: RemoteLimits,
}

impl Registry {
    /// A client for the registry `host` (`registry.example.com`,
    /// `127.0.0.1:5000`); credentials per [`crate::credentials`].
    pub fn connect(
        host: &str,
        insecure: bool,
        username: Option<&str>,
        password: Option<&str>,
        limits: RemoteLimits,
    ) -> ProviderResult<Registry> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| ProviderError::failed(format!("cannot start the OCI client: {error}")))?;
        let protocol = if plain_http(host, insecure) { ClientProtocol::Http } else { ClientProtocol::Https };
        // A registry that stops answering fails the call after
        // `request_timeout` without a byte, instead of holding it forever.
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(limits.connect),
            read_timeout: Some(limits.request),
            ..ClientConfig::default()
        });
        let auth = crate::credentials::for_registry(host, username, password);
        Ok(Registry { runtime, client, auth, host: host.to_owned(), limits })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs a call to the registry, which the user's Ctrl-C abandons at
    /// once: a registry that stopped answering is not waited out.
    fn wait<T>(&self, work: impl std::future::Future<Output = T>) -> ProviderResult<T> {
        self.runtime.block_on(async {
            tokio::select! {
                output = work => Ok(output),
                () = async {
                    while !mlops_provider_support::remote::interrupt_requested() {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                } => Err(ProviderError::Interrupted),
            }
        })
    }

    fn reference(&self, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Reference {
        match (tag, digest) {
            (_, Some(digest)) => Reference::with_digest(self.host.clone(), repository.to_owned(), digest.to_owned()),
            (Some(tag), None) => Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned()),
            (None, None) => Reference::with_tag(self.host.clone(), repository.to_owned(), "latest".to_owned()),
        }
    }

    /// The manifest `repository:tag` (or `@digest`) points at, or `None`
    /// when the registry has no such manifest.
    pub fn manifest(&self, repository: &str, tag: Option<&str>, digest: Option<&str>) -> ProviderResult<Option<Manifest>> {
        let reference = self.reference(repository, tag, digest);
        let pulled = self.wait(self.client.pull_manifest_raw(&reference, &self.auth, MANIFEST_TYPES))?;
        match pulled {
            Ok((raw, digest)) => {
                let body = serde_json::from_slice(&raw).map_err(|error| {
                    ProviderError::failed(format!("the manifest of {} in the OCI registry {} is not JSON: {error}", reference, self.host))
                })?;
                Ok(Some(Manifest { digest, body, raw: raw.to_vec() }))
            }
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(self.failure(&error, &reference.whole())),
        }
    }

    /// Like [`Registry::manifest`], but a missing manifest is an error.
    pub fn require_manifest(&self, repository: &str, tag: Option<&str>, digest: Option<&str>) -> ProviderResult<Manifest> {
        let reference = self.reference(repository, tag, digest);
        self.manifest(repository, tag, digest)?.ok_or_else(|| self.not_found(&reference.whole()))
    }

    /// The digest `repository:tag` points at now (a HEAD request).
    pub fn resolve(&self, reference: &Reference) -> ProviderResult<String> {
        self.wait(self.client.fetch_manifest_digest(reference, &self.auth))?.map_err(|error| self.failure(&error, &reference.whole()))
    }

    /// Every tag of `repository` (empty when it does not exist yet).
    pub fn tags(&self, repository: &str) -> ProviderResult<Vec<String>> {
        let reference = self.reference(repository, None, None);
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = self.wait(self.client.list_tags(&reference, &self.auth, Some(1000), last.as_deref()))?;
            match page {
                Ok(page) => {
                    let done = page.tags.len() < 1000;
                    last = page.tags.last().cloned();
                    tags.extend(page.tags);
                    if done || last.is_none() {
                        break;
                    }
                }
                Err(error) if is_not_found(&error) => break,
                Err(error) => return Err(self.failure(&error, &format!("{}/{repository}", self.host))),
            }
        }
        Ok(tags)
    }

    /// The JSON config blob of a manifest.
    pub fn config(&self, repository: &str, manifest: &Manifest) -> ProviderResult<Json> {
        let Some(descriptor) = manifest.body.get("config").and_then(|config| serde_json::from_value::<OciDescriptor>(config.clone()).ok())
        else {
            return Ok(Json::Null);
        };
        let reference = self.reference(repository, None, Some(&manifest.digest));
        let mut bytes = Vec::new();
        self.wait(self.client.pull_blob(&reference, &descriptor, &mut bytes))?.map_err(|error| self.failure(&error, &reference.whole()))?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Json::Null))
    }

    /// Pushes `files` (relative path, file) as one artifact described by
    /// `artifact` and tags it with each of `tags`. Returns the manifest.
    pub fn push_files(
        &self,
        repository: &str,
        files: &[(String, PathBuf)],
        artifact: &Artifact<'_>,
        tags: &[String],
        progress: &dyn Fn(&str),
    ) -> ProviderResult<Manifest> {
        let Artifact { artifact_type, config_media_type, config, annotations } = *artifact;
        let reference = self.reference(repository, tags.first().map(String::as_str), None);
        self.wait(self.client.store_auth_if_needed(&self.host, &self.auth))?;
        let config_bytes = serde_json::to_vec(config).unwrap_or_default();
        let config_digest = sha256_digest(&config_bytes);
        self.wait(async {
            if !self.client.blob_exists(&reference, &config_digest).await? {
                self.client.push_blob(&reference, config_bytes.clone(), &config_digest).await?;
            }
            Ok::<_, OciDistributionError>(())
        })?
        .map_err(|error| self.failure(&error, &reference.whole()))?;

        let mut layers = Vec::new();
        for (relative, path) in files {
            let (digest, size) = file_digest(path)?;
            let exists =
                self.wait(self.client.blob_exists(&reference, &digest))?.map_err(|error| self.failure(&error, &reference.whole()))?;
            if exists {
                progress(&format!("{relative}: already in {}", self.host));
            } else {
                progress(&format!("uploading {relative} ({size} bytes)"));
                self.wait(async {
                    let file = tokio::fs::File::open(path).await?;
                    // Chunks of 8 MiB: a PATCH each, so no file is held whole.
                    let stream =
                        tokio_util::io::ReaderStream::with_capacity(file, 8 << 20).map(|chunk| chunk.map_err(OciDistributionError::from));
                    self.client.push_blob_stream(&reference, stream, &digest, Some(size)).await.map(|_| ())
                })?
                .map_err(|error| self.failure(&error, &reference.whole()))?;
            }
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": size,
                "annotations": { TITLE: relative },
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "artifactType": artifact_type,
            "config": { "mediaType": config_media_type, "digest": config_digest, "size": config_bytes.len() },
            "layers": layers,
            "annotations": annotations,
        });
        let raw = serde_json::to_vec(&manifest).unwrap_or_default();
        let digest = sha256_digest(&raw);
        for tag in tags {
            self.tag(repository, tag, &raw)?;
        }
        if tags.is_empty() {
            self.push_manifest(&self.reference(repository, None, Some(&digest)), &raw)?;
        }
        Ok(Manifest { digest, body: manifest, raw })
    }

    /// Points `repository:tag` at the manifest `raw`.
    pub fn tag(&self, repository: &str, tag: &str, raw: &[u8]) -> ProviderResult<()> {
        self.push_manifest(&self.reference(repository, Some(tag), None), raw)
    }

    fn push_manifest(&self, reference: &Reference, raw: &[u8]) -> ProviderResult<()> {
        let media_type = serde_json::from_slice::<Json>(raw)
            .ok()
            .and_then(|manifest| manifest.get("mediaType").and_then(Json::as_str).map(str::to_owned))
            .unwrap_or_else(|| IMAGE_MANIFEST.to_owned());
        let content_type = media_type.parse().unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(IMAGE_MANIFEST));
        self.wait(self.client.store_auth_if_needed(&self.host, &self.auth))?;
        self.wait(self.client.push_manifest_raw(reference, raw.to_vec(), content_type))?
            .map(|_| ())
            .map_err(|error| self.failure(&error, &reference.whole()))
    }

    /// Downloads every file of the artifact `repository@digest` into
    /// `destination`, each checked against its digest. Files already there
    /// with the right digest are kept.
    pub fn pull_files(&self, repository: &str, manifest: &Manifest, destination: &Path) -> ProviderResult<(usize, usize)> {
        let reference = self.reference(repository, None, Some(&manifest.digest));
        let files = manifest.files();
        let mut copied = 0;
        for file in &files {
            let target = safe_join(destination, &file.relative).ok_or_else(|| {
                ProviderError::failed(format!("{} names a file outside its directory: `{}`", reference.whole(), file.relative))
            })?;
            if target.is_file() && file_digest(&target).map(|(digest, _)| digest == file.digest).unwrap_or(false) {
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| ProviderError::failed(format!("cannot create {}: {error}", parent.display())))?;
            }
            let descriptor = OciDescriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
                digest: file.digest.clone(),
                size: file.size as i64,
                ..OciDescriptor::default()
            };
            let partial = target.with_extension("mlops-partial");
            self.wait(async {
                let mut output = tokio::fs::File::create(&partial).await?;
                self.client.pull_blob(&reference, &descriptor, &mut output).await?;
                tokio::io::AsyncWriteExt::flush(&mut output).await?;
                Ok::<_, OciDistributionError>(())
            })?
            .map_err(|error| {
                let _ = std::fs::remove_file(&partial);
                self.failure(&error, &reference.whole())
            })?;
            std::fs::rename(&partial, &target)
                .map_err(|error| ProviderError::failed(format!("cannot write {}: {error}", target.display())))?;
            copied += 1;
        }
        Ok((copied, files.len()))
    }

    /// Deletes the manifest `repository@digest` (and so every tag on it).
    pub fn delete_manifest(&self, repository: &str, digest: &str) -> ProviderResult<()> {
        let reference = self.reference(repository, None, Some(digest));
        let token = self
            .wait(self.client.auth(&reference, &self.auth, RegistryOperation::Push))?
            .map_err(|error| self.failure(&error, &reference.whole()))?;
        let scheme = if plain_http(&self.host, false) { "http" } else { "https" };
        let url = format!("{scheme}://{}/v2/{repository}/manifests/{digest}", self.host);
        let http = reqwest::Client::builder()
            .connect_timeout(self.limits.connect)
            .read_timeout(self.limits.request)
            .build()
            .map_err(|error| ProviderError::failed(format!("cannot start an HTTP client: {error}")))?;
        let mut request = http.delete(&url);
        request = match (&token, &self.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, RegistryAuth::Bearer(token)) => request.bearer_auth(token),
            (None, RegistryAuth::Anonymous) => request,
        };
        let response = self.wait(async move { request.send().await })?.map_err(|error| {
            ProviderError::with_help(
                format!("cannot reach the OCI registry {} to delete {}: {error}", self.host, reference.whole()),
                "check that the registry is running",
            )
        })?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            405 => Err(ProviderError::with_help(
                format!("the OCI registry {} does not allow deleting {}", self.host, reference.whole()),
                "enable deletes on the registry (distribution: storage.delete.enabled: true)",
            )),
            401 | 403 => Err(self.refused(&reference.whole())),
            status => Err(ProviderError::failed(format!(
                "the OCI registry {} refused to delete {} (HTTP {status})",
                self.host,
                reference.whole()
            ))),
        }
    }

    fn not_found(&self, reference: &str) -> ProviderError {
        ProviderError::with_help(
            format!("manifest not found: the OCI registry {} has no {reference}", self.host),
            "check the repository and the tag or digest; it must be pushed first",
        )
    }

    fn refused(&self, reference: &str) -> ProviderError {
        ProviderError::with_help(
            format!("the OCI registry {} refused the credentials for {reference}", self.host),
            format!(
                "log in with `docker login {}`, set MLOPS_OCI_USERNAME and MLOPS_OCI_PASSWORD, or set `username` and `password` on provider \"oci\"",
                self.host
            ),
        )
    }

    /// One clear message for a failed call about `reference`.
    fn failure(&self, error: &OciDistributionError, reference: &str) -> ProviderError {
        match error {
            OciDistributionError::UnauthorizedError { .. } | OciDistributionError::AuthenticationFailure(_) => self.refused(reference),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|error| &error.code).collect();
                if codes.iter().any(|code| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                    self.refused(reference)
                } else if codes
                    .iter()
                    .any(|code| matches!(code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound))
                {
                    self.not_found(reference)
                } else if codes.iter().any(|code| matches!(code, OciErrorCode::Toomanyrequests)) {
                    ProviderError::Transient {
                        message: format!("the OCI registry {} is rate-limiting requests for {reference}", self.host),
                    }
                } else {
                    let messages: Vec<String> = envelope.errors.iter().map(|error| error.message.clone()).collect();
                    ProviderError::failed(format!(
                        "the OCI registry {} refused a request for {reference}: {}",
                        self.host,
                        messages.join("; ")
                    ))
                }
            }
            OciDistributionError::ImageManifestNotFoundError(_) => self.not_found(reference),
            OciDistributionError::ServerError { code, .. } if *code == 401 || *code == 403 => self.refused(reference),
            OciDistributionError::ServerError { code, .. } if *code == 404 => self.not_found(reference),
            OciDistributionError::ServerError { code, message, .. } if *code == 429 || *code >= 500 => ProviderError::Transient {
                message: format!("the OCI registry {} answered HTTP {code} for {reference}: {}", self.host, first_line(message)),
            },
            OciDistributionError::RequestError(request) if matches!(request.status().map(|status| status.as_u16()), Some(401 | 403)) => {
                self.refused(reference)
            }
            OciDistributionError::RequestError(request) if request.status().is_some_and(|status| status.as_u16() == 404) => {
                self.not_found(reference)
            }
            OciDistributionError::RequestError(request)
                if request.status().is_some_and(|status| status.as_u16() == 429 || status.is_server_error()) =>
            {
                ProviderError::Transient {
                    message: format!(
                        "the OCI registry {} answered {} for {reference}",
                        self.host,
                        request.status().map(|status| status.to_string()).unwrap_or_default()
                    ),
                }
            }
            OciDistributionError::RequestError(request) => {
                let cause = mlops_provider_support::root_cause(request);
                let help = if cause.contains("InvalidContentType") || cause.contains("invalid HTTP") || cause.contains("record") {
                    "the registry may not speak TLS: set `insecure = true` on provider \"oci\" (or list it in MLOPS_OCI_INSECURE_REGISTRIES)"
                } else {
                    "check the registry address and that it is running"
                };
                if request.is_timeout() {
                    // Waiting again for a registry that stopped answering only doubles the wait.
                    ProviderError::with_help(
                        format!("the OCI registry {} did not answer within {} for {reference}", self.host, self.limits.describe_request()),
                        "check that the registry is up; for a slow registry, raise `request_timeout` on provider \"oci\"",
                    )
                } else {
                    ProviderError::with_help(format!("cannot reach the OCI registry {} for {reference}: {cause}", self.host), help)
                }
            }
            other => ProviderError::failed(format!("the OCI registry {} failed on {reference}: {other}", self.host)),
        }
    }
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|error| matches!(error.code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound)),
        _ => false,
    }
}

fn first_line(text: &str) -> String {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or("").chars().take(200).collect()
}

/// `relative` under `directory`, refusing `..` and absolute paths (a
/// manifest from a registry is not trusted to write anywhere else).
pub fn safe_join(directory: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    if relative.is_empty() || path.is_absolute() || path.components().any(|part| !matches!(part, std::path::Component::Normal(_))) {
        return None;
    }
    Some(directory.join(path))
}

pub use mlops_provider_support::{files_under, HiddenFiles};

/// `sha256:HEX` and the size of a file, read in blocks.
pub fn file_digest(path: &Path) -> ProviderResult<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|error| ProviderError::failed(format!("cannot read {}: {error}", path.display())))?;
    let mut hasher = Sha256Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(|error| ProviderError::failed(format!("cannot read {}: {error}", path.display())))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((hasher.finish_digest(), size))
}
