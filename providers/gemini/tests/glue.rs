//! The async glue against the testkit's Gemini / Vertex AI mock over loopback HTTP.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::join_all;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, DeploymentSettings, EmbeddingInput, EmbeddingRequest,
    EmbeddingVector, Error, ErrorKind, FinishReason, Message, Provider, Secret,
};
use llmux_provider_gemini::Gemini;
use llmux_testkit::{Fault, GeminiMock};
use serde_json::{Value, json};

const KEY: &str = "AIza-test-key-0123456789";
/// A throwaway 2048-bit RSA key made with `openssl genrsa` for these tests only.
const TEST_ONLY_KEY: &str = include_str!("fixtures/test_only_throwaway_rsa_key.pem");
const SA_EMAIL: &str = "llmux-test@test-project.iam.gserviceaccount.com";

fn gemini(mock: &GeminiMock, timeout: Option<Duration>) -> Gemini {
    let mut s = DeploymentSettings::new("gemini", "gemini-2.0-flash");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new(KEY));
    s.headers.insert("x-extra".into(), "yes".into());
    s.timeout = timeout;
    Gemini::gemini_api(&s).unwrap()
}

fn service_account(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-key-1",
        "private_key": TEST_ONLY_KEY,
        "client_email": SA_EMAIL,
        "client_id": "1234567890",
        "token_uri": token_uri
    })
    .to_string()
}

fn vertex_settings(mock: &GeminiMock, model: &str) -> DeploymentSettings {
    let mut s = DeploymentSettings::new("vertex_ai", model);
    s.api_base = Some(mock.base_url());
    s.params
        .insert("vertex_location".into(), json!("europe-west4"));
    s.params.insert(
        "vertex_credentials".into(),
        Value::String(service_account(&mock.token_url())),
    );
    s
}

fn vertex(mock: &GeminiMock) -> Gemini {
    Gemini::vertex_ai(&vertex_settings(mock, "gemini-2.5-flash")).unwrap()
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

async fn collect(p: &Gemini, req: ChatRequest) -> Vec<Result<ChatChunk, Error>> {
    let mut s = p.chat_stream(req, &cx()).await.unwrap();
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    items
}

#[tokio::test]
async fn chat_sends_the_key_in_a_header_never_in_the_url() {
    let mock = GeminiMock::with_api_key(KEY).await;
    let p = gemini(&mock, None);
    let resp = p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(resp.text(), Some("hello there world"));
    assert_eq!(resp.model, "gemini-2.0-flash");
    assert_eq!(resp.id, "mock-resp-1");
    let usage = resp.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 3));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert!(!r.path.contains("key="));
    assert!(!r.path.contains(KEY));
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.body["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(r.body["contents"][0]["role"], "user");
    assert!(r.body.get("model").is_none());
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_that_does_not_echo_it() {
    let mock = GeminiMock::with_api_key("AIza-the-right-one").await;
    let p = gemini(&mock, None);
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.upstream_status(), Some(400));
    assert!(!e.message().contains(KEY), "{}", e.message());
    let mut s = DeploymentSettings::new("gemini", "gemini-2.0-flash");
    s.api_base = Some(mock.base_url());
    let e = Gemini::gemini_api(&s)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Permission);
}

#[tokio::test]
async fn stream_ends_with_usage_only_chunk() {
    let mock = GeminiMock::start().await;
    let p = gemini(&mock, None);
    let items = collect(&p, hello()).await;
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        chunks[0].choices[0].delta.role,
        Some(llmux_core::Role::Assistant)
    );
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "hello there world");
    assert!(chunks.iter().all(|c| c.id == "mock-resp-1"));
    let n = chunks.len();
    assert_eq!(
        chunks[n - 2].choices[0].finish_reason,
        Some(FinishReason::Stop)
    );
    let last = &chunks[n - 1];
    assert!(last.is_usage_only());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 8);
    let r = &mock.requests()[0];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(mock.completed_streams(), 1);
}

fn with_tool(text: &str) -> ChatRequest {
    let mut req = ChatRequest::new("m").user(text);
    req.tools = Some(vec![
        serde_json::from_value(json!({"type": "function", "function": {
            "name": "lookup", "description": "Look something up",
            "parameters": {"type": "object", "additionalProperties": false,
                "properties": {"input": {"type": "string"}}, "required": ["input"]}}}))
        .unwrap(),
    ]);
    req
}

