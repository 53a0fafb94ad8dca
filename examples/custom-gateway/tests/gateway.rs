//! The custom gateway serves its own route, adds its header to every response, and routes
//! `reverse` (its own provider crate) and `mock/*` (a built-in one) over the stock
//! OpenAI-compatible API.

use std::time::Duration;

use serde_json::{Value, json};

#[tokio::test]
async fn custom_route_middleware_and_provider() {
    let gateway = llmux_example_gateway::builder(llmux::Config::default())
        .observability(false)
        .build()
        .expect("builds");
    let app = llmux_example_gateway::app(&gateway);
    let running = gateway
        .spawn_app(app, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("listens");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let hello = http
        .get(format!("{}/hello", running.url()))
        .send()
        .await
        .expect("hello");
    assert_eq!(hello.status(), 200);
    assert_eq!(
        hello
            .headers()
            .get(llmux_example_gateway::SERVED_BY)
            .map(|v| v.as_bytes()),
        Some(&b"llmux-example-gateway"[..])
    );
    assert!(hello.text().await.expect("body").starts_with("hello from"));

    let chat = |model: &str| {
        http.post(format!("{}/v1/chat/completions", running.url()))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "drawer"}]}))
            .send()
    };
    let reversed = chat("reverse").await.expect("reverse");
    assert_eq!(reversed.status(), 200);
    assert_eq!(
        reversed
            .headers()
            .get("x-llmux-provider")
            .map(|v| v.as_bytes()),
        Some(&b"reverse"[..])
    );
    assert!(
        reversed
            .headers()
            .contains_key(llmux_example_gateway::SERVED_BY)
    );
    let body: Value = reversed.json().await.expect("json");
    assert_eq!(body["choices"][0]["message"]["content"], "reward");

    let echoed: Value = chat("mock/echo")
        .await
        .expect("mock")
        .json()
        .await
        .expect("json");
    assert_eq!(echoed["choices"][0]["message"]["content"], "drawer");

    // An unknown route is still the stock gateway's 404, with the header.
    let missing = http
        .get(format!("{}/nope", running.url()))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    assert!(
        missing
            .headers()
            .contains_key(llmux_example_gateway::SERVED_BY)
    );
    running.shutdown().await.expect("stops");
}
