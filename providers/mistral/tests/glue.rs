//! The async glue against the testkit's (strict) Mistral mock over loopback HTTP.

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatRequest, DeploymentSettings, EmbeddingRequest, ErrorKind, FinishReason,
    Provider, Secret,
};
use llmux_provider_mistral::Mistral;
use llmux_testkit::{Fault, MISTRAL_TOOL_CALL_ID, MistralMock};
use serde_json::json;

const KEY: &str = "mk-test-key-0123456789";

fn provider(mock: &MistralMock, key: &str) -> Mistral {
    let mut s = DeploymentSettings::new("mistral", "mistral-small-latest");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new(key));
    s.headers.insert("x-extra".into(), "yes".into());
    Mistral::new(&s).unwrap()
}

fn cx() -> CallContext {
    CallContext {
        request_id: "req-1".into(),
        ..CallContext::default()
    }
}

fn req(v: serde_json::Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn chat_sends_mistral_body_and_reads_the_answer() {
    let mock = MistralMock::with_api_key(KEY).await;
    let p = provider(&mock, KEY);
    let r = req(
        json!({"model": "client", "messages": [{"role": "user", "content": "hello there"}],
        "seed": 1, "max_completion_tokens": 9, "user": "u1", "logprobs": true,
        "stream_options": {"include_usage": true}}),
    );
    let resp = p.chat(r, &cx()).await.unwrap();
    assert_eq!(resp.text(), Some("hello there"));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.usage.unwrap().total_tokens, 4);
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.header("x-request-id"), Some("req-1"));
    assert_eq!(
        r.body,
        json!({"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hello there"}],
            "random_seed": 1, "max_tokens": 9})
    );
}

#[tokio::test]
async fn stream_splits_the_final_usage_and_tool_round_trip_keeps_ids_valid() {
    let mock = MistralMock::with_api_key(KEY).await;
    let p = provider(&mock, KEY);
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let mut s = p
        .chat_stream(
            req(
                json!({"model": "c", "messages": [{"role": "user", "content": "call tool Paris"}],
                "tools": tools}),
            ),
            &cx(),
        )
        .await
        .unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = s.next().await {
        chunks.push(c.unwrap());
    }
    assert_eq!(mock.requests()[0].body["stream"], true);
    assert!(mock.requests()[0].body.get("stream_options").is_none());
    let last = chunks.last().unwrap();
    assert!(last.is_usage_only(), "{last:?}");
    let call = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .find_map(|c| c.delta.tool_calls.as_ref())
        .unwrap();
    assert_eq!(call[0].id.as_deref(), Some(MISTRAL_TOOL_CALL_ID));
    // A history whose ids came from another provider is accepted by the strict mock.
    let history = req(json!({"model": "c", "tools": tools, "messages": [
        {"role": "user", "content": "call tool Paris"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function", "function": {"name": "get_weather", "arguments": "{\"query\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "sunny"},
        {"role": "user", "content": "thanks"}]}));
    let resp = p.chat(history, &cx()).await.unwrap();
    assert_eq!(resp.text(), Some("thanks"));
    let sent = &mock.requests()[1].body["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], sent[2]["tool_call_id"]);
}

#[tokio::test]
async fn embeddings_and_models() {
    let mock = MistralMock::with_api_key(KEY).await;
    let mut s = DeploymentSettings::new("mistral", "mistral-embed");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new(KEY));
    let p = Mistral::new(&s).unwrap();
    let e: EmbeddingRequest = serde_json::from_value(
        json!({"model": "emb", "input": ["one two", "three"], "dimensions": 4, "user": "u"}),
    )
    .unwrap();
    let resp = p.embed(e, &cx()).await.unwrap();
    assert_eq!(resp.data.len(), 2);
    assert_eq!(resp.usage.prompt_tokens, 3);
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/v1/embeddings");
    assert_eq!(
        r.body,
        json!({"model": "mistral-embed", "input": ["one two", "three"], "output_dimension": 4})
    );
    let models = p.list_models(&cx()).await.unwrap();
    assert_eq!(models.data[0].id, "mistral-small-latest");
    assert_eq!(mock.requests()[1].path, "/v1/models");
}

#[tokio::test]
async fn upstream_errors_are_mapped() {
    let mock = MistralMock::with_api_key(KEY).await;
    let e = provider(&mock, "mk-wrong-key-000000")
        .chat(ChatRequest::new("c").user("x"), &cx())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.upstream_status()),
        (ErrorKind::Auth, Some(401))
    );
    let p = provider(&mock, KEY);
    mock.push_fault(Fault::Status {
        status: 429,
        body: json!({"message": "Requests rate limit exceeded"}),
        retry_after: Some(2),
    });
    let e = p
        .chat_stream(ChatRequest::new("c").user("x"), &cx())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(2)));
    mock.push_fault(Fault::TruncatedJson);
    let e = p
        .chat(ChatRequest::new("c").user("x"), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
    mock.push_fault(Fault::BrokenStream { after_chunks: 1 });
    let mut s = p
        .chat_stream(ChatRequest::new("c").user("a b c d"), &cx())
        .await
        .unwrap();
    let mut last = None;
    while let Some(i) = s.next().await {
        last = Some(i);
    }
    assert_eq!(last.unwrap().unwrap_err().kind(), ErrorKind::UpstreamError);
}
