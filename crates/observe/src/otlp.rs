//! OpenTelemetry: one span per call, exported over OTLP/HTTP with JSON encoding.
//!
//! The span follows the GenAI semantic conventions: named `"{operation} {model group}"`
//! (`chat gpt-4o`), kind CLIENT, covering the whole call (retries and fallbacks included),
//! `gen_ai.request.model` the model group asked for and `gen_ai.response.model` the provider
//! model that answered. It continues the client's W3C trace when the call came with a
//! `traceparent` (see [`parse_traceparent`]): same trace id, the client's span as parent.
//!
//! Wire format (OTLP/HTTP JSON): `POST {endpoint}` with `Content-Type: application/json`
//! and an `ExportTraceServiceRequest` body; field names in lowerCamelCase, trace and span
//! ids as hex strings, enums as integers, 64-bit integers as decimal strings.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use llmux_core::{CallRecord, CallSink, Secret};
use llmux_http::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;

use crate::ConfigError;
use crate::batch::{BatchConfig, Batcher, Export, ExportError, ExportStats, send};
use crate::env;
use crate::ids::{new_span_id, new_trace_id, valid_hex_id};

/// Where and how [`OtlpSink`] exports.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The full traces URL, e.g. `http://collector:4318/v1/traces`.
    pub endpoint: String,
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
            .field("headers", &header_names)
            .field("service_name", &self.service_name)
            .field("batch", &self.batch)
            .finish()
    }
}

/// Default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "llmux";

impl OtlpConfig {
    /// Export to the traces URL `endpoint` (used as given: include `/v1/traces`).
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
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
    ///   (a base URL; `/v1/traces` is appended). Neither set: `None`.
    /// - `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (wins per
    ///   name): `name=value,name2=value2`, values percent-decoded.
    /// - `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `llmux`.
    /// - `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT` (ms),
    ///   `OTEL_BSP_SCHEDULE_DELAY` (ms), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    ///   `OTEL_BSP_MAX_QUEUE_SIZE`.
    /// - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: `None`.
    /// - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/json`
    ///   (or unset) is used; `http/protobuf` is answered with JSON on the same URL (an
    ///   OTLP/HTTP receiver takes both); `grpc` is an error.
    pub fn from_env_with(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        if env::var(get, "OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env::var(get, "OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let (endpoint, setting) =
            if let Some(e) = env::var(get, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                (e, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            } else if let Some(base) = env::var(get, "OTEL_EXPORTER_OTLP_ENDPOINT") {
                let sep = if base.ends_with('/') { "" } else { "/" };
                (
                    format!("{base}{sep}v1/traces"),
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                )
            } else {
                return Ok(None);
            };
        env::check_url(&endpoint, setting)?;

        for var in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = env::var(get, var) {
                match p.as_str() {
                    "http/json" => {}
                    "http/protobuf" => tracing::warn!(
                        "{var}=http/protobuf: llmux exports OTLP/HTTP with JSON encoding to the same URL"
                    ),
                    _ => {
                        return Err(ConfigError::UnsupportedProtocol {
                            setting: var.to_owned(),
                            value: p,
                        });
                    }
                }
                break;
            }
        }

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
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let endpoint = config.endpoint.clone();
        let exporter = OtlpExporter {
            endpoint: config.endpoint,
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
    endpoint: String,
    headers: HeaderMap,
    resource: Resource,
}

#[async_trait]
impl Export for OtlpExporter {
    fn name(&self) -> &str {
        "otlp"
    }

    async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError> {
        let body = export_request(&self.resource, batch);
        let body = serde_json::to_vec(&body)
            .map_err(|e| ExportError::fatal(format!("otlp: could not encode spans: {e}")))?;
        let request = llmux_http::client()
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .body(body);
        let (_, answer) = send("otlp", request).await?;
        Ok(rejected_spans(&answer))
    }
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
    /// int64, as a decimal string.
    #[serde(rename = "intValue")]
    Int(String),
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
            value: AnyValue::Int(v.to_string()),
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

fn export_request<'a>(
    resource: &'a Resource,
    batch: &[Arc<CallRecord>],
) -> ExportTraceServiceRequest<'a> {
    ExportTraceServiceRequest {
        resource_spans: [ResourceSpans {
            resource,
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "llmux",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans: batch.iter().map(|r| span(r)).collect(),
            }],
        }],
    }
}

/// The GenAI `gen_ai.operation.name` for a record's operation.
fn operation_name(op: &str) -> &str {
    match op {
        "chat" | "chat_stream" => "chat",
        "embeddings" | "embedding" => "embeddings",
        "completion" | "completions" | "text_completion" => "text_completion",
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
    if r.operation == "chat_stream" {
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
        assert!(matches!(
            OtlpConfig::from_env_with(&env_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
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
}