#[tokio::test]
async fn tool_call_round_trip() {
    let mock = GeminiMock::start().await;
    let p = gemini(&mock, None);
    let req = with_tool("call tool paris weather");
    let resp = p.chat(req.clone(), &cx()).await.unwrap();
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let call = choice.message.tool_calls.as_ref().unwrap()[0].clone();
    assert_eq!(call.function.name, "lookup");
    assert_eq!(call.function.arguments, r#"{"input":"paris weather"}"#);
    assert!(call.id.starts_with("call_"));
    let declared = &mock.requests()[0].body["tools"][0]["functionDeclarations"][0];
    assert!(declared["parameters"].get("additionalProperties").is_none());

    let mut next = req;
    let mut assistant = Message::assistant("");
    assistant.content = None;
    assistant.tool_calls = Some(vec![call.clone()]);
    next.messages.push(assistant);
    next.messages
        .push(Message::tool(call.id.clone(), r#"{"forecast":"sunny"}"#));
    let resp = p.chat(next.clone(), &cx()).await.unwrap();
    assert_eq!(resp.text(), Some(r#"tool said: {"forecast":"sunny"}"#));
    let sent = &mock.requests()[1].body["contents"];
    assert_eq!(
        sent[2]["parts"][0]["functionResponse"],
        json!({"name": "lookup", "response": {"forecast": "sunny"}})
    );

    // Streamed, the call arrives whole with its index, then a tool_calls finish.
    let chunks: Vec<ChatChunk> = collect(&p, with_tool("call tool rome"))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let deltas: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.clone())
        .flatten()
        .collect();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].index, 0);
    assert_eq!(
        deltas[0].function.as_ref().unwrap().arguments.as_deref(),
        Some(r#"{"input":"rome"}"#)
    );
    assert!(chunks.iter().any(|c| {
        c.choices
            .iter()
            .any(|ch| ch.finish_reason == Some(FinishReason::ToolCalls))
    }));
}

#[tokio::test]
async fn thoughts_become_reasoning_content() {
    let mock = GeminiMock::start().await;
    let p = gemini(&mock, None);
    let mut req = ChatRequest::new("m").user("why is the sky blue");
    req.reasoning_effort = Some("medium".into());
    let resp = p.chat(req.clone(), &cx()).await.unwrap();
    let m = &resp.choices[0].message;
    assert_eq!(m.content.as_deref(), Some("why is the sky blue"));
    assert_eq!(
        m.reasoning_content.as_deref(),
        Some("Thinking about: why is the sky blue")
    );
    let usage = resp.usage.unwrap();
    assert_eq!(usage.reasoning_tokens(), 7);
    assert_eq!(usage.completion_tokens, 5 + 7);
    assert_eq!(
        mock.requests()[0].body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    let reasoning: String = collect(&p, req)
        .await
        .into_iter()
        .map(Result::unwrap)
        .flat_map(|c| c.choices)
        .filter_map(|c| c.delta.reasoning_content)
        .collect();
    assert_eq!(reasoning, "Thinking about: why is the sky blue");
}

fn embedding(input: EmbeddingInput, dims: Option<u32>) -> EmbeddingRequest {
    EmbeddingRequest {
        model: "emb".into(),
        input,
        encoding_format: None,
        dimensions: dims,
        user: None,
        extra: serde_json::from_value(json!({"task_type": "RETRIEVAL_DOCUMENT"})).unwrap(),
    }
}

fn floats(v: &EmbeddingVector) -> &[f32] {
    match v {
        EmbeddingVector::Float(f) => f,
        EmbeddingVector::Base64(_) => panic!("floats expected"),
    }
}

#[tokio::test]
async fn embeddings_single_and_batch() {
    let mock = GeminiMock::with_api_key(KEY).await;
    let mut s = DeploymentSettings::new("gemini", "gemini-embedding-001");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new(KEY));
    let p = Gemini::gemini_api(&s).unwrap();

    let one = p
        .embed(
            embedding(EmbeddingInput::Text("a b".into()), Some(4)),
            &cx(),
        )
        .await
        .unwrap();
    assert_eq!(one.data.len(), 1);
    assert_eq!(floats(&one.data[0].embedding).len(), 4);
    assert_eq!(one.model, "gemini-embedding-001");
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-embedding-001:embedContent");
    assert_eq!(r.body["taskType"], "RETRIEVAL_DOCUMENT");

    let texts = vec!["a b".to_owned(), "c".to_owned(), "a b".to_owned()];
    let many = p
        .embed(embedding(EmbeddingInput::Texts(texts), None), &cx())
        .await
        .unwrap();
    assert_eq!(many.data.len(), 3);
    assert_eq!(many.data[2].index, 2);
    // Same text, same vector; and the batch agrees with the single call.
    assert_eq!(many.data[0].embedding, many.data[2].embedding);
    assert_ne!(many.data[0].embedding, many.data[1].embedding);
    assert_eq!(
        floats(&many.data[0].embedding)[..4],
        floats(&one.data[0].embedding)[..4]
    );
    let r = &mock.requests()[1];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        r.body["requests"][1]["model"],
        "models/gemini-embedding-001"
    );
}

#[tokio::test]
async fn vertex_fetches_one_token_for_concurrent_calls() {
    let mock = GeminiMock::start().await;
    let p = vertex(&mock);
    let c = cx();
    let results = join_all((0..8).map(|_| p.chat(hello(), &c))).await;
    for r in results {
        assert_eq!(r.unwrap().text(), Some("hello there world"));
    }
    assert_eq!(mock.token_requests(), 1);
    // Another deployment of the same service account shares the token.
    let emb = Gemini::vertex_ai(&vertex_settings(&mock, "text-embedding-005")).unwrap();
    let e = emb
        .embed(
            embedding(
                EmbeddingInput::Texts(vec!["x y".into(), "z".into()]),
                Some(3),
            ),
            &cx(),
        )
        .await
        .unwrap();
    assert_eq!(e.data.len(), 2);
    assert_eq!(e.usage.prompt_tokens, 3);
    assert_eq!(mock.token_requests(), 1);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 9);
    assert_eq!(
        reqs[0].path,
        "/v1/projects/test-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    assert!(
        reqs.iter()
            .all(|r| r.header("authorization") == Some("Bearer ya29.mock-token-1"))
    );
    assert!(reqs.iter().all(|r| r.header("x-goog-api-key").is_none()));
    let predict = &reqs[8];
    assert!(predict.path.ends_with("/models/text-embedding-005:predict"));
    assert_eq!(
        predict.body,
        json!({"instances": [
            {"content": "x y", "task_type": "RETRIEVAL_DOCUMENT"},
            {"content": "z", "task_type": "RETRIEVAL_DOCUMENT"}
        ], "parameters": {"outputDimensionality": 3}})
    );

    // Streams use the same token.
    let items = collect(&p, hello()).await;
    assert!(items.last().unwrap().as_ref().unwrap().is_usage_only());
    assert_eq!(mock.token_requests(), 1);
}

#[tokio::test]
async fn vertex_refreshes_an_expired_token() {
    let mock = GeminiMock::start().await;
    mock.set_token_expires_in(1);
    let p = vertex(&mock);
    p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(mock.token_requests(), 1);
    // The mock stops accepting the first token after a second: reusing it would be a 401.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(mock.token_requests(), 2);
    let reqs = mock.requests();
    assert_eq!(
        reqs[1].header("authorization"),
        Some("Bearer ya29.mock-token-2")
    );
}

#[tokio::test]
async fn vertex_refreshes_early_without_blocking_others() {
    let mock = GeminiMock::start().await;
    // A 4 s token is refreshed half-way, at 2 s, while it is still valid.
    mock.set_token_expires_in(4);
    let p = vertex(&mock);
    p.chat(hello(), &cx()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let c = cx();
    let results = join_all((0..5).map(|_| p.chat(hello(), &c))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(mock.token_requests(), 2, "one refresh for five callers");
    let auth: Vec<String> = mock.requests()[1..]
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_owned())
        .collect();
    assert!(
        auth.iter().any(|a| a == "Bearer ya29.mock-token-1"),
        "callers went on with the still-valid token: {auth:?}"
    );
    p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(
        mock.requests().last().unwrap().header("authorization"),
        Some("Bearer ya29.mock-token-2")
    );
    assert_eq!(mock.token_requests(), 2);
}

#[tokio::test]
async fn vertex_with_a_pre_issued_token_and_with_a_rejected_grant() {
    let mock = GeminiMock::start().await;
    mock.accept_access_token("ya29.pre-issued");
    let mut s = DeploymentSettings::new("vertex_ai", "gemini-2.5-flash");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("ya29.pre-issued"));
    s.params.insert("vertex_project".into(), json!("p-1"));
    s.params.insert("vertex_location".into(), json!("global"));
    let p = Gemini::vertex_ai(&s).unwrap();
    p.chat(hello(), &cx()).await.unwrap();
    assert_eq!(mock.token_requests(), 0);
    assert_eq!(
        mock.requests()[0].path,
        "/v1/projects/p-1/locations/global/publishers/google/models/gemini-2.5-flash:generateContent"
    );

    // An assertion for the wrong audience is refused by the token endpoint: auth error.
    let mut s = vertex_settings(&mock, "gemini-2.5-flash");
    s.params.insert(
        "vertex_token_uri".into(),
        json!(format!("{}?audience=wrong", mock.token_url())),
    );
    let e = Gemini::vertex_ai(&s)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.message().contains("invalid_grant"), "{}", e.message());
    assert!(!e.message().contains("PRIVATE KEY"));

    // A token the upstream does not accept is UNAUTHENTICATED.
    let mut s = DeploymentSettings::new("vertex_ai", "gemini-2.5-flash");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("ya29.never-issued"));
    s.params.insert("vertex_project".into(), json!("p-1"));
    let e = Gemini::vertex_ai(&s)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.upstream_status(), Some(401));
}

