//! OpenAI's Responses API (`POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`),
//! the legacy Completions API (`POST /v1/completions`) and `GET /v1/models/{id}`.
//!
//! OpenAI upstreams: when every deployment of the group a `/v1/responses` call routes to
//! passes the Responses API through (`Provider::passthrough_supported`: `openai/`, Azure's
//! v1 API), the client's body goes upstream as is (only `model` becomes the deployment's,
//! and llmux's `tags` directive is taken out) through `Router::passthrough` (retries,
//! fallbacks, cooldowns), and the upstream's JSON bytes or SSE events come back unchanged;
//! built-in tools, `previous_response_id` and `store` are then the upstream's business.
//! The call is metered like any other (usage from the Response object's `usage`).
//!
//! Otherwise both generation endpoints decode their format into a canonical request
//! (`llmux_inbound::responses` / `llmux_inbound::completions`), take the one accounting
//! path every chat format shares (`call::run_chat`: auth, access, routing, metering), and
//! encode the answer or the chunk stream back into their format. Errors are OpenAI's.
//!
//! Conversation state: unless the request says `store: false`, a response is kept with
//! the conversation it ends (canonical messages, instructions excluded), keyed by its id
//! and scoped to the caller (a virtual key's id; the master key; or everyone on an open
//! gateway). A later `previous_response_id` continues it. It lives in the gateway's store
//! when there is one, else in a bounded in-memory map ([`MEMORY_MAX_RESPONSES`],
//! [`MEMORY_MAX_BYTES`]; oldest evicted first) that a restart empties.
//!
//! Must not: know any provider's wire format.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, LazyLock, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use llmux_core::provider::{
    PassthroughBody, PassthroughEvent, PassthroughKind, PassthroughRequest, PassthroughStream,
};
use llmux_core::sse::{DONE_EVENT, event, json_event};
use llmux_core::{Error, ErrorKind, JsonObject, Message, ModelCard};
use llmux_inbound::completions;
use llmux_inbound::responses::{
    DecodedRequest, ResponseContext, ResponseStream, StreamEvent, answer_message, decode_request,
    encode_response,
};
use llmux_store::{Store, StoredResponse};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::access::Principal;
use crate::call::{
    ChatOutcome, Failed, MeteredStream, begin, end, record_failure, route_failure, run_chat,
};
use crate::error::ApiError;
use crate::handlers::{
    AppState, Shared, admit, authenticate, context, error_response, json_response, parse,
    request_id, route_headers, sse_body, with_id,
};
use crate::metering::{CallMeta, Outcome, estimate_tokens, tags};

/// Responses kept at most in memory when the gateway has no store.
pub(crate) const MEMORY_MAX_RESPONSES: usize = 4096;
/// Bytes (JSON of the responses and their conversations) kept at most in memory when the
/// gateway has no store.
pub(crate) const MEMORY_MAX_BYTES: usize = 128 * 1024 * 1024;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    let mut r = Router::new();
    for prefix in ["/v1", ""] {
        r = r
            .route(&format!("{prefix}/responses"), post(create))
            .route(
                &format!("{prefix}/responses/{{id}}"),
                get(retrieve).delete(remove),
            )
            .route(&format!("{prefix}/completions"), post(legacy_completions))
            // Model names may hold slashes (`openai/gpt-4o`).
            .route(&format!("{prefix}/models/{{*id}}"), get(model));
    }
    r
}

// ------------------------------------------------------------------ conversation state

/// The caller's scope: whose stored responses it may read.
fn owner(p: &Principal) -> String {
    match p {
        Principal::Key(e) => format!("key:{}", e.key.key_id),
        Principal::Master => "master".to_owned(),
        Principal::Open => "open".to_owned(),
    }
}

/// Where stored responses live.
#[derive(Clone)]
enum States {
    Store(Store),
    Memory,
}

struct MemoryEntry {
    owner: String,
    response: Value,
    conversation: Vec<Message>,
    bytes: usize,
}

