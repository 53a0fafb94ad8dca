use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    JsonObject, Message, ResponseFormat, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
    Usage, is_empty_object,
};

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model (group) name, e.g. `gpt-4o` or `openai/gpt-4o`.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stream the answer as SSE chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Output token limit (legacy name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Output token limit, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Token id → bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<JsonObject>,
    /// Return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Alternatives per position when `logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Best-effort determinism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model picks tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Allow several tool calls in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// `minimal`, `low`, `medium`, `high` (reasoning models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Every other field, kept and passed through to OpenAI-shaped upstreams.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

impl ChatRequest {
    /// A request for `model` with no messages yet.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }

    /// Append a message.
    pub fn message(mut self, m: Message) -> Self {
        self.messages.push(m);
        self
    }

    /// Append a system message.
    pub fn system(self, text: impl Into<String>) -> Self {
        self.message(Message::system(text))
    }

    /// Append a user message.
    pub fn user(self, text: impl Into<String>) -> Self {
        self.message(Message::user(text))
    }

    /// Append an assistant message (an earlier turn of the conversation).
    pub fn assistant(self, text: impl Into<String>) -> Self {
        self.message(Message::assistant(text))
    }

    /// Append the result of the tool call `tool_call_id`.
    pub fn tool_result(self, tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        self.message(Message::tool(tool_call_id, text))
    }

    /// Sampling temperature (0 = most deterministic).
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Nucleus sampling.
    pub fn top_p(mut self, top_p: f64) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Output token limit.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Output token limit, reasoning included (reasoning models).
    pub fn max_completion_tokens(mut self, max: u32) -> Self {
        self.max_completion_tokens = Some(max);
        self
    }

    /// Stop sequences.
    pub fn stop<S: Into<String>>(mut self, sequences: impl IntoIterator<Item = S>) -> Self {
        self.stop = Some(Stop::Many(sequences.into_iter().map(Into::into).collect()));
        self
    }

    /// Best-effort determinism.
    pub fn seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The end user on whose behalf the call is made (recorded as the call's `end_user`).
    pub fn end_user(mut self, id: impl Into<String>) -> Self {
        self.user = Some(id.into());
        self
    }

    /// Offer a tool the model may call (see [`Tool::function`]).
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.get_or_insert_with(Vec::new).push(tool);
        self
    }

    /// How the model picks tools (see [`ToolChoice::required`], [`ToolChoice::function`]).
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Ask for any valid JSON object as the answer (`response_format: json_object`).
    pub fn json_mode(mut self) -> Self {
        self.response_format = Some(ResponseFormat::JsonObject);
        self
    }

    /// Ask for JSON matching `schema` (`response_format: json_schema`, strict).
    pub fn json_schema(mut self, name: impl Into<String>, schema: serde_json::Value) -> Self {
        self.response_format = Some(ResponseFormat::JsonSchema {
            json_schema: super::JsonSchemaFormat {
                name: name.into(),
                description: None,
                schema: Some(schema),
                strict: Some(true),
            },
        });
        self
    }

    /// `minimal`, `low`, `medium` or `high` (reasoning models).
    pub fn reasoning_effort(mut self, effort: impl Into<String>) -> Self {
        self.reasoning_effort = Some(effort.into());
        self
    }

    /// Add an attribution tag (`metadata.tags`): recorded in the call's `CallRecord`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        let metadata = self.metadata.get_or_insert_with(JsonObject::new);
        let tags = metadata
            .entry("tags")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if !tags.is_array() {
            *tags = serde_json::Value::Array(Vec::new());
        }
        if let serde_json::Value::Array(list) = tags {
            list.push(serde_json::Value::String(tag.into()));
        }
        self
    }

    /// Any other request field, passed through to OpenAI-shaped upstreams (and read by
    /// providers that know it, e.g. the mock's `mock_response`).
    pub fn param(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Ask for a stream, with the final usage chunk.
    pub fn streaming(mut self) -> Self {
        self.stream = Some(true);
        self.stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
        self
    }

    /// Whether the caller asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the caller asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The text of the last user message, if any.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(Message::text_content)
    }
}

/// Why a choice stopped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// Output token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Filtered by a content policy.
    ContentFilter,
    /// Legacy function call.
    FunctionCall,
    /// A value llmux does not know, kept as sent.
    Other(String),
}

impl FinishReason {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::FunctionCall => "function_call",
            Self::Other(s) => s,
        }
    }
}

impl From<&str> for FinishReason {
    fn from(s: &str) -> Self {
        match s {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            "function_call" => Self::FunctionCall,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from(s.as_ref()))
    }
}

