//! Virtual keys end to end: the real gateway with a store (SQLite in a temp file, and once
//! PostgreSQL), the admin API, access checks (models, rpm, budgets, blocked and deleted
//! keys), spend logs, and a graceful shutdown that loses no spend row.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llmux_config::Config;
use llmux_e2e::{MASTER_KEY, UPSTREAM_KEY, config_yaml};
use llmux_server::RunningGateway;
use llmux_store::{KeyUpdate, LogPage, SpendLogFilter, Store};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::{Value, json};

/// Every test body is bounded.
const BOUND: Duration = Duration::from_secs(60);

/// A gateway with a store in front of the OpenAI mock.
struct Gw {
    openai: OpenAiMock,
    gateway: Option<RunningGateway>,
    http: reqwest::Client,
    store: Store,
    dir: Option<std::path::PathBuf>,
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "llmux-keys-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

impl Gw {
    /// SQLite in a fresh temp file.
    async fn sqlite(ttl: Duration) -> Self {
        let dir = temp_dir();
        let url = format!("sqlite://{}", dir.join("llmux.db").display());
        let store = Store::connect(&url).await.expect("sqlite store");
        Self::start(store, ttl, Some(dir)).await
    }

    async fn start(store: Store, ttl: Duration, dir: Option<std::path::PathBuf>) -> Self {
        llmux::link_providers();
        let openai = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
        let env = |k: &str| (k == "E2E_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
        let config = Config::from_str(&config_yaml(&openai.base_url()), "yaml", "e2e.yaml", &env)
            .expect("valid config");
        let settings = llmux_router::RouterSettings {
            num_retries: 0,
            allowed_fails: None,
            cooldown_time: Duration::ZERO,
            retry_after_cap: Duration::ZERO,
            stream_resume: false,
            ..llmux_router::RouterSettings::default()
        };
        let gateway = llmux::gateway()
            .config(config)
            .router_settings(settings)
            .observability(false)
            .store(store.clone())
            .key_cache_ttl(ttl)
            .build()
            .expect("gateway builds")
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("gateway starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            openai,
            gateway: Some(gateway),
            http,
            store,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.as_ref().expect("running").url())
    }

    async fn post(&self, auth: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(auth)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, auth: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(auth)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn chat(&self, key: &str, model: &str) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "the quick brown fox"}]}))
            .send()
            .await
            .expect("request")
    }

    /// A new key from the master key; returns (clear key, key id).
    async fn generate(&self, body: Value) -> (String, String) {
        let (status, v) = self.post(MASTER_KEY, "/key/generate", &body).await;
        assert_eq!(status, 200, "{v}");
        let key = v["key"].as_str().expect("key").to_owned();
        assert!(key.starts_with("sk-"), "{v}");
        (key, v["key_id"].as_str().expect("key_id").to_owned())
    }

    /// Poll the spend log (bounded) until `total` rows of `key_id` are there; returns the
    /// successful ones.
    async fn wait_for_logs(&self, key_id: &str, total: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = self
                .get(
                    MASTER_KEY,
                    &format!("/spend/logs?api_key={key_id}&limit=1000"),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            let all = v["data"].as_array().expect("data");
            if all.len() >= total || Instant::now() > deadline {
                assert_eq!(all.len(), total, "{v}");
                return all.iter().filter(|r| r["status"] == 200).cloned().collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The flow every backend must pass: a key from the admin API calls its model, is refused
/// another, hits its rpm limit, and its successful calls are in the spend log with cost.
async fn key_flow(gw: &Gw) {
    let (key, key_id) = gw
        .generate(json!({"models": ["gpt"], "rpm_limit": 2, "key_alias": "flow"}))
        .await;
    let r = gw.chat(&key, "gpt").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llmux-response-cost"], "0.000003");

    let (s, v) = status_and_body(gw.chat(&key, "emb").await).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(code(&v), "model_not_allowed");

    assert_eq!(gw.chat(&key, "gpt").await.status(), 200);
    let r = gw.chat(&key, "gpt").await;
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&after), "{after}");
    let (_, v) = status_and_body(r).await;
    assert_eq!(code(&v), "rate_limit_exceeded");

    let rows = gw.wait_for_logs(&key_id, 4).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["api_key"], key_id.as_str());
        assert_eq!(row["model"], "gpt");
        assert_eq!(row["spend"], json!(0.000003));
        assert_eq!(row["total_tokens"], 8);
    }
}

