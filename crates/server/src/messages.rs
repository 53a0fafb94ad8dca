//! Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`
//! (also without `/v1`).
//!
//! A call is decoded by `llmux_inbound::messages` into a canonical request and goes the
//! shared call path (auth — `x-api-key` or a bearer token —, limits and budgets, routing,
//! metering) like `/v1/chat/completions`; the answer is encoded back as Anthropic's
//! `message` or its SSE event sequence. The client's `anthropic-beta` header goes with the
//! upstream call (the Anthropic provider merges it with the deployment's); its
//! `anthropic-version` does not (each deployment sends its own). Every error on these
//! routes is in Anthropic's shape, with Anthropic's statuses.
//!
//! Calls are recorded with the operation `messages` (`messages_stream` when streamed).
//!
//! `count_tokens` is forwarded as is to Anthropic's own `count_tokens` when every
//! deployment of the model's group is an Anthropic one (`Provider::passthrough_supported`,
//! routed with retries and fallbacks by `Router::passthrough`); otherwise it answers with a
//! local estimate (`llmux_inbound::messages::estimate_input_tokens`). Neither is metered.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use llmux_core::provider::{PassthroughBody, PassthroughKind, PassthroughRequest};
use llmux_core::{Error, ErrorKind};
use llmux_inbound::messages::{self, MessagesStream};
use llmux_router::Trace;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::access::Principal;
use crate::call::{
    ChatOutcome, Failed, MeteredStream, begin, end, record_failure, route_failure, run_chat,
};
use crate::handlers::{
    AppState, Shared, authenticate, context, json_response, parse, request_id, route_headers,
    sse_body, with_id,
};
use crate::metering::CallMeta;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/messages", post(create_message))
        .route("/messages", post(create_message))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/messages/count_tokens", post(count_tokens))
}

/// The client's `anthropic-beta` values (one header or several), for the upstream call.
fn upstream_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let betas: Vec<&str> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if betas.is_empty() {
        Vec::new()
    } else {
        vec![("anthropic-beta".to_owned(), betas.join(","))]
    }
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (st, id, mut meta) = begin(&shared, &headers, "messages");
    let span = tracing::info_span!("call", request_id = %meta.request_id);
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let body: Value = parse(body).map_err(|e| (e, None))?;
        let req = messages::decode_request(body).map_err(|e| (e, None))?;
        let model = req.model.clone();
        let upstream = upstream_headers(&headers);
        match run_chat(&st, &principal, &headers, req, &id, &mut meta, upstream).await? {
            ChatOutcome::Full {
                response,
                trace,
                headers,
            } => {
                let body = messages::encode_response(&response, &model);
                let mut resp = json_response(&body).map_err(|e| (e, Some(trace)))?;
                resp.headers_mut().extend(headers);
                Ok::<_, Failed>(resp)
            }
            ChatOutcome::Stream { chunks, headers } => {
                let mut resp = event_stream(chunks, model);
                resp.headers_mut().extend(headers);
                Ok(resp)
            }
        }
    }
    .instrument(span)
    .await;
    let resp = resp.unwrap_or_else(|(e, trace)| {
        record_failure(&st, &meta, &e, trace.as_ref(), false);
        error_response(&st, &meta, &e, trace.as_ref())
    });
    end(&mut meta, resp, id).await
}

/// The answer as Anthropic's event stream, each chunk's events written as it arrives. The
/// call's record is emitted when the body is dropped (at the end, or when the client goes
/// away).
fn event_stream(chunks: MeteredStream, model: String) -> Response {
    let state = MessagesStream::new(model);
    let body = futures_util::stream::unfold(
        (chunks, state, false),
        |(mut chunks, mut state, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let (events, ended) = match chunks.next().await {
                    Some(Ok(chunk)) => (state.push(&chunk), false),
                    Some(Err(e)) => (state.fail(&e), true),
                    None => (state.finish(), true),
                };
                if events.is_empty() && !ended {
                    continue;
                }
                let text: String = events.iter().map(|e| e.to_sse()).collect();
                return Some((
                    Ok::<_, Infallible>(Bytes::from(text)),
                    (chunks, state, ended),
                ));
            }
        },
    );
    sse_body(body)
}

/// An error in Anthropic's shape and status, with `Retry-After` on rate limits and the
/// route headers when routing started.
fn error_response(st: &AppState, meta: &CallMeta, e: &Error, trace: Option<&Trace>) -> Response {
    let (status, body) = messages::error_body(e);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    if e.kind() == ErrorKind::RateLimited
        && let Some(after) = e.retry_after()
    {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(p) = e.provider().and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert("x-llmux-provider", p);
    }
    if let Some(t) = trace {
        h.extend(route_headers(st, meta, t, None, None));
    }
    resp
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}` for a model the gateway serves:
/// Anthropic's own count when the model's group is all Anthropic deployments (the
/// upstream's answer as is), else a local estimate.
async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let st = shared.load();
    let id = request_id(&headers);
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let body: Value = parse(body).map_err(|e| (e, None))?;
        let req = messages::decode_count_tokens_request(body.clone()).map_err(|e| (e, None))?;
        let router = st.models.router();
        if !router.serves(&req.model) {
            return Err((
                Error::new(
                    ErrorKind::NotFound,
                    format!("model: {}", req.model.chars().take(200).collect::<String>()),
                )
                .with_code("model_not_found"),
                None,
            ));
        }
        let target = match &principal {
            Principal::Key(e) => e.alias_target(&req.model).unwrap_or(&req.model),
            _ => &req.model,
        };
        if !router.passthrough_supported(target, PassthroughKind::CountTokens) {
            let n = messages::estimate_input_tokens(&req);
            return json_response(&json!({"input_tokens": n})).map_err(|e| (e, None));
        }
        let Value::Object(mut body) = body else {
            return Err((
                Error::bad_request("The request body must be a JSON object."),
                None,
            ));
        };
        body.insert("model".to_owned(), Value::String(target.to_owned()));
        let mut cx = context(&id);
        cx.headers = upstream_headers(&headers);
        let req = PassthroughRequest {
            kind: PassthroughKind::CountTokens,
            body,
            stream: false,
        };
        let routed = router.passthrough(req, &cx).await.map_err(route_failure)?;
        let trace = routed.trace.snapshot();
        match routed.value.body {
            PassthroughBody::Json(bytes) => {
                let mut resp = (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    bytes,
                )
                    .into_response();
                let rid = id.to_str().unwrap_or_default().to_owned();
                let meta = CallMeta::new(rid, "count_tokens");
                resp.headers_mut()
                    .extend(route_headers(&st, &meta, &trace, None, None));
                Ok(resp)
            }
            PassthroughBody::Events(_) => Err((
                Error::internal("the upstream answered count_tokens with a stream"),
                Some(trace),
            )),
        }
    }
    .await;
    let resp = resp.unwrap_or_else(|(e, trace): Failed| {
        let meta = CallMeta::new(String::new(), "count_tokens");
        error_response(&st, &meta, &e, trace.as_ref())
    });
    with_id(resp, id)
}
