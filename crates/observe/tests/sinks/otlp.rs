//! Real records exported to an OTLP receiver: HTTP JSON, HTTP protobuf and gRPC.

use std::sync::Arc;
use std::time::Duration;

use llmux_core::{CallRecord, CallSink, Secret};
use llmux_observe::{OtlpConfig, OtlpProtocol, OtlpSink, parse_traceparent};
use llmux_testkit::{Fault, OtlpReceiver, ReceivedSpan};
use serde_json::json;

use crate::common::{failed_record, fast_batch, ok_record};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn sink_for(rx: &OtlpReceiver) -> OtlpSink {
    let mut config = OtlpConfig::new(rx.traces_url());
    config.headers = vec![("x-otlp-key".into(), Secret::new("otlp-header-secret"))];
    config.service_name = "llmux-test".into();
    config.batch = fast_batch();
    OtlpSink::new(config).unwrap()
}

fn by_request(spans: &[ReceivedSpan], id: &str) -> ReceivedSpan {
    spans
        .iter()
        .find(|s| s.attr_str("llmux.request_id") == Some(id))
        .unwrap_or_else(|| panic!("no span for {id}: {spans:#?}"))
        .clone()
}

#[tokio::test]
async fn spans_follow_genai_conventions_and_continue_the_client_trace() {
    let rx = OtlpReceiver::start().await;
    let sink = sink_for(&rx);
    let (trace_id, parent) = parse_traceparent(TRACEPARENT).unwrap();
    let ok = CallRecord {
        trace_id: Some(trace_id.clone()),
        parent_span_id: Some(parent.clone()),
        ..ok_record()
    };
    sink.record(Arc::new(ok)).await;
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;

    let spans = rx.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(rx.requests().len(), 1, "both spans in one batch");

    let s = by_request(&spans, "req-ok-1");
    assert_eq!(s.name, "chat gpt-4o");
    assert_eq!(s.kind, 3, "CLIENT");
    assert_eq!(s.trace_id, trace_id);
    assert_eq!(s.parent_span_id.as_deref(), Some(parent.as_str()));
    assert_ne!(s.span_id, parent);
    assert_eq!(s.start_time_unix_nano, 1_735_689_600_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_735_689_601_250_000_000);
    assert_eq!(s.status_code, 0, "success leaves the status unset");
    assert_eq!(s.scope, "llmux");
    assert_eq!(s.resource.get("service.name"), Some(&json!("llmux-test")));
    for (key, want) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("azure.ai.openai")),
        ("gen_ai.system", json!("az.ai.openai")),
        ("gen_ai.request.model", json!("gpt-4o")),
        ("gen_ai.response.model", json!("gpt-4o-2024-08-06")),
        ("gen_ai.usage.input_tokens", json!(120)),
        ("gen_ai.usage.output_tokens", json!(30)),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("http.response.status_code", json!(200)),
        ("llmux.deployment", json!("azure-eu")),
        ("llmux.cost_usd", json!(0.0015)),
        ("llmux.key", json!("key_0a1b")),
        ("llmux.key_alias", json!("team-a-key")),
        ("llmux.attempts", json!(2)),
        ("llmux.fallback", json!("gpt-4o-backup")),
        ("llmux.stream", json!(true)),
        ("llmux.usage.cached_tokens", json!(20)),
        ("llmux.tags", json!(["prod"])),
    ] {
        assert_eq!(s.attr(key), Some(&want), "{key}: {:#?}", s.attributes);
    }
    assert!(s.attr("error.type").is_none());
    assert!(
        !s.attributes.contains_key("llmux.end_user"),
        "no personal data beyond the key alias"
    );

    let f = by_request(&spans, "req-fail-2");
    assert_eq!(f.name, "chat gpt-4o");
    assert_eq!(f.status_code, 2, "ERROR");
    assert_eq!(f.status_message, "upstream_unavailable");
    assert_eq!(f.attr_str("error.type"), Some("upstream_unavailable"));
    assert_eq!(f.attr_str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(f.attr_i64("http.response.status_code"), Some(503));
    assert!(
        f.attr("gen_ai.usage.input_tokens").is_none(),
        "no usage to report"
    );
    assert!(f.parent_span_id.is_none(), "no traceparent: a root span");
    assert_ne!(f.trace_id, trace_id, "a new trace");

    let req = &rx.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-otlp-key"), Some("otlp-header-secret"));
    assert_eq!(sink.stats().exported, 2);
}

#[tokio::test]
async fn a_partial_batch_is_sent_after_the_interval() {
    let rx = OtlpReceiver::start().await;
    let sink = sink_for(&rx);
    sink.record(Arc::new(ok_record())).await;
    let spans = rx.wait_for_spans(1, Duration::from_secs(5)).await;
    assert_eq!(spans.len(), 1);
}

#[tokio::test]
async fn a_failed_export_is_retried_once_then_dropped() {
    let rx = OtlpReceiver::start().await;
    let sink = sink_for(&rx);
    let unavailable = || Fault::Status {
        status: 503,
        body: json!({"message": "overloaded"}),
        retry_after: None,
    };

    rx.push_fault(unavailable());
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(rx.spans().len(), 1, "the retry got through");
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(sink.stats().retries, 1);

    rx.push_fault(unavailable());
    rx.push_fault(unavailable());
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;
    assert_eq!(rx.spans().len(), 1, "given up after one retry");
    assert_eq!(rx.requests().len(), 4);
    let stats = sink.stats();
    assert_eq!((stats.failed_batches, stats.dropped), (1, 1));

    rx.push_fault(Fault::Status {
        status: 400,
        body: json!({"message": "bad"}),
        retry_after: None,
    });
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;
    assert_eq!(rx.requests().len(), 5, "a 400 is not retried");
    assert_eq!(sink.stats().dropped, 2);
}

