//! `llmux-provider-anthropic`: Anthropic's Messages API (`POST /v1/messages`), plain and
//! streamed, behind the canonical OpenAI-shaped types.
//!
//! Owns: translating a canonical chat request into an Anthropic body (system lifting, turn
//! merging, content blocks, tools, JSON mode, extended thinking, prompt caching), reading
//! Anthropic messages and stream events back into completions and chunks, mapping
//! Anthropic's error bodies onto the taxonomy, and the deployment's headers (`x-api-key`,
//! `anthropic-version`, `anthropic-beta`). [`codec`] holds the pure functions and is
//! endpoint-agnostic, so a Vertex AI provider can reuse it over `rawPredict`; [`Anthropic`]
//! is the thin async glue.
//!
//! Must not: route, retry, price or authenticate clients — a provider serves one
//! deployment — and it must never depend on the router, cost, store or server crates.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use llmux_core::provider::{
    PassthroughBody, PassthroughKind, PassthroughRequest, PassthroughResponse,
};
use llmux_core::{
    CallContext, ChatRequest, ChatResponse, ChatStream, DeploymentSettings, Error, Provider,
    ProviderFactory, Secret,
};
use llmux_http::reqwest::Url;
use llmux_http::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// Anthropic's public API.
pub const DEFAULT_API_BASE: &str = "https://api.anthropic.com";
/// The `anthropic-version` header unless the deployment's `api_version` says otherwise.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";
/// A call may take this long unless the deployment says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two events of a stream.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const NAME: &str = "anthropic";
const BETA_HEADER: &str = "anthropic-beta";

/// One deployment of Anthropic's Messages API. URLs and headers are prepared once, here.
#[derive(Debug)]
pub struct Anthropic {
    model: String,
    messages_url: Url,
    /// `{messages_url}/count_tokens`: token counting, passed through as is.
    count_tokens_url: Url,
    headers: HeaderMap,
    betas: Vec<String>,
    timeout: Duration,
    default_max_tokens: Option<u64>,
    api_key: Option<Secret>,
}

/// `{base}/v1/messages`, accepting a base given with or without `/v1` (or the full path).
fn messages_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/messages") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

/// Adds the comma-separated betas in `value` to `betas`, once each, in order.
fn add_betas(betas: &mut Vec<String>, value: &str) {
    for b in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        if !betas.iter().any(|x| x == b) {
            betas.push(b.to_owned());
        }
    }
}

fn header_value(what: &str, v: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(|_| {
        Error::bad_request(format!("{NAME}: invalid {what} value")).with_provider(NAME)
    })
}

