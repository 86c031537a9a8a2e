//! The `s3` provider: buckets on any S3 API (AWS, MinIO, Ceph, moto, ...).
//!
//! - Buckets: create and delete (a bucket that still holds objects is
//!   refused unless `force_destroy`), versioning, lifecycle rules and tags,
//!   each read back on refresh so that a change made outside mlops shows as
//!   drift and the next apply corrects it.
//! - Datasets from local files: validated against their schema, then
//!   uploaded content-addressed under `datasets/ADDRESS/HASH/`. Objects
//!   already there are skipped, so a re-apply uploads nothing; large files go
//!   up in parts, several at a time. Data that lives in S3 already is
//!   versioned by its listing.
//! - Feature sets computed from a dataset in S3 and stored beside it.
//! - `fetch`: the data at an `s3://` uri copied to a local directory, so that
//!   local runs can read it.
//!
//! - [`S3StateStore`]: the storage of the `s3` state backend (the state
//!   format itself is the engine's).
//!
//! Credentials come from the standard AWS chain (environment, profile, ...)
//! and are never printed or stored. Every SDK error becomes one message that
//! names the endpoint and the cause; throttling and 5xx answers are
//! reported as transient, so the engine retries them with backoff.
//!
//! The provider API is synchronous; the provider keeps its own tokio runtime
//! and one client per provider configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

mod kinds;
mod manifest;
mod state_store;
pub use state_store::S3StateStore;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use mlops_provider_api::*;
use mlops_provider_support::remote::{self, RemoteLimits};
use mlops_provider_support::text;
use mlops_provider_support::{field, state_text};
use serde_json::{json, Value as Json};

/// Where requests go, as configured in a `provider "s3"` block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Endpoint {
    region: String,
    endpoint: Option<String>,
    force_path_style: bool,
    profile: Option<String>,
    limits: RemoteLimits,
}

impl Endpoint {
    fn from_config(config: &Configuration) -> Endpoint {
        let text = |name: &str| config.get(name).and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_owned);
        Endpoint {
            region: text("region").unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint: text("endpoint"),
            force_path_style: config.get("force_path_style").and_then(Value::as_bool).unwrap_or(false),
            profile: text("profile"),
            limits: RemoteLimits::from_config(config),
        }
    }

    /// How the store is named in messages.
    fn describe(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => format!("S3 at {endpoint}"),
            None => format!("S3 in {}", self.region),
        }
    }
}

/// The s3 provider: its kinds, sharing one [`Store`].
pub struct S3Provider {
    store: Arc<Store>,
    kinds: Kinds,
}

impl Default for S3Provider {
    fn default() -> Self {
        S3Provider::new()
    }
}

impl S3Provider {
    pub fn new() -> S3Provider {
        let store = Arc::new(Store::new());
        let kinds = Kinds::new()
            .resource("bucket", kinds::Bucket(store.clone()))
            .resource("dataset", kinds::Dataset(store.clone()))
            .resource("feature_set", kinds::Computed { store: store.clone(), training_set: false })
            .resource("training_set", kinds::Computed { store: store.clone(), training_set: true })
            // A `data "dataset"` in S3 is planned as a dataset whose `uri`
            // is already in the store: versioned by its listing.
            .data_source("dataset", kinds::DatasetSource(store.clone()));
        S3Provider { store, kinds }
    }
}

/// The connections to S3 every kind shares: clients per endpoint, and the
/// runtime the SDK runs on.
pub(crate) struct Store {
    /// Made on first use: a run that has no S3 resources starts no threads.
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
    clients: Mutex<HashMap<Endpoint, Client>>,
}

impl Store {
    pub(crate) fn new() -> Store {
        Store { runtime: std::sync::OnceLock::new(), clients: Mutex::new(HashMap::new()) }
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let runtime = self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("mlops-s3")
                .build()
                .expect("a tokio runtime can be built")
        });
        runtime.block_on(work)
    }

    /// Runs a call to the store, which the user's Ctrl-C abandons at once:
    /// a store that stopped answering is not waited out.
    fn run<T>(&self, work: impl std::future::Future<Output = ProviderResult<T>>) -> ProviderResult<T> {
        self.block_on(async {
            tokio::select! {
                result = work => result,
                () = async {
                    while !remote::interrupt_requested() {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                } => Err(ProviderError::Interrupted),
            }
        })
    }

    fn client(&self, endpoint: &Endpoint) -> Client {
        if let Some(client) = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(endpoint) {
            return client.clone();
        }
        let client = self.block_on(async {
            let mut loader =
                aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(endpoint.region.clone()));
            if let Some(profile) = &endpoint.profile {
                loader = loader.profile_name(profile);
            }
            let shared = loader.load().await;
            // Every request is bounded: a store that stops answering fails
            // the call after the attempts, instead of holding it forever.
            let limits = endpoint.limits;
            let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(limits.connect)
                .read_timeout(limits.request)
                .operation_attempt_timeout(limits.connect + limits.request)
                .operation_timeout(limits.budget())
                .build();
            let retries = aws_sdk_s3::config::retry::RetryConfig::standard()
                .with_max_attempts(limits.attempts)
                .with_initial_backoff(std::time::Duration::from_millis(250));
            let mut builder = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(endpoint.force_path_style || endpoint.endpoint.is_some())
                .timeout_config(timeouts)
                .retry_config(retries);
            if let Some(url) = &endpoint.endpoint {
                builder = builder.endpoint_url(url);
            }
            Client::from_conf(builder.build())
        });
        self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(endpoint.clone(), client.clone());
        client
    }
}

/// One clear error for an SDK failure: the store, what was being done, and the cause.
fn failure<E, R>(endpoint: &Endpoint, doing: &str, error: &SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    failure_configured_in(endpoint, doing, error, PROVIDER)
}

/// Where the provider's settings are written, for [`failure_configured_in`].
const PROVIDER: &str = "the provider";

