//! `llmux-store`: the gateway's durable state and its shared counters.
//!
//! What lives here:
//! - [`Store`]: virtual keys, users, teams (with member roles), budgets and the spend log,
//!   on SQLite (the embedded default: one file in WAL mode) or PostgreSQL (several gateways)
//!   behind one type. [`Store::connect`] picks the backend from the URL and runs this crate's
//!   own versioned migrations. Money is BIGINT nano-USD everywhere, never a float.
//! - Key handling compatible with LiteLLM: a key is stored only as the SHA-256 hex of the
//!   clear `sk-…` key ([`hash_key`]) plus a display form (`sk-…abcd`); the clear key is
//!   returned once, at generation ([`GeneratedKey`]), and never stored or logged.
//! - [`SpendWriter`], the spend-log [`llmux_core::CallSink`]: batches call records into
//!   multi-row inserts (one transaction per batch, also maintaining daily aggregates and
//!   key/team/user spend), off the request path, and loses nothing: when the database is
//!   unreachable records wait in a bounded buffer that spills to an fsync'd JSON-lines file,
//!   replayed idempotently (the spend log is keyed by `request_id`) once it is back.
//! - Spend reports ([`Store::spend_breakdown`]): spend, calls, tokens, errors and latency
//!   (average and p95 from a fixed-bucket histogram) grouped by any combination of tag,
//!   model, model group, provider, key, team, user and day, answered from the daily
//!   aggregates only; and [`Store::usage_profile`], the per-call usage a what-if re-pricing
//!   needs. Keys' default attribution tags live in their metadata ([`key_default_tags`]).
//! - [`Counters`]: rate-limit windows, in-flight counts and a budget spend cache, either
//!   in-process ([`LocalCounters`]) or shared through Redis ([`RedisCounters`], atomic Lua
//!   scripts, bounded TTLs, falling back to local counters when Redis is unreachable).
//!
//! What must never live here: HTTP, routing, providers, prices, or the decision to admit a
//! request. The server authenticates with [`Store::lookup_key`], enforces limits with
//! [`Counters`] and budgets with the records' [`Budget`], and feeds [`SpendWriter`] through
//! the meter. Nothing here blocks a request on a database write. See `docs/store.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod counters;
mod db;
mod error;
mod keys;
mod litellm_import;
mod report;
mod responses;
mod spend;
mod time;
mod types;
mod writer;

pub use counters::{
    Counters, LocalCounters, Permit, RateDecision, RedisCounters, RedisCountersConfig, Window,
    WindowKind,
};
pub use db::{Backend, StoreOptions};
pub use error::{Result, StoreError};
pub use keys::{
    ClearKey, KEY_PREFIX, KEY_RANDOM_CHARS, constant_time_eq, display_prefix, generate_key,
    hash_key, verify_key,
};
pub use litellm_import::{ImportReport, import_litellm};
pub use report::{
    Breakdown, BreakdownFilter, BreakdownQuery, BreakdownRow, LATENCY_BUCKET_BOUNDS_US,
    LATENCY_BUCKETS, MAX_TAG_LEN, MAX_TAGS, SpendDimension, SpendTotals, UsageFilter,
    UsageProfileRow, key_default_tags, tag_problem,
};
pub use responses::StoredResponse;
pub use time::{BudgetDuration, Day, now_ms, parse_duration};
pub use types::{
    BatchOutcome, Budget, BudgetSettings, BudgetUpdate, GeneratedKey, GroupBy, KeyFilter,
    KeyRecord, KeyUpdate, Limits, LimitsUpdate, LogPage, NewKey, NewTeam, NewUser, Page, Paged,
    ReportQuery, ReportRow, SpendLogFilter, SpendLogPage, SpendTarget, Team, TeamMember, TeamRole,
    TeamUpdate, User, UserUpdate,
};
pub use writer::{SpendWriter, SpendWriterConfig, WriterStats};

use std::fmt;

use db::Db;

/// Keys, users, teams, budgets and the spend log, on SQLite or PostgreSQL. Cheap to clone
/// (the clones share one connection pool).
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connect and migrate. `url` is `sqlite://path/to/file.db` (created if missing unless a
    /// `mode=` is given; e.g. `sqlite://llmux.db?mode=rwc`), `sqlite::memory:` (tests), or
    /// `postgres://user@host:port/db`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Self> {
        Ok(Self {
            db: Db::connect(url, options).await?,
        })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Whether the database answers (`SELECT 1`).
    pub async fn ping(&self) -> Result<()> {
        self.db.execute("SELECT 1", db::Args::default()).await?;
        Ok(())
    }

    /// Close the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.db.close().await;
    }
}
