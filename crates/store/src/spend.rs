//! The spend log, daily aggregates, spend counters with budget resets, and reports.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use llmux_core::{CallRecord, ErrorKind};

use crate::admin::{parse_json, to_i64, to_u64, where_clause};
use crate::db::{Args, Backend, Tx};
use crate::report::{LATENCY_BUCKETS, latency_bucket};
use crate::time::{Day, now_ms, parse_duration};
use crate::types::*;
use crate::{Result, Store, StoreError};

/// Rows per multi-row INSERT (34 columns each). Small enough that building one statement's
/// arguments and reading its `RETURNING` rows (work done on the gateway's request threads)
/// stays well under a millisecond: with 200 rows a batch held the request worker for ~4 ms,
/// which was the production path's p99 tail at 1,000 calls/s (docs/benchmarks.md).
const LOG_ROWS_PER_STATEMENT: usize = 64;
/// Records aggregated between two yields to the scheduler, for the same reason.
const RECORDS_PER_YIELD: usize = 64;
/// Rows per aggregate upsert (39 columns each at most: 7 800 parameters, under SQLite's
/// 32 766 and PostgreSQL's 65 535).
const AGG_ROWS_PER_STATEMENT: usize = 200;

const LOG_COLUMNS: &str = "request_id, started_at_ms, day, operation, key_id, team_id, user_id, \
    end_user, model_group, deployment, provider, provider_model, prompt_tokens, \
    completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, usage_estimated, \
    cost_nano, latency_us, ttft_us, status, error_kind, cache_hit, tags, attempts, fallback, \
    stream_resumptions, trace_id, parent_span_id, finish_reason, session_id, request_metadata, key_alias";

/// The columns of both daily aggregate tables that are plain sums, in [`Agg`] order: the
/// report sums, then the latency sum and the latency histogram (one column per bucket of
/// [`crate::report::LATENCY_BUCKET_BOUNDS_US`]). `latency_max_us` is kept apart (a maximum).
pub(crate) const AGG_COLUMNS: [&str; AGG_SUMS] = [
    "calls",
    "errors",
    "unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "spend_nano",
    "latency_sum_us",
    "lat_b00",
    "lat_b01",
    "lat_b02",
    "lat_b03",
    "lat_b04",
    "lat_b05",
    "lat_b06",
    "lat_b07",
    "lat_b08",
    "lat_b09",
    "lat_b10",
    "lat_b11",
    "lat_b12",
    "lat_b13",
    "lat_b14",
    "lat_b15",
    "lat_b16",
    "lat_b17",
    "lat_b18",
    "lat_b19",
];
/// Sums per aggregate row: 9 counters, the latency sum, the histogram buckets.
pub(crate) const AGG_SUMS: usize = 10 + LATENCY_BUCKETS;
/// Where the histogram starts in [`AGG_COLUMNS`].
pub(crate) const AGG_FIRST_BUCKET: usize = 10;
/// The columns the `/global/spend/report` rows read (the first nine sums).
const REPORT_COLUMNS: usize = 9;

#[derive(sqlx::FromRow)]
struct RequestIdRow {
    request_id: String,
}

#[derive(sqlx::FromRow)]
struct ResetRow {
    id: String,
    budget_duration: Option<String>,
    budget_reset_at_ms: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SpendRow {
    spend_nano: i64,
}

#[derive(sqlx::FromRow)]
struct LogRow {
    request_id: String,
    started_at_ms: i64,
    operation: String,
    key_id: Option<String>,
    team_id: Option<String>,
    user_id: Option<String>,
    end_user: Option<String>,
    model_group: String,
    deployment: Option<String>,
    provider: Option<String>,
    provider_model: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cache_creation_tokens: i64,
    reasoning_tokens: i64,
    usage_estimated: bool,
    cost_nano: Option<i64>,
    latency_us: i64,
    ttft_us: Option<i64>,
    status: i32,
    error_kind: Option<String>,
    cache_hit: bool,
    tags: String,
    attempts: i32,
    fallback: Option<String>,
    stream_resumptions: i32,
    trace_id: Option<String>,
    parent_span_id: Option<String>,
    finish_reason: Option<String>,
    session_id: Option<String>,
    request_metadata: Option<String>,
    key_alias: Option<String>,
}

#[derive(sqlx::FromRow)]
struct ReportDbRow {
    grp: String,
    calls: i64,
    errors: i64,
    unpriced_calls: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
    cache_creation_tokens: i64,
    reasoning_tokens: i64,
    spend_nano: i64,
}

/// Text as PostgreSQL accepts it (no NUL characters); borrowed when already clean.
fn clean(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', ""))
    } else {
        Cow::Borrowed(s)
    }
}

