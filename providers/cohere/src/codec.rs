//! Pure translation between the canonical (OpenAI-shaped) types and Cohere's v2 API
//! (`/v2/chat`, `/v2/embed`, `/v2/rerank`). No I/O: every function takes values and returns
//! values, so each rule is testable with fixtures.
//!
//! Chat request rules, in short (docs/providers/cohere.md lists them in full):
//! - `system` and `developer` messages stay in place as `system` messages; `user` content
//!   keeps text and `image_url` parts; assistant `tool_calls` keep OpenAI's shape, an
//!   assistant's `tool_plan` (from its extra fields) and `reasoning_content` (as a
//!   `thinking` content item) are replayed; `tool` messages keep `tool_call_id`;
//! - `top_p` → `p`, `stop` → `stop_sequences`, `max_completion_tokens`/`max_tokens` →
//!   `max_tokens`; `tool_choice` `required`/`none` → `REQUIRED`/`NONE`, a named function
//!   → only that tool with `REQUIRED`; `response_format` → Cohere's `json_object` (with
//!   `json_schema`); `reasoning_effort: none` → `thinking: disabled`, other efforts →
//!   `thinking: enabled`;
//! - Cohere-only fields in the request's extra map ([`PASSTHROUGH_FIELDS`]: `documents`,
//!   `k`, `thinking`, `citation_options`, …) are passed through; other unknown fields are
//!   dropped.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use llmux_core::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, ContentPart, Delta, Embedding,
    EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector, Error,
    ErrorKind, FinishReason, FunctionCall, FunctionCallDelta, JsonObject, Message, MessageContent,
    Origin, PromptTokensDetails, RerankBilledUnits, RerankRequest, RerankResponse,
    RerankResultDocument, RerankTokens, ResponseFormat, ResponseMessage, Role, Tool, ToolCall,
    ToolCallDelta, ToolChoice, ToolChoiceMode, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Request fields outside the canonical model that are passed to Cohere unchanged; every
/// other unknown field is dropped.
pub const PASSTHROUGH_FIELDS: [&str; 10] = [
    "documents",
    "citation_options",
    "safety_mode",
    "strict_tools",
    "k",
    "thinking",
    "priority",
    "truncation_mode",
    "tool_plan_mode",
    "raw_prompting",
];

/// The `input_type` of an embed call when the request names none.
pub const DEFAULT_INPUT_TYPE: &str = "search_document";

/// The `input_type` values Cohere's v2 embed accepts.
pub const INPUT_TYPES: [&str; 5] = [
    "search_document",
    "search_query",
    "classification",
    "clustering",
    "image",
];

fn bad(provider: &'static str, message: impl Into<String>) -> Error {
    Error::bad_request(format!("{provider}: {}", message.into())).with_provider(provider)
}

