//! The official `openai` Python client's `responses.create` (plain, streamed, function
//! calling continued by `previous_response_id`), `retrieve`/`delete`, `completions.create`
//! and `models.retrieve` against the gateway with Anthropic (the mock) behind the model —
//! checking what the client got (in the Python script) and what the upstream recorded
//! (here).
//!
//! Needs a Python with `openai` installed, named by `LLMUX_PYTHON`; `cargo xtask ci` makes
//! one and runs this with `--ignored`.

use std::process::Command;
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_testkit::AnthropicMock;

const KEY: &str = "sk-python-responses";

#[tokio::test]
#[ignore = "needs LLMUX_PYTHON with the openai package (cargo xtask ci runs it)"]
async fn official_python_client_responses_and_completions_with_anthropic_behind() {
    llmux::link_providers();
    let anthropic = AnthropicMock::with_api_key("sk-ant-test").await;
    let mut claude = DeploymentSettings::new("anthropic", "claude-sonnet-4-5");
    claude.api_base = Some(anthropic.base_url());
    claude.api_key = Some(Secret::new("sk-ant-test"));
    let mut config = llmux_config::Config::default();
    config.server.master_key = Some(Secret::new(KEY));
    let settings = llmux_router::RouterSettings {
        num_retries: 0,
        allowed_fails: None,
        cooldown_time: Duration::ZERO,
        retry_after_cap: Duration::ZERO,
        stream_resume: false,
        ..llmux_router::RouterSettings::default()
    };
    let gateway = llmux::gateway()
        .config(config)
        .router_settings(settings)
        .observability(false)
        .model("claude", claude)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = gateway.url();
    let out = tokio::task::spawn_blocking(move || {
        let py = std::env::var("LLMUX_PYTHON").expect("LLMUX_PYTHON names a Python with `openai`");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/responses_check.py");
        Command::new(py)
            .args([script, &base, KEY, "claude", "anthropic"])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    println!("{text}");

    // What Anthropic saw: the instructions as its system prompt, the tool round trip
    // replayed from the stored conversation (tool_use, then tool_result), and the legacy
    // prompt as one user message.
    let reqs = anthropic.requests();
    assert!(
        reqs.iter().any(|r| r.body["system"] == "be brief"),
        "{reqs:#?}"
    );
    let round_trip = reqs
        .iter()
        .find(|r| r.body["messages"].to_string().contains("\"tool_result\""))
        .expect("a request carrying the tool result");
    let messages = round_trip.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(
        messages[0]["content"][0]["text"],
        "call tool weather in Paris"
    );
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(
        messages[2]["content"][0]["tool_use_id"],
        messages[1]["content"][0]["id"]
    );
    assert!(reqs.iter().any(|r| r.body["messages"]
        == serde_json::json!([{"role": "user", "content": [{"type": "text", "text": "legacy prompt works"}]}])));
    gateway.shutdown().await.unwrap();
}