fn clean_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|v| clean(v).into_owned())
}

/// Whether a call failed.
fn is_error(r: &CallRecord) -> bool {
    r.status >= 400 || r.error_kind.is_some()
}

fn error_kind_text(k: ErrorKind) -> String {
    k.as_str().to_owned()
}

fn parse_error_kind(s: &str) -> Option<ErrorKind> {
    ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
}

/// What one aggregate row adds up: the sums of [`AGG_COLUMNS`] and the largest latency.
#[derive(Debug, Clone, Copy)]
struct Agg {
    sums: [i64; AGG_SUMS],
    latency_max_us: i64,
}

impl Default for Agg {
    fn default() -> Self {
        Self {
            sums: [0; AGG_SUMS],
            latency_max_us: 0,
        }
    }
}

impl Agg {
    fn add(&mut self, r: &CallRecord) {
        let latency = to_i64(r.latency_us);
        let vals = [
            1,
            i64::from(is_error(r)),
            i64::from(r.cost_nano_usd.is_none()),
            to_i64(r.prompt_tokens),
            to_i64(r.completion_tokens),
            to_i64(r.cached_tokens),
            to_i64(r.cache_creation_tokens),
            to_i64(r.reasoning_tokens),
            r.cost_nano_usd.unwrap_or(0),
            latency,
        ];
        for (acc, v) in self.sums.iter_mut().zip(vals) {
            *acc = acc.saturating_add(v);
        }
        let bucket = &mut self.sums[AGG_FIRST_BUCKET + latency_bucket(r.latency_us)];
        *bucket = bucket.saturating_add(1);
        self.latency_max_us = self.latency_max_us.max(latency);
    }
}

/// (day, key, team, user, model group, provider, provider model).
type DailyKey = (String, String, String, String, String, String, String);
/// (day, tag, key, team, user, model group, provider, provider model).
type TagKey = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn dim(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| clean(s).into_owned())
        .unwrap_or_default()
}

impl SpendTarget {
    fn table_and_column(&self) -> (&'static str, &'static str, &str) {
        match self {
            Self::Key(id) => ("llmux_keys", "key_id", id),
            Self::Team(id) => ("llmux_teams", "team_id", id),
            Self::User(id) => ("llmux_users", "user_id", id),
        }
    }
}

impl Store {
    /// Write call records to the spend log in one transaction: multi-row inserts keyed by
    /// `request_id` (a record already stored is skipped, so replays are idempotent), plus the
    /// daily aggregates and the key/team/user spend of the newly inserted records only.
    /// [`crate::SpendWriter`] calls this; call it directly only for imports and tests.
    pub async fn write_records(&self, records: &[Arc<CallRecord>]) -> Result<BatchOutcome> {
        let mut seen = HashSet::with_capacity(records.len());
        let mut uniq: Vec<&CallRecord> = records
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| seen.insert(clean(&r.request_id).into_owned()))
            .collect();
        // Every transaction takes its row locks in one global order (log rows by request id,
        // then aggregate rows, then spend rows, each sorted), so concurrent writers (several
        // gateways, or a replay racing live records) wait for each other but never deadlock.
        uniq.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        let mut tx = self.db.begin().await?;
        let mut inserted_ids = HashSet::with_capacity(uniq.len());
        for chunk in uniq.chunks(LOG_ROWS_PER_STATEMENT) {
            for id in insert_log_rows(&mut tx, chunk).await? {
                inserted_ids.insert(id);
            }
        }
        let inserted: Vec<&CallRecord> = uniq
            .iter()
            .copied()
            .filter(|r| inserted_ids.contains(clean(&r.request_id).as_ref()))
            .collect();

