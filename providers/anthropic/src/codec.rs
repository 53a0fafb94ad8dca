//! Pure translation between the canonical (OpenAI-shaped) types and Anthropic's Messages
//! API. No I/O: every function here takes values and returns values, so each rule is
//! testable with fixtures.
//!
//! The codec does not know where the body is sent. [`EncodeOptions`] says whether the body
//! names its `model` (the first-party API) or carries an `anthropic_version` instead (Vertex
//! AI's `rawPredict`, where the model is in the URL); everything else is shared.
//!
//! Request rules, in short (the provider docs list them in full):
//! - system and developer messages become the top-level `system`: a string when every one
//!   of them is a plain string without `cache_control`, else text blocks (one per part);
//! - consecutive messages of one role are merged; `tool` messages become user-role
//!   `tool_result` blocks, placed before other user content of the same turn;
//! - `response_format` is served by a tool named [`JSON_TOOL_NAME`] whose `input_schema` is
//!   the schema; its `input` comes back as the message content;
//! - `max_tokens` is always sent ([`DEFAULT_MAX_TOKENS`] when nothing else says).

use std::time::Duration;

use llmux_core::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails,
    ContentPart, Delta, Error, ErrorKind, FinishReason, FunctionCall, FunctionCallDelta,
    JsonObject, Message, MessageContent, Origin, PromptTokensDetails, ResponseFormat,
    ResponseMessage, Role, Tool, ToolCall, ToolCallDelta, ToolChoice, ToolChoiceMode, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// `max_tokens` when neither the request nor the deployment sets an output limit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The tool that carries a `response_format` answer (the name LiteLLM uses too).
pub const JSON_TOOL_NAME: &str = "json_tool_call";

/// The `anthropic-beta` value a request needs when it references uploaded files.
pub const FILES_API_BETA: &str = "files-api-2025-04-14";

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// Thinking budget for `reasoning_effort: "low"` (and `"minimal"`).
pub const THINKING_BUDGET_LOW: u64 = 1024;

/// Thinking budget for `reasoning_effort: "medium"`.
pub const THINKING_BUDGET_MEDIUM: u64 = 2048;

/// Thinking budget for `reasoning_effort: "high"`.
pub const THINKING_BUDGET_HIGH: u64 = 4096;

/// Request fields outside the canonical model that are passed to Anthropic unchanged;
/// every other unknown field is dropped. (`thinking` and `service_tier` are handled apart.)
pub const PASSTHROUGH_FIELDS: [&str; 7] = [
    "top_k",
    "container",
    "mcp_servers",
    "context_management",
    "inference_geo",
    "output_config",
    "cache_control",
];

/// Anthropic content-block types a client may send as-is inside `content` parts (server
/// tools' calls and results included, so an Anthropic client's history replays unchanged).
const NATIVE_BLOCK_TYPES: [&str; 17] = [
    "text",
    "image",
    "document",
    "search_result",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "container_upload",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
];

/// How to shape a request body for one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// Provider prefix used in error messages (`anthropic`, `vertex_ai`).
    pub provider: &'static str,
    /// The `model` field; `None` leaves it out (Vertex AI names the model in the URL).
    pub model: Option<&'a str>,
    /// An `anthropic_version` body field (Vertex AI: `vertex-2023-10-16`); `None` leaves it
    /// out (the first-party API takes the version as a header).
    pub anthropic_version: Option<&'a str>,
    /// Output limit when the request sets none — the deployment's `max_output_tokens`.
    /// `None` falls back to [`DEFAULT_MAX_TOKENS`].
    pub default_max_tokens: Option<u64>,
    /// Ask for a server-sent event stream (`"stream": true`).
    pub stream: bool,
}

impl<'a> EncodeOptions<'a> {
    /// Anthropic's own Messages API (`POST /v1/messages`) for `model`.
    pub fn messages_api(model: &'a str) -> Self {
        Self {
            provider: "anthropic",
            model: Some(model),
            anthropic_version: None,
            default_max_tokens: None,
            stream: false,
        }
    }

    /// An endpoint that names the model itself and wants `anthropic_version` in the body
    /// (Vertex AI's `rawPredict` / `streamRawPredict`).
    pub fn model_in_url(provider: &'static str, anthropic_version: &'a str) -> Self {
        Self {
            provider,
            model: None,
            anthropic_version: Some(anthropic_version),
            default_max_tokens: None,
            stream: false,
        }
    }

    /// The same options, streamed or not.
    pub fn streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// The same options with the deployment's output limit.
    pub fn with_default_max_tokens(mut self, max_tokens: Option<u64>) -> Self {
        self.default_max_tokens = max_tokens;
        self
    }
}

/// An encoded request: the body and what the rest of the call must know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The JSON body.
    pub body: JsonObject,
    /// `response_format` is served by [`JSON_TOOL_NAME`]; decode with
    /// [`DecodeOptions::json_mode`] set.
    pub json_mode: bool,
    /// `anthropic-beta` values the body needs (e.g. [`FILES_API_BETA`]).
    pub betas: Vec<&'static str>,
}

impl Encoded {
    /// The body as JSON bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self.body)
            .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))
    }

    /// The options to decode the answer to this request with.
    pub fn decode_options(&self, created: u64) -> DecodeOptions {
        DecodeOptions {
            json_mode: self.json_mode,
            created,
        }
    }
}

