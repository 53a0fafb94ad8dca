//! A mock of OpenAI's API: `/v1/chat/completions` (JSON and SSE), `/v1/responses` (the
//! Response object, or its SSE events in OpenAI's order with `sequence_number`s),
//! `/v1/embeddings`, `/v1/models`, with OpenAI's error bodies.
//!
//! Chat answers echo the last user message; usage counts whitespace-separated words, so a
//! test can compute what to expect. Responses answers echo the input's last user text; a
//! built-in tool in `tools` (any type but `function`) adds a completed `{type}_call` output
//! item before the message; usage counts words, reports half the input words (rounded
//! down) as cached and, when `reasoning` is set, 2 reasoning tokens (in the output).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::recorder::{Fault, RecordedRequest, Recorder, split_words, sse_body};

/// A running OpenAI-format mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct OpenAiMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    api_key: Option<String>,
    /// Azure mode: the key comes in `api-key` (or a Bearer token) and `api-version` is required.
    azure: bool,
}

impl OpenAiMock {
    /// Start a mock that accepts any credentials.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start a mock that requires `Authorization: Bearer {api_key}`.
    pub async fn with_api_key(api_key: &str) -> Self {
        Self::start_with(Some(api_key.to_owned())).await
    }

    /// Start an Azure OpenAI-format mock: `/openai/deployments/{deployment}/chat/completions`
    /// and `/embeddings` (plus the v1 layout `/openai/v1/…`), requiring `api-key: {api_key}`
    /// or `Authorization: Bearer {api_key}` (an Entra ID token) and an `api-version` query
    /// parameter on the deployment routes.
    pub async fn azure(api_key: &str) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key: Some(api_key.to_owned()),
            azure: true,
        });
        let app = Router::new()
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(chat),
            )
            .route(
                "/openai/deployments/{deployment}/embeddings",
                post(embeddings),
            )
            .route("/openai/v1/chat/completions", post(chat))
            .route("/openai/v1/responses", post(responses))
            .route("/openai/v1/embeddings", post(embeddings))
            .fallback(not_found)
            .with_state(state.clone());
        Self::serve(app, state).await
    }

    async fn start_with(api_key: Option<String>) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key,
            azure: false,
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/responses", post(responses))
            .route("/v1/models", get(models))
            .fallback(not_found)
            .with_state(state.clone());
        Self::serve(app, state).await
    }

    async fn serve(app: Router, state: Arc<MockState>) -> Self {
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: an Azure resource endpoint.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
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

    /// Make the next request misbehave (faults are used in the order pushed).
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
}

impl Drop for OpenAiMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn openai_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    openai_error(
        StatusCode::NOT_FOUND,
        &format!("Invalid URL ({method} {uri})"),
        "invalid_request_error",
        None,
    )
}

/// Records the request, checks auth, and applies a queued fault. `Ok` carries the parsed
/// body and the fault left for the handler (stream faults).
async fn admit(
    st: &MockState,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Option<Fault>), Response> {
    let path_only = path.split('?').next().unwrap_or(path);
    if st.azure && path_only.starts_with("/openai/deployments/") && !path.contains("api-version=") {
        return Err(openai_error(
            StatusCode::NOT_FOUND,
            "Resource not found",
            "invalid_request_error",
            Some("404"),
        ));
    }
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
        let api_key = headers.get("api-key").and_then(|v| v.to_str().ok());
        let ok = bearer == Some(key.as_str()) || (st.azure && api_key == Some(key.as_str()));
        if !ok {
            return Err(openai_error(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided: sk-wrong****************1234. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                Some("invalid_api_key"),
            ));
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
            r#"{"id":"chatcmpl-trunc","object":"chat.completion","choices":[{"index":0,"mess"#,
        )
            .into_response()),
        other => Ok((parsed, other)),
    }
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

