//! A mock of Anthropic's Messages API: `POST /v1/messages`, answered as JSON or as the
//! real server-sent event sequence (`message_start`, `content_block_*`, `ping`,
//! `message_delta`, `message_stop`), and `POST /v1/messages/count_tokens`
//! (`{"input_tokens": N}`: the words of `system` and the messages' text, plus 100 per
//! tool; `max_tokens` refused as on the real API), with Anthropic's error bodies.
//!
//! What it answers:
//! - text: the last user message's text, echoed;
//! - a `tool_use` block instead, when the request has tools and either `tool_choice`
//!   forces one (`any`, or `tool` with a name) or the last user text starts with
//!   "call tool"; the input holds a placeholder value for each property of the schema;
//! - a leading `thinking` block (with a signature) when `thinking` is enabled.
//!
//! Usage counts whitespace-separated words (system and messages in, answer out), so a test
//! can compute what to expect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::recorder::{Fault, RecordedRequest, Recorder, split_words, sse_body};

/// A running Anthropic-format mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct AnthropicMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    api_key: Option<String>,
}

impl AnthropicMock {
    /// Start a mock that accepts any `x-api-key`.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start a mock that requires `x-api-key: {api_key}`.
    pub async fn with_api_key(api_key: &str) -> Self {
        Self::start_with(Some(api_key.to_owned())).await
    }

    async fn start_with(api_key: Option<String>) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key,
        });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .fallback(not_found)
            .with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: what a deployment's `api_base` should be (the API's root,
    /// like `https://api.anthropic.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    /// Make the next request misbehave (faults are used in the order pushed). A
    /// [`Fault::Status`] body is sent as given, so pass an Anthropic-shaped one
    /// (see [`AnthropicMock::error_body`]).
    pub fn push_fault(&self, fault: Fault) {
        self.state.recorder.push_fault(fault);
    }

    /// Streams whose client went away before the last byte.
    pub fn cancelled_streams(&self) -> usize {
        self.state.recorder.streams_cancelled.load(Ordering::SeqCst)
    }

    /// Streams sent to the end.
    pub fn completed_streams(&self) -> usize {
        self.state.recorder.streams_completed.load(Ordering::SeqCst)
    }

    /// Anthropic's error body: `{"type":"error","error":{"type","message"},"request_id"}`.
    pub fn error_body(kind: &str, message: &str) -> Value {
        json!({"type": "error", "error": {"type": kind, "message": message},
            "request_id": "req_mock0000000000000000"})
    }
}

impl Drop for AnthropicMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, axum::Json(AnthropicMock::error_body(kind, message))).into_response()
}

async fn not_found() -> Response {
    anthropic_error(StatusCode::NOT_FOUND, "not_found_error", "Not Found")
}

/// Records the request, checks the headers the real API requires, and applies a queued
/// fault. `Ok` carries the parsed body and the fault left for the handler (stream faults).
async fn admit(
    st: &MockState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Option<Fault>), Response> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    st.recorder.record(RecordedRequest {
        method: "POST".to_owned(),
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: parsed.clone(),
    });
    if let Some(key) = &st.api_key {
        let got = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        if got != Some(key.as_str()) {
            return Err(anthropic_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            ));
        }
    }
    if !headers.contains_key("anthropic-version") {
        return Err(anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    match st.recorder.next_fault() {
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = (status, axum::Json(body)).into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().expect("digits"));
            }
            Err(resp)
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok((parsed, None))
        }
        Some(Fault::TruncatedJson) => Err((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"id":"msg_trunc","type":"message","role":"assistant","content":[{"type":"te"#,
        )
            .into_response()),
        other => Ok((parsed, other)),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The text of a `content` (string, or the text of its text blocks joined by spaces).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// A placeholder value of the JSON Schema type `schema` names.
fn placeholder(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("string") => json!("mock"),
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => mock_input(schema),
        _ => Value::Null,
    }
}

/// An input object with a placeholder for each declared property.
fn mock_input(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            out.insert(k.clone(), placeholder(v));
        }
    }
    Value::Object(out)
}

/// The tool the answer calls, if any: `(name, input schema)`.
fn chosen_tool(req: &Value, last_user: &str) -> Option<(String, Value)> {
    let tools = req["tools"].as_array().filter(|t| !t.is_empty())?;
    let choice = req["tool_choice"]["type"].as_str().unwrap_or("auto");
    let tool = match choice {
        "tool" => {
            let name = req["tool_choice"]["name"].as_str()?;
            tools.iter().find(|t| t["name"] == name)?
        }
        "any" => &tools[0],
        "none" => return None,
        _ if last_user.starts_with("call tool") => &tools[0],
        _ => return None,
    };
    Some((
        tool["name"].as_str().unwrap_or("tool").to_owned(),
        tool["input_schema"].clone(),
    ))
}

/// The content blocks of the answer, in order.
enum Answer {
    Thinking {
        thinking: String,
        signature: String,
    },
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

async fn count_tokens(
    State(st): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, _) = match admit(&st, "/v1/messages/count_tokens", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(messages) = req["messages"].as_array() else {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: Field required",
        );
    };
    if req.get("max_tokens").is_some() {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Extra inputs are not permitted",
        );
    }
    let tools = req["tools"].as_array().map_or(0, Vec::len) as u64;
    let n = words(&content_text(&req["system"]))
        + messages
            .iter()
            .map(|m| words(&content_text(&m["content"])))
            .sum::<u64>()
        + 100 * tools;
    axum::Json(json!({"input_tokens": n})).into_response()
}

