//! The records the store reads and writes, and the shapes of its queries.

use std::collections::BTreeMap;
use std::fmt;

use llmux_core::JsonObject;
use serde::{Deserialize, Serialize};

use crate::time::{Day, parse_duration};

/// Access and rate limits shared by keys, users and teams. `None` = unlimited;
/// an empty `models` list = every model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Model groups this principal may call; empty = all.
    pub models: Vec<String>,
    /// Requests per minute.
    pub rpm_limit: Option<u64>,
    /// Tokens per minute.
    pub tpm_limit: Option<u64>,
    /// Requests in flight at once.
    pub max_parallel: Option<u64>,
}

/// Changes to [`Limits`]: `None` leaves a field alone; `Some(None)` clears a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// New allowed models.
    pub models: Option<Vec<String>>,
    /// New requests-per-minute limit.
    pub rpm_limit: Option<Option<u64>>,
    /// New tokens-per-minute limit.
    pub tpm_limit: Option<Option<u64>>,
    /// New in-flight limit.
    pub max_parallel: Option<Option<u64>>,
}

/// Budget settings given at creation. Money is nano-USD (1 USD = 1e9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSettings {
    /// Hard budget: calls are refused once spend reaches it.
    pub max_budget_nano: Option<i64>,
    /// Soft budget: crossing it only alerts.
    pub soft_budget_nano: Option<i64>,
    /// How often spend resets to zero (`30s`, `1h`, `1d`, `30d`, `1mo`; see
    /// [`crate::parse_duration`]); `None` = never.
    pub budget_duration: Option<String>,
}

