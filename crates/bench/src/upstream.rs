//! The benchmark's mock upstream: fixed answers in OpenAI's Chat Completions format and in
//! Anthropic's Messages format (for the translation case), plain JSON or a server-sent
//! event stream of N content chunks, after a configurable delay.
//!
//! Built for speed, so that it is never the bottleneck of a gateway benchmark: hyper 1
//! directly (no router, no middleware), every answer pre-rendered, the request body only
//! scanned for `"stream": true` and `"include_usage": true` (never parsed), keep-alive and
//! `TCP_NODELAY` on every connection. It records nothing about requests: two counters only
//! (calls, streamed calls), so a driver can check one upstream call per client request.
//!
//! Endpoints:
//! - `POST /v1/chat/completions` (also `/chat/completions`): `chat.completion` JSON, or the
//!   `chat.completion.chunk` SSE stream ending in `data: [DONE]` (a usage chunk first when
//!   `stream_options.include_usage` is asked for);
//! - `POST /v1/messages`: an Anthropic `message`, or its event stream (`message_start` …
//!   `message_stop`);
//! - `GET /health`, `GET /v1/models`;
//! - `GET /__bench/stats`, `POST /__bench/reset`, and
//!   `POST /__bench/config?delay_ms=&chunk_delay_ms=&chunks=` to change the knobs at run
//!   time, so one upstream process serves a whole benchmark matrix.
//!
//! `delay_ms` is waited before the response head (the provider's time to first token);
//! `chunk_delay_ms` between stream events (token pacing).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The model name the upstream answers with.
const MODEL: &str = "bench-upstream";
/// A fixed `created` timestamp: answers are byte-identical across runs.
const CREATED: u64 = 1_700_000_000;
/// Prompt tokens every answer reports.
const PROMPT_TOKENS: usize = 12;

/// The upstream's knobs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Wait before the response head.
    pub delay: Duration,
    /// Content chunks per stream (and words of a plain answer).
    pub chunks: usize,
    /// Wait between stream events.
    pub chunk_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            chunks: 8,
            chunk_delay: Duration::ZERO,
        }
    }
}

/// A stream's events, one by one (paced streams) and as one buffer (unpaced ones).
#[derive(Debug, Clone)]
struct Events {
    each: Arc<[Bytes]>,
    whole: Bytes,
}

impl From<Vec<Bytes>> for Events {
    fn from(each: Vec<Bytes>) -> Self {
        let whole = Bytes::from(each.concat());
        Self {
            each: each.into(),
            whole,
        }
    }
}

/// Every answer, rendered once per `chunks` setting.
#[derive(Debug)]
struct Answers {
    openai_json: Bytes,
    /// Stream events without / with the usage chunk.
    openai_events: Events,
    openai_events_usage: Events,
    anthropic_json: Bytes,
    anthropic_events: Events,
}

