//! Moving from LiteLLM Proxy: read its PostgreSQL database (teams, users, budgets, virtual
//! keys and the spend log) and write the same principals, limits, budgets and spend into
//! this store.
//!
//! Keys keep working: LiteLLM stores `LiteLLM_VerificationToken.token` as the SHA-256 hex of
//! the clear `sk-…` key, which is exactly how this store hashes keys, so the hash is copied
//! ([`Store::import_key`]) and nobody re-issues a key. Money arrives as LiteLLM's USD floats
//! and is rounded once to integer nano-USD.
//!
//! Must not: write to the LiteLLM database (it is only read), or print a key hash or URL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use llmux_core::{CallRecord, JsonObject};
use serde_json::Value;
use sqlx::{Connection, Row};

use crate::{
    BudgetSettings, Limits, NewKey, NewTeam, NewUser, Result, SpendTarget, Store, StoreError,
    TeamRole,
};

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Teams created.
    pub teams: u64,
    /// Users created.
    pub users: u64,
    /// Team memberships created.
    pub members: u64,
    /// Virtual keys created (by hash).
    pub keys: u64,
    /// Spend-log rows written.
    pub spend_logs: u64,
    /// Rows skipped, with why (already present, unknown owner, bad value…).
    pub skipped: Vec<String>,
}

/// USD (LiteLLM's float) to nano-USD, rounded once.
fn nano(usd: Option<f64>) -> Option<i64> {
    usd.filter(|v| v.is_finite())
        .map(|v| (v * 1e9).round() as i64)
}

fn json_object(text: Option<String>) -> JsonObject {
    match text.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        Some(Value::Object(o)) => o,
        _ => JsonObject::new(),
    }
}

