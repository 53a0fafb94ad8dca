//! The admin API (LiteLLM's shapes, close enough for its clients): keys, users, teams,
//! spend logs and spend reports. Master key only, or a virtual key whose metadata says
//! `{"role": "admin"}`; any other key gets 403 (except reading its own `/key/info`).
//! Money is USD (floats) on the wire and nano-USD in the store. Every change clears the key
//! cache, so it applies to the next call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use llmux_core::{CallRecord, Error, ErrorKind, JsonObject};
use llmux_store::{
    Budget, BudgetSettings, BudgetUpdate, Day, GroupBy, KeyFilter, KeyRecord, KeyUpdate, Limits,
    LimitsUpdate, LogPage, NewKey, NewTeam, NewUser, Page, ReportQuery, SpendLogFilter, Store,
    StoreError, Team, TeamRole, TeamUpdate, User, UserUpdate,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::access::{Access, Principal};
use crate::error::ApiError;
use crate::handlers::{Shared, authenticate, json_response, parse, request_id, with_id};

/// The admin routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/key/generate", post(key_generate))
        .route("/key/info", get(key_info))
        .route("/key/update", post(key_update))
        .route("/key/delete", post(key_delete))
        .route("/key/regenerate", post(key_regenerate))
        .route("/key/list", get(key_list))
        .route("/user/new", post(user_new))
        .route("/user/info", get(user_info))
        .route("/user/update", post(user_update))
        .route("/user/delete", post(user_delete))
        .route("/team/new", post(team_new))
        .route("/team/info", get(team_info))
        .route("/team/update", post(team_update))
        .route("/team/delete", post(team_delete))
        .route("/team/member_add", post(team_member_add))
        .route("/team/member_delete", post(team_member_delete))
        .route("/spend/logs", get(spend_logs))
        .route("/global/spend/report", get(spend_report))
}

type Body = Result<Bytes, BytesRejection>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// An admin request's context: the access layer and who asks.
struct Cx {
    access: Arc<Access>,
    principal: Principal,
}

impl Cx {
    fn store(&self) -> &Store {
        &self.access.store
    }

    /// Refuse anyone but an admin.
    fn require_admin(&self) -> Result<(), Error> {
        match &self.principal {
            Principal::Master => Ok(()),
            // An open gateway (no master key) has no admin: anyone could mint keys.
            Principal::Open => Err(Error::new(
                ErrorKind::Permission,
                "The admin API is disabled until a master key is set (server.master_key or LLMUX_MASTER_KEY).",
            )
            .with_code("admin_disabled")),
            Principal::Key(e) if e.is_admin() => Ok(()),
            Principal::Key(_) => Err(forbidden()),
        }
    }

    /// The calling key's id, when a virtual key calls.
    fn own_key(&self) -> Option<&str> {
        match &self.principal {
            Principal::Key(e) => Some(&e.key.key_id),
            _ => None,
        }
    }
}

fn forbidden() -> Error {
    Error::new(
        ErrorKind::Permission,
        "This key may not use the admin API: it needs the master key or a key with metadata {\"role\": \"admin\"}.",
    )
    .with_code("not_admin")
}

async fn context(shared: &Shared, headers: &HeaderMap) -> Result<Cx, Error> {
    let st = shared.load();
    let principal = authenticate(&st, headers).await?;
    let Some(access) = st.access.clone() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            "The admin API needs a database: set settings.database_url.",
        )
        .with_code("store_not_configured"));
    };
    Ok(Cx { access, principal })
}

fn respond(headers: &HeaderMap, r: Result<Value, Error>) -> Response {
    let id = request_id(headers);
    let resp = r
        .and_then(|v| json_response(&v))
        .unwrap_or_else(|e| ApiError(e).into_response());
    with_id(resp, id)
}

