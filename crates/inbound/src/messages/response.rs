//! Canonical response → Anthropic `message`; errors → Anthropic's error shape.

use llmux_core::{ChatResponse, Error, ErrorKind, FinishReason, ToolCall, Usage};
use serde_json::{Value, json};

/// Anthropic's `stop_reason` values llmux passes on as they are when a provider reports one
/// (others become `end_turn`).
const ANTHROPIC_STOP_REASONS: [&str; 6] = [
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
];

/// A message id in Anthropic's form: the upstream id when it already is one, else
/// `msg_` + the upstream id.
pub fn message_id(upstream_id: &str) -> String {
    if upstream_id.starts_with("msg_") {
        upstream_id.to_owned()
    } else {
        format!("msg_{upstream_id}")
    }
}

/// Anthropic's `stop_reason` for an answer: `tool_use` whenever it called tools (whatever
/// the upstream said), `stop_sequence` when a stop sequence matched, else the finish
/// reason's counterpart (`length` → `max_tokens`, `content_filter` → `refusal`).
pub fn stop_reason(
    finish: Option<&FinishReason>,
    called_tools: bool,
    stop_sequence: Option<&str>,
) -> &'static str {
    if called_tools {
        return "tool_use";
    }
    match finish {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ContentFilter) => "refusal",
        Some(FinishReason::Other(s)) => ANTHROPIC_STOP_REASONS
            .into_iter()
            .find(|r| r == s)
            .unwrap_or("end_turn"),
        _ if stop_sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Canonical usage in Anthropic's names. `input_tokens` excludes the cache reads and
/// writes (OpenAI's `prompt_tokens` includes them).
pub fn usage(u: Option<&Usage>) -> Value {
    let Some(u) = u else {
        return json!({"input_tokens": 0, "output_tokens": 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    };
    let read = u.cached_tokens();
    let created = u
        .extra
        .get("cache_creation_input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut out = json!({
        "input_tokens": u.prompt_tokens.saturating_sub(read).saturating_sub(created),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
    });
    if let Some(split @ Value::Object(_)) = u.extra.get("cache_creation") {
        out["cache_creation"] = split.clone();
    }
    out
}

/// A tool call as a `tool_use` block; arguments that are not a JSON object become `{}`.
pub(crate) fn tool_use_block(call: &ToolCall, index: usize) -> Value {
    let input = match serde_json::from_str::<Value>(&call.function.arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    };
    json!({"type": "tool_use", "id": tool_use_id(&call.id, index),
        "name": call.function.name, "input": input})
}

/// The call's id, or a made-up one when the provider sent none.
pub(crate) fn tool_use_id(id: &str, index: usize) -> String {
    if id.is_empty() {
        format!("toolu_llmux_{index}")
    } else {
        id.to_owned()
    }
}

/// The `message` object for a canonical answer, named `requested_model` (the client's
/// model name, as LiteLLM answers).
pub fn encode_response(resp: &ChatResponse, requested_model: &str) -> Value {
    let choice = resp.choices.first();
    let msg = choice.map(|c| &c.message);
    let mut content = Vec::new();
    if let Some(m) = msg {
        match m.extra.get("thinking_blocks") {
            Some(Value::Array(blocks)) if !blocks.is_empty() => {
                content.extend(blocks.iter().cloned());
            }
            _ => {
                if let Some(r) = m.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                    content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
                }
            }
        }
        if let Some(t) = m.content.as_deref().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": t}));
        }
        if let Some(r) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
            content.push(json!({"type": "text", "text": r}));
        }
        for (i, call) in m.tool_calls.iter().flatten().enumerate() {
            content.push(tool_use_block(call, i));
        }
    }
    let called_tools = msg.is_some_and(|m| m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()));
    let stop_sequence = resp.extra.get("stop_sequence").and_then(Value::as_str);
    let refused = msg.is_some_and(|m| m.refusal.as_deref().is_some_and(|r| !r.is_empty()));
    let finish = choice.and_then(|c| c.finish_reason.as_ref());
    let reason = if refused && !called_tools {
        "refusal"
    } else {
        stop_reason(finish, called_tools, stop_sequence)
    };
    json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": requested_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": if reason == "stop_sequence" { stop_sequence } else { None },
        "usage": usage(resp.usage.as_ref()),
    })
}

