//! Claude on Vertex AI (`VertexClaude`) against the testkit's Vertex mock over loopback
//! HTTP: the `rawPredict` / `streamRawPredict` paths, the Vertex body (no `model`,
//! `anthropic_version`), the OAuth token shared with Vertex Gemini deployments, tool calls,
//! and errors in both Google's and Anthropic's shapes.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, DeploymentSettings, Error, ErrorKind, FinishReason,
    Message, Provider, Role, Secret,
};
use llmux_provider_gemini::{Gemini, VertexClaude};
use llmux_testkit::{AnthropicMock, Fault, GeminiMock};
use serde_json::{Value, json};

/// A throwaway 2048-bit RSA key made with `openssl genrsa` for these tests only.
const TEST_ONLY_KEY: &str = include_str!("fixtures/test_only_throwaway_rsa_key.pem");
const SA_EMAIL: &str = "llmux-test@test-project.iam.gserviceaccount.com";
const MODEL: &str = "claude-sonnet-4-5@20250929";
const CLAUDE_PATH: &str = "/v1/projects/test-project/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4-5@20250929";

fn settings(mock: &GeminiMock, model: &str) -> DeploymentSettings {
    let key = json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-key-1",
        "private_key": TEST_ONLY_KEY,
        "client_email": SA_EMAIL,
        "client_id": "1234567890",
        "token_uri": mock.token_url()
    });
    let mut s = DeploymentSettings::new("vertex_ai", model);
    s.api_base = Some(mock.base_url());
    s.params
        .insert("vertex_location".into(), json!("europe-west4"));
    s.params
        .insert("vertex_credentials".into(), Value::String(key.to_string()));
    s
}

fn claude(mock: &GeminiMock) -> VertexClaude {
    VertexClaude::new(&settings(mock, MODEL)).unwrap()
}

fn cx() -> CallContext {
    CallContext {
        request_id: "req-1".into(),
        ..CallContext::default()
    }
}

fn hello() -> ChatRequest {
    ChatRequest::new("client-name")
        .system("Be brief.")
        .user("hello there world")
}

fn with_tool(text: &str) -> ChatRequest {
    let mut req = ChatRequest::new("m").user(text);
    req.tools = Some(vec![
        serde_json::from_value(json!({"type": "function", "function": {
            "name": "lookup", "description": "Look something up",
            "parameters": {"type": "object",
                "properties": {"input": {"type": "string"}}, "required": ["input"]}}}))
        .unwrap(),
    ]);
    req
}

async fn collect(p: &dyn Provider, req: ChatRequest) -> Vec<Result<ChatChunk, Error>> {
    let mut s = p.chat_stream(req, &cx()).await.unwrap();
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    items
}

fn ok_chunks(items: Vec<Result<ChatChunk, Error>>) -> Vec<ChatChunk> {
    items.into_iter().map(Result::unwrap).collect()
}

fn text_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect()
}

#[tokio::test]
async fn plain_call_posts_the_vertex_body_to_raw_predict() {
    let mock = GeminiMock::start().await;
    let mut s = settings(&mock, MODEL);
    s.headers.insert("anthropic-beta".into(), "beta-a".into());
    s.headers.insert("x-extra".into(), "yes".into());
    s.params.insert("max_output_tokens".into(), json!(1000));
    let p = VertexClaude::new(&s).unwrap();
    let mut c = cx();
    c.headers
        .push(("anthropic-beta".into(), "beta-b, beta-a".into()));
    let resp = p.chat(hello(), &c).await.unwrap();
    assert_eq!(resp.text(), Some("hello there world"));
    assert_eq!(resp.model, MODEL);
    assert_eq!(resp.id, "msg_vrtx_01MockClaudeMessage0001");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = resp.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 3));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, format!("{CLAUDE_PATH}:rawPredict"));
    assert_eq!(r.header("authorization"), Some("Bearer ya29.mock-token-1"));
    assert_eq!(r.header("anthropic-beta"), Some("beta-a,beta-b"));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert!(r.header("x-goog-api-key").is_none());
    assert!(r.header("x-api-key").is_none());
    assert!(r.body.get("model").is_none(), "{}", r.body);
    assert!(r.body.get("stream").is_none(), "{}", r.body);
    assert_eq!(r.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(r.body["system"], "Be brief.");
    assert_eq!(r.body["max_tokens"], 1000);
    assert_eq!(
        r.body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello there world"}]}])
    );
    assert_eq!(mock.token_requests(), 1);
}

