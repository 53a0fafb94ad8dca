//! Keys, users, teams and memberships: create, read, update, delete, list.

use std::collections::BTreeMap;

use llmux_core::JsonObject;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::{Args, Tx};
use crate::keys::{generate_key, hash_key, random_id, verify_key};
use crate::time::{now_ms, parse_duration};
use crate::types::*;
use crate::{Result, Store, StoreError};

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn json_text<T: Serialize>(v: &T) -> String {
    // Serializing maps, vectors and JSON values of strings cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn parse_json<T: DeserializeOwned>(column: &'static str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        column,
        detail: e.to_string(),
    })
}

const KEY_COLUMNS: &str = "key_id, key_hash, key_prefix, key_alias, user_id, team_id, models, \
    model_aliases, rpm_limit, tpm_limit, max_parallel, max_budget_nano, soft_budget_nano, \
    budget_duration, budget_reset_at_ms, spend_nano, metadata, expires_at_ms, blocked, \
    created_at_ms, updated_at_ms";

const USER_COLUMNS: &str = "user_id, user_alias, user_email, user_role, models, rpm_limit, \
    tpm_limit, max_parallel, max_budget_nano, soft_budget_nano, budget_duration, \
    budget_reset_at_ms, spend_nano, metadata, blocked, created_at_ms, updated_at_ms";

const TEAM_COLUMNS: &str = "team_id, team_alias, models, rpm_limit, tpm_limit, max_parallel, \
    max_budget_nano, soft_budget_nano, budget_duration, budget_reset_at_ms, spend_nano, \
    metadata, blocked, created_at_ms, updated_at_ms";

