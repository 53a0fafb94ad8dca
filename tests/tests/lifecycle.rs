//! Cancellation and shutdown: a client that leaves cancels the upstream call; a shutdown
//! lets in-flight streams finish.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_e2e::Harness;
use llmux_testkit::Fault;
use serde_json::json;

fn slow_stream_body() -> serde_json::Value {
    json!({"model": "gpt", "stream": true,
           "messages": [{"role": "user", "content": "a b c d e f g h i j k l m n o p"}]})
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let h = Harness::start().await;
    h.openai.push_fault(Fault::SlowStream {
        chunks: 16,
        delay: Duration::from_millis(150),
    });
    let resp = h
        .post("/v1/chat/completions", &slow_stream_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.openai.cancelled_streams() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream stream was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.openai.completed_streams(), 0);
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let h = Harness::start().await;
    h.openai.push_fault(Fault::SlowStream {
        chunks: 5,
        delay: Duration::from_millis(100),
    });
    let resp = h
        .post("/v1/chat/completions", &slow_stream_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let url = h.url("/health/liveliness");
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let Harness {
        gateway,
        http,
        openai: _openai,
        ..
    } = h;
    let stopped = tokio::spawn(gateway.shutdown());
    let text = reader.await.unwrap();
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "stream finished: {text}"
    );
    stopped.await.unwrap().unwrap();
    assert!(http.get(url).send().await.is_err(), "no longer accepting");
}