/// `chat.completion` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Completion id.
    pub id: String,
    /// Always `"chat.completion"`.
    #[serde(default = "chat_completion")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The choices.
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Service tier used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

fn chat_completion() -> String {
    "chat.completion".to_owned()
}

fn chat_completion_chunk() -> String {
    "chat.completion.chunk".to_owned()
}

/// One choice of a [`ChatResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The answer.
    pub message: ResponseMessage,
    /// Why it stopped.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked (`null` otherwise, as OpenAI sends it).
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

/// The assistant message of a [`Choice`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Always assistant.
    pub role: Role,
    /// The text (null when only tools were called).
    #[serde(default)]
    pub content: Option<String>,
    /// Refusal text (`null` when none, as OpenAI sends it).
    #[serde(default)]
    pub refusal: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Reasoning text (providers that expose it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Fields llmux does not model (e.g. `annotations`, `audio`).
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

impl ResponseMessage {
    /// An assistant message with `text`.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: Some(text.into()),
            refusal: None,
            tool_calls: None,
            reasoning_content: None,
            extra: JsonObject::new(),
        }
    }
}

impl ChatResponse {
    /// The first choice's text, if any.
    pub fn text(&self) -> Option<&str> {
        self.choices.first()?.message.content.as_deref()
    }
}

/// `chat.completion.chunk`: one SSE event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Completion id (same for every chunk of a stream).
    pub id: String,
    /// Always `"chat.completion.chunk"`.
    #[serde(default = "chat_completion_chunk")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Deltas (empty in the final usage chunk).
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token counts: only in the final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Service tier used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

impl ChatChunk {
    /// An empty chunk with the stream's identity.
    pub fn new(id: impl Into<String>, model: impl Into<String>, created: u64) -> Self {
        Self {
            id: id.into(),
            object: chat_completion_chunk(),
            created,
            model: model.into(),
            choices: Vec::new(),
            usage: None,
            system_fingerprint: None,
            service_tier: None,
            extra: JsonObject::new(),
        }
    }

    /// True for the usage-only chunk that ends a stream (`choices` empty, `usage` set).
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.is_some()
    }
}

/// One choice's delta in a [`ChatChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// What is new.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked (`null` otherwise, as OpenAI sends it).
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

/// The new part of a streamed message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Set on the first delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Refusal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

/// A fragment of a tool call: `id`, `type` and name come first; `arguments` arrive in pieces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call of the message this extends.
    pub index: u32,
    /// Call id (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"function"` (first fragment).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and/or an arguments fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// Function fragment of a [`ToolCallDelta`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// Function name (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Next piece of the JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl Tool {
    /// A function tool: its name, what it does, and the JSON Schema of its arguments.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Self {
            kind: super::content::function(),
            function: Some(super::FunctionDefinition {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                strict: None,
            }),
            extra: JsonObject::new(),
        }
    }
}

impl ToolChoice {
    /// The model decides whether to call a tool.
    pub fn auto() -> Self {
        Self::Mode(super::ToolChoiceMode::Auto)
    }

    /// The model must call at least one tool.
    pub fn required() -> Self {
        Self::Mode(super::ToolChoiceMode::Required)
    }

    /// The model must call the function `name`.
    pub fn function(name: impl Into<String>) -> Self {
        Self::Named(super::NamedToolChoice {
            kind: super::content::function(),
            function: super::NamedFunction { name: name.into() },
        })
    }
}

/// An answer put back into the conversation (e.g. before the tool results that answer
/// its tool calls).
impl From<ResponseMessage> for Message {
    fn from(m: ResponseMessage) -> Self {
        Self {
            role: m.role,
            content: m.content.map(super::MessageContent::Text),
            name: None,
            tool_calls: m.tool_calls,
            tool_call_id: None,
            refusal: m.refusal,
            reasoning_content: m.reasoning_content,
            extra: m.extra,
        }
    }
}

impl ChatResponse {
    /// The first choice's tool calls (empty when it called none).
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.choices
            .first()
            .and_then(|c| c.message.tool_calls.as_deref())
            .unwrap_or_default()
    }
}

