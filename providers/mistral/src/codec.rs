//! Pure translation between the canonical (OpenAI-shaped) types and Mistral's dialect of
//! the chat-completions API. No I/O.
//!
//! Mistral's API looks like OpenAI's but validates strictly: a field it does not define is
//! a 422 (`extra_forbidden`), so requests are built from an allow-list rather than by
//! passing the canonical request through. The differences handled here:
//! - `seed` → `random_seed`, `max_completion_tokens` → `max_tokens`, `tool_choice:
//!   "required"` → `"any"`; Mistral's own `safe_prompt`, `random_seed`, `prompt_mode` and
//!   `prediction` pass through from the request's extra fields;
//! - OpenAI parameters Mistral does not accept are dropped ([`DROPPED_PARAMS`], and every
//!   other unknown field);
//! - tool-call ids must be 9 ASCII letters or digits: other ids are mapped, by a pure
//!   function of the id ([`mistral_tool_call_id`]), so an assistant's `tool_calls` and the
//!   `tool` messages answering them keep matching, turn after turn;
//! - a final assistant message is sent with `prefix: true` (Mistral's way to continue a
//!   started answer; without it the API refuses a conversation ending with the assistant);
//! - answers: `finish_reason: model_length` reads as `length`, content given as a list of
//!   chunks (reasoning models) becomes text plus `reasoning_content`, and the usage Mistral
//!   puts on the last delta of a stream is split into the usage-only chunk llmux streams end
//!   with;
//! - error bodies: `{"object":"error","message":…,"type":…}` (message sometimes a
//!   validation-detail list) as well as OpenAI's shape.
//!
//! Parsing reuses `llmux_provider_openai::codec` for everything already OpenAI-shaped.

use std::borrow::Cow;
use std::time::Duration;

use llmux_core::{
    ChatChunk, ChatRequest, ChatResponse, ContentPart, EmbeddingInput, EmbeddingRequest,
    EmbeddingResponse, Error, ErrorKind, FinishReason, JsonObject, Message, MessageContent,
    ModelList, Origin, Role, Tool, ToolChoice, ToolChoiceMode,
};
use llmux_provider_openai::codec as openai;
use serde_json::{Value, json};

/// The provider prefix errors are reported under.
pub const PROVIDER: &str = "mistral";

/// OpenAI request parameters Mistral's API does not accept; they are dropped (with every
/// other field Mistral does not define). `seed` and `max_completion_tokens` are not lost:
/// they are renamed.
pub const DROPPED_PARAMS: &[&str] = &[
    "stream_options",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "metadata",
    "reasoning_effort",
    "service_tier",
    "store",
    "modalities",
    "audio",
    "web_search_options",
    "functions",
    "function_call",
    "prompt_cache_key",
    "safety_identifier",
    "verbosity",
];

/// Mistral parameters a client may send as extra fields; they pass through unchanged.
pub const MISTRAL_PARAMS: &[&str] = &["safe_prompt", "random_seed", "prompt_mode", "prediction"];

/// How one chat request is encoded.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// The deployment's model id.
    pub model: &'a str,
    /// Ask for a stream (`"stream": true`).
    pub stream: bool,
    /// The deployment's `safe_prompt`, used when the request sets none.
    pub safe_prompt: Option<bool>,
}

impl<'a> EncodeOptions<'a> {
    /// A plain (non-streamed) call of `model` with no deployment defaults.
    pub fn new(model: &'a str) -> Self {
        Self {
            model,
            stream: false,
            safe_prompt: None,
        }
    }

    /// The same options, streamed or not.
    pub fn streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }
}

fn bad_request(message: String, param: &str) -> Error {
    Error::bad_request(format!("{PROVIDER}: {message}"))
        .with_param(param)
        .with_provider(PROVIDER)
}

