//! The call record: one per call, plain or streamed, success or failure, produced at the
//! gateway's single metering point and handed to sinks (spend log, metrics, traces).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ErrorKind;

/// Everything known about one finished call. Money is integer nano-USD (never a float).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The gateway request id.
    pub request_id: String,
    /// Unix milliseconds when the call arrived.
    pub started_at_ms: u64,
    /// `chat`, `chat_stream` or `embeddings`.
    pub operation: String,
    /// Virtual key (hash prefix or alias), when keys are in use.
    pub key: Option<String>,
    /// Team of the key.
    pub team: Option<String>,
    /// User of the key.
    pub user: Option<String>,
    /// The request's `user` field.
    pub end_user: Option<String>,
    /// The model name the client asked for.
    pub model_group: String,
    /// The deployment that answered (or was last tried).
    pub deployment: Option<String>,
    /// Provider that answered.
    pub provider: Option<String>,
    /// The provider model that answered (as the upstream reported it when it did).
    pub provider_model: Option<String>,
    /// Input tokens (cached included).
    pub prompt_tokens: u64,
    /// Output tokens (reasoning included).
    pub completion_tokens: u64,
    /// Input tokens read from a prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to a prompt cache.
    pub cache_creation_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// True when the upstream reported no usage and tokens were estimated.
    pub usage_estimated: bool,
    /// Cost in nano-USD; `None` when the model has no known price.
    pub cost_nano_usd: Option<i64>,
    /// Wall time from arrival to the last byte, in microseconds.
    pub latency_us: u64,
    /// Time to the first streamed chunk, in microseconds (streams only).
    pub ttft_us: Option<u64>,
    /// HTTP status the client got (499 when the client went away first).
    pub status: u16,
    /// The error kind, for failed calls.
    pub error_kind: Option<ErrorKind>,
    /// Served from the response cache.
    pub cache_hit: bool,
    /// Attribution tags.
    pub tags: Vec<String>,
    /// Attempts made (1 = first try answered).
    pub attempts: u32,
    /// The fallback model group that answered, if any.
    pub fallback: Option<String>,
    /// Times a broken stream was continued on another deployment.
    pub stream_resumptions: u32,
    /// W3C trace id (32 hex) continued from the client's `traceparent`, or new.
    pub trace_id: Option<String>,
    /// The client's span id (16 hex) from `traceparent`, the parent of this call's span.
    pub parent_span_id: Option<String>,
    /// Why the call stopped (`stop`, `length`, `tool_calls`, …), when known.
    pub finish_reason: Option<String>,
}

/// Somewhere call records go (spend log, metrics, OpenTelemetry, Langfuse, a callback).
/// Sinks run off the request path; a slow sink never delays or fails a call.
#[async_trait]
pub trait CallSink: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics.
    fn name(&self) -> &str;

    /// Take one record. Must not panic; errors are the sink's to report.
    async fn record(&self, record: Arc<CallRecord>);
}
