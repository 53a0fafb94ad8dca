//! A routed stream after its first chunk: forwards chunks, watches for stalls, and resumes
//! a broken stream on another deployment so the caller sees one answer.
//!
//! Resumption sends the original request plus an assistant message holding the text
//! streamed so far (for providers that support prefill, that message is continued), then
//! forwards only the new chunks under the first piece's `id`, `model` and `created`,
//! without the continuation's leading role chunk. Usage is summed over the pieces (a
//! broken piece that reported none is estimated) into one final usage-only chunk.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatStream, ChunkChoice, Error, ErrorKind, Message, Usage,
};
use tokio::time::Instant;

use crate::router::{Answer, Group, Router, StreamOp};
use crate::select::{Want, estimate_prompt_tokens, estimate_tokens};
use crate::state::InFlight;
use crate::trace::{AttemptError, Phase, Trace, TraceHandle};

pub(crate) struct Relay {
    router: Router,
    /// The request as first sent to the answering group (no continuation message).
    req: ChatRequest,
    want: Want,
    cx: CallContext,
    group: Arc<Group>,
    idx: usize,
    guard: Option<InFlight>,
    inner: ChatStream,
    pending: Option<ChatChunk>,
    /// The first piece's identity, kept on every forwarded chunk.
    id: String,
    model: String,
    created: u64,
    /// Text of choice 0 forwarded so far, over all pieces.
    text: String,
    piece: Piece,
    /// Usage summed over finished pieces and the current one.
    usage: Usage,
    /// Whether any piece reported usage.
    usage_reported: bool,
    /// The last usage-only chunk seen, held back until the end.
    usage_chunk: Option<ChatChunk>,
    /// False once something a text continuation cannot carry was streamed (tool calls,
    /// several choices).
    resumable: bool,
    /// Drop the role of the next chunk (the first of a continuation).
    strip_role: bool,
    trace: Trace,
    handle: TraceHandle,
    done: bool,
}

/// The part of a stream one deployment produced.
#[derive(Debug)]
struct Piece {
    started: Instant,
    text: String,
    prompt_tokens: u64,
    usage: Option<Usage>,
}

impl Piece {
    fn new(prompt_tokens: u64) -> Self {
        Self {
            started: Instant::now(),
            text: String::new(),
            prompt_tokens,
            usage: None,
        }
    }

    /// Its usage, estimated when the upstream reported none.
    fn usage(&self) -> Usage {
        self.usage
            .clone()
            .unwrap_or_else(|| Usage::new(self.prompt_tokens, estimate_tokens(&self.text)))
    }
}

impl Relay {
    pub(crate) fn new(
        router: Router,
        req: ChatRequest,
        want: Want,
        cx: CallContext,
        answer: Answer<(ChatChunk, ChatStream)>,
        trace: Trace,
        handle: TraceHandle,
    ) -> Self {
        let (first, inner) = answer.value;
        Self {
            router,
            req,
            piece: Piece::new(want.prompt_tokens),
            want,
            cx,
            group: answer.group,
            idx: answer.idx,
            guard: Some(answer.guard),
            inner,
            id: first.id.clone(),
            model: first.model.clone(),
            created: first.created,
            pending: Some(first),
            text: String::new(),
            usage: Usage::default(),
            usage_reported: false,
            usage_chunk: None,
            resumable: true,
            strip_role: false,
            trace,
            handle,
            done: false,
        }
    }

    pub(crate) fn into_stream(self) -> ChatStream {
        Box::pin(futures_util::stream::unfold(self, Relay::step))
    }

