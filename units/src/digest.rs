//! SHA-256 digests written the way registries and lock files write them:
//! lowercase hex, and `sha256:HEX` for content digests.
//!
//! The one place the workspace names its SHA-256 crate, so the compiler
//! (lock files, `sha256()`), the OCI provider (blobs, manifests) and the
//! Kubernetes provider (staged file lists) agree byte for byte, and a
//! version bump of the crate is one edit.

use sha2::Digest as _;

/// The lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

/// The content digest of `bytes`: `sha256:HEX`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// A SHA-256 fed in pieces, for content read in blocks.
#[derive(Default, Clone)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    pub fn new() -> Sha256Hasher {
        Sha256Hasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The content digest of everything fed: `sha256:HEX`.
    pub fn finish_digest(self) -> String {
        format!("sha256:{}", hex(&self.0.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_published_test_vectors() {
        // FIPS 180-2's vectors for "" and "abc".
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_digest(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_digest_fed_in_pieces_equals_the_digest_of_the_whole() {
        let mut hasher = Sha256Hasher::new();
        hasher.update(b"a");
        hasher.update(b"bc");
        assert_eq!(hasher.finish_digest(), sha256_digest(b"abc"));
    }

    #[test]
    fn hex_writes_every_byte_as_two_lowercase_digits() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