#[derive(sqlx::FromRow)]
struct KeyRow {
    key_id: String,
    key_hash: String,
    key_prefix: String,
    key_alias: Option<String>,
    user_id: Option<String>,
    team_id: Option<String>,
    models: String,
    model_aliases: String,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    max_parallel: Option<i64>,
    max_budget_nano: Option<i64>,
    soft_budget_nano: Option<i64>,
    budget_duration: Option<String>,
    budget_reset_at_ms: Option<i64>,
    spend_nano: i64,
    metadata: String,
    expires_at_ms: Option<i64>,
    blocked: bool,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    user_id: String,
    user_alias: Option<String>,
    user_email: Option<String>,
    user_role: Option<String>,
    models: String,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    max_parallel: Option<i64>,
    max_budget_nano: Option<i64>,
    soft_budget_nano: Option<i64>,
    budget_duration: Option<String>,
    budget_reset_at_ms: Option<i64>,
    spend_nano: i64,
    metadata: String,
    blocked: bool,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct TeamRow {
    team_id: String,
    team_alias: Option<String>,
    models: String,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    max_parallel: Option<i64>,
    max_budget_nano: Option<i64>,
    soft_budget_nano: Option<i64>,
    budget_duration: Option<String>,
    budget_reset_at_ms: Option<i64>,
    spend_nano: i64,
    metadata: String,
    blocked: bool,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    team_id: String,
    user_id: String,
    role: String,
    added_at_ms: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CountRow {
    pub(crate) n: i64,
}

fn limits(
    table: &'static str,
    models: &str,
    rpm: Option<i64>,
    tpm: Option<i64>,
    par: Option<i64>,
) -> Result<Limits> {
    Ok(Limits {
        models: parse_json(table, models)?,
        rpm_limit: rpm.map(to_u64),
        tpm_limit: tpm.map(to_u64),
        max_parallel: par.map(to_u64),
    })
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self> {
        Ok(Self {
            limits: limits(
                "llmux_keys.models",
                &r.models,
                r.rpm_limit,
                r.tpm_limit,
                r.max_parallel,
            )?,
            model_aliases: parse_json::<BTreeMap<String, String>>(
                "llmux_keys.model_aliases",
                &r.model_aliases,
            )?,
            metadata: parse_json::<JsonObject>("llmux_keys.metadata", &r.metadata)?,
            budget: Budget {
                max_budget_nano: r.max_budget_nano,
                soft_budget_nano: r.soft_budget_nano,
                budget_duration: r.budget_duration,
                budget_reset_at_ms: r.budget_reset_at_ms,
                spend_nano: r.spend_nano,
            },
            key_id: r.key_id,
            key_hash: r.key_hash,
            key_prefix: r.key_prefix,
            alias: r.key_alias,
            user_id: r.user_id,
            team_id: r.team_id,
            expires_at_ms: r.expires_at_ms,
            blocked: r.blocked,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(Self {
            limits: limits(
                "llmux_users.models",
                &r.models,
                r.rpm_limit,
                r.tpm_limit,
                r.max_parallel,
            )?,
            metadata: parse_json::<JsonObject>("llmux_users.metadata", &r.metadata)?,
            budget: Budget {
                max_budget_nano: r.max_budget_nano,
                soft_budget_nano: r.soft_budget_nano,
                budget_duration: r.budget_duration,
                budget_reset_at_ms: r.budget_reset_at_ms,
                spend_nano: r.spend_nano,
            },
            user_id: r.user_id,
            alias: r.user_alias,
            email: r.user_email,
            role: r.user_role,
            blocked: r.blocked,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

impl TryFrom<TeamRow> for Team {
    type Error = StoreError;
    fn try_from(r: TeamRow) -> Result<Self> {
        Ok(Self {
            limits: limits(
                "llmux_teams.models",
                &r.models,
                r.rpm_limit,
                r.tpm_limit,
                r.max_parallel,
            )?,
            metadata: parse_json::<JsonObject>("llmux_teams.metadata", &r.metadata)?,
            budget: Budget {
                max_budget_nano: r.max_budget_nano,
                soft_budget_nano: r.soft_budget_nano,
                budget_duration: r.budget_duration,
                budget_reset_at_ms: r.budget_reset_at_ms,
                spend_nano: r.spend_nano,
            },
            team_id: r.team_id,
            alias: r.team_alias,
            blocked: r.blocked,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

impl TryFrom<MemberRow> for TeamMember {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self> {
        Ok(Self {
            role: TeamRole::parse(&r.role)?,
            team_id: r.team_id,
            user_id: r.user_id,
            added_at_ms: r.added_at_ms,
        })
    }
}

/// Column/value pairs for an INSERT or an UPDATE … SET.
#[derive(Default)]
struct Cols {
    names: Vec<&'static str>,
    marks: Vec<String>,
    args: Args,
}

impl Cols {
    fn add(&mut self, name: &'static str, v: impl Into<crate::db::Arg>) -> &mut Self {
        let mark = self.args.push(v);
        self.names.push(name);
        self.marks.push(mark);
        self
    }

    fn limits(&mut self, l: &Limits) -> &mut Self {
        self.add("models", json_text(&l.models))
            .add("rpm_limit", l.rpm_limit.map(to_i64))
            .add("tpm_limit", l.tpm_limit.map(to_i64))
            .add("max_parallel", l.max_parallel.map(to_i64))
    }

    fn budget(&mut self, b: &BudgetSettings, now: i64) -> Result<&mut Self> {
        b.validate()?;
        let reset_at = match &b.budget_duration {
            Some(d) => Some(parse_duration(d)?.after(now)),
            None => None,
        };
        Ok(self
            .add("max_budget_nano", b.max_budget_nano)
            .add("soft_budget_nano", b.soft_budget_nano)
            .add("budget_duration", b.budget_duration.clone())
            .add("budget_reset_at_ms", reset_at))
    }

    fn limits_update(&mut self, l: &LimitsUpdate) -> &mut Self {
        if let Some(m) = &l.models {
            self.add("models", json_text(m));
        }
        if let Some(v) = l.rpm_limit {
            self.add("rpm_limit", v.map(to_i64));
        }
        if let Some(v) = l.tpm_limit {
            self.add("tpm_limit", v.map(to_i64));
        }
        if let Some(v) = l.max_parallel {
            self.add("max_parallel", v.map(to_i64));
        }
        self
    }

    fn budget_update(&mut self, b: &BudgetUpdate, now: i64) -> Result<&mut Self> {
        for v in [b.max_budget_nano, b.soft_budget_nano]
            .into_iter()
            .flatten()
            .flatten()
        {
            if v < 0 {
                return Err(StoreError::Invalid("a budget cannot be negative".into()));
            }
        }
        if let Some(v) = b.max_budget_nano {
            self.add("max_budget_nano", v);
        }
        if let Some(v) = b.soft_budget_nano {
            self.add("soft_budget_nano", v);
        }
        if let Some(d) = &b.budget_duration {
            let reset_at = match d {
                Some(d) => Some(parse_duration(d)?.after(now)),
                None => None,
            };
            self.add("budget_duration", d.clone());
            self.add("budget_reset_at_ms", reset_at);
        }
        if let Some(s) = b.spend_nano {
            self.add("spend_nano", s);
        }
        Ok(self)
    }

    fn insert_sql(&self, table: &str) -> String {
        format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            self.names.join(", "),
            self.marks.join(", ")
        )
    }

    /// `UPDATE table SET … WHERE id_col = <id>`.
    fn update_sql(&mut self, table: &str, id_col: &str, id: &str) -> String {
        let sets: Vec<String> = self
            .names
            .iter()
            .zip(&self.marks)
            .map(|(n, m)| format!("{n} = {m}"))
            .collect();
        let id_mark = self.args.push(id);
        format!(
            "UPDATE {table} SET {} WHERE {id_col} = {id_mark}",
            sets.join(", ")
        )
    }
}

impl Store {
    async fn exists(&self, table: &str, id_col: &str, id: &str) -> Result<bool> {
        let mut a = Args::default();
        let m = a.push(id);
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {id_col} = {m}");
        let row: Option<CountRow> = self.db.fetch_optional(&sql, a).await?;
        Ok(row.is_some_and(|r| r.n > 0))
    }

    async fn check_owner(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<()> {
        if let Some(u) = user_id
            && !self.exists("llmux_users", "user_id", u).await?
        {
            return Err(StoreError::NotFound(format!("user {u:?}")));
        }
        if let Some(t) = team_id
            && !self.exists("llmux_teams", "team_id", t).await?
        {
            return Err(StoreError::NotFound(format!("team {t:?}")));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- keys

    /// Create a virtual key. The returned [`GeneratedKey::key`] is the only time the clear
    /// key exists outside its owner's hands: only its hash is stored. `metadata.tags`, when
    /// present, must be an array of valid attribution tags (the key's default tags).
    pub async fn create_key(&self, new: NewKey) -> Result<GeneratedKey> {
        crate::report::check_key_metadata(&new.metadata)?;
        let key = generate_key();
        let record = self.insert_key(key.hash(), key.display(), new).await?;
        Ok(GeneratedKey { key, record })
    }

    /// Store a key known only by its hash: e.g. a LiteLLM `LiteLLM_VerificationToken.token`
    /// being migrated (LiteLLM hashes keys the same way, so the owner's `sk-…` key keeps
    /// working), or a key the caller chose and hashed with [`crate::hash_key`]. `key_prefix`
    /// is the display form, if known (LiteLLM keeps one in `key_name`).
    pub async fn import_key(
        &self,
        key_hash: &str,
        key_prefix: Option<&str>,
        new: NewKey,
    ) -> Result<KeyRecord> {
        let hash = key_hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(
                "a key hash is 64 hex characters (SHA-256)".into(),
            ));
        }
        self.insert_key(hash, key_prefix.unwrap_or("sk-…").to_owned(), new)
            .await
    }

    async fn insert_key(
        &self,
        key_hash: String,
        key_prefix: String,
        new: NewKey,
    ) -> Result<KeyRecord> {
        self.check_owner(new.user_id.as_deref(), new.team_id.as_deref())
            .await?;
        let now = now_ms();
        let key_id = random_id("key_");
        let mut c = Cols::default();
        c.add("key_id", key_id.clone())
            .add("key_hash", key_hash)
            .add("key_prefix", key_prefix)
            .add("key_alias", new.alias)
            .add("user_id", new.user_id)
            .add("team_id", new.team_id)
            .limits(&new.limits)
            .add("model_aliases", json_text(&new.model_aliases))
            .budget(&new.budget, now)?
            .add("spend_nano", 0i64)
            .add("metadata", json_text(&new.metadata))
            .add("expires_at_ms", new.expires_at_ms)
            .add("blocked", new.blocked)
            .add("created_at_ms", now)
            .add("updated_at_ms", now);
        let sql = c.insert_sql("llmux_keys");
        self.db
            .execute(&sql, c.args)
            .await
            .map_err(alias_conflict)?;
        let record = self
            .get_key(&key_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("key {key_id}")))?;
        tracing::info!(key_id = %record.key_id, key = %record.key_prefix, "virtual key stored");
        Ok(record)
    }

    /// The key with this id.
    pub async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>> {
        let mut a = Args::default();
        let m = a.push(key_id);
        let sql = format!("SELECT {KEY_COLUMNS} FROM llmux_keys WHERE key_id = {m}");
        let row: Option<KeyRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(KeyRecord::try_from).transpose()
    }

    /// The key with this alias (aliases are unique).
    pub async fn get_key_by_alias(&self, alias: &str) -> Result<Option<KeyRecord>> {
        let mut a = Args::default();
        let m = a.push(alias);
        let sql = format!("SELECT {KEY_COLUMNS} FROM llmux_keys WHERE key_alias = {m}");
        let row: Option<KeyRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(KeyRecord::try_from).transpose()
    }

    /// The key a client presented: hashed, looked up by hash, and the stored hash compared
    /// in constant time. `None` for an unknown key. Expiry, blocking and budgets are the
    /// caller's to enforce ([`KeyRecord::is_active_at`], [`Budget::exceeded_at`]).
    pub async fn lookup_key(&self, clear: &str) -> Result<Option<KeyRecord>> {
        let hash = hash_key(clear);
        Ok(self
            .lookup_key_hash(&hash)
            .await?
            .filter(|k| verify_key(clear, &k.key_hash)))
    }

    /// The key with this SHA-256 hex hash (e.g. a LiteLLM `token`, or a cached hash).
    pub async fn lookup_key_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>> {
        let mut a = Args::default();
        let m = a.push(key_hash.to_ascii_lowercase());
        let sql = format!("SELECT {KEY_COLUMNS} FROM llmux_keys WHERE key_hash = {m}");
        let row: Option<KeyRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(KeyRecord::try_from).transpose()
    }

    /// Change a key's settings; returns the updated key. New metadata is checked as in
    /// [`Store::create_key`].
    pub async fn update_key(&self, key_id: &str, update: KeyUpdate) -> Result<KeyRecord> {
        if let Some(m) = &update.metadata {
            crate::report::check_key_metadata(m)?;
        }
        let user = update.user_id.as_ref().and_then(|u| u.as_deref());
        let team = update.team_id.as_ref().and_then(|t| t.as_deref());
        self.check_owner(user, team).await?;
        let now = now_ms();
        let mut c = Cols::default();
        if let Some(v) = update.alias {
            c.add("key_alias", v);
        }
        if let Some(v) = update.user_id {
            c.add("user_id", v);
        }
        if let Some(v) = update.team_id {
            c.add("team_id", v);
        }
        c.limits_update(&update.limits);
        if let Some(v) = &update.model_aliases {
            c.add("model_aliases", json_text(v));
        }
        c.budget_update(&update.budget, now)?;
        if let Some(v) = &update.metadata {
            c.add("metadata", json_text(v));
        }
        if let Some(v) = update.expires_at_ms {
            c.add("expires_at_ms", v);
        }
        if let Some(v) = update.blocked {
            c.add("blocked", v);
        }
        c.add("updated_at_ms", now);
        let sql = c.update_sql("llmux_keys", "key_id", key_id);
        let n = self
            .db
            .execute(&sql, c.args)
            .await
            .map_err(alias_conflict)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("key {key_id}")));
        }
        self.get_key(key_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("key {key_id}")))
    }

    /// Delete a key. Returns whether it existed. Its spend-log rows stay.
    pub async fn delete_key(&self, key_id: &str) -> Result<bool> {
        let mut a = Args::default();
        let m = a.push(key_id);
        let n = self
            .db
            .execute(&format!("DELETE FROM llmux_keys WHERE key_id = {m}"), a)
            .await?;
        if n > 0 {
            tracing::info!(key_id, "virtual key deleted");
        }
        Ok(n > 0)
    }

    /// Replace a key's secret, keeping its id, settings and spend. The old clear key stops
    /// working at once; the new one is returned once.
    pub async fn regenerate_key(&self, key_id: &str) -> Result<GeneratedKey> {
        let key = generate_key();
        let mut c = Cols::default();
        c.add("key_hash", key.hash())
            .add("key_prefix", key.display())
            .add("updated_at_ms", now_ms());
        let sql = c.update_sql("llmux_keys", "key_id", key_id);
        if self.db.execute(&sql, c.args).await? == 0 {
            return Err(StoreError::NotFound(format!("key {key_id}")));
        }
        let record = self
            .get_key(key_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("key {key_id}")))?;
        tracing::info!(key_id, key = %record.key_prefix, "virtual key regenerated");
        Ok(GeneratedKey { key, record })
    }

    /// Keys matching `filter`, oldest first.
    pub async fn list_keys(&self, filter: &KeyFilter, page: Page) -> Result<Paged<KeyRecord>> {
        let mut a = Args::default();
        let mut conds = Vec::new();
        if let Some(u) = &filter.user_id {
            conds.push(format!("user_id = {}", a.push(u.as_str())));
        }
        if let Some(t) = &filter.team_id {
            conds.push(format!("team_id = {}", a.push(t.as_str())));
        }
        let r#where = where_clause(&conds);
        let count_args = Args(a.0.clone());
        let total: Option<CountRow> = self
            .db
            .fetch_optional(
                &format!("SELECT COUNT(*) AS n FROM llmux_keys{where}"),
                count_args,
            )
            .await?;
        let lim = a.push(page.clamped_limit());
        let off = a.push(page.offset_i64());
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM llmux_keys{where} ORDER BY created_at_ms, key_id \
             LIMIT {lim} OFFSET {off}"
        );
        let rows: Vec<KeyRow> = self.db.fetch_all(&sql, a).await?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(KeyRecord::try_from)
                .collect::<Result<_>>()?,
            total: total.map_or(0, |r| to_u64(r.n)),
        })
    }

    // ---------------------------------------------------------------- users

    /// Create a user. Fails with [`StoreError::Conflict`] if the id is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<User> {
        if new.user_id.is_empty() {
            return Err(StoreError::Invalid("user_id cannot be empty".into()));
        }
        let now = now_ms();
        let mut c = Cols::default();
        c.add("user_id", new.user_id.clone())
            .add("user_alias", new.alias)
            .add("user_email", new.email)
            .add("user_role", new.role)
            .limits(&new.limits)
            .budget(&new.budget, now)?
            .add("spend_nano", 0i64)
            .add("metadata", json_text(&new.metadata))
            .add("blocked", new.blocked)
            .add("created_at_ms", now)
            .add("updated_at_ms", now);
        let sql = c.insert_sql("llmux_users");
        self.db
            .execute(&sql, c.args)
            .await
            .map_err(|e| conflict_as(e, format!("user {:?}", new.user_id)))?;
        self.get_user(&new.user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {:?}", new.user_id)))
    }

    /// The user with this id.
    pub async fn get_user(&self, user_id: &str) -> Result<Option<User>> {
        let mut a = Args::default();
        let m = a.push(user_id);
        let sql = format!("SELECT {USER_COLUMNS} FROM llmux_users WHERE user_id = {m}");
        let row: Option<UserRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(User::try_from).transpose()
    }

    /// Change a user; returns the updated user.
    pub async fn update_user(&self, user_id: &str, update: UserUpdate) -> Result<User> {
        let now = now_ms();
        let mut c = Cols::default();
        if let Some(v) = update.alias {
            c.add("user_alias", v);
        }
        if let Some(v) = update.email {
            c.add("user_email", v);
        }
        if let Some(v) = update.role {
            c.add("user_role", v);
        }
        c.limits_update(&update.limits);
        c.budget_update(&update.budget, now)?;
        if let Some(v) = &update.metadata {
            c.add("metadata", json_text(v));
        }
        if let Some(v) = update.blocked {
            c.add("blocked", v);
        }
        c.add("updated_at_ms", now);
        let sql = c.update_sql("llmux_users", "user_id", user_id);
        if self.db.execute(&sql, c.args).await? == 0 {
            return Err(StoreError::NotFound(format!("user {user_id:?}")));
        }
        self.get_user(user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user_id:?}")))
    }

    /// Delete a user, their memberships and their keys (one transaction). Returns whether
    /// the user existed. Spend-log rows stay.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        delete_where(&mut tx, "llmux_keys", "user_id", user_id).await?;
        delete_where(&mut tx, "llmux_team_members", "user_id", user_id).await?;
        let n = delete_where(&mut tx, "llmux_users", "user_id", user_id).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Users, by id.
    pub async fn list_users(&self, page: Page) -> Result<Paged<User>> {
        let total: Option<CountRow> = self
            .db
            .fetch_optional("SELECT COUNT(*) AS n FROM llmux_users", Args::default())
            .await?;
        let mut a = Args::default();
        let lim = a.push(page.clamped_limit());
        let off = a.push(page.offset_i64());
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM llmux_users ORDER BY user_id LIMIT {lim} OFFSET {off}"
        );
        let rows: Vec<UserRow> = self.db.fetch_all(&sql, a).await?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(User::try_from)
                .collect::<Result<_>>()?,
            total: total.map_or(0, |r| to_u64(r.n)),
        })
    }

