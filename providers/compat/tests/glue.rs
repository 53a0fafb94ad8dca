//! Catalogue deployments against the testkit's OpenAI-format mock over loopback HTTP:
//! key styles, parameter headers, capabilities the row does not list.

use futures_util::StreamExt;
use llmux_core::{
    CallContext, Capability, ChatRequest, DeploymentSettings, EmbeddingInput, EmbeddingRequest,
    ErrorKind, Provider, Secret,
};
use llmux_provider_compat::{Auth, Compat, CompatProvider, catalogue};
use llmux_testkit::OpenAiMock;

fn settings(prefix: &str, mock: &OpenAiMock, key: Option<&str>) -> DeploymentSettings {
    let mut s = DeploymentSettings::new(prefix, "some-model");
    s.api_base = Some(mock.base_url());
    s.api_key = key.map(Secret::new);
    s
}

fn row(prefix: &str) -> &'static CompatProvider {
    catalogue::find(prefix).expect("in the catalogue")
}

fn hello() -> ChatRequest {
    ChatRequest::new("client-name").user("hello compat")
}

/// A row whose key travels in its own header (no catalogue row needs one today).
static HEADER_KEYED: CompatProvider = CompatProvider {
    prefix: "header_keyed_test",
    description: "test row",
    default_api_base: "",
    key_env: &[],
    base_env: None,
    auth: Auth::Header("x-api-key"),
    capabilities: &[Capability::Chat],
    quirks: &[],
    param_headers: &[],
};

#[tokio::test]
async fn a_named_key_header_replaces_bearer() {
    let mock = OpenAiMock::start().await;
    let p = Compat::new(
        &HEADER_KEYED,
        &settings("header_keyed_test", &mock, Some("k-1")),
    )
    .unwrap();
    let resp = p.chat(hello(), &CallContext::default()).await.unwrap();
    assert_eq!(resp.text(), Some("hello compat"));
    let r = &mock.requests()[0];
    assert_eq!(r.header("x-api-key"), Some("k-1"));
    assert_eq!(r.header("authorization"), None);
}

#[tokio::test]
async fn keyless_servers_send_no_authorization() {
    let mock = OpenAiMock::start().await;
    let p = Compat::new(row("llamafile"), &settings("llamafile", &mock, None)).unwrap();
    p.chat(hello(), &CallContext::default()).await.unwrap();
    assert_eq!(mock.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn openrouter_attribution_headers_come_from_params() {
    let mock = OpenAiMock::start().await;
    let mut s = settings("openrouter", &mock, Some("or-key"));
    s.params
        .insert("site_url".into(), "https://example.org".into());
    s.params.insert("app_name".into(), "llmux-tests".into());
    let p = Compat::new(row("openrouter"), &s).unwrap();
    p.chat(hello(), &CallContext::default()).await.unwrap();
    let r = &mock.requests()[0];
    assert_eq!(r.header("http-referer"), Some("https://example.org"));
    assert_eq!(r.header("x-title"), Some("llmux-tests"));
    assert_eq!(r.header("authorization"), Some("Bearer or-key"));
    // An explicit header of the deployment wins over the param.
    s.headers.insert("X-Title".into(), "explicit".into());
    let p = Compat::new(row("openrouter"), &s).unwrap();
    p.chat(hello(), &CallContext::default()).await.unwrap();
    assert_eq!(mock.requests()[1].header("x-title"), Some("explicit"));
}

#[tokio::test]
async fn capabilities_the_row_does_not_list_are_refused_without_a_call() {
    let mock = OpenAiMock::start().await;
    let groq = Compat::new(row("groq"), &settings("groq", &mock, Some("gsk"))).unwrap();
    let req = EmbeddingRequest {
        model: "e".into(),
        input: EmbeddingInput::Text("x".into()),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: Default::default(),
    };
    let err = groq.embed(req, &CallContext::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.message().contains("embeddings"), "{}", err.message());
    let fireworks = Compat::new(
        row("fireworks_ai"),
        &settings("fireworks_ai", &mock, Some("fw")),
    )
    .unwrap();
    let err = fireworks
        .list_models(&CallContext::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(mock.requests().is_empty(), "nothing reached the upstream");

    let models = groq.list_models(&CallContext::default()).await.unwrap();
    assert!(!models.data.is_empty());
    assert_eq!(mock.requests()[0].path, "/v1/models");
}

#[tokio::test]
async fn quirks_apply_to_streams_too() {
    let mock = OpenAiMock::start().await;
    let p = Compat::new(row("moonshot"), &settings("moonshot", &mock, Some("ms"))).unwrap();
    let mut req = hello();
    req.max_completion_tokens = Some(33);
    let chunks: Vec<_> = p
        .chat_stream(req, &CallContext::default())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(chunks.iter().all(Result::is_ok));
    let text: String = chunks
        .iter()
        .flatten()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "hello compat");
    assert!(chunks.last().unwrap().as_ref().unwrap().is_usage_only());
    let body = &mock.requests()[0].body;
    assert_eq!(body["max_tokens"], 33);
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["stream_options"]["include_usage"], true);
}
