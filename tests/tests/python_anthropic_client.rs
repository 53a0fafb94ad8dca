//! The official `anthropic` Python client against `/v1/messages` with an OpenAI model
//! behind it: plain, streamed, tool use (plain and streamed), and errors — checked in the
//! Python script (what the client got) and here (what the upstream received).
//!
//! Needs a Python with `anthropic` installed, named by `LLMUX_PYTHON`; `cargo xtask ci`
//! makes one and runs this with `--ignored`.

use std::process::Command;
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::json;

const KEY: &str = "sk-python-anthropic";

fn python(base: &str, model: &str, mode: &str) {
    let py = std::env::var("LLMUX_PYTHON").expect("LLMUX_PYTHON names a Python with `anthropic`");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/anthropic_check.py");
    let out = Command::new(py)
        .args([script, base, KEY, model, mode])
        .output()
        .expect("python runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{mode}:\n{text}");
    println!("{text}");
}

#[tokio::test]
#[ignore = "needs LLMUX_PYTHON with the anthropic package (cargo xtask ci runs it)"]
async fn official_anthropic_client_against_an_openai_model() {
    llmux::link_providers();
    let openai = OpenAiMock::with_api_key("sk-oai-test").await;
    let mut gpt = DeploymentSettings::new("openai", "gpt-4o-mini");
    gpt.api_base = Some(openai.base_url());
    gpt.api_key = Some(Secret::new("sk-oai-test"));
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
        .model("claude-sonnet-4-5", gpt)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = gateway.url();

    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "claude-sonnet-4-5", "features"))
        .await
        .unwrap();
    let reqs = openai.requests();
    assert_eq!(reqs.len(), 5, "one upstream call per message");
    assert_eq!(
        reqs[0].body["messages"],
        json!([{"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello from anthropic"}])
    );
    assert_eq!(reqs[0].body["max_completion_tokens"], 64);
    assert_eq!(reqs[1].body["stream"], true);
    assert_eq!(reqs[2].body["tools"][0]["function"]["name"], "get_weather");
    // The tool result went back as a tool message answering the call.
    let replay = &reqs[4].body["messages"];
    assert_eq!(replay[1]["tool_calls"][0]["id"], "call_mock1");
    assert_eq!(
        replay[2],
        json!({"role": "tool", "tool_call_id": "call_mock1", "content": "sunny"})
    );

    openai.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "type": "requests",
            "param": null, "code": "rate_limit_exceeded"}}),
        retry_after: Some(3),
    });
    tokio::task::spawn_blocking(move || python(&base, "claude-sonnet-4-5", "errors"))
        .await
        .unwrap();
    assert_eq!(
        openai.requests().len(),
        6,
        "only the rate-limited call went upstream"
    );
}
