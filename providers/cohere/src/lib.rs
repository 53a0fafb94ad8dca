//! `llmux-provider-cohere`: Cohere's v2 API — chat (`POST /v2/chat`, plain and streamed),
//! embeddings (`POST /v2/embed`) and reranking (`POST /v2/rerank`) — behind the canonical
//! OpenAI-shaped types (and the canonical rerank types, which are Cohere's shape).
//!
//! Owns: translating canonical chat requests into Cohere's body (messages, tools, tool
//! choice, documents, response format, thinking), reading Cohere's responses and stream
//! events back into completions and chunks, embed and rerank translation, mapping Cohere's
//! error bodies onto the taxonomy, and the deployment's URLs and `Authorization: Bearer`
//! header. [`codec`] holds the pure functions; [`Cohere`] is the thin async glue.
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
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, DeploymentSettings,
    EmbeddingRequest, EmbeddingResponse, Error, JsonObject, Provider, ProviderFactory,
    RerankRequest, RerankResponse, Secret,
};
use llmux_http::reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};

/// Cohere's public API.
pub const DEFAULT_API_BASE: &str = "https://api.cohere.com";
/// A call may take this long unless the deployment says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two events of a stream.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const NAME: &str = "cohere";

/// One deployment of Cohere's v2 API. URLs and headers are prepared once, here.
#[derive(Debug)]
pub struct Cohere {
    model: String,
    chat_url: String,
    embed_url: String,
    rerank_url: String,
    headers: HeaderMap,
    timeout: Duration,
    api_key: Option<Secret>,
}

/// `{root}/v2/{endpoint}`, accepting a base given with or without a `/v1` or `/v2` suffix.
fn endpoint_url(base: &str, endpoint: &str) -> String {
    let base = base.trim_end_matches('/');
    let root = base
        .strip_suffix("/v2")
        .or_else(|| base.strip_suffix("/v1"))
        .unwrap_or(base);
    format!("{root}/v2/{endpoint}")
}

fn header_value(what: &str, v: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(|_| {
        Error::bad_request(format!("{NAME}: invalid {what} value")).with_provider(NAME)
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Cohere {
    /// Build for `settings`: `api_base` (default [`DEFAULT_API_BASE`], with or without
    /// `/v2`), `api_key` sent as `Authorization: Bearer`, `headers` sent with every call.
    pub fn new(settings: &DeploymentSettings) -> Result<Self, Error> {
        let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = &settings.api_key {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    Error::bad_request(format!("{NAME}: the api_key contains invalid characters"))
                        .with_provider(NAME)
                })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (k, v) in &settings.headers {
            let name = HeaderName::try_from(k.as_str()).map_err(|_| {
                Error::bad_request(format!("{NAME}: invalid header name '{k}'")).with_provider(NAME)
            })?;
            headers.insert(name, header_value("header", v)?);
        }
        Ok(Self {
            model: settings.model.clone(),
            chat_url: endpoint_url(base, "chat"),
            embed_url: endpoint_url(base, "embed"),
            rerank_url: endpoint_url(base, "rerank"),
            headers,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            api_key: settings.api_key.clone(),
        })
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    fn post(
        &self,
        url: &str,
        body: &JsonObject,
        cx: &CallContext,
    ) -> Result<llmux_http::reqwest::RequestBuilder, Error> {
        let mut headers = self.headers.clone();
        for (k, v) in &cx.headers {
            if let Ok(name) = HeaderName::try_from(k.as_str()) {
                headers.insert(name, header_value("header", v)?);
            }
        }
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("{NAME}: could not encode the request: {e}")))?;
        Ok(llmux_http::client().post(url).headers(headers).body(body))
    }

    fn upstream_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        let secrets: Vec<&str> = self.api_key.iter().map(Secret::expose).collect();
        codec::decode_error(
            NAME,
            status,
            body,
            llmux_http::retry_after(headers),
            &secrets,
        )
    }

    /// POST `body` to `url` and return the body of a 2xx answer.
    async fn call(
        &self,
        url: &str,
        body: &JsonObject,
        cx: &CallContext,
    ) -> Result<bytes::Bytes, Error> {
        let post = self.post(url, body, cx)?;
        let (status, headers, body) =
            llmux_http::send_and_read(NAME, post, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        Ok(body)
    }
}

/// What the stream adapter carries between polls.
struct StreamState<S> {
    events: S,
    decoder: codec::StreamDecoder,
    ready: VecDeque<Result<ChatChunk, Error>>,
    scratch: Vec<ChatChunk>,
    done: bool,
}

#[async_trait]
impl Provider for Cohere {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let body = codec::encode_chat(NAME, req, &self.model, false)?;
        let out = self.call(&self.chat_url, &body, cx).await?;
        codec::decode_chat(NAME, &out, &self.model, unix_now())
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let body = codec::encode_chat(NAME, req, &self.model, true)?;
        let post = self.post(&self.chat_url, &body, cx)?;
        let resp = llmux_http::send_streaming(NAME, post, self.timeout(cx)).await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        let state = StreamState {
            events: Box::pin(llmux_http::sse_events(NAME, resp, STREAM_IDLE_TIMEOUT)),
            decoder: codec::StreamDecoder::new(NAME, &self.model, unix_now()),
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

    async fn embed(
        &self,
        req: EmbeddingRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        let body = codec::encode_embed(NAME, &req, &self.model)?;
        let out = self.call(&self.embed_url, &body, cx).await?;
        let base64 = req.encoding_format.as_deref() == Some("base64");
        codec::decode_embed(NAME, &out, &self.model, base64)
    }

    async fn rerank(&self, req: RerankRequest, cx: &CallContext) -> Result<RerankResponse, Error> {
        let body = codec::encode_rerank(&req, &self.model);
        let out = self.call(&self.rerank_url, &body, cx).await?;
        codec::decode_rerank(NAME, &out, &req)
    }
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Cohere::new(settings)?))
}