#[derive(Default)]
struct Memory {
    entries: HashMap<String, Arc<MemoryEntry>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Memory {
    fn insert(&mut self, id: String, entry: MemoryEntry) {
        self.bytes += entry.bytes;
        if let Some(old) = self.entries.insert(id.clone(), Arc::new(entry)) {
            self.bytes -= old.bytes;
        } else {
            self.order.push_back(id);
        }
        while self.entries.len() > MEMORY_MAX_RESPONSES || self.bytes > MEMORY_MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes;
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(e) = self.entries.remove(id) {
            self.bytes -= e.bytes;
            self.order.retain(|o| o != id);
        }
    }
}

static MEMORY: LazyLock<Mutex<Memory>> = LazyLock::new(|| Mutex::new(Memory::default()));

fn memory() -> std::sync::MutexGuard<'static, Memory> {
    MEMORY.lock().unwrap_or_else(|p| p.into_inner())
}

fn store_unavailable(e: &llmux_store::StoreError) -> Error {
    tracing::error!(error = %e, "response store failed");
    Error::new(
        ErrorKind::UpstreamUnavailable,
        "The response store is unavailable; try again shortly.",
    )
    .with_code("store_unavailable")
}

fn response_not_found(id: &str) -> Error {
    let id: String = id.chars().take(100).collect();
    Error::new(
        ErrorKind::NotFound,
        format!("Response with id '{id}' not found."),
    )
}

impl States {
    fn of(st: &AppState) -> Self {
        st.access
            .as_ref()
            .map_or(Self::Memory, |a| Self::Store(a.store.clone()))
    }