/// How to read an answer back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The request was encoded in JSON mode: a [`JSON_TOOL_NAME`] tool call is the content.
    pub json_mode: bool,
    /// `created` of the canonical response (Anthropic does not send one).
    pub created: u64,
}

fn bad(provider: &'static str, param: impl Into<String>, message: impl Into<String>) -> Error {
    Error::bad_request(format!("{provider}: {}", message.into()))
        .with_param(param)
        .with_provider(provider)
}

/// Build the Anthropic body for `req`. The request is consumed so large inline data
/// (images, PDFs) moves into the body instead of being copied.
pub fn encode_request(mut req: ChatRequest, opts: &EncodeOptions<'_>) -> Result<Encoded, Error> {
    let p = opts.provider;
    if req.n.is_some_and(|n| n > 1) {
        return Err(bad(
            p,
            "n",
            "Anthropic returns one choice per request; n must be 1",
        ));
    }
    if req.logprobs == Some(true) {
        return Err(bad(
            p,
            "logprobs",
            "Anthropic does not return log probabilities",
        ));
    }
    let mut body = JsonObject::new();
    if let Some(model) = opts.model {
        body.insert("model".into(), model.into());
    }
    if let Some(v) = opts.anthropic_version {
        body.insert("anthropic_version".into(), v.into());
    }
    let mut betas = Vec::new();
    let (system, messages) = encode_messages(p, std::mem::take(&mut req.messages), &mut betas)?;
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(messages));

    // Output limit and extended thinking.
    let thinking = resolve_thinking(p, &mut req)?;
    let client_max = req.max_completion_tokens.or(req.max_tokens).map(u64::from);
    let mut max_tokens = client_max
        .or(opts.default_max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let thinking_enabled = thinking.as_ref().is_some_and(|t| t.enabled);
    if let Some(mut t) = thinking {
        if let Some(budget) = t.budget.filter(|b| max_tokens <= *b) {
            match (client_max.is_some(), t.from_effort) {
                // The limit is ours, not the client's: make room for the answer.
                (false, _) => max_tokens = budget + DEFAULT_MAX_TOKENS,
                // The budget is ours: shrink it under the client's limit.
                (true, true) if max_tokens > MIN_THINKING_BUDGET => {
                    t.set_budget(max_tokens - 1);
                }
                (true, _) => {
                    return Err(bad(
                        p,
                        "max_tokens",
                        format!(
                            "max_tokens ({max_tokens}) must be greater than the thinking budget ({budget})"
                        ),
                    ));
                }
            }
        }
        body.insert("thinking".into(), Value::Object(t.value));
    }
    body.insert("max_tokens".into(), max_tokens.into());

    // Tools, tool choice and JSON mode.
    let json_mode = encode_tools(p, &mut req, thinking_enabled, &mut body)?;

    if let Some(stop) = req.stop.take() {
        let seqs = stop.to_vec();
        if !seqs.is_empty() {
            body.insert("stop_sequences".into(), json!(seqs));
        }
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(t) = req.top_p {
        body.insert("top_p".into(), t.into());
    }
    let user_id = req.user.take().or_else(|| {
        req.metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if let Some(user_id) = user_id {
        body.insert("metadata".into(), json!({ "user_id": user_id }));
    }
    for key in PASSTHROUGH_FIELDS {
        if let Some(v) = req.extra.remove(key) {
            body.insert(key.into(), v);
        }
    }
    if let Some(tier) = req.extra.remove("service_tier")
        && matches!(tier.as_str(), Some("auto" | "standard_only"))
    {
        body.insert("service_tier".into(), tier);
    }
    if opts.stream {
        body.insert("stream".into(), true.into());
    }
    Ok(Encoded {
        body,
        json_mode,
        betas,
    })
}

/// A resolved `thinking` object.
struct Thinking {
    value: JsonObject,
    budget: Option<u64>,
    enabled: bool,
    from_effort: bool,
}

impl Thinking {
    fn set_budget(&mut self, budget: u64) {
        self.budget = Some(budget);
        self.value.insert("budget_tokens".into(), budget.into());
    }
}

/// An explicit `thinking` object wins over `reasoning_effort`.
fn resolve_thinking(p: &'static str, req: &mut ChatRequest) -> Result<Option<Thinking>, Error> {
    if let Some(v) = req.extra.remove("thinking") {
        let Value::Object(value) = v else {
            return Err(bad(p, "thinking", "thinking must be an object"));
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let enabled = matches!(kind, "enabled" | "adaptive");
        let budget = value.get("budget_tokens").and_then(Value::as_u64);
        return Ok(Some(Thinking {
            value,
            budget,
            enabled,
            from_effort: false,
        }));
    }
    let Some(effort) = req.reasoning_effort.take() else {
        return Ok(None);
    };
    let budget = match effort.as_str() {
        "none" => return Ok(None),
        "minimal" | "low" => THINKING_BUDGET_LOW,
        "medium" => THINKING_BUDGET_MEDIUM,
        "high" => THINKING_BUDGET_HIGH,
        other => {
            return Err(bad(
                p,
                "reasoning_effort",
                format!(
                    "unsupported reasoning_effort '{other}' (use none, minimal, low, medium or high)"
                ),
            ));
        }
    };
    let mut value = JsonObject::new();
    value.insert("type".into(), "enabled".into());
    value.insert("budget_tokens".into(), budget.into());
    Ok(Some(Thinking {
        value,
        budget: Some(budget),
        enabled: true,
        from_effort: true,
    }))
}

/// Encodes `tools`, `tool_choice`, `parallel_tool_calls` and `response_format`; returns
/// whether the request is in JSON mode.
fn encode_tools(
    p: &'static str,
    req: &mut ChatRequest,
    thinking_enabled: bool,
    body: &mut JsonObject,
) -> Result<bool, Error> {
    let mut tools = Vec::new();
    for (i, tool) in req.tools.take().unwrap_or_default().into_iter().enumerate() {
        tools.push(encode_tool(p, i, tool)?);
    }
    let client_has_tools = !tools.is_empty();
    let mut choice: Option<JsonObject> = match req.tool_choice.take() {
        None => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(choice_of("auto")),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some(choice_of("none")),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(choice_of("any")),
        Some(ToolChoice::Named(named)) => {
            let mut c = choice_of("tool");
            c.insert("name".into(), named.function.name.into());
            Some(c)
        }
    };
    let schema = match req.response_format.take() {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some((any_object_schema(), None)),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some((
            json_schema.schema.unwrap_or_else(any_object_schema),
            json_schema.description,
        )),
    };
    let json_mode = schema.is_some();
    if let Some((schema, description)) = schema {
        let mut tool = JsonObject::new();
        tool.insert("name".into(), JSON_TOOL_NAME.into());
        if let Some(d) = description {
            tool.insert("description".into(), d.into());
        }
        tool.insert("input_schema".into(), schema);
        tools.push(Value::Object(tool));
        let kind = choice
            .as_ref()
            .and_then(|c| c.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        choice = if thinking_enabled {
            // Anthropic refuses forced tool use while thinking; let the model choose.
            match kind.as_deref() {
                None | Some("none") => Some(choice_of("auto")),
                Some(_) => choice,
            }
        } else if client_has_tools && matches!(kind.as_deref(), Some("tool")) {
            // The client forces one of its own tools this turn: respect it.
            choice
        } else if client_has_tools && !matches!(kind.as_deref(), Some("none")) {
            // Either a client tool or the JSON answer, never free text.
            Some(choice_of("any"))
        } else {
            let mut c = choice_of("tool");
            c.insert("name".into(), JSON_TOOL_NAME.into());
            Some(c)
        };
    }
    if tools.is_empty() {
        if let Some(c) = &choice {
            let kind = c.get("type").and_then(Value::as_str).unwrap_or("");
            if matches!(kind, "any" | "tool") {
                return Err(bad(
                    p,
                    "tool_choice",
                    "tool_choice requires tools; the request defines none",
                ));
            }
        }
        return Ok(json_mode);
    }
    if req.parallel_tool_calls == Some(false) {
        let c = choice.get_or_insert_with(|| choice_of("auto"));
        if c.get("type").and_then(Value::as_str) != Some("none") {
            c.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    body.insert("tools".into(), Value::Array(tools));
    if let Some(c) = choice {
        body.insert("tool_choice".into(), Value::Object(c));
    }
    Ok(json_mode)
}

fn choice_of(kind: &str) -> JsonObject {
    let mut c = JsonObject::new();
    c.insert("type".into(), kind.into());
    c
}

fn any_object_schema() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": true})
}

fn encode_tool(p: &'static str, i: usize, tool: Tool) -> Result<Value, Error> {
    let Tool {
        kind,
        function,
        mut extra,
    } = tool;
    if kind != "function" {
        // An Anthropic tool type (server tools such as web search): passed as declared.
        extra.insert("type".into(), kind.into());
        return Ok(Value::Object(extra));
    }
    let Some(f) = function else {
        return Err(bad(
            p,
            format!("tools[{i}].function"),
            "a function tool needs a function declaration",
        ));
    };
    let mut out = JsonObject::new();
    out.insert("name".into(), f.name.into());
    if let Some(d) = f.description {
        out.insert("description".into(), d.into());
    }
    out.insert(
        "input_schema".into(),
        f.parameters
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    );
    if let Some(cc) = extra.remove("cache_control") {
        out.insert("cache_control".into(), cc);
    }
    Ok(Value::Object(out))
}

/// One Anthropic turn being built.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

fn push_turn(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(t) if t.role == role => t.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

/// Splits the conversation into the top-level `system` and Anthropic's alternating turns.
fn encode_messages(
    p: &'static str,
    messages: Vec<Message>,
    betas: &mut Vec<&'static str>,
) -> Result<(Option<Value>, Vec<Value>), Error> {
    let mut system: Vec<(String, Option<Value>)> = Vec::new();
    let mut system_texts: Vec<String> = Vec::new();
    // Content parts in a system message are kept as blocks (as Anthropic clients send them).
    let mut system_blocks = false;
    let mut turns: Vec<Turn> = Vec::new();
    for (i, mut m) in messages.into_iter().enumerate() {
        let cache_control = m.extra.remove("cache_control");
        match m.role {
            Role::System | Role::Developer => {
                let first = system.len();
                let mut joined = String::new();
                match m.content {
                    None => {}
                    Some(MessageContent::Text(s)) => {
                        joined.push_str(&s);
                        if !s.is_empty() {
                            system.push((s, None));
                        }
                    }
                    Some(MessageContent::Parts(parts)) => {
                        system_blocks = true;
                        for (j, part) in parts.into_iter().enumerate() {
                            let ContentPart::Text { text, mut extra } = part else {
                                return Err(bad(
                                    p,
                                    format!("messages[{i}].content[{j}]"),
                                    "system and developer messages may only contain text",
                                ));
                            };
                            joined.push_str(&text);
                            if !text.is_empty() {
                                system.push((text, extra.remove("cache_control")));
                            }
                        }
                    }
                }
                if let Some(cc) = cache_control
                    && system.len() > first
                    && let Some(last) = system.last_mut()
                {
                    last.1 = Some(cc);
                }
                if !joined.is_empty() {
                    system_texts.push(joined);
                }
            }
            Role::User => {
                let mut blocks = match m.content {
                    None => Vec::new(),
                    Some(c) => encode_content(p, i, c, Role::User, betas)?,
                };
                mark_last(&mut blocks, cache_control);
                push_turn(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(tb) = m.extra.remove("thinking_blocks") {
                    blocks.extend(thinking_blocks(p, i, tb)?);
                }
                if let Some(c) = m.content {
                    blocks.extend(encode_content(p, i, c, Role::Assistant, betas)?);
                }
                for (j, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    blocks.push(tool_use_block(p, i, j, call)?);
                }
                mark_last(&mut blocks, cache_control);
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool => {
                let Some(id) = m.tool_call_id.take() else {
                    return Err(bad(
                        p,
                        format!("messages[{i}].tool_call_id"),
                        "a tool message needs tool_call_id",
                    ));
                };
                let mut block = JsonObject::new();
                block.insert("type".into(), "tool_result".into());
                block.insert("tool_use_id".into(), id.into());
                match m.content {
                    None => {}
                    Some(MessageContent::Text(s)) if s.is_empty() => {}
                    Some(MessageContent::Text(s)) => {
                        block.insert("content".into(), s.into());
                    }
                    Some(c) => {
                        let inner = encode_content(p, i, c, Role::Tool, betas)?;
                        if !inner.is_empty() {
                            block.insert("content".into(), Value::Array(inner));
                        }
                    }
                }
                if let Some(is_error) = m.extra.remove("is_error").filter(Value::is_boolean) {
                    block.insert("is_error".into(), is_error);
                }
                if let Some(cc) = cache_control {
                    block.insert("cache_control".into(), cc);
                }
                push_turn(&mut turns, "user", vec![Value::Object(block)]);
            }
            Role::Function => {
                return Err(bad(
                    p,
                    format!("messages[{i}].role"),
                    "legacy function messages are not supported; send tool messages",
                ));
            }
        }
    }
    let system = if system.is_empty() {
        None
    } else if system_blocks || system.iter().any(|(_, cc)| cc.is_some()) {
        Some(Value::Array(
            system
                .into_iter()
                .map(|(text, cc)| {
                    let mut b = JsonObject::new();
                    b.insert("type".into(), "text".into());
                    b.insert("text".into(), text.into());
                    if let Some(cc) = cc {
                        b.insert("cache_control".into(), cc);
                    }
                    Value::Object(b)
                })
                .collect(),
        ))
    } else {
        Some(Value::String(system_texts.join("\n\n")))
    };
    let messages = turns
        .into_iter()
        .map(|mut t| {
            if t.role == "user" {
                // Anthropic wants a turn's tool results before anything else in it.
                let (mut results, rest): (Vec<Value>, Vec<Value>) = t
                    .blocks
                    .into_iter()
                    .partition(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
                results.extend(rest);
                t.blocks = results;
            }
            json!({"role": t.role, "content": t.blocks})
        })
        .collect();
    Ok((system, messages))
}

fn mark_last(blocks: &mut [Value], cache_control: Option<Value>) {
    if let (Some(cc), Some(Value::Object(last))) = (cache_control, blocks.last_mut()) {
        last.insert("cache_control".into(), cc);
    }
}

fn thinking_blocks(p: &'static str, i: usize, v: Value) -> Result<Vec<Value>, Error> {
    let param = || format!("messages[{i}].thinking_blocks");
    let Value::Array(items) = v else {
        return Err(bad(p, param(), "thinking_blocks must be a list"));
    };
    items
        .into_iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("thinking" | "redacted_thinking") => Ok(b),
            _ => Err(bad(
                p,
                param(),
                "thinking_blocks may only hold thinking and redacted_thinking blocks",
            )),
        })
        .collect()
}

fn tool_use_block(p: &'static str, i: usize, j: usize, call: ToolCall) -> Result<Value, Error> {
    let args = call.function.arguments.trim();
    let input = if args.is_empty() {
        Value::Object(JsonObject::new())
    } else {
        serde_json::from_str::<Value>(args).map_err(|e| {
            bad(
                p,
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                format!("tool call arguments are not valid JSON: {e}"),
            )
        })?
    };
    if !input.is_object() {
        return Err(bad(
            p,
            format!("messages[{i}].tool_calls[{j}].function.arguments"),
            "tool call arguments must be a JSON object",
        ));
    }
    Ok(json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}))
}

fn encode_content(
    p: &'static str,
    i: usize,
    content: MessageContent,
    role: Role,
    betas: &mut Vec<&'static str>,
) -> Result<Vec<Value>, Error> {
    match content {
        MessageContent::Text(s) if s.is_empty() => Ok(Vec::new()),
        MessageContent::Text(s) => Ok(vec![json!({"type": "text", "text": s})]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                if let Some(b) = encode_part(p, i, j, part, role, betas)? {
                    out.push(b);
                }
            }
            Ok(out)
        }
    }
}

fn with_cache_control(mut block: JsonObject, extra: &mut JsonObject) -> Value {
    if let Some(cc) = extra.remove("cache_control") {
        block.insert("cache_control".into(), cc);
    }
    Value::Object(block)
}

/// Splits `data:<media type>;base64,<data>` in place; `None` when `url` is not one.
fn split_data_url(mut url: String) -> Result<(String, String), String> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(url);
    };
    let Some((meta, _)) = rest.split_once(',') else {
        return Err(url);
    };
    let Some(media) = meta.strip_suffix(";base64") else {
        return Err(url);
    };
    let media = media.to_owned();
    let cut = "data:".len() + meta.len() + 1;
    url.replace_range(..cut, "");
    Ok((media, url))
}

fn encode_part(
    p: &'static str,
    i: usize,
    j: usize,
    part: ContentPart,
    role: Role,
    betas: &mut Vec<&'static str>,
) -> Result<Option<Value>, Error> {
    let param = || format!("messages[{i}].content[{j}]");
    let media_allowed = role != Role::Assistant;
    Ok(Some(match part {
        ContentPart::Text { text, mut extra } => {
            if text.is_empty() {
                return Ok(None);
            }
            let mut b = JsonObject::new();
            b.insert("type".into(), "text".into());
            b.insert("text".into(), text.into());
            // Citations of an earlier answer's text go back as they came.
            if let Some(c) = extra.remove("citations").filter(Value::is_array) {
                b.insert("citations".into(), c);
            }
            with_cache_control(b, &mut extra)
        }
        ContentPart::Refusal { refusal } => {
            if refusal.is_empty() {
                return Ok(None);
            }
            json!({"type": "text", "text": refusal})
        }
        ContentPart::ImageUrl {
            image_url,
            mut extra,
        } if media_allowed => {
            let block = if image_url.url.starts_with("data:") {
                match split_data_url(image_url.url) {
                    Ok((media_type, data)) => base64_block("image", media_type, data),
                    Err(_) => {
                        return Err(bad(
                            p,
                            param(),
                            "image data URLs must be base64 (data:<media type>;base64,…)",
                        ));
                    }
                }
            } else if image_url.url.starts_with("https://") || image_url.url.starts_with("http://")
            {
                let mut b = JsonObject::new();
                b.insert("type".into(), "image".into());
                b.insert(
                    "source".into(),
                    json!({"type": "url", "url": image_url.url}),
                );
                b
            } else {
                return Err(bad(
                    p,
                    param(),
                    "image URLs must be http(s) or base64 data URLs",
                ));
            };
            with_cache_control(block, &mut extra)
        }
        ContentPart::File { file, mut extra } if media_allowed => {
            let block = if let Some(data) = file.file_data {
                match split_data_url(data) {
                    Ok((media_type, data)) if media_type == "application/pdf" => {
                        base64_block("document", media_type, data)
                    }
                    Ok((media_type, data)) if media_type.starts_with("image/") => {
                        base64_block("image", media_type, data)
                    }
                    Ok((media_type, _)) => {
                        return Err(bad(
                            p,
                            param(),
                            format!(
                                "file type '{media_type}' is not supported; send PDFs or images"
                            ),
                        ));
                    }
                    Err(_) => {
                        return Err(bad(
                            p,
                            param(),
                            "file_data must be a base64 data URL (data:application/pdf;base64,…)",
                        ));
                    }
                }
            } else if let Some(id) = file.file_id {
                if !betas.contains(&FILES_API_BETA) {
                    betas.push(FILES_API_BETA);
                }
                let mut b = JsonObject::new();
                b.insert("type".into(), "document".into());
                b.insert("source".into(), json!({"type": "file", "file_id": id}));
                b
            } else {
                return Err(bad(p, param(), "a file part needs file_data or file_id"));
            };
            with_cache_control(block, &mut extra)
        }
        ContentPart::InputAudio { .. } => {
            return Err(bad(p, param(), "Anthropic does not accept audio input"));
        }
        ContentPart::Other(obj) => {
            let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
            if !NATIVE_BLOCK_TYPES.contains(&kind) {
                return Err(bad(
                    p,
                    param(),
                    format!("content part type '{kind}' is not supported"),
                ));
            }
            Value::Object(obj)
        }
        ContentPart::ImageUrl { .. } | ContentPart::File { .. } => {
            return Err(bad(
                p,
                param(),
                "assistant messages may not contain images or files",
            ));
        }
    }))
}

fn base64_block(kind: &str, media_type: String, data: String) -> JsonObject {
    let mut source = JsonObject::new();
    source.insert("type".into(), "base64".into());
    source.insert("media_type".into(), media_type.into());
    source.insert("data".into(), data.into());
    let mut b = JsonObject::new();
    b.insert("type".into(), kind.into());
    b.insert("source".into(), Value::Object(source));
    b
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// Anthropic's `usage`, in both the response and the stream events (fields optional
/// because `message_delta` reports only some of them).
#[derive(Debug, Clone, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<WireCacheCreation>,
    #[serde(default)]
    output_tokens_details: Option<WireOutputDetails>,
    #[serde(default)]
    service_tier: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WireCacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WireOutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl WireUsage {
    /// Later reports (cumulative, per Anthropic) replace earlier ones field by field.
    fn merge(&mut self, later: WireUsage) {
        macro_rules! take {
            ($($f:ident),*) => { $( if later.$f.is_some() { self.$f = later.$f; } )* };
        }
        take!(
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
            cache_creation,
            output_tokens_details,
            service_tier
        );
    }

    fn to_usage(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let created = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens.unwrap_or(0) + read + created;
        let mut u = Usage::new(prompt, self.output_tokens.unwrap_or(0));
        u.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(read),
            ..PromptTokensDetails::default()
        });
        if let Some(thinking) = self
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.thinking_tokens)
        {
            u.completion_tokens_details = Some(CompletionTokensDetails {
                reasoning_tokens: Some(thinking),
                ..CompletionTokensDetails::default()
            });
        }
        if let Some(c) = self.cache_creation_input_tokens {
            u.extra
                .insert("cache_creation_input_tokens".into(), c.into());
        }
        if let Some(split) = &self.cache_creation {
            let mut m = JsonObject::new();
            if let Some(n) = split.ephemeral_5m_input_tokens {
                m.insert("ephemeral_5m_input_tokens".into(), n.into());
            }
            if let Some(n) = split.ephemeral_1h_input_tokens {
                m.insert("ephemeral_1h_input_tokens".into(), n.into());
            }
            u.extra.insert("cache_creation".into(), Value::Object(m));
        }
        u
    }
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn invalid_body(provider: &'static str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{provider}: the upstream sent an invalid {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(provider)
}

/// Parse a Messages API response into a chat completion.
pub fn decode_response(
    provider: &'static str,
    body: &[u8],
    opts: &DecodeOptions,
) -> Result<ChatResponse, Error> {
    let msg: WireMessage =
        serde_json::from_slice(body).map_err(|e| invalid_body(provider, "message", e))?;
    let mut text = String::new();
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut citations = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer: Option<String> = None;
    for block in msg.content {
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                if let Some(t) = block.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                }
                if let Some(Value::Array(c)) = block.get("citations") {
                    citations.extend(c.iter().cloned());
                }
            }
            "tool_use" => {
                let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let arguments = input.to_string();
                if opts.json_mode && name == JSON_TOOL_NAME && json_answer.is_none() {
                    json_answer = Some(arguments);
                    continue;
                }
                tool_calls.push(ToolCall {
                    id: block
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments,
                    },
                });
            }
            "thinking" => {
                if let Some(t) = block.get("thinking").and_then(Value::as_str) {
                    reasoning.get_or_insert_with(String::new).push_str(t);
                }
                thinking_blocks.push(block);
            }
            "redacted_thinking" => thinking_blocks.push(block),
            // Server-tool blocks and future types have no OpenAI counterpart.
            _ => {}
        }
    }
    if let Some(answer) = json_answer {
        text.push_str(&answer);
    }
    let mut finish = msg.stop_reason.as_deref().map(finish_reason);
    if opts.json_mode && tool_calls.is_empty() && finish == Some(FinishReason::ToolCalls) {
        finish = Some(FinishReason::Stop);
    }
    let mut extra = JsonObject::new();
    if !thinking_blocks.is_empty() {
        extra.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    if !citations.is_empty() {
        extra.insert("citations".into(), Value::Array(citations));
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(text)
    };
    let service_tier = msg.usage.as_ref().and_then(|u| u.service_tier.clone());
    // Which stop sequence ended the answer (OpenAI's shape has no field for it).
    let mut response_extra = JsonObject::new();
    if let Some(seq) = msg.stop_sequence {
        response_extra.insert("stop_sequence".into(), seq.into());
    }
    Ok(ChatResponse {
        id: msg.id,
        object: "chat.completion".to_owned(),
        created: opts.created,
        model: msg.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content,
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: reasoning,
                extra,
            },
            finish_reason: finish,
            logprobs: None,
        }],
        usage: msg.usage.as_ref().map(WireUsage::to_usage),
        system_fingerprint: None,
        service_tier,
        extra: response_extra,
    })
}

