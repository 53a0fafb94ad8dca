//! Azure OpenAI against the testkit's Azure-format mock over loopback HTTP.

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatRequest, DeploymentSettings, EmbeddingInput, EmbeddingRequest, ErrorKind,
    FinishReason, Provider, Secret,
};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::json;

const KEY: &str = "azure-test-key";

fn settings(mock: &OpenAiMock) -> DeploymentSettings {
    let mut s = DeploymentSettings::new("azure", "my-gpt4o-deployment");
    s.api_base = Some(mock.root_url());
    s.api_key = Some(Secret::new(KEY));
    s
}

fn hello() -> ChatRequest {
    ChatRequest::new("client-name").user("hello azure")
}

#[tokio::test]
async fn chat_uses_the_deployment_path_api_version_and_api_key_header() {
    let mock = OpenAiMock::azure(KEY).await;
    let p = llmux_provider_azure::build(&settings(&mock)).unwrap();
    let resp = p.chat(hello(), &CallContext::default()).await.unwrap();
    assert_eq!(resp.text(), Some("hello azure"));
    let r = &mock.requests()[0];
    assert_eq!(
        r.path,
        "/openai/deployments/my-gpt4o-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
}

#[tokio::test]
async fn stream_embeddings_and_explicit_version() {
    let mock = OpenAiMock::azure(KEY).await;
    let mut s = settings(&mock);
    s.api_version = Some("2025-01-01-preview".into());
    let p = llmux_provider_azure::build(&s).unwrap();
    let chunks: Vec<_> = p
        .chat_stream(hello(), &CallContext::default())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(chunks.last().unwrap().as_ref().unwrap().is_usage_only());
    let e = p
        .embed(
            EmbeddingRequest {
                model: "x".into(),
                input: EmbeddingInput::Text("a b".into()),
                encoding_format: None,
                dimensions: None,
                user: None,
                extra: Default::default(),
            },
            &CallContext::default(),
        )
        .await
        .unwrap();
    assert_eq!(e.data.len(), 1);
    let paths: Vec<_> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.ends_with("?api-version=2025-01-01-preview")),
        "{paths:?}"
    );
    assert!(paths[1].contains("/openai/deployments/my-gpt4o-deployment/embeddings"));
}

#[tokio::test]
async fn entra_token_and_v1_layout() {
    let mock = OpenAiMock::azure(KEY).await;
    let mut s = settings(&mock);
    s.api_key = None;
    s.api_version = Some("v1".into());
    s.params.insert("azure_ad_token".into(), json!(KEY));
    let p = llmux_provider_azure::build(&s).unwrap();
    p.chat(hello(), &CallContext::default()).await.unwrap();
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/openai/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(&*format!("Bearer {KEY}")));
    assert_eq!(r.body["model"], "my-gpt4o-deployment");
}

#[tokio::test]
async fn content_filter_is_a_content_policy_error() {
    let mock = OpenAiMock::azure(KEY).await;
    let p = llmux_provider_azure::build(&settings(&mock)).unwrap();
    mock.push_fault(Fault::Status {
        status: 400,
        body: json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}}}),
        retry_after: None,
    });
    let e = p.chat(hello(), &CallContext::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContentPolicy);
    assert_eq!(e.http_status(), 400);
    assert_eq!(e.provider(), Some("azure"));
    // A wrong key is Azure's 401.
    let mut s = settings(&mock);
    s.api_key = Some(Secret::new("wrong"));
    let bad = llmux_provider_azure::build(&s).unwrap();
    let e = bad
        .chat(hello(), &CallContext::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
}

#[test]
fn api_base_is_required_and_finish_reason_passes_through() {
    let s = DeploymentSettings::new("azure", "d");
    let e = llmux_provider_azure::build(&s).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(
        FinishReason::from("content_filter"),
        FinishReason::ContentFilter
    );
}

#[tokio::test]
async fn the_v1_api_passes_the_responses_api_through_with_the_deployment_as_model() {
    use llmux_core::provider::{PassthroughBody, PassthroughKind, PassthroughRequest};
    let mock = OpenAiMock::azure(KEY).await;
    // Dated versions have no Responses passthrough (unless asked for).
    let dated = llmux_provider_azure::build(&settings(&mock)).unwrap();
    assert!(!dated.passthrough_supported(PassthroughKind::Responses));
    let mut s = settings(&mock);
    s.api_version = Some("v1".into());
    let p = llmux_provider_azure::build(&s).unwrap();
    assert!(p.passthrough_supported(PassthroughKind::Responses));
    let serde_json::Value::Object(body) = json!({"model": "client-name", "input": "hi there",
        "tools": [{"type": "web_search_preview"}]})
    else {
        unreachable!()
    };
    let req = PassthroughRequest {
        kind: PassthroughKind::Responses,
        body,
        stream: false,
    };
    let out = p.passthrough(req, &CallContext::default()).await.unwrap();
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/openai/v1/responses");
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(
        r.body,
        json!({"model": "my-gpt4o-deployment", "input": "hi there",
            "tools": [{"type": "web_search_preview"}]})
    );
    let PassthroughBody::Json(bytes) = out.body else {
        panic!("a JSON answer")
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(out.usage.map(|u| u.prompt_tokens), Some(2));
    assert_eq!(out.model.as_deref(), Some("my-gpt4o-deployment"));
}