impl Answers {
    fn render(chunks: usize) -> Self {
        let words: Vec<String> = (0..chunks).map(|i| format!("tok{i} ")).collect();
        let text = words.concat();
        let openai_json = serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED,
            "model": MODEL, "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks,
                "total_tokens": PROMPT_TOKENS + chunks}
        });
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            let v = serde_json::json!({
                "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
                "model": MODEL, "system_fingerprint": "fp_bench",
                "choices": [{"index": 0, "delta": delta, "logprobs": null,
                    "finish_reason": finish}]
            });
            Bytes::from(format!("data: {v}\n\n"))
        };
        let mut events = vec![chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            serde_json::Value::Null,
        )];
        for w in &words {
            events.push(chunk(
                serde_json::json!({"content": w}),
                serde_json::Value::Null,
            ));
        }
        events.push(chunk(serde_json::json!({}), serde_json::json!("stop")));
        let done = Bytes::from_static(b"data: [DONE]\n\n");
        let mut with_usage = events.clone();
        let usage = serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
            "model": MODEL, "choices": [],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks,
                "total_tokens": PROMPT_TOKENS + chunks}
        });
        with_usage.push(Bytes::from(format!("data: {usage}\n\n")));
        with_usage.push(done.clone());
        events.push(done);

        let anthropic_json = serde_json::json!({
            "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": chunks}
        });
        let event = |name: &str, data: serde_json::Value| {
            Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
        };
        let mut anthropic_events = vec![
            event(
                "message_start",
                serde_json::json!({"type": "message_start", "message": {
                    "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                serde_json::json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            ),
            event("ping", serde_json::json!({"type": "ping"})),
        ];
        for w in &words {
            anthropic_events.push(event(
                "content_block_delta",
                serde_json::json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": w}}),
            ));
        }
        anthropic_events.push(event(
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ));
        anthropic_events.push(event(
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": chunks}}),
        ));
        anthropic_events.push(event(
            "message_stop",
            serde_json::json!({"type": "message_stop"}),
        ));

        Self {
            openai_json: Bytes::from(openai_json.to_string()),
            openai_events: events.into(),
            openai_events_usage: with_usage.into(),
            anthropic_json: Bytes::from(anthropic_json.to_string()),
            anthropic_events: anthropic_events.into(),
        }
    }
}

/// The upstream's shared state: knobs, counters, rendered answers.
#[derive(Debug)]
pub struct Upstream {
    delay_ms: AtomicU64,
    chunk_delay_ms: AtomicU64,
    chunks: AtomicU64,
    calls: AtomicU64,
    stream_calls: AtomicU64,
    answers: RwLock<Arc<Answers>>,
}

type PacedEvents = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;
type AnswerBody = Either<Full<Bytes>, StreamBody<PacedEvents>>;

impl Upstream {
    /// An upstream with these knobs.
    pub fn new(settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            delay_ms: AtomicU64::new(millis(settings.delay)),
            chunk_delay_ms: AtomicU64::new(millis(settings.chunk_delay)),
            chunks: AtomicU64::new(settings.chunks as u64),
            calls: AtomicU64::new(0),
            stream_calls: AtomicU64::new(0),
            answers: RwLock::new(Arc::new(Answers::render(settings.chunks))),
        })
    }

    /// Serve on `listener` until `shutdown` completes.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let accept = async {
            loop {
                let socket = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors, mostly: back off instead of spinning.
                        eprintln!("llmux-bench upstream: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let this = Arc::clone(&self);
                tokio::spawn(async move {
                    let service = service_fn(move |req| Arc::clone(&this).handle(req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        };
        tokio::select! {
            () = accept => {}
            () = shutdown => {}
        }
    }

    fn answers(&self) -> Arc<Answers> {
        match self.answers.read() {
            Ok(a) => Arc::clone(&a),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn stats(&self) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "calls": self.calls.load(Ordering::Relaxed),
                "stream_calls": self.stream_calls.load(Ordering::Relaxed),
                "delay_ms": self.delay_ms.load(Ordering::Relaxed),
                "chunk_delay_ms": self.chunk_delay_ms.load(Ordering::Relaxed),
                "chunks": self.chunks.load(Ordering::Relaxed),
            })
            .to_string(),
        )
    }

    fn configure(&self, query: &str) -> Result<(), String> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let n: u64 = value
                .parse()
                .map_err(|_| format!("{key}: '{value}' is not a whole number"))?;
            match key {
                "delay_ms" => self.delay_ms.store(n, Ordering::Relaxed),
                "chunk_delay_ms" => self.chunk_delay_ms.store(n, Ordering::Relaxed),
                "chunks" => {
                    let n = n.min(100_000);
                    self.chunks.store(n, Ordering::Relaxed);
                    let rendered = Arc::new(Answers::render(n as usize));
                    match self.answers.write() {
                        Ok(mut a) => *a = rendered,
                        Err(poisoned) => *poisoned.into_inner() = rendered,
                    }
                }
                other => return Err(format!("unknown setting '{other}'")),
            }
        }
        Ok(())
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<AnswerBody>, Infallible> {
        let format = match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/chat/completions" | "/chat/completions") => Format::OpenAi,
            (&Method::POST, "/v1/messages") => Format::Anthropic,
            (&Method::GET, "/health") => {
                return Ok(json(
                    StatusCode::OK,
                    Bytes::from_static(b"{\"status\":\"ok\"}"),
                ));
            }
            (&Method::GET, "/v1/models" | "/models") => {
                let body = format!(
                    "{{\"object\":\"list\",\"data\":[{{\"id\":\"{MODEL}\",\"object\":\"model\",\"created\":{CREATED},\"owned_by\":\"llmux-bench\"}}]}}"
                );
                return Ok(json(StatusCode::OK, Bytes::from(body)));
            }
            (&Method::GET, "/__bench/stats") => return Ok(json(StatusCode::OK, self.stats())),
            (&Method::POST, "/__bench/reset") => {
                self.calls.store(0, Ordering::Relaxed);
                self.stream_calls.store(0, Ordering::Relaxed);
                return Ok(json(StatusCode::OK, self.stats()));
            }
            (&Method::POST, "/__bench/config") => {
                let query = req.uri().query().unwrap_or("").to_owned();
                return Ok(match self.configure(&query) {
                    Ok(()) => json(StatusCode::OK, self.stats()),
                    Err(e) => error(StatusCode::BAD_REQUEST, &e),
                });
            }
            _ => return Ok(error(StatusCode::NOT_FOUND, "no such endpoint")),
        };
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "could not read the body")),
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let stream = flag_is_true(&body, b"\"stream\"");
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let answers = self.answers();
        if !stream {
            let body = match format {
                Format::OpenAi => answers.openai_json.clone(),
                Format::Anthropic => answers.anthropic_json.clone(),
            };
            return Ok(json(StatusCode::OK, body));
        }
        self.stream_calls.fetch_add(1, Ordering::Relaxed);
        let events = match format {
            Format::OpenAi if flag_is_true(&body, b"\"include_usage\"") => {
                answers.openai_events_usage.clone()
            }
            Format::OpenAi => answers.openai_events.clone(),
            Format::Anthropic => answers.anthropic_events.clone(),
        };
        let gap = Duration::from_millis(self.chunk_delay_ms.load(Ordering::Relaxed));
        let mut resp = Response::new(Either::Right(StreamBody::new(paced(events, gap))));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(resp)
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    OpenAi,
    Anthropic,
}

