//! Spend reports by any combination of dimensions (tag, model, model group, provider, key,
//! team, user, day), answered from the daily aggregates only; the latency histogram the
//! aggregates keep; the rules for attribution tags kept on keys; and the usage profile a
//! what-if re-pricing reads from the spend log.
//!
//! Two aggregate tables, both maintained by [`Store::write_records`] in the batch's own
//! transaction:
//! - `llmux_spend_daily`: one row per (day, key, team, user, model group, provider, provider
//!   model): every call counted once. Reports that neither group nor filter by tag read it.
//! - `llmux_spend_daily_by_tag`: the same dimensions plus `tag`: every call counted once per
//!   distinct tag, or once under `''` when it has none. Reports by tag (alone or with any
//!   other dimension), or filtered to a tag, read it.
//!
//! So a call with two tags counts twice in a report by tag (once under each: the groups
//! overlap, and their shares may add up to more than 100%) and once in every other report.
//! Nothing here reads the spend log except [`Store::usage_profile`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use llmux_core::JsonObject;
use serde::{Deserialize, Serialize};

use crate::admin::where_clause;
use crate::db::{Args, Backend};
use crate::spend::{AGG_COLUMNS, AGG_FIRST_BUCKET, AGG_SUMS};
use crate::time::Day;
use crate::{Result, Store, StoreError};

/// Upper bounds (inclusive, microseconds) of the latency histogram's buckets; a last bucket
/// holds everything slower. Fixed by migration `0002` (columns `lat_b00` … `lat_b19`).
pub const LATENCY_BUCKET_BOUNDS_US: [u64; LATENCY_BUCKETS - 1] = [
    25_000, 50_000, 100_000, 200_000, 300_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000,
    3_000_000, 4_000_000, 5_000_000, 7_500_000, 10_000_000, 15_000_000, 20_000_000, 30_000_000,
    60_000_000,
];

/// Buckets of the latency histogram.
pub const LATENCY_BUCKETS: usize = 20;

/// The histogram bucket of a latency.
pub(crate) fn latency_bucket(latency_us: u64) -> usize {
    LATENCY_BUCKET_BOUNDS_US.partition_point(|&b| b < latency_us)
}

/// The tag rule (count, length, characters) is the core's, shared with the request parser.
pub use llmux_core::tags::{MAX_TAG_LEN, MAX_TAGS, tag_problem};

/// A key's default attribution tags: `metadata.tags` (an array of strings), trimmed, in
/// order, without repeats; anything else there is ignored (key creation and update refuse
/// it, so only imported keys can carry it).
pub fn key_default_tags(metadata: &JsonObject) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(list) = metadata.get("tags").and_then(serde_json::Value::as_array) else {
        return out;
    };
    for t in list.iter().filter_map(serde_json::Value::as_str) {
        let t = t.trim();
        if tag_problem(t).is_none() && !out.iter().any(|o| o == t) && out.len() < MAX_TAGS {
            out.push(t.to_owned());
        }
    }
    out
}

/// Refuse key metadata whose `tags` is not an array of at most [`MAX_TAGS`] valid tags.
pub(crate) fn check_key_metadata(metadata: &JsonObject) -> Result<()> {
    let Some(tags) = metadata.get("tags") else {
        return Ok(());
    };
    let bad = |why: String| StoreError::Invalid(format!("metadata.tags: {why}"));
    let list = tags
        .as_array()
        .ok_or_else(|| bad("must be an array of strings".into()))?;
    if list.len() > MAX_TAGS {
        return Err(bad(format!("at most {MAX_TAGS} tags")));
    }
    for t in list {
        let t = t
            .as_str()
            .ok_or_else(|| bad("must be an array of strings".into()))?;
        if let Some(why) = tag_problem(t.trim()) {
            return Err(bad(why));
        }
    }
    Ok(())
}