fn google_error(code: u16, status: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

#[tokio::test]
async fn upstream_faults_map_to_kinds() {
    let mock = GeminiMock::start().await;
    let p = gemini(&mock, Some(Duration::from_millis(300)));
    mock.push_fault(Fault::Status {
        status: 429,
        body: google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]),
        ),
        retry_after: None,
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.is_retryable());

    mock.push_fault(Fault::Status {
        status: 429,
        body: google_error(429, "RESOURCE_EXHAUSTED", "slow down", json!([])),
        retry_after: Some(3),
    });
    let e = p.chat(hello(), &cx()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));

    mock.push_fault(Fault::Status {
        status: 400,
        body: google_error(
            400,
            "INVALID_ARGUMENT",
            "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
            json!([]),
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
        status: 503,
        body: google_error(503, "UNAVAILABLE", "The model is overloaded.", json!([])),
        retry_after: None,
    });
    let e = p.chat_stream(hello(), &cx()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_item_and_no_usage() {
    let mock = GeminiMock::start().await;
    let p = gemini(&mock, None);
    mock.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let mut items = collect(&p, hello()).await;
    let last = items.pop().unwrap();
    assert_eq!(last.unwrap_err().kind(), ErrorKind::UpstreamError);
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| i.as_ref().is_ok_and(|c| !c.is_usage_only()))
    );
}

