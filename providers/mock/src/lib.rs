//! `llmux-provider-mock`: the built-in deterministic provider (`mock/…`), for demos, tests
//! and benchmarks. It needs no network and no credentials.
//!
//! Every `mock/<name>` model answers with the last user message (`mock/echo` is the
//! documented one). A request can force an answer or a failure, like LiteLLM's
//! `mock_response`:
//! - `"mock_response": "text"` — answer with this text;
//! - `"mock_response": "litellm.RateLimitError"` (any LiteLLM exception name below) or
//!   `"mock_response": {"error": "rate_limited", "message": "…"}` (any llmux error kind) —
//!   fail with that error;
//! - `"mock_delay"` (seconds) — wait before answering;
//! - `"mock_chunks"` — how many chunks a stream has; `"mock_chunk_delay_ms"` — the pause
//!   between them.
//!
//! Deployment `params` set the same knobs per deployment (`mock_response`, `delay_ms`,
//! `chunks`, `chunk_delay_ms`). Usage is estimated at one token per four characters.
//!
//! Must not: touch the network, or be needed by any other crate.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, Choice, ChunkChoice, Delta,
    DeploymentSettings, Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse,
    EmbeddingUsage, Error, ErrorKind, FinishReason, JsonObject, ModelCard, ModelList, Provider,
    ProviderFactory, ResponseMessage, Role, Usage,
};
use serde_json::Value;

/// Default number of content chunks in a stream.
pub const DEFAULT_CHUNKS: usize = 4;

/// The mock, bound to one model name.
#[derive(Debug, Clone)]
pub struct Mock {
    model: String,
    response: Option<Value>,
    delay: Duration,
    chunks: usize,
    chunk_delay: Duration,
}

/// What one call should do, after request and deployment knobs are combined.
#[derive(Debug)]
enum Plan {
    Answer(String),
    Fail(Error),
}

impl Mock {
    /// A mock for `settings.model`, reading its knobs from `settings.params`.
    pub fn new(settings: &DeploymentSettings) -> Self {
        let p = &settings.params;
        let ms = |k: &str| Duration::from_millis(p.get(k).and_then(Value::as_u64).unwrap_or(0));
        Self {
            model: settings.model.clone(),
            response: p.get("mock_response").cloned(),
            delay: ms("delay_ms"),
            chunks: p
                .get("chunks")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_CHUNKS, |n| n.max(1) as usize),
            chunk_delay: ms("chunk_delay_ms"),
        }
    }

    fn plan(&self, req: &ChatRequest) -> Plan {
        match req.extra.get("mock_response").or(self.response.as_ref()) {
            Some(v) => plan_from(v),
            None => Plan::Answer(req.last_user_text().unwrap_or_default()),
        }
    }

    fn delay(&self, req: &ChatRequest) -> Duration {
        req.extra
            .get("mock_delay")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(self.delay, |s| Duration::from_secs_f64(s.min(600.0)))
    }
}

fn plan_from(v: &Value) -> Plan {
    match v {
        Value::String(s) => match litellm_exception(s) {
            Some(kind) => Plan::Fail(mock_error(kind, &format!("mock_response requested {s}"))),
            None => Plan::Answer(s.clone()),
        },
        Value::Object(o) => {
            let kind = o
                .get("error")
                .cloned()
                .and_then(|k| serde_json::from_value::<ErrorKind>(k).ok())
                .unwrap_or(ErrorKind::Internal);
            let msg = o
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("mock error");
            Plan::Fail(mock_error(kind, msg))
        }
        other => Plan::Answer(other.to_string()),
    }
}

fn mock_error(kind: ErrorKind, message: &str) -> Error {
    let mut e = Error::new(kind, format!("mock: {message}")).with_provider("mock");
    if kind == ErrorKind::RateLimited {
        e = e.with_retry_after(Duration::from_secs(1));
    }
    e
}

/// LiteLLM's exception names, as accepted in `mock_response`.
fn litellm_exception(s: &str) -> Option<ErrorKind> {
    let name = s.strip_prefix("litellm.")?;
    Some(match name {
        "RateLimitError" => ErrorKind::RateLimited,
        "ContextWindowExceededError" => ErrorKind::ContextWindowExceeded,
        "ContentPolicyViolationError" => ErrorKind::ContentPolicy,
        "BadRequestError" | "UnsupportedParamsError" => ErrorKind::BadRequest,
        "AuthenticationError" => ErrorKind::Auth,
        "PermissionDeniedError" => ErrorKind::Permission,
        "NotFoundError" => ErrorKind::NotFound,
        "Timeout" => ErrorKind::Timeout,
        "APIConnectionError" | "ServiceUnavailableError" => ErrorKind::UpstreamUnavailable,
        "InternalServerError" | "APIError" => ErrorKind::UpstreamError,
        _ => return None,
    })
}

