//! OpenTelemetry: one span per call, exported over OTLP — HTTP with JSON encoding
//! (`http/json`, the default), HTTP with protobuf encoding (`http/protobuf`), or gRPC
//! (`grpc`).
//!
//! The span follows the GenAI semantic conventions: named `"{operation} {model group}"`
//! (`chat gpt-4o`), kind CLIENT, covering the whole call (retries and fallbacks included),
//! `gen_ai.request.model` the model group asked for and `gen_ai.response.model` the provider
//! model that answered. It continues the client's W3C trace when the call came with a
//! `traceparent` (see [`parse_traceparent`]): same trace id, the client's span as parent.
//!
//! Wire formats, all carrying one `ExportTraceServiceRequest`:
//! - OTLP/HTTP JSON: `POST {endpoint}` with `Content-Type: application/json`; field names
//!   in lowerCamelCase, trace and span ids as hex strings, enums as integers, 64-bit
//!   integers as decimal strings.
//! - OTLP/HTTP protobuf: the same URL, `Content-Type: application/x-protobuf`, the message
//!   in binary protobuf (written by [`crate::proto`], field numbers from
//!   opentelemetry-proto); the answer is a protobuf `ExportTraceServiceResponse`.
//! - OTLP/gRPC: `POST {endpoint}/opentelemetry.proto.collector.trace.v1.TraceService/Export`
//!   over HTTP/2 (prior knowledge on `http://`, ALPN on `https://`), `Content-Type:
//!   application/grpc`, the message behind gRPC's 5-byte length prefix; success is
//!   `grpc-status: 0` in the trailers (or in the headers of a trailers-only answer).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use llmux_core::{CallRecord, CallSink, Secret};
use llmux_http::reqwest;
use llmux_http::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

use crate::ConfigError;
use crate::batch::{BatchConfig, Batcher, Export, ExportError, ExportStats, send};
use crate::env;
use crate::ids::{new_span_id, new_trace_id, valid_hex_id};
use crate::proto::{Field, Writer, read_fields};

/// How spans travel to the receiver (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with JSON encoding (`http/json`).
    #[default]
    HttpJson,
    /// OTLP/HTTP with binary protobuf encoding (`http/protobuf`).
    HttpProtobuf,
    /// OTLP/gRPC over HTTP/2 (`grpc`).
    Grpc,
}

impl OtlpProtocol {
    /// The protocol an `OTEL_EXPORTER_OTLP_PROTOCOL` value names.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "http/json" => Some(Self::HttpJson),
            "http/protobuf" => Some(Self::HttpProtobuf),
            "grpc" => Some(Self::Grpc),
            _ => None,
        }
    }

    /// The standard name: `http/json`, `http/protobuf` or `grpc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpJson => "http/json",
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}

/// The gRPC method OTLP trace export calls.
pub const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where and how [`OtlpSink`] exports.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The full traces URL, e.g. `http://collector:4318/v1/traces`; for gRPC the
    /// collector's URL, e.g. `http://collector:4317` (the method's path is added).
    pub endpoint: String,
    /// How spans are sent (default `http/json`).
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (e.g. an API key). Never logged.
    pub headers: Vec<(String, Secret)>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Batching.
    pub batch: BatchConfig,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &env::display_url(&self.endpoint))
            .field("protocol", &self.protocol)
            .field("headers", &header_names)
            .field("service_name", &self.service_name)
            .field("batch", &self.batch)
            .finish()
    }
}

/// Default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "llmux";