async fn chat(
    State(st): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let (req, fault) = match admit(&st, "POST", path, &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(messages) = req["messages"].as_array() else {
        return openai_error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("missing_required_parameter"),
        );
    };
    let model = req["model"].as_str().unwrap_or("gpt-mock").to_owned();
    let prompt_tokens: u64 = messages.iter().map(|m| words(&message_text(m))).sum();
    let reply = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let completion_tokens = words(&reply);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    });
    let id = "chatcmpl-mock123";
    let created = 1_700_000_000u64;
    // "call tool …" with tools offered: answer with a call of the first tool.
    let tool = req["tools"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["function"]["name"].as_str())
        .filter(|_| reply.starts_with("call tool"))
        .map(str::to_owned);
    if let Some(name) = tool {
        let args = json!({"query": reply.trim_start_matches("call tool").trim()}).to_string();
        if req["stream"] != Value::Bool(true) {
            return axum::Json(json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                    "refusal": null, "tool_calls": [{"id": "call_mock1", "type": "function",
                    "function": {"name": name, "arguments": args}}]},
                    "logprobs": null, "finish_reason": "tool_calls"}],
                "usage": usage
            }))
            .into_response();
        }
        let half = args.len() / 2;
        let chunk = |choices: Value, usage: Value| {
            let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": choices});
            if !usage.is_null() {
                v["usage"] = usage;
            }
            Bytes::from(format!("data: {v}\n\n"))
        };
        let mut events = vec![
            chunk(
                json!([{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
                {"index": 0, "id": "call_mock1", "type": "function", "function": {"name": name, "arguments": ""}}]},
                "finish_reason": null}]),
                Value::Null,
            ),
            chunk(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": &args[..half]}}]},
                "finish_reason": null}]),
                Value::Null,
            ),
            chunk(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": &args[half..]}}]},
                "finish_reason": null}]),
                Value::Null,
            ),
            chunk(
                json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
                Value::Null,
            ),
        ];
        if req["stream_options"]["include_usage"] == Value::Bool(true) {
            events.push(chunk(json!([]), usage));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(stream))
            .expect("valid response");
    }
    if req["stream"] != Value::Bool(true) {
        return axum::Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply,
                "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock"
        }))
        .into_response();
    }
    let include_usage = req["stream_options"]["include_usage"] == Value::Bool(true);
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (split_words(&reply, chunks), delay, None),
        Some(Fault::BrokenStream { after_chunks }) => {
            (split_words(&reply, 4), Duration::ZERO, Some(after_chunks))
        }
        _ => (split_words(&reply, 4), Duration::ZERO, None),
    };
    let chunk = move |delta: Value, finish: Value, usage: Value| -> Bytes {
        let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if !usage.is_null() {
            v["choices"] = json!([]);
            v["usage"] = usage;
        } else if include_usage {
            v["usage"] = Value::Null;
        }
        Bytes::from(format!("data: {v}\n\n"))
    };
    let mut events: Vec<Bytes> = Vec::new();
    events.push(chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
        Value::Null,
    ));
    for p in &pieces {
        events.push(chunk(json!({"content": p}), Value::Null, Value::Null));
    }
    events.push(chunk(json!({}), json!("stop"), Value::Null));
    if include_usage {
        events.push(chunk(Value::Null, Value::Null, usage));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    if let Some(n) = break_after {
        events.truncate(n + 1);
    }
    // The role chunk and the first piece of text go out at once; a slow stream pauses
    // before each later chunk (a stall mid-answer).
    sse_body(&st.recorder, events, 2, delay, break_after.is_some())
}

