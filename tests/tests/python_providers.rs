//! Every provider through the gateway with the official `openai` Python client: plain,
//! streamed, tool-call round trip, vision input, JSON mode, and an upstream error of each
//! class — checking both what the client got (in the Python script) and what each mock
//! upstream recorded (here).
//!
//! Needs a Python with `openai` installed, named by `LLMUX_PYTHON`; `cargo xtask ci` makes
//! one and runs this with `--ignored`.

use std::process::Command;
use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_testkit::{AnthropicMock, Fault, GeminiMock, OpenAiMock, RecordedRequest};
use serde_json::{Value, json};

const KEY: &str = "sk-python-providers";
const TEST_ONLY_KEY: &str =
    include_str!("../../providers/gemini/tests/fixtures/test_only_throwaway_rsa_key.pem");

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

fn status(status: u16, body: Value) -> Fault {
    Fault::Status {
        status,
        body,
        retry_after: (status == 429).then_some(2),
    }
}

fn anthropic_faults() -> Vec<Fault> {
    let e = AnthropicMock::error_body;
    vec![
        status(
            400,
            e(
                "invalid_request_error",
                "prompt is too long: 250000 tokens > 200000 maximum",
            ),
        ),
        status(401, e("authentication_error", "invalid x-api-key")),
        status(
            403,
            e("permission_error", "Your API key does not have permission"),
        ),
        status(404, e("not_found_error", "model: claude-nope")),
        status(
            429,
            e(
                "rate_limit_error",
                "Number of request tokens has exceeded your rate limit",
            ),
        ),
        status(500, e("api_error", "Internal server error")),
        status(529, e("overloaded_error", "Overloaded")),
    ]
}

fn google(code: u16, status_name: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status_name}})
}

