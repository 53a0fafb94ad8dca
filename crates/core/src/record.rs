//! The call record: one per call, plain or streamed, success or failure, produced at the
//! gateway's single metering point and handed to sinks (spend log, metrics, traces) — and
//! the rarer [`BudgetAlert`], raised when a spend crosses a soft budget and handed to the
//! same sinks.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ErrorKind, JsonObject};

/// Everything known about one finished call. Money is integer nano-USD (never a float).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The gateway request id.
    pub request_id: String,
    /// Unix milliseconds when the call arrived.
    pub started_at_ms: u64,
    /// `chat`, `chat_stream` or `embeddings`.
    pub operation: String,
    /// The virtual key's id, when keys are in use.
    pub key: Option<String>,
    /// The virtual key's alias, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_alias: Option<String>,
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
    /// The session the caller grouped the call under (`metadata.session_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The request's `metadata` object as the caller sent it, minus anything that looks
    /// like a credential (keys such as `api_key`, `token`, `password`; `sk-…` and
    /// `Bearer …` values). Shared, so cloning a record stays cheap.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_json")]
    pub request_metadata: Option<Arc<JsonObject>>,
    /// What the caller sent (chat messages, or embedding input) — set only when the
    /// gateway's `log_prompts` setting is on. Never written to the spend log.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_json")]
    pub prompt: Option<Arc<serde_json::Value>>,
    /// What the model answered (the first choice's message, or every choice's when there
    /// were several) — set only when `log_prompts` is on. Never written to the spend log.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_json")]
    pub completion: Option<Arc<serde_json::Value>>,
}

impl CallRecord {
    /// The record without its prompt and completion (for sinks that must never keep them,
    /// such as the spend log). Borrows when there is nothing to remove.
    pub fn without_content(self: &Arc<Self>) -> Arc<Self> {
        if self.prompt.is_none() && self.completion.is_none() {
            return Arc::clone(self);
        }
        let mut r = (**self).clone();
        r.prompt = None;
        r.completion = None;
        Arc::new(r)
    }
}

/// `Option<Arc<T>>` as `Option<T>` in JSON (serde's `rc` feature is not enabled).
mod shared_json {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Arc<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<T>>, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map(Arc::new))
    }
}

/// Whose budget a [`BudgetAlert`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// A virtual key.
    Key,
    /// A team.
    Team,
    /// A user.
    User,
}

impl BudgetScope {
    /// The scope as a fixed word (`key`, `team`, `user`), fit for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::User => "user",
        }
    }
}

/// A spend crossed its soft budget: raised once per crossing, when the call that crossed it
/// settles. Serializes as `{"type":"budget_alert","scope":"key","id":…,…}`. Money is
/// integer nano-USD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "budget_alert")]
pub struct BudgetAlert {
    /// Whose budget.
    pub scope: BudgetScope,
    /// The key id, team id or user id (never a key's secret).
    pub id: String,
    /// The spend in the current budget period, this call included.
    pub spend_nano: i64,
    /// The soft budget that was crossed.
    pub soft_budget_nano: i64,
    /// The hard budget of the same scope, when one is set.
    pub max_budget_nano: Option<i64>,
    /// Unix milliseconds when the crossing was seen.
    pub at_ms: u64,
}

/// Somewhere call records go (spend log, metrics, OpenTelemetry, Langfuse, a callback).
/// Sinks run off the request path; a slow sink never delays or fails a call.
#[async_trait]
pub trait CallSink: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics.
    fn name(&self) -> &str;

    /// Take one record. Must not panic; errors are the sink's to report.
    async fn record(&self, record: Arc<CallRecord>);

    /// Take one budget alert. Alerts are rare; a sink that has nothing to do with them
    /// keeps this default, which ignores them. Must not panic.
    async fn alert(&self, alert: Arc<BudgetAlert>) {
        let _ = alert;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_alert_serializes_with_its_type_tag_and_round_trips() {
        let alert = BudgetAlert {
            scope: BudgetScope::Team,
            id: "team-a".into(),
            spend_nano: 1_200,
            soft_budget_nano: 1_000,
            max_budget_nano: None,
            at_ms: 42,
        };
        let v = serde_json::to_value(&alert).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "budget_alert", "scope": "team", "id": "team-a", "spend_nano": 1200,
                "soft_budget_nano": 1000, "max_budget_nano": null, "at_ms": 42
            })
        );
        let back: BudgetAlert = serde_json::from_value(v).unwrap();
        assert_eq!(back, alert);
        assert_eq!(BudgetScope::User.as_str(), "user");
    }

    #[test]
    fn content_is_optional_shared_and_removable() {
        // Without the new fields a record serializes as before (nothing added).
        let plain = CallRecord::default();
        let v = serde_json::to_value(&plain).unwrap();
        for k in ["session_id", "request_metadata", "prompt", "completion"] {
            assert!(v.get(k).is_none(), "{k} is skipped when unset");
        }
        let mut meta = JsonObject::new();
        meta.insert("trace_name".into(), "t".into());
        let full = Arc::new(CallRecord {
            session_id: Some("s".into()),
            request_metadata: Some(Arc::new(meta)),
            prompt: Some(Arc::new(
                serde_json::json!([{"role": "user", "content": "hi"}]),
            )),
            completion: Some(Arc::new(serde_json::json!({"content": "yo"}))),
            ..CallRecord::default()
        });
        let text = serde_json::to_string(&*full).unwrap();
        let back: CallRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, *full);
        // Cloning shares the content instead of copying it.
        let copy = (*full).clone();
        assert!(Arc::ptr_eq(
            copy.prompt.as_ref().unwrap(),
            full.prompt.as_ref().unwrap()
        ));
        let stripped = full.without_content();
        assert!(stripped.prompt.is_none() && stripped.completion.is_none());
        assert_eq!(stripped.session_id.as_deref(), Some("s"));
        let again = stripped.without_content();
        assert!(Arc::ptr_eq(&again, &stripped), "nothing to remove: no copy");
    }
}
