//! A scripted provider for router tests: each call takes the next [`Script`] (or the
//! default one), and every call and request is recorded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, Choice, ChunkChoice, Delta,
    Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, Error, ErrorKind, FinishReason,
    JsonObject, Provider, RerankRequest, RerankResponse, RerankResult, RerankTokens,
    ResponseMessage, Role, Usage,
};

/// How a stream goes wrong after some content chunks.
#[derive(Debug, Clone)]
pub(crate) enum Break {
    /// The stream yields this error.
    Error(Error),
    /// The stream goes silent forever.
    Stall,
}

/// What one call does.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Wait this long before answering (before the first chunk, for streams).
    delay: Duration,
    /// Never answer.
    hang: bool,
    /// Fail the call (`chat`/`embed`, or `chat_stream` before any chunk).
    fail: Option<Error>,
    /// Start the stream, but make its first item this error.
    fail_first_item: Option<Error>,
    /// The answer, in stream pieces (a chat answer is their concatenation).
    pieces: Vec<String>,
    /// After this many content chunks, break.
    break_after: Option<(usize, Break)>,
    /// Usage reported (`None` = none).
    usage: Option<Usage>,
}

impl Script {
    pub(crate) fn text(pieces: &[&str]) -> Self {
        Self {
            delay: Duration::ZERO,
            hang: false,
            fail: None,
            fail_first_item: None,
            pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
            break_after: None,
            usage: Some(Usage::new(10, pieces.len() as u64)),
        }
    }

    pub(crate) fn ok() -> Self {
        Self::text(&["ok"])
    }

    pub(crate) fn fail(e: Error) -> Self {
        Self {
            fail: Some(e),
            ..Self::ok()
        }
    }

    pub(crate) fn hang() -> Self {
        Self {
            hang: true,
            ..Self::ok()
        }
    }

    pub(crate) fn fail_first_item(mut self, e: Error) -> Self {
        self.fail_first_item = Some(e);
        self
    }

    pub(crate) fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    pub(crate) fn break_after(mut self, n: usize, how: Break) -> Self {
        self.break_after = Some((n, how));
        self
    }

    pub(crate) fn usage(mut self, prompt: u64, completion: u64) -> Self {
        self.usage = Some(Usage::new(prompt, completion));
        self
    }
}

/// An error of `kind` as a provider would report it.
pub(crate) fn err(kind: ErrorKind) -> Error {
    Error::new(kind, format!("fake {kind}")).with_provider("fake")
}

#[derive(Debug)]
pub(crate) struct Fake {
    model: String,
    default: Mutex<Script>,
    queue: Mutex<VecDeque<Script>>,
    calls: AtomicUsize,
    requests: Mutex<Vec<ChatRequest>>,
    reranks: Mutex<Vec<RerankRequest>>,
}

impl Fake {
    /// A fake answering every call with `default`.
    pub(crate) fn new(model: &str, default: Script) -> Arc<Self> {
        Arc::new(Self {
            model: model.to_owned(),
            default: Mutex::new(default),
            queue: Mutex::new(VecDeque::new()),
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            reranks: Mutex::new(Vec::new()),
        })
    }

    /// A fake answering "ok".
    pub(crate) fn ok(model: &str) -> Arc<Self> {
        Self::new(model, Script::ok())
    }

    /// Scripts for the next calls, in order; the default answers after them.
    pub(crate) fn then(self: &Arc<Self>, scripts: impl IntoIterator<Item = Script>) -> Arc<Self> {
        self.queue.lock().unwrap().extend(scripts);
        self.clone()
    }

