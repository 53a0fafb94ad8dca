//! Pure translation between the canonical types and OpenAI's wire format. No I/O.
//!
//! The canonical types already are OpenAI's shapes, so encoding is mostly choosing the
//! deployment's model and the stream flags; decoding is parsing plus mapping OpenAI's error
//! bodies onto the taxonomy. OpenAI-compatible providers reuse these functions.

use std::time::Duration;

use llmux_core::sse::SseEvent;
use llmux_core::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Error, ErrorBody,
    ErrorKind, ModelList, Origin, StreamOptions, Usage,
};
use serde_json::Value;

/// The body of a non-streamed chat call: the client's request with the deployment's model,
/// streaming switched off. Unknown fields pass through.
pub fn encode_chat(mut req: ChatRequest, model: &str) -> Result<Vec<u8>, Error> {
    model.clone_into(&mut req.model);
    req.stream = None;
    req.stream_options = None;
    to_json(&req)
}

/// The body of a streamed chat call. Usage is always requested (`include_usage`), whatever
/// the client asked: the gateway meters every call.
pub fn encode_chat_stream(mut req: ChatRequest, model: &str) -> Result<Vec<u8>, Error> {
    model.clone_into(&mut req.model);
    req.stream = Some(true);
    req.stream_options
        .get_or_insert_with(StreamOptions::default)
        .include_usage = Some(true);
    to_json(&req)
}

/// Fields other providers' clients send (Anthropic's Messages API through `/v1/messages`,
/// replayed thinking) that OpenAI's own API rejects as unrecognized. Removed for strict
/// OpenAI upstreams (OpenAI, Azure OpenAI); OpenAI-compatible servers that understand some of
/// them (OpenRouter reads `cache_control`) keep them.
pub const FOREIGN_REQUEST_FIELDS: &[&str] = &["thinking", "top_k"];
/// Message-level fields removed for strict OpenAI upstreams (see [`drop_foreign_fields`]).
pub const FOREIGN_MESSAGE_FIELDS: &[&str] =
    &["thinking_blocks", "cache_control", "is_error", "citations"];

/// Remove what OpenAI's API would refuse from a request that came in another format:
/// top-level [`FOREIGN_REQUEST_FIELDS`], message-level [`FOREIGN_MESSAGE_FIELDS`] and the
/// replayed `reasoning_content`, and `cache_control`/`citations` on content parts.
pub fn drop_foreign_fields(req: &mut ChatRequest) {
    for k in FOREIGN_REQUEST_FIELDS {
        req.extra.remove(*k);
    }
    for m in &mut req.messages {
        for k in FOREIGN_MESSAGE_FIELDS {
            m.extra.remove(*k);
        }
        m.reasoning_content = None;
        if let Some(llmux_core::MessageContent::Parts(parts)) = &mut m.content {
            for p in parts {
                use llmux_core::ContentPart as P;
                let extra = match p {
                    P::Text { extra, .. }
                    | P::ImageUrl { extra, .. }
                    | P::InputAudio { extra, .. }
                    | P::File { extra, .. } => extra,
                    _ => continue,
                };
                extra.remove("cache_control");
                extra.remove("citations");
            }
        }
    }
}

/// The body of an embeddings call.
pub fn encode_embeddings(mut req: EmbeddingRequest, model: &str) -> Result<Vec<u8>, Error> {
    model.clone_into(&mut req.model);
    to_json(&req)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v)
        .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))
}

fn invalid_body(provider: &'static str, what: &str, e: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{provider}: the upstream sent an invalid {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(provider)
}

/// Parse a chat completion.
pub fn decode_chat(provider: &'static str, body: &[u8]) -> Result<ChatResponse, Error> {
    serde_json::from_slice(body).map_err(|e| invalid_body(provider, "chat completion", &e))
}

/// Parse one SSE `data:` payload of a chat stream; `None` for the closing `[DONE]`.
pub fn decode_chunk(provider: &'static str, data: &str) -> Result<Option<ChatChunk>, Error> {
    if data == "[DONE]" {
        return Ok(None);
    }
    // Some compatible servers report a failure inside the stream as an error object.
    if data.starts_with("{\"error\"")
        && let Ok(body) = serde_json::from_str::<ErrorBody>(data)
    {
        return Err(error_from_body(provider, 500, &body, None, &[]));
    }
    serde_json::from_str(data)
        .map(Some)
        .map_err(|e| invalid_body(provider, "stream chunk", &e))
}