        let mut daily: BTreeMap<DailyKey, Agg> = BTreeMap::new();
        let mut tagged: BTreeMap<TagKey, Agg> = BTreeMap::new();
        let mut spend: BTreeMap<(u8, String), i64> = BTreeMap::new();
        for (i, r) in inserted.iter().enumerate() {
            if i > 0 && i % RECORDS_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
            let day = Day::from_unix_ms(to_i64(r.started_at_ms)).to_string();
            let (key, team, user) = (dim(&r.key), dim(&r.team), dim(&r.user));
            let model = clean(&r.model_group).into_owned();
            let (provider, provider_model) = (dim(&r.provider), dim(&r.provider_model));
            daily
                .entry((
                    day.clone(),
                    key.clone(),
                    team.clone(),
                    user.clone(),
                    model.clone(),
                    provider.clone(),
                    provider_model.clone(),
                ))
                .or_default()
                .add(r);
            // Once per distinct tag, or once under '' (untagged): a call with several tags
            // counts under each tag here, and once in `daily`.
            for tag in aggregate_tags(&r.tags) {
                tagged
                    .entry((
                        day.clone(),
                        tag,
                        key.clone(),
                        team.clone(),
                        user.clone(),
                        model.clone(),
                        provider.clone(),
                        provider_model.clone(),
                    ))
                    .or_default()
                    .add(r);
            }
            if let Some(cost) = r.cost_nano_usd.filter(|c| *c != 0) {
                for (kind, id) in [(0u8, &r.key), (1, &r.team), (2, &r.user)] {
                    if let Some(id) = id {
                        let e = spend.entry((kind, id.clone())).or_default();
                        *e = e.saturating_add(cost);
                    }
                }
            }
        }

