//! Cohere through the real gateway, against the testkit's Cohere mock over 127.0.0.1:
//! chat (plain, streamed, tool call and its round trip), embeddings, and `/v1/rerank`
//! (routed with a fallback, errors in OpenAI's shape, one `rerank` call record per call) —
//! checking both what the client got and what the mock upstream received.

use std::sync::Arc;
use std::time::Duration;

use llmux_core::{DeploymentSettings, ErrorKind, Secret};
use llmux_e2e::{Records, sse_data};
use llmux_testkit::{CohereMock, Fault};
use serde_json::{Value, json};

const KEY: &str = "sk-cohere-e2e-master";

struct Setup {
    primary: CohereMock,
    backup: CohereMock,
    url: String,
    http: reqwest::Client,
    records: Arc<Records>,
    _gateway: llmux_server::RunningGateway,
}

fn deployment(mock: &CohereMock, key: &str, model: &str) -> DeploymentSettings {
    let mut s = DeploymentSettings::new("cohere", model);
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new(key));
    s
}

async fn setup() -> Setup {
    llmux::link_providers();
    let primary = CohereMock::with_api_key("co-primary-key").await;
    let backup = CohereMock::with_api_key("co-backup-key").await;
    let mut config = llmux_config::Config::default();
    config.server.master_key = Some(Secret::new(KEY));
    let records = Arc::new(Records::default());
    let settings = llmux_router::RouterSettings {
        num_retries: 0,
        allowed_fails: None,
        cooldown_time: Duration::ZERO,
        retry_after_cap: Duration::ZERO,
        stream_resume: false,
        fallbacks: [("rerank".to_owned(), vec!["rerank-backup".to_owned()])]
            .into_iter()
            .collect(),
        ..llmux_router::RouterSettings::default()
    };
    let gateway = llmux::gateway()
        .config(config)
        .router_settings(settings)
        .sink(records.clone())
        .model(
            "command",
            deployment(&primary, "co-primary-key", "command-a-03-2025"),
        )
        .model(
            "embed",
            deployment(&primary, "co-primary-key", "embed-v4.0"),
        )
        .model(
            "rerank",
            deployment(&primary, "co-primary-key", "rerank-v3.5"),
        )
        .model(
            "rerank-backup",
            deployment(&backup, "co-backup-key", "rerank-v3.5"),
        )
        .build()
        .expect("gateway builds")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("gateway starts");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    Setup {
        primary,
        backup,
        url: gateway.url(),
        http,
        records,
        _gateway: gateway,
    }
}

impl Setup {
    async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let (status, headers, text) = self.post(path, body).await;
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, headers, v)
    }
}

const WEATHER: &str = r#"{"type": "function", "function": {"name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"]}}}"#;

