//! Records sent to the Langfuse ingestion mock.

use std::sync::Arc;

use llmux_core::{CallSink, Secret};
use llmux_observe::{LangfuseConfig, LangfuseSink};
use llmux_testkit::{Fault, LangfuseEvent, LangfuseMock};
use serde_json::json;

use crate::common::{failed_record, fast_batch, ok_record};

const PUBLIC: &str = "pk-lf-test";
const SECRET: &str = "sk-lf-test-secret";

fn sink_for(mock: &LangfuseMock, secret: &str) -> LangfuseSink {
    let mut config = LangfuseConfig::new(mock.host(), PUBLIC, Secret::new(secret));
    config.environment = Some("test".into());
    config.batch = fast_batch();
    LangfuseSink::new(config).unwrap()
}

fn event<'a>(events: &'a [LangfuseEvent], id: &str) -> &'a LangfuseEvent {
    events
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no event {id}: {events:#?}"))
}

#[tokio::test]
async fn each_call_is_a_trace_and_a_generation() {
    let mock = LangfuseMock::start(PUBLIC, SECRET).await;
    let sink = sink_for(&mock, SECRET);
    sink.record(Arc::new(ok_record())).await;
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;

    let events = mock.events();
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(mock.requests().len(), 1, "one batch");

    let trace = event(&events, "req-ok-1-trace-create");
    assert_eq!(trace.kind, "trace-create");
    assert_eq!(trace.timestamp, "2025-01-01T00:00:00.000Z");
    let b = &trace.body;
    assert_eq!(b["id"], "req-ok-1");
    assert_eq!(b["name"], "chat gpt-4o");
    assert_eq!(b["userId"], "end-user-9");
    assert_eq!(b["tags"], json!(["prod"]));
    assert_eq!(b["environment"], "test");
    assert_eq!(b["metadata"]["model_group"], "gpt-4o");
    assert_eq!(b["metadata"]["deployment"], "azure-eu");
    assert_eq!(b["metadata"]["key_alias"], "team-a-key");
    assert_eq!(b["metadata"]["key"], "key_0a1b");

    let generation = event(&events, "req-ok-1-generation-create");
    assert_eq!(generation.kind, "generation-create");
    let g = &generation.body;
    assert_eq!(g["id"], "req-ok-1-generation");
    assert_eq!(g["traceId"], "req-ok-1");
    assert_eq!(g["model"], "gpt-4o-2024-08-06", "the model that answered");
    assert_eq!(g["startTime"], "2025-01-01T00:00:00.000Z");
    assert_eq!(g["endTime"], "2025-01-01T00:00:01.250Z");
    assert_eq!(g["completionStartTime"], "2025-01-01T00:00:00.300Z");
    assert_eq!(
        g["usageDetails"],
        json!({"input": 100, "input_cached_tokens": 20, "output": 25,
               "output_reasoning_tokens": 5, "total": 150})
    );
    assert_eq!(g["costDetails"], json!({"total": 0.0015}));
    assert_eq!(g["level"], "DEFAULT");
    assert!(g.get("statusMessage").is_none());
    assert_eq!(g["metadata"]["deployment"], "azure-eu");
    assert_eq!(g["metadata"]["provider"], "azure");
    assert!(
        g.get("input").is_none() && g.get("output").is_none(),
        "no prompts or completions"
    );

    let failed = &event(&events, "req-fail-2-generation-create").body;
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["statusMessage"], "upstream_unavailable (HTTP 503)");
    assert_eq!(
        failed["model"], "gpt-4o",
        "nothing answered: the model group"
    );
    assert!(failed.get("costDetails").is_none());

    let auth = mock.requests()[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    assert!(auth.starts_with("Basic "), "{auth}");
    assert_eq!(sink.stats().exported, 2);
}

#[tokio::test]
async fn per_event_errors_in_a_207_are_counted() {
    let mock = LangfuseMock::start(PUBLIC, SECRET).await;
    mock.refuse_event_type("generation-create");
    let sink = sink_for(&mock, SECRET);
    sink.record(Arc::new(ok_record())).await;
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;
    assert_eq!(mock.events().len(), 2, "the traces got in");
    let stats = sink.stats();
    assert_eq!((stats.batches, stats.rejected, stats.retries), (1, 2, 0));
}

#[tokio::test]
async fn a_server_error_is_retried_and_wrong_keys_are_not() {
    let mock = LangfuseMock::start(PUBLIC, SECRET).await;
    mock.push_fault(Fault::Status {
        status: 500,
        body: json!({"message": "internal"}),
        retry_after: None,
    });
    let sink = sink_for(&mock, SECRET);
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(mock.events().len(), 2);
    assert_eq!(mock.requests().len(), 2);
    assert_eq!(sink.stats().retries, 1);

    let wrong = sink_for(&mock, "sk-lf-wrong");
    wrong.record(Arc::new(ok_record())).await;
    wrong.flush().await;
    assert_eq!(mock.requests().len(), 3, "401 is not retried");
    let stats = wrong.stats();
    assert_eq!((stats.failed_batches, stats.dropped), (1, 1));
}

#[tokio::test]
async fn config_from_the_environment_reaches_the_mock() {
    let mock = LangfuseMock::start(PUBLIC, SECRET).await;
    let host = mock.host();
    let config = LangfuseConfig::from_env_with(&|name| match name {
        "LANGFUSE_PUBLIC_KEY" => Some(PUBLIC.into()),
        "LANGFUSE_SECRET_KEY" => Some(SECRET.into()),
        "LANGFUSE_HOST" => Some(format!("{host}/")),
        _ => None,
    })
    .unwrap()
    .unwrap();
    let sink = LangfuseSink::new(config).unwrap();
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(mock.events().len(), 2);
}