fn header_name(k: &str) -> Result<HeaderName, Error> {
    HeaderName::try_from(k).map_err(|_| {
        Error::bad_request(format!("{NAME}: invalid header name '{k}'")).with_provider(NAME)
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads `params.max_output_tokens` (a number the gateway fills from its price table).
fn max_output_tokens(settings: &DeploymentSettings) -> Option<u64> {
    let v = settings.params.get("max_output_tokens")?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 1.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

impl Anthropic {
    /// Build for `settings`: `api_base` (default [`DEFAULT_API_BASE`], with or without
    /// `/v1`), `api_key` sent as `x-api-key`, `api_version` as `anthropic-version`
    /// (default [`DEFAULT_API_VERSION`]), `headers` sent with every call (`anthropic-beta`
    /// values are merged with the ones a call needs), `params.max_output_tokens` as the
    /// output limit when a request sets none.
    pub fn new(settings: &DeploymentSettings) -> Result<Self, Error> {
        let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &settings.api_key {
            let mut v = HeaderValue::from_str(key.expose()).map_err(|_| {
                Error::bad_request(format!("{NAME}: the api_key contains invalid characters"))
                    .with_provider(NAME)
            })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), v);
        }
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            header_value(
                "api_version",
                settings
                    .api_version
                    .as_deref()
                    .unwrap_or(DEFAULT_API_VERSION),
            )?,
        );
        let mut betas = Vec::new();
        for (k, v) in &settings.headers {
            if k.eq_ignore_ascii_case(BETA_HEADER) {
                add_betas(&mut betas, v);
            } else {
                headers.insert(header_name(k)?, header_value("header", v)?);
            }
        }
        let messages_url = messages_url(base);
        Ok(Self {
            model: settings.model.clone(),
            count_tokens_url: llmux_http::upstream_url(
                "anthropic",
                &format!("{messages_url}/count_tokens"),
            )?,
            messages_url: llmux_http::upstream_url("anthropic", &messages_url)?,
            headers,
            betas,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            default_max_tokens: max_output_tokens(settings),
            api_key: settings.api_key.clone(),
        })
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    fn secrets(&self) -> Vec<&str> {
        self.api_key.iter().map(Secret::expose).collect()
    }

    fn encode(&self, req: ChatRequest, stream: bool) -> Result<codec::Encoded, Error> {
        let opts = codec::EncodeOptions::messages_api(&self.model)
            .with_default_max_tokens(self.default_max_tokens)
            .streaming(stream);
        codec::encode_request(req, &opts)
    }

    /// The POST for one call: the deployment's headers, the call's own headers on top,
    /// and every `anthropic-beta` value (deployment, call, body needs) in one header.
    fn post(
        &self,
        enc: &codec::Encoded,
        cx: &CallContext,
    ) -> Result<llmux_http::reqwest::RequestBuilder, Error> {
        self.post_to(&self.messages_url, enc, cx)
    }

    fn post_to(
        &self,
        url: &Url,
        enc: &codec::Encoded,
        cx: &CallContext,
    ) -> Result<llmux_http::reqwest::RequestBuilder, Error> {
        let mut headers = self.headers.clone();
        let mut betas = self.betas.clone();
        for (k, v) in &cx.headers {
            if k.eq_ignore_ascii_case(BETA_HEADER) {
                add_betas(&mut betas, v);
            } else {
                headers.insert(header_name(k)?, header_value("header", v)?);
            }
        }
        for b in &enc.betas {
            add_betas(&mut betas, b);
        }
        if !betas.is_empty() {
            headers.insert(
                HeaderName::from_static(BETA_HEADER),
                header_value(BETA_HEADER, &betas.join(","))?,
            );
        }
        Ok(llmux_http::client()
            .post(url.clone())
            .headers(headers)
            .body(enc.to_vec()?))
    }

    fn upstream_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        codec::decode_error(
            NAME,
            status,
            body,
            llmux_http::retry_after(headers),
            &self.secrets(),
        )
    }
}

/// What the stream adapter carries between polls.
struct StreamState<S> {
    events: S,
    decoder: codec::StreamDecoder,
    ready: VecDeque<Result<llmux_core::ChatChunk, Error>>,
    scratch: Vec<llmux_core::ChatChunk>,
    done: bool,
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let enc = self.encode(req, false)?;
        let post = self.post(&enc, cx)?;
        let (status, headers, body) =
            llmux_http::send_and_read(NAME, post, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        codec::decode_response(NAME, &body, &enc.decode_options(unix_now()))
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let enc = self.encode(req, true)?;
        let post = self.post(&enc, cx)?;
        let resp = llmux_http::send_streaming(NAME, post, self.timeout(cx)).await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        let state = StreamState {
            events: Box::pin(llmux_http::sse_events(NAME, resp, STREAM_IDLE_TIMEOUT)),
            decoder: codec::StreamDecoder::new(NAME, &enc.decode_options(unix_now())),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            done: false,
        };
        let chunks = futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.ready.pop_front() {
                    return Some((item, st));
                }
                if st.done {
                    return None;
                }
                match st.events.next().await {
                    Some(Ok(ev)) => {
                        let r = st
                            .decoder
                            .feed(ev.event.as_deref(), &ev.data, &mut st.scratch);
                        st.ready.extend(st.scratch.drain(..).map(Ok));
                        if let Err(e) = r {
                            st.ready.push_back(Err(e));
                            st.done = true;
                        } else if st.decoder.is_done() {
                            // Everything Anthropic sends after message_stop is ignored.
                            st.done = true;
                        }
                    }
                    Some(Err(e)) => {
                        st.ready.push_back(Err(e));
                        st.done = true;
                    }
                    None => {
                        if let Err(e) = st.decoder.finish() {
                            st.ready.push_back(Err(e));
                        }
                        st.done = true;
                    }
                }
            }
        });
        Ok(Box::pin(chunks))
    }

    fn passthrough_supported(&self, kind: PassthroughKind) -> bool {
        kind == PassthroughKind::CountTokens
    }

    /// Token counting as is: the client's `count_tokens` body with the deployment's model
    /// to `{api_base}/v1/messages/count_tokens` (the call's `anthropic-beta` merged with
    /// the deployment's), Anthropic's `{"input_tokens": N}` back unchanged.
    async fn passthrough(
        &self,
        mut req: PassthroughRequest,
        cx: &CallContext,
    ) -> Result<PassthroughResponse, Error> {
        if req.kind != PassthroughKind::CountTokens || req.stream {
            return Err(Error::unsupported(
                NAME,
                &format!("passing '{}' requests through", req.kind.as_str()),
            ));
        }
        req.body.insert(
            "model".to_owned(),
            serde_json::Value::String(self.model.clone()),
        );
        let enc = codec::Encoded {
            body: req.body,
            json_mode: false,
            betas: Vec::new(),
        };
        let post = self.post_to(&self.count_tokens_url, &enc, cx)?;
        let (status, headers, body) =
            llmux_http::send_and_read(NAME, post, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        Ok(PassthroughResponse {
            body: PassthroughBody::Json(body),
            usage: None,
            model: None,
        })
    }
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Anthropic::new(settings)?))
}

