//! Mistral and Ollama through the real gateway over loopback HTTP, against the testkit's
//! strict Mistral mock and its Ollama mock: plain, streamed, tool calls, embeddings and
//! errors, checking what the client got and what each upstream recorded.

use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_e2e::sse_data;
use llmux_server::RunningGateway;
use llmux_testkit::{Fault, MISTRAL_TOOL_CALL_ID, MistralMock, OllamaMock};
use serde_json::{Value, json};

const KEY: &str = "sk-e2e-mistral-ollama";
const MISTRAL_KEY: &str = "mk-e2e-upstream-key";
const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

struct Setup {
    mistral: MistralMock,
    ollama: OllamaMock,
    gateway: RunningGateway,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    llmux::link_providers();
    let mistral = MistralMock::with_api_key(MISTRAL_KEY).await;
    let ollama = OllamaMock::start().await;
    let deployment = |provider: &str, model: &str, base: String| {
        let mut s = DeploymentSettings::new(provider, model);
        s.api_base = Some(base);
        s
    };
    let mut small = deployment("mistral", "mistral-small-latest", mistral.base_url());
    small.api_key = Some(Secret::new(MISTRAL_KEY));
    let mut embed = deployment("mistral", "mistral-embed", mistral.base_url());
    embed.api_key = small.api_key.clone();
    let mut llama = deployment("ollama", "llama3.2", ollama.base_url());
    llama.params.insert("keep_alive".into(), json!("15m"));
    let chat_alias = deployment("ollama_chat", "llama3.2", ollama.base_url());
    let missing = deployment("ollama", "missing-model", ollama.base_url());
    let nomic = deployment("ollama", "nomic-embed-text", ollama.base_url());

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
    let gateway = llmux::gateway()
        .config(config)
        .router_settings(settings)
        .env_wildcards(false)
        .model("small", small)
        .model("mistral-emb", embed)
        .model("llama", llama)
        .model("llama-chat", chat_alias)
        .model("gone", missing)
        .model("nomic", nomic)
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
        mistral,
        ollama,
        gateway,
        http,
    }
}

impl Setup {
    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.gateway.url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    async fn json(&self, path: &str, body: Value) -> (u16, Value) {
        let (status, text) = self.post(path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}])
}