// ---------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------

/// Content-block indexes above this are treated as a broken stream, not grown into.
const MAX_BLOCKS: usize = 4096;

#[derive(Debug)]
enum Block {
    Text,
    Tool { index: u32 },
    JsonTool,
    Thinking { text: String, signature: String },
    Redacted { data: String },
    Other,
}

#[derive(Debug, Deserialize)]
struct WireStart {
    message: WireStartMessage,
}

#[derive(Debug, Deserialize)]
struct WireStartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireBlockStart {
    index: usize,
    content_block: Value,
}

#[derive(Debug, Deserialize)]
struct WireBlockDelta {
    index: usize,
    delta: Value,
}

#[derive(Debug, Deserialize)]
struct WireIndex {
    index: usize,
}

#[derive(Debug, Deserialize)]
struct WireMessageDelta {
    #[serde(default)]
    delta: WireMessageDeltaBody,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct WireMessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireErrorEnvelope {
    error: WireError,
}

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Turns Anthropic's stream events into canonical chunks. Feed it each event's name and
/// data in order; it keeps the state needed to number tool calls the OpenAI way and to
/// report usage once, last.
///
/// Output, per event: `message_start` → a chunk with `role: assistant`; text deltas →
/// `content`; `tool_use` start → a tool-call delta with `index` (position among the
/// message's tool calls), `id`, `type` and name, then `input_json_delta` → argument
/// fragments; `thinking_delta` → `reasoning_content`; at the end of a thinking block, a
/// chunk whose `delta.thinking_blocks` holds the whole block with its signature (to send
/// back on the next turn); `message_delta` → the `finish_reason` chunk (with the matched
/// `stop_sequence` in its extra fields); `message_stop` →
/// the usage-only chunk. `ping` yields nothing; an `error` event is an `Err`.
#[derive(Debug)]
pub struct StreamDecoder {
    provider: &'static str,
    json_mode: bool,
    created: u64,
    id: String,
    model: String,
    usage: WireUsage,
    blocks: Vec<Block>,
    tool_calls: u32,
    done: bool,
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new(provider: &'static str, opts: &DecodeOptions) -> Self {
        Self {
            provider,
            json_mode: opts.json_mode,
            created: opts.created,
            id: String::new(),
            model: String::new(),
            usage: WireUsage::default(),
            blocks: Vec::new(),
            tool_calls: 0,
            done: false,
        }
    }

