//! The `llmux` binary reloads its config on SIGHUP under load: no call is lost, the new
//! models serve, and a broken config is rejected while the old one keeps serving.

#![cfg(unix)]

use std::process::{Command, Stdio};

mod support;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{Process, signal};

use serde_json::json;

const KEY: &str = "sk-sighup-test";

fn config(models: &[&str]) -> String {
    let mut s = format!("server:\n  master_key: {KEY}\nmodels:\n");
    for m in models {
        s.push_str(&format!("  - name: {m}\n    model: mock/echo\n"));
    }
    s
}

async fn served(http: &reqwest::Client, url: &str, model: &str) -> bool {
    http.post(format!("{url}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn sighup_reloads_without_losing_calls() {
    let dir = std::env::temp_dir().join(format!("llmux-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("llmux.yaml");
    std::fs::write(&path, config(&["m1"])).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_llmux"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--config",
        ])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start llmux");
    let pid = child.id();
    let _gw = Process(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let start = Instant::now();
    while !served(&http, &url, "m1").await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Load: streams that are in flight while the config changes underneath them.
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(3);
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, url, ok, failed) = (http.clone(), url.clone(), ok.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while Instant::now() < until {
                let body = json!({"model": "m1", "stream": true, "mock_chunks": 5,
                    "mock_chunk_delay_ms": 20,
                    "messages": [{"role": "user", "content": "keep going"}]});
                let r = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(KEY)
                    .json(&body)
                    .send()
                    .await;
                let complete = match r {
                    Ok(r) if r.status() == 200 => r
                        .text()
                        .await
                        .is_ok_and(|t| t.trim_end().ends_with("data: [DONE]")),
                    _ => false,
                };
                let c = if complete { &ok } else { &failed };
                c.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!served(&http, &url, "m2").await);
    std::fs::write(&path, config(&["m1", "m2"])).unwrap();
    signal(pid, "-HUP");
    let start = Instant::now();
    while !served(&http, &url, "m2").await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "reload did not take effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken config is rejected; the running one keeps serving.
    std::fs::write(&path, "models:\n  - name: broken\n    model: no-slash\n").unwrap();
    signal(pid, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(served(&http, &url, "m2").await, "old config still serves");
    assert!(!served(&http, &url, "broken").await);

    for t in load {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "calls lost during reload");
    assert!(ok.load(Ordering::SeqCst) > 10, "load ran");

    signal(pid, "-TERM");
    let _ = std::fs::remove_dir_all(&dir);
}