/// Anthropic's error `type` and HTTP status for an error kind (a billing refusal keeps
/// Anthropic's own 402 `billing_error`).
pub fn error_type(e: &Error) -> (u16, &'static str) {
    if e.code() == Some("billing_error") {
        return (402, "billing_error");
    }
    match e.kind() {
        ErrorKind::BadRequest | ErrorKind::ContextWindowExceeded | ErrorKind::ContentPolicy => {
            (400, "invalid_request_error")
        }
        ErrorKind::Auth => (401, "authentication_error"),
        ErrorKind::Permission => (403, "permission_error"),
        ErrorKind::NotFound => (404, "not_found_error"),
        ErrorKind::MethodNotAllowed => (405, "invalid_request_error"),
        ErrorKind::PayloadTooLarge => (413, "request_too_large"),
        ErrorKind::RateLimited => (429, "rate_limit_error"),
        ErrorKind::Internal | ErrorKind::UpstreamError => (500, "api_error"),
        ErrorKind::Timeout => (504, "timeout_error"),
        ErrorKind::UpstreamUnavailable => (529, "overloaded_error"),
    }
}

/// The HTTP status and Anthropic's body (`{"type":"error","error":{"type","message"}}`)
/// for an error.
pub fn error_body(e: &Error) -> (u16, Value) {
    let (status, kind) = error_type(e);
    (
        status,
        json!({"type": "error", "error": {"type": kind, "message": e.message()}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_anthropic_status_and_type() {
        let expected = [
            (ErrorKind::Auth, 401, "authentication_error"),
            (ErrorKind::Permission, 403, "permission_error"),
            (ErrorKind::NotFound, 404, "not_found_error"),
            (ErrorKind::BadRequest, 400, "invalid_request_error"),
            (
                ErrorKind::ContextWindowExceeded,
                400,
                "invalid_request_error",
            ),
            (ErrorKind::ContentPolicy, 400, "invalid_request_error"),
            (ErrorKind::RateLimited, 429, "rate_limit_error"),
            (ErrorKind::Timeout, 504, "timeout_error"),
            (ErrorKind::UpstreamUnavailable, 529, "overloaded_error"),
            (ErrorKind::UpstreamError, 500, "api_error"),
            (ErrorKind::Internal, 500, "api_error"),
            (ErrorKind::PayloadTooLarge, 413, "request_too_large"),
            (ErrorKind::MethodNotAllowed, 405, "invalid_request_error"),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for (kind, status, ty) in expected {
            let (s, body) = error_body(&Error::new(kind, "boom"));
            assert_eq!(
                (s, body["error"]["type"].as_str()),
                (status, Some(ty)),
                "{kind}"
            );
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["message"], "boom");
        }
        let billing = Error::new(ErrorKind::Permission, "pay").with_code("billing_error");
        assert_eq!(error_type(&billing), (402, "billing_error"));
    }

    #[test]
    fn stop_reasons() {
        use FinishReason::*;
        assert_eq!(stop_reason(Some(&Stop), true, None), "tool_use");
        assert_eq!(stop_reason(Some(&Stop), false, None), "end_turn");
        assert_eq!(
            stop_reason(Some(&Stop), false, Some("END")),
            "stop_sequence"
        );
        assert_eq!(stop_reason(Some(&Length), false, None), "max_tokens");
        assert_eq!(stop_reason(Some(&ContentFilter), false, None), "refusal");
        assert_eq!(stop_reason(Some(&ToolCalls), false, None), "end_turn");
        assert_eq!(
            stop_reason(Some(&Other("pause_turn".into())), false, None),
            "pause_turn"
        );
        assert_eq!(
            stop_reason(Some(&Other("weird".into())), false, None),
            "end_turn"
        );
        assert_eq!(stop_reason(None, false, None), "end_turn");
    }
}
