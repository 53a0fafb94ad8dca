//! Pure translation between llmux's canonical (OpenAI-shaped) types and Google's Gemini wire
//! format, which the Gemini API and Vertex AI share. No I/O and no clock: whatever varies
//! (the deployment's model, the current time) is passed in.
//!
//! Requests: [`encode_chat`] builds a `generateContent` body (the same body serves
//! `streamGenerateContent`), [`encode_embeddings`] an `embedContent`, `batchEmbedContents`
//! or Vertex `predict` body. Responses: [`decode_chat`], the stateful [`StreamDecoder`] for
//! `streamGenerateContent?alt=sse`, [`decode_embeddings`], and [`decode_error`] for Google's
//! `{"error":{"code","message","status","details"}}` bodies.
//!
//! Gemini has no tool-call ids, so ids are synthesized stably ([`tool_call_id`]). When a
//! function call carries a `thoughtSignature` (Gemini 3 requires it back on the next turn),
//! the signature rides inside the id after [`THOUGHT_SIGNATURE_MARK`] and is restored when
//! the assistant turn is replayed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use llmux_core::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails,
    ContentPart, Delta, Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse,
    EmbeddingUsage, EmbeddingVector, Error, ErrorKind, FinishReason, FunctionCall,
    FunctionCallDelta, JsonObject, Message, MessageContent, Origin, PromptTokensDetails,
    ResponseFormat, ResponseMessage, Role, ToolCall, ToolCallDelta, ToolChoice, ToolChoiceMode,
    Usage,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Which Google API a body is for. The chat body is the same for both; embeddings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The Gemini API (`generativelanguage.googleapis.com`, API key).
    Gemini,
    /// Vertex AI (`aiplatform.googleapis.com`, OAuth2 bearer token).
    Vertex,
}

/// How to encode a chat request.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions {
    /// The provider prefix named in error messages (`gemini`, `vertex_ai`).
    pub provider: &'static str,
    /// Drop request parameters Gemini cannot honour (`logit_bias`, `logprobs`, …) instead
    /// of failing with a 400.
    pub drop_params: bool,
}

impl EncodeOptions {
    /// Options for `provider` that reject what cannot be honoured.
    pub fn new(provider: &'static str) -> Self {
        Self {
            provider,
            drop_params: false,
        }
    }
}

/// The thinking budget each documented `reasoning_effort` maps to (Google's own mapping in
/// its OpenAI-compatibility layer: low 1K, medium 8K, high 24K; `none` turns thinking off).
/// `minimal` has no documented budget on the 2.5 series and gets the smallest one, `low`'s.
pub const THINKING_BUDGETS: [(&str, i64); 5] = [
    ("none", 0),
    ("minimal", 1024),
    ("low", 1024),
    ("medium", 8192),
    ("high", 24576),
];

/// Separates a synthesized tool-call id from the thought signature it carries.
pub const THOUGHT_SIGNATURE_MARK: &str = "_ts_";

/// The JSON-schema keywords kept in `parameters` and `responseSchema`: the subset of
/// OpenAPI 3.0 Google documents for its `Schema` object. Every other keyword is removed.
pub const SCHEMA_KEYWORDS: [&str; 22] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// `format` values the Gemini API accepts (others are removed): `enum` and `date-time` for
/// strings, `float`/`double` for numbers, `int32`/`int64` for integers.
pub const SCHEMA_FORMATS: [&str; 6] = ["enum", "date-time", "float", "double", "int32", "int64"];

const MAX_SCHEMA_NODES: usize = 10_000;

fn bad_request(provider: &'static str, message: String) -> Error {
    Error::bad_request(format!("{provider}: {message}")).with_provider(provider)
}