impl BudgetSettings {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if let Some(d) = &self.budget_duration {
            parse_duration(d)?;
        }
        for v in [self.max_budget_nano, self.soft_budget_nano]
            .into_iter()
            .flatten()
        {
            if v < 0 {
                return Err(crate::StoreError::Invalid(
                    "a budget cannot be negative".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Changes to a budget: `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetUpdate {
    /// New hard budget.
    pub max_budget_nano: Option<Option<i64>>,
    /// New soft budget.
    pub soft_budget_nano: Option<Option<i64>>,
    /// New reset period; setting one restarts the schedule from now.
    pub budget_duration: Option<Option<String>>,
    /// Overwrite the spend (e.g. `Some(0)` to reset it by hand).
    pub spend_nano: Option<i64>,
}

/// A budget and its current state, as stored on a key, user or team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Hard budget in nano-USD.
    pub max_budget_nano: Option<i64>,
    /// Soft budget in nano-USD.
    pub soft_budget_nano: Option<i64>,
    /// Reset period (LiteLLM syntax), if any.
    pub budget_duration: Option<String>,
    /// When spend next resets (unix ms), if it resets.
    pub budget_reset_at_ms: Option<i64>,
    /// Spend since the last reset, in nano-USD, as last written by the spend writer.
    pub spend_nano: i64,
}

impl Budget {
    /// Spend as of `now_ms`: zero once the reset instant has passed, even before the
    /// store has written the reset.
    pub fn spend_at(&self, now_ms: i64) -> i64 {
        match self.budget_reset_at_ms {
            Some(at) if at <= now_ms => 0,
            _ => self.spend_nano,
        }
    }

    /// Whether spend (as of `now_ms`) has reached the hard budget.
    pub fn exceeded_at(&self, now_ms: i64) -> bool {
        self.max_budget_nano
            .is_some_and(|max| self.spend_at(now_ms) >= max)
    }

    /// Whether spend (as of `now_ms`) has reached the soft budget.
    pub fn soft_exceeded_at(&self, now_ms: i64) -> bool {
        self.soft_budget_nano
            .is_some_and(|soft| self.spend_at(now_ms) >= soft)
    }
}

/// What to create a virtual key with.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// A unique human name for the key.
    pub alias: Option<String>,
    /// The owning user (must exist when given).
    pub user_id: Option<String>,
    /// The owning team (must exist when given).
    pub team_id: Option<String>,
    /// Models and rate limits.
    pub limits: Limits,
    /// Model-name aliases for this key (`"gpt4" → "gpt-4o"`).
    pub model_aliases: BTreeMap<String, String>,
    /// Budget.
    pub budget: BudgetSettings,
    /// Free-form metadata (a JSON object).
    pub metadata: JsonObject,
    /// When the key stops working (unix ms).
    pub expires_at_ms: Option<i64>,
    /// Create it blocked.
    pub blocked: bool,
}

/// Changes to a key: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    /// New alias.
    pub alias: Option<Option<String>>,
    /// New owning user.
    pub user_id: Option<Option<String>>,
    /// New owning team.
    pub team_id: Option<Option<String>>,
    /// New models and limits.
    pub limits: LimitsUpdate,
    /// New model aliases (replaces the map).
    pub model_aliases: Option<BTreeMap<String, String>>,
    /// New budget settings.
    pub budget: BudgetUpdate,
    /// New metadata (replaces the object).
    pub metadata: Option<JsonObject>,
    /// New expiry.
    pub expires_at_ms: Option<Option<i64>>,
    /// Block or unblock.
    pub blocked: Option<bool>,
}

/// A stored virtual key. It never holds the clear key; its `Debug` shows only the first
/// characters of the hash.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Stable id (`key_…`); survives regeneration. Put this in `CallRecord::key`.
    pub key_id: String,
    /// SHA-256 hex of the clear key (LiteLLM's `token`).
    pub key_hash: String,
    /// Display form of the clear key, `sk-…abcd`.
    pub key_prefix: String,
    /// Unique human name.
    pub alias: Option<String>,
    /// Owning user.
    pub user_id: Option<String>,
    /// Owning team.
    pub team_id: Option<String>,
    /// Models and rate limits.
    pub limits: Limits,
    /// Model-name aliases.
    pub model_aliases: BTreeMap<String, String>,
    /// Budget and spend.
    pub budget: Budget,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Expiry (unix ms).
    pub expires_at_ms: Option<i64>,
    /// Blocked keys are refused.
    pub blocked: bool,
    /// Creation time (unix ms).
    pub created_at_ms: i64,
    /// Last change (unix ms).
    pub updated_at_ms: i64,
}

impl KeyRecord {
    /// Whether the key has expired at `now_ms`.
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// Whether the key may be used at `now_ms` (not blocked, not expired). Budgets and
    /// limits are the caller's to check.
    pub fn is_active_at(&self, now_ms: i64) -> bool {
        !self.blocked && !self.is_expired_at(now_ms)
    }

    /// Whether `model` is allowed (an empty list allows every model).
    pub fn allows_model(&self, model: &str) -> bool {
        self.limits.models.is_empty() || self.limits.models.iter().any(|m| m == model)
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.key_hash.get(..8).unwrap_or("");
        f.debug_struct("KeyRecord")
            .field("key_id", &self.key_id)
            .field("key_hash", &format_args!("{short}…"))
            .field("key_prefix", &self.key_prefix)
            .field("alias", &self.alias)
            .field("user_id", &self.user_id)
            .field("team_id", &self.team_id)
            .field("limits", &self.limits)
            .field("model_aliases", &self.model_aliases)
            .field("budget", &self.budget)
            .field("metadata", &self.metadata)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("blocked", &self.blocked)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

/// A key just created or regenerated: the clear key (shown to its owner once, never stored)
/// and the stored record.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The clear key. Hand it out once; it cannot be recovered.
    pub key: crate::ClearKey,
    /// What was stored.
    pub record: KeyRecord,
}

/// Which keys to list.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Only this user's keys.
    pub user_id: Option<String>,
    /// Only this team's keys.
    pub team_id: Option<String>,
}

/// Offset pagination for the admin lists (keys, users, teams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: u64,
    /// Items to return (clamped to 1..=1000).
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: 100,
        }
    }
}

impl Page {
    /// `limit` items after skipping `offset`.
    pub fn new(offset: u64, limit: u32) -> Self {
        Self { offset, limit }
    }

    pub(crate) fn clamped_limit(self) -> i64 {
        i64::from(self.limit.clamp(1, 1000))
    }

    pub(crate) fn offset_i64(self) -> i64 {
        i64::try_from(self.offset).unwrap_or(i64::MAX)
    }
}

/// One page of a list and the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// How many items match in all.
    pub total: u64,
}

/// What to create a user with.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// The user id (an email, an SSO subject, …); must be unique.
    pub user_id: String,
    /// Display name.
    pub alias: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Role (e.g. LiteLLM's `proxy_admin`, `internal_user`); free text for the server.
    pub role: Option<String>,
    /// Models and rate limits.
    pub limits: Limits,
    /// Budget.
    pub budget: BudgetSettings,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Create blocked.
    pub blocked: bool,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user id.
    pub user_id: String,
    /// Display name.
    pub alias: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// Models and rate limits.
    pub limits: Limits,
    /// Budget and spend.
    pub budget: Budget,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Blocked users' keys are refused.
    pub blocked: bool,
    /// Creation time (unix ms).
    pub created_at_ms: i64,
    /// Last change (unix ms).
    pub updated_at_ms: i64,
}

/// Changes to a user: `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New display name.
    pub alias: Option<Option<String>>,
    /// New email.
    pub email: Option<Option<String>>,
    /// New role.
    pub role: Option<Option<String>>,
    /// New models and limits.
    pub limits: LimitsUpdate,
    /// New budget settings.
    pub budget: BudgetUpdate,
    /// New metadata (replaces the object).
    pub metadata: Option<JsonObject>,
    /// Block or unblock.
    pub blocked: Option<bool>,
}

/// What to create a team with.
#[derive(Debug, Clone, Default)]
pub struct NewTeam {
    /// The team id; `None` generates one (`team_…`).
    pub team_id: Option<String>,
    /// Display name.
    pub alias: Option<String>,
    /// Models and rate limits.
    pub limits: Limits,
    /// Budget.
    pub budget: BudgetSettings,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Create blocked.
    pub blocked: bool,
}

/// A stored team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    /// The team id.
    pub team_id: String,
    /// Display name.
    pub alias: Option<String>,
    /// Models and rate limits.
    pub limits: Limits,
    /// Budget and spend.
    pub budget: Budget,
    /// Free-form metadata.
    pub metadata: JsonObject,
    /// Blocked teams' keys are refused.
    pub blocked: bool,
    /// Creation time (unix ms).
    pub created_at_ms: i64,
    /// Last change (unix ms).
    pub updated_at_ms: i64,
}

/// Changes to a team: `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct TeamUpdate {
    /// New display name.
    pub alias: Option<Option<String>>,
    /// New models and limits.
    pub limits: LimitsUpdate,
    /// New budget settings.
    pub budget: BudgetUpdate,
    /// New metadata (replaces the object).
    pub metadata: Option<JsonObject>,
    /// Block or unblock.
    pub blocked: Option<bool>,
}

/// A member's role in a team (LiteLLM's `members_with_roles` roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// May manage the team and its keys.
    Admin,
    /// May use the team.
    User,
}

impl TeamRole {
    /// `admin` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
        }
    }

    pub(crate) fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            other => Err(crate::StoreError::Corrupt {
                column: "llmux_team_members.role",
                detail: format!("unknown role {other:?}"),
            }),
        }
    }
}

