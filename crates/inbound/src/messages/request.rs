//! Anthropic request body → canonical [`ChatRequest`].
//!
//! The inverse of `llmux-provider-anthropic`'s `encode_request`: decoding a body and
//! encoding the result for Anthropic gives the body back (the fixture test
//! `anthropic_request_round_trips_exactly` holds this). Forms the canonical model cannot
//! tell apart come back in their equivalent shape: a string `content` returns as one text
//! block, and assistant blocks return in the order thinking → text → tool_use.

use llmux_core::{
    ChatRequest, ContentPart, Error, FileRef, FunctionCall, FunctionDefinition, ImageUrl,
    JsonObject, Message, MessageContent, NamedFunction, NamedToolChoice, Role, Stop, Tool,
    ToolCall, ToolChoice, ToolChoiceMode,
};
use serde_json::Value;

/// Top-level request fields with no canonical counterpart, kept under their own names in
/// the request's `extra` (the Anthropic codec passes them on). Others are dropped.
const KEPT_FIELDS: [&str; 9] = [
    "thinking",
    "top_k",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "inference_geo",
    "output_config",
    "cache_control",
];

/// Tokens counted for one image or document by [`estimate_input_tokens`] (about what
/// Anthropic charges for a 1000×1000 image).
const MEDIA_TOKENS: u64 = 1_600;

fn bad(param: impl Into<String>, message: impl Into<String>) -> Error {
    let param = param.into();
    Error::bad_request(format!("{param}: {}", message.into())).with_param(param)
}

/// Decode a `POST /v1/messages` body (`max_tokens` is required, as Anthropic requires it).
pub fn decode_request(body: Value) -> Result<ChatRequest, Error> {
    decode(body, true)
}

/// Decode a `POST /v1/messages/count_tokens` body (the same shape without `max_tokens`).
pub fn decode_count_tokens_request(body: Value) -> Result<ChatRequest, Error> {
    decode(body, false)
}

fn decode(body: Value, needs_max_tokens: bool) -> Result<ChatRequest, Error> {
    let Value::Object(mut body) = body else {
        return Err(Error::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => return Err(bad("model", "must be a non-empty string")),
        None => return Err(bad("model", "Field required")),
    };
    let mut req = ChatRequest::new(model);
    match body.remove("max_tokens") {
        Some(v) => {
            let n = v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("max_tokens", "must be a positive integer"))?;
            req.max_completion_tokens = Some(n);
        }
        None if needs_max_tokens => return Err(bad("max_tokens", "Field required")),
        None => {}
    }
    if let Some(system) = body.remove("system") {
        decode_system(system, &mut req.messages)?;
    }
    let Some(Value::Array(messages)) = body.remove("messages") else {
        return Err(bad("messages", "Field required (a list of messages)"));
    };
    for (i, m) in messages.into_iter().enumerate() {
        decode_message(i, m, &mut req.messages)?;
    }
    if let Some(tools) = body.remove("tools") {
        let Value::Array(tools) = tools else {
            return Err(bad("tools", "must be a list"));
        };
        let tools = tools
            .into_iter()
            .enumerate()
            .map(|(i, t)| decode_tool(i, t))
            .collect::<Result<Vec<_>, _>>()?;
        req.tools = Some(tools);
    }
    if let Some(choice) = body.remove("tool_choice") {
        decode_tool_choice(choice, &mut req)?;
    }
    if let Some(stop) = body.remove("stop_sequences") {
        let seqs: Vec<String> = serde_json::from_value(stop)
            .map_err(|_| bad("stop_sequences", "must be a list of strings"))?;
        req.stop = Some(Stop::Many(seqs));
    }
    req.temperature = number(&mut body, "temperature")?;
    req.top_p = number(&mut body, "top_p")?;
    match body.remove("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => req.stream = Some(b),
        Some(_) => return Err(bad("stream", "must be a boolean")),
    }
    if let Some(metadata) = body.remove("metadata") {
        match metadata.get("user_id") {
            None | Some(Value::Null) => {}
            Some(Value::String(u)) => req.user = Some(u.clone()),
            Some(_) => return Err(bad("metadata.user_id", "must be a string")),
        }
    }
    if let Some(thinking) = body.get("thinking") {
        req.reasoning_effort = reasoning_effort(thinking)?;
    }
    for key in KEPT_FIELDS {
        if let Some(v) = body.remove(key) {
            req.extra.insert(key.into(), v);
        }
    }
    Ok(req)
}

fn number(body: &mut JsonObject, key: &str) -> Result<Option<f64>, Error> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(key, "must be a number")),
    }
}