/// One token per four characters, at least one for non-empty text.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn prompt_tokens(req: &ChatRequest) -> u64 {
    req.messages
        .iter()
        .map(|m| estimate_tokens(&m.text_content()) + 3)
        .sum()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn completion_id(cx: &CallContext) -> String {
    if cx.request_id.is_empty() {
        "chatcmpl-mock".to_owned()
    } else {
        format!("chatcmpl-mock-{}", cx.request_id)
    }
}

/// Split `text` into at most `n` pieces (char boundaries), which concatenate back to it.
fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[async_trait]
impl Provider for Mock {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let delay = self.delay(&req);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let text = match self.plan(&req) {
            Plan::Answer(t) => t,
            Plan::Fail(e) => return Err(e),
        };
        let usage = Usage::new(prompt_tokens(&req), estimate_tokens(&text));
        Ok(ChatResponse {
            id: completion_id(cx),
            object: "chat.completion".into(),
            created: now(),
            model: self.model.clone(),
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage::assistant(text),
                finish_reason: Some(FinishReason::Stop),
                logprobs: None,
            }],
            usage: Some(usage),
            system_fingerprint: None,
            service_tier: None,
            extra: JsonObject::new(),
        })
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let delay = self.delay(&req);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let text = match self.plan(&req) {
            Plan::Answer(t) => t,
            Plan::Fail(e) => return Err(e),
        };
        let chunks = req
            .extra
            .get("mock_chunks")
            .and_then(Value::as_u64)
            .map_or(self.chunks, |n| n.clamp(1, 10_000) as usize);
        let pause = req
            .extra
            .get("mock_chunk_delay_ms")
            .and_then(Value::as_u64)
            .map_or(self.chunk_delay, |ms| Duration::from_millis(ms.min(60_000)));
        let usage = Usage::new(prompt_tokens(&req), estimate_tokens(&text));
        let base = ChatChunk::new(completion_id(cx), self.model.clone(), now());
        let mut out = Vec::with_capacity(chunks + 2);
        for (i, piece) in split(&text, chunks).into_iter().enumerate() {
            let mut c = base.clone();
            c.choices.push(ChunkChoice {
                index: 0,
                delta: Delta {
                    role: (i == 0).then_some(Role::Assistant),
                    content: Some(piece),
                    ..Delta::default()
                },
                finish_reason: None,
                logprobs: None,
            });
            out.push(c);
        }
        let mut last = base.clone();
        last.choices.push(ChunkChoice {
            index: 0,
            delta: Delta::default(),
            finish_reason: Some(FinishReason::Stop),
            logprobs: None,
        });
        out.push(last);
        let mut usage_chunk = base;
        usage_chunk.usage = Some(usage);
        out.push(usage_chunk);
        let stream = futures_util::stream::unfold(
            (out.into_iter(), false),
            move |(mut it, started)| async move {
                let c = it.next()?;
                if started && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok(c), (it, true)))
            },
        );
        Ok(Box::pin(stream))
    }

    async fn embed(
        &self,
        req: EmbeddingRequest,
        _cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        let texts: Vec<String> = match &req.input {
            EmbeddingInput::Text(s) => vec![s.clone()],
            EmbeddingInput::Texts(v) => v.clone(),
            EmbeddingInput::Tokens(t) => vec![format!("{t:?}")],
            EmbeddingInput::TokenArrays(v) => v.iter().map(|t| format!("{t:?}")).collect(),
        };
        if texts.is_empty() {
            return Err(Error::bad_request("'input' must not be empty").with_param("input"));
        }
        let dims = req.dimensions.unwrap_or(16).clamp(1, 8192) as usize;
        let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
        let data = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Embedding::new(i as u32, vector(t, dims)))
            .collect();
        Ok(EmbeddingResponse::new(
            self.model.clone(),
            data,
            EmbeddingUsage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        ))
    }

    async fn list_models(&self, _cx: &CallContext) -> Result<ModelList, Error> {
        Ok(ModelList::new(vec![ModelCard::new("echo", "llmux")]))
    }
}

/// A deterministic unit vector derived from the text.
fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims)
        .map(|d| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (d as u64).wrapping_mul(0x9e37_79b9);
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            ((h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Mock::new(settings)))
}