#[tokio::test]
async fn streamed_call_uses_stream_raw_predict_and_ends_with_usage() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    let chunks = ok_chunks(collect(&p, hello()).await);
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert_eq!(text_of(&chunks), "hello there world");
    assert!(chunks.iter().all(|c| c.model == MODEL));
    let n = chunks.len();
    assert_eq!(
        chunks[n - 2].choices[0].finish_reason,
        Some(FinishReason::Stop)
    );
    let last = &chunks[n - 1];
    assert!(last.is_usage_only());
    let usage = last.usage.as_ref().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 3));

    let r = &mock.requests()[0];
    assert_eq!(r.path, format!("{CLAUDE_PATH}:streamRawPredict"));
    assert_eq!(r.header("authorization"), Some("Bearer ya29.mock-token-1"));
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["anthropic_version"], "vertex-2023-10-16");
    assert!(r.body.get("model").is_none(), "{}", r.body);
    assert_eq!(mock.completed_streams(), 1);
}

#[tokio::test]
async fn one_token_for_claude_and_gemini_deployments_of_one_account() {
    let mock = GeminiMock::start().await;
    let claude = claude(&mock);
    let gemini = Gemini::vertex_ai(&settings(&mock, "gemini-2.5-flash")).unwrap();
    // Built through the registry, as the gateway does: the same account, the same token.
    let factory = llmux_core::find_provider("vertex_ai").unwrap();
    let haiku = (factory.build)(&settings(&mock, "claude-haiku-4-5@20251001")).unwrap();
    assert_eq!(haiku.model(), "claude-haiku-4-5@20251001");
    let c = cx();
    let calls = (0..4).flat_map(|_| {
        [
            claude.chat(hello(), &c),
            gemini.chat(hello(), &c),
            haiku.chat(hello(), &c),
        ]
    });
    for r in join_all(calls).await {
        assert_eq!(r.unwrap().text(), Some("hello there world"));
    }
    let streamed = ok_chunks(collect(&claude, hello()).await);
    assert!(streamed.last().unwrap().is_usage_only());
    assert_eq!(mock.token_requests(), 1);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 13);
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization") == Some("Bearer ya29.mock-token-1")),
        "{reqs:#?}"
    );
    let paths = |needle: &str| reqs.iter().filter(|r| r.path.contains(needle)).count();
    assert_eq!(
        paths("/publishers/anthropic/models/claude-sonnet-4-5@20250929:"),
        5
    );
    assert_eq!(
        paths("/publishers/anthropic/models/claude-haiku-4-5@20251001:rawPredict"),
        4
    );
    assert_eq!(
        paths("/publishers/google/models/gemini-2.5-flash:generateContent"),
        4
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed() {
    let mock = GeminiMock::start().await;
    mock.set_token_expires_in(1);
    let p = claude(&mock);
    p.chat(hello(), &cx()).await.unwrap();
    // The mock stops accepting the first token after a second: reusing it would be a 401.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(mock.token_requests(), 2);
    assert_eq!(
        mock.requests()[1].header("authorization"),
        Some("Bearer ya29.mock-token-2")
    );
}

#[tokio::test]
async fn a_pre_issued_token_on_the_global_endpoint() {
    let mock = GeminiMock::start().await;
    mock.accept_access_token("ya29.pre-issued");
    let mut s = DeploymentSettings::new("vertex_ai", "claude-opus-4-1@20250805");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("ya29.pre-issued"));
    s.params.insert("vertex_project".into(), json!("p-1"));
    s.params.insert("vertex_location".into(), json!("global"));
    let p = VertexClaude::new(&s).unwrap();
    p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(mock.token_requests(), 0);
    let r = &mock.requests()[0];
    assert_eq!(
        r.path,
        "/v1/projects/p-1/locations/global/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict"
    );
    assert_eq!(r.header("authorization"), Some("Bearer ya29.pre-issued"));
}