/// The streamed chunks (parsed), without `[DONE]`, and whether `[DONE]` closed the stream.
fn chunks(body: &str) -> (Vec<Value>, bool) {
    let data = sse_data(body);
    let done = data.last().is_some_and(|d| d == "[DONE]");
    let parsed = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk JSON"))
        .collect();
    (parsed, done)
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn mistral_plain_stream_tools_embeddings_and_errors() {
    let s = setup().await;

    // Plain: OpenAI-only parameters never reach Mistral; renamed ones do.
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "small", "messages": [{"role": "user", "content": "hello mistral"}],
                "seed": 5, "max_completion_tokens": 32, "user": "u-9", "logit_bias": {"1": 1},
                "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "hello mistral");
    assert_eq!(body["usage"]["total_tokens"], 4);
    let r = &s.mistral.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {MISTRAL_KEY}").as_str())
    );
    assert_eq!(
        r.body,
        json!({"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hello mistral"}],
            "random_seed": 5, "max_tokens": 32})
    );

    // Streamed, with the usage the client asked for in its own final chunk.
    let (status, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "small", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "stream these four words"}]}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let (c, done) = chunks(&text);
    assert!(done);
    assert_eq!(streamed_text(&c), "stream these four words");
    let last = c.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 4);
    assert_eq!(s.mistral.requests()[1].body["stream"], true);
    assert!(s.mistral.requests()[1].body.get("stream_options").is_none());
    // Not asked: no usage anywhere.
    let (_, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "small", "stream": true,
                "messages": [{"role": "user", "content": "quiet stream"}]}),
        )
        .await;
    let (c, _) = chunks(&text);
    assert!(
        c.iter().all(|c| c.get("usage").is_none_or(Value::is_null)),
        "{text}"
    );

    // Tool call forced with `required` (sent as `any`), then a history whose ids came from
    // elsewhere: the strict mock accepts it only if the ids were mapped consistently.
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "small", "tools": tools(), "tool_choice": "required",
                "messages": [{"role": "user", "content": "weather in Paris"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["id"],
        MISTRAL_TOOL_CALL_ID
    );
    assert_eq!(s.mistral.requests()[3].body["tool_choice"], "any");
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "small", "tools": tools(), "messages": [
                {"role": "user", "content": "call tool Paris"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9f8e7d6c5b4a",
                    "type": "function", "function": {"name": "get_weather", "arguments": "{\"query\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_9f8e7d6c5b4a", "content": "sunny"},
                {"role": "user", "content": "merci"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "merci");
    let sent = &s.mistral.requests()[4].body["messages"];
    assert_ne!(sent[1]["tool_calls"][0]["id"], "call_9f8e7d6c5b4a");
    assert_eq!(sent[1]["tool_calls"][0]["id"], sent[2]["tool_call_id"]);
    // A streamed tool call.
    let (_, text) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "small", "stream": true, "tools": tools(),
                "messages": [{"role": "user", "content": "call tool Rome"}]}),
        )
        .await;
    let (c, _) = chunks(&text);
    let call = c
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .expect("a tool-call delta");
    assert_eq!(call[0]["function"]["arguments"], "{\"query\":\"Rome\"}");
    assert_eq!(call[0]["type"], "function");

    // Embeddings.
    let (status, body) = s
        .json(
            "/v1/embeddings",
            json!({"model": "mistral-emb", "input": ["un deux", "trois"], "user": "u"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let r = s.mistral.requests().pop().unwrap();
    assert_eq!(r.path, "/v1/embeddings");
    assert_eq!(
        r.body,
        json!({"model": "mistral-embed", "input": ["un deux", "trois"]})
    );

    // Errors, in OpenAI's shape.
    let e = MistralMock::error_body;
    for (fault, status, code) in [
        (
            e(
                "invalid_request_error",
                "Prompt contains 40000 tokens, too large for model with 32768 maximum context length",
                None,
            ),
            400,
            "context_length_exceeded",
        ),
        (
            e("invalid_model", "Invalid model: mistral-nope", Some("1500")),
            404,
            "model_not_found",
        ),
        (
            json!({"message": "Requests rate limit exceeded"}),
            429,
            "rate_limit_exceeded",
        ),
        (
            e("internal_server_error", "Service unavailable.", None),
            502,
            "upstream_error",
        ),
    ] {
        s.mistral.push_fault(Fault::Status {
            status: match status {
                404 => 400,
                502 => 500,
                other => other,
            },
            body: fault,
            retry_after: None,
        });
        let (got, body) = s
            .json(
                "/v1/chat/completions",
                json!({"model": "small", "messages": [{"role": "user", "content": "x"}]}),
            )
            .await;
        assert_eq!(got, status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("mistral: ")
        );
    }
    s.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn ollama_native_api_through_the_gateway() {
    let s = setup().await;

    // Plain, with an image from a data URL and deployment defaults.
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "llama", "max_tokens": 20, "temperature": 0.5, "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "describe this"},
                    {"type": "image_url", "image_url": {"url": PNG}}]}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "describe this");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6})
    );
    let r = &s.ollama.requests()[0];
    assert_eq!(
        (r.path.as_str(), r.header("authorization")),
        ("/api/chat", None)
    );
    assert_eq!(
        r.body,
        json!({"model": "llama3.2", "stream": false, "keep_alive": "15m",
            "options": {"num_predict": 20, "temperature": 0.5},
            "messages": [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "describe this", "images": [PNG.split_once(',').unwrap().1]}]})
    );

    // Streamed NDJSON becomes SSE, through the `ollama_chat/` alias too.
    for model in ["llama", "llama-chat"] {
        let (status, text) = s
            .post(
                "/v1/chat/completions",
                json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "a stream of five words"}]}),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        let (c, done) = chunks(&text);
        assert!(done);
        assert_eq!(streamed_text(&c), "a stream of five words");
        assert_eq!(c[c.len() - 2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(c.last().unwrap()["usage"]["completion_tokens"], 5);
    }
    assert_eq!(s.ollama.requests()[1].body["stream"], true);

    // Tool call, JSON mode as `format`.
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "llama", "tools": tools(),
                "messages": [{"role": "user", "content": "call tool Oslo"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{\"query\":\"Oslo\"}");
    assert!(call["id"].as_str().unwrap().starts_with("call_0_"));
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "llama", "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": "give json"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["answer"], "give json");
    assert_eq!(s.ollama.requests().last().unwrap().body["format"], "json");

    // Embeddings (float, and base64 as the OpenAI SDKs ask by default).
    let (status, body) = s
        .json(
            "/v1/embeddings",
            json!({"model": "nomic", "input": ["one", "two words"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 8);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let r = s.ollama.requests().pop().unwrap();
    assert_eq!(r.path, "/api/embed");
    assert_eq!(
        r.body,
        json!({"model": "nomic-embed-text", "input": ["one", "two words"]})
    );
    let (status, body) = s
        .json(
            "/v1/embeddings",
            json!({"model": "nomic", "input": "x", "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["embedding"].as_str().unwrap().len(),
        44,
        "8 f32 in base64"
    );

    // Errors: unknown model, remote image (refused before any upstream call), upstream 503.
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "gone", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("model_not_found")),
        "{body}"
    );
    let before = s.ollama.requests().len();
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "llama", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "messages");
    assert_eq!(s.ollama.requests().len(), before);
    s.ollama.push_fault(Fault::Status {
        status: 503,
        body: OllamaMock::error_body("server busy, please try again."),
        retry_after: None,
    });
    let (status, body) = s
        .json(
            "/v1/chat/completions",
            json!({"model": "llama", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server busy")
    );
    s.gateway.shutdown().await.unwrap();
}
