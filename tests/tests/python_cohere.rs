//! Cohere through the gateway with the official `openai` Python client: plain, streamed,
//! tool-call round trip (plain and streamed), vision input, JSON mode, and an upstream
//! error of each class — the client's view checked in `tests/python/providers_check.py`,
//! what the Cohere mock received checked here.
//!
//! Needs a Python with `openai` installed, named by `LLMUX_PYTHON`; `cargo xtask ci` makes
//! one and runs this with `--ignored`.

use std::process::Command;
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_testkit::{CohereMock, Fault, RecordedRequest};
use serde_json::Value;

const KEY: &str = "sk-python-cohere";

fn python(base: &str, model: &str, mode: &str) {
    let py = std::env::var("LLMUX_PYTHON").expect("LLMUX_PYTHON names a Python with `openai`");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/providers_check.py");
    let out = Command::new(py)
        .args([script, base, KEY, model, mode])
        .output()
        .expect("python runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{model} {mode}:\n{text}");
    println!("{text}");
}

/// The faults `providers_check.py errors` expects, in its order, as Cohere sends them.
fn cohere_faults() -> Vec<Fault> {
    let fault = |status: u16, message: &str| Fault::Status {
        status,
        body: CohereMock::error_body(message),
        retry_after: (status == 429).then_some(2),
    };
    vec![
        fault(
            400,
            "too many tokens: total number of tokens in the prompt cannot exceed 128000 - received 130000",
        ),
        fault(401, "invalid api token"),
        fault(403, "You do not have access to this model."),
        fault(404, "model 'command-nope' not found"),
        fault(
            429,
            "You are using a Trial key, which is limited to 10 API calls / minute.",
        ),
        fault(500, "internal server error"),
        fault(503, "service unavailable"),
    ]
}

fn any(reqs: &[RecordedRequest], what: &str, f: impl Fn(&RecordedRequest) -> bool) {
    assert!(
        reqs.iter().any(f),
        "no recorded request shows {what}: {reqs:#?}"
    );
}

fn contains(v: &Value, needle: &str) -> bool {
    v.to_string().contains(needle)
}

#[tokio::test]
#[ignore = "needs LLMUX_PYTHON with the openai package (cargo xtask ci runs it)"]
async fn official_python_client_against_cohere() {
    llmux::link_providers();
    let cohere = CohereMock::with_api_key("co-test-key").await;
    let mut command = DeploymentSettings::new("cohere", "command-a-03-2025");
    command.api_base = Some(cohere.base_url());
    command.api_key = Some(Secret::new("co-test-key"));

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
        .model("command", command)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = gateway.url();

    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "command", "features"))
        .await
        .unwrap();
    let reqs = cohere.requests();
    any(&reqs, "the bearer key on /v2/chat", |r| {
        r.path == "/v2/chat" && r.header("authorization") == Some("Bearer co-test-key")
    });
    any(&reqs, "the system message kept", |r| {
        r.body["messages"][0]["role"] == "system" && contains(&r.body["messages"][0], "be brief")
    });
    any(&reqs, "a streamed call", |r| r.body["stream"] == true);
    any(&reqs, "the assistant's tool call and plan replayed", |r| {
        r.body["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
            && r.body["messages"][1]["tool_plan"] == "I will call get_weather."
    });
    any(&reqs, "a tool message with its call id", |r| {
        r.body["messages"][2]["role"] == "tool"
            && r.body["messages"][2]["tool_call_id"] == "get_weather_mock0001"
            && r.body["messages"][2]["content"] == "18C and sunny"
    });
    any(&reqs, "an image_url part", |r| {
        contains(&r.body["messages"], "\"image_url\"")
            && contains(&r.body["messages"], "data:image/png;base64,")
    });
    any(&reqs, "JSON mode", |r| {
        r.body["response_format"]["type"] == "json_object"
    });
    any(&reqs, "max_tokens", |r| r.body["max_tokens"] == 64);

    for f in cohere_faults() {
        cohere.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "command", "errors"))
        .await
        .unwrap();

    gateway.shutdown().await.unwrap();
}