/// `anthropic/*` is served when `ANTHROPIC_API_KEY` is set; `ANTHROPIC_BASE_URL` is honoured.
fn from_env(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    let key = env("ANTHROPIC_API_KEY").filter(|k| !k.is_empty())?;
    let mut s = DeploymentSettings::new(NAME, "*");
    s.api_key = Some(Secret::new(key));
    s.api_base = env("ANTHROPIC_BASE_URL").filter(|b| !b.is_empty());
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "anthropic",
        description: "Anthropic Messages API (chat, streaming, tools, thinking, prompt caching)",
        default_api_base: DEFAULT_API_BASE,
        capabilities: &[llmux_core::Capability::Chat],
        build,
        from_env,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_itself() {
        let f = llmux_core::find_provider("anthropic").expect("registered");
        assert_eq!(f.name, "anthropic");
        let p = (f.build)(&DeploymentSettings::new("anthropic", "claude-sonnet-4-5")).unwrap();
        assert_eq!(p.name(), "anthropic");
        assert_eq!(p.model(), "claude-sonnet-4-5");
    }

    #[test]
    fn env_template_needs_a_key() {
        let none = |_: &str| None;
        assert!((from_env)(&none).is_none());
        let empty = |k: &str| (k == "ANTHROPIC_API_KEY").then(String::new);
        assert!((from_env)(&empty).is_none());
        let env = |k: &str| match k {
            "ANTHROPIC_API_KEY" => Some("sk-ant-test".to_owned()),
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9".to_owned()),
            _ => None,
        };
        let s = (from_env)(&env).expect("configured");
        assert_eq!((s.provider.as_str(), s.model.as_str()), ("anthropic", "*"));
        assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.api_key.unwrap().expose(), "sk-ant-test");
    }

    #[test]
    fn prepares_url_and_headers_once() {
        for (base, url) in [
            (None, "https://api.anthropic.com/v1/messages"),
            (Some("http://h:1/"), "http://h:1/v1/messages"),
            (Some("http://h:1/v1"), "http://h:1/v1/messages"),
            (Some("http://h:1/v1/messages"), "http://h:1/v1/messages"),
        ] {
            let mut s = DeploymentSettings::new("anthropic", "claude");
            s.api_base = base.map(str::to_owned);
            assert_eq!(Anthropic::new(&s).unwrap().messages_url.as_str(), url);
        }
        let mut s = DeploymentSettings::new("anthropic", "claude");
        s.api_key = Some(Secret::new("sk-ant-abc"));
        s.api_version = Some("2024-01-01".into());
        s.headers
            .insert("Anthropic-Beta".into(), "a-1, b-2,a-1".into());
        s.params
            .insert("max_output_tokens".into(), serde_json::json!(64000.0));
        let p = Anthropic::new(&s).unwrap();
        assert!(p.headers["x-api-key"].is_sensitive());
        assert_eq!(p.headers["anthropic-version"], "2024-01-01");
        assert_eq!(p.betas, ["a-1", "b-2"]);
        assert!(!p.headers.contains_key(BETA_HEADER));
        assert_eq!(p.default_max_tokens, Some(64000));
        assert!(!format!("{p:?}").contains("sk-ant-abc"));
    }
}
