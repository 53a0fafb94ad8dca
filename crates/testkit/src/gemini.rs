//! A mock of Google's Gemini API and of Vertex AI's Gemini and Anthropic (Claude)
//! endpoints, with a fake OAuth2 token endpoint.
//!
//! Paths: `POST /v1beta/models/{model}:{method}` (Gemini API) and
//! `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}` (Vertex),
//! `method` one of `generateContent`, `streamGenerateContent` (`?alt=sse` required),
//! `embedContent` / `batchEmbedContents` (Gemini API) or `predict` (Vertex);
//! `POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict` and
//! `:streamRawPredict` (Claude on Vertex); and `POST /token`, a JWT-bearer grant whose
//! assertion's claims are checked (not its signature) before an access token is issued.
//! Every Vertex path wants a bearer token the mock issued (or was told to accept).
//!
//! Gemini answers echo the last user text; when tools are declared and that text starts
//! with "call tool", the answer calls the first declared function with `{"input": <rest>}`.
//! After a function response, the answer is `tool said: <response JSON>`. With
//! `thinkingConfig.includeThoughts` a thought part comes first. Token counts are
//! whitespace-separated words, so tests can compute what to expect.
//!
//! The Claude paths speak Anthropic's Messages format, as Vertex relays it: the body must
//! carry `"anthropic_version": "vertex-2023-10-16"` and no `model` (it is in the URL), and
//! `"stream": true` exactly when the method is `streamRawPredict`; otherwise the answer is
//! a 400 in Anthropic's error shape. The answer is a message (or Anthropic's SSE sequence:
//! `message_start`, `content_block_start`, `ping`, `content_block_delta`s,
//! `content_block_stop`, `message_delta`, `message_stop`) holding one block: the last user
//! message's text echoed; or a `tool_use` block calling `{"input": <rest>}` when tools are
//! declared and that text starts with "call tool" (or `tool_choice` is `any`, or names a
//! tool: then the input is the whole text); or `tool said: <result>` when the last user
//! turn holds only `tool_result` blocks. A [`Fault::Status`] body is sent as given, so a
//! test picks the error's shape — Google's (raised by Vertex) or Anthropic's (raised by the
//! model server, see `AnthropicMock::error_body`). Stream faults count SSE events.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::openai::mock_vector;
use crate::recorder::{Fault, RecordedRequest, Recorder, sse_body};

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A running Gemini API / Vertex AI mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct GeminiMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    api_key: Option<String>,
    token_url: String,
    /// Access tokens the Vertex paths accept, with their expiry (`None`: never expires).
    tokens: Mutex<HashMap<String, Option<Instant>>>,
    token_requests: AtomicUsize,
    token_expires_in: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Gemini,
    Vertex,
    /// Claude on Vertex: Google's authentication, Anthropic's format.
    VertexAnthropic,
}

/// The `anthropic_version` Vertex AI wants in a Claude request body.
const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

impl GeminiMock {
    /// Start a mock whose Gemini API paths accept any key (Vertex paths always want a token
    /// issued by [`GeminiMock::token_url`] or added with [`GeminiMock::accept_access_token`]).
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start a mock whose Gemini API paths require `x-goog-api-key: {api_key}`.
    pub async fn with_api_key(api_key: &str) -> Self {
        Self::start_with(Some(api_key.to_owned())).await
    }

