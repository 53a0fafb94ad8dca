//! The metering point: what a call looked like when it arrived ([`CallMeta`]), how it
//! ended ([`Outcome`]), and turning the two into exactly one priced `CallRecord` handed to
//! the [`Meter`]'s sinks.
//!
//! Must not: know where the call came from (HTTP or a library call) or do I/O; access
//! control is someone else's, seen here only as a [`CallTicket`] told what the call used.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llmux_core::{CallRecord, ErrorKind, JsonObject, Usage};
use llmux_cost::{CallUsage, Meter, Money};
use llmux_router::Trace;
use serde_json::Value;

use crate::models::ModelTable;

/// An admitted call's hold on shared limits (rate, in-flight, budget counters), kept in
/// its [`CallMeta`]: told what the call used when it is metered, and settled when the call
/// ends. The gateway's virtual keys implement it; the SDK has none.
pub trait CallTicket: Send + Sync + std::fmt::Debug {
    /// What the call used, as metered (tokens in and out, cost in nano-USD when priced).
    fn record(&self, tokens: u64, cost_nano_usd: Option<i64>);
    /// Count what was used and release what was held.
    fn settle(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// What is known when a call arrives.
#[derive(Debug)]
pub struct CallMeta {
    /// When the call arrived (latency and time to first chunk are measured from here).
    pub started: Instant,
    /// The same instant as Unix milliseconds (the record's `started_at_ms`).
    pub started_at_ms: u64,
    /// The call's id (`x-request-id`, or one made up).
    pub request_id: String,
    /// `chat`, `chat_stream`, `embeddings`, …
    pub operation: &'static str,
    /// The model name asked for.
    pub model_group: String,
    /// The end user the caller named (`user` in the request).
    pub end_user: Option<String>,
    /// The caller's W3C trace id, when it sent one.
    pub trace_id: Option<String>,
    /// The caller's span, parent of the call's span.
    pub parent_span_id: Option<String>,
    /// Attribution tags (see [`tags`]).
    pub tags: Vec<String>,
    /// The virtual key's id (set by the gateway's access phase).
    pub key: Option<String>,
    /// The virtual key's alias.
    pub key_alias: Option<String>,
    /// The key's team.
    pub team: Option<String>,
    /// The key's user.
    pub user: Option<String>,
    /// The session the caller named (`metadata.session_id`).
    pub session_id: Option<String>,
    /// The request's `metadata`, credentials removed (see [`request_metadata`]).
    pub request_metadata: Option<Arc<JsonObject>>,
    /// What the caller sent, kept only when the models' `log_prompts` is on.
    pub prompt: Option<Arc<Value>>,
    /// The admitted call's counters, settled when it ends.
    pub ticket: Option<Box<dyn CallTicket>>,
}

/// How a call ended.
#[derive(Debug, Default)]
pub struct Outcome<'a> {
    /// What the router did (`None` when the call failed before routing).
    pub trace: Option<&'a Trace>,
    /// The model the upstream says answered.
    pub provider_model: Option<&'a str>,
    /// Token counts (reported, or estimated when `usage_estimated`).
    pub usage: Option<&'a Usage>,
    /// The usage is an estimate (the upstream reported none).
    pub usage_estimated: bool,
    /// An embeddings call (priced per input token only).
    pub embedding: bool,
    /// HTTP-style status: 200, the error kind's status, or 499 when the caller went away.
    pub status: u16,
    /// Why it failed.
    pub error_kind: Option<ErrorKind>,
    /// Time to the first streamed chunk, in microseconds.
    pub ttft_us: Option<u64>,
    /// The first choice's finish reason.
    pub finish_reason: Option<&'a str>,
    /// Already computed (streams price the usage chunk as it passes).
    pub cost: Option<Option<Money>>,
    /// What the model answered, kept only when the models' `log_prompts` is on.
    pub completion: Option<Arc<Value>>,
    /// What the caller sent, when [`CallMeta::prompt`] does not have it (embeddings).
    pub prompt: Option<Arc<Value>>,
}

impl CallMeta {
    /// A call that arrives now.
    pub fn new(request_id: String, operation: &'static str) -> Self {
        Self {
            started: Instant::now(),
            started_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            request_id,
            operation,
            model_group: String::new(),
            end_user: None,
            trace_id: None,
            parent_span_id: None,
            tags: Vec::new(),
            key: None,
            key_alias: None,
            team: None,
            user: None,
            session_id: None,
            request_metadata: None,
            prompt: None,
            ticket: None,
        }
    }

