//! The gateway in front of the Bedrock mock: Converse (plain, streamed, tools),
//! embeddings over InvokeModel, and one upstream error of each class — asserting what the
//! client got and what the mock recorded (SigV4 headers it verified, encoded model paths).

use std::time::Duration;

use llmux_core::{DeploymentSettings, Secret};
use llmux_server::RunningGateway;
use llmux_testkit::{BedrockMock, Fault};
use serde_json::{Value, json};

const KEY: &str = "sk-e2e-bedrock";
const REGION: &str = "eu-west-1";
const KEY_ID: &str = "AKIAE2EBEDROCK0000001";
const SECRET: &str = "e2e/Bedrock+Secret+Key/0123456789abcdefghij";
const TOKEN: &str = "IQoJb3JpZ2luX2VjE2EBEDROCKSESSIONTOKEN";
const PROFILE: &str = "eu.anthropic.claude-3-7-sonnet-20250219-v1:0";
const ARN: &str =
    "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5f6";

struct Setup {
    mock: BedrockMock,
    gateway: RunningGateway,
    http: reqwest::Client,
}

fn deployment(mock: &BedrockMock, model: &str) -> DeploymentSettings {
    let mut s = DeploymentSettings::new("bedrock", model);
    s.api_base = Some(mock.base_url());
    s.params = json!({"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
        "aws_session_token": TOKEN, "aws_region_name": REGION})
    .as_object()
    .cloned()
    .unwrap();
    s
}

async fn setup() -> Setup {
    llmux::link_providers();
    let mock = BedrockMock::with_credentials(REGION, KEY_ID, SECRET, Some(TOKEN)).await;
    mock.accept_bearer_token("ABSKe2e-bedrock-api-key");
    let mut bearer = DeploymentSettings::new("bedrock", "amazon.nova-micro-v1:0");
    bearer.api_base = Some(mock.base_url());
    bearer.api_key = Some(Secret::new("ABSKe2e-bedrock-api-key"));
    bearer
        .params
        .insert("aws_region_name".into(), json!(REGION));
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
        .model("claude", deployment(&mock, PROFILE))
        .model("arn-claude", deployment(&mock, ARN))
        .model("titan", deployment(&mock, "amazon.titan-embed-text-v2:0"))
        .model("cohere", deployment(&mock, "cohere.embed-multilingual-v3"))
        .model("nova-key", bearer)
        .build()
        .expect("gateway builds")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("gateway starts");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    Setup {
        mock,
        gateway,
        http,
    }
}

impl Setup {
    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.gateway.url()))
            .bearer_auth(KEY)
            .json(body)
    }

    async fn chat(&self, body: Value) -> (u16, Value) {
        let resp = self
            .post("/v1/chat/completions", &body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello from the gateway"}]})
}

/// The SigV4 `Authorization` header the mock verified names our key, region and service.
fn assert_signed(r: &llmux_testkit::RecordedRequest) {
    let authz = r.header("authorization").unwrap_or_default();
    let date = r.header("x-amz-date").unwrap_or_default();
    assert_eq!(date.len(), 16, "{date}");
    assert!(
        authz.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={KEY_ID}/{}/{REGION}/bedrock/aws4_request, SignedHeaders=",
            &date[..8]
        )),
        "{authz}"
    );
    let signed = authz
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_default();
    for h in ["host", "x-amz-date", "x-amz-security-token", "content-type"] {
        assert!(
            signed.split(';').any(|s| s == h),
            "{h} not signed: {signed}"
        );
    }
    assert!(!signed.contains("authorization"));
    assert_eq!(r.header("x-amz-security-token"), Some(TOKEN));
}

