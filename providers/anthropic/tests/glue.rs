//! The async glue against the testkit's Anthropic mock over loopback HTTP.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, DeploymentSettings, Error, ErrorKind, FinishReason,
    Provider, Secret,
};
use llmux_provider_anthropic::Anthropic;
use llmux_testkit::{AnthropicMock, Fault};
use serde_json::json;

const KEY: &str = "sk-ant-api03-test-key-0123456789";

fn settings(mock: &AnthropicMock, timeout: Option<Duration>) -> DeploymentSettings {
    let mut s = DeploymentSettings::new("anthropic", "claude-sonnet-4-5-20250929");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new(KEY));
    s.headers.insert("x-extra".into(), "yes".into());
    s.headers
        .insert("anthropic-beta".into(), "prompt-caching-2024-07-31".into());
    s.timeout = timeout;
    s
}

fn provider(mock: &AnthropicMock, timeout: Option<Duration>) -> Anthropic {
    Anthropic::new(&settings(mock, timeout)).unwrap()
}

fn cx() -> CallContext {
    CallContext {
        request_id: "req-1".into(),
        ..CallContext::default()
    }
}

fn hello() -> ChatRequest {
    ChatRequest::new("client-name").user("hello there world")
}

async fn collect(p: &Anthropic, req: ChatRequest) -> Vec<Result<ChatChunk, Error>> {
    let mut s = p.chat_stream(req, &cx()).await.unwrap();
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    items
}

