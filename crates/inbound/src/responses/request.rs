//! A Responses request → the canonical chat request of its turn.

use llmux_core::{
    ChatRequest, ContentPart, Error, FileRef, FunctionCall, FunctionDefinition, ImageUrl,
    InputAudio, JsonObject, JsonSchemaFormat, Message, MessageContent, NamedFunction,
    NamedToolChoice, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use serde_json::{Value, json};

/// A decoded Responses request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The canonical parameters; `messages` holds only this request's `input` (neither the
    /// `instructions` nor an earlier conversation: see [`DecodedRequest::to_chat`]).
    pub chat: ChatRequest,
    /// `instructions`: the system message of this turn only (a later turn that continues
    /// this one by `previous_response_id` does not inherit it, as on OpenAI).
    pub instructions: Option<String>,
    /// The response whose conversation this request continues.
    pub previous_response_id: Option<String>,
    /// Whether the response is kept for `previous_response_id` and `GET` (`store`, default
    /// true).
    pub store: bool,
    /// The request fields a Response object echoes, with OpenAI's defaults for those the
    /// client left out.
    pub echo: JsonObject,
}

impl DecodedRequest {
    /// The canonical request to route: the instructions (as a system message), then
    /// `history` (the conversation `previous_response_id` names), then this turn's input.
    pub fn to_chat(&self, history: &[Message]) -> ChatRequest {
        let mut req = self.chat.clone();
        let mut messages = Vec::with_capacity(history.len() + req.messages.len() + 1);
        if let Some(i) = &self.instructions {
            messages.push(Message::system(i.clone()));
        }
        messages.extend(history.iter().cloned());
        messages.append(&mut req.messages);
        req.messages = messages;
        req
    }

    /// The conversation after this turn, as a later `previous_response_id` continues it:
    /// `history`, this turn's input, then the model's `answer` (instructions excluded).
    pub fn conversation(&self, history: &[Message], answer: Message) -> Vec<Message> {
        let mut out = Vec::with_capacity(history.len() + self.chat.messages.len() + 1);
        out.extend(history.iter().cloned());
        out.extend(self.chat.messages.iter().cloned());
        out.push(answer);
        out
    }
}

fn bad(param: impl Into<String>, message: impl Into<String>) -> Error {
    Error::bad_request(message.into()).with_param(param)
}

fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Error {
    bad(param, message).with_code("unsupported_parameter")
}