fn invalid_body(provider: &'static str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{provider}: could not read the upstream's {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(provider)
}

// ---------------------------------------------------------------------------------------
// Chat request
// ---------------------------------------------------------------------------------------

/// The `/v2/chat` body for `req`, calling `model`; `stream` adds `"stream": true`.
pub fn encode_chat(
    provider: &'static str,
    mut req: ChatRequest,
    model: &str,
    stream: bool,
) -> Result<JsonObject, Error> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(bad(provider, "n > 1 is not supported").with_param("n"));
    }
    let mut body = JsonObject::new();
    body.insert("model".into(), model.into());
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in std::mem::take(&mut req.messages) {
        messages.push(encode_message(provider, m)?);
    }
    body.insert("messages".into(), Value::Array(messages));

    let mut tools = req.tools.take().unwrap_or_default();
    match req.tool_choice.take() {
        None | Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => {}
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => {
            body.insert("tool_choice".into(), "REQUIRED".into());
        }
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => {
            body.insert("tool_choice".into(), "NONE".into());
        }
        Some(ToolChoice::Named(named)) => {
            let name = named.function.name;
            tools.retain(|t| t.function.as_ref().is_some_and(|f| f.name == name));
            if tools.is_empty() {
                return Err(bad(
                    provider,
                    format!("tool_choice names '{name}', which is not among the tools"),
                )
                .with_param("tool_choice"));
            }
            body.insert("tool_choice".into(), "REQUIRED".into());
        }
    }
    if !tools.is_empty() {
        if tools
            .iter()
            .any(|t| t.function.as_ref().and_then(|f| f.strict) == Some(true))
        {
            body.insert("strict_tools".into(), true.into());
        }
        let tools = tools
            .into_iter()
            .map(|t| encode_tool(provider, t))
            .collect::<Result<Vec<_>, _>>()?;
        body.insert("tools".into(), Value::Array(tools));
    }

    if let Some(f) = req.response_format.take() {
        let v = match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { json_schema } => match json_schema.schema {
                Some(schema) => json!({"type": "json_object", "json_schema": schema}),
                None => json!({"type": "json_object"}),
            },
        };
        body.insert("response_format".into(), v);
    }
    if let Some(m) = req.max_completion_tokens.or(req.max_tokens) {
        body.insert("max_tokens".into(), m.into());
    }
    let mut put_f64 = |k: &str, v: Option<f64>| {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    };
    put_f64("temperature", req.temperature);
    put_f64("p", req.top_p);
    put_f64("frequency_penalty", req.frequency_penalty);
    put_f64("presence_penalty", req.presence_penalty);
    if let Some(s) = req.seed {
        body.insert("seed".into(), s.into());
    }
    if let Some(stop) = &req.stop {
        body.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
    if req.logprobs == Some(true) {
        body.insert("logprobs".into(), true.into());
    }
    if let Some(effort) = req.reasoning_effort.as_deref()
        && !req.extra.contains_key("thinking")
    {
        let kind = if effort == "none" {
            "disabled"
        } else {
            "enabled"
        };
        body.insert("thinking".into(), json!({"type": kind}));
    }
    if !req.extra.contains_key("k")
        && let Some(k) = req.extra.remove("top_k")
    {
        body.insert("k".into(), k);
    }
    for key in PASSTHROUGH_FIELDS {
        if let Some(v) = req.extra.remove(key) {
            body.insert(key.into(), v);
        }
    }
    if stream {
        body.insert("stream".into(), true.into());
    }
    Ok(body)
}

fn encode_tool(provider: &'static str, t: Tool) -> Result<Value, Error> {
    let Some(f) = t.function.filter(|_| t.kind == "function") else {
        return Err(bad(
            provider,
            format!("tools of type '{}' are not supported", t.kind),
        )
        .with_param("tools"));
    };
    let mut function = JsonObject::new();
    function.insert("name".into(), f.name.into());
    if let Some(d) = f.description {
        function.insert("description".into(), d.into());
    }
    function.insert(
        "parameters".into(),
        f.parameters
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    );
    Ok(json!({"type": "function", "function": function}))
}

fn encode_part(provider: &'static str, p: ContentPart) -> Result<Value, Error> {
    match p {
        ContentPart::Text { text, .. } => Ok(json!({"type": "text", "text": text})),
        ContentPart::ImageUrl { image_url, .. } => {
            let mut img = JsonObject::new();
            img.insert("url".into(), image_url.url.into());
            if let Some(d) = image_url.detail {
                img.insert("detail".into(), d.into());
            }
            Ok(json!({"type": "image_url", "image_url": img}))
        }
        ContentPart::InputAudio { .. } => {
            Err(bad(provider, "audio input is not supported").with_param("messages"))
        }
        ContentPart::File { .. } => Err(bad(
            provider,
            "file parts are not supported; pass documents in the 'documents' field",
        )
        .with_param("messages")),
        ContentPart::Refusal { refusal } => Ok(json!({"type": "text", "text": refusal})),
        ContentPart::Other(o) => Ok(Value::Object(o)),
    }
}

fn encode_content(provider: &'static str, c: MessageContent) -> Result<Value, Error> {
    match c {
        MessageContent::Text(s) => Ok(Value::String(s)),
        MessageContent::Parts(parts) => Ok(Value::Array(
            parts
                .into_iter()
                .map(|p| encode_part(provider, p))
                .collect::<Result<_, _>>()?,
        )),
    }
}

