//! A mock of Cohere's v2 API: `POST /v2/chat` (JSON, or the real SSE event sequence:
//! `message-start`, `content-start/delta/end`, `tool-plan-delta`, `tool-call-start/delta/end`,
//! `citation-start/end`, `message-end`), `POST /v2/embed` and `POST /v2/rerank`, with
//! Cohere's error bodies (`{"id","message"}`).
//!
//! What it answers:
//! - chat: the last user message's text, echoed; a `thinking` item first when `thinking`
//!   is enabled; a citation of the first document when the request has `documents`;
//! - a tool call instead (with a `tool_plan`), when the request has tools and either
//!   `tool_choice` is `REQUIRED` or the last user text starts with "call tool" (`NONE`
//!   forbids it); its arguments hold a placeholder value for each property of the schema;
//! - embed: a deterministic vector of `output_dimension` (default 8) floats per text;
//! - rerank: each document scored by the share of the query's words it contains, best
//!   first, cut to `top_n`; one search unit per 100 documents.
//!
//! Usage counts whitespace-separated words (messages in, answer out; the texts of an
//! embed), reported as `billed_units`, so a test can compute what to expect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::recorder::{Fault, RecordedRequest, Recorder, split_words, sse_body};

/// A running Cohere-format mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct CohereMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    api_key: Option<String>,
}

impl CohereMock {
    /// Start a mock that accepts any credentials.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start a mock that requires `Authorization: Bearer {api_key}`.
    pub async fn with_api_key(api_key: &str) -> Self {
        Self::start_with(Some(api_key.to_owned())).await
    }

    async fn start_with(api_key: Option<String>) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key,
        });
        let app = Router::new()
            .route("/v2/chat", post(chat))
            .route("/v2/embed", post(embed))
            .route("/v2/rerank", post(rerank))
            .fallback(not_found)
            .with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: what a deployment's `api_base` should be (the API's root,
    /// like `https://api.cohere.com`).
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
    /// [`Fault::Status`] body is sent as given, so pass a Cohere-shaped one
    /// (see [`CohereMock::error_body`]).
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

    /// Cohere's error body: `{"id": …, "message": …}`.
    pub fn error_body(message: &str) -> Value {
        json!({"id": "7f0c1d2e-mock-error", "message": message})
    }
}

impl Drop for CohereMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn cohere_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(CohereMock::error_body(message))).into_response()
}

async fn not_found(uri: Uri) -> Response {
    cohere_error(
        StatusCode::NOT_FOUND,
        &format!("route {} not found", uri.path()),
    )
}

/// Records the request, checks the bearer token, and applies a queued fault. `Ok` carries
/// the parsed body and the fault left for the handler (stream faults).
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
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if got != Some(key.as_str()) {
            return Err(cohere_error(StatusCode::UNAUTHORIZED, "invalid api token"));
        }
    }
    if !parsed.is_object() {
        return Err(cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: the body must be a JSON object",
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
            r#"{"id":"trunc","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"te"#,
        )
            .into_response()),
        other => Ok((parsed, other)),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The text of a v2 `content` (a string, or its text items joined by spaces).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
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
        Some("object") => mock_arguments(schema),
        _ => Value::Null,
    }
}

/// Arguments with a placeholder for each declared property.
fn mock_arguments(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            out.insert(k.clone(), placeholder(v));
        }
    }
    Value::Object(out)
}

/// The tool the answer calls, if any: `(name, parameters schema)`.
fn chosen_tool(req: &Value, last_user: &str) -> Option<(String, Value)> {
    let tools = req["tools"].as_array().filter(|t| !t.is_empty())?;
    match req["tool_choice"].as_str() {
        Some("NONE") => return None,
        Some("REQUIRED") => {}
        _ if last_user.starts_with("call tool") => {}
        _ => return None,
    }
    let f = &tools[0]["function"];
    Some((
        f["name"].as_str().unwrap_or("tool").to_owned(),
        f["parameters"].clone(),
    ))
}

/// What the assistant answers.
struct Answer {
    thinking: Option<String>,
    text: Option<String>,
    citation: Option<Value>,
    tool: Option<(String, String, String)>,
    plan: Option<String>,
}

