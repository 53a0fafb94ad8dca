//! In-process counters.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Counters, Permit, RateDecision, Window, WindowKind, sliding_estimate};

/// Default lifetime of an in-flight count after its last acquire (a crashed holder's slots
/// free themselves after this).
pub(crate) const DEFAULT_IN_FLIGHT_TTL: Duration = Duration::from_secs(600);
/// Default lifetime of a cached spend after its last change.
pub(crate) const DEFAULT_SPEND_TTL: Duration = Duration::from_secs(3600);

/// Sweep expired entries every this many operations.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug, Clone, Copy)]
enum Slot {
    Fixed {
        count: u64,
        expires: u64,
    },
    Sliding {
        idx: u64,
        cur: u64,
        prev: u64,
        expires: u64,
    },
    Gauge {
        count: u64,
        expires: u64,
    },
    Spend {
        value: i64,
        expires: u64,
    },
}

impl Slot {
    fn expires(&self) -> u64 {
        match *self {
            Self::Fixed { expires, .. }
            | Self::Sliding { expires, .. }
            | Self::Gauge { expires, .. }
            | Self::Spend { expires, .. } => expires,
        }
    }
}

#[derive(Clone)]
enum Clock {
    Monotonic(Instant),
    #[cfg_attr(not(test), allow(dead_code))]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    fn now_ms(&self) -> u64 {
        match self {
            // Offset by one so that 0 never means "now" (expiry 0 = already expired).
            Self::Monotonic(start) => {
                u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX / 2) + 1
            }
            Self::Manual(t) => t.load(Ordering::SeqCst),
        }
    }
}

/// Counters in this process's memory: exact and fast, but each gateway counts alone.
/// Expired entries are swept as operations go, so memory stays bounded by the keys in use.
pub struct LocalCounters {
    map: Mutex<HashMap<String, Slot>>,
    ops: AtomicU64,
    clock: Clock,
    in_flight_ttl_ms: u64,
    spend_ttl_ms: u64,
}

impl fmt::Debug for LocalCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.map.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("LocalCounters")
            .field("entries", &entries)
            .finish_non_exhaustive()
    }
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4).max(1)
}

impl LocalCounters {
    /// Empty counters with the default TTLs (in-flight 10 minutes, spend 1 hour).
    pub fn new() -> Self {
        Self::with_ttls(DEFAULT_IN_FLIGHT_TTL, DEFAULT_SPEND_TTL)
    }