    /// Replace the default script.
    pub(crate) fn set_default(&self, s: Script) {
        *self.default.lock().unwrap() = s;
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub(crate) fn reranks(&self) -> Vec<RerankRequest> {
        self.reranks.lock().unwrap().clone()
    }

    fn next(&self) -> Script {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let queued = self.queue.lock().unwrap().pop_front();
        queued.unwrap_or_else(|| self.default.lock().unwrap().clone())
    }

    async fn prelude(&self, s: &Script) -> Result<(), Error> {
        if s.hang {
            std::future::pending::<()>().await;
        }
        if !s.delay.is_zero() {
            tokio::time::sleep(s.delay).await;
        }
        match &s.fail {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        let mut c = ChatChunk::new(format!("chatcmpl-{}", self.model), self.model.clone(), 7);
        c.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        });
        c
    }
}

#[async_trait]
impl Provider for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, _cx: &CallContext) -> Result<ChatResponse, Error> {
        let hold = req.last_user_text().as_deref() == Some("hold");
        self.requests.lock().unwrap().push(req);
        if hold {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let s = self.next();
        self.prelude(&s).await?;
        Ok(ChatResponse {
            id: format!("chatcmpl-{}", self.model),
            object: "chat.completion".into(),
            created: 7,
            model: self.model.clone(),
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage::assistant(s.pieces.concat()),
                finish_reason: Some(FinishReason::Stop),
                logprobs: None,
            }],
            usage: s.usage,
            system_fingerprint: None,
            service_tier: None,
            extra: JsonObject::new(),
        })
    }

    async fn chat_stream(&self, req: ChatRequest, _cx: &CallContext) -> Result<ChatStream, Error> {
        self.requests.lock().unwrap().push(req);
        let s = self.next();
        self.prelude(&s).await?;
        let mut items: Vec<Result<ChatChunk, Error>> = Vec::new();
        if let Some(e) = s.fail_first_item {
            items.push(Err(e));
            return Ok(Box::pin(stream::iter(items)));
        }
        items.push(Ok(self.chunk(
            Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        )));
        let mut tail: ChatStream = Box::pin(stream::empty());
        for (i, p) in s.pieces.iter().enumerate() {
            if let Some((n, how)) = &s.break_after
                && i == *n
            {
                match how {
                    Break::Error(e) => items.push(Err(e.clone())),
                    Break::Stall => tail = Box::pin(stream::pending()),
                }
                return Ok(Box::pin(futures_util::StreamExt::chain(
                    stream::iter(items),
                    tail,
                )));
            }
            items.push(Ok(self.chunk(
                Delta {
                    content: Some(p.clone()),
                    ..Delta::default()
                },
                None,
            )));
        }
        items.push(Ok(self.chunk(Delta::default(), Some(FinishReason::Stop))));
        if let Some(u) = s.usage {
            let mut c = ChatChunk::new(format!("chatcmpl-{}", self.model), self.model.clone(), 7);
            c.usage = Some(u);
            items.push(Ok(c));
        }
        Ok(Box::pin(stream::iter(items)))
    }

    async fn embed(
        &self,
        _req: EmbeddingRequest,
        _cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        let s = self.next();
        self.prelude(&s).await?;
        Ok(EmbeddingResponse::new(
            self.model.clone(),
            vec![Embedding::new(0, vec![1.0, 0.0])],
            EmbeddingUsage {
                prompt_tokens: 3,
                total_tokens: 3,
            },
        ))
    }

    /// Ranks the documents in reverse order (last first), reporting 5 input tokens; the
    /// response id names the fake (`rerank-{model}`).
    async fn rerank(&self, req: RerankRequest, _cx: &CallContext) -> Result<RerankResponse, Error> {
        let n = req.documents.len() as u32;
        self.reranks.lock().unwrap().push(req);
        let s = self.next();
        self.prelude(&s).await?;
        let results = (0..n)
            .rev()
            .map(|i| RerankResult {
                index: i,
                relevance_score: f64::from(i + 1) / f64::from(n),
                document: None,
            })
            .collect();
        let mut out = RerankResponse::new(format!("rerank-{}", self.model), results);
        out.meta.tokens = Some(RerankTokens {
            input_tokens: Some(5),
            output_tokens: None,
        });
        Ok(out)
    }
}
