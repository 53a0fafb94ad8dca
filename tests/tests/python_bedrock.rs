//! The official `openai` Python client through the gateway to the Bedrock mock: the
//! `features` mode of `tests/python/providers_check.py` (plain, streamed, tool-call round
//! trip and streamed tool call, vision input, JSON mode) and its `errors` mode (one
//! upstream error of each class) — checking what the client got (in the script) and what
//! the mock recorded and verified (here: SigV4 on every call, encoded model ids).
//!
//! Needs a Python with `openai` installed, named by `LLMUX_PYTHON`; `cargo xtask ci` makes
//! one and runs this with `--ignored`.

use std::process::Command;
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_testkit::{BedrockMock, Fault, RecordedRequest};
use serde_json::json;

const KEY: &str = "sk-python-bedrock";
const REGION: &str = "us-east-2";
const KEY_ID: &str = "AKIAPYTHONBEDROCK001";
const SECRET: &str = "python/Bedrock/Secret/Key+0123456789abcd";
const TOKEN: &str = "IQoJb3JpZ2luX2VjPYTHONSESSIONTOKEN";

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

fn any(reqs: &[RecordedRequest], what: &str, f: impl Fn(&RecordedRequest) -> bool) {
    assert!(
        reqs.iter().any(f),
        "no recorded request shows {what}: {reqs:#?}"
    );
}

fn status(status: u16, name: &str, message: &str) -> Fault {
    Fault::Status {
        status,
        body: BedrockMock::error_body(name, message),
        retry_after: (status == 429).then_some(1),
    }
}

#[tokio::test]
#[ignore = "needs LLMUX_PYTHON with the openai package (cargo xtask ci runs it)"]
async fn official_python_client_against_bedrock() {
    llmux::link_providers();
    let mock = BedrockMock::with_credentials(REGION, KEY_ID, SECRET, Some(TOKEN)).await;
    let mut claude =
        DeploymentSettings::new("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0");
    claude.api_base = Some(mock.base_url());
    claude.params = json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
        "aws_session_token": TOKEN, "aws_region_name": REGION})
    .as_object()
    .cloned()
    .unwrap();

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
        .model("bedrock-claude", claude)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = gateway.url();

    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "bedrock-claude", "features"))
        .await
        .unwrap();
    let reqs = mock.requests();
    // Every call was SigV4-signed (the mock recomputed each signature) and went to the
    // percent-encoded inference-profile path.
    assert!(reqs.iter().all(|r| {
        r.path
            .starts_with("/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse")
            && r.header("authorization").is_some_and(|a| {
                a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/"))
                    && a.contains(&format!("/{REGION}/bedrock/aws4_request"))
            })
            && r.header("x-amz-security-token") == Some(TOKEN)
    }));
    any(&reqs, "a streamed call", |r| {
        r.path.ends_with("/converse-stream")
    });
    any(&reqs, "the system prompt lifted", |r| {
        r.body["system"] == json!([{"text": "be brief"}])
    });
    any(&reqs, "inferenceConfig.maxTokens", |r| {
        r.body["inferenceConfig"]["maxTokens"] == 64
    });
    any(&reqs, "a toolSpec", |r| {
        r.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    });
    any(&reqs, "a toolResult block", |r| {
        r.body["messages"].to_string().contains("\"toolResult\"")
    });
    any(&reqs, "an image block with base64 bytes", |r| {
        r.body["messages"]
            .to_string()
            .contains("\"format\":\"png\"")
    });
    any(&reqs, "JSON mode as a forced tool", |r| {
        r.body["toolConfig"]["toolChoice"] == json!({"tool": {"name": "json_tool_call"}})
    });

    for f in [
        status(
            400,
            "ValidationException",
            "Input is too long for requested model.",
        ),
        status(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        status(
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        status(
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the provided model identifier.",
        ),
        status(
            429,
            "ThrottlingException",
            "Too many requests, please wait.",
        ),
        status(500, "InternalServerException", "Internal server error"),
        status(
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
    ] {
        mock.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "bedrock-claude", "errors"))
        .await
        .unwrap();

    gateway.shutdown().await.unwrap();
}