#[tokio::test]
async fn a_generated_key_is_limited_to_its_models_and_rpm_and_its_calls_are_logged() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::sqlite(Duration::from_secs(5)).await;
        key_flow(&gw).await;
        // The key's spend was counted by the spend writer.
        let (s, v) = gw
            .get(MASTER_KEY, "/global/spend/report?group_by=key")
            .await;
        assert_eq!(s, 200, "{v}");
        let rows = v["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{v}");
        assert_eq!(rows[0]["spend"], json!(0.000006));
        assert_eq!(rows[0]["calls"], 4, "two successes, one 403, one 429: {v}");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_key_over_its_budget_is_refused_after_one_priced_call() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::sqlite(Duration::from_secs(5)).await;
        // One call costs $0.000003: the budget is spent by the first.
        let (key, _) = gw.generate(json!({"max_budget": 0.000001})).await;
        assert_eq!(gw.chat(&key, "gpt").await.status(), 200);
        let (s, v) = status_and_body(gw.chat(&key, "gpt").await).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(code(&v), "budget_exceeded");
        // A key with room left still passes.
        let (other, _) = gw.generate(json!({"max_budget": 1.0})).await;
        assert_eq!(gw.chat(&other, "gpt").await.status(), 200);
        assert_eq!(gw.chat(&other, "gpt").await.status(), 200);
        // Raising the budget through the admin API applies to the next call.
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/key/update",
                &json!({"key": key, "max_budget": 1.0}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(gw.chat(&key, "gpt").await.status(), 200);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn blocked_and_deleted_keys_get_401_and_store_changes_apply_within_the_cache_ttl() {
    tokio::time::timeout(BOUND, async {
        let ttl = Duration::from_millis(400);
        let gw = Gw::sqlite(ttl).await;
        let (a, _) = gw.generate(json!({})).await;
        let (b, b_id) = gw.generate(json!({})).await;
        let (c, c_id) = gw.generate(json!({})).await;
        for k in [&a, &b, &c] {
            assert_eq!(gw.chat(k, "gpt").await.status(), 200);
        }
        // Through the admin API: at once.
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/key/update",
                &json!({"key": a, "blocked": true}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["blocked"], true);
        let (s, v) = status_and_body(gw.chat(&a, "gpt").await).await;
        assert_eq!(s, 401, "{v}");
        let (s, v) = gw
            .post(MASTER_KEY, "/key/delete", &json!({"keys": [b_id]}))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["deleted_keys"], json!([b_id]));
        assert_eq!(gw.chat(&b, "gpt").await.status(), 401);
        // Behind the gateway's back (another gateway, the CLI): within the TTL.
        assert_eq!(gw.chat(&c, "gpt").await.status(), 200);
        let changed = Instant::now();
        gw.store
            .update_key(
                &c_id,
                KeyUpdate {
                    blocked: Some(true),
                    ..KeyUpdate::default()
                },
            )
            .await
            .expect("block in the store");
        loop {
            let s = gw.chat(&c, "gpt").await.status();
            if s == 401 {
                break;
            }
            assert_eq!(s, 200);
            assert!(
                changed.elapsed() < ttl + Duration::from_millis(300),
                "still admitted {:?} after blocking",
                changed.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // An unknown key is refused too.
        assert_eq!(
            gw.chat("sk-not-a-key-at-all-000000", "gpt").await.status(),
            401
        );
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn only_admins_use_the_admin_api_and_a_key_reads_only_itself() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::sqlite(Duration::from_secs(5)).await;
        let (plain, plain_id) = gw.generate(json!({})).await;
        let (other, other_id) = gw.generate(json!({})).await;
        let (admin, admin_id) = gw.generate(json!({"metadata": {"role": "admin"}})).await;

        let (s, v) = gw.post(&plain, "/key/generate", &json!({})).await;
        assert_eq!(s, 403, "{v}");
        assert_eq!(code(&v), "not_admin");
        let (s, _) = gw
            .post(
                &plain,
                "/key/update",
                &json!({"key": plain_id, "rpm_limit": 1000}),
            )
            .await;
        assert_eq!(s, 403);
        let (s, _) = gw.get(&plain, "/key/list").await;
        assert_eq!(s, 403);
        let (s, _) = gw.get(&plain, "/spend/logs").await;
        assert_eq!(s, 403);
        // Its own info, yes; another key's, no.
        let (s, v) = gw.get(&plain, "/key/info").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["info"]["key_id"], plain_id.as_str());
        assert!(
            v.to_string().find(&plain[3..]).is_none(),
            "never the clear key"
        );
        let (s, _) = gw.get(&plain, &format!("/key/info?key={other_id}")).await;
        assert_eq!(s, 403);
        let (s, _) = gw.get(&other, &format!("/key/info?key={plain}")).await;
        assert_eq!(s, 403);

        // An admin key manages others, but not itself.
        let (s, v) = gw
            .post(&admin, "/key/generate", &json!({"rpm_limit": 5}))
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = gw
            .post(
                &admin,
                "/key/update",
                &json!({"key": admin_id, "rpm_limit": 1000}),
            )
            .await;
        assert_eq!(s, 403, "{v}");
        let (s, v) = gw.get(&admin, "/key/list").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["total_count"], 4);

        // No key at all, or a wrong one: 401, OpenAI-shaped.
        let r = gw
            .http
            .post(gw.url("/key/generate"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["message"].is_string(), "{v}");
        // Unknown fields are refused, not ignored.
        let (s, v) = gw
            .post(MASTER_KEY, "/key/generate", &json!({"rpm_limt": 5}))
            .await;
        assert_eq!(s, 400, "{v}");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn users_teams_and_team_limits_apply_to_their_keys() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::sqlite(Duration::from_secs(5)).await;
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/user/new",
                &json!({"user_id": "ann", "user_email": "ann@example.com"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/team/new",
                &json!({"team_id": "red", "team_alias": "Red", "models": ["gpt"], "rpm_limit": 1,
                        "members_with_roles": [{"user_id": "ann", "role": "admin"}]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["members_with_roles"],
            json!([{"user_id": "ann", "role": "admin"}])
        );
        let (key, key_id) = gw
            .generate(json!({"user_id": "ann", "team_id": "red"}))
            .await;
        // The team's models bound the key's.
        let (s, v) = status_and_body(gw.chat(&key, "emb").await).await;
        assert_eq!((s, code(&v)), (403, "model_not_allowed"), "{v}");
        // The team's rpm of 1.
        assert_eq!(gw.chat(&key, "gpt").await.status(), 200);
        assert_eq!(gw.chat(&key, "gpt").await.status(), 429);
        let rows = gw.wait_for_logs(&key_id, 3).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["team_id"], "red");
        assert_eq!(rows[0]["user"], "ann");
        let (s, v) = gw.get(MASTER_KEY, "/team/info?team_id=red").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["keys"][0]["key_id"], key_id.as_str());
        let (s, v) = gw.get(MASTER_KEY, "/user/info?user_id=ann").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["teams"][0]["team_id"], "red");
        let (s, _) = gw
            .post(
                MASTER_KEY,
                "/team/member_delete",
                &json!({"team_id": "red", "user_id": "ann"}),
            )
            .await;
        assert_eq!(s, 200);
        // Blocking the team blocks its keys at once.
        let (s, _) = gw
            .post(
                MASTER_KEY,
                "/team/update",
                &json!({"team_id": "red", "blocked": true}),
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(gw.chat(&key, "gpt").await.status(), 401);
        let (s, v) = gw
            .post(MASTER_KEY, "/team/delete", &json!({"team_ids": ["red"]}))
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, _) = gw.get(MASTER_KEY, "/team/info?team_id=red").await;
        assert_eq!(s, 404);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_graceful_shutdown_under_load_writes_one_spend_row_per_call() {
    tokio::time::timeout(BOUND, async {
        let mut gw = Gw::sqlite(Duration::from_secs(5)).await;
        let (key, key_id) = gw.generate(json!({})).await;
        const CALLS: usize = 24;
        for _ in 0..CALLS {
            gw.openai.push_fault(Fault::Delay(Duration::from_millis(400)));
        }
        let mut calls = Vec::new();
        for _ in 0..CALLS {
            let http = gw.http.clone();
            let url = gw.url("/v1/chat/completions");
            let key = key.clone();
            calls.push(tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi there"}]}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }));
        }
        // Let the calls reach the upstream, then stop the gateway while they run.
        let deadline = Instant::now() + Duration::from_secs(5);
        while gw.openai.requests().len() < CALLS && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        gw.gateway
            .take()
            .expect("running")
            .shutdown()
            .await
            .expect("clean shutdown");
        let mut ok = 0;
        for c in calls {
            match c.await.expect("task") {
                Ok(200) => ok += 1,
                Ok(other) => panic!("unexpected status {other}"),
                Err(_) => {}
            }
        }
        assert_eq!(ok, CALLS, "in-flight calls finish within the grace period");
        // The writer was flushed at shutdown: every call is in the log, once.
        let page = gw
            .store
            .spend_logs(
                &SpendLogFilter {
                    key_id: Some(key_id.clone()),
                    ..SpendLogFilter::default()
                },
                &LogPage {
                    limit: 1000,
                    cursor: None,
                },
            )
            .await
            .expect("spend logs");
        assert_eq!(page.records.len(), ok);
        assert!(page.records.iter().all(|r| r.status == 200 && r.cost_nano_usd.is_some()));
        let key = gw.store.get_key(&key_id).await.unwrap().expect("key");
        assert!(key.budget.spend_nano > 0, "the key's spend was counted");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn the_same_flow_runs_on_postgresql() {
    if std::env::var("LLMUX_SKIP_PG").is_ok_and(|v| v == "1") {
        return;
    }
    use sqlx::Connection;
    let base = std::env::var("LLMUX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("llmux_keys_e2e_{}", std::process::id());
    let mut admin = sqlx::postgres::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL must be reachable (LLMUX_SKIP_PG=1 to skip)");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop old");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{db}"),
        None => panic!("bad LLMUX_TEST_PG_URL"),
    };
    // In a task, so a failed assertion still drops the database below.
    let result = tokio::spawn(tokio::time::timeout(BOUND, async move {
        let store = Store::connect(&url).await.expect("postgres store");
        let gw = Gw::start(store.clone(), Duration::from_secs(5), None).await;
        key_flow(&gw).await;
        drop(gw);
        store.close().await;
    }))
    .await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop database");
    result.expect("flow passed").expect("bounded");
}

/// On an open gateway (no master key) calls still work, but nobody can mint keys.
#[tokio::test]
async fn the_admin_api_is_disabled_without_a_master_key() {
    llmux::link_providers();
    let dir = temp_dir();
    let url = format!("sqlite://{}", dir.join("llmux.db").display());
    let store = Store::connect(&url).await.expect("sqlite store");
    let gw = llmux::gateway()
        .model("m", llmux_core::DeploymentSettings::new("mock", "echo"))
        .observability(false)
        .store(store)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/key/generate", gw.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(code(&body), "admin_disabled");
    let r = http
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "still open"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Anyone sees every model.
    let r = http
        .get(format!("{}/v1/models", gw.url()))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(r).await;
    assert_eq!(status, 200, "{body}");
    assert!(model_ids(&body).contains(&"m".to_owned()), "{body}");
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

fn model_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// A key's `aliases` route the name it sends to another model group (LiteLLM's key
/// `aliases`); its models admit a call when they allow either name.
#[tokio::test]
async fn a_key_alias_routes_to_its_group_and_the_key_models_allow_either_name() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::sqlite(Duration::from_secs(5)).await;
        let (key, key_id) = gw
            .generate(json!({"models": ["gpt"], "aliases": {"my-model": "gpt", "fast": "emb"}}))
            .await;
        let before = gw.openai.requests().len();
        let r = gw.chat(&key, "my-model").await;
        assert_eq!(r.status(), 200);
        let sent = gw.openai.requests();
        assert_eq!(sent.len(), before + 1);
        assert_eq!(
            sent[before].body["model"], "gpt-4o-mini",
            "routed to group gpt"
        );
        // Neither `fast` nor `emb` is among its models.
        let (s, v) = status_and_body(gw.chat(&key, "fast").await).await;
        assert_eq!(s, 403, "{v}");
        assert_eq!(code(&v), "model_not_allowed");
        // The call is logged under the group it went to.
        let rows = gw.wait_for_logs(&key_id, 2).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["model"], "gpt");

        // Allowed by the alias name alone: the alias works, the group's own name does not.
        let (only_alias, _) = gw
            .generate(json!({"models": ["mine"], "aliases": {"mine": "gpt"}}))
            .await;
        assert_eq!(gw.chat(&only_alias, "mine").await.status(), 200);
        let (s, v) = status_and_body(gw.chat(&only_alias, "gpt").await).await;
        assert_eq!(s, 403, "{v}");

        // Aliases set through /key/update apply to the next call.
        let (plain, _) = gw.generate(json!({})).await;
        assert_eq!(gw.chat(&plain, "later").await.status(), 404);
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/key/update",
                &json!({"key": plain, "aliases": {"later": "gpt"}}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["aliases"], json!({"later": "gpt"}));
        assert_eq!(gw.chat(&plain, "later").await.status(), 200);
    })
    .await
    .expect("bounded");
}

/// `GET /v1/models` lists what the caller may call: all for the master key (and a key
/// without restrictions), a restricted key's models plus its aliases.
#[tokio::test]
async fn models_lists_only_what_a_key_may_call() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::sqlite(Duration::from_secs(5)).await;
        let (s, all) = gw.get(MASTER_KEY, "/v1/models").await;
        assert_eq!(s, 200, "{all}");
        let all = model_ids(&all);
        for m in ["gpt", "emb", "slow"] {
            assert!(all.contains(&m.to_owned()), "{all:?}");
        }

        let (key, _) = gw
            .generate(json!({"models": ["gpt"], "aliases": {"my-model": "gpt", "fast": "emb"}}))
            .await;
        let (s, v) = gw.get(&key, "/v1/models").await;
        assert_eq!(s, 200, "{v}");
        // `fast` aliases a group the key may not call: not listed.
        assert_eq!(model_ids(&v), ["gpt", "my-model"]);

        let (unrestricted, _) = gw.generate(json!({"aliases": {"mine": "emb"}})).await;
        let (s, v) = gw.get(&unrestricted, "/v1/models").await;
        assert_eq!(s, 200, "{v}");
        let mut expected = all.clone();
        expected.push("mine".to_owned());
        expected.sort();
        assert_eq!(model_ids(&v), expected);

        // A team's models bound its keys' listing too.
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/team/new",
                &json!({"team_id": "listing", "models": ["emb"]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (team_key, _) = gw.generate(json!({"team_id": "listing"})).await;
        let (_, v) = gw.get(&team_key, "/v1/models").await;
        assert_eq!(model_ids(&v), ["emb"]);

        let (s, _) = gw.get("sk-nope", "/v1/models").await;
        assert_eq!(s, 401);
    })
    .await
    .expect("bounded");
}
