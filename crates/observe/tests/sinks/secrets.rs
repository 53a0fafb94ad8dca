//! Exporter credentials never show in logs, errors or `Debug` output.

use std::io;
use std::sync::{Arc, Mutex};

use llmux_core::{CallSink, Secret};
use llmux_observe::{
    ConfigError, LangfuseConfig, LangfuseSink, OtlpConfig, OtlpSink, WebhookConfig, WebhookSink,
};
use llmux_testkit::{Fault, LangfuseMock, OtlpReceiver};
use serde_json::json;

use crate::common::{fast_batch, ok_record};
use crate::webhook::Receiver;

const OTLP_SECRET: &str = "otlp-header-value-s3cr3t";
const LANGFUSE_SECRET: &str = "sk-lf-wrong-but-still-s3cr3t";
const HOOK_TOKEN: &str = "hook-url-token-s3cr3t";
const HOOK_HEADER: &str = "Bearer hook-header-s3cr3t";

fn secrets() -> [&'static str; 4] {
    [OTLP_SECRET, LANGFUSE_SECRET, HOOK_TOKEN, HOOK_HEADER]
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(s), "{what} shows a secret:\n{text}");
    }
}

fn otlp_config(rx: &OtlpReceiver) -> OtlpConfig {
    let mut c = OtlpConfig::new(rx.traces_url());
    c.headers = vec![("api-key".into(), Secret::new(OTLP_SECRET))];
    c.batch = fast_batch();
    c
}

fn webhook_config(url: String) -> WebhookConfig {
    let mut c =
        WebhookConfig::new(Secret::new(url)).with_header("authorization", Secret::new(HOOK_HEADER));
    c.batch = fast_batch();
    c
}

// A current-thread runtime: the sinks' tasks log on this thread, into this subscriber.
#[tokio::test]
async fn failing_exports_log_no_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("llmux_observe=trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rx = OtlpReceiver::start().await;
    for _ in 0..2 {
        rx.push_fault(Fault::Status {
            status: 500,
            body: json!({}),
            retry_after: None,
        });
    }
    let otlp = OtlpSink::new(otlp_config(&rx)).unwrap();

    let mock = LangfuseMock::start("pk-lf-1", "sk-lf-right").await;
    let mut lf = LangfuseConfig::new(mock.host(), "pk-lf-1", Secret::new(LANGFUSE_SECRET));
    lf.batch = fast_batch();
    let langfuse = LangfuseSink::new(lf).unwrap();

    let hook_rx = Receiver::start().await;
    hook_rx.fail_next(500);
    hook_rx.fail_next(500);
    let hook = WebhookSink::new(webhook_config(
        hook_rx.url(&format!("/{HOOK_TOKEN}?token={HOOK_TOKEN}")),
    ))
    .unwrap();

    // Nothing listens there: connection refused, twice.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let refused = WebhookSink::new(webhook_config(format!(
        "http://{closed}/{HOOK_TOKEN}?token={HOOK_TOKEN}"
    )))
    .unwrap();

    for sink in [
        &otlp as &dyn CallSink,
        &langfuse as &dyn CallSink,
        &hook as &dyn CallSink,
        &refused as &dyn CallSink,
    ] {
        sink.record(Arc::new(ok_record())).await;
    }
    otlp.flush().await;
    langfuse.flush().await;
    hook.flush().await;
    refused.flush().await;

    assert_eq!(otlp.stats().dropped, 1);
    assert_eq!(langfuse.stats().dropped, 1);
    assert_eq!(hook.stats().dropped, 1);
    assert_eq!(refused.stats().dropped, 1);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("export failed"), "{logs}");
    assert!(logs.contains("HTTP 500"), "{logs}");
    assert!(logs.contains("keys were refused"), "{logs}");
    assert!(logs.contains("could not connect"), "{logs}");
    assert_clean("the log", &logs);

    for (what, debug) in [
        ("OtlpSink", format!("{otlp:?}")),
        ("LangfuseSink", format!("{langfuse:?}")),
        ("WebhookSink", format!("{hook:?}")),
    ] {
        assert_clean(what, &debug);
    }
}

#[test]
fn configs_and_errors_hide_secrets() {
    let mut otlp = OtlpConfig::new("https://user:pw-s3cr3t@collector.example/v1/traces");
    otlp.headers = vec![("api-key".into(), Secret::new(OTLP_SECRET))];
    let lf = LangfuseConfig::new(
        "https://lf.example",
        "pk-lf-1",
        Secret::new(LANGFUSE_SECRET),
    );
    let hook = webhook_config(format!("https://hooks.example/{HOOK_TOKEN}"));
    for (what, debug) in [
        ("OtlpConfig", format!("{otlp:?}")),
        ("LangfuseConfig", format!("{lf:?}")),
        ("WebhookConfig", format!("{hook:?}")),
    ] {
        assert_clean(what, &debug);
        assert!(!debug.contains("pw-s3cr3t"), "{debug}");
    }
    assert!(
        format!("{otlp:?}").contains("api-key"),
        "header names do show"
    );

    let bad_value = format!("line\nbreak-{OTLP_SECRET}");
    let err = OtlpConfig::from_env_with(&|name| match name {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".into()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some(format!("a=1,{OTLP_SECRET}")),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::InvalidHeaderList {
            setting: "OTEL_EXPORTER_OTLP_HEADERS".into(),
            entry: 2
        }
    );
    assert_clean("an error", &err.to_string());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let mut c = OtlpConfig::new("http://127.0.0.1:4318/v1/traces");
    c.headers = vec![("x-key".into(), Secret::new(bad_value.clone()))];
    let err = OtlpSink::new(c).unwrap_err();
    assert_eq!(
        err,
        ConfigError::InvalidHeader {
            name: "x-key".into()
        }
    );
    assert_clean("an error", &format!("{err} {err:?}"));

    let err = WebhookSink::new(webhook_config(format!("not a url {HOOK_TOKEN}"))).unwrap_err();
    assert_clean("an error", &format!("{err} {err:?}"));
}