/// The text of a Responses `input`: the string, or the last user message's text.
fn responses_input_text(input: &Value) -> String {
    match input {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i["role"] == "user")
            .map(|m| match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `POST /v1/responses` in OpenAI's wire format.
async fn responses(
    State(st): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let (req, fault) = match admit(&st, "POST", path, &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let Some(model) = req["model"].as_str().map(str::to_owned) else {
        return openai_error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'model'.",
            "invalid_request_error",
            Some("missing_required_parameter"),
        );
    };
    let reply = responses_input_text(&req["input"]);
    let input_tokens = words(&reply) + words(req["instructions"].as_str().unwrap_or(""));
    let reasoning_tokens: u64 = if req["reasoning"].is_object() { 2 } else { 0 };
    let output_tokens = words(&reply) + reasoning_tokens;
    let usage = json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": input_tokens / 2},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens
    });
    let id = "resp_mock123";
    let mut items: Vec<Value> = Vec::new();
    for (i, t) in req["tools"].as_array().into_iter().flatten().enumerate() {
        let kind = t["type"].as_str().unwrap_or("function");
        if kind != "function" {
            items.push(
                json!({"type": format!("{kind}_call"), "id": format!("tc_mock{i}"),
                "status": "completed"}),
            );
        }
    }
    let message = |text: &str, status: &str| {
        json!({"type": "message", "id": "msg_mock123", "status": status, "role": "assistant",
        "content": if status == "completed" {
            json!([{"type": "output_text", "text": text, "annotations": []}])
        } else {
            json!([])
        }})
    };
    let response = |status: &str, output: Vec<Value>, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": 1_700_000_000u64, "status": status,
            "error": null, "incomplete_details": null, "instructions": req["instructions"],
            "max_output_tokens": req["max_output_tokens"], "model": model, "output": output,
            "parallel_tool_calls": true, "previous_response_id": req["previous_response_id"],
            "reasoning": {"effort": req["reasoning"]["effort"], "summary": null},
            "store": req["store"] != Value::Bool(false), "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": req["tools"].as_array().cloned().unwrap_or_default(), "top_p": 1.0,
            "truncation": "disabled", "usage": usage, "user": null, "metadata": {}
        })
    };
    let mut output = items.clone();
    output.push(message(&reply, "completed"));
    if req["stream"] != Value::Bool(true) {
        return axum::Json(response("completed", output, usage)).into_response();
    }
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (split_words(&reply, chunks), delay, None),
        Some(Fault::BrokenStream { after_chunks }) => {
            (split_words(&reply, 4), Duration::ZERO, Some(after_chunks))
        }
        _ => (split_words(&reply, 4), Duration::ZERO, None),
    };
    let mut events: Vec<Bytes> = Vec::new();
    let mut push = |mut data: Value| {
        data["sequence_number"] = json!(events.len());
        let name = data["type"].as_str().unwrap_or_default().to_owned();
        events.push(Bytes::from(format!("event: {name}\ndata: {data}\n\n")));
    };
    push(
        json!({"type": "response.created", "response": response("in_progress", vec![], Value::Null)}),
    );
    push(
        json!({"type": "response.in_progress", "response": response("in_progress", vec![], Value::Null)}),
    );
    for (i, item) in items.iter().enumerate() {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        push(json!({"type": "response.output_item.added", "output_index": i, "item": added}));
        push(json!({"type": "response.output_item.done", "output_index": i, "item": item}));
    }
    let mi = items.len();
    push(
        json!({"type": "response.output_item.added", "output_index": mi,
        "item": message("", "in_progress")}),
    );
    push(
        json!({"type": "response.content_part.added", "item_id": "msg_mock123",
        "output_index": mi, "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": []}}),
    );
    for p in &pieces {
        push(
            json!({"type": "response.output_text.delta", "item_id": "msg_mock123",
            "output_index": mi, "content_index": 0, "delta": p, "logprobs": []}),
        );
    }
    push(
        json!({"type": "response.output_text.done", "item_id": "msg_mock123",
        "output_index": mi, "content_index": 0, "text": reply, "logprobs": []}),
    );
    push(
        json!({"type": "response.content_part.done", "item_id": "msg_mock123",
        "output_index": mi, "content_index": 0,
        "part": {"type": "output_text", "text": reply, "annotations": []}}),
    );
    push(
        json!({"type": "response.output_item.done", "output_index": mi,
        "item": message(&reply, "completed")}),
    );
    push(json!({"type": "response.completed", "response": response("completed", output, usage)}));
    if let Some(n) = break_after {
        events.truncate(n);
    }
    sse_body(&st.recorder, events, 2, delay, break_after.is_some())
}

async fn embeddings(
    State(st): State<Arc<MockState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let (req, _) = match admit(&st, "POST", path, &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        _ => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "'input' is a required property",
                "invalid_request_error",
                None,
            );
        }
    };
    let dims = req["dimensions"].as_u64().unwrap_or(8) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": mock_vector(text, dims)}))
        .collect();
    let tokens: u64 = inputs.iter().map(|s| words(s)).sum();
    axum::Json(json!({
        "object": "list", "data": data, "model": req["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

/// A deterministic unit-ish vector derived from the text (FNV-1a per dimension).
pub(crate) fn mock_vector(text: &str, dims: usize) -> Vec<f32> {
    (0..dims)
        .map(|d| {
            let mut h: u64 = 0xcbf29ce484222325 ^ d as u64;
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x100000001b3);
            }
            ((h % 2001) as f32 - 1000.0) / 1000.0
        })
        .collect()
}

async fn models(State(st): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&st, "GET", "/v1/models", &headers, b"").await {
        return resp;
    }
    axum::Json(json!({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"}
    ]}))
    .into_response()
}

#[cfg(test)]
mod tests {
    use crate::recorder::split_words;

    #[test]
    fn split_pieces_concatenate_back() {
        for (text, n) in [
            ("one two three four five six", 4),
            ("single", 3),
            ("a b", 8),
            ("", 2),
        ] {
            let parts = split_words(text, n);
            assert_eq!(parts.concat(), text);
            assert!(parts.len() <= n.max(1) + 1, "{parts:?}");
        }
        assert_eq!(split_words("a b c d e f", 3).len(), 3);
    }
}