/// Read a Responses request body. Fields without a chat counterpart that change nothing
/// for the answer (`include`, `truncation`, `service_tier`, `prompt_cache_key`,
/// `safety_identifier`, `text.verbosity`, `reasoning.summary`, …) are accepted and
/// ignored; those that would (`background`, `conversation`, `prompt`, built-in tools,
/// `item_reference` items) are refused with a 400 naming the parameter.
pub fn decode_request(body: Value) -> Result<DecodedRequest, Error> {
    let Value::Object(mut body) = body else {
        return Err(Error::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad("model", "Missing required parameter: 'model'."));
        }
        Some(_) => return Err(bad("model", "'model' must be a string.")),
    };
    for (field, what) in [
        ("background", "background responses"),
        (
            "conversation",
            "conversation objects (use previous_response_id)",
        ),
        ("prompt", "prompt templates"),
    ] {
        match body.get(field) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(_) => {
                return Err(unsupported(
                    field,
                    format!("'{field}' is not supported: llmux does not offer {what}."),
                ));
            }
        }
    }
    let mut echo = JsonObject::new();
    let mut chat = ChatRequest::new(model);

    let instructions = opt_string(&body, "instructions")?;
    echo.insert("instructions".into(), json!(instructions));

    chat.messages = match body.remove("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![Message::user(s)],
        Some(Value::Array(items)) => decode_items(items)?,
        Some(_) => {
            return Err(bad(
                "input",
                "'input' must be a string or an array of input items.",
            ));
        }
    };

    let tools = body.remove("tools").unwrap_or(Value::Null);
    if !tools.is_null() {
        let list = tools
            .as_array()
            .ok_or_else(|| bad("tools", "'tools' must be an array."))?;
        let decoded = list
            .iter()
            .enumerate()
            .map(|(i, t)| decode_tool(i, t))
            .collect::<Result<Vec<_>, _>>()?;
        if !decoded.is_empty() {
            chat.tools = Some(decoded);
        }
    }
    echo.insert(
        "tools".into(),
        if tools.is_null() { json!([]) } else { tools },
    );

    let tool_choice = body.remove("tool_choice").unwrap_or(Value::Null);
    if !tool_choice.is_null() {
        chat.tool_choice = Some(decode_tool_choice(&tool_choice)?);
    }
    echo.insert(
        "tool_choice".into(),
        if tool_choice.is_null() {
            json!("auto")
        } else {
            tool_choice
        },
    );

    let text = body.remove("text").unwrap_or(Value::Null);
    if !text.is_null() {
        chat.response_format = decode_text(&text)?;
    }
    echo.insert(
        "text".into(),
        if text.is_null() {
            json!({"format": {"type": "text"}})
        } else {
            text
        },
    );

    let reasoning = body.remove("reasoning").unwrap_or(Value::Null);
    match &reasoning {
        Value::Null => {}
        Value::Object(r) => match r.get("effort") {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) => chat.reasoning_effort = Some(e.clone()),
            Some(_) => return Err(bad("reasoning.effort", "'effort' must be a string.")),
        },
        _ => return Err(bad("reasoning", "'reasoning' must be an object.")),
    }
    echo.insert(
        "reasoning".into(),
        if reasoning.is_null() {
            json!({"effort": null, "summary": null})
        } else {
            reasoning
        },
    );

    chat.max_completion_tokens = opt_u32(&body, "max_output_tokens")?;
    echo.insert(
        "max_output_tokens".into(),
        json!(chat.max_completion_tokens),
    );
    chat.temperature = opt_f64(&body, "temperature")?;
    echo.insert("temperature".into(), json!(chat.temperature.unwrap_or(1.0)));
    chat.top_p = opt_f64(&body, "top_p")?;
    echo.insert("top_p".into(), json!(chat.top_p.unwrap_or(1.0)));
    chat.parallel_tool_calls = opt_bool(&body, "parallel_tool_calls")?;
    echo.insert(
        "parallel_tool_calls".into(),
        json!(chat.parallel_tool_calls.unwrap_or(true)),
    );
    chat.user = opt_string(&body, "user")?;
    echo.insert("user".into(), json!(chat.user));
    chat.metadata = match body.remove("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(bad("metadata", "'metadata' must be an object.")),
    };
    echo.insert(
        "metadata".into(),
        Value::Object(chat.metadata.clone().unwrap_or_default()),
    );
    chat.stream = opt_bool(&body, "stream")?;
    let store = opt_bool(&body, "store")?.unwrap_or(true);
    echo.insert("store".into(), json!(store));
    let previous_response_id = opt_string(&body, "previous_response_id")?;
    echo.insert("previous_response_id".into(), json!(previous_response_id));
    let truncation = opt_string(&body, "truncation")?;
    echo.insert(
        "truncation".into(),
        json!(truncation.unwrap_or_else(|| "disabled".to_owned())),
    );
    if let Some(tier) = opt_string(&body, "service_tier")? {
        echo.insert("service_tier".into(), json!(tier));
    }
    echo.insert("background".into(), json!(false));
    // llmux's own attribution tags ride as on chat completions.
    if let Some(tags) = body.remove("tags") {
        chat.extra.insert("tags".into(), tags);
    }
    Ok(DecodedRequest {
        chat,
        instructions,
        previous_response_id,
        store,
        echo,
    })
}

fn opt_string(body: &JsonObject, key: &str) -> Result<Option<String>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, format!("'{key}' must be a string."))),
    }
}

fn opt_bool(body: &JsonObject, key: &str) -> Result<Option<bool>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(key, format!("'{key}' must be a boolean."))),
    }
}

fn opt_f64(body: &JsonObject, key: &str) -> Result<Option<f64>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("'{key}' must be a number."))),
    }
}

