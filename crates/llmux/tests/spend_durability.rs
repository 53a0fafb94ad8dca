//! Spend is never lost, end to end through the `llmux` binary: SIGTERM in the middle of a
//! load writes one spend-log row per answered call (SQLite), and a PostgreSQL outage in
//! the middle of a load (new connections refused, existing ones terminated) loses no row
//! once the database is back.

#![cfg(unix)]

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Process as Gateway, free_port, signal, temp_dir};

use serde_json::json;
use sqlx::Connection;

const KEY: &str = "sk-durability-test";
const BOUND: Duration = Duration::from_secs(120);

/// Start `llmux serve` on `config` with `database_url`; wait until it answers.
async fn start(dir: &Path, database_url: &str, http: &reqwest::Client) -> (Gateway, String) {
    let config = dir.join("llmux.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  master_key: {KEY}\n  shutdown_grace_secs: 20\nmodels:\n  - name: m\n    model: mock/echo\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_llmux"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--config")
        .arg(&config)
        .args(["--database-url", database_url])
        .env("RUST_LOG", "warn")
        .env_remove("LLMUX_CONFIG")
        .env_remove("LLMUX_DATABASE_URL")
        .stdout(Stdio::null())
        .spawn()
        .expect("start llmux");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = http
            .get(format!("{url}/health/readiness"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Gateway(child), url)
}

/// `workers` loops of calls until `stop` says so; every answered call's request id.
fn load(
    http: &reqwest::Client,
    url: &str,
    workers: usize,
    delay_s: f64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<Mutex<Vec<String>>>) {
    let answered = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, url, stop, answered) =
            (http.clone(), url.to_owned(), stop.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let body = json!({"model": "m", "mock_delay": delay_s,
                    "messages": [{"role": "user", "content": format!("call {w}-{n}")}]});
                let r = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(KEY)
                    .json(&body)
                    .send()
                    .await;
                let Ok(r) = r else {
                    // Refused once the gateway stopped accepting: not a call.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let id = r
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if r.status() == 200 && r.bytes().await.is_ok() {
                    answered.lock().unwrap().push(id.expect("x-request-id"));
                }
            }
        }));
    }
    (tasks, answered)
}

/// Wait for the gateway process to exit on its own (bounded); its exit status.
async fn exit_of(gw: &mut Gateway) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = gw.0.try_wait().unwrap() {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "gateway did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_same(answered: &[String], logged: &[String]) {
    let want: HashSet<&str> = answered.iter().map(String::as_str).collect();
    let got: HashSet<&str> = logged.iter().map(String::as_str).collect();
    assert_eq!(want.len(), answered.len(), "request ids are unique");
    assert_eq!(logged.len(), got.len(), "one row per call, never two");
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "answered calls without a spend row: {missing:?}"
    );
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        extra.is_empty(),
        "rows for calls nobody got an answer to: {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_writes_one_spend_row_per_answered_call() {
    tokio::time::timeout(BOUND, async {
        let dir = temp_dir("durability-sigterm");
        let db = format!("sqlite://{}", dir.join("llmux.db").display());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (mut gw, url) = start(&dir, &db, &http).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Calls that take 200 ms, 16 at a time: at SIGTERM about 16 are in flight.
        let (tasks, answered) = load(&http, &url, 16, 0.2, stop.clone());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = answered.lock().unwrap().len();
        signal(gw.0.id(), "-TERM");
        let status = exit_of(&mut gw).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        assert!(status.success(), "graceful exit: {status:?}");
        let answered = answered.lock().unwrap().clone();
        assert!(before >= 16, "load was running: {before}");
        assert!(
            answered.len() > before,
            "calls in flight at SIGTERM were answered"
        );

        let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
        let logged: Vec<String> = sqlx::query_scalar("SELECT request_id FROM llmux_spend_log")
            .fetch_all(&mut c)
            .await
            .unwrap();
        assert_same(&answered, &logged);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("bounded");
}

/// A database of its own on the local PostgreSQL (`None` when there is none to use).
async fn pg_database(name: &str) -> Option<String> {
    let admin = "postgres://postgres@127.0.0.1:5432/postgres";
    let mut c = match sqlx::PgConnection::connect(admin).await {
        Ok(c) => c,
        Err(_) if std::env::var("LLMUX_SKIP_PG").as_deref() == Ok("1") => return None,
        Err(e) => panic!("PostgreSQL on 127.0.0.1:5432 is needed (LLMUX_SKIP_PG=1 skips): {e}"),
    };
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .ok()?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .ok()?;
    Some(format!("postgres://postgres@127.0.0.1:5432/{name}"))
}

/// Refuse new connections to `name` and end the existing ones (or allow them again).
async fn pg_outage(name: &str, down: bool) {
    let mut c = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS {}",
        !down
    ))
    .execute(&mut c)
    .await
    .unwrap();
    if down {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_under_load_loses_no_spend_row() {
    let name = format!("llmux_durability_{}", std::process::id());
    let Some(db) = pg_database(&name).await else {
        return; // LLMUX_SKIP_PG=1
    };
    tokio::time::timeout(BOUND, async {
        let dir = temp_dir("durability-pg");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (mut gw, url) = start(&dir, &db, &http).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tasks, answered) = load(&http, &url, 8, 0.01, stop.clone());
        tokio::time::sleep(Duration::from_millis(800)).await;
        pg_outage(&name, true).await;
        let cut_at = answered.lock().unwrap().len();
        // Calls keep being answered while the database is gone (the master key needs no
        // database; spend waits in memory and the spill file).
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let during = answered.lock().unwrap().len() - cut_at;
        pg_outage(&name, false).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            during > 50,
            "calls were answered during the outage: {during}"
        );
        // A graceful stop flushes what is still pending.
        signal(gw.0.id(), "-TERM");
        let status = exit_of(&mut gw).await;
        assert!(status.success(), "graceful exit: {status:?}");

        let answered = answered.lock().unwrap().clone();
        let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
        let logged: Vec<String> = sqlx::query_scalar("SELECT request_id FROM llmux_spend_log")
            .fetch_all(&mut c)
            .await
            .unwrap();
        assert_same(&answered, &logged);
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("bounded");
    if let Ok(mut c) =
        sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await;
    }
}