fn unsupported_param(opts: &EncodeOptions, param: &str, what: &str) -> Result<(), Error> {
    if opts.drop_params {
        return Ok(());
    }
    Err(bad_request(
        opts.provider,
        format!("{what} is not supported by this provider (set drop_params to drop it)"),
    )
    .with_param(param.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Chat request
// ---------------------------------------------------------------------------------------

/// The `generateContent` body for `req`. The model is not part of the body (it is in the
/// URL); the same body serves `streamGenerateContent`.
pub fn encode_chat(req: &ChatRequest, opts: &EncodeOptions) -> Result<Value, Error> {
    let p = opts.provider;
    // A request may ask for dropping itself (`"drop_params": true`, as LiteLLM allows).
    let dropping;
    let opts = if !opts.drop_params && req.extra.get("drop_params") == Some(&Value::Bool(true)) {
        dropping = EncodeOptions {
            drop_params: true,
            ..*opts
        };
        &dropping
    } else {
        opts
    };
    if req.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        unsupported_param(opts, "logit_bias", "logit_bias")?;
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some() {
        unsupported_param(opts, "logprobs", "logprobs")?;
    }
    if req.parallel_tool_calls == Some(false) {
        unsupported_param(
            opts,
            "parallel_tool_calls",
            "parallel_tool_calls=false (Gemini always allows parallel calls)",
        )?;
    }

    let mut body = Map::new();
    let (system, contents) = encode_messages(&req.messages, opts)?;
    if contents.is_empty() {
        return Err(bad_request(
            p,
            "at least one user or assistant message is required".into(),
        )
        .with_param("messages"));
    }
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }

    let declared = encode_tools(req, opts, &mut body)?;
    encode_tool_choice(req, opts, &declared, &mut body)?;

    if let Some(ss) = req
        .extra
        .get("safety_settings")
        .or_else(|| req.extra.get("safetySettings"))
    {
        if !ss.is_array() {
            return Err(bad_request(p, "safety_settings must be an array".into())
                .with_param("safety_settings"));
        }
        body.insert("safetySettings".into(), ss.clone());
    }

    let config = encode_generation_config(req, opts)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

/// System/developer messages (as `systemInstruction` parts) and the `contents` array.
fn encode_messages(
    messages: &[Message],
    opts: &EncodeOptions,
) -> Result<(Vec<Value>, Vec<Value>), Error> {
    let p = opts.provider;
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // tool_call_id → function name, from the assistant turns seen so far.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    // Whether the last content pushed holds only function responses (so the next tool
    // result joins it: Gemini wants one turn's responses together).
    let mut last_is_responses = false;
    for m in messages {
        match m.role {
            Role::System | Role::Developer => {
                if let Some(c) = &m.content {
                    for text in text_only(c, m.role, opts)? {
                        system.push(json!({ "text": text }));
                    }
                }
            }
            Role::User => {
                let parts = match &m.content {
                    Some(c) => content_parts(c, opts)?,
                    None => Vec::new(),
                };
                if !parts.is_empty() {
                    contents.push(json!({ "role": "user", "parts": parts }));
                    last_is_responses = false;
                }
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                match &m.content {
                    Some(MessageContent::Text(t)) if !t.is_empty() => {
                        parts.push(json!({ "text": t }));
                    }
                    Some(MessageContent::Parts(ps)) => {
                        for part in ps {
                            match part {
                                ContentPart::Text { text, .. } => {
                                    parts.push(json!({ "text": text }));
                                }
                                ContentPart::Refusal { refusal } => {
                                    parts.push(json!({ "text": refusal }));
                                }
                                _ => unsupported_param(
                                    opts,
                                    "messages",
                                    "non-text content in an assistant message",
                                )?,
                            }
                        }
                    }
                    _ => {
                        if let Some(r) = &m.refusal {
                            parts.push(json!({ "text": r }));
                        }
                    }
                }
                for tc in m.tool_calls.iter().flatten() {
                    call_names.insert(tc.id.as_str(), tc.function.name.as_str());
                    let args = parse_arguments(p, &tc.function.arguments)?;
                    let mut part = Map::new();
                    part.insert(
                        "functionCall".into(),
                        json!({ "name": tc.function.name, "args": args }),
                    );
                    if let Some(sig) = signature_from_id(&tc.id) {
                        part.insert("thoughtSignature".into(), Value::String(sig));
                    }
                    parts.push(Value::Object(part));
                }
                if !parts.is_empty() {
                    contents.push(json!({ "role": "model", "parts": parts }));
                    last_is_responses = false;
                }
            }
            Role::Tool | Role::Function => {
                let name = if m.role == Role::Tool {
                    let id = m.tool_call_id.as_deref().ok_or_else(|| {
                        bad_request(p, "a tool message needs a tool_call_id".into())
                            .with_param("messages")
                    })?;
                    call_names.get(id).copied().ok_or_else(|| {
                        bad_request(
                            p,
                            format!(
                                "tool message answers tool_call_id '{id}', which no earlier \
                                 assistant message called"
                            ),
                        )
                        .with_param("messages")
                    })?
                } else {
                    m.name.as_deref().ok_or_else(|| {
                        bad_request(p, "a function message needs a name".into())
                            .with_param("messages")
                    })?
                };
                let part = json!({
                    "functionResponse": {
                        "name": name,
                        "response": tool_response(&m.text_content()),
                    }
                });
                match contents.last_mut() {
                    Some(last) if last_is_responses => {
                        if let Some(parts) = last["parts"].as_array_mut() {
                            parts.push(part);
                        }
                    }
                    _ => {
                        contents.push(json!({ "role": "user", "parts": [part] }));
                        last_is_responses = true;
                    }
                }
            }
        }
    }
    Ok((system, contents))
}

/// A tool result as a `functionResponse.response` object: a JSON object is sent as is;
/// any other JSON value, or text that is not JSON, is wrapped as `{"content": …}`.
pub fn tool_response(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(other) => json!({ "content": other }),
        Err(_) => json!({ "content": text }),
    }
}

fn parse_arguments(provider: &'static str, arguments: &str) -> Result<Value, Error> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(
            bad_request(provider, "tool call arguments must be a JSON object".into())
                .with_param("messages"),
        ),
    }
}

fn text_only(c: &MessageContent, role: Role, opts: &EncodeOptions) -> Result<Vec<String>, Error> {
    match c {
        MessageContent::Text(t) => Ok(vec![t.clone()]),
        MessageContent::Parts(parts) => {
            let mut out = Vec::new();
            for part in parts {
                match part {
                    ContentPart::Text { text, .. } => out.push(text.clone()),
                    _ => unsupported_param(
                        opts,
                        "messages",
                        &format!("non-text content in a {} message", role.as_str()),
                    )?,
                }
            }
            Ok(out)
        }
    }
}

/// The parts of a user message.
fn content_parts(c: &MessageContent, opts: &EncodeOptions) -> Result<Vec<Value>, Error> {
    let p = opts.provider;
    let parts = match c {
        MessageContent::Text(t) => return Ok(vec![json!({ "text": t })]),
        MessageContent::Parts(parts) => parts,
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            ContentPart::Text { text, .. } => out.push(json!({ "text": text })),
            ContentPart::ImageUrl { image_url, .. } => out.push(media_part(p, &image_url.url)?),
            ContentPart::InputAudio { input_audio, .. } => {
                let mime = audio_mime(&input_audio.format).ok_or_else(|| {
                    bad_request(
                        p,
                        format!("unsupported input_audio format '{}'", input_audio.format),
                    )
                    .with_param("messages")
                })?;
                out.push(json!({ "inlineData": { "mimeType": mime, "data": input_audio.data } }));
            }
            ContentPart::File { file, .. } => {
                if let Some(data) = &file.file_data {
                    out.push(media_part(p, data)?);
                } else if let Some(uri) = &file.file_id {
                    let mime = file
                        .extra
                        .get("format")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| file.filename.as_deref().and_then(mime_from_path))
                        .or_else(|| mime_from_path(uri))
                        .ok_or_else(|| unknown_mime(p, uri))?;
                    out.push(json!({ "fileData": { "mimeType": mime, "fileUri": uri } }));
                } else {
                    return Err(
                        bad_request(p, "a file part needs file_data or file_id".into())
                            .with_param("messages"),
                    );
                }
            }
            ContentPart::Refusal { .. } | ContentPart::Other(_) => {
                unsupported_param(opts, "messages", "this content part type")?;
            }
        }
    }
    Ok(out)
}

fn unknown_mime(provider: &'static str, uri: &str) -> Error {
    let shown: String = uri.chars().take(80).collect();
    bad_request(
        provider,
        format!(
            "cannot tell the media type of '{shown}': use a data: URL or a URL whose name ends \
             in a known extension"
        ),
    )
    .with_param("messages")
}