/// [`failure`], for settings written in `configured_in` ("the provider",
/// "the backend block").
fn failure_configured_in<E, R>(endpoint: &Endpoint, doing: &str, error: &SdkError<E, R>, configured_in: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let store = endpoint.describe();
    match error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let context = DisplayErrorContext(error).to_string();
            // The request never left: no credentials anywhere in the chain.
            if context.contains("no credentials found") || context.contains("credential provider") {
                // A profile that was named is the likely culprit: say which.
                let named_profile = match (&endpoint.profile, std::env::var("AWS_PROFILE").ok().filter(|profile| !profile.is_empty())) {
                    (Some(profile), _) => Some(format!("the profile `{profile}` (named by `profile` in {configured_in})")),
                    (None, Some(profile)) => Some(format!("the profile `{profile}` (named by AWS_PROFILE)")),
                    (None, None) => None,
                };
                return match named_profile {
                    Some(profile) => ProviderError::with_help(
                        format!("found no AWS credentials in {profile} to {doing} at {store}"),
                        "check that ~/.aws/credentials or ~/.aws/config (or the files AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name) has that profile, with credentials",
                    ),
                    None => ProviderError::with_help(
                        format!("found no AWS credentials to {doing} at {store}"),
                        format!(
                            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE or `profile` in {configured_in} naming a profile that has them"
                        ),
                    ),
                };
            }
            let cause = mlops_provider_support::root_cause(error);
            // The SDK has tried `max_attempts` times already: another round
            // of retries would only multiply the wait.
            if matches!(error, SdkError::TimeoutError(_)) || cause.to_ascii_lowercase().contains("timed out") {
                return ProviderError::with_help(
                    format!(
                        "{store} did not answer within {} to {doing} ({} attempt{})",
                        endpoint.limits.describe_request(),
                        endpoint.limits.attempts,
                        if endpoint.limits.attempts == 1 { "" } else { "s" }
                    ),
                    format!("check that the store is up and reachable; for a slow store, raise `request_timeout` in {configured_in}"),
                );
            }
            // The store, not the operation: every resource kept there fails
            // alike, and the same message lets the engine report it once.
            ProviderError::with_help(
                format!("cannot reach {store}: {cause}"),
                format!("check `endpoint` in {configured_in} and that the store is running and reachable"),
            )
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let detail = service.err().message().unwrap_or("no message");
            let message = format!("{store} refused to {doing}: {code}: {detail}");
            match code {
                "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "InternalError" | "ServiceUnavailable" | "503" | "500" => {
                    ProviderError::Transient { message }
                }
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "ExpiredToken" | "InvalidToken" => ProviderError::with_help(
                    message,
                    format!("check the credentials mlops finds in the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile` in {configured_in})"),
                ),
                _ => ProviderError::failed(message),
            }
        }
        other => ProviderError::failed(format!("{store}: cannot {doing}: {}", DisplayErrorContext(other))),
    }
}

fn service_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Whether the store does not implement the operation at all.
fn not_implemented<E: ProvideErrorMetadata>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    service_code(error) == Some("NotImplemented") || error.raw_response().is_some_and(|raw| raw.status().as_u16() == 501)
}

/// The message for a setting the store cannot keep.
fn unsupported_setting(endpoint: &Endpoint, name: &str, setting: &str) -> ProviderError {
    ProviderError::with_help(
        format!("{} does not support bucket {setting}, which bucket `{name}` asks for", endpoint.describe()),
        format!("remove the bucket's {setting} from the configuration, or use a store that supports it"),
    )
}

/// Setting `setting` of bucket `name` failed: unsupported by the store, or
/// an error like any other.
fn setting_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    endpoint: &Endpoint,
    name: &str,
    setting: &str,
    doing: &str,
    error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> ProviderError {
    if not_implemented(error) {
        unsupported_setting(endpoint, name, setting)
    } else {
        failure(endpoint, doing, error)
    }
}

fn build_failed(error: impl std::fmt::Display) -> ProviderError {
    ProviderError::failed(format!("invalid request: {error}"))
}

impl Store {
    /// The bucket's settings as they are in the store, or `None` when it does not exist.
    fn read_bucket(&self, endpoint: &Endpoint, name: &str) -> ProviderResult<Option<Attributes>> {
        let client = self.client(endpoint);
        self.run(async {
            match client.head_bucket().bucket(name).send().await {
                Ok(_) => {}
                Err(error)
                    if service_code(&error) == Some("NotFound") || error.raw_response().is_some_and(|raw| raw.status().as_u16() == 404) =>
                {
                    return Ok(None)
                }
                Err(error) => return Err(failure(endpoint, &format!("read bucket `{name}`"), &error)),
            }
            // Stores without a feature (some S3-compatible servers answer
            // 501 NotImplemented) read as that feature being off.
            let versioning = match client.get_bucket_versioning().bucket(name).send().await {
                Ok(versioning) => versioning.status() == Some(&BucketVersioningStatus::Enabled),
                Err(error) if not_implemented(&error) => false,
                Err(error) => return Err(failure(endpoint, &format!("read the versioning of `{name}`"), &error)),
            };
            let tags = match client.get_bucket_tagging().bucket(name).send().await {
                Ok(tagging) => tagging.tag_set().iter().map(|tag| (tag.key().to_owned(), Json::String(tag.value().to_owned()))).collect(),
                Err(error) if service_code(&error) == Some("NoSuchTagSet") || not_implemented(&error) => serde_json::Map::new(),
                Err(error) => return Err(failure(endpoint, &format!("read the tags of `{name}`"), &error)),
            };
            let rules = match client.get_bucket_lifecycle_configuration().bucket(name).send().await {
                Ok(lifecycle) => lifecycle
                    .rules()
                    .iter()
                    .filter(|rule| rule.status() == &ExpirationStatus::Enabled)
                    .map(|rule| {
                        let prefix = rule.filter().and_then(LifecycleRuleFilter::prefix).unwrap_or("");
                        json!({ "expire_days": rule.expiration().and_then(LifecycleExpiration::days), "prefix": prefix })
                    })
                    .collect(),
                Err(error) if service_code(&error) == Some("NoSuchLifecycleConfiguration") || not_implemented(&error) => Vec::new(),
                Err(error) => return Err(failure(endpoint, &format!("read the lifecycle rules of `{name}`"), &error)),
            };
            let mut state = Attributes::new();
            state.insert("uri".into(), Json::String(format!("s3://{name}")));
            state.insert("versioning".into(), Json::Bool(versioning));
            state.insert("tags".into(), Json::Object(tags));
            state.insert("lifecycle_rule".into(), Json::Array(rules));
            Ok(Some(state))
        })
    }

