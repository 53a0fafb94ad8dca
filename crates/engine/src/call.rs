//! One call, from a canonical request to its answer and its record: attribution
//! ([`attribute_chat`], [`attribute_embed`]), routing through the [`ModelTable`]'s router,
//! and metering — a complete answer is recorded before it is returned, a stream records
//! itself when it ends or is dropped ([`MeteredStream`]), a failure through
//! [`record_failure`]. Exactly one `CallRecord` per call, whoever the caller is.
//!
//! Must not: know any wire format besides the canonical types, or anything about HTTP
//! (headers, statuses as responses, authentication): the gateway does those around it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, EmbeddingRequest,
    EmbeddingResponse, Error, ErrorKind, Usage,
};
use llmux_cost::Money;
use llmux_router::{RouteFailure, Trace, TraceHandle};

use crate::metering::{CallMeta, Outcome, estimate_tokens, price, tags};
use crate::models::ModelTable;

/// A failed call: the error and, when routing started, what the router tried.
pub type Failed = (Error, Option<Trace>);

/// What holds the models a call is routed and priced with, kept alive by a stream until
/// it is recorded: a [`ModelTable`] itself, or a state around one (the gateway's).
pub type Scope = Arc<dyn AsRef<ModelTable> + Send + Sync>;

/// A routed chat call's result.
#[derive(Debug)]
pub enum ChatRun {
    /// A complete response, already recorded.
    Full {
        /// The answer.
        response: ChatResponse,
        /// What the router did.
        trace: Trace,
        /// Its cost (`None`: no usage, or no price known).
        cost: Option<Money>,
    },
    /// A chunk stream that records the call when it ends or is dropped.
    Stream(MeteredStream),
}

/// Fill `meta` from a chat request (model group, end user, tags from the request and
/// `header_tags`) and check what every call needs. A failure here is the caller's
/// (`BadRequest`) and has not been routed.
pub fn attribute_chat(
    meta: &mut CallMeta,
    req: &ChatRequest,
    header_tags: Option<&str>,
) -> Result<(), Error> {
    meta.model_group.clone_from(&req.model);
    meta.end_user.clone_from(&req.user);
    meta.tags = tags(&req.extra, req.metadata.as_ref(), header_tags)?;
    if req.messages.is_empty() {
        return Err(
            Error::bad_request("'messages' must contain at least one message")
                .with_param("messages"),
        );
    }
    Ok(())
}

/// [`attribute_chat`] for an embeddings request.
pub fn attribute_embed(
    meta: &mut CallMeta,
    req: &EmbeddingRequest,
    header_tags: Option<&str>,
) -> Result<(), Error> {
    meta.model_group.clone_from(&req.model);
    meta.end_user.clone_from(&req.user);
    meta.tags = tags(&req.extra, None, header_tags)?;
    if req.input.is_empty() {
        return Err(Error::bad_request("'input' must not be empty").with_param("input"));
    }
    Ok(())
}

fn route_failure(f: RouteFailure) -> Failed {
    (f.error, Some(f.trace))
}

