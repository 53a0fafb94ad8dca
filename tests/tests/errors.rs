//! Every error a client can get from the gateway has OpenAI's shape and the right status.

use std::time::Duration;

use llmux_e2e::{Harness, MASTER_KEY};
use llmux_testkit::Fault;
use serde_json::{Value, json};

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

async fn expect_error(
    resp: reqwest::Response,
    status: u16,
    kind: &str,
    code: Option<&str>,
) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert!(resp.headers().contains_key("x-request-id") || status == 404 || status == 405);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"]["code"].as_str(), code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(v["error"].as_object().unwrap().contains_key("param"));
    v
}

#[tokio::test]
async fn auth_errors() {
    let h = Harness::start().await;
    let url = h.url("/v1/chat/completions");
    let resp = h.http.post(&url).json(&chat("gpt")).send().await.unwrap();
    expect_error(resp, 401, "authentication_error", Some("invalid_api_key")).await;
    let resp = h
        .http
        .post(&url)
        .bearer_auth("sk-wrong")
        .json(&chat("gpt"))
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 401, "authentication_error", Some("invalid_api_key")).await;
    assert!(!v.to_string().contains(MASTER_KEY));
    let resp = h
        .http
        .post(&url)
        .header("x-api-key", MASTER_KEY)
        .json(&chat("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "x-api-key is accepted");
    assert!(
        h.openai.requests().len() == 1,
        "rejected calls never reach the upstream"
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let h = Harness::start().await;
    let url = h.url("/v1/chat/completions");
    let resp = h
        .http
        .post(&url)
        .bearer_auth(MASTER_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "invalid_request_error", None).await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parse the JSON")
    );

    let resp = h
        .post("/v1/chat/completions", &json!({"model": "gpt"}))
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 400, "invalid_request_error", None).await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("messages"),
        "{v}"
    );

    let resp = h
        .post(
            "/v1/chat/completions",
            &json!({"model": "gpt", "messages": []}),
        )
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_request_error", None).await;

    let resp = h
        .post("/v1/chat/completions", &chat("no-such-model"))
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 404, "invalid_request_error", Some("model_not_found")).await;
    assert_eq!(v["error"]["param"], "model");

    let resp = h.http.get(h.url("/v1/nowhere")).send().await.unwrap();
    expect_error(resp, 404, "invalid_request_error", Some("unknown_route")).await;

    let resp = h.http.get(&url).send().await.unwrap();
    expect_error(
        resp,
        405,
        "invalid_request_error",
        Some("method_not_allowed"),
    )
    .await;

    let big =
        json!({"model": "gpt", "messages": [{"role": "user", "content": "x".repeat(70_000)}]});
    let resp = h.post("/v1/chat/completions", &big).send().await.unwrap();
    expect_error(
        resp,
        413,
        "invalid_request_error",
        Some("payload_too_large"),
    )
    .await;
    assert!(h.openai.requests().is_empty());
}

#[tokio::test]
async fn upstream_faults_are_mapped() {
    let h = Harness::start().await;
    h.openai.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        retry_after: Some(7),
    });
    let resp = h
        .post("/v1/chat/completions", &chat("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["retry-after"], "7");
    expect_error(resp, 429, "rate_limit_error", Some("rate_limit_exceeded")).await;

    h.openai.push_fault(Fault::Status {
        status: 400,
        body: json!({"error": {"message": "maximum context length is 128000 tokens", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        retry_after: None,
    });
    let resp = h
        .post("/v1/chat/completions", &chat("gpt"))
        .send()
        .await
        .unwrap();
    expect_error(
        resp,
        400,
        "invalid_request_error",
        Some("context_length_exceeded"),
    )
    .await;

    h.openai.push_fault(Fault::Status {
        status: 500,
        body: json!({"error": {"message": "server error", "type": "server_error", "code": null}}),
        retry_after: None,
    });
    let resp = h
        .post("/v1/chat/completions", &chat("gpt"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-llmux-provider"], "openai");
    expect_error(resp, 502, "api_error", Some("upstream_error")).await;

    h.openai.push_fault(Fault::Status {
        status: 503,
        body: json!({"error": {"message": "overloaded", "type": "server_error", "code": null}}),
        retry_after: None,
    });
    let resp = h
        .post("/v1/chat/completions", &chat("gpt"))
        .send()
        .await
        .unwrap();
    expect_error(
        resp,
        503,
        "service_unavailable_error",
        Some("upstream_unavailable"),
    )
    .await;

    h.openai.push_fault(Fault::Delay(Duration::from_secs(3)));
    let resp = h
        .post("/v1/chat/completions", &chat("slow"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 408, "timeout_error", Some("timeout")).await;

    h.openai.push_fault(Fault::TruncatedJson);
    let resp = h
        .post("/v1/chat/completions", &chat("gpt"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 502, "api_error", Some("upstream_error")).await;

    // A failure on a streamed call before the first chunk is a plain JSON error.
    h.openai.push_fault(Fault::Status {
        status: 401,
        body: json!({"error": {"message": "Incorrect API key provided: sk-abcdefghijklmnopqrstu", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        retry_after: None,
    });
    let mut body = chat("gpt");
    body["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", &body).send().await.unwrap();
    let v = expect_error(resp, 401, "authentication_error", Some("invalid_api_key")).await;
    assert!(
        !v.to_string().contains("abcdefghijklmnopqrstu"),
        "upstream key text is redacted: {v}"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_an_error_event() {
    let h = Harness::start().await;
    h.openai.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let mut body = chat("gpt");
    body["stream"] = json!(true);
    let resp = h.post("/v1/chat/completions", &body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let events = llmux_e2e::sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{events:?}");
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "a broken stream is not reported as complete"
    );
}
