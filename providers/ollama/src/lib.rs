//! `llmux-provider-ollama`: Ollama's native API (`ollama/<model>`, and `ollama_chat/<model>`
//! as an alias): `POST /api/chat` (one JSON answer or an NDJSON stream), `POST /api/embed`,
//! `GET /api/tags` — not its OpenAI-compatible shim.
//!
//! Owns: the translation to and from Ollama's wire format ([`codec`], pure and
//! fixture-tested) and the thin async glue ([`Ollama`]): URLs under `api_base` (default
//! [`DEFAULT_API_BASE`]), an optional `Authorization: Bearer` key (for Ollama behind a
//! proxy), the deployment defaults (`params.keep_alive`, `params.think`, `params.options`),
//! timeouts, and reading the NDJSON body with an idle timeout.
//!
//! Must not: route, retry, price or authenticate clients — a provider serves one
//! deployment — nor fetch remote images on a client's behalf.

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
    EmbeddingRequest, EmbeddingResponse, Error, JsonObject, ModelList, Provider, ProviderFactory,
    Secret,
};
use llmux_http::reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};

/// A local Ollama server.
pub const DEFAULT_API_BASE: &str = "http://localhost:11434";
/// A call may take this long unless the deployment says otherwise (local models load slowly).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two reads of a stream.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One deployment of an Ollama server. URLs and headers are prepared once, here.
#[derive(Debug)]
pub struct Ollama {
    name: &'static str,
    model: String,
    chat_url: String,
    embed_url: String,
    tags_url: String,
    headers: HeaderMap,
    timeout: Duration,
    defaults: JsonObject,
    api_key: Option<Secret>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Ollama {
    /// Build for `settings` under the prefix `name` (`ollama` or `ollama_chat`):
    /// `api_base` (default [`DEFAULT_API_BASE`]), `api_key` (optional, sent as Bearer),
    /// `headers`, and `params.keep_alive` / `params.think` / `params.options` as defaults
    /// of every call.
    pub fn new(name: &'static str, settings: &DeploymentSettings) -> Result<Self, Error> {
        let base = settings
            .api_base
            .as_deref()
            .unwrap_or(DEFAULT_API_BASE)
            .trim_end_matches('/');
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = settings.api_key.as_ref().filter(|k| !k.expose().is_empty()) {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    Error::bad_request(format!("{name}: the api_key contains invalid characters"))
                        .with_provider(name)
                })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (k, v) in &settings.headers {
            let hn = HeaderName::try_from(k.as_str()).map_err(|_| {
                Error::bad_request(format!("{name}: invalid header name '{k}'")).with_provider(name)
            })?;
            let hv = HeaderValue::from_str(v).map_err(|_| {
                Error::bad_request(format!("{name}: invalid header value")).with_provider(name)
            })?;
            headers.insert(hn, hv);
        }
        if settings
            .params
            .get("options")
            .is_some_and(|o| !o.is_object())
        {
            return Err(
                Error::bad_request(format!("{name}: params.options must be an object"))
                    .with_param("options")
                    .with_provider(name),
            );
        }
        let defaults: JsonObject = ["keep_alive", "think", "options"]
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), settings.params.get(*k)?.clone())))
            .collect();
        Ok(Self {
            name,
            model: settings.model.clone(),
            chat_url: format!("{base}/api/chat"),
            embed_url: format!("{base}/api/embed"),
            tags_url: format!("{base}/api/tags"),
            headers,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            defaults,
            api_key: settings.api_key.clone(),
        })
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    fn secrets(&self) -> Vec<&str> {
        self.api_key.iter().map(Secret::expose).collect()
    }

    fn encode_chat(&self, req: ChatRequest, stream: bool) -> Result<Vec<u8>, Error> {
        let opts = codec::EncodeOptions {
            provider: self.name,
            model: &self.model,
            stream,
            defaults: Some(&self.defaults),
        };
        codec::to_vec(&codec::encode_chat(req, &opts)?)
    }

    fn decode_options(&self, cx: &CallContext) -> codec::DecodeOptions {
        let id = if cx.request_id.is_empty() {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("chatcmpl-{nanos:x}")
        } else {
            format!("chatcmpl-{}", cx.request_id)
        };
        codec::DecodeOptions {
            provider: self.name,
            id,
            created: unix_now(),
        }
    }

    fn request(
        &self,
        req: llmux_http::reqwest::RequestBuilder,
        cx: &CallContext,
    ) -> llmux_http::reqwest::RequestBuilder {
        let mut req = req.headers(self.headers.clone());
        if !cx.request_id.is_empty() {
            req = req.header("x-request-id", &cx.request_id);
        }
        for (k, v) in &cx.headers {
            req = req.header(k, v);
        }
        req
    }

    fn upstream_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        codec::decode_error(
            self.name,
            status,
            body,
            llmux_http::retry_after(headers),
            &self.secrets(),
        )
    }

    async fn call(
        &self,
        req: llmux_http::reqwest::RequestBuilder,
        cx: &CallContext,
    ) -> Result<Vec<u8>, Error> {
        let (status, headers, body) =
            llmux_http::send_and_read(self.name, req, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        Ok(body.to_vec())
    }
}

/// What the stream adapter carries between polls.
struct StreamState<S> {
    body: S,
    decoder: codec::StreamDecoder,
    ready: VecDeque<Result<ChatChunk, Error>>,
    scratch: Vec<ChatChunk>,
    done: bool,
    provider: &'static str,
}

