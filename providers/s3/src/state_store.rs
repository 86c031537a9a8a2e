//! The s3 state backend's storage: [`ObjectStore`] over one bucket and key
//! prefix, as named in `mlops { backend "s3" { bucket, key, ... } }`.
//!
//! Conditional creation is S3's `If-None-Match: *`; conditional deletion is
//! `If-Match: ETAG`. Both answer 412 Precondition Failed when they lose
//! (AWS may also answer 409 ConditionalRequestConflict to a write racing
//! another). `mlops init` creates the bucket when it is missing (with
//! versioning, so every state version is kept) and checks that the store
//! really refuses a second conditional create, since the lock and the
//! state's serials rest on it.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use mlops_provider_api::{Configuration, ObjectStore, ObjectStoreError, ProviderError, PutCondition, StoredObject, Value};

use crate::{failure_configured_in, list_all, not_implemented, service_code, Endpoint, Store};

/// Objects under `s3://BUCKET/KEY/`.
pub struct S3StateStore {
    provider: Store,
    endpoint: Endpoint,
    bucket: String,
    prefix: String,
}

impl S3StateStore {
    /// From the backend block's settings: `bucket` and `key` (required),
    /// `region`, `endpoint`, `force_path_style`, `profile`.
    pub fn new(settings: &Configuration) -> Result<S3StateStore, ObjectStoreError> {
        let text = |name: &str| settings.get(name).and_then(Value::as_str).map(str::trim).filter(|text| !text.is_empty());
        let bucket = text("bucket").ok_or_else(|| ObjectStoreError::Failed {
            message: "the s3 state backend needs a `bucket`".to_owned(),
            help: Some("add `bucket = \"...\"` to the `backend \"s3\"` block".to_owned()),
        })?;
        let key = text("key").map(|key| key.trim_matches('/')).filter(|key| !key.is_empty()).ok_or_else(|| ObjectStoreError::Failed {
            message: "the s3 state backend needs a `key`".to_owned(),
            help: Some("add `key = \"team/project\"`: the prefix this configuration's state lives under".to_owned()),
        })?;
        Ok(S3StateStore {
            provider: Store::new(),
            endpoint: Endpoint::from_config(settings),
            bucket: bucket.to_owned(),
            prefix: format!("{key}/"),
        })
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn no_bucket(&self) -> ObjectStoreError {
        ObjectStoreError::Failed {
            message: format!("the state bucket `{}` does not exist ({})", self.bucket, self.endpoint.describe()),
            help: Some("run `mlops init` to create it, or check `bucket` and `endpoint` in the backend block".to_owned()),
        }
    }

    /// Retries what the store calls transient (after the SDK's own
    /// retries), a few times with backoff: losing a state write to one
    /// throttled request would fail a whole apply.
    fn with_retries<T>(&self, mut operation: impl FnMut() -> Result<T, Attempt>) -> Result<T, ObjectStoreError> {
        let mut delay = std::time::Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match operation() {
                Ok(value) => return Ok(value),
                Err(Attempt::Transient(_)) if attempt < 4 => {
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                Err(Attempt::Transient(error)) | Err(Attempt::Final(error)) => return Err(error),
            }
        }
    }

    /// A failure, transient or not, as the store classifies it.
    fn attempt<E, R>(&self, doing: &str, error: &SdkError<E, R>) -> Attempt
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        if service_code(error) == Some("NoSuchBucket") {
            return Attempt::Final(self.no_bucket());
        }
        match failure_configured_in(&self.endpoint, doing, error, BACKEND) {
            error @ ProviderError::Transient { .. } => Attempt::Transient(provider_error(error)),
            error => Attempt::Final(provider_error(error)),
        }
    }

    /// Whether the store refuses a second conditional create of one key.
    fn check_conditional_writes(&self) -> Result<(), ObjectStoreError> {
        let probe = format!(".mlops-conditional-write-check-{}", std::process::id());
        self.put(&probe, b"1".to_vec(), PutCondition::IfAbsent)?;
        let second = self.put(&probe, b"2".to_vec(), PutCondition::IfAbsent);
        let _ = self.delete(&probe, None);
        match second {
            Err(ObjectStoreError::PreconditionFailed) => Ok(()),
            Ok(_) => Err(ObjectStoreError::Failed {
                message: format!(
                    "{} ignores conditional writes (`If-None-Match: *`), which the s3 state backend needs for its lock and to never lose a write",
                    self.endpoint.describe()
                ),
                help: Some("use a store that supports conditional writes (AWS S3, recent MinIO or Ceph), or the local backend".to_owned()),
            }),
            Err(error) => Err(error),
        }
    }
}

enum Attempt {
    Transient(ObjectStoreError),
    Final(ObjectStoreError),
}

impl Attempt {
    fn into_error(self) -> ObjectStoreError {
        match self {
            Attempt::Transient(error) | Attempt::Final(error) => error,
        }
    }
}

/// Where the backend's settings are written, for [`failure_configured_in`].
const BACKEND: &str = "the backend block";

fn provider_error(error: ProviderError) -> ObjectStoreError {
    ObjectStoreError::Failed { message: error.to_string(), help: error.help().map(str::to_owned) }
}

/// A lost condition: 412, or AWS's 409 for a write racing another conditional one.
fn precondition_failed<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    matches!(service_code(error), Some("PreconditionFailed" | "ConditionalRequestConflict"))
        || error.raw_response().is_some_and(|raw| matches!(raw.status().as_u16(), 412 | 409))
}

