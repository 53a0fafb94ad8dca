//! Shared counters for admission: rate-limit windows, in-flight counts, and a budget spend
//! cache. [`LocalCounters`] keeps them in this process (one gateway); [`RedisCounters`]
//! shares them between gateways through Redis, falling back to local counters while Redis is
//! unreachable.
//!
//! Why the trait looks like this: every operation that admits something is a single atomic
//! check-and-change ([`Counters::hit`], [`Counters::acquire`]), so two gateways racing for the
//! last slot cannot both win; and no operation returns an error, because a counter outage
//! must degrade admission (to per-process limits), never fail requests.

mod local;
mod redis;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use local::LocalCounters;
pub use redis::{RedisCounters, RedisCountersConfig};

/// How a rate-limit window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// A window that opens at the first hit and lasts its length; the count then starts over.
    Fixed,
    /// A rolling window, estimated from two fixed buckets: the current bucket's count plus
    /// the previous bucket's count weighted by how much of it the window still covers.
    Sliding,
}

/// A rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// How it counts.
    pub kind: WindowKind,
    /// Its length.
    pub length: Duration,
}

impl Window {
    /// A fixed window of `length`.
    pub fn fixed(length: Duration) -> Self {
        Self {
            kind: WindowKind::Fixed,
            length,
        }
    }

    /// A sliding window of `length`.
    pub fn sliding(length: Duration) -> Self {
        Self {
            kind: WindowKind::Sliding,
            length,
        }
    }

    /// A sliding one-minute window (for rpm and tpm limits).
    pub fn minute() -> Self {
        Self::sliding(Duration::from_secs(60))
    }

    /// The length in milliseconds (at least 1).
    pub fn length_ms(&self) -> u64 {
        u64::try_from(self.length.as_millis())
            .unwrap_or(u64::MAX / 4)
            .clamp(1, u64::MAX / 4)
    }
}

/// The answer to [`Counters::hit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the hit was admitted (and counted).
    pub allowed: bool,
    /// The window's count after the hit (or, when refused, without it).
    pub current: u64,
    /// The limit checked against.
    pub limit: u64,
    /// When refused: roughly how long until the window has room again.
    pub retry_after: Option<Duration>,
}

/// A slot taken by [`Counters::acquire`]; give it back with [`Counters::release`] on the
/// same counters. Dropping it without releasing leaves the slot taken until its TTL expires.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a permit must be released"]
pub struct Permit {
    key: String,
    local: bool,
}

impl Permit {
    /// The counter key this permit holds a slot of.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the slot was taken in this process (Redis was unreachable, or local counters).
    pub fn is_local(&self) -> bool {
        self.local
    }
}

/// Rate windows, in-flight counts and a spend cache, shared between gateways or not.
/// Keys are the caller's (e.g. `key:<id>:rpm`); implementations namespace them per kind.
#[async_trait]
pub trait Counters: Send + Sync + fmt::Debug {
    /// Add `amount` to the window's count if the result stays within `limit`; otherwise
    /// refuse and add nothing. Atomic: concurrent hits never admit more than `limit`.
    async fn hit(&self, key: &str, window: Window, amount: u64, limit: u64) -> RateDecision;

    /// Add `amount` whatever the count (e.g. tokens once a call's usage is known); returns the
    /// window's count.
    async fn add(&self, key: &str, window: Window, amount: u64) -> u64 {
        self.hit(key, window, amount, u64::MAX).await.current
    }

    /// The window's count, unchanged.
    async fn peek(&self, key: &str, window: Window) -> u64 {
        self.hit(key, window, 0, u64::MAX).await.current
    }

    /// Take one of `limit` in-flight slots, or `None` if all are taken.
    async fn acquire(&self, key: &str, limit: u64) -> Option<Permit>;

    /// Give a slot back.
    async fn release(&self, permit: Permit);

    /// Slots taken now.
    async fn in_flight(&self, key: &str) -> u64;

    /// Add to a cached spend (nano-USD); returns the new value. A missing entry starts at 0,
    /// so callers seed it from the database with [`Counters::set_spend`] first.
    async fn add_spend(&self, key: &str, amount_nano: i64) -> i64;

    /// The cached spend, if cached (entries expire after the configured spend TTL).
    async fn cached_spend(&self, key: &str) -> Option<i64>;

    /// Seed or overwrite a cached spend.
    async fn set_spend(&self, key: &str, spend_nano: i64);
}

/// Sliding-window estimate: the previous bucket's count weighted by the part of it the
/// window still covers, plus the current bucket's count.
pub(crate) fn sliding_estimate(prev: u64, cur: u64, elapsed_ms: u64, window_ms: u64) -> u64 {
    let remaining = window_ms.saturating_sub(elapsed_ms);
    let weighted = (u128::from(prev) * u128::from(remaining) / u128::from(window_ms.max(1))) as u64;
    weighted.saturating_add(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_estimate_weights_the_previous_bucket() {
        assert_eq!(sliding_estimate(10, 0, 0, 1000), 10);
        assert_eq!(sliding_estimate(10, 0, 500, 1000), 5);
        assert_eq!(sliding_estimate(10, 3, 999, 1000), 3);
        assert_eq!(sliding_estimate(10, 3, 1000, 1000), 3);
        assert_eq!(sliding_estimate(u64::MAX, 1, 0, 1), u64::MAX);
    }
}