    // ---------------------------------------------------------------- teams

    /// Create a team (with a generated `team_…` id unless one is given).
    pub async fn create_team(&self, new: NewTeam) -> Result<Team> {
        let team_id = match new.team_id {
            Some(id) if id.is_empty() => {
                return Err(StoreError::Invalid("team_id cannot be empty".into()));
            }
            Some(id) => id,
            None => random_id("team_"),
        };
        let now = now_ms();
        let mut c = Cols::default();
        c.add("team_id", team_id.clone())
            .add("team_alias", new.alias)
            .limits(&new.limits)
            .budget(&new.budget, now)?
            .add("spend_nano", 0i64)
            .add("metadata", json_text(&new.metadata))
            .add("blocked", new.blocked)
            .add("created_at_ms", now)
            .add("updated_at_ms", now);
        let sql = c.insert_sql("llmux_teams");
        self.db
            .execute(&sql, c.args)
            .await
            .map_err(|e| conflict_as(e, format!("team {team_id:?}")))?;
        self.get_team(&team_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("team {team_id:?}")))
    }

    /// The team with this id.
    pub async fn get_team(&self, team_id: &str) -> Result<Option<Team>> {
        let mut a = Args::default();
        let m = a.push(team_id);
        let sql = format!("SELECT {TEAM_COLUMNS} FROM llmux_teams WHERE team_id = {m}");
        let row: Option<TeamRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(Team::try_from).transpose()
    }

    /// Change a team; returns the updated team.
    pub async fn update_team(&self, team_id: &str, update: TeamUpdate) -> Result<Team> {
        let now = now_ms();
        let mut c = Cols::default();
        if let Some(v) = update.alias {
            c.add("team_alias", v);
        }
        c.limits_update(&update.limits);
        c.budget_update(&update.budget, now)?;
        if let Some(v) = &update.metadata {
            c.add("metadata", json_text(v));
        }
        if let Some(v) = update.blocked {
            c.add("blocked", v);
        }
        c.add("updated_at_ms", now);
        let sql = c.update_sql("llmux_teams", "team_id", team_id);
        if self.db.execute(&sql, c.args).await? == 0 {
            return Err(StoreError::NotFound(format!("team {team_id:?}")));
        }
        self.get_team(team_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("team {team_id:?}")))
    }

    /// Delete a team, its memberships and its keys (one transaction). Returns whether the
    /// team existed. Spend-log rows stay.
    pub async fn delete_team(&self, team_id: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        delete_where(&mut tx, "llmux_keys", "team_id", team_id).await?;
        delete_where(&mut tx, "llmux_team_members", "team_id", team_id).await?;
        let n = delete_where(&mut tx, "llmux_teams", "team_id", team_id).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Teams, by id.
    pub async fn list_teams(&self, page: Page) -> Result<Paged<Team>> {
        let total: Option<CountRow> = self
            .db
            .fetch_optional("SELECT COUNT(*) AS n FROM llmux_teams", Args::default())
            .await?;
        let mut a = Args::default();
        let lim = a.push(page.clamped_limit());
        let off = a.push(page.offset_i64());
        let sql = format!(
            "SELECT {TEAM_COLUMNS} FROM llmux_teams ORDER BY team_id LIMIT {lim} OFFSET {off}"
        );
        let rows: Vec<TeamRow> = self.db.fetch_all(&sql, a).await?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(Team::try_from)
                .collect::<Result<_>>()?,
            total: total.map_or(0, |r| to_u64(r.n)),
        })
    }

    /// Add `user_id` to `team_id` with `role`, or change the role of an existing member.
    /// Both must exist.
    pub async fn add_team_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: TeamRole,
    ) -> Result<TeamMember> {
        self.check_owner(Some(user_id), Some(team_id)).await?;
        let mut a = Args::default();
        let (t, u, r, at) = (
            a.push(team_id),
            a.push(user_id),
            a.push(role.as_str()),
            a.push(now_ms()),
        );
        let sql = format!(
            "INSERT INTO llmux_team_members (team_id, user_id, role, added_at_ms) \
             VALUES ({t}, {u}, {r}, {at}) \
             ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role"
        );
        self.db.execute(&sql, a).await?;
        self.team_members(team_id)
            .await?
            .into_iter()
            .find(|m| m.user_id == user_id)
            .ok_or_else(|| StoreError::NotFound(format!("member {user_id:?} of {team_id:?}")))
    }

    /// Remove a member. Returns whether they were one.
    pub async fn remove_team_member(&self, team_id: &str, user_id: &str) -> Result<bool> {
        let mut a = Args::default();
        let (t, u) = (a.push(team_id), a.push(user_id));
        let sql = format!("DELETE FROM llmux_team_members WHERE team_id = {t} AND user_id = {u}");
        Ok(self.db.execute(&sql, a).await? > 0)
    }

    /// A team's members, by user id.
    pub async fn team_members(&self, team_id: &str) -> Result<Vec<TeamMember>> {
        self.members_where("team_id", team_id).await
    }

    /// The teams a user belongs to.
    pub async fn user_teams(&self, user_id: &str) -> Result<Vec<TeamMember>> {
        self.members_where("user_id", user_id).await
    }

    async fn members_where(&self, col: &str, v: &str) -> Result<Vec<TeamMember>> {
        let mut a = Args::default();
        let m = a.push(v);
        let sql = format!(
            "SELECT team_id, user_id, role, added_at_ms FROM llmux_team_members \
             WHERE {col} = {m} ORDER BY team_id, user_id"
        );
        let rows: Vec<MemberRow> = self.db.fetch_all(&sql, a).await?;
        rows.into_iter().map(TeamMember::try_from).collect()
    }
}

pub(crate) fn where_clause(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

async fn delete_where(tx: &mut Tx, table: &str, col: &str, v: &str) -> Result<u64> {
    let mut a = Args::default();
    let m = a.push(v);
    tx.execute(&format!("DELETE FROM {table} WHERE {col} = {m}"), a)
        .await
}

fn alias_conflict(e: StoreError) -> StoreError {
    conflict_as(e, "key alias or key hash".to_owned())
}

fn conflict_as(e: StoreError, what: String) -> StoreError {
    match e {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        other => other,
    }
}