/// `thinking: {type: enabled, budget_tokens}` as the canonical effort other providers read:
/// up to 1024 tokens is `low`, up to 8192 `medium`, more `high`.
fn reasoning_effort(thinking: &Value) -> Result<Option<String>, Error> {
    let Value::Object(t) = thinking else {
        return Err(bad("thinking", "must be an object"));
    };
    let effort = match t.get("type").and_then(Value::as_str) {
        Some("enabled") => match t.get("budget_tokens").and_then(Value::as_u64) {
            Some(b) if b <= 1024 => "low",
            Some(b) if b <= 8192 => "medium",
            Some(_) => "high",
            None => return Err(bad("thinking.budget_tokens", "Field required")),
        },
        Some("adaptive") => "medium",
        Some("disabled") => return Ok(None),
        _ => {
            return Err(bad(
                "thinking.type",
                "must be 'enabled', 'disabled' or 'adaptive'",
            ));
        }
    };
    Ok(Some(effort.to_owned()))
}

fn decode_system(system: Value, out: &mut Vec<Message>) -> Result<(), Error> {
    match system {
        Value::Null => Ok(()),
        Value::String(s) => {
            out.push(Message::system(s));
            Ok(())
        }
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.into_iter().enumerate() {
                let Value::Object(mut b) = b else {
                    return Err(bad(format!("system[{j}]"), "must be a text block"));
                };
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(bad(format!("system[{j}]"), "only text blocks are allowed"));
                }
                let Some(Value::String(text)) = b.remove("text") else {
                    return Err(bad(format!("system[{j}].text"), "Field required"));
                };
                b.remove("type");
                parts.push(ContentPart::Text { text, extra: b });
            }
            out.push(Message {
                content: Some(MessageContent::Parts(parts)),
                ..Message::system("")
            });
            Ok(())
        }
        _ => Err(bad("system", "must be a string or a list of text blocks")),
    }
}

fn decode_message(i: usize, m: Value, out: &mut Vec<Message>) -> Result<(), Error> {
    let Value::Object(mut m) = m else {
        return Err(bad(format!("messages[{i}]"), "must be an object"));
    };
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => {
            return Err(bad(
                format!("messages[{i}].role"),
                "must be 'user' or 'assistant'",
            ));
        }
    };
    let blocks = match m.remove("content") {
        Some(Value::String(s)) => {
            out.push(Message::text(role, s));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(bad(
                format!("messages[{i}].content"),
                "must be a string or a list of content blocks",
            ));
        }
    };
    if role == Role::User {
        decode_user_blocks(i, blocks, out)
    } else {
        decode_assistant_blocks(i, blocks, out)
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages, in order, and the other
/// blocks one user message after them.
fn decode_user_blocks(i: usize, blocks: Vec<Value>, out: &mut Vec<Message>) -> Result<(), Error> {
    let mut parts = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let Value::Object(b) = b else {
            return Err(bad(
                format!("messages[{i}].content[{j}]"),
                "must be an object",
            ));
        };
        if b.get("type").and_then(Value::as_str) == Some("tool_result") {
            out.push(decode_tool_result(i, j, b)?);
        } else {
            parts.push(decode_block(i, j, b)?);
        }
    }
    if !parts.is_empty() {
        out.push(Message {
            content: Some(MessageContent::Parts(parts)),
            ..Message::user("")
        });
    }
    Ok(())
}

fn decode_tool_result(i: usize, j: usize, mut b: JsonObject) -> Result<Message, Error> {
    let param = || format!("messages[{i}].content[{j}]");
    let Some(Value::String(id)) = b.remove("tool_use_id") else {
        return Err(bad(format!("{}.tool_use_id", param()), "Field required"));
    };
    let content = match b.remove("content") {
        None | Some(Value::Null) => MessageContent::Text(String::new()),
        Some(Value::String(s)) => MessageContent::Text(s),
        Some(Value::Array(inner)) => {
            let mut parts = Vec::with_capacity(inner.len());
            for (k, p) in inner.into_iter().enumerate() {
                let Value::Object(p) = p else {
                    return Err(bad(
                        format!("{}.content[{k}]", param()),
                        "must be an object",
                    ));
                };
                parts.push(decode_block(i, j, p)?);
            }
            MessageContent::Parts(parts)
        }
        Some(_) => {
            return Err(bad(
                format!("{}.content", param()),
                "must be a string or a list of content blocks",
            ));
        }
    };
    let mut m = Message {
        content: Some(content),
        ..Message::tool(id, "")
    };
    match b.remove("is_error") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Bool(_)) => {
            m.extra.insert("is_error".into(), v);
        }
        Some(_) => return Err(bad(format!("{}.is_error", param()), "must be a boolean")),
    }
    if let Some(cc) = b.remove("cache_control") {
        m.extra.insert("cache_control".into(), cc);
    }
    Ok(m)
}