fn from_env(_env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    Some(DeploymentSettings::new("mock", "*"))
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "mock",
        description: "built-in deterministic mock (echo, forced answers and errors)",
        default_api_base: "",
        capabilities: &[llmux_core::Capability::Chat, llmux_core::Capability::Embeddings],
        build,
        from_env,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use serde_json::json;

    use super::*;

    fn mock() -> Mock {
        Mock::new(&DeploymentSettings::new("mock", "echo"))
    }

    fn req(text: &str) -> ChatRequest {
        ChatRequest::new("mock/echo")
            .system("be brief")
            .user("first")
            .user(text)
    }

    #[tokio::test]
    async fn echoes_the_last_user_message() {
        let r = mock()
            .chat(req("hi there"), &CallContext::default())
            .await
            .unwrap();
        assert_eq!(r.text(), Some("hi there"));
        assert_eq!(r.model, "echo");
        let u = r.usage.unwrap();
        assert_eq!(u.completion_tokens, 2);
        assert_eq!(u.prompt_tokens, (2 + 3) + (2 + 3) + (2 + 3));
    }

    #[tokio::test]
    async fn stream_has_the_chosen_chunks_and_ends_with_usage() {
        let mut r = req("abcdefghij");
        r.extra.insert("mock_chunks".into(), json!(5));
        let s = mock()
            .chat_stream(r, &CallContext::default())
            .await
            .unwrap();
        let chunks: Vec<_> = s.map(Result::unwrap).collect().await;
        assert_eq!(chunks.len(), 5 + 2);
        let text: String = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .filter_map(|c| c.delta.content.clone())
            .collect();
        assert_eq!(text, "abcdefghij");
        assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(chunks[5].choices[0].finish_reason, Some(FinishReason::Stop));
        assert!(chunks[6].is_usage_only());
    }

    #[tokio::test]
    async fn forced_answers_and_errors() {
        let m = mock();
        let cx = CallContext::default();
        let mut r = req("x");
        r.extra.insert("mock_response".into(), json!("forced"));
        assert_eq!(m.chat(r, &cx).await.unwrap().text(), Some("forced"));
        for (v, kind) in [
            (json!("litellm.RateLimitError"), ErrorKind::RateLimited),
            (
                json!("litellm.ContextWindowExceededError"),
                ErrorKind::ContextWindowExceeded,
            ),
            (json!("litellm.Timeout"), ErrorKind::Timeout),
            (
                json!({"error": "upstream_unavailable"}),
                ErrorKind::UpstreamUnavailable,
            ),
            (
                json!({"error": "content_policy", "message": "no"}),
                ErrorKind::ContentPolicy,
            ),
        ] {
            let mut r = req("x");
            r.extra.insert("mock_response".into(), v.clone());
            assert_eq!(
                m.chat(r.clone(), &cx).await.unwrap_err().kind(),
                kind,
                "{v}"
            );
            assert_eq!(
                m.chat_stream(r, &cx).await.err().unwrap().kind(),
                kind,
                "{v}"
            );
        }
    }

    #[tokio::test]
    async fn deployment_params_set_defaults() {
        let mut s = DeploymentSettings::new("mock", "fixed");
        s.params
            .insert("mock_response".into(), json!("always this"));
        s.params.insert("chunks".into(), json!(2));
        let m = Mock::new(&s);
        let cx = CallContext::default();
        assert_eq!(
            m.chat(req("x"), &cx).await.unwrap().text(),
            Some("always this")
        );
        let n = m.chat_stream(req("x"), &cx).await.unwrap().count().await;
        assert_eq!(n, 2 + 2);
    }

    #[tokio::test]
    async fn embeddings_are_deterministic_unit_vectors() {
        let m = mock();
        let r = EmbeddingRequest {
            model: "mock/echo".into(),
            input: EmbeddingInput::Texts(vec!["a".into(), "b".into(), "a".into()]),
            encoding_format: None,
            dimensions: Some(8),
            user: None,
            extra: JsonObject::new(),
        };
        let out = m.embed(r, &CallContext::default()).await.unwrap();
        let vecs: Vec<Vec<f32>> = out
            .data
            .iter()
            .map(|e| match &e.embedding {
                llmux_core::EmbeddingVector::Float(v) => v.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(vecs[0], vecs[2]);
        assert_ne!(vecs[0], vecs[1]);
        let norm: f32 = vecs[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(vecs[0].len(), 8);
    }

    #[test]
    fn split_concatenates_back() {
        for (t, n) in [("hello", 3), ("", 4), ("héllo wörld", 20), ("ab", 1)] {
            let parts = split(t, n);
            assert_eq!(parts.concat(), t);
            assert!(parts.len() <= n.max(1));
        }
    }
}