    async fn start_with(api_key: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            api_key,
            token_url: format!("http://{addr}/token"),
            tokens: Mutex::new(HashMap::new()),
            token_requests: AtomicUsize::new(0),
            token_expires_in: AtomicU64::new(3599),
        });
        let app = Router::new()
            .route("/v1beta/models/{model_method}", post(gemini_api))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{model_method}",
                post(vertex),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model_method}",
                post(vertex_anthropic),
            )
            .route("/token", post(token))
            .fallback(not_found)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`: what a deployment's `api_base` should be (both APIs).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/token`: the token endpoint (a service account's `token_uri`).
    pub fn token_url(&self) -> String {
        self.state.token_url.clone()
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every Gemini/Vertex request received so far, Claude ones included (token requests
    /// are only counted).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    /// Make the next Gemini/Vertex request misbehave (faults are used in the order pushed).
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

    /// Access tokens issued so far.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The lifetime (`expires_in`, seconds) of tokens issued from now on; they stop being
    /// accepted when it runs out. Default 3599.
    pub fn set_token_expires_in(&self, secs: u64) {
        self.state.token_expires_in.store(secs, Ordering::SeqCst);
    }

    /// Accept `token` on the Vertex paths, as if issued earlier (a pre-issued token).
    pub fn accept_access_token(&self, token: &str) {
        self.state
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_owned(), None);
    }
}

impl Drop for GeminiMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Google's error body: `{"error":{"code","message","status"[,"details"]}}`.
fn google_error(status: StatusCode, message: &str, code: &str, details: Option<Value>) -> Response {
    let mut error = json!({"code": status.as_u16(), "message": message, "status": code});
    if let Some(d) = details {
        error["details"] = d;
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn invalid_argument(message: &str) -> Response {
    google_error(StatusCode::BAD_REQUEST, message, "INVALID_ARGUMENT", None)
}

/// Anthropic's error body, as the Claude model server answers through Vertex.
fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(crate::AnthropicMock::error_body(kind, message)),
    )
        .into_response()
}

fn anthropic_invalid(message: &str) -> Response {
    anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    google_error(
        StatusCode::NOT_FOUND,
        &format!(
            "The requested URL {method} {} was not found on this server.",
            uri.path()
        ),
        "NOT_FOUND",
        None,
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_api_key(st: &MockState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(want) = &st.api_key else {
        return Ok(());
    };
    match header_str(headers, "x-goog-api-key") {
        Some(got) if got == want => Ok(()),
        Some(_) => Err(Box::new(google_error(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
            "INVALID_ARGUMENT",
            Some(json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"}
            }])),
        ))),
        None => Err(Box::new(google_error(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API.",
            "PERMISSION_DENIED",
            None,
        ))),
    }
}

fn check_bearer(st: &MockState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = header_str(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    let valid = token.is_some_and(|t| {
        st.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(t)
            .is_some_and(|exp| exp.is_none_or(|e| Instant::now() < e))
    });
    if valid {
        return Ok(());
    }
    Err(Box::new(google_error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
         cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "UNAUTHENTICATED",
        None,
    )))
}

/// Records the request, checks credentials, applies a queued fault. `Ok` carries the parsed
/// body and the fault left for the handler (stream faults).
async fn admit(
    st: &MockState,
    api: Api,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Option<Fault>), Response> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    st.recorder.record(RecordedRequest {
        method: "POST".into(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: parsed.clone(),
    });
    match api {
        Api::Gemini => check_api_key(st, headers).map_err(|r| *r)?,
        Api::Vertex | Api::VertexAnthropic => check_bearer(st, headers).map_err(|r| *r)?,
    }
    if parsed.is_null() {
        return Err(if api == Api::VertexAnthropic {
            anthropic_invalid("The request body is not valid JSON.")
        } else {
            invalid_argument("Invalid JSON payload received. Unexpected end of string.")
        });
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
            if api == Api::VertexAnthropic {
                r#"{"id":"msg_vrtx_trunc","type":"message","role":"assistant","content":[{"type":"te"#
            } else {
                r#"{"candidates": [{"content": {"parts": [{"text": "hel"#
            },
        )
            .into_response()),
        other => Ok((parsed, other)),
    }
}

async fn gemini_api(
    State(st): State<Arc<MockState>>,
    Path(model_method): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    dispatch(&st, Api::Gemini, &model_method, &uri, &headers, &body).await
}

