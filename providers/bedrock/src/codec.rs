//! Pure translation between the canonical (OpenAI-shaped) types and Bedrock's Converse
//! API. No I/O: each function takes values and returns values, so every rule is testable
//! with fixtures.
//!
//! Request rules, in short (`docs/providers/bedrock.md` lists them in full):
//! - system and developer messages become the top-level `system` text blocks;
//! - consecutive messages of one role are merged into one turn; `tool` messages become
//!   `toolResult` blocks of a user turn, placed before other content of that turn;
//! - `max_tokens`/`max_completion_tokens`, `temperature`, `top_p` and `stop` go to
//!   `inferenceConfig`; `thinking`, `reasoning_effort` (Anthropic models), `top_k` and the
//!   client's own `additionalModelRequestFields` go to `additionalModelRequestFields`;
//! - tools become `toolConfig.tools[].toolSpec`, `tool_choice` becomes `toolChoice`
//!   (`auto`, `any`, `tool`); `response_format` is served by a forced tool named
//!   [`JSON_TOOL_NAME`] whose input is returned as the message content;
//! - `cache_control` on a message, part or tool becomes a `cachePoint` block after it.

use std::time::Duration;

use llmux_core::{
    ChatRequest, ChatResponse, Choice, ContentPart, Error, ErrorKind, FinishReason, FunctionCall,
    JsonObject, Message, MessageContent, Origin, PromptTokensDetails, ResponseFormat,
    ResponseMessage, Role, Tool, ToolCall, ToolChoice, ToolChoiceMode, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The tool that carries a `response_format` answer (the name LiteLLM uses too).
pub const JSON_TOOL_NAME: &str = "json_tool_call";

/// Thinking budget for `reasoning_effort: "low"` (and `"minimal"`) on Anthropic models.
pub const THINKING_BUDGET_LOW: u64 = 1024;
/// Thinking budget for `reasoning_effort: "medium"`.
pub const THINKING_BUDGET_MEDIUM: u64 = 2048;
/// Thinking budget for `reasoning_effort: "high"`.
pub const THINKING_BUDGET_HIGH: u64 = 4096;
/// Room left for the answer above the thinking budget when the client sets no limit.
pub const ANSWER_TOKENS_OVER_BUDGET: u64 = 4096;

/// Top-level Converse fields a client may send as extra request fields; passed unchanged.
pub const PASSTHROUGH_FIELDS: [&str; 5] = [
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
    "additionalModelResponseFieldPaths",
];

/// Converse content-block kinds a client may send as-is inside `content` parts.
const NATIVE_BLOCKS: [&str; 8] = [
    "text",
    "image",
    "document",
    "video",
    "guardContent",
    "cachePoint",
    "toolUse",
    "toolResult",
];

const PROVIDER: &str = "bedrock";

/// How to shape a request body.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// The Bedrock model id (foundation model, inference profile or ARN): decides
    /// model-family details (Anthropic `thinking`/`top_k`, Nova `topK`).
    pub model: &'a str,
}

/// An encoded Converse request.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The JSON body (the same for `/converse` and `/converse-stream`).
    pub body: JsonObject,
    /// `response_format` is served by [`JSON_TOOL_NAME`]; decode with
    /// [`DecodeOptions::json_mode`] set.
    pub json_mode: bool,
}

impl Encoded {
    /// The body as JSON bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(&self.body)
            .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))
    }
}

/// How to read an answer back. Bedrock sends neither an id, a model nor a timestamp in
/// the body: the caller supplies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The completion id (`chatcmpl-…`).
    pub id: String,
    /// The model reported back (the deployment's model id).
    pub model: String,
    /// `created` (Unix seconds).
    pub created: u64,
    /// The request was encoded in JSON mode: a [`JSON_TOOL_NAME`] tool call is the content.
    pub json_mode: bool,
}

fn bad(param: impl Into<String>, message: impl Into<String>) -> Error {
    Error::bad_request(format!("{PROVIDER}: {}", message.into()))
        .with_param(param)
        .with_provider(PROVIDER)
}

