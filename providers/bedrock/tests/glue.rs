//! The async glue against the testkit's Bedrock mock over loopback HTTP: the mock checks
//! every SigV4 signature by recomputing it, so each passing call proves the signing.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, DeploymentSettings, EmbeddingRequest, EmbeddingVector,
    Error, ErrorKind, FinishReason, Provider, Secret,
};
use llmux_provider_bedrock::Bedrock;
use llmux_testkit::{BedrockMock, Fault};
use serde_json::json;

const REGION: &str = "us-west-2";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN";
const CLAUDE: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";

async fn mock() -> BedrockMock {
    BedrockMock::with_credentials(REGION, KEY_ID, SECRET, Some(TOKEN)).await
}

fn settings(mock: &BedrockMock, model: &str) -> DeploymentSettings {
    let mut s = DeploymentSettings::new("bedrock", model);
    s.api_base = Some(mock.base_url());
    s.params = json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
        "aws_session_token": TOKEN, "aws_region_name": REGION})
    .as_object()
    .cloned()
    .unwrap();
    s
}

fn provider(mock: &BedrockMock, model: &str) -> Bedrock {
    Bedrock::with_env(&settings(mock, model), &|_| None).unwrap()
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

async fn collect(p: &Bedrock, mut req: ChatRequest) -> Vec<Result<ChatChunk, Error>> {
    req.stream = Some(true);
    let mut s = p.chat_stream(req, &cx()).await.unwrap();
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    items
}

fn text_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect()
}

