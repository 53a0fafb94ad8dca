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

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use futures_core::Stream;
use llmux_core::{ChatChunk, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, Usage};
use llmux_cost::Money;
use llmux_router::{Trace, TraceHandle};

use crate::access::Principal;
use crate::handlers::{AppState, Shared, admit, context, request_id, trace_context, with_id};
use crate::metering::{CallMeta, Outcome, estimate_tokens, price};

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
    if e.kind() != ErrorKind::Auth || trace.is_some() {
        meta.finish(
            &st.models,
            &st.meter,
            Outcome {
                trace,
                status: e.http_status(),
                error_kind: Some(e.kind()),
                embedding,
                ..Outcome::default()
            },
        );
    }
}

pub(crate) fn route_failure(f: llmux_router::RouteFailure) -> Failed {
    (f.error, Some(f.trace))
}

/// Attribute, admit, route and meter one canonical chat request. `upstream_headers` go
/// with the upstream call (e.g. the client's `anthropic-beta` on `/v1/messages`; provider
/// crates use the ones they know).
pub(crate) async fn run_chat(
    st: &Arc<AppState>,
    principal: &Principal,
    headers: &HeaderMap,
    req: ChatRequest,
    id: &HeaderValue,
    meta: &mut CallMeta,
    upstream_headers: Vec<(String, String)>,
) -> Result<ChatOutcome, Failed> {
    meta.model_group.clone_from(&req.model);
    meta.end_user.clone_from(&req.user);
    meta.tags = crate::metering::tags(
        &req.extra,
        req.metadata.as_ref(),
        headers.get("x-llmux-tags").and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| (e, None))?;
    if req.messages.is_empty() {
        let e = Error::bad_request("'messages' must contain at least one message")
            .with_param("messages");
        return Err((e, None));
    }
    admit(st, principal, &req.model, meta)
        .await
        .map_err(|e| (e, None))?;
    let mut cx = context(id);
    cx.headers = upstream_headers;
    let in_flight = llmux_observe::in_flight(&req.model);
    if req.is_stream() {
        meta.operation = "chat_stream";
        let prompt_chars = prompt_chars(&req);
        let routed = st
            .models
            .router
            .chat_stream(req, &cx)
            .await
            .map_err(route_failure)?;
        let trace = routed.trace.snapshot();
        let meta = std::mem::replace(meta, CallMeta::new(String::new(), "chat_stream"));
        let headers = crate::handlers::route_headers(st, &meta, &trace, None, None);
        let meter = StreamMeter {
            st: st.clone(),
            meta,
            trace: routed.trace,
            usage: None,
            cost: None,
            prompt_chars,
            text_chars: 0,
            first_chunk_us: None,
            provider_model: None,
            finish_reason: None,
            error: None,
            done: false,
            _in_flight: in_flight,
        };
        return Ok(ChatOutcome::Stream {
            chunks: MeteredStream {
                inner: routed.value,
                meter,
            },
            headers,
        });
    }
    let routed = st
        .models
        .router
        .chat(req, &cx)
        .await
        .map_err(route_failure)?;
    let trace = routed.trace.snapshot();
    let response = routed.value;
    let cost = meta.finish(
        &st.models,
        &st.meter,
        Outcome {
            trace: Some(&trace),
            provider_model: Some(&response.model),
            usage: response.usage.as_ref(),
            status: 200,
            finish_reason: response
                .choices
                .first()
                .and_then(|c| c.finish_reason.as_ref())
                .map(|f| f.as_str()),
            ..Outcome::default()
        },
    );
    let headers = crate::handlers::route_headers(st, meta, &trace, Some(&response.model), cost);
    Ok(ChatOutcome::Full {
        response,
        trace,
        headers,
    })
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

/// A routed chunk stream that follows its call to the end (or the client's departure) and
/// emits the call's record exactly once, when dropped.
pub(crate) struct MeteredStream {
    inner: ChatStream,
    meter: StreamMeter,
}

impl MeteredStream {
    /// The call's cost, once the usage chunk has passed (`Some(None)`: usage known, price
    /// unknown).
    pub(crate) fn cost(&self) -> Option<Option<Money>> {
        self.meter.cost
    }
}

impl Stream for MeteredStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.meter.done || this.meter.error.is_some() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.meter.observe(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "stream failed after it started");
                this.meter.error = Some(e.kind());
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.meter.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl std::fmt::Debug for MeteredStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredStream").finish_non_exhaustive()
    }
}

struct StreamMeter {
    st: Arc<AppState>,
    meta: CallMeta,
    trace: TraceHandle,
    usage: Option<Usage>,
    cost: Option<Option<Money>>,
    prompt_chars: u64,
    text_chars: u64,
    first_chunk_us: Option<u64>,
    provider_model: Option<String>,
    finish_reason: Option<String>,
    error: Option<ErrorKind>,
    done: bool,
    /// Counts the stream in flight until it is dropped.
    _in_flight: llmux_observe::InFlight,
}

impl StreamMeter {
    fn observe(&mut self, chunk: &ChatChunk) {
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
            if let Some(f) = &c.finish_reason {
                self.finish_reason = Some(f.as_str().to_owned());
            }
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
            let trace = self.trace.snapshot();
            self.cost = Some(price(&self.st.models, Some(&trace), Some(u), false));
        }
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let estimated = self.usage.is_none();
        let usage = self.usage.take().unwrap_or_else(|| {
            Usage::new(
                estimate_tokens(self.prompt_chars),
                estimate_tokens(self.text_chars),
            )
        });
        let status = match (self.error, self.done) {
            (Some(k), _) => k.http_status(),
            (None, true) => 200,
            (None, false) => 499,
        };
        let trace = self.trace.snapshot();
        self.meta.finish(
            &self.st.models,
            &self.st.meter,
            Outcome {
                trace: Some(&trace),
                provider_model: self.provider_model.as_deref(),
                usage: Some(&usage),
                usage_estimated: estimated,
                status,
                error_kind: self.error,
                ttft_us: self.first_chunk_us,
                finish_reason: self.finish_reason.as_deref(),
                cost: if estimated { None } else { self.cost },
                ..Outcome::default()
            },
        );
    }
}
