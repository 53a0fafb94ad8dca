//! The one accounting path every inbound chat format shares (OpenAI Chat Completions,
//! Anthropic Messages, OpenAI Responses, legacy Completions): attribution, access
//! (limits and budgets), routing, and metering into exactly one `CallRecord`.
//!
//! An endpoint handler decodes its own wire format into a canonical [`ChatRequest`], calls
//! [`run_chat`], and encodes the [`ChatOutcome`] (a full response, or a [`MeteredStream`]
//! of canonical chunks) back into its format. Failures go through [`record_failure`] and
//! are shaped by the endpoint (OpenAI's or Anthropic's error body).
//!
//! Must not: know any wire format besides the canonical types.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use llmux_core::{ChatRequest, ChatResponse, Error};
use llmux_engine::ChatRun;
use llmux_router::Trace;

use crate::access::Principal;
use crate::handlers::{AppState, Shared, admit, context, request_id, trace_context, with_id};
use crate::metering::CallMeta;

/// A routed chunk stream that meters itself (`llmux_engine::MeteredStream`): the record is
/// emitted when it ends or is dropped.
pub(crate) use llmux_engine::MeteredStream;

/// A failed call: the error and, when routing started, what the router tried.
pub(crate) type Failed = (Error, Option<Trace>);

/// A routed chat call's result.
pub(crate) enum ChatOutcome {
    /// A complete response, already metered.
    Full {
        response: ChatResponse,
        trace: Trace,
        /// Route headers (`x-llmux-*`, cost, LiteLLM's when on) for the client response.
        headers: HeaderMap,
    },
    /// A chunk stream that meters itself when it ends or is dropped.
    Stream {
        chunks: MeteredStream,
        /// Route headers for the client response.
        headers: HeaderMap,
    },
}

/// The start of every call: the state in force, the request id, and the call's metering
/// facts (with the client's `traceparent`).
pub(crate) fn begin(
    shared: &Shared,
    headers: &HeaderMap,
    operation: &'static str,
) -> (Arc<AppState>, HeaderValue, CallMeta) {
    let st = shared.load();
    let id = request_id(headers);
    let mut meta = CallMeta::new(id.to_str().unwrap_or_default().to_owned(), operation);
    trace_context(headers, &mut meta);
    (st, id, meta)
}

/// The end of every call: settle its access ticket (limits and budget counters) and attach
/// the request id.
pub(crate) async fn end(meta: &mut CallMeta, resp: Response, id: HeaderValue) -> Response {
    if let Some(t) = meta.ticket.take() {
        t.settle().await;
    }
    with_id(resp, id)
}

/// Record a failed call (unless the caller was not authenticated, which is not a call).
pub(crate) fn record_failure(
    st: &AppState,
    meta: &CallMeta,
    e: &Error,
    trace: Option<&Trace>,
    embedding: bool,
) {
    llmux_engine::record_failure(&st.models, meta, e, trace, embedding);
}

pub(crate) fn route_failure(f: llmux_router::RouteFailure) -> Failed {
    (f.error, Some(f.trace))
}

/// Attribute, admit, route and meter one canonical chat request. `upstream_headers` go
/// with the upstream call (e.g. the client's `anthropic-beta` on `/v1/messages`; provider
/// crates use the ones they know). Routing and metering are `llmux_engine::chat`, the
/// same path the SDK's `Client` takes.
pub(crate) async fn run_chat(
    st: &Arc<AppState>,
    principal: &Principal,
    headers: &HeaderMap,
    mut req: ChatRequest,
    id: &HeaderValue,
    meta: &mut CallMeta,
    upstream_headers: Vec<(String, String)>,
) -> Result<ChatOutcome, Failed> {
    let header_tags = headers.get("x-llmux-tags").and_then(|v| v.to_str().ok());
    llmux_engine::attribute_chat(meta, &req, header_tags).map_err(|e| (e, None))?;
    // A key's alias routes the call to the group it names.
    if let Some(group) = admit(st, principal, &req.model, meta)
        .await
        .map_err(|e| (e, None))?
    {
        req.model = group;
    }
    let mut cx = context(id);
    cx.headers = upstream_headers;
    let scope: llmux_engine::Scope = st.clone();
    match llmux_engine::chat(scope, req, &cx, meta).await? {
        ChatRun::Stream(chunks) => {
            let trace = chunks.trace();
            let headers = crate::handlers::route_headers(st, chunks.meta(), &trace, None, None);
            Ok(ChatOutcome::Stream { chunks, headers })
        }
        ChatRun::Full {
            response,
            trace,
            cost,
        } => {
            let headers =
                crate::handlers::route_headers(st, meta, &trace, Some(&response.model), cost);
            Ok(ChatOutcome::Full {
                response,
                trace,
                headers,
            })
        }
    }
}