fn store_err(e: StoreError) -> Error {
    match e {
        StoreError::NotFound(what) => {
            Error::new(ErrorKind::NotFound, format!("Not found: {what}")).with_code("not_found")
        }
        StoreError::Conflict(what) => {
            Error::bad_request(format!("Already exists: {what}")).with_code("already_exists")
        }
        StoreError::Invalid(why) => Error::bad_request(why),
        other => {
            tracing::error!(error = %other, "admin API: store error");
            Error::internal("The database failed; see the gateway's log.")
        }
    }
}

fn query(p: Params) -> Result<HashMap<String, String>, Error> {
    p.map(|Query(q)| q)
        .map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))
}

// ------------------------------------------------------------------- conversions

fn usd_to_nano(v: f64, field: &'static str) -> Result<i64, Error> {
    if !v.is_finite() || !(0.0..=9.0e9).contains(&v) {
        return Err(
            Error::bad_request(format!("'{field}' must be a non-negative number of USD"))
                .with_param(field),
        );
    }
    Ok((v * 1e9).round() as i64)
}

fn opt_usd(v: Option<f64>, field: &'static str) -> Result<Option<i64>, Error> {
    v.map(|v| usd_to_nano(v, field)).transpose()
}

fn opt_opt_usd(v: Option<Option<f64>>, field: &'static str) -> Result<Option<Option<i64>>, Error> {
    v.map(|v| opt_usd(v, field)).transpose()
}

