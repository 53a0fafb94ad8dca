//! Random W3C trace and span ids, without a random-number crate: SipHash keyed by the
//! standard library's per-process random keys (each `RandomState` gets fresh keys), over a
//! counter and the clock. Unpredictable enough for tracing; not for cryptography.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        h.write_u128(now);
        let v = h.finish();
        if v != 0 {
            return v;
        }
    }
}

/// A new random W3C trace id: 32 lower-case hex digits, never all zero.
pub fn new_trace_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// A new random W3C span id: 16 lower-case hex digits, never all zero.
pub fn new_span_id() -> String {
    format!("{:016x}", random_u64())
}

/// `s` as a lower-case id when it is `len` hex digits and not all zero.
pub(crate) fn valid_hex_id(s: &str, len: usize) -> Option<String> {
    let ok =
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0');
    ok.then(|| s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_well_formed_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let t = new_trace_id();
            let s = new_span_id();
            assert_eq!(valid_hex_id(&t, 32).as_deref(), Some(t.as_str()));
            assert_eq!(valid_hex_id(&s, 16).as_deref(), Some(s.as_str()));
            assert!(seen.insert(t));
            assert!(seen.insert(s));
        }
    }

    #[test]
    fn validates_hex_ids() {
        assert_eq!(
            valid_hex_id("00f067aa0ba902b7", 16).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(
            valid_hex_id("00F067AA0BA902B7", 16).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(valid_hex_id("0000000000000000", 16), None);
        assert_eq!(valid_hex_id("00f067aa0ba902b", 16), None);
        assert_eq!(valid_hex_id("00f067aa0ba902bz", 16), None);
    }
}
