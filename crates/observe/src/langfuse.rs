//! Langfuse: a trace and a generation per call, sent in batches to Langfuse's public
//! ingestion API (`POST {host}/api/public/ingestion`, HTTP basic auth with the project's
//! public key as user and secret key as password).
//!
//! Per call, two events: `trace-create` and `generation-create` with the provider model that
//! answered, token usage, cost, start/end and first-token times, level `ERROR` with a status
//! message for failed calls, and metadata naming the model group, deployment, provider and
//! key alias. The request's `metadata` steers them the way LiteLLM's Langfuse callback
//! does: `trace_id` / `existing_trace_id`, `trace_name`, `generation_name`,
//! `generation_id`, `session_id`, `trace_user_id` (or `user_id`), `trace_version` /
//! `version`, `trace_release`, `trace_metadata`, `tags`; its other members become generation
//! metadata. Event ids derive from the request id, so a retried batch is
//! deduplicated by Langfuse.
//!
//! The prompt (`input`) and the answer (`output`) are sent only when the record carries
//! them, which it does only when the gateway's `log_prompts` setting is on. Metadata never
//! carries credentials: the engine removes them before the record exists, and members whose
//! key looks like one are dropped here again.
//!
//! Langfuse answers a batch with `207 Multi-Status` listing per-event errors; each is
//! logged and counted as rejected.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use llmux_core::{CallRecord, CallSink, Secret};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::ConfigError;
use crate::batch::{BatchConfig, Batcher, Export, ExportError, ExportStats, send};
use crate::env;
use crate::ids::new_trace_id;
use crate::time::rfc3339_ms;

/// Langfuse Cloud (EU), the default host.
pub const DEFAULT_HOST: &str = "https://cloud.langfuse.com";

/// Where and how [`LangfuseSink`] sends.
#[derive(Clone, PartialEq, Eq)]
pub struct LangfuseConfig {
    /// Base URL of the Langfuse instance, e.g. `https://cloud.langfuse.com`.
    pub host: String,
    /// The project's public key (`pk-lf-…`), the basic-auth user.
    pub public_key: String,
    /// The project's secret key (`sk-lf-…`), the basic-auth password. Never logged.
    pub secret_key: Secret,
    /// Langfuse `environment` of every trace and generation (e.g. `production`).
    pub environment: Option<String>,
    /// Batching (a batch of `n` records is `2n` events).
    pub batch: BatchConfig,
}

impl fmt::Debug for LangfuseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LangfuseConfig")
            .field("host", &env::display_url(&self.host))
            .field("public_key", &self.public_key)
            .field("secret_key", &self.secret_key)
            .field("environment", &self.environment)
            .field("batch", &self.batch)
            .finish()
    }
}

impl LangfuseConfig {
    /// Send to `host` with the project's keys.
    pub fn new(host: impl Into<String>, public_key: impl Into<String>, secret_key: Secret) -> Self {
        Self {
            host: host.into(),
            public_key: public_key.into(),
            secret_key,
            environment: None,
            batch: BatchConfig {
                max_batch: 100,
                ..BatchConfig::default()
            },
        }
    }

    /// Read `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`, `LANGFUSE_HOST` (default
    /// [`DEFAULT_HOST`]) and `LANGFUSE_TRACING_ENVIRONMENT` from the process environment.
    /// `None` when neither key is set; an error when only one is.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_env_with(&env::process_env)
    }

    /// [`LangfuseConfig::from_env`] through `get`.
    pub fn from_env_with(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let public = env::var(get, "LANGFUSE_PUBLIC_KEY");
        let secret = env::var(get, "LANGFUSE_SECRET_KEY");
        let (public, secret) = match (public, secret) {
            (None, None) => return Ok(None),
            (Some(p), Some(s)) => (p, s),
            (Some(_), None) => {
                return Err(ConfigError::Incomplete {
                    present: "LANGFUSE_PUBLIC_KEY".into(),
                    missing: "LANGFUSE_SECRET_KEY".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Incomplete {
                    present: "LANGFUSE_SECRET_KEY".into(),
                    missing: "LANGFUSE_PUBLIC_KEY".into(),
                });
            }
        };
        let host = env::var(get, "LANGFUSE_HOST").unwrap_or_else(|| DEFAULT_HOST.to_owned());
        env::check_url(&host, "LANGFUSE_HOST")?;
        let mut config = Self::new(host, public, Secret::new(secret));
        config.environment = env::var(get, "LANGFUSE_TRACING_ENVIRONMENT");
        Ok(Some(config))
    }
}

