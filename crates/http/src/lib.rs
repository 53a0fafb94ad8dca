//! `llmux-http`: the one outbound HTTP client of an llmux process, and the small glue every
//! provider crate shares to use it.
//!
//! Owns: the process-wide pooled client (keep-alive, `TCP_NODELAY`, rustls), turning
//! transport failures into [`llmux_core::Error`]s that never mention URLs or credentials,
//! reading an upstream's SSE body as a stream of events, and `Retry-After` parsing.
//!
//! Must not: know any provider's wire format, routing, keys or prices. Providers build their
//! requests; this crate only sends them and reads what comes back.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use llmux_core::sse::{SseDecoder, SseEvent};
use llmux_core::{Error, ErrorKind, Origin};

pub use reqwest;

/// How the shared client is built.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Time to establish a TCP (+TLS) connection.
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
        }
    }
}

static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

/// The process-wide client: one connection pool shared by every provider and deployment.
pub fn client() -> &'static reqwest::Client {
    CLIENT.get_or_init(|| build_client(&ClientConfig::default()))
}

/// Install the process-wide client with `config`; returns false if it already existed.
pub fn init_client(config: &ClientConfig) -> bool {
    CLIENT.set(build_client(config)).is_ok()
}

/// Build a client with llmux's settings.
pub fn build_client(config: &ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .tcp_keepalive(Duration::from_secs(60))
        .user_agent(concat!("llmux/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Map a transport error (connect, timeout, broken body) to the taxonomy. The URL is
/// stripped: some providers carry keys in query strings.
pub fn transport_error(provider: &'static str, err: reqwest::Error) -> Error {
    let err = err.without_url();
    let (kind, what) = if err.is_timeout() {
        (ErrorKind::Timeout, "the upstream did not answer in time")
    } else if err.is_connect() {
        (
            ErrorKind::UpstreamUnavailable,
            "could not connect to the upstream",
        )
    } else if err.is_body() || err.is_decode() {
        (
            ErrorKind::UpstreamError,
            "the upstream connection broke while reading the response",
        )
    } else {
        (
            ErrorKind::UpstreamUnavailable,
            "the request to the upstream failed",
        )
    };
    Error::new(kind, format!("{provider}: {what}"))
        .with_origin(Origin::Upstream)
        .with_provider(provider)
        .with_source(err)
}

/// Parse an upstream URL once, when a deployment is built: reqwest would otherwise parse
/// the string again (IDNA, path normalisation) on every call, about 2 % of a gateway's CPU.
pub fn upstream_url(provider: &str, url: &str) -> Result<reqwest::Url, Error> {
    reqwest::Url::parse(url).map_err(|e| {
        Error::bad_request(format!("{provider}: invalid upstream URL (api_base): {e}"))
    })
}

/// The timeout error for a call that ran out of time.
pub fn timeout_error(provider: &'static str, after: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{provider}: the upstream did not answer within {} ms",
            after.as_millis()
        ),
    )
    .with_origin(Origin::Upstream)
    .with_provider(provider)
}

/// Send a request whose whole response (headers and body) must arrive within `timeout`,
/// and read the body. Returns the status, headers and body.
pub async fn send_and_read(
    provider: &'static str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Bytes), Error> {
    let fut = async {
        let resp = req.send().await.map_err(|e| transport_error(provider, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(provider, e))?;
        Ok((status, headers, body))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(timeout_error(provider, timeout)),
    }
}

/// Send a request whose response headers must arrive within `timeout`; the body is left
/// to stream.
pub async fn send_streaming(
    provider: &'static str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, Error> {
    match tokio::time::timeout(timeout, req.send()).await {
        Ok(r) => r.map_err(|e| transport_error(provider, e)),
        Err(_) => Err(timeout_error(provider, timeout)),
    }
}

/// `Retry-After` (seconds, or an HTTP date we treat as unknown) and `retry-after-ms`.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Replace every occurrence of each secret in `text` with `[redacted]`, and mask tokens
/// that look like API keys (`sk-…`), so upstream messages can be shown to clients.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "[redacted]");
        }
    }
    mask_key_like(&out)
}

fn mask_key_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sk-") {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let len = after
            .bytes()
            .skip(3)
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_' || *b == b'*')
            .count();
        if len >= 8 {
            out.push_str("sk-[redacted]");
        } else {
            out.push_str(&after[..3 + len]);
        }
        rest = &after[3 + len..];
    }
    out.push_str(rest);
    out
}

/// The upstream body as SSE events. Between two reads at most `idle_timeout` may pass.
/// A body cut in the middle of an event, an oversized event and a broken connection are
/// all `upstream_error`s, delivered as the stream's last item.
pub fn sse_events(
    provider: &'static str,
    resp: reqwest::Response,
    idle_timeout: Duration,
) -> impl Stream<Item = Result<SseEvent, Error>> + Send + 'static {
    struct State<S> {
        body: S,
        decoder: SseDecoder,
        ready: VecDeque<SseEvent>,
        scratch: Vec<SseEvent>,
        done: bool,
    }
    let state = State {
        body: Box::pin(resp.bytes_stream()),
        decoder: SseDecoder::new(),
        ready: VecDeque::new(),
        scratch: Vec::new(),
        done: false,
    };
    futures_util::stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(ev) = st.ready.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            let next = match tokio::time::timeout(idle_timeout, st.body.next()).await {
                Ok(n) => n,
                Err(_) => {
                    st.done = true;
                    return Some((Err(timeout_error(provider, idle_timeout)), st));
                }
            };
            match next {
                Some(Ok(bytes)) => {
                    if let Err(e) = st.decoder.feed(&bytes, &mut st.scratch) {
                        st.done = true;
                        let err = Error::new(ErrorKind::UpstreamError, format!("{provider}: {e}"))
                            .with_origin(Origin::Upstream)
                            .with_provider(provider);
                        return Some((Err(err), st));
                    }
                    st.ready.extend(st.scratch.drain(..));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(transport_error(provider, e)), st));
                }
                None => {
                    st.done = true;
                    if st.decoder.has_partial_event() {
                        let err = Error::new(
                            ErrorKind::UpstreamError,
                            format!(
                                "{provider}: the upstream stream ended in the middle of an event"
                            ),
                        )
                        .with_origin(Origin::Upstream)
                        .with_provider(provider);
                        return Some((Err(err), st));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_and_key_like_tokens() {
        let msg = "Incorrect API key provided: sk-proj-abcdefghijklmnop. Your key my-secret-value";
        let r = redact(msg, &["my-secret-value"]);
        assert!(!r.contains("abcdefghijklmnop"), "{r}");
        assert!(!r.contains("my-secret-value"), "{r}");
        assert!(r.contains("sk-[redacted]"));
        assert_eq!(redact("task-list sk-1", &[]), "task-list sk-1");
    }

    #[test]
    fn parses_retry_after() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