    /// Empty counters whose in-flight counts live `in_flight_ttl` after their last acquire
    /// and cached spends `spend_ttl` after their last change.
    pub fn with_ttls(in_flight_ttl: Duration, spend_ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            ops: AtomicU64::new(0),
            clock: Clock::Monotonic(Instant::now()),
            in_flight_ttl_ms: ms(in_flight_ttl),
            spend_ttl_ms: ms(spend_ttl),
        }
    }

    #[cfg(test)]
    fn manual(t: Arc<AtomicU64>) -> Self {
        Self {
            clock: Clock::Manual(t),
            ..Self::new()
        }
    }

    /// Entries held now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Slot>, u64) -> R) -> R {
        let now = self.clock.now_ms();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if self.ops.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            map.retain(|_, s| s.expires() > now);
        }
        f(&mut map, now)
    }

    /// [`Counters::hit`], synchronously.
    pub fn hit_now(&self, key: &str, window: Window, amount: u64, limit: u64) -> RateDecision {
        let w = window.length_ms();
        match window.kind {
            WindowKind::Fixed => self.with(|map, now| {
                let k = format!("f:{key}");
                let (count, expires) = match map.get(&k) {
                    Some(Slot::Fixed { count, expires }) if *expires > now => (*count, *expires),
                    _ => (0, now.saturating_add(w)),
                };
                let allowed = count.saturating_add(amount) <= limit;
                let count = if allowed {
                    count.saturating_add(amount)
                } else {
                    count
                };
                map.insert(k, Slot::Fixed { count, expires });
                RateDecision {
                    allowed,
                    current: count,
                    limit,
                    retry_after: (!allowed).then(|| Duration::from_millis(expires - now)),
                }
            }),
            WindowKind::Sliding => self.with(|map, now| {
                let k = format!("s:{key}");
                let idx = now / w;
                let elapsed = now - idx * w;
                let (mut cur, mut prev) = (0, 0);
                if let Some(Slot::Sliding {
                    idx: s_idx,
                    cur: s_cur,
                    prev: s_prev,
                    ..
                }) = map.get(&k)
                {
                    if *s_idx == idx {
                        (cur, prev) = (*s_cur, *s_prev);
                    } else if *s_idx + 1 == idx {
                        prev = *s_cur;
                    }
                }
                let est = sliding_estimate(prev, cur, elapsed, w);
                let allowed = est.saturating_add(amount) <= limit;
                if allowed {
                    cur = cur.saturating_add(amount);
                }
                let expires = now.saturating_add(2 * w);
                map.insert(
                    k,
                    Slot::Sliding {
                        idx,
                        cur,
                        prev,
                        expires,
                    },
                );
                RateDecision {
                    allowed,
                    current: if allowed {
                        est.saturating_add(amount)
                    } else {
                        est
                    },
                    limit,
                    retry_after: (!allowed).then(|| Duration::from_millis(w - elapsed)),
                }
            }),
        }
    }

    /// [`Counters::acquire`], synchronously.
    pub fn acquire_now(&self, key: &str, limit: u64) -> Option<Permit> {
        let ttl = self.in_flight_ttl_ms;
        let ok = self.with(|map, now| {
            let k = format!("p:{key}");
            let count = match map.get(&k) {
                Some(Slot::Gauge { count, expires }) if *expires > now => *count,
                _ => 0,
            };
            if count >= limit {
                return false;
            }
            map.insert(
                k,
                Slot::Gauge {
                    count: count + 1,
                    expires: now.saturating_add(ttl),
                },
            );
            true
        });
        ok.then(|| Permit {
            key: key.to_owned(),
            local: true,
        })
    }

    /// Give back a slot of `key`.
    pub fn release_key(&self, key: &str) {
        self.with(|map, _| {
            let k = format!("p:{key}");
            if let Some(Slot::Gauge { count, .. }) = map.get_mut(&k) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(&k);
                }
            }
        });
    }

    /// [`Counters::in_flight`], synchronously.
    pub fn in_flight_now(&self, key: &str) -> u64 {
        self.with(|map, now| match map.get(&format!("p:{key}")) {
            Some(Slot::Gauge { count, expires }) if *expires > now => *count,
            _ => 0,
        })
    }

    /// [`Counters::add_spend`], synchronously.
    pub fn add_spend_now(&self, key: &str, amount_nano: i64) -> i64 {
        let ttl = self.spend_ttl_ms;
        self.with(|map, now| {
            let slot = map.entry(format!("$:{key}")).or_insert(Slot::Spend {
                value: 0,
                expires: 0,
            });
            let old = match *slot {
                Slot::Spend { value, expires } if expires > now => value,
                _ => 0,
            };
            let value = old.saturating_add(amount_nano);
            *slot = Slot::Spend {
                value,
                expires: now.saturating_add(ttl),
            };
            value
        })
    }

    /// [`Counters::cached_spend`], synchronously.
    pub fn cached_spend_now(&self, key: &str) -> Option<i64> {
        self.with(|map, now| match map.get(&format!("$:{key}")) {
            Some(Slot::Spend { value, expires }) if *expires > now => Some(*value),
            _ => None,
        })
    }

    /// [`Counters::set_spend`], synchronously.
    pub fn set_spend_now(&self, key: &str, spend_nano: i64) {
        let ttl = self.spend_ttl_ms;
        self.with(|map, now| {
            map.insert(
                format!("$:{key}"),
                Slot::Spend {
                    value: spend_nano,
                    expires: now.saturating_add(ttl),
                },
            );
        });
    }
}

#[async_trait]
impl Counters for LocalCounters {
    async fn hit(&self, key: &str, window: Window, amount: u64, limit: u64) -> RateDecision {
        self.hit_now(key, window, amount, limit)
    }

    async fn acquire(&self, key: &str, limit: u64) -> Option<Permit> {
        self.acquire_now(key, limit)
    }

    async fn release(&self, permit: Permit) {
        self.release_key(&permit.key);
    }

    async fn in_flight(&self, key: &str) -> u64 {
        self.in_flight_now(key)
    }

    async fn add_spend(&self, key: &str, amount_nano: i64) -> i64 {
        self.add_spend_now(key, amount_nano)
    }

    async fn cached_spend(&self, key: &str) -> Option<i64> {
        self.cached_spend_now(key)
    }