fn encode_message(provider: &'static str, mut m: Message) -> Result<Value, Error> {
    let mut out = JsonObject::new();
    match m.role {
        Role::System | Role::Developer => {
            out.insert("role".into(), "system".into());
            out.insert(
                "content".into(),
                encode_content(
                    provider,
                    m.content.unwrap_or(MessageContent::Text(String::new())),
                )?,
            );
        }
        Role::User => {
            out.insert("role".into(), "user".into());
            out.insert(
                "content".into(),
                encode_content(
                    provider,
                    m.content.unwrap_or(MessageContent::Text(String::new())),
                )?,
            );
        }
        Role::Assistant => {
            out.insert("role".into(), "assistant".into());
            let content = m
                .content
                .take()
                .map(|c| encode_content(provider, c))
                .transpose()?;
            let content = match (m.reasoning_content.take(), content) {
                (Some(thinking), content) => {
                    let mut items = vec![json!({"type": "thinking", "thinking": thinking})];
                    match content {
                        Some(Value::String(s)) if !s.is_empty() => {
                            items.push(json!({"type": "text", "text": s}));
                        }
                        Some(Value::Array(a)) => items.extend(a),
                        _ => {}
                    }
                    Some(Value::Array(items))
                }
                (None, Some(Value::String(s))) if s.is_empty() && m.tool_calls.is_some() => None,
                (None, c) => c,
            };
            if let Some(c) = content {
                out.insert("content".into(), c);
            }
            if let Some(plan) = m.extra.remove("tool_plan") {
                out.insert("tool_plan".into(), plan);
            }
            if let Some(calls) = m.tool_calls.take().filter(|c| !c.is_empty()) {
                let calls: Vec<Value> = calls
                    .into_iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function", "function":
                            {"name": c.function.name, "arguments": c.function.arguments}})
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
            }
            if !out.contains_key("content") && !out.contains_key("tool_calls") {
                out.insert("content".into(), "".into());
            }
        }
        Role::Tool => {
            let Some(id) = m.tool_call_id else {
                return Err(
                    bad(provider, "a tool message needs 'tool_call_id'").with_param("messages")
                );
            };
            out.insert("role".into(), "tool".into());
            out.insert("tool_call_id".into(), id.into());
            out.insert(
                "content".into(),
                encode_content(
                    provider,
                    m.content.unwrap_or(MessageContent::Text(String::new())),
                )?,
            );
        }
        Role::Function => {
            return Err(bad(
                provider,
                "legacy 'function' messages are not supported; use tool messages",
            )
            .with_param("messages"));
        }
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------
// Chat response
// ---------------------------------------------------------------------------------------

/// Cohere's `finish_reason` in OpenAI's terms.
pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "COMPLETE" | "STOP_SEQUENCE" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "TOOL_CALL" => FinishReason::ToolCalls,
        "ERROR_TOXIC" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

/// A count Cohere may send as a float (`12.0`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(from = "Value")]
struct Count(Option<u64>);