/// Whether `model` (an id, inference profile or ARN) is one of Anthropic's.
pub fn is_anthropic_model(model: &str) -> bool {
    model.contains("anthropic.")
}

fn is_nova_model(model: &str) -> bool {
    model.contains("amazon.nova")
}

/// Build the Converse body for `req`. The request is consumed so inline data (images,
/// documents) moves into the body instead of being copied.
pub fn encode_request(mut req: ChatRequest, opts: &EncodeOptions<'_>) -> Result<Encoded, Error> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(bad(
            "n",
            "Bedrock returns one choice per request; n must be 1",
        ));
    }
    if req.logprobs == Some(true) {
        return Err(bad(
            "logprobs",
            "the Converse API does not return log probabilities",
        ));
    }
    let mut body = JsonObject::new();
    let (system, messages, has_tool_blocks) = encode_messages(std::mem::take(&mut req.messages))?;
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }

    // Model-specific fields: ours first, the client's own on top.
    let mut additional = JsonObject::new();
    let thinking = resolve_thinking(&mut req, opts.model)?;
    let client_max = req.max_completion_tokens.or(req.max_tokens).map(u64::from);
    let mut max_tokens = client_max;
    let thinking_enabled = thinking.as_ref().is_some_and(|t| t.enabled);
    if let Some(t) = thinking {
        if let Some(budget) = t.budget {
            match client_max {
                None => max_tokens = Some(budget + ANSWER_TOKENS_OVER_BUDGET),
                Some(m) if m <= budget => {
                    return Err(bad(
                        "max_tokens",
                        format!(
                            "max_tokens ({m}) must be greater than the thinking budget ({budget})"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        additional.insert("thinking".into(), Value::Object(t.value));
    }
    if let Some(k) = req.extra.remove("top_k") {
        if is_nova_model(opts.model) {
            additional.insert("inferenceConfig".into(), json!({ "topK": k }));
        } else {
            additional.insert("top_k".into(), k);
        }
    }
    match req.extra.remove("additionalModelRequestFields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(client)) => additional.extend(client),
        Some(_) => {
            return Err(bad(
                "additionalModelRequestFields",
                "additionalModelRequestFields must be an object",
            ));
        }
    }

    let mut inference = JsonObject::new();
    if let Some(m) = max_tokens {
        inference.insert("maxTokens".into(), m.into());
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), t.into());
    }
    if let Some(t) = req.top_p {
        inference.insert("topP".into(), t.into());
    }
    if let Some(stop) = req.stop.take() {
        let seqs: Vec<String> = stop
            .to_vec()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if !seqs.is_empty() {
            inference.insert("stopSequences".into(), json!(seqs));
        }
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }

    let json_mode = encode_tools(&mut req, thinking_enabled, has_tool_blocks, &mut body)?;
    if !additional.is_empty() {
        body.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }
    for key in PASSTHROUGH_FIELDS {
        if let Some(v) = req.extra.remove(key) {
            body.insert(key.into(), v);
        }
    }
    Ok(Encoded { body, json_mode })
}

/// A resolved `thinking` object for `additionalModelRequestFields`.
struct Thinking {
    value: JsonObject,
    budget: Option<u64>,
    enabled: bool,
}

/// An explicit `thinking` object wins over `reasoning_effort` (Anthropic models only).
fn resolve_thinking(req: &mut ChatRequest, model: &str) -> Result<Option<Thinking>, Error> {
    if let Some(v) = req.extra.remove("thinking") {
        let Value::Object(value) = v else {
            return Err(bad("thinking", "thinking must be an object"));
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let enabled = matches!(kind, "enabled" | "adaptive");
        let budget = value.get("budget_tokens").and_then(Value::as_u64);
        req.reasoning_effort = None;
        return Ok(Some(Thinking {
            value,
            budget,
            enabled,
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
                "reasoning_effort",
                format!(
                    "unsupported reasoning_effort '{other}' (use none, minimal, low, medium or high)"
                ),
            ));
        }
    };
    if !is_anthropic_model(model) {
        return Err(bad(
            "reasoning_effort",
            "reasoning_effort is mapped for Anthropic models on Bedrock only; send the \
             model's own fields in additionalModelRequestFields",
        ));
    }
    let mut value = JsonObject::new();
    value.insert("type".into(), "enabled".into());
    value.insert("budget_tokens".into(), budget.into());
    Ok(Some(Thinking {
        value,
        budget: Some(budget),
        enabled: true,
    }))
}

fn cache_point() -> Value {
    json!({"cachePoint": {"type": "default"}})
}

fn choice_of(kind: &str) -> Value {
    json!({ kind: {} })
}

fn named_choice(name: &str) -> Value {
    json!({"tool": {"name": name}})
}

fn any_object_schema() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": true})
}

fn tool_spec(name: String, description: Option<String>, schema: Value) -> Value {
    let mut spec = JsonObject::new();
    spec.insert("name".into(), name.into());
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        spec.insert("description".into(), d.into());
    }
    spec.insert("inputSchema".into(), json!({ "json": schema }));
    json!({ "toolSpec": spec })
}

/// Encodes `tools`, `tool_choice` and `response_format` into `toolConfig`; returns whether
/// the request is in JSON mode.
fn encode_tools(
    req: &mut ChatRequest,
    thinking_enabled: bool,
    has_tool_blocks: bool,
    body: &mut JsonObject,
) -> Result<bool, Error> {
    let mut tools = Vec::new();
    for (i, tool) in req.tools.take().unwrap_or_default().into_iter().enumerate() {
        encode_tool(i, tool, &mut tools)?;
    }
    let client_has_tools = !tools.is_empty();
    let choice_mode = req.tool_choice.take();
    let choice_mode_none = matches!(choice_mode, Some(ToolChoice::Mode(ToolChoiceMode::None)));
    // `none` has no Converse counterpart: without earlier tool calls the tools are left
    // out; with them, Bedrock needs the tool list, so the model is left to choose.
    if choice_mode_none && !has_tool_blocks {
        tools.clear();
    }
    let mut choice: Option<Value> = match choice_mode {
        None | Some(ToolChoice::Mode(ToolChoiceMode::None)) => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(choice_of("auto")),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some(choice_of("any")),
        Some(ToolChoice::Named(named)) => Some(named_choice(&named.function.name)),
    };
    let forced_by_client = matches!(&choice, Some(c) if c.get("tool").is_some());
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
        tools.push(tool_spec(JSON_TOOL_NAME.to_owned(), description, schema));
        choice = if thinking_enabled {
            // Forced tool use is refused while thinking: let the model choose.
            if forced_by_client {
                choice
            } else {
                Some(choice_of("auto"))
            }
        } else if forced_by_client {
            choice
        } else if client_has_tools && !choice_mode_none {
            Some(choice_of("any"))
        } else {
            Some(named_choice(JSON_TOOL_NAME))
        };
    }
    if tools.is_empty() {
        if matches!(&choice, Some(c) if c.get("any").is_some() || c.get("tool").is_some()) {
            return Err(bad(
                "tool_choice",
                "tool_choice requires tools; the request defines none",
            ));
        }
        return Ok(json_mode);
    }
    let mut config = JsonObject::new();
    config.insert("tools".into(), Value::Array(tools));
    if let Some(c) = choice {
        config.insert("toolChoice".into(), c);
    }
    body.insert("toolConfig".into(), Value::Object(config));
    Ok(json_mode)
}

fn encode_tool(i: usize, tool: Tool, out: &mut Vec<Value>) -> Result<(), Error> {
    let Tool {
        kind,
        function,
        mut extra,
    } = tool;
    if kind != "function" {
        return Err(bad(
            format!("tools[{i}].type"),
            format!("tool type '{kind}' is not supported; Bedrock takes function tools"),
        ));
    }
    let Some(f) = function else {
        return Err(bad(
            format!("tools[{i}].function"),
            "a function tool needs a function declaration",
        ));
    };
    out.push(tool_spec(
        f.name,
        f.description,
        f.parameters
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    ));
    if extra.remove("cache_control").is_some() {
        out.push(cache_point());
    }
    Ok(())
}

/// One Converse turn being built.
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

/// Splits the conversation into `system` blocks and alternating turns; also says whether
/// any turn carries `toolUse` or `toolResult` blocks.
fn encode_messages(messages: Vec<Message>) -> Result<(Vec<Value>, Vec<Value>, bool), Error> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut has_tool_blocks = false;
    for (i, mut m) in messages.into_iter().enumerate() {
        let cache = m.extra.remove("cache_control").is_some();
        match m.role {
            Role::System | Role::Developer => {
                let before = system.len();
                match m.content {
                    None => {}
                    Some(MessageContent::Text(s)) if !s.is_empty() => {
                        system.push(json!({ "text": s }));
                    }
                    Some(MessageContent::Text(_)) => {}
                    Some(MessageContent::Parts(parts)) => {
                        for (j, part) in parts.into_iter().enumerate() {
                            let ContentPart::Text { text, mut extra } = part else {
                                return Err(bad(
                                    format!("messages[{i}].content[{j}]"),
                                    "system and developer messages may only contain text",
                                ));
                            };
                            if !text.is_empty() {
                                system.push(json!({ "text": text }));
                                if extra.remove("cache_control").is_some() {
                                    system.push(cache_point());
                                }
                            }
                        }
                    }
                }
                if cache && system.len() > before {
                    system.push(cache_point());
                }
            }
            Role::User => {
                let mut blocks = match m.content {
                    None => Vec::new(),
                    Some(c) => encode_content(i, c, Role::User)?,
                };
                if cache && !blocks.is_empty() {
                    blocks.push(cache_point());
                }
                push_turn(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(tb) = m.extra.remove("thinking_blocks") {
                    blocks.extend(reasoning_blocks(i, tb)?);
                }
                if let Some(c) = m.content {
                    blocks.extend(encode_content(i, c, Role::Assistant)?);
                }
                if let Some(r) = m.refusal.take().filter(|r| !r.is_empty())
                    && blocks.is_empty()
                {
                    blocks.push(json!({ "text": r }));
                }
                for (j, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    blocks.push(tool_use_block(i, j, call)?);
                    has_tool_blocks = true;
                }
                if cache && !blocks.is_empty() {
                    blocks.push(cache_point());
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Role::Tool => {
                let Some(id) = m.tool_call_id.take() else {
                    return Err(bad(
                        format!("messages[{i}].tool_call_id"),
                        "a tool message needs tool_call_id",
                    ));
                };
                let content = match m.content {
                    None => Vec::new(),
                    Some(MessageContent::Text(s)) => vec![json!({ "text": s })],
                    Some(c) => encode_content(i, c, Role::Tool)?,
                };
                let content = if content.is_empty() {
                    vec![json!({ "text": "" })]
                } else {
                    content
                };
                let mut blocks = vec![json!({"toolResult": {"toolUseId": id, "content": content}})];
                if cache {
                    blocks.push(cache_point());
                }
                has_tool_blocks = true;
                push_turn(&mut turns, "user", blocks);
            }
            Role::Function => {
                return Err(bad(
                    format!("messages[{i}].role"),
                    "legacy function messages are not supported; send tool messages",
                ));
            }
        }
    }
    let messages = turns
        .into_iter()
        .map(|mut t| {
            if t.role == "user" {
                // A turn's tool results come before anything else in it.
                let (mut results, rest): (Vec<Value>, Vec<Value>) = t
                    .blocks
                    .into_iter()
                    .partition(|b| b.get("toolResult").is_some());
                if !results.is_empty() {
                    results.extend(rest);
                    t.blocks = results;
                } else {
                    t.blocks = rest;
                }
            }
            json!({"role": t.role, "content": t.blocks})
        })
        .collect();
    Ok((system, messages, has_tool_blocks))
}

/// `thinking_blocks` of an earlier assistant turn as `reasoningContent` blocks.
fn reasoning_blocks(i: usize, v: Value) -> Result<Vec<Value>, Error> {
    let param = || format!("messages[{i}].thinking_blocks");
    let Value::Array(items) = v else {
        return Err(bad(param(), "thinking_blocks must be a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for b in items {
        let str_of = |k: &str| b.get(k).and_then(Value::as_str);
        match str_of("type") {
            Some("thinking") => {
                let mut text = JsonObject::new();
                text.insert("text".into(), str_of("thinking").unwrap_or("").into());
                if let Some(s) = str_of("signature").filter(|s| !s.is_empty()) {
                    text.insert("signature".into(), s.into());
                }
                out.push(json!({"reasoningContent": {"reasoningText": text}}));
            }
            Some("redacted_thinking") => {
                let data = str_of("data").unwrap_or("");
                out.push(json!({"reasoningContent": {"redactedContent": data}}));
            }
            _ => {
                return Err(bad(
                    param(),
                    "thinking_blocks may only hold thinking and redacted_thinking blocks",
                ));
            }
        }
    }
    Ok(out)
}

fn tool_use_block(i: usize, j: usize, call: ToolCall) -> Result<Value, Error> {
    let param = || format!("messages[{i}].tool_calls[{j}].function.arguments");
    let args = call.function.arguments.trim();
    let input = if args.is_empty() {
        Value::Object(JsonObject::new())
    } else {
        serde_json::from_str::<Value>(args).map_err(|e| {
            bad(
                param(),
                format!("tool call arguments are not valid JSON: {e}"),
            )
        })?
    };
    if !input.is_object() {
        return Err(bad(param(), "tool call arguments must be a JSON object"));
    }
    Ok(json!({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": input}}))
}

fn encode_content(i: usize, content: MessageContent, role: Role) -> Result<Vec<Value>, Error> {
    match content {
        MessageContent::Text(s) if s.is_empty() => Ok(Vec::new()),
        MessageContent::Text(s) => Ok(vec![json!({ "text": s })]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                encode_part(i, j, part, role, &mut out)?;
            }
            Ok(out)
        }
    }
}

/// Splits `data:<media type>;base64,<data>` in place.
fn split_data_url(mut url: String) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, _) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?.to_ascii_lowercase();
    let cut = "data:".len() + meta.len() + 1;
    url.replace_range(..cut, "");
    Some((media, url))
}

/// The Converse `image.format` for a media type.
pub fn image_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    })
}

/// The Converse `document.format` for a media type.
pub fn document_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

/// A document name Bedrock accepts (letters, digits, spaces, hyphens, parentheses and
/// square brackets; no runs of spaces).
fn document_name(filename: Option<&str>, fallback: String) -> String {
    let stem = filename
        .map(|f| f.rsplit_once('.').map_or(f, |(s, _)| s))
        .unwrap_or("");
    let mut out = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']') {
            c
        } else {
            ' '
        };
        if !(c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            out.push(c);
        }
    }
    let out = out.trim_end().to_owned();
    if out.is_empty() { fallback } else { out }
}

