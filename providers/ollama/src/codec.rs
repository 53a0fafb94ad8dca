//! Pure translation between the canonical (OpenAI-shaped) types and Ollama's native API
//! (`/api/chat`, `/api/embed`, `/api/tags`). No I/O.
//!
//! - Requests: messages (system, user with `images` as base64, assistant with `tool_calls`
//!   whose arguments are JSON objects, tool results with `tool_name`), `tools`, `format`
//!   (`"json"` or a JSON schema from `response_format`), `options` (sampling, `seed`,
//!   `stop`, `num_predict` from the token limit, Ollama's own knobs), `keep_alive`, `think`.
//! - Answers: one JSON object, or NDJSON lines ending with `done: true` (with
//!   `done_reason`, `prompt_eval_count`, `eval_count`); tool calls get OpenAI-style ids.
//! - Errors: `{"error": "…"}` with the HTTP status.
//!
//! Image URLs must be `data:` URLs (their base64 payload is sent); remote URLs are refused
//! with a 400 rather than fetched.

use std::time::Duration;

use base64::Engine as _;
use llmux_core::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, ContentPart, Delta, Embedding,
    EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector, Error,
    ErrorKind, FinishReason, FunctionCall, FunctionCallDelta, JsonObject, Message, MessageContent,
    ModelCard, ModelList, Origin, ResponseFormat, ResponseMessage, Role, ToolCall, ToolCallDelta,
    ToolChoice, ToolChoiceMode, Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest NDJSON line accepted from a stream (a line is one JSON object).
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Request fields that are Ollama model options: taken from the request's extra fields
/// into `options`.
pub const OPTION_PARAMS: &[&str] = &[
    "top_k",
    "min_p",
    "typical_p",
    "repeat_last_n",
    "repeat_penalty",
    "num_ctx",
    "num_keep",
    "num_batch",
    "num_gpu",
    "num_thread",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "penalize_newline",
];

/// Deployment-level defaults and the call's shape.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// The provider prefix errors are reported under (`ollama` or `ollama_chat`).
    pub provider: &'static str,
    /// The deployment's model (`llama3.2`).
    pub model: &'a str,
    /// Stream NDJSON (`"stream": true`) or answer once.
    pub stream: bool,
    /// Deployment defaults from `params`: `keep_alive`, `think`, `options` (an object).
    pub defaults: Option<&'a JsonObject>,
}

impl<'a> EncodeOptions<'a> {
    /// A plain call of `model` under `provider`, no deployment defaults.
    pub fn new(provider: &'static str, model: &'a str) -> Self {
        Self {
            provider,
            model,
            stream: false,
            defaults: None,
        }
    }

    /// The same options, streamed or not.
    pub fn streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }
}

fn bad_request(provider: &'static str, message: String, param: &str) -> Error {
    Error::bad_request(format!("{provider}: {message}"))
        .with_param(param)
        .with_provider(provider)
}

