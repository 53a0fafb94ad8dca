//! A mock of AWS Bedrock Runtime: `POST /model/{modelId}/converse`, `/converse-stream`
//! (the binary `application/vnd.amazon.eventstream` framing, CRCs included) and `/invoke`
//! (Amazon Titan and Cohere embedding bodies), with AWS's error shape (the error name in
//! `x-amzn-errortype`, `{"message": …}` in the body).
//!
//! Authentication is checked the way AWS does: a SigV4 `Authorization` header must name
//! the mock's access key id and a credential scope of the mock's region, service
//! `bedrock` and `aws4_request`; `SignedHeaders` must include `host` and `x-amz-date`; the
//! session token, when the mock has one, must arrive in `x-amz-security-token`; and the
//! signature is recomputed (with `aws-sigv4`, from the raw path, the signed headers and
//! the body bytes) and a mismatch is a 403 `InvalidSignatureException`. A Bedrock API key
//! (`Authorization: Bearer …`) is accepted once [`BedrockMock::accept_bearer_token`] named
//! it. The model id is the percent-decoded path segment, so an id with `:` or `/` must
//! arrive encoded (an unencoded `/` makes the path unknown, a 404).
//!
//! What it answers (Converse): the last user message's text echoed; a `toolUse` block
//! instead when tools are configured and either `toolChoice` forces one (`any`, or `tool`
//! with a name) or the last user text starts with "call tool" (the input holds a
//! placeholder per schema property); a leading `reasoningContent` block (with a signature)
//! when `additionalModelRequestFields.thinking.type` is `enabled`. Usage counts
//! whitespace-separated words. Streams send `messageStart`, `contentBlockStart` (tool use
//! only, as Bedrock does), `contentBlockDelta`s, `contentBlockStop`, `messageStop` and
//! `metadata`, each payload padded with a `p` field like AWS's.
//!
//! Faults: [`Fault`]s as in the other mocks (a [`Fault::Status`] body with `__type` has it
//! moved to `x-amzn-errortype`, see [`BedrockMock::error_body`]; stream faults count
//! frames), plus [`BedrockMock::push_stream_exception`] (an exception frame mid-stream)
//! and [`BedrockMock::push_corrupt_frame`] (a frame whose message CRC is wrong).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::openai::mock_vector;
use crate::recorder::{Fault, RecordedRequest, Recorder, StreamGuard, split_words};