async fn chat(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, fault) = match admit(&st, "/v2/chat", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if req["model"].as_str().is_none() {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: model is required",
        );
    }
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: messages must not be empty",
        );
    };
    let input_tokens: u64 = messages
        .iter()
        .map(|m| words(&content_text(&m["content"])))
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let mut answer = Answer {
        thinking: (req["thinking"]["type"] == "enabled")
            .then(|| format!("The user said: {last_user}")),
        text: None,
        citation: None,
        tool: None,
        plan: None,
    };
    let finish = if let Some((name, schema)) = chosen_tool(&req, &last_user) {
        answer.plan = Some(format!("I will call {name}."));
        answer.tool = Some((
            format!("{name}_mock0001"),
            name,
            mock_arguments(&schema).to_string(),
        ));
        "TOOL_CALL"
    } else {
        if let Some(doc) = req["documents"].as_array().and_then(|d| d.first()) {
            let text = doc
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| doc["data"].to_string());
            let end = last_user.len();
            answer.citation = Some(json!({"start": 0, "end": end, "text": last_user,
                "type": "TEXT_CONTENT",
                "sources": [{"type": "document", "id": "doc:0",
                    "document": {"id": "doc:0", "snippet": text}}]}));
        }
        answer.text = Some(last_user.clone());
        "COMPLETE"
    };
    let output_tokens = answer.thinking.as_deref().map_or(0, words)
        + answer.text.as_deref().map_or(0, words)
        + answer
            .tool
            .as_ref()
            .map_or(0, |(_, _, args)| words(args) + 1);
    let usage = json!({
        "billed_units": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "tokens": {"input_tokens": input_tokens + 100, "output_tokens": output_tokens + 2}
    });
    let id = "a9b1c2d3-mock-chat-0001";
    if req["stream"] != Value::Bool(true) {
        let mut content = Vec::new();
        if let Some(t) = &answer.thinking {
            content.push(json!({"type": "thinking", "thinking": t}));
        }
        if let Some(t) = &answer.text {
            content.push(json!({"type": "text", "text": t}));
        }
        let mut message = json!({"role": "assistant"});
        if !content.is_empty() {
            message["content"] = Value::Array(content);
        }
        if let Some(p) = &answer.plan {
            message["tool_plan"] = json!(p);
        }
        if let Some((call_id, name, args)) = &answer.tool {
            message["tool_calls"] = json!([{"id": call_id, "type": "function",
                "function": {"name": name, "arguments": args}}]);
        }
        if let Some(c) = &answer.citation {
            message["citations"] = json!([c]);
        }
        return axum::Json(json!({
            "id": id, "finish_reason": finish, "message": message, "usage": usage
        }))
        .into_response();
    }
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (chunks, delay, None),
        Some(Fault::BrokenStream { after_chunks }) => (4, Duration::ZERO, Some(after_chunks)),
        _ => (4, Duration::ZERO, None),
    };
    let event = |data: Value| -> Bytes {
        let name = data["type"].as_str().unwrap_or("unknown").to_owned();
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    };
    let mut events: Vec<Bytes> = vec![event(json!({"id": id, "type": "message-start",
        "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
            "tool_calls": [], "citations": []}}}))];
    let mut index = 0;
    if let Some(t) = &answer.thinking {
        events.push(event(json!({"type": "content-start", "index": index,
            "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}})));
        for p in split_words(t, pieces) {
            events.push(event(json!({"type": "content-delta", "index": index,
                "delta": {"message": {"content": {"thinking": p}}}})));
        }
        events.push(event(json!({"type": "content-end", "index": index})));
        index += 1;
    }
    if let Some(p) = &answer.plan {
        for piece in split_words(p, 2) {
            events.push(event(json!({"type": "tool-plan-delta",
                "delta": {"message": {"tool_plan": piece}}})));
        }
    }
    if let Some((call_id, name, args)) = &answer.tool {
        events.push(event(json!({"type": "tool-call-start", "index": 0,
            "delta": {"message": {"tool_calls": {"id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}}}})));
        for piece in split_even(args, pieces) {
            events.push(event(json!({"type": "tool-call-delta", "index": 0,
                "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}})));
        }
        events.push(event(json!({"type": "tool-call-end", "index": 0})));
    }
    if let Some(t) = &answer.text {
        events.push(event(json!({"type": "content-start", "index": index,
            "delta": {"message": {"content": {"type": "text", "text": ""}}}})));
        for p in split_words(t, pieces) {
            events.push(event(json!({"type": "content-delta", "index": index,
                "delta": {"message": {"content": {"text": p}}}, "logprobs": null})));
        }
        if let Some(c) = &answer.citation {
            events.push(event(json!({"type": "citation-start", "index": 0,
                "delta": {"message": {"citations": c}}})));
            events.push(event(json!({"type": "citation-end", "index": 0})));
        }
        events.push(event(json!({"type": "content-end", "index": index})));
    }
    events.push(event(json!({"type": "message-end",
        "delta": {"finish_reason": finish, "usage": usage}})));
    if let Some(n) = break_after {
        events.truncate(n + 1);
    }
    sse_body(&st.recorder, events, 1, delay, break_after.is_some())
}

/// Split `s` into at most `n` pieces of similar length (on char boundaries).
fn split_even(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars
        .chunks(size)
        .map(|c| c.iter().collect::<String>())
        .collect()
}

/// A deterministic vector derived from the text (FNV-1a per dimension), in [-1, 1].
fn mock_vector(text: &str, dims: usize) -> Vec<f32> {
    (0..dims)
        .map(|d| {
            let mut h: u32 = 0x811c_9dc5 ^ (d as u32);
            for b in text.bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

async fn embed(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match admit(&st, "/v2/embed", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(texts) = req["texts"].as_array() else {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: texts is required",
        );
    };
    let texts: Vec<String> = texts
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_owned())
        .collect();
    if req["input_type"].as_str().is_none() {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: input_type is required for embed-v3 and newer models",
        );
    }
    if req["embedding_types"] != json!(["float"]) {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "the mock only serves embedding_types [\"float\"]",
        );
    }
    let dims = req["output_dimension"].as_u64().unwrap_or(8) as usize;
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| mock_vector(t, dims)).collect();
    let tokens: u64 = texts.iter().map(|t| words(t)).sum();
    axum::Json(json!({
        "id": "e5f6a7b8-mock-embed-0001",
        "embeddings": {"float": vectors},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type"
    }))
    .into_response()
}

/// The share of the query's (lower-cased) words that `doc` contains.
fn overlap(query: &str, doc: &str) -> f64 {
    let doc: Vec<String> = doc
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let q: Vec<String> = query
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if q.is_empty() {
        return 0.0;
    }
    q.iter().filter(|w| doc.contains(w)).count() as f64 / q.len() as f64
}

async fn rerank(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match admit(&st, "/v2/rerank", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(query) = req["query"].as_str() else {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: query is required",
        );
    };
    let Some(docs) = req["documents"].as_array().filter(|d| !d.is_empty()) else {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: documents must not be empty",
        );
    };
    let Some(docs) = docs.iter().map(Value::as_str).collect::<Option<Vec<_>>>() else {
        return cohere_error(
            StatusCode::BAD_REQUEST,
            "invalid request: documents must be strings",
        );
    };
    let mut scored: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, overlap(query, d)))
        .collect();
    // Best first; equal scores keep their order.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(n) = req["top_n"].as_u64() {
        scored.truncate(n as usize);
    }
    let results: Vec<Value> = scored
        .into_iter()
        .map(|(i, s)| json!({"index": i, "relevance_score": s}))
        .collect();
    axum::Json(json!({
        "id": "c3d4e5f6-mock-rerank-0001",
        "results": results,
        "meta": {"api_version": {"version": "2"},
            "billed_units": {"search_units": docs.len().div_ceil(100)}}
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_is_chosen_when_required_or_asked() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]);
        let forced = json!({"tools": tools, "tool_choice": "REQUIRED"});
        let (name, schema) = chosen_tool(&forced, "hello").unwrap();
        assert_eq!(name, "get_weather");
        assert_eq!(mock_arguments(&schema), json!({"city": "mock", "days": 1}));
        let auto = json!({"tools": tools});
        assert!(chosen_tool(&auto, "hello").is_none());
        assert!(chosen_tool(&auto, "call tool please").is_some());
        let none = json!({"tools": tools, "tool_choice": "NONE"});
        assert!(chosen_tool(&none, "call tool please").is_none());
    }

    #[test]
    fn rerank_scores_by_word_overlap() {
        assert_eq!(
            overlap("capital of France", "Paris is the capital of France."),
            1.0
        );
        assert!((overlap("capital of France", "The capital city") - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(overlap("", "x"), 0.0);
        assert_eq!(split_even("abcdef", 4).concat(), "abcdef");
    }
}
