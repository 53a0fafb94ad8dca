//! An OpenTelemetry collector stand-in: an OTLP/HTTP receiver for traces in JSON encoding
//! (`POST /v1/traces`, `Content-Type: application/json`).
//!
//! It decodes each `ExportTraceServiceRequest` strictly enough to catch encoding mistakes
//! (ids must be hex of the right length, times decimal strings or numbers, values typed
//! `AnyValue`s; a bad request gets `400`) and keeps every span with its attributes flattened
//! into a map of JSON values, so tests can assert names, ids, parentage and attributes.

use std::collections::BTreeMap;
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

/// One span as the receiver decoded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Span name.
    pub name: String,
    /// Trace id (32 hex digits, lower-case).
    pub trace_id: String,
    /// Span id (16 hex digits, lower-case).
    pub span_id: String,
    /// Parent span id, when the span has one.
    pub parent_span_id: Option<String>,
    /// Span kind (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i64,
    /// Start, Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// Attributes: strings, booleans, integers and doubles as JSON scalars, arrays as
    /// arrays.
    pub attributes: BTreeMap<String, Value>,
    /// Status code (0 unset, 1 ok, 2 error).
    pub status_code: i64,
    /// Status message.
    pub status_message: String,
    /// The attributes of the resource the span came with.
    pub resource: BTreeMap<String, Value>,
    /// The instrumentation scope's name.
    pub scope: String,
}

impl ReceivedSpan {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// A string attribute's value.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// An integer attribute's value.
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

#[derive(Debug, Default)]
struct ReceiverState {
    recorder: Recorder,
    spans: Mutex<Vec<ReceivedSpan>>,
}

/// A running OTLP/HTTP JSON trace receiver. Stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    task: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Start a receiver on an ephemeral `127.0.0.1` port.
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: a value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1/traces`: the full traces URL.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.state
            .spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait until at least `n` spans arrived (or `timeout` passed), then return them all.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= n || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every export request received so far (including refused ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    /// Make the next request misbehave (`Fault::Status` and `Fault::Delay` apply here).
    pub fn push_fault(&self, fault: Fault) {
        self.state.recorder.push_fault(fault);
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn traces(State(st): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> Response {
    st.recorder.record(RecordedRequest {
        method: "POST".into(),
        path: "/v1/traces".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    match st.recorder.next_fault() {
        Some(Fault::Status { status, body, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, axum::Json(body)).into_response();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this receiver takes OTLP/HTTP JSON only",
        )
            .into_response();
    }
    let decoded = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("not JSON: {e}"))
        .and_then(|v| decode_request(&v));
    match decoded {
        Ok(spans) => {
            st.spans
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(spans);
            axum::Json(json!({})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({"message": e}))).into_response(),
    }
}

fn decode_request(v: &Value) -> Result<Vec<ReceivedSpan>, String> {
    let mut out = Vec::new();
    for rs in array(v, "resourceSpans")? {
        let resource = match rs.get("resource") {
            Some(r) => attributes(r)?,
            None => BTreeMap::new(),
        };
        for ss in array(rs, "scopeSpans")? {
            let scope = ss["scope"]["name"].as_str().unwrap_or("").to_owned();
            for s in array(ss, "spans")? {
                out.push(decode_span(s, &resource, &scope)?);
            }
        }
    }
    Ok(out)
}

fn decode_span(
    s: &Value,
    resource: &BTreeMap<String, Value>,
    scope: &str,
) -> Result<ReceivedSpan, String> {
    let parent = match s.get("parentSpanId").and_then(Value::as_str) {
        None | Some("") => None,
        Some(p) => Some(hex_id(p, 16, "parentSpanId")?),
    };
    Ok(ReceivedSpan {
        name: s["name"].as_str().ok_or("span without a name")?.to_owned(),
        trace_id: hex_id(s["traceId"].as_str().unwrap_or(""), 32, "traceId")?,
        span_id: hex_id(s["spanId"].as_str().unwrap_or(""), 16, "spanId")?,
        parent_span_id: parent,
        kind: s
            .get("kind")
            .map_or(Ok(0), |k| k.as_i64().ok_or("kind must be an integer"))?,
        start_time_unix_nano: uint(&s["startTimeUnixNano"], "startTimeUnixNano")?,
        end_time_unix_nano: uint(&s["endTimeUnixNano"], "endTimeUnixNano")?,
        attributes: attributes(s)?,
        status_code: s["status"].get("code").map_or(Ok(0), |c| {
            c.as_i64().ok_or("status.code must be an integer")
        })?,
        status_message: s["status"]["message"].as_str().unwrap_or("").to_owned(),
        resource: resource.clone(),
        scope: scope.to_owned(),
    })
}

fn array<'a>(v: &'a Value, field: &str) -> Result<&'a [Value], String> {
    match v.get(field) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{field} must be an array")),
    }
}

fn hex_id(s: &str, len: usize, field: &str) -> Result<String, String> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("{field} must be {len} hex digits, got {s:?}"))
    }
}

/// A 64-bit unsigned integer, as OTLP JSON writes it (a decimal string; numbers accepted).
fn uint(v: &Value, field: &str) -> Result<u64, String> {
    match v {
        Value::String(s) => s.parse().map_err(|_| format!("{field}: not an integer")),
        Value::Number(n) => n.as_u64().ok_or_else(|| format!("{field}: not an integer")),
        _ => Err(format!("{field} is missing")),
    }
}

fn attributes(v: &Value) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for kv in array(v, "attributes")? {
        let key = kv["key"].as_str().ok_or("attribute without a key")?;
        out.insert(key.to_owned(), any_value(&kv["value"])?);
    }
    Ok(out)
}

fn any_value(v: &Value) -> Result<Value, String> {
    let obj = v.as_object().ok_or("an AnyValue must be an object")?;
    let (kind, inner) = obj.iter().next().ok_or("empty AnyValue")?;
    Ok(match kind.as_str() {
        "stringValue" | "bytesValue" => Value::String(
            inner
                .as_str()
                .ok_or("stringValue must be a string")?
                .to_owned(),
        ),
        "boolValue" => Value::Bool(inner.as_bool().ok_or("boolValue must be a boolean")?),
        "intValue" => {
            let n: i64 = match inner {
                Value::String(s) => s.parse().map_err(|_| "intValue: not an integer")?,
                Value::Number(n) => n.as_i64().ok_or("intValue: not an integer")?,
                _ => return Err("intValue must be a string or number".into()),
            };
            json!(n)
        }
        "doubleValue" => json!(inner.as_f64().ok_or("doubleValue must be a number")?),
        "arrayValue" => Value::Array(
            array(inner, "values")?
                .iter()
                .map(any_value)
                .collect::<Result<_, _>>()?,
        ),
        "kvlistValue" => {
            let mut m = serde_json::Map::new();
            for kv in array(inner, "values")? {
                let key = kv["key"].as_str().ok_or("kvlist entry without a key")?;
                m.insert(key.to_owned(), any_value(&kv["value"])?);
            }
            Value::Object(m)
        }
        other => return Err(format!("unknown AnyValue kind {other}")),
    })
}