fn usd(nano: i64) -> f64 {
    nano as f64 / 1e9
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn iso(ms: i64) -> String {
    let day = Day::from_unix_ms(ms);
    let s = ms.rem_euclid(86_400_000) / 1000;
    format!("{day}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

fn expiry(duration: &str) -> Result<i64, Error> {
    let d = llmux_store::parse_duration(duration)
        .map_err(|e| Error::bad_request(e.to_string()).with_param("duration"))?;
    Ok(d.after(llmux_store::now_ms()))
}

/// `None` when absent, `Some(None)` when `null`, `Some(Some(v))` otherwise.
fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn budget_json(b: &Budget, out: &mut serde_json::Map<String, Value>) {
    out.insert("spend".into(), json!(usd(b.spend_nano)));
    out.insert("max_budget".into(), json!(b.max_budget_nano.map(usd)));
    out.insert("soft_budget".into(), json!(b.soft_budget_nano.map(usd)));
    out.insert("budget_duration".into(), json!(b.budget_duration));
    out.insert(
        "budget_reset_at".into(),
        json!(b.budget_reset_at_ms.map(iso)),
    );
}

fn limits_json(l: &Limits, out: &mut serde_json::Map<String, Value>) {
    out.insert("models".into(), json!(l.models));
    out.insert("rpm_limit".into(), json!(l.rpm_limit));
    out.insert("tpm_limit".into(), json!(l.tpm_limit));
    out.insert("max_parallel_requests".into(), json!(l.max_parallel));
}

fn key_json(k: &KeyRecord) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("key_id".into(), json!(k.key_id));
    m.insert("token".into(), json!(k.key_id));
    m.insert("key_name".into(), json!(k.key_prefix));
    m.insert("key_alias".into(), json!(k.alias));
    m.insert("user_id".into(), json!(k.user_id));
    m.insert("team_id".into(), json!(k.team_id));
    limits_json(&k.limits, &mut m);
    budget_json(&k.budget, &mut m);
    m.insert("aliases".into(), json!(k.model_aliases));
    m.insert("metadata".into(), Value::Object(k.metadata.clone()));
    m.insert("expires".into(), json!(k.expires_at_ms.map(iso)));
    m.insert("blocked".into(), json!(k.blocked));
    m.insert("created_at".into(), json!(iso(k.created_at_ms)));
    m.insert("updated_at".into(), json!(iso(k.updated_at_ms)));
    Value::Object(m)
}

fn user_json(u: &User) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("user_id".into(), json!(u.user_id));
    m.insert("user_alias".into(), json!(u.alias));
    m.insert("user_email".into(), json!(u.email));
    m.insert("user_role".into(), json!(u.role));
    limits_json(&u.limits, &mut m);
    budget_json(&u.budget, &mut m);
    m.insert("metadata".into(), Value::Object(u.metadata.clone()));
    m.insert("blocked".into(), json!(u.blocked));
    m.insert("created_at".into(), json!(iso(u.created_at_ms)));
    m.insert("updated_at".into(), json!(iso(u.updated_at_ms)));
    Value::Object(m)
}

fn team_json(t: &Team, members: &[llmux_store::TeamMember]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("team_id".into(), json!(t.team_id));
    m.insert("team_alias".into(), json!(t.alias));
    limits_json(&t.limits, &mut m);
    budget_json(&t.budget, &mut m);
    m.insert("metadata".into(), Value::Object(t.metadata.clone()));
    m.insert("blocked".into(), json!(t.blocked));
    m.insert(
        "members_with_roles".into(),
        members
            .iter()
            .map(|m| json!({"user_id": m.user_id, "role": m.role.as_str()}))
            .collect(),
    );
    m.insert("created_at".into(), json!(iso(t.created_at_ms)));
    m.insert("updated_at".into(), json!(iso(t.updated_at_ms)));
    Value::Object(m)
}

fn log_json(r: &CallRecord) -> Value {
    json!({
        "request_id": r.request_id,
        "call_type": r.operation,
        "api_key": r.key,
        "user": r.user,
        "team_id": r.team,
        "end_user": r.end_user,
        "model": r.model_group,
        "model_group": r.model_group,
        "model_id": r.deployment,
        "custom_llm_provider": r.provider,
        "provider_model": r.provider_model,
        "spend": r.cost_nano_usd.map(usd),
        "spend_nano": r.cost_nano_usd,
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
        "startTime": iso(i64::try_from(r.started_at_ms).unwrap_or(i64::MAX)),
        "latency_ms": r.latency_us as f64 / 1000.0,
        "status": r.status,
        "error_kind": r.error_kind.map(|k| k.as_str()),
        "request_tags": r.tags,
        "session_id": r.session_id,
        "metadata": r.request_metadata.as_deref(),
    })
}

// ------------------------------------------------------------------- requests

#[derive(Debug, Default, Deserialize)]
struct LimitsReq {
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double")]
    rpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    tpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    max_parallel_requests: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double")]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double")]
    soft_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "double")]
    budget_duration: Option<Option<String>>,
    #[serde(default)]
    metadata: Option<JsonObject>,
    #[serde(default)]
    blocked: Option<bool>,
}

/// Refuse fields the endpoint does not know, rather than ignore them.
fn no_unknown(unknown: &BTreeMap<String, Value>) -> Result<(), Error> {
    match unknown.keys().next() {
        Some(k) => Err(Error::bad_request(format!("unknown field '{k}'")).with_param(k.clone())),
        None => Ok(()),
    }
}

impl LimitsReq {
    fn limits(&self) -> Limits {
        Limits {
            models: self.models.clone().unwrap_or_default(),
            rpm_limit: self.rpm_limit.flatten(),
            tpm_limit: self.tpm_limit.flatten(),
            max_parallel: self.max_parallel_requests.flatten(),
        }
    }

    fn budget(&self) -> Result<BudgetSettings, Error> {
        Ok(BudgetSettings {
            max_budget_nano: opt_usd(self.max_budget.flatten(), "max_budget")?,
            soft_budget_nano: opt_usd(self.soft_budget.flatten(), "soft_budget")?,
            budget_duration: self.budget_duration.clone().flatten(),
        })
    }

    fn limits_update(&self) -> LimitsUpdate {
        LimitsUpdate {
            models: self.models.clone(),
            rpm_limit: self.rpm_limit,
            tpm_limit: self.tpm_limit,
            max_parallel: self.max_parallel_requests,
        }
    }

