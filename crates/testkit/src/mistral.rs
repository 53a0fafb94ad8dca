//! A mock of Mistral's API: `/v1/chat/completions` (JSON and SSE), `/v1/embeddings`,
//! `/v1/models`, as strict as the real one so tests prove the provider speaks Mistral's
//! dialect rather than plain OpenAI:
//! - an unknown field (top level, or in a message for its role) is a 422 with Mistral's
//!   `extra_forbidden` detail body;
//! - a tool-call id that is not 9 ASCII letters or digits is a 400;
//! - a conversation ending with an assistant message without `prefix: true` is a 400;
//! - streams always end with a delta carrying `finish_reason` *and* `usage`, then `[DONE]`
//!   (Mistral has no `stream_options`).
//!
//! Answers echo the last user message; "call tool …" with tools offered (or `tool_choice:
//! "any"`) calls the first tool with `{"query": …}` under a 9-character id. Usage counts
//! whitespace-separated words.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::openai::mock_vector;
use crate::recorder::{Fault, RecordedRequest, Recorder, split_words, sse_body};

/// The id of the tool call the mock makes.
pub const MISTRAL_TOOL_CALL_ID: &str = "D681PevKs";

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "metadata",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "prediction",
    "parallel_tool_calls",
    "prompt_mode",
    "safe_prompt",
];

const EMBED_FIELDS: &[&str] = &[
    "model",
    "input",
    "metadata",
    "output_dimension",
    "output_dtype",
    "encoding_format",
];

/// A running Mistral-format mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct MistralMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    api_key: String,
}