    /// Makes the bucket's settings what the configuration says.
    fn configure_bucket(&self, endpoint: &Endpoint, name: &str, config: &Configuration, prior: Option<&Attributes>) -> ProviderResult<()> {
        let client = self.client(endpoint);
        let wanted_versioning = config.get("versioning").and_then(Value::as_bool).unwrap_or(false);
        let prior_versioning = prior.and_then(|prior| prior.get("versioning")).and_then(Json::as_bool).unwrap_or(false);
        let tags: Vec<(String, String)> = config
            .get("tags")
            .and_then(Value::as_object)
            .map(|tags| tags.iter().map(|(key, value)| (key.clone(), mlops_provider_support::tag_text(value))).collect())
            .unwrap_or_default();
        let rules: Vec<(String, i32)> = config
            .get("lifecycle_rule")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .map(|rule| {
                        (
                            rule.get("prefix").and_then(Value::as_str).unwrap_or("").to_owned(),
                            rule.get("expire_days").and_then(Value::as_f64).unwrap_or(1.0) as i32,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.run(async {
            // A bucket never versioned stays unversioned rather than "suspended".
            if wanted_versioning || prior_versioning {
                let status = if wanted_versioning { BucketVersioningStatus::Enabled } else { BucketVersioningStatus::Suspended };
                client
                    .put_bucket_versioning()
                    .bucket(name)
                    .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                    .send()
                    .await
                    .map_err(|error| setting_failure(endpoint, name, "versioning", &format!("set the versioning of `{name}`"), &error))?;
            }
            if tags.is_empty() {
                if prior.and_then(|prior| prior.get("tags")).and_then(Json::as_object).is_none_or(|tags| !tags.is_empty()) {
                    match client.delete_bucket_tagging().bucket(name).send().await {
                        Ok(_) => {}
                        Err(error) if not_implemented(&error) => {}
                        Err(error) => return Err(failure(endpoint, &format!("remove the tags of `{name}`"), &error)),
                    }
                }
            } else {
                let tag_set = tags
                    .iter()
                    .map(|(key, value)| Tag::builder().key(key).value(value).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(build_failed)?;
                client
                    .put_bucket_tagging()
                    .bucket(name)
                    .tagging(Tagging::builder().set_tag_set(Some(tag_set)).build().map_err(build_failed)?)
                    .send()
                    .await
                    .map_err(|error| setting_failure(endpoint, name, "tags", &format!("tag `{name}`"), &error))?;
            }
            if rules.is_empty() {
                if prior.and_then(|prior| prior.get("lifecycle_rule")).and_then(Json::as_array).is_none_or(|rules| !rules.is_empty()) {
                    match client.delete_bucket_lifecycle().bucket(name).send().await {
                        Ok(_) => {}
                        Err(error) if not_implemented(&error) => {}
                        Err(error) => return Err(failure(endpoint, &format!("remove the lifecycle rules of `{name}`"), &error)),
                    }
                }
            } else {
                let rules = rules
                    .iter()
                    .enumerate()
                    .map(|(index, (prefix, days))| {
                        LifecycleRule::builder()
                            .id(format!("mlops-{index}"))
                            .status(ExpirationStatus::Enabled)
                            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                            .expiration(LifecycleExpiration::builder().days(*days).build())
                            .build()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(build_failed)?;
                client
                    .put_bucket_lifecycle_configuration()
                    .bucket(name)
                    .lifecycle_configuration(BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().map_err(build_failed)?)
                    .send()
                    .await
                    .map_err(|error| {
                        setting_failure(endpoint, name, "lifecycle rules", &format!("set the lifecycle rules of `{name}`"), &error)
                    })?;
            }
            Ok(())
        })
    }

    fn create_bucket(&self, endpoint: &Endpoint, name: &str) -> ProviderResult<()> {
        let client = self.client(endpoint);
        self.run(async {
            let mut request = client.create_bucket().bucket(name);
            // us-east-1 is the one region that takes no location constraint.
            if endpoint.region != "us-east-1" {
                request = request.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(endpoint.region.as_str()))
                        .build(),
                );
            }
            match request.send().await {
                Ok(_) => Ok(()),
                Err(error) if service_code(&error) == Some("BucketAlreadyOwnedByYou") => Ok(()),
                Err(error) if service_code(&error) == Some("BucketAlreadyExists") => Err(ProviderError::with_help(
                    format!("{}: the bucket name `{name}` is taken by another account", endpoint.describe()),
                    "bucket names are global: choose another `name`",
                )),
                Err(error) => Err(failure(endpoint, &format!("create bucket `{name}`"), &error)),
            }
        })
    }

    /// Deletes a bucket; with `force`, every object version in it first.
    fn delete_bucket(&self, endpoint: &Endpoint, name: &str, force: bool) -> ProviderResult<()> {
        let client = self.client(endpoint);
        self.run(async {
            let mut key_marker: Option<String> = None;
            let mut version_marker: Option<String> = None;
            loop {
                let listing = client
                    .list_object_versions()
                    .bucket(name)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await;
                let listing = match listing {
                    Ok(listing) => listing,
                    Err(error) if service_code(&error) == Some("NoSuchBucket") => return Ok(()),
                    Err(error) => return Err(failure(endpoint, &format!("list the objects of `{name}`"), &error)),
                };
                let mut objects: Vec<ObjectIdentifier> = Vec::new();
                for version in listing.versions() {
                    if let Some(key) = version.key() {
                        objects.push(
                            ObjectIdentifier::builder()
                                .key(key)
                                .set_version_id(version.version_id().map(str::to_owned))
                                .build()
                                .map_err(build_failed)?,
                        );
                    }
                }
                for marker in listing.delete_markers() {
                    if let Some(key) = marker.key() {
                        objects.push(
                            ObjectIdentifier::builder()
                                .key(key)
                                .set_version_id(marker.version_id().map(str::to_owned))
                                .build()
                                .map_err(build_failed)?,
                        );
                    }
                }
                if !objects.is_empty() && !force {
                    return Err(ProviderError::with_help(
                        format!("{}: bucket `{name}` is not empty", endpoint.describe()),
                        "set `force_destroy = true` on the bucket (and apply) to delete it with its contents",
                    ));
                }
                for chunk in objects.chunks(1000) {
                    client
                        .delete_objects()
                        .bucket(name)
                        .delete(Delete::builder().set_objects(Some(chunk.to_vec())).quiet(true).build().map_err(build_failed)?)
                        .send()
                        .await
                        .map_err(|error| failure(endpoint, &format!("empty bucket `{name}`"), &error))?;
                }
                if listing.is_truncated() == Some(true) {
                    key_marker = listing.next_key_marker().map(str::to_owned);
                    version_marker = listing.next_version_id_marker().map(str::to_owned);
                } else {
                    break;
                }
            }
            match client.delete_bucket().bucket(name).send().await {
                Ok(_) => Ok(()),
                Err(error) if service_code(&error) == Some("NoSuchBucket") => Ok(()),
                Err(error) => Err(failure(endpoint, &format!("delete bucket `{name}`"), &error)),
            }
        })
    }
}

/// Files at least this large are uploaded in parts of this size (S3 allows
/// parts down to 5 MiB, and at most 10,000 parts, so a file too large for
/// that gets larger parts). `MLOPS_S3_PART_SIZE_MIB` overrides the 8 MiB
/// default, which measured as fast as larger parts with less memory.
fn part_size(length: u64) -> u64 {
    const MEBIBYTE: u64 = 1024 * 1024;
    let mebibytes = std::env::var("MLOPS_S3_PART_SIZE_MIB").ok().and_then(|value| value.parse::<u64>().ok()).unwrap_or(8).max(5);
    (mebibytes * MEBIBYTE).max(length.div_ceil(10_000).div_ceil(MEBIBYTE) * MEBIBYTE)
}

/// How many parts of one file are in flight at once.
const PARALLEL_PARTS: usize = 10;

/// How a file came to be in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// It was there already.
    Present,
    /// Copied inside the store from an older version.
    Copied,
    Uploaded,
}

/// A key as a copy source names it: each segment percent-encoded.
fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn slug(address: &str) -> String {
    mlops_data::storage_name(address)
}

impl Store {
    /// Puts one file at `key`, sending as little as it can: nothing when the
    /// store holds it already (same size, the same content hash in its
    /// `mlops-b3` metadata, and the ETag the manifest recorded for it, if it
    /// recorded one); a copy inside the store from `copy_from` (an object of
    /// an older version with the same content, still as it was recorded);
    /// else an upload (in parallel parts for a large file). Setting `stop`
    /// abandons an upload (and aborts a multipart one).
    #[allow(clippy::too_many_arguments)]
    fn store_file(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        key: &str,
        file: &std::path::Path,
        b3: &str,
        recorded: Option<&manifest::StoredObject>,
        copy_from: Option<(&str, &manifest::StoredObject)>,
        context: &dyn ApplyContext,
        stop: &std::sync::atomic::AtomicBool,
    ) -> ProviderResult<(Placement, manifest::StoredObject)> {
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
        let client = self.client(endpoint);
        let length =
            std::fs::metadata(file).map_err(|error| ProviderError::failed(format!("cannot read `{}`: {error}", file.display())))?.len();
        let part_size = part_size(length);
        let stored = |etag: Option<&str>| manifest::StoredObject {
            size: length,
            etag: manifest::trim_etag(etag.unwrap_or_default()).to_owned(),
            b3: b3.to_owned(),
        };
        self.run(async {
            match client.head_object().bucket(bucket).key(key).send().await {
                Ok(head) => {
                    let same_content = head.content_length() == Some(length as i64)
                        && head.metadata().and_then(|metadata| metadata.get(manifest::B3_METADATA)).map(String::as_str) == Some(b3);
                    let etag = manifest::trim_etag(head.e_tag().unwrap_or_default());
                    if same_content && recorded.is_none_or(|recorded| manifest::trim_etag(&recorded.etag) == etag) {
                        return Ok((Placement::Present, stored(head.e_tag())));
                    }
                }
                Err(error)
                    if service_code(&error) == Some("NotFound") || error.raw_response().is_some_and(|raw| raw.status().as_u16() == 404) => {
                }
                Err(error) => return Err(failure(endpoint, &format!("look for `{key}` in `{bucket}`"), &error)),
            }
            // The same content under an older version: copied inside the
            // store, only if that object is still what was recorded (a single
            // copy reaches 5 GiB; larger files go up again).
            if let Some((source, source_object)) = copy_from.filter(|(_, object)| object.size < 5 * 1024 * 1024 * 1024) {
                let copied = client
                    .copy_object()
                    .bucket(bucket)
                    .key(key)
                    .copy_source(format!("{bucket}/{}", encode_key(source)))
                    .copy_source_if_match(format!("\"{}\"", manifest::trim_etag(&source_object.etag)))
                    .metadata_directive(MetadataDirective::Copy)
                    .send()
                    .await;
                if let Ok(copied) = copied {
                    let etag = copied.copy_object_result().and_then(|result| result.e_tag()).map(str::to_owned);
                    return Ok((Placement::Copied, stored(etag.as_deref())));
                }
            }
            if length < part_size {
                let body = ByteStream::from_path(file)
                    .await
                    .map_err(|error| ProviderError::failed(format!("cannot read `{}`: {error}", file.display())))?;
                let put = client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .metadata(manifest::B3_METADATA, b3)
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| failure(endpoint, &format!("upload `{key}` to `{bucket}`"), &error))?;
                return Ok((Placement::Uploaded, stored(put.e_tag())));
            }
            let upload = client
                .create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .metadata(manifest::B3_METADATA, b3)
                .send()
                .await
                .map_err(|error| failure(endpoint, &format!("start uploading `{key}` to `{bucket}`"), &error))?;
            let upload_id = upload.upload_id().unwrap_or_default().to_owned();
            let parts_total = length.div_ceil(part_size);
            let result: ProviderResult<Vec<CompletedPart>> = async {
                let mut completed = Vec::new();
                let mut in_flight = tokio::task::JoinSet::new();
                let mut next_part = 0u64;
                while next_part < parts_total || !in_flight.is_empty() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) || remote::interrupt_requested() {
                        return Err(ProviderError::Interrupted);
                    }
                    while next_part < parts_total && in_flight.len() < PARALLEL_PARTS {
                        let (client, bucket, key, upload_id, path) =
                            (client.clone(), bucket.to_owned(), key.to_owned(), upload_id.clone(), file.to_path_buf());
                        let offset = next_part * part_size;
                        let size = part_size.min(length - offset);
                        let number = (next_part + 1) as i32;
                        in_flight.spawn(async move {
                            let bytes = tokio::task::spawn_blocking(move || {
                                use std::io::{Read, Seek, SeekFrom};
                                let mut handle = std::fs::File::open(&path)?;
                                handle.seek(SeekFrom::Start(offset))?;
                                let mut buffer = vec![0u8; size as usize];
                                handle.read_exact(&mut buffer)?;
                                Ok::<_, std::io::Error>(buffer)
                            })
                            .await
                            .map_err(|error| error.to_string())?
                            .map_err(|error| error.to_string())?;
                            let answer = client
                                .upload_part()
                                .bucket(bucket)
                                .key(key)
                                .upload_id(upload_id)
                                .part_number(number)
                                .body(ByteStream::from(bytes))
                                .send()
                                .await;
                            Ok::<_, String>((number, answer))
                        });
                        next_part += 1;
                    }
                    let Some(joined) = in_flight.join_next().await else { break };
                    let (number, answer) =
                        joined.map_err(|error| ProviderError::failed(error.to_string()))?.map_err(ProviderError::failed)?;
                    let answer = answer.map_err(|error| failure(endpoint, &format!("upload part {number} of `{key}`"), &error))?;
                    completed.push(CompletedPart::builder().part_number(number).set_e_tag(answer.e_tag().map(str::to_owned)).build());
                    context.progress(&format!(
                        "uploading {}: {}/{parts_total} parts",
                        file.file_name().map(|name| name.to_string_lossy()).unwrap_or_default(),
                        completed.len()
                    ));
                }
                completed.sort_by_key(|part| part.part_number());
                Ok(completed)
            }
            .await;
            match result {
                Ok(parts) => {
                    let finished = client
                        .complete_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                        .send()
                        .await
                        .map_err(|error| failure(endpoint, &format!("finish uploading `{key}`"), &error))?;
                    Ok((Placement::Uploaded, stored(finished.e_tag())))
                }
                Err(error) => {
                    // Leave no half upload behind to be billed for.
                    let _ = client.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
                    Err(error)
                }
            }
        })
    }

