//! The load generator: HTTP/1.1 `POST`s of one fixed body over keep-alive connections, for
//! a bounded time, with exact latency percentiles.
//!
//! Two ways to offer load:
//! - closed loop ([`Mode::Closed`]): `concurrency` connections, each sending its next
//!   request as soon as the previous one is answered. Latency is measured from the send
//!   (a new connection's set-up is not counted).
//! - open loop ([`Mode::Open`]): requests scheduled at a fixed rate whatever the answers
//!   do, served by a pool of up to `max_connections` connections. Latency is measured from
//!   each request's *scheduled* time, so time spent waiting for a free connection counts
//!   (no coordinated omission: a stalled server cannot hide its stall by slowing the
//!   client down).
//!
//! For each request it records the time to the response head (TTFB), to the first body
//! bytes (for a stream: the first event, the time to first token) and to the last byte.
//! A request counts as ok only with a 2xx status and, for a stream, a body that ends in
//! `data: [DONE]`. Requests still in flight when the run's grace period ends are
//! `aborted`, not errors. The report is one JSON object ([`Report::to_json`]).
//!
//! Only what a run needs: no retries, no redirects, no TLS, no HTTP/2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use crate::stats::Samples;

/// How load is offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `concurrency` connections, each one request at a time, back to back.
    Closed {
        /// Connections (= requests in flight).
        concurrency: usize,
    },
    /// `rate` requests per second on schedule, over at most `max_connections` connections.
    Open {
        /// Offered requests per second.
        rate: f64,
        /// Most connections (and so requests in flight) at once.
        max_connections: usize,
    },
}

/// One run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `host:port` to connect to.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Extra request headers (e.g. `authorization`).
    pub headers: HeaderMap,
    /// The request body (JSON).
    pub body: Bytes,
    /// Whether the answer is a server-sent event stream (checked for `data: [DONE]`).
    pub stream: bool,
    /// How load is offered.
    pub mode: Mode,
    /// How long new requests are sent.
    pub duration: Duration,
    /// How long requests in flight at the end of `duration` may still finish.
    pub grace: Duration,
    /// Longest time one request may take once sent.
    pub timeout: Duration,
    /// Most connections being opened at once (a ramp for very many connections).
    pub connect_parallelism: usize,
}

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    Ok {
        total: Duration,
        head: Duration,
        first_bytes: Option<Duration>,
    },
    Failed(&'static str),
    Aborted,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    total: Samples,
    head: Samples,
    first_bytes: Samples,
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
    aborted: u64,
    elapsed: Duration,
    peak_in_flight: i64,
    peak_streaming: i64,
}