impl OtlpConfig {
    /// Export to the traces URL `endpoint` (used as given: include `/v1/traces`) with
    /// OTLP/HTTP JSON.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol: OtlpProtocol::HttpJson,
            headers: Vec::new(),
            service_name: DEFAULT_SERVICE_NAME.to_owned(),
            batch: BatchConfig::default(),
        }
    }

    /// Read the standard OpenTelemetry variables from the process environment; `None` when
    /// no endpoint is configured or the SDK is disabled. See [`OtlpConfig::from_env_with`].
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_env_with(&env::process_env)
    }

    /// Read the standard variables through `get`:
    ///
    /// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    ///   (a base URL; `/v1/traces` is appended for the HTTP protocols, used as is for
    ///   gRPC). Neither set: `None`.
    /// - `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (wins per
    ///   name): `name=value,name2=value2`, values percent-decoded.
    /// - `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `llmux`.
    /// - `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT` (ms),
    ///   `OTEL_BSP_SCHEDULE_DELAY` (ms), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    ///   `OTEL_BSP_MAX_QUEUE_SIZE`.
    /// - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: `None`.
    /// - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (wins) / `OTEL_EXPORTER_OTLP_PROTOCOL`:
    ///   `http/json` (default), `http/protobuf` or `grpc`; anything else is an error.
    pub fn from_env_with(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        if env::var(get, "OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env::var(get, "OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let mut protocol = OtlpProtocol::HttpJson;
        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = env::var(get, var) {
                protocol = OtlpProtocol::parse(&p).ok_or(ConfigError::UnsupportedProtocol {
                    setting: var.to_owned(),
                    value: p,
                })?;
                break;
            }
        }
        let (endpoint, setting) =
            if let Some(e) = env::var(get, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                (e, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            } else if let Some(base) = env::var(get, "OTEL_EXPORTER_OTLP_ENDPOINT") {
                let url = if protocol == OtlpProtocol::Grpc {
                    base
                } else {
                    let sep = if base.ends_with('/') { "" } else { "/" };
                    format!("{base}{sep}v1/traces")
                };
                (url, "OTEL_EXPORTER_OTLP_ENDPOINT")
            } else {
                return Ok(None);
            };
        env::check_url(&endpoint, setting)?;

        let mut headers: Vec<(String, Secret)> = Vec::new();
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(list) = env::var(get, var) {
                for (name, value) in env::header_list(&list, var)? {
                    headers.retain(|(n, _)| *n != name);
                    headers.push((name, value));
                }
            }
        }

        let service_name = env::var(get, "OTEL_SERVICE_NAME")
            .or_else(|| {
                env::var(get, "OTEL_RESOURCE_ATTRIBUTES").and_then(|attrs| {
                    attrs.split(',').find_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        (k.trim() == "service.name" && !v.trim().is_empty())
                            .then(|| v.trim().to_owned())
                    })
                })
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());

        let mut batch = BatchConfig::default();
        if let Some(t) = env::millis(get, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")?
            .or(env::millis(get, "OTEL_EXPORTER_OTLP_TIMEOUT")?)
        {
            batch.timeout = t;
        }
        if let Some(d) = env::millis(get, "OTEL_BSP_SCHEDULE_DELAY")? {
            batch.interval = d;
        }
        if let Some(n) = env::number(get, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            batch.max_batch = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = env::number(get, "OTEL_BSP_MAX_QUEUE_SIZE")? {
            batch.queue = usize::try_from(n).unwrap_or(usize::MAX);
        }

        Ok(Some(Self {
            endpoint,
            protocol,
            headers,
            service_name,
            batch,
        }))
    }
}

/// Parse a W3C `traceparent` header of version `00`
/// (`00-{32 hex trace id}-{16 hex parent span id}-{2 hex flags}`). Returns the trace id and
/// the parent span id, or `None` when the header is malformed, of another version, or has
/// an all-zero id. Ids must be lower-case, as the format requires.
pub fn parse_traceparent(header: &str) -> Option<(String, String)> {
    let h = header.trim_matches([' ', '\t']);
    let mut parts = h.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = parts.next().is_none()
        && version == "00"
        && lower_hex(trace, 32)
        && lower_hex(span, 16)
        && lower_hex(flags, 2);
    if !valid {
        return None;
    }
    Some((valid_hex_id(trace, 32)?, valid_hex_id(span, 16)?))
}

/// A [`CallSink`] exporting one OpenTelemetry span per call over OTLP/HTTP JSON, in batches.
/// Export failures are logged and counted and never reach a call.
pub struct OtlpSink {
    batcher: Batcher,
    endpoint: String,
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSink")
            .field("endpoint", &env::display_url(&self.endpoint))
            .field("batcher", &self.batcher)
            .finish()
    }
}