/// A [`CallSink`] sending each call to Langfuse as a trace with one generation, in batches.
/// Failures are logged and counted and never reach a call.
pub struct LangfuseSink {
    batcher: Batcher,
    host: String,
}

impl fmt::Debug for LangfuseSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LangfuseSink")
            .field("host", &env::display_url(&self.host))
            .field("batcher", &self.batcher)
            .finish()
    }
}

impl LangfuseSink {
    /// Start the sink's exporter task on the current tokio runtime. Fails on an invalid
    /// host or outside a runtime.
    pub fn new(config: LangfuseConfig) -> Result<Self, ConfigError> {
        env::check_url(&config.host, "the Langfuse host")?;
        let host = config.host.trim_end_matches('/').to_owned();
        let exporter = LangfuseExporter {
            url: format!("{host}/api/public/ingestion"),
            public_key: config.public_key,
            secret_key: config.secret_key,
            environment: config.environment,
        };
        Ok(Self {
            batcher: Batcher::start(exporter, config.batch)?,
            host,
        })
    }

    /// Send every record received so far, and wait for it (e.g. before shutting down).
    pub async fn flush(&self) {
        self.batcher.flush().await;
    }

    /// What the sink has sent, retried and dropped so far.
    pub fn stats(&self) -> ExportStats {
        self.batcher.stats()
    }
}

#[async_trait]
impl CallSink for LangfuseSink {
    fn name(&self) -> &str {
        "langfuse"
    }

    async fn record(&self, record: Arc<CallRecord>) {
        self.batcher.push(record).await;
    }
}

struct LangfuseExporter {
    url: String,
    public_key: String,
    secret_key: Secret,
    environment: Option<String>,
}

/// Langfuse's batch answer.
#[derive(Deserialize)]
struct IngestionResponse {
    #[serde(default)]
    errors: Vec<IngestionError>,
}

#[derive(Deserialize)]
struct IngestionError {
    #[serde(default)]
    id: String,
    #[serde(default)]
    status: u16,
    #[serde(default)]
    message: Option<String>,
}

/// At most this many per-event errors are logged per batch (all are counted).
const LOGGED_EVENT_ERRORS: usize = 5;

#[async_trait]
impl Export for LangfuseExporter {
    fn name(&self) -> &str {
        "langfuse"
    }

    async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError> {
        let mut events = Vec::with_capacity(batch.len() * 2);
        for r in batch {
            push_events(r, self.environment.as_deref(), &mut events);
        }
        let body = serde_json::to_vec(&json!({ "batch": events }))
            .map_err(|e| ExportError::fatal(format!("langfuse: could not encode events: {e}")))?;
        let request = llmux_http::client()
            .post(&self.url)
            .basic_auth(&self.public_key, Some(self.secret_key.expose()))
            .header("content-type", "application/json")
            .body(body);
        let (_, answer) = send("langfuse", request).await.map_err(|e| {
            if matches!(e.status, Some(401 | 403)) {
                ExportError::fatal(
                    "langfuse: the keys were refused (check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY)",
                )
            } else {
                e
            }
        })?;
        let Ok(parsed) = serde_json::from_slice::<IngestionResponse>(&answer) else {
            return Ok(0);
        };
        for e in parsed.errors.iter().take(LOGGED_EVENT_ERRORS) {
            tracing::warn!(
                event_id = %e.id,
                status = e.status,
                message = e.message.as_deref().unwrap_or(""),
                "langfuse refused an event"
            );
        }
        if parsed.errors.len() > LOGGED_EVENT_ERRORS {
            tracing::warn!(
                more = parsed.errors.len() - LOGGED_EVENT_ERRORS,
                "langfuse refused more events in the same batch"
            );
        }
        Ok(parsed.errors.len() as u64)
    }
}

/// The request-metadata keys that steer the trace and generation instead of being passed on
/// as generation metadata (LiteLLM's Langfuse keys).
const STEERING_KEYS: [&str; 16] = [
    "trace_id",
    "existing_trace_id",
    "trace_name",
    "generation_name",
    "generation_id",
    "session_id",
    "trace_user_id",
    "user_id",
    "trace_version",
    "version",
    "trace_release",
    "trace_metadata",
    "tags",
    "update_trace_keys",
    "parent_observation_id",
    "debug_langfuse",
];

