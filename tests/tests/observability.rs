//! Observability through the real gateway: Prometheus metrics on `/metrics`, an
//! OpenTelemetry span per call (continuing the client's `traceparent`) exported to an
//! OTLP receiver, and Langfuse events — each naming the model that really answered.

use std::time::Duration;

use llmux_config::Config;
use llmux_e2e::UPSTREAM_KEY;
use llmux_testkit::{LangfuseMock, OpenAiMock, OtlpReceiver};
use serde_json::json;

const KEY: &str = "sk-observe-master";

#[tokio::test]
async fn metrics_spans_and_langfuse_name_the_answering_model() {
    llmux::link_providers();
    let upstream = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let otlp = OtlpReceiver::start().await;
    let langfuse = LangfuseMock::start("pk-lf-test", "sk-lf-test").await;
    let yaml = format!(
        "server:\n  master_key: {KEY}\nmodels:\n  - name: observed\n    model: openai/gpt-4o-mini\n    api_base: {}\n    api_key: {UPSTREAM_KEY}\n",
        upstream.base_url()
    );
    let config = Config::from_str(&yaml, "yaml", "observe.yaml", &|_| None).unwrap();
    let (otlp_url, lf_host) = (otlp.endpoint(), langfuse.host());
    let gateway = llmux::gateway()
        .config(config)
        .env(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(otlp_url.clone()),
            "OTEL_SERVICE_NAME" => Some("llmux-e2e".into()),
            "LANGFUSE_HOST" => Some(lf_host.clone()),
            "LANGFUSE_PUBLIC_KEY" => Some("pk-lf-test".into()),
            "LANGFUSE_SECRET_KEY" => Some("sk-lf-test".into()),
            _ => None,
        })
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let resp = http
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .json(&json!({"model": "observed", "messages": [{"role": "user", "content": "watch me"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();

    // Shutting down drains the meter and flushes the exporters.
    let metrics_url = format!("{}/metrics", gateway.url());
    let text = http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    gateway.shutdown().await.unwrap();

    let line = text
        .lines()
        .find(|l| l.starts_with("llmux_requests_total{") && l.contains("model_group=\"observed\""))
        .unwrap_or_else(|| panic!("no request series in:\n{text}"));
    assert!(line.contains("provider=\"openai\""), "{line}");
    assert!(line.contains("status=\"200\""), "{line}");
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        text.contains("llmux_tokens_total{"),
        "token counters exported"
    );
    assert!(!text.contains(&request_id), "no request ids in labels");

    let spans = otlp.wait_for_spans(1, Duration::from_secs(5)).await;
    let span = &spans[0];
    assert_eq!(span.trace_id, trace_id, "the client's trace is continued");
    assert_eq!(span.parent_span_id.as_deref(), Some(parent));
    assert_eq!(span.name, "chat observed");
    assert_eq!(span.attr_str("gen_ai.request.model"), Some("observed"));
    assert_eq!(span.attr_str("gen_ai.response.model"), Some("gpt-4o-mini"));
    assert_eq!(span.attr_i64("gen_ai.usage.input_tokens"), Some(2));
    assert_eq!(span.attr_i64("gen_ai.usage.output_tokens"), Some(2));
    assert_eq!(span.attr_str("llmux.request_id"), Some(request_id.as_str()));

    let events = langfuse.wait_for_events(2, Duration::from_secs(5)).await;
    let generation = events
        .iter()
        .find(|e| e.kind == "generation-create")
        .expect("a generation");
    assert_eq!(generation.body["model"], "gpt-4o-mini");
    let dump = serde_json::to_string(&events.iter().map(|e| &e.body).collect::<Vec<_>>()).unwrap();
    assert!(!dump.contains(UPSTREAM_KEY) && !dump.contains("sk-lf-test"));
}

/// A gateway serving `traced` (a model group of its own: metrics are process-wide and
/// the first test counts `observed`'s calls) from `upstream`, with `settings` (YAML lines under
/// `settings:`, each indented two spaces) and the variables `env` gives.
async fn gateway_with(
    upstream: &OpenAiMock,
    settings: &str,
    env: Vec<(&'static str, String)>,
) -> llmux_server::RunningGateway {
    llmux::link_providers();
    let yaml = format!(
        "server:\n  master_key: {KEY}\nsettings:\n{settings}models:\n  - name: traced\n    model: openai/gpt-4o-mini\n    api_base: {}\n    api_key: {UPSTREAM_KEY}\n",
        upstream.base_url()
    );
    let config = Config::from_str(&yaml, "yaml", "observe.yaml", &|_| None).unwrap();
    llmux::gateway()
        .config(config)
        .env(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn langfuse_env(langfuse: &LangfuseMock) -> Vec<(&'static str, String)> {
    vec![
        ("LANGFUSE_HOST", langfuse.host()),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-test".into()),
        ("LANGFUSE_SECRET_KEY", "sk-lf-test".into()),
    ]
}

/// The metadata a LiteLLM client sends for Langfuse, plus a custom key and one that must
/// never leave the gateway.
fn langfuse_metadata() -> serde_json::Value {
    json!({
        "session_id": "sess-e2e-1",
        "trace_name": "checkout-flow",
        "generation_name": "summarise-cart",
        "tags": ["team-blue", "beta"],
        "experiment": "exp-42",
        "api_key": "sk-client-secret-never-forwarded"
    })
}

#[tokio::test]
async fn langfuse_gets_input_output_and_request_metadata_when_log_prompts_is_on() {
    let upstream = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let langfuse = LangfuseMock::start("pk-lf-test", "sk-lf-test").await;
    let gateway = gateway_with(&upstream, "  log_prompts: true\n", langfuse_env(&langfuse)).await;
    let http = http();
    let mut request_ids = Vec::new();
    for stream in [false, true] {
        let resp = http
            .post(format!("{}/v1/chat/completions", gateway.url()))
            .bearer_auth(KEY)
            .json(&json!({
                "model": "traced",
                "stream": stream,
                "messages": [{"role": "user", "content": "count my cart"}],
                "metadata": langfuse_metadata(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        request_ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_owned());
        resp.bytes().await.unwrap(); // read the stream to its end
    }
    gateway.shutdown().await.unwrap();

    let events = langfuse.wait_for_events(4, Duration::from_secs(5)).await;
    assert_eq!(events.len(), 4, "a trace and a generation per call");
    for (request_id, stream) in request_ids.iter().zip([false, true]) {
        let trace = events
            .iter()
            .find(|e| e.kind == "trace-create" && e.id == format!("{request_id}-trace-create"))
            .unwrap_or_else(|| panic!("no trace for {request_id}"));
        let generation = events
            .iter()
            .find(|e| {
                e.kind == "generation-create" && e.id == format!("{request_id}-generation-create")
            })
            .unwrap_or_else(|| panic!("no generation for {request_id}"));
        let (t, g) = (&trace.body, &generation.body);
        assert_eq!(t["name"], "checkout-flow", "stream={stream}");
        assert_eq!(t["sessionId"], "sess-e2e-1");
        assert_eq!(t["tags"], json!(["team-blue", "beta"]));
        assert_eq!(g["traceId"], t["id"]);
        assert_eq!(g["name"], "summarise-cart");
        assert_eq!(g["model"], "gpt-4o-mini");
        assert_eq!(g["metadata"]["experiment"], "exp-42");
        assert_eq!(g["metadata"]["session_id"], "sess-e2e-1");
        assert!(g["metadata"].get("generation_name").is_none());
        let input = json!([{"role": "user", "content": "count my cart"}]);
        assert_eq!(t["input"], input);
        assert_eq!(g["input"], input);
        assert_eq!(g["output"]["role"], "assistant");
        assert_eq!(
            g["output"]["content"], "count my cart",
            "the echoed answer (streamed: accumulated), stream={stream}"
        );
        assert_eq!(t["output"], g["output"]);
        assert_eq!(g["usageDetails"]["input"], 3);
        assert_eq!(g["usageDetails"]["output"], 3);
    }
    let dump = serde_json::to_string(&events.iter().map(|e| &e.body).collect::<Vec<_>>()).unwrap();
    assert!(
        !dump.contains("sk-client-secret"),
        "credentials never leave"
    );
    assert!(!dump.contains(UPSTREAM_KEY) && !dump.contains("sk-lf-test"));
}

#[tokio::test]
async fn without_log_prompts_langfuse_gets_metadata_but_no_input_or_output() {
    let upstream = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let langfuse = LangfuseMock::start("pk-lf-test", "sk-lf-test").await;
    let gateway = gateway_with(&upstream, "  drop_params: false\n", langfuse_env(&langfuse)).await;
    let resp = http()
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .bearer_auth(KEY)
        .json(&json!({
            "model": "traced",
            "messages": [{"role": "user", "content": "private words"}],
            "metadata": langfuse_metadata(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    gateway.shutdown().await.unwrap();

    let events = langfuse.wait_for_events(2, Duration::from_secs(5)).await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert!(e.body.get("input").is_none(), "{}: {}", e.kind, e.body);
        assert!(e.body.get("output").is_none(), "{}: {}", e.kind, e.body);
    }
    let trace = events.iter().find(|e| e.kind == "trace-create").unwrap();
    assert_eq!(trace.body["sessionId"], "sess-e2e-1");
    assert_eq!(trace.body["name"], "checkout-flow");
    let dump = serde_json::to_string(&events.iter().map(|e| &e.body).collect::<Vec<_>>()).unwrap();
    assert!(!dump.contains("private words"), "no prompt text anywhere");
    assert!(!dump.contains("sk-client-secret"));
}

/// One call through a gateway exporting with `protocol`; the span the receiver decoded.
async fn span_over(protocol: &str) -> llmux_testkit::ReceivedSpan {
    let upstream = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let otlp = OtlpReceiver::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint()),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol.to_owned()),
        ("OTEL_SERVICE_NAME", "llmux-e2e".into()),
    ];
    let gateway = gateway_with(&upstream, "  drop_params: false\n", env).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = http()
        .post(format!("{}/v1/chat/completions", gateway.url()))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&json!({
            "model": "traced",
            "messages": [{"role": "user", "content": "three little words"}],
            "metadata": {"session_id": "sess-otlp", "tags": ["t1"]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    gateway.shutdown().await.unwrap();

    let spans = otlp.wait_for_spans(1, Duration::from_secs(5)).await;
    assert_eq!(spans.len(), 1, "{protocol}: {:?}", otlp.requests());
    let span = spans[0].clone();
    assert_eq!(span.transport, protocol);
    assert_eq!(span.trace_id, trace_id);
    assert_eq!(span.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(span.name, "chat traced");
    assert_eq!(span.kind, 3);
    assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    assert_eq!(span.attr_str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(span.attr_str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(span.attr_str("gen_ai.request.model"), Some("traced"));
    assert_eq!(span.attr_str("gen_ai.response.model"), Some("gpt-4o-mini"));
    assert_eq!(span.attr_i64("gen_ai.usage.input_tokens"), Some(3));
    assert_eq!(span.attr_i64("gen_ai.usage.output_tokens"), Some(3));
    assert_eq!(
        span.attr("gen_ai.response.finish_reasons"),
        Some(&json!(["stop"]))
    );
    assert_eq!(span.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(span.attr_str("llmux.request_id"), Some(request_id.as_str()));
    assert_eq!(span.attr_str("gen_ai.conversation.id"), Some("sess-otlp"));
    assert_eq!(span.attr("llmux.tags"), Some(&json!(["t1"])));
    assert!(
        span.attr("llmux.cost_usd")
            .is_some_and(|c| c.as_f64().is_some())
    );
    assert_eq!(span.resource.get("service.name"), Some(&json!("llmux-e2e")));
    assert_eq!(span.scope, "llmux");
    span
}

#[tokio::test]
async fn otlp_http_protobuf_export_is_decoded_with_the_genai_attributes() {
    span_over("http/protobuf").await;
}

#[tokio::test]
async fn otlp_grpc_export_is_decoded_with_the_genai_attributes() {
    span_over("grpc").await;
}

#[tokio::test]
async fn the_spend_log_keeps_session_and_metadata_but_never_the_prompt() {
    let dir = std::env::temp_dir().join(format!(
        "llmux-observe-e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("llmux.db").display());
    let upstream = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let langfuse = LangfuseMock::start("pk-lf-test", "sk-lf-test").await;
    let start = |store: llmux_store::Store| {
        llmux::link_providers();
        let yaml = format!(
            "server:\n  master_key: {KEY}\nsettings:\n  log_prompts: true\nmodels:\n  - name: traced\n    model: openai/gpt-4o-mini\n    api_base: {}\n    api_key: {UPSTREAM_KEY}\n",
            upstream.base_url()
        );
        let config = Config::from_str(&yaml, "yaml", "observe.yaml", &|_| None).unwrap();
        let env = langfuse_env(&langfuse);
        llmux::gateway()
            .config(config)
            .env(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .store(store)
            .build()
            .unwrap()
            .spawn("127.0.0.1:0".parse().unwrap())
    };

    // A call, then a shutdown that flushes the spend writer and the Langfuse sink.
    let first = start(llmux_store::Store::connect(&url).await.unwrap())
        .await
        .unwrap();
    let resp = http()
        .post(format!("{}/v1/chat/completions", first.url()))
        .bearer_auth(KEY)
        .json(&json!({
            "model": "traced",
            "messages": [{"role": "user", "content": "confidential cart contents"}],
            "metadata": langfuse_metadata(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    first.shutdown().await.unwrap();
    let events = langfuse.wait_for_events(2, Duration::from_secs(5)).await;
    assert!(
        events.iter().any(|e| e.body.get("input").is_some()),
        "log_prompts is on: Langfuse got the prompt"
    );

    let store = llmux_store::Store::connect(&url).await.unwrap();
    let row = store.spend_log(&request_id).await.unwrap().expect("logged");
    assert_eq!(row.session_id.as_deref(), Some("sess-e2e-1"));
    assert!(row.prompt.is_none() && row.completion.is_none());

    // What /spend/logs shows.
    let second = start(store).await.unwrap();
    let logs: serde_json::Value = http()
        .get(format!("{}/spend/logs", second.url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    second.shutdown().await.unwrap();
    let rows = logs["data"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|r| r["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no row for {request_id}: {logs}"));
    assert_eq!(row["session_id"], "sess-e2e-1");
    assert_eq!(row["metadata"]["trace_name"], "checkout-flow");
    assert_eq!(row["metadata"]["experiment"], "exp-42");
    assert!(row["metadata"].get("api_key").is_none(), "{row}");
    let text = row.to_string();
    assert!(!text.contains("confidential cart contents"), "{text}");
    assert!(!text.contains("sk-client-secret"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
