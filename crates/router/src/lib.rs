//! `llmux-router`: which deployment answers a call, and what happens when it cannot.
//!
//! What lives here:
//! - [`Deployment`]s (a provider plus its routing facts: weight, rpm/tpm, `order`, tags,
//!   timeouts, context size, prices), [`ModelGroup`]s, aliases and [`Wildcard`] routes
//!   (`openai/*`, `*`) whose providers a caller-supplied closure builds;
//! - the routing [`Strategy`]s: weighted shuffle, least busy, latency, usage, cost;
//! - health: per-deployment sliding one-minute counters (requests, tokens, failures),
//!   cooldowns, `allowed_fails` and failure-rate thresholds; cooldowns shared with routers
//!   in other processes through a [`CooldownBoard`] (published when they start, merged
//!   from a background poll: never a round trip on the selection path);
//! - retries with exponential backoff and jitter that honour `Retry-After`, per-kind retry
//!   policy, per-attempt and total timeouts, generic / context-window / content-policy /
//!   default fallbacks checked for unknown groups and loops at construction;
//! - stream failover: retried before the first chunk, resumed on another deployment after
//!   it, stall detection, one usage-only chunk at the end;
//! - the [`Trace`] of every call (who answered, attempts, retries, fallbacks, resumptions,
//!   errors), handed back with the answer ([`Routed`]) or the error ([`RouteFailure`]).
//!
//! What must never live here: a provider's wire format (the router only sees
//! `Arc<dyn Provider>` and canonical types), HTTP of any kind, keys or credentials, price
//! tables or storage, and anything about the server. Time is `tokio::time`, so tests pause
//! the clock instead of sleeping; randomness comes from a seed in [`RouterSettings`].

#![forbid(unsafe_code)]

mod config;
mod deployment;
mod passthrough;
mod router;
mod select;
mod settings;
mod shared;
mod state;
mod stream;
mod trace;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, RouterConfig};
pub use deployment::{Deployment, ModelGroup, ProviderBuilder, Wildcard};
pub use router::{DeploymentHealth, Router};
pub use settings::{Backoff, FallbackMap, RouterSettings, Strategy};
pub use shared::{
    ActiveCooldowns, CooldownBoard, MemoryCooldownBoard, SharedCooldown, unix_ms_now,
};
pub use trace::{
    AttemptError, FallbackHop, FallbackKind, Phase, RouteFailure, Routed, Trace, TraceHandle,
};