impl OtlpSink {
    /// Start the sink's exporter task on the current tokio runtime. Fails on an invalid
    /// endpoint or header, or outside a runtime.
    pub fn new(config: OtlpConfig) -> Result<Self, ConfigError> {
        env::check_url(&config.endpoint, "the OTLP traces endpoint")?;
        let mut headers = env::header_map(&config.headers)?;
        let (content_type, url, client) = match config.protocol {
            OtlpProtocol::HttpJson => ("application/json", config.endpoint.clone(), None),
            OtlpProtocol::HttpProtobuf => ("application/x-protobuf", config.endpoint.clone(), None),
            OtlpProtocol::Grpc => {
                headers.insert(
                    HeaderName::from_static("te"),
                    HeaderValue::from_static("trailers"),
                );
                (
                    "application/grpc",
                    grpc_url(&config.endpoint),
                    Some(grpc_client()),
                )
            }
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        let endpoint = config.endpoint.clone();
        let exporter = OtlpExporter {
            url,
            protocol: config.protocol,
            client,
            headers,
            resource: Resource {
                attributes: vec![
                    KeyValue::string("service.name", config.service_name),
                    KeyValue::string("service.version", env!("CARGO_PKG_VERSION").to_owned()),
                ],
            },
        };
        Ok(Self {
            batcher: Batcher::start(exporter, config.batch)?,
            endpoint,
        })
    }

    /// Export every record received so far, and wait for it (e.g. before shutting down).
    pub async fn flush(&self) {
        self.batcher.flush().await;
    }

    /// What the sink has exported, retried and dropped so far.
    pub fn stats(&self) -> ExportStats {
        self.batcher.stats()
    }
}

#[async_trait]
impl CallSink for OtlpSink {
    fn name(&self) -> &str {
        "otlp"
    }

    async fn record(&self, record: Arc<CallRecord>) {
        self.batcher.push(record).await;
    }
}

struct OtlpExporter {
    /// Where requests go (for gRPC, the `Export` method's URL).
    url: String,
    protocol: OtlpProtocol,
    /// gRPC's own HTTP/2 client; the process's shared client otherwise.
    client: Option<reqwest::Client>,
    headers: HeaderMap,
    resource: Resource,
}

/// The gRPC `Export` method's URL on the collector at `endpoint`.
fn grpc_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(GRPC_EXPORT_PATH) {
        base.to_owned()
    } else {
        format!("{base}{GRPC_EXPORT_PATH}")
    }
}

/// An HTTP/2-only client: gRPC needs HTTP/2, which on `http://` means prior knowledge
/// (h2c). Otherwise configured as the process's shared client.
fn grpc_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .tcp_keepalive(std::time::Duration::from_secs(60))
        .user_agent(concat!("llmux/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

#[async_trait]
impl Export for OtlpExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError> {
        let spans: Vec<Span> = batch.iter().map(|r| span(r)).collect();
        match self.protocol {
            OtlpProtocol::HttpJson => {
                let body =
                    serde_json::to_vec(&export_request(&self.resource, spans)).map_err(|e| {
                        ExportError::fatal(format!("otlp: could not encode spans: {e}"))
                    })?;
                let (_, answer) = send("otlp", self.post(body)).await?;
                Ok(rejected_spans(&answer))
            }
            OtlpProtocol::HttpProtobuf => {
                let body = encode_export_request(&self.resource, &spans);
                let (_, answer) = send("otlp", self.post(body)).await?;
                // A protobuf answer, as the specification says; some receivers answer JSON.
                Ok(rejected_spans_proto(&answer).unwrap_or_else(|| rejected_spans(&answer)))
            }
            OtlpProtocol::Grpc => {
                let message = encode_export_request(&self.resource, &spans);
                self.export_grpc(message).await
            }
        }
    }
}

impl OtlpExporter {
    fn post(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.client
            .as_ref()
            .unwrap_or_else(|| llmux_http::client())
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
    }

    /// One unary gRPC call: the length-prefixed message out; the answer's frames and
    /// trailers in, `grpc-status` checked.
    async fn export_grpc(&self, message: Vec<u8>) -> Result<u64, ExportError> {
        let len = u32::try_from(message.len())
            .map_err(|_| ExportError::fatal("otlp: the batch is too large for one gRPC message"))?;
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0); // not compressed
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&message);
        let response = self
            .post(framed)
            .version(reqwest::Version::HTTP_2)
            .send()
            .await
            .map_err(|e| ExportError::retryable(grpc_transport_reason(&e)))?;
        let status = response.status();
        if !status.is_success() {
            // An HTTP error before gRPC (a proxy, or a server that is not gRPC).
            let code = status.as_u16();
            return Err(ExportError {
                retryable: code == 408 || code == 429 || status.is_server_error(),
                reason: format!("otlp: the receiver answered HTTP {code}"),
                status: Some(code),
            });
        }
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, mut body) = response.into_parts();
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = std::future::poll_fn(|cx| {
            http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
        })
        .await
        {
            let frame = frame.map_err(|e| ExportError::retryable(grpc_transport_reason(&e)))?;
            match frame.into_data() {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        let grpc_status = |h: &HeaderMap| {
            h.get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let code = trailers
            .as_ref()
            .and_then(grpc_status)
            .or_else(|| grpc_status(&parts.headers))
            .ok_or_else(|| {
                ExportError::retryable("otlp: the gRPC answer carried no grpc-status")
            })?;
        if code != 0 {
            return Err(ExportError {
                retryable: grpc_retryable(code),
                reason: format!("otlp: the receiver answered gRPC status {code}"),
                status: None,
            });
        }
        // The answer: one length-prefixed ExportTraceServiceResponse (may be absent).
        match data.get(5..) {
            Some(message) if data[0] == 0 => Ok(rejected_spans_proto(message).unwrap_or(0)),
            _ => Ok(0),
        }
    }
}

/// gRPC codes worth one retry (OTLP's list): CANCELLED, DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
fn grpc_retryable(code: u32) -> bool {
    matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15)
}