/// The `/api/chat` body.
pub fn encode_chat(req: ChatRequest, opts: &EncodeOptions<'_>) -> Result<JsonObject, Error> {
    let p = opts.provider;
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
        response_format,
        reasoning_effort,
        mut extra,
        ..
    } = req;
    if n.is_some_and(|n| n > 1) {
        return Err(bad_request(p, "n > 1 is not supported".into(), "n"));
    }
    let defaults = opts.defaults;
    let mut body = JsonObject::new();
    body.insert("model".into(), opts.model.into());
    body.insert(
        "messages".into(),
        Value::Array(encode_messages(p, &messages)?),
    );
    body.insert("stream".into(), opts.stream.into());
    let send_tools = !matches!(tool_choice, Some(ToolChoice::Mode(ToolChoiceMode::None)));
    if let Some(tools) = tools.filter(|t| send_tools && !t.is_empty()) {
        let tools = tools
            .iter()
            .map(|t| {
                let f = t
                    .function
                    .as_ref()
                    .filter(|_| t.kind == "function")
                    .ok_or_else(|| {
                        bad_request(
                            p,
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
                Ok(json!({"type": "function", "function": function}))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        body.insert("tools".into(), tools.into());
    }
    match response_format {
        Some(ResponseFormat::JsonObject) => {
            body.insert("format".into(), "json".into());
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            body.insert(
                "format".into(),
                json_schema.schema.unwrap_or_else(|| "json".into()),
            );
        }
        Some(ResponseFormat::Text) | None => {}
    }

    let mut options = defaults
        .and_then(|d| d.get("options"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(v) = extra.remove("options") {
        let Value::Object(o) = v else {
            return Err(bad_request(
                p,
                "'options' must be an object".into(),
                "options",
            ));
        };
        options.extend(o);
    }
    for k in OPTION_PARAMS {
        if let Some(v) = extra.remove(*k) {
            options.insert((*k).into(), v);
        }
    }
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            options.insert(k.into(), v);
        }
    };
    put("temperature", temperature.map(Value::from));
    put("top_p", top_p.map(Value::from));
    put("seed", seed.map(Value::from));
    put("stop", stop.map(|s| json!(s.to_vec())));
    put(
        "num_predict",
        max_completion_tokens.or(max_tokens).map(Value::from),
    );
    put("presence_penalty", presence_penalty.map(Value::from));
    put("frequency_penalty", frequency_penalty.map(Value::from));
    if !options.is_empty() {
        body.insert("options".into(), options.into());
    }

    let think = extra.remove("think").or_else(|| {
        reasoning_effort
            .map(|e| Value::Bool(!matches!(e.as_str(), "none" | "minimal")))
            .or_else(|| defaults.and_then(|d| d.get("think")).cloned())
    });
    if let Some(t) = think {
        body.insert("think".into(), t);
    }
    if let Some(k) = extra
        .remove("keep_alive")
        .or_else(|| defaults.and_then(|d| d.get("keep_alive")).cloned())
    {
        body.insert("keep_alive".into(), k);
    }
    Ok(body)
}

fn encode_messages(p: &'static str, messages: &[Message]) -> Result<Vec<Value>, Error> {
    // Tool results name their function in Ollama: remember each call id's function.
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        if let Some(calls) = &m.tool_calls {
            names.extend(
                calls
                    .iter()
                    .map(|c| (c.id.as_str(), c.function.name.as_str())),
            );
        }
        out.push(encode_message(p, m, &names)?);
    }
    Ok(out)
}

fn text_only(p: &'static str, m: &Message, role: &str) -> Result<String, Error> {
    if let Some(MessageContent::Parts(parts)) = &m.content
        && parts
            .iter()
            .any(|p| !matches!(p, ContentPart::Text { .. } | ContentPart::Refusal { .. }))
    {
        return Err(bad_request(
            p,
            format!("{role} messages can only hold text"),
            "messages",
        ));
    }
    Ok(m.text_content())
}

fn encode_message(p: &'static str, m: &Message, names: &[(&str, &str)]) -> Result<Value, Error> {
    let mut out = JsonObject::new();
    match m.role {
        Role::System | Role::Developer => {
            out.insert("role".into(), "system".into());
            out.insert("content".into(), text_only(p, m, "system")?.into());
        }
        Role::User => {
            out.insert("role".into(), "user".into());
            let (text, images) = match &m.content {
                None => (String::new(), Vec::new()),
                Some(MessageContent::Text(t)) => (t.clone(), Vec::new()),
                Some(MessageContent::Parts(parts)) => {
                    let mut texts = Vec::new();
                    let mut images = Vec::new();
                    for part in parts {
                        match part {
                            ContentPart::Text { text, .. } => texts.push(text.as_str()),
                            ContentPart::ImageUrl { image_url, .. } => {
                                images.push(image_base64(p, &image_url.url)?);
                            }
                            _ => {
                                return Err(bad_request(
                                    p,
                                    "only text and image parts are supported".into(),
                                    "messages",
                                ));
                            }
                        }
                    }
                    (texts.join("\n"), images)
                }
            };
            out.insert("content".into(), text.into());
            if !images.is_empty() {
                out.insert("images".into(), images.into());
            }
        }
        Role::Assistant => {
            out.insert("role".into(), "assistant".into());
            out.insert("content".into(), text_only(p, m, "assistant")?.into());
            if let Some(t) = &m.reasoning_content {
                out.insert("thinking".into(), t.clone().into());
            }
            if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
                let calls = calls
                    .iter()
                    .map(|c| {
                        let args = tool_arguments(p, &c.function.arguments)?;
                        Ok(json!({"function": {"name": c.function.name, "arguments": args}}))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                out.insert("tool_calls".into(), calls.into());
            }
        }
        Role::Tool => {
            out.insert("role".into(), "tool".into());
            out.insert("content".into(), text_only(p, m, "tool")?.into());
            let name = m
                .tool_call_id
                .as_deref()
                .and_then(|id| names.iter().rev().find(|(i, _)| *i == id))
                .map(|(_, n)| *n)
                .or(m.name.as_deref());
            if let Some(n) = name {
                out.insert("tool_name".into(), n.into());
            }
        }
        Role::Function => {
            return Err(bad_request(
                p,
                "legacy 'function' messages are not supported; use tool messages".into(),
                "messages",
            ));
        }
    }
    Ok(Value::Object(out))
}

/// The base64 payload of a `data:` image URL. Remote URLs are refused (no fetching).
fn image_base64(p: &'static str, url: &str) -> Result<String, Error> {
    let Some(rest) = url.strip_prefix("data:") else {
        let shown: String = url.chars().take(64).collect();
        return Err(bad_request(
            p,
            format!(
                "image URLs must be data: URLs (base64); remote images like '{shown}' are not fetched"
            ),
            "messages",
        ));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| bad_request(p, "malformed data: URL".into(), "messages"))?;
    if !meta.ends_with(";base64") {
        return Err(bad_request(
            p,
            "data: URLs must be base64-encoded".into(),
            "messages",
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| bad_request(p, "the image data is not valid base64".into(), "messages"))?;
    Ok(data.to_owned())
}

/// OpenAI's JSON-text arguments as the object Ollama wants (`""` is `{}`).
fn tool_arguments(p: &'static str, args: &str) -> Result<Value, Error> {
    if args.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad_request(
            p,
            "tool call arguments must be a JSON object".into(),
            "messages",
        )),
    }
}

/// Serialise an encoded body.
pub fn to_vec(body: &JsonObject) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body)
        .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))
}

