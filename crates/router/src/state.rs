//! Per-deployment live state (cooldown, last-minute usage and outcomes, latency, calls in
//! flight) and the router's seeded random numbers.
//!
//! Time is `tokio::time::Instant`, so tests pause and advance it instead of sleeping.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use llmux_core::{Error, ErrorKind};
use tokio::time::Instant;

use crate::RouterSettings;

/// Seconds a usage window covers.
const WINDOW_SECS: u64 = 60;

/// Weight of a new latency sample in the moving average.
const LATENCY_ALPHA: f64 = 0.3;

/// Counts within one second.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    sec: u64,
    requests: u64,
    tokens: u64,
    ok: u32,
    failed: u32,
}

/// A sliding one-minute window in one-second slots.
#[derive(Debug)]
struct Window {
    slots: [Slot; WINDOW_SECS as usize],
}

/// The sums of a [`Window`] at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) requests: u64,
    pub(crate) tokens: u64,
    pub(crate) ok: u32,
    pub(crate) failed: u32,
    /// The second of the oldest slot that counted requests or tokens.
    pub(crate) oldest_use: Option<u64>,
}

impl Window {
    fn new() -> Self {
        Self {
            slots: [Slot::default(); WINDOW_SECS as usize],
        }
    }

    fn slot(&mut self, sec: u64) -> &mut Slot {
        let s = &mut self.slots[(sec % WINDOW_SECS) as usize];
        if s.sec != sec {
            *s = Slot {
                sec,
                ..Slot::default()
            };
        }
        s
    }

    fn totals(&self, sec: u64) -> Totals {
        let mut t = Totals::default();
        for s in &self.slots {
            if s.sec > sec || sec - s.sec >= WINDOW_SECS {
                continue;
            }
            t.requests += s.requests;
            t.tokens += s.tokens;
            t.ok += s.ok;
            t.failed += s.failed;
            if s.requests > 0 || s.tokens > 0 {
                t.oldest_use = Some(t.oldest_use.map_or(s.sec, |o| o.min(s.sec)));
            }
        }
        t
    }

    fn clear_outcomes(&mut self) {
        for s in &mut self.slots {
            s.ok = 0;
            s.failed = 0;
        }
    }
}

#[derive(Debug)]
struct Health {
    cooldown_until: Option<Instant>,
    window: Window,
    latency: Option<f64>,
    ttft: Option<f64>,
}

/// A snapshot of one deployment's health, for selection and status pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) cooldown_until: Option<Instant>,
    pub(crate) totals: Totals,
    pub(crate) latency: Option<f64>,
    pub(crate) ttft: Option<f64>,
    pub(crate) in_flight: u32,
}

/// Live state of one deployment.
#[derive(Debug)]
pub(crate) struct DeploymentState {
    epoch: Instant,
    in_flight: AtomicU32,
    health: Mutex<Health>,
}

/// What a failure did to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not the deployment's fault (a bad request): nothing counted.
    Ignored,
    /// Counted; the deployment stays in rotation.
    Counted,
    /// The deployment cools down until then.
    CooledUntil(Instant),
}