fn opt_u32(body: &JsonObject, key: &str) -> Result<Option<u32>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(key, format!("'{key}' must be a positive integer."))),
    }
}

fn str_field<'a>(item: &'a Value, key: &str, param: &str) -> Result<&'a str, Error> {
    item.get(key).and_then(Value::as_str).ok_or_else(|| {
        bad(
            format!("{param}.{key}"),
            format!("'{key}' must be a string."),
        )
    })
}

/// Builds the message list, gathering consecutive reasoning, assistant message and
/// function call items into one assistant turn.
#[derive(Default)]
struct Messages {
    out: Vec<Message>,
    assistant: Option<Message>,
}

impl Messages {
    fn flush(&mut self) {
        if let Some(m) = self.assistant.take() {
            self.out.push(m);
        }
    }

    fn push(&mut self, m: Message) {
        self.flush();
        self.out.push(m);
    }

    /// The open assistant turn; a new one when `starts_new(current)` says the item cannot
    /// join it.
    fn assistant(&mut self, starts_new: impl Fn(&Message) -> bool) -> &mut Message {
        if self.assistant.as_ref().is_some_and(starts_new) {
            self.flush();
        }
        self.assistant.get_or_insert_with(|| Message {
            content: None,
            ..Message::assistant("")
        })
    }
}

fn decode_items(items: Vec<Value>) -> Result<Vec<Message>, Error> {
    let mut m = Messages::default();
    for (i, item) in items.into_iter().enumerate() {
        let param = format!("input[{i}]");
        if !item.is_object() {
            return Err(bad(param, "Each input item must be an object."));
        }
        match item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
        {
            "message" => decode_message(&mut m, &item, &param)?,
            "function_call" => {
                let call_id = str_field(&item, "call_id", &param)?;
                let name = str_field(&item, "name", &param)?;
                let arguments = match item.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(v) => v.to_string(),
                };
                let turn = m.assistant(|_| false);
                turn.tool_calls.get_or_insert_with(Vec::new).push(ToolCall {
                    id: call_id.to_owned(),
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name: name.to_owned(),
                        arguments,
                    },
                });
            }
            "function_call_output" => {
                let call_id = str_field(&item, "call_id", &param)?;
                let content = match item.get("output") {
                    Some(Value::String(s)) => MessageContent::Text(s.clone()),
                    Some(Value::Array(parts)) => MessageContent::Parts(
                        parts
                            .iter()
                            .enumerate()
                            .map(|(j, p)| input_part(p, &format!("{param}.output[{j}]")))
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => {
                        return Err(bad(
                            format!("{param}.output"),
                            "'output' must be a string or an array of content parts.",
                        ));
                    }
                };
                let mut msg = Message::tool(call_id, "");
                msg.content = Some(content);
                m.push(msg);
            }
            "reasoning" => {
                let (text, blocks) = reasoning(&item, &param)?;
                let turn = m.assistant(|t| t.content.is_some() || t.tool_calls.is_some());
                if !text.is_empty() {
                    let r = turn.reasoning_content.get_or_insert_with(String::new);
                    if !r.is_empty() {
                        r.push_str("\n\n");
                    }
                    r.push_str(&text);
                }
                if !blocks.is_empty() {
                    let entry = turn
                        .extra
                        .entry("thinking_blocks")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = entry {
                        list.extend(blocks);
                    }
                }
            }
            "item_reference" => {
                return Err(unsupported(
                    param,
                    "'item_reference' input items are not supported: send the item itself, or \
                     continue a stored response with previous_response_id.",
                ));
            }
            other => {
                return Err(unsupported(
                    format!("{param}.type"),
                    format!(
                        "Input items of type '{other}' are not supported: llmux translates the \
                         Responses API to chat, which has no built-in tools."
                    ),
                ));
            }
        }
    }
    m.flush();
    Ok(m.out)
}

