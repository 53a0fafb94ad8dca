//! What every mock shares: the request log, the fault queue, stream accounting.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// The first header named `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A misbehaviour for the next request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and JSON body (and `Retry-After` seconds if set).
    Status {
        /// HTTP status.
        status: u16,
        /// Body, sent as JSON.
        body: serde_json::Value,
        /// `Retry-After` header value in seconds.
        retry_after: Option<u64>,
    },
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Stream this many chunks, then drop the connection without `[DONE]`.
    BrokenStream {
        /// Chunks sent before the break.
        after_chunks: usize,
    },
    /// Answer 200 with a body cut in the middle of the JSON.
    TruncatedJson,
    /// Stream `chunks` chunks with `delay` between them (for cancellation tests).
    SlowStream {
        /// How many content chunks.
        chunks: usize,
        /// Pause before each chunk.
        delay: Duration,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
    pub(crate) streams_started: AtomicUsize,
    pub(crate) streams_completed: AtomicUsize,
    pub(crate) streams_cancelled: AtomicUsize,
}

impl Recorder {
    pub(crate) fn record(&self, r: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn push_fault(&self, f: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(f);
    }

    pub(crate) fn next_fault(&self) -> Option<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

/// Counts a stream as cancelled when dropped before it was marked complete.
#[derive(Debug)]
pub(crate) struct StreamGuard {
    pub(crate) recorder: std::sync::Arc<Recorder>,
    pub(crate) completed: bool,
}

impl StreamGuard {
    /// Mark the stream as sent to the end, then count it.
    pub(crate) fn finish(mut self) {
        self.completed = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.completed {
            &self.recorder.streams_completed
        } else {
            &self.recorder.streams_cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// An event-stream response sending `events`, counted in `recorder` as completed or
/// cancelled. The first `eager` events go out at once; `delay` comes before each later one
/// (a stall mid-answer). `broken` ends the body with a connection error instead of its end.
pub(crate) fn sse_body(
    recorder: &Arc<Recorder>,
    events: Vec<bytes::Bytes>,
    eager: usize,
    delay: Duration,
    broken: bool,
) -> axum::response::Response {
    recorder.streams_started.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard {
        recorder: recorder.clone(),
        completed: false,
    };
    let stream = futures_util::stream::unfold(
        (events.into_iter(), guard, 0usize),
        move |(mut it, mut guard, sent): (_, StreamGuard, usize)| async move {
            match it.next() {
                Some(b) => {
                    if sent >= eager && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Some((Ok::<_, std::io::Error>(b), (it, guard, sent + 1)))
                }
                None if broken => {
                    // Let what was sent reach the client before the connection breaks.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.completed = true;
                    Some((
                        Err(std::io::Error::other("injected broken stream")),
                        (it, guard, sent),
                    ))
                }
                None => {
                    guard.finish();
                    None
                }
            }
        },
    );
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .header(axum::http::header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(stream))
        .expect("valid response")
}

/// Split `text` into at most `n` pieces on word boundaries (spaces kept), so the pieces
/// concatenate back to the text.
/// Serve `app` on an ephemeral port of 127.0.0.1 until the returned task is aborted (every
/// mock's `start`); the address it listens on.
pub(crate) async fn serve_on_loopback(
    app: axum::Router,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

pub(crate) fn split_words(text: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    let spaces: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| *c == ' ')
        .map(|(i, _)| i)
        .collect();
    if spaces.is_empty() || n == 1 {
        return vec![text.to_owned()];
    }
    let step = spaces.len().div_ceil(n - 1).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for cut in spaces.iter().step_by(step) {
        if *cut > start {
            out.push(text[start..*cut].to_owned());
            start = *cut;
        }
    }
    out.push(text[start..].to_owned());
    out
}
