//! What every mock shares: the request log, the fault queue, stream accounting.

use std::collections::VecDeque;
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
