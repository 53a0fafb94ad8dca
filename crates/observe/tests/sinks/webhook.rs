//! Batches of records POSTed to a local callback receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use llmux_core::{BudgetAlert, BudgetScope, CallRecord, CallSink, Secret};
use llmux_observe::{WebhookConfig, WebhookSink};

use crate::common::{failed_record, fast_batch, ok_record};

/// What the receiver got: (headers, body) per request.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A receiver answering the queued statuses first, then 200.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Received,
    statuses: Arc<Mutex<Vec<u16>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let received: Received = Arc::default();
        let statuses: Arc<Mutex<Vec<u16>>> = Arc::default();
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state((received.clone(), statuses.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            received,
            statuses,
            task,
        }
    }

    pub fn fail_next(&self, status: u16) {
        self.statuses.lock().unwrap().push(status);
    }

    pub fn url(&self, query: &str) -> String {
        format!("http://{}/hook{query}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn hook(
    State((received, statuses)): State<(Received, Arc<Mutex<Vec<u16>>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    received.lock().unwrap().push((headers, body));
    let mut s = statuses.lock().unwrap();
    if s.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::from_u16(s.remove(0)).unwrap()
    }
}

fn sink_for(rx: &Receiver) -> WebhookSink {
    let mut config = WebhookConfig::new(Secret::new(rx.url("?token=abc")))
        .with_header("authorization", Secret::new("Bearer hook-token"));
    config.batch = fast_batch();
    WebhookSink::new(config).unwrap()
}

#[tokio::test]
async fn records_arrive_as_a_json_array_with_the_headers() {
    let rx = Receiver::start().await;
    let sink = sink_for(&rx);
    assert_eq!(sink.name(), "webhook");
    sink.record(Arc::new(ok_record())).await;
    sink.record(Arc::new(failed_record())).await;
    sink.flush().await;

    let got = rx.received.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["authorization"], "Bearer hook-token");
    assert_eq!(headers["content-type"], "application/json");
    let records: Vec<CallRecord> = serde_json::from_slice(body).unwrap();
    assert_eq!(records, vec![ok_record(), failed_record()]);
    assert_eq!(sink.stats().exported, 2);
}

#[tokio::test]
async fn a_failed_post_is_retried_once_then_dropped() {
    let rx = Receiver::start().await;
    let sink = sink_for(&rx);
    rx.fail_next(502);
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(rx.count(), 2);
    assert_eq!(sink.stats().retries, 1);
    assert_eq!(sink.stats().exported, 1);

    rx.fail_next(500);
    rx.fail_next(500);
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(rx.count(), 4);
    let stats = sink.stats();
    assert_eq!((stats.failed_batches, stats.dropped), (1, 1));

    rx.fail_next(404);
    sink.record(Arc::new(ok_record())).await;
    sink.flush().await;
    assert_eq!(rx.count(), 5, "a 404 is not retried");
}

fn key_alert() -> BudgetAlert {
    BudgetAlert {
        scope: BudgetScope::Key,
        id: "key_123".into(),
        spend_nano: 1_250_000_000,
        soft_budget_nano: 1_000_000_000,
        max_budget_nano: Some(5_000_000_000),
        at_ms: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn a_budget_alert_is_posted_alone_as_a_tagged_object() {
    let rx = Receiver::start().await;
    let sink = sink_for(&rx);
    sink.record(Arc::new(ok_record())).await;
    sink.alert(Arc::new(key_alert())).await;
    sink.flush().await;

    let got = rx.received.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        2,
        "the alert in its own request, the record in a batch"
    );
    let bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|(_, body)| serde_json::from_slice(body).unwrap())
        .collect();
    let alert = bodies
        .iter()
        .find(|b| b.is_object())
        .expect("one object body");
    assert_eq!(
        *alert,
        serde_json::json!({
            "type": "budget_alert",
            "scope": "key",
            "id": "key_123",
            "spend_nano": 1_250_000_000_i64,
            "soft_budget_nano": 1_000_000_000_i64,
            "max_budget_nano": 5_000_000_000_i64,
            "at_ms": 1_700_000_000_000_i64
        })
    );
    let batch = bodies
        .iter()
        .find(|b| b.is_array())
        .expect("one array body");
    assert_eq!(batch.as_array().unwrap().len(), 1);
    let (headers, _) = got.iter().find(|(_, b)| b.first() == Some(&b'{')).unwrap();
    assert_eq!(headers["authorization"], "Bearer hook-token");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(sink.stats().exported, 2);
}

#[tokio::test]
async fn a_failed_alert_post_is_retried_once_then_dropped() {
    let rx = Receiver::start().await;
    let sink = sink_for(&rx);
    rx.fail_next(503);
    sink.alert(Arc::new(key_alert())).await;
    sink.flush().await;
    assert_eq!(rx.count(), 2, "one retry");
    assert_eq!((sink.stats().retries, sink.stats().exported), (1, 1));

    rx.fail_next(500);
    rx.fail_next(500);
    sink.alert(Arc::new(key_alert())).await;
    sink.flush().await;
    assert_eq!(rx.count(), 4);
    assert_eq!(sink.stats().dropped, 1);
}
