//! Mistral and Ollama through the gateway with the official `openai` Python client
//! (`tests/python/providers_check.py`): plain, streamed, tool-call round trip, vision input,
//! JSON mode, and an upstream error of each class in each provider's own error shape —
//! checking what the client got (in the script) and what each mock recorded (here).
//!
//! Needs a Python with `openai` installed, named by `LLMUX_PYTHON`; `cargo xtask ci` makes
//! one and runs this with `--ignored`.

use std::process::Command;
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_testkit::{Fault, MistralMock, OllamaMock, RecordedRequest};
use serde_json::{Value, json};

const KEY: &str = "sk-python-mistral-ollama";
const MISTRAL_KEY: &str = "mk-python-upstream";

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

async fn run(base: &str, model: &'static str, mode: &'static str) {
    let b = base.to_owned();
    tokio::task::spawn_blocking(move || python(&b, model, mode))
        .await
        .unwrap();
}

fn status(status: u16, body: Value) -> Fault {
    Fault::Status {
        status,
        body,
        retry_after: (status == 429).then_some(2),
    }
}

/// The order `providers_check.py errors` expects: context window, auth, permission, not
/// found, rate limit, server error, overloaded.
fn mistral_faults() -> Vec<Fault> {
    let e = |kind: &str, message: &str| MistralMock::error_body(kind, message, None);
    vec![
        status(
            400,
            e(
                "invalid_request_error",
                "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum context length",
            ),
        ),
        status(401, json!({"message": "Unauthorized", "request_id": "r1"})),
        status(403, e("invalid_request_error", "Forbidden")),
        status(404, json!({"detail": "Not Found", "message": "Not Found"})),
        status(429, json!({"message": "Requests rate limit exceeded"})),
        status(500, e("internal_server_error", "Service unavailable.")),
        status(
            503,
            e(
                "service_tier_capacity_exceeded",
                "Service tier capacity exceeded for this model.",
            ),
        ),
    ]
}

fn ollama_faults() -> Vec<Fault> {
    let e = OllamaMock::error_body;
    vec![
        status(400, e("the input length exceeds the context length")),
        status(401, e("unauthorized")),
        status(403, e("forbidden")),
        status(404, e("model \"llama9\" not found, try pulling it first")),
        status(429, e("too many requests")),
        status(
            500,
            e("llama runner process has terminated: signal: killed"),
        ),
        status(503, e("server busy, please try again.")),
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
async fn official_python_client_against_mistral_and_ollama() {
    llmux::link_providers();
    let mistral = MistralMock::with_api_key(MISTRAL_KEY).await;
    let ollama = OllamaMock::start().await;
    let mut small = DeploymentSettings::new("mistral", "mistral-small-latest");
    small.api_base = Some(mistral.base_url());
    small.api_key = Some(Secret::new(MISTRAL_KEY));
    let mut llama = DeploymentSettings::new("ollama", "llama3.2-vision");
    llama.api_base = Some(ollama.base_url());
    let mut llama_chat = llama.clone();
    llama_chat.provider = "ollama_chat".into();

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
        .env_wildcards(false)
        .model("mistral-small", small)
        .model("llama", llama)
        .model("llama-chat", llama_chat)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = gateway.url();

    // Mistral (the strict mock refuses anything outside Mistral's dialect).
    run(&base, "mistral-small", "features").await;
    let reqs = mistral.requests();
    any(&reqs, "Bearer auth on the chat path", |r| {
        r.path == "/v1/chat/completions"
            && r.header("authorization") == Some(&format!("Bearer {MISTRAL_KEY}"))
    });
    any(&reqs, "max_tokens sent as is", |r| {
        r.body["max_tokens"] == 64
    });
    any(&reqs, "a tool message answering a 9-character id", |r| {
        r.body["messages"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["role"] == "tool" && m["tool_call_id"].as_str().is_some_and(|id| id.len() == 9)
            })
        })
    });
    any(&reqs, "an image part", |r| {
        contains(&r.body["messages"], "\"image_url\"")
    });
    any(&reqs, "JSON mode", |r| {
        r.body["response_format"]["type"] == "json_object"
    });
    assert!(
        reqs.iter().all(|r| r.body.get("stream_options").is_none()),
        "stream_options never reaches Mistral"
    );
    for f in mistral_faults() {
        mistral.push_fault(f);
    }
    run(&base, "mistral-small", "errors").await;

    // Ollama's native API, under both prefixes.
    for model in ["llama", "llama-chat"] {
        let before = ollama.requests().len();
        run(&base, model, "features").await;
        let reqs = ollama.requests().split_off(before);
        any(&reqs, "the native chat path without credentials", |r| {
            r.path == "/api/chat" && r.header("authorization").is_none()
        });
        any(&reqs, "num_predict from max_tokens", |r| {
            r.body["options"]["num_predict"] == 64
        });
        any(&reqs, "a base64 image", |r| {
            r.body["messages"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["images"][0]
                        .as_str()
                        .is_some_and(|i| i.starts_with("iVBOR"))
                })
            })
        });
        any(&reqs, "object arguments and a named tool result", |r| {
            contains(&r.body["messages"], "\"arguments\":{\"query\":")
                && contains(&r.body["messages"], "\"tool_name\":\"get_weather\"")
        });
        any(&reqs, "JSON mode as format", |r| r.body["format"] == "json");
        for f in ollama_faults() {
            ollama.push_fault(f);
        }
        run(&base, model, "errors").await;
    }

    gateway.shutdown().await.unwrap();
}