async fn vertex(
    State(st): State<Arc<MockState>>,
    Path((_project, _location, model_method)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    dispatch(&st, Api::Vertex, &model_method, &uri, &headers, &body).await
}

async fn dispatch(
    st: &MockState,
    api: Api,
    model_method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some((model, method)) = model_method.split_once(':') else {
        return not_found(Method::POST, uri.clone()).await;
    };
    let known = matches!(
        (api, method),
        (_, "generateContent" | "streamGenerateContent")
            | (Api::Gemini, "embedContent" | "batchEmbedContents")
            | (Api::Vertex, "predict")
    );
    if !known {
        return not_found(Method::POST, uri.clone()).await;
    }
    let (req, fault) = match admit(st, api, uri, headers, body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match method {
        "generateContent" => {
            generate(&req, model).map_or_else(|e| *e, |v| axum::Json(v).into_response())
        }
        "streamGenerateContent" => {
            if !uri
                .query()
                .unwrap_or("")
                .split('&')
                .any(|kv| kv == "alt=sse")
            {
                return invalid_argument("this mock streams only with ?alt=sse");
            }
            stream(st, &req, model, fault)
        }
        "embedContent" => embed_content(&req),
        "batchEmbedContents" => batch_embed_contents(&req, model),
        _ => predict(&req),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn part_texts(content: &Value) -> Vec<&str> {
    content["parts"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default()
}

/// What the model "says": the parts of the answer and its token counts.
struct Answer {
    parts: Vec<Value>,
    /// Text pieces to stream (empty for a function call).
    text: String,
    prompt_tokens: u64,
    candidate_tokens: u64,
    thought_tokens: Option<u64>,
}

fn answer(req: &Value) -> Result<Answer, Box<Response>> {
    let Some(contents) = req["contents"].as_array().filter(|c| !c.is_empty()) else {
        return Err(Box::new(invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified\n",
        )));
    };
    for c in contents {
        let role = c["role"].as_str().unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(Box::new(invalid_argument(
                "Please use a valid role: user, model.",
            )));
        }
        if c["parts"].as_array().is_none_or(Vec::is_empty) {
            return Err(Box::new(invalid_argument(
                "* GenerateContentRequest.contents.parts: contents.parts must not be empty.\n",
            )));
        }
    }
    let mut prompt_tokens: u64 = contents.iter().flat_map(part_texts).map(words).sum();
    prompt_tokens += part_texts(&req["systemInstruction"])
        .into_iter()
        .map(words)
        .sum::<u64>();
    let last = contents.last().expect("non-empty");
    let tool_result = last["parts"]
        .as_array()
        .and_then(|ps| ps.iter().find_map(|p| p.get("functionResponse")));
    let user_text = contents
        .iter()
        .rev()
        .filter(|c| c["role"].as_str().unwrap_or("user") == "user")
        .map(|c| part_texts(c).join(" "))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    let first_function = req["tools"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find_map(|t| t["functionDeclarations"].as_array()?.first())
        })
        .and_then(|d| d["name"].as_str());
    let mut parts = Vec::new();
    let (text, candidate_tokens) = match (tool_result, first_function) {
        (Some(fr), _) => {
            let t = format!("tool said: {}", fr["response"]);
            (t.clone(), words(&t))
        }
        (None, Some(name)) if user_text.starts_with("call tool") => {
            let input = user_text["call tool".len()..].trim().to_owned();
            parts.push(json!({"functionCall": {"name": name, "args": {"input": input}}}));
            (String::new(), words(&input) + 1)
        }
        _ => (user_text.clone(), words(&user_text)),
    };
    let thinking = req["generationConfig"]["thinkingConfig"]["includeThoughts"] == json!(true);
    let thought_tokens = thinking.then(|| {
        let thought = format!("Thinking about: {user_text}");
        let n = words(&thought);
        parts.insert(0, json!({"text": thought, "thought": true}));
        n
    });
    Ok(Answer {
        parts,
        text,
        prompt_tokens,
        candidate_tokens,
        thought_tokens,
    })
}

fn usage(prompt: u64, candidates: u64, thoughts: Option<u64>) -> Value {
    let mut u = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts.unwrap_or(0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
    });
    if let Some(t) = thoughts {
        u["thoughtsTokenCount"] = json!(t);
    }
    u
}

fn generate(req: &Value, model: &str) -> Result<Value, Box<Response>> {
    let a = answer(req)?;
    let mut parts = a.parts;
    if !a.text.is_empty() {
        parts.push(json!({ "text": a.text }));
    }
    Ok(json!({
        "candidates": [{
            "content": {"parts": parts, "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": usage(a.prompt_tokens, a.candidate_tokens, a.thought_tokens),
        "modelVersion": model,
        "responseId": "mock-resp-1"
    }))
}

/// Split `text` into at most `n` pieces on word boundaries, spaces kept, so the pieces
/// concatenate back to the text.
fn pieces(text: &str, n: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    if words.is_empty() {
        return Vec::new();
    }
    let per = words.len().div_ceil(n.max(1));
    words.chunks(per).map(|c| c.concat()).collect()
}

fn stream(st: &MockState, req: &Value, model: &str, fault: Option<Fault>) -> Response {
    let a = match answer(req) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let (n, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (chunks, delay, None),
        Some(Fault::BrokenStream { after_chunks }) => (4, Duration::ZERO, Some(after_chunks)),
        _ => (4, Duration::ZERO, None),
    };
    let event = |parts: Vec<Value>, finish: Option<&str>, candidates: u64| -> Bytes {
        let mut cand = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        let thoughts = a.thought_tokens;
        let v = json!({
            "candidates": [cand],
            "usageMetadata": usage(a.prompt_tokens, candidates, thoughts),
            "modelVersion": model,
            "responseId": "mock-resp-1"
        });
        Bytes::from(format!("data: {v}\r\n\r\n"))
    };
    let mut events: Vec<Bytes> = Vec::new();
    // Thoughts and function calls come whole, before the text.
    let leading: Vec<Value> = a.parts.clone();
    let texts = pieces(&a.text, n);
    if !leading.is_empty() {
        let finish = texts.is_empty().then_some("STOP");
        events.push(event(
            leading,
            finish,
            if texts.is_empty() {
                a.candidate_tokens
            } else {
                0
            },
        ));
    }
    let mut sent = 0;
    for (i, piece) in texts.iter().enumerate() {
        sent += words(piece);
        let last = i + 1 == texts.len();
        let count = if last { a.candidate_tokens } else { sent };
        events.push(event(
            vec![json!({ "text": piece })],
            last.then_some("STOP"),
            count,
        ));
    }
    if events.is_empty() {
        events.push(event(vec![json!({"text": ""})], Some("STOP"), 0));
    }
    if let Some(k) = break_after {
        events.truncate(k);
    }
    sse_body(&st.recorder, events, 1, delay, break_after.is_some())
}

fn embedding_values(content: &Value, dims: usize) -> Value {
    json!(mock_vector(&part_texts(content).join(" "), dims))
}

fn dims(v: &Value) -> usize {
    v.as_u64().map_or(8, |d| d as usize)
}

fn embed_content(req: &Value) -> Response {
    if req["content"]["parts"].as_array().is_none_or(Vec::is_empty) {
        return invalid_argument("* EmbedContentRequest.content: contents must not be empty\n");
    }
    let values = embedding_values(&req["content"], dims(&req["outputDimensionality"]));
    axum::Json(json!({ "embedding": { "values": values } })).into_response()
}

fn batch_embed_contents(req: &Value, model: &str) -> Response {
    let Some(requests) = req["requests"].as_array().filter(|r| !r.is_empty()) else {
        return invalid_argument("* BatchEmbedContentsRequest.requests: requests is required\n");
    };
    let want = format!("models/{model}");
    let mut embeddings = Vec::new();
    for r in requests {
        if r["model"].as_str() != Some(want.as_str()) {
            return invalid_argument(&format!(
                "Model name in the request ({}) does not match the model in the URL ({want}).",
                r["model"]
            ));
        }
        embeddings.push(json!({
            "values": embedding_values(&r["content"], dims(&r["outputDimensionality"]))
        }));
    }
    axum::Json(json!({ "embeddings": embeddings })).into_response()
}

fn predict(req: &Value) -> Response {
    let Some(instances) = req["instances"].as_array().filter(|i| !i.is_empty()) else {
        return invalid_argument("instances must not be empty");
    };
    let d = dims(&req["parameters"]["outputDimensionality"]);
    let mut chars = 0;
    let mut predictions = Vec::new();
    for inst in instances {
        let text = inst["content"].as_str().unwrap_or("");
        chars += text.chars().filter(|c| !c.is_whitespace()).count();
        predictions.push(json!({"embeddings": {
            "statistics": {"truncated": false, "token_count": words(text)},
            "values": mock_vector(text, d)
        }}));
    }
    axum::Json(json!({
        "predictions": predictions,
        "metadata": {"billableCharacterCount": chars}
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Claude on Vertex (Anthropic's Messages format over rawPredict / streamRawPredict)
// ---------------------------------------------------------------------------------------

async fn vertex_anthropic(
    State(st): State<Arc<MockState>>,
    Path((_project, _location, model_method)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = model_method.split_once(':') else {
        return not_found(Method::POST, uri).await;
    };
    let streaming = match method {
        "rawPredict" => false,
        "streamRawPredict" => true,
        _ => return not_found(Method::POST, uri).await,
    };
    let (req, fault) = match admit(&st, Api::VertexAnthropic, &uri, &headers, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if let Err(resp) = check_claude_body(&req, streaming) {
        return *resp;
    }
    let a = claude_answer(&req);
    if streaming {
        claude_stream(&st, &a, model, fault)
    } else {
        axum::Json(claude_message(&a, model)).into_response()
    }
}

/// What Vertex and the model server refuse before answering.
fn check_claude_body(req: &Value, streaming: bool) -> Result<(), Box<Response>> {
    let refuse = |m: &str| Err(Box::new(anthropic_invalid(m)));
    if req.get("model").is_some() {
        return refuse("model: not allowed in the body on Vertex AI (the URL names the model)");
    }
    match req.get("anthropic_version").and_then(Value::as_str) {
        Some(VERTEX_ANTHROPIC_VERSION) => {}
        Some(other) => {
            return refuse(&format!(
                "anthropic_version: '{other}' is not supported, use '{VERTEX_ANTHROPIC_VERSION}'"
            ));
        }
        None => return refuse("anthropic_version: Field required"),
    }
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return refuse("messages: Field required");
    };
    if messages
        .iter()
        .any(|m| !matches!(m["role"].as_str(), Some("user" | "assistant")))
    {
        return refuse("messages: roles must be 'user' or 'assistant'");
    }
    if req["max_tokens"].as_u64().is_none() {
        return refuse("max_tokens: Field required");
    }
    if (req["stream"] == Value::Bool(true)) != streaming {
        return refuse(if streaming {
            "streamRawPredict needs \"stream\": true"
        } else {
            "rawPredict answers one message: \"stream\": true belongs on streamRawPredict"
        });
    }
    Ok(())
}

/// The text of an Anthropic `content` (a string, or its text blocks joined by spaces).
fn claude_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

enum ClaudeBlock {
    Text(String),
    ToolUse { name: String, input: Value },
}

struct ClaudeAnswer {
    block: ClaudeBlock,
    stop_reason: &'static str,
    input_tokens: u64,
    output_tokens: u64,
}

const CLAUDE_MESSAGE_ID: &str = "msg_vrtx_01MockClaudeMessage0001";
const CLAUDE_TOOL_USE_ID: &str = "toolu_vrtx_01MockToolUse0001";

fn claude_answer(req: &Value) -> ClaudeAnswer {
    let messages = req["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let input_tokens = words(&claude_text(&req["system"]))
        + messages
            .iter()
            .map(|m| words(&claude_text(&m["content"])))
            .sum::<u64>();
    let last_user = messages.iter().rev().find(|m| m["role"] == "user");
    let text = last_user.map_or_else(String::new, |m| claude_text(&m["content"]));
    let tool_result = last_user
        .and_then(|m| m["content"].as_array())
        .and_then(|bs| bs.iter().find(|b| b["type"] == "tool_result"));
    let tools = req["tools"].as_array().filter(|t| !t.is_empty());
    let asked = text.starts_with("call tool");
    let tool = tools.and_then(|tools| match req["tool_choice"]["type"].as_str() {
        Some("tool") => tools
            .iter()
            .find(|t| t["name"] == req["tool_choice"]["name"]),
        Some("any") => tools.first(),
        Some("none") => None,
        _ => tools.first().filter(|_| asked),
    });
    if let Some(tool) = tool {
        let input = if asked {
            text["call tool".len()..].trim()
        } else {
            text.as_str()
        };
        return ClaudeAnswer {
            block: ClaudeBlock::ToolUse {
                name: tool["name"].as_str().unwrap_or("tool").to_owned(),
                input: json!({ "input": input }),
            },
            stop_reason: "tool_use",
            input_tokens,
            output_tokens: words(input) + 1,
        };
    }
    let answer = match tool_result {
        Some(r) if text.is_empty() => format!("tool said: {}", claude_text(&r["content"])),
        _ => text,
    };
    ClaudeAnswer {
        output_tokens: words(&answer),
        block: ClaudeBlock::Text(answer),
        stop_reason: "end_turn",
        input_tokens,
    }
}

fn claude_message(a: &ClaudeAnswer, model: &str) -> Value {
    let block = match &a.block {
        ClaudeBlock::Text(t) => json!({"type": "text", "text": t}),
        ClaudeBlock::ToolUse { name, input } => {
            json!({"type": "tool_use", "id": CLAUDE_TOOL_USE_ID, "name": name, "input": input})
        }
    };
    json!({
        "id": CLAUDE_MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": a.stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens}
    })
}

fn claude_stream(st: &MockState, a: &ClaudeAnswer, model: &str, fault: Option<Fault>) -> Response {
    let (n, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (chunks, delay, None),
        Some(Fault::BrokenStream { after_chunks }) => (4, Duration::ZERO, Some(after_chunks)),
        _ => (4, Duration::ZERO, None),
    };
    let event = |data: Value| -> Bytes {
        let name = data["type"].as_str().unwrap_or("unknown").to_owned();
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    };
    let (start, deltas): (Value, Vec<Value>) = match &a.block {
        ClaudeBlock::Text(t) => (
            json!({"type": "text", "text": ""}),
            pieces(t, n)
                .into_iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect(),
        ),
        ClaudeBlock::ToolUse { name, input } => {
            // Like the real service: an empty fragment first, then the JSON in pieces.
            let mut d = vec![json!({"type": "input_json_delta", "partial_json": ""})];
            d.extend(
                pieces(&input.to_string(), n)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p})),
            );
            (
                json!({"type": "tool_use", "id": CLAUDE_TOOL_USE_ID, "name": name, "input": {}}),
                d,
            )
        }
    };
    let mut events = vec![
        event(json!({"type": "message_start", "message": {
            "id": CLAUDE_MESSAGE_ID, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": a.input_tokens, "output_tokens": 1}
        }})),
        event(json!({"type": "content_block_start", "index": 0, "content_block": start})),
        event(json!({"type": "ping"})),
    ];
    events.extend(
        deltas
            .into_iter()
            .map(|d| event(json!({"type": "content_block_delta", "index": 0, "delta": d}))),
    );
    events.push(event(json!({"type": "content_block_stop", "index": 0})));
    events.push(event(json!({"type": "message_delta",
        "delta": {"stop_reason": a.stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": a.output_tokens}})));
    events.push(event(json!({"type": "message_stop"})));
    if let Some(k) = break_after {
        events.truncate(k);
    }
    sse_body(&st.recorder, events, 1, delay, break_after.is_some())
}

// ---------------------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------------------

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn jwt_part(s: &str) -> Option<Value> {
    serde_json::from_slice(&base64url_decode(s)?).ok()
}

async fn token(State(st): State<Arc<MockState>>, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body);
    let mut grant_type = None;
    let mut assertion = None;
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "grant_type" => grant_type = Some(percent_decode(v)),
            "assertion" => assertion = Some(percent_decode(v)),
            _ => {}
        }
    }
    if grant_type.as_deref() != Some(JWT_BEARER_GRANT) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = assertion else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let segments: Vec<&str> = assertion.split('.').collect();
    let (Some(head), Some(claims)) = (
        segments.first().and_then(|s| jwt_part(s)),
        segments.get(1).and_then(|s| jwt_part(s)),
    ) else {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: not three base64url JSON segments.",
        );
    };
    if segments.len() != 3 || segments[2].is_empty() {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    if head["alg"] != "RS256" {
        return oauth_error("invalid_grant", "Invalid JWT: alg must be RS256.");
    }
    let iss_ok = claims["iss"].as_str().is_some_and(|i| i.contains('@'));
    let scope_ok = claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|x| x == CLOUD_PLATFORM_SCOPE));
    let aud_ok = claims["aud"].as_str() == Some(st.token_url.as_str());
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    let times_ok = matches!((iat, exp), (Some(i), Some(e)) if e > i && e - i <= 3600);
    if !(iss_ok && scope_ok && aud_ok && times_ok) {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: iss, scope, aud, iat or exp is wrong.",
        );
    }
    let n = st.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = st.token_expires_in.load(Ordering::SeqCst);
    let access_token = format!("ya29.mock-token-{n}");
    st.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(
        access_token.clone(),
        Some(Instant::now() + Duration::from_secs(expires_in)),
    );
    axum::Json(json!({
        "access_token": access_token,
        "expires_in": expires_in,
        "token_type": "Bearer"
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_back() {
        for (text, n) in [("one two three four five", 4), ("single", 3), ("", 2)] {
            let p = pieces(text, n);
            assert_eq!(p.concat(), text);
            assert!(p.len() <= n);
        }
    }

    #[test]
    fn decoders() {
        assert_eq!(
            percent_decode("urn%3Aietf%3Aparams+x%zz"),
            "urn:ietf:params x%zz"
        );
        assert_eq!(base64url_decode("eyJhIjoxfQ").unwrap(), br#"{"a":1}"#);
        assert_eq!(base64url_decode("_-8"), Some(vec![0xff, 0xef]));
        assert!(base64url_decode("a+b").is_none());
    }
}
