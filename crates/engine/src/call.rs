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
    EmbeddingResponse, Error, ErrorKind, StreamAccumulator, Usage,
};
use llmux_cost::Money;
use llmux_router::{RouteFailure, Trace, TraceHandle};
use serde_json::Value;

use crate::metering::{
    CallMeta, Outcome, estimate_tokens, price, request_metadata, session_id, tags,
};
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
/// `header_tags`, the session and the rest of `metadata` with credentials removed) and
/// check what every call needs. A failure here is the caller's
/// (`BadRequest`) and has not been routed.
pub fn attribute_chat(
    meta: &mut CallMeta,
    req: &ChatRequest,
    header_tags: Option<&str>,
) -> Result<(), Error> {
    meta.model_group.clone_from(&req.model);
    meta.end_user.clone_from(&req.user);
    meta.tags = tags(&req.extra, req.metadata.as_ref(), header_tags)?;
    meta.session_id = session_id(req.metadata.as_ref());
    meta.request_metadata = request_metadata(req.metadata.as_ref());
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
    let metadata = req.extra.get("metadata").and_then(Value::as_object);
    meta.tags = tags(&req.extra, metadata, header_tags)?;
    meta.session_id = session_id(metadata);
    meta.request_metadata = request_metadata(metadata);
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
    let log_prompts = models.log_prompts();
    if log_prompts {
        meta.prompt = serde_json::to_value(&req.messages).ok().map(Arc::new);
    }
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
                content: log_prompts.then(|| Box::new(StreamAccumulator::new())),
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
            completion: log_prompts.then(|| completion(&response)).flatten(),
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
    let prompt = models
        .log_prompts()
        .then(|| serde_json::to_value(&req.input).ok().map(Arc::new))
        .flatten();
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
            prompt,
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

/// What a complete response answered, as a record keeps it: the only choice's message, or
/// every choice's message when there are several.
fn completion(response: &ChatResponse) -> Option<Arc<Value>> {
    let messages: Vec<Value> = response
        .choices
        .iter()
        .filter_map(|c| serde_json::to_value(&c.message).ok())
        .collect();
    let v = match messages.len() {
        0 => return None,
        1 => messages.into_iter().next()?,
        _ => Value::Array(messages),
    };
    Some(Arc::new(v))
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
    /// The answer so far, accumulated only when the models' `log_prompts` is on.
    content: Option<Box<StreamAccumulator>>,
    /// Counts the stream in flight until it is dropped.
    _in_flight: llmux_observe::InFlight,
}

impl StreamMeter {
    fn observe(&mut self, chunk: &ChatChunk) {
        if let Some(acc) = &mut self.content {
            acc.push(chunk);
        }
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
        let completion = self
            .content
            .take()
            .and_then(|acc| completion(&acc.finish()));
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
                completion,
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

    #[test]
    fn attribution_keeps_the_session_and_metadata_without_credentials() {
        let metadata: llmux_core::JsonObject = serde_json::from_value(serde_json::json!({
            "session_id": "sess-1",
            "trace_name": "t",
            "api_key": "sk-live-123",
            "nested": {"Authorization": "x", "ok": 1, "leak": "Bearer abc"},
            "list": ["fine", "sk-also-a-key"],
            "user_api_key_hash": "h"
        }))
        .unwrap();
        let mut req = ChatRequest::new("g").user("hi");
        req.metadata = Some(metadata);
        let mut meta = CallMeta::new("r".into(), "chat");
        attribute_chat(&mut meta, &req, None).expect("valid");
        assert_eq!(meta.session_id.as_deref(), Some("sess-1"));
        let kept = serde_json::to_value(meta.request_metadata.as_deref().unwrap()).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({
                "session_id": "sess-1", "trace_name": "t",
                "nested": {"ok": 1}, "list": ["fine"]
            })
        );
        assert!(meta.prompt.is_none(), "attribution never keeps the prompt");
    }

    #[derive(Debug, Default)]
    struct Collect(std::sync::Mutex<Vec<Arc<llmux_core::CallRecord>>>);

    #[async_trait::async_trait]
    impl llmux_core::CallSink for Collect {
        fn name(&self) -> &str {
            "collect"
        }
        async fn record(&self, record: Arc<llmux_core::CallRecord>) {
            self.0.lock().unwrap().push(record);
        }
    }

    /// One plain and one streamed call through a table with `log_prompts` as given; the
    /// records they produced.
    async fn two_calls(log_prompts: bool) -> Vec<Arc<llmux_core::CallRecord>> {
        use futures_util::StreamExt;
        llmux_provider_mock::link();
        let yaml = format!(
            "settings:\n  log_prompts: {log_prompts}\nmodels:\n  - name: m\n    model: mock/echo\n"
        );
        let config = llmux_config::Config::from_str(&yaml, "yaml", "t.yaml", &|_| None).unwrap();
        let sink = Arc::new(Collect::default());
        let (meter, workers) = llmux_cost::Meter::start(vec![sink.clone()], 16);
        let models =
            crate::build_models(&config, crate::TableOptions::new(meter), &|_| None).unwrap();
        assert_eq!(models.log_prompts(), log_prompts);
        let scope: Scope = Arc::new(models);
        for stream in [false, true] {
            let mut req = ChatRequest::new("m").user("hello there");
            req.stream = Some(stream);
            let mut meta = CallMeta::new(format!("r-{stream}"), "chat");
            attribute_chat(&mut meta, &req, None).unwrap();
            match chat(scope.clone(), req, &CallContext::default(), &mut meta)
                .await
                .unwrap()
            {
                ChatRun::Full { .. } => {}
                ChatRun::Stream(mut s) => while s.next().await.is_some() {},
            }
        }
        drop(scope);
        workers.drain().await;
        let mut got = sink.0.lock().unwrap().clone();
        got.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        got
    }

    #[tokio::test]
    async fn prompts_and_completions_are_recorded_only_with_log_prompts() {
        let on = two_calls(true).await;
        assert_eq!(on.len(), 2);
        for r in &on {
            assert_eq!(
                r.prompt.as_deref(),
                Some(&serde_json::json!([{"role": "user", "content": "hello there"}])),
                "{}",
                r.request_id
            );
            let completion = r.completion.as_deref().expect("completion");
            assert_eq!(completion["content"], "hello there", "{}", r.request_id);
            assert_eq!(completion["role"], "assistant");
        }
        let off = two_calls(false).await;
        assert_eq!(off.len(), 2);
        assert!(
            off.iter()
                .all(|r| r.prompt.is_none() && r.completion.is_none())
        );
    }
}