/// A `data:` URL becomes `inlineData`; a `gs://` or `http(s)://` URL becomes `fileData`
/// with the media type guessed from the extension ([`mime_from_path`]).
fn media_part(provider: &'static str, url: &str) -> Result<Value, Error> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            bad_request(provider, "malformed data: URL".into()).with_param("messages")
        })?;
        let mime = meta.strip_suffix(";base64").ok_or_else(|| {
            bad_request(provider, "data: URLs must be base64-encoded".into()).with_param("messages")
        })?;
        if mime.is_empty() {
            return Err(
                bad_request(provider, "data: URL without a media type".into())
                    .with_param("messages"),
            );
        }
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    if url.starts_with("gs://") || url.starts_with("https://") || url.starts_with("http://") {
        let mime = mime_from_path(url).ok_or_else(|| unknown_mime(provider, url))?;
        return Ok(json!({ "fileData": { "mimeType": mime, "fileUri": url } }));
    }
    Err(bad_request(
        provider,
        "media URLs must be data:, gs://, http:// or https://".into(),
    )
    .with_param("messages"))
}

/// The media type of a file from its extension (query and fragment ignored), for the
/// image, audio, video and document types Gemini accepts.
pub fn mime_from_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    let mime = match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/md",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "xml" => "text/xml",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "aiff" => "audio/aiff",
        "aac" => "audio/aac",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "mpeg" => "video/mpeg",
        "mpg" => "video/mpg",
        "mov" => "video/mov",
        "avi" => "video/avi",
        "flv" => "video/x-flv",
        "webm" => "video/webm",
        "wmv" => "video/wmv",
        "3gp" | "3gpp" => "video/3gpp",
        _ => return None,
    };
    Some(mime.to_owned())
}

/// The media type of an `input_audio` format (`wav`, `mp3`, …).
pub fn audio_mime(format: &str) -> Option<&'static str> {
    Some(match format.to_ascii_lowercase().as_str() {
        "wav" => "audio/wav",
        "mp3" | "mpeg" => "audio/mp3",
        "aiff" => "audio/aiff",
        "aac" => "audio/aac",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        _ => return None,
    })
}

/// `tools` → `[{functionDeclarations: […]}]`; returns the declared names.
fn encode_tools(
    req: &ChatRequest,
    opts: &EncodeOptions,
    body: &mut Map<String, Value>,
) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let Some(tools) = &req.tools else {
        return Ok(names);
    };
    let mut decls = Vec::with_capacity(tools.len());
    for tool in tools {
        let Some(f) = tool.function.as_ref().filter(|_| tool.kind == "function") else {
            unsupported_param(opts, "tools", &format!("tool type '{}'", tool.kind))?;
            continue;
        };
        let mut decl = Map::new();
        decl.insert("name".into(), Value::String(f.name.clone()));
        if let Some(d) = &f.description {
            decl.insert("description".into(), Value::String(d.clone()));
        }
        if let Some(params) = &f.parameters {
            let cleaned = clean_schema(opts.provider, params)?;
            // Gemini rejects an OBJECT schema without properties: a function that takes
            // no arguments simply declares no parameters.
            let empty_object = cleaned["type"] == "OBJECT"
                && cleaned
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty);
            if !empty_object {
                decl.insert("parameters".into(), cleaned);
            }
        }
        names.push(f.name.clone());
        decls.push(Value::Object(decl));
    }
    if !decls.is_empty() {
        body.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    Ok(names)
}

/// `tool_choice` → `toolConfig.functionCallingConfig`.
fn encode_tool_choice(
    req: &ChatRequest,
    opts: &EncodeOptions,
    declared: &[String],
    body: &mut Map<String, Value>,
) -> Result<(), Error> {
    let Some(choice) = &req.tool_choice else {
        return Ok(());
    };
    let config = match choice {
        ToolChoice::Mode(ToolChoiceMode::None) => json!({ "mode": "NONE" }),
        ToolChoice::Mode(ToolChoiceMode::Auto) => json!({ "mode": "AUTO" }),
        ToolChoice::Mode(ToolChoiceMode::Required) => json!({ "mode": "ANY" }),
        ToolChoice::Named(named) => {
            let name = &named.function.name;
            if !declared.iter().any(|d| d == name) {
                return Err(bad_request(
                    opts.provider,
                    format!("tool_choice names '{name}', which is not among the tools"),
                )
                .with_param("tool_choice"));
            }
            json!({ "mode": "ANY", "allowedFunctionNames": [name] })
        }
    };
    if declared.is_empty() {
        // Without declarations there is nothing to configure (and `none` is the default).
        if matches!(choice, ToolChoice::Mode(ToolChoiceMode::Required)) {
            return Err(bad_request(
                opts.provider,
                "tool_choice 'required' needs at least one tool".into(),
            )
            .with_param("tool_choice"));
        }
        return Ok(());
    }
    body.insert(
        "toolConfig".into(),
        json!({ "functionCallingConfig": config }),
    );
    Ok(())
}