    async fn set_spend(&self, key: &str, spend_nano: i64) {
        self.set_spend_now(key, spend_nano);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(at: u64) -> (Arc<AtomicU64>, LocalCounters) {
        let t = Arc::new(AtomicU64::new(at));
        (t.clone(), LocalCounters::manual(t))
    }

    #[test]
    fn fixed_window_admits_up_to_the_limit_then_reopens() {
        let (t, c) = clock(1_000);
        let w = Window::fixed(Duration::from_millis(100));
        let admitted = (0..20).filter(|_| c.hit_now("k", w, 1, 10).allowed).count();
        assert_eq!(admitted, 10);
        let refused = c.hit_now("k", w, 1, 10);
        assert!(!refused.allowed);
        assert_eq!(refused.current, 10);
        assert_eq!(refused.retry_after, Some(Duration::from_millis(100)));
        t.store(1_099, Ordering::SeqCst);
        assert!(!c.hit_now("k", w, 1, 10).allowed);
        t.store(1_100, Ordering::SeqCst);
        assert!(c.hit_now("k", w, 1, 10).allowed);
        // Amounts (tokens) count as a whole: refused when they would cross the limit.
        assert!(!c.hit_now("k", w, 10, 10).allowed);
        assert!(c.hit_now("k", w, 9, 10).allowed);
        assert_eq!(c.hit_now("other", w, 3, 10).current, 3);
    }

    #[test]
    fn sliding_window_weights_the_previous_bucket() {
        let (t, c) = clock(10_000);
        let w = Window::sliding(Duration::from_millis(1_000));
        for _ in 0..10 {
            assert!(c.hit_now("k", w, 1, 10).allowed);
        }
        assert!(!c.hit_now("k", w, 1, 10).allowed);
        // Halfway through the next bucket, half of the previous one still counts.
        t.store(11_500, Ordering::SeqCst);
        assert_eq!(c.hit_now("k", w, 0, 10).current, 5);
        let admitted = (0..10).filter(|_| c.hit_now("k", w, 1, 10).allowed).count();
        assert_eq!(admitted, 5);
        // Two buckets later nothing is left.
        t.store(13_000, Ordering::SeqCst);
        assert_eq!(c.hit_now("k", w, 0, 10).current, 0);
        assert_eq!(c.add_now_for_tests("k", w, 7), 7);
    }

    impl LocalCounters {
        fn add_now_for_tests(&self, key: &str, w: Window, n: u64) -> u64 {
            self.hit_now(key, w, n, u64::MAX).current
        }
    }

    #[test]
    fn in_flight_slots_are_bounded_released_and_expire() {
        let (t, c) = clock(1);
        let a = c.acquire_now("k", 2).unwrap();
        let b = c.acquire_now("k", 2).unwrap();
        assert!(a.is_local());
        assert!(c.acquire_now("k", 2).is_none());
        assert_eq!(c.in_flight_now("k"), 2);
        c.release_key(a.key());
        assert_eq!(c.in_flight_now("k"), 1);
        assert!(c.acquire_now("k", 2).is_some());
        drop(b);
        // Leaked slots free themselves after the TTL.
        t.store(1 + ms(DEFAULT_IN_FLIGHT_TTL), Ordering::SeqCst);
        assert_eq!(c.in_flight_now("k"), 0);
        assert!(c.acquire_now("k", 2).is_some());
        // Releasing more than was taken never goes below zero.
        c.release_key("k");
        c.release_key("k");
        assert_eq!(c.in_flight_now("k"), 0);
    }

    #[test]
    fn spend_cache_adds_and_expires() {
        let (t, c) = clock(1);
        assert_eq!(c.cached_spend_now("k"), None);
        c.set_spend_now("k", 100);
        assert_eq!(c.add_spend_now("k", 50), 150);
        assert_eq!(c.cached_spend_now("k"), Some(150));
        t.store(2 + ms(DEFAULT_SPEND_TTL), Ordering::SeqCst);
        assert_eq!(c.cached_spend_now("k"), None);
        assert_eq!(c.add_spend_now("k", 5), 5);
    }

    #[test]
    fn expired_entries_are_swept() {
        let (t, c) = clock(1);
        let w = Window::fixed(Duration::from_millis(10));
        for i in 0..100 {
            c.hit_now(&format!("k{i}"), w, 1, 10);
        }
        assert_eq!(c.len(), 100);
        t.store(1_000, Ordering::SeqCst);
        for _ in 0..SWEEP_EVERY {
            c.hit_now("live", w, 0, 10);
        }
        assert_eq!(c.len(), 1);
    }
}