/// Keys a block may carry besides the ones its canonical part models, and still be
/// re-encoded exactly.
fn only_keys(b: &JsonObject, allowed: &[&str]) -> bool {
    b.keys().all(|k| allowed.contains(&k.as_str()))
}

/// Moves `cache_control` (and `citations` for text) into a part's extra fields.
fn part_extra(b: &mut JsonObject, keys: &[&str]) -> JsonObject {
    let mut extra = JsonObject::new();
    for k in keys {
        if let Some(v) = b.remove(*k) {
            extra.insert((*k).into(), v);
        }
    }
    extra
}

/// One user (or tool-result) content block as a canonical part. Blocks the canonical
/// model cannot carry exactly pass whole ([`ContentPart::Other`]).
fn decode_block(i: usize, j: usize, mut b: JsonObject) -> Result<ContentPart, Error> {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" if only_keys(&b, &["type", "text", "cache_control", "citations"]) => {
            let Some(Value::String(text)) = b.remove("text") else {
                return Err(bad(
                    format!("messages[{i}].content[{j}].text"),
                    "Field required",
                ));
            };
            Ok(ContentPart::Text {
                text,
                extra: part_extra(&mut b, &["cache_control", "citations"]),
            })
        }
        "image" if only_keys(&b, &["type", "source", "cache_control"]) => {
            match source_url(b.get("source"), |m| m.starts_with("image/")) {
                Some(url) => Ok(ContentPart::ImageUrl {
                    image_url: ImageUrl { url, detail: None },
                    extra: part_extra(&mut b, &["cache_control"]),
                }),
                None => Ok(ContentPart::Other(b)),
            }
        }
        "document" if only_keys(&b, &["type", "source", "cache_control"]) => {
            let source = b.get("source");
            let file = if let Some(data) =
                source_url(source, |m| m == "application/pdf").filter(|u| u.starts_with("data:"))
            {
                Some(FileRef {
                    file_data: Some(data),
                    filename: Some("document.pdf".to_owned()),
                    ..FileRef::default()
                })
            } else if source.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("file")
                && source.and_then(Value::as_object).map(JsonObject::len) == Some(2)
            {
                source
                    .and_then(|s| s.get("file_id"))
                    .and_then(Value::as_str)
                    .map(|id| FileRef {
                        file_id: Some(id.to_owned()),
                        ..FileRef::default()
                    })
            } else {
                None
            };
            match file {
                Some(file) => Ok(ContentPart::File {
                    file,
                    extra: part_extra(&mut b, &["cache_control"]),
                }),
                None => Ok(ContentPart::Other(b)),
            }
        }
        "" => Err(bad(
            format!("messages[{i}].content[{j}].type"),
            "Field required",
        )),
        "tool_use" | "thinking" | "redacted_thinking" => Err(bad(
            format!("messages[{i}].content[{j}]"),
            format!("'{kind}' blocks belong in assistant messages"),
        )),
        _ => Ok(ContentPart::Other(b)),
    }
}

/// An image or PDF `source` as a URL the canonical parts carry: base64 data becomes a
/// `data:` URL, a `url` source its URL. `None` for other sources (files, text, content).
fn source_url(source: Option<&Value>, media_ok: impl Fn(&str) -> bool) -> Option<String> {
    let s = source?.as_object()?;
    match s.get("type")?.as_str()? {
        "base64" if s.len() == 3 => {
            let media = s.get("media_type")?.as_str()?;
            let data = s.get("data")?.as_str()?;
            media_ok(media).then(|| format!("data:{media};base64,{data}"))
        }
        "url" if s.len() == 2 => {
            let url = s.get("url")?.as_str()?;
            (url.starts_with("https://") || url.starts_with("http://")).then(|| url.to_owned())
        }
        _ => None,
    }
}