fn decode_message(m: &mut Messages, item: &Value, param: &str) -> Result<(), Error> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        _ => {
            return Err(bad(
                format!("{param}.role"),
                "'role' must be one of user, assistant, system or developer.",
            ));
        }
    };
    let content = item.get("content").unwrap_or(&Value::Null);
    if role == Role::Assistant {
        let mut text = String::new();
        let mut refusal = String::new();
        match content {
            Value::String(s) => text.push_str(s),
            Value::Array(parts) => {
                for (j, p) in parts.iter().enumerate() {
                    match p.get("type").and_then(Value::as_str) {
                        Some("output_text" | "input_text" | "text") => {
                            text.push_str(str_field(p, "text", &format!("{param}.content[{j}]"))?);
                        }
                        Some("refusal") => refusal.push_str(str_field(
                            p,
                            "refusal",
                            &format!("{param}.content[{j}]"),
                        )?),
                        _ => {
                            return Err(bad(
                                format!("{param}.content[{j}].type"),
                                "Assistant content parts must be output_text or refusal.",
                            ));
                        }
                    }
                }
            }
            _ => {
                return Err(bad(
                    format!("{param}.content"),
                    "'content' must be a string or an array of content parts.",
                ));
            }
        }
        let turn = m.assistant(|t| t.content.is_some() || t.tool_calls.is_some());
        if !text.is_empty() {
            turn.content = Some(MessageContent::Text(text));
        }
        if !refusal.is_empty() {
            turn.refusal = Some(refusal);
        }
        return Ok(());
    }
    let content = match content {
        Value::String(s) => MessageContent::Text(s.clone()),
        Value::Array(parts) => {
            let parts = parts
                .iter()
                .enumerate()
                .map(|(j, p)| input_part(p, &format!("{param}.content[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if role == Role::User {
                MessageContent::Parts(parts)
            } else {
                // Instructions are text: join the text parts, refuse anything else.
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    match p {
                        ContentPart::Text { text: t, .. } => text.push_str(t),
                        _ => {
                            return Err(bad(
                                format!("{param}.content[{j}]"),
                                "System and developer messages may only hold text.",
                            ));
                        }
                    }
                }
                MessageContent::Text(text)
            }
        }
        _ => {
            return Err(bad(
                format!("{param}.content"),
                "'content' must be a string or an array of content parts.",
            ));
        }
    };
    let mut msg = Message::text(role, "");
    msg.content = Some(content);
    m.push(msg);
    Ok(())
}

/// One `input_text` / `input_image` / `input_file` / `input_audio` part.
fn input_part(p: &Value, param: &str) -> Result<ContentPart, Error> {
    let s = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_owned);
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => {
            Ok(ContentPart::text(str_field(p, "text", param)?))
        }
        Some("input_image") => {
            let Some(url) = s("image_url") else {
                return Err(unsupported(
                    format!("{param}.image_url"),
                    "'input_image' needs an 'image_url' (a URL or a data: URL); file ids of \
                     OpenAI's Files API are not supported.",
                ));
            };
            Ok(ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url,
                    detail: s("detail"),
                },
                extra: JsonObject::new(),
            })
        }
        Some("input_file") => {
            if p.get("file_url").is_some_and(|v| !v.is_null()) {
                return Err(unsupported(
                    format!("{param}.file_url"),
                    "'file_url' is not supported: send the file as 'file_data'.",
                ));
            }
            let file = FileRef {
                file_id: s("file_id"),
                file_data: s("file_data"),
                filename: s("filename"),
                extra: JsonObject::new(),
            };
            if file.file_id.is_none() && file.file_data.is_none() {
                return Err(bad(param, "'input_file' needs 'file_data' or 'file_id'."));
            }
            Ok(ContentPart::File {
                file,
                extra: JsonObject::new(),
            })
        }
        Some("input_audio") => {
            let audio = p.get("input_audio").unwrap_or(&Value::Null);
            let field = |k: &str| {
                audio
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        bad(
                            format!("{param}.input_audio.{k}"),
                            format!("'{k}' must be a string."),
                        )
                    })
            };
            Ok(ContentPart::InputAudio {
                input_audio: InputAudio {
                    data: field("data")?,
                    format: field("format")?,
                },
                extra: JsonObject::new(),
            })
        }
        other => Err(bad(
            format!("{param}.type"),
            format!(
                "Unsupported content part type {}: use input_text, input_image or input_file.",
                other.map_or_else(|| "(none)".to_owned(), |t| format!("'{t}'"))
            ),
        )),
    }
}