    /// What is stored under `prefix` now: each object's size and ETag, by
    /// its name relative to the prefix; `None` when the bucket is gone.
    fn listing(&self, endpoint: &Endpoint, bucket: &str, prefix: &str) -> ProviderResult<Option<BTreeMap<String, (u64, String)>>> {
        let client = self.client(endpoint);
        self.run(async {
            let Some(objects) = list_all(&client, endpoint, bucket, prefix, PROVIDER).await? else { return Ok(None) };
            Ok(Some(
                objects
                    .iter()
                    .filter_map(|object| {
                        let relative = object.key()?.strip_prefix(prefix)?;
                        (!relative.is_empty()).then(|| {
                            (
                                relative.to_owned(),
                                (
                                    object.size().unwrap_or(0).max(0) as u64,
                                    manifest::trim_etag(object.e_tag().unwrap_or_default()).to_owned(),
                                ),
                            )
                        })
                    })
                    .collect(),
            ))
        })
    }

    /// Deletes the given keys (a thousand at a time).
    fn delete_keys(&self, endpoint: &Endpoint, bucket: &str, keys: &[String]) -> ProviderResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let client = self.client(endpoint);
        let identifiers =
            keys.iter().map(|key| ObjectIdentifier::builder().key(key).build()).collect::<Result<Vec<_>, _>>().map_err(build_failed)?;
        self.run(async {
            for chunk in identifiers.chunks(1000) {
                client
                    .delete_objects()
                    .bucket(bucket)
                    .delete(Delete::builder().set_objects(Some(chunk.to_vec())).quiet(true).build().map_err(build_failed)?)
                    .send()
                    .await
                    .map_err(|error| failure(endpoint, &format!("delete objects in `{bucket}`"), &error))?;
            }
            Ok(())
        })
    }

    /// Whether any object exists under `prefix`.
    fn prefix_exists(&self, endpoint: &Endpoint, bucket: &str, prefix: &str) -> ProviderResult<bool> {
        let client = self.client(endpoint);
        self.run(async {
            match client.list_objects_v2().bucket(bucket).prefix(prefix).max_keys(1).send().await {
                Ok(listing) => Ok(listing.key_count().unwrap_or(0) > 0 || !listing.contents().is_empty()),
                Err(error) if service_code(&error) == Some("NoSuchBucket") => Ok(false),
                Err(error) => Err(failure(endpoint, &format!("list `{prefix}` in `{bucket}`"), &error)),
            }
        })
    }

    /// Deletes every object under `prefix`.
    fn delete_prefix(&self, endpoint: &Endpoint, bucket: &str, prefix: &str) -> ProviderResult<()> {
        let client = self.client(endpoint);
        self.run(async {
            let Some(objects) = list_all(&client, endpoint, bucket, prefix, PROVIDER).await? else { return Ok(()) };
            let identifiers = objects
                .iter()
                .filter_map(|object| object.key())
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(build_failed)?;
            for chunk in identifiers.chunks(1000) {
                client
                    .delete_objects()
                    .bucket(bucket)
                    .delete(Delete::builder().set_objects(Some(chunk.to_vec())).quiet(true).build().map_err(build_failed)?)
                    .send()
                    .await
                    .map_err(|error| failure(endpoint, &format!("delete `{prefix}` in `{bucket}`"), &error))?;
            }
            Ok(())
        })
    }

    /// Features computed from a dataset in S3 and stored beside it,
    /// content-addressed under `features/ADDRESS/HASH/features.parquet` (or
    /// `features.jsonl`).
    fn apply_feature_set(&self, endpoint: &Endpoint, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let target = &request.target;
        let config = &request.config;
        let dataset = config.get("dataset").cloned().unwrap_or_default();
        let dataset_uri = field(&dataset, "uri").filter(|uri| uri.starts_with("s3://")).ok_or_else(|| {
            ProviderError::with_help(
                "a feature set on the s3 provider reads a dataset stored in S3",
                "put the dataset on the s3 provider too, or keep the feature set on the local provider",
            )
        })?;
        // The dataset version is immutable: downloaded once, reused after.
        let dataset_version = field(&dataset, "version");
        let staged = mlops_data::stage_once(&target.data_directory.join("staged"), dataset_uri, dataset_version, |incoming| {
            context.progress(&format!("downloading {dataset_uri}"));
            self.download_prefix(endpoint, dataset_uri, incoming, dataset_version).map(|_| ())
        })?;
        let files = mlops_data::data_files(&staged)?;
        let columns = mlops_data::columns_of(&dataset);
        let input = mlops_data::features::DatasetFiles {
            files: &files,
            format: field(&dataset, "format").unwrap_or("csv"),
            columns: columns.as_deref(),
            validated: mlops_data::features::DatasetFiles::validated_by(&dataset),
        };
        context.progress("computing the features");
        let computed_directory = fresh_computed_directory(&target.data_directory.join("features"), &target.address);
        let features = mlops_data::features::compute_features(config, &input, &computed_directory, context);
        let bucket = match config.get("bucket").and_then(|bucket| bucket.get("name")).and_then(Value::as_str) {
            Some(name) => name.to_owned(),
            None => split_uri(dataset_uri).map(|(bucket, _)| bucket.to_owned()).unwrap_or_default(),
        };
        let stored = features.and_then(|features| self.store_computed(endpoint, &bucket, "features", target, features, context));
        let _ = std::fs::remove_dir_all(&computed_directory);
        stored
    }

    /// Stores a computed file (features, a training set) content-addressed
    /// under `FOLDER/ADDRESS/HASH/` in `bucket`, and says what the state
    /// records of it.
    fn store_computed(
        &self,
        endpoint: &Endpoint,
        bucket: &str,
        folder: &str,
        target: &Target,
        computed: mlops_data::features::ComputedFeatures,
        context: &dyn ApplyContext,
    ) -> ProviderResult<ApplyResponse> {
        let prefix = format!("{folder}/{}/{}/", slug(&target.address), mlops_data::short_hash(&computed.version));
        let key = format!("{prefix}{}", computed.file_name);
        let b3 = computed.version.trim_start_matches("b3:").to_owned();
        let stop = std::sync::atomic::AtomicBool::new(false);
        context.progress(&format!("uploading s3://{bucket}/{key}"));
        let (_, stored) = self.store_file(endpoint, bucket, &key, &computed.file, &b3, None, None, context, &stop)?;
        let stored: manifest::Manifest = [(computed.file_name.to_owned(), stored)].into();
        let mut state = Attributes::new();
        state.insert("version".into(), Json::String(computed.version));
        state.insert("uri".into(), Json::String(format!("s3://{bucket}/{prefix}")));
        state.insert("row_count".into(), json!(computed.row_count));
        Ok(ApplyResponse { state, private: json!({ "objects": stored }) })
    }

    /// Labels in S3 joined point-in-time to feature sets in S3, stored in
    /// the labels' bucket under `training-sets/ADDRESS/HASH/`.
    fn apply_training_set(&self, endpoint: &Endpoint, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let target = &request.target;
        let staged = target.data_directory.join("staged");
        let inputs = mlops_data::join::TrainingSetInputs::from_config(&request.config, |uri, version| {
            if !uri.starts_with("s3://") {
                return Err(ProviderError::with_help(
                    format!("a training set on the s3 provider reads data stored in S3, and `{uri}` is not"),
                    "put its labels and feature sets on the s3 provider too, or keep the training set on the local provider",
                ));
            }
            // Immutable versions: downloaded once, reused after.
            mlops_data::stage_once(&staged, uri, version, |incoming| {
                context.progress(&format!("downloading {uri}"));
                self.download_prefix(endpoint, uri, incoming, version).map(|_| ())
            })
        })?;
        let bucket = split_uri(&inputs.labels_uri).map(|(bucket, _)| bucket.to_owned()).unwrap_or_default();
        let computed_directory = fresh_computed_directory(&target.data_directory.join("training-sets"), &target.address);
        context.progress("joining the labels to the features, point-in-time");
        let stored = inputs
            .join(&computed_directory, context)
            .and_then(|joined| self.store_computed(endpoint, &bucket, "training-sets", target, joined, context));
        let _ = std::fs::remove_dir_all(&computed_directory);
        stored
    }

    fn apply_dataset(&self, endpoint: &Endpoint, request: &ApplyRequest, context: &dyn ApplyContext) -> ProviderResult<ApplyResponse> {
        let target = &request.target;
        let config = &request.config;
        let Some(source) = text(config, "source") else {
            // Data that lives in S3 already: recorded by its listing, never copied.
            let uri = text(config, "uri").ok_or_else(|| ProviderError::with_help("a dataset needs `source` or `uri`", "add one"))?;
            let (version, size) = self.listing_version(endpoint, uri)?;
            let mut state = Attributes::new();
            state.insert("version".into(), Json::String(version));
            state.insert("uri".into(), Json::String(uri.to_owned()));
            state.insert("row_count".into(), Json::Null);
            state.insert("size_bytes".into(), json!(size));
            return Ok(ApplyResponse { state, private: json!({ "external": true }) });
        };
        let bucket = config.get("bucket").and_then(|bucket| bucket.get("name")).and_then(Value::as_str).ok_or_else(|| {
            ProviderError::with_help("a dataset on the s3 provider needs `bucket`", "add `bucket = bucket.NAME` with an s3 bucket")
        })?;
        let location = target.working_directory.join(source);
        let files = mlops_data::data_files(&location)?;
        context.progress(&format!("hashing {} file(s)", files.len()));
        let hashed = mlops_data::content_hash_for_apply(&location, &files, &request.planned_private)?;
        let (version, size) = (hashed.version.clone(), hashed.size);
        let format = text(config, "format").unwrap_or("csv");
        let columns = mlops_data::configured_columns(config);
        let prefix = format!("datasets/{}/{}/", slug(&target.address), mlops_data::short_hash(&version));
        // What the prior version stored: its objects may be reused (this
        // version's, when only repairing) or copied (an older version's).
        let prior_prefix = request
            .prior_state
            .as_ref()
            .and_then(|state| state_text(state, "uri"))
            .and_then(split_uri)
            .filter(|(prior_bucket, _)| *prior_bucket == bucket)
            .map(|(_, prior_prefix)| prior_prefix.to_owned());
        let prior_manifest = manifest::from_private(&request.prior_private).unwrap_or_default();
        // Rows are validated while the files go up: the upload does not wait
        // for a full read of the data. Whichever fails first stops the other,
        // and what was uploaded of data that turns out invalid is deleted.
        context.progress("validating rows against the schema while uploading");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut uploaded_keys = Vec::new();
        let mut stored = manifest::Manifest::new();
        let mut placements = [0usize; 3];
        let (validation, upload) = std::thread::scope(|scope| {
            let validation = scope.spawn(|| {
                let result = mlops_data::validate_rows(&files, format, columns.as_deref(), &stop);
                if result.is_err() {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                result
            });
            let mut upload = Ok(());
            for file in &files {
                let relative = mlops_data::relative_name(&location, file);
                let key = format!("{prefix}{relative}");
                let b3 = hashed.files.get(&relative).cloned().unwrap_or_default();
                let same_prefix = prior_prefix.as_deref() == Some(prefix.as_str());
                let recorded = prior_manifest.get(&relative).filter(|_| same_prefix);
                let copy_from = prior_prefix.as_ref().filter(|_| !same_prefix).and_then(|prior_prefix| {
                    prior_manifest
                        .iter()
                        .find(|(_, object)| !b3.is_empty() && object.b3 == b3)
                        .map(|(name, object)| (format!("{prior_prefix}{name}"), object))
                });
                let copy_from = copy_from.as_ref().map(|(source, object)| (source.as_str(), *object));
                match self.store_file(endpoint, bucket, &key, file, &b3, recorded, copy_from, context, &stop) {
                    Ok((placement, object)) => {
                        if placement != Placement::Present {
                            uploaded_keys.push(key);
                        }
                        placements[placement as usize] += 1;
                        stored.insert(relative, object);
                    }
                    Err(error) => {
                        upload = Err(error);
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                }
            }
            let validation =
                validation.join().unwrap_or_else(|_| Err(ProviderError::failed("the validation of the rows failed unexpectedly")));
            (validation, upload)
        });
        // Data that changed while it went up is not the version that was hashed.
        let validation = validation.and_then(|row_count| hashed.check_unchanged(&location, &files).map(|()| row_count));
        let row_count = match (validation, upload) {
            (Ok(row_count), Ok(())) => row_count,
            (Err(ProviderError::Interrupted), Err(error)) | (Ok(_), Err(error)) => return Err(error),
            (Err(error), _) => {
                let client = self.client(endpoint);
                self.block_on(async {
                    for key in &uploaded_keys {
                        let _ = client.delete_object().bucket(bucket).key(key).send().await;
                    }
                });
                return Err(error);
            }
        };
        // Objects added under this version's prefix outside mlops are not
        // part of it: what reads the prefix would read them too.
        if let Some(found) = self.listing(endpoint, bucket, &prefix)? {
            let strangers: Vec<String> =
                found.keys().filter(|name| !stored.contains_key(*name)).map(|name| format!("{prefix}{name}")).collect();
            self.delete_keys(endpoint, bucket, &strangers)?;
        }
        let [present, copied, uploaded] = placements;
        let copied_note = if copied > 0 { format!(", {copied} copied inside the store") } else { String::new() };
        context.progress(&format!("{uploaded} file(s) uploaded{copied_note}, {present} already present"));
        let mut state = Attributes::new();
        state.insert("version".into(), Json::String(version));
        state.insert("uri".into(), Json::String(format!("s3://{bucket}/{prefix}")));
        state.insert("row_count".into(), json!(row_count));
        state.insert("size_bytes".into(), json!(size));
        let mut private = hashed.private();
        private.insert("objects".to_owned(), serde_json::to_value(&stored).unwrap_or(Json::Null));
        Ok(ApplyResponse { state, private: Json::Object(private) })
    }
}

impl Store {
    /// The version of data that already lives in S3, from the listing alone
    /// (keys, sizes and ETags): nothing is downloaded. Returns the version
    /// and the total size.
    fn listing_version(&self, endpoint: &Endpoint, uri: &str) -> ProviderResult<(String, u64)> {
        let (bucket, prefix) = split_uri(uri)
            .ok_or_else(|| ProviderError::with_help(format!("`{uri}` is not an S3 location"), "write it as s3://BUCKET/PREFIX/"))?;
        let client = self.client(endpoint);
        self.run(async {
            let objects = list_all(&client, endpoint, bucket, prefix, PROVIDER).await?.unwrap_or_default();
            let hasher = listing_hasher(&objects, prefix);
            if hasher.is_empty() {
                return Err(ProviderError::with_help(
                    format!("{}: there are no objects under `{uri}`", endpoint.describe()),
                    "check the dataset's `uri`",
                ));
            }
            Ok(hasher.finish())
        })
    }

    fn plan_external_dataset(&self, endpoint: &Endpoint, request: &PlanRequest, uri: &str) -> ProviderResult<PlanResponse> {
        let (version, size) = self.listing_version(endpoint, uri)?;
        let mut response = PlanResponse::default();
        let prior_version = request.prior_state.as_ref().and_then(|state| state_text(state, "version")).map(str::to_owned);
        if let (Some(prior), Some(prior_version)) = (&request.prior_state, &prior_version) {
            if *prior_version == version && configuration_unchanged(request) {
                response.planned_state = prior.clone();
                return Ok(response);
            }
            if *prior_version != version {
                response.update_reasons.push(format!(
                    "its objects changed: version {} -> {}",
                    mlops_data::short_version(prior_version),
                    mlops_data::short_version(&version)
                ));
            }
        }
        response.planned_state.insert("version".into(), Json::String(version));
        response.planned_state.insert("size_bytes".into(), json!(size));
        response.planned_state.insert("uri".into(), Json::String(uri.to_owned()));
        response.planned_state.insert("row_count".into(), Json::Null);
        Ok(response)
    }
}

impl Store {
    /// Downloads every object under an `s3://bucket/prefix/` location into
    /// `destination`, keeping the key below the prefix as the relative path.
    /// Files already there with the same size are skipped. With `expected`,
    /// what is downloaded must be that version (a listing version is checked
    /// against the listing, a content version against the files), and each
    /// object must still be the one listed: data changed outside mlops is
    /// refused, never handed to downstream work.
    fn download_prefix(
        &self,
        endpoint: &Endpoint,
        uri: &str,
        destination: &std::path::Path,
        expected: Option<&str>,
    ) -> ProviderResult<FetchResponse> {
        self.download_objects(endpoint, uri, destination, expected, None)
    }

    /// [`Store::download_prefix`], of every object or (`shard`) of the
    /// `index`-th of every `count` objects in key order.
    fn download_objects(
        &self,
        endpoint: &Endpoint,
        uri: &str,
        destination: &std::path::Path,
        expected: Option<&str>,
        shard: Option<(usize, usize)>,
    ) -> ProviderResult<FetchResponse> {
        let (bucket, prefix) = split_uri(uri).ok_or_else(|| ProviderError::failed(format!("`{uri}` is not an S3 location")))?;
        let client = self.client(endpoint);
        let response = self.run(async {
            let mut response = FetchResponse::default();
            let objects = list_all(&client, endpoint, bucket, prefix, PROVIDER)
                .await?
                .ok_or_else(|| ProviderError::failed(format!("{}: there is no bucket `{bucket}`", endpoint.describe())))?;
            if let Some(expected) = expected.filter(|expected| expected.starts_with("s3l:")) {
                let (found, _) = listing_hasher(&objects, prefix).finish();
                if found != expected {
                    return Err(changed_since_recorded(uri, expected, &found));
                }
            }
            let mut position = 0;
            for object in &objects {
                let Some(key) = object.key() else { continue };
                let relative = key.strip_prefix(prefix).unwrap_or(key);
                if relative.is_empty() || relative.ends_with('/') || relative.split('/').any(|part| part == "..") {
                    continue;
                }
                position += 1;
                if shard.is_some_and(|(index, count)| (position - 1) % count != index) {
                    continue;
                }
                response.files += 1;
                let path = destination.join(relative);
                let size = object.size().unwrap_or(-1);
                if std::fs::metadata(&path).is_ok_and(|metadata| metadata.len() as i64 == size) {
                    continue;
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|error| ProviderError::failed(format!("cannot create `{}`: {error}", parent.display())))?;
                }
                let object =
                    client.get_object().bucket(bucket).key(key).set_if_match(object.e_tag().map(str::to_owned)).send().await.map_err(
                        |error| match service_code(&error) {
                            Some("PreconditionFailed") => {
                                ProviderError::failed(format!("`s3://{bucket}/{key}` changed while it was being downloaded"))
                            }
                            _ => failure(endpoint, &format!("download `{key}`"), &error),
                        },
                    )?;
                let mut body = object.body;
                let mut file = std::fs::File::create(&path)
                    .map_err(|error| ProviderError::failed(format!("cannot write `{}`: {error}", path.display())))?;
                while let Some(chunk) = body.try_next().await.map_err(|error| ProviderError::Transient {
                    message: format!("{}: download of `{key}` broke off: {error}", endpoint.describe()),
                })? {
                    std::io::Write::write_all(&mut file, &chunk)
                        .map_err(|error| ProviderError::failed(format!("cannot write `{}`: {error}", path.display())))?;
                }
                response.copied += 1;
            }
            Ok(response)
        })?;
        if let Some(expected) = expected.filter(|expected| expected.starts_with("b3:")) {
            mlops_data::verify_version(destination, expected, &format!("`{uri}`"))?;
        }
        Ok(response)
    }
}

