//! An OpenTelemetry collector stand-in: an OTLP receiver for traces in the three standard
//! transports, on one port —
//! - OTLP/HTTP JSON: `POST /v1/traces`, `Content-Type: application/json`;
//! - OTLP/HTTP protobuf: `POST /v1/traces`, `Content-Type: application/x-protobuf`,
//!   answered with a protobuf `ExportTraceServiceResponse`;
//! - OTLP/gRPC: `POST /opentelemetry.proto.collector.trace.v1.TraceService/Export` over
//!   HTTP/2 without TLS (prior knowledge), `Content-Type: application/grpc`, one
//!   length-prefixed message; answered with a length-prefixed response and `grpc-status`
//!   in the trailers.
//!
//! It decodes each `ExportTraceServiceRequest` strictly enough to catch encoding mistakes
//! (ids must be hex — or, in protobuf, raw bytes — of the right length, times decimal
//! strings or numbers, values typed `AnyValue`s, protobuf well formed with the right wire
//! type per field; a bad request gets `400`, or gRPC status 3) and keeps every span with its
//! attributes flattened into a map of JSON values, so tests can assert names, ids,
//! parentage and attributes whatever the transport. The protobuf decoder is hand-written
//! here (field numbers from opentelemetry-proto), independent of the exporter's encoder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body::Frame;
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
    /// How it arrived: `http/json`, `http/protobuf` or `grpc`.
    pub transport: &'static str,
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
            .route(GRPC_EXPORT_PATH, post(grpc_export))
            .with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: a value for `OTEL_EXPORTER_OTLP_ENDPOINT` (for every
    /// protocol: gRPC is served on the same port).
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

/// The gRPC method OTLP trace export calls.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

fn record(st: &ReceiverState, path: &str, headers: &HeaderMap, body: Value) {
    st.recorder.record(RecordedRequest {
        method: "POST".into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
}

fn keep(st: &ReceiverState, spans: Vec<ReceivedSpan>) {
    st.spans
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(spans);
}

async fn traces(State(st): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> Response {
    record(
        &st,
        "/v1/traces",
        &headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    );
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
    if content_type.starts_with("application/x-protobuf") {
        return match decode_proto_request(&body, "http/protobuf") {
            Ok(spans) => {
                keep(&st, spans);
                // An empty ExportTraceServiceResponse: full success.
                (
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
                    .into_response()
            }
            Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
        };
    }
    if !content_type.starts_with("application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this receiver takes OTLP/HTTP JSON or protobuf",
        )
            .into_response();
    }
    let decoded = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("not JSON: {e}"))
        .and_then(|v| decode_request(&v));
    match decoded {
        Ok(spans) => {
            keep(&st, spans);
            axum::Json(json!({})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({"message": e}))).into_response(),
    }
}

/// gRPC status codes used here.
const GRPC_OK: u32 = 0;
const GRPC_INVALID_ARGUMENT: u32 = 3;
const GRPC_UNAVAILABLE: u32 = 14;

/// A gRPC answer with no message: `grpc-status` (and `grpc-message`) in the headers, as a
/// trailers-only response.
fn grpc_trailers_only(code: u32, message: &str) -> Response {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(m) = HeaderValue::from_str(message) {
        h.insert("grpc-message", m);
    }
    r
}

async fn grpc_export(
    State(st): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&st, GRPC_EXPORT_PATH, &headers, Value::Null);
    match st.recorder.next_fault() {
        // A fault's HTTP status maps to a gRPC status: 5xx and 429 → UNAVAILABLE (retried
        // by exporters), anything else → INVALID_ARGUMENT (not retried).
        Some(Fault::Status { status, .. }) => {
            let code = if status >= 500 || status == 429 {
                GRPC_UNAVAILABLE
            } else {
                GRPC_INVALID_ARGUMENT
            };
            return grpc_trailers_only(code, "fault injected by the test");
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/grpc") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gRPC requests are application/grpc",
        )
            .into_response();
    }
    let decoded = grpc_message(&body).and_then(|m| decode_proto_request(m, "grpc"));
    match decoded {
        Ok(spans) => {
            keep(&st, spans);
            let mut r = Response::new(Body::new(GrpcAnswer {
                // One uncompressed, empty ExportTraceServiceResponse.
                message: Some(Bytes::from_static(&[0, 0, 0, 0, 0])),
                trailers_sent: false,
            }));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            r
        }
        Err(e) => grpc_trailers_only(GRPC_INVALID_ARGUMENT, &e),
    }
}

/// The one message of a unary gRPC request: a 5-byte prefix (compressed flag, big-endian
/// length) and exactly that many bytes.
fn grpc_message(body: &[u8]) -> Result<&[u8], String> {
    if body.len() < 5 {
        return Err("a gRPC message needs its 5-byte prefix".into());
    }
    if body[0] != 0 {
        return Err("compressed gRPC messages are not accepted here".into());
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() != 5 + len {
        return Err(format!(
            "the gRPC prefix says {len} bytes, the body has {}",
            body.len() - 5
        ));
    }
    Ok(&body[5..])
}

/// A gRPC answer body: the message, then `grpc-status: 0` as trailers.
struct GrpcAnswer {
    message: Option<Bytes>,
    trailers_sent: bool,
}

impl http_body::Body for GrpcAnswer {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(m) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(m))));
        }
        if !self.trailers_sent {
            self.trailers_sent = true;
            let mut t = HeaderMap::new();
            t.insert("grpc-status", HeaderValue::from(GRPC_OK));
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        Poll::Ready(None)
    }
}

