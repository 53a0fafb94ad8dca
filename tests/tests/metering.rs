//! The metering point: every call — plain, streamed, failed, abandoned — produces exactly
//! one priced call record, and the client sees the cost.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::ErrorKind;
use llmux_e2e::Harness;
use llmux_testkit::Fault;
use serde_json::{Value, json};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "user": "end-user-7"})
}

// gpt-4o-mini in the embedded table: $0.15 / 1M input tokens, $0.60 / 1M output tokens,
// i.e. 150 and 600 nano-USD per token.
const IN_NANO: i64 = 150;
const OUT_NANO: i64 = 600;

#[tokio::test]
async fn a_plain_call_is_recorded_once_with_its_cost() {
    let h = Harness::start().await;
    let resp = h
        .post("/v1/chat/completions", &chat("gpt", "the quick brown fox"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // 4 prompt words and 4 completion words (the mock counts words): 4*150 + 4*600 nano-USD.
    assert_eq!(resp.headers()["x-llmux-response-cost"], "0.000003");
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let recs = h.records.wait_for(1).await;
    let r = &recs[0];
    assert_eq!(r.request_id, id);
    assert_eq!(r.operation, "chat");
    assert_eq!(r.model_group, "gpt");
    assert_eq!(r.provider.as_deref(), Some("openai"));
    assert_eq!(r.provider_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(r.end_user.as_deref(), Some("end-user-7"));
    assert_eq!((r.prompt_tokens, r.completion_tokens), (4, 4));
    assert_eq!(r.cost_nano_usd, Some(4 * IN_NANO + 4 * OUT_NANO));
    assert_eq!(r.status, 200);
    assert!(!r.usage_estimated);
    assert!(r.latency_us > 0);
}

#[tokio::test]
async fn a_stream_is_recorded_once_and_shows_its_cost_when_asked() {
    let h = Harness::start().await;
    let mut body = chat("gpt", "one two three four five six");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = h
        .post("/v1/chat/completions", &body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = llmux_e2e::sse_data(&text);
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    let expected = 6 * IN_NANO + 6 * OUT_NANO;
    assert_eq!(usage_chunk["usage"]["cost"], json!(expected as f64 / 1e9));
    let recs = h.records.wait_for(1).await;
    let r = &recs[0];
    assert_eq!(r.operation, "chat_stream");
    assert_eq!(r.status, 200);
    assert_eq!((r.prompt_tokens, r.completion_tokens), (6, 6));
    assert_eq!(r.cost_nano_usd, Some(expected));
    assert!(r.ttft_us.is_some_and(|t| t <= r.latency_us));
}

#[tokio::test]
async fn failures_are_recorded_with_their_kind_and_auth_failures_are_not_calls() {
    let h = Harness::start().await;
    h.openai.push_fault(Fault::Status {
        status: 500,
        body: json!({"error": {"message": "boom", "type": "server_error", "code": null}}),
        retry_after: None,
    });
    let resp = h
        .post("/v1/chat/completions", &chat("gpt", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let resp = h
        .post("/v1/chat/completions", &chat("nope", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = h
        .http
        .post(h.url("/v1/chat/completions"))
        .json(&chat("gpt", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let recs = h.records.wait_for(2).await;
    let upstream = recs.iter().find(|r| r.model_group == "gpt").unwrap();
    assert_eq!(upstream.status, 502);
    assert_eq!(upstream.error_kind, Some(ErrorKind::UpstreamError));
    assert_eq!(upstream.provider.as_deref(), Some("openai"));
    let missing = recs.iter().find(|r| r.model_group == "nope").unwrap();
    assert_eq!(missing.error_kind, Some(ErrorKind::NotFound));
    assert_eq!(missing.provider, None);
}

#[tokio::test]
async fn an_abandoned_stream_is_recorded_as_client_closed() {
    let h = Harness::start().await;
    h.openai.push_fault(Fault::SlowStream {
        chunks: 16,
        delay: Duration::from_millis(100),
    });
    let mut body = chat("gpt", "a b c d e f g h i j k l m n o p");
    body["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", &body).send().await.unwrap();
    let mut s = resp.bytes_stream();
    s.next().await.unwrap().unwrap();
    drop(s);
    let recs = h.records.wait_for(1).await;
    assert_eq!(recs[0].status, 499);
    assert!(
        recs[0].usage_estimated,
        "no upstream usage arrived: tokens are estimated"
    );
    assert!(recs[0].prompt_tokens > 0);
}

#[tokio::test]
async fn embeddings_and_unpriced_models_are_recorded() {
    let h = Harness::start().await;
    let resp = h
        .post(
            "/v1/embeddings",
            &json!({"model": "emb", "input": "a b c d"}),
        )
        .send()
        .await
        .unwrap();
    // text-embedding-3-small: $0.02 / 1M tokens = 20 nano-USD per token; 4 tokens.
    assert_eq!(resp.headers()["x-llmux-response-cost"], "0.00000008");
    let resp = h
        .post("/v1/chat/completions", &chat("mock/echo", "free"))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("x-llmux-response-cost").is_none());
    let recs = h.records.wait_for(2).await;
    let emb = recs.iter().find(|r| r.operation == "embeddings").unwrap();
    assert_eq!(emb.cost_nano_usd, Some(80));
    let mock = recs.iter().find(|r| r.model_group == "mock/echo").unwrap();
    assert_eq!(
        mock.cost_nano_usd, None,
        "no made-up price for an unknown model"
    );
}

#[tokio::test]
async fn model_info_lists_prices_and_context_windows() {
    let h = Harness::start().await;
    let v: Value = h
        .http
        .get(h.url("/model/info"))
        .bearer_auth(llmux_e2e::MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gpt = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model_name"] == "gpt")
        .unwrap();
    assert_eq!(gpt["model_info"]["input_cost_per_token"], "0.00000015");
    assert_eq!(gpt["model_info"]["max_input_tokens"], 128000);
    assert!(!v.to_string().contains(llmux_e2e::UPSTREAM_KEY));
}
