//! `llmux-provider-mistral`: Mistral's API (`mistral/<model>`): chat, streamed chat,
//! embeddings (`mistral-embed`) and the model list.
//!
//! Owns: Mistral's dialect of the OpenAI wire format ([`codec`]: the request allow-list,
//! renamed and dropped parameters, 9-character tool-call ids, `prefix` on a final assistant
//! message, Mistral's error bodies) and the thin async glue ([`Mistral`]): URLs under
//! `api_base` (default [`DEFAULT_API_BASE`]), `Authorization: Bearer`, timeouts. Everything
//! already OpenAI-shaped is parsed by `llmux_provider_openai::codec`, not copied.
//!
//! Must not: route, retry, price or authenticate clients — a provider serves one
//! deployment — and it never depends on the router, cost, store or server crates.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, DeploymentSettings,
    EmbeddingRequest, EmbeddingResponse, Error, ModelList, Provider, ProviderFactory, Secret,
};
use llmux_http::reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use llmux_provider_openai::{DEFAULT_TIMEOUT, Endpoints, STREAM_IDLE_TIMEOUT};

/// Mistral's public API.
pub const DEFAULT_API_BASE: &str = "https://api.mistral.ai/v1";

const NAME: &str = codec::PROVIDER;

/// One deployment of Mistral's API. URLs and headers are prepared once, here.
#[derive(Debug)]
pub struct Mistral {
    model: String,
    endpoints: Endpoints,
    headers: HeaderMap,
    timeout: Duration,
    safe_prompt: Option<bool>,
    api_key: Option<Secret>,
}

fn header_value(what: &str, v: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v).map_err(|_| {
        Error::bad_request(format!("{NAME}: invalid {what} value")).with_provider(NAME)
    })
}

impl Mistral {
    /// Build for `settings`: `api_base` (default [`DEFAULT_API_BASE`]), `api_key` sent as
    /// `Authorization: Bearer`, `headers` sent with every call, `params.safe_prompt` (a
    /// boolean) used when a request does not set `safe_prompt` itself.
    pub fn new(settings: &DeploymentSettings) -> Result<Self, Error> {
        let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
        let safe_prompt = match settings.params.get("safe_prompt") {
            None => None,
            Some(v) => Some(v.as_bool().ok_or_else(|| {
                Error::bad_request(format!("{NAME}: params.safe_prompt must be a boolean"))
                    .with_param("safe_prompt")
                    .with_provider(NAME)
            })?),
        };
        Ok(Self {
            model: settings.model.clone(),
            endpoints: Endpoints::under(base),
            headers,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            safe_prompt,
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
            model: &self.model,
            stream,
            safe_prompt: self.safe_prompt,
        };
        codec::to_vec(&codec::encode_chat(req, &opts)?)
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

    fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        cx: &CallContext,
    ) -> llmux_http::reqwest::RequestBuilder {
        self.request(llmux_http::client().post(url).body(body), cx)
    }

    fn upstream_error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        codec::decode_error(
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
            llmux_http::send_and_read(NAME, req, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        Ok(body.to_vec())
    }
}

/// What the stream adapter carries between polls.
struct StreamState<S> {
    events: S,
    ready: VecDeque<Result<ChatChunk, Error>>,
    done: bool,
}

#[async_trait]
impl Provider for Mistral {
    fn name(&self) -> &'static str {
        NAME
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let body = self.encode_chat(req, false)?;
        let bytes = self
            .call(self.post(&self.endpoints.chat, body, cx), cx)
            .await?;
        codec::decode_chat(&bytes)
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let body = self.encode_chat(req, true)?;
        let resp = llmux_http::send_streaming(
            NAME,
            self.post(&self.endpoints.chat, body, cx),
            self.timeout(cx),
        )
        .await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.upstream_error(status.as_u16(), &headers, &body));
        }
        let state = StreamState {
            events: Box::pin(llmux_http::sse_events(NAME, resp, STREAM_IDLE_TIMEOUT)),
            ready: VecDeque::new(),
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
                    Some(Ok(ev)) => match codec::decode_stream_event(&ev.data) {
                        Ok(codec::StreamEvent::Chunks(chunks)) => {
                            st.ready.extend(chunks.into_iter().map(Ok));
                        }
                        Ok(codec::StreamEvent::Done) => st.done = true,
                        Err(e) => {
                            st.ready.push_back(Err(e));
                            st.done = true;
                        }
                    },
                    Some(Err(e)) => {
                        st.ready.push_back(Err(e));
                        st.done = true;
                    }
                    None => st.done = true,
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
        let body = codec::to_vec(&codec::encode_embeddings(req, &self.model)?)?;
        let bytes = self
            .call(self.post(&self.endpoints.embeddings, body, cx), cx)
            .await?;
        codec::decode_embeddings(&bytes)
    }

