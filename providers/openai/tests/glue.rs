//! The async glue against the testkit's OpenAI mock over loopback HTTP.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatRequest, DeploymentSettings, EmbeddingInput, EmbeddingRequest, ErrorKind,
    Provider, Secret,
};
use llmux_provider_openai::{DEFAULT_API_BASE, OpenAi};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::json;

fn provider(mock: &OpenAiMock, timeout: Option<Duration>) -> OpenAi {
    let mut s = DeploymentSettings::new("openai", "gpt-4o-mini");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("sk-test-key"));
    s.organization = Some("org-42".into());
    s.headers.insert("x-extra".into(), "yes".into());
    s.timeout = timeout;
    OpenAi::new("openai", DEFAULT_API_BASE, &s).unwrap()
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

#[tokio::test]
async fn chat_sends_credentials_and_deployment_model() {
    let mock = OpenAiMock::with_api_key("sk-test-key").await;
    let p = provider(&mock, None);
    let resp = p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(resp.text(), Some("hello there world"));
    assert_eq!(resp.usage.unwrap().completion_tokens, 3);
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(r.header("openai-organization"), Some("org-42"));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.header("x-request-id"), Some("req-1"));
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert!(r.body.get("stream").is_none());
}

#[tokio::test]
async fn stream_always_requests_usage_and_ends_with_it() {
    let mock = OpenAiMock::start().await;
    let p = provider(&mock, None);
    let mut req = hello();
    req.stream = Some(true);
    let mut s = p.chat_stream(req, &cx()).await.unwrap();
    let mut text = String::new();
    let mut last = None;
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        for ch in &c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
        }
        last = Some(c);
    }
    assert_eq!(text, "hello there world");
    let last = last.unwrap();
    assert!(last.is_usage_only());
    assert_eq!(last.usage.unwrap().total_tokens, 6);
    let body = &mock.requests()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn embeddings_and_models() {
    let mock = OpenAiMock::start().await;
    let p = provider(&mock, None);
    let req = EmbeddingRequest {
        model: "emb".into(),
        input: EmbeddingInput::Texts(vec!["a b".into(), "c".into()]),
        encoding_format: None,
        dimensions: Some(4),
        user: None,
        extra: Default::default(),
    };
    let resp = p.embed(req, &cx()).await.unwrap();
    assert_eq!(resp.data.len(), 2);
    assert_eq!(resp.usage.prompt_tokens, 3);
    assert_eq!(mock.requests()[0].body["dimensions"], 4);
    let models = p.list_models(&cx()).await.unwrap();
    assert!(models.data.iter().any(|m| m.id == "gpt-4o"));
}

#[tokio::test]
async fn upstream_faults_map_to_kinds() {
    let mock = OpenAiMock::start().await;
    let p = provider(&mock, Some(Duration::from_millis(300)));
    mock.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}),
        retry_after: Some(3),
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

    mock.push_fault(Fault::Status {
        status: 500,
        body: json!({"error": {"message": "boom", "type": "server_error", "code": null}}),
        retry_after: None,
    });
    assert_eq!(
        p.chat(hello(), &cx()).await.unwrap_err().kind(),
        ErrorKind::UpstreamError
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
        status: 503,
        body: json!({"error": {"message": "overloaded", "type": "server_error", "code": null}}),
        retry_after: None,
    });
    let e = p.chat_stream(hello(), &cx()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_item() {
    let mock = OpenAiMock::start().await;
    let p = provider(&mock, None);
    mock.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let mut s = p.chat_stream(hello(), &cx()).await.unwrap();
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    let last = items.pop().unwrap();
    assert_eq!(last.unwrap_err().kind(), ErrorKind::UpstreamError);
    assert!(items.iter().all(Result::is_ok));
}

#[tokio::test]
async fn unreachable_upstream_is_unavailable() {
    // Bind then drop a listener to get a port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = DeploymentSettings::new("openai", "gpt-4o");
    s.api_base = Some(format!("http://127.0.0.1:{port}/v1"));
    let p = OpenAi::new("openai", DEFAULT_API_BASE, &s).unwrap();
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    assert!(!e.message().contains("127.0.0.1"), "{}", e.message());
}
