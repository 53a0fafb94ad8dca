//! The Responses API (`/v1/responses`, `GET`/`DELETE /v1/responses/{id}`), legacy
//! `/v1/completions` and `GET /v1/models/{id}` end to end: a function-calling conversation
//! continued by `previous_response_id` through the OpenAI, Anthropic and Gemini mocks
//! (exact upstream requests, exact client-facing events), conversation state across a
//! restart with a SQLite store and scoped to its key, keys' limits and budgets on these
//! endpoints, and their errors; the passthrough to OpenAI upstreams (exact upstream body,
//! the upstream's bytes and events unchanged, metering, limits, fallbacks, broken and
//! abandoned streams).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_e2e::{Harness, MASTER_KEY, sse_data};
use llmux_server::RunningGateway;
use llmux_store::Store;
use llmux_testkit::{AnthropicMock, Fault, GeminiMock, OpenAiMock, RecordedRequest};
use serde_json::{Value, json};

/// Every test body is bounded.
const BOUND: Duration = Duration::from_secs(60);

const WEATHER: &str = r#"{"type": "function", "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}"#;

fn weather() -> Value {
    serde_json::from_str(WEATHER).expect("tool json")
}

/// The three mocks and a gateway serving `gpt` (OpenAI), `claude` (Anthropic) and `flash`
/// (Gemini), with a store when given.
struct Gw {
    openai: OpenAiMock,
    anthropic: AnthropicMock,
    gemini: GeminiMock,
    gateway: Option<RunningGateway>,
    http: reqwest::Client,
}

impl Gw {
    async fn start(store: Option<Store>) -> Self {
        let openai = OpenAiMock::with_api_key("sk-oa").await;
        let anthropic = AnthropicMock::with_api_key("sk-ant").await;
        let gemini = GeminiMock::with_api_key("gm-key").await;
        let gateway = Self::spawn(&openai, &anthropic, &gemini, store).await;
        Self {
            openai,
            anthropic,
            gemini,
            gateway: Some(gateway),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    async fn spawn(
        openai: &OpenAiMock,
        anthropic: &AnthropicMock,
        gemini: &GeminiMock,
        store: Option<Store>,
    ) -> RunningGateway {
        llmux::link_providers();
        let deployment = |provider: &str, model: &str, base: String, key: &str| {
            let mut d = DeploymentSettings::new(provider, model);
            d.api_base = Some(base);
            d.api_key = Some(Secret::new(key));
            d
        };
        let mut config = llmux_config::Config::default();
        config.server.master_key = Some(Secret::new(MASTER_KEY));
        let settings = llmux_router::RouterSettings {
            num_retries: 0,
            allowed_fails: None,
            cooldown_time: Duration::ZERO,
            retry_after_cap: Duration::ZERO,
            stream_resume: false,
            ..llmux_router::RouterSettings::default()
        };
        let mut b = llmux::gateway()
            .config(config)
            .router_settings(settings)
            .observability(false)
            .model(
                "gpt",
                deployment("openai", "gpt-4o-mini", openai.base_url(), "sk-oa"),
            )
            .model(
                "claude",
                deployment(
                    "anthropic",
                    "claude-sonnet-4-5",
                    anthropic.base_url(),
                    "sk-ant",
                ),
            )
            .model(
                "flash",
                deployment("gemini", "gemini-2.5-flash", gemini.base_url(), "gm-key"),
            );
        if let Some(s) = store {
            b = b.store(s);
        }
        b.build()
            .expect("gateway builds")
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("gateway starts")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.as_ref().expect("running").url())
    }

    async fn post(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// A streamed call: the (event name, data) pairs.
    async fn stream(&self, key: &str, path: &str, body: &Value) -> Vec<(String, Value)> {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = r.text().await.expect("body");
        let mut d = llmux_core::sse::SseDecoder::new();
        let mut out = Vec::new();
        d.feed(text.as_bytes(), &mut out).expect("valid SSE");
        out.into_iter()
            .map(|e| {
                let data: Value = serde_json::from_str(&e.data).expect("JSON event");
                (e.event.unwrap_or_default(), data)
            })
            .collect()
    }
}

/// The events' `type`s, checking that each event's name is its `type` and that
/// `sequence_number`s count from 0.
fn event_types(events: &[(String, Value)]) -> Vec<String> {
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str(), "{data}");
        assert_eq!(data["sequence_number"], i, "{data}");
    }
    events.iter().map(|(n, _)| n.clone()).collect()
}

const FUNCTION_CALL_EVENTS: [&str; 8] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
];