impl MistralMock {
    /// Start a mock that requires `Authorization: Bearer {api_key}`.
    pub async fn with_api_key(api_key: &str) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key: api_key.to_owned(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"detail": "Not Found"})),
                )
            })
            .with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT/v1`: what a deployment's `api_base` should be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
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
    /// [`Fault::Status`] body is sent as given: see [`MistralMock::error_body`].
    pub fn push_fault(&self, fault: Fault) {
        self.state.recorder.push_fault(fault);
    }

    /// Streams whose client went away before the last byte.
    pub fn cancelled_streams(&self) -> usize {
        self.state.recorder.streams_cancelled.load(Ordering::SeqCst)
    }

    /// Mistral's error body: `{"object":"error","message","type","param":null,"code"}`.
    pub fn error_body(kind: &str, message: &str, code: Option<&str>) -> Value {
        json!({"object": "error", "message": message, "type": kind, "param": null, "code": code})
    }
}

impl Drop for MistralMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mistral_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(MistralMock::error_body(kind, message, None)),
    )
        .into_response()
}

fn extra_forbidden(loc: Vec<Value>, input: &Value) -> Response {
    let body = json!({"object": "error", "message": {"detail": [{"type": "extra_forbidden",
        "loc": loc, "msg": "Extra inputs are not permitted", "input": input}]},
        "type": "invalid_request_error", "param": null, "code": null});
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

async fn admit(
    st: &MockState,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Option<Fault>), Response> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    st.recorder.record(RecordedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: parsed.clone(),
    });
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(st.api_key.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Unauthorized", "request_id": "0123456789abcdef"})),
        )
            .into_response());
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
            r#"{"id":"cmpl-trunc","object":"chat.completion","choices":[{"index":0,"mess"#,
        )
            .into_response()),
        other => Ok((parsed, other)),
    }
}

fn valid_id(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 9 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn bad_id(v: &Value) -> Response {
    mistral_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        &format!(
            "Tool call id was {} but must be a-z, A-Z, 0-9, with a length of 9.",
            v.as_str().unwrap_or("null")
        ),
    )
}

/// Mistral's validation of a chat body.
fn check_chat(req: &Value) -> Result<&Vec<Value>, Box<Response>> {
    let Some(obj) = req.as_object() else {
        return Err(Box::new(mistral_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Invalid JSON body",
        )));
    };
    if let Some((k, v)) = obj.iter().find(|(k, _)| !CHAT_FIELDS.contains(&k.as_str())) {
        return Err(Box::new(extra_forbidden(vec![json!("body"), json!(k)], v)));
    }
    let Some(messages) = req["messages"].as_array() else {
        return Err(Box::new(mistral_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages is required",
        )));
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        let allowed: &[&str] = match role {
            "system" | "user" => &["role", "content"],
            "assistant" => &["role", "content", "tool_calls", "prefix"],
            "tool" => &["role", "content", "tool_call_id", "name"],
            _ => {
                return Err(Box::new(mistral_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &format!("Invalid role '{role}'"),
                )));
            }
        };
        if let Some((k, v)) = m
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            return Err(Box::new(extra_forbidden(
                vec![
                    json!("body"),
                    json!("messages"),
                    json!(i),
                    json!(role),
                    json!(k),
                ],
                v,
            )));
        }
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            if !valid_id(&call["id"]) {
                return Err(Box::new(bad_id(&call["id"])));
            }
        }
        if role == "tool" && !valid_id(&m["tool_call_id"]) {
            return Err(Box::new(bad_id(&m["tool_call_id"])));
        }
    }
    if let Some(last) = messages.last()
        && last["role"] == "assistant"
        && last["prefix"] != Value::Bool(true)
    {
        return Err(Box::new(mistral_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant",
        )));
    }
    match &req["tool_choice"] {
        Value::Null | Value::Object(_) => {}
        Value::String(s) if ["auto", "none", "any", "required"].contains(&s.as_str()) => {}
        other => {
            return Err(Box::new(mistral_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                &format!("Invalid tool_choice {other}"),
            )));
        }
    }
    Ok(messages)
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn message_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

async fn chat(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, fault) = match admit(&st, "POST", "/v1/chat/completions", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let messages = match check_chat(&req) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let model = req["model"].as_str().unwrap_or("mistral-mock").to_owned();
    let prompt_tokens: u64 = messages.iter().map(|m| words(&message_text(m))).sum();
    let reply = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let forced = req["tool_choice"] == "any" || req["tool_choice"] == "required";
    let tool = req["tools"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["function"]["name"].as_str())
        .filter(|_| forced || reply.starts_with("call tool"))
        .map(str::to_owned);
    let completion_tokens = if tool.is_some() { 12 } else { words(&reply) };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens});
    let id = "cmpl-e5cc70bb28c444948073e77776eb30ef";
    let created = 1_702_256_327u64;
    let calls = tool.map(|name| {
        let args = json!({"query": reply.trim_start_matches("call tool").trim()}).to_string();
        json!([{"id": MISTRAL_TOOL_CALL_ID, "type": "function",
            "function": {"name": name, "arguments": args}, "index": 0}])
    });
    let finish = if calls.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    if req["stream"] != Value::Bool(true) {
        let message = match &calls {
            Some(c) => {
                json!({"role": "assistant", "content": "", "tool_calls": c, "prefix": false})
            }
            None => {
                json!({"role": "assistant", "content": reply, "tool_calls": null, "prefix": false})
            }
        };
        return axum::Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage
        }))
        .into_response();
    }
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (split_words(&reply, chunks), delay, None),
        Some(Fault::BrokenStream { after_chunks }) => {
            (split_words(&reply, 4), Duration::ZERO, Some(after_chunks))
        }
        _ => (split_words(&reply, 4), Duration::ZERO, None),
    };
    let event = |delta: Value, finish: Value, usage: Option<&Value>| {
        let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if let Some(u) = usage {
            v["usage"] = u.clone();
        }
        Bytes::from(format!("data: {v}\n\n"))
    };
    let mut events = vec![event(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
        None,
    )];
    match &calls {
        Some(c) => events.push(event(
            json!({"content": "", "tool_calls": c}),
            Value::Null,
            None,
        )),
        None => {
            for p in &pieces {
                events.push(event(json!({"content": p}), Value::Null, None));
            }
        }
    }
    events.push(event(json!({"content": ""}), json!(finish), Some(&usage)));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    if let Some(n) = break_after {
        events.truncate(n + 1);
    }
    sse_body(&st.recorder, events, 2, delay, break_after.is_some())
}

async fn embeddings(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match admit(&st, "POST", "/v1/embeddings", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if let Some((k, v)) = req
        .as_object()
        .into_iter()
        .flatten()
        .find(|(k, _)| !EMBED_FIELDS.contains(&k.as_str()))
    {
        return extra_forbidden(vec![json!("body"), json!(k)], v);
    }
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return mistral_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "input must be a string or a list of strings",
            );
        }
    };
    let dims = req["output_dimension"].as_u64().unwrap_or(8) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "embedding": mock_vector(t, dims), "index": i}))
        .collect();
    let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
    axum::Json(json!({
        "id": "embd-aad6fc62b17349b192ef09225058bc45", "object": "list", "data": data,
        "model": req["model"], "usage": {"prompt_tokens": tokens, "total_tokens": tokens,
            "completion_tokens": 0}
    }))
    .into_response()
}

async fn models(State(st): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&st, "GET", "/v1/models", &headers, b"").await {
        return resp;
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "mistral-small-latest", "object": "model", "created": 1_750_000_000u64,
         "owned_by": "mistralai", "capabilities": {"completion_chat": true, "function_calling": true,
            "vision": true}, "max_context_length": 131072, "type": "base"},
        {"id": "mistral-embed", "object": "model", "created": 1_750_000_000u64,
         "owned_by": "mistralai", "capabilities": {"completion_chat": false}, "max_context_length": 8192,
         "type": "base"}
    ]}))
    .into_response()
}