fn encode_generation_config(
    req: &ChatRequest,
    opts: &EncodeOptions,
) -> Result<Map<String, Value>, Error> {
    let p = opts.provider;
    let mut c = Map::new();
    if let Some(t) = req.temperature {
        c.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        c.insert("topP".into(), json!(t));
    }
    if let Some(k) = req.extra.get("top_k") {
        if !k.is_number() {
            return Err(bad_request(p, "top_k must be a number".into()).with_param("top_k"));
        }
        c.insert("topK".into(), k.clone());
    }
    if let Some(m) = req.max_completion_tokens.or(req.max_tokens) {
        c.insert("maxOutputTokens".into(), json!(m));
    }
    if let Some(stop) = &req.stop {
        c.insert("stopSequences".into(), json!(stop.to_vec()));
    }
    if let Some(n) = req.n {
        c.insert("candidateCount".into(), json!(n));
    }
    if let Some(s) = req.seed {
        c.insert("seed".into(), json!(s));
    }
    if let Some(v) = req.presence_penalty {
        c.insert("presencePenalty".into(), json!(v));
    }
    if let Some(v) = req.frequency_penalty {
        c.insert("frequencyPenalty".into(), json!(v));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            c.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            c.insert("responseMimeType".into(), json!("application/json"));
            if let Some(schema) = &json_schema.schema {
                c.insert("responseSchema".into(), clean_schema(p, schema)?);
            }
        }
    }
    let include_thoughts = req.extra.get("include_thoughts").and_then(Value::as_bool);
    let mut thinking = Map::new();
    if let Some(effort) = &req.reasoning_effort {
        let budget = THINKING_BUDGETS
            .iter()
            .find(|(name, _)| name == effort)
            .map(|(_, b)| *b);
        match budget {
            Some(b) => {
                thinking.insert("thinkingBudget".into(), json!(b));
                if b > 0 && include_thoughts != Some(false) {
                    thinking.insert("includeThoughts".into(), json!(true));
                }
            }
            None if opts.drop_params => {}
            None => {
                return Err(bad_request(
                    p,
                    format!(
                        "reasoning_effort '{effort}' is not one of none, minimal, low, medium, \
                         high"
                    ),
                )
                .with_param("reasoning_effort"));
            }
        }
    }
    if include_thoughts == Some(true) {
        thinking.insert("includeThoughts".into(), json!(true));
    }
    if !thinking.is_empty() {
        c.insert("thinkingConfig".into(), Value::Object(thinking));
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// JSON schema → Gemini Schema
// ---------------------------------------------------------------------------------------

/// Rewrite a JSON Schema into the OpenAPI-3.0 subset Gemini's `Schema` accepts:
/// - local `$ref`s (`#/$defs/…`, `#/definitions/…`) are inlined; a recursive or non-local
///   `$ref` is a 400, and so is an `allOf` of more than one schema (one is inlined);
/// - `type` is upper-cased; `["T","null"]` becomes `T` + `nullable: true`, several non-null
///   types become `anyOf`; `null` in `anyOf`/`enum` becomes `nullable: true`;
/// - `oneOf` becomes `anyOf`; `const` becomes a one-value `enum`; enum values become strings;
/// - `required` keeps only names present in `properties`; `format` keeps only
///   [`SCHEMA_FORMATS`];
/// - every keyword not in [`SCHEMA_KEYWORDS`] is removed (`additionalProperties`, `$schema`,
///   `$id`, `$defs`, `definitions`, `strict`, `examples`, `exclusiveMinimum`,
///   `exclusiveMaximum`, `multipleOf`, `uniqueItems`, `patternProperties`, `not`, …).
pub fn clean_schema(provider: &'static str, schema: &Value) -> Result<Value, Error> {
    let empty = Map::new();
    let root = schema
        .as_object()
        .ok_or_else(|| bad_request(provider, "a JSON schema must be an object".into()))?;
    let mut defs: HashMap<String, &Value> = HashMap::new();
    for key in ["$defs", "definitions"] {
        for (name, def) in root.get(key).and_then(Value::as_object).unwrap_or(&empty) {
            defs.insert(format!("#/{key}/{name}"), def);
        }
    }
    let mut cx = SchemaCx {
        provider,
        defs,
        stack: Vec::new(),
        nodes: 0,
    };
    cx.clean(schema)
}

struct SchemaCx<'a> {
    provider: &'static str,
    defs: HashMap<String, &'a Value>,
    stack: Vec<String>,
    nodes: usize,
}

impl<'a> SchemaCx<'a> {
    fn err(&self, msg: String) -> Error {
        bad_request(self.provider, format!("unsupported JSON schema: {msg}"))
    }

    fn clean(&mut self, node: &Value) -> Result<Value, Error> {
        self.nodes += 1;
        if self.nodes > MAX_SCHEMA_NODES {
            return Err(self.err("the schema is too large once references are inlined".into()));
        }
        let obj = match node {
            Value::Object(o) => o,
            // `true` (anything) has no Gemini equivalent beyond an unconstrained schema.
            Value::Bool(true) => return Ok(json!({})),
            _ => return Err(self.err("every schema must be an object".into())),
        };
        if let Some(r) = obj.get("$ref") {
            let r = r.as_str().unwrap_or("");
            let target = *self
                .defs
                .get(r)
                .ok_or_else(|| self.err(format!("'$ref: {r}' is not a local definition")))?;
            if self.stack.iter().any(|s| s == r) {
                return Err(self.err(format!("'{r}' is recursive")));
            }
            self.stack.push(r.to_owned());
            let mut resolved = self.clean(target)?;
            self.stack.pop();
            // Sibling keywords (a description, say) refine the referenced schema.
            let mut siblings = obj.clone();
            siblings.remove("$ref");
            if !siblings.is_empty() {
                let refined = self.clean_object(&siblings)?;
                merge(&mut resolved, refined);
            }
            return Ok(resolved);
        }
        if let Some(all) = obj.get("allOf") {
            let items = all.as_array().map(Vec::as_slice).unwrap_or_default();
            if items.len() != 1 {
                return Err(self.err("allOf with more than one schema".into()));
            }
            let mut resolved = self.clean(&items[0])?;
            let mut siblings = obj.clone();
            siblings.remove("allOf");
            let refined = self.clean_object(&siblings)?;
            merge(&mut resolved, refined);
            return Ok(resolved);
        }
        self.clean_object(obj)
    }