impl From<Value> for Count {
    fn from(v: Value) -> Self {
        Count(v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f.round() as u64)
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
struct WireTokens {
    #[serde(default)]
    input_tokens: Count,
    #[serde(default)]
    output_tokens: Count,
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    billed_units: Option<WireTokens>,
    #[serde(default)]
    tokens: Option<WireTokens>,
    #[serde(default)]
    cached_tokens: Count,
}

impl WireUsage {
    /// Billed units when Cohere reports them (what is charged), else the token counts.
    fn to_usage(&self) -> Usage {
        let pick = |f: fn(&WireTokens) -> Count| {
            self.billed_units
                .as_ref()
                .and_then(|b| f(b).0)
                .or_else(|| self.tokens.as_ref().and_then(|t| f(t).0))
                .unwrap_or(0)
        };
        let mut u = Usage::new(pick(|t| t.input_tokens), pick(|t| t.output_tokens));
        if let Some(c) = self.cached_tokens.0.filter(|c| *c > 0) {
            u.prompt_tokens_details = Some(PromptTokensDetails {
                cached_tokens: Some(c),
                ..PromptTokensDetails::default()
            });
        }
        u
    }
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Default, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
    #[serde(default)]
    citations: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    finish_reason: Option<String>,
    message: WireMessage,
    #[serde(default)]
    usage: Option<WireUsage>,
}

fn tool_call(provider: &'static str, c: WireToolCall, n: usize) -> Result<ToolCall, Error> {
    let f = c.function.unwrap_or_default();
    let name = f
        .name
        .ok_or_else(|| invalid_body(provider, "tool call", "a tool call has no name"))?;
    Ok(ToolCall {
        id: c.id.unwrap_or_else(|| format!("call_{n}")),
        kind: "function".into(),
        function: FunctionCall {
            name,
            arguments: f.arguments.unwrap_or_else(|| "{}".into()),
        },
    })
}

/// Read a `/v2/chat` response. Cohere does not name the model, so `model` (the
/// deployment's) is reported; `tool_plan` and `citations` are kept in the message's extra
/// fields.
pub fn decode_chat(
    provider: &'static str,
    body: &[u8],
    model: &str,
    created: u64,
) -> Result<ChatResponse, Error> {
    let r: WireResponse =
        serde_json::from_slice(body).map_err(|e| invalid_body(provider, "chat response", e))?;
    let (mut text, mut thinking) = (None::<String>, None::<String>);
    for item in &r.message.content {
        let append = |slot: &mut Option<String>, s: &str| slot.get_or_insert_default().push_str(s);
        match item["type"].as_str() {
            Some("text") => append(&mut text, item["text"].as_str().unwrap_or_default()),
            Some("thinking") => {
                append(&mut thinking, item["thinking"].as_str().unwrap_or_default())
            }
            _ => {}
        }
    }
    let tool_calls = match r.message.tool_calls {
        Some(calls) if !calls.is_empty() => Some(
            calls
                .into_iter()
                .enumerate()
                .map(|(n, c)| tool_call(provider, c, n))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let mut message = ResponseMessage::assistant("");
    message.content = text;
    message.reasoning_content = thinking;
    if let Some(plan) = r.message.tool_plan.filter(|p| !p.is_empty()) {
        message.extra.insert("tool_plan".into(), plan.into());
    }
    if let Some(c) = r.message.citations.filter(|c| !c.is_null()) {
        message.extra.insert("citations".into(), c);
    }
    let finish = match r.finish_reason.as_deref() {
        Some(f) => finish_reason(f),
        None if tool_calls.is_some() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    message.tool_calls = tool_calls;
    Ok(ChatResponse {
        id: r.id,
        object: "chat.completion".into(),
        created,
        model: model.to_owned(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish),
            logprobs: None,
        }],
        usage: Some(r.usage.unwrap_or_default().to_usage()),
        system_fingerprint: None,
        service_tier: None,
        extra: JsonObject::new(),
    })
}

// ---------------------------------------------------------------------------------------
// Chat stream
// ---------------------------------------------------------------------------------------

/// Turns Cohere's v2 stream events into canonical chunks. Feed it each event's data in
/// order (the event's `type` field names it; the SSE `event:` name is the fallback).
///
/// Output, per event: `message-start` → a chunk with `role: assistant`; `content-delta`
/// → `content` (or `reasoning_content` for thinking); `tool-plan-delta` → a chunk whose
/// `delta.tool_plan` carries the piece; `tool-call-start` → a tool-call delta with
/// `index`, `id`, `type` and name (plus any first arguments); `tool-call-delta` →
/// argument fragments; `citation-start` → a chunk whose `delta.citations` holds the
/// citation; `message-end` → the `finish_reason` chunk, then the usage-only chunk (or an
/// `Err` when it carries an error). Other events yield nothing.
#[derive(Debug)]
pub struct StreamDecoder {
    provider: &'static str,
    id: String,
    model: String,
    created: u64,
    /// Cohere's tool-call index → the OpenAI index (position among this message's calls).
    tool_index: HashMap<u64, u32>,
    done: bool,
}

#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Value,
}

impl StreamDecoder {
    /// A decoder for one stream, reporting `model` (Cohere's events do not name it).
    pub fn new(provider: &'static str, model: &str, created: u64) -> Self {
        Self {
            provider,
            id: String::new(),
            model: model.to_owned(),
            created,
            tool_index: HashMap::new(),
            done: false,
        }
    }

    /// Whether `message-end` was seen: the stream is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Call when the upstream stream ended: an error unless `message-end` arrived.
    pub fn finish(&self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::UpstreamError,
            format!(
                "{}: the upstream stream ended before message-end",
                self.provider
            ),
        )
        .with_origin(Origin::Upstream)
        .with_provider(self.provider))
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        let mut c = ChatChunk::new(self.id.as_str(), self.model.as_str(), self.created);
        c.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        });
        c
    }

    fn extra_chunk(&self, key: &str, value: Value) -> ChatChunk {
        let mut delta = Delta::default();
        delta.extra.insert(key.into(), value);
        self.chunk(delta, None)
    }

    /// Decode one event (`event` is the SSE event name, `data` its data), appending the
    /// chunks it yields to `out`.
    pub fn feed(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut Vec<ChatChunk>,
    ) -> Result<(), Error> {
        let data = data.trim();
        if self.done || data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let ev: WireEvent = serde_json::from_str(data)
            .map_err(|e| invalid_body(self.provider, "stream event", e))?;
        let kind = ev.kind.as_deref().or(event).unwrap_or_default();
        let message = &ev.delta["message"];
        match kind {
            "message-start" => {
                if let Some(id) = ev.id {
                    self.id = id;
                }
                out.push(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "content-start" | "content-delta" => {
                let c = &message["content"];
                if let Some(t) = c["text"].as_str().filter(|t| !t.is_empty()) {
                    out.push(self.chunk(
                        Delta {
                            content: Some(t.to_owned()),
                            ..Delta::default()
                        },
                        None,
                    ));
                }
                if let Some(t) = c["thinking"].as_str().filter(|t| !t.is_empty()) {
                    out.push(self.chunk(
                        Delta {
                            reasoning_content: Some(t.to_owned()),
                            ..Delta::default()
                        },
                        None,
                    ));
                }
            }
            "tool-plan-delta" => {
                if let Some(p) = message["tool_plan"].as_str().filter(|p| !p.is_empty()) {
                    out.push(self.extra_chunk("tool_plan", p.into()));
                }
            }
            "tool-call-start" => {
                let call: WireToolCall = serde_json::from_value(message["tool_calls"].clone())
                    .map_err(|e| invalid_body(self.provider, "tool-call-start event", e))?;
                let next = self.tool_index.len() as u32;
                let index = *self
                    .tool_index
                    .entry(ev.index.unwrap_or(u64::from(next)))
                    .or_insert(next);
                let f = call.function.unwrap_or_default();
                out.push(self.chunk(
                    Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index,
                            id: Some(call.id.unwrap_or_else(|| format!("call_{index}"))),
                            kind: Some("function".into()),
                            function: Some(FunctionCallDelta {
                                name: f.name,
                                arguments: Some(f.arguments.unwrap_or_default()),
                            }),
                        }]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            "tool-call-delta" => {
                let args = message["tool_calls"]["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default();
                let Some(&index) = ev.index.and_then(|i| self.tool_index.get(&i)).or_else(|| {
                    // No index: the latest tool call.
                    self.tool_index.values().max()
                }) else {
                    return Err(invalid_body(
                        self.provider,
                        "stream",
                        "a tool-call-delta before any tool-call-start",
                    ));
                };
                if !args.is_empty() {
                    out.push(self.chunk(
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index,
                                function: Some(FunctionCallDelta {
                                    name: None,
                                    arguments: Some(args.to_owned()),
                                }),
                                ..ToolCallDelta::default()
                            }]),
                            ..Delta::default()
                        },
                        None,
                    ));
                }
            }
            "citation-start" => {
                let c = &message["citations"];
                if !c.is_null() {
                    out.push(self.extra_chunk("citations", json!([c])));
                }
            }
            "message-end" => {
                self.done = true;
                let d = &ev.delta;
                let reason = d["finish_reason"].as_str().unwrap_or("COMPLETE");
                if let Some(err) = d["error"].as_str().filter(|e| !e.is_empty()) {
                    return Err(Error::new(
                        ErrorKind::UpstreamError,
                        format!("{}: {}", self.provider, llmux_http::redact(err, &[])),
                    )
                    .with_origin(Origin::Upstream)
                    .with_provider(self.provider));
                }
                let usage: WireUsage =
                    serde_json::from_value(d["usage"].clone()).unwrap_or_default();
                out.push(self.chunk(Delta::default(), Some(finish_reason(reason))));
                let mut u = ChatChunk::new(self.id.as_str(), self.model.as_str(), self.created);
                u.usage = Some(usage.to_usage());
                out.push(u);
            }
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Embed
// ---------------------------------------------------------------------------------------

/// The `/v2/embed` body: `texts`, `input_type` (the request's extra `input_type`, else
/// [`DEFAULT_INPUT_TYPE`]), `embedding_types: ["float"]` (base64 output is encoded
/// here, from the floats), `output_dimension` from `dimensions`, and `truncate` when the
/// request's extra fields set it.
pub fn encode_embed(
    provider: &'static str,
    req: &EmbeddingRequest,
    model: &str,
) -> Result<JsonObject, Error> {
    let texts: Vec<&str> = match &req.input {
        EmbeddingInput::Text(s) => vec![s.as_str()],
        EmbeddingInput::Texts(v) => v.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(
                bad(provider, "token arrays are not supported; send text").with_param("input")
            );
        }
    };
    let input_type = match req.extra.get("input_type") {
        None => DEFAULT_INPUT_TYPE,
        Some(v) => match v.as_str() {
            Some(t) if INPUT_TYPES.contains(&t) => t,
            _ => {
                return Err(bad(
                    provider,
                    format!("input_type must be one of {}", INPUT_TYPES.join(", ")),
                )
                .with_param("input_type"));
            }
        },
    };
    let mut body = JsonObject::new();
    body.insert("model".into(), model.into());
    body.insert("texts".into(), json!(texts));
    body.insert("input_type".into(), input_type.into());
    body.insert("embedding_types".into(), json!(["float"]));
    if let Some(d) = req.dimensions {
        body.insert("output_dimension".into(), d.into());
    }
    if let Some(t) = req.extra.get("truncate") {
        body.insert("truncate".into(), t.clone());
    }
    Ok(body)
}

#[derive(Debug, Deserialize)]
struct WireEmbedResponse {
    #[serde(default)]
    id: Option<String>,
    embeddings: WireEmbeddings,
    #[serde(default)]
    meta: Option<WireMeta>,
}

#[derive(Debug, Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    float: Option<Vec<Vec<f32>>>,
}