#[tokio::test]
async fn tool_calls_plain_round_trip_and_streamed() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    let req = with_tool("call tool paris weather");
    let resp = p.chat(req.clone(), &cx()).await.unwrap();
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let call = choice.message.tool_calls.as_ref().unwrap()[0].clone();
    assert_eq!(call.id, "toolu_vrtx_01MockToolUse0001");
    assert_eq!(call.function.name, "lookup");
    assert_eq!(call.function.arguments, r#"{"input":"paris weather"}"#);
    assert_eq!(
        mock.requests()[0].body["tools"][0]["input_schema"]["properties"]["input"]["type"],
        "string"
    );

    let mut next = req;
    let mut assistant = Message::assistant("");
    assistant.content = None;
    assistant.tool_calls = Some(vec![call.clone()]);
    next.messages.push(assistant);
    next.messages
        .push(Message::tool(call.id.clone(), r#"{"forecast":"sunny"}"#));
    let resp = p.chat(next, &cx()).await.unwrap();
    assert_eq!(resp.text(), Some(r#"tool said: {"forecast":"sunny"}"#));
    let sent = &mock.requests()[1].body["messages"];
    assert_eq!(sent[1]["content"][0]["type"], "tool_use");
    assert_eq!(sent[2]["content"][0]["type"], "tool_result");
    assert_eq!(sent[2]["content"][0]["tool_use_id"], call.id);

    // Streamed: Anthropic sends the input in fragments; they reassemble to the same call.
    let chunks = ok_chunks(collect(&p, with_tool("call tool rome in may")).await);
    let deltas: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.clone())
        .flatten()
        .collect();
    assert!(deltas.len() > 2, "fragments expected: {deltas:?}");
    assert!(deltas.iter().all(|d| d.index == 0));
    assert_eq!(
        deltas[0].id.as_deref(),
        Some("toolu_vrtx_01MockToolUse0001")
    );
    let f = deltas[0].function.as_ref().unwrap();
    assert_eq!(f.name.as_deref(), Some("lookup"));
    let args: String = deltas
        .iter()
        .filter_map(|d| d.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, r#"{"input":"rome in may"}"#);
    let finishes: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finishes, [FinishReason::ToolCalls]);
    assert!(chunks.last().unwrap().is_usage_only());
    assert_eq!(mock.requests()[2].body["stream"], true);
}

#[tokio::test]
async fn anthropic_shaped_errors() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    mock.push_fault(Fault::Status {
        status: 529,
        body: AnthropicMock::error_body("overloaded_error", "Overloaded"),
        retry_after: None,
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    assert_eq!(e.upstream_status(), Some(529));
    assert!(e.is_retryable());
    assert!(e.message().contains("Overloaded"), "{}", e.message());

    // On a stream the error comes before any chunk.
    mock.push_fault(Fault::Status {
        status: 529,
        body: AnthropicMock::error_body("overloaded_error", "Overloaded"),
        retry_after: None,
    });
    let e = p.chat_stream(hello(), &cx()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);

    // Anthropic's own wording for an overlong prompt (Google's shape would not say so).
    mock.push_fault(Fault::Status {
        status: 400,
        body: AnthropicMock::error_body(
            "invalid_request_error",
            "prompt is too long: 250000 tokens > 200000 maximum",
        ),
        retry_after: None,
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextWindowExceeded);

    // The access token never shows in an error.
    mock.push_fault(Fault::Status {
        status: 400,
        body: AnthropicMock::error_body(
            "invalid_request_error",
            "bad request with token ya29.mock-token-1 attached",
        ),
        retry_after: None,
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert!(
        e.message().contains("bad request with token"),
        "{}",
        e.message()
    );
    assert!(
        !e.message().contains("ya29.mock-token-1"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn google_shaped_errors() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    let quota = |details: Value| {
        json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": details,
            "message": "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model"}})
    };
    mock.push_fault(Fault::Status {
        status: 429,
        body: quota(json!([])),
        retry_after: Some(3),
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(e.message().contains("Quota exceeded"), "{}", e.message());

    // Without the header, Google's RetryInfo detail says when to retry.
    mock.push_fault(Fault::Status {
        status: 429,
        body: quota(json!([
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
        ])),
        retry_after: None,
    });
    let e = p.chat_stream(hello(), &cx()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));

    // A token Vertex does not accept: Google's UNAUTHENTICATED, an auth error.
    let mut s = DeploymentSettings::new("vertex_ai", MODEL);
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("ya29.never-issued"));
    s.params.insert("vertex_project".into(), json!("p-1"));
    let e = VertexClaude::new(&s)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.upstream_status(), Some(401));
}

#[tokio::test]
async fn broken_stream_and_truncated_answer_are_upstream_errors() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    mock.push_fault(Fault::BrokenStream { after_chunks: 4 });
    let mut items = collect(&p, hello()).await;
    let last = items.pop().unwrap();
    assert_eq!(last.unwrap_err().kind(), ErrorKind::UpstreamError);
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| i.as_ref().is_ok_and(|c| !c.is_usage_only()))
    );

    mock.push_fault(Fault::TruncatedJson);
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}

#[tokio::test]
async fn embeddings_are_unsupported() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    let req = llmux_core::EmbeddingRequest {
        model: "m".into(),
        input: llmux_core::EmbeddingInput::Text("x".into()),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: Default::default(),
    };
    let e = p.embed(req, &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.code(), Some("unsupported_operation"));
    assert!(mock.requests().is_empty());
}

/// The mock holds Vertex's line: this is what makes the tests above meaningful.
#[tokio::test]
async fn the_mock_refuses_what_vertex_refuses() {
    let mock = GeminiMock::start().await;
    mock.accept_access_token("ya29.ok");
    let url = format!("{}{CLAUDE_PATH}:rawPredict", mock.base_url());
    let post = |body: Value, token: &str| {
        llmux_http::client()
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let good = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = post(good.clone(), "ya29.ok").await.unwrap();
    assert_eq!(r.status(), 200);

    let mut with_model = good.clone();
    with_model["model"] = json!(MODEL);
    let mut old_version = good.clone();
    old_version["anthropic_version"] = json!("2023-06-01");
    let mut streamed = good.clone();
    streamed["stream"] = json!(true);
    for body in [with_model, old_version, streamed] {
        let r = post(body.clone(), "ya29.ok").await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    let r = post(good, "ya29.unknown").await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
}

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

/// What the gateway's Python end-to-end check sends: a tool result followed by more user
/// text, an image, JSON mode.
#[tokio::test]
async fn openai_client_shapes_round_trip() {
    let mock = GeminiMock::start().await;
    let p = claude(&mock);
    let weather = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
            "required": ["query"]}}}]);
    let resp = p
        .chat(
            request(
                json!({"model": "m", "max_tokens": 64, "tools": weather, "messages": [
                {"role": "user", "content": "call tool weather in Paris"}]}),
            ),
            &cx(),
        )
        .await
        .unwrap();
    let call = resp.choices[0]
        .message
        .tool_calls
        .clone()
        .unwrap()
        .remove(0);
    assert_eq!(call.function.name, "get_weather");
    let resp = p
        .chat(
            request(
                json!({"model": "m", "max_tokens": 64, "tools": weather, "messages": [
                {"role": "user", "content": "call tool weather in Paris"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "toolu_vrtx_01MockToolUse0001",
                    "content": "18C and sunny"},
                {"role": "user", "content": "thanks"}]}),
            ),
            &cx(),
        )
        .await
        .unwrap();
    assert_eq!(resp.text(), Some("thanks"));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));

    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let resp = p
        .chat(
            request(
                json!({"model": "m", "max_tokens": 64, "messages": [{"role": "user",
                "content": [{"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": png}}]}]}),
            ),
            &cx(),
        )
        .await
        .unwrap();
    assert_eq!(resp.text(), Some("describe"));
    assert_eq!(
        mock.requests()[2].body["messages"][0]["content"][1]["source"]["media_type"],
        "image/png"
    );

    // JSON mode is a forced tool; its input comes back as the content.
    let resp = p
        .chat(
            request(json!({"model": "m", "max_tokens": 64,
                "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": "give json"}]})),
            &cx(),
        )
        .await
        .unwrap();
    assert_eq!(resp.text(), Some(r#"{"input":"give json"}"#));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
}