    async fn list_models(&self, cx: &CallContext) -> Result<ModelList, Error> {
        let Some(url) = &self.endpoints.models else {
            return Err(Error::unsupported(NAME, "listing models"));
        };
        let bytes = self
            .call(self.request(llmux_http::client().get(url), cx), cx)
            .await?;
        codec::decode_models(&bytes)
    }
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Mistral::new(settings)?))
}

/// `mistral/*` is served when `MISTRAL_API_KEY` is set; `MISTRAL_API_BASE` is honoured.
fn from_env(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    let key = env("MISTRAL_API_KEY").filter(|k| !k.is_empty())?;
    let mut s = DeploymentSettings::new(NAME, "*");
    s.api_key = Some(Secret::new(key));
    s.api_base = env("MISTRAL_API_BASE").filter(|b| !b.is_empty());
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "mistral",
        description: "Mistral API (chat, streaming, tools, embeddings, models)",
        default_api_base: DEFAULT_API_BASE,
        capabilities: &[
            llmux_core::Capability::Chat,
            llmux_core::Capability::Embeddings,
            llmux_core::Capability::ListModels,
        ],
        build,
        from_env,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_itself() {
        let f = llmux_core::find_provider("mistral").expect("registered");
        assert_eq!(f.default_api_base, DEFAULT_API_BASE);
        let p = (f.build)(&DeploymentSettings::new("mistral", "mistral-small-latest")).unwrap();
        assert_eq!((p.name(), p.model()), ("mistral", "mistral-small-latest"));
    }

    #[test]
    fn env_template_needs_a_key() {
        let none = |_: &str| None;
        assert!((from_env)(&none).is_none());
        let env = |k: &str| match k {
            "MISTRAL_API_KEY" => Some("mk-test".to_owned()),
            "MISTRAL_API_BASE" => Some("http://127.0.0.1:9/v1".to_owned()),
            _ => None,
        };
        let s = (from_env)(&env).expect("configured");
        assert_eq!((s.provider.as_str(), s.model.as_str()), ("mistral", "*"));
        assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(s.api_key.unwrap().expose(), "mk-test");
    }

    #[test]
    fn prepares_urls_and_headers_once() {
        let mut s = DeploymentSettings::new("mistral", "mistral-large-latest");
        s.api_key = Some(Secret::new("mk-secret-value"));
        s.params.insert("safe_prompt".into(), true.into());
        let p = Mistral::new(&s).unwrap();
        assert_eq!(
            p.endpoints.chat,
            "https://api.mistral.ai/v1/chat/completions"
        );
        assert_eq!(
            p.endpoints.embeddings,
            "https://api.mistral.ai/v1/embeddings"
        );
        assert!(p.headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{p:?}").contains("mk-secret-value"));
        let body: serde_json::Value = serde_json::from_slice(
            &p.encode_chat(ChatRequest::new("c").user("hi"), false)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["safe_prompt"], true);
        s.params.insert("safe_prompt".into(), "yes".into());
        assert_eq!(Mistral::new(&s).unwrap_err().param(), Some("safe_prompt"));
    }
}