/// What a spend report can group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendDimension {
    /// UTC day, `YYYY-MM-DD`.
    Day,
    /// Attribution tag (`feature` is the same): a call with several tags is in each group;
    /// calls without a tag are in the group `None`.
    Tag,
    /// The provider model that answered (what prices depend on).
    Model,
    /// The model name the client asked for.
    ModelGroup,
    /// The provider that answered.
    Provider,
    /// Virtual key id (rows also carry the key's alias).
    Key,
    /// Team of the key.
    Team,
    /// User of the key.
    User,
}

impl SpendDimension {
    /// Every dimension.
    pub const ALL: [SpendDimension; 8] = [
        Self::Day,
        Self::Tag,
        Self::Model,
        Self::ModelGroup,
        Self::Provider,
        Self::Key,
        Self::Team,
        Self::User,
    ];

    /// Its name in reports and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Tag => "tag",
            Self::Model => "model",
            Self::ModelGroup => "model_group",
            Self::Provider => "provider",
            Self::Key => "key",
            Self::Team => "team",
            Self::User => "user",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Tag => "tag",
            Self::Model => "provider_model",
            Self::ModelGroup => "model_group",
            Self::Provider => "provider",
            Self::Key => "key_id",
            Self::Team => "team_id",
            Self::User => "user_id",
        }
    }

    /// A comma-separated list (`tag,model`), in order, without repeats; `feature` is `tag`.
    pub fn parse_list(s: &str) -> Result<Vec<SpendDimension>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let d: SpendDimension = part.parse()?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for SpendDimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpendDimension {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "day" => Self::Day,
            "tag" | "feature" => Self::Tag,
            "model" | "provider_model" => Self::Model,
            "model_group" => Self::ModelGroup,
            "provider" => Self::Provider,
            "key" | "api_key" => Self::Key,
            "team" => Self::Team,
            "user" => Self::User,
            other => {
                return Err(StoreError::Invalid(format!(
                    "unknown group '{other}': expected tag, feature, model, model_group, \
                     provider, key, team, user or day"
                )));
            }
        })
    }
}

/// Narrows a spend report to the calls with these values (all that are set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakdownFilter {
    /// Only this tag (`Some("")`: only calls without tags).
    pub tag: Option<String>,
    /// Only this provider model.
    pub model: Option<String>,
    /// Only this model group.
    pub model_group: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this key id.
    pub key_id: Option<String>,
    /// Only this team.
    pub team_id: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
}

impl BreakdownFilter {
    fn conditions(&self, a: &mut Args, conds: &mut Vec<String>) {
        for (d, v) in [
            (SpendDimension::Tag, &self.tag),
            (SpendDimension::Model, &self.model),
            (SpendDimension::ModelGroup, &self.model_group),
            (SpendDimension::Provider, &self.provider),
            (SpendDimension::Key, &self.key_id),
            (SpendDimension::Team, &self.team_id),
            (SpendDimension::User, &self.user_id),
        ] {
            if let Some(v) = v {
                conds.push(format!("{} = {}", d.column(), a.push(v.as_str())));
            }
        }
    }
}

/// A spend report: the calls of the days `from..=to`, grouped by `dimensions`.
#[derive(Debug, Clone)]
pub struct BreakdownQuery {
    /// Group by these, in this order (at least one).
    pub dimensions: Vec<SpendDimension>,
    /// First day (inclusive).
    pub from: Day,
    /// Last day (inclusive).
    pub to: Day,
    /// Only calls matching this.
    pub filter: BreakdownFilter,
    /// At most this many groups (the most expensive); `None`: all.
    pub limit: Option<u32>,
}

impl BreakdownQuery {
    /// Every call of `from..=to`, grouped by `dimensions`.
    pub fn new(dimensions: Vec<SpendDimension>, from: Day, to: Day) -> Self {
        Self {
            dimensions,
            from,
            to,
            filter: BreakdownFilter::default(),
            limit: None,
        }
    }

