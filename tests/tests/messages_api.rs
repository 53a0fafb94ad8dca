//! `POST /v1/messages` (Anthropic's Messages API) end to end: a multi-turn agent
//! conversation (user → assistant thinking + tool_use → tool_result → …) replayed through
//! the gateway to the Anthropic, OpenAI and Gemini mocks, checking the exact upstream
//! requests and the exact JSON and SSE events the client gets; Anthropic upstreams get the
//! client's body unchanged; errors in Anthropic's shape; keys' limits and budgets apply and
//! each call leaves one call record (operation `messages` / `messages_stream`);
//! `count_tokens` forwarded to Anthropic upstreams, estimated for the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_e2e::Records;
use llmux_server::RunningGateway;
use llmux_store::Store;
use llmux_testkit::{AnthropicMock, Fault, GeminiMock, OpenAiMock, RecordedRequest};
use serde_json::{Value, json};

const KEY: &str = "sk-llmux-messages-master";
const BOUND: Duration = Duration::from_secs(60);

struct Gw {
    anthropic: AnthropicMock,
    openai: OpenAiMock,
    gemini: GeminiMock,
    gateway: RunningGateway,
    http: reqwest::Client,
    records: std::sync::Arc<Records>,
    dir: std::path::PathBuf,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static N: AtomicUsize = AtomicUsize::new(0);

impl Gw {
    async fn start() -> Self {
        llmux::link_providers();
        let anthropic = AnthropicMock::with_api_key("sk-ant-test").await;
        let openai = OpenAiMock::with_api_key("sk-oai-test").await;
        let gemini = GeminiMock::with_api_key("gm-test").await;
        let mut claude = DeploymentSettings::new("anthropic", "claude-sonnet-4-5");
        claude.api_base = Some(anthropic.base_url());
        claude.api_key = Some(Secret::new("sk-ant-test"));
        let mut gpt = DeploymentSettings::new("openai", "gpt-4o-mini");
        gpt.api_base = Some(openai.base_url());
        gpt.api_key = Some(Secret::new("sk-oai-test"));
        let mut flash = DeploymentSettings::new("gemini", "gemini-2.5-flash");
        flash.api_base = Some(gemini.base_url());
        flash.api_key = Some(Secret::new("gm-test"));

        let dir = std::env::temp_dir().join(format!(
            "llmux-messages-e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("llmux.db").display());
        let store = Store::connect(&url).await.expect("sqlite store");

        let mut config = llmux_config::Config::default();
        config.server.master_key = Some(Secret::new(KEY));
        let settings = llmux_router::RouterSettings {
            num_retries: 0,
            allowed_fails: None,
            cooldown_time: Duration::ZERO,
            retry_after_cap: Duration::ZERO,
            stream_resume: false,
            ..llmux_router::RouterSettings::default()
        };
        let records = std::sync::Arc::new(Records::default());
        let gateway = llmux::gateway()
            .config(config)
            .router_settings(settings)
            .observability(false)
            .store(store)
            .sink(records.clone())
            .model("claude", claude)
            .model("gpt", gpt)
            .model("flash", flash)
            .build()
            .expect("gateway builds")
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("gateway starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self {
            anthropic,
            openai,
            gemini,
            gateway,
            http,
            records,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    /// POST an Anthropic-style request: the key in `x-api-key`, as Anthropic clients send it.
    async fn messages(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "interleaved-thinking-2025-05-14")
            .json(body)
            .send()
            .await
            .expect("request")
    }

    async fn json(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self.messages(key, path, body).await;
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    /// A new virtual key from the admin API.
    async fn generate(&self, body: Value) -> String {
        let r = self
            .http
            .post(self.url("/key/generate"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.expect("JSON");
        v["key"].as_str().expect("key").to_owned()
    }
}

/// Parse an SSE body into `{"event", "data"}` values, checking each `type` repeats its
/// event name.
fn events(body: &str) -> Vec<Value> {
    let mut d = llmux_core::sse::SseDecoder::new();
    let mut out = Vec::new();
    d.feed(body.as_bytes(), &mut out).expect("valid SSE");
    out.into_iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data).expect("JSON data");
            let name = e.event.expect("every event is named");
            assert_eq!(data["type"], name.as_str(), "{data}");
            json!({"event": name, "data": data})
        })
        .collect()
}

fn last(reqs: &[RecordedRequest]) -> &RecordedRequest {
    reqs.last().expect("the upstream got a request")
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../crates/inbound/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

/// The agent conversation every provider can serve: user (text and an image) → assistant
/// (signed thinking, text, a tool call) → user (the tool's result, and a new request that
/// makes every mock call a tool).
fn conversation(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are a weather agent.",
            "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is the weather in Oslo?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                    "data": "iVBORw0KGgo="}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should look it up.",
                    "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "Looking it up."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                    "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "-3 C, snow"},
                {"type": "text", "text": "call tool forecast for Bergen"}]}
        ],
        "tools": [{"name": "get_weather", "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                "required": ["city"]}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-42"},
        "stream": stream
    })
}

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn start(id: &str, model: &str) -> Value {
    json!({"event": "message_start", "data": {"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0}}}})
}

fn block_start(index: u64, block: Value) -> Value {
    json!({"event": "content_block_start", "data": {"type": "content_block_start",
        "index": index, "content_block": block}})
}

fn delta(index: u64, delta: Value) -> Value {
    json!({"event": "content_block_delta", "data": {"type": "content_block_delta",
        "index": index, "delta": delta}})
}

fn block_stop(index: u64) -> Value {
    json!({"event": "content_block_stop", "data": {"type": "content_block_stop", "index": index}})
}

fn thinking(text: &str) -> Value {
    json!({"type": "thinking_delta", "thinking": text})
}

fn args(partial: &str) -> Value {
    json!({"type": "input_json_delta", "partial_json": partial})
}

fn end(reason: &str, usage: Value) -> [Value; 2] {
    [
        json!({"event": "message_delta", "data": {"type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": usage}}),
        json!({"event": "message_stop", "data": {"type": "message_stop"}}),
    ]
}

fn ping() -> Value {
    json!({"event": "ping", "data": {"type": "ping"}})
}

/// What each provider's upstream must receive for [`conversation`] (not streamed).
fn expected_upstream(provider: &str) -> Value {
    let tool_schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"]});
    match provider {
        // Anthropic: the client's body, with the deployment's model.
        "anthropic" => {
            let mut b = conversation("claude-sonnet-4-5", false);
            b.as_object_mut().expect("object").remove("stream");
            b
        }
        // OpenAI: the canonical form. Anthropic-only facts (the signed thinking, the
        // cache breakpoint, the thinking budget) ride along in LiteLLM's field names.
        "openai" => json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "You are a weather agent.",
                    "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is the weather in Oslo?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Looking it up."}],
                    "thinking_blocks": [{"type": "thinking", "thinking": "I should look it up.",
                        "signature": "EqQBCgIYAhIM"}],
                    "tool_calls": [{"id": "toolu_01", "type": "function", "function": {
                        "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "-3 C, snow"},
                {"role": "user", "content": [{"type": "text", "text": "call tool forecast for Bergen"}]}
            ],
            "max_completion_tokens": 4096,
            "reasoning_effort": "medium",
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Current weather", "parameters": tool_schema}}],
            "tool_choice": "auto",
            "user": "u-42"
        }),
        "gemini" => json!({
            "contents": [
                {"role": "user", "parts": [{"text": "What is the weather in Oslo?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "model", "parts": [{"text": "Looking it up."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                    "response": {"content": "-3 C, snow"}}}]},
                {"role": "user", "parts": [{"text": "call tool forecast for Bergen"}]}
            ],
            "systemInstruction": {"parts": [{"text": "You are a weather agent."}]},
            "tools": [{"functionDeclarations": [{"name": "get_weather",
                "description": "Current weather", "parameters": {"type": "OBJECT",
                    "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"maxOutputTokens": 4096,
                "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 8192}}
        }),
        other => panic!("no expectation for {other}"),
    }
}

/// The streamed body each provider's upstream must receive: the plain one plus its
/// provider's stream switch.
fn expected_stream_upstream(provider: &str) -> Value {
    let mut b = expected_upstream(provider);
    match provider {
        "anthropic" => b["stream"] = json!(true),
        "openai" => {
            b["stream"] = json!(true);
            b["stream_options"] = json!({"include_usage": true});
        }
        _ => {}
    }
    b
}

#[tokio::test]
async fn the_agent_conversation_reaches_every_provider_and_answers_in_anthropic_shape() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start().await;
        // (model, provider, full answer, streamed events).
        let cases = [
            (
                "claude",
                "anthropic",
                json!({"id": "msg_01MockMessage000000000001", "type": "message",
                    "role": "assistant", "model": "claude",
                    "content": [
                        {"type": "thinking", "thinking": "The user said: call tool forecast for Bergen",
                            "signature": "EqQBCkgIARABGAIiQG1vY2stc2lnbmF0dXJl"},
                        {"type": "tool_use", "id": "toolu_01MockToolUse0000000001",
                            "name": "get_weather", "input": {"city": "mock"}}],
                    "stop_reason": "tool_use", "stop_sequence": null, "usage": usage(19, 10)}),
                [
                    vec![
                        start("msg_01MockMessage000000000001", "claude"),
                        block_start(0, json!({"type": "thinking", "thinking": "", "signature": ""})),
                        ping(),
                        delta(0, thinking("The")),
                        delta(0, thinking(" user said: call")),
                        delta(0, thinking(" tool forecast for")),
                        delta(0, thinking(" Bergen")),
                        delta(0, json!({"type": "signature_delta",
                            "signature": "EqQBCkgIARABGAIiQG1vY2stc2lnbmF0dXJl"})),
                        block_stop(0),
                        block_start(1, json!({"type": "tool_use",
                            "id": "toolu_01MockToolUse0000000001", "name": "get_weather",
                            "input": {}})),
                        delta(1, args("{\"ci")),
                        delta(1, args("ty\":")),
                        delta(1, args("\"moc")),
                        delta(1, args("k\"}")),
                        block_stop(1),
                    ],
                    end("tool_use", usage(19, 10)).to_vec(),
                ]
                .concat(),
            ),
            (
                "gpt",
                "openai",
                // The mock says finish_reason "tool_calls"; it is tool_use either way.
                json!({"id": "msg_chatcmpl-mock123", "type": "message", "role": "assistant",
                    "model": "gpt",
                    "content": [{"type": "tool_use", "id": "call_mock1", "name": "get_weather",
                        "input": {"query": "forecast for Bergen"}}],
                    "stop_reason": "tool_use", "stop_sequence": null, "usage": usage(22, 5)}),
                [
                    vec![
                        start("msg_chatcmpl-mock123", "gpt"),
                        block_start(0, json!({"type": "tool_use", "id": "call_mock1",
                            "name": "get_weather", "input": {}})),
                        ping(),
                        delta(0, args("{\"query\":\"forec")),
                        delta(0, args("ast for Bergen\"}")),
                        block_stop(0),
                    ],
                    end("tool_use", usage(22, 5)).to_vec(),
                ]
                .concat(),
            ),
            (
                "flash",
                "gemini",
                // Gemini's thoughts have no signature block; its finish reason is STOP.
                json!({"id": "msg_mock-resp-1", "type": "message", "role": "assistant",
                    "model": "flash",
                    "content": [
                        {"type": "thinking", "thinking": "Thinking about: call tool forecast for Bergen",
                            "signature": ""},
                        {"type": "tool_use", "id": "call_3052cddb981bb4f6", "name": "get_weather",
                            "input": {"input": "forecast for Bergen"}}],
                    "stop_reason": "tool_use", "stop_sequence": null, "usage": usage(19, 11)}),
                [
                    vec![
                        start("msg_mock-resp-1", "flash"),
                        block_start(0, json!({"type": "thinking", "thinking": "", "signature": ""})),
                        ping(),
                        delta(0, thinking("Thinking about: call tool forecast for Bergen")),
                        block_stop(0),
                        block_start(1, json!({"type": "tool_use", "id": "call_3052cddb981bb4f6",
                            "name": "get_weather", "input": {}})),
                        delta(1, args("{\"input\":\"forecast for Bergen\"}")),
                        block_stop(1),
                    ],
                    end("tool_use", usage(19, 11)).to_vec(),
                ]
                .concat(),
            ),
        ];
        for (model, provider, full, streamed) in cases {
            let upstream = |gw: &Gw| match provider {
                "anthropic" => gw.anthropic.requests(),
                "openai" => gw.openai.requests(),
                _ => gw.gemini.requests(),
            };
            let (s, v) = gw.json(KEY, "/v1/messages", &conversation(model, false)).await;
            assert_eq!(s, 200, "{model}: {v}");
            assert_eq!(v, full, "{model}");
            let reqs = upstream(&gw);
            assert_eq!(last(&reqs).body, expected_upstream(provider), "{model} upstream");

            let r = gw.messages(KEY, "/v1/messages", &conversation(model, true)).await;
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(
                r.headers()["content-type"].to_str().expect("ascii"),
                "text/event-stream"
            );
            assert_eq!(r.headers()["x-llmux-provider"], provider);
            let got = events(&r.text().await.expect("body"));
            assert_eq!(got, streamed, "{model} events");
            let reqs = upstream(&gw);
            assert_eq!(last(&reqs).body, expected_stream_upstream(provider), "{model}");
        }
        // The client's beta header went with the Anthropic calls.
        for r in gw.anthropic.requests() {
            assert_eq!(r.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
            assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        }
        // One record per call, streamed or not, under the endpoint's operation names.
        let recs = gw.records.wait_for(6).await;
        assert!(recs.iter().all(|r| r.status == 200), "{recs:#?}");
        let ops: Vec<&str> = recs.iter().map(|r| r.operation.as_str()).collect();
        assert_eq!(ops.iter().filter(|o| **o == "messages_stream").count(), 3, "{ops:?}");
        assert_eq!(ops.iter().filter(|o| **o == "messages").count(), 3, "{ops:?}");
        let gpt = recs
            .iter()
            .find(|r| r.model_group == "gpt" && r.operation == "messages")
            .expect("gpt record");
        assert_eq!((gpt.prompt_tokens, gpt.completion_tokens), (22, 5));
        assert_eq!(gpt.end_user.as_deref(), Some("u-42"));
        assert_eq!(gpt.finish_reason.as_deref(), Some("tool_calls"));
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn an_anthropic_upstream_gets_the_clients_body_unchanged() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start().await;
        let mut body = fixture("messages_agent_request.json");
        body["model"] = json!("claude");
        let r = gw.messages(KEY, "/v1/messages", &body).await;
        assert_eq!(r.status().as_u16(), 200);
        let got = events(&r.text().await.expect("body"));
        assert_eq!(got.last().expect("events")["event"], "message_stop");
        let mut expected = fixture("messages_agent_request.json");
        expected["model"] = json!("claude-sonnet-4-5");
        let reqs = gw.anthropic.requests();
        assert_eq!(last(&reqs).body, expected);

        // Not streamed: the same body without `stream`.
        body["stream"] = json!(false);
        let (s, v) = gw.json(KEY, "/messages", &body).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["type"], "message");
        expected.as_object_mut().expect("object").remove("stream");
        let reqs = gw.anthropic.requests();
        assert_eq!(last(&reqs).body, expected);
    })
    .await
    .expect("bounded");
}

fn anthropic_error(kind: &str, v: &Value) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn errors_come_in_anthropics_shape_and_statuses() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start().await;
        let ok = conversation("gpt", false);
        // Authentication.
        let (s, v) = gw.json("sk-wrong", "/v1/messages", &ok).await;
        assert_eq!(s, 401);
        anthropic_error("authentication_error", &v);
        let r = gw
            .http
            .post(gw.url("/v1/messages"))
            .json(&ok)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 401);
        anthropic_error("authentication_error", &r.json().await.expect("JSON"));
        // A bearer token works as well as x-api-key.
        let r = gw
            .http
            .post(gw.url("/v1/messages"))
            .bearer_auth(KEY)
            .json(&ok)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        // Bad bodies.
        let mut no_max = ok.clone();
        no_max.as_object_mut().expect("object").remove("max_tokens");
        let (s, v) = gw.json(KEY, "/v1/messages", &no_max).await;
        assert_eq!(s, 400);
        anthropic_error("invalid_request_error", &v);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("max_tokens"),
            "{v}"
        );
        let r = gw
            .http
            .post(gw.url("/v1/messages"))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 400);
        anthropic_error("invalid_request_error", &r.json().await.expect("JSON"));
        // An unknown model.
        let (s, v) = gw
            .json(KEY, "/v1/messages", &conversation("nope", false))
            .await;
        assert_eq!(s, 404);
        anthropic_error("not_found_error", &v);
        // Upstream faults keep their meaning: a rate limit with its Retry-After, an
        // overloaded Anthropic.
        gw.openai.push_fault(Fault::Status {
            status: 429,
            body: json!({"error": {"message": "Rate limit reached", "type": "requests",
                "param": null, "code": "rate_limit_exceeded"}}),
            retry_after: Some(7),
        });
        let r = gw.messages(KEY, "/v1/messages", &ok).await;
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(r.headers()["x-llmux-provider"], "openai");
        anthropic_error("rate_limit_error", &r.json().await.expect("JSON"));
        gw.anthropic.push_fault(Fault::Status {
            status: 529,
            body: AnthropicMock::error_body("overloaded_error", "Overloaded"),
            retry_after: None,
        });
        let (s, v) = gw
            .json(KEY, "/v1/messages", &conversation("claude", false))
            .await;
        assert_eq!(s, 529);
        anthropic_error("overloaded_error", &v);
        // A stream that breaks after it started ends with an `error` event.
        gw.openai
            .push_fault(Fault::BrokenStream { after_chunks: 2 });
        let plain = json!({"model": "gpt", "max_tokens": 64, "stream": true,
            "messages": [{"role": "user", "content": "one two three four five six"}]});
        let r = gw.messages(KEY, "/v1/messages", &plain).await;
        assert_eq!(r.status().as_u16(), 200);
        let got = events(&r.text().await.expect("body"));
        let names: Vec<&str> = got
            .iter()
            .map(|e| e["event"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names.first(), Some(&"message_start"), "{got:#?}");
        assert_eq!(names.last(), Some(&"error"), "{got:#?}");
        assert!(!names.contains(&"message_stop"), "{got:#?}");
        anthropic_error("api_error", &got.last().expect("error")["data"]);
        // The failed calls are recorded with their status (401s are not calls).
        let recs = gw.records.wait_for(7).await;
        let mut statuses: Vec<u16> = recs.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400, 400, 404, 429, 502, 503]);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn keys_limits_and_budgets_apply_to_messages() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start().await;
        let body = json!({"model": "gpt", "max_tokens": 64,
            "messages": [{"role": "user", "content": "the quick brown fox"}]});
        // rpm 1: the second call in the minute is refused.
        let key = gw.generate(json!({"rpm_limit": 1})).await;
        let (s, v) = gw.json(&key, "/v1/messages", &body).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["content"][0]["text"], "the quick brown fox");
        let (s, v) = gw.json(&key, "/v1/messages", &body).await;
        assert_eq!(s, 429, "{v}");
        anthropic_error("rate_limit_error", &v);
        // A tiny budget: spent by the first priced call.
        let key = gw.generate(json!({"max_budget": 0.000001})).await;
        let (s, v) = gw.json(&key, "/v1/messages", &body).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = gw.json(&key, "/v1/messages", &body).await;
        assert_eq!(s, 400, "{v}");
        anthropic_error("invalid_request_error", &v);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("budget"),
            "{v}"
        );
        // Each call left a record attributed to its key, priced when it succeeded.
        let recs = gw.records.wait_for(4).await;
        assert!(recs.iter().all(|r| r.key.is_some()), "{recs:#?}");
        let ok: Vec<_> = recs.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 2, "{recs:#?}");
        for r in ok {
            assert_eq!((r.prompt_tokens, r.completion_tokens), (4, 4));
            assert!(r.cost_nano_usd.is_some_and(|c| c > 0), "{r:#?}");
        }
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn count_tokens_estimates_locally_for_models_not_served_by_anthropic() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start().await;
        let body = json!({"model": "gpt", "system": "abcd",
            "messages": [{"role": "user", "content": "abcdefgh"}]});
        for path in ["/v1/messages/count_tokens", "/messages/count_tokens"] {
            let (s, v) = gw.json(KEY, path, &body).await;
            assert_eq!((s, v), (200, json!({"input_tokens": 3})));
        }
        let mut with_image = body.clone();
        with_image["messages"][0]["content"] = json!([{"type": "text", "text": "abcdefgh"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]);
        let (_, v) = gw.json(KEY, "/v1/messages/count_tokens", &with_image).await;
        assert_eq!(v, json!({"input_tokens": 1603}));
        let mut unknown = body.clone();
        unknown["model"] = json!("nope");
        let (s, v) = gw.json(KEY, "/v1/messages/count_tokens", &unknown).await;
        assert_eq!(s, 404);
        anthropic_error("not_found_error", &v);
        let (s, v) = gw
            .json("sk-wrong", "/v1/messages/count_tokens", &body)
            .await;
        assert_eq!(s, 401);
        anthropic_error("authentication_error", &v);
        // Nothing went upstream and nothing was metered.
        assert!(gw.openai.requests().is_empty());
        assert!(gw.anthropic.requests().is_empty());
        gw.records.wait_for(0).await;
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_an_anthropic_upstream() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start().await;
        let tool = json!({"name": "get_weather", "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}});
        let body = json!({"model": "claude", "system": "be brief please",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "one two three",
                "cache_control": {"type": "ephemeral"}}]}],
            "tools": [tool], "thinking": {"type": "enabled", "budget_tokens": 2048}});
        for path in ["/v1/messages/count_tokens", "/messages/count_tokens"] {
            let r = gw.messages(KEY, path, &body).await;
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(r.headers()["x-llmux-provider"], "anthropic");
            // The mock's count (3 + 3 words, 100 per tool), not the local estimate.
            let v: Value = r.json().await.expect("JSON");
            assert_eq!(v, json!({"input_tokens": 106}));
        }
        let reqs = gw.anthropic.requests();
        assert_eq!(reqs.len(), 2);
        let mut expected = body.clone();
        expected["model"] = json!("claude-sonnet-4-5");
        for r in &reqs {
            assert_eq!(r.path, "/v1/messages/count_tokens");
            // The client's body as is, with the deployment's model.
            assert_eq!(r.body, expected);
            assert_eq!(r.header("x-api-key"), Some("sk-ant-test"));
            assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(
                r.header("anthropic-beta"),
                Some("interleaved-thinking-2025-05-14")
            );
        }
        // The upstream's refusal comes back in Anthropic's shape.
        let mut bad = body.clone();
        bad["max_tokens"] = json!(10);
        let (s, v) = gw.json(KEY, "/v1/messages/count_tokens", &bad).await;
        assert_eq!(s, 400, "{v}");
        anthropic_error("invalid_request_error", &v);
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_tokens")),
            "{v}"
        );
        // Token counting is not a call: nothing metered.
        gw.records.wait_for(0).await;
    })
    .await
    .expect("bounded");
}