/// The listing version of `objects` (all under `prefix`).
fn listing_hasher(objects: &[aws_sdk_s3::types::Object], prefix: &str) -> mlops_data::ListingHasher {
    let mut hasher = mlops_data::ListingHasher::default();
    for object in objects {
        let key = object.key().unwrap_or_default();
        hasher.add(key.strip_prefix(prefix).unwrap_or(key), object.size().unwrap_or(0).max(0) as u64, object.e_tag().unwrap_or_default());
    }
    hasher
}

/// Every object under `prefix`, all pages; `None` when the bucket does not
/// exist. Errors speak of settings in `configured_in` (see [`failure_configured_in`]).
async fn list_all(
    client: &Client,
    endpoint: &Endpoint,
    bucket: &str,
    prefix: &str,
    configured_in: &str,
) -> ProviderResult<Option<Vec<aws_sdk_s3::types::Object>>> {
    let mut objects = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let listing = match client.list_objects_v2().bucket(bucket).prefix(prefix).set_continuation_token(continuation.clone()).send().await
        {
            Ok(listing) => listing,
            Err(error) if service_code(&error) == Some("NoSuchBucket") => return Ok(None),
            Err(error) => return Err(failure_configured_in(endpoint, &format!("list `s3://{bucket}/{prefix}`"), &error, configured_in)),
        };
        objects.extend(listing.contents().iter().cloned());
        match listing.next_continuation_token() {
            Some(token) if listing.is_truncated() == Some(true) => continuation = Some(token.to_owned()),
            _ => return Ok(Some(objects)),
        }
    }
}

