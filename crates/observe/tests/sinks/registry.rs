//! Sinks built by name from settings and the environment, delivering to a local receiver.

use std::collections::BTreeMap;
use std::sync::Arc;

use llmux_core::{CallRecord, JsonObject};
use llmux_observe::SinkSet;
use serde_json::json;

use crate::common::ok_record;
use crate::webhook::Receiver;

fn settings(v: serde_json::Value) -> BTreeMap<String, JsonObject> {
    serde_json::from_value(v).unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn a_webhook_instance_from_settings_posts_with_its_own_headers_only() {
    let rx = Receiver::start().await;
    let other = Receiver::start().await;
    let s = settings(json!({"audit": {
        "type": "webhook",
        "url": rx.url(""),
        "headers": {"Authorization": "Bearer audit-token"},
        "flush_interval_ms": 3_600_000,
    }}));
    // LiteLLM's variables configure another receiver: their headers must not reach this one.
    let other_url = other.url("");
    let env = move |k: &str| match k {
        "GENERIC_LOGGER_ENDPOINT" => Some(other_url.clone()),
        "GENERIC_LOGGER_HEADERS" => Some("x-other=secret".to_owned()),
        _ => None,
    };
    let set = SinkSet::build(&names(&["audit"]), &s, &env).unwrap();
    assert_eq!(set.names(), ["audit"]);
    set.sinks()[0].record(Arc::new(ok_record())).await;
    set.flush().await;

    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["authorization"], "Bearer audit-token");
    assert!(headers.get("x-other").is_none());
    let records: Vec<CallRecord> = serde_json::from_slice(body).unwrap();
    assert_eq!(records, vec![ok_record()]);
    assert_eq!(other.count(), 0);
}

#[tokio::test]
async fn litellm_generic_logger_variables_configure_the_webhook() {
    let rx = Receiver::start().await;
    let url = rx.url("");
    let env = move |k: &str| match k {
        "GENERIC_LOGGER_ENDPOINT" => Some(url.clone()),
        "GENERIC_LOGGER_HEADERS" => Some("Authorization=Bearer%20env-token,x-team=a".to_owned()),
        _ => None,
    };
    let set = SinkSet::build(&names(&["generic_api"]), &BTreeMap::new(), &env).unwrap();
    assert_eq!(set.names(), ["webhook"]);
    set.sinks()[0].record(Arc::new(ok_record())).await;
    set.flush().await;
    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["authorization"], "Bearer env-token");
    assert_eq!(got[0].0["x-team"], "a");
    assert!(!format!("{set:?}").contains("env-token"));
}