/// The events as body frames: all in one frame when there is no gap (one write, the
/// cheapest for the upstream), else one frame per event, `gap` apart.
fn paced(events: Events, gap: Duration) -> PacedEvents {
    if gap.is_zero() {
        return Box::pin(futures_util::stream::iter([Ok(Frame::data(events.whole))]));
    }
    let events = events.each;
    Box::pin(futures_util::stream::unfold(0usize, move |i| {
        let events = Arc::clone(&events);
        async move {
            let event = events.get(i)?.clone();
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            Some((Ok(Frame::data(event)), i + 1))
        }
    }))
}

/// Whether the JSON text has `key` (quoted) followed by `:` and `true`, whitespace allowed.
/// A scan, not a parse: the upstream must cost next to nothing per request.
pub fn flag_is_true(body: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = find(&body[from..], key) {
        let rest = &body[from + at + key.len()..];
        let rest = rest.trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":")
            && value.trim_ascii_start().starts_with(b"true")
        {
            return true;
        }
        from += at + 1;
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn json(status: StatusCode, body: Bytes) -> Response<AnswerBody> {
    let mut resp = Response::new(Either::Left(Full::new(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, message: &str) -> Response<AnswerBody> {
    let body = serde_json::json!({"error": {"message": message,
        "type": "invalid_request_error", "param": null, "code": null}});
    json(status, Bytes::from(body.to_string()))
}

/// Bind `addr` and serve until `shutdown`; returns the bound address through `bound`
/// before serving (port 0 picks a free port).
pub async fn run(
    addr: SocketAddr,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    bound(listener.local_addr()?);
    Upstream::new(settings).serve(listener, shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flag_scan() {
        assert!(flag_is_true(
            br#"{"model":"m","stream":true}"#,
            b"\"stream\""
        ));
        assert!(flag_is_true(br#"{"stream" :  true}"#, b"\"stream\""));
        assert!(!flag_is_true(br#"{"stream":false}"#, b"\"stream\""));
        assert!(!flag_is_true(br#"{"model":"m"}"#, b"\"stream\""));
        // The key must be followed by a colon: a value "stream" is not the key.
        assert!(!flag_is_true(
            br#"{"x":"stream", "y": true}"#,
            b"\"stream\""
        ));
        assert!(flag_is_true(
            br#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            b"\"include_usage\""
        ));
        assert!(!flag_is_true(b"", b"\"stream\""));
    }

    fn data_lines(events: &Events) -> Vec<serde_json::Value> {
        events
            .each
            .iter()
            .flat_map(|e| {
                std::str::from_utf8(e)
                    .expect("utf-8")
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .filter(|d| *d != "[DONE]")
                    .map(|d| serde_json::from_str(d).expect("each data line is JSON"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn openai_stream_carries_the_plain_answer_and_ends_in_done() {
        let a = Answers::render(3);
        let plain: serde_json::Value = serde_json::from_slice(&a.openai_json).expect("json");
        let content = plain["choices"][0]["message"]["content"]
            .as_str()
            .expect("text");
        let chunks = data_lines(&a.openai_events);
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(streamed, content);
        assert_eq!(content, "tok0 tok1 tok2 ");
        assert_eq!(
            a.openai_events.each.last().map(|b| b.as_ref()),
            Some(&b"data: [DONE]\n\n"[..])
        );
        assert_eq!(a.openai_events.whole, a.openai_events.each.concat());
        assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        let with_usage = data_lines(&a.openai_events_usage);
        let usage = with_usage.last().expect("a usage chunk");
        assert_eq!(usage["usage"]["completion_tokens"], 3);
        assert_eq!(usage["choices"], serde_json::json!([]));
    }

    #[test]
    fn anthropic_stream_is_the_messages_event_sequence() {
        let a = Answers::render(2);
        let names: Vec<&str> = a
            .anthropic_events
            .each
            .iter()
            .map(|e| {
                let s = std::str::from_utf8(e).expect("utf-8");
                s.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("event: "))
                    .expect("named event")
            })
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        // Each event's `type` matches its name.
        for (event, data) in names.iter().zip(data_lines(&a.anthropic_events)) {
            assert_eq!(data["type"], *event);
        }
        let plain: serde_json::Value = serde_json::from_slice(&a.anthropic_json).expect("json");
        assert_eq!(plain["content"][0]["text"], "tok0 tok1 ");
        assert_eq!(plain["usage"]["output_tokens"], 2);
    }

    #[test]
    fn config_rejects_unknown_and_non_numeric_settings() {
        let up = Upstream::new(Settings::default());
        assert!(up.configure("delay_ms=50&chunks=3").is_ok());
        assert_eq!(up.delay_ms.load(Ordering::Relaxed), 50);
        assert_eq!(up.answers().openai_events.each.len(), 3 + 3);
        assert!(up.configure("delay_ms=soon").is_err());
        assert!(up.configure("colour=3").is_err());
    }
}