/// Builds the complete [`ChatResponse`] a chunk stream amounts to: text, reasoning and
/// refusal concatenated per choice, tool calls assembled by index (id and name from their
/// first fragment, `arguments` from every fragment in order), finish reasons, and the
/// usage chunk. Any sequence of chunks is accepted (nothing panics; an empty stream gives
/// a response with no choices).
///
/// ```
/// use llmux_core::{ChatChunk, ChunkChoice, Delta, StreamAccumulator};
///
/// let mut acc = StreamAccumulator::new();
/// for piece in ["Hel", "lo"] {
///     let mut chunk = ChatChunk::new("c1", "mock/echo", 0);
///     chunk.choices.push(ChunkChoice {
///         index: 0,
///         delta: Delta { content: Some(piece.into()), ..Delta::default() },
///         finish_reason: None,
///         logprobs: None,
///     });
///     acc.push(&chunk);
/// }
/// assert_eq!(acc.finish().text(), Some("Hello"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct StreamAccumulator {
    id: String,
    created: u64,
    model: String,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    choices: std::collections::BTreeMap<u32, PartialChoice>,
    usage: Option<Usage>,
}

#[derive(Debug, Default, Clone)]
struct PartialChoice {
    content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: std::collections::BTreeMap<u32, PartialToolCall>,
    finish_reason: Option<FinishReason>,
}