    /// The stored response `id` of `owner`: (Response object, conversation).
    async fn get(&self, id: &str, owner: &str) -> Result<Option<(Value, Vec<Message>)>, Error> {
        match self {
            Self::Store(s) => {
                let Some(r) = s
                    .get_response(id, owner)
                    .await
                    .map_err(|e| store_unavailable(&e))?
                else {
                    return Ok(None);
                };
                let conversation = serde_json::from_value(r.conversation).map_err(|e| {
                    Error::internal(format!("stored conversation of {id} is unreadable: {e}"))
                })?;
                Ok(Some((r.response, conversation)))
            }
            Self::Memory => Ok(memory()
                .entries
                .get(id)
                .filter(|e| e.owner == owner)
                .map(|e| (e.response.clone(), e.conversation.clone()))),
        }
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, Error> {
        match self {
            Self::Store(s) => s
                .delete_response(id, owner)
                .await
                .map_err(|e| store_unavailable(&e)),
            Self::Memory => {
                let mut m = memory();
                if m.entries.get(id).is_some_and(|e| e.owner == owner) {
                    m.remove(id);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
        }
    }

    async fn put(
        &self,
        id: &str,
        owner: &str,
        model: &str,
        response: &Value,
        conversation: Vec<Message>,
    ) -> Result<(), Error> {
        match self {
            Self::Store(s) => {
                let conversation = serde_json::to_value(&conversation)
                    .map_err(|e| Error::internal(format!("encode conversation: {e}")))?;
                let r = StoredResponse {
                    response_id: id.to_owned(),
                    owner: owner.to_owned(),
                    model: model.to_owned(),
                    response: response.clone(),
                    conversation,
                    created_at_ms: llmux_store::now_ms(),
                };
                s.put_response(&r).await.map_err(|e| store_unavailable(&e))
            }
            Self::Memory => {
                let bytes = serde_json::to_vec(&conversation).map_or(0, |v| v.len())
                    + serde_json::to_vec(response).map_or(0, |v| v.len());
                memory().insert(
                    id.to_owned(),
                    MemoryEntry {
                        owner: owner.to_owned(),
                        response: response.clone(),
                        conversation,
                        bytes,
                    },
                );
                Ok(())
            }
        }
    }
}

/// What keeping a response needs once the answer is known.
struct Keep {
    states: States,
    owner: String,
    decoded: DecodedRequest,
    history: Vec<Message>,
}

impl Keep {
    /// Keep the response and its conversation. A failure is logged, not returned: the
    /// answer was produced (and paid for) and still reaches the client; only a later
    /// `previous_response_id` naming it will not be found.
    async fn save(self, cx: &ResponseContext, response: &Value, answer: Message) {
        let conversation = self.decoded.conversation(&self.history, answer);
        if let Err(e) = self
            .states
            .put(&cx.id, &self.owner, &cx.model, response, conversation)
            .await
        {
            tracing::warn!(error = %e, response_id = %cx.id, "could not keep the response");
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ------------------------------------------------------------------ POST /v1/responses

async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (st, id, mut meta) = begin(&shared, &headers, "responses");
    let span = tracing::info_span!("call", request_id = %meta.request_id);
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let body: Value = parse(body).map_err(|e| (e, None))?;
        if let Value::Object(obj) = &body
            && passes_through(&st, &principal, obj)
        {
            let Value::Object(obj) = body else {
                unreachable!("checked above")
            };
            return passthrough(&st, &principal, &headers, obj, &id, &mut meta).await;
        }
        let decoded = decode_request(body).map_err(|e| (e, None))?;
        let owner = owner(&principal);
        let states = States::of(&st);
        let history = match &decoded.previous_response_id {
            None => Vec::new(),
            Some(prev) => match states.get(prev, &owner).await.map_err(|e| (e, None))? {
                Some((_, conversation)) => conversation,
                None => {
                    let prev: String = prev.chars().take(100).collect();
                    let e = Error::bad_request(format!(
                        "Previous response with id '{prev}' not found."
                    ))
                    .with_param("previous_response_id")
                    .with_code("previous_response_not_found");
                    return Err((e, None));
                }
            },
        };
        let req = decoded.to_chat(&history);
        let cx = ResponseContext {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            created_at: now_secs(),
            model: decoded.chat.model.clone(),
            echo: decoded.echo.clone(),
        };
        let keep = decoded.store.then(|| Keep {
            states,
            owner,
            decoded,
            history,
        });
        match run_chat(&st, &principal, &headers, req, &id, &mut meta, Vec::new()).await? {
            ChatOutcome::Full {
                response,
                trace,
                headers,
            } => {
                let body = encode_response(&response, &cx);
                if let Some(k) = keep {
                    k.save(&cx, &body, answer_message(&response)).await;
                }
                let mut resp = json_response(&body).map_err(|e| (e, Some(trace)))?;
                resp.headers_mut().extend(headers);
                Ok::<_, Failed>(resp)
            }
            ChatOutcome::Stream { chunks, headers } => {
                let mut resp = sse_body(response_events(chunks, cx, keep));
                resp.headers_mut().extend(headers);
                Ok(resp)
            }
        }
    }
    .instrument(span)
    .await;
    let resp = resp.unwrap_or_else(|(e, trace)| {
        record_failure(&st, &meta, &e, trace.as_ref(), false);
        error_response(e, trace.as_ref())
    });
    end(&mut meta, resp, id).await
}

// ------------------------------------------------- POST /v1/responses, passed through

/// Whether this request goes to the upstream as is: the group its model routes to (after
/// the key's alias) passes the Responses API through on every deployment.
fn passes_through(st: &AppState, principal: &Principal, body: &JsonObject) -> bool {
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        return false;
    };
    let target = match principal {
        Principal::Key(e) => e.alias_target(model).unwrap_or(model),
        _ => model,
    };
    st.models
        .router
        .passthrough_supported(target, PassthroughKind::Responses)
}

/// Attribute, admit, route and meter one passed-through Responses call; the upstream's
/// answer goes back as is (JSON bytes, or its events one by one).
async fn passthrough(
    st: &Arc<AppState>,
    principal: &Principal,
    headers: &HeaderMap,
    mut body: JsonObject,
    id: &HeaderValue,
    meta: &mut CallMeta,
) -> Result<Response, Failed> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    meta.model_group.clone_from(&model);
    meta.end_user = body.get("user").and_then(Value::as_str).map(str::to_owned);
    let header_tags = headers.get("x-llmux-tags").and_then(|v| v.to_str().ok());
    let metadata = body.get("metadata").and_then(Value::as_object);
    meta.tags = tags(&body, metadata, header_tags).map_err(|e| (e, None))?;
    if let Some(group) = admit(st, principal, &model, meta)
        .await
        .map_err(|e| (e, None))?
    {
        body.insert("model".to_owned(), Value::String(group));
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    if stream {
        meta.operation = "responses_stream";
    }
    let in_flight = llmux_observe::in_flight(&meta.model_group);
    let prompt_chars = text_chars(&body);
    let req = PassthroughRequest {
        kind: PassthroughKind::Responses,
        body,
        stream,
    };
    let routed = st
        .models
        .router
        .passthrough(req, &context(id))
        .await
        .map_err(route_failure)?;
    let trace = routed.trace.snapshot();
    let answer = routed.value;
    match answer.body {
        PassthroughBody::Json(bytes) => {
            let cost = meta.finish(
                &st.models,
                st.models.meter(),
                Outcome {
                    trace: Some(&trace),
                    provider_model: answer.model.as_deref(),
                    usage: answer.usage.as_ref(),
                    status: 200,
                    ..Outcome::default()
                },
            );
            drop(in_flight);
            let mut resp = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response();
            let h = route_headers(st, meta, &trace, answer.model.as_deref(), cost);
            resp.headers_mut().extend(h);
            Ok(resp)
        }
        PassthroughBody::Events(events) => {
            let h = route_headers(st, meta, &trace, None, None);
            let meta = std::mem::replace(meta, CallMeta::new(String::new(), "responses_stream"));
            let meter = EventMeter {
                st: st.clone(),
                meta,
                trace,
                usage: None,
                model: None,
                prompt_chars,
                output_chars: 0,
                first_event_us: None,
                last_sequence: None,
                error: None,
                done: false,
                _in_flight: in_flight,
            };
            let mut resp = sse_body(forwarded_events(events, meter));
            resp.headers_mut().extend(h);
            Ok(resp)
        }
    }
}

/// Characters of the strings in a request body, `model` excluded.
fn text_chars(body: &JsonObject) -> u64 {
    fn walk(v: &Value) -> u64 {
        match v {
            Value::String(s) => s.chars().count() as u64,
            Value::Array(a) => a.iter().map(walk).sum(),
            Value::Object(o) => o.values().map(walk).sum(),
            _ => 0,
        }
    }
    body.iter()
        .filter(|(k, _)| k.as_str() != "model")
        .map(|(_, v)| walk(v))
        .sum()
}

/// Meters a passed-through event stream and emits its record exactly once, when dropped:
/// status 200 when the upstream ended it, the error's status when it broke, 499 when the
/// client went away. Usage is the final Response object's (`response.completed`), else
/// estimated from the request's text and the `delta`s that passed.
struct EventMeter {
    st: Arc<AppState>,
    meta: CallMeta,
    trace: llmux_router::Trace,
    usage: Option<llmux_core::Usage>,
    model: Option<String>,
    prompt_chars: u64,
    output_chars: u64,
    first_event_us: Option<u64>,
    last_sequence: Option<u64>,
    error: Option<ErrorKind>,
    done: bool,
    _in_flight: llmux_observe::InFlight,
}

impl EventMeter {
    fn observe(&mut self, ev: &PassthroughEvent) {
        if self.first_event_us.is_none() {
            self.first_event_us = Some(self.meta.started.elapsed().as_micros() as u64);
        }
        if let Some(u) = &ev.usage {
            self.usage = Some(u.clone());
        }
        if let Some(m) = &ev.model {
            self.model = Some(m.clone());
        }
        if let Some(n) = sequence_number(&ev.event.data) {
            self.last_sequence = Some(n);
        }
        if self.usage.is_none()
            && ev
                .event
                .event
                .as_deref()
                .is_some_and(|e| e.ends_with(".delta"))
            && let Ok(v) = serde_json::from_str::<Value>(&ev.event.data)
            && let Some(d) = v.get("delta").and_then(Value::as_str)
        {
            self.output_chars += d.chars().count() as u64;
        }
    }
}

impl Drop for EventMeter {
    fn drop(&mut self) {
        let estimated = self.usage.is_none();
        let usage = self.usage.take().unwrap_or_else(|| {
            llmux_core::Usage::new(
                estimate_tokens(self.prompt_chars),
                estimate_tokens(self.output_chars),
            )
        });
        let status = match (self.error, self.done) {
            (Some(k), _) => k.http_status(),
            (None, true) => 200,
            (None, false) => 499,
        };
        self.meta.finish(
            &self.st.models,
            self.st.models.meter(),
            Outcome {
                trace: Some(&self.trace),
                provider_model: self.model.as_deref(),
                usage: Some(&usage),
                usage_estimated: estimated,
                status,
                error_kind: self.error,
                ttft_us: self.first_event_us,
                ..Outcome::default()
            },
        );
    }
}

/// The `sequence_number` of a Responses event, read without parsing the event.
fn sequence_number(data: &str) -> Option<u64> {
    const KEY: &str = "\"sequence_number\":";
    let at = data.rfind(KEY)? + KEY.len();
    let digits: String = data[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The upstream's events as they come (name and data untouched), metered on the way. A
/// stream that breaks ends with an `error` event (OpenAI's streaming error shape).
fn forwarded_events(
    events: PassthroughStream,
    meter: EventMeter,
) -> impl futures_core::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold(Some((events, meter)), |state| async move {
        let (mut events, mut meter) = state?;
        match events.next().await {
            Some(Ok(ev)) => {
                meter.observe(&ev);
                let bytes = event(ev.event.event.as_deref(), &ev.event.data);
                Some((Ok(bytes), Some((events, meter))))
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "passed-through stream failed after it started");
                meter.error = Some(e.kind());
                let body = e.to_body();
                let data = json!({
                    "type": "error",
                    "code": body.error.code,
                    "message": body.error.message,
                    "param": body.error.param,
                    "sequence_number": meter.last_sequence.map_or(0, |n| n + 1),
                });
                Some((Ok(event(Some("error"), &data.to_string())), None))
            }
            None => {
                meter.done = true;
                None
            }
        }
    })
}

fn sse_events(events: &[StreamEvent]) -> Bytes {
    let mut out = Vec::new();
    for e in events {
        out.extend_from_slice(&event(Some(e.event), &e.data.to_string()));
    }
    Bytes::from(out)
}

/// The Responses event stream of a routed chunk stream: the opening events at once, each
/// chunk's events as it arrives, and at the end the closing events (after the response is
/// kept, so its id can be continued as soon as the client sees `response.completed`). A
/// stream that breaks ends with `response.failed`. The call's record is emitted when the
/// chunk stream is dropped: at the end, or when the client goes away.
fn response_events(
    chunks: MeteredStream,
    cx: ResponseContext,
    keep: Option<Keep>,
) -> impl futures_core::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    struct Run {
        chunks: MeteredStream,
        machine: ResponseStream,
        cx: ResponseContext,
        keep: Option<Keep>,
        started: bool,
    }
    let run = Run {
        chunks,
        machine: ResponseStream::new(cx.clone()),
        cx,
        keep,
        started: false,
    };
    futures_util::stream::unfold(Some(run), |run| async move {
        let mut run = run?;
        if !run.started {
            run.started = true;
            let bytes = sse_events(&run.machine.start());
            return Some((Ok(bytes), Some(run)));
        }
        loop {
            match run.chunks.next().await {
                Some(Ok(chunk)) => {
                    let events = run.machine.push(&chunk);
                    if !events.is_empty() {
                        return Some((Ok(sse_events(&events)), Some(run)));
                    }
                }
                Some(Err(e)) => {
                    let bytes = sse_events(&run.machine.fail(&e));
                    return Some((Ok(bytes), None));
                }
                None => {
                    let Run {
                        chunks,
                        mut machine,
                        cx,
                        keep,
                        ..
                    } = run;
                    // Metered now (the stream ended), before the client sees the end.
                    drop(chunks);
                    let events = machine.finish();
                    if let Some(k) = keep {
                        k.save(&cx, &machine.response(), machine.answer()).await;
                    }
                    return Some((Ok(sse_events(&events)), None));
                }
            }
        }
    })
}

// ------------------------------------------------------------- GET/DELETE /v1/responses/{id}

/// The caller of a `GET`/`DELETE`: authenticated, and (a virtual key) still active.
async fn caller(st: &AppState, headers: &HeaderMap) -> Result<String, Error> {
    let p = authenticate(st, headers).await?;
    if let Principal::Key(e) = &p
        && !e.key.is_active_at(llmux_store::now_ms())
    {
        return Err(
            Error::new(ErrorKind::Auth, "This API key is blocked or expired.")
                .with_code("invalid_api_key"),
        );
    }
    Ok(owner(&p))
}

async fn retrieve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(rid): Path<String>,
) -> Response {
    let st = shared.load();
    let id = request_id(&headers);
    let resp = async {
        let owner = caller(&st, &headers).await?;
        let (response, _) = States::of(&st)
            .get(&rid, &owner)
            .await?
            .ok_or_else(|| response_not_found(&rid))?;
        json_response(&response)
    }
    .await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(rid): Path<String>,
) -> Response {
    let st = shared.load();
    let id = request_id(&headers);
    let resp = async {
        let owner = caller(&st, &headers).await?;
        if !States::of(&st).delete(&rid, &owner).await? {
            return Err(response_not_found(&rid));
        }
        json_response(&json!({"id": rid, "object": "response", "deleted": true}))
    }
    .await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

// ------------------------------------------------------------------ POST /v1/completions

async fn legacy_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (st, id, mut meta) = begin(&shared, &headers, "completions");
    let span = tracing::info_span!("call", request_id = %meta.request_id);
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let body: Value = parse(body).map_err(|e| (e, None))?;
        let req = completions::decode_request(body).map_err(|e| (e, None))?;
        let wants_usage = req.wants_stream_usage();
        match run_chat(&st, &principal, &headers, req, &id, &mut meta, Vec::new()).await? {
            ChatOutcome::Full {
                response,
                trace,
                headers,
            } => {
                let body = completions::encode_response(&response);
                let mut resp = json_response(&body).map_err(|e| (e, Some(trace)))?;
                resp.headers_mut().extend(headers);
                Ok::<_, Failed>(resp)
            }
            ChatOutcome::Stream { chunks, headers } => {
                let mut resp = sse_body(completion_events(chunks, wants_usage));
                resp.headers_mut().extend(headers);
                Ok(resp)
            }
        }
    }
    .instrument(span)
    .await;
    let resp = resp.unwrap_or_else(|(e, trace)| {
        record_failure(&st, &meta, &e, trace.as_ref(), false);
        error_response(e, trace.as_ref())
    });
    end(&mut meta, resp, id).await
}