/// A reasoning item's text (its `reasoning_text` content, else its summaries) and the
/// Anthropic thinking blocks carried in its `encrypted_content` (see the module docs).
/// Encrypted content llmux did not make (OpenAI's own) cannot be used by another
/// provider and is dropped.
fn reasoning(item: &Value, param: &str) -> Result<(String, Vec<Value>), Error> {
    let texts = |key: &str| -> Result<Vec<String>, Error> {
        match item.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(parts)) => parts
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    str_field(p, "text", &format!("{param}.{key}[{j}]")).map(str::to_owned)
                })
                .collect(),
            Some(_) => Err(bad(
                format!("{param}.{key}"),
                format!("'{key}' must be an array."),
            )),
        }
    };
    let content = texts("content")?;
    let text = if content.is_empty() {
        texts("summary")?.join("\n\n")
    } else {
        content.concat()
    };
    let blocks = item
        .get("encrypted_content")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        .filter(|blocks| {
            !blocks.is_empty()
                && blocks.iter().all(|b| {
                    matches!(
                        b.get("type").and_then(Value::as_str),
                        Some("thinking" | "redacted_thinking")
                    )
                })
        })
        .unwrap_or_default();
    Ok((text, blocks))
}

fn decode_tool(i: usize, t: &Value) -> Result<Tool, Error> {
    let param = format!("tools[{i}]");
    match t.get("type").and_then(Value::as_str) {
        Some("function") => {
            let name = str_field(t, "name", &param)?;
            let description = match t.get("description") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(bad(
                        format!("{param}.description"),
                        "'description' must be a string.",
                    ));
                }
            };
            Ok(Tool {
                kind: "function".to_owned(),
                function: Some(FunctionDefinition {
                    name: name.to_owned(),
                    description,
                    parameters: t.get("parameters").filter(|p| !p.is_null()).cloned(),
                    strict: t.get("strict").and_then(Value::as_bool),
                }),
                extra: JsonObject::new(),
            })
        }
        Some(other) => Err(unsupported(
            format!("{param}.type"),
            format!(
                "Built-in tool '{other}' is not supported for this model: llmux serves the \
                 Responses API of non-OpenAI models by translating it to chat, where only \
                 function tools exist. Built-in tools work with models whose deployments are \
                 all OpenAI (or Azure OpenAI v1), where the request is passed through as is."
            ),
        )),
        None => Err(bad(format!("{param}.type"), "Each tool needs a 'type'.")),
    }
}

fn decode_tool_choice(v: &Value) -> Result<ToolChoice, Error> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::Mode(ToolChoiceMode::None)),
            "auto" => Ok(ToolChoice::Mode(ToolChoiceMode::Auto)),
            "required" => Ok(ToolChoice::Mode(ToolChoiceMode::Required)),
            _ => Err(bad(
                "tool_choice",
                "'tool_choice' must be none, auto, required or a function.",
            )),
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    "tool_choice.name",
                    "'tool_choice' needs the function's 'name'.",
                )
            })?;
            Ok(ToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: NamedFunction {
                    name: name.to_owned(),
                },
            }))
        }
        _ => Err(unsupported(
            "tool_choice",
            "Only none, auto, required or {\"type\":\"function\",\"name\":…} are supported as \
             'tool_choice' (built-in tools are not available).",
        )),
    }
}

fn decode_text(text: &Value) -> Result<Option<ResponseFormat>, Error> {
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let name = str_field(format, "name", "text.format")?;
            Ok(Some(ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: name.to_owned(),
                    description: format
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    schema: format.get("schema").filter(|s| !s.is_null()).cloned(),
                    strict: format.get("strict").and_then(Value::as_bool),
                },
            }))
        }
        _ => Err(bad(
            "text.format.type",
            "'text.format.type' must be text, json_object or json_schema.",
        )),
    }
}