#[derive(Debug, Default, Deserialize)]
struct WireMeta {
    #[serde(default)]
    billed_units: Option<WireBilled>,
    #[serde(default)]
    tokens: Option<WireTokens>,
    #[serde(flatten)]
    rest: JsonObject,
}

#[derive(Debug, Default, Deserialize)]
struct WireBilled {
    #[serde(default)]
    input_tokens: Count,
    #[serde(default)]
    search_units: Count,
    #[serde(flatten)]
    rest: JsonObject,
}

/// Read a `/v2/embed` response into OpenAI's shape; `base64` re-encodes the floats as
/// little-endian f32 (OpenAI's `encoding_format: base64`).
pub fn decode_embed(
    provider: &'static str,
    body: &[u8],
    model: &str,
    base64: bool,
) -> Result<EmbeddingResponse, Error> {
    let r: WireEmbedResponse =
        serde_json::from_slice(body).map_err(|e| invalid_body(provider, "embed response", e))?;
    let vectors = r
        .embeddings
        .float
        .ok_or_else(|| invalid_body(provider, "embed response", "no float embeddings"))?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let mut e = Embedding::new(i as u32, Vec::new());
            e.embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingVector::Float(v)
            };
            e
        })
        .collect();
    let tokens = r
        .meta
        .as_ref()
        .and_then(|m| m.billed_units.as_ref().and_then(|b| b.input_tokens.0))
        .unwrap_or(0);
    let mut out = EmbeddingResponse::new(
        model,
        data,
        EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    );
    if let Some(id) = r.id {
        out.extra.insert("id".into(), id.into());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Rerank
// ---------------------------------------------------------------------------------------

/// The `/v2/rerank` body: `model`, `query`, `documents` as strings (object documents by
/// their `text`, else as compact JSON), `top_n`, `max_tokens_per_doc`.
pub fn encode_rerank(req: &RerankRequest, model: &str) -> JsonObject {
    let mut body = JsonObject::new();
    body.insert("model".into(), model.into());
    body.insert("query".into(), req.query.clone().into());
    body.insert(
        "documents".into(),
        Value::Array(req.documents.iter().map(|d| d.text().into()).collect()),
    );
    if let Some(n) = req.top_n {
        body.insert("top_n".into(), n.into());
    }
    if let Some(n) = req.max_tokens_per_doc {
        body.insert("max_tokens_per_doc".into(), n.into());
    }
    body
}

#[derive(Debug, Deserialize)]
struct WireRerank {
    #[serde(default)]
    id: Option<String>,
    results: Vec<WireRerankResult>,
    #[serde(default)]
    meta: Option<WireMeta>,
}

#[derive(Debug, Deserialize)]
struct WireRerankResult {
    index: u32,
    relevance_score: f64,
}

/// Read a `/v2/rerank` response. `req` is the request it answers: with
/// `return_documents`, each result carries its document's text; an index outside the
/// request's documents is an upstream error.
pub fn decode_rerank(
    provider: &'static str,
    body: &[u8],
    req: &RerankRequest,
) -> Result<RerankResponse, Error> {
    let r: WireRerank =
        serde_json::from_slice(body).map_err(|e| invalid_body(provider, "rerank response", e))?;
    let mut results = Vec::with_capacity(r.results.len());
    for w in r.results {
        let Some(doc) = req.documents.get(w.index as usize) else {
            return Err(invalid_body(
                provider,
                "rerank response",
                format!("result index {} is out of range", w.index),
            ));
        };
        results.push(llmux_core::RerankResult {
            index: w.index,
            relevance_score: w.relevance_score,
            document: (req.return_documents == Some(true))
                .then(|| RerankResultDocument { text: doc.text() }),
        });
    }
    let mut out = RerankResponse::new(r.id.unwrap_or_default(), results);
    if let Some(meta) = r.meta {
        out.meta.extra = meta.rest;
        if let Some(b) = meta.billed_units {
            let mut billed = RerankBilledUnits {
                search_units: b.search_units.0,
                extra: b.rest,
                ..RerankBilledUnits::default()
            };
            if let Some(t) = b.input_tokens.0 {
                billed.total_tokens = Some(t);
            }
            out.meta.billed_units = Some(billed);
        }
        if let Some(t) = meta.tokens {
            out.meta.tokens = Some(RerankTokens {
                input_tokens: t.input_tokens.0,
                output_tokens: t.output_tokens.0,
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(default)]
    message: Option<String>,
}

fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("too many tokens")
        || m.contains("context length")
        || m.contains("context window")
        || m.contains("maximum number of tokens")
}

/// Map a non-2xx answer (`{"id","message"}` or `{"message"}`) to the taxonomy: 400 with
/// a token-limit message → context_window_exceeded, 401/498 → auth, 402 → permission
/// (`billing_error`), 403 → permission, 404 → not_found, 422 → bad_request, 429 →
/// rate_limited, 499 → upstream_error, 500 → upstream_error, 501 → bad_request, 503 →
/// upstream_unavailable, 504 → timeout. `secrets` are redacted from the message.
pub fn decode_error(
    provider: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let message = serde_json::from_slice::<WireError>(body)
        .ok()
        .and_then(|e| e.message)
        .filter(|m| !m.trim().is_empty());
    let kind = match status {
        400 if message.as_deref().is_some_and(is_context_overflow) => {
            ErrorKind::ContextWindowExceeded
        }
        401 | 498 => ErrorKind::Auth,
        402 | 403 => ErrorKind::Permission,
        499 => ErrorKind::UpstreamError,
        501 => ErrorKind::BadRequest,
        s => ErrorKind::from_upstream_status(s),
    };
    let text = match &message {
        Some(m) => llmux_http::redact(m, secrets),
        None => format!("the upstream answered HTTP {status}"),
    };
    let mut e = Error::new(kind, format!("{provider}: {text}"))
        .with_origin(Origin::Upstream)
        .with_provider(provider)
        .with_upstream_status(status);
    if status == 402 {
        e = e.with_code("billing_error");
    }
    if status == 501 {
        e = e.with_code("unsupported_operation");
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
    fn finish_reasons_map() {
        for (s, f) in [
            ("COMPLETE", FinishReason::Stop),
            ("STOP_SEQUENCE", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("TOOL_CALL", FinishReason::ToolCalls),
            ("ERROR_TOXIC", FinishReason::ContentFilter),
            ("ERROR", FinishReason::Other("error".into())),
            ("TIMEOUT", FinishReason::Other("timeout".into())),
        ] {
            assert_eq!(finish_reason(s), f, "{s}");
        }
    }

    #[test]
    fn counts_accept_floats() {
        let u: WireUsage = serde_json::from_value(json!({
            "billed_units": {"input_tokens": 12.0, "output_tokens": 3},
            "tokens": {"input_tokens": 200, "output_tokens": 5}, "cached_tokens": 4
        }))
        .unwrap();
        let u = u.to_usage();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (12, 3, 15)
        );
        assert_eq!(u.cached_tokens(), 4);
        let only_tokens: WireUsage =
            serde_json::from_value(json!({"tokens": {"input_tokens": 7, "output_tokens": 2}}))
                .unwrap();
        assert_eq!(only_tokens.to_usage().total_tokens, 9);
    }
}