#[tokio::test]
async fn chat_plain_stream_and_tool_calls() {
    let s = setup().await;

    // Plain.
    let (status, headers, v) = s
        .post_json(
            "/v1/chat/completions",
            json!({"model": "command", "max_tokens": 50, "temperature": 0.1,
                "messages": [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hello from the gateway"}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "hello from the gateway"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(headers["x-llmux-provider"], "cohere");
    let sent = &s.primary.requests()[0];
    assert_eq!(sent.path, "/v2/chat");
    assert_eq!(sent.header("authorization"), Some("Bearer co-primary-key"));
    assert_eq!(sent.body["model"], "command-a-03-2025");
    assert_eq!(sent.body["max_tokens"], 50);
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );

    // Streamed, with usage asked for.
    let (status, _, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "stream": true,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "stream these five words please"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "stream these five words please");
    let last = chunks.last().unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(s.primary.requests()[1].body["stream"], true);

    // A tool call, then its round trip.
    let tool: Value = serde_json::from_str(WEATHER).unwrap();
    let (status, _, v) = s
        .post_json(
            "/v1/chat/completions",
            json!({"model": "command", "tools": [tool],
                "messages": [{"role": "user", "content": "call tool weather in Oslo"}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_plan"],
        "I will call get_weather."
    );
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock"}));
    let call_id = call["id"].as_str().unwrap().to_owned();
    let (status, _, v) = s
        .post_json(
            "/v1/chat/completions",
            json!({"model": "command", "tools": [tool], "messages": [
                {"role": "user", "content": "call tool weather in Oslo"},
                v["choices"][0]["message"].clone(),
                {"role": "tool", "tool_call_id": call_id, "content": "-3C and snow"},
                {"role": "user", "content": "thanks"}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "thanks");
    let sent = &s.primary.requests()[3].body["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], call_id.as_str());
    assert_eq!(sent[1]["tool_plan"], "I will call get_weather.");
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": call_id, "content": "-3C and snow"})
    );

    // A streamed tool call.
    let (status, _, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "command", "stream": true, "tools": [tool],
                "messages": [{"role": "user", "content": "call tool weather in Rome"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut args = String::new();
    let mut name = None;
    for d in sse_data(&body).iter().filter(|d| *d != "[DONE]") {
        let c: Value = serde_json::from_str(d).unwrap();
        if let Some(calls) = c["choices"][0]["delta"]["tool_calls"].as_array() {
            for tc in calls {
                if let Some(n) = tc["function"]["name"].as_str() {
                    name = Some(n.to_owned());
                }
                args.push_str(tc["function"]["arguments"].as_str().unwrap_or_default());
            }
        }
    }
    assert_eq!(name.as_deref(), Some("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock"})
    );

    // Documents from the request's extra field reach Cohere; citations come back.
    let (status, _, v) = s
        .post_json(
            "/v1/chat/completions",
            json!({"model": "command", "documents": ["Notes: bring an umbrella."],
                "messages": [{"role": "user", "content": "what do my notes say"}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["citations"][0]["sources"][0]["document"]["snippet"],
        "Notes: bring an umbrella."
    );
    assert_eq!(
        s.primary.requests()[5].body["documents"],
        json!(["Notes: bring an umbrella."])
    );
    let chats = s.records.wait_for(6).await;
    assert!(
        chats
            .iter()
            .all(|r| r.provider.as_deref() == Some("cohere"))
    );
}

#[tokio::test]
async fn embeddings_through_cohere() {
    let s = setup().await;
    let (status, _, v) = s
        .post_json(
            "/v1/embeddings",
            json!({"model": "embed", "input": ["a b", "c"], "input_type": "search_query",
                "dimensions": 4}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let sent = &s.primary.requests()[0];
    assert_eq!(sent.path, "/v2/embed");
    assert_eq!(
        sent.body,
        json!({"model": "embed-v4.0", "texts": ["a b", "c"], "input_type": "search_query",
            "embedding_types": ["float"], "output_dimension": 4})
    );
    let r = s.records.wait_for(1).await;
    assert_eq!(
        (r[0].operation.as_str(), r[0].prompt_tokens),
        ("embeddings", 3)
    );
}

#[tokio::test]
async fn rerank_is_routed_metered_and_falls_back() {
    let s = setup().await;
    let docs = json!([
        "Berlin is the capital of Germany.",
        {"text": "Paris is the capital of France."},
        "France is known for wine."
    ]);

    // A plain rerank on /v1/rerank.
    let (status, headers, v) = s
        .post_json(
            "/v1/rerank",
            json!({"model": "rerank", "query": "capital of France", "documents": docs,
                "top_n": 2, "return_documents": true}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let order: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(order, [1, 0]);
    assert_eq!(v["results"][0]["relevance_score"], 1.0);
    assert_eq!(
        v["results"][0]["document"]["text"],
        "Paris is the capital of France."
    );
    assert_eq!(v["meta"]["billed_units"]["search_units"], 1);
    assert_eq!(v["id"], "c3d4e5f6-mock-rerank-0001");
    assert_eq!(headers["x-llmux-provider"], "cohere");
    assert_eq!(headers["x-llmux-model"], "rerank-v3.5");
    let sent = &s.primary.requests()[0];
    assert_eq!(sent.path, "/v2/rerank");
    assert_eq!(sent.header("authorization"), Some("Bearer co-primary-key"));
    assert_eq!(
        sent.body,
        json!({"model": "rerank-v3.5", "query": "capital of France", "top_n": 2,
            "documents": ["Berlin is the capital of Germany.",
                "Paris is the capital of France.", "France is known for wine."]})
    );

    // The primary is down: `/rerank` (LiteLLM's path) is answered by the fallback group.
    s.primary.push_fault(Fault::Status {
        status: 503,
        body: CohereMock::error_body("service unavailable"),
        retry_after: None,
    });
    let (status, headers, v) = s
        .post_json(
            "/rerank",
            json!({"model": "rerank", "query": "wine", "documents": docs}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["index"], 2);
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    assert_eq!(headers["x-llmux-fallback"], "rerank-backup");
    let sent = &s.backup.requests()[0];
    assert_eq!(sent.header("authorization"), Some("Bearer co-backup-key"));
    assert_eq!(sent.body["query"], "wine");

    // A bad request upstream is not retried elsewhere; it reaches the client in OpenAI's
    // error shape.
    s.primary.push_fault(Fault::Status {
        status: 400,
        body: CohereMock::error_body("invalid request: top_n must be at most 1000"),
        retry_after: None,
    });
    let (status, _, v) = s
        .post_json(
            "/v2/rerank",
            json!({"model": "rerank", "query": "q", "documents": ["d"], "top_n": 5000}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(
        v["error"]["message"],
        "cohere: invalid request: top_n must be at most 1000"
    );
    assert_eq!(
        s.backup.requests().len(),
        1,
        "no fallback for a bad request"
    );

    // The gateway's own checks, and an unknown model.
    let (status, _, v) = s
        .post_json(
            "/v1/rerank",
            json!({"model": "rerank", "query": "q", "documents": []}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (400, Some("documents"))
    );
    let (status, _, v) = s
        .post_json(
            "/v1/rerank",
            json!({"model": "nope", "query": "q", "documents": ["d"]}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let resp = s
        .http
        .post(format!("{}/v1/rerank", s.url))
        .json(&json!({"model": "rerank", "query": "q", "documents": ["d"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // One record per call (the unauthenticated one is not a call).
    let records = s.records.wait_for(5).await;
    assert!(records.iter().all(|r| r.operation == "rerank"));
    let ok: Vec<_> = records.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 2);
    let first = ok.iter().find(|r| r.fallback.is_none()).unwrap();
    assert_eq!(first.model_group, "rerank");
    assert_eq!(first.provider.as_deref(), Some("cohere"));
    assert_eq!(first.provider_model.as_deref(), Some("rerank-v3.5"));
    // Cohere bills search units, not tokens: the tokens are estimated and the call is
    // not priced (the price table has no per-search price).
    assert!(first.usage_estimated);
    assert!(first.prompt_tokens > 0);
    assert_eq!(first.cost_nano_usd, None);
    let fell_back = ok.iter().find(|r| r.fallback.is_some()).unwrap();
    assert_eq!(fell_back.fallback.as_deref(), Some("rerank-backup"));
    assert_eq!(fell_back.attempts, 2);
    let bad = records
        .iter()
        .find(|r| r.status == 400 && r.attempts == 1)
        .unwrap();
    assert_eq!(bad.error_kind, Some(ErrorKind::BadRequest));
    assert!(records.iter().any(|r| r.status == 404));
}