    fn budget_update(&self, spend: Option<f64>) -> Result<BudgetUpdate, Error> {
        Ok(BudgetUpdate {
            max_budget_nano: opt_opt_usd(self.max_budget, "max_budget")?,
            soft_budget_nano: opt_opt_usd(self.soft_budget, "soft_budget")?,
            budget_duration: self.budget_duration.clone(),
            spend_nano: opt_usd(spend, "spend")?,
        })
    }
}

/// Unknown fields are refused ([`no_unknown`]).
#[derive(Debug, Deserialize)]
struct KeyReq {
    /// Update / regenerate: which key (clear key, key id or hash).
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "double")]
    key_alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    team_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    duration: Option<Option<String>>,
    #[serde(default)]
    aliases: Option<BTreeMap<String, String>>,
    #[serde(default)]
    spend: Option<f64>,
    #[serde(flatten)]
    limits: LimitsReq,
    /// Whatever no field took: refused.
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

async fn find_key(store: &Store, r: &str) -> Result<KeyRecord, Error> {
    let found = if r.starts_with(llmux_store::KEY_PREFIX) {
        store.lookup_key(r).await
    } else if r.len() == 64 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        store.lookup_key_hash(&r.to_ascii_lowercase()).await
    } else {
        store.get_key(r).await
    }
    .map_err(store_err)?;
    found.ok_or_else(|| {
        Error::new(ErrorKind::NotFound, "No such key.")
            .with_param("key")
            .with_code("key_not_found")
    })
}

fn generated_json(g: &llmux_store::GeneratedKey) -> Value {
    let mut v = key_json(&g.record);
    v["key"] = json!(g.key.expose());
    v
}

async fn key_generate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: KeyReq = parse(body)?;
        no_unknown(&req.unknown)?;
        if req.key.is_some() {
            return Err(Error::bad_request(
                "choosing the key's value is not supported: omit 'key'",
            )
            .with_param("key"));
        }
        let new = NewKey {
            alias: req.key_alias.flatten(),
            user_id: req.user_id.flatten(),
            team_id: req.team_id.flatten(),
            limits: req.limits.limits(),
            model_aliases: req.aliases.unwrap_or_default(),
            budget: req.limits.budget()?,
            metadata: req.limits.metadata.clone().unwrap_or_default(),
            expires_at_ms: req.duration.flatten().as_deref().map(expiry).transpose()?,
            blocked: req.limits.blocked.unwrap_or(false),
        };
        let g = cx.store().create_key(new).await.map_err(store_err)?;
        cx.access.invalidate();
        Ok(generated_json(&g))
    }
    .await;
    respond(&headers, r)
}

async fn key_info(State(shared): State<Arc<Shared>>, headers: HeaderMap, q: Params) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        let q = query(q)?;
        let k = match (q.get("key"), cx.own_key()) {
            (Some(r), _) => find_key(cx.store(), r).await?,
            (None, Some(own)) => find_key(cx.store(), own).await?,
            (None, None) => {
                return Err(Error::bad_request("'key' is required").with_param("key"));
            }
        };
        if cx.own_key() != Some(k.key_id.as_str()) {
            cx.require_admin()?;
        }
        Ok(json!({"key": k.key_id, "info": key_json(&k)}))
    }
    .await;
    respond(&headers, r)
}

/// An admin key may not change itself (it could raise its own limits).
fn not_self(cx: &Cx, k: &KeyRecord) -> Result<(), Error> {
    if cx.own_key() == Some(k.key_id.as_str()) {
        return Err(Error::new(
            ErrorKind::Permission,
            "A key cannot change, regenerate or delete itself; use the master key.",
        )
        .with_code("not_admin"));
    }
    Ok(())
}