    /// Whether the tag table answers it (grouped or filtered by tag).
    fn by_tag(&self) -> bool {
        self.dimensions.contains(&SpendDimension::Tag) || self.filter.tag.is_some()
    }
}

/// What a group of calls added up to. Money is nano-USD; latency microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendTotals {
    /// Calls.
    pub calls: i64,
    /// Failed calls (status ≥ 400 or an error kind).
    pub errors: i64,
    /// Calls with no known price (not in `spend_nano`).
    pub unpriced_calls: i64,
    /// Input tokens (cached included).
    pub prompt_tokens: i64,
    /// Output tokens (reasoning included).
    pub completion_tokens: i64,
    /// Input tokens read from a prompt cache.
    pub cached_tokens: i64,
    /// Input tokens written to a prompt cache.
    pub cache_creation_tokens: i64,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: i64,
    /// Spend, nano-USD.
    pub spend_nano: i64,
    /// Sum of the calls' latencies.
    pub latency_sum_us: i64,
    /// The slowest call's latency.
    pub latency_max_us: i64,
    /// Calls per latency bucket ([`LATENCY_BUCKET_BOUNDS_US`], then the rest).
    pub latency_histogram: [i64; LATENCY_BUCKETS],
}

impl SpendTotals {
    /// Failed calls ÷ calls (0 without calls).
    pub fn error_rate(&self) -> f64 {
        if self.calls <= 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }

    /// Mean latency in milliseconds (`None` without calls).
    pub fn avg_latency_ms(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.latency_sum_us as f64 / self.calls as f64 / 1000.0)
    }

    /// The `q` quantile (0 < q ≤ 1) of latency in milliseconds, from the histogram: the
    /// bucket holding the call of rank ⌈q·calls⌉, interpolated linearly inside it (its upper
    /// edge capped at the slowest call). Exact to the bucket; `None` without calls.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        let counted: i64 = self.latency_histogram.iter().sum();
        if counted <= 0 || !(q > 0.0 && q <= 1.0) {
            return None;
        }
        let rank = ((q * counted as f64).ceil() as i64).clamp(1, counted);
        let max = self.latency_max_us.max(0) as f64;
        let mut below = 0i64;
        for (i, &n) in self.latency_histogram.iter().enumerate() {
            if n <= 0 {
                continue;
            }
            if below + n >= rank {
                let lo = if i == 0 {
                    0.0
                } else {
                    LATENCY_BUCKET_BOUNDS_US[i - 1] as f64
                };
                let hi = LATENCY_BUCKET_BOUNDS_US
                    .get(i)
                    .map_or(max, |&b| (b as f64).min(max))
                    .max(lo);
                let within = (rank - below) as f64 / n as f64;
                return Some((lo + (hi - lo) * within) / 1000.0);
            }
            below += n;
        }
        Some(max / 1000.0)
    }

    /// This group's spend as a fraction of `total`'s (`None` when `total` spent nothing).
    pub fn share_of(&self, total: &SpendTotals) -> Option<f64> {
        (total.spend_nano > 0).then(|| self.spend_nano as f64 / total.spend_nano as f64)
    }

    fn from_sums(sums: &[i64; AGG_SUMS], latency_max_us: i64) -> Self {
        let mut latency_histogram = [0; LATENCY_BUCKETS];
        latency_histogram.copy_from_slice(&sums[AGG_FIRST_BUCKET..]);
        Self {
            calls: sums[0],
            errors: sums[1],
            unpriced_calls: sums[2],
            prompt_tokens: sums[3],
            completion_tokens: sums[4],
            cached_tokens: sums[5],
            cache_creation_tokens: sums[6],
            reasoning_tokens: sums[7],
            spend_nano: sums[8],
            latency_sum_us: sums[9],
            latency_max_us,
            latency_histogram,
        }
    }
}