fn grpc_transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "otlp: the gRPC request timed out".into()
    } else if e.is_connect() {
        "otlp: could not connect to the gRPC receiver".into()
    } else {
        "otlp: the gRPC request failed (is the receiver speaking HTTP/2?)".into()
    }
}

/// Spans a protobuf `ExportTraceServiceResponse` reports rejecting
/// (`partial_success.rejected_spans`, logging `error_message`); `None` when the bytes are
/// not such a message.
fn rejected_spans_proto(body: &[u8]) -> Option<u64> {
    let mut rejected = 0;
    let mut message = String::new();
    for f in read_fields(body)? {
        if let Field::Bytes(1, partial) = f {
            for p in read_fields(partial)? {
                match p {
                    Field::Varint(1, n) => rejected = n,
                    Field::Bytes(2, m) => message = String::from_utf8_lossy(m).into_owned(),
                    _ => {}
                }
            }
        }
    }
    if rejected > 0 {
        tracing::warn!(rejected, message, "otlp: the receiver rejected spans");
    }
    Some(rejected)
}

/// Spans the receiver reported rejecting (`partialSuccess.rejectedSpans`), logging its
/// message.
fn rejected_spans(body: &[u8]) -> u64 {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0;
    };
    let Some(partial) = v.get("partialSuccess") else {
        return 0;
    };
    let rejected = match partial.get("rejectedSpans") {
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        Some(n) => n.as_u64().unwrap_or(0),
        None => 0,
    };
    if rejected > 0 {
        let message = partial
            .get("errorMessage")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        tracing::warn!(rejected, message, "otlp: the receiver rejected spans");
    }
    rejected
}

// --- OTLP JSON shapes (only what llmux sends) ---

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportTraceServiceRequest<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: &'a Resource,
    scope_spans: [ScopeSpans; 1],
}

#[derive(Serialize, Clone)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
struct ScopeSpans {
    scope: Scope,
    spans: Vec<Span>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

/// `SPAN_KIND_CLIENT`.
const SPAN_KIND_CLIENT: u8 = 3;
/// `STATUS_CODE_ERROR`.
const STATUS_CODE_ERROR: u8 = 2;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: String,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

#[derive(Serialize)]
struct Status {
    code: u8,
    message: String,
}

#[derive(Serialize, Clone)]
struct KeyValue {
    key: &'static str,
    value: AnyValue,
}

/// OTLP's `AnyValue`: one typed member, e.g. `{"stringValue": "x"}`.
#[derive(Serialize, Clone)]
enum AnyValue {
    #[serde(rename = "stringValue")]
    String(String),
    #[serde(rename = "boolValue")]
    Bool(bool),
    /// int64, written as a decimal string in JSON.
    #[serde(rename = "intValue")]
    Int(#[serde(serialize_with = "decimal_string")] i64),
    #[serde(rename = "doubleValue")]
    Double(f64),
    #[serde(rename = "arrayValue")]
    Array { values: Vec<AnyValue> },
}

impl KeyValue {
    fn string(key: &'static str, v: String) -> Self {
        Self {
            key,
            value: AnyValue::String(v),
        }
    }
    fn int(key: &'static str, v: u64) -> Self {
        Self {
            key,
            value: AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX)),
        }
    }
    fn double(key: &'static str, v: f64) -> Self {
        Self {
            key,
            value: AnyValue::Double(v),
        }
    }
    fn bool(key: &'static str, v: bool) -> Self {
        Self {
            key,
            value: AnyValue::Bool(v),
        }
    }
    fn strings(key: &'static str, v: impl IntoIterator<Item = String>) -> Self {
        Self {
            key,
            value: AnyValue::Array {
                values: v.into_iter().map(AnyValue::String).collect(),
            },
        }
    }
}