        let daily: Vec<_> = daily.into_iter().collect();
        for chunk in daily.chunks(AGG_ROWS_PER_STATEMENT) {
            upsert_daily(&mut tx, chunk).await?;
        }
        let tagged: Vec<_> = tagged.into_iter().collect();
        for chunk in tagged.chunks(AGG_ROWS_PER_STATEMENT) {
            upsert_tags(&mut tx, chunk).await?;
        }
        let now = now_ms();
        for ((kind, id), amount) in spend {
            let target = match kind {
                0 => SpendTarget::Key(id),
                1 => SpendTarget::Team(id),
                _ => SpendTarget::User(id),
            };
            add_spend_tx(&mut tx, &target, amount, now).await?;
        }
        tx.commit().await?;
        let inserted = inserted.len() as u64;
        Ok(BatchOutcome {
            inserted,
            duplicates: records.len() as u64 - inserted,
        })
    }

    /// Add `amount_nano` to a key's, team's or user's spend, first resetting it to zero if its
    /// `budget_reset_at` has passed (and moving the reset to the next period). Returns the new
    /// spend, or `None` if there is no such key, team or user. The spend writer does this for
    /// every priced call; call it directly only for adjustments.
    pub async fn add_spend(&self, target: &SpendTarget, amount_nano: i64) -> Result<Option<i64>> {
        let mut tx = self.db.begin().await?;
        let v = add_spend_tx(&mut tx, target, amount_nano, now_ms()).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Reset every key, team and user whose `budget_reset_at` is at or before `now_ms`:
    /// spend goes to zero and the reset moves to the next period. Returns how many were reset.
    /// Safe to run from several gateways at once (each reset is a compare-and-set).
    pub async fn reset_due_budgets(&self, now_ms: i64) -> Result<u64> {
        let mut total = 0;
        for (table, col) in [
            ("llmux_keys", "key_id"),
            ("llmux_teams", "team_id"),
            ("llmux_users", "user_id"),
        ] {
            let mut a = Args::default();
            let m = a.push(now_ms);
            let sql = format!(
                "SELECT {col} AS id, budget_duration, budget_reset_at_ms FROM {table} \
                 WHERE budget_reset_at_ms IS NOT NULL AND budget_reset_at_ms <= {m} LIMIT 10000"
            );
            let rows: Vec<ResetRow> = self.db.fetch_all(&sql, a).await?;
            for r in rows {
                let Some(old) = r.budget_reset_at_ms else {
                    continue;
                };
                let next = next_reset(r.budget_duration.as_deref(), old, now_ms);
                let mut a = Args::default();
                let (n, id, o) = (a.push(next), a.push(r.id), a.push(old));
                let sql = format!(
                    "UPDATE {table} SET spend_nano = 0, budget_reset_at_ms = {n} \
                     WHERE {col} = {id} AND budget_reset_at_ms = {o}"
                );
                total += self.db.execute(&sql, a).await?;
            }
        }
        Ok(total)
    }

    /// The spend-log row of one call.
    pub async fn spend_log(&self, request_id: &str) -> Result<Option<CallRecord>> {
        let mut a = Args::default();
        let m = a.push(request_id);
        let sql = format!("SELECT {LOG_COLUMNS} FROM llmux_spend_log WHERE request_id = {m}");
        let row: Option<LogRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(record_from_row).transpose()
    }

    /// Spend-log rows matching `filter`, newest first, one page at a time.
    pub async fn spend_logs(
        &self,
        filter: &SpendLogFilter,
        page: &LogPage,
    ) -> Result<SpendLogPage> {
        let mut a = Args::default();
        let mut conds = Vec::new();
        for (col, v) in [
            ("key_id", &filter.key_id),
            ("team_id", &filter.team_id),
            ("user_id", &filter.user_id),
            ("model_group", &filter.model_group),
            ("provider", &filter.provider),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = {}", a.push(v.as_str())));
            }
        }
        if let Some(from) = filter.from_ms {
            conds.push(format!("started_at_ms >= {}", a.push(from)));
        }
        if let Some(to) = filter.to_ms {
            conds.push(format!("started_at_ms < {}", a.push(to)));
        }
        if filter.errors_only {
            conds.push("(status >= 400 OR error_kind IS NOT NULL)".to_owned());
        }
        if let Some(cursor) = &page.cursor {
            let (at, id) = parse_cursor(cursor)?;
            let (m_at, m_id) = (a.push(at), a.push(id));
            conds.push(format!(
                "(started_at_ms < {m_at} OR (started_at_ms = {m_at} AND request_id < {m_id}))"
            ));
        }
        let limit = if page.limit == 0 {
            100
        } else {
            page.limit.min(1000)
        };
        let lim = a.push(i64::from(limit) + 1);
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM llmux_spend_log{} \
             ORDER BY started_at_ms DESC, request_id DESC LIMIT {lim}",
            where_clause(&conds)
        );
        let mut rows: Vec<LogRow> = self.db.fetch_all(&sql, a).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last()
                .map(|r| format!("{}:{}", r.started_at_ms, r.request_id))
        } else {
            None
        };
        Ok(SpendLogPage {
            records: rows
                .into_iter()
                .map(record_from_row)
                .collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Spend between two days (inclusive), grouped; read from the daily aggregates, so the
    /// cost does not grow with the number of calls.
    pub async fn spend_report(&self, query: &ReportQuery) -> Result<Vec<ReportRow>> {
        if query.from > query.to {
            return Err(StoreError::Invalid(format!(
                "report from {} is after to {}",
                query.from, query.to
            )));
        }
        let (col, table) = match query.group_by {
            GroupBy::Day => ("day", "llmux_spend_daily"),
            GroupBy::Model => ("model_group", "llmux_spend_daily"),
            GroupBy::ProviderModel => ("provider_model", "llmux_spend_daily"),
            GroupBy::Provider => ("provider", "llmux_spend_daily"),
            GroupBy::Key => ("key_id", "llmux_spend_daily"),
            GroupBy::Team => ("team_id", "llmux_spend_daily"),
            GroupBy::User => ("user_id", "llmux_spend_daily"),
            GroupBy::Tag => ("tag", "llmux_spend_daily_by_tag"),
        };
        let mut a = Args::default();
        let mut conds = vec![
            format!("day >= {}", a.push(query.from.to_string())),
            format!("day <= {}", a.push(query.to.to_string())),
        ];
        if query.group_by == GroupBy::Tag {
            // This report lists tagged calls only (untagged calls are kept under '').
            conds.push("tag <> ''".to_owned());
        }
        for (c, v) in [
            ("key_id", &query.key_id),
            ("team_id", &query.team_id),
            ("user_id", &query.user_id),
        ] {
            if let Some(v) = v {
                conds.push(format!("{c} = {}", a.push(v.as_str())));
            }
        }
        let sums: Vec<String> = AGG_COLUMNS[..REPORT_COLUMNS]
            .iter()
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
            .collect();
        let sql = format!(
            "SELECT {col} AS grp, {} FROM {table}{} GROUP BY {col} ORDER BY {col}",
            sums.join(", "),
            where_clause(&conds)
        );
        let rows: Vec<ReportDbRow> = self.db.fetch_all(&sql, a).await?;
        Ok(rows
            .into_iter()
            .map(|r| ReportRow {
                group: (!r.grp.is_empty()).then_some(r.grp),
                calls: r.calls,
                errors: r.errors,
                unpriced_calls: r.unpriced_calls,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cached_tokens: r.cached_tokens,
                cache_creation_tokens: r.cache_creation_tokens,
                reasoning_tokens: r.reasoning_tokens,
                spend_nano: r.spend_nano,
            })
            .collect())
    }
}

fn next_reset(duration: Option<&str>, anchor: i64, now: i64) -> Option<i64> {
    duration
        .and_then(|d| parse_duration(d).ok())
        .map(|d| d.next_reset(anchor, now))
}

async fn add_spend_tx(
    tx: &mut Tx,
    target: &SpendTarget,
    amount: i64,
    now: i64,
) -> Result<Option<i64>> {
    let (table, col, id) = target.table_and_column();
    // Take the row's write lock first (a no-op update): PostgreSQL then serialises concurrent
    // increments of this row, and SQLite never has to upgrade a read lock mid-transaction.
    let mut a = Args::default();
    let m = a.push(id);
    let touched = tx
        .execute(
            &format!("UPDATE {table} SET spend_nano = spend_nano WHERE {col} = {m}"),
            a,
        )
        .await?;
    if touched == 0 {
        return Ok(None);
    }
    let mut a = Args::default();
    let m = a.push(id);
    let sql = format!(
        "SELECT {col} AS id, budget_duration, budget_reset_at_ms FROM {table} WHERE {col} = {m}"
    );
    let Some(row): Option<ResetRow> = tx.fetch_optional(&sql, a).await? else {
        return Ok(None);
    };
    let next = match row.budget_reset_at_ms {
        Some(at) if at <= now => next_reset(row.budget_duration.as_deref(), at, now),
        other => other,
    };
    let mut a = Args::default();
    let (m_now, m_amt, m_next, m_id) = (a.push(now), a.push(amount), a.push(next), a.push(id));
    let due = format!("budget_reset_at_ms IS NOT NULL AND budget_reset_at_ms <= {m_now}");
    // The reset condition is re-checked in the UPDATE itself, so a concurrent reset or
    // increment from another gateway is never lost or applied twice.
    let sql = format!(
        "UPDATE {table} SET \
         spend_nano = CASE WHEN {due} THEN {m_amt} ELSE spend_nano + {m_amt} END, \
         budget_reset_at_ms = CASE WHEN {due} THEN {m_next} ELSE budget_reset_at_ms END \
         WHERE {col} = {m_id} RETURNING spend_nano"
    );
    let row: Option<SpendRow> = tx.fetch_optional(&sql, a).await?;
    Ok(row.map(|r| r.spend_nano))
}

async fn insert_log_rows(tx: &mut Tx, rows: &[&CallRecord]) -> Result<Vec<String>> {
    let mut a = Args::default();
    let mut tuples = Vec::with_capacity(rows.len());
    for r in rows {
        let marks = [
            a.push(clean(&r.request_id).into_owned()),
            a.push(to_i64(r.started_at_ms)),
            a.push(Day::from_unix_ms(to_i64(r.started_at_ms)).to_string()),
            a.push(clean(&r.operation).into_owned()),
            a.push(clean_opt(&r.key)),
            a.push(clean_opt(&r.team)),
            a.push(clean_opt(&r.user)),
            a.push(clean_opt(&r.end_user)),
            a.push(clean(&r.model_group).into_owned()),
            a.push(clean_opt(&r.deployment)),
            a.push(clean_opt(&r.provider)),
            a.push(clean_opt(&r.provider_model)),
            a.push(to_i64(r.prompt_tokens)),
            a.push(to_i64(r.completion_tokens)),
            a.push(to_i64(r.cached_tokens)),
            a.push(to_i64(r.cache_creation_tokens)),
            a.push(to_i64(r.reasoning_tokens)),
            a.push(r.usage_estimated),
            a.push(r.cost_nano_usd),
            a.push(to_i64(r.latency_us)),
            a.push(r.ttft_us.map(to_i64)),
            a.push(i64::from(r.status)),
            a.push(r.error_kind.map(error_kind_text)),
            a.push(r.cache_hit),
            a.push(crate::admin::json_text(
                &r.tags.iter().map(|t| clean(t)).collect::<Vec<_>>(),
            )),
            a.push(i64::from(r.attempts.min(i32::MAX as u32))),
            a.push(clean_opt(&r.fallback)),
            a.push(i64::from(r.stream_resumptions.min(i32::MAX as u32))),
            a.push(clean_opt(&r.trace_id)),
            a.push(clean_opt(&r.parent_span_id)),
            a.push(clean_opt(&r.finish_reason)),
            a.push(clean_opt(&r.session_id)),
            a.push(
                r.request_metadata
                    .as_deref()
                    .and_then(|m| serde_json::to_string(m).ok())
                    .map(|m| clean(&m).into_owned()),
            ),
            a.push(clean_opt(&r.key_alias)),
        ];
        tuples.push(format!("({})", marks.join(", ")));
    }
    let sql = format!(
        "INSERT INTO llmux_spend_log ({LOG_COLUMNS}) VALUES {} \
         ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
        tuples.join(", ")
    );
    let ids: Vec<RequestIdRow> = tx.fetch_all(&sql, a).await?;
    Ok(ids.into_iter().map(|r| r.request_id).collect())
}

/// `col = table.col + excluded.col` for every sum, and the larger `latency_max_us`.
fn agg_update_set(tx: &Tx, table: &str) -> String {
    let mut set: Vec<String> = AGG_COLUMNS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    let greatest = match tx.backend() {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    };
    set.push(format!(
        "latency_max_us = {greatest}({table}.latency_max_us, excluded.latency_max_us)"
    ));
    set.join(", ")
}

/// One `(…)` tuple of an aggregate upsert: the dimensions, then the sums, then the maximum.
fn agg_tuple<'a>(a: &mut Args, dims: impl IntoIterator<Item = &'a String>, agg: &Agg) -> String {
    let mut marks: Vec<String> = dims.into_iter().map(|v| a.push(v.as_str())).collect();
    marks.extend(agg.sums.iter().map(|v| a.push(*v)));
    marks.push(a.push(agg.latency_max_us));
    format!("({})", marks.join(", "))
}