    /// Whether `message_stop` was seen: the stream is complete.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Call when the upstream stream ended: an error unless `message_stop` arrived.
    pub fn finish(&self) -> Result<(), Error> {
        if self.done {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::UpstreamError,
                format!(
                    "{}: the upstream stream ended before message_stop",
                    self.provider
                ),
            )
            .with_origin(Origin::Upstream)
            .with_provider(self.provider))
        }
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

    fn content(&self, text: &str) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_delta(&self, d: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![d]),
                ..Delta::default()
            },
            None,
        )
    }

    fn parse<'a, T: Deserialize<'a>>(&self, event: &str, data: &'a str) -> Result<T, Error> {
        serde_json::from_str(data).map_err(|e| invalid_body(self.provider, event, e))
    }

    fn block_mut(&mut self, index: usize) -> Option<&mut Block> {
        self.blocks.get_mut(index)
    }

    /// Decode one event (`event` is the SSE event name, `data` its data), appending the
    /// chunks it yields to `out`.
    pub fn feed(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut Vec<ChatChunk>,
    ) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        // The data repeats the event name in `type`; prefer it, fall back to `event:`.
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow, default)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        let named: Kind<'_> = self.parse("stream event", data)?;
        let kind = named
            .kind
            .unwrap_or(std::borrow::Cow::Borrowed(event.unwrap_or_default()));
        match &*kind {
            "message_start" => {
                let s: WireStart = self.parse("message_start event", data)?;
                self.id = s.message.id;
                self.model = s.message.model;
                if let Some(u) = s.message.usage {
                    self.usage.merge(u);
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
            "content_block_start" => {
                let s: WireBlockStart = self.parse("content_block_start event", data)?;
                if s.index >= MAX_BLOCKS {
                    return Err(invalid_body(
                        self.provider,
                        "content_block_start event",
                        "block index out of range",
                    ));
                }
                let cb = &s.content_block;
                let str_of = |k: &str| cb.get(k).and_then(Value::as_str).unwrap_or("");
                let block = match str_of("type") {
                    "text" => {
                        let t = str_of("text");
                        if !t.is_empty() {
                            out.push(self.content(t));
                        }
                        Block::Text
                    }
                    "tool_use" if self.json_mode && str_of("name") == JSON_TOOL_NAME => {
                        Block::JsonTool
                    }
                    "tool_use" => {
                        let index = self.tool_calls;
                        self.tool_calls += 1;
                        out.push(self.tool_delta(ToolCallDelta {
                            index,
                            id: Some(str_of("id").to_owned()),
                            kind: Some("function".to_owned()),
                            function: Some(FunctionCallDelta {
                                name: Some(str_of("name").to_owned()),
                                arguments: Some(String::new()),
                            }),
                        }));
                        Block::Tool { index }
                    }
                    "thinking" => {
                        let t = str_of("thinking");
                        if !t.is_empty() {
                            out.push(self.reasoning(t));
                        }
                        Block::Thinking {
                            text: t.to_owned(),
                            signature: str_of("signature").to_owned(),
                        }
                    }
                    "redacted_thinking" => Block::Redacted {
                        data: str_of("data").to_owned(),
                    },
                    _ => Block::Other,
                };
                while self.blocks.len() < s.index {
                    self.blocks.push(Block::Other);
                }
                if s.index == self.blocks.len() {
                    self.blocks.push(block);
                } else {
                    self.blocks[s.index] = block;
                }
            }
            "content_block_delta" => {
                let d: WireBlockDelta = self.parse("content_block_delta event", data)?;
                let delta = &d.delta;
                let str_of = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
                match str_of("type") {
                    "text_delta" => {
                        let t = str_of("text");
                        if !t.is_empty() {
                            out.push(self.content(t));
                        }
                    }
                    "input_json_delta" => {
                        let part = str_of("partial_json");
                        if part.is_empty() {
                            return Ok(());
                        }
                        match self.blocks.get(d.index) {
                            Some(Block::JsonTool) => out.push(self.content(part)),
                            Some(&Block::Tool { index }) => {
                                out.push(self.tool_delta(ToolCallDelta {
                                    index,
                                    function: Some(FunctionCallDelta {
                                        name: None,
                                        arguments: Some(part.to_owned()),
                                    }),
                                    ..ToolCallDelta::default()
                                }))
                            }
                            _ => {}
                        }
                    }
                    "thinking_delta" => {
                        let t = str_of("thinking").to_owned();
                        if let Some(Block::Thinking { text, .. }) = self.block_mut(d.index) {
                            text.push_str(&t);
                        }
                        if !t.is_empty() {
                            out.push(self.reasoning(&t));
                        }
                    }
                    "signature_delta" => {
                        let s = str_of("signature").to_owned();
                        if let Some(Block::Thinking { signature, .. }) = self.block_mut(d.index) {
                            signature.push_str(&s);
                        }
                    }
                    "citations_delta" => {
                        if let Some(c) = delta.get("citation") {
                            let mut extra = JsonObject::new();
                            extra.insert("citations".into(), Value::Array(vec![c.clone()]));
                            out.push(self.chunk(
                                Delta {
                                    extra,
                                    ..Delta::default()
                                },
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let s: WireIndex = self.parse("content_block_stop event", data)?;
                let block = match self.blocks.get_mut(s.index) {
                    Some(Block::Thinking { text, signature }) => Some(json!({
                        "type": "thinking",
                        "thinking": std::mem::take(text),
                        "signature": std::mem::take(signature),
                    })),
                    Some(Block::Redacted { data }) => Some(json!({
                        "type": "redacted_thinking",
                        "data": std::mem::take(data),
                    })),
                    _ => None,
                };
                if let Some(b) = block {
                    let mut extra = JsonObject::new();
                    extra.insert("thinking_blocks".into(), Value::Array(vec![b]));
                    out.push(self.chunk(
                        Delta {
                            extra,
                            ..Delta::default()
                        },
                        None,
                    ));
                }
            }
            "message_delta" => {
                let d: WireMessageDelta = self.parse("message_delta event", data)?;
                if let Some(u) = d.usage {
                    self.usage.merge(u);
                }
                if let Some(reason) = d.delta.stop_reason {
                    let mut finish = finish_reason(&reason);
                    if self.json_mode && self.tool_calls == 0 && finish == FinishReason::ToolCalls {
                        finish = FinishReason::Stop;
                    }
                    let mut c = self.chunk(Delta::default(), Some(finish));
                    if let Some(seq) = d.delta.stop_sequence {
                        c.extra.insert("stop_sequence".into(), seq.into());
                    }
                    out.push(c);
                }
            }
            "message_stop" => {
                let mut c = ChatChunk::new(self.id.as_str(), self.model.as_str(), self.created);
                c.usage = Some(self.usage.to_usage());
                c.service_tier = self.usage.service_tier.clone();
                out.push(c);
                self.done = true;
            }
            "error" => {
                let e: WireErrorEnvelope = self.parse("error event", data)?;
                return Err(error_from_type(
                    self.provider,
                    &e.error.kind,
                    &e.error.message,
                    None,
                    None,
                    &[],
                ));
            }
            // `ping` and event types added later carry nothing for a chat completion.
            _ => {}
        }
        Ok(())
    }

    fn reasoning(&self, text: &str) -> ChatChunk {
        self.chunk(
            Delta {
                reasoning_content: Some(text.to_owned()),
                ..Delta::default()
            },
            None,
        )
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("prompt is too long") || m.contains("exceed context limit")
}

fn error_from_type(
    provider: &'static str,
    kind: &str,
    message: &str,
    status: Option<u16>,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let by_status = |s: Option<u16>| {
        s.map(ErrorKind::from_upstream_status)
            .unwrap_or(ErrorKind::UpstreamError)
    };
    let mapped = match kind {
        "invalid_request_error" if is_context_overflow(message) => ErrorKind::ContextWindowExceeded,
        "invalid_request_error" => match status {
            Some(s) if s != 400 => ErrorKind::from_upstream_status(s),
            _ => ErrorKind::BadRequest,
        },
        "authentication_error" => ErrorKind::Auth,
        "permission_error" | "billing_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::PayloadTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "api_error" => ErrorKind::UpstreamError,
        "overloaded_error" => ErrorKind::UpstreamUnavailable,
        "timeout_error" => ErrorKind::Timeout,
        _ => by_status(status),
    };
    let message = llmux_http::redact(message, secrets);
    let mut e = Error::new(mapped, format!("{provider}: {message}"))
        .with_origin(Origin::Upstream)
        .with_provider(provider);
    if kind == "billing_error" {
        e = e.with_code("billing_error");
    }
    if let Some(s) = status {
        e = e.with_upstream_status(s);
    }
    if let Some(r) = retry_after {
        e = e.with_retry_after(r);
    }
    e
}

/// Map a non-2xx answer (`{"type":"error","error":{"type","message"}}`) to the taxonomy.
/// `secrets` are redacted from the message.
pub fn decode_error(
    provider: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    match serde_json::from_slice::<WireErrorEnvelope>(body) {
        Ok(b) => error_from_type(
            provider,
            &b.error.kind,
            &b.error.message,
            Some(status),
            retry_after,
            secrets,
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_split_in_place() {
        let (m, d) = split_data_url("data:image/png;base64,iVBOR".into()).unwrap();
        assert_eq!((m.as_str(), d.as_str()), ("image/png", "iVBOR"));
        assert!(split_data_url("data:image/png,raw".into()).is_err());
        assert!(split_data_url("https://x/y.png".into()).is_err());
    }

    #[test]
    fn stop_reasons_map() {
        for (s, f) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("pause_turn", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("brand_new", FinishReason::Other("brand_new".into())),
        ] {
            assert_eq!(finish_reason(s), f, "{s}");
        }
    }
}
