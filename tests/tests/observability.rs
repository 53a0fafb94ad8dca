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