/// Identity given to an answer: Ollama's carry none.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// The provider prefix errors are reported under.
    pub provider: &'static str,
    /// The completion id (`chatcmpl-…`); tool-call ids are derived from it.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: String,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

fn invalid(provider: &'static str, what: &str, e: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{provider}: the upstream sent an invalid {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(provider)
}

fn finish_reason(done_reason: Option<&str>, tool_calls: bool) -> FinishReason {
    if tool_calls {
        return FinishReason::ToolCalls;
    }
    match done_reason {
        None | Some("stop") => FinishReason::Stop,
        Some(other) => FinishReason::from(other),
    }
}

fn usage(r: &WireResponse) -> Usage {
    Usage::new(r.prompt_eval_count.unwrap_or(0), r.eval_count.unwrap_or(0))
}

/// A tool call's id: Ollama's own when it sends one, else `call_<n>_<completion id tail>`
/// (unique per answer, so ids of different turns do not collide).
fn tool_call_id(id: Option<String>, n: usize, completion_id: &str) -> String {
    id.filter(|i| !i.is_empty()).unwrap_or_else(|| {
        let alnum: Vec<char> = completion_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let tail: String = alnum[alnum.len().saturating_sub(12)..].iter().collect();
        format!("call_{n}_{tail}")
    })
}

fn arguments_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Parse a non-streamed `/api/chat` answer.
pub fn decode_chat(body: &[u8], opts: &DecodeOptions) -> Result<ChatResponse, Error> {
    let p = opts.provider;
    let r: WireResponse =
        serde_json::from_slice(body).map_err(|e| invalid(p, "chat response", &e))?;
    if let Some(e) = &r.error {
        return Err(error_from_message(p, 500, e, None, &[]));
    }
    let usage = usage(&r);
    let msg = r.message.unwrap_or_default();
    let calls: Vec<ToolCall> = msg
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(n, c)| ToolCall {
            id: tool_call_id(c.id, n, &opts.id),
            kind: "function".into(),
            function: FunctionCall {
                name: c.function.name,
                arguments: arguments_text(c.function.arguments),
            },
        })
        .collect();
    let finish = finish_reason(r.done_reason.as_deref(), !calls.is_empty());
    let content = msg.content.unwrap_or_default();
    let mut message = ResponseMessage::assistant(content);
    if !calls.is_empty() {
        if message.content.as_deref() == Some("") {
            message.content = None;
        }
        message.tool_calls = Some(calls);
    }
    message.reasoning_content = msg.thinking.filter(|t| !t.is_empty());
    Ok(ChatResponse {
        id: opts.id.clone(),
        object: "chat.completion".into(),
        created: opts.created,
        model: r.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish),
            logprobs: None,
        }],
        usage: Some(usage),
        system_fingerprint: None,
        service_tier: None,
        extra: JsonObject::new(),
    })
}

