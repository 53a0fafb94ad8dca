//! The async glue against the testkit's Cohere mock over 127.0.0.1: URLs, headers, the
//! stream adapter, embed and rerank, and upstream errors.

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatRequest, DeploymentSettings, EmbeddingRequest, ErrorKind, FinishReason,
    Provider, RerankRequest, Secret,
};
use llmux_provider_cohere::Cohere;
use llmux_testkit::{CohereMock, Fault};
use serde_json::json;

async fn provider(mock: &CohereMock, model: &str) -> Cohere {
    let mut s = DeploymentSettings::new("cohere", model);
    s.api_base = Some(mock.base_url());
    s.api_key = Some(Secret::new("co-test-key"));
    Cohere::new(&s).unwrap()
}

fn cx() -> CallContext {
    CallContext {
        request_id: "req-1".into(),
        timeout: Some(std::time::Duration::from_secs(10)),
        headers: vec![("x-client-name".into(), "llmux-test".into())],
    }
}

#[tokio::test]
async fn chat_plain_and_streamed() {
    let mock = CohereMock::with_api_key("co-test-key").await;
    let p = provider(&mock, "command-a-03-2025").await;
    let r = p
        .chat(
            ChatRequest::new("g").system("be brief").user("hello there"),
            &cx(),
        )
        .await
        .unwrap();
    assert_eq!(r.text(), Some("hello there"));
    assert_eq!(r.model, "command-a-03-2025");
    let u = r.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (4, 2));
    let req = &mock.requests()[0];
    assert_eq!(req.path, "/v2/chat");
    assert_eq!(req.header("authorization"), Some("Bearer co-test-key"));
    assert_eq!(req.header("x-client-name"), Some("llmux-test"));
    assert_eq!(req.body["model"], "command-a-03-2025");
    assert_eq!(
        req.body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );

    let mut stream = p
        .chat_stream(ChatRequest::new("g").user("one two three four five"), &cx())
        .await
        .unwrap();
    let mut text = String::new();
    let mut finish = None;
    let mut usage = None;
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        for ch in &c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or_default());
            if ch.finish_reason.is_some() {
                finish.clone_from(&ch.finish_reason);
            }
        }
        if c.usage.is_some() {
            usage = c.usage;
        }
    }
    assert_eq!(text, "one two three four five");
    assert_eq!(finish, Some(FinishReason::Stop));
    assert_eq!(usage.unwrap().completion_tokens, 5);
    assert_eq!(mock.requests()[1].body["stream"], true);
    assert_eq!(mock.completed_streams(), 1);
}

#[tokio::test]
async fn broken_stream_ends_with_an_error() {
    let mock = CohereMock::start().await;
    let p = provider(&mock, "command-r").await;
    mock.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let mut stream = p
        .chat_stream(ChatRequest::new("g").user("a b c d e f"), &cx())
        .await
        .unwrap();
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    let e = last.unwrap().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UpstreamError), "{e}");
}

#[tokio::test]
async fn embed_and_rerank() {
    let mock = CohereMock::start().await;
    let p = provider(&mock, "embed-v4.0").await;
    let req: EmbeddingRequest =
        serde_json::from_value(json!({"model": "e", "input": ["a b", "c"], "dimensions": 4}))
            .unwrap();
    let r = p.embed(req, &cx()).await.unwrap();
    assert_eq!(r.data.len(), 2);
    assert_eq!(r.usage.prompt_tokens, 3);
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v2/embed");
    assert_eq!(sent.body["input_type"], "search_document");
    assert_eq!(sent.body["output_dimension"], 4);

    let p = provider(&mock, "rerank-v3.5").await;
    let mut q = RerankRequest::new(
        "rr",
        "capital of France",
        [
            "Berlin is in Germany",
            "Paris is the capital of France",
            "capital letters",
        ],
    );
    q.top_n = Some(2);
    q.return_documents = Some(true);
    let r = p.rerank(q, &cx()).await.unwrap();
    let order: Vec<u32> = r.results.iter().map(|x| x.index).collect();
    assert_eq!(order, [1, 2]);
    assert_eq!(
        r.results[0].document.as_ref().unwrap().text,
        "Paris is the capital of France"
    );
    assert_eq!(r.search_units(), Some(1));
    let sent = &mock.requests()[1];
    assert_eq!(sent.path, "/v2/rerank");
    assert_eq!(
        sent.body,
        json!({"model": "rerank-v3.5", "query": "capital of France", "top_n": 2,
            "documents": ["Berlin is in Germany", "Paris is the capital of France", "capital letters"]})
    );
}

#[tokio::test]
async fn upstream_errors_are_mapped_and_redacted() {
    let mock = CohereMock::with_api_key("co-right-key").await;
    let p = provider(&mock, "command-r").await;
    let e = p
        .chat(ChatRequest::new("g").user("hi"), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(!e.message().contains("co-test-key"));

    let mock = CohereMock::start().await;
    let p = provider(&mock, "command-r").await;
    mock.push_fault(Fault::Status {
        status: 429,
        body: CohereMock::error_body("trial key limit co-test-key"),
        retry_after: Some(3),
    });
    let e = p
        .rerank(RerankRequest::new("r", "q", ["d"]), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(3)));
    assert!(!e.message().contains("co-test-key"), "{}", e.message());
    mock.push_fault(Fault::Status {
        status: 503,
        body: CohereMock::error_body("overloaded"),
        retry_after: None,
    });
    let e = p
        .chat_stream(ChatRequest::new("g").user("hi"), &cx())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::UpstreamUnavailable);
    mock.push_fault(Fault::TruncatedJson);
    let e = p
        .chat(ChatRequest::new("g").user("hi"), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UpstreamError);
}