impl DeploymentState {
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            in_flight: AtomicU32::new(0),
            health: Mutex::new(Health {
                cooldown_until: None,
                window: Window::new(),
                latency: None,
                ttft: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn sec(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The instant a window second starts.
    pub(crate) fn instant_of(&self, sec: u64) -> Instant {
        self.epoch + Duration::from_secs(sec)
    }

    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot {
        let sec = self.sec(now);
        let h = self.lock();
        Snapshot {
            cooldown_until: h.cooldown_until.filter(|u| *u > now),
            totals: h.window.totals(sec),
            latency: h.latency,
            ttft: h.ttft,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// A call starts: count the request and the call in flight.
    pub(crate) fn begin(self: &Arc<Self>, now: Instant) -> InFlight {
        let sec = self.sec(now);
        self.lock().window.slot(sec).requests += 1;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// A call (or a stream's first chunk) succeeded after `elapsed`.
    pub(crate) fn succeeded(&self, now: Instant, elapsed: Duration, stream: bool) {
        let sec = self.sec(now);
        let mut h = self.lock();
        h.window.slot(sec).ok += 1;
        let sample = elapsed.as_secs_f64();
        let avg = if stream { &mut h.ttft } else { &mut h.latency };
        *avg = Some(avg.map_or(sample, |a| a + LATENCY_ALPHA * (sample - a)));
    }

    /// Tokens a call used (from its usage), for tpm.
    pub(crate) fn add_tokens(&self, now: Instant, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let sec = self.sec(now);
        self.lock().window.slot(sec).tokens += tokens;
    }

    /// A call failed with `e` after `elapsed`: count it and decide on a cooldown.
    pub(crate) fn failed(
        &self,
        now: Instant,
        elapsed: Duration,
        e: &Error,
        settings: &RouterSettings,
    ) -> Verdict {
        let kind = e.kind();
        if !counts_against_deployment(kind) {
            return Verdict::Ignored;
        }
        let sec = self.sec(now);
        let mut h = self.lock();
        h.window.slot(sec).failed += 1;
        if kind == ErrorKind::Timeout {
            // A timeout is a latency sample too, so latency-based routing avoids it.
            let sample = elapsed.as_secs_f64();
            if let Some(a) = h.latency.as_mut() {
                *a += LATENCY_ALPHA * (sample - *a);
            } else {
                h.latency = Some(sample);
            }
        }
        let t = h.window.totals(sec);
        let trips = cools_at_once(kind)
            || settings.allowed_fails.is_some_and(|n| t.failed > n)
            || settings.failure_rate_threshold.is_some_and(|rate| {
                let total = t.ok + t.failed;
                total >= settings.failure_rate_min_requests.max(1)
                    && f64::from(t.failed) / f64::from(total) > rate
            });
        if !trips {
            return Verdict::Counted;
        }
        let mut pause = settings.cooldown_time;
        if let Some(after) = e.retry_after() {
            pause = pause.max(after.min(settings.retry_after_cap));
        }
        let until = now + pause;
        let until = h.cooldown_until.map_or(until, |u| u.max(until));
        h.cooldown_until = Some(until);
        // A deployment back from cooldown starts with a clean record.
        h.window.clear_outcomes();
        Verdict::CooledUntil(until)
    }
}

impl DeploymentState {
    /// Cool down until `until` (a cooldown another router reported) unless already cooling
    /// at least that long. Returns whether the cooldown grew.
    pub(crate) fn cool_until(&self, until: Instant) -> bool {
        let mut h = self.lock();
        if h.cooldown_until.is_some_and(|u| u >= until) {
            return false;
        }
        h.cooldown_until = Some(until);
        true
    }
}

/// Errors that say something about the deployment (not about the request).
fn counts_against_deployment(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::BadRequest
            | ErrorKind::ContextWindowExceeded
            | ErrorKind::ContentPolicy
            | ErrorKind::PayloadTooLarge
            | ErrorKind::MethodNotAllowed
    )
}

/// 429, 401, 404 and 408 answers take a deployment out at once.
fn cools_at_once(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::RateLimited | ErrorKind::Auth | ErrorKind::NotFound | ErrorKind::Timeout
    )
}

/// A call in flight on a deployment; dropping it ends the call (least-busy counts these).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<DeploymentState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A small seeded generator (SplitMix64): deterministic for a given seed and call order.
#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

impl Rng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            t ^ (std::process::id() as u64).rotate_left(32)
        });
        Self(AtomicU64::new(seed))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_forgets_after_a_minute() {
        let mut w = Window::new();
        w.slot(10).requests += 2;
        w.slot(30).tokens += 50;
        let t = w.totals(40);
        assert_eq!((t.requests, t.tokens, t.oldest_use), (2, 50, Some(10)));
        let t = w.totals(70);
        assert_eq!((t.requests, t.tokens, t.oldest_use), (0, 50, Some(30)));
        assert_eq!(w.totals(90).tokens, 0);
        // A slot is reused for its second a minute later.
        w.slot(70).requests += 1;
        assert_eq!(w.totals(70).requests, 1);
    }

    #[test]
    fn rng_is_seeded_and_in_range() {
        let a = Rng::new(Some(7));
        let b = Rng::new(Some(7));
        let xs: Vec<u64> = (0..20).map(|_| a.below(10)).collect();
        let ys: Vec<u64> = (0..20).map(|_| b.below(10)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| *x < 10));
        assert!(xs.iter().any(|x| *x != xs[0]));
    }
}
