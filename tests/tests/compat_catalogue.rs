//! Every provider of the OpenAI-compatible catalogue, through the real gateway on
//! 127.0.0.1, against the testkit OpenAI mock: `prefix/model` routing, the URL path, the
//! key header and the body (quirks applied) each provider receives; a stream; error
//! mapping; a `prefix/*` route configured from the environment.

use std::time::Duration;

use llmux::compat::{Auth, CATALOGUE, CompatProvider, Quirk};
use llmux_core::{DeploymentSettings, Secret};
use llmux_e2e::sse_data;
use llmux_server::RunningGateway;
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::{Value, json};

/// Parameters some catalogue rows drop; every request carries all of them.
const PROBED: &[&str] = &[
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "service_tier",
];

fn key_of(e: &CompatProvider) -> String {
    format!("sk-{}-test", e.prefix)
}

fn router_settings() -> llmux_router::RouterSettings {
    llmux_router::RouterSettings {
        num_retries: 0,
        allowed_fails: None,
        cooldown_time: Duration::ZERO,
        retry_after_cap: Duration::ZERO,
        stream_resume: false,
        ..llmux_router::RouterSettings::default()
    }
}

async fn spawn(builder: llmux_server::GatewayBuilder) -> RunningGateway {
    builder
        .router_settings(router_settings())
        .observability(false)
        .build()
        .expect("gateway builds")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("gateway starts")
}

/// `prefix/*` for every catalogue row, all pointed at `mock`, each with its own key; plus
/// `local`: LM Studio without a key.
async fn catalogue_gateway(mock: &OpenAiMock) -> RunningGateway {
    let mut b = llmux::gateway();
    for e in CATALOGUE {
        let mut s = DeploymentSettings::new(e.prefix, "*");
        s.api_base = Some(mock.base_url());
        s.api_key = Some(Secret::new(key_of(e)));
        b = b.model(format!("{}/*", e.prefix), s);
    }
    let mut local = DeploymentSettings::new("lm_studio", "qwen2.5-7b-instruct");
    local.api_base = Some(mock.base_url());
    spawn(b.model("local", local)).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn probe_request(e: &CompatProvider) -> Value {
    json!({
        "model": format!("{}/some-model-{}", e.prefix, e.prefix),
        "messages": [{"role": "user", "name": "ann",
            "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": e.prefix}]}],
        "max_completion_tokens": 77,
        "logprobs": true,
        "top_logprobs": 1,
        "logit_bias": {"1": 1},
        "presence_penalty": 0.5,
        "frequency_penalty": 0.5,
        "parallel_tool_calls": true,
        "service_tier": "flex"
    })
}

/// What `e`'s upstream must have received for [`probe_request`]; a failure names `e`.
fn check_upstream(e: &CompatProvider, rec: &llmux_testkit::RecordedRequest) {
    let p = e.prefix;
    assert_eq!(rec.method, "POST", "{p}");
    assert_eq!(rec.path, "/v1/chat/completions", "{p}: URL path");
    let key = key_of(e);
    match e.auth {
        Auth::Bearer | Auth::OptionalBearer => {
            assert_eq!(
                rec.header("authorization"),
                Some(&*format!("Bearer {key}")),
                "{p}: key"
            );
        }
        Auth::Header(h) => {
            assert_eq!(rec.header(h), Some(key.as_str()), "{p}: key header {h}");
            assert_eq!(rec.header("authorization"), None, "{p}");
        }
    }
    let body = &rec.body;
    assert_eq!(
        body["model"],
        format!("some-model-{p}"),
        "{p}: provider model id"
    );
    assert!(body.get("stream").is_none(), "{p}: plain call");
    for param in PROBED {
        let dropped = e.quirks.contains(&Quirk::Drop(param));
        assert_eq!(
            body.get(*param).is_none(),
            dropped,
            "{p}: {param} {} upstream",
            if dropped {
                "must not reach"
            } else {
                "must reach"
            }
        );
    }
    if e.quirks.contains(&Quirk::MaxCompletionTokensAsMaxTokens) {
        assert_eq!(body["max_tokens"], 77, "{p}: limit renamed");
        assert!(body.get("max_completion_tokens").is_none(), "{p}");
    } else {
        assert_eq!(body["max_completion_tokens"], 77, "{p}: limit kept");
        assert!(body.get("max_tokens").is_none(), "{p}");
    }
    let message = &body["messages"][0];
    if e.quirks.contains(&Quirk::TextPartsAsString) {
        assert_eq!(
            message["content"],
            format!("hello {p}"),
            "{p}: content as string"
        );
    } else {
        assert_eq!(message["content"][1]["text"], p, "{p}: content parts kept");
    }
    let name_kept = !e.quirks.contains(&Quirk::DropMessageNames);
    assert_eq!(
        message.get("name").is_some(),
        name_kept,
        "{p}: message name"
    );
}

#[tokio::test]
async fn every_catalogue_provider_routes_to_its_upstream_with_its_key_and_quirks() {
    let mock = OpenAiMock::start().await;
    let gw = catalogue_gateway(&mock).await;
    let http = client();
    assert!(CATALOGUE.len() >= 30);
    for (i, e) in CATALOGUE.iter().enumerate() {
        let resp = http
            .post(format!("{}/v1/chat/completions", gw.url()))
            .json(&probe_request(e))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.prefix));
        let status = resp.status();
        let provider = resp
            .headers()
            .get("x-llmux-provider")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{}: {v}", e.prefix);
        assert_eq!(provider.as_deref(), Some(e.prefix), "{}", e.prefix);
        let text = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
        assert!(text.contains(e.prefix), "{}: answer {v}", e.prefix);
        let recs = mock.requests();
        assert_eq!(
            recs.len(),
            i + 1,
            "{}: one upstream request per call",
            e.prefix
        );
        check_upstream(e, &recs[i]);
    }
}