#[tokio::test]
async fn plain_streamed_and_tool_calls_through_converse() {
    let s = setup().await;

    // Plain.
    let (status, v) = s.chat(hello("claude")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "hello from the gateway"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["model"], PROFILE);
    assert_eq!(v["usage"]["prompt_tokens"], 6);
    assert_eq!(v["usage"]["completion_tokens"], 4);
    let r = s.mock.requests().pop().unwrap();
    assert_eq!(
        r.path,
        "/model/eu.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
    );
    assert_signed(&r);
    assert_eq!(r.body["system"], json!([{"text": "be brief"}]));
    assert_eq!(
        r.body["messages"],
        json!([{"role": "user", "content": [{"text": "hello from the gateway"}]}])
    );

    // Streamed, usage asked for.
    let mut body = hello("claude");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = s.post("/v1/chat/completions", &body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let events = llmux_e2e::sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "hello from the gateway");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 10);
    let r = s.mock.requests().pop().unwrap();
    assert!(r.path.ends_with("-v1%3A0/converse-stream"), "{}", r.path);
    assert_signed(&r);

    // A tool call, then the round trip with its result.
    let weather = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"]}}}]);
    let (status, v) = s
        .chat(json!({"model": "claude", "tools": weather,
            "messages": [{"role": "user", "content": "call tool weather in Paris"}]}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"mock"}"#);
    let sent = s.mock.requests().pop().unwrap().body;
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    let (status, v) = s
        .chat(json!({"model": "claude", "tools": weather, "messages": [
            {"role": "user", "content": "call tool weather in Paris"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "18C"},
            {"role": "user", "content": "thanks"}]}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "thanks");
    let sent = s.mock.requests().pop().unwrap().body;
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"toolResult": {"toolUseId": call["id"], "content": [{"text": "18C"}]}})
    );

    // Streamed tool call.
    let resp = s
        .post(
            "/v1/chat/completions",
            &json!({"model": "claude", "tools": weather, "stream": true,
                "messages": [{"role": "user", "content": "call tool weather in Rome"}]}),
        )
        .send()
        .await
        .unwrap();
    let events = llmux_e2e::sse_data(&resp.text().await.unwrap());
    let args: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(args, r#"{"city":"mock"}"#);
    s.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn arn_ids_and_api_keys() {
    let s = setup().await;
    let (status, v) = s.chat(hello("arn-claude")).await;
    assert_eq!(status, 200, "{v}");
    let r = s.mock.requests().pop().unwrap();
    assert_eq!(
        r.path,
        "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3d4e5f6/converse"
    );
    assert_signed(&r);

    let (status, v) = s.chat(hello("nova-key")).await;
    assert_eq!(status, 200, "{v}");
    let r = s.mock.requests().pop().unwrap();
    assert_eq!(r.path, "/model/amazon.nova-micro-v1%3A0/converse");
    assert_eq!(
        r.header("authorization"),
        Some("Bearer ABSKe2e-bedrock-api-key")
    );
    s.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn embeddings_over_invoke_model() {
    let s = setup().await;
    let resp = s
        .post(
            "/v1/embeddings",
            &json!({"model": "titan", "input": ["red fox", "blue whale swims"], "dimensions": 512}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 512);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    let reqs = s.mock.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
        assert_eq!(r.body["dimensions"], 512);
        assert_signed(r);
    }

    let resp = s
        .post(
            "/v1/embeddings",
            &json!({"model": "cohere", "input": "bonjour le monde", "input_type": "search_query"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 1024);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let r = s.mock.requests().pop().unwrap();
    assert_eq!(r.path, "/model/cohere.embed-multilingual-v3/invoke");
    assert_eq!(
        r.body,
        json!({"texts": ["bonjour le monde"], "input_type": "search_query"})
    );
    s.gateway.shutdown().await.unwrap();
}

/// Upstream status, AWS error name and message; the client's status, OpenAI `type` and `code`.
type ErrorCase = (
    u16,
    &'static str,
    &'static str,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn each_error_class_reaches_the_client_in_openai_shape() {
    let s = setup().await;
    let cases: [ErrorCase; 11] = [
        (
            400,
            "ValidationException",
            "Input is too long for requested model.",
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        (
            400,
            "ValidationException",
            "Malformed input request: extraneous key [foo]",
            400,
            "invalid_request_error",
            None,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            401,
            "authentication_error",
            Some("invalid_api_key"),
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            403,
            "permission_error",
            Some("permission_denied"),
        ),
        (
            404,
            "ResourceNotFoundException",
            "Could not resolve the foundation model.",
            404,
            "invalid_request_error",
            Some("not_found"),
        ),
        (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            429,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
        ),
        (
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
            408,
            "timeout_error",
            Some("timeout"),
        ),
        (
            424,
            "ModelErrorException",
            "The model returned an error.",
            502,
            "api_error",
            Some("upstream_error"),
        ),
        (
            500,
            "InternalServerException",
            "Internal server error",
            502,
            "api_error",
            Some("upstream_error"),
        ),
        (
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
            503,
            "service_unavailable_error",
            Some("upstream_unavailable"),
        ),
        (
            429,
            "ModelNotReadyException",
            "Model is not ready for inference.",
            503,
            "service_unavailable_error",
            Some("upstream_unavailable"),
        ),
    ];
    for (upstream, name, message, status, kind, code) in cases {
        s.mock.push_fault(Fault::Status {
            status: upstream,
            body: BedrockMock::error_body(name, message),
            retry_after: (upstream == 429).then_some(2),
        });
        let resp = s
            .post("/v1/chat/completions", &hello("claude"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        if name == "ThrottlingException" {
            assert_eq!(resp.headers()["retry-after"], "2");
        }
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], kind, "{name}: {v}");
        assert_eq!(v["error"]["code"].as_str(), code, "{name}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(message),
            "{name}: {v}"
        );
        assert!(!v.to_string().contains(SECRET) && !v.to_string().contains(TOKEN));
    }

    // A real signature failure: a deployment with the wrong secret.
    let mut wrong = deployment(&s.mock, PROFILE);
    wrong
        .params
        .insert("aws_secret_access_key".into(), json!("wrong/secret/key"));
    let mut config = llmux_config::Config::default();
    config.server.master_key = Some(Secret::new(KEY));
    let g = llmux::gateway()
        .config(config)
        .model("wrong", wrong)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", g.url()))
        .bearer_auth(KEY)
        .json(&hello("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("InvalidSignatureException"),
        "{v}"
    );
    assert!(!v.to_string().contains("wrong/secret/key"));
    g.shutdown().await.unwrap();

    // Mid-stream: an exception frame, then a corrupt frame, each end the SSE stream with
    // an error event and no [DONE].
    let mut body = hello("claude");
    body["stream"] = json!(true);
    for (setup_fault, code) in [(0usize, "rate_limit_exceeded"), (1, "upstream_error")] {
        if setup_fault == 0 {
            s.mock
                .push_stream_exception(2, "throttlingException", "Too many tokens.");
        } else {
            s.mock.push_corrupt_frame(2);
        }
        let resp = s.post("/v1/chat/completions", &body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let events = llmux_e2e::sse_data(&resp.text().await.unwrap());
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], code, "{events:?}");
        assert!(!events.iter().any(|e| e == "[DONE]"));
    }
    s.gateway.shutdown().await.unwrap();
}
