//! Bounded metric label values.
//!
//! A label value is sanitized (ASCII letters, digits and `-_./:@`; anything else becomes
//! `_`), capped at [`MAX_LABEL_LEN`] bytes, and — for dimensions whose values could come
//! from clients or grow with usage — admitted only while that dimension has seen fewer than
//! [`MAX_DISTINCT`] values; later newcomers are reported as `other`. Absent values are `none`.

use std::collections::BTreeSet;
use std::sync::Mutex;

use metrics::SharedString;

/// Longest label value, in bytes.
pub(crate) const MAX_LABEL_LEN: usize = 64;
/// Most distinct values one bounded dimension takes; later ones become [`OTHER`].
pub(crate) const MAX_DISTINCT: usize = 1000;
/// The value of an absent label.
pub(crate) const NONE: &str = "none";
/// The value standing for values past a dimension's limit.
pub(crate) const OTHER: &str = "other";

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':' | b'@')
}

/// `value` made safe and short, `none` when empty.
pub(crate) fn clean(value: &str) -> SharedString {
    let v = value.trim();
    if v.is_empty() {
        return SharedString::const_str(NONE);
    }
    if v.len() <= MAX_LABEL_LEN && v.bytes().all(allowed) {
        return SharedString::from(v.to_owned());
    }
    let mut out = String::with_capacity(v.len().min(MAX_LABEL_LEN));
    for c in v.chars() {
        if out.len() >= MAX_LABEL_LEN {
            break;
        }
        out.push(if c.is_ascii() && allowed(c as u8) {
            c
        } else {
            '_'
        });
    }
    SharedString::from(out)
}

/// One label dimension with a bounded set of values.
#[derive(Debug)]
pub(crate) struct Dimension {
    seen: Mutex<BTreeSet<String>>,
}

impl Dimension {
    pub(crate) const fn new() -> Self {
        Self {
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// The label value for `value` (`None` → `none`).
    pub(crate) fn value(&self, value: Option<&str>) -> SharedString {
        let Some(v) = value else {
            return SharedString::const_str(NONE);
        };
        let cleaned = clean(v);
        let s: &str = &cleaned;
        if s == NONE || s == OTHER {
            return cleaned;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(s) {
            return cleaned;
        }
        if seen.len() >= MAX_DISTINCT {
            return SharedString::const_str(OTHER);
        }
        seen.insert(s.to_owned());
        cleaned
    }
}

/// Model groups (the names clients ask for).
pub(crate) static MODEL_GROUPS: Dimension = Dimension::new();
/// Deployments.
pub(crate) static DEPLOYMENTS: Dimension = Dimension::new();
/// Provider prefixes.
pub(crate) static PROVIDERS: Dimension = Dimension::new();
/// Provider models (unknown-price lookups).
pub(crate) static MODELS: Dimension = Dimension::new();
/// Virtual keys (alias or hash prefix).
pub(crate) static KEYS: Dimension = Dimension::new();
/// Teams.
pub(crate) static TEAMS: Dimension = Dimension::new();
/// Sink and exporter names.
pub(crate) static SINKS: Dimension = Dimension::new();
/// Operations (`chat`, `chat_stream`, `embeddings`, …).
pub(crate) static OPERATIONS: Dimension = Dimension::new();

/// An HTTP status as a label: three digits, anything else `other`.
pub(crate) fn status(code: u16) -> SharedString {
    if (100..=599).contains(&code) {
        SharedString::from(code.to_string())
    } else {
        SharedString::const_str(OTHER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_caps_values() {
        assert_eq!(&*clean("gpt-4o"), "gpt-4o");
        assert_eq!(&*clean("openai/gpt-4o@eu:1"), "openai/gpt-4o@eu:1");
        assert_eq!(&*clean("  "), "none");
        assert_eq!(&*clean("a b\"c\nd"), "a_b_c_d");
        assert_eq!(&*clean("modèle"), "mod_le");
        let long = "x".repeat(300);
        assert_eq!(clean(&long).len(), MAX_LABEL_LEN);
    }

    #[test]
    fn a_dimension_stops_admitting_new_values_at_its_limit() {
        let d = Dimension::new();
        for i in 0..MAX_DISTINCT {
            assert_eq!(&*d.value(Some(&format!("m{i}"))), format!("m{i}"));
        }
        assert_eq!(&*d.value(Some("one-too-many")), OTHER);
        assert_eq!(&*d.value(Some("m7")), "m7", "known values stay");
        assert_eq!(&*d.value(None), NONE);
    }
}