/// An assistant turn: thinking blocks ride in `thinking_blocks`, `tool_use` blocks become
/// tool calls, the rest is content (in order). A `cache_control` on a final `tool_use`
/// block is kept on the message (the codec puts it back on the last block).
fn decode_assistant_blocks(
    i: usize,
    blocks: Vec<Value>,
    out: &mut Vec<Message>,
) -> Result<(), Error> {
    let count = blocks.len();
    let mut thinking = Vec::new();
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut message_cache_control = None;
    for (j, b) in blocks.into_iter().enumerate() {
        let Value::Object(mut b) = b else {
            return Err(bad(
                format!("messages[{i}].content[{j}]"),
                "must be an object",
            ));
        };
        let param = || format!("messages[{i}].content[{j}]");
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "thinking" | "redacted_thinking" => thinking.push(Value::Object(b)),
            "tool_use" => {
                let Some(Value::String(id)) = b.remove("id") else {
                    return Err(bad(format!("{}.id", param()), "Field required"));
                };
                let Some(Value::String(name)) = b.remove("name") else {
                    return Err(bad(format!("{}.name", param()), "Field required"));
                };
                let input = match b.remove("input") {
                    Some(v @ Value::Object(_)) => v,
                    _ => return Err(bad(format!("{}.input", param()), "must be an object")),
                };
                if let Some(cc) = b.remove("cache_control")
                    && j + 1 == count
                {
                    message_cache_control = Some(cc);
                }
                calls.push(ToolCall {
                    id,
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name,
                        arguments: input.to_string(),
                    },
                });
            }
            "text" if only_keys(&b, &["type", "text", "cache_control", "citations"]) => {
                let Some(Value::String(text)) = b.remove("text") else {
                    return Err(bad(format!("{}.text", param()), "Field required"));
                };
                parts.push(ContentPart::Text {
                    text,
                    extra: part_extra(&mut b, &["cache_control", "citations"]),
                });
            }
            "" => return Err(bad(format!("{}.type", param()), "Field required")),
            _ => parts.push(ContentPart::Other(b)),
        }
    }
    let mut m = Message {
        content: (!parts.is_empty()).then_some(MessageContent::Parts(parts)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..Message::assistant("")
    };
    if !thinking.is_empty() {
        m.extra
            .insert("thinking_blocks".into(), Value::Array(thinking));
    }
    if let Some(cc) = message_cache_control {
        m.extra.insert("cache_control".into(), cc);
    }
    out.push(m);
    Ok(())
}

fn decode_tool(i: usize, t: Value) -> Result<Tool, Error> {
    let Value::Object(mut t) = t else {
        return Err(bad(format!("tools[{i}]"), "must be an object"));
    };
    let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
    if kind != "custom" {
        // A server tool (web search, code execution, …): passed as declared.
        let Some(Value::String(kind)) = t.remove("type") else {
            return Err(bad(format!("tools[{i}].type"), "must be a string"));
        };
        return Ok(Tool {
            kind,
            function: None,
            extra: t,
        });
    }
    let Some(Value::String(name)) = t.remove("name") else {
        return Err(bad(format!("tools[{i}].name"), "Field required"));
    };
    let description = match t.remove("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d),
        Some(_) => return Err(bad(format!("tools[{i}].description"), "must be a string")),
    };
    let parameters = match t.remove("input_schema") {
        Some(v @ Value::Object(_)) => v,
        _ => return Err(bad(format!("tools[{i}].input_schema"), "Field required")),
    };
    let mut extra = JsonObject::new();
    if let Some(cc) = t.remove("cache_control") {
        extra.insert("cache_control".into(), cc);
    }
    Ok(Tool {
        kind: "function".to_owned(),
        function: Some(FunctionDefinition {
            name,
            description,
            parameters: Some(parameters),
            strict: None,
        }),
        extra,
    })
}

fn decode_tool_choice(choice: Value, req: &mut ChatRequest) -> Result<(), Error> {
    let Value::Object(c) = choice else {
        return Err(bad("tool_choice", "must be an object"));
    };
    req.tool_choice = Some(match c.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Mode(ToolChoiceMode::Auto),
        Some("any") => ToolChoice::Mode(ToolChoiceMode::Required),
        Some("none") => ToolChoice::Mode(ToolChoiceMode::None),
        Some("tool") => {
            let Some(name) = c.get("name").and_then(Value::as_str) else {
                return Err(bad("tool_choice.name", "Field required"));
            };
            ToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: NamedFunction {
                    name: name.to_owned(),
                },
            })
        }
        _ => {
            return Err(bad(
                "tool_choice.type",
                "must be 'auto', 'any', 'tool' or 'none'",
            ));
        }
    });
    match c.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(disable)) => req.parallel_tool_calls = Some(!disable),
        Some(_) => {
            return Err(bad(
                "tool_choice.disable_parallel_tool_use",
                "must be a boolean",
            ));
        }
    }
    Ok(())
}

