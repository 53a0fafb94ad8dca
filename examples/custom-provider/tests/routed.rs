//! The stock `llmux::Client` routes to a provider it was not built with: registered by a
//! crate of its own, addressed by config entry, by `reverse/<model>`, and as a fallback.

use llmux::{ChatRequest, Client, DeploymentSettings};

#[tokio::test]
async fn the_stock_client_routes_to_the_custom_provider() {
    llmux_provider_reverse::link();
    assert!(llmux::provider_names().contains(&"mock"));
    assert!(llmux_core_names().contains(&"reverse"));

    let mut failing = DeploymentSettings::new("mock", "down");
    failing.params.insert(
        "mock_response".into(),
        "litellm.ServiceUnavailableError".into(),
    );
    let client = Client::builder()
        .observability(false)
        .model_group("rev", [DeploymentSettings::new("reverse", "v1")])
        .model_group("primary", [failing])
        .fallbacks("primary", ["rev"])
        .build()
        .expect("builds");

    let answer = client
        .chat_with_meta(ChatRequest::new("rev").user("abc"))
        .await
        .expect("answers");
    assert_eq!(answer.text(), Some("cba"));
    assert_eq!(answer.trace.provider, Some("reverse"));
    assert_eq!(answer.trace.deployment_id.as_deref(), Some("rev#0"));

    let streamed = client
        .chat_stream(ChatRequest::new("rev").user("one two"))
        .await
        .expect("streams")
        .collect()
        .await
        .expect("collects");
    assert_eq!(streamed.text(), Some("owt eno"));

    let fell_back = client
        .chat_with_meta(ChatRequest::new("primary").user("xy"))
        .await
        .expect("falls back");
    assert_eq!(fell_back.text(), Some("yx"));
    assert_eq!(fell_back.trace.final_model_group.as_deref(), Some("rev"));
}

fn llmux_core_names() -> Vec<&'static str> {
    llmux::core::providers().map(|f| f.name).collect()
}