fn export_request(resource: &Resource, spans: Vec<Span>) -> ExportTraceServiceRequest<'_> {
    ExportTraceServiceRequest {
        resource_spans: [ResourceSpans {
            resource,
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "llmux",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans,
            }],
        }],
    }
}

fn decimal_string<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

// --- OTLP protobuf (field numbers from opentelemetry-proto: collector/trace/v1,
// trace/v1, common/v1, resource/v1) ---

/// Binary `ExportTraceServiceRequest`: one ResourceSpans (1) with the resource (1) and
/// one ScopeSpans (2) holding the scope (1) and the spans (2).
fn encode_export_request(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let mut w = Writer::new();
    w.message(1, |rs| {
        rs.message(1, |r| {
            for a in &resource.attributes {
                r.message(1, |kv| encode_key_value(kv, a));
            }
        });
        rs.message(2, |ss| {
            ss.message(1, |scope| {
                scope.string(1, "llmux");
                scope.string(2, env!("CARGO_PKG_VERSION"));
            });
            for s in spans {
                ss.message(2, |w| encode_span(w, s));
            }
        });
    });
    w.finish()
}

/// Span: trace_id 1, span_id 2, parent_span_id 4 (bytes), name 5, kind 6, start 7 and end
/// 8 (fixed64), attributes 9, status 15 (message 2, code 3).
fn encode_span(w: &mut Writer, s: &Span) {
    w.bytes(1, &hex_bytes(&s.trace_id));
    w.bytes(2, &hex_bytes(&s.span_id));
    if let Some(p) = &s.parent_span_id {
        w.bytes(4, &hex_bytes(p));
    }
    w.string(5, &s.name);
    w.uint(6, u64::from(s.kind));
    w.fixed64(7, s.start_time_unix_nano.parse().unwrap_or(0));
    w.fixed64(8, s.end_time_unix_nano.parse().unwrap_or(0));
    for a in &s.attributes {
        w.message(9, |kv| encode_key_value(kv, a));
    }
    if let Some(st) = &s.status {
        w.message(15, |m| {
            m.string(2, &st.message);
            m.uint(3, u64::from(st.code));
        });
    }
}

/// KeyValue: key 1, value 2.
fn encode_key_value(w: &mut Writer, kv: &KeyValue) {
    w.string(1, kv.key);
    w.message(2, |v| encode_any_value(v, &kv.value));
}

/// AnyValue (a oneof): string 1, bool 2, int 3, double 4, array 5 (ArrayValue.values 1).
fn encode_any_value(w: &mut Writer, v: &AnyValue) {
    match v {
        AnyValue::String(s) => w.string_always(1, s),
        AnyValue::Bool(b) => w.bool_always(2, *b),
        AnyValue::Int(i) => w.int64_always(3, *i),
        AnyValue::Double(d) => w.double_always(4, *d),
        AnyValue::Array { values } => w.message(5, |a| {
            for v in values {
                a.message(1, |any| encode_any_value(any, v));
            }
        }),
    }
}

/// Hex digits as bytes (ids are checked hex by the time they get here).
fn hex_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// The GenAI `gen_ai.operation.name` for a record's operation.
fn operation_name(op: &str) -> &str {
    match op {
        // Every chat-shaped endpoint: Chat Completions, Anthropic Messages, Responses.
        "chat" | "chat_stream" | "messages" | "messages_stream" | "responses"
        | "responses_stream" => "chat",
        "embeddings" | "embedding" => "embeddings",
        "completion" | "completions" | "completions_stream" | "text_completion" => {
            "text_completion"
        }
        other => other,
    }
}

/// `gen_ai.provider.name` (current conventions) and `gen_ai.system` (v1.36 and earlier) for
/// an llmux provider prefix; other prefixes are passed through.
fn provider_names(provider: &str) -> (&str, &str) {
    match provider {
        "azure" | "azure_openai" => ("azure.ai.openai", "az.ai.openai"),
        "gemini" | "google" => ("gcp.gemini", "gemini"),
        "vertex_ai" | "vertex" => ("gcp.vertex_ai", "vertex_ai"),
        "bedrock" => ("aws.bedrock", "aws.bedrock"),
        "mistral" => ("mistral_ai", "mistral_ai"),
        "xai" => ("x_ai", "xai"),
        "watsonx" => ("ibm.watsonx.ai", "ibm.watsonx.ai"),
        other => (other, other),
    }
}