/// Turn one (streamed): the model calls `get_weather`. Returns the response id and the
/// call id after checking the events.
async fn call_turn(gw: &Gw, model: &str, deltas: usize) -> (String, String, Value) {
    let body = json!({
        "model": model, "instructions": "be brief", "input": "call tool weather in Paris",
        "tools": [weather()], "stream": true, "max_output_tokens": 64,
    });
    let events = gw.stream(MASTER_KEY, "/v1/responses", &body).await;
    let types = event_types(&events);
    let mut expected: Vec<&str> = FUNCTION_CALL_EVENTS.to_vec();
    // The argument fragments as the provider streams them.
    expected.splice(
        3..5,
        std::iter::repeat_n("response.function_call_arguments.delta", deltas),
    );
    assert_eq!(types, expected, "{model}: {events:#?}");
    let created = &events[0].1["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["model"], model);
    assert_eq!(created["instructions"], "be brief");
    assert_eq!(created["tools"], json!([weather()]));
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("resp_"), "{id}");
    let added = &events[2].1;
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["type"], "function_call");
    assert_eq!(added["item"]["status"], "in_progress");
    assert_eq!(added["item"]["name"], "get_weather");
    assert_eq!(added["item"]["arguments"], "");
    let item_id = added["item"]["id"].as_str().expect("item id").to_owned();
    let call_id = added["item"]["call_id"]
        .as_str()
        .expect("call id")
        .to_owned();
    let streamed: String = events[3..3 + deltas]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["item_id"], item_id.as_str());
            d["delta"].as_str().expect("delta").to_owned()
        })
        .collect();
    let done = &events[3 + deltas].1;
    assert_eq!(done["arguments"], streamed.as_str());
    let item_done = &events[4 + deltas].1["item"];
    assert_eq!(item_done["status"], "completed");
    assert_eq!(item_done["arguments"], streamed.as_str());
    let completed = &events[5 + deltas].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["id"], id.as_str());
    assert_eq!(completed["output"], json!([item_done]));
    let usage = &completed["usage"];
    assert!(usage["input_tokens"].as_u64() > Some(0), "{usage}");
    assert!(usage["output_tokens"].as_u64() > Some(0), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["input_tokens"].as_u64().unwrap_or(0)
                + usage["output_tokens"].as_u64().unwrap_or(0)
        )
    );
    let args: Value = serde_json::from_str(&streamed).expect("arguments are JSON");
    (id, call_id, args)
}

/// Turn two (plain): the tool's output and a user message, continuing turn one by id.
async fn result_turn(gw: &Gw, model: &str, previous: &str, call_id: &str) -> Value {
    let body = json!({
        "model": model, "previous_response_id": previous, "instructions": "be brief",
        "input": [
            {"type": "function_call_output", "call_id": call_id, "output": "18C and sunny"},
            {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]}
        ],
        "tools": [weather()], "max_output_tokens": 64,
    });
    let (s, v) = gw.post(MASTER_KEY, "/v1/responses", &body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["previous_response_id"], previous);
    assert_eq!(v["output"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["role"], "assistant");
    assert_eq!(v["output"][0]["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["annotations"], json!([]));
    v
}

fn last(reqs: &[RecordedRequest]) -> &RecordedRequest {
    reqs.last().expect("an upstream request")
}

/// The body of the last request an upstream recorded.
fn last_body(reqs: Vec<RecordedRequest>) -> Value {
    reqs.into_iter().last().expect("an upstream request").body
}

#[tokio::test]
async fn a_function_calling_conversation_continues_by_previous_response_id_on_every_provider() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start(None).await;

        // OpenAI.
        let (id, call_id, args) = call_turn(&gw, "gpt", 2).await;
        assert_eq!(call_id, "call_mock1");
        assert_eq!(args, json!({"query": "weather in Paris"}));
        let v = result_turn(&gw, "gpt", &id, &call_id).await;
        assert_eq!(v["output"][0]["content"][0]["text"], "thanks");
        let reqs = gw.openai.requests();
        assert_eq!(reqs.len(), 2);
        let tool = json!({"type": "function", "function": {"name": "get_weather",
            "description": "Weather for a city", "parameters": weather()["parameters"]}});
        assert_eq!(
            reqs[0].body,
            json!({"model": "gpt-4o-mini", "stream": true,
                "stream_options": {"include_usage": true}, "max_completion_tokens": 64,
                "messages": [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "call tool weather in Paris"}],
                "tools": [tool]})
        );
        assert_eq!(
            last(&reqs).body,
            json!({"model": "gpt-4o-mini", "max_completion_tokens": 64,
                "messages": [{"role": "system", "content": "be brief"},
                    {"role": "user", "content": "call tool weather in Paris"},
                    {"role": "assistant", "tool_calls": [{"id": "call_mock1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"query\":\"weather in Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_mock1", "content": "18C and sunny"},
                    {"role": "user", "content": [{"type": "text", "text": "thanks"}]}],
                "tools": [tool]})
        );

        // Anthropic.
        let (id, call_id, args) = call_turn(&gw, "claude", 4).await;
        assert_eq!(call_id, "toolu_01MockToolUse0000000001");
        assert_eq!(args, json!({"query": "mock"}));
        let v = result_turn(&gw, "claude", &id, &call_id).await;
        assert_eq!(v["output"][0]["content"][0]["text"], "thanks");
        assert_eq!(
            last_body(gw.anthropic.requests()),
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "be brief",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "call tool weather in Paris"}]},
                    {"role": "assistant", "content": [{"type": "tool_use",
                        "id": "toolu_01MockToolUse0000000001", "name": "get_weather",
                        "input": {"query": "mock"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_01MockToolUse0000000001",
                            "content": "18C and sunny"},
                        {"type": "text", "text": "thanks"}]}],
                "tools": [{"name": "get_weather", "description": "Weather for a city",
                    "input_schema": weather()["parameters"]}]})
        );

        // Gemini.
        let (id, call_id, args) = call_turn(&gw, "flash", 1).await;
        assert_eq!(args, json!({"input": "weather in Paris"}));
        let v = result_turn(&gw, "flash", &id, &call_id).await;
        assert_eq!(v["output"][0]["content"][0]["text"], "thanks");
        assert_eq!(
            last_body(gw.gemini.requests()),
            json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "call tool weather in Paris"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                        "args": {"input": "weather in Paris"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                        "response": {"content": "18C and sunny"}}}]},
                    {"role": "user", "parts": [{"text": "thanks"}]}],
                "generationConfig": {"maxOutputTokens": 64},
                "tools": [{"functionDeclarations": [{"name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {"type": "OBJECT", "properties": {"query": {"type": "STRING"}},
                        "required": ["query"]}}]}]})
        );
    })
    .await
    .expect("bounded");
}