/// One membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// The team.
    pub team_id: String,
    /// The user.
    pub user_id: String,
    /// The user's role in the team.
    pub role: TeamRole,
    /// When the user joined (unix ms).
    pub added_at_ms: i64,
}

/// Whose spend to change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SpendTarget {
    /// A key, by `key_id`.
    Key(String),
    /// A team, by `team_id`.
    Team(String),
    /// A user, by `user_id`.
    User(String),
}

/// Which spend-log rows to return. Every field narrows; the default matches all.
#[derive(Debug, Clone, Default)]
pub struct SpendLogFilter {
    /// Only calls of this key id.
    pub key_id: Option<String>,
    /// Only calls of this team.
    pub team_id: Option<String>,
    /// Only calls of this user.
    pub user_id: Option<String>,
    /// Only calls to this model group.
    pub model_group: Option<String>,
    /// Only calls answered by this provider.
    pub provider: Option<String>,
    /// Only calls that started at or after this instant (unix ms).
    pub from_ms: Option<i64>,
    /// Only calls that started before this instant (unix ms).
    pub to_ms: Option<i64>,
    /// Only failed calls (status ≥ 400 or an error kind).
    pub errors_only: bool,
}

/// Keyset pagination for the spend log (newest first), cheap at any depth.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// Rows to return (clamped to 1..=1000; 0 means 100).
    pub limit: u32,
    /// Where the previous page stopped ([`SpendLogPage::next_cursor`]); `None` = newest.
    pub cursor: Option<String>,
}

/// One page of the spend log.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendLogPage {
    /// The calls, newest first.
    pub records: Vec<llmux_core::CallRecord>,
    /// Pass this as [`LogPage::cursor`] for the next page; `None` when there is none.
    pub next_cursor: Option<String>,
}

/// How a spend report groups the daily aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Per UTC day (`YYYY-MM-DD`).
    Day,
    /// Per model group (the name clients asked for).
    Model,
    /// Per provider model that answered.
    ProviderModel,
    /// Per provider.
    Provider,
    /// Per key id.
    Key,
    /// Per team.
    Team,
    /// Per user.
    User,
    /// Per attribution tag (a call with several tags counts under each).
    Tag,
}

/// A spend report: the daily aggregates between two days (inclusive), grouped, optionally
/// narrowed to one key, team or user.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// The grouping.
    pub group_by: GroupBy,
    /// First day (inclusive).
    pub from: Day,
    /// Last day (inclusive).
    pub to: Day,
    /// Only this key id.
    pub key_id: Option<String>,
    /// Only this team.
    pub team_id: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
}

impl ReportQuery {
    /// Every call from `from` to `to` (inclusive), grouped by `group_by`.
    pub fn new(group_by: GroupBy, from: Day, to: Day) -> Self {
        Self {
            group_by,
            from,
            to,
            key_id: None,
            team_id: None,
            user_id: None,
        }
    }
}

/// One line of a spend report. Money is nano-USD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    /// The group's value (a day, model, key id, …); `None` for calls without one (e.g. no team).
    pub group: Option<String>,
    /// Calls.
    pub calls: i64,
    /// Failed calls.
    pub errors: i64,
    /// Calls with no known price (not in `spend_nano`).
    pub unpriced_calls: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Input tokens read from a prompt cache.
    pub cached_tokens: i64,
    /// Input tokens written to a prompt cache.
    pub cache_creation_tokens: i64,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: i64,
    /// Spend in nano-USD.
    pub spend_nano: i64,
}

/// What writing a batch of call records did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows newly inserted (and counted in aggregates and spend).
    pub inserted: u64,
    /// Records whose `request_id` was already stored (a replay): skipped, not counted twice.
    pub duplicates: u64,
}