    /// Build, price and emit the record (exactly once per call); returns the cost.
    /// `models` prices the usage unless `o.cost` already says what it cost.
    pub fn finish(&self, models: &ModelTable, meter: &Meter, o: Outcome<'_>) -> Option<Money> {
        let cost = match o.cost {
            Some(c) => c,
            None => price(models, o.trace, o.usage, o.embedding),
        };
        if let Some(t) = &self.ticket {
            let tokens = o
                .usage
                .map_or(0, |u| u.prompt_tokens.saturating_add(u.completion_tokens));
            t.record(tokens, cost.map(Money::nano_usd));
        }
        if !meter.has_sinks() {
            meter.count_unbuilt();
            return cost;
        }
        let t = o.trace;
        let u = o.usage;
        let details = |f: fn(&Usage) -> u64| u.map_or(0, f);
        let record = CallRecord {
            request_id: self.request_id.clone(),
            started_at_ms: self.started_at_ms,
            operation: self.operation.to_owned(),
            end_user: self.end_user.clone(),
            model_group: self.model_group.clone(),
            deployment: t.and_then(|t| t.deployment_id.clone()),
            provider: t.and_then(|t| t.provider).map(str::to_owned),
            provider_model: o
                .provider_model
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .or_else(|| t.and_then(|t| t.provider_model.clone())),
            prompt_tokens: details(|u| u.prompt_tokens),
            completion_tokens: details(|u| u.completion_tokens),
            cached_tokens: details(Usage::cached_tokens),
            cache_creation_tokens: details(|u| {
                u.extra
                    .get("cache_creation_input_tokens")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
            }),
            reasoning_tokens: details(Usage::reasoning_tokens),
            usage_estimated: o.usage_estimated,
            cost_nano_usd: cost.map(Money::nano_usd),
            latency_us: self.started.elapsed().as_micros() as u64,
            ttft_us: o.ttft_us,
            status: o.status,
            error_kind: o.error_kind,
            attempts: t.map_or(0, |t| t.attempts),
            fallback: t
                .filter(|t| t.fallback_used())
                .and_then(|t| t.final_model_group.clone()),
            stream_resumptions: t.map_or(0, |t| t.resumptions),
            tags: {
                // The request's tags, then the key's (merged at admission), then the
                // model group's.
                let mut tags = self.tags.clone();
                llmux_core::tags::merge_tags(&mut tags, models.group_tags(&self.model_group));
                tags
            },
            trace_id: self.trace_id.clone(),
            parent_span_id: self.parent_span_id.clone(),
            finish_reason: o.finish_reason.map(str::to_owned),
            key: self.key.clone(),
            key_alias: self.key_alias.clone(),
            team: self.team.clone(),
            user: self.user.clone(),
            session_id: self.session_id.clone(),
            request_metadata: self.request_metadata.clone(),
            // Belt and braces: content only ever leaves when the table says so.
            prompt: o
                .prompt
                .or_else(|| self.prompt.clone())
                .filter(|_| models.log_prompts()),
            completion: o.completion.filter(|_| models.log_prompts()),
            ..CallRecord::default()
        };
        meter.emit(record);
        cost
    }
}

/// The cost of `usage` on the deployment the trace names (`None` when either is unknown).
pub fn price(
    models: &ModelTable,
    trace: Option<&Trace>,
    usage: Option<&Usage>,
    embedding: bool,
) -> Option<Money> {
    let t = trace?;
    let price = models.price(
        t.deployment_id.as_deref(),
        t.provider?,
        t.provider_model.as_deref()?,
    )?;
    let mut cu = CallUsage::from(usage?);
    cu.is_embedding = embedding;
    Some(price.cost(&cu).total)
}

/// One token per four characters: the estimate used when an upstream reports no usage.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

pub use llmux_core::tags::{MAX_TAG_LEN, MAX_TAGS};

/// Most top-level keys of a request's `metadata` kept in its record.
pub const MAX_METADATA_KEYS: usize = 64;
/// Most bytes of a request's `metadata` (as JSON) kept in its record; a larger object keeps
/// only its string, number and boolean members, up to this size.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Whether a metadata key names a credential (`api_key`, `x-api-key`, `secret`,
/// `access_token`, `password`, `authorization`, `cookie`, …): such members are never kept.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    k == "key"
        || k.ends_with("_key")
        || k.starts_with("key_")
        || k.contains("apikey")
        || [
            "api_key",
            "access_key",
            "secret",
            "token",
            "password",
            "passwd",
            "authorization",
            "credential",
            "cookie",
            "private_key",
            "bearer",
        ]
        .iter()
        .any(|w| k.contains(w))
}