    fn clean_object(&mut self, obj: &Map<String, Value>) -> Result<Value, Error> {
        let mut out = Map::new();
        let mut nullable = false;
        for (key, value) in obj {
            match key.as_str() {
                "type" => match value {
                    Value::String(t) if t == "null" => nullable = true,
                    Value::String(t) => {
                        out.insert("type".into(), json!(t.to_ascii_uppercase()));
                    }
                    Value::Array(types) => {
                        let mut kept = Vec::new();
                        for t in types.iter().filter_map(Value::as_str) {
                            if t == "null" {
                                nullable = true;
                            } else {
                                kept.push(t.to_ascii_uppercase());
                            }
                        }
                        match kept.len() {
                            0 => {}
                            1 => {
                                out.insert("type".into(), json!(kept[0]));
                            }
                            _ => {
                                let alts: Vec<Value> =
                                    kept.iter().map(|t| json!({ "type": t })).collect();
                                out.insert("anyOf".into(), Value::Array(alts));
                            }
                        }
                    }
                    _ => return Err(self.err("'type' must be a string or an array".into())),
                },
                "properties" => {
                    let props = value
                        .as_object()
                        .ok_or_else(|| self.err("'properties' must be an object".into()))?;
                    let mut cleaned = Map::new();
                    for (name, sub) in props {
                        cleaned.insert(name.clone(), self.clean(sub)?);
                    }
                    out.insert("properties".into(), Value::Object(cleaned));
                }
                "items" => {
                    if value.is_array() {
                        return Err(self.err("tuple 'items' (an array of schemas)".into()));
                    }
                    out.insert("items".into(), self.clean(value)?);
                }
                "anyOf" | "oneOf" => {
                    let alts = value
                        .as_array()
                        .ok_or_else(|| self.err(format!("'{key}' must be an array")))?;
                    let mut cleaned = Vec::new();
                    for alt in alts {
                        if alt.get("type").and_then(Value::as_str) == Some("null") {
                            nullable = true;
                        } else {
                            cleaned.push(self.clean(alt)?);
                        }
                    }
                    if cleaned.len() == 1 {
                        // `anyOf: [X, null]` (an optional X) is just a nullable X.
                        if let Some(Value::Object(single)) = cleaned.pop() {
                            for (k, v) in single {
                                out.entry(k).or_insert(v);
                            }
                        }
                    } else if !cleaned.is_empty() {
                        out.insert("anyOf".into(), Value::Array(cleaned));
                    }
                }
                "enum" => {
                    let values = value
                        .as_array()
                        .ok_or_else(|| self.err("'enum' must be an array".into()))?;
                    let mut strings = Vec::new();
                    for v in values {
                        match v {
                            Value::Null => nullable = true,
                            Value::String(s) => strings.push(json!(s)),
                            other => strings.push(json!(other.to_string())),
                        }
                    }
                    out.insert("enum".into(), Value::Array(strings));
                }
                "const" => {
                    let s = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.insert("enum".into(), json!([s]));
                }
                "format" if value.as_str().is_some_and(|f| SCHEMA_FORMATS.contains(&f)) => {
                    out.insert("format".into(), value.clone());
                }
                "nullable" if value == &Value::Bool(true) => nullable = true,
                // An unsupported `format`, or `nullable: false`: dropped.
                "format" | "nullable" => {}
                k if SCHEMA_KEYWORDS.contains(&k) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        if out.contains_key("enum") && !out.contains_key("type") && !out.contains_key("anyOf") {
            out.insert("type".into(), json!("STRING"));
        }
        if let Some(Value::Array(req)) = out.get("required").cloned() {
            let props = out.get("properties").and_then(Value::as_object);
            let kept: Vec<Value> = req
                .into_iter()
                .filter(|r| {
                    r.as_str()
                        .is_some_and(|name| props.is_some_and(|p| p.contains_key(name)))
                })
                .collect();
            if kept.is_empty() {
                out.remove("required");
            } else {
                out.insert("required".into(), Value::Array(kept));
            }
        }
        if nullable {
            out.insert("nullable".into(), json!(true));
        }
        Ok(Value::Object(out))
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        for (k, v) in from {
            into.insert(k, v);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Chat response
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    /// Set when the body is an error (`{"error":{…}}`) rather than a response.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<FunctionCallPart>,
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionCallPart {
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
    #[serde(default)]
    block_reason_message: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

/// Facts the decoder cannot read from the body: the model to report when the body names
/// none, and the timestamp.
#[derive(Debug, Clone, Copy)]
pub struct ResponseMeta<'a> {
    /// The provider prefix named in errors.
    pub provider: &'static str,
    /// The deployment's model, reported when the response has no `modelVersion`.
    pub model: &'a str,
    /// Unix seconds for `created`.
    pub created: u64,
}

fn invalid_body(provider: &'static str, what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::UpstreamError,
        format!("{provider}: the upstream sent an invalid {what}: {e}"),
    )
    .with_origin(Origin::Upstream)
    .with_provider(provider)
}

/// Parse a `generateContent` response.
///
/// A prompt blocked before any candidate (`promptFeedback.blockReason`) is a
/// `content_policy` error; a `MALFORMED_FUNCTION_CALL` (or `UNEXPECTED_TOOL_CALL`,
/// `TOO_MANY_TOOL_CALLS`) finish is an `upstream_error` (retryable: the model produced an
/// unusable call, and another attempt usually does not).
pub fn decode_chat(body: &[u8], meta: &ResponseMeta<'_>) -> Result<ChatResponse, Error> {
    let p = meta.provider;
    let resp: GenerateContentResponse =
        serde_json::from_slice(body).map_err(|e| invalid_body(p, "response", &e))?;
    if resp.error.is_some() {
        return Err(decode_error(p, 0, body, None, &[]));
    }
    if resp.candidates.is_empty() {
        return Err(no_candidates(p, resp.prompt_feedback.as_ref()));
    }
    let mut choices = Vec::with_capacity(resp.candidates.len());
    for (pos, cand) in resp.candidates.iter().enumerate() {
        let index = cand.index.unwrap_or(pos as u32);
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut calls = Vec::new();
        for part in cand.content.iter().flat_map(|c| &c.parts) {
            if let Some(fc) = &part.function_call {
                let args = fc.args.clone().unwrap_or_else(|| json!({}));
                let arguments = args.to_string();
                let id = tool_call_id(
                    &fc.name,
                    &arguments,
                    calls.len(),
                    part.thought_signature.as_deref(),
                );
                calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall {
                        name: fc.name.clone(),
                        arguments,
                    },
                });
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            }
        }
        let finish = finish_reason(p, cand, !calls.is_empty())?;
        let content = if text.is_empty()
            && (!calls.is_empty() || finish == Some(FinishReason::ContentFilter))
        {
            None
        } else {
            Some(text)
        };
        choices.push(Choice {
            index,
            message: ResponseMessage {
                role: Role::Assistant,
                content,
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                extra: JsonObject::new(),
            },
            finish_reason: finish,
            logprobs: None,
        });
    }
    Ok(ChatResponse {
        id: resp
            .response_id
            .clone()
            .unwrap_or_else(|| synthesized_id(body, meta.created)),
        object: "chat.completion".into(),
        created: meta.created,
        model: resp
            .model_version
            .clone()
            .unwrap_or_else(|| meta.model.to_owned()),
        choices,
        usage: resp.usage_metadata.as_ref().map(usage_from),
        system_fingerprint: None,
        service_tier: None,
        extra: JsonObject::new(),
    })
}

fn no_candidates(provider: &'static str, feedback: Option<&PromptFeedback>) -> Error {
    match feedback.and_then(|f| f.block_reason.as_deref().map(|r| (r, f))) {
        Some((reason, f)) => {
            let mut msg = format!("{provider}: the prompt was blocked ({reason})");
            if let Some(m) = &f.block_reason_message {
                msg.push_str(": ");
                msg.push_str(m);
            }
            Error::new(ErrorKind::ContentPolicy, msg)
                .with_origin(Origin::Upstream)
                .with_provider(provider)
        }
        None => Error::new(
            ErrorKind::UpstreamError,
            format!("{provider}: the upstream answered without any candidate"),
        )
        .with_origin(Origin::Upstream)
        .with_provider(provider),
    }
}

/// Map a candidate's `finishReason`. `None` while the candidate is still streaming.
fn finish_reason(
    provider: &'static str,
    cand: &Candidate,
    has_calls: bool,
) -> Result<Option<FinishReason>, Error> {
    let Some(reason) = cand.finish_reason.as_deref() else {
        return Ok(None);
    };
    Ok(Some(match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => FinishReason::ContentFilter,
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" => {
            let mut msg =
                format!("{provider}: the model produced an unusable function call ({reason})");
            if let Some(m) = &cand.finish_message {
                msg.push_str(": ");
                msg.push_str(m);
            }
            return Err(Error::new(ErrorKind::UpstreamError, msg)
                .with_code("malformed_function_call")
                .with_origin(Origin::Upstream)
                .with_provider(provider));
        }
        // STOP, OTHER, LANGUAGE, FINISH_REASON_UNSPECIFIED and reasons added later.
        _ if has_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }))
}