fn span(r: &CallRecord) -> Span {
    let trace_id = r
        .trace_id
        .as_deref()
        .and_then(|t| valid_hex_id(t, 32))
        .unwrap_or_else(new_trace_id);
    let parent_span_id = r
        .parent_span_id
        .as_deref()
        .and_then(|s| valid_hex_id(s, 16));
    let start = r.started_at_ms.saturating_mul(1_000_000);
    let end = start.saturating_add(r.latency_us.saturating_mul(1000));
    let operation = operation_name(&r.operation);

    let mut a = Vec::with_capacity(24);
    a.push(KeyValue::string(
        "gen_ai.operation.name",
        operation.to_owned(),
    ));
    if let Some(p) = &r.provider {
        let (name, system) = provider_names(p);
        a.push(KeyValue::string("gen_ai.provider.name", name.to_owned()));
        a.push(KeyValue::string("gen_ai.system", system.to_owned()));
    }
    a.push(KeyValue::string(
        "gen_ai.request.model",
        r.model_group.clone(),
    ));
    if let Some(m) = &r.provider_model {
        a.push(KeyValue::string("gen_ai.response.model", m.clone()));
    }
    let failed = r.error_kind.is_some() || r.status >= 400;
    // A failed call reports usage only when it had some (a stream cut short).
    if !failed || r.prompt_tokens > 0 || r.completion_tokens > 0 {
        a.push(KeyValue::int("gen_ai.usage.input_tokens", r.prompt_tokens));
        a.push(KeyValue::int(
            "gen_ai.usage.output_tokens",
            r.completion_tokens,
        ));
    }
    if let Some(f) = &r.finish_reason {
        a.push(KeyValue::strings(
            "gen_ai.response.finish_reasons",
            [f.clone()],
        ));
    }
    a.push(KeyValue::int(
        "http.response.status_code",
        u64::from(r.status),
    ));
    a.push(KeyValue::string("llmux.request_id", r.request_id.clone()));
    if let Some(d) = &r.deployment {
        a.push(KeyValue::string("llmux.deployment", d.clone()));
    }
    if let Some(k) = &r.key {
        a.push(KeyValue::string("llmux.key", k.clone()));
    }
    if let Some(k) = &r.key_alias {
        a.push(KeyValue::string("llmux.key_alias", k.clone()));
    }
    if let Some(t) = &r.team {
        a.push(KeyValue::string("llmux.team", t.clone()));
    }
    if let Some(c) = r.cost_nano_usd {
        a.push(KeyValue::double("llmux.cost_usd", c as f64 / 1e9));
    }
    a.push(KeyValue::int("llmux.attempts", u64::from(r.attempts)));
    if let Some(f) = &r.fallback {
        a.push(KeyValue::string("llmux.fallback", f.clone()));
    }
    if r.operation.ends_with("_stream") {
        a.push(KeyValue::bool("llmux.stream", true));
    }
    if let Some(t) = r.ttft_us {
        a.push(KeyValue::double(
            "llmux.time_to_first_token_s",
            t as f64 / 1e6,
        ));
    }
    if r.cached_tokens > 0 {
        a.push(KeyValue::int("llmux.usage.cached_tokens", r.cached_tokens));
    }
    if r.reasoning_tokens > 0 {
        a.push(KeyValue::int(
            "llmux.usage.reasoning_tokens",
            r.reasoning_tokens,
        ));
    }
    if r.usage_estimated {
        a.push(KeyValue::bool("llmux.usage_estimated", true));
    }
    if r.cache_hit {
        a.push(KeyValue::bool("llmux.cache_hit", true));
    }
    if !r.tags.is_empty() {
        a.push(KeyValue::strings("llmux.tags", r.tags.iter().cloned()));
    }
    if let Some(session) = &r.session_id {
        a.push(KeyValue::string("gen_ai.conversation.id", session.clone()));
    }

    let status = failed.then(|| {
        let error_type = r
            .error_kind
            .map_or_else(|| r.status.to_string(), |k| k.as_str().to_owned());
        a.push(KeyValue::string("error.type", error_type.clone()));
        Status {
            code: STATUS_CODE_ERROR,
            message: error_type,
        }
    });

    Span {
        trace_id,
        span_id: new_span_id(),
        parent_span_id,
        name: format!("{operation} {}", r.model_group),
        kind: SPAN_KIND_CLIENT,
        start_time_unix_nano: start.to_string(),
        end_time_unix_nano: end.to_string(),
        attributes: a,
        status,
    }
}