/// `s3://bucket/prefix/` into its parts.
fn split_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

/// Where refresh keeps the changes it found in a dataset's objects, for
/// `plan` to repair.
const CHANGED_OUTSIDE: &str = "changed_outside";

/// `response`, with the repair of objects changed outside mlops (as refresh
/// found them) added: the recorded data is stored again.
/// A directory under `parent` to compute this resource's file in, after
/// removing what an apply killed mid-way left for it (one apply at a time
/// holds the state lock, so any other is abandoned).
fn fresh_computed_directory(parent: &std::path::Path, address: &str) -> std::path::PathBuf {
    let prefix = format!("{}-", slug(address));
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // The process id is all that follows the resource's name.
            if name.strip_prefix(&prefix).is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|byte| byte.is_ascii_digit())) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    parent.join(format!("{prefix}{}", std::process::id()))
}

fn repairing(request: &PlanRequest, mut response: PlanResponse) -> PlanResponse {
    let changes: Vec<&str> =
        request.prior_private.get(CHANGED_OUTSIDE).and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
    if let (false, Some(uri)) = (changes.is_empty(), request.prior_state.as_ref().and_then(|state| state_text(state, "uri"))) {
        response
            .update_reasons
            .push(format!("objects under {uri} were changed outside mlops ({}): apply stores the recorded data again", changes.join(", ")));
    }
    response
}