fn encode_part(
    i: usize,
    j: usize,
    part: ContentPart,
    role: Role,
    out: &mut Vec<Value>,
) -> Result<(), Error> {
    let param = || format!("messages[{i}].content[{j}]");
    let media_allowed = role != Role::Assistant;
    let mut cache = false;
    match part {
        ContentPart::Text { text, mut extra } => {
            if text.is_empty() {
                return Ok(());
            }
            cache = extra.remove("cache_control").is_some();
            out.push(json!({ "text": text }));
        }
        ContentPart::Refusal { refusal } => {
            if !refusal.is_empty() {
                out.push(json!({ "text": refusal }));
            }
        }
        ContentPart::ImageUrl {
            image_url,
            mut extra,
        } if media_allowed => {
            if !image_url.url.starts_with("data:") {
                return Err(bad(
                    param(),
                    "Bedrock takes images inline: send a base64 data URL (data:image/png;base64,…)",
                ));
            }
            let Some((media, data)) = split_data_url(image_url.url) else {
                return Err(bad(
                    param(),
                    "image data URLs must be base64 (data:<media type>;base64,…)",
                ));
            };
            let Some(format) = image_format(&media) else {
                return Err(bad(
                    param(),
                    format!("image type '{media}' is not supported (png, jpeg, gif, webp)"),
                ));
            };
            cache = extra.remove("cache_control").is_some();
            out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
        }
        ContentPart::File { file, mut extra } if media_allowed => {
            let Some(data) = file.file_data else {
                return Err(bad(
                    param(),
                    "Bedrock takes files inline: send file_data as a base64 data URL",
                ));
            };
            let Some((media, data)) = split_data_url(data) else {
                return Err(bad(
                    param(),
                    "file_data must be a base64 data URL (data:application/pdf;base64,…)",
                ));
            };
            cache = extra.remove("cache_control").is_some();
            if let Some(format) = image_format(&media) {
                out.push(json!({"image": {"format": format, "source": {"bytes": data}}}));
            } else if let Some(format) = document_format(&media) {
                let name = document_name(file.filename.as_deref(), format!("document-{i}-{j}"));
                out.push(json!({"document": {"format": format, "name": name,
                    "source": {"bytes": data}}}));
            } else {
                return Err(bad(
                    param(),
                    format!("file type '{media}' is not supported on Bedrock"),
                ));
            }
        }
        ContentPart::InputAudio { .. } => {
            return Err(bad(param(), "the Converse API does not accept audio input"));
        }
        ContentPart::Other(obj) => {
            let native = obj.len() == 1
                && obj
                    .keys()
                    .next()
                    .is_some_and(|k| NATIVE_BLOCKS.contains(&k.as_str()));
            if !native {
                let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
                return Err(bad(
                    param(),
                    format!("content part type '{kind}' is not supported"),
                ));
            }
            out.push(Value::Object(obj));
        }
        ContentPart::ImageUrl { .. } | ContentPart::File { .. } => {
            return Err(bad(
                param(),
                "assistant messages may not contain images or files",
            ));
        }
    }
    if cache {
        out.push(cache_point());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// Converse `usage` (the response's and the stream's `metadata` event's).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    /// Input tokens not read from nor written to the prompt cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

impl WireUsage {
    /// As OpenAI's usage: `prompt_tokens` counts every input token (plain + cache read +
    /// cache write), `cached_tokens` the cache reads, and cache writes are reported as
    /// `cache_creation_input_tokens` (the name the price table uses).
    pub fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_write_input_tokens.unwrap_or(0);
        let mut u = Usage::new(self.input_tokens + read + written, self.output_tokens);
        u.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(read),
            ..PromptTokensDetails::default()
        });
        if let Some(w) = self.cache_write_input_tokens {
            u.extra
                .insert("cache_creation_input_tokens".into(), w.into());
        }
        u
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    output: WireOutput,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    trace: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireOutput {
    #[serde(default)]
    message: Option<WireMessage>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Vec<Value>,
}

/// Bedrock's `stopReason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

pub(crate) fn invalid_body(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{PROVIDER}: the upstream sent an invalid {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(PROVIDER)
}

/// A `reasoningContent` block as a canonical thinking block, plus its text.
fn thinking_block(rc: &Value) -> Option<(Value, Option<&str>)> {
    if let Some(rt) = rc.get("reasoningText") {
        let text = rt.get("text").and_then(Value::as_str).unwrap_or("");
        let mut b = JsonObject::new();
        b.insert("type".into(), "thinking".into());
        b.insert("thinking".into(), text.into());
        if let Some(s) = rt.get("signature").and_then(Value::as_str) {
            b.insert("signature".into(), s.into());
        }
        return Some((Value::Object(b), Some(text)));
    }
    rc.get("redactedContent")
        .and_then(Value::as_str)
        .map(|data| (json!({"type": "redacted_thinking", "data": data}), None))
}

/// Parse a Converse response into a chat completion.
pub fn decode_response(body: &[u8], opts: &DecodeOptions) -> Result<ChatResponse, Error> {
    let resp: WireResponse =
        serde_json::from_slice(body).map_err(|e| invalid_body("Converse response", e))?;
    let mut text = String::new();
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer: Option<String> = None;
    for block in resp.output.message.map(|m| m.content).unwrap_or_default() {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tu) = block.get("toolUse") {
            let name = tu.get("name").and_then(Value::as_str).unwrap_or("");
            let arguments = tu
                .get("input")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string();
            if opts.json_mode && name == JSON_TOOL_NAME && json_answer.is_none() {
                json_answer = Some(arguments);
                continue;
            }
            tool_calls.push(ToolCall {
                id: tu
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: name.to_owned(),
                    arguments,
                },
            });
        } else if let Some((b, t)) = block.get("reasoningContent").and_then(thinking_block) {
            if let Some(t) = t {
                reasoning.get_or_insert_with(String::new).push_str(t);
            }
            thinking_blocks.push(b);
        }
        // Citations, images and future block kinds have no OpenAI counterpart.
    }
    if let Some(answer) = json_answer {
        text.push_str(&answer);
    }
    let mut finish = resp.stop_reason.as_deref().map(finish_reason);
    if opts.json_mode && tool_calls.is_empty() && finish == Some(FinishReason::ToolCalls) {
        finish = Some(FinishReason::Stop);
    }
    let mut message_extra = JsonObject::new();
    if !thinking_blocks.is_empty() {
        message_extra.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let mut extra = JsonObject::new();
    if let Some(trace) = resp.trace {
        extra.insert("trace".into(), trace);
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(text)
    };
    Ok(ChatResponse {
        id: opts.id.clone(),
        object: "chat.completion".to_owned(),
        created: opts.created,
        model: opts.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content,
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: reasoning,
                extra: message_extra,
            },
            finish_reason: finish,
            logprobs: None,
        }],
        usage: resp.usage.map(WireUsage::to_usage),
        system_fingerprint: None,
        service_tier: None,
        extra,
    })
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Messages of a `ValidationException` that mean the prompt does not fit the model.
const CONTEXT_OVERFLOW_PHRASES: [&str; 9] = [
    "input is too long",
    "too many input tokens",
    "too many tokens",
    "prompt is too long",
    "exceed context limit",
    "exceeds the context window",
    "maximum context length",
    "context length exceeded",
    "expected maxlength",
];

fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    CONTEXT_OVERFLOW_PHRASES.iter().any(|p| m.contains(p))
}

/// The bare error name in `x-amzn-errortype` (`ValidationException:http://…`) or a body's
/// `__type` (`com.amazon.coral.service#UnrecognizedClientException`).
pub fn error_name(raw: &str) -> &str {
    let raw = raw.split(':').next().unwrap_or(raw);
    raw.rsplit('#').next().unwrap_or(raw).trim()
}

/// The error kind an AWS error name means; `None` for names not known here. Exception
/// names inside streams are camelCase (`throttlingException`); case is ignored.
pub fn kind_of(name: &str, message: &str) -> Option<ErrorKind> {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    Some(if is("ValidationException") {
        if is_context_overflow(message) {
            ErrorKind::ContextWindowExceeded
        } else {
            ErrorKind::BadRequest
        }
    } else if is("ThrottlingException")
        || is("TooManyRequestsException")
        || is("ServiceQuotaExceededException")
    {
        ErrorKind::RateLimited
    } else if is("AccessDeniedException") {
        ErrorKind::Permission
    } else if is("UnrecognizedClientException")
        || is("InvalidSignatureException")
        || is("IncompleteSignatureException")
        || is("MissingAuthenticationTokenException")
        || is("ExpiredTokenException")
        || is("InvalidClientTokenId")
        || is("SignatureDoesNotMatch")
    {
        ErrorKind::Auth
    } else if is("ResourceNotFoundException") {
        ErrorKind::NotFound
    } else if is("ModelNotReadyException") || is("ServiceUnavailableException") {
        ErrorKind::UpstreamUnavailable
    } else if is("ModelTimeoutException") {
        ErrorKind::Timeout
    } else if is("ModelErrorException")
        || is("ModelStreamErrorException")
        || is("InternalServerException")
        || is("InternalFailure")
    {
        ErrorKind::UpstreamError
    } else {
        return None;
    })
}