/// Parse an embeddings response.
pub fn decode_embeddings(provider: &'static str, body: &[u8]) -> Result<EmbeddingResponse, Error> {
    serde_json::from_slice(body).map_err(|e| invalid_body(provider, "embeddings response", &e))
}

/// Parse a model list.
pub fn decode_models(provider: &'static str, body: &[u8]) -> Result<ModelList, Error> {
    serde_json::from_slice(body).map_err(|e| invalid_body(provider, "model list", &e))
}

/// Map a non-2xx OpenAI response to the taxonomy. `secrets` are redacted from the message.
pub fn decode_error(
    provider: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => error_from_body(provider, status, &b, retry_after, secrets),
        Err(_) => {
            let mut e = Error::from_upstream_status(
                status,
                format!("{provider}: the upstream answered HTTP {status}"),
            )
            .with_provider(provider);
            if let Some(r) = retry_after {
                e = e.with_retry_after(r);
            }
            e
        }
    }
}

fn error_from_body(
    provider: &'static str,
    status: u16,
    body: &ErrorBody,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let d = &body.error;
    let code = d.code.as_deref().unwrap_or("");
    let kind = match (code, d.kind.as_str()) {
        ("context_length_exceeded", _) | ("string_above_max_length", _) => {
            ErrorKind::ContextWindowExceeded
        }
        ("content_policy_violation" | "content_filter", _) => ErrorKind::ContentPolicy,
        (_, "content_policy_violation") => ErrorKind::ContentPolicy,
        ("model_not_found", _) => ErrorKind::NotFound,
        ("rate_limit_exceeded" | "insufficient_quota", _) => ErrorKind::RateLimited,
        _ => ErrorKind::from_upstream_status(status),
    };
    let message = llmux_http::redact(&d.message, secrets);
    let mut e = Error::new(kind, format!("{provider}: {message}"))
        .with_origin(Origin::Upstream)
        .with_provider(provider)
        .with_upstream_status(status);
    if !code.is_empty() {
        e = e.with_code(code.to_owned());
    }
    if let Some(p) = &d.param {
        e = e.with_param(p.clone());
    }
    if let Some(r) = retry_after {
        e = e.with_retry_after(r);
    }
    e
}

/// The usage of a Responses API Response object (`usage.input_tokens`,
/// `input_tokens_details.cached_tokens`, `output_tokens`,
/// `output_tokens_details.reasoning_tokens`) in canonical names; `None` without usage.
pub fn responses_usage(response: &Value) -> Option<Usage> {
    let u = response.get("usage").filter(|u| u.is_object())?;
    let n = |v: Option<&Value>| v.and_then(Value::as_u64);
    let input = n(u.get("input_tokens")).unwrap_or(0);
    let output = n(u.get("output_tokens")).unwrap_or(0);
    let mut usage = Usage::new(input, output);
    if let Some(t) = n(u.get("total_tokens")) {
        usage.total_tokens = t;
    }
    if let Some(c) = n(u.pointer("/input_tokens_details/cached_tokens")) {
        usage.prompt_tokens_details = Some(llmux_core::PromptTokensDetails {
            cached_tokens: Some(c),
            ..Default::default()
        });
    }
    if let Some(r) = n(u.pointer("/output_tokens_details/reasoning_tokens")) {
        usage.completion_tokens_details = Some(llmux_core::CompletionTokensDetails {
            reasoning_tokens: Some(r),
            ..Default::default()
        });
    }
    Some(usage)
}

/// The model a Responses API Response object names.
pub fn responses_model(response: &Value) -> Option<String> {
    response
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
}

/// The Responses stream events that carry the final Response object (and its usage).
const FINAL_RESPONSE_EVENTS: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// The usage and model a Responses stream event reports: those of the Response object in
/// `response.completed` (or `response.incomplete` / `response.failed`); nothing for other
/// events, which are not parsed.
pub fn responses_event_usage(event: &SseEvent) -> (Option<Usage>, Option<String>) {
    let named_final = event
        .event
        .as_deref()
        .is_some_and(|e| FINAL_RESPONSE_EVENTS.contains(&e));
    // Without an `event:` line the type is only in the data.
    let maybe_final = named_final
        || (event.event.is_none() && FINAL_RESPONSE_EVENTS.iter().any(|t| event.data.contains(t)));
    if !maybe_final {
        return (None, None);
    }
    let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
        return (None, None);
    };
    let is_final = v
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| FINAL_RESPONSE_EVENTS.contains(&t));
    match v.get("response").filter(|_| is_final) {
        Some(r) => (responses_usage(r), responses_model(r)),
        None => (None, None),
    }
}
