//! Two `llmux` gateway processes sharing one database and one Redis (`settings.redis_url`)
//! enforce one limit: a burst of 100 concurrent calls spread over both, against a key with
//! `rpm_limit: 10`, admits exactly 10; a key revoked through one gateway is refused by the
//! other within the key cache TTL. A deployment cooled down by one gateway is left alone by
//! the other until the cooldown ends. A gateway whose Redis is unreachable keeps serving and
//! says so in `/metrics`.
//!
//! Needs Redis on 127.0.0.1:6379 (`LLMUX_TEST_REDIS_URL` to override); `.ci/run` starts
//! one where none runs.

#![cfg(unix)]

use std::process::{Command, Stdio};

mod support;
use std::time::{Duration, Instant};
use support::{Process, free_port, temp_dir};

use serde_json::{Value, json};

const MASTER: &str = "sk-shared-limits-master";

struct Gateway {
    /// Held for its `Drop`: the process dies with the test.
    _process: Process,
    url: String,
}

fn redis_url() -> String {
    std::env::var("LLMUX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn start(config: &std::path::Path, db: &std::path::Path) -> Gateway {
    start_with(config, Some(db))
}

fn start_with(config: &std::path::Path, db: Option<&std::path::Path>) -> Gateway {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_llmux"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--config")
        .arg(config)
        .args(match db {
            Some(db) => vec![
                "--database-url".to_owned(),
                format!("sqlite://{}", db.display()),
            ],
            None => vec!["--no-database".to_owned()],
        })
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start llmux");
    Gateway {
        _process: Process(child),
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(http: &reqwest::Client, gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("{}/health/readiness", gw.url))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "{} did not become ready", gw.url);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(http: &reqwest::Client, url: &str, key: &str) -> u16 {
    http.post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn assert_redis_reachable() {
    let probe = redis::Client::open(redis_url()).expect("redis url");
    let reachable = tokio::time::timeout(Duration::from_secs(2), async {
        let mut c = probe.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut c).await.ok()
    })
    .await
    .ok()
    .flatten();
    assert!(
        reachable.is_some(),
        "Redis is not reachable at {} (start it, or set LLMUX_TEST_REDIS_URL)",
        redis_url()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_rpm_limit_and_see_revocations() {
    assert_redis_reachable().await;

    let dir = std::env::temp_dir().join(format!("llmux-shared-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("llmux.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  master_key: {MASTER}\nsettings:\n  redis_url: {}\n  key_cache_ttl: 0.5\nmodels:\n  - name: m\n    model: mock/echo\n",
            redis_url()
        ),
    )
    .unwrap();
    let db = dir.join("llmux.db");
    let a = start(&config, &db);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&http, &a).await;
    // The second gateway opens the database the first one created (and migrated).
    let b = start(&config, &db);
    wait_ready(&http, &b).await;

    // A fresh key (its id keys the counters, so earlier runs cannot interfere).
    let made: Value = http
        .post(format!("{}/key/generate", a.url))
        .bearer_auth(MASTER)
        .json(&json!({"rpm_limit": 10, "key_alias": "shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().expect("a key").to_owned();

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (http, key) = (http.clone(), key.clone());
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        calls.spawn(async move { call(&http, &url, &key).await });
    }
    let mut statuses = Vec::new();
    while let Some(s) = calls.join_next().await {
        statuses.push(s.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (ok, limited),
        (10, 90),
        "exactly the limit is admitted across both gateways: {statuses:?}"
    );

    // Revoked through A, refused by B once its cached entry expires (TTL 0.5 s).
    let deleted = http
        .post(format!("{}/key/delete", a.url))
        .bearer_auth(MASTER)
        .json(&json!({"keys": [key]}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = call(&http, &b.url, &key).await;
        if s == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway B still accepts a key revoked through A (last status {s})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cooldown of deployment `id` in `gw`'s router (from `/health`, which also calls every
/// deployment once).
async fn cooldown_ms(http: &reqwest::Client, gw: &Gateway, id: &str) -> Option<u64> {
    let health: Value = http
        .get(format!("{}/health", gw.url))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let all = ["healthy_endpoints", "unhealthy_endpoints"];
    all.iter()
        .flat_map(|k| health[k].as_array().cloned().unwrap_or_default())
        .find(|e| e["id"] == id)
        .and_then(|e| e["cooldown_remaining_ms"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_cooled_down_by_one_gateway_is_avoided_by_the_other() {
    assert_redis_reachable().await;
    let bad = llmux_testkit::OpenAiMock::start().await;
    let good = llmux_testkit::OpenAiMock::start().await;
    let fail = || llmux_testkit::Fault::Status {
        status: 500,
        body: json!({"error": {"message": "boom", "type": "server_error"}}),
        retry_after: None,
    };
    for _ in 0..1000 {
        bad.push_fault(fail());
    }
    // Ids unique per run: the cooldown keys in Redis are named after them.
    let pid = std::process::id();
    let (bad_id, good_id) = (format!("bad-{pid}"), format!("good-{pid}"));
    let dir = temp_dir("shared-cooldowns");
    let config = dir.join("llmux.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  master_key: {MASTER}\nsettings:\n  redis_url: {redis}\nrouter:\n  num_retries: 1\n  allowed_fails: 0\n  cooldown_time: 3\nmodels:\n  - name: m\n    model: openai/gpt-4o-mini\n    api_base: {b}\n    api_key: sk-upstream\n    id: {bad_id}\n  - name: m\n    model: openai/gpt-4o-mini\n    api_base: {g}\n    api_key: sk-upstream\n    id: {good_id}\n",
            redis = redis_url(),
            b = bad.base_url(),
            g = good.base_url(),
        ),
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let a = start_with(&config, None);
    let b = start_with(&config, None);
    wait_ready(&http, &a).await;
    wait_ready(&http, &b).await;

    // Calls through A until one reaches the failing deployment: the first failure cools
    // it down (allowed_fails 0), and the retry answers from the good one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bad.requests().is_empty() {
        assert_eq!(call(&http, &a.url, MASTER).await, 200);
        assert!(
            Instant::now() < deadline,
            "A never picked the failing deployment"
        );
    }
    // B learns of it from Redis (its background poll), without calling it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cooldown_ms(&http, &b, &bad_id).await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "B never saw A's cooldown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now B leaves the failing deployment alone: its request count does not move.
    let before = bad.requests().len();
    for _ in 0..20 {
        assert_eq!(call(&http, &b.url, MASTER).await, 200);
    }
    assert_eq!(
        bad.requests().len(),
        before,
        "B called the deployment A cooled down"
    );
    // Until the cooldown (3 s) is over: then B tries it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while bad.requests().len() == before {
        assert!(
            Instant::now() < deadline,
            "B never tried the deployment again"
        );
        let _ = call(&http, &b.url, MASTER).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_redis_is_unreachable_keeps_serving_and_says_so() {
    // A port nothing listens on; the URL carries a password that must never be printed.
    let port = free_port();
    let dir = temp_dir("redis-down");
    let config = dir.join("llmux.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  master_key: {MASTER}\nsettings:\n  redis_url: redis://:hunter2secret@127.0.0.1:{port}/\nmodels:\n  - name: m\n    model: mock/echo\n"
        ),
    )
    .unwrap();
    let db = dir.join("llmux.db");
    // The log goes to stdout; keep both streams.
    let log = std::fs::File::create(dir.join("output.log")).unwrap();
    let port_gw = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_llmux"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port_gw.to_string(),
        ])
        .arg("--config")
        .arg(&config)
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start llmux");
    let gw = Gateway {
        _process: Process(child),
        url: format!("http://127.0.0.1:{port_gw}"),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&http, &gw).await;
    // Calls with a virtual key use the (fallen back) counters and still succeed.
    let made: Value = http
        .post(format!("{}/key/generate", gw.url))
        .bearer_auth(MASTER)
        .json(&json!({"rpm_limit": 100}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().expect("a key").to_owned();
    for _ in 0..3 {
        assert_eq!(call(&http, &gw.url, &key).await, 200);
        assert_eq!(call(&http, &gw.url, MASTER).await, 200);
    }
    // The metrics say Redis is down and count the fallbacks (refreshed every 250 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = http
            .get(format!("{}/metrics", gw.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let fallbacks = text
            .lines()
            .find_map(|l| l.strip_prefix("llmux_redis_fallbacks_total "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if text.lines().any(|l| l == "llmux_redis_up 0") && fallbacks.is_some_and(|n| n >= 3.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no Redis fallback in /metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!metrics.contains("hunter2secret"));
    drop(gw);
    let logged = std::fs::read_to_string(dir.join("output.log")).unwrap();
    assert!(logged.contains("Redis"), "the outage is logged: {logged}");
    assert!(
        !logged.contains("hunter2secret"),
        "the Redis password leaked: {logged}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