#[tokio::test]
async fn dropping_a_stream_cancels_the_upstream() {
    let mock = GeminiMock::start().await;
    let p = gemini(&mock, None);
    mock.push_fault(Fault::SlowStream {
        chunks: 3,
        delay: Duration::from_millis(300),
    });
    let mut s = p.chat_stream(hello(), &cx()).await.unwrap();
    assert!(s.next().await.unwrap().is_ok());
    drop(s);
    for _ in 0..50 {
        if mock.cancelled_streams() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.cancelled_streams(), 1);
    assert_eq!(mock.completed_streams(), 0);
}

#[tokio::test]
async fn registry_builds_gemini_and_claude_on_vertex() {
    let mock = GeminiMock::start().await;
    let f = llmux_core::find_provider("vertex_ai").unwrap();
    let mut s = vertex_settings(&mock, "claude-sonnet-4@20250514");
    let claude = (f.build)(&s).unwrap();
    assert_eq!(
        (claude.name(), claude.model()),
        ("vertex_ai", "claude-sonnet-4@20250514")
    );
    assert_eq!(
        claude.chat(hello(), &cx()).await.unwrap().text(),
        Some("hello there world")
    );
    assert!(
        mock.requests()[0]
            .path
            .ends_with("/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    );
    s.model = "gemini-2.5-pro".into();
    let p = (f.build)(&s).unwrap();
    assert_eq!((p.name(), p.model()), ("vertex_ai", "gemini-2.5-pro"));
    let g = (llmux_core::find_provider("gemini").unwrap().build)(&DeploymentSettings::new(
        "gemini",
        "gemini-2.5-flash",
    ))
    .unwrap();
    assert_eq!(g.name(), "gemini");
}

#[tokio::test]
async fn unreachable_upstream_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = DeploymentSettings::new("gemini", "gemini-2.0-flash");
    s.api_base = Some(format!("http://127.0.0.1:{port}"));
    s.api_key = Some(Secret::new(KEY));
    let e = Gemini::gemini_api(&s)
        .unwrap()
        .chat(hello(), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    assert!(!e.message().contains(KEY));
}