/// Reads an NDJSON `/api/chat` stream, fed in arbitrary byte pieces, into chunks: deltas of
/// text, thinking and whole tool calls, then (on `done: true`) a chunk with the finish
/// reason and the usage-only chunk. Linear in the input; lines are bounded by
/// [`MAX_LINE_BYTES`].
#[derive(Debug)]
pub struct StreamDecoder {
    opts: DecodeOptions,
    line: Vec<u8>,
    started: bool,
    tool_calls: usize,
    done: bool,
}

impl StreamDecoder {
    /// A decoder for one stream.
    pub fn new(opts: DecodeOptions) -> Self {
        Self {
            opts,
            line: Vec::new(),
            started: false,
            tool_calls: 0,
            done: false,
        }
    }

    /// Whether the `done: true` line was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feed the next bytes of the body; complete lines become chunks in `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), Error> {
        while let Some(i) = bytes.iter().position(|b| *b == b'\n') {
            self.push_bytes(&bytes[..i])?;
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            bytes = &bytes[i + 1..];
        }
        self.push_bytes(bytes)
    }

    /// The body ended: a last line without a newline is read, and a stream that never
    /// said `done` is an error.
    pub fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<(), Error> {
        let line = std::mem::take(&mut self.line);
        self.line_done(&line, out)?;
        if !self.done {
            return Err(Error::new(
                ErrorKind::UpstreamError,
                format!(
                    "{}: the upstream stream ended before its last line",
                    self.opts.provider
                ),
            )
            .with_origin(Origin::Upstream)
            .with_provider(self.opts.provider));
        }
        Ok(())
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.line.len() + bytes.len() > MAX_LINE_BYTES {
            return Err(Error::new(
                ErrorKind::UpstreamError,
                format!(
                    "{}: a stream line exceeds {MAX_LINE_BYTES} bytes",
                    self.opts.provider
                ),
            )
            .with_origin(Origin::Upstream)
            .with_provider(self.opts.provider));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn chunk(&self, model: &str, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        let mut c = ChatChunk::new(self.opts.id.clone(), model, self.opts.created);
        c.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        });
        c
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<ChatChunk>) -> Result<(), Error> {
        let p = self.opts.provider;
        if line.iter().all(u8::is_ascii_whitespace) || self.done {
            return Ok(());
        }
        let r: WireResponse =
            serde_json::from_slice(line).map_err(|e| invalid(p, "stream line", &e))?;
        if let Some(e) = &r.error {
            return Err(error_from_message(p, 500, e, None, &[]));
        }
        let msg = r.message.as_ref();
        let mut delta = Delta::default();
        if !self.started {
            delta.role = Some(Role::Assistant);
        }
        if let Some(t) = msg
            .and_then(|m| m.content.as_deref())
            .filter(|t| !t.is_empty())
        {
            delta.content = Some(t.to_owned());
        }
        if let Some(t) = msg
            .and_then(|m| m.thinking.as_deref())
            .filter(|t| !t.is_empty())
        {
            delta.reasoning_content = Some(t.to_owned());
        }
        if let Some(calls) = msg.and_then(|m| m.tool_calls.as_ref()) {
            let mut deltas = Vec::with_capacity(calls.len());
            for c in calls {
                let n = self.tool_calls;
                self.tool_calls += 1;
                deltas.push(ToolCallDelta {
                    index: u32::try_from(n).unwrap_or(u32::MAX),
                    id: Some(tool_call_id(c.id.clone(), n, &self.opts.id)),
                    kind: Some("function".into()),
                    function: Some(FunctionCallDelta {
                        name: Some(c.function.name.clone()),
                        arguments: Some(arguments_text(c.function.arguments.clone())),
                    }),
                });
            }
            if !deltas.is_empty() {
                delta.tool_calls = Some(deltas);
            }
        }
        let has_delta = delta.content.is_some()
            || delta.reasoning_content.is_some()
            || delta.tool_calls.is_some();
        if r.done {
            if has_delta {
                out.push(self.chunk(&r.model, delta, None));
                delta = Delta::default();
            }
            let finish = finish_reason(r.done_reason.as_deref(), self.tool_calls > 0);
            out.push(self.chunk(&r.model, delta, Some(finish)));
            let mut tail =
                ChatChunk::new(self.opts.id.clone(), r.model.as_str(), self.opts.created);
            tail.usage = Some(usage(&r));
            out.push(tail);
            self.done = true;
        } else if has_delta || !self.started {
            out.push(self.chunk(&r.model, delta, None));
        }
        self.started = true;
        Ok(())
    }
}

