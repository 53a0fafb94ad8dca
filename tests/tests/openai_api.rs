//! The gateway's OpenAI endpoints against the OpenAI mock: success paths.

use llmux_e2e::{Harness, UPSTREAM_KEY, sse_data};
use serde_json::{Value, json};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn plain_chat_goes_through_with_headers_and_usage() {
    let h = Harness::start().await;
    let mut body = chat("gpt", "the quick brown fox");
    body["prediction"] = json!({"type": "content", "content": "x"});
    let resp = h
        .post("/v1/chat/completions", &body)
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hd = resp.headers();
    assert_eq!(hd["x-request-id"], "client-chosen-id");
    assert_eq!(hd["x-llmux-provider"], "openai");
    assert_eq!(hd["x-llmux-model"], "gpt-4o-mini");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "the quick brown fox");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["object"], "chat.completion");

    let rec = &h.openai.requests()[0];
    assert_eq!(rec.body["model"], "gpt-4o-mini");
    assert_eq!(
        rec.body["prediction"]["content"], "x",
        "unknown fields pass through"
    );
    assert_eq!(
        rec.header("authorization"),
        Some(&*format!("Bearer {UPSTREAM_KEY}"))
    );
    assert_eq!(rec.header("x-request-id"), Some("client-chosen-id"));
}

#[tokio::test]
async fn generated_request_id_and_paths_without_v1() {
    let h = Harness::start().await;
    let resp = h
        .post("/chat/completions", &chat("gpt", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "uuid: {id}");
}

async fn stream(h: &Harness, include_usage: Option<bool>) -> (Vec<String>, Value) {
    let mut body = chat("gpt", "one two three four five six");
    body["stream"] = json!(true);
    if let Some(u) = include_usage {
        body["stream_options"] = json!({"include_usage": u});
    }
    let resp = h.post("/v1/chat/completions", &body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-llmux-provider"], "openai");
    let text = resp.text().await.unwrap();
    let upstream = h.openai.requests().last().unwrap().body.clone();
    (sse_data(&text), upstream)
}

#[tokio::test]
async fn stream_reassembles_and_hides_usage_unless_asked() {
    let h = Harness::start().await;
    let (events, upstream) = stream(&h, None).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three four five six");
    assert!(chunks.len() >= 4, "streamed in pieces: {}", chunks.len());
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage unless asked"
    );
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty())
    );
    // Usage was still requested upstream, for metering.
    assert_eq!(upstream["stream_options"]["include_usage"], true);

    let (events, _) = stream(&h, Some(true)).await;
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn embeddings_and_models() {
    let h = Harness::start().await;
    let resp = h
        .post(
            "/v1/embeddings",
            &json!({"model": "emb", "input": ["a b c", "d"], "dimensions": 3}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llmux-model"], "text-embedding-3-small");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(v["usage"]["prompt_tokens"], 4);

    let v: Value = h
        .http
        .get(h.url("/v1/models"))
        .bearer_auth(llmux_e2e::MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt", "emb", "slow", "mock/echo"]);
    assert_eq!(v["object"], "list");
}

#[tokio::test]
async fn mock_wildcard_and_health() {
    let h = Harness::start().await;
    let v: Value = h
        .post("/v1/chat/completions", &chat("mock/echo", "ping"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ping");
    let live = h
        .http
        .get(h.url("/health/liveliness"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready: Value = h
        .http
        .get(h.url("/health/readiness"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "healthy");
    assert_eq!(ready["models"], 3);
    let health = h.http.get(h.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 401, "/health needs the key");
}

/// Anthropic needs `max_tokens` on every call: without one from the client, the gateway
/// sends the model's maximum output from the price table.
#[tokio::test]
async fn anthropic_gets_the_model_maximum_output_when_the_client_sets_none() {
    llmux::link_providers();
    let mock = llmux_testkit::AnthropicMock::start().await;
    let mut claude = llmux_core::DeploymentSettings::new("anthropic", "claude-sonnet-4-5");
    claude.api_base = Some(mock.base_url());
    claude.api_key = Some(llmux_core::Secret::new("sk-ant"));
    let gw = llmux::gateway()
        .model("claude", claude)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&chat("claude", "no limit given"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let expected = llmux_cost::PriceTable::embedded()
        .lookup("anthropic", "claude-sonnet-4-5")
        .and_then(|p| p.max_output())
        .expect("the price table knows claude-sonnet-4-5");
    assert_eq!(mock.requests()[0].body["max_tokens"], expected);
}