/// Longest id or name taken from request metadata.
const MAX_ID_LEN: usize = 256;

/// A non-empty string member of the request metadata, bounded in length.
fn meta_str<'a>(r: &'a CallRecord, key: &str) -> Option<&'a str> {
    r.request_metadata
        .as_deref()?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN)
}

/// Whether a key names a credential (a second line of defence: the engine already removed
/// them).
fn secret_like(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    k == "key"
        || k.ends_with("_key")
        || k.contains("apikey")
        || [
            "api_key",
            "secret",
            "token",
            "password",
            "authorization",
            "credential",
            "cookie",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// The `trace-create` and `generation-create` events of one record.
fn push_events(r: &CallRecord, environment: Option<&str>, out: &mut Vec<Value>) {
    let request_id = if r.request_id.is_empty() {
        new_trace_id()
    } else {
        r.request_id.clone()
    };
    // An existing trace is only added to (no trace-create); a given trace id is created or
    // updated; otherwise the trace is the request's own.
    let existing = meta_str(r, "existing_trace_id");
    let trace_id = existing
        .or_else(|| meta_str(r, "trace_id"))
        .map_or_else(|| request_id.clone(), str::to_owned);
    let generation_id = meta_str(r, "generation_id")
        .map_or_else(|| format!("{request_id}-generation"), str::to_owned);
    let start_ms = r.started_at_ms;
    let end_ms = start_ms.saturating_add(r.latency_us / 1000);
    let start = rfc3339_ms(start_ms);
    let end = rfc3339_ms(end_ms);
    let operation = match r.operation.as_str() {
        "chat_stream" => "chat",
        other => other,
    };
    let default_name = format!("{operation} {}", r.model_group);
    let trace_name = meta_str(r, "trace_name").unwrap_or(&default_name);
    let generation_name = meta_str(r, "generation_name").unwrap_or(&default_name);
    let metadata = metadata(r);
    let user = meta_str(r, "trace_user_id")
        .or_else(|| meta_str(r, "user_id"))
        .or(r.end_user.as_deref())
        .or(r.user.as_deref());
    let session = r
        .session_id
        .as_deref()
        .or_else(|| meta_str(r, "session_id"));
    let version = meta_str(r, "trace_version").or_else(|| meta_str(r, "version"));

    if existing.is_none() {
        let mut trace = Map::new();
        trace.insert("id".into(), json!(trace_id));
        trace.insert("timestamp".into(), json!(start));
        trace.insert("name".into(), json!(trace_name));
        if let Some(user) = user {
            trace.insert("userId".into(), json!(user));
        }
        if let Some(session) = session {
            trace.insert("sessionId".into(), json!(session));
        }
        if let Some(v) = version {
            trace.insert("version".into(), json!(v));
        }
        if let Some(release) = meta_str(r, "trace_release") {
            trace.insert("release".into(), json!(release));
        }
        let mut trace_metadata = metadata.clone();
        if let (Some(Value::Object(extra)), Value::Object(m)) = (
            r.request_metadata
                .as_deref()
                .and_then(|m| m.get("trace_metadata")),
            &mut trace_metadata,
        ) {
            for (k, v) in extra.iter().filter(|(k, _)| !secret_like(k)) {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        trace.insert("metadata".into(), trace_metadata);
        if !r.tags.is_empty() {
            trace.insert("tags".into(), json!(r.tags));
        }
        if let Some(input) = &r.prompt {
            trace.insert("input".into(), (**input).clone());
        }
        if let Some(output) = &r.completion {
            trace.insert("output".into(), (**output).clone());
        }
        if let Some(env) = environment {
            trace.insert("environment".into(), json!(env));
        }
        out.push(json!({
            "id": format!("{request_id}-trace-create"),
            "type": "trace-create",
            "timestamp": start,
            "body": trace,
        }));
    }

    let mut generation = Map::new();
    generation.insert("id".into(), json!(generation_id));
    generation.insert("traceId".into(), json!(trace_id));
    generation.insert("name".into(), json!(generation_name));
    if let Some(parent) = meta_str(r, "parent_observation_id") {
        generation.insert("parentObservationId".into(), json!(parent));
    }
    generation.insert("startTime".into(), json!(start));
    generation.insert("endTime".into(), json!(end));
    if let Some(ttft) = r.ttft_us {
        let first = start_ms.saturating_add(ttft / 1000);
        generation.insert("completionStartTime".into(), json!(rfc3339_ms(first)));
    }
    generation.insert(
        "model".into(),
        json!(r.provider_model.as_deref().unwrap_or(&r.model_group)),
    );
    if let Some(input) = &r.prompt {
        generation.insert("input".into(), (**input).clone());
    }
    if let Some(output) = &r.completion {
        generation.insert("output".into(), (**output).clone());
    }
    generation.insert("usageDetails".into(), usage_details(r));
    if let Some(nano) = r.cost_nano_usd {
        generation.insert("costDetails".into(), json!({ "total": nano as f64 / 1e9 }));
    }
    let failed = r.error_kind.is_some() || r.status >= 400;
    if failed {
        generation.insert("level".into(), json!("ERROR"));
        let kind = r.error_kind.map_or("error", |k| k.as_str());
        generation.insert(
            "statusMessage".into(),
            json!(format!("{kind} (HTTP {})", r.status)),
        );
    } else {
        generation.insert("level".into(), json!("DEFAULT"));
    }
    if let Some(v) = version {
        generation.insert("version".into(), json!(v));
    }
    let mut generation_metadata = metadata;
    if let (Some(request), Value::Object(m)) =
        (r.request_metadata.as_deref(), &mut generation_metadata)
    {
        for (k, v) in request {
            if STEERING_KEYS.contains(&k.as_str()) || secret_like(k) {
                continue;
            }
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    generation.insert("metadata".into(), generation_metadata);
    if let Some(env) = environment {
        generation.insert("environment".into(), json!(env));
    }
    out.push(json!({
        "id": format!("{request_id}-generation-create"),
        "type": "generation-create",
        "timestamp": end,
        "body": generation,
    }));
}

/// Token counts by usage type. Langfuse adds up every type whose name contains `input`
/// (or `output`), so cached and reasoning tokens are split out of, not added to, the plain
/// counts; `total` is given explicitly.
fn usage_details(r: &CallRecord) -> Value {
    let cached = r.cached_tokens.min(r.prompt_tokens);
    let reasoning = r.reasoning_tokens.min(r.completion_tokens);
    let mut u = Map::new();
    u.insert("input".into(), json!(r.prompt_tokens - cached));
    u.insert("output".into(), json!(r.completion_tokens - reasoning));
    if cached > 0 {
        u.insert("input_cached_tokens".into(), json!(cached));
    }
    if reasoning > 0 {
        u.insert("output_reasoning_tokens".into(), json!(reasoning));
    }
    u.insert(
        "total".into(),
        json!(r.prompt_tokens.saturating_add(r.completion_tokens)),
    );
    Value::Object(u)
}

fn metadata(r: &CallRecord) -> Value {
    let mut m = Map::new();
    m.insert("request_id".into(), json!(r.request_id));
    m.insert("model_group".into(), json!(r.model_group));
    let optional = [
        ("deployment", &r.deployment),
        ("provider", &r.provider),
        ("provider_model", &r.provider_model),
        ("key", &r.key),
        ("key_alias", &r.key_alias),
        ("team", &r.team),
        ("fallback", &r.fallback),
        ("finish_reason", &r.finish_reason),
        ("trace_id", &r.trace_id),
        ("session_id", &r.session_id),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    m.insert("operation".into(), json!(r.operation));
    m.insert("status".into(), json!(r.status));
    if let Some(k) = r.error_kind {
        m.insert("error_kind".into(), json!(k.as_str()));
    }
    m.insert("attempts".into(), json!(r.attempts));
    m.insert("cache_hit".into(), json!(r.cache_hit));
    if r.usage_estimated {
        m.insert("usage_estimated".into(), json!(true));
    }
    if !r.tags.is_empty() {
        m.insert("tags".into(), json!(r.tags));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn config_from_env() {
        assert_eq!(LangfuseConfig::from_env_with(&env_of(&[])), Ok(None));
        let c = LangfuseConfig::from_env_with(&env_of(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-very-secret"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.host, DEFAULT_HOST);
        assert_eq!(c.secret_key.expose(), "sk-lf-very-secret");
        assert!(!format!("{c:?}").contains("very-secret"));
        assert_eq!(
            LangfuseConfig::from_env_with(&env_of(&[("LANGFUSE_PUBLIC_KEY", "pk")])),
            Err(ConfigError::Incomplete {
                present: "LANGFUSE_PUBLIC_KEY".into(),
                missing: "LANGFUSE_SECRET_KEY".into()
            })
        );
        assert!(matches!(
            LangfuseConfig::from_env_with(&env_of(&[
                ("LANGFUSE_PUBLIC_KEY", "pk"),
                ("LANGFUSE_SECRET_KEY", "sk"),
                ("LANGFUSE_HOST", "langfuse.internal"),
            ])),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn usage_splits_cached_and_reasoning_tokens() {
        let r = CallRecord {
            prompt_tokens: 100,
            cached_tokens: 40,
            completion_tokens: 30,
            reasoning_tokens: 10,
            ..CallRecord::default()
        };
        assert_eq!(
            usage_details(&r),
            json!({"input": 60, "input_cached_tokens": 40, "output": 20,
                   "output_reasoning_tokens": 10, "total": 130})
        );
    }

    fn events_of(r: &CallRecord) -> (Option<Value>, Value) {
        let mut out = Vec::new();
        push_events(r, Some("prod"), &mut out);
        let trace = out
            .iter()
            .find(|e| e["type"] == "trace-create")
            .map(|e| e["body"].clone());
        let generation = out
            .iter()
            .find(|e| e["type"] == "generation-create")
            .map(|e| e["body"].clone())
            .expect("a generation");
        (trace, generation)
    }

    #[test]
    fn request_metadata_steers_the_trace_and_generation() {
        let metadata: llmux_core::JsonObject = serde_json::from_value(json!({
            "trace_id": "my-trace",
            "trace_name": "checkout",
            "generation_name": "summarise",
            "session_id": "sess-1",
            "trace_user_id": "alice",
            "trace_version": "v2",
            "trace_release": "r7",
            "trace_metadata": {"flow": "b", "token": "t"},
            "tags": ["x"],
            "experiment": "e1",
            "x-api-key": "should never be here, but is dropped anyway"
        }))
        .unwrap();
        let r = CallRecord {
            request_id: "req-1".into(),
            operation: "chat".into(),
            model_group: "g".into(),
            provider_model: Some("gpt-x".into()),
            end_user: Some("bob".into()),
            status: 200,
            tags: vec!["x".into()],
            session_id: Some("sess-1".into()),
            request_metadata: Some(Arc::new(metadata)),
            prompt: Some(Arc::new(json!([{"role": "user", "content": "hi"}]))),
            completion: Some(Arc::new(json!({"role": "assistant", "content": "yo"}))),
            ..CallRecord::default()
        };
        let (trace, generation) = events_of(&r);
        let trace = trace.expect("a trace");
        assert_eq!(trace["id"], "my-trace");
        assert_eq!(trace["name"], "checkout");
        assert_eq!(trace["sessionId"], "sess-1");
        assert_eq!(
            trace["userId"], "alice",
            "trace_user_id wins over the end user"
        );
        assert_eq!(
            (&trace["version"], &trace["release"]),
            (&json!("v2"), &json!("r7"))
        );
        assert_eq!(trace["tags"], json!(["x"]));
        assert_eq!(trace["metadata"]["flow"], "b");
        assert!(trace["metadata"].get("token").is_none());
        assert_eq!(trace["input"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(trace["output"]["content"], "yo");
        assert_eq!(generation["traceId"], "my-trace");
        assert_eq!(generation["id"], "req-1-generation");
        assert_eq!(generation["name"], "summarise");
        assert_eq!(generation["input"], trace["input"]);
        assert_eq!(generation["output"], trace["output"]);
        assert_eq!(generation["metadata"]["experiment"], "e1");
        assert_eq!(generation["metadata"]["session_id"], "sess-1");
        for steering in [
            "trace_name",
            "generation_name",
            "trace_metadata",
            "trace_user_id",
        ] {
            assert!(generation["metadata"].get(steering).is_none(), "{steering}");
        }
        assert!(generation["metadata"].get("x-api-key").is_none());

        // An existing trace is added to, not created.
        let mut m = llmux_core::JsonObject::new();
        m.insert("existing_trace_id".into(), json!("old-trace"));
        let r = CallRecord {
            request_id: "req-2".into(),
            request_metadata: Some(Arc::new(m)),
            ..CallRecord::default()
        };
        let (trace, generation) = events_of(&r);
        assert!(trace.is_none());
        assert_eq!(generation["traceId"], "old-trace");
        assert!(generation.get("input").is_none() && generation.get("output").is_none());
    }
}