#[cfg(test)]
mod tests {
    use llmux_core::ErrorKind;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn traceparent_parsing() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(ok),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into()
            ))
        );
        assert!(parse_traceparent(&format!(" {ok}\t")).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn config_from_env() {
        assert_eq!(OtlpConfig::from_env_with(&env_of(&[])), Ok(None));
        let c = OtlpConfig::from_env_with(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=one,x-a=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=two"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, service.name=gw",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.service_name, "gw");
        let h: Vec<(&str, &str)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(h, vec![("x-a", "1"), ("api-key", "two")]);
        assert_eq!(c.batch.interval.as_millis(), 250);
        assert_eq!(c.batch.max_batch, 64);
        assert_eq!(c.batch.timeout.as_millis(), 3000);

        let c = OtlpConfig::from_env_with(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://x.example/custom/traces",
            ),
            ("OTEL_SERVICE_NAME", "edge"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "https://x.example/custom/traces");
        assert_eq!(c.service_name, "edge");

        assert_eq!(
            OtlpConfig::from_env_with(&env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
                ("OTEL_SDK_DISABLED", "true"),
            ])),
            Ok(None)
        );
        assert_eq!(
            OtlpConfig::from_env_with(&env_of(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://c:4318/"
            )]))
            .unwrap()
            .unwrap()
            .endpoint,
            "http://c:4318/v1/traces"
        );
        let grpc = OtlpConfig::from_env_with(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (grpc.protocol, grpc.endpoint.as_str()),
            (OtlpProtocol::Grpc, "http://c:4317"),
            "a gRPC base URL is the collector's, without /v1/traces"
        );
        assert_eq!(
            grpc_url(&grpc.endpoint),
            format!("http://c:4317{GRPC_EXPORT_PATH}")
        );
        assert_eq!(
            grpc_url(&grpc_url("http://c:4317/")),
            grpc_url("http://c:4317")
        );
        let proto = OtlpConfig::from_env_with(&env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (proto.protocol, proto.endpoint.as_str()),
            (OtlpProtocol::HttpProtobuf, "http://c:4318/v1/traces"),
            "the traces-specific protocol wins"
        );
        assert!(matches!(
            OtlpConfig::from_env_with(&env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
            ])),
            Err(ConfigError::UnsupportedProtocol { .. })
        ));
        assert!(matches!(
            OtlpConfig::from_env_with(&env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")])),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            OtlpConfig::from_env_with(&env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
            ])),
            Err(ConfigError::InvalidNumber { .. })
        ));
    }

    #[test]
    fn a_span_without_traceparent_starts_a_new_trace() {
        let r = CallRecord {
            operation: "embeddings".into(),
            model_group: "embed".into(),
            status: 200,
            trace_id: Some("not-a-trace-id".into()),
            parent_span_id: Some("0000000000000000".into()),
            ..CallRecord::default()
        };
        let s = span(&r);
        assert_eq!(s.name, "embeddings embed");
        assert!(valid_hex_id(&s.trace_id, 32).is_some());
        assert!(s.parent_span_id.is_none());
        assert!(s.status.is_none());
    }

    #[test]
    fn a_failed_call_has_error_status_and_type() {
        let r = CallRecord {
            operation: "chat".into(),
            model_group: "g".into(),
            status: 503,
            error_kind: Some(ErrorKind::UpstreamUnavailable),
            ..CallRecord::default()
        };
        let v = serde_json::to_value(span(&r)).unwrap();
        assert_eq!(
            v["status"],
            serde_json::json!({"code": 2, "message": "upstream_unavailable"})
        );
        assert_eq!(v["kind"], 3);
        assert!(
            v["attributes"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({"key": "error.type", "value": {"stringValue": "upstream_unavailable"}}))
        );
    }

    /// A minimal reading of what [`encode_export_request`] wrote: the fields by number.
    fn fields(bytes: &[u8]) -> Vec<Field<'_>> {
        read_fields(bytes).expect("well-formed protobuf")
    }

    fn only_bytes<'a>(fs: &[Field<'a>], n: u32) -> Vec<&'a [u8]> {
        fs.iter()
            .filter_map(|f| match f {
                Field::Bytes(k, b) if *k == n => Some(*b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_span_encodes_as_an_otlp_protobuf_request() {
        let r = CallRecord {
            request_id: "req-1".into(),
            operation: "chat".into(),
            model_group: "g".into(),
            provider: Some("openai".into()),
            prompt_tokens: 12,
            completion_tokens: 0,
            status: 503,
            error_kind: Some(ErrorKind::UpstreamUnavailable),
            started_at_ms: 1_700_000_000_000,
            latency_us: 1_500,
            cost_nano_usd: Some(250_000_000),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            parent_span_id: Some("00f067aa0ba902b7".into()),
            tags: vec!["a".into(), "b".into()],
            session_id: Some("s-1".into()),
            ..CallRecord::default()
        };
        let resource = Resource {
            attributes: vec![KeyValue::string("service.name", "svc".into())],
        };
        let spans = [span(&r)];
        let bytes = encode_export_request(&resource, &spans);

        let request = fields(&bytes);
        let [resource_spans] = only_bytes(&request, 1)[..] else {
            panic!("one ResourceSpans")
        };
        let rs = fields(resource_spans);
        let resource = fields(only_bytes(&rs, 1)[0]);
        let service = fields(only_bytes(&resource, 1)[0]);
        assert_eq!(service[0], Field::Bytes(1, b"service.name"));
        assert_eq!(
            fields(only_bytes(&service, 2)[0]),
            [Field::Bytes(1, b"svc")]
        );
        let ss = fields(only_bytes(&rs, 2)[0]);
        let scope = fields(only_bytes(&ss, 1)[0]);
        assert_eq!(scope[0], Field::Bytes(1, b"llmux"));
        let span = fields(only_bytes(&ss, 2)[0]);

        let trace_id = [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ];
        assert_eq!(span[0], Field::Bytes(1, &trace_id), "16 raw bytes, not hex");
        assert!(matches!(span[1], Field::Bytes(2, id) if id.len() == 8));
        assert_eq!(
            span[2],
            Field::Bytes(4, &[0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(span[3], Field::Bytes(5, b"chat g"));
        assert_eq!(span[4], Field::Varint(6, 3), "kind CLIENT");
        assert_eq!(span[5], Field::Fixed64(7, 1_700_000_000_000_000_000));
        assert_eq!(span[6], Field::Fixed64(8, 1_700_000_000_001_500_000));

        let attrs: Vec<(String, Vec<Field<'_>>)> = only_bytes(&span, 9)
            .into_iter()
            .map(|kv| {
                let kv = fields(kv);
                let Field::Bytes(1, key) = kv[0] else {
                    panic!("a key first")
                };
                let Field::Bytes(2, value) = kv[1] else {
                    panic!("then a value")
                };
                (String::from_utf8(key.to_vec()).unwrap(), fields(value))
            })
            .collect();
        let attr = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no attribute {k}"))
        };
        assert_eq!(attr("gen_ai.request.model"), [Field::Bytes(1, b"g")]);
        assert_eq!(attr("gen_ai.usage.input_tokens"), [Field::Varint(3, 12)]);
        assert_eq!(
            attr("gen_ai.usage.output_tokens"),
            [Field::Varint(3, 0)],
            "a zero int in a oneof is still present"
        );
        assert_eq!(
            attr("llmux.cost_usd"),
            [Field::Fixed64(4, 0.25f64.to_bits())]
        );
        assert_eq!(attr("gen_ai.conversation.id"), [Field::Bytes(1, b"s-1")]);
        let tags = attr("llmux.tags");
        let Field::Bytes(5, array) = tags[0] else {
            panic!("an ArrayValue")
        };
        let values: Vec<Vec<Field<'_>>> = only_bytes(&fields(array), 1)
            .into_iter()
            .map(fields)
            .collect();
        assert_eq!(
            values,
            [vec![Field::Bytes(1, b"a")], vec![Field::Bytes(1, b"b")]]
        );

        let status = fields(only_bytes(&span, 15)[0]);
        assert_eq!(
            status,
            [
                Field::Bytes(2, b"upstream_unavailable"),
                Field::Varint(3, 2)
            ]
        );
    }

    #[test]
    fn a_protobuf_answer_reports_rejected_spans() {
        let mut w = Writer::new();
        w.message(1, |p| {
            p.uint(1, 3);
            p.string(2, "too old");
        });
        assert_eq!(rejected_spans_proto(&w.finish()), Some(3));
        assert_eq!(
            rejected_spans_proto(&[]),
            Some(0),
            "an empty answer is a success"
        );
        assert_eq!(rejected_spans_proto(b"{\"partialSuccess\":{}}"), None);
        assert!(grpc_retryable(14) && !grpc_retryable(3) && !grpc_retryable(16));
    }
}