/// A plain text answer streamed through Anthropic with thinking on: a reasoning item
/// (summary deltas, the signed thinking block in `encrypted_content`), then the message.
#[tokio::test]
async fn a_streamed_answer_with_thinking_has_a_reasoning_item_then_the_message() {
    tokio::time::timeout(BOUND, async {
        let gw = Gw::start(None).await;
        let body = json!({"model": "claude", "input": "hello there friend", "stream": true,
            "reasoning": {"effort": "low"}, "max_output_tokens": 2048});
        let events = gw.stream(MASTER_KEY, "/v1/responses", &body).await;
        let types = event_types(&events);
        let mut expected = vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
        ];
        let thinking_deltas = types
            .iter()
            .filter(|t| *t == "response.reasoning_summary_text.delta")
            .count();
        let text_deltas = types
            .iter()
            .filter(|t| *t == "response.output_text.delta")
            .count();
        assert!(thinking_deltas > 0 && text_deltas > 0, "{types:?}");
        expected.extend(std::iter::repeat_n(
            "response.reasoning_summary_text.delta",
            thinking_deltas,
        ));
        expected.extend([
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
        ]);
        expected.extend(std::iter::repeat_n(
            "response.output_text.delta",
            text_deltas,
        ));
        expected.extend([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]);
        assert_eq!(types, expected);
        let completed = &events.last().expect("events").1["response"];
        let output = completed["output"].as_array().expect("output");
        assert_eq!(output[0]["type"], "reasoning");
        assert_eq!(
            output[0]["summary"][0]["text"],
            "The user said: hello there friend"
        );
        let blocks: Value = serde_json::from_str(
            output[0]["encrypted_content"]
                .as_str()
                .expect("encrypted_content"),
        )
        .expect("thinking blocks");
        assert_eq!(blocks[0]["type"], "thinking");
        assert_eq!(
            blocks[0]["signature"],
            "EqQBCkgIARABGAIiQG1vY2stc2lnbmF0dXJl"
        );
        assert_eq!(output[1]["content"][0]["text"], "hello there friend");
        assert!(completed["usage"]["output_tokens"].as_u64() > Some(0));
        let upstream = &last_body(gw.anthropic.requests());
        assert_eq!(upstream["thinking"]["type"], "enabled", "{upstream}");

        // Replaying the output items statelessly (store: false) gives Anthropic the signed
        // thinking block back.
        let mut input = vec![json!({"role": "user", "content": "hello there friend"})];
        input.extend(output.iter().cloned());
        input.push(json!({"role": "user", "content": "again"}));
        let body = json!({"model": "claude", "input": input, "store": false,
            "reasoning": {"effort": "low"}, "max_output_tokens": 2048});
        let (s, v) = gw.post(MASTER_KEY, "/v1/responses", &body).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["store"], false);
        let upstream = &last_body(gw.anthropic.requests());
        assert_eq!(
            upstream["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "The user said: hello there friend",
                "signature": "EqQBCkgIARABGAIiQG1vY2stc2lnbmF0dXJl"}),
            "{upstream:#}"
        );
        // Not stored: it cannot be continued.
        let (s, v) = gw
            .get(
                MASTER_KEY,
                &format!("/v1/responses/{}", v["id"].as_str().unwrap_or("")),
            )
            .await;
        assert_eq!(s, 404, "{v}");
    })
    .await
    .expect("bounded");
}

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_db() -> (std::path::PathBuf, String) {
    let d = std::env::temp_dir().join(format!(
        "llmux-responses-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    let url = format!("sqlite://{}", d.join("llmux.db").display());
    (d, url)
}

#[tokio::test]
async fn stored_responses_survive_a_restart_and_stay_with_their_owner() {
    tokio::time::timeout(BOUND, async {
        let (dir, url) = temp_db();
        let store = Store::connect(&url).await.expect("sqlite");
        let mut gw = Gw::start(Some(store)).await;
        let (s, first) = gw
            .post(
                MASTER_KEY,
                "/v1/responses",
                &json!({"model": "claude", "input": "remember the word apple"}),
            )
            .await;
        assert_eq!(s, 200, "{first}");
        let id = first["id"].as_str().expect("id").to_owned();

        // Restart on the same database file.
        gw.gateway.take().expect("running").shutdown().await.expect("shutdown");
        let store = Store::connect(&url).await.expect("sqlite again");
        gw.gateway =
            Some(Gw::spawn(&gw.openai, &gw.anthropic, &gw.gemini, Some(store.clone())).await);

        let (s, got) = gw.get(MASTER_KEY, &format!("/v1/responses/{id}")).await;
        assert_eq!(s, 200, "{got}");
        assert_eq!(got, first);
        let (s, second) = gw
            .post(
                MASTER_KEY,
                "/v1/responses",
                &json!({"model": "claude", "input": "what was the word", "previous_response_id": id}),
            )
            .await;
        assert_eq!(s, 200, "{second}");
        assert_eq!(
            last_body(gw.anthropic.requests())["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "remember the word apple"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "remember the word apple"}]},
                {"role": "user", "content": [{"type": "text", "text": "what was the word"}]}
            ])
        );

        // Another caller (a virtual key) neither reads, continues nor deletes it.
        let (s, k) = gw
            .post(MASTER_KEY, "/key/generate", &json!({}))
            .await;
        assert_eq!(s, 200, "{k}");
        let key = k["key"].as_str().expect("key").to_owned();
        let (s, v) = gw.get(&key, &format!("/v1/responses/{id}")).await;
        assert_eq!(s, 404, "{v}");
        let (s, v) = gw
            .post(
                &key,
                "/v1/responses",
                &json!({"model": "claude", "input": "x", "previous_response_id": id}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["code"], "previous_response_not_found");
        assert_eq!(v["error"]["param"], "previous_response_id");
        let (s, _) = gw.delete(&key, &format!("/v1/responses/{id}")).await;
        assert_eq!(s, 404);
        // The key's own responses are its own.
        let (s, mine) = gw
            .post(&key, "/v1/responses", &json!({"model": "gpt", "input": "mine"}))
            .await;
        assert_eq!(s, 200, "{mine}");
        let mine_id = mine["id"].as_str().expect("id");
        assert_eq!(gw.get(&key, &format!("/v1/responses/{mine_id}")).await.0, 200);
        assert_eq!(gw.get(MASTER_KEY, &format!("/v1/responses/{mine_id}")).await.0, 404);

        // The owner deletes it: gone for GET and for previous_response_id.
        let (s, v) = gw.delete(MASTER_KEY, &format!("/v1/responses/{id}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v, json!({"id": id, "object": "response", "deleted": true}));
        let (s, v) = gw.get(MASTER_KEY, &format!("/v1/responses/{id}")).await;
        assert_eq!(s, 404, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let (s, _) = gw.delete(MASTER_KEY, &format!("/v1/responses/{id}")).await;
        assert_eq!(s, 404);
        let (s, v) = gw
            .post(
                MASTER_KEY,
                "/v1/responses",
                &json!({"model": "claude", "input": "x", "previous_response_id": id}),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["code"], "previous_response_not_found");

        gw.gateway.take().expect("running").shutdown().await.expect("shutdown");
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
    .expect("bounded");
}

async fn wait_for_logs(gw: &Gw, key_id: &str, total: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = gw
            .get(
                MASTER_KEY,
                &format!("/spend/logs?api_key={key_id}&limit=100"),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let rows = v["data"].as_array().cloned().unwrap_or_default();
        if rows.len() >= total || tokio::time::Instant::now() > deadline {
            assert_eq!(rows.len(), total, "{v}");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_keys_rpm_and_budget_apply_on_responses_and_completions() {
    tokio::time::timeout(BOUND, async {
        let (dir, url) = temp_db();
        let store = Store::connect(&url).await.expect("sqlite");
        let gw = Gw::start(Some(store)).await;
        let responses = json!({"model": "gpt", "input": "the quick brown fox"});
        let completions = json!({"model": "gpt", "prompt": "the quick brown fox"});

        // rpm 2: one call on each endpoint, then 429 on either.
        let (s, k) = gw
            .post(MASTER_KEY, "/key/generate", &json!({"rpm_limit": 2}))
            .await;
        assert_eq!(s, 200, "{k}");
        let (key, key_id) = (k["key"].as_str().unwrap(), k["key_id"].as_str().unwrap());
        assert_eq!(gw.post(key, "/v1/responses", &responses).await.0, 200);
        assert_eq!(gw.post(key, "/v1/completions", &completions).await.0, 200);
        let (s, v) = gw.post(key, "/v1/responses", &responses).await;
        assert_eq!(s, 429, "{v}");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let (s, _) = gw.post(key, "/v1/completions", &completions).await;
        assert_eq!(s, 429);
        // Metered and logged like chat, under their own call types.
        let rows = wait_for_logs(&gw, key_id, 4).await;
        let mut ok: Vec<(String, Value)> = rows
            .iter()
            .filter(|r| r["status"] == 200)
            .map(|r| {
                (
                    r["call_type"].as_str().unwrap_or("").to_owned(),
                    r["spend"].clone(),
                )
            })
            .collect();
        ok.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            ok,
            vec![
                ("completions".to_owned(), json!(0.000003)),
                ("responses".to_owned(), json!(0.000003))
            ],
            "{rows:#?}"
        );

        // A budget spent by one priced call refuses the next, on either endpoint.
        for (first, then) in [
            (
                ("/v1/responses", &responses),
                ("/v1/completions", &completions),
            ),
            (
                ("/v1/completions", &completions),
                ("/v1/responses", &responses),
            ),
        ] {
            let (s, k) = gw
                .post(
                    MASTER_KEY,
                    "/key/generate",
                    &json!({"max_budget": 0.000001}),
                )
                .await;
            assert_eq!(s, 200, "{k}");
            let key = k["key"].as_str().unwrap();
            let (s, v) = gw.post(key, first.0, first.1).await;
            assert_eq!(s, 200, "{v}");
            let (s, v) = gw.post(key, then.0, then.1).await;
            assert_eq!(s, 400, "{v}");
            assert_eq!(v["error"]["code"], "budget_exceeded");
        }
        drop(gw);
        let _ = std::fs::remove_dir_all(dir);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn legacy_completions_plain_and_streamed() {
    let h = Harness::start().await;
    let r = h
        .post(
            "/v1/completions",
            &json!({"model": "gpt", "prompt": "say this is a test", "max_tokens": 7, "stop": ["\n"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llmux-provider"], "openai");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"id": "cmpl-mock123", "object": "text_completion", "created": 1_700_000_000u64,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_mock",
            "choices": [{"text": "say this is a test", "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
    );
    assert_eq!(
        h.openai.requests()[0].body,
        json!({"model": "gpt-4o-mini", "max_tokens": 7, "stop": ["\n"],
            "messages": [{"role": "user", "content": "say this is a test"}]})
    );
    let records = h.records.wait_for(1).await;
    assert_eq!(records[0].operation, "completions");
    assert_eq!(records[0].status, 200);

    let r = h
        .post(
            "/completions",
            &json!({"model": "gpt", "prompt": ["one two three four"], "stream": true,
                "stream_options": {"include_usage": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = sse_data(&r.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().cloned().unwrap_or_default())
        .map(|c| c["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(text, "one two three four");
    for c in &chunks {
        assert_eq!(c["object"], "text_completion");
        assert_eq!(c["id"], "cmpl-mock123");
    }
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 8);
    assert!(chunks[n - 1]["usage"]["cost"].as_f64() > Some(0.0));

    for (field, value) in [
        ("n", json!(2)),
        ("echo", json!(true)),
        ("suffix", json!("x")),
    ] {
        let mut body = json!({"model": "gpt", "prompt": "hi"});
        body[field] = value;
        let r = h.post("/v1/completions", &body).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], field, "{v}");
    }
    assert_eq!(
        h.openai.requests().len(),
        2,
        "refused requests never go upstream"
    );
}

#[tokio::test]
async fn responses_on_the_harness_meter_once_and_fail_in_openais_shapes() {
    let h = Harness::start().await;
    let r = h
        .post(
            "/v1/responses",
            &json!({"model": "gpt", "input": "count these words"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llmux-provider"], "openai");
    assert!(r.headers().contains_key("x-llmux-response-cost"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "count these words");
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 6})
    );
    let records = h.records.wait_for(1).await;
    assert_eq!(records[0].operation, "responses");
    assert_eq!(records[0].model_group, "gpt");
    assert_eq!(
        (records[0].prompt_tokens, records[0].completion_tokens),
        (3, 3)
    );

    // Built-in tools, unknown ids and unknown models: OpenAI's error shape, nothing upstream.
    let cases = [
        (
            json!({"model": "gpt", "input": "x", "tools": [{"type": "web_search"}]}),
            400,
            "tools[0].type",
        ),
        (
            json!({"model": "gpt", "input": "x", "previous_response_id": "resp_nope"}),
            400,
            "previous_response_id",
        ),
        (json!({"model": "nope", "input": "x"}), 404, "model"),
        (json!({"input": "x"}), 400, "model"),
    ];
    for (body, status, param) in cases {
        let r = h.post("/v1/responses", &body).send().await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        if status == 400 {
            assert_eq!(v["error"]["param"], param, "{v}");
        }
    }
    assert_eq!(h.openai.requests().len(), 1);

    // A stream that breaks mid-answer ends with response.failed.
    h.openai.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let r = h
        .post(
            "/v1/responses",
            &json!({"model": "gpt", "input": "one two three four five six seven eight", "stream": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last: Value = serde_json::from_str(sse_data(&text).last().expect("events")).unwrap();
    assert_eq!(last["type"], "response.failed", "{text}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].as_str().is_some());
}

#[tokio::test]
async fn models_by_id() {
    let h = Harness::start().await;
    let get = |path: &str| h.http.get(h.url(path)).bearer_auth(MASTER_KEY).send();
    let v: Value = get("/v1/models/gpt").await.unwrap().json().await.unwrap();
    assert_eq!(
        v,
        json!({"id": "gpt", "object": "model", "created": 0, "owned_by": "openai"})
    );
    let v: Value = get("/models/mock/echo-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({"id": "mock/echo-1", "object": "model", "created": 0, "owned_by": "mock"})
    );
    let r = get("/v1/models/nope").await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    let r = h.http.get(h.url("/v1/models/gpt")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the master key is required");
}

// ------------------------------------------------------------ passthrough to OpenAI upstreams

/// A gateway whose `gpt-pt` group is an OpenAI deployment that passes the Responses API
/// through (`params.responses_passthrough`: the mock is not api.openai.com), `gpt-flaky`
/// another one (falling back to `gpt-pt`), and `claude` an Anthropic one; with a store
/// (virtual keys) and a record sink.
struct Pt {
    openai: OpenAiMock,
    flaky: OpenAiMock,
    anthropic: AnthropicMock,
    gw: Gw,
    records: std::sync::Arc<llmux_e2e::Records>,
    dir: std::path::PathBuf,
}

impl Drop for Pt {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pt {
    async fn start() -> Self {
        llmux::link_providers();
        let openai = OpenAiMock::with_api_key("sk-oa").await;
        let flaky = OpenAiMock::with_api_key("sk-flaky").await;
        let anthropic = AnthropicMock::with_api_key("sk-ant").await;
        let passthrough = |mock: &OpenAiMock, model: &str, key: &str| {
            let mut d = DeploymentSettings::new("openai", model);
            d.api_base = Some(mock.base_url());
            d.api_key = Some(Secret::new(key));
            d.params.insert("responses_passthrough".into(), true.into());
            d
        };
        let mut claude = DeploymentSettings::new("anthropic", "claude-sonnet-4-5");
        claude.api_base = Some(anthropic.base_url());
        claude.api_key = Some(Secret::new("sk-ant"));
        let (dir, url) = temp_db();
        let store = Store::connect(&url).await.expect("sqlite");
        let mut config = llmux_config::Config::default();
        config.server.master_key = Some(Secret::new(MASTER_KEY));
        let settings = llmux_router::RouterSettings {
            num_retries: 0,
            allowed_fails: None,
            cooldown_time: Duration::ZERO,
            retry_after_cap: Duration::ZERO,
            stream_resume: false,
            fallbacks: [("gpt-flaky".to_owned(), vec!["gpt-pt".to_owned()])]
                .into_iter()
                .collect(),
            ..llmux_router::RouterSettings::default()
        };
        let records = std::sync::Arc::new(llmux_e2e::Records::default());
        let gateway = llmux::gateway()
            .config(config)
            .router_settings(settings)
            .observability(false)
            .store(store)
            .sink(records.clone())
            .model("gpt-pt", passthrough(&openai, "gpt-4o-mini", "sk-oa"))
            .model("gpt-flaky", passthrough(&flaky, "gpt-4o", "sk-flaky"))
            .model("claude", claude)
            .build()
            .expect("gateway builds")
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("gateway starts");
        // `Gw`'s helpers over this gateway (its own mocks stay idle).
        let gw = Gw {
            openai: OpenAiMock::start().await,
            anthropic: AnthropicMock::start().await,
            gemini: GeminiMock::start().await,
            gateway: Some(gateway),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        };
        Self {
            openai,
            flaky,
            anthropic,
            gw,
            records,
            dir,
        }
    }

    /// A raw POST to the gateway: status, headers, body bytes.
    async fn raw(&self, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .gw
            .http
            .post(self.gw.url("/v1/responses"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        let (s, h) = (r.status().as_u16(), r.headers().clone());
        (s, h, r.text().await.expect("body"))
    }

    /// What the OpenAI mock itself answers to `body` (sent straight to it).
    async fn upstream_answer(&self, body: &Value) -> String {
        let r = self
            .gw
            .http
            .post(format!("{}/responses", self.openai.base_url()))
            .bearer_auth("sk-oa")
            .json(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        r.text().await.expect("body")
    }
}

/// A request only the Responses API itself can serve: a built-in tool, a continuation of
/// a response llmux never saw, `store: false`, reasoning, an `include`.
fn builtin_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "input": [{"role": "user", "content": [{"type": "input_text",
            "text": "search the web for llamas"}]}],
        "tools": [{"type": "web_search_preview", "search_context_size": "low"}, weather()],
        "previous_response_id": "resp_known_only_upstream",
        "store": false,
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "metadata": {"purpose": "test"},
        "stream": stream,
    })
}

#[tokio::test]
async fn responses_pass_through_to_openai_unchanged_both_ways_and_are_metered() {
    tokio::time::timeout(BOUND, async {
        let pt = Pt::start().await;

        // Plain.
        let body = builtin_request("gpt-pt", false);
        let (s, h, got) = pt.raw(MASTER_KEY, &body).await;
        assert_eq!(s, 200, "{got}");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-llmux-provider"], "openai");
        assert_eq!(h["x-llmux-deployment"], "gpt-pt#0");
        assert!(h.contains_key("x-llmux-response-cost"), "{h:?}");
        let reqs = pt.openai.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, "/v1/responses");
        assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-oa"));
        let mut upstream = body.clone();
        upstream["model"] = json!("gpt-4o-mini");
        // The client's body, only the model rewritten (the built-in tool intact).
        assert_eq!(reqs[0].body, upstream);
        // The upstream's bytes, unchanged.
        assert_eq!(got, pt.upstream_answer(&upstream).await);
        let v: Value = serde_json::from_str(&got).expect("JSON");
        assert_eq!(v["output"][0]["type"], "web_search_preview_call");

        // Streamed: the upstream's events, byte for byte.
        let body = builtin_request("gpt-pt", true);
        let (s, h, got) = pt.raw(MASTER_KEY, &body).await;
        assert_eq!(s, 200, "{got}");
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["x-llmux-provider"], "openai");
        let mut upstream = body.clone();
        upstream["model"] = json!("gpt-4o-mini");
        assert_eq!(pt.openai.requests()[2].body, upstream);
        assert_eq!(got, pt.upstream_answer(&upstream).await);
        assert!(got.contains("event: response.completed\n"), "{got}");

        // One record per call, with the Response object's usage: 5 words in (2 cached),
        // 5 words + 2 reasoning tokens out.
        let recs = pt.records.wait_for(2).await;
        let mut ops: Vec<&str> = recs.iter().map(|r| r.operation.as_str()).collect();
        ops.sort_unstable();
        assert_eq!(ops, ["responses", "responses_stream"]);
        for r in &recs {
            assert_eq!(r.status, 200, "{r:#?}");
            assert_eq!(r.model_group, "gpt-pt");
            assert_eq!(r.provider.as_deref(), Some("openai"));
            assert_eq!(r.provider_model.as_deref(), Some("gpt-4o-mini"));
            assert_eq!(
                (
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.cached_tokens,
                    r.reasoning_tokens
                ),
                (5, 7, 2, 2),
                "{r:#?}"
            );
            assert!(!r.usage_estimated);
            assert!(r.cost_nano_usd.is_some_and(|c| c > 0), "{r:#?}");
        }
        assert!(recs.iter().any(|r| r.ttft_us.is_some()));

        // The same built-in tool for a model served by translation: a clear 400.
        let (s, v) = pt
            .gw
            .post(
                MASTER_KEY,
                "/v1/responses",
                &builtin_request("claude", false),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["param"], "tools[0].type");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("web_search_preview") && msg.contains("OpenAI"),
            "{msg}"
        );
        assert!(pt.anthropic.requests().is_empty());
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn passthrough_falls_back_from_a_failing_openai_deployment_and_ends_broken_streams() {
    tokio::time::timeout(BOUND, async {
        let pt = Pt::start().await;
        let down = || Fault::Status {
            status: 500,
            body: json!({"error": {"message": "boom", "type": "server_error", "param": null,
                "code": null}}),
            retry_after: None,
        };
        for stream in [false, true] {
            pt.flaky.push_fault(down());
            let body = json!({"model": "gpt-flaky", "input": "hello there", "stream": stream});
            let (s, h, got) = pt.raw(MASTER_KEY, &body).await;
            assert_eq!(s, 200, "{got}");
            assert_eq!(h["x-llmux-fallback"], "gpt-pt");
            let mut upstream = body.clone();
            upstream["model"] = json!("gpt-4o-mini");
            assert_eq!(got, pt.upstream_answer(&upstream).await, "stream: {stream}");
        }
        // The failing deployment got the body with its own model.
        let flaky = pt.flaky.requests();
        assert_eq!(flaky.len(), 2);
        assert!(flaky.iter().all(|r| r.body["model"] == "gpt-4o"));
        let recs = pt.records.wait_for(2).await;
        for r in &recs {
            assert_eq!((r.status, r.attempts), (200, 2), "{r:#?}");
            assert_eq!(r.fallback.as_deref(), Some("gpt-pt"));
            assert_eq!(r.model_group, "gpt-flaky");
        }

        // A stream that breaks after it started ends with an `error` event.
        pt.openai
            .push_fault(Fault::BrokenStream { after_chunks: 3 });
        let body = json!({"model": "gpt-pt", "input": "one two three four", "stream": true});
        let (s, _, got) = pt.raw(MASTER_KEY, &body).await;
        assert_eq!(s, 200);
        let mut d = llmux_core::sse::SseDecoder::new();
        let mut events = Vec::new();
        d.feed(got.as_bytes(), &mut events).expect("valid SSE");
        let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "error"
            ]
        );
        let err: Value = serde_json::from_str(&events[3].data).expect("JSON");
        assert_eq!(err["type"], "error");
        assert_eq!(err["sequence_number"], 3);
        let recs = pt.records.wait_for(3).await;
        let broken = recs
            .iter()
            .find(|r| r.status != 200)
            .expect("broken stream record");
        assert_eq!(broken.operation, "responses_stream");
        assert!(broken.error_kind.is_some());
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_keys_rpm_and_budget_apply_on_passthrough() {
    tokio::time::timeout(BOUND, async {
        let pt = Pt::start().await;
        let body = json!({"model": "gpt-pt", "input": "the quick brown fox"});
        let (s, k) = pt
            .gw
            .post(MASTER_KEY, "/key/generate", &json!({"rpm_limit": 1}))
            .await;
        assert_eq!(s, 200, "{k}");
        let (key, key_id) = (k["key"].as_str().unwrap(), k["key_id"].as_str().unwrap());
        assert_eq!(pt.gw.post(key, "/v1/responses", &body).await.0, 200);
        let (s, v) = pt.gw.post(key, "/v1/responses", &body).await;
        assert_eq!(s, 429, "{v}");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(pt.openai.requests().len(), 1);
        // Logged under the key with the call type and its spend.
        let rows = wait_for_logs(&pt.gw, key_id, 2).await;
        let ok: Vec<&Value> = rows.iter().filter(|r| r["status"] == 200).collect();
        assert_eq!(ok.len(), 1, "{rows:#?}");
        assert_eq!(ok[0]["call_type"], "responses");
        assert!(
            ok[0]["spend"].as_f64().is_some_and(|s| s > 0.0),
            "{rows:#?}"
        );

        // A budget spent by one priced call refuses the next.
        let (s, k) = pt
            .gw
            .post(
                MASTER_KEY,
                "/key/generate",
                &json!({"max_budget": 0.000001}),
            )
            .await;
        assert_eq!(s, 200, "{k}");
        let key = k["key"].as_str().unwrap();
        assert_eq!(pt.gw.post(key, "/v1/responses", &body).await.0, 200);
        let (s, v) = pt.gw.post(key, "/v1/responses", &body).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["code"], "budget_exceeded");
        assert_eq!(pt.openai.requests().len(), 2);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn an_abandoned_passthrough_stream_closes_the_upstream_and_is_recorded_as_499() {
    use futures_util::StreamExt;
    tokio::time::timeout(BOUND, async {
        let pt = Pt::start().await;
        pt.openai.push_fault(Fault::SlowStream {
            chunks: 8,
            delay: Duration::from_millis(200),
        });
        let body = json!({"model": "gpt-pt", "stream": true,
            "input": "a b c d e f g h i j k l m n o p"});
        let r = pt
            .gw
            .http
            .post(pt.gw.url("/v1/responses"))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        let mut s = r.bytes_stream();
        let first = s.next().await.expect("a chunk").expect("bytes");
        assert!(first.starts_with(b"event: response.created\n"));
        drop(s);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pt.openai.cancelled_streams() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "upstream not cancelled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let recs = pt.records.wait_for(1).await;
        assert_eq!(recs[0].status, 499);
        assert_eq!(recs[0].operation, "responses_stream");
        // No `response.completed` arrived: estimated from the request's text (31 chars).
        assert!(recs[0].usage_estimated);
        assert_eq!(recs[0].prompt_tokens, 8);
    })
    .await
    .expect("bounded");
}