async fn key_update(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: KeyReq = parse(body)?;
        no_unknown(&req.unknown)?;
        let Some(r) = &req.key else {
            return Err(Error::bad_request("'key' is required").with_param("key"));
        };
        let k = find_key(cx.store(), r).await?;
        not_self(&cx, &k)?;
        let update = KeyUpdate {
            alias: req.key_alias.clone(),
            user_id: req.user_id.clone(),
            team_id: req.team_id.clone(),
            limits: req.limits.limits_update(),
            model_aliases: req.aliases.clone(),
            budget: req.limits.budget_update(req.spend)?,
            metadata: req.limits.metadata.clone(),
            expires_at_ms: match &req.duration {
                None => None,
                Some(None) => Some(None),
                Some(Some(d)) => Some(Some(expiry(d)?)),
            },
            blocked: req.limits.blocked,
        };
        let k = cx
            .store()
            .update_key(&k.key_id, update)
            .await
            .map_err(store_err)?;
        cx.access.invalidate();
        Ok(key_json(&k))
    }
    .await;
    respond(&headers, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysReq {
    keys: Vec<String>,
}

async fn key_delete(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: KeysReq = parse(body)?;
        let mut found = Vec::new();
        for r in &req.keys {
            let k = find_key(cx.store(), r).await?;
            not_self(&cx, &k)?;
            found.push(k.key_id);
        }
        for id in &found {
            cx.store().delete_key(id).await.map_err(store_err)?;
        }
        cx.access.invalidate();
        Ok(json!({"deleted_keys": found}))
    }
    .await;
    respond(&headers, r)
}

async fn key_regenerate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: KeyReq = parse(body)?;
        no_unknown(&req.unknown)?;
        let Some(r) = &req.key else {
            return Err(Error::bad_request("'key' is required").with_param("key"));
        };
        let k = find_key(cx.store(), r).await?;
        not_self(&cx, &k)?;
        let g = cx
            .store()
            .regenerate_key(&k.key_id)
            .await
            .map_err(store_err)?;
        cx.access.invalidate();
        Ok(generated_json(&g))
    }
    .await;
    respond(&headers, r)
}

fn page(q: &HashMap<String, String>) -> Result<(u64, u32), Error> {
    let num = |name: &'static str, default: u64| -> Result<u64, Error> {
        q.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| {
                Error::bad_request(format!("'{name}' must be a number")).with_param(name)
            })
        })
    };
    let page = num("page", 1)?.max(1);
    let size = u32::try_from(num("size", 100)?.clamp(1, 1000)).unwrap_or(100);
    Ok((page, size))
}

async fn key_list(State(shared): State<Arc<Shared>>, headers: HeaderMap, q: Params) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let q = query(q)?;
        let (p, size) = page(&q)?;
        let filter = KeyFilter {
            user_id: q.get("user_id").cloned(),
            team_id: q.get("team_id").cloned(),
        };
        let got = cx
            .store()
            .list_keys(&filter, Page::new((p - 1) * u64::from(size), size))
            .await
            .map_err(store_err)?;
        Ok(json!({
            "keys": got.items.iter().map(key_json).collect::<Vec<_>>(),
            "total_count": got.total,
            "current_page": p,
            "total_pages": got.total.div_ceil(u64::from(size)),
        }))
    }
    .await;
    respond(&headers, r)
}

// ------------------------------------------------------------------- users

/// Unknown fields are refused ([`no_unknown`]).
#[derive(Debug, Deserialize)]
struct UserReq {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "double")]
    user_alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    user_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double")]
    user_role: Option<Option<String>>,
    #[serde(default)]
    spend: Option<f64>,
    #[serde(flatten)]
    limits: LimitsReq,
    /// Whatever no field took: refused.
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

async fn user_new(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: UserReq = parse(body)?;
        no_unknown(&req.unknown)?;
        let new = NewUser {
            user_id: req
                .user_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            alias: req.user_alias.clone().flatten(),
            email: req.user_email.clone().flatten(),
            role: req.user_role.clone().flatten(),
            limits: req.limits.limits(),
            budget: req.limits.budget()?,
            metadata: req.limits.metadata.clone().unwrap_or_default(),
            blocked: req.limits.blocked.unwrap_or(false),
        };
        let u = cx.store().create_user(new).await.map_err(store_err)?;
        Ok(user_json(&u))
    }
    .await;
    respond(&headers, r)
}