// --- protobuf ---

/// One protobuf field as read.
#[derive(Debug, Clone, Copy)]
enum PbField<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    /// A fixed32 (no field this receiver reads has that type; its bytes are skipped).
    Fixed32,
}

/// Every field of a message as (number, value), in order.
fn pb_fields(mut buf: &[u8]) -> Result<Vec<(u32, PbField<'_>)>, String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than ten bytes".into())
    }
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(format!("field needs {n} bytes, {} left", buf.len()));
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let number = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if number == 0 {
            return Err("field number 0".into());
        }
        let value = match key & 7 {
            0 => PbField::Varint(varint(&mut buf)?),
            1 => PbField::Fixed64(u64::from_le_bytes(
                take(&mut buf, 8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(varint(&mut buf)?).map_err(|_| "length out of range")?;
                PbField::Bytes(take(&mut buf, n)?)
            }
            5 => {
                take(&mut buf, 4)?;
                PbField::Fixed32
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        out.push((number, value));
    }
    Ok(out)
}

fn pb_bytes<'a>(v: PbField<'a>, what: &str) -> Result<&'a [u8], String> {
    match v {
        PbField::Bytes(b) => Ok(b),
        other => Err(format!(
            "{what}: expected a length-delimited field, got {other:?}"
        )),
    }
}