/// Whether a metadata string looks like a credential itself (`sk-…`, `Bearer …`, a PEM key).
fn is_secret_value(v: &str) -> bool {
    let t = v.trim_start();
    t.starts_with("sk-")
        || t.starts_with("sk_")
        || t.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
        || t.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic "))
        || t.starts_with("-----BEGIN")
}

fn scrub(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if is_secret_value(s) => None,
        Value::Object(m) => Some(Value::Object(scrub_object(m))),
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(scrub).collect())),
        other => Some(other.clone()),
    }
}

fn scrub_object(m: &JsonObject) -> JsonObject {
    m.iter()
        .filter(|(k, _)| !is_secret_key(k))
        .filter_map(|(k, v)| Some((k.clone(), scrub(v)?)))
        .collect()
}

/// A request's `metadata` as its record keeps it: members that look like credentials
/// removed (at every depth), at most [`MAX_METADATA_KEYS`] keys and
/// [`MAX_METADATA_BYTES`] bytes. `None` when nothing is left.
pub fn request_metadata(metadata: Option<&JsonObject>) -> Option<Arc<JsonObject>> {
    let m = metadata?;
    let mut kept: JsonObject = scrub_object(m)
        .into_iter()
        .take(MAX_METADATA_KEYS)
        .collect();
    let size = |m: &JsonObject| serde_json::to_string(m).map_or(usize::MAX, |s| s.len());
    if size(&kept) > MAX_METADATA_BYTES {
        // Too big: keep the scalars that fit.
        let mut small = JsonObject::new();
        let mut used = 2;
        for (k, v) in kept {
            if v.is_object() || v.is_array() {
                continue;
            }
            let n = k.len() + v.to_string().len() + 4;
            if used + n > MAX_METADATA_BYTES {
                break;
            }
            used += n;
            small.insert(k, v);
        }
        kept = small;
    }
    (!kept.is_empty()).then(|| Arc::new(kept))
}

/// The session a request's `metadata` names (`session_id`, a non-empty string).
pub fn session_id(metadata: Option<&JsonObject>) -> Option<String> {
    metadata?
        .get("session_id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 256 && !is_secret_value(s))
        .map(str::to_owned)
}

/// The call's attribution tags: `metadata.tags`, top-level `tags`, and the `x-llmux-tags`
/// header (comma-separated), de-duplicated in order. Bounded in count and length; a tag
/// that is not a non-empty string of printable characters is a 400.
pub fn tags(
    extra: &llmux_core::JsonObject,
    metadata: Option<&llmux_core::JsonObject>,
    header: Option<&str>,
) -> Result<Vec<String>, llmux_core::Error> {
    let mut out: Vec<String> = Vec::new();
    let bad = |why: String| llmux_core::Error::bad_request(why).with_param("tags");
    let mut push = |t: &str| -> Result<(), llmux_core::Error> {
        let t = t.trim();
        if let Some(why) = llmux_core::tags::tag_problem(t) {
            return Err(bad(why));
        }
        if !out.iter().any(|o| o == t) {
            if out.len() == MAX_TAGS {
                return Err(bad(format!("at most {MAX_TAGS} tags per call")));
            }
            out.push(t.to_owned());
        }
        Ok(())
    };
    for source in [metadata.and_then(|m| m.get("tags")), extra.get("tags")]
        .into_iter()
        .flatten()
    {
        let list = source
            .as_array()
            .ok_or_else(|| bad("'tags' must be an array of strings".into()))?;
        for t in list {
            push(
                t.as_str()
                    .ok_or_else(|| bad("'tags' must be an array of strings".into()))?,
            )?;
        }
    }
    if let Some(h) = header {
        for t in h.split(',').filter(|t| !t.trim().is_empty()) {
            push(t)?;
        }
    }
    Ok(out)
}