/// How far a request's `x-amz-date` may be from the mock's clock (AWS allows 5 minutes).
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A running Bedrock Runtime mock upstream. Stops when dropped.
#[derive(Debug)]
pub struct BedrockMock {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
enum StreamFault {
    Exception {
        after_events: usize,
        exception_type: String,
        message: String,
    },
    CorruptFrame {
        after_events: usize,
    },
}

#[derive(Debug)]
struct MockState {
    recorder: Arc<Recorder>,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    bearer_token: Mutex<Option<String>>,
    stream_faults: Mutex<VecDeque<StreamFault>>,
    request_ids: AtomicU64,
}

impl BedrockMock {
    /// Start a mock of `region` that accepts SigV4 signatures made with these credentials
    /// (and, with `session_token`, requires that token).
    pub async fn with_credentials(
        region: &str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Self {
        let state = Arc::new(MockState {
            recorder: Arc::new(Recorder::default()),
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: session_token.map(str::to_owned),
            bearer_token: Mutex::new(None),
            stream_faults: Mutex::new(VecDeque::new()),
            request_ids: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let (addr, task) = crate::recorder::serve_on_loopback(app).await;
        Self { addr, state, task }
    }

    /// Also accept `Authorization: Bearer {token}` (a Bedrock API key).
    pub fn accept_bearer_token(&self, token: &str) {
        *self
            .state
            .bearer_token
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(token.to_owned());
    }

    /// `http://127.0.0.1:PORT`: a deployment's `api_base` (the endpoint root, like
    /// `https://bedrock-runtime.us-east-1.amazonaws.com`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far (`path` is the raw, still percent-encoded path).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    /// Make the next request misbehave (faults are used in the order pushed).
    pub fn push_fault(&self, fault: Fault) {
        self.state.recorder.push_fault(fault);
    }

    /// The next ConverseStream sends `after_events` event frames, then an exception frame
    /// (`:exception-type` = `exception_type`, e.g. `throttlingException`), then ends.
    pub fn push_stream_exception(&self, after_events: usize, exception_type: &str, message: &str) {
        self.stream_faults().push_back(StreamFault::Exception {
            after_events,
            exception_type: exception_type.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The next ConverseStream sends `after_events` good frames, then one whose message
    /// CRC does not match its bytes.
    pub fn push_corrupt_frame(&self, after_events: usize) {
        self.stream_faults()
            .push_back(StreamFault::CorruptFrame { after_events });
    }

    fn stream_faults(&self) -> std::sync::MutexGuard<'_, VecDeque<StreamFault>> {
        self.state
            .stream_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Streams whose client went away before the last byte.
    pub fn cancelled_streams(&self) -> usize {
        self.state.recorder.streams_cancelled.load(Ordering::SeqCst)
    }

    /// Streams sent to the end.
    pub fn completed_streams(&self) -> usize {
        self.state.recorder.streams_completed.load(Ordering::SeqCst)
    }

    /// An error for [`Fault::Status`]: `{"__type": name, "message": message}`. The mock
    /// sends the name in `x-amzn-errortype` (as AWS does) and only `{"message"}` in the
    /// body.
    pub fn error_body(name: &str, message: &str) -> Value {
        json!({"__type": name, "message": message})
    }
}

impl Drop for BedrockMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// AWS's error response: the name in `x-amzn-errortype`, the message in the body.
fn aws_error(status: StatusCode, name: &str, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "message": message }))).into_response();
    if let Ok(v) = format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/").parse() {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

fn validation(message: &str) -> Box<Response> {
    Box::new(aws_error(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        message,
    ))
}

fn forbidden(name: &str, message: &str) -> Box<Response> {
    Box::new(aws_error(StatusCode::FORBIDDEN, name, message))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || s.as_bytes()[8] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Checks the request's credentials as AWS does (see the module docs).
fn authenticate(
    st: &MockState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let invalid_token = || {
        forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    };
    let Some(authz) = header_str(headers, "authorization") else {
        return Err(forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if let Some(token) = authz.strip_prefix("Bearer ") {
        let accepted = st
            .bearer_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        return if accepted.as_deref() == Some(token) {
            Ok(())
        } else {
            Err(invalid_token())
        };
    }
    let Some(fields) = authz.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(forbidden(
            "IncompleteSignatureException",
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm.",
        ));
    };
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    };
    let (Some(credential), Some(signed_headers), Some(_signature)) = (
        field("Credential"),
        field("SignedHeaders"),
        field("Signature"),
    ) else {
        return Err(forbidden(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'.",
        ));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = scope[..] else {
        return Err(forbidden(
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements.",
        ));
    };
    if key_id != st.access_key_id {
        return Err(invalid_token());
    }
    if terminator != "aws4_request" {
        return Err(forbidden(
            "InvalidSignatureException",
            "Credential should be scoped with a valid terminator: 'aws4_request'.",
        ));
    }
    if service != "bedrock" {
        return Err(forbidden(
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'bedrock'.",
        ));
    }
    if region != st.region {
        return Err(forbidden(
            "InvalidSignatureException",
            &format!("Credential should be scoped to a valid region, not '{region}'."),
        ));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") || !names.contains(&"x-amz-date") {
        return Err(forbidden(
            "InvalidSignatureException",
            "SignedHeaders must include host and x-amz-date.",
        ));
    }
    let amz_date = header_str(headers, "x-amz-date").unwrap_or("");
    let Some(at) = parse_amz_date(amz_date) else {
        return Err(forbidden(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    if !amz_date.starts_with(date) || date.len() != 8 {
        return Err(forbidden(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        ));
    }
    let skew = match SystemTime::now().duration_since(at) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(forbidden("InvalidSignatureException", "Signature expired."));
    }
    let token = header_str(headers, "x-amz-security-token");
    if let Some(expected) = &st.session_token
        && (token != Some(expected.as_str()) || !names.contains(&"x-amz-security-token"))
    {
        return Err(invalid_token());
    }
    // Recompute the signature over what arrived.
    let mut signed = Vec::with_capacity(names.len());
    for n in &names {
        match header_str(headers, n) {
            Some(v) => signed.push((*n, v)),
            None => return Err(mismatch()),
        }
    }
    let host = header_str(headers, "host").unwrap_or("");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let identity = aws_credential_types::Credentials::new(
        st.access_key_id.clone(),
        st.secret_access_key.clone(),
        token.map(str::to_owned),
        None,
        "bedrock-mock",
    )
    .into();
    let Ok(params) = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&st.region)
        .name("bedrock")
        .time(at)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
    else {
        return Err(mismatch());
    };
    let params = params.into();
    let Ok(request) = aws_sigv4::http_request::SignableRequest::new(
        method.as_str(),
        format!("http://{host}{path}"),
        signed.into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(body),
    ) else {
        return Err(mismatch());
    };
    let Ok(output) = aws_sigv4::http_request::sign(request, &params) else {
        return Err(mismatch());
    };
    let (instructions, _) = output.into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| *k == "authorization")
        .map(|(_, v)| v.to_owned());
    if expected.as_deref() == Some(authz) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

fn mismatch() -> Box<Response> {
    forbidden(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service \
         documentation for details.",
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
}

async fn handle(
    State(st): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.recorder.record(RecordedRequest {
        method: method.as_str().to_owned(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: parsed.clone(),
    });
    let segments: Vec<&str> = uri.path().split('/').collect();
    let (model, op) = match segments[..] {
        ["", "model", id, op] if method == Method::POST => {
            let op = match op {
                "converse" => Operation::Converse,
                "converse-stream" => Operation::ConverseStream,
                "invoke" => Operation::Invoke,
                _ => return unknown_operation(),
            };
            match percent_decode(id) {
                Some(m) if !m.is_empty() => (m, op),
                _ => return *validation("The provided model identifier is invalid."),
            }
        }
        _ => return unknown_operation(),
    };
    if let Err(resp) = authenticate(&st, &method, &uri, &headers, &body) {
        return *resp;
    }
    let request_id = format!(
        "5e1f0c0d-0000-4000-8000-{:012}",
        st.request_ids.fetch_add(1, Ordering::SeqCst) + 1
    );
    let fault = match st.recorder.next_fault() {
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = match body.get("__type").and_then(Value::as_str) {
                Some(name) => aws_error(
                    status,
                    name,
                    body.get("message").and_then(Value::as_str).unwrap_or(""),
                ),
                None => (status, axum::Json(body)).into_response(),
            };
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, s.to_string().parse().expect("digits"));
            }
            return resp;
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::TruncatedJson) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"output":{"message":{"role":"assistant","content":[{"te"#,
            )
                .into_response();
        }
        other => other,
    };
    let mut resp = match op {
        Operation::Converse => match answer(&parsed) {
            Ok(a) => axum::Json(converse_response(&a)).into_response(),
            Err(resp) => return *resp,
        },
        Operation::ConverseStream => match answer(&parsed) {
            Ok(a) => {
                let stream_fault = st
                    .stream_faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_front();
                converse_stream(&st, &a, fault, stream_fault)
            }
            Err(resp) => return *resp,
        },
        Operation::Invoke => match invoke(&model, &parsed) {
            Ok(r) => r,
            Err(resp) => return *resp,
        },
    };
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

fn unknown_operation() -> Response {
    aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", "")
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The text of Converse content blocks, joined by spaces.
fn blocks_text(content: &Value) -> String {
    content
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
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

fn mock_input(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            out.insert(k.clone(), placeholder(v));
        }
    }
    Value::Object(out)
}

/// The answer's content, in order.
struct Answer {
    reasoning: Option<(String, String)>,
    text: Option<String>,
    tool: Option<(String, String, Value)>,
    input_tokens: u64,
    output_tokens: u64,
}

impl Answer {
    fn stop_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    fn usage(&self) -> Value {
        json!({"inputTokens": self.input_tokens, "outputTokens": self.output_tokens,
            "totalTokens": self.input_tokens + self.output_tokens})
    }
}

/// Validates a Converse body as Bedrock does and decides the answer.
fn answer(req: &Value) -> Result<Answer, Box<Response>> {
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err(validation(
            "Malformed input request: #: required key [messages] not found or empty",
        ));
    };
    let mut has_tool_blocks = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            return Err(validation(&format!(
                "Malformed input request: messages[{i}].role must be user or assistant"
            )));
        }
        if i == 0 && role != "user" {
            return Err(validation("A conversation must start with a user message."));
        }
        if i > 0 && messages[i - 1]["role"] == role {
            return Err(validation(
                "A conversation must alternate between user and assistant roles.",
            ));
        }
        let Some(blocks) = m["content"].as_array().filter(|b| !b.is_empty()) else {
            return Err(validation(&format!(
                "The content field in the Message object at messages.{i} is empty."
            )));
        };
        for b in blocks {
            if b.get("toolUse").is_some() || b.get("toolResult").is_some() {
                has_tool_blocks = true;
            }
            if let Some(img) = b.get("image")
                && (!matches!(
                    img["format"].as_str(),
                    Some("png" | "jpeg" | "gif" | "webp")
                ) || !img["source"]["bytes"].is_string())
            {
                return Err(validation(
                    "The image block needs a format and source bytes.",
                ));
            }
        }
    }
    let tools: Vec<&Value> = req["toolConfig"]["tools"]
        .as_array()
        .map(|t| t.iter().filter(|t| t.get("toolSpec").is_some()).collect())
        .unwrap_or_default();
    if has_tool_blocks && tools.is_empty() {
        return Err(validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }
    let system: String = blocks_text(&req["system"]);
    let input_tokens = words(&system)
        + messages
            .iter()
            .map(|m| words(&blocks_text(&m["content"])))
            .sum::<u64>();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| blocks_text(&m["content"]))
        .unwrap_or_default();
    let reasoning =
        (req["additionalModelRequestFields"]["thinking"]["type"] == "enabled").then(|| {
            (
                format!("The user said: {last_user}"),
                "EqQBCkgIARABGAIiQG1vY2stYmVkcm9jay1zaWduYXR1cmU".to_owned(),
            )
        });
    let choice = &req["toolConfig"]["toolChoice"];
    let chosen = if tools.is_empty() {
        None
    } else if let Some(name) = choice["tool"]["name"].as_str() {
        tools
            .iter()
            .find(|t| t["toolSpec"]["name"] == name)
            .copied()
    } else if choice.get("any").is_some() || last_user.starts_with("call tool") {
        tools.first().copied()
    } else {
        None
    };
    let tool = chosen.map(|t| {
        (
            "tooluse_MockBedrockToolUse01".to_owned(),
            t["toolSpec"]["name"].as_str().unwrap_or("tool").to_owned(),
            mock_input(&t["toolSpec"]["inputSchema"]["json"]),
        )
    });
    let text = tool.is_none().then(|| last_user.clone());
    let output_tokens = reasoning.as_ref().map_or(0, |(r, _)| words(r))
        + text.as_deref().map_or(0, words)
        + tool
            .as_ref()
            .map_or(0, |(_, _, input)| words(&input.to_string()) + 1);
    Ok(Answer {
        reasoning,
        text,
        tool,
        input_tokens,
        output_tokens,
    })
}

fn converse_response(a: &Answer) -> Value {
    let mut content = Vec::new();
    if let Some((text, signature)) = &a.reasoning {
        content.push(
            json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}),
        );
    }
    if let Some(t) = &a.text {
        content.push(json!({ "text": t }));
    }
    if let Some((id, name, input)) = &a.tool {
        content.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": a.stop_reason(),
        "usage": a.usage(),
        "metrics": {"latencyMs": 42}
    })
}

/// One event-stream frame.
fn frame(headers: Vec<(&str, &str)>, payload: Vec<u8>) -> Bytes {
    let mut m = Message::new(payload);
    for (k, v) in headers {
        m = m.add_header(Header::new(
            k.to_owned(),
            HeaderValue::String(v.to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).expect("frame fits");
    Bytes::from(out)
}

/// An event frame; the payload is padded with `p` as AWS pads it.
fn event_frame(event_type: &str, mut payload: Value) -> Bytes {
    if let Some(o) = payload.as_object_mut() {
        o.insert("p".into(), json!("abcdefghijklmnopqrstuvwxyzABCDEF"));
    }
    frame(
        vec![
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().into_bytes(),
    )
}

fn exception_frame(exception_type: &str, message: &str) -> Bytes {
    frame(
        vec![
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({ "message": message }).to_string().into_bytes(),
    )
}

fn converse_stream(
    st: &MockState,
    a: &Answer,
    fault: Option<Fault>,
    stream_fault: Option<StreamFault>,
) -> Response {
    let (pieces, delay, break_after) = match fault {
        Some(Fault::SlowStream { chunks, delay }) => (chunks, delay, None),
        Some(Fault::BrokenStream { after_chunks }) => (4, Duration::ZERO, Some(after_chunks)),
        _ => (4, Duration::ZERO, None),
    };
    let mut frames = vec![event_frame("messageStart", json!({"role": "assistant"}))];
    let mut index = 0;
    if let Some((text, signature)) = &a.reasoning {
        for t in split_words(text, pieces) {
            frames.push(event_frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"text": t}}}),
            ));
        }
        frames.push(event_frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": signature}}}),
        ));
        frames.push(event_frame(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
        index += 1;
    }
    if let Some(text) = &a.text {
        for t in split_words(text, pieces) {
            frames.push(event_frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"text": t}}),
            ));
        }
        frames.push(event_frame(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
        index += 1;
    }
    if let Some((id, name, input)) = &a.tool {
        frames.push(event_frame(
            "contentBlockStart",
            json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
        ));
        let chars: Vec<char> = input.to_string().chars().collect();
        let size = chars.len().div_ceil(pieces.max(1)).max(1);
        for part in chars.chunks(size) {
            frames.push(event_frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": part.iter().collect::<String>()}}}),
            ));
        }
        frames.push(event_frame(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
    }
    frames.push(event_frame(
        "messageStop",
        json!({"stopReason": a.stop_reason()}),
    ));
    frames.push(event_frame(
        "metadata",
        json!({"usage": a.usage(), "metrics": {"latencyMs": 42}}),
    ));
    match stream_fault {
        Some(StreamFault::Exception {
            after_events,
            exception_type,
            message,
        }) => {
            frames.truncate(after_events);
            frames.push(exception_frame(&exception_type, &message));
        }
        Some(StreamFault::CorruptFrame { after_events }) => {
            frames.truncate(after_events + 1);
            if let Some(last) = frames.last_mut() {
                let mut bytes = last.to_vec();
                // Flip a payload byte: the message CRC (the last 4 bytes) no longer matches.
                let at = bytes.len().saturating_sub(6);
                bytes[at] ^= 0x20;
                *last = Bytes::from(bytes);
            }
        }
        None => {}
    }
    if let Some(n) = break_after {
        frames.truncate(n + 1);
    }
    eventstream_body(&st.recorder, frames, 1, delay, break_after.is_some())
}

/// An `application/vnd.amazon.eventstream` response sending `frames`, counted in
/// `recorder` as completed or cancelled; `delay` comes before each frame after the first
/// `eager` ones; `broken` ends the body with a connection error.
fn eventstream_body(
    recorder: &Arc<Recorder>,
    frames: Vec<Bytes>,
    eager: usize,
    delay: Duration,
    broken: bool,
) -> Response {
    recorder.streams_started.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard {
        recorder: recorder.clone(),
        completed: false,
    };
    let stream = futures_util::stream::unfold(
        (frames.into_iter(), guard, 0usize),
        move |(mut it, mut guard, sent): (_, StreamGuard, usize)| async move {
            match it.next() {
                Some(b) => {
                    if sent >= eager && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Some((Ok::<_, std::io::Error>(b), (it, guard, sent + 1)))
                }
                None if broken => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.completed = true;
                    Some((
                        Err(std::io::Error::other("injected broken stream")),
                        (it, guard, sent),
                    ))
                }
                None => {
                    guard.finish();
                    None
                }
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")
        .body(axum::body::Body::from_stream(stream))
        .expect("valid response")
}

/// InvokeModel for the embedding models the mock knows (Titan text, Cohere Embed).
fn invoke(model: &str, req: &Value) -> Result<Response, Box<Response>> {
    let (body, tokens) = if model.contains("amazon.titan-embed-text") {
        let Some(text) = req["inputText"].as_str() else {
            return Err(validation(
                "Malformed input request: #: required key [inputText] not found",
            ));
        };
        let v2 = model.contains("titan-embed-text-v2");
        let dims = match (v2, req.get("dimensions")) {
            (_, None) => {
                if v2 {
                    1024
                } else {
                    1536
                }
            }
            (true, Some(d)) if matches!(d.as_u64(), Some(256 | 512 | 1024)) => {
                d.as_u64().unwrap_or(1024) as usize
            }
            _ => {
                return Err(validation(
                    "Malformed input request: #/dimensions: 256, 512 or 1024 expected",
                ));
            }
        };
        let tokens = words(text);
        (
            json!({"embedding": mock_vector(text, dims), "inputTextTokenCount": tokens}),
            tokens,
        )
    } else if model.contains("cohere.embed") {
        let Some(texts) = req["texts"]
            .as_array()
            .filter(|t| !t.is_empty() && t.len() <= 96)
        else {
            return Err(validation(
                "Malformed input request: #/texts: expected 1 to 96 items",
            ));
        };
        if req["input_type"].as_str().is_none() {
            return Err(validation(
                "Malformed input request: #: required key [input_type] not found",
            ));
        }
        let texts: Vec<&str> = texts.iter().filter_map(Value::as_str).collect();
        let tokens = texts.iter().map(|t| words(t)).sum();
        let vectors: Vec<Vec<f32>> = texts.iter().map(|t| mock_vector(t, 1024)).collect();
        (
            json!({"embeddings": vectors, "id": "mock-cohere-embed-0001",
                "response_type": "embeddings_floats", "texts": texts}),
            tokens,
        )
    } else {
        return Err(validation(
            "The provided model doesn't support this InvokeModel body in the mock.",
        ));
    };
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(
        "x-amzn-bedrock-input-token-count",
        tokens.to_string().parse().expect("digits"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20231114T221320Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_700_000_000
        );
        let t = parse_amz_date("20000229T000000Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 951_782_400);
        assert!(parse_amz_date("2023-11-14T22:13:20Z").is_none());
        assert!(parse_amz_date("20231314T221320Z").is_none());
    }

    #[test]
    fn percent_decoding_is_strict() {
        assert_eq!(percent_decode("a%3Ab%2Fc").as_deref(), Some("a:b/c"));
        assert!(percent_decode("a%3").is_none());
        assert!(percent_decode("a%zz").is_none());
    }

    #[test]
    fn frames_round_trip_and_corruption_is_detected() {
        let f = event_frame("messageStart", json!({"role": "assistant"}));
        let m = aws_smithy_eventstream::frame::read_message_from(f.clone()).unwrap();
        assert!(
            m.headers()
                .iter()
                .any(|h| h.name().as_str() == ":event-type")
        );
        let mut bad = f.to_vec();
        let at = bad.len() - 6;
        bad[at] ^= 0x20;
        assert!(aws_smithy_eventstream::frame::read_message_from(Bytes::from(bad)).is_err());
    }
}