    async fn step(mut self) -> Option<(Result<ChatChunk, Error>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let next = match self.pending.take() {
                Some(c) => Ok(Some(Ok(c))),
                None => self.next_item().await,
            };
            match next {
                Ok(Some(Ok(chunk))) => {
                    if let Some(out) = self.forward(chunk) {
                        return Some((Ok(out), self));
                    }
                }
                Ok(None) => {
                    let last = self.finish();
                    return last.map(|c| (Ok(c), self));
                }
                Ok(Some(Err(e))) | Err(e) => {
                    if let Err(e) = self.recover(e).await {
                        return Some((Err(e), self));
                    }
                }
            }
        }
    }

    /// The next item of the current piece, or a timeout error when it stalls.
    async fn next_item(&mut self) -> Result<Option<Result<ChatChunk, Error>>, Error> {
        let stall = self.router.settings().stream_stall_timeout;
        match stall {
            None => Ok(self.inner.next().await),
            Some(limit) => tokio::time::timeout(limit, self.inner.next())
                .await
                .map_err(|_| stalled(&self.group, self.idx, limit)),
        }
    }

    /// Account for `chunk` and return what the caller should see of it.
    fn forward(&mut self, mut chunk: ChatChunk) -> Option<ChatChunk> {
        if let Some(u) = chunk.usage.take() {
            self.usage_reported = true;
            self.piece.usage = Some(u);
            if chunk.choices.is_empty() {
                self.usage_chunk = Some(chunk);
                return None;
            }
        }
        if std::mem::take(&mut self.strip_role) {
            for c in &mut chunk.choices {
                c.delta.role = None;
            }
            if chunk.choices.iter().all(is_empty) {
                return None;
            }
        }
        for c in &chunk.choices {
            if c.index != 0 || c.delta.tool_calls.is_some() {
                self.resumable = false;
            }
            if c.index == 0
                && let Some(t) = &c.delta.content
            {
                self.text.push_str(t);
                self.piece.text.push_str(t);
            }
        }
        if self.trace.resumed() {
            chunk.id.clone_from(&self.id);
            chunk.model.clone_from(&self.model);
            chunk.created = self.created;
        }
        Some(chunk)
    }

    /// The stream ended normally: settle the piece and return the final usage chunk.
    fn finish(&mut self) -> Option<ChatChunk> {
        self.done = true;
        let usage = self.piece.usage();
        self.close_piece(&usage);
        self.handle.publish(&self.trace, true);
        if !self.usage_reported {
            return None;
        }
        let mut chunk = match self.usage_chunk.take() {
            Some(c) if !self.trace.resumed() => c,
            _ => ChatChunk::new(self.id.clone(), self.model.clone(), self.created),
        };
        chunk.usage = Some(std::mem::take(&mut self.usage));
        Some(chunk)
    }

    /// Count a piece's usage into the sum and its tokens against its deployment.
    fn close_piece(&mut self, usage: &Usage) {
        add_usage(&mut self.usage, usage);
        let st = &self.group.states[self.idx];
        st.add_tokens(Instant::now(), usage.total_tokens);
        self.guard = None;
    }

    /// The current piece broke with `e`: resume on another deployment, or give `e` back.
    async fn recover(&mut self, e: Error) -> Result<(), Error> {
        let now = Instant::now();
        let settings = self.router.settings().clone();
        let d = &self.group.deployments[self.idx];
        self.group.states[self.idx].failed(now, now - self.piece.started, &e, &settings);
        tracing::debug!(deployment = %d.id, kind = %e.kind(), "stream broke after its first chunk");
        self.trace.errors.push(AttemptError {
            model_group: self.group.name.clone(),
            deployment_id: Some(d.id.clone()),
            phase: Phase::MidStream,
            kind: e.kind(),
            message: e.message().to_owned(),
        });
        let usage = self.piece.usage();
        self.close_piece(&usage);
        let can_resume = settings.stream_resume
            && self.resumable
            && self.trace.resumptions < settings.max_stream_resumes;
        if !can_resume {
            return Err(self.give_up(e));
        }
        let mut req = self.req.clone();
        if !self.text.is_empty() {
            req.messages.push(Message::assistant(self.text.clone()));
        }
        let want = Want {
            prompt_tokens: estimate_prompt_tokens(&req.messages),
            ..self.want.clone()
        };
        let mut op = StreamOp(req);
        let exclude = vec![self.idx];
        let routed = self
            .router
            .route(
                &mut op,
                &want,
                &self.cx,
                self.group.clone(),
                &mut self.trace,
                exclude,
            )
            .await;
        match routed {
            Ok(answer) => {
                let (first, inner) = answer.value;
                self.req.model.clone_from(&answer.group.name);
                self.group = answer.group;
                self.idx = answer.idx;
                self.guard = Some(answer.guard);
                self.inner = inner;
                self.pending = Some(first);
                self.piece = Piece::new(want.prompt_tokens);
                self.strip_role = true;
                self.trace.resumptions += 1;
                self.handle.publish(&self.trace, false);
                Ok(())
            }
            Err(e2) => {
                tracing::debug!(kind = %e2.kind(), "stream could not be resumed");
                Err(self.give_up(e))
            }
        }
    }

    fn give_up(&mut self, e: Error) -> Error {
        self.done = true;
        self.handle.publish(&self.trace, true);
        e
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // A caller that drops the stream early still gets a final trace.
        if !self.done {
            self.handle.publish(&self.trace, true);
        }
    }
}

/// A choice that carries nothing once its role is removed.
fn is_empty(c: &ChunkChoice) -> bool {
    let d = &c.delta;
    c.finish_reason.is_none()
        && d.content.as_deref().is_none_or(str::is_empty)
        && d.reasoning_content.as_deref().is_none_or(str::is_empty)
        && d.refusal.as_deref().is_none_or(str::is_empty)
        && d.tool_calls.is_none()
        && d.extra.is_empty()
}

fn stalled(group: &Group, idx: usize, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "The stream stalled: no chunk for {:.1}s.",
            limit.as_secs_f64()
        ),
    )
    .with_provider(group.deployments[idx].provider.name())
}

/// Add `u` to `acc`, details included.
fn add_usage(acc: &mut Usage, u: &Usage) {
    acc.prompt_tokens += u.prompt_tokens;
    acc.completion_tokens += u.completion_tokens;
    acc.total_tokens += u.total_tokens;
    if let Some(d) = &u.prompt_tokens_details {
        let a = acc
            .prompt_tokens_details
            .get_or_insert_with(Default::default);
        if let Some(n) = d.cached_tokens {
            *a.cached_tokens.get_or_insert(0) += n;
        }
        if let Some(n) = d.audio_tokens {
            *a.audio_tokens.get_or_insert(0) += n;
        }
    }
    if let Some(d) = &u.completion_tokens_details {
        let a = acc
            .completion_tokens_details
            .get_or_insert_with(Default::default);
        if let Some(n) = d.reasoning_tokens {
            *a.reasoning_tokens.get_or_insert(0) += n;
        }
        if let Some(n) = d.audio_tokens {
            *a.audio_tokens.get_or_insert(0) += n;
        }
    }
}
