//! The storage a remote state backend needs: small objects under one
//! prefix, with conditional creation.
//!
//! The engine keeps the state format to itself (see `mlops-engine`'s
//! `state` module); a provider that can host state (today `s3`) implements
//! [`ObjectStore`] for its own store, so the engine never links a cloud SDK.
//!
//! The one guarantee the engine builds on is [`PutCondition::IfAbsent`]: of
//! two writers creating the same key, exactly one succeeds and the other gets
//! [`ObjectStoreError::PreconditionFailed`]. Locks and the state's serial
//! numbers are both made of it, so a store must not fake it: a store that
//! cannot do conditional writes must say so with an error instead.

/// One object as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    /// The store's entity tag, for a later conditional delete.
    pub etag: Option<String>,
}

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutCondition {
    /// Always, replacing what is there.
    Always,
    /// Only when no object has the key (`If-None-Match: *`).
    IfAbsent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectStoreError {
    /// A conditional write or delete lost: the key exists (or, for a delete,
    /// changed) already.
    #[error("the object changed meanwhile")]
    PreconditionFailed,
    /// Anything else, in words meant for the user (naming the store and the
    /// cause, never credentials), with what to do about it when known.
    #[error("{message}")]
    Failed { message: String, help: Option<String> },
}

impl ObjectStoreError {
    pub fn failed(message: impl Into<String>) -> ObjectStoreError {
        ObjectStoreError::Failed { message: message.into(), help: None }
    }

    pub fn help(&self) -> Option<&str> {
        match self {
            ObjectStoreError::Failed { help, .. } => help.as_deref(),
            ObjectStoreError::PreconditionFailed => None,
        }
    }
}

/// Objects under one prefix of a store. Keys are relative to that prefix
/// and use `/` as a separator. Transient failures (throttling, 5xx) are
/// retried inside the implementation; what comes back is final.
pub trait ObjectStore: Send + Sync {
    /// Where the objects are, for messages: `s3://bucket/prefix at ENDPOINT`.
    fn describe(&self) -> String;

    /// The object, or `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<StoredObject>, ObjectStoreError>;

    /// Writes an object; returns its entity tag when the store gives one.
    fn put(&self, key: &str, bytes: Vec<u8>, condition: PutCondition) -> Result<Option<String>, ObjectStoreError>;

    /// Deletes an object; with `if_match`, only while its entity tag is
    /// still that one. Deleting a missing object is not an error.
    fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), ObjectStoreError>;

    /// The keys under `prefix` (relative to the store's prefix), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError>;

    /// Makes sure the place exists (creates the bucket, say), for
    /// `mlops init`. Returns what was done, in words, or `None` when nothing
    /// was needed.
    fn initialise(&self) -> Result<Option<String>, ObjectStoreError>;
}