/// An error from an AWS error `name` and `message`. `status` is the HTTP status when the
/// error came as a response (not inside a stream); `secrets` are redacted from the message.
pub fn error_from_name(
    name: &str,
    message: &str,
    status: Option<u16>,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let kind = kind_of(name, message).unwrap_or_else(|| {
        status
            .map(ErrorKind::from_upstream_status)
            .unwrap_or(ErrorKind::UpstreamError)
    });
    let message = llmux_http::redact(message, secrets);
    let text = match (name.is_empty(), message.is_empty()) {
        (false, false) => format!("{PROVIDER}: {name}: {message}"),
        (false, true) => format!("{PROVIDER}: {name}"),
        (true, false) => format!("{PROVIDER}: {message}"),
        (true, true) => format!(
            "{PROVIDER}: the upstream answered HTTP {}",
            status.unwrap_or(0)
        ),
    };
    let mut e = Error::new(kind, text)
        .with_origin(Origin::Upstream)
        .with_provider(PROVIDER);
    if let Some(s) = status {
        e = e.with_upstream_status(s);
    }
    if let Some(r) = retry_after {
        e = e.with_retry_after(r);
    }
    e
}

#[derive(Debug, Default, Deserialize)]
struct WireError {
    #[serde(default, rename = "__type")]
    kind: Option<String>,
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// Map a non-2xx answer to the taxonomy: the error name from `x-amzn-errortype` (or the
/// body's `__type`), the message from the body's `message` (or `Message`).
pub fn decode_error(
    status: u16,
    error_type_header: Option<&str>,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let wire: WireError = serde_json::from_slice(body).unwrap_or_default();
    let name = error_type_header
        .filter(|h| !h.trim().is_empty())
        .or(wire.kind.as_deref())
        .map(error_name)
        .unwrap_or("");
    error_from_name(
        name,
        wire.message.as_deref().unwrap_or(""),
        Some(status),
        retry_after,
        secrets,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map() {
        for (s, f) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("guardrail_intervened", FinishReason::ContentFilter),
            ("content_filtered", FinishReason::ContentFilter),
            (
                "malformed_tool_use",
                FinishReason::Other("malformed_tool_use".into()),
            ),
        ] {
            assert_eq!(finish_reason(s), f, "{s}");
        }
    }

    #[test]
    fn error_names_are_read_from_header_and_body_forms() {
        assert_eq!(
            error_name("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            "ValidationException"
        );
        assert_eq!(
            error_name("com.amazon.coral.service#UnrecognizedClientException"),
            "UnrecognizedClientException"
        );
        assert_eq!(error_name("ThrottlingException"), "ThrottlingException");
    }

    #[test]
    fn document_names_are_sanitised() {
        assert_eq!(
            document_name(Some("Q3 report_final.v2.pdf"), "d".into()),
            "Q3 report final v2"
        );
        assert_eq!(document_name(Some("..."), "doc-0".into()), "doc-0");
        assert_eq!(document_name(None, "doc-1".into()), "doc-1");
    }

    #[test]
    fn data_urls_split_and_formats_map() {
        let (m, d) = split_data_url("data:Image/PNG;base64,iVBOR".into()).unwrap();
        assert_eq!((m.as_str(), d.as_str()), ("image/png", "iVBOR"));
        assert!(split_data_url("data:image/png,raw".into()).is_none());
        assert_eq!(image_format("image/jpg"), Some("jpeg"));
        assert_eq!(document_format("text/markdown"), Some("md"));
        assert_eq!(image_format("image/bmp"), None);
    }
}