#[derive(Debug, Default, Clone)]
struct PartialToolCall {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

fn append(to: &mut Option<String>, piece: Option<&String>) {
    if let Some(p) = piece {
        to.get_or_insert_with(String::new).push_str(p);
    }
}

impl StreamAccumulator {
    /// Nothing received yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one chunk into account.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.system_fingerprint.is_none() {
            self.system_fingerprint
                .clone_from(&chunk.system_fingerprint);
        }
        if self.service_tier.is_none() {
            self.service_tier.clone_from(&chunk.service_tier);
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let choice = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            append(&mut choice.content, d.content.as_ref());
            append(&mut choice.reasoning, d.reasoning_content.as_ref());
            append(&mut choice.refusal, d.refusal.as_ref());
            for t in d.tool_calls.iter().flatten() {
                let call = choice.tool_calls.entry(t.index).or_default();
                if call.id.is_none() {
                    call.id.clone_from(&t.id);
                }
                if call.kind.is_none() {
                    call.kind.clone_from(&t.kind);
                }
                if let Some(f) = &t.function {
                    match &f.name {
                        // Names come whole in their first fragment; a repeat is not a suffix.
                        Some(n) if call.name.is_empty() => call.name.clone_from(n),
                        Some(n) if *n != call.name => call.name.push_str(n),
                        _ => {}
                    }
                    if let Some(a) = &f.arguments {
                        call.arguments.push_str(a);
                    }
                }
            }
            if c.finish_reason.is_some() {
                choice.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    /// The usage reported so far (the final usage chunk's).
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// The response the chunks amount to.
    pub fn finish(self) -> ChatResponse {
        let choices = self
            .choices
            .into_iter()
            .map(|(index, c)| {
                let tool_calls: Vec<ToolCall> = c
                    .tool_calls
                    .into_values()
                    .map(|t| ToolCall {
                        id: t.id.unwrap_or_default(),
                        kind: t.kind.unwrap_or_else(super::content::function),
                        function: super::FunctionCall {
                            name: t.name,
                            arguments: t.arguments,
                        },
                    })
                    .collect();
                Choice {
                    index,
                    message: ResponseMessage {
                        role: Role::Assistant,
                        content: c.content,
                        refusal: c.refusal,
                        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                        reasoning_content: c.reasoning,
                        extra: JsonObject::new(),
                    },
                    finish_reason: c.finish_reason,
                    logprobs: None,
                }
            })
            .collect();
        ChatResponse {
            id: self.id,
            object: chat_completion(),
            created: self.created,
            model: self.model,
            choices,
            usage: self.usage,
            system_fingerprint: self.system_fingerprint,
            service_tier: self.service_tier,
            extra: JsonObject::new(),
        }
    }

    /// Read `stream` to its end and return the response it amounts to; the first error
    /// the stream yields is returned instead.
    pub async fn collect<S>(mut stream: S) -> Result<ChatResponse, crate::Error>
    where
        S: futures_core::Stream<Item = Result<ChatChunk, crate::Error>> + Unpin,
    {
        let mut acc = Self::new();
        loop {
            let next =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await;
            match next {
                Some(Ok(chunk)) => acc.push(&chunk),
                Some(Err(e)) => return Err(e),
                None => return Ok(acc.finish()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(v: serde_json::Value) -> ChatChunk {
        serde_json::from_value(v).expect("test chunk")
    }

    #[test]
    fn builders_set_the_wire_fields() {
        let req = ChatRequest::new("gpt-4o")
            .system("be brief")
            .user("weather?")
            .assistant("calling")
            .tool_result("call_1", "sunny")
            .temperature(0.2)
            .max_tokens(64)
            .stop(["END"])
            .seed(7)
            .end_user("u-1")
            .tool(Tool::function(
                "get_weather",
                "Weather for a city",
                json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            ))
            .tool_choice(ToolChoice::function("get_weather"))
            .json_mode()
            .tag("team-a")
            .tag("exp-1")
            .param("mock_response", "hi")
            .streaming();
        let wire = serde_json::to_value(&req).expect("serialises");
        assert_eq!(
            wire,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": "calling"},
                    {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
                ],
                "temperature": 0.2,
                "max_tokens": 64,
                "stop": ["END"],
                "seed": 7,
                "user": "u-1",
                "tools": [{"type": "function", "function": {
                    "name": "get_weather", "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                }}],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "response_format": {"type": "json_object"},
                "metadata": {"tags": ["team-a", "exp-1"]},
                "mock_response": "hi",
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        let schema = ChatRequest::new("m").json_schema("out", json!({"type": "object"}));
        assert_eq!(
            serde_json::to_value(&schema.response_format).expect("serialises"),
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
        );
    }

    #[test]
    fn a_tag_replaces_metadata_tags_that_are_not_a_list() {
        let mut req = ChatRequest::new("m");
        req.metadata = Some(
            json!({"tags": "oops", "k": 1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let req = req.tag("a");
        assert_eq!(
            serde_json::to_value(&req.metadata).expect("serialises"),
            json!({"tags": ["a"], "k": 1})
        );
    }

    #[test]
    fn chunks_accumulate_into_a_response_with_tool_calls() {
        let chunks = [
            json!({"id": "c1", "created": 5, "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let me "}}]}),
            json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "check.", "reasoning_content": "think"}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": "{}"}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}}),
        ];
        let mut acc = StreamAccumulator::new();
        for c in chunks {
            acc.push(&chunk(c));
        }
        let r = acc.finish();
        assert_eq!(
            (r.id.as_str(), r.created, r.model.as_str()),
            ("c1", 5, "gpt-4o")
        );
        assert_eq!(r.text(), Some("Let me check."));
        assert_eq!(
            r.choices[0].message.reasoning_content.as_deref(),
            Some("think")
        );
        assert_eq!(r.choices[0].finish_reason, Some(FinishReason::ToolCalls));
        let calls = r.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (
                calls[0].id.as_str(),
                calls[0].function.name.as_str(),
                calls[0].function.arguments.as_str()
            ),
            ("call_a", "get_weather", "{\"city\":\"Paris\"}")
        );
        assert_eq!(
            (
                calls[1].id.as_str(),
                calls[1].kind.as_str(),
                calls[1].function.name.as_str()
            ),
            ("call_b", "function", "get_time")
        );
        assert_eq!(r.usage.map(|u| u.completion_tokens), Some(7));
    }

    #[test]
    fn choices_are_kept_apart_and_odd_input_does_not_panic() {
        let mut acc = StreamAccumulator::new();
        acc.push(&chunk(
            json!({"id": "x", "choices": [{"index": 1, "delta": {"content": "b"}}]}),
        ));
        acc.push(&chunk(
            json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}}]}),
        ));
        // A huge index, a fragment without function, a repeated name: no panic, no blow-up.
        acc.push(&chunk(json!({"id": "x", "choices": [{"index": 4294967295u32, "delta": {"tool_calls": [{"index": 4294967295u32}]}}]})));
        acc.push(&chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}, {"index": 0, "function": {"name": "f", "arguments": "1"}}]}}]})));
        let r = acc.finish();
        assert_eq!(r.choices.len(), 3);
        assert_eq!(r.choices[0].message.content.as_deref(), Some("a"));
        assert_eq!(r.choices[1].message.content.as_deref(), Some("b"));
        assert_eq!(
            r.choices[0].message.tool_calls.as_ref().map(|t| (
                t[0].function.name.as_str(),
                t[0].function.arguments.as_str()
            )),
            Some(("f", "1"))
        );
        assert_eq!(
            r.choices[2]
                .message
                .tool_calls
                .as_ref()
                .map(|t| t[0].id.as_str()),
            Some("")
        );
        assert!(StreamAccumulator::new().finish().choices.is_empty());
    }

    #[test]
    fn a_response_message_goes_back_into_the_conversation() {
        let mut m = ResponseMessage::assistant("ok");
        m.tool_calls = Some(vec![ToolCall {
            id: "call_1".into(),
            kind: "function".into(),
            function: crate::FunctionCall {
                name: "f".into(),
                arguments: "{}".into(),
            },
        }]);
        let msg: Message = m.into();
        assert_eq!(
            serde_json::to_value(&msg).expect("serialises"),
            json!({"role": "assistant", "content": "ok", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
        );
    }
}