async fn messages(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, fault) = match admit(&st, "/v1/messages", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(messages) = req["messages"].as_array() else {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: Field required",
        );
    };
    if req["max_tokens"].as_u64().is_none() {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Field required",
        );
    }
    // Vertex-style bodies name no model; the real answer still does.
    let model = req["model"].as_str().unwrap_or("claude-mock").to_owned();
    let input_tokens: u64 = words(&content_text(&req["system"]))
        + messages
            .iter()
            .map(|m| words(&content_text(&m["content"])))
            .sum::<u64>();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let mut answer = Vec::new();
    if req["thinking"]["type"] == "enabled" {
        answer.push(Answer::Thinking {
            thinking: format!("The user said: {last_user}"),
            signature: "EqQBCkgIARABGAIiQG1vY2stc2lnbmF0dXJl".to_owned(),
        });
    }
    let tool = chosen_tool(&req, &last_user);
    let stop_reason = if let Some((name, schema)) = tool {
        answer.push(Answer::ToolUse {
            id: "toolu_01MockToolUse0000000001".to_owned(),
            name,
            input: mock_input(&schema),
        });
        "tool_use"
    } else {
        answer.push(Answer::Text(last_user.clone()));
        "end_turn"
    };
    let output_tokens: u64 = answer
        .iter()
        .map(|a| match a {
            Answer::Thinking { thinking, .. } => words(thinking),
            Answer::Text(t) => words(t),
            Answer::ToolUse { input, .. } => words(&input.to_string()) + 1,
        })
        .sum();
    let id = "msg_01MockMessage000000000001";
    if req["stream"] != Value::Bool(true) {
        let content: Vec<Value> = answer
            .iter()
            .map(|a| match a {
                Answer::Thinking {
                    thinking,
                    signature,
                } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                Answer::Text(t) => json!({"type": "text", "text": t}),
                Answer::ToolUse { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
            })
            .collect();
        return axum::Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "service_tier": "standard"}
        }))
        .into_response();
    }
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (chunks, delay, None),
        Some(Fault::BrokenStream { after_chunks }) => (4, Duration::ZERO, Some(after_chunks)),
        _ => (4, Duration::ZERO, None),
    };
    let event = |name: &str, data: Value| -> Bytes {
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    };
    let mut events: Vec<Bytes> = Vec::new();
    events.push(event(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "service_tier": "standard"}}}),
    ));
    for (index, a) in answer.iter().enumerate() {
        let (start, deltas): (Value, Vec<Value>) = match a {
            Answer::Thinking {
                thinking,
                signature,
            } => {
                let mut d: Vec<Value> = split_words(thinking, pieces)
                    .into_iter()
                    .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                    .collect();
                d.push(json!({"type": "signature_delta", "signature": signature}));
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    d,
                )
            }
            Answer::Text(t) => (
                json!({"type": "text", "text": ""}),
                split_words(t, pieces)
                    .into_iter()
                    .map(|t| json!({"type": "text_delta", "text": t}))
                    .collect(),
            ),
            Answer::ToolUse { id, name, input } => {
                let mut d = vec![json!({"type": "input_json_delta", "partial_json": ""})];
                d.extend(
                    split_even(&input.to_string(), pieces)
                        .into_iter()
                        .map(|p| json!({"type": "input_json_delta", "partial_json": p})),
                );
                (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    d,
                )
            }
        };
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        if index == 0 {
            events.push(event("ping", json!({"type": "ping"})));
        }
        for d in deltas {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": d}),
            ));
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason,
            "stop_sequence": null}, "usage": {"output_tokens": output_tokens}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    if let Some(n) = break_after {
        events.truncate(n + 1);
    }
    sse_body(&st.recorder, events, 1, delay, break_after.is_some())
}

/// Split `s` into at most `n` pieces of similar length (on char boundaries), as Anthropic
/// splits a tool input across `input_json_delta` events.
fn split_even(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars
        .chunks(size)
        .map(|c| c.iter().collect::<String>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pieces_concatenate_back() {
        for (text, n) in [
            ("one two three four five six", 4),
            ("single", 3),
            ("a b", 8),
            ("", 2),
        ] {
            assert_eq!(split_words(text, n).concat(), text);
            assert_eq!(split_even(text, n).concat(), text);
            assert!(split_even(text, n).len() <= n);
        }
        assert_eq!(split_even(r#"{"city":"mock"}"#, 4).len(), 4);
    }

    #[test]
    fn tool_is_chosen_when_forced_or_asked() {
        let tools = json!([{"name": "get_weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}]);
        let forced = json!({"tools": tools, "tool_choice": {"type": "any"}});
        let (name, schema) = chosen_tool(&forced, "hello").unwrap();
        assert_eq!(name, "get_weather");
        assert_eq!(mock_input(&schema), json!({"city": "mock", "days": 1}));
        let auto = json!({"tools": tools});
        assert!(chosen_tool(&auto, "hello").is_none());
        assert!(chosen_tool(&auto, "call tool please").is_some());
        let none = json!({"tools": tools, "tool_choice": {"type": "none"}});
        assert!(chosen_tool(&none, "call tool please").is_none());
    }
}