fn usage_from(u: &UsageMetadata) -> Usage {
    let prompt = u.prompt_token_count.unwrap_or(0);
    let thoughts = u.thoughts_token_count;
    let completion = u.candidates_token_count.unwrap_or(0) + thoughts.unwrap_or(0);
    let mut usage = Usage::new(prompt, completion);
    if let Some(cached) = u.cached_content_token_count {
        usage.prompt_tokens_details = Some(PromptTokensDetails {
            cached_tokens: Some(cached),
            ..PromptTokensDetails::default()
        });
    }
    if let Some(t) = thoughts {
        usage.completion_tokens_details = Some(CompletionTokensDetails {
            reasoning_tokens: Some(t),
            ..CompletionTokensDetails::default()
        });
    }
    usage
}

/// FNV-1a, 64 bits: stable across processes and versions, unlike `DefaultHasher`.
fn fnv1a(chunks: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in chunks {
        for b in *c {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate chunks so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn synthesized_id(body: &[u8], created: u64) -> String {
    format!("chatcmpl-{:016x}", fnv1a(&[body, &created.to_le_bytes()]))
}

/// The id of the `index`-th function call of a candidate: `call_` + 16 hex digits of a hash
/// of name, arguments and index, so the same answer always gets the same ids. A thought
/// signature is appended after [`THOUGHT_SIGNATURE_MARK`] in base64url form (ids stay
/// `[A-Za-z0-9_-]`), to be sent back when the assistant turn is replayed.
pub fn tool_call_id(name: &str, arguments: &str, index: usize, signature: Option<&str>) -> String {
    let h = fnv1a(&[
        name.as_bytes(),
        arguments.as_bytes(),
        &(index as u64).to_le_bytes(),
    ]);
    let mut id = format!("call_{h:016x}");
    if let Some(sig) = signature.filter(|s| !s.is_empty()) {
        id.push_str(THOUGHT_SIGNATURE_MARK);
        id.extend(sig.chars().filter(|c| *c != '=').map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        }));
    }
    id
}

/// The thought signature carried by a tool-call id made by [`tool_call_id`], as standard
/// padded base64.
pub fn signature_from_id(id: &str) -> Option<String> {
    if !id.starts_with("call_") {
        return None;
    }
    let (_, sig) = id.split_once(THOUGHT_SIGNATURE_MARK)?;
    if sig.is_empty() {
        return None;
    }
    let mut out: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct CandidateState {
    index: u32,
    tool_calls: u32,
    finished: bool,
}

/// Turns the events of `streamGenerateContent?alt=sse` (each `data:` a whole
/// `GenerateContentResponse`) into OpenAI chunks: per choice a role chunk first, then text,
/// reasoning and tool-call deltas (each call whole, with its index), then a finish chunk;
/// [`StreamDecoder::finish`] adds the usage-only chunk from the last `usageMetadata`.
#[derive(Debug)]
pub struct StreamDecoder {
    provider: &'static str,
    model: String,
    created: u64,
    id: Option<String>,
    candidates: Vec<CandidateState>,
    usage: Option<UsageMetadata>,
}

impl StreamDecoder {
    /// A decoder for one stream; `model` is reported until the upstream names its
    /// `modelVersion`.
    pub fn new(meta: &ResponseMeta<'_>) -> Self {
        Self {
            provider: meta.provider,
            model: meta.model.to_owned(),
            created: meta.created,
            id: None,
            candidates: Vec::new(),
            usage: None,
        }
    }

    fn chunk(&self, choice: Option<ChunkChoice>) -> ChatChunk {
        let mut c = ChatChunk::new(
            self.id.clone().unwrap_or_default(),
            self.model.clone(),
            self.created,
        );
        c.choices.extend(choice);
        c
    }

    fn delta_chunk(&self, index: u32, delta: Delta) -> ChatChunk {
        self.chunk(Some(ChunkChoice {
            index,
            delta,
            finish_reason: None,
            logprobs: None,
        }))
    }

    /// Decode one event's `data`, appending the chunks it yields to `out`.
    pub fn decode(&mut self, data: &str, out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        let p = self.provider;
        if data.trim().is_empty() {
            return Ok(());
        }
        // Vertex wraps an in-stream error in an array.
        if data.trim_start().starts_with('[') {
            return Err(decode_error(p, 0, data.as_bytes(), None, &[]));
        }
        let resp: GenerateContentResponse =
            serde_json::from_str(data).map_err(|e| invalid_body(p, "stream event", &e))?;
        if resp.error.is_some() {
            return Err(decode_error(p, 0, data.as_bytes(), None, &[]));
        }
        if self.id.is_none() {
            self.id = Some(
                resp.response_id
                    .clone()
                    .unwrap_or_else(|| synthesized_id(data.as_bytes(), self.created)),
            );
        }
        if let Some(m) = &resp.model_version {
            m.clone_into(&mut self.model);
        }
        if let Some(u) = &resp.usage_metadata {
            self.usage = Some(u.clone());
        }
        if resp.candidates.is_empty() {
            if resp
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
            {
                return Err(no_candidates(p, resp.prompt_feedback.as_ref()));
            }
            return Ok(());
        }
        for (pos, cand) in resp.candidates.iter().enumerate() {
            let index = cand.index.unwrap_or(pos as u32);
            let slot = match self.candidates.iter().position(|c| c.index == index) {
                Some(s) => s,
                None => {
                    self.candidates.push(CandidateState {
                        index,
                        tool_calls: 0,
                        finished: false,
                    });
                    out.push_back(self.delta_chunk(
                        index,
                        Delta {
                            role: Some(Role::Assistant),
                            content: Some(String::new()),
                            ..Delta::default()
                        },
                    ));
                    self.candidates.len() - 1
                }
            };
            if self.candidates[slot].finished {
                continue;
            }
            for part in cand.content.iter().flat_map(|c| &c.parts) {
                if let Some(fc) = &part.function_call {
                    let n = self.candidates[slot].tool_calls;
                    self.candidates[slot].tool_calls += 1;
                    let arguments = fc.args.clone().unwrap_or_else(|| json!({})).to_string();
                    let id = tool_call_id(
                        &fc.name,
                        &arguments,
                        n as usize,
                        part.thought_signature.as_deref(),
                    );
                    out.push_back(self.delta_chunk(
                        index,
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: n,
                                id: Some(id),
                                kind: Some("function".into()),
                                function: Some(FunctionCallDelta {
                                    name: Some(fc.name.clone()),
                                    arguments: Some(arguments),
                                }),
                            }]),
                            ..Delta::default()
                        },
                    ));
                } else if let Some(t) = part.text.as_ref().filter(|t| !t.is_empty()) {
                    let delta = if part.thought == Some(true) {
                        Delta {
                            reasoning_content: Some(t.clone()),
                            ..Delta::default()
                        }
                    } else {
                        Delta {
                            content: Some(t.clone()),
                            ..Delta::default()
                        }
                    };
                    out.push_back(self.delta_chunk(index, delta));
                }
            }
            let has_calls = self.candidates[slot].tool_calls > 0;
            if let Some(reason) = finish_reason(p, cand, has_calls)? {
                self.candidates[slot].finished = true;
                out.push_back(self.chunk(Some(ChunkChoice {
                    index,
                    delta: Delta::default(),
                    finish_reason: Some(reason),
                    logprobs: None,
                })));
            }
        }
        Ok(())
    }

    /// Call when the upstream stream ended cleanly: the usage-only chunk built from the last
    /// `usageMetadata` seen, if any.
    pub fn finish(&mut self) -> Option<ChatChunk> {
        let usage = self.usage.take()?;
        if self.id.is_none() {
            self.id = Some(synthesized_id(b"", self.created));
        }
        let mut c = self.chunk(None);
        c.usage = Some(usage_from(&usage));
        Some(c)
    }
}