impl Report {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok {
                total,
                head,
                first_bytes,
            } => {
                self.ok += 1;
                self.total.push(total);
                self.head.push(head);
                if let Some(t) = first_bytes {
                    self.first_bytes.push(t);
                }
            }
            Outcome::Failed(kind) => *self.errors.entry(kind).or_default() += 1,
            Outcome::Aborted => self.aborted += 1,
        }
    }

    /// Requests answered correctly.
    pub fn ok(&self) -> u64 {
        self.ok
    }

    /// Requests that failed (any kind).
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The run as JSON: counts, `rps` (ok requests per second of the run), and
    /// `latency_ms` / `ttfb_ms` / `ttft_ms` summaries (see [`Samples::summary`]).
    pub fn to_json(self, spec: &Spec) -> Value {
        let (mode, concurrency, rate, max_connections) = match spec.mode {
            Mode::Closed { concurrency } => ("closed", Some(concurrency), None, None),
            Mode::Open {
                rate,
                max_connections,
            } => ("open", None, Some(rate), Some(max_connections)),
        };
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let errors = self.errors();
        json!({
            "mode": mode,
            "concurrency": concurrency,
            "rate": rate,
            "max_connections": max_connections,
            "stream": spec.stream,
            "path": spec.path,
            "duration_s": spec.duration.as_secs_f64(),
            "elapsed_s": round3(secs),
            "ok": self.ok,
            "errors": errors,
            "error_kinds": self.errors,
            "aborted": self.aborted,
            "rps": round3(self.ok as f64 / secs),
            "peak_in_flight": self.peak_in_flight,
            "peak_streaming": self.peak_streaming,
            "latency_ms": self.total.summary(),
            "ttfb_ms": self.head.summary(),
            "ttft_ms": if spec.stream { self.first_bytes.summary() } else { Value::Null },
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// State every request task of a run shares.
#[derive(Debug)]
struct Shared {
    spec: Spec,
    connect_slots: Semaphore,
    in_flight: AtomicI64,
    peak_in_flight: AtomicI64,
    streaming: AtomicI64,
    peak_streaming: AtomicI64,
}

impl Shared {
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, &'static str> {
        let _slot = self.connect_slots.acquire().await.map_err(|_| "connect")?;
        let tcp = TcpStream::connect(self.spec.addr)
            .await
            .map_err(|_| "connect")?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|_| "connect")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, &'static str> {
        let mut req = Request::post(self.spec.path.as_str())
            .body(Full::new(self.spec.body.clone()))
            .map_err(|_| "request")?;
        let headers = req.headers_mut();
        headers.insert(
            HOST,
            HeaderValue::from_str(&self.spec.host).map_err(|_| "request")?,
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &self.spec.headers {
            headers.insert(name, value.clone());
        }
        Ok(req)
    }

    /// One request on `sender`; times are measured from `origin`.
    async fn exchange(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        origin: Instant,
    ) -> Result<Outcome, &'static str> {
        sender.ready().await.map_err(|_| "closed")?;
        let req = self.request()?;
        let _in_flight = Gauge::enter(&self.in_flight, &self.peak_in_flight);
        let resp = sender.send_request(req).await.map_err(|_| "send")?;
        let head = origin.elapsed();
        let status = resp.status();
        let _streaming = Gauge::enter(&self.streaming, &self.peak_streaming);
        let mut body = resp.into_body();
        let mut first_bytes = None;
        let mut tail = Tail::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| "body")?;
            if let Some(data) = frame.data_ref()
                && !data.is_empty()
            {
                first_bytes.get_or_insert_with(|| origin.elapsed());
                tail.push(data);
            }
        }
        let total = origin.elapsed();
        if !status.is_success() {
            return Ok(Outcome::Failed(status_kind(status.as_u16())));
        }
        if first_bytes.is_none() {
            return Ok(Outcome::Failed("empty_body"));
        }
        if self.spec.stream && !tail.ends_with_done() {
            return Ok(Outcome::Failed("stream_without_done"));
        }
        Ok(Outcome::Ok {
            total,
            head,
            first_bytes,
        })
    }

    /// Send one request on `sender` (or a new connection), bounded by the request
    /// timeout and by `hard_stop`; times from `scheduled`, else from the send. Gives the
    /// connection back when it can be reused.
    async fn attempt(
        &self,
        sender: Option<SendRequest<Full<Bytes>>>,
        scheduled: Option<Instant>,
        hard_stop: Instant,
    ) -> (Outcome, Option<SendRequest<Full<Bytes>>>) {
        let limit = (Instant::now() + self.spec.timeout).min(hard_stop);
        let run = async {
            let mut sender = match sender {
                Some(mut s) => {
                    // A server may close a keep-alive connection between requests (nginx
                    // after 1000 requests, with `Connection: close`): that is no failed
                    // request, open a new connection.
                    if s.ready().await.is_err() {
                        s = self.connect().await?;
                    }
                    s
                }
                None => self.connect().await?,
            };
            // Open loop: from the scheduled time; closed loop: from the send, once a
            // connection is there.
            let origin = scheduled.unwrap_or_else(Instant::now);
            let outcome = self.exchange(&mut sender, origin).await?;
            Ok::<_, &'static str>((outcome, sender))
        };
        match timeout_at(limit, run).await {
            Ok(Ok((outcome, sender))) => (outcome, Some(sender)),
            Ok(Err(kind)) => (Outcome::Failed(kind), None),
            Err(_) if limit >= hard_stop => (Outcome::Aborted, None),
            Err(_) => (Outcome::Failed("timeout"), None),
        }
    }
}

/// An in-flight counter with a high-water mark, decremented on drop.
struct Gauge<'a>(&'a AtomicI64);

impl<'a> Gauge<'a> {
    fn enter(now: &'a AtomicI64, peak: &AtomicI64) -> Self {
        let n = now.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(n, Ordering::Relaxed);
        Self(now)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The last bytes of a body, to check how a stream ended without keeping it.
#[derive(Debug, Default)]
struct Tail(Vec<u8>);

impl Tail {
    const KEEP: usize = 32;

    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(Self::KEEP)..];
        self.0.extend_from_slice(data);
        let excess = self.0.len().saturating_sub(Self::KEEP);
        self.0.drain(..excess);
    }

    fn ends_with_done(&self) -> bool {
        self.0.trim_ascii_end().ends_with(b"data: [DONE]")
    }
}

