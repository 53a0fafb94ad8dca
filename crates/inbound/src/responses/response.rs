//! A canonical chat response → the Response object; the shapes of its output items.

use llmux_core::{ChatResponse, FinishReason, JsonObject, Message, MessageContent, Usage};
use serde_json::{Value, json};

use super::ResponseContext;

/// The Response object for a complete canonical answer (its first choice).
pub fn encode_response(resp: &ChatResponse, cx: &ResponseContext) -> Value {
    let mut output = Vec::new();
    if let Some(choice) = resp.choices.first() {
        let m = &choice.message;
        let status = item_status(choice.finish_reason.as_ref());
        let blocks = thinking_blocks(&m.extra);
        let reasoning = m.reasoning_content.as_deref().unwrap_or("");
        if !reasoning.is_empty() || !blocks.is_empty() {
            let id = cx.item_id("rs", output.len());
            output.push(reasoning_item(&id, reasoning, &blocks));
        }
        let text = m.content.as_deref().unwrap_or("");
        let refusal = m.refusal.as_deref().unwrap_or("");
        if !text.is_empty() || !refusal.is_empty() {
            let mut parts = Vec::new();
            if !text.is_empty() {
                parts.push(Part::Text(text.to_owned()));
            }
            if !refusal.is_empty() {
                parts.push(Part::Refusal(refusal.to_owned()));
            }
            let id = cx.item_id("msg", output.len());
            output.push(message_item(&id, &parts, status));
        }
        for call in m.tool_calls.iter().flatten() {
            let id = cx.item_id("fc", output.len());
            output.push(function_call_item(
                &id,
                &call.id,
                &call.function.name,
                &call.function.arguments,
                "completed",
            ));
        }
    }
    let finish = resp.choices.first().and_then(|c| c.finish_reason.as_ref());
    response_object(cx, Status::of(finish), output, resp.usage.as_ref(), None)
}

/// The model's answer as a canonical assistant message (kept in the conversation a later
/// `previous_response_id` continues; thinking blocks stay in its extra fields).
pub fn answer_message(resp: &ChatResponse) -> Message {
    let mut msg = Message {
        content: None,
        ..Message::assistant("")
    };
    if let Some(choice) = resp.choices.first() {
        let m = &choice.message;
        msg.content = m
            .content
            .clone()
            .filter(|c| !c.is_empty())
            .map(MessageContent::Text);
        msg.refusal.clone_from(&m.refusal);
        msg.tool_calls = m.tool_calls.clone().filter(|c| !c.is_empty());
        msg.reasoning_content = m.reasoning_content.clone().filter(|r| !r.is_empty());
        if let Some(b) = m.extra.get("thinking_blocks") {
            msg.extra.insert("thinking_blocks".into(), b.clone());
        }
    }
    msg
}

pub(crate) fn thinking_blocks(extra: &JsonObject) -> Vec<Value> {
    match extra.get("thinking_blocks") {
        Some(Value::Array(b)) => b.clone(),
        _ => Vec::new(),
    }
}

/// A Response's status, from the answer's finish reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Completed,
    /// Stopped by the output token limit or a content filter (the `incomplete_details`
    /// reason).
    Incomplete(&'static str),
    Failed,
}

impl Status {
    pub(crate) fn of(finish: Option<&FinishReason>) -> Self {
        match finish {
            Some(FinishReason::Length) => Self::Incomplete("max_output_tokens"),
            Some(FinishReason::ContentFilter) => Self::Incomplete("content_filter"),
            _ => Self::Completed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Incomplete(_) => "incomplete",
            Self::Failed => "failed",
        }
    }
}

fn item_status(finish: Option<&FinishReason>) -> &'static str {
    match Status::of(finish) {
        Status::Incomplete(_) => "incomplete",
        _ => "completed",
    }
}

/// The Response object around `output`. `error` is `(code, message)` of a failed one.
pub(crate) fn response_object(
    cx: &ResponseContext,
    status: Status,
    output: Vec<Value>,
    usage: Option<&Usage>,
    error: Option<(&str, &str)>,
) -> Value {
    let mut o = JsonObject::new();
    o.insert("id".into(), json!(cx.id));
    o.insert("object".into(), json!("response"));
    o.insert("created_at".into(), json!(cx.created_at));
    o.insert("status".into(), json!(status.as_str()));
    o.insert(
        "error".into(),
        error.map_or(
            Value::Null,
            |(code, message)| json!({"code": code, "message": message}),
        ),
    );
    o.insert(
        "incomplete_details".into(),
        match status {
            Status::Incomplete(reason) => json!({ "reason": reason }),
            _ => Value::Null,
        },
    );
    o.insert("model".into(), json!(cx.model));
    o.insert("output".into(), Value::Array(output));
    o.insert("usage".into(), usage.map_or(Value::Null, usage_object));
    for (k, v) in &cx.echo {
        o.insert(k.clone(), v.clone());
    }
    Value::Object(o)
}

/// The Response object of a response that has just started (`response.created`,
/// `response.in_progress`).
pub(crate) fn in_progress_object(cx: &ResponseContext) -> Value {
    let mut v = response_object(cx, Status::Completed, Vec::new(), None, None);
    v["status"] = json!("in_progress");
    v
}

/// Canonical usage in the Responses names.
pub(crate) fn usage_object(u: &Usage) -> Value {
    let cache_write = u
        .extra
        .get("cache_creation_input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_tokens(),
            "cache_write_tokens": cache_write,
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens()},
        "total_tokens": u.total_tokens,
    })
}

/// One content part of a message item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Refusal(String),
}

impl Part {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Text(t) => {
                json!({"type": "output_text", "annotations": [], "logprobs": [], "text": t})
            }
            Self::Refusal(r) => json!({"type": "refusal", "refusal": r}),
        }
    }
}

pub(crate) fn message_item(id: &str, parts: &[Part], status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts.iter().map(Part::to_json).collect::<Vec<_>>(),
    })
}

pub(crate) fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    })
}

/// A reasoning item: the reasoning text as its one summary, and the thinking blocks (when
/// any) as JSON text in `encrypted_content`.
pub(crate) fn reasoning_item(id: &str, text: &str, blocks: &[Value]) -> Value {
    let summary: Vec<Value> = if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "summary_text", "text": text})]
    };
    let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
    if !blocks.is_empty() {
        item["encrypted_content"] = json!(Value::Array(blocks.to_vec()).to_string());
    }
    item
}