/// The id Mistral accepts for a tool call: ids of exactly 9 ASCII letters or digits are
/// kept; any other id maps to 9 base-62 digits of its 64-bit FNV-1a hash. Being a pure
/// function of the id, the same call id maps the same way in every message and every turn.
pub fn mistral_tool_call_id(id: &str) -> Cow<'_, str> {
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Cow::Borrowed(id);
    }
    const DIGITS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = String::with_capacity(9);
    for _ in 0..9 {
        out.push(char::from(DIGITS[(h % 62) as usize]));
        h /= 62;
    }
    Cow::Owned(out)
}

/// The body of a chat call, as a JSON object (see the module docs for what changes).
pub fn encode_chat(req: ChatRequest, opts: &EncodeOptions<'_>) -> Result<JsonObject, Error> {
    let ChatRequest {
        messages,
        temperature,
        top_p,
        n,
        stop,
        max_tokens,
        max_completion_tokens,
        presence_penalty,
        frequency_penalty,
        seed,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        mut extra,
        ..
    } = req;
    let mut body = JsonObject::new();
    body.insert("model".into(), opts.model.into());
    body.insert("messages".into(), Value::Array(encode_messages(&messages)?));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.to_owned(), v);
        }
    };
    put("temperature", temperature.map(Value::from));
    put("top_p", top_p.map(Value::from));
    put("n", n.map(Value::from));
    put(
        "max_tokens",
        max_completion_tokens.or(max_tokens).map(Value::from),
    );
    put("stop", stop.map(|s| json!(s.to_vec())));
    put("presence_penalty", presence_penalty.map(Value::from));
    put("frequency_penalty", frequency_penalty.map(Value::from));
    put(
        "response_format",
        response_format.and_then(|f| serde_json::to_value(f).ok()),
    );
    put("tools", tools.map(|t| encode_tools(&t)).transpose()?);
    put("tool_choice", tool_choice.map(|c| encode_tool_choice(&c)));
    put("parallel_tool_calls", parallel_tool_calls.map(Value::from));
    for k in MISTRAL_PARAMS {
        put(k, extra.remove(*k));
    }
    if let Some(seed) = seed {
        body.insert("random_seed".into(), seed.into());
    }
    if let Some(safe) = opts.safe_prompt {
        body.entry("safe_prompt").or_insert(safe.into());
    }
    if opts.stream {
        body.insert("stream".into(), true.into());
    }
    Ok(body)
}

fn encode_messages(messages: &[Message]) -> Result<Vec<Value>, Error> {
    let last = messages.len().saturating_sub(1);
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| encode_message(m, i == last))
        .collect()
}

fn text_only(m: &Message, role: &str) -> Result<String, Error> {
    if let Some(MessageContent::Parts(parts)) = &m.content
        && parts
            .iter()
            .any(|p| !matches!(p, ContentPart::Text { .. } | ContentPart::Refusal { .. }))
    {
        return Err(bad_request(
            format!("{role} messages can only hold text"),
            "messages",
        ));
    }
    Ok(m.text_content())
}