fn google_faults() -> Vec<Fault> {
    vec![
        status(
            400,
            google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
        ),
        status(
            401,
            google(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
        ),
        status(
            403,
            google(
                403,
                "PERMISSION_DENIED",
                "Permission denied on resource project.",
            ),
        ),
        status(
            404,
            google(404, "NOT_FOUND", "models/gemini-nope is not found"),
        ),
        status(
            429,
            google(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
            ),
        ),
        status(
            500,
            google(500, "INTERNAL", "An internal error has occurred."),
        ),
        status(
            503,
            google(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            ),
        ),
    ]
}

fn openai_faults() -> Vec<Fault> {
    let e = |message: &str, code: Option<&str>| json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    vec![
        status(
            400,
            e(
                "This model's maximum context length is 128000 tokens.",
                Some("context_length_exceeded"),
            ),
        ),
        status(
            401,
            e(
                "Access denied due to invalid subscription key.",
                Some("401"),
            ),
        ),
        status(403, e("Forbidden", None)),
        status(
            404,
            e(
                "The API deployment for this resource does not exist.",
                Some("DeploymentNotFound"),
            ),
        ),
        status(
            429,
            e(
                "Requests to the ChatCompletions_Create Operation have exceeded call rate limit.",
                Some("429"),
            ),
        ),
        status(
            500,
            e(
                "The server had an error while processing your request.",
                None,
            ),
        ),
        status(503, e("The service is temporarily unavailable.", None)),
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
async fn official_python_client_against_every_provider() {
    llmux::link_providers();
    let anthropic = AnthropicMock::with_api_key("sk-ant-test").await;
    let gemini = GeminiMock::with_api_key("gm-test-key").await;
    let azure = OpenAiMock::azure("az-test-key").await;

    let mut claude = DeploymentSettings::new("anthropic", "claude-sonnet-4-5");
    claude.api_base = Some(anthropic.base_url());
    claude.api_key = Some(Secret::new("sk-ant-test"));
    let mut flash = DeploymentSettings::new("gemini", "gemini-2.5-flash");
    flash.api_base = Some(gemini.base_url());
    flash.api_key = Some(Secret::new("gm-test-key"));
    let mut vertex = DeploymentSettings::new("vertex_ai", "gemini-2.5-flash");
    vertex.api_base = Some(gemini.base_url());
    vertex
        .params
        .insert("vertex_location".into(), json!("europe-west4"));
    vertex.params.insert(
        "vertex_credentials".into(),
        json!(
            json!({
                "type": "service_account", "project_id": "test-project", "private_key_id": "k1",
                "private_key": TEST_ONLY_KEY,
                "client_email": "llmux-test@test-project.iam.gserviceaccount.com",
                "client_id": "1", "token_uri": gemini.token_url()
            })
            .to_string()
        ),
    );
    let mut vertex_claude = vertex.clone();
    vertex_claude.model = "claude-sonnet-4-5".into();
    let mut az = DeploymentSettings::new("azure", "gpt4o-deploy");
    az.api_base = Some(azure.root_url());
    az.api_key = Some(Secret::new("az-test-key"));

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
        .model("claude", claude)
        .model("flash", flash)
        .model("vertex-flash", vertex)
        .model("vertex-claude", vertex_claude)
        .model("azure-gpt", az)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = gateway.url();

    // Anthropic.
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "claude", "features"))
        .await
        .unwrap();
    let reqs = anthropic.requests();
    any(&reqs, "x-api-key", |r| {
        r.header("x-api-key") == Some("sk-ant-test")
    });
    any(&reqs, "the system prompt lifted", |r| {
        contains(&r.body["system"], "be brief")
    });
    any(&reqs, "a tool_result block", |r| {
        contains(&r.body["messages"], "\"tool_result\"")
    });
    any(&reqs, "a base64 image block", |r| {
        contains(&r.body["messages"], "\"media_type\":\"image/png\"")
    });
    any(&reqs, "JSON mode as a forced tool", |r| {
        contains(&r.body["tools"], "json_tool_call")
    });
    any(&reqs, "max_tokens always sent", |r| {
        r.body["max_tokens"] == 64
    });
    for f in anthropic_faults() {
        anthropic.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "claude", "errors"))
        .await
        .unwrap();

    // Gemini API.
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "flash", "features"))
        .await
        .unwrap();
    let reqs = gemini.requests();
    any(&reqs, "the key in x-goog-api-key", |r| {
        r.header("x-goog-api-key") == Some("gm-test-key") && !r.path.contains("gm-test-key")
    });
    any(&reqs, "systemInstruction", |r| {
        contains(&r.body["systemInstruction"], "be brief")
    });
    any(&reqs, "a functionResponse part", |r| {
        contains(&r.body["contents"], "functionResponse")
    });
    any(&reqs, "inline image data", |r| {
        contains(&r.body["contents"], "\"mimeType\":\"image/png\"")
    });
    any(&reqs, "JSON mode", |r| {
        r.body["generationConfig"]["responseMimeType"] == "application/json"
    });
    for f in google_faults() {
        gemini.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "flash", "errors"))
        .await
        .unwrap();

    // Vertex AI (service-account token from the mock's OAuth endpoint).
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "vertex-flash", "features"))
        .await
        .unwrap();
    let reqs = gemini.requests();
    any(&reqs, "a Vertex path", |r| {
        r.path.contains("/projects/test-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:")
            && r.header("authorization").is_some_and(|a| a.starts_with("Bearer "))
    });
    for f in google_faults() {
        gemini.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "vertex-flash", "errors"))
        .await
        .unwrap();

    // Claude on Vertex AI (the Anthropic codec over rawPredict).
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "vertex-claude", "features"))
        .await
        .unwrap();
    let reqs = gemini.requests();
    any(
        &reqs,
        "the Vertex Anthropic path with the Vertex body",
        |r| {
            r.path
                .contains("/publishers/anthropic/models/claude-sonnet-4-5:")
                && r.body["anthropic_version"] == "vertex-2023-10-16"
                && r.body.get("model").is_none()
        },
    );
    any(&reqs, "a tool_result block", |r| {
        r.path.contains("/publishers/anthropic/")
            && contains(&r.body["messages"], "\"tool_result\"")
    });
    for f in anthropic_faults() {
        gemini.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "vertex-claude", "errors"))
        .await
        .unwrap();

    // Azure OpenAI.
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "azure-gpt", "features"))
        .await
        .unwrap();
    let reqs = azure.requests();
    any(&reqs, "the deployment path and api-key", |r| {
        r.path
            .starts_with("/openai/deployments/gpt4o-deploy/chat/completions?api-version=")
            && r.header("api-key") == Some("az-test-key")
    });
    any(&reqs, "a tool message", |r| {
        contains(&r.body["messages"], "\"tool_call_id\":\"call_mock1\"")
    });
    any(&reqs, "an image part", |r| {
        contains(&r.body["messages"], "\"image_url\"")
    });
    any(&reqs, "JSON mode", |r| {
        r.body["response_format"]["type"] == "json_object"
    });
    for f in openai_faults() {
        azure.push_fault(f);
    }
    let b = base.clone();
    tokio::task::spawn_blocking(move || python(&b, "azure-gpt", "errors"))
        .await
        .unwrap();

    gateway.shutdown().await.unwrap();
}