/// Statuses named in a report; others are grouped by class.
const NAMED_STATUSES: [(u16, &str); 10] = [
    (400, "status_400"),
    (401, "status_401"),
    (403, "status_403"),
    (404, "status_404"),
    (408, "status_408"),
    (429, "status_429"),
    (500, "status_500"),
    (502, "status_502"),
    (503, "status_503"),
    (504, "status_504"),
];

fn status_kind(status: u16) -> &'static str {
    if let Some((_, name)) = NAMED_STATUSES.iter().find(|(s, _)| *s == status) {
        return name;
    }
    match status {
        400..=499 => "status_4xx",
        500..=599 => "status_5xx",
        _ => "status_other",
    }
}

/// Run `spec` to the end and report.
pub async fn run(spec: Spec) -> Report {
    let shared = Arc::new(Shared {
        connect_slots: Semaphore::new(spec.connect_parallelism.max(1)),
        in_flight: AtomicI64::new(0),
        peak_in_flight: AtomicI64::new(0),
        streaming: AtomicI64::new(0),
        peak_streaming: AtomicI64::new(0),
        spec,
    });
    let start = Instant::now();
    let deadline = start + shared.spec.duration;
    let hard_stop = deadline + shared.spec.grace;
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let collector = tokio::spawn(async move {
        let mut report = Report::default();
        while let Some(outcome) = rx.recv().await {
            report.add(outcome);
        }
        report
    });
    match shared.spec.mode {
        Mode::Closed { concurrency } => {
            for _ in 0..concurrency.max(1) {
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                tokio::spawn(closed_loop(shared, tx, deadline, hard_stop));
            }
        }
        Mode::Open {
            rate,
            max_connections,
        } => {
            open_loop(
                Arc::clone(&shared),
                tx.clone(),
                rate,
                max_connections,
                deadline,
                hard_stop,
            )
            .await;
        }
    }
    drop(tx);
    let mut report = collector.await.unwrap_or_default();
    report.elapsed = start.elapsed().min(hard_stop - start);
    report.peak_in_flight = shared.peak_in_flight.load(Ordering::Relaxed);
    report.peak_streaming = shared.peak_streaming.load(Ordering::Relaxed);
    report
}

/// One connection's worth of a closed loop.
async fn closed_loop(
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outcome>,
    deadline: Instant,
    hard_stop: Instant,
) {
    let mut sender = None;
    while Instant::now() < deadline {
        let (outcome, back) = shared.attempt(sender.take(), None, hard_stop).await;
        let failed_to_connect = back.is_none() && matches!(outcome, Outcome::Failed("connect"));
        sender = back;
        if tx.send(outcome).is_err() {
            return;
        }
        if failed_to_connect {
            // Do not spin on a refused connect.
            sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Schedule requests at `rate` until `deadline`; each runs in its own task on a pooled
/// connection, its latency measured from its scheduled time.
async fn open_loop(
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outcome>,
    rate: f64,
    max_connections: usize,
    deadline: Instant,
    hard_stop: Instant,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let idle: Arc<std::sync::Mutex<Vec<SendRequest<Full<Bytes>>>>> = Arc::default();
    let start = Instant::now();
    let rate = if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        1.0
    };
    for i in 0u64.. {
        let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
        if scheduled >= deadline {
            break;
        }
        if scheduled > Instant::now() {
            sleep_until(scheduled).await;
        }
        let (shared, tx, slots, idle) = (
            Arc::clone(&shared),
            tx.clone(),
            Arc::clone(&slots),
            Arc::clone(&idle),
        );
        tokio::spawn(async move {
            let Ok(Ok(_slot)) = timeout_at(hard_stop, slots.acquire_owned()).await else {
                let _ = tx.send(Outcome::Aborted);
                return;
            };
            let pooled = idle.lock().ok().and_then(|mut v| v.pop());
            let (outcome, back) = shared.attempt(pooled, Some(scheduled), hard_stop).await;
            if let Some(sender) = back
                && let Ok(mut v) = idle.lock()
            {
                v.push(sender);
            }
            let _ = tx.send(outcome);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_only_the_end_across_frames() {
        let mut t = Tail::default();
        t.push(b"data: {\"choices\":[]}\n\n");
        t.push(&[b'x'; 100]);
        assert!(!t.ends_with_done());
        t.push(b"data: [DO");
        t.push(b"NE]\n\n");
        assert!(t.ends_with_done());
        assert!(t.0.len() <= Tail::KEEP);
    }

    #[test]
    fn status_kinds_name_the_common_codes() {
        assert_eq!(status_kind(429), "status_429");
        assert_eq!(status_kind(418), "status_4xx");
        assert_eq!(status_kind(599), "status_5xx");
    }
}