#[tokio::test]
async fn table_independent_spot_checks() {
    let mock = OpenAiMock::start().await;
    let gw = catalogue_gateway(&mock).await;
    let http = client();
    let sent = |prefix: &'static str| {
        let e = llmux::compat::catalogue::find(prefix).expect("row");
        let (http, url, mock) = (&http, gw.url(), &mock);
        async move {
            let resp = http
                .post(format!("{url}/v1/chat/completions"))
                .json(&probe_request(e))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{prefix}");
            mock.requests().last().unwrap().body.clone()
        }
    };
    let groq = sent("groq").await;
    assert!(groq.get("logprobs").is_none() && groq.get("logit_bias").is_none());
    assert_eq!(groq["presence_penalty"], 0.5);
    let cerebras = sent("cerebras").await;
    assert!(cerebras.get("presence_penalty").is_none());
    assert!(cerebras.get("parallel_tool_calls").is_none());
    assert_eq!(cerebras["logprobs"], true);
    let moonshot = sent("moonshot").await;
    assert_eq!(moonshot["max_tokens"], 77);
    assert_eq!(moonshot["messages"][0]["content"], "hello moonshot");
    let xai = sent("xai").await;
    assert!(xai["messages"][0].get("name").is_none());
    let any = sent("openai_like").await;
    for param in PROBED {
        assert!(
            any.get(*param).is_some(),
            "openai_like passes {param} through"
        );
    }
    assert_eq!(any["max_completion_tokens"], 77);
}

#[tokio::test]
async fn a_keyless_local_server_gets_no_authorization() {
    let mock = OpenAiMock::start().await;
    let gw = catalogue_gateway(&mock).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({"model": "local", "messages": [{"role": "user", "content": "hi local"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llmux-provider"], "lm_studio");
    let rec = &mock.requests()[0];
    assert_eq!(rec.body["model"], "qwen2.5-7b-instruct");
    assert_eq!(rec.header("authorization"), None);
}

#[tokio::test]
async fn a_compat_stream_is_reassembled_metered_upstream_and_quirked() {
    let mock = OpenAiMock::start().await;
    let gw = catalogue_gateway(&mock).await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({
            "model": "groq/llama-3.3-70b-versatile",
            "messages": [{"role": "user", "content": "one two three four five"}],
            "stream": true,
            "logprobs": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-llmux-provider"], "groq");
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two three four five");
    assert!(chunks.len() >= 3, "streamed in pieces");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "usage hidden unless asked"
    );
    let upstream = &mock.requests()[0];
    assert_eq!(upstream.path, "/v1/chat/completions");
    assert_eq!(
        upstream.header("authorization"),
        Some("Bearer sk-groq-test")
    );
    assert_eq!(upstream.body["stream"], true);
    assert_eq!(upstream.body["stream_options"]["include_usage"], true);
    assert!(
        upstream.body.get("logprobs").is_none(),
        "groq's quirk applies to streams"
    );
}

#[tokio::test]
async fn compat_upstream_errors_map_to_openai_errors() {
    let mock = OpenAiMock::start().await;
    let gw = catalogue_gateway(&mock).await;
    let http = client();
    let call = |model: &'static str| {
        http.post(format!("{}/v1/chat/completions", gw.url()))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    mock.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached for model", "type": "tokens",
            "code": "rate_limit_exceeded"}}),
        retry_after: Some(7),
    });
    let resp = call("deepseek/deepseek-chat").await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("deepseek"),
        "{v}"
    );

    mock.push_fault(Fault::Status {
        status: 401,
        body: json!({"error": {"message": "Invalid API Key sk-together_ai-test", "type": "invalid_request_error",
            "code": "invalid_api_key"}}),
        retry_after: None,
    });
    let resp = call("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo")
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert!(
        !v.to_string().contains("sk-together_ai-test"),
        "the upstream key is redacted: {v}"
    );
    // The slash inside the model id is the provider's: it reached the upstream whole.
    assert_eq!(
        mock.requests().last().unwrap().body["model"],
        "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    );

    // A bad request for a capability the row lacks: embeddings on groq.
    let resp = http
        .post(format!("{}/v1/embeddings", gw.url()))
        .json(&json!({"model": "groq/some-embedder", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
}

#[tokio::test]
async fn a_provider_is_served_from_its_environment_variables() {
    let mock = OpenAiMock::with_api_key("gsk-from-env").await;
    let base = mock.base_url();
    let env = move |k: &str| match k {
        "GROQ_API_KEY" => Some("gsk-from-env".to_owned()),
        "GROQ_API_BASE" => Some(base.clone()),
        _ => None,
    };
    let gw = spawn(llmux::gateway().env(env)).await;
    let http = client();
    let resp = http
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({"model": "groq/qwen-qwq-32b", "messages": [{"role": "user", "content": "from env"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llmux-provider"], "groq");
    assert_eq!(mock.requests()[0].body["model"], "qwen-qwq-32b");
    // A provider whose variables are not set is not served.
    let resp = http
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