/// Data at `uri` that is not the version recorded for it.
fn changed_since_recorded(uri: &str, expected: &str, found: &str) -> ProviderError {
    ProviderError::with_help(
        format!(
            "`{uri}` does not hold the version that was recorded: it should be {}, it is {}; it was changed outside mlops",
            mlops_data::short_version(expected),
            mlops_data::short_version(found)
        ),
        "nothing was computed from it; run `mlops plan` to see the change, and apply it before what reads this data",
    )
}

impl S3Provider {
    /// Copies the `index`-th of every `count` objects under `uri` (in key
    /// order) into `destination`: the files one shard of a computation in
    /// the cluster reads. `config` is a provider block's settings.
    pub fn download_shard(
        &self,
        config: &Configuration,
        uri: &str,
        destination: &std::path::Path,
        index: usize,
        count: usize,
    ) -> ProviderResult<FetchResponse> {
        if count == 0 || index >= count {
            return Err(ProviderError::failed(format!("shard {index} of {count} does not exist")));
        }
        self.store.download_objects(&Endpoint::from_config(config), uri, destination, None, Some((index, count)))
    }

    /// Uploads one file as the object `uri` names (`s3://BUCKET/KEY`).
    pub fn upload_file(&self, config: &Configuration, file: &std::path::Path, uri: &str) -> ProviderResult<()> {
        let endpoint = Endpoint::from_config(config);
        let (bucket, key) = split_uri(uri).ok_or_else(|| ProviderError::failed(format!("`{uri}` is not an S3 location")))?;
        let client = self.store.client(&endpoint);
        self.store.run(async {
            let body = aws_sdk_s3::primitives::ByteStream::from_path(file)
                .await
                .map_err(|error| ProviderError::failed(format!("cannot read `{}`: {error}", file.display())))?;
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .send()
                .await
                .map_err(|error| failure(&endpoint, &format!("upload `{key}`"), &error))?;
            Ok(())
        })
    }
}

impl Provider for S3Provider {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    fn fetch(&self, request: FetchRequest) -> ProviderResult<FetchResponse> {
        let endpoint = Endpoint::from_config(&request.target.provider_config);
        self.store.download_prefix(&endpoint, &request.uri, &request.destination, request.version.as_deref())
    }
}