/// Route one attributed chat request and meter it. A streaming request
/// (`req.stream == Some(true)`) takes `meta` into the returned stream (leaving a blank
/// one behind); a complete one is recorded before this returns. A failure is returned
/// unrecorded: pass it to [`record_failure`].
pub async fn chat(
    scope: Scope,
    req: ChatRequest,
    cx: &CallContext,
    meta: &mut CallMeta,
) -> Result<ChatRun, Failed> {
    let in_flight = llmux_observe::in_flight(&req.model);
    let models = (*scope).as_ref();
    if req.is_stream() {
        // A streamed call keeps its endpoint in the record: `responses_stream`, … .
        meta.operation = match meta.operation {
            "responses" => "responses_stream",
            "completions" => "completions_stream",
            "messages" => "messages_stream",
            _ => "chat_stream",
        };
        let prompt_chars = prompt_chars(&req);
        let routed = models
            .router
            .chat_stream(req, cx)
            .await
            .map_err(route_failure)?;
        let meta = std::mem::replace(meta, CallMeta::new(String::new(), "chat_stream"));
        return Ok(ChatRun::Stream(MeteredStream {
            inner: routed.value,
            meter: StreamMeter {
                scope,
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
            },
        }));
    }
    let routed = models.router.chat(req, cx).await.map_err(route_failure)?;
    let trace = routed.trace.snapshot();
    let response = routed.value;
    let cost = meta.finish(
        models,
        models.meter(),
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
    Ok(ChatRun::Full {
        response,
        trace,
        cost,
    })
}

/// Route one attributed embeddings request and record it; returns the answer, what the
/// router did, and the cost. A failure is returned unrecorded: pass it to
/// [`record_failure`] (with `embedding = true`).
pub async fn embed(
    models: &ModelTable,
    req: EmbeddingRequest,
    cx: &CallContext,
    meta: &CallMeta,
) -> Result<(EmbeddingResponse, Trace, Option<Money>), Failed> {
    let routed = models.router.embed(req, cx).await.map_err(route_failure)?;
    let trace = routed.trace.snapshot();
    let out = routed.value;
    let usage = Usage::new(out.usage.prompt_tokens, 0);
    let cost = meta.finish(
        models,
        models.meter(),
        Outcome {
            trace: Some(&trace),
            provider_model: Some(&out.model),
            usage: Some(&usage),
            embedding: true,
            status: 200,
            ..Outcome::default()
        },
    );
    Ok((out, trace, cost))
}

/// Record a failed call — unless it failed authentication before routing, which is not a
/// call.
pub fn record_failure(
    models: &ModelTable,
    meta: &CallMeta,
    e: &Error,
    trace: Option<&Trace>,
    embedding: bool,
) {
    if e.kind() != ErrorKind::Auth || trace.is_some() {
        meta.finish(
            models,
            models.meter(),
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

/// A routed chunk stream that follows its call to the end (or the caller's departure) and
/// emits the call's record exactly once, when dropped: status 200 when it ended, the
/// error's status when it failed, 499 when it was dropped early (which also drops the
/// router's and the provider's streams, closing the upstream connection).
///
/// Usage is what the final usage chunk reported, else estimated from the text that passed.
pub struct MeteredStream {
    inner: ChatStream,
    meter: StreamMeter,
}

impl MeteredStream {
    /// The call's cost, once the usage chunk has passed (`Some(None)`: usage known, price
    /// unknown).
    pub fn cost(&self) -> Option<Option<Money>> {
        self.meter.cost
    }

    /// What the call looked like when it arrived (request id, attribution).
    pub fn meta(&self) -> &CallMeta {
        &self.meter.meta
    }

    /// What the router has done so far (final once the stream ended).
    pub fn trace(&self) -> Trace {
        self.meter.trace.snapshot()
    }

    /// The usage reported by the stream's usage chunk, once it passed.
    pub fn usage(&self) -> Option<&Usage> {
        self.meter.usage.as_ref()
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
        f.debug_struct("MeteredStream")
            .field("request_id", &self.meter.meta.request_id)
            .finish_non_exhaustive()
    }
}

struct StreamMeter {
    scope: Scope,
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
            let models = (*self.scope).as_ref();
            self.cost = Some(price(models, Some(&trace), Some(u), false));
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
        let models = (*self.scope).as_ref();
        self.meta.finish(
            models,
            models.meter(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::{ChatRequest, EmbeddingInput};

    #[test]
    fn attribution_takes_model_user_and_tags_and_checks_the_request() {
        let mut meta = CallMeta::new("r".into(), "chat");
        let req = ChatRequest::new("g").user("hi").end_user("u").tag("a");
        attribute_chat(&mut meta, &req, Some("b, a")).expect("valid");
        assert_eq!(
            (meta.model_group.as_str(), meta.end_user.as_deref()),
            ("g", Some("u"))
        );
        assert_eq!(meta.tags, ["a", "b"]);

        let empty = attribute_chat(&mut meta, &ChatRequest::new("g"), None).expect_err("empty");
        assert_eq!(empty.param(), Some("messages"));
        let bad_tag = attribute_chat(&mut meta, &ChatRequest::new("g").user("x").tag(""), None)
            .expect_err("empty tag");
        assert_eq!(bad_tag.kind(), ErrorKind::BadRequest);

        let req = EmbeddingRequest {
            model: "e".into(),
            input: EmbeddingInput::Texts(Vec::new()),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        };
        let e = attribute_embed(&mut meta, &req, None).expect_err("nothing to embed");
        assert_eq!(e.param(), Some("input"));
    }
}