fn pb_string(v: PbField<'_>, what: &str) -> Result<String, String> {
    String::from_utf8(pb_bytes(v, what)?.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
}

fn pb_varint(v: PbField<'_>, what: &str) -> Result<u64, String> {
    match v {
        PbField::Varint(n) => Ok(n),
        other => Err(format!("{what}: expected a varint, got {other:?}")),
    }
}

fn pb_fixed64(v: PbField<'_>, what: &str) -> Result<u64, String> {
    match v {
        PbField::Fixed64(n) => Ok(n),
        other => Err(format!("{what}: expected a fixed64, got {other:?}")),
    }
}

fn pb_id(v: PbField<'_>, len: usize, what: &str) -> Result<String, String> {
    let b = pb_bytes(v, what)?;
    if b.len() != len {
        return Err(format!("{what} must be {len} bytes, got {}", b.len()));
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
fn decode_proto_request(buf: &[u8], transport: &'static str) -> Result<Vec<ReceivedSpan>, String> {
    let mut out = Vec::new();
    for (n, v) in pb_fields(buf)? {
        if n != 1 {
            continue;
        }
        // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
        let mut resource = BTreeMap::new();
        let mut scope_spans = Vec::new();
        for (n, v) in pb_fields(pb_bytes(v, "ResourceSpans")?)? {
            match n {
                1 => {
                    // Resource { repeated KeyValue attributes = 1; }
                    for (n, v) in pb_fields(pb_bytes(v, "Resource")?)? {
                        if n == 1 {
                            let (k, val) = pb_key_value(pb_bytes(v, "attribute")?)?;
                            resource.insert(k, val);
                        }
                    }
                }
                2 => scope_spans.push(pb_bytes(v, "ScopeSpans")?),
                _ => {}
            }
        }
        for ss in scope_spans {
            // ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; }
            let mut scope = String::new();
            let mut spans = Vec::new();
            for (n, v) in pb_fields(ss)? {
                match n {
                    1 => {
                        for (n, v) in pb_fields(pb_bytes(v, "scope")?)? {
                            if n == 1 {
                                scope = pb_string(v, "scope.name")?;
                            }
                        }
                    }
                    2 => spans.push(pb_bytes(v, "Span")?),
                    _ => {}
                }
            }
            for s in spans {
                out.push(pb_span(s, &resource, &scope, transport)?);
            }
        }
    }
    Ok(out)
}

/// Span: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8
/// (fixed64), attributes 9, status 15 { message 2, code 3 }.
fn pb_span(
    buf: &[u8],
    resource: &BTreeMap<String, Value>,
    scope: &str,
    transport: &'static str,
) -> Result<ReceivedSpan, String> {
    let mut span = ReceivedSpan {
        name: String::new(),
        trace_id: String::new(),
        span_id: String::new(),
        parent_span_id: None,
        kind: 0,
        start_time_unix_nano: 0,
        end_time_unix_nano: 0,
        attributes: BTreeMap::new(),
        status_code: 0,
        status_message: String::new(),
        resource: resource.clone(),
        scope: scope.to_owned(),
        transport,
    };
    for (n, v) in pb_fields(buf)? {
        match n {
            1 => span.trace_id = pb_id(v, 16, "traceId")?,
            2 => span.span_id = pb_id(v, 8, "spanId")?,
            4 if !pb_bytes(v, "parentSpanId")?.is_empty() => {
                span.parent_span_id = Some(pb_id(v, 8, "parentSpanId")?);
            }
            5 => span.name = pb_string(v, "name")?,
            6 => span.kind = pb_varint(v, "kind")? as i64,
            7 => span.start_time_unix_nano = pb_fixed64(v, "startTimeUnixNano")?,
            8 => span.end_time_unix_nano = pb_fixed64(v, "endTimeUnixNano")?,
            9 => {
                let (k, val) = pb_key_value(pb_bytes(v, "attribute")?)?;
                span.attributes.insert(k, val);
            }
            15 => {
                for (n, v) in pb_fields(pb_bytes(v, "status")?)? {
                    match n {
                        2 => span.status_message = pb_string(v, "status.message")?,
                        3 => span.status_code = pb_varint(v, "status.code")? as i64,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if span.trace_id.is_empty() || span.span_id.is_empty() {
        return Err("a span needs a traceId and a spanId".into());
    }
    if span.name.is_empty() {
        return Err("span without a name".into());
    }
    Ok(span)
}

/// KeyValue { string key = 1; AnyValue value = 2; }
fn pb_key_value(buf: &[u8]) -> Result<(String, Value), String> {
    let mut key = None;
    let mut value = Value::Null;
    for (n, v) in pb_fields(buf)? {
        match n {
            1 => key = Some(pb_string(v, "key")?),
            2 => value = pb_any_value(pb_bytes(v, "value")?)?,
            _ => {}
        }
    }
    Ok((key.ok_or("attribute without a key")?, value))
}

/// AnyValue { oneof: string 1, bool 2, int64 3, double 4, ArrayValue 5, KeyValueList 6,
/// bytes 7 }.
fn pb_any_value(buf: &[u8]) -> Result<Value, String> {
    let fields = pb_fields(buf)?;
    let [(n, v)] = fields[..] else {
        return Err(format!(
            "an AnyValue holds one member, got {}",
            fields.len()
        ));
    };
    Ok(match n {
        1 => Value::String(pb_string(v, "stringValue")?),
        2 => Value::Bool(pb_varint(v, "boolValue")? != 0),
        3 => json!(pb_varint(v, "intValue")? as i64),
        4 => json!(f64::from_bits(pb_fixed64(v, "doubleValue")?)),
        5 => Value::Array(
            pb_fields(pb_bytes(v, "arrayValue")?)?
                .into_iter()
                .filter(|(n, _)| *n == 1)
                .map(|(_, v)| pb_any_value(pb_bytes(v, "array element")?))
                .collect::<Result<_, _>>()?,
        ),
        6 => {
            let mut m = serde_json::Map::new();
            for (n, v) in pb_fields(pb_bytes(v, "kvlistValue")?)? {
                if n == 1 {
                    let (k, val) = pb_key_value(pb_bytes(v, "kvlist entry")?)?;
                    m.insert(k, val);
                }
            }
            Value::Object(m)
        }
        7 => Value::String(
            pb_bytes(v, "bytesValue")?
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect(),
        ),
        other => return Err(format!("unknown AnyValue member {other}")),
    })
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
        transport: "http/json",
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