#[tokio::test]
async fn config_from_the_standard_variables_reaches_the_receiver() {
    let rx = OtlpReceiver::start().await;
    let endpoint = rx.endpoint();
    let config = OtlpConfig::from_env_with(&|name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("authorization=Bearer%20tok-1".into()),
        "OTEL_SERVICE_NAME" => Some("from-env".into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let sink = OtlpSink::new(config).unwrap();
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    let spans = rx.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].resource.get("service.name"),
        Some(&json!("from-env"))
    );
    assert_eq!(
        rx.requests()[0].header("authorization"),
        Some("Bearer tok-1")
    );
}

fn sink_with(rx: &OtlpReceiver, protocol: OtlpProtocol) -> OtlpSink {
    let endpoint = match protocol {
        OtlpProtocol::Grpc => rx.endpoint(),
        _ => rx.traces_url(),
    };
    let mut config = OtlpConfig::new(endpoint);
    config.protocol = protocol;
    config.headers = vec![("x-otlp-key".into(), Secret::new("otlp-header-secret"))];
    config.service_name = "llmux-test".into();
    config.batch = fast_batch();
    OtlpSink::new(config).unwrap()
}

/// The same two records through one protocol: the spans as decoded, without what differs
/// per export (span ids, the transport).
async fn spans_over(protocol: OtlpProtocol) -> (Vec<ReceivedSpan>, OtlpReceiver) {
    let rx = OtlpReceiver::start().await;
    let sink = sink_with(&rx, protocol);
    let (trace_id, parent) = parse_traceparent(TRACEPARENT).unwrap();
    let ok = CallRecord {
        trace_id: Some(trace_id),
        parent_span_id: Some(parent),
        session_id: Some("sess-9".into()),
        ..ok_record()
    };
    // A failed call's trace id is random: give it one so the exports can be compared.
    let failed = CallRecord {
        trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
        ..failed_record()
    };
    sink.record(Arc::new(ok)).await;
    sink.record(Arc::new(failed)).await;
    sink.flush().await;
    assert_eq!(sink.stats().exported, 2, "{protocol:?}");
    let mut spans = rx.spans();
    for s in &mut spans {
        assert_eq!(s.transport, protocol.as_str());
        assert_eq!(s.span_id.len(), 16);
        s.span_id.clear();
        s.transport = "";
    }
    spans.sort_by(|a, b| {
        a.attr_str("llmux.request_id")
            .cmp(&b.attr_str("llmux.request_id"))
    });
    (spans, rx)
}

#[tokio::test]
async fn protobuf_and_grpc_exports_carry_the_same_spans_as_json() {
    let (json_spans, _) = spans_over(OtlpProtocol::HttpJson).await;
    assert_eq!(json_spans.len(), 2);
    assert_eq!(
        json_spans[1].attr_str("gen_ai.conversation.id"),
        Some("sess-9")
    );

    let (proto_spans, rx) = spans_over(OtlpProtocol::HttpProtobuf).await;
    assert_eq!(
        proto_spans, json_spans,
        "http/protobuf decodes to the same spans"
    );
    let req = &rx.requests()[0];
    assert_eq!(req.path, "/v1/traces");
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(req.header("x-otlp-key"), Some("otlp-header-secret"));

    let (grpc_spans, rx) = spans_over(OtlpProtocol::Grpc).await;
    assert_eq!(grpc_spans, json_spans, "gRPC decodes to the same spans");
    let req = &rx.requests()[0];
    assert_eq!(
        req.path,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    );
    assert_eq!(req.header("content-type"), Some("application/grpc"));
    assert_eq!(req.header("te"), Some("trailers"));
    assert_eq!(req.header("x-otlp-key"), Some("otlp-header-secret"));
}

#[tokio::test]
async fn a_grpc_status_decides_retry_and_drop() {
    let rx = OtlpReceiver::start().await;
    let sink = sink_with(&rx, OtlpProtocol::Grpc);
    // The receiver answers a 5xx fault with UNAVAILABLE and a 4xx one with
    // INVALID_ARGUMENT, in a trailers-only response.
    let fault = |status| Fault::Status {
        status,
        body: json!({}),
        retry_after: None,
    };

    rx.push_fault(fault(503));
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(
        rx.spans().len(),
        1,
        "UNAVAILABLE is retried, and the retry got through"
    );
    assert_eq!(rx.requests().len(), 2);
    assert_eq!(sink.stats().retries, 1);

    rx.push_fault(fault(400));
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;
    assert_eq!(rx.requests().len(), 3, "INVALID_ARGUMENT is not retried");
    let stats = sink.stats();
    assert_eq!((stats.failed_batches, stats.dropped), (1, 1));
    assert_eq!(rx.spans().len(), 1);
}

#[tokio::test]
async fn grpc_from_the_standard_variables_reaches_the_receiver() {
    let rx = OtlpReceiver::start().await;
    let endpoint = rx.endpoint();
    let mut config = OtlpConfig::from_env_with(&|name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    config.batch = fast_batch();
    let sink = OtlpSink::new(config).unwrap();
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    let spans = rx.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].transport, "grpc");
    assert_eq!(spans[0].attr_str("gen_ai.request.model"), Some("gpt-4o"));
}