#[tokio::test]
async fn chat_is_signed_and_answered() {
    let mock = mock().await;
    let p = provider(&mock, CLAUDE);
    let mut cx = cx();
    cx.headers = vec![("X-Call".into(), "1".into())];
    let resp = p.chat(hello().system("Be brief."), &cx).await.unwrap();
    assert_eq!(resp.text(), Some("hello there world"));
    assert_eq!(resp.model, CLAUDE);
    assert_eq!(resp.id, "chatcmpl-5e1f0c0d-0000-4000-8000-000000000001");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    let u = resp.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (5, 3, 8)
    );

    let r = &mock.requests()[0];
    assert_eq!(
        r.path,
        "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let authz = r.header("authorization").unwrap();
    assert!(
        authz.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/")),
        "{authz}"
    );
    assert!(
        authz.contains(&format!("/{REGION}/bedrock/aws4_request, ")),
        "{authz}"
    );
    assert!(
        authz.contains(
            "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token;x-call,"
        ),
        "{authz}"
    );
    assert_eq!(r.header("x-amz-security-token"), Some(TOKEN));
    assert_eq!(r.header("x-call"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        r.body["messages"][0]["content"],
        json!([{"text": "hello there world"}])
    );
}

#[tokio::test]
async fn a_wrong_secret_or_token_is_refused_as_auth() {
    let mock = mock().await;
    let mut s = settings(&mock, CLAUDE);
    s.params
        .insert("aws_secret_access_key".into(), json!("not-the-secret"));
    let e = Bedrock::with_env(&s, &|_| None)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.upstream_status(), Some(403));
    assert!(
        e.message().contains("InvalidSignatureException"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains("not-the-secret"));

    let mut s = settings(&mock, CLAUDE);
    s.params.remove("aws_session_token");
    let e = Bedrock::with_env(&s, &|_| None)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(
        e.message().contains("UnrecognizedClientException"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn a_bedrock_api_key_is_sent_as_a_bearer_token() {
    let mock = mock().await;
    mock.accept_bearer_token("ABSKbedrock-api-key-0001");
    let mut s = DeploymentSettings::new("bedrock", "amazon.nova-lite-v1:0");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("ABSKbedrock-api-key-0001"));
    s.params.insert("aws_region_name".into(), json!(REGION));
    let p = Bedrock::with_env(&s, &|_| None).unwrap();
    assert_eq!(
        p.chat(hello(), &cx()).await.unwrap().text(),
        Some("hello there world")
    );
    let r = &mock.requests()[0];
    assert_eq!(
        r.header("authorization"),
        Some("Bearer ABSKbedrock-api-key-0001")
    );
    assert!(r.header("x-amz-date").is_none());
}

#[tokio::test]
async fn an_arn_model_id_travels_encoded_and_signed() {
    let mock = mock().await;
    let arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
    let p = provider(&mock, arn);
    let resp = p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(resp.model, arn);
    assert_eq!(
        mock.requests()[0].path,
        "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
    );
}

#[tokio::test]
async fn stream_reassembles_and_ends_with_usage() {
    let mock = mock().await;
    let p = provider(&mock, CLAUDE);
    let chunks: Vec<ChatChunk> = collect(&p, hello())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(text_of(&chunks), "hello there world");
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finish, [FinishReason::Stop]);
    let last = chunks.last().unwrap();
    assert!(last.is_usage_only());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 6);
    let r = &mock.requests()[0];
    assert!(r.path.ends_with("-v1%3A0/converse-stream"), "{}", r.path);
    assert_eq!(
        r.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mock.completed_streams(), 1);
}

#[tokio::test]
async fn tool_calls_and_reasoning_plain_and_streamed() {
    let mock = mock().await;
    let p = provider(&mock, CLAUDE);
    let req: ChatRequest = serde_json::from_value(json!({"model": "c",
        "messages": [{"role": "user", "content": "call tool weather"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "reasoning_effort": "low"}))
    .unwrap();
    let resp = p.chat(req.clone(), &cx()).await.unwrap();
    let m = &resp.choices[0].message;
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let calls = m.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, r#"{"city":"mock"}"#);
    assert_eq!(
        m.reasoning_content.as_deref(),
        Some("The user said: call tool weather")
    );
    assert_eq!(m.extra["thinking_blocks"][0]["type"], "thinking");
    let sent = &mock.requests()[0].body;
    assert_eq!(
        sent["additionalModelRequestFields"]["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );

    let chunks: Vec<ChatChunk> = collect(&p, req)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut args = String::new();
    let mut reasoning = String::new();
    for ch in chunks.iter().flat_map(|c| &c.choices) {
        reasoning.push_str(ch.delta.reasoning_content.as_deref().unwrap_or(""));
        for tc in ch.delta.tool_calls.iter().flatten() {
            args.push_str(
                tc.function
                    .as_ref()
                    .and_then(|f| f.arguments.as_deref())
                    .unwrap_or(""),
            );
        }
    }
    assert_eq!(args, r#"{"city":"mock"}"#);
    assert_eq!(reasoning, "The user said: call tool weather");
}

#[tokio::test]
async fn stream_exceptions_and_corrupt_frames_end_the_stream_with_an_error() {
    let mock = mock().await;
    let p = provider(&mock, CLAUDE);
    mock.push_stream_exception(
        2,
        "throttlingException",
        "Too many tokens, please wait before trying again.",
    );
    let items = collect(&p, hello()).await;
    let (last, before) = items.split_last().unwrap();
    assert!(before.iter().all(Result::is_ok));
    assert_eq!(before.len(), 2);
    let e = last.as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.message().contains("Too many tokens"));

    mock.push_corrupt_frame(3);
    let items = collect(&p, hello()).await;
    let e = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    assert!(e.message().contains("corrupt"), "{}", e.message());
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 3);

    mock.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let items = collect(&p, hello()).await;
    assert_eq!(
        items.last().unwrap().as_ref().unwrap_err().kind(),
        ErrorKind::UpstreamError
    );
}

#[tokio::test]
async fn upstream_errors_map_with_retry_after() {
    let mock = mock().await;
    let p = provider(&mock, CLAUDE);
    mock.push_fault(Fault::Status {
        status: 429,
        body: BedrockMock::error_body("ThrottlingException", "Too many requests"),
        retry_after: Some(3),
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    mock.push_fault(Fault::Status {
        status: 400,
        body: BedrockMock::error_body(
            "ValidationException",
            "Input is too long for requested model.",
        ),
        retry_after: None,
    });
    let mut req = hello();
    req.stream = Some(true);
    let e = p.chat_stream(req, &cx()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::ContextWindowExceeded);
    mock.push_fault(Fault::TruncatedJson);
    assert_eq!(
        p.chat(hello(), &cx()).await.unwrap_err().kind(),
        ErrorKind::UpstreamError
    );
    mock.push_fault(Fault::Delay(Duration::from_millis(500)));
    let mut short = cx();
    short.timeout = Some(Duration::from_millis(100));
    assert_eq!(
        p.chat(hello(), &short).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
    // The mock's own validation comes back as a Bedrock 400.
    let bad: ChatRequest = serde_json::from_value(json!({"model": "c", "messages": [
        {"role": "assistant", "content": "I start"}]}))
    .unwrap();
    let e = p.chat(bad, &cx()).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.upstream_status()),
        (ErrorKind::BadRequest, Some(400))
    );
}

#[tokio::test]
async fn titan_and_cohere_embeddings() {
    let mock = mock().await;
    let titan = provider(&mock, "amazon.titan-embed-text-v2:0");
    let req: EmbeddingRequest = serde_json::from_value(json!({"model": "e",
        "input": ["one two three", "four"], "dimensions": 256}))
    .unwrap();
    let r = titan.embed(req, &cx()).await.unwrap();
    assert_eq!(r.data.len(), 2);
    assert_eq!((r.data[0].index, r.data[1].index), (0, 1));
    let EmbeddingVector::Float(v) = &r.data[0].embedding else {
        panic!("floats expected")
    };
    assert_eq!(v.len(), 256);
    assert_eq!(r.usage.prompt_tokens, 4);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter()
            .all(|r| r.path == "/model/amazon.titan-embed-text-v2%3A0/invoke")
    );
    let mut inputs: Vec<&str> = reqs
        .iter()
        .filter_map(|r| r.body["inputText"].as_str())
        .collect();
    inputs.sort_unstable();
    assert_eq!(inputs, ["four", "one two three"]);

    let cohere = provider(&mock, "cohere.embed-english-v3");
    let req: EmbeddingRequest = serde_json::from_value(json!({"model": "e",
        "input": ["alpha beta", "gamma"], "encoding_format": "base64"}))
    .unwrap();
    let r = cohere.embed(req, &cx()).await.unwrap();
    assert_eq!(r.data.len(), 2);
    assert!(matches!(&r.data[1].embedding, EmbeddingVector::Base64(b) if b.len() == 5464));
    assert_eq!(r.usage.prompt_tokens, 3);
    let last = mock.requests().pop().unwrap();
    assert_eq!(
        last.body,
        json!({"texts": ["alpha beta", "gamma"], "input_type": "search_document"})
    );

    let chat_model = provider(&mock, CLAUDE);
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "e", "input": "x"})).unwrap();
    let e = chat_model.embed(req, &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
}