async fn upsert_daily(tx: &mut Tx, rows: &[(DailyKey, Agg)]) -> Result<()> {
    let mut a = Args::default();
    let mut tuples = Vec::with_capacity(rows.len());
    for ((day, key, team, user, model, provider, pmodel), agg) in rows {
        tuples.push(agg_tuple(
            &mut a,
            [day, key, team, user, model, provider, pmodel],
            agg,
        ));
    }
    let sql = format!(
        "INSERT INTO llmux_spend_daily (day, key_id, team_id, user_id, model_group, provider, \
         provider_model, {}, latency_max_us) VALUES {} \
         ON CONFLICT (day, key_id, team_id, user_id, model_group, provider, provider_model) \
         DO UPDATE SET {}",
        AGG_COLUMNS.join(", "),
        tuples.join(", "),
        agg_update_set(tx, "llmux_spend_daily")
    );
    tx.execute(&sql, a).await?;
    Ok(())
}

async fn upsert_tags(tx: &mut Tx, rows: &[(TagKey, Agg)]) -> Result<()> {
    let mut a = Args::default();
    let mut tuples = Vec::with_capacity(rows.len());
    for ((day, tag, key, team, user, model, provider, pmodel), agg) in rows {
        tuples.push(agg_tuple(
            &mut a,
            [day, tag, key, team, user, model, provider, pmodel],
            agg,
        ));
    }
    let sql = format!(
        "INSERT INTO llmux_spend_daily_by_tag (day, tag, key_id, team_id, user_id, model_group, \
         provider, provider_model, {}, latency_max_us) VALUES {} \
         ON CONFLICT (day, tag, key_id, team_id, user_id, model_group, provider, provider_model) \
         DO UPDATE SET {}",
        AGG_COLUMNS.join(", "),
        tuples.join(", "),
        agg_update_set(tx, "llmux_spend_daily_by_tag")
    );
    tx.execute(&sql, a).await?;
    Ok(())
}