#[async_trait]
impl Provider for Ollama {
    fn name(&self) -> &'static str {
        self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let body = self.encode_chat(req, false)?;
        let post = self.request(llmux_http::client().post(&self.chat_url).body(body), cx);
        let bytes = self.call(post, cx).await?;
        codec::decode_chat(&bytes, &self.decode_options(cx))
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let body = self.encode_chat(req, true)?;
        let post = self.request(llmux_http::client().post(&self.chat_url).body(body), cx);
        let resp = llmux_http::send_streaming(self.name, post, self.timeout(cx)).await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        let state = StreamState {
            body: Box::pin(resp.bytes_stream()),
            decoder: codec::StreamDecoder::new(self.decode_options(cx)),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            done: false,
            provider: self.name,
        };
        let chunks = futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.ready.pop_front() {
                    return Some((item, st));
                }
                if st.done {
                    return None;
                }
                let next = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, st.body.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        st.done = true;
                        let e = llmux_http::timeout_error(st.provider, STREAM_IDLE_TIMEOUT);
                        return Some((Err(e), st));
                    }
                };
                let r = match next {
                    Some(Ok(bytes)) => st.decoder.feed(&bytes, &mut st.scratch),
                    Some(Err(e)) => Err(llmux_http::transport_error(st.provider, e)),
                    None => {
                        st.done = true;
                        st.decoder.finish(&mut st.scratch)
                    }
                };
                st.ready.extend(st.scratch.drain(..).map(Ok));
                if let Err(e) = r {
                    st.ready.push_back(Err(e));
                    st.done = true;
                } else if st.decoder.is_done() {
                    // Nothing follows the `done` line.
                    st.done = true;
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
        let base64 = req.encoding_format.as_deref() == Some("base64");
        let body = codec::to_vec(&codec::encode_embeddings(self.name, req, &self.model)?)?;
        let post = self.request(llmux_http::client().post(&self.embed_url).body(body), cx);
        let bytes = self.call(post, cx).await?;
        codec::decode_embeddings(self.name, &bytes, base64)
    }

    async fn list_models(&self, cx: &CallContext) -> Result<ModelList, Error> {
        let get = self.request(llmux_http::client().get(&self.tags_url), cx);
        let bytes = self.call(get, cx).await?;
        codec::decode_models(self.name, &bytes)
    }
}

fn build_ollama(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Ollama::new("ollama", settings)?))
}

fn build_ollama_chat(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Ollama::new("ollama_chat", settings)?))
}

fn env_template(
    name: &str,
    env: llmux_core::provider::EnvLookup<'_>,
) -> Option<DeploymentSettings> {
    let base = env("OLLAMA_API_BASE").filter(|b| !b.is_empty())?;
    let mut s = DeploymentSettings::new(name, "*");
    s.api_base = Some(base);
    s.api_key = env("OLLAMA_API_KEY")
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    Some(s)
}

/// `ollama/*` is served when `OLLAMA_API_BASE` is set (`OLLAMA_API_KEY` optional).
fn from_env_ollama(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    env_template("ollama", env)
}

/// `ollama_chat/*` likewise.
fn from_env_ollama_chat(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    env_template("ollama_chat", env)
}

const CAPABILITIES: &[llmux_core::Capability] = &[
    llmux_core::Capability::Chat,
    llmux_core::Capability::Embeddings,
    llmux_core::Capability::ListModels,
];

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "ollama",
        description: "Ollama native API (/api/chat with NDJSON streaming, tools, images; /api/embed; /api/tags)",
        default_api_base: DEFAULT_API_BASE,
        capabilities: CAPABILITIES,
        build: build_ollama,
        from_env: from_env_ollama,
    }
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "ollama_chat",
        description: "Ollama native API (alias of ollama/, LiteLLM's name for /api/chat)",
        default_api_base: DEFAULT_API_BASE,
        capabilities: CAPABILITIES,
        build: build_ollama_chat,
        from_env: from_env_ollama_chat,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_both_names() {
        for name in ["ollama", "ollama_chat"] {
            let f = llmux_core::find_provider(name).expect("registered");
            assert_eq!(f.default_api_base, DEFAULT_API_BASE);
            let p = (f.build)(&DeploymentSettings::new(name, "llama3.2")).unwrap();
            assert_eq!((p.name(), p.model()), (name, "llama3.2"));
        }
    }

    #[test]
    fn env_template_needs_a_base() {
        let none = |_: &str| None;
        assert!((from_env_ollama)(&none).is_none());
        let env = |k: &str| (k == "OLLAMA_API_BASE").then(|| "http://127.0.0.1:9".to_owned());
        let s = (from_env_ollama_chat)(&env).expect("configured");
        assert_eq!(
            (s.provider.as_str(), s.model.as_str()),
            ("ollama_chat", "*")
        );
        assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:9"));
        assert!(s.api_key.is_none());
    }

    #[test]
    fn prepares_urls_headers_and_defaults_once() {
        let p = Ollama::new("ollama", &DeploymentSettings::new("ollama", "llama3.2")).unwrap();
        assert_eq!(p.chat_url, "http://localhost:11434/api/chat");
        assert!(!p.headers.contains_key(AUTHORIZATION));
        let mut s = DeploymentSettings::new("ollama", "llama3.2");
        s.api_base = Some("http://127.0.0.1:1/".into());
        s.api_key = Some(Secret::new("ol-secret-key"));
        s.params.insert("keep_alive".into(), "10m".into());
        s.params.insert("unrelated".into(), 1.into());
        let p = Ollama::new("ollama", &s).unwrap();
        assert_eq!(p.embed_url, "http://127.0.0.1:1/api/embed");
        assert_eq!(p.tags_url, "http://127.0.0.1:1/api/tags");
        assert!(p.headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{p:?}").contains("ol-secret-key"));
        assert_eq!(p.defaults.len(), 1);
        s.params.insert("options".into(), "fast".into());
        assert_eq!(
            Ollama::new("ollama", &s).unwrap_err().param(),
            Some("options")
        );
    }
}