fn required<'a>(q: &'a HashMap<String, String>, name: &'static str) -> Result<&'a str, Error> {
    q.get(name)
        .map(String::as_str)
        .ok_or_else(|| Error::bad_request(format!("'{name}' is required")).with_param(name))
}

fn not_found(what: &str) -> Error {
    Error::new(ErrorKind::NotFound, format!("No such {what}.")).with_code("not_found")
}

async fn user_info(State(shared): State<Arc<Shared>>, headers: HeaderMap, q: Params) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let q = query(q)?;
        let id = required(&q, "user_id")?;
        let u = cx
            .store()
            .get_user(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found("user"))?;
        let keys = cx
            .store()
            .list_keys(
                &KeyFilter {
                    user_id: Some(id.to_owned()),
                    team_id: None,
                },
                Page::new(0, 1000),
            )
            .await
            .map_err(store_err)?;
        let teams = cx.store().user_teams(id).await.map_err(store_err)?;
        Ok(json!({
            "user_id": id,
            "user_info": user_json(&u),
            "keys": keys.items.iter().map(key_json).collect::<Vec<_>>(),
            "teams": teams.iter().map(|m| json!({"team_id": m.team_id, "role": m.role.as_str()})).collect::<Vec<_>>(),
        }))
    }
    .await;
    respond(&headers, r)
}

async fn user_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: UserReq = parse(body)?;
        no_unknown(&req.unknown)?;
        let Some(id) = &req.user_id else {
            return Err(Error::bad_request("'user_id' is required").with_param("user_id"));
        };
        let update = UserUpdate {
            alias: req.user_alias.clone(),
            email: req.user_email.clone(),
            role: req.user_role.clone(),
            limits: req.limits.limits_update(),
            budget: req.limits.budget_update(req.spend)?,
            metadata: req.limits.metadata.clone(),
            blocked: req.limits.blocked,
        };
        let u = cx
            .store()
            .update_user(id, update)
            .await
            .map_err(store_err)?;
        cx.access.invalidate();
        Ok(user_json(&u))
    }
    .await;
    respond(&headers, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersReq {
    user_ids: Vec<String>,
}

async fn user_delete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: UsersReq = parse(body)?;
        let mut deleted = Vec::new();
        for id in &req.user_ids {
            if cx.store().delete_user(id).await.map_err(store_err)? {
                deleted.push(id.clone());
            }
        }
        cx.access.invalidate();
        Ok(json!({"deleted_users": deleted}))
    }
    .await;
    respond(&headers, r)
}

// ------------------------------------------------------------------- teams

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberReq {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

impl MemberReq {
    fn role(&self) -> Result<TeamRole, Error> {
        match self.role.as_deref() {
            None | Some("user") => Ok(TeamRole::User),
            Some("admin") => Ok(TeamRole::Admin),
            Some(other) => Err(Error::bad_request(format!(
                "unknown team role '{other}': expected 'admin' or 'user'"
            ))
            .with_param("role")),
        }
    }
}

/// Unknown fields are refused ([`no_unknown`]).
#[derive(Debug, Deserialize)]
struct TeamReq {
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default, deserialize_with = "double")]
    team_alias: Option<Option<String>>,
    #[serde(default)]
    members_with_roles: Vec<MemberReq>,
    #[serde(default)]
    spend: Option<f64>,
    #[serde(flatten)]
    limits: LimitsReq,
    /// Whatever no field took: refused.
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

async fn team_view(store: &Store, t: &Team) -> Result<Value, Error> {
    let members = store.team_members(&t.team_id).await.map_err(store_err)?;
    Ok(team_json(t, &members))
}

