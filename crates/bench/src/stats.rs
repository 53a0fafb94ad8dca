//! Latency summaries: percentiles over recorded samples, as JSON.
//!
//! Samples are kept whole (nanoseconds, one `u64` each) and sorted once at the end: a
//! benchmark run records at most a few million, and exact percentiles need no bucket
//! error analysis. This module does no I/O and knows nothing about HTTP.

use std::time::Duration;

use serde_json::{Value, json};

/// The percentiles every summary reports, as (JSON key, quantile).
pub const PERCENTILES: [(&str, f64); 4] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
];

/// Latency samples of one kind (total, time to first byte, …), in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    /// An empty set with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ns: Vec::with_capacity(n),
        }
    }

    /// Record one latency.
    pub fn push(&mut self, d: Duration) {
        self.ns
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Take every sample of `other`.
    pub fn append(&mut self, other: &mut Samples) {
        self.ns.append(&mut other.ns);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    /// Sort and summarise: `{"p50": ms, "p90": ms, "p99": ms, "p99.9": ms, "mean": ms,
    /// "max": ms, "n": count}`; every value `null` when there are no samples.
    pub fn summary(mut self) -> Value {
        self.ns.sort_unstable();
        let mut out = serde_json::Map::new();
        for (key, q) in PERCENTILES {
            out.insert(key.into(), ms(quantile(&self.ns, q)));
        }
        let mean = if self.ns.is_empty() {
            None
        } else {
            let sum: u128 = self.ns.iter().map(|&v| u128::from(v)).sum();
            Some((sum / self.ns.len() as u128) as u64)
        };
        out.insert("mean".into(), ms(mean));
        out.insert("max".into(), ms(self.ns.last().copied()));
        out.insert("n".into(), json!(self.ns.len()));
        Value::Object(out)
    }
}

/// The nearest-rank quantile `q` (0 < q ≤ 1) of sorted samples.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index])
}

/// Nanoseconds as milliseconds with microsecond precision (JSON number), or `null`.
fn ms(ns: Option<u64>) -> Value {
    match ns {
        Some(v) => json!((v as f64 / 1_000.0).round() / 1_000.0),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let sorted: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&sorted, 0.5), Some(500));
        assert_eq!(quantile(&sorted, 0.9), Some(900));
        assert_eq!(quantile(&sorted, 0.99), Some(990));
        assert_eq!(quantile(&sorted, 0.999), Some(999));
        assert_eq!(quantile(&sorted, 1.0), Some(1000));
        assert_eq!(quantile(&[7], 0.999), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn summary_in_milliseconds_whatever_the_insertion_order() {
        let mut s = Samples::default();
        for us in [900u64, 100, 500, 300, 700] {
            s.push(Duration::from_micros(us));
        }
        let v = s.summary();
        assert_eq!(v["p50"], json!(0.5));
        assert_eq!(v["p99"], json!(0.9));
        assert_eq!(v["max"], json!(0.9));
        assert_eq!(v["mean"], json!(0.5));
        assert_eq!(v["n"], json!(5));
    }

    #[test]
    fn empty_summary_is_null_not_zero() {
        let v = Samples::default().summary();
        assert!(v["p50"].is_null());
        assert!(v["max"].is_null());
        assert_eq!(v["n"], json!(0));
    }
}