fn limit(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

/// A `LiteLLM_BudgetTable` row (keys and end users may point at one).
#[derive(Debug, Clone, Default)]
struct LiteBudget {
    max_budget: Option<f64>,
    soft_budget: Option<f64>,
    max_parallel: Option<i64>,
    tpm: Option<i64>,
    rpm: Option<i64>,
    duration: Option<String>,
}

/// Read `source_url` (a LiteLLM Proxy PostgreSQL database) and write its teams, users,
/// memberships, keys and spend log into `into`. Principals that already exist in `into` are
/// skipped (and listed), so running it twice is safe.
pub async fn import_litellm(source_url: &str, into: &Store) -> Result<ImportReport> {
    if !(source_url.starts_with("postgres://") || source_url.starts_with("postgresql://")) {
        return Err(StoreError::UnsupportedUrl);
    }
    let mut src = sqlx::PgConnection::connect(source_url).await?;
    let mut report = ImportReport::default();

    let mut budgets: HashMap<String, LiteBudget> = HashMap::new();
    for r in sqlx::query(
        r#"SELECT budget_id, max_budget, soft_budget, max_parallel_requests::BIGINT AS mp,
                  tpm_limit, rpm_limit, budget_duration FROM "LiteLLM_BudgetTable""#,
    )
    .fetch_all(&mut src)
    .await?
    {
        budgets.insert(
            r.try_get("budget_id")?,
            LiteBudget {
                max_budget: r.try_get("max_budget")?,
                soft_budget: r.try_get("soft_budget")?,
                max_parallel: r.try_get("mp")?,
                tpm: r.try_get("tpm_limit")?,
                rpm: r.try_get("rpm_limit")?,
                duration: r.try_get("budget_duration")?,
            },
        );
    }

    // Spend as LiteLLM recorded it, set once the spend log has been imported.
    let mut spend: Vec<(SpendTarget, i64)> = Vec::new();

    let teams = sqlx::query(
        r#"SELECT team_id, team_alias, admins, members, members_with_roles::TEXT AS mwr,
                  metadata::TEXT AS metadata, max_budget, spend, models,
                  max_parallel_requests::BIGINT AS mp, tpm_limit, rpm_limit, budget_duration,
                  blocked
           FROM "LiteLLM_TeamTable" ORDER BY team_id"#,
    )
    .fetch_all(&mut src)
    .await?;
    let mut memberships: BTreeMap<(String, String), TeamRole> = BTreeMap::new();
    for r in &teams {
        let team_id: String = r.try_get("team_id")?;
        let new = NewTeam {
            team_id: Some(team_id.clone()),
            alias: r.try_get("team_alias")?,
            limits: Limits {
                models: r
                    .try_get::<Option<Vec<String>>, _>("models")?
                    .unwrap_or_default(),
                rpm_limit: limit(r.try_get("rpm_limit")?),
                tpm_limit: limit(r.try_get("tpm_limit")?),
                max_parallel: limit(r.try_get("mp")?),
            },
            budget: BudgetSettings {
                max_budget_nano: nano(r.try_get("max_budget")?),
                soft_budget_nano: None,
                budget_duration: r.try_get("budget_duration")?,
            },
            metadata: json_object(r.try_get("metadata")?),
            blocked: r.try_get("blocked")?,
        };
        match into.create_team(new).await {
            Ok(_) => report.teams += 1,
            Err(e) => {
                report.skipped.push(format!("team {team_id}: {e}"));
                continue;
            }
        }
        if let Some(s) = nano(r.try_get("spend")?) {
            spend.push((SpendTarget::Team(team_id.clone()), s));
        }
        for u in r
            .try_get::<Option<Vec<String>>, _>("members")?
            .unwrap_or_default()
        {
            memberships
                .entry((team_id.clone(), u))
                .or_insert(TeamRole::User);
        }
        for u in r
            .try_get::<Option<Vec<String>>, _>("admins")?
            .unwrap_or_default()
        {
            memberships.insert((team_id.clone(), u), TeamRole::Admin);
        }
        let mwr: Option<String> = r.try_get("mwr")?;
        if let Some(Value::Array(list)) = mwr.and_then(|t| serde_json::from_str(&t).ok()) {
            for m in list {
                let Some(user) = m.get("user_id").and_then(Value::as_str) else {
                    continue;
                };
                let role = match m.get("role").and_then(Value::as_str) {
                    Some("admin") => TeamRole::Admin,
                    _ => TeamRole::User,
                };
                memberships.insert((team_id.clone(), user.to_owned()), role);
            }
        }
    }

    for r in sqlx::query(
        r#"SELECT user_id, user_alias, user_email, user_role, max_budget, spend, models,
                  metadata::TEXT AS metadata, max_parallel_requests::BIGINT AS mp, tpm_limit,
                  rpm_limit, budget_duration
           FROM "LiteLLM_UserTable" ORDER BY user_id"#,
    )
    .fetch_all(&mut src)
    .await?
    {
        let user_id: String = r.try_get("user_id")?;
        let new = NewUser {
            user_id: user_id.clone(),
            alias: r.try_get("user_alias")?,
            email: r.try_get("user_email")?,
            role: r.try_get("user_role")?,
            limits: Limits {
                models: r
                    .try_get::<Option<Vec<String>>, _>("models")?
                    .unwrap_or_default(),
                rpm_limit: limit(r.try_get("rpm_limit")?),
                tpm_limit: limit(r.try_get("tpm_limit")?),
                max_parallel: limit(r.try_get("mp")?),
            },
            budget: BudgetSettings {
                max_budget_nano: nano(r.try_get("max_budget")?),
                soft_budget_nano: None,
                budget_duration: r.try_get("budget_duration")?,
            },
            metadata: json_object(r.try_get("metadata")?),
            blocked: false,
        };
        match into.create_user(new).await {
            Ok(_) => {
                report.users += 1;
                if let Some(s) = nano(r.try_get("spend")?) {
                    spend.push((SpendTarget::User(user_id), s));
                }
            }
            Err(e) => report.skipped.push(format!("user {user_id}: {e}")),
        }
    }

    for ((team, user), role) in memberships {
        match into.add_team_member(&team, &user, role).await {
            Ok(_) => report.members += 1,
            Err(e) => report
                .skipped
                .push(format!("member {user} of team {team}: {e}")),
        }
    }

    // Keys: LiteLLM hash → this store's key id, for the spend log.
    let mut key_ids: HashMap<String, String> = HashMap::new();
    for r in sqlx::query(
        r#"SELECT token, key_name, key_alias, spend,
                  (EXTRACT(EPOCH FROM expires) * 1000)::BIGINT AS expires_ms, models,
                  aliases::TEXT AS aliases, user_id, team_id,
                  max_parallel_requests::BIGINT AS mp, metadata::TEXT AS metadata, blocked,
                  tpm_limit, rpm_limit, max_budget, budget_duration, budget_id
           FROM "LiteLLM_VerificationToken" ORDER BY token"#,
    )
    .fetch_all(&mut src)
    .await?
    {
        let hash: String = r.try_get("token")?;
        let budget = r
            .try_get::<Option<String>, _>("budget_id")?
            .and_then(|id| budgets.get(&id).cloned())
            .unwrap_or_default();
        let aliases: BTreeMap<String, String> = json_object(r.try_get("aliases")?)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
            .collect();
        let alias: Option<String> = r.try_get("key_alias")?;
        let new = NewKey {
            alias: alias.clone(),
            user_id: r.try_get("user_id")?,
            team_id: r.try_get("team_id")?,
            limits: Limits {
                models: r
                    .try_get::<Option<Vec<String>>, _>("models")?
                    .unwrap_or_default(),
                rpm_limit: limit(r.try_get::<Option<i64>, _>("rpm_limit")?.or(budget.rpm)),
                tpm_limit: limit(r.try_get::<Option<i64>, _>("tpm_limit")?.or(budget.tpm)),
                max_parallel: limit(r.try_get::<Option<i64>, _>("mp")?.or(budget.max_parallel)),
            },
            model_aliases: aliases,
            budget: BudgetSettings {
                max_budget_nano: nano(
                    r.try_get::<Option<f64>, _>("max_budget")?
                        .or(budget.max_budget),
                ),
                soft_budget_nano: nano(budget.soft_budget),
                budget_duration: r
                    .try_get::<Option<String>, _>("budget_duration")?
                    .or(budget.duration),
            },
            metadata: json_object(r.try_get("metadata")?),
            expires_at_ms: r.try_get("expires_ms")?,
            blocked: r.try_get::<Option<bool>, _>("blocked")?.unwrap_or(false),
        };
        let display: Option<String> = r.try_get("key_name")?;
        let what = alias.unwrap_or_else(|| display.clone().unwrap_or_else(|| "(unnamed)".into()));
        match into.import_key(&hash, display.as_deref(), new).await {
            Ok(k) => {
                report.keys += 1;
                if let Some(s) = nano(r.try_get("spend")?) {
                    spend.push((SpendTarget::Key(k.key_id.clone()), s));
                }
                key_ids.insert(hash.to_ascii_lowercase(), k.key_id);
            }
            Err(e) => report.skipped.push(format!("key {what}: {e}")),
        }
    }

    // The spend log, in pages; each row becomes a call record.
    let mut imported: HashMap<(u8, String), i64> = HashMap::new();
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            r#"SELECT request_id, call_type, api_key, spend, prompt_tokens::BIGINT AS pt,
                      completion_tokens::BIGINT AS ct,
                      (EXTRACT(EPOCH FROM "startTime") * 1000)::BIGINT AS start_ms,
                      (EXTRACT(EPOCH FROM "endTime") * 1000)::BIGINT AS end_ms,
                      model, model_group, custom_llm_provider, "user", request_tags::TEXT AS tags,
                      team_id, end_user, status
               FROM "LiteLLM_SpendLogs" WHERE request_id > $1 ORDER BY request_id LIMIT 1000"#,
        )
        .bind(&after)
        .fetch_all(&mut src)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("request_id")?;
        let mut batch = Vec::with_capacity(rows.len());
        for r in rows {
            let record = spend_record(&r, &key_ids)?;
            if let Some(c) = record.cost_nano_usd {
                for (kind, id) in [(0u8, &record.key), (1, &record.team), (2, &record.user)] {
                    if let Some(id) = id {
                        *imported.entry((kind, id.clone())).or_default() += c;
                    }
                }
            }
            batch.push(Arc::new(record));
        }
        report.spend_logs += into.write_records(&batch).await?.inserted;
    }

    // Writing the log added its costs to keys, teams and users; top each up (or down) to the
    // spend LiteLLM had recorded, which may include calls whose log rows were pruned.
    for (target, total) in spend {
        let (kind, id) = match &target {
            SpendTarget::Key(id) => (0u8, id.clone()),
            SpendTarget::Team(id) => (1, id.clone()),
            SpendTarget::User(id) => (2, id.clone()),
        };
        let logged = imported.get(&(kind, id)).copied().unwrap_or(0);
        if total != logged {
            into.add_spend(&target, total - logged).await?;
        }
    }
    let _ = src.close().await;
    Ok(report)
}