/// `cohere/*` is served when `COHERE_API_KEY` (or the Cohere SDK's `CO_API_KEY`) is set;
/// `COHERE_API_BASE` (or `CO_API_URL`) is honoured.
fn from_env(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let key = set("COHERE_API_KEY").or_else(|| set("CO_API_KEY"))?;
    let mut s = DeploymentSettings::new(NAME, "*");
    s.api_key = Some(Secret::new(key));
    s.api_base = set("COHERE_API_BASE").or_else(|| set("CO_API_URL"));
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "cohere",
        description: "Cohere v2 API (chat, streaming, tools, documents, embeddings, rerank)",
        default_api_base: DEFAULT_API_BASE,
        capabilities: &[
            llmux_core::Capability::Chat,
            llmux_core::Capability::Embeddings,
            llmux_core::Capability::Rerank,
        ],
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
    fn registers_itself_with_its_capabilities() {
        let f = llmux_core::find_provider("cohere").expect("registered");
        assert_eq!(f.default_api_base, DEFAULT_API_BASE);
        assert_eq!(
            f.capabilities,
            [
                llmux_core::Capability::Chat,
                llmux_core::Capability::Embeddings,
                llmux_core::Capability::Rerank
            ]
        );
        let p = (f.build)(&DeploymentSettings::new("cohere", "command-a-03-2025")).unwrap();
        assert_eq!((p.name(), p.model()), ("cohere", "command-a-03-2025"));
    }

    #[test]
    fn env_template_needs_a_key() {
        let none = |_: &str| None;
        assert!(from_env(&none).is_none());
        let co = |k: &str| match k {
            "CO_API_KEY" => Some("co-key".to_owned()),
            "CO_API_URL" => Some("http://127.0.0.1:9".to_owned()),
            _ => None,
        };
        let s = from_env(&co).expect("configured");
        assert_eq!((s.provider.as_str(), s.model.as_str()), ("cohere", "*"));
        assert_eq!(s.api_key.unwrap().expose(), "co-key");
        assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:9"));
        let both = |k: &str| match k {
            "COHERE_API_KEY" => Some("cohere-key".to_owned()),
            "CO_API_KEY" => Some("co-key".to_owned()),
            _ => None,
        };
        assert_eq!(
            from_env(&both).unwrap().api_key.unwrap().expose(),
            "cohere-key"
        );
    }

    #[test]
    fn prepares_urls_and_headers_once() {
        for (base, url) in [
            (None, "https://api.cohere.com/v2/chat"),
            (Some("http://h:1/"), "http://h:1/v2/chat"),
            (Some("http://h:1/v2"), "http://h:1/v2/chat"),
            (Some("http://h:1/v1/"), "http://h:1/v2/chat"),
        ] {
            let mut s = DeploymentSettings::new("cohere", "command-r");
            s.api_base = base.map(str::to_owned);
            assert_eq!(Cohere::new(&s).unwrap().chat_url, url);
        }
        let mut s = DeploymentSettings::new("cohere", "embed-v4.0");
        s.api_key = Some(Secret::new("co-secret-key"));
        s.headers.insert("X-Client-Name".into(), "llmux".into());
        let p = Cohere::new(&s).unwrap();
        assert_eq!(p.embed_url, "https://api.cohere.com/v2/embed");
        assert_eq!(p.rerank_url, "https://api.cohere.com/v2/rerank");
        assert!(p.headers[AUTHORIZATION].is_sensitive());
        assert_eq!(p.headers[AUTHORIZATION], "Bearer co-secret-key");
        assert_eq!(p.headers["x-client-name"], "llmux");
        assert!(!format!("{p:?}").contains("co-secret-key"));
    }
}