/// The local estimate `count_tokens` answers with: one token per four characters of the
/// text llmux would send (system, messages, tool calls and results, tool declarations),
/// plus [`MEDIA_TOKENS`] per image or document.
pub fn estimate_input_tokens(req: &ChatRequest) -> u64 {
    let mut chars = 0usize;
    let mut media = 0u64;
    for m in &req.messages {
        match &m.content {
            None => {}
            Some(MessageContent::Text(t)) => chars += t.len(),
            Some(MessageContent::Parts(parts)) => {
                for p in parts {
                    match p {
                        ContentPart::Text { text, .. } => chars += text.len(),
                        ContentPart::Refusal { refusal } => chars += refusal.len(),
                        ContentPart::ImageUrl { .. }
                        | ContentPart::File { .. }
                        | ContentPart::InputAudio { .. } => media += MEDIA_TOKENS,
                        ContentPart::Other(o) => match o.get("type").and_then(Value::as_str) {
                            Some("image" | "document") => media += MEDIA_TOKENS,
                            _ => chars += Value::Object(o.clone()).to_string().len(),
                        },
                    }
                }
            }
        }
        for call in m.tool_calls.iter().flatten() {
            chars += call.function.name.len() + call.function.arguments.len();
        }
        if let Some(Value::Array(blocks)) = m.extra.get("thinking_blocks") {
            for b in blocks {
                chars += b
                    .get("thinking")
                    .and_then(Value::as_str)
                    .map_or(0, str::len);
            }
        }
    }
    for t in req.tools.iter().flatten() {
        chars += serde_json::to_string(t).map_or(0, |s| s.len());
    }
    (chars as u64).div_ceil(4) + media
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(extra: Value) -> Value {
        let mut b = json!({"model": "m", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn bad_bodies_are_400s_naming_the_field() {
        for (body, param) in [
            (json!([1]), None),
            (json!({"max_tokens": 1, "messages": []}), Some("model")),
            (json!({"model": "m", "messages": []}), Some("max_tokens")),
            (base(json!({"max_tokens": 0})), Some("max_tokens")),
            (base(json!({"messages": "hi"})), Some("messages")),
            (
                base(json!({"messages": [{"role": "system", "content": "x"}]})),
                Some("messages[0].role"),
            ),
            (
                base(json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]})),
                Some("messages[0].content[0].type"),
            ),
            (
                base(json!({"messages": [{"role": "assistant", "content": [
                {"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]})),
                Some("messages[0].content[0].input"),
            ),
            (
                base(json!({"system": [{"type": "image"}]})),
                Some("system[0]"),
            ),
            (
                base(json!({"tools": [{"name": "f"}]})),
                Some("tools[0].input_schema"),
            ),
            (
                base(json!({"tool_choice": {"type": "tool"}})),
                Some("tool_choice.name"),
            ),
            (
                base(json!({"thinking": {"type": "enabled"}})),
                Some("thinking.budget_tokens"),
            ),
            (base(json!({"temperature": "hot"})), Some("temperature")),
            (
                base(json!({"stop_sequences": "END"})),
                Some("stop_sequences"),
            ),
        ] {
            let e = decode_request(body.clone()).unwrap_err();
            assert_eq!(e.kind(), llmux_core::ErrorKind::BadRequest, "{body}");
            assert_eq!(e.param(), param, "{body}");
        }
        // count_tokens bodies need no max_tokens.
        let req = decode_count_tokens_request(json!({"model": "m",
            "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap();
        assert_eq!(req.max_completion_tokens, None);
    }

    #[test]
    fn thinking_budget_maps_to_an_effort() {
        for (budget, effort) in [
            (1024, "low"),
            (2048, "medium"),
            (8192, "medium"),
            (31999, "high"),
        ] {
            let req = decode_request(base(
                json!({"thinking": {"type": "enabled", "budget_tokens": budget}}),
            ))
            .unwrap();
            assert_eq!(req.reasoning_effort.as_deref(), Some(effort));
            assert_eq!(
                req.extra["thinking"],
                json!({"type": "enabled", "budget_tokens": budget})
            );
        }
        let req = decode_request(base(json!({"thinking": {"type": "disabled"}}))).unwrap();
        assert_eq!(req.reasoning_effort, None);
    }

    #[test]
    fn estimate_counts_text_tools_and_media() {
        let req = decode_count_tokens_request(json!({"model": "m",
            "system": "abcd",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "abcdefgh"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}))
        .unwrap();
        assert_eq!(estimate_input_tokens(&req), 3 + MEDIA_TOKENS);
    }
}