// ---------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------

/// Which embeddings method a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedMethod {
    /// Gemini API `:embedContent` (one input).
    EmbedContent,
    /// Gemini API `:batchEmbedContents` (several inputs).
    BatchEmbedContents,
    /// Vertex AI `:predict` (`instances: [{content}]`).
    Predict,
}

/// The embeddings body for `req` and the method to call. `model` is the deployment's model
/// (batch requests name it per item as `models/{model}`). `task_type` and `title` are read
/// from the request's extra fields; `dimensions` becomes `outputDimensionality`.
pub fn encode_embeddings(
    req: &EmbeddingRequest,
    model: &str,
    api: Api,
    provider: &'static str,
) -> Result<(EmbedMethod, Value), Error> {
    let texts: Vec<&str> = match &req.input {
        EmbeddingInput::Text(t) => vec![t.as_str()],
        EmbeddingInput::Texts(ts) => ts.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(bad_request(
                provider,
                "token-array input is not supported; send text".into(),
            )
            .with_param("input"));
        }
    };
    if texts.is_empty() {
        return Err(bad_request(provider, "input must not be empty".into()).with_param("input"));
    }
    if let Some(f) = req.encoding_format.as_deref()
        && f != "float"
        && f != "base64"
    {
        return Err(
            bad_request(provider, format!("unknown encoding_format '{f}'"))
                .with_param("encoding_format"),
        );
    }
    let task_type = req
        .extra
        .get("task_type")
        .or_else(|| req.extra.get("taskType"))
        .and_then(Value::as_str);
    let title = req.extra.get("title").and_then(Value::as_str);
    match api {
        Api::Vertex => {
            let instances: Vec<Value> = texts
                .iter()
                .map(|t| {
                    let mut i = Map::new();
                    i.insert("content".into(), json!(t));
                    if let Some(tt) = task_type {
                        i.insert("task_type".into(), json!(tt));
                    }
                    if let Some(title) = title {
                        i.insert("title".into(), json!(title));
                    }
                    Value::Object(i)
                })
                .collect();
            let mut body = Map::new();
            body.insert("instances".into(), Value::Array(instances));
            if let Some(d) = req.dimensions {
                body.insert("parameters".into(), json!({ "outputDimensionality": d }));
            }
            Ok((EmbedMethod::Predict, Value::Object(body)))
        }
        Api::Gemini => {
            let one = |text: &str, with_model: bool| {
                let mut r = Map::new();
                if with_model {
                    r.insert("model".into(), json!(format!("models/{model}")));
                }
                r.insert("content".into(), json!({ "parts": [{ "text": text }] }));
                if let Some(tt) = task_type {
                    r.insert("taskType".into(), json!(tt));
                }
                if let Some(title) = title {
                    r.insert("title".into(), json!(title));
                }
                if let Some(d) = req.dimensions {
                    r.insert("outputDimensionality".into(), json!(d));
                }
                Value::Object(r)
            };
            if texts.len() == 1 {
                Ok((EmbedMethod::EmbedContent, one(texts[0], false)))
            } else {
                let requests: Vec<Value> = texts.iter().map(|t| one(t, true)).collect();
                Ok((
                    EmbedMethod::BatchEmbedContents,
                    json!({ "requests": requests }),
                ))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ContentEmbedding {
    #[serde(default)]
    values: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct EmbedContentResponse {
    embedding: ContentEmbedding,
}

#[derive(Debug, Deserialize)]
struct BatchEmbedContentsResponse {
    #[serde(default)]
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Debug, Deserialize)]
struct PredictResponse {
    #[serde(default)]
    predictions: Vec<Prediction>,
}

#[derive(Debug, Deserialize)]
struct Prediction {
    embeddings: PredictionEmbedding,
}

#[derive(Debug, Deserialize)]
struct PredictionEmbedding {
    #[serde(default)]
    values: Vec<f32>,
    #[serde(default)]
    statistics: Option<PredictionStatistics>,
}

#[derive(Debug, Deserialize)]
struct PredictionStatistics {
    #[serde(default)]
    token_count: f64,
}

/// Parse an embeddings answer of `method`. The Gemini API reports no token counts for
/// embeddings (usage is 0); Vertex reports `statistics.token_count` per input.
/// `base64` encodes each vector as base64 of little-endian f32 (`encoding_format: base64`).
pub fn decode_embeddings(
    method: EmbedMethod,
    body: &[u8],
    meta: &ResponseMeta<'_>,
    base64: bool,
) -> Result<EmbeddingResponse, Error> {
    let p = meta.provider;
    let bad = |e: serde_json::Error| invalid_body(p, "embeddings response", &e);
    let (vectors, tokens): (Vec<Vec<f32>>, u64) = match method {
        EmbedMethod::EmbedContent => {
            let r: EmbedContentResponse = serde_json::from_slice(body).map_err(bad)?;
            (vec![r.embedding.values], 0)
        }
        EmbedMethod::BatchEmbedContents => {
            let r: BatchEmbedContentsResponse = serde_json::from_slice(body).map_err(bad)?;
            (r.embeddings.into_iter().map(|e| e.values).collect(), 0)
        }
        EmbedMethod::Predict => {
            let r: PredictResponse = serde_json::from_slice(body).map_err(bad)?;
            let tokens = r
                .predictions
                .iter()
                .filter_map(|p| p.embeddings.statistics.as_ref())
                .map(|s| s.token_count.max(0.0) as u64)
                .sum();
            (
                r.predictions
                    .into_iter()
                    .map(|p| p.embeddings.values)
                    .collect(),
                tokens,
            )
        }
    };
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let mut e = Embedding::new(i as u32, v);
            if base64 && let EmbeddingVector::Float(v) = &e.embedding {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                e.embedding = EmbeddingVector::Base64(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                );
            }
            e
        })
        .collect();
    Ok(EmbeddingResponse::new(
        meta.model,
        data,
        EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    ))
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct GoogleErrorBody {
    error: GoogleError,
}

#[derive(Debug, Deserialize)]
struct GoogleError {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// Whether an upstream message says the prompt is over the context window.
fn is_token_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("exceeds the maximum number of tokens")
        || (m.contains("input token count") && m.contains("exceeds"))
        || m.contains("context window")
        || m.contains("too many tokens")
}

/// `"37s"` / `"1.5s"` (a `google.protobuf.Duration` in JSON).
fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Map a Google error response (HTTP `status`, body `{"error":{"code","message","status",
/// "details"}}`, also accepted wrapped in an array as streams send it) to the taxonomy.
/// `status` 0 means "read it from the body" (errors inside a stream). `retry_after` from the
/// header wins over a `RetryInfo.retryDelay` detail. `secrets` are redacted from messages.
pub fn decode_error(
    provider: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    secrets: &[&str],
) -> Error {
    // Streams wrap the error in an array. (Checked first: serde would also read an array
    // into the struct, positionally.)
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_array {
        serde_json::from_slice::<Vec<GoogleErrorBody>>(body)
            .ok()
            .and_then(|v| v.into_iter().next())
    } else {
        serde_json::from_slice::<GoogleErrorBody>(body).ok()
    };
    let Some(GoogleErrorBody { error: g }) = parsed else {
        let status = if status == 0 { 502 } else { status };
        let mut e = Error::from_upstream_status(
            status,
            format!("{provider}: the upstream answered HTTP {status}"),
        )
        .with_provider(provider);
        if let Some(r) = retry_after {
            e = e.with_retry_after(r);
        }
        return e;
    };
    let status = if status == 0 {
        g.code.unwrap_or(500)
    } else {
        status
    };
    let reason = g
        .details
        .iter()
        .find_map(|d| d.get("reason").and_then(Value::as_str));
    let retry_delay = g.details.iter().find_map(|d| {
        let is_retry_info = d
            .get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"));
        if is_retry_info {
            d.get("retryDelay")
                .and_then(Value::as_str)
                .and_then(parse_proto_duration)
        } else {
            None
        }
    });
    let kind = match g.status.as_deref() {
        _ if reason == Some("API_KEY_INVALID") => ErrorKind::Auth,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            if is_token_limit(&g.message) {
                ErrorKind::ContextWindowExceeded
            } else {
                ErrorKind::BadRequest
            }
        }
        Some("UNAUTHENTICATED") => ErrorKind::Auth,
        Some("PERMISSION_DENIED") => ErrorKind::Permission,
        Some("NOT_FOUND") => ErrorKind::NotFound,
        Some("RESOURCE_EXHAUSTED") => ErrorKind::RateLimited,
        Some("INTERNAL" | "UNKNOWN" | "DATA_LOSS") => ErrorKind::UpstreamError,
        Some("UNAVAILABLE" | "CANCELLED" | "ABORTED") => ErrorKind::UpstreamUnavailable,
        Some("DEADLINE_EXCEEDED") => ErrorKind::Timeout,
        _ => ErrorKind::from_upstream_status(status),
    };
    let message = llmux_http::redact(&g.message, secrets);
    let mut e = Error::new(kind, format!("{provider}: {message}"))
        .with_origin(Origin::Upstream)
        .with_provider(provider)
        .with_upstream_status(status);
    if let Some(r) = retry_after.or(retry_delay) {
        e = e.with_retry_after(r);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_through_ids() {
        let sig = "Cv4BAb+/4Q==";
        let id = tool_call_id("f", "{}", 0, Some(sig));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        assert_eq!(signature_from_id(&id).as_deref(), Some(sig));
        assert_eq!(signature_from_id(&tool_call_id("f", "{}", 0, None)), None);
        assert_eq!(signature_from_id("toolu_x_ts_abc"), None);
        // Same call, same id; another index, another id.
        assert_eq!(
            tool_call_id("f", "{}", 0, None),
            tool_call_id("f", "{}", 0, None)
        );
        assert_ne!(
            tool_call_id("f", "{}", 0, None),
            tool_call_id("f", "{}", 1, None)
        );
    }

    #[test]
    fn proto_durations_parse() {
        assert_eq!(parse_proto_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(
            parse_proto_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_proto_duration("soon"), None);
    }

    #[test]
    fn mime_types_come_from_extensions() {
        assert_eq!(
            mime_from_path("https://x.test/a/cat.JPG?size=2").as_deref(),
            Some("image/jpeg")
        );
        assert_eq!(
            mime_from_path("gs://bucket/doc.pdf").as_deref(),
            Some("application/pdf")
        );
        assert_eq!(mime_from_path("https://x.test/image"), None);
    }
}
