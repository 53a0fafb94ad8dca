//! Two `llmux` gateway processes sharing one database and one Redis (`settings.redis_url`)
//! enforce one limit: a burst of 100 concurrent calls spread over both, against a key with
//! `rpm_limit: 10`, admits exactly 10; a key revoked through one gateway is refused by the
//! other within the key cache TTL.
//!
//! Needs Redis on 127.0.0.1:6379 (`LLMUX_TEST_REDIS_URL` to override); `.ci/run` starts
//! one where none runs.

#![cfg(unix)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MASTER: &str = "sk-shared-limits-master";

struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn redis_url() -> String {
    std::env::var("LLMUX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn start(config: &std::path::Path, db: &std::path::Path) -> Gateway {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_llmux"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--config")
        .arg(config)
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start llmux");
    Gateway {
        child,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_rpm_limit_and_see_revocations() {
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