/// One group of a spend report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownRow {
    /// The group's value per dimension of the query, in its order; `None` for calls without
    /// one (no tag, no team, …).
    pub values: Vec<Option<String>>,
    /// The key's alias when the report groups by key and the key has one (read from the
    /// keys table at report time, so a renamed key shows its current alias).
    pub key_alias: Option<String>,
    /// What the group's calls added up to.
    pub totals: SpendTotals,
}

/// A spend report: groups sorted by spend (most first), then calls, then values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// The dimensions, as asked.
    pub dimensions: Vec<SpendDimension>,
    /// The groups.
    pub rows: Vec<BreakdownRow>,
    /// Every call matching the query's filter, each counted once (also when grouping by
    /// tag): the base of each group's share.
    pub total: SpendTotals,
}

/// Group column aliases `g0`, `g1`, … (one per dimension, at most all of them).
const GROUP_ALIASES: [&str; 8] = ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"];

/// One aggregate query row: group values (as many as selected), the sums, the maximum.
struct AggDbRow {
    groups: Vec<String>,
    sums: [i64; AGG_SUMS],
    latency_max_us: i64,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for AggDbRow
where
    &'r str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> std::result::Result<Self, sqlx::Error> {
        let mut groups = Vec::new();
        for alias in GROUP_ALIASES {
            match row.try_get::<String, _>(alias) {
                Ok(v) => groups.push(v),
                Err(sqlx::Error::ColumnNotFound(_)) => break,
                Err(e) => return Err(e),
            }
        }
        let mut sums = [0i64; AGG_SUMS];
        for (s, c) in sums.iter_mut().zip(AGG_COLUMNS) {
            *s = row.try_get(c)?;
        }
        Ok(Self {
            groups,
            sums,
            latency_max_us: row.try_get("latency_max_us")?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AliasRow {
    key_id: String,
    key_alias: Option<String>,
}

/// Calls whose usage a what-if re-prices: a day range and optional filters.
#[derive(Debug, Clone)]
pub struct UsageFilter {
    /// First day (inclusive).
    pub from: Day,
    /// Last day (inclusive).
    pub to: Day,
    /// Only calls carrying this tag (`Some("")`: only calls without tags).
    pub tag: Option<String>,
    /// Only this model group.
    pub model_group: Option<String>,
    /// Only this provider model.
    pub model: Option<String>,
    /// Only this key id.
    pub key_id: Option<String>,
    /// Only this team.
    pub team_id: Option<String>,
}

impl UsageFilter {
    /// Every call of `from..=to`.
    pub fn new(from: Day, to: Day) -> Self {
        Self {
            from,
            to,
            tag: None,
            model_group: None,
            model: None,
            key_id: None,
            team_id: None,
        }
    }
}

/// Calls with identical usage (and operation and model): a what-if prices one and
/// multiplies, which is exact because a call's cost depends only on these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UsageProfileRow {
    /// `chat`, `chat_stream`, `embeddings`, …
    pub operation: String,
    /// The provider that answered.
    pub provider: Option<String>,
    /// The provider model that answered.
    pub provider_model: Option<String>,
    /// Input tokens of each call (cached included).
    pub prompt_tokens: i64,
    /// Output tokens of each call (reasoning included).
    pub completion_tokens: i64,
    /// Cached input tokens of each call.
    pub cached_tokens: i64,
    /// Cache-write input tokens of each call.
    pub cache_creation_tokens: i64,
    /// Reasoning tokens of each call.
    pub reasoning_tokens: i64,
    /// How many calls had exactly this usage.
    pub calls: i64,
    /// What they cost together, as recorded (nano-USD).
    pub spend_nano: i64,
    /// How many of them had no known price.
    pub unpriced_calls: i64,
}

impl Store {
    /// A spend report grouped by any combination of [`SpendDimension`]s, from the daily
    /// aggregates only (never the spend log), so its cost grows with the number of distinct
    /// (day, dimensions) combinations, not with the number of calls.
    pub async fn spend_breakdown(&self, query: &BreakdownQuery) -> Result<Breakdown> {
        if query.from > query.to {
            return Err(StoreError::Invalid(format!(
                "report from {} is after to {}",
                query.from, query.to
            )));
        }
        if query.dimensions.is_empty() {
            return Err(StoreError::Invalid(
                "a report needs at least one group".into(),
            ));
        }
        let dims: Vec<SpendDimension> = {
            let mut seen = BTreeSet::new();
            query
                .dimensions
                .iter()
                .copied()
                .filter(|d| seen.insert(*d))
                .collect()
        };
        let table = if query.by_tag() {
            "llmux_spend_daily_by_tag"
        } else {
            "llmux_spend_daily"
        };
        let mut a = Args::default();
        let mut conds = vec![
            format!("day >= {}", a.push(query.from.to_string())),
            format!("day <= {}", a.push(query.to.to_string())),
        ];
        query.filter.conditions(&mut a, &mut conds);
        let selected: Vec<String> = dims
            .iter()
            .zip(GROUP_ALIASES)
            .map(|(d, g)| format!("{} AS {g}", d.column()))
            .collect();
        let grouped: Vec<&str> = dims.iter().map(|d| d.column()).collect();
        let order: Vec<&str> = GROUP_ALIASES[..dims.len()].to_vec();
        let limit = query
            .limit
            .map(|n| format!(" LIMIT {}", a.push(i64::from(n))))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {}, {} FROM {table}{} GROUP BY {} \
             ORDER BY spend_nano DESC, calls DESC, {}{limit}",
            selected.join(", "),
            sum_columns(),
            where_clause(&conds),
            grouped.join(", "),
            order.join(", "),
        );
        let rows: Vec<AggDbRow> = self.db.fetch_all(&sql, a).await?;

        // The total counts each call once: the tag table only when filtered to one tag
        // (where each call has one row per tag, so at most one matches).
        let total_table = if query.filter.tag.is_some() {
            "llmux_spend_daily_by_tag"
        } else {
            "llmux_spend_daily"
        };
        let mut a = Args::default();
        let mut conds = vec![
            format!("day >= {}", a.push(query.from.to_string())),
            format!("day <= {}", a.push(query.to.to_string())),
        ];
        query.filter.conditions(&mut a, &mut conds);
        let sql = format!(
            "SELECT {} FROM {total_table}{}",
            sum_columns(),
            where_clause(&conds)
        );
        let total = self
            .db
            .fetch_optional::<AggDbRow>(&sql, a)
            .await?
            .map(|r| SpendTotals::from_sums(&r.sums, r.latency_max_us))
            .unwrap_or_default();

        let key_at = dims.iter().position(|d| *d == SpendDimension::Key);
        let aliases = match key_at {
            Some(i) => {
                self.key_aliases(rows.iter().filter_map(|r| r.groups.get(i)))
                    .await?
            }
            None => HashMap::new(),
        };
        let rows = rows
            .into_iter()
            .map(|r| {
                let key_alias = key_at
                    .and_then(|i| r.groups.get(i))
                    .and_then(|k| aliases.get(k).cloned());
                BreakdownRow {
                    values: r
                        .groups
                        .into_iter()
                        .map(|v| (!v.is_empty()).then_some(v))
                        .collect(),
                    key_alias,
                    totals: SpendTotals::from_sums(&r.sums, r.latency_max_us),
                }
            })
            .collect();
        Ok(Breakdown {
            dimensions: dims,
            rows,
            total,
        })
    }

    /// The aliases of these key ids (keys without one, or deleted, are absent).
    async fn key_aliases<'a>(
        &self,
        ids: impl Iterator<Item = &'a String>,
    ) -> Result<HashMap<String, String>> {
        let ids: Vec<&String> = ids
            .filter(|k| !k.is_empty())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let mut a = Args::default();
            let marks: Vec<String> = chunk.iter().map(|k| a.push(k.as_str())).collect();
            let sql = format!(
                "SELECT key_id, key_alias FROM llmux_keys WHERE key_id IN ({})",
                marks.join(", ")
            );
            let rows: Vec<AliasRow> = self.db.fetch_all(&sql, a).await?;
            out.extend(
                rows.into_iter()
                    .filter_map(|r| r.key_alias.map(|alias| (r.key_id, alias))),
            );
        }
        Ok(out)
    }

    /// The usage of the calls matching `filter`, read from the spend log (the one report
    /// input that needs per-call token counts), with calls of identical usage folded into
    /// one row. Ordered by calls, most first.
    pub async fn usage_profile(&self, filter: &UsageFilter) -> Result<Vec<UsageProfileRow>> {
        if filter.from > filter.to {
            return Err(StoreError::Invalid(format!(
                "from {} is after to {}",
                filter.from, filter.to
            )));
        }
        let mut a = Args::default();
        let mut conds = vec![
            format!("started_at_ms >= {}", a.push(filter.from.start_ms())),
            format!(
                "started_at_ms < {}",
                a.push(filter.to.plus_days(1).start_ms())
            ),
        ];
        for (col, v) in [
            ("model_group", &filter.model_group),
            ("provider_model", &filter.model),
            ("key_id", &filter.key_id),
            ("team_id", &filter.team_id),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = {}", a.push(v.as_str())));
            }
        }
        if let Some(tag) = &filter.tag {
            conds.push(self.tag_condition(tag, &mut a));
        }
        let keys = "operation, provider, provider_model, prompt_tokens, completion_tokens, \
                    cached_tokens, cache_creation_tokens, reasoning_tokens";
        let sql = format!(
            "SELECT {keys}, CAST(COUNT(*) AS BIGINT) AS calls, \
             CAST(COALESCE(SUM(cost_nano), 0) AS BIGINT) AS spend_nano, \
             CAST(SUM(CASE WHEN cost_nano IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unpriced_calls \
             FROM llmux_spend_log{} GROUP BY {keys} ORDER BY calls DESC, {keys}",
            where_clause(&conds)
        );
        self.db.fetch_all(&sql, a).await
    }

    /// A spend-log condition: the call's `tags` (JSON text) holds `tag`, or (for `""`) holds
    /// no non-empty tag.
    fn tag_condition(&self, tag: &str, a: &mut Args) -> String {
        match (self.backend(), tag.is_empty()) {
            (Backend::Sqlite, false) => format!(
                "EXISTS (SELECT 1 FROM json_each(llmux_spend_log.tags) AS e WHERE e.value = {})",
                a.push(tag)
            ),
            (Backend::Sqlite, true) => "NOT EXISTS (SELECT 1 FROM json_each(llmux_spend_log.tags) \
                 AS e WHERE e.value <> '')"
                .to_owned(),
            (Backend::Postgres, false) => format!(
                "CAST(tags AS JSONB) @> jsonb_build_array(CAST({} AS TEXT))",
                a.push(tag)
            ),
            (Backend::Postgres, true) => "NOT EXISTS (SELECT 1 FROM \
                 jsonb_array_elements_text(CAST(tags AS JSONB)) AS e(v) WHERE e.v <> '')"
                .to_owned(),
        }
    }
}

