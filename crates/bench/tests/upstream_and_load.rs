//! The load generator against the mock upstream, in process, over 127.0.0.1: counts match
//! the upstream's own counters, streams are checked, and open-loop latency includes the
//! time a request waited for a connection (no coordinated omission).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use llmux_bench::load::{self, Mode, Spec};
use llmux_bench::upstream::{self, Settings};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

async fn start(settings: Settings) -> (SocketAddr, oneshot::Sender<()>) {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        upstream::run(
            "127.0.0.1:0".parse().expect("addr"),
            settings,
            shutdown,
            |a| {
                let _ = addr_tx.send(a);
            },
        )
        .await
        .expect("upstream binds");
    });
    (addr_rx.await.expect("bound address"), stop_tx)
}

/// One request with `Connection: close`, the whole answer as text.
async fn raw(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    out
}

async fn stats(addr: SocketAddr) -> Value {
    let text = raw(addr, "GET", "/__bench/stats", "").await;
    let body = text.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("stats are JSON")
}

fn spec(addr: SocketAddr, stream: bool, mode: Mode, duration_ms: u64) -> Spec {
    let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "stream": stream});
    Spec {
        addr,
        host: addr.to_string(),
        path: "/v1/chat/completions".into(),
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_string()),
        stream,
        mode,
        duration: Duration::from_millis(duration_ms),
        grace: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        connect_parallelism: 16,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_match_the_upstream_and_streams_are_checked() {
    let (addr, _stop) = start(Settings::default()).await;
    for stream in [false, true] {
        raw(addr, "POST", "/__bench/reset", "").await;
        let s = spec(addr, stream, Mode::Closed { concurrency: 4 }, 300);
        let report = load::run(s.clone()).await;
        let ok = report.ok();
        let v = report.to_json(&s);
        assert_eq!(v["errors"], 0, "{v}");
        assert!(ok > 10, "{v}");
        let st = stats(addr).await;
        assert_eq!(
            st["calls"].as_u64(),
            Some(ok),
            "one upstream call per request: {st} {v}"
        );
        let streamed = if stream { ok } else { 0 };
        assert_eq!(st["stream_calls"].as_u64(), Some(streamed));
        assert!(
            v["latency_ms"]["p50"].as_f64().is_some_and(|p| p > 0.0),
            "{v}"
        );
        assert_eq!(v["ttft_ms"].is_null(), !stream, "{v}");
        assert_eq!(v["peak_in_flight"], 4, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_does_not_end_in_done_is_an_error() {
    let (addr, _stop) = start(Settings::default()).await;
    // The Anthropic endpoint streams events without `data: [DONE]`.
    let mut s = spec(addr, true, Mode::Closed { concurrency: 1 }, 100);
    s.path = "/v1/messages".into();
    let v = load::run(s.clone()).await.to_json(&s);
    assert_eq!(v["ok"], 0, "{v}");
    assert!(
        v["error_kinds"]["stream_without_done"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{v}"
    );
    // An unknown path is counted by status.
    let mut s = spec(addr, false, Mode::Closed { concurrency: 1 }, 100);
    s.path = "/nowhere".into();
    let v = load::run(s.clone()).await.to_json(&s);
    assert!(
        v["error_kinds"]["status_404"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_counts_the_wait_for_a_connection() {
    // 50 ms per answer and one connection: at most 20 answers per second. Offered 100 per
    // second for 0.5 s, the 50 requests queue, and their latency from the scheduled time
    // grows well past the 50 ms service time. A client timing from its send would see
    // 50 ms throughout.
    let settings = Settings {
        delay: Duration::from_millis(50),
        ..Settings::default()
    };
    let (addr, _stop) = start(settings).await;
    let mode = Mode::Open {
        rate: 100.0,
        max_connections: 1,
    };
    let mut s = spec(addr, false, mode, 500);
    s.grace = Duration::from_millis(600);
    let v = load::run(s.clone()).await.to_json(&s);
    let ok = v["ok"].as_u64().expect("ok");
    let aborted = v["aborted"].as_u64().expect("aborted");
    assert_eq!(
        ok + aborted,
        50,
        "every scheduled request is accounted for: {v}"
    );
    assert!(
        (15..=25).contains(&ok),
        "about 20 answers per second over 1.1 s: {v}"
    );
    let p90 = v["latency_ms"]["p90"].as_f64().expect("p90");
    assert!(p90 > 300.0, "queueing shows in the latency: {v}");
    let p50_service = v["ttfb_ms"]["p50"].as_f64().expect("ttfb");
    assert!(p50_service >= 50.0, "{v}");
    assert_eq!(v["peak_in_flight"], 1, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_delay_and_chunks_at_run_time() {
    let (addr, _stop) = start(Settings::default()).await;
    let answer = raw(addr, "POST", "/__bench/config?delay_ms=30&chunks=3", "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = std::time::Instant::now();
    let text = raw(addr, "POST", "/v1/chat/completions", r#"{"stream": true}"#).await;
    assert!(started.elapsed() >= Duration::from_millis(30));
    let contents = text.matches("\"content\":\"tok").count();
    assert_eq!(contents, 3, "{text}");
    let text = raw(addr, "POST", "/v1/messages", r#"{"stream":true}"#).await;
    assert!(text.contains("event: message_stop"), "{text}");
    assert_eq!(text.matches("text_delta").count(), 3, "{text}");
    let bad = raw(addr, "POST", "/__bench/config?delay_ms=x", "").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}

/// A server that answers two requests per connection, the second with
/// `Connection: close`, then closes it (as nginx does after `keepalive_requests`).
async fn closing_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 1..=2 {
                    // Read one request: head, then `content-length` bytes of body.
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, length);
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    };
                    while buf.len() < head_end + length {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    buf.drain(..head_end + length);
                    let close = if n == 2 { "connection: close\r\n" } else { "" };
                    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{close}\r\n{{}}");
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_closed_by_the_server_is_reopened_not_an_error() {
    let addr = closing_server().await;
    let s = spec(addr, false, Mode::Closed { concurrency: 2 }, 200);
    let v = load::run(s.clone()).await.to_json(&s);
    assert_eq!(v["errors"], 0, "{v}");
    assert!(v["ok"].as_u64().is_some_and(|n| n >= 10), "{v}");
}