async fn team_new(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: TeamReq = parse(body)?;
        no_unknown(&req.unknown)?;
        let roles = req
            .members_with_roles
            .iter()
            .map(MemberReq::role)
            .collect::<Result<Vec<_>, _>>()?;
        let new = NewTeam {
            team_id: req.team_id.clone(),
            alias: req.team_alias.clone().flatten(),
            limits: req.limits.limits(),
            budget: req.limits.budget()?,
            metadata: req.limits.metadata.clone().unwrap_or_default(),
            blocked: req.limits.blocked.unwrap_or(false),
        };
        let t = cx.store().create_team(new).await.map_err(store_err)?;
        for (m, role) in req.members_with_roles.iter().zip(roles) {
            cx.store()
                .add_team_member(&t.team_id, &m.user_id, role)
                .await
                .map_err(store_err)?;
        }
        team_view(cx.store(), &t).await
    }
    .await;
    respond(&headers, r)
}

async fn team_info(State(shared): State<Arc<Shared>>, headers: HeaderMap, q: Params) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let q = query(q)?;
        let id = required(&q, "team_id")?;
        let t = cx
            .store()
            .get_team(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found("team"))?;
        let keys = cx
            .store()
            .list_keys(
                &KeyFilter {
                    user_id: None,
                    team_id: Some(id.to_owned()),
                },
                Page::new(0, 1000),
            )
            .await
            .map_err(store_err)?;
        Ok(json!({
            "team_id": id,
            "team_info": team_view(cx.store(), &t).await?,
            "keys": keys.items.iter().map(key_json).collect::<Vec<_>>(),
        }))
    }
    .await;
    respond(&headers, r)
}

async fn team_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: TeamReq = parse(body)?;
        no_unknown(&req.unknown)?;
        let Some(id) = &req.team_id else {
            return Err(Error::bad_request("'team_id' is required").with_param("team_id"));
        };
        if !req.members_with_roles.is_empty() {
            return Err(Error::bad_request(
                "use /team/member_add and /team/member_delete to change members",
            )
            .with_param("members_with_roles"));
        }
        let update = TeamUpdate {
            alias: req.team_alias.clone(),
            limits: req.limits.limits_update(),
            budget: req.limits.budget_update(req.spend)?,
            metadata: req.limits.metadata.clone(),
            blocked: req.limits.blocked,
        };
        let t = cx
            .store()
            .update_team(id, update)
            .await
            .map_err(store_err)?;
        cx.access.invalidate();
        team_view(cx.store(), &t).await
    }
    .await;
    respond(&headers, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamsReq {
    team_ids: Vec<String>,
}

async fn team_delete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: TeamsReq = parse(body)?;
        let mut deleted = Vec::new();
        for id in &req.team_ids {
            if cx.store().delete_team(id).await.map_err(store_err)? {
                deleted.push(id.clone());
            }
        }
        cx.access.invalidate();
        Ok(json!({"deleted_teams": deleted}))
    }
    .await;
    respond(&headers, r)
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(MemberReq),
    Many(Vec<MemberReq>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberAddReq {
    team_id: String,
    member: OneOrMany,
}

async fn team_member_add(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: MemberAddReq = parse(body)?;
        let members = match req.member {
            OneOrMany::One(m) => vec![m],
            OneOrMany::Many(v) => v,
        };
        for m in &members {
            cx.store()
                .add_team_member(&req.team_id, &m.user_id, m.role()?)
                .await
                .map_err(store_err)?;
        }
        let t = cx
            .store()
            .get_team(&req.team_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| not_found("team"))?;
        team_view(cx.store(), &t).await
    }
    .await;
    respond(&headers, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberDeleteReq {
    team_id: String,
    user_id: String,
}

async fn team_member_delete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let req: MemberDeleteReq = parse(body)?;
        if !cx
            .store()
            .remove_team_member(&req.team_id, &req.user_id)
            .await
            .map_err(store_err)?
        {
            return Err(not_found("team member"));
        }
        Ok(json!({"team_id": req.team_id, "user_id": req.user_id, "removed": true}))
    }
    .await;
    respond(&headers, r)
}

