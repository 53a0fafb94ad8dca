//! Route handlers: the request phases, in order — request id, auth, parse, resolve,
//! call the provider, shape the response.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use llmux_core::sse::{DONE_EVENT, json_event};
use llmux_core::{CallContext, ChatRequest, EmbeddingRequest, Error, ErrorKind, ModelList, Secret};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::metering::{CallMeta, Outcome, estimate_tokens, price};
use crate::models::{Deployment, ModelTable};
use llmux_cost::{Meter, Money};

/// What every handler shares, built once.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) models: ModelTable,
    pub(crate) master_key: Option<Secret>,
    pub(crate) meter: Meter,
}

const X_REQUEST_ID: &str = "x-request-id";

/// The request id: the client's `x-request-id` when it is sane, else a new UUID.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"))
        })
}

fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    let Some(key) = &st.master_key else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    match presented {
        None => Err(Error::new(
            ErrorKind::Auth,
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
        )),
        Some(p) if constant_time_eq(p.as_bytes(), key.expose().as_bytes()) => Ok(()),
        Some(_) => Err(Error::new(ErrorKind::Auth, "Invalid API key.")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Error> {
    let body = body.map_err(|r| {
        if r.status().as_u16() == 413 {
            Error::new(ErrorKind::PayloadTooLarge, "The request body is too large.")
        } else {
            Error::bad_request(format!("Could not read the request body: {r}"))
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "We could not parse the JSON body of your request"
        } else {
            "Invalid request body"
        };
        Error::bad_request(format!("{what}: {e}"))
    })
}

/// Attach the request id to any response, success or error.
fn with_id(mut resp: Response, id: HeaderValue) -> Response {
    resp.headers_mut().insert(X_REQUEST_ID, id);
    resp
}

fn with_deployment(resp: &mut Response, d: &Deployment, model: Option<&str>) {
    let h = resp.headers_mut();
    h.insert("x-llmux-provider", d.provider_header.clone());
    let model = model
        .filter(|m| !m.is_empty())
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or_else(|| d.model_header.clone());
    h.insert("x-llmux-model", model);
}

fn json_response<T: serde::Serialize>(value: &T) -> Result<Response, Error> {
    let body = serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("could not encode the response: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

fn context(id: &HeaderValue) -> CallContext {
    CallContext {
        request_id: id.to_str().unwrap_or_default().to_owned(),
        ..CallContext::default()
    }
}

pub(crate) async fn chat_completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = request_id(&headers);
    let mut meta = CallMeta::new(id.to_str().unwrap_or_default().to_owned(), "chat");
    let resp = match chat_inner(&st, &headers, body, &id, &mut meta).await {
        Ok(resp) => resp,
        Err((e, d)) => {
            // Auth failures are not calls: nothing to meter for a caller we do not know.
            if e.kind() != ErrorKind::Auth {
                meta.finish(
                    &st.meter,
                    Outcome {
                        deployment: d.as_deref(),
                        status: e.http_status(),
                        error_kind: Some(e.kind()),
                        ..Outcome::default()
                    },
                );
            }
            ApiError(e).into_response()
        }
    };
    with_id(resp, id)
}

type Failed = (Error, Option<Arc<Deployment>>);

async fn chat_inner(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    id: &HeaderValue,
    meta: &mut CallMeta,
) -> Result<Response, Failed> {
    authorize(st, headers).map_err(|e| (e, None))?;
    let req: ChatRequest = parse(body).map_err(|e| (e, None))?;
    meta.model_group.clone_from(&req.model);
    meta.end_user.clone_from(&req.user);
    if req.messages.is_empty() {
        let e = Error::bad_request("'messages' must contain at least one message")
            .with_param("messages");
        return Err((e, None));
    }
    let d = st.models.resolve(&req.model).map_err(|e| (e, None))?;
    let cx = context(id);
    if req.is_stream() {
        meta.operation = "chat_stream";
        let wants_usage = req.wants_stream_usage();
        let prompt_chars = prompt_chars(&req);
        let stream = match d.provider.chat_stream(req, &cx).await {
            Ok(s) => s,
            Err(e) => return Err((e, Some(d))),
        };
        let meta = std::mem::replace(meta, CallMeta::new(String::new(), "chat_stream"));
        let mut resp = sse_response(
            stream,
            wants_usage,
            StreamMeter {
                st: st.clone(),
                meta,
                deployment: d.clone(),
                usage: None,
                cost: None,
                prompt_chars,
                text_chars: 0,
                first_chunk_us: None,
                provider_model: None,
                error: None,
                done: false,
            },
        );
        with_deployment(&mut resp, &d, None);
        return Ok(resp);
    }
    let out = match d.provider.chat(req, &cx).await {
        Ok(out) => out,
        Err(e) => return Err((e, Some(d))),
    };
    let cost = meta.finish(
        &st.meter,
        Outcome {
            deployment: Some(&d),
            provider_model: Some(&out.model),
            usage: out.usage.as_ref(),
            status: 200,
            ..Outcome::default()
        },
    );
    let mut resp = json_response(&out).map_err(|e| (e, Some(d.clone())))?;
    with_deployment(&mut resp, &d, Some(&out.model));
    set_cost(&mut resp, cost);
    Ok(resp)
}

fn set_cost(resp: &mut Response, cost: Option<Money>) {
    if let Some(v) = cost.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        resp.headers_mut().insert("x-llmux-response-cost", v);
    }
}

fn prompt_chars(req: &ChatRequest) -> u64 {
    req.messages
        .iter()
        .map(|m| match &m.content {
            Some(llmux_core::MessageContent::Text(t)) => t.len() as u64,
            Some(c) => c.joined_text().len() as u64,
            None => 0,
        })
        .sum()
}

/// Follows one stream to its end (or its client's departure) and emits its record once,
/// when dropped.
struct StreamMeter {
    st: Arc<AppState>,
    meta: CallMeta,
    deployment: Arc<Deployment>,
    usage: Option<llmux_core::Usage>,
    cost: Option<Option<Money>>,
    prompt_chars: u64,
    text_chars: u64,
    first_chunk_us: Option<u64>,
    provider_model: Option<String>,
    error: Option<ErrorKind>,
    done: bool,
}

impl StreamMeter {
    fn observe(&mut self, chunk: &llmux_core::ChatChunk) {
        if self.first_chunk_us.is_none() {
            self.first_chunk_us = Some(self.meta.started.elapsed().as_micros() as u64);
            if !chunk.model.is_empty() {
                self.provider_model = Some(chunk.model.clone());
            }
        }
        for c in &chunk.choices {
            let d = &c.delta;
            let n = d.content.as_ref().map_or(0, String::len)
                + d.reasoning_content.as_ref().map_or(0, String::len)
                + d.tool_calls.as_ref().map_or(0, |t| {
                    t.iter()
                        .filter_map(|t| t.function.as_ref()?.arguments.as_ref())
                        .map(String::len)
                        .sum()
                });
            self.text_chars += n as u64;
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
            self.cost = Some(price(Some(&self.deployment), Some(u), false));
        }
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let estimated = self.usage.is_none();
        let usage = self.usage.take().unwrap_or_else(|| {
            llmux_core::Usage::new(
                estimate_tokens(self.prompt_chars),
                estimate_tokens(self.text_chars),
            )
        });
        let status = match (self.error, self.done) {
            (Some(k), _) => k.http_status(),
            (None, true) => 200,
            (None, false) => 499,
        };
        self.meta.finish(
            &self.st.meter,
            Outcome {
                deployment: Some(&self.deployment),
                provider_model: self.provider_model.as_deref(),
                usage: Some(&usage),
                usage_estimated: estimated,
                status,
                error_kind: self.error,
                ttft_us: self.first_chunk_us,
                cost: if estimated { None } else { self.cost },
                ..Outcome::default()
            },
        );
    }
}

/// Turn a chunk stream into the client's SSE body: each chunk is written as it arrives,
/// the usage chunk is dropped unless the client asked for it (and then carries
/// `usage.cost` in USD), an error after the first chunk becomes an `error` event, and
/// `[DONE]` closes a stream that ended normally. The stream's record is emitted when the
/// body is dropped: at the end, or when the client goes away.
fn sse_response(stream: llmux_core::ChatStream, wants_usage: bool, meter: StreamMeter) -> Response {
    let body = futures_util::stream::unfold(
        (stream, meter, false),
        move |(mut stream, mut meter, finished)| async move {
            if finished {
                return None;
            }
            loop {
                match stream.next().await {
                    Some(Ok(mut chunk)) => {
                        meter.observe(&chunk);
                        if !wants_usage {
                            if chunk.is_usage_only() {
                                continue;
                            }
                            chunk.usage = None;
                        } else if let (Some(u), Some(Some(cost))) = (&mut chunk.usage, meter.cost) {
                            u.extra
                                .insert("cost".into(), serde_json::json!(cost.to_usd_f64()));
                        }
                        let bytes = json_event(&chunk).unwrap_or_else(|e| {
                            json_event(&Error::internal(format!("encode: {e}")).to_body())
                                .unwrap_or_default()
                        });
                        return Some((Ok::<_, Infallible>(bytes), (stream, meter, false)));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "stream failed after it started");
                        meter.error = Some(e.kind());
                        let bytes = json_event(&e.to_body()).unwrap_or_default();
                        return Some((Ok(bytes), (stream, meter, true)));
                    }
                    None => {
                        meter.done = true;
                        return Some((Ok(Bytes::from_static(DONE_EVENT)), (stream, meter, true)));
                    }
                }
            }
        },
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

pub(crate) async fn embeddings(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = request_id(&headers);
    let mut meta = CallMeta::new(id.to_str().unwrap_or_default().to_owned(), "embeddings");
    let resp = async {
        authorize(&st, &headers).map_err(|e| (e, None))?;
        let req: EmbeddingRequest = parse(body).map_err(|e| (e, None))?;
        meta.model_group.clone_from(&req.model);
        meta.end_user.clone_from(&req.user);
        if req.input.is_empty() {
            let e = Error::bad_request("'input' must not be empty").with_param("input");
            return Err((e, None));
        }
        let d = st.models.resolve(&req.model).map_err(|e| (e, None))?;
        let out = match d.provider.embed(req, &context(&id)).await {
            Ok(out) => out,
            Err(e) => return Err((e, Some(d))),
        };
        let usage = llmux_core::Usage::new(out.usage.prompt_tokens, 0);
        let cost = meta.finish(
            &st.meter,
            Outcome {
                deployment: Some(&d),
                provider_model: Some(&out.model),
                usage: Some(&usage),
                embedding: true,
                status: 200,
                ..Outcome::default()
            },
        );
        let mut resp = json_response(&out).map_err(|e| (e, Some(d.clone())))?;
        with_deployment(&mut resp, &d, Some(&out.model));
        set_cost(&mut resp, cost);
        Ok::<_, Failed>(resp)
    }
    .await;
    let resp = resp.unwrap_or_else(|(e, d)| {
        if e.kind() != ErrorKind::Auth {
            meta.finish(
                &st.meter,
                Outcome {
                    deployment: d.as_deref(),
                    status: e.http_status(),
                    error_kind: Some(e.kind()),
                    embedding: true,
                    ..Outcome::default()
                },
            );
        }
        ApiError(e).into_response()
    });
    with_id(resp, id)
}

pub(crate) async fn models(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let id = request_id(&headers);
    let resp = async {
        authorize(&st, &headers)?;
        let cards = st.models.list(&context(&id)).await;
        json_response(&ModelList::new(cards))
    }
    .await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

/// `GET /model/info` (LiteLLM's shape): each model name with its deployments' provider
/// model, context window and prices. Credentials are never listed.
pub(crate) async fn model_info(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&st, &headers) {
        return ApiError(e).into_response();
    }
    let price_text = |p: Option<llmux_cost::UnitPrice>| p.map(|p| p.to_string());
    let mut data = Vec::new();
    for name in st.models.names() {
        for d in st.models.deployments(name) {
            let p = d.price.as_deref();
            data.push(serde_json::json!({
                "model_name": name,
                "litellm_params": {"model": format!("{}/{}", d.provider.name(), d.provider.model())},
                "model_info": {
                    "litellm_provider": d.provider.name(),
                    "mode": p.and_then(|p| p.mode.clone()),
                    "max_input_tokens": p.and_then(|p| p.context_window()),
                    "max_output_tokens": p.and_then(|p| p.max_output()),
                    "input_cost_per_token": p.and_then(|p| price_text(p.rates.input_per_token)),
                    "output_cost_per_token": p.and_then(|p| price_text(p.rates.output_per_token)),
                    "priced": p.is_some(),
                },
            }));
        }
    }
    for (prefix, provider) in st.models.wildcards() {
        data.push(serde_json::json!({
            "model_name": format!("{prefix}/*"),
            "litellm_params": {"model": format!("{provider}/*")},
            "model_info": {"litellm_provider": provider, "priced": null},
        }));
    }
    json_response(&serde_json::json!({ "data": data }))
        .unwrap_or_else(|e| ApiError(e).into_response())
}

pub(crate) async fn liveliness() -> Response {
    json_response(&"I'm alive!").unwrap_or_else(|e| ApiError(e).into_response())
}

pub(crate) async fn readiness(State(st): State<Arc<AppState>>) -> Response {
    let body = serde_json::json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "models": st.models.names().len(),
        "wildcards": st.models.wildcards().count(),
    });
    json_response(&body).unwrap_or_else(|e| ApiError(e).into_response())
}

pub(crate) async fn health(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&st, &headers) {
        return ApiError(e).into_response();
    }
    let mut endpoints: Vec<serde_json::Value> = st
        .models
        .names()
        .iter()
        .filter_map(|n| st.models.resolve(n).ok().map(|d| (n, d)))
        .map(|(n, d)| {
            serde_json::json!({"model": n, "provider": d.provider.name(),
                "provider_model": d.provider.model()})
        })
        .collect();
    endpoints.extend(st.models.wildcards().map(|(prefix, provider)| {
        serde_json::json!({"model": format!("{prefix}/*"), "provider": provider})
    }));
    let body = serde_json::json!({
        "status": "healthy",
        "configured_endpoints": endpoints,
    });
    json_response(&body).unwrap_or_else(|e| ApiError(e).into_response())
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    ApiError(
        Error::new(
            ErrorKind::NotFound,
            format!("Unknown route: {method} {path}"),
        )
        .with_code("unknown_route"),
    )
    .into_response()
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    ApiError(Error::new(
        ErrorKind::MethodNotAllowed,
        format!("Method {method} is not allowed on {path}"),
    ))
    .into_response()
}
