//! Cooldowns shared between routers in different processes (several gateways behind one
//! load balancer): the [`CooldownBoard`] a router publishes its cooldowns to, and learns the
//! others' from.
//!
//! The router stays fast: selection never waits on a board. A cooldown is published when it
//! starts, fire-and-forget ([`CooldownBoard::publish`] returns at once; an implementation
//! over the network sends in the background). Others' cooldowns arrive when the owner of
//! the router (the gateway) polls the board ([`CooldownBoard::active`]) in a background
//! task and merges the answer with [`crate::Router::apply_shared_cooldowns`], which only
//! ever lengthens a local cooldown.
//!
//! Must not: know any storage (Redis lives in `llmux-store`, wired by the server), block,
//! or fail a call because the board is unreachable.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A deployment's cooldown as seen on a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCooldown {
    /// The deployment's id (the same config gives the same ids in every gateway).
    pub deployment_id: String,
    /// When it ends, in unix milliseconds.
    pub until_unix_ms: u64,
}

/// The future [`CooldownBoard::active`] returns.
pub type ActiveCooldowns<'a> = Pin<Box<dyn Future<Output = Vec<SharedCooldown>> + Send + 'a>>;

/// Where routers in several processes share deployment cooldowns.
pub trait CooldownBoard: Send + Sync + fmt::Debug {
    /// Announce that `deployment_id` cools down until `until_unix_ms`. Returns at once (an
    /// implementation that talks to a server sends in the background); a failure is the
    /// board's to log, never the caller's.
    fn publish(&self, deployment_id: &str, until_unix_ms: u64);

    /// The cooldowns still running among `deployment_ids`. An unreachable board answers
    /// with nothing.
    fn active<'a>(&'a self, deployment_ids: &'a [String]) -> ActiveCooldowns<'a>;
}

/// Now, in unix milliseconds.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `until` (a router instant) in unix milliseconds, given that `now` is `now_ms`.
pub(crate) fn to_unix_ms(until: Instant, now: Instant, now_ms: u64) -> u64 {
    let left = until.saturating_duration_since(now);
    now_ms.saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
}

/// `until_ms` as a router instant, given that `now` is `now_ms`; `None` once it has passed.
pub(crate) fn from_unix_ms(until_ms: u64, now: Instant, now_ms: u64) -> Option<Instant> {
    let left = until_ms.checked_sub(now_ms).filter(|l| *l > 0)?;
    now.checked_add(Duration::from_millis(left))
}

/// A board in this process (tests, or several routers in one process).
#[derive(Debug, Default)]
pub struct MemoryCooldownBoard {
    cooldowns: Mutex<HashMap<String, u64>>,
}

impl MemoryCooldownBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CooldownBoard for MemoryCooldownBoard {
    fn publish(&self, deployment_id: &str, until_unix_ms: u64) {
        let mut map = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        let slot = map.entry(deployment_id.to_owned()).or_insert(0);
        *slot = (*slot).max(until_unix_ms);
    }

    fn active<'a>(&'a self, deployment_ids: &'a [String]) -> ActiveCooldowns<'a> {
        let now = unix_ms_now();
        let map = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        let out = deployment_ids
            .iter()
            .filter_map(|id| {
                map.get(id).filter(|u| **u > now).map(|u| SharedCooldown {
                    deployment_id: id.clone(),
                    until_unix_ms: *u,
                })
            })
            .collect();
        Box::pin(std::future::ready(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_unix_ms_convert_both_ways() {
        let now = Instant::now();
        let until = now + Duration::from_millis(1500);
        let ms = to_unix_ms(until, now, 1_000_000);
        assert_eq!(ms, 1_001_500);
        assert_eq!(from_unix_ms(ms, now, 1_000_000), Some(until));
        // Past or present: nothing to merge.
        assert_eq!(from_unix_ms(999_999, now, 1_000_000), None);
        assert_eq!(from_unix_ms(1_000_000, now, 1_000_000), None);
        // An instant already past maps to now.
        assert_eq!(to_unix_ms(now, until, 5), 5);
    }

    #[tokio::test]
    async fn the_memory_board_keeps_the_latest_end_and_forgets_past_ones() {
        let board = MemoryCooldownBoard::new();
        let now = unix_ms_now();
        board.publish("a", now + 60_000);
        board.publish("a", now + 1_000);
        board.publish("b", now.saturating_sub(1));
        let ids = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let got = board.active(&ids).await;
        assert_eq!(
            got,
            [SharedCooldown {
                deployment_id: "a".into(),
                until_unix_ms: now + 60_000
            }]
        );
    }
}