fn missing<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    service_code(error) == Some("NoSuchKey")
        || (service_code(error) != Some("NoSuchBucket") && error.raw_response().is_some_and(|raw| raw.status().as_u16() == 404))
}

impl ObjectStore for S3StateStore {
    fn describe(&self) -> String {
        format!("s3://{}/{} ({})", self.bucket, self.prefix.trim_end_matches('/'), self.endpoint.describe())
    }

    fn get(&self, key: &str) -> Result<Option<StoredObject>, ObjectStoreError> {
        let client = self.provider.client(&self.endpoint);
        let object_key = self.object_key(key);
        let doing = format!("read `s3://{}/{object_key}`", self.bucket);
        self.with_retries(|| {
            self.provider.block_on(async {
                let response = match client.get_object().bucket(&self.bucket).key(&object_key).send().await {
                    Ok(response) => response,
                    Err(error) if missing(&error) => return Ok(None),
                    Err(error) => return Err(self.attempt(&doing, &error)),
                };
                let etag = response.e_tag().map(str::to_owned);
                let bytes = response.body.collect().await.map_err(|error| {
                    Attempt::Transient(ObjectStoreError::failed(format!("cannot read `s3://{}/{object_key}`: {error}", self.bucket)))
                })?;
                Ok(Some(StoredObject { bytes: bytes.into_bytes().to_vec(), etag }))
            })
        })
    }

    fn put(&self, key: &str, bytes: Vec<u8>, condition: PutCondition) -> Result<Option<String>, ObjectStoreError> {
        let client = self.provider.client(&self.endpoint);
        let object_key = self.object_key(key);
        let doing = format!("write `s3://{}/{object_key}`", self.bucket);
        self.with_retries(|| {
            self.provider.block_on(async {
                let mut request = client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&object_key)
                    .content_type("application/json")
                    .body(ByteStream::from(bytes.clone()));
                if condition == PutCondition::IfAbsent {
                    request = request.if_none_match("*");
                }
                match request.send().await {
                    Ok(response) => Ok(response.e_tag().map(str::to_owned)),
                    Err(error) if condition == PutCondition::IfAbsent && precondition_failed(&error) => {
                        Err(Attempt::Final(ObjectStoreError::PreconditionFailed))
                    }
                    Err(error) => Err(self.attempt(&doing, &error)),
                }
            })
        })
    }

    fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), ObjectStoreError> {
        let client = self.provider.client(&self.endpoint);
        let object_key = self.object_key(key);
        let doing = format!("delete `s3://{}/{object_key}`", self.bucket);
        self.with_retries(|| {
            self.provider.block_on(async {
                let mut request = client.delete_object().bucket(&self.bucket).key(&object_key);
                if let Some(etag) = if_match {
                    request = request.if_match(etag);
                }
                match request.send().await {
                    Ok(_) => Ok(()),
                    Err(error) if missing(&error) => Ok(()),
                    Err(error) if if_match.is_some() && precondition_failed(&error) => {
                        Err(Attempt::Final(ObjectStoreError::PreconditionFailed))
                    }
                    Err(error) => Err(self.attempt(&doing, &error)),
                }
            })
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        let client = self.provider.client(&self.endpoint);
        let full_prefix = self.object_key(prefix);
        self.with_retries(|| {
            self.provider.block_on(async {
                match list_all(&client, &self.endpoint, &self.bucket, &full_prefix, BACKEND).await {
                    Ok(Some(objects)) => {
                        let mut keys: Vec<String> =
                            objects.iter().filter_map(|object| object.key()?.strip_prefix(&self.prefix)).map(str::to_owned).collect();
                        keys.sort();
                        Ok(keys)
                    }
                    Ok(None) => Err(Attempt::Final(self.no_bucket())),
                    Err(error @ ProviderError::Transient { .. }) => Err(Attempt::Transient(provider_error(error))),
                    Err(error) => Err(Attempt::Final(provider_error(error))),
                }
            })
        })
    }

    fn initialise(&self) -> Result<Option<String>, ObjectStoreError> {
        let client = self.provider.client(&self.endpoint);
        let exists = self.provider.block_on(async {
            match client.head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => Ok(true),
                Err(error)
                    if service_code(&error) == Some("NotFound") || error.raw_response().is_some_and(|raw| raw.status().as_u16() == 404) =>
                {
                    Ok(false)
                }
                Err(error) => Err(self.attempt(&format!("read bucket `{}`", self.bucket), &error).into_error()),
            }
        })?;
        let mut done = None;
        if !exists {
            self.provider.create_bucket(&self.endpoint, &self.bucket).map_err(provider_error)?;
            // Every state version kept, where the store can.
            let versioned = self.provider.block_on(async {
                let request = client
                    .put_bucket_versioning()
                    .bucket(&self.bucket)
                    .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build());
                match request.send().await {
                    Ok(_) => Ok(true),
                    Err(error) if not_implemented(&error) => Ok(false),
                    Err(error) => Err(self.attempt(&format!("turn on versioning of `{}`", self.bucket), &error).into_error()),
                }
            })?;
            done = Some(if versioned {
                format!("created the state bucket `{}` with versioning ({})", self.bucket, self.endpoint.describe())
            } else {
                format!("created the state bucket `{}` ({}; it keeps no versions)", self.bucket, self.endpoint.describe())
            });
        }
        self.check_conditional_writes()?;
        Ok(done)
    }
}
