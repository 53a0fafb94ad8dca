//! A mock of Ollama's native API: `POST /api/chat` (one JSON object, or NDJSON lines when
//! `stream` is not `false` — Ollama's default), `POST /api/embed`, `GET /api/tags`, with
//! Ollama's `{"error": "…"}` bodies.
//!
//! What it answers:
//! - text: the last user message's text, echoed (as `{"answer": …}` JSON when `format` is
//!   set);
//! - a tool call instead when the request has tools and the last user text starts with
//!   "call tool": `{"function": {"name": <first tool>, "arguments": {"query": <rest>}}}`
//!   (arguments as an object, as Ollama sends them);
//! - 404 `model "…" not found, try pulling it first` for a model whose name starts with
//!   `missing`; 400 for a message whose `images` are not base64 or whose tool-call
//!   arguments are not objects.
//!
//! Counts are whitespace-separated words (`prompt_eval_count` over all messages,
//! `eval_count` over the answer), so a test can compute what to expect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::openai::mock_vector;
use crate::recorder::{Fault, RecordedRequest, Recorder, split_words, sse_body};

const CREATED_AT: &str = "2025-06-01T12:00:00.000000Z";

/// A running Ollama-format mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct OllamaMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    api_key: Option<String>,
}

impl OllamaMock {
    /// Start a mock that needs no credentials (like a local Ollama).
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start a mock that requires `Authorization: Bearer {api_key}` (Ollama behind a proxy).
    pub async fn with_api_key(api_key: &str) -> Self {
        Self::start_with(Some(api_key.to_owned())).await
    }

    async fn start_with(api_key: Option<String>) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key,
        });
        let app = Router::new()
            .route("/api/chat", post(chat))
            .route("/api/embed", post(embed))
            .route("/api/tags", get(tags))
            .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
            .with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: what a deployment's `api_base` should be.
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
    /// [`Fault::Status`] body is sent as given: pass [`OllamaMock::error_body`].
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

    /// Ollama's error body: `{"error": message}`.
    pub fn error_body(message: &str) -> Value {
        json!({ "error": message })
    }
}

impl Drop for OllamaMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ollama_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(OllamaMock::error_body(message))).into_response()
}

