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
use crate::models::{Deployment, ModelTable};

/// What every handler shares, built once.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) models: ModelTable,
    pub(crate) master_key: Option<Secret>,
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
    let resp = chat_inner(&st, &headers, body, &id).await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

async fn chat_inner(
    st: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    id: &HeaderValue,
) -> Result<Response, Error> {
    authorize(st, headers)?;
    let req: ChatRequest = parse(body)?;
    if req.messages.is_empty() {
        return Err(
            Error::bad_request("'messages' must contain at least one message")
                .with_param("messages"),
        );
    }
    let d = st.models.resolve(&req.model)?;
    let cx = context(id);
    if req.is_stream() {
        let wants_usage = req.wants_stream_usage();
        let stream = d.provider.chat_stream(req, &cx).await.map_err(|e| {
            tracing::debug!(request_id = %cx.request_id, error = %e, "stream failed to start");
            e
        })?;
        let mut resp = sse_response(stream, wants_usage);
        with_deployment(&mut resp, &d, None);
        return Ok(resp);
    }
    let out = d.provider.chat(req, &cx).await?;
    let mut resp = json_response(&out)?;
    with_deployment(&mut resp, &d, Some(&out.model));
    Ok(resp)
}

/// Turn a chunk stream into the client's SSE body: each chunk is written as it arrives,
/// the usage chunk is dropped unless the client asked for it, an error after the first
/// chunk becomes an `error` event, and `[DONE]` closes a stream that ended normally.
fn sse_response(stream: llmux_core::ChatStream, wants_usage: bool) -> Response {
    let body =
        futures_util::stream::unfold((stream, false), move |(mut stream, finished)| async move {
            if finished {
                return None;
            }
            loop {
                match stream.next().await {
                    Some(Ok(mut chunk)) => {
                        if !wants_usage {
                            if chunk.is_usage_only() {
                                continue;
                            }
                            chunk.usage = None;
                        }
                        let bytes = json_event(&chunk).unwrap_or_else(|e| {
                            json_event(&Error::internal(format!("encode: {e}")).to_body())
                                .unwrap_or_default()
                        });
                        return Some((Ok::<_, Infallible>(bytes), (stream, false)));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "stream failed after it started");
                        let bytes = json_event(&e.to_body()).unwrap_or_default();
                        return Some((Ok(bytes), (stream, true)));
                    }
                    None => {
                        return Some((Ok(Bytes::from_static(DONE_EVENT)), (stream, true)));
                    }
                }
            }
        });
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
    let resp = async {
        authorize(&st, &headers)?;
        let req: EmbeddingRequest = parse(body)?;
        if req.input.is_empty() {
            return Err(Error::bad_request("'input' must not be empty").with_param("input"));
        }
        let d = st.models.resolve(&req.model)?;
        let out = d.provider.embed(req, &context(&id)).await?;
        let mut resp = json_response(&out)?;
        with_deployment(&mut resp, &d, Some(&out.model));
        Ok::<_, Error>(resp)
    }
    .await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
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