/// The `/api/embed` body: `input` text(s) (token arrays are refused), `dimensions`, and
/// Ollama's `truncate`, `keep_alive`, `options` from the extra fields.
pub fn encode_embeddings(
    provider: &'static str,
    req: EmbeddingRequest,
    model: &str,
) -> Result<JsonObject, Error> {
    let input = match req.input {
        EmbeddingInput::Text(t) => Value::String(t),
        EmbeddingInput::Texts(t) => json!(t),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(bad_request(
                provider,
                "token-array inputs are not supported; send text".into(),
                "input",
            ));
        }
    };
    if let Some(f) = req.encoding_format.as_deref()
        && f != "float"
        && f != "base64"
    {
        return Err(bad_request(
            provider,
            format!("unknown encoding_format '{f}'"),
            "encoding_format",
        ));
    }
    let mut body = JsonObject::new();
    body.insert("model".into(), model.into());
    body.insert("input".into(), input);
    if let Some(d) = req.dimensions {
        body.insert("dimensions".into(), d.into());
    }
    let mut extra = req.extra;
    for k in ["truncate", "keep_alive", "options"] {
        if let Some(v) = extra.remove(k) {
            body.insert(k.into(), v);
        }
    }
    Ok(body)
}

#[derive(Debug, Deserialize)]
struct WireEmbed {
    #[serde(default)]
    model: String,
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
}

/// Parse an `/api/embed` answer; `base64` encodes each vector as base64 of little-endian
/// f32 (what `encoding_format: base64` asks for).
pub fn decode_embeddings(
    provider: &'static str,
    body: &[u8],
    base64: bool,
) -> Result<EmbeddingResponse, Error> {
    let r: WireEmbed =
        serde_json::from_slice(body).map_err(|e| invalid(provider, "embeddings response", &e))?;
    let tokens = r.prompt_eval_count.unwrap_or(0);
    let data = r
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Embedding {
                    object: "embedding".into(),
                    index,
                    embedding: EmbeddingVector::Base64(
                        base64::engine::general_purpose::STANDARD.encode(bytes),
                    ),
                }
            } else {
                Embedding::new(index, v)
            }
        })
        .collect();
    Ok(EmbeddingResponse::new(
        r.model,
        data,
        EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    ))
}

#[derive(Debug, Deserialize)]
struct WireTags {
    #[serde(default)]
    models: Vec<WireTag>,
}

#[derive(Debug, Deserialize)]
struct WireTag {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    details: Option<Value>,
}

/// Parse `/api/tags` into a model list (ids are Ollama's names, e.g. `llama3.2:latest`).
pub fn decode_models(provider: &'static str, body: &[u8]) -> Result<ModelList, Error> {
    let r: WireTags =
        serde_json::from_slice(body).map_err(|e| invalid(provider, "model list", &e))?;
    Ok(ModelList::new(
        r.models
            .into_iter()
            .filter_map(|m| {
                let id = m.name.or(m.model)?;
                let mut card = ModelCard::new(id, "ollama");
                if let Some(d) = m.details {
                    card.extra.insert("details".into(), d);
                }
                Some(card)
            })
            .collect(),
    ))
}

/// Map a non-2xx answer (`{"error": "…"}`) to the taxonomy; `secrets` are redacted.
pub fn decode_error(
    provider: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    #[derive(Deserialize)]
    struct Body {
        error: Value,
    }
    let message = match serde_json::from_slice::<Body>(body) {
        Ok(Body {
            error: Value::String(s),
        }) => s,
        Ok(Body { error }) => error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned),
        Err(_) => format!("the upstream answered HTTP {status}"),
    };
    error_from_message(provider, status, &message, retry_after, secrets)
}

fn error_from_message(
    provider: &'static str,
    status: u16,
    message: &str,
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    let lower = message.to_ascii_lowercase();
    let mut code = None;
    let kind = if lower.contains("not found") && (status == 404 || lower.contains("model")) {
        if lower.contains("model") {
            code = Some("model_not_found");
        }
        ErrorKind::NotFound
    } else if lower.contains("context length") || lower.contains("context window") {
        ErrorKind::ContextWindowExceeded
    } else {
        ErrorKind::from_upstream_status(status)
    };
    let message = llmux_http::redact(message, secrets);
    let mut e = Error::new(kind, format!("{provider}: {message}"))
        .with_origin(Origin::Upstream)
        .with_provider(provider)
        .with_upstream_status(status);
    if let Some(c) = code {
        e = e.with_code(c);
    }
    if let Some(r) = retry_after {
        e = e.with_retry_after(r);
    }
    e
}