fn spend_record(
    r: &sqlx::postgres::PgRow,
    key_ids: &HashMap<String, String>,
) -> Result<CallRecord> {
    let start: Option<i64> = r.try_get("start_ms")?;
    let end: Option<i64> = r.try_get("end_ms")?;
    let api_key: Option<String> = r.try_get("api_key")?;
    let tags: Option<String> = r.try_get("tags")?;
    let tags = match tags.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let status: Option<String> = r.try_get("status")?;
    let start = start.unwrap_or(0).max(0);
    Ok(CallRecord {
        request_id: r.try_get("request_id")?,
        started_at_ms: start as u64,
        operation: r.try_get("call_type")?,
        key: api_key.and_then(|h| key_ids.get(&h.to_ascii_lowercase()).cloned()),
        team: nonempty(r.try_get("team_id")?),
        user: nonempty(r.try_get("user")?),
        end_user: nonempty(r.try_get("end_user")?),
        model_group: nonempty(r.try_get("model_group")?)
            .or_else(|| r.try_get("model").ok())
            .unwrap_or_default(),
        provider: nonempty(r.try_get("custom_llm_provider")?),
        provider_model: nonempty(r.try_get("model")?),
        prompt_tokens: limit(r.try_get("pt")?).unwrap_or(0),
        completion_tokens: limit(r.try_get("ct")?).unwrap_or(0),
        cost_nano_usd: nano(r.try_get("spend")?),
        latency_us: end
            .map_or(0, |e| (e - start).max(0) as u64)
            .saturating_mul(1000),
        status: match status.as_deref() {
            Some("failure") => 500,
            _ => 200,
        },
        tags,
        ..CallRecord::default()
    })
}