#[tokio::test]
async fn chat_sends_anthropic_headers_and_body() {
    let mock = AnthropicMock::with_api_key(KEY).await;
    let p = provider(&mock, None);
    let mut cx = cx();
    cx.headers = vec![
        (
            "anthropic-beta".into(),
            "context-1m-2025-08-07,prompt-caching-2024-07-31".into(),
        ),
        ("x-call".into(), "1".into()),
    ];
    let resp = p.chat(hello().system("Be brief."), &cx).await.unwrap();
    assert_eq!(resp.text(), Some("hello there world"));
    assert_eq!(resp.model, "claude-sonnet-4-5-20250929");
    assert_eq!(resp.id, "msg_01MockMessage000000000001");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = resp.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (5, 3, 8)
    );
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        r.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31,context-1m-2025-08-07")
    );
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.header("x-call"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("authorization").is_none());
    assert_eq!(r.body["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(r.body["system"], "Be brief.");
    assert_eq!(r.body["max_tokens"], 4096);
    assert!(r.body.get("stream").is_none());
}

#[tokio::test]
async fn deployment_settings_shape_the_call() {
    let mock = AnthropicMock::start().await;
    let mut s = settings(&mock, None);
    s.api_version = Some("2024-10-22".into());
    s.params.insert("max_output_tokens".into(), json!(64000));
    let p = Anthropic::new(&s).unwrap();
    let req = ChatRequest::new("c").message(
        serde_json::from_value(json!({"role": "user", "content": [
            {"type": "text", "text": "read this"},
            {"type": "file", "file": {"file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}}]}))
        .unwrap(),
    );
    p.chat(req, &cx()).await.unwrap();
    let r = &mock.requests()[0];
    assert_eq!(r.header("anthropic-version"), Some("2024-10-22"));
    // The files beta is added because the body references an uploaded file.
    assert_eq!(
        r.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31,files-api-2025-04-14")
    );
    assert_eq!(r.body["max_tokens"], 64000);
}

#[tokio::test]
async fn stream_reassembles_and_ends_with_usage() {
    let mock = AnthropicMock::start().await;
    let p = provider(&mock, None);
    let mut req = hello();
    req.stream = Some(true);
    let items = collect(&p, req).await;
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(text, "hello there world");
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finish, [FinishReason::Stop]);
    let last = chunks.last().unwrap();
    assert!(last.is_usage_only());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 6);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
    assert_eq!(mock.requests()[0].body["stream"], true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mock.completed_streams(), 1);
}

#[tokio::test]
async fn tool_calls_plain_and_streamed() {
    let mock = AnthropicMock::start().await;
    let p = provider(&mock, None);
    let req: ChatRequest = serde_json::from_value(json!({"model": "c",
        "messages": [{"role": "user", "content": "call tool for Paris"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}))
    .unwrap();
    let resp = p.chat(req.clone(), &cx()).await.unwrap();
    let calls = resp.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, r#"{"city":"mock"}"#);
    assert_eq!(calls[0].id, "toolu_01MockToolUse0000000001");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(resp.choices[0].message.content, None);

    let chunks: Vec<ChatChunk> = collect(&p, req)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut args = String::new();
    for tc in chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
    {
        assert_eq!(tc.index, 0);
        args.push_str(
            tc.function
                .as_ref()
                .and_then(|f| f.arguments.as_deref())
                .unwrap_or(""),
        );
    }
    assert_eq!(args, r#"{"city":"mock"}"#);
}

#[tokio::test]
async fn json_mode_and_thinking_round_trip() {
    let mock = AnthropicMock::start().await;
    let p = provider(&mock, None);
    let req: ChatRequest = serde_json::from_value(json!({"model": "c",
        "messages": [{"role": "user", "content": "weather as json"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "w",
            "schema": {"type": "object", "properties": {"city": {"type": "string"},
                "temp": {"type": "number"}}}}}}))
    .unwrap();
    let resp = p.chat(req, &cx()).await.unwrap();
    assert_eq!(resp.text(), Some(r#"{"city":"mock","temp":1}"#));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));

    let mut req = hello();
    req.reasoning_effort = Some("low".into());
    let resp = p.chat(req.clone(), &cx()).await.unwrap();
    let msg = &resp.choices[0].message;
    assert_eq!(
        msg.reasoning_content.as_deref(),
        Some("The user said: hello there world")
    );
    assert_eq!(msg.extra["thinking_blocks"][0]["type"], "thinking");
    assert!(
        msg.extra["thinking_blocks"][0]["signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        mock.requests()[1].body["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );

    let chunks: Vec<ChatChunk> = collect(&p, req)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let reasoning: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.reasoning_content.clone())
        .collect();
    assert_eq!(reasoning, "The user said: hello there world");
    let block = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .find_map(|c| c.delta.extra.get("thinking_blocks"))
        .expect("the thinking block with its signature");
    assert_eq!(block[0]["thinking"], "The user said: hello there world");
}

#[tokio::test]
async fn wrong_key_is_auth_and_never_leaks() {
    let mock = AnthropicMock::with_api_key("sk-ant-the-right-key").await;
    let p = provider(&mock, None);
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.upstream_status(), Some(401));
    assert!(!e.message().contains(KEY));
    assert!(!format!("{e:?}").contains(KEY));
}

#[tokio::test]
async fn upstream_faults_map_to_kinds() {
    let mock = AnthropicMock::start().await;
    let p = provider(&mock, Some(Duration::from_millis(300)));
    mock.push_fault(Fault::Status {
        status: 429,
        body: AnthropicMock::error_body(
            "rate_limit_error",
            "Number of requests has exceeded your per-minute rate limit",
        ),
        retry_after: Some(3),
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(e.is_retryable());

    mock.push_fault(Fault::Status {
        status: 529,
        body: AnthropicMock::error_body("overloaded_error", "Overloaded"),
        retry_after: None,
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    assert_eq!(e.message(), "anthropic: Overloaded");

    mock.push_fault(Fault::Status {
        status: 400,
        body: AnthropicMock::error_body(
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum",
        ),
        retry_after: None,
    });
    assert_eq!(
        p.chat(hello(), &cx()).await.unwrap_err().kind(),
        ErrorKind::ContextWindowExceeded
    );

    mock.push_fault(Fault::Delay(Duration::from_secs(5)));
    assert_eq!(
        p.chat(hello(), &cx()).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );

    mock.push_fault(Fault::TruncatedJson);
    assert_eq!(
        p.chat(hello(), &cx()).await.unwrap_err().kind(),
        ErrorKind::UpstreamError
    );

    // An error status on a streamed call is returned before any chunk.
    mock.push_fault(Fault::Status {
        status: 529,
        body: AnthropicMock::error_body("overloaded_error", "Overloaded"),
        retry_after: None,
    });
    let e = p.chat_stream(hello(), &cx()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);

    // A bad request never reaches the upstream.
    let before = mock.requests().len();
    let mut bad = hello();
    bad.n = Some(2);
    assert_eq!(
        p.chat(bad, &cx()).await.unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    assert_eq!(mock.requests().len(), before);
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_item() {
    let mock = AnthropicMock::start().await;
    let p = provider(&mock, None);
    mock.push_fault(Fault::BrokenStream { after_chunks: 3 });
    let mut items = collect(&p, hello()).await;
    let last = items.pop().unwrap();
    assert_eq!(last.unwrap_err().kind(), ErrorKind::UpstreamError);
    assert!(!items.is_empty());
    assert!(items.iter().all(Result::is_ok));
    assert!(items.iter().all(|c| c.as_ref().unwrap().usage.is_none()));
}

#[tokio::test]
async fn dropping_a_stream_cancels_the_upstream() {
    let mock = AnthropicMock::start().await;
    let p = provider(&mock, None);
    mock.push_fault(Fault::SlowStream {
        chunks: 3,
        delay: Duration::from_millis(200),
    });
    let mut s = p.chat_stream(hello(), &cx()).await.unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(
        first.choices[0].delta.role,
        Some(llmux_core::Role::Assistant)
    );
    drop(s);
    let mut waited = 0;
    while mock.cancelled_streams() == 0 && waited < 40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(mock.cancelled_streams(), 1);
    assert_eq!(mock.completed_streams(), 0);
}

#[tokio::test]
async fn unreachable_upstream_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = DeploymentSettings::new("anthropic", "claude");
    s.api_base = Some(format!("http://127.0.0.1:{port}"));
    let p = Anthropic::new(&s).unwrap();
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    assert!(!e.message().contains("127.0.0.1"), "{}", e.message());
}