// ------------------------------------------------------------------- spend

fn day(q: &HashMap<String, String>, name: &'static str) -> Result<Option<Day>, Error> {
    q.get(name)
        .map(|v| {
            v.parse::<Day>().map_err(|_| {
                Error::bad_request(format!("'{name}' must be a date, YYYY-MM-DD")).with_param(name)
            })
        })
        .transpose()
}

async fn spend_logs(State(shared): State<Arc<Shared>>, headers: HeaderMap, q: Params) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let q = query(q)?;
        let key_id = match q.get("api_key").or_else(|| q.get("key")) {
            Some(r) => Some(find_key(cx.store(), r).await?.key_id),
            None => None,
        };
        let filter = SpendLogFilter {
            key_id,
            team_id: q.get("team_id").cloned(),
            user_id: q.get("user_id").cloned(),
            model_group: q.get("model").cloned(),
            provider: None,
            from_ms: day(&q, "start_date")?.map(Day::start_ms),
            to_ms: day(&q, "end_date")?.map(|d| d.plus_days(1).start_ms()),
            errors_only: false,
        };
        let limit = match q.get("limit") {
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| Error::bad_request("'limit' must be a number").with_param("limit"))?,
            None => 100,
        };
        let got = cx
            .store()
            .spend_logs(
                &filter,
                &LogPage {
                    limit,
                    cursor: q.get("cursor").cloned(),
                },
            )
            .await
            .map_err(store_err)?;
        Ok(json!({
            "data": got.records.iter().map(log_json).collect::<Vec<_>>(),
            "next_cursor": got.next_cursor,
        }))
    }
    .await;
    respond(&headers, r)
}

async fn spend_report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    q: Params,
) -> Response {
    let r = async {
        let cx = context(&shared, &headers).await?;
        cx.require_admin()?;
        let q = query(q)?;
        let group_by = match q.get("group_by").map_or("day", String::as_str) {
            "day" => GroupBy::Day,
            "model" => GroupBy::Model,
            "key" | "api_key" => GroupBy::Key,
            "team" => GroupBy::Team,
            "user" => GroupBy::User,
            "provider" => GroupBy::Provider,
            "tag" => GroupBy::Tag,
            other => {
                return Err(Error::bad_request(format!(
                    "unknown group_by '{other}': expected day, model, key, team, user, provider or tag"
                ))
                .with_param("group_by"));
            }
        };
        let to = day(&q, "end_date")?.unwrap_or_else(Day::today);
        let from = day(&q, "start_date")?.unwrap_or_else(|| to.plus_days(-30));
        let mut rq = ReportQuery::new(group_by, from, to);
        rq.key_id = match q.get("api_key").or_else(|| q.get("key")) {
            Some(r) => Some(find_key(cx.store(), r).await?.key_id),
            None => None,
        };
        rq.team_id = q.get("team_id").cloned();
        rq.user_id = q.get("user_id").cloned();
        let rows = cx.store().spend_report(&rq).await.map_err(store_err)?;
        let group_name = q.get("group_by").map_or("day", String::as_str).to_owned();
        Ok(json!({
            "group_by": group_name,
            "start_date": from.to_string(),
            "end_date": to.to_string(),
            "data": rows.iter().map(|r| json!({
                "group": r.group,
                "spend": usd(r.spend_nano),
                "spend_nano": r.spend_nano,
                "calls": r.calls,
                "errors": r.errors,
                "unpriced_calls": r.unpriced_calls,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "total_tokens": r.prompt_tokens + r.completion_tokens,
            })).collect::<Vec<_>>(),
        }))
    }
    .await;
    respond(&headers, r)
}