/// Records the request, checks the key (when one is required), and applies a queued
/// fault. `Ok` carries the parsed body and the fault left for the handler.
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
    if let Some(key) = &st.api_key {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer != Some(key.as_str()) {
            return Err(ollama_error(StatusCode::UNAUTHORIZED, "unauthorized"));
        }
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
            r#"{"model":"llama3.2","created_at":"2025-06-01T12:00:00Z","message":{"role":"assis"#,
        )
            .into_response()),
        other => Ok((parsed, other)),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn is_base64(s: &str) -> bool {
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// What the real server refuses: missing model, unknown model, bad images or arguments.
fn check_chat(req: &Value) -> Result<&Vec<Value>, Box<Response>> {
    let Some(model) = req["model"].as_str().filter(|m| !m.is_empty()) else {
        return Err(Box::new(ollama_error(
            StatusCode::BAD_REQUEST,
            "model is required",
        )));
    };
    if model.starts_with("missing") {
        return Err(Box::new(ollama_error(
            StatusCode::NOT_FOUND,
            &format!("model \"{model}\" not found, try pulling it first"),
        )));
    }
    let Some(messages) = req["messages"].as_array() else {
        return Err(Box::new(ollama_error(
            StatusCode::BAD_REQUEST,
            "messages are required",
        )));
    };
    for m in messages {
        if !m["content"].is_string() && !m["content"].is_null() {
            return Err(Box::new(ollama_error(
                StatusCode::BAD_REQUEST,
                "json: cannot unmarshal array into Go struct field Message.messages.content of type string",
            )));
        }
        if let Some(images) = m["images"].as_array()
            && !images.iter().all(|i| i.as_str().is_some_and(is_base64))
        {
            return Err(Box::new(ollama_error(
                StatusCode::BAD_REQUEST,
                "illegal base64 data at input byte 4",
            )));
        }
        if let Some(calls) = m["tool_calls"].as_array()
            && !calls.iter().all(|c| c["function"]["arguments"].is_object())
        {
            return Err(Box::new(ollama_error(
                StatusCode::BAD_REQUEST,
                "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls.function.arguments",
            )));
        }
    }
    Ok(messages)
}

async fn chat(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, fault) = match admit(&st, "POST", "/api/chat", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let messages = match check_chat(&req) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    let text = |m: &Value| m["content"].as_str().unwrap_or_default().to_owned();
    let prompt_eval_count: u64 = messages.iter().map(|m| words(&text(m))).sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(text)
        .unwrap_or_default();
    let tool = req["tools"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["function"]["name"].as_str())
        .filter(|_| last_user.starts_with("call tool"))
        .map(str::to_owned);
    let reply = if req.get("format").is_some_and(|f| !f.is_null()) {
        json!({ "answer": last_user }).to_string()
    } else {
        last_user.clone()
    };
    let eval_count = if tool.is_some() { 5 } else { words(&reply) };
    let done = json!({
        "model": model, "created_at": CREATED_AT, "done": true, "done_reason": "stop",
        "total_duration": 4_883_583_458u64, "load_duration": 1_334_875u64,
        "prompt_eval_count": prompt_eval_count, "prompt_eval_duration": 342_546_000u64,
        "eval_count": eval_count, "eval_duration": 4_535_599_000u64,
    });
    let tool_calls = tool.map(|name| {
        let query = last_user.trim_start_matches("call tool").trim();
        json!([{ "function": { "name": name, "arguments": { "query": query } } }])
    });
    if req["stream"] == Value::Bool(false) {
        let mut resp = done;
        resp["message"] = match &tool_calls {
            Some(calls) => json!({"role": "assistant", "content": "", "tool_calls": calls}),
            None => json!({"role": "assistant", "content": reply}),
        };
        return axum::Json(resp).into_response();
    }
    let line = |v: Value| Bytes::from(format!("{v}\n"));
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (split_words(&reply, chunks), delay, None),
        Some(Fault::BrokenStream { after_chunks }) => {
            (split_words(&reply, 4), Duration::ZERO, Some(after_chunks))
        }
        _ => (split_words(&reply, 4), Duration::ZERO, None),
    };
    let mut lines = Vec::new();
    match tool_calls {
        Some(calls) => lines.push(line(json!({
            "model": model, "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": false
        }))),
        None => {
            for p in &pieces {
                lines.push(line(json!({
                    "model": model, "created_at": CREATED_AT,
                    "message": {"role": "assistant", "content": p}, "done": false
                })));
            }
        }
    }
    let mut last = done;
    last["message"] = json!({"role": "assistant", "content": ""});
    lines.push(line(last));
    if let Some(n) = break_after {
        lines.truncate(n);
    }
    let mut resp = sse_body(&st.recorder, lines, 1, delay, break_after.is_some());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

async fn embed(State(st): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match admit(&st, "POST", "/api/embed", &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    if model.starts_with("missing") {
        return ollama_error(
            StatusCode::NOT_FOUND,
            &format!("model \"{model}\" not found, try pulling it first"),
        );
    }
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return ollama_error(StatusCode::BAD_REQUEST, "invalid input type");
        }
    };
    let dims = req["dimensions"].as_u64().unwrap_or(8) as usize;
    let embeddings: Vec<Vec<f32>> = inputs.iter().map(|t| mock_vector(t, dims)).collect();
    let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
    axum::Json(json!({
        "model": model, "embeddings": embeddings,
        "total_duration": 14_143_917u64, "load_duration": 1_019_500u64,
        "prompt_eval_count": tokens
    }))
    .into_response()
}

async fn tags(State(st): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&st, "GET", "/api/tags", &headers, b"").await {
        return resp;
    }
    axum::Json(json!({"models": [
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "modified_at": "2025-05-04T17:37:44.706015396-07:00",
         "size": 2019393189u64, "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
         "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
            "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}},
        {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest", "modified_at": "2025-05-01T10:00:00Z",
         "size": 274302450u64, "digest": "0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f",
         "details": {"parent_model": "", "format": "gguf", "family": "nomic-bert", "families": ["nomic-bert"],
            "parameter_size": "137M", "quantization_level": "F16"}}
    ]}))
    .into_response()
}