fn encode_message(m: &Message, is_last: bool) -> Result<Value, Error> {
    Ok(match m.role {
        Role::System | Role::Developer => {
            json!({"role": "system", "content": text_only(m, "system")?})
        }
        Role::User => {
            let content = match &m.content {
                None => Value::String(String::new()),
                Some(MessageContent::Text(t)) => Value::String(t.clone()),
                Some(MessageContent::Parts(parts)) => Value::Array(
                    parts
                        .iter()
                        .map(encode_user_part)
                        .collect::<Result<_, _>>()?,
                ),
            };
            json!({"role": "user", "content": content})
        }
        Role::Assistant => {
            let mut out = JsonObject::new();
            out.insert("role".into(), "assistant".into());
            let text = text_only(m, "assistant")?;
            let calls = m.tool_calls.as_deref().unwrap_or_default();
            if !calls.is_empty() {
                let calls: Vec<Value> = calls
                    .iter()
                    .map(|c| {
                        json!({"id": mistral_tool_call_id(&c.id), "type": "function",
                            "function": {"name": c.function.name, "arguments": c.function.arguments}})
                    })
                    .collect();
                out.insert("tool_calls".into(), calls.into());
                out.insert(
                    "content".into(),
                    if text.is_empty() {
                        Value::Null
                    } else {
                        text.into()
                    },
                );
            } else {
                out.insert("content".into(), text.into());
            }
            let prefix = m.extra.get("prefix").and_then(Value::as_bool);
            if prefix == Some(true) || (prefix.is_none() && is_last && calls.is_empty()) {
                out.insert("prefix".into(), true.into());
            }
            Value::Object(out)
        }
        Role::Tool => {
            let mut out = JsonObject::new();
            out.insert("role".into(), "tool".into());
            out.insert("content".into(), text_only(m, "tool")?.into());
            if let Some(id) = &m.tool_call_id {
                out.insert("tool_call_id".into(), mistral_tool_call_id(id).into());
            }
            if let Some(name) = &m.name {
                out.insert("name".into(), name.clone().into());
            }
            Value::Object(out)
        }
        Role::Function => {
            return Err(bad_request(
                "legacy 'function' messages are not supported; use tool messages".into(),
                "messages",
            ));
        }
    })
}

fn encode_user_part(p: &ContentPart) -> Result<Value, Error> {
    Ok(match p {
        ContentPart::Text { text, .. } => json!({"type": "text", "text": text}),
        ContentPart::ImageUrl { image_url, .. } => {
            let mut img = json!({"url": image_url.url});
            if let Some(d) = &image_url.detail {
                img["detail"] = d.clone().into();
            }
            json!({"type": "image_url", "image_url": img})
        }
        ContentPart::File { file, .. } => match &file.file_id {
            Some(id) => json!({"type": "file", "file_id": id}),
            None => {
                return Err(bad_request(
                    "file parts need a file_id (upload the file to Mistral first)".into(),
                    "messages",
                ));
            }
        },
        // A Mistral-native chunk (`document_url`, `reference`, …) the client sent as is.
        ContentPart::Other(obj) => Value::Object(obj.clone()),
        ContentPart::InputAudio { .. } => {
            return Err(bad_request(
                "input_audio parts are not supported".into(),
                "messages",
            ));
        }
        ContentPart::Refusal { .. } => {
            return Err(bad_request(
                "refusal parts belong to assistant messages".into(),
                "messages",
            ));
        }
    })
}

fn encode_tools(tools: &[Tool]) -> Result<Value, Error> {
    tools
        .iter()
        .map(|t| {
            let f = t
                .function
                .as_ref()
                .filter(|_| t.kind == "function")
                .ok_or_else(|| {
                    bad_request(
                        format!("tools of type '{}' are not supported", t.kind),
                        "tools",
                    )
                })?;
            let mut function = json!({
                "name": f.name,
                "parameters": f.parameters.clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = &f.description {
                function["description"] = d.clone().into();
            }
            if let Some(s) = f.strict {
                function["strict"] = s.into();
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn encode_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Mode(ToolChoiceMode::None) => "none".into(),
        ToolChoice::Mode(ToolChoiceMode::Auto) => "auto".into(),
        ToolChoice::Mode(ToolChoiceMode::Required) => "any".into(),
        ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n.function.name}}),
    }
}

/// The body of an embeddings call: `input` text(s) (token arrays are refused),
/// `dimensions` → `output_dimension`, `encoding_format` kept, Mistral's `output_dtype` and
/// `output_dimension` passed through from the extra fields; `user` dropped.
pub fn encode_embeddings(req: EmbeddingRequest, model: &str) -> Result<JsonObject, Error> {
    let input = match req.input {
        EmbeddingInput::Text(t) => Value::String(t),
        EmbeddingInput::Texts(t) => json!(t),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(bad_request(
                "token-array inputs are not supported; send text".into(),
                "input",
            ));
        }
    };
    let mut body = JsonObject::new();
    body.insert("model".into(), model.into());
    body.insert("input".into(), input);
    if let Some(f) = req.encoding_format {
        body.insert("encoding_format".into(), f.into());
    }
    if let Some(d) = req.dimensions {
        body.insert("output_dimension".into(), d.into());
    }
    let mut extra = req.extra;
    for k in ["output_dtype", "output_dimension"] {
        if let Some(v) = extra.remove(k) {
            body.insert(k.into(), v);
        }
    }
    Ok(body)
}