/// `text_completion` chunks as they arrive, the usage chunk (with `usage.cost` in USD)
/// only when asked for, an `error` event when the stream breaks, `[DONE]` at the end.
fn completion_events(
    chunks: MeteredStream,
    wants_usage: bool,
) -> impl futures_core::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold((chunks, false), move |(mut chunks, finished)| async move {
        if finished {
            return None;
        }
        loop {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    let Some(mut v) = completions::encode_chunk(&chunk, wants_usage) else {
                        continue;
                    };
                    if let (Some(u), Some(Some(cost))) = (v.get_mut("usage"), chunks.cost()) {
                        u["cost"] = json!(cost.to_usd_f64());
                    }
                    let bytes = json_event(&v).unwrap_or_default();
                    return Some((Ok(bytes), (chunks, false)));
                }
                Some(Err(e)) => {
                    let bytes = json_event(&e.to_body()).unwrap_or_default();
                    return Some((Ok(bytes), (chunks, true)));
                }
                None => return Some((Ok(Bytes::from_static(DONE_EVENT)), (chunks, true))),
            }
        }
    })
}

// ------------------------------------------------------------------ GET /v1/models/{id}

/// The model card of a served name: a model group (owned by its first deployment's
/// provider), an alias (owned by `llmux`, as in `GET /v1/models`), or a name a wildcard
/// route serves (owned by the wildcard's provider); else 404 `model_not_found`.
async fn model(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(mid): Path<String>,
) -> Response {
    let st = shared.load();
    let id = request_id(&headers);
    let resp = async {
        authenticate(&st, &headers).await?;
        let router = &st.models.router;
        if !router.serves(&mid) {
            let shown: String = mid.chars().take(200).collect();
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("The model '{shown}' does not exist or is not served by this gateway."),
            )
            .with_param("model")
            .with_code("model_not_found"));
        }
        let owner = if router.model_groups().any(|g| g == mid) {
            router
                .deployments(&mid)
                .and_then(|d| d.first())
                .map_or("llmux", |d| d.provider.name())
        } else if router.aliases().any(|(a, _)| a == mid) {
            "llmux"
        } else {
            st.models
                .wildcards()
                .filter_map(|(pattern, provider)| {
                    let prefix = pattern.strip_suffix('*')?;
                    mid.starts_with(prefix).then_some((prefix.len(), provider))
                })
                .max_by_key(|(len, _)| *len)
                .map_or("llmux", |(_, p)| p)
        };
        json_response(&ModelCard::new(mid.clone(), owner))
    }
    .await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: &str, bytes: usize) -> MemoryEntry {
        MemoryEntry {
            owner: owner.to_owned(),
            response: json!({}),
            conversation: Vec::new(),
            bytes,
        }
    }

    #[test]
    fn sequence_numbers_and_prompt_text_are_read_without_decoding_events() {
        let data = r#"{"type":"response.output_text.delta","delta":"x","sequence_number": 12}"#;
        assert_eq!(sequence_number(data), Some(12));
        assert_eq!(sequence_number(r#"{"type":"x"}"#), None);
        let Value::Object(body) = json!({"model": "long-model-name", "input": "abcd",
            "tools": [{"type": "web_search"}], "max_output_tokens": 5})
        else {
            unreachable!()
        };
        assert_eq!(text_chars(&body), 4 + 10);
    }

    #[test]
    fn the_memory_map_evicts_the_oldest_past_its_bounds() {
        let mut m = Memory::default();
        for i in 0..MEMORY_MAX_RESPONSES + 2 {
            m.insert(format!("r{i}"), entry("o", 10));
        }
        assert_eq!(m.entries.len(), MEMORY_MAX_RESPONSES);
        assert!(!m.entries.contains_key("r0") && !m.entries.contains_key("r1"));
        assert!(m.entries.contains_key("r2"));
        assert_eq!(m.bytes, MEMORY_MAX_RESPONSES * 10);

        let mut m = Memory::default();
        m.insert("a".into(), entry("o", MEMORY_MAX_BYTES / 2));
        m.insert("b".into(), entry("o", MEMORY_MAX_BYTES / 2));
        m.insert("c".into(), entry("o", 1));
        assert!(
            !m.entries.contains_key("a"),
            "over the byte bound: the oldest goes"
        );
        assert_eq!(m.bytes, MEMORY_MAX_BYTES / 2 + 1);
        m.remove("b");
        assert_eq!(m.bytes, 1);
        assert_eq!(m.order, VecDeque::from(["c".to_owned()]));
    }
}