/// `CAST(COALESCE(SUM(c), 0) AS BIGINT) AS c` for every sum, and the maximum latency.
fn sum_columns() -> String {
    let mut cols: Vec<String> = AGG_COLUMNS
        .iter()
        .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
        .collect();
    cols.push("CAST(COALESCE(MAX(latency_max_us), 0) AS BIGINT) AS latency_max_us".to_owned());
    cols.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_their_bucket_upper_bound_inclusive() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(25_000), 0);
        assert_eq!(latency_bucket(25_001), 1);
        assert_eq!(latency_bucket(1_000_000), 7);
        assert_eq!(latency_bucket(60_000_000), LATENCY_BUCKETS - 2);
        assert_eq!(latency_bucket(60_000_001), LATENCY_BUCKETS - 1);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn bucket_columns_match_the_bounds() {
        assert_eq!(AGG_COLUMNS.len(), AGG_FIRST_BUCKET + LATENCY_BUCKETS);
        for (i, c) in AGG_COLUMNS[AGG_FIRST_BUCKET..].iter().enumerate() {
            assert_eq!(*c, format!("lat_b{i:02}"));
        }
        assert!(LATENCY_BUCKET_BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    fn totals_of(latencies_us: &[u64]) -> SpendTotals {
        let mut t = SpendTotals::default();
        for &l in latencies_us {
            t.calls += 1;
            t.latency_sum_us += l as i64;
            t.latency_max_us = t.latency_max_us.max(l as i64);
            t.latency_histogram[latency_bucket(l)] += 1;
        }
        t
    }

    #[test]
    fn quantiles_come_from_the_histogram_within_one_bucket() {
        // 100 calls: 1 ms … 100 ms. The exact p95 is 95 ms, in the (50, 100] ms bucket.
        let t = totals_of(&(1..=100).map(|ms| ms * 1000).collect::<Vec<_>>());
        assert_eq!(t.avg_latency_ms(), Some(50.5));
        let p95 = t.latency_quantile_ms(0.95).unwrap();
        assert!((50.0..=100.0).contains(&p95), "{p95}");
        // Ranks 51..=100 are the 50 calls of that bucket: rank 95 is 45/50 of the way.
        assert!((p95 - 95.0).abs() < 1e-9, "{p95}");
        // The top is capped at the slowest call, not the bucket's bound.
        let t = totals_of(&[70_000, 70_000]);
        assert_eq!(t.latency_quantile_ms(1.0), Some(70.0));
        // Beyond the last bound: between 60 s and the slowest call.
        let t = totals_of(&[90_000_000]);
        assert_eq!(t.latency_quantile_ms(0.95), Some(90_000.0));
        assert_eq!(SpendTotals::default().latency_quantile_ms(0.95), None);
        assert_eq!(SpendTotals::default().avg_latency_ms(), None);
    }

    #[test]
    fn dimensions_parse_with_aliases_and_without_repeats() {
        assert_eq!(
            SpendDimension::parse_list("feature, model,tag,key").unwrap(),
            vec![
                SpendDimension::Tag,
                SpendDimension::Model,
                SpendDimension::Key
            ]
        );
        for d in SpendDimension::ALL {
            assert_eq!(d.as_str().parse::<SpendDimension>().unwrap(), d);
        }
        let e = SpendDimension::parse_list("tag,color").unwrap_err();
        assert!(e.to_string().contains("'color'"), "{e}");
        assert!(SpendDimension::parse_list("").is_err());
    }

    #[test]
    fn key_tags_are_read_trimmed_and_checked() {
        let meta: JsonObject =
            serde_json::from_value(serde_json::json!({"tags": [" a ", "b", "a", 3, ""]})).unwrap();
        assert_eq!(key_default_tags(&meta), vec!["a", "b"]);
        assert!(check_key_metadata(&meta).is_err());
        let ok: JsonObject =
            serde_json::from_value(serde_json::json!({"tags": ["summarize", "team-x"]})).unwrap();
        check_key_metadata(&ok).unwrap();
        let long: JsonObject =
            serde_json::from_value(serde_json::json!({"tags": ["x".repeat(65)]})).unwrap();
        assert!(check_key_metadata(&long).is_err());
        let many: JsonObject = serde_json::from_value(serde_json::json!({
            "tags": (0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()
        }))
        .unwrap();
        assert!(check_key_metadata(&many).is_err());
        let not_list: JsonObject =
            serde_json::from_value(serde_json::json!({"tags": "a,b"})).unwrap();
        assert!(check_key_metadata(&not_list).is_err());
        check_key_metadata(&JsonObject::new()).unwrap();
    }
}