/// Serialise an encoded body.
pub fn to_vec(body: &JsonObject) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body)
        .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))
}

fn normalise_finish(reason: &mut Option<FinishReason>) {
    if matches!(reason, Some(FinishReason::Other(r)) if r == "model_length") {
        *reason = Some(FinishReason::Length);
    }
}

/// Turns a message or delta whose `content` is a list of chunks into text content plus
/// `reasoning_content` (from `thinking` chunks).
fn flatten_content(msg: &mut Value) {
    let Some(Value::Array(chunks)) = msg.get("content") else {
        return;
    };
    let (mut text, mut thinking) = (String::new(), String::new());
    for c in chunks {
        match c["type"].as_str() {
            Some("text") => text.push_str(c["text"].as_str().unwrap_or_default()),
            Some("thinking") => match &c["thinking"] {
                Value::String(s) => thinking.push_str(s),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .for_each(|t| thinking.push_str(t)),
                _ => {}
            },
            _ => {}
        }
    }
    msg["content"] = text.into();
    if !thinking.is_empty() {
        msg["reasoning_content"] = thinking.into();
    }
}

fn invalid(what: &str, e: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{PROVIDER}: the upstream sent an invalid {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(PROVIDER)
}

/// Parse a chat completion.
pub fn decode_chat(body: &[u8]) -> Result<ChatResponse, Error> {
    let mut resp = match openai::decode_chat(PROVIDER, body) {
        Ok(r) => r,
        Err(first) => {
            // Reasoning models answer with a list of content chunks.
            let mut v: Value = serde_json::from_slice(body).map_err(|_| first.clone())?;
            if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
                for c in choices {
                    flatten_content(&mut c["message"]);
                }
            }
            serde_json::from_value(v).map_err(|e| invalid("chat completion", &e))?
        }
    };
    for c in &mut resp.choices {
        normalise_finish(&mut c.finish_reason);
    }
    Ok(resp)
}

/// What one SSE event of a stream meant.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Chunks to forward (one, or two when the event carried the final usage).
    Chunks(Vec<ChatChunk>),
    /// `[DONE]`: the stream is over.
    Done,
}

/// Parse one SSE `data:` payload of a chat stream.
pub fn decode_stream_event(data: &str) -> Result<StreamEvent, Error> {
    let mut chunk = match openai::decode_chunk(PROVIDER, data) {
        Ok(None) => return Ok(StreamEvent::Done),
        Ok(Some(c)) => c,
        Err(first) => {
            let mut v: Value = serde_json::from_str(data).map_err(|_| first.clone())?;
            if v["object"] == "error" || v["object"] == "Error" {
                return Err(error_from_value(500, &v, None, &[]));
            }
            if let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) {
                for c in choices {
                    let delta = &mut c["delta"];
                    flatten_content(delta);
                    if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                        for (i, call) in calls.iter_mut().enumerate() {
                            if call.get("index").is_none_or(Value::is_null) {
                                call["index"] = i.into();
                            }
                        }
                    }
                }
            }
            serde_json::from_value(v).map_err(|e| invalid("stream chunk", &e))?
        }
    };
    for c in &mut chunk.choices {
        normalise_finish(&mut c.finish_reason);
        for call in c.delta.tool_calls.iter_mut().flatten() {
            if call.id.is_some() && call.kind.is_none() {
                call.kind = Some("function".into());
            }
        }
    }
    // Mistral reports usage on the last delta; llmux streams end with a usage-only chunk.
    if !chunk.choices.is_empty()
        && let Some(usage) = chunk.usage.take()
    {
        let mut tail = ChatChunk::new(chunk.id.clone(), chunk.model.clone(), chunk.created);
        tail.usage = Some(usage);
        return Ok(StreamEvent::Chunks(vec![chunk, tail]));
    }
    Ok(StreamEvent::Chunks(vec![chunk]))
}

