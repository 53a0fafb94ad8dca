//! Virtual keys as secrets: generation, hashing (LiteLLM-compatible), display prefixes and
//! constant-time comparison. The clear key exists only in [`ClearKey`], which never prints.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of every generated virtual key.
pub const KEY_PREFIX: &str = "sk-";

/// Random characters after [`KEY_PREFIX`] in a generated key (6 bits each: 258 bits).
pub const KEY_RANDOM_CHARS: usize = 43;

const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A clear virtual key, as handed to its owner exactly once. `Debug` and `Display` redact it;
/// read it with [`ClearKey::expose`] only to give it to the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct ClearKey(String);

impl ClearKey {
    /// Wrap a key the caller presented (e.g. from an `Authorization` header).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key's SHA-256 hex digest, as stored.
    pub fn hash(&self) -> String {
        hash_key(&self.0)
    }

    /// The display form, `sk-…abcd` (see [`display_prefix`]).
    pub fn display(&self) -> String {
        display_prefix(&self.0)
    }
}

impl fmt::Debug for ClearKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClearKey({})", display_prefix(&self.0))
    }
}

impl fmt::Display for ClearKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_prefix(&self.0))
    }
}

/// The lowercase hex SHA-256 of the key's UTF-8 bytes. This is exactly how LiteLLM hashes
/// `sk-…` virtual keys into `LiteLLM_VerificationToken.token`, so hashes move between the two.
pub fn hash_key(clear: &str) -> String {
    hex::encode(Sha256::digest(clear.as_bytes()))
}

/// A new random key: `sk-` followed by [`KEY_RANDOM_CHARS`] URL-safe characters drawn from
/// the thread-local CSPRNG (ChaCha, seeded from the operating system).
pub fn generate_key() -> ClearKey {
    let mut bytes = [0u8; KEY_RANDOM_CHARS];
    rand::rng().fill_bytes(&mut bytes);
    let mut s = String::with_capacity(KEY_PREFIX.len() + KEY_RANDOM_CHARS);
    s.push_str(KEY_PREFIX);
    // 256 is a multiple of 64, so masking keeps every character equally likely.
    s.extend(bytes.iter().map(|b| URL_SAFE[usize::from(b & 63)] as char));
    ClearKey(s)
}

/// A random opaque id (`<prefix>` + 24 hex characters) for keys and teams.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What a key looks like on a screen: its first three characters (`sk-`), an ellipsis, and its
/// last four. Short keys show only the ellipsis.
pub fn display_prefix(clear: &str) -> String {
    let chars: Vec<char> = clear.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Constant-time equality of two byte strings (the time depends only on the lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether `clear` hashes to `stored_hash`, compared in constant time.
pub fn verify_key(clear: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_key(clear).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex_like_litellm() {
        // `printf 'sk-1234' | sha256sum`: what LiteLLM stores for the key `sk-1234`.
        assert_eq!(
            hash_key("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert_eq!(
            hash_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash_key("sk-1234").len(), 64);
    }

    #[test]
    fn generated_keys_are_long_random_and_url_safe() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        let s = a.expose();
        assert!(s.starts_with("sk-"));
        assert_eq!(s.len(), 3 + KEY_RANDOM_CHARS);
        assert!(s[3..].bytes().all(|c| URL_SAFE.contains(&c)));
        assert!(verify_key(s, &a.hash()));
        assert!(!verify_key(b.expose(), &a.hash()));
    }

    #[test]
    fn clear_keys_never_print() {
        let k = generate_key();
        let shown = format!("{k:?} {k}");
        assert!(!shown.contains(&k.expose()[3..]));
        assert!(shown.contains(&k.expose()[k.expose().len() - 4..]));
        assert_eq!(display_prefix("sk-abcdefghijklmnop"), "sk-…mnop");
        assert_eq!(display_prefix("sk-short"), "…");
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