/// The tags a call is aggregated under: its distinct non-empty tags (NULs removed), sorted,
/// or `['']` when it has none.
fn aggregate_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags
        .iter()
        .map(|t| clean(t).into_owned())
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    let bad = || StoreError::Invalid("malformed spend-log cursor".into());
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_owned()))
}

// `..Default` keeps this compiling when `CallRecord` grows a field; the unit test
// `every_call_record_field_has_a_column` then fails until the field gets a column.
#[allow(clippy::needless_update)]
fn record_from_row(r: LogRow) -> Result<CallRecord> {
    Ok(CallRecord {
        tags: parse_json("llmux_spend_log.tags", &r.tags)?,
        error_kind: r.error_kind.as_deref().and_then(parse_error_kind),
        request_id: r.request_id,
        started_at_ms: to_u64(r.started_at_ms),
        operation: r.operation,
        key: r.key_id,
        team: r.team_id,
        user: r.user_id,
        end_user: r.end_user,
        model_group: r.model_group,
        deployment: r.deployment,
        provider: r.provider,
        provider_model: r.provider_model,
        prompt_tokens: to_u64(r.prompt_tokens),
        completion_tokens: to_u64(r.completion_tokens),
        cached_tokens: to_u64(r.cached_tokens),
        cache_creation_tokens: to_u64(r.cache_creation_tokens),
        reasoning_tokens: to_u64(r.reasoning_tokens),
        usage_estimated: r.usage_estimated,
        cost_nano_usd: r.cost_nano,
        latency_us: to_u64(r.latency_us),
        ttft_us: r.ttft_us.map(to_u64),
        status: u16::try_from(r.status).unwrap_or(0),
        cache_hit: r.cache_hit,
        attempts: u32::try_from(r.attempts).unwrap_or(0),
        fallback: r.fallback,
        stream_resumptions: u32::try_from(r.stream_resumptions).unwrap_or(0),
        trace_id: r.trace_id,
        parent_span_id: r.parent_span_id,
        finish_reason: r.finish_reason,
        session_id: r.session_id,
        key_alias: r.key_alias,
        // Metadata is informational: a row whose text does not parse reads as none.
        request_metadata: r
            .request_metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
            .map(Arc::new),
        ..CallRecord::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_round_trip_through_text() {
        for k in ErrorKind::ALL {
            assert_eq!(parse_error_kind(&error_kind_text(k)), Some(k));
        }
        assert_eq!(parse_error_kind("nope"), None);
    }

    #[test]
    fn every_call_record_field_has_a_column() {
        // Every optional field set, so none is skipped when serialized.
        let full = CallRecord {
            session_id: Some("s".into()),
            key_alias: Some("a".into()),
            request_metadata: Some(Arc::new(llmux_core::JsonObject::new())),
            prompt: Some(Arc::new(serde_json::Value::Null)),
            completion: Some(Arc::new(serde_json::Value::Null)),
            ..CallRecord::default()
        };
        let json = serde_json::to_value(full).unwrap();
        let columns: Vec<&str> = LOG_COLUMNS.split(',').map(str::trim).collect();
        // Prompts and completions are never stored.
        for never in ["prompt", "completion"] {
            assert!(!columns.contains(&never), "{never} must not be a column");
        }
        for field in json.as_object().unwrap().keys() {
            if matches!(field.as_str(), "prompt" | "completion") {
                continue;
            }
            let column = match field.as_str() {
                "key" => "key_id",
                "team" => "team_id",
                "user" => "user_id",
                "cost_nano_usd" => "cost_nano",
                other => other,
            };
            assert!(
                columns.contains(&column),
                "CallRecord::{field} has no spend-log column: add one (migration, insert, read)"
            );
        }
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(
            parse_cursor("17:req:with:colons").unwrap(),
            (17, "req:with:colons".to_owned())
        );
        assert!(parse_cursor("nope").is_err());
        assert!(parse_cursor("x:y").is_err());
    }

    #[test]
    fn nul_bytes_are_removed() {
        assert_eq!(clean("a\0b"), "ab");
        assert!(matches!(clean("ab"), Cow::Borrowed(_)));
    }
}