/// Parse an embeddings response (OpenAI's shape).
pub fn decode_embeddings(body: &[u8]) -> Result<EmbeddingResponse, Error> {
    openai::decode_embeddings(PROVIDER, body)
}

/// Parse the model list (OpenAI's shape, with Mistral's extra fields kept).
pub fn decode_models(body: &[u8]) -> Result<ModelList, Error> {
    openai::decode_models(PROVIDER, body)
}

/// Map a non-2xx answer to the taxonomy. `secrets` are redacted from the message.
pub fn decode_error(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("message").is_some() && v.get("error").is_none() => {
            error_from_value(status, &v, retry_after, secrets)
        }
        // OpenAI's shape (compatible proxies) or no JSON at all.
        _ => openai::decode_error(PROVIDER, status, body, retry_after, secrets),
    }
}

/// The text of a validation-detail list: `body.stream_options: Extra inputs are not
/// permitted; …`.
fn detail_text(detail: &[Value]) -> String {
    detail
        .iter()
        .map(|d| {
            let loc: Vec<String> = d["loc"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let msg = d["msg"].as_str().unwrap_or("invalid");
            if loc.is_empty() {
                msg.to_owned()
            } else {
                format!("{}: {msg}", loc.join("."))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn message_text(v: &Value) -> String {
    match v {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            // An older proxy sent the validation detail as JSON text.
            Ok(inner @ Value::Object(_)) => message_text(&inner),
            _ => s.clone(),
        },
        Value::Array(detail) => detail_text(detail),
        Value::Object(o) => match o.get("detail") {
            Some(Value::Array(detail)) => detail_text(detail),
            Some(Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn error_from_value(
    status: u16,
    v: &Value,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let message = match message_text(&v["message"]) {
        m if m.is_empty() => format!("the upstream answered HTTP {status}"),
        m => m,
    };
    let lower = message.to_ascii_lowercase();
    let kind_name = v["type"].as_str().unwrap_or_default();
    let mut code: Option<&'static str> = None;
    let kind = if lower.contains("context length")
        || lower.contains("too large for model")
        || lower.contains("maximum context")
    {
        ErrorKind::ContextWindowExceeded
    } else if kind_name == "invalid_model" || lower.starts_with("invalid model") {
        code = Some("model_not_found");
        ErrorKind::NotFound
    } else {
        ErrorKind::from_upstream_status(status)
    };
    let message = llmux_http::redact(&message, secrets);
    let mut e = Error::new(kind, format!("{PROVIDER}: {message}"))
        .with_origin(Origin::Upstream)
        .with_provider(PROVIDER)
        .with_upstream_status(status);
    if let Some(c) = code {
        e = e.with_code(c);
    }
    if let Some(r) = retry_after {
        e = e.with_retry_after(r);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_ids_conform_and_map_stably() {
        assert_eq!(mistral_tool_call_id("D681PevKs"), "D681PevKs");
        let a = mistral_tool_call_id("call_abc123");
        assert_eq!(a.len(), 9);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(a, mistral_tool_call_id("call_abc123"));
        assert_ne!(a, mistral_tool_call_id("call_abc124"));
        // Too short, too long, or not alphanumeric: mapped.
        for id in ["abc", "abcdefghij", "abc_defgh", ""] {
            let m = mistral_tool_call_id(id);
            assert!(matches!(m, Cow::Owned(_)), "{id}");
            assert_eq!(m.len(), 9);
        }
    }
}
