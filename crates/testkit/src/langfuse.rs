//! A mock of Langfuse's public ingestion API: `POST /api/public/ingestion`.
//!
//! It requires HTTP basic auth with the project's public key as user and secret key as
//! password (`401` otherwise), takes a `{"batch": [event, …]}` body, and answers `207
//! Multi-Status` with `successes` and `errors` per event, as Langfuse does. An event needs
//! a string `id`, `type` and `timestamp` and an object `body`; events of a type the test
//! told it to refuse ([`LangfuseMock::refuse_event_type`]) are answered with a `400` entry.
//! Accepted events are kept for assertions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::recorder::{Fault, RecordedRequest, Recorder};

/// One ingestion event the mock accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct LangfuseEvent {
    /// The event id (deduplication key).
    pub id: String,
    /// The event type (`trace-create`, `generation-create`, …).
    pub kind: String,
    /// The event timestamp, as sent.
    pub timestamp: String,
    /// The event body.
    pub body: Value,
}

#[derive(Debug)]
struct MockState {
    recorder: Recorder,
    authorization: String,
    events: Mutex<Vec<LangfuseEvent>>,
    refused_types: Mutex<Vec<String>>,
}

/// A running Langfuse ingestion mock. Stops when dropped.
#[derive(Debug)]
pub struct LangfuseMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

impl LangfuseMock {
    /// Start a mock that accepts the key pair `public_key`/`secret_key`.
    pub async fn start(public_key: &str, secret_key: &str) -> Self {
        let state = Arc::new(MockState {
            recorder: Recorder::default(),
            authorization: format!(
                "Basic {}",
                base64_encode(format!("{public_key}:{secret_key}").as_bytes())
            ),
            events: Mutex::new(Vec::new()),
            refused_types: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/api/public/ingestion", post(ingest))
            .with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: a value for `LANGFUSE_HOST`.
    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every event accepted so far, in arrival order.
    pub fn events(&self) -> Vec<LangfuseEvent> {
        self.state
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until at least `n` events were accepted (or `timeout` passed), then return
    /// them all.
    pub async fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<LangfuseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.len() >= n || tokio::time::Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every request received so far (including refused ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    /// Make the next request misbehave (`Fault::Status` and `Fault::Delay` apply here).
    pub fn push_fault(&self, fault: Fault) {
        self.state.recorder.push_fault(fault);
    }

    /// Refuse every event of type `kind` from now on (a `400` entry in the 207 answer).
    pub fn refuse_event_type(&self, kind: &str) {
        self.state
            .refused_types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(kind.to_owned());
    }
}

impl Drop for LangfuseMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ingest(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.recorder.record(RecordedRequest {
        method: "POST".into(),
        path: "/api/public/ingestion".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: parsed.clone(),
    });
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(st.authorization.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "UnauthorizedError",
                "message": "Invalid credentials. Confirm that you've configured the correct host."})),
        )
            .into_response();
    }
    match st.recorder.next_fault() {
        Some(Fault::Status { status, body, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, axum::Json(body)).into_response();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let Some(batch) = parsed["batch"].as_array() else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "Invalid request data: batch must be an array"})),
        )
            .into_response();
    };
    let refused = st
        .refused_types
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut successes = Vec::new();
    let mut errors = Vec::new();
    let mut accepted = Vec::new();
    for event in batch {
        let id = event["id"].as_str().unwrap_or("").to_owned();
        let kind = event["type"].as_str();
        let timestamp = event["timestamp"].as_str();
        let valid = !id.is_empty() && timestamp.is_some() && event["body"].is_object();
        match kind {
            Some(k) if valid && !refused.iter().any(|r| r == k) => {
                successes.push(json!({"id": id, "status": 201}));
                accepted.push(LangfuseEvent {
                    id,
                    kind: k.to_owned(),
                    timestamp: timestamp.unwrap_or_default().to_owned(),
                    body: event["body"].clone(),
                });
            }
            _ => errors.push(json!({"id": id, "status": 400,
                "message": "Invalid request data", "error": "event refused by the mock"})),
        }
    }
    st.events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(accepted);
    (
        StatusCode::MULTI_STATUS,
        axum::Json(json!({"successes": successes, "errors": errors})),
    )
        .into_response()
}

/// Standard base64 with padding (RFC 4648 §4), for the expected basic-auth header.
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_encode;

    #[test]
    fn encodes_base64() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("pk-lf-1:sk-lf-2", "cGstbGYtMTpzay1sZi0y"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want, "{input}");
        }
    }
}
