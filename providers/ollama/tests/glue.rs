//! The async glue against the testkit's Ollama mock over loopback HTTP.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, DeploymentSettings, EmbeddingRequest, Error, ErrorKind,
    FinishReason, Provider, Secret,
};
use llmux_provider_ollama::Ollama;
use llmux_testkit::{Fault, OllamaMock};
use serde_json::json;

fn provider(mock: &OllamaMock, model: &str) -> Ollama {
    let mut s = DeploymentSettings::new("ollama", model);
    s.api_base = Some(mock.base_url());
    s.params.insert("keep_alive".into(), json!("30m"));
    Ollama::new("ollama", &s).unwrap()
}

fn cx() -> CallContext {
    CallContext {
        request_id: "req-7".into(),
        ..CallContext::default()
    }
}

async fn collect(p: &Ollama, req: ChatRequest) -> Vec<Result<ChatChunk, Error>> {
    let mut s = p.chat_stream(req, &cx()).await.unwrap();
    let mut items = Vec::new();
    while let Some(i) = s.next().await {
        items.push(i);
    }
    items
}

#[tokio::test]
async fn chat_posts_the_native_body_without_credentials() {
    let mock = OllamaMock::start().await;
    let p = provider(&mock, "llama3.2");
    let resp = p
        .chat(ChatRequest::new("c").user("hello local model"), &cx())
        .await
        .unwrap();
    assert_eq!(resp.text(), Some("hello local model"));
    assert_eq!(resp.id, "chatcmpl-req-7");
    assert_eq!(resp.model, "llama3.2");
    let u = resp.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (3, 3));
    let r = &mock.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/chat"));
    assert!(r.header("authorization").is_none());
    assert_eq!(
        r.body,
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hello local model"}],
            "stream": false, "keep_alive": "30m"})
    );
}

#[tokio::test]
async fn ndjson_stream_ends_with_finish_and_usage() {
    let mock = OllamaMock::start().await;
    let p = provider(&mock, "llama3.2");
    let items = collect(&p, ChatRequest::new("c").user("one two three four five")).await;
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "one two three four five");
    assert!(chunks.last().unwrap().is_usage_only());
    assert_eq!(mock.requests()[0].body["stream"], true);
    assert_eq!(mock.completed_streams(), 1);
}

#[tokio::test]
async fn tool_calls_round_trip_with_object_arguments() {
    let mock = OllamaMock::start().await;
    let p = provider(&mock, "llama3.2");
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let req: ChatRequest = serde_json::from_value(json!({"model": "c", "tools": tools,
        "messages": [{"role": "user", "content": "call tool Paris"}]}))
    .unwrap();
    let resp = p.chat(req, &cx()).await.unwrap();
    let call = &resp.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(call.function.arguments, r#"{"query":"Paris"}"#);
    let history: ChatRequest = serde_json::from_value(json!({"model": "c", "tools": tools,
        "messages": [{"role": "user", "content": "call tool Paris"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            {"role": "user", "content": "thanks"}]}))
    .unwrap();
    let resp = p.chat(history, &cx()).await.unwrap();
    assert_eq!(resp.text(), Some("thanks"));
    let sent = &mock.requests()[1].body["messages"];
    assert_eq!(
        sent[1]["tool_calls"][0]["function"]["arguments"],
        json!({"query": "Paris"})
    );
    assert_eq!(sent[2]["tool_name"], "get_weather");
}

#[tokio::test]
async fn embeddings_models_and_keys() {
    let mock = OllamaMock::with_api_key("ol-key-1").await;
    let mut s = DeploymentSettings::new("ollama_chat", "nomic-embed-text");
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("ol-key-1"));
    let p = Ollama::new("ollama_chat", &s).unwrap();
    let e: EmbeddingRequest =
        serde_json::from_value(json!({"model": "e", "input": "a b c", "dimensions": 4})).unwrap();
    let resp = p.embed(e, &cx()).await.unwrap();
    assert_eq!((resp.data.len(), resp.usage.prompt_tokens), (1, 3));
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/api/embed");
    assert_eq!(r.header("authorization"), Some("Bearer ol-key-1"));
    assert_eq!(
        r.body,
        json!({"model": "nomic-embed-text", "input": "a b c", "dimensions": 4})
    );
    let models = p.list_models(&cx()).await.unwrap();
    assert_eq!(models.data[0].id, "llama3.2:latest");
    assert_eq!(mock.requests()[1].path, "/api/tags");
    // A wrong key is an auth error named after the provider prefix in use.
    s.api_key = Some(Secret::new("ol-wrong"));
    let e = Ollama::new("ollama_chat", &s)
        .unwrap()
        .list_models(&cx())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.provider()),
        (ErrorKind::Auth, Some("ollama_chat"))
    );
}

#[tokio::test]
async fn errors_map_and_broken_streams_end_with_an_error() {
    let mock = OllamaMock::start().await;
    let e = provider(&mock, "missing-model")
        .chat(ChatRequest::new("c").user("x"), &cx())
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.code()),
        (ErrorKind::NotFound, Some("model_not_found"))
    );
    let p = provider(&mock, "llama3.2");
    let e = p
        .chat(
            ChatRequest::new("c").message(
                serde_json::from_value(json!({"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}))
                .unwrap(),
            ),
            &cx(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    let before = mock.requests().len();
    assert_eq!(before, 1, "a refused image never reaches the upstream");
    mock.push_fault(Fault::Status {
        status: 503,
        body: OllamaMock::error_body("server busy, please try again."),
        retry_after: Some(1),
    });
    let e = p
        .chat_stream(ChatRequest::new("c").user("x"), &cx())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    mock.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let items = collect(&p, ChatRequest::new("c").user("a b c d e f")).await;
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.kind(), ErrorKind::UpstreamError);
    assert!(items[0].is_ok());
}
