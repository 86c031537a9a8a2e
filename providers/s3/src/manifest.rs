//! What mlops stored under a dataset's or feature set's prefix, kept in the
//! resource's private state: each object's name (relative to the prefix),
//! size, ETag, and the BLAKE3 hash of its content.
//!
//! Refresh lists the prefix and compares every object with it, so an object
//! replaced, deleted or added outside mlops is drift, and the next apply puts
//! the recorded content back. Apply uses it to store a new version without
//! sending what the store already holds: an object with the same content
//! under the previous version is copied inside the store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    pub size: u64,
    pub etag: String,
    /// The content's BLAKE3 hash (hex), as in the object's `mlops-b3` metadata.
    #[serde(default)]
    pub b3: String,
}

/// The objects under one prefix, by name relative to it.
pub type Manifest = BTreeMap<String, StoredObject>;

/// The manifest a private state holds, if it has one.
pub fn from_private(private: &Json) -> Option<Manifest> {
    private.get("objects").and_then(|objects| serde_json::from_value(objects.clone()).ok())
}

/// The metadata key that carries an object's BLAKE3 hash.
pub const B3_METADATA: &str = "mlops-b3";

/// How the objects found under a prefix differ from the manifest, in words.
pub fn differences(manifest: &Manifest, found: &BTreeMap<String, (u64, String)>) -> Vec<String> {
    let mut changes = Vec::new();
    for (name, recorded) in manifest {
        match found.get(name) {
            None => changes.push(format!("`{name}` was deleted")),
            // Some S3-compatible stores list no ETags: then the size is all
            // a listing can tell.
            Some((size, etag)) if *size != recorded.size || (!etag.is_empty() && trim_etag(etag) != trim_etag(&recorded.etag)) => {
                changes.push(format!("`{name}` was replaced"))
            }
            Some(_) => {}
        }
    }
    for name in found.keys().filter(|name| !manifest.contains_key(*name)) {
        changes.push(format!("`{name}` was added"));
    }
    changes
}

/// ETags come quoted from some calls and bare from others.
pub fn trim_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_change_is_named() {
        let object = |size, etag: &str| StoredObject { size, etag: etag.to_owned(), b3: String::new() };
        let manifest: Manifest =
            [("a.csv".to_owned(), object(3, "\"x\"")), ("b.csv".to_owned(), object(4, "y")), ("c.csv".to_owned(), object(5, "z"))].into();
        let found: BTreeMap<String, (u64, String)> = [
            ("a.csv".to_owned(), (3, "x".to_owned())),
            ("b.csv".to_owned(), (4, "other".to_owned())),
            ("d.csv".to_owned(), (1, "w".to_owned())),
        ]
        .into();
        assert_eq!(differences(&manifest, &found), ["`b.csv` was replaced", "`c.csv` was deleted", "`d.csv` was added"]);
        // A store that lists no ETags: sizes only.
        let unlabelled: BTreeMap<String, (u64, String)> =
            [("a.csv".to_owned(), (3, String::new())), ("b.csv".to_owned(), (4, String::new())), ("c.csv".to_owned(), (6, String::new()))]
                .into();
        assert_eq!(differences(&manifest, &unlabelled), ["`c.csv` was replaced"]);
        assert!(differences(
            &manifest,
            &manifest.iter().map(|(name, object)| (name.clone(), (object.size, object.etag.clone()))).collect()
        )
        .is_empty());
    }
}
