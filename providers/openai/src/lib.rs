//! `llmux-provider-openai`: OpenAI's API, and the codec every OpenAI-shaped provider reuses.
//!
//! Owns: building OpenAI requests (chat, streamed chat, embeddings, model list) from the
//! canonical types, reading the answers back, and mapping OpenAI's error bodies onto the
//! taxonomy. [`codec`] holds the pure functions; [`OpenAi`] is the thin async glue.
//!
//! Must not: route, retry, price or authenticate clients — a provider serves one deployment.

#![forbid(unsafe_code)]

pub mod codec;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use llmux_core::provider::{
    PassthroughBody, PassthroughEvent, PassthroughKind, PassthroughRequest, PassthroughResponse,
};
use llmux_core::{
    CallContext, ChatRequest, ChatResponse, ChatStream, DeploymentSettings, EmbeddingRequest,
    EmbeddingResponse, Error, ModelList, Provider, ProviderFactory,
};
use llmux_http::reqwest::Url;
use llmux_http::reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};

/// OpenAI's public API.
pub const DEFAULT_API_BASE: &str = "https://api.openai.com/v1";
/// A call may take this long unless the deployment says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two chunks of a stream.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One deployment of an OpenAI-shaped API. Everything per-deployment (URLs, headers) is
/// prepared once, here, not per call.
#[derive(Debug)]
pub struct OpenAi {
    name: &'static str,
    model: String,
    chat_url: Url,
    embeddings_url: Url,
    models_url: Option<String>,
    /// Where `POST /responses` is forwarded as is; `None` = no Responses passthrough.
    responses_url: Option<Url>,
    headers: HeaderMap,
    timeout: Duration,
    api_key: Option<llmux_core::Secret>,
    /// Remove fields OpenAI's own API refuses ([`codec::drop_foreign_fields`]).
    strict: bool,
}

/// Where an OpenAI-shaped deployment's operations live.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Chat completions URL.
    pub chat: String,
    /// Embeddings URL.
    pub embeddings: String,
    /// Model list URL, when the API has one.
    pub models: Option<String>,
}

impl Endpoints {
    /// OpenAI's layout under `base` (`{base}/chat/completions`, …).
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            chat: format!("{base}/chat/completions"),
            embeddings: format!("{base}/embeddings"),
            models: Some(format!("{base}/models")),
        }
    }
}

/// How the API key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible APIs).
    Bearer,
    /// The key as the value of this header (Azure's `api-key`).
    Named(&'static str),
}

impl OpenAi {
    /// Build for `settings`, calling the provider `name` (its prefix) with `default_base`
    /// when the settings name no `api_base`. OpenAI-compatible providers call this.
    pub fn new(
        name: &'static str,
        default_base: &str,
        settings: &DeploymentSettings,
    ) -> Result<Self, Error> {
        let base = settings.api_base.as_deref().unwrap_or(default_base);
        Self::with_endpoints(name, settings, Endpoints::under(base), KeyHeader::Bearer)
    }

    /// Build with explicit endpoints and key header (APIs that are OpenAI-shaped but laid
    /// out differently, like Azure OpenAI).
    pub fn with_endpoints(
        name: &'static str,
        settings: &DeploymentSettings,
        endpoints: Endpoints,
        key_header: KeyHeader,
    ) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &settings.api_key {
            let (header, value) = match key_header {
                KeyHeader::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose())),
                KeyHeader::Named(h) => (HeaderName::from_static(h), key.expose().to_owned()),
            };
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                Error::bad_request(format!("{name}: the api_key contains invalid characters"))
            })?;
            v.set_sensitive(true);
            headers.insert(header, v);
        }
        if let Some(org) = &settings.organization {
            headers.insert(
                HeaderName::from_static("openai-organization"),
                header_value(name, "organization", org)?,
            );
        }
        for (k, v) in &settings.headers {
            let k = HeaderName::try_from(k.as_str())
                .map_err(|_| Error::bad_request(format!("{name}: invalid header name '{k}'")))?;
            headers.insert(k, header_value(name, "header", v)?);
        }
        Ok(Self {
            name,
            model: settings.model.clone(),
            chat_url: llmux_http::upstream_url(name, &endpoints.chat)?,
            embeddings_url: llmux_http::upstream_url(name, &endpoints.embeddings)?,
            models_url: endpoints.models,
            responses_url: None,
            headers,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            api_key: settings.api_key.clone(),
            strict: false,
        })
    }

    /// Talk to OpenAI's own API (or Azure OpenAI), which refuses unrecognized fields: other
    /// formats' fields (Anthropic's `thinking`, `top_k`, `cache_control`, replayed thinking)
    /// are removed before sending. Servers that merely speak OpenAI's format keep them.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Forward OpenAI Responses API requests (`POST /v1/responses` on the gateway) as is
    /// to `url` ([`Provider::passthrough`]). Only for upstreams that serve the Responses
    /// API: OpenAI, Azure OpenAI's v1 API.
    /// A `url` that does not parse leaves the passthrough off (translation still serves
    /// `/v1/responses`).
    pub fn with_responses_url(mut self, url: String) -> Self {
        self.responses_url = llmux_http::upstream_url(self.name, &url).ok();
        self
    }

    async fn error_of(&self, resp: llmux_http::reqwest::Response) -> Error {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        codec::decode_error(
            self.name,
            status.as_u16(),
            &body,
            llmux_http::retry_after(&headers),
            &self.secrets(),
        )
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    fn secrets(&self) -> Vec<&str> {
        self.api_key.iter().map(|k| k.expose()).collect()
    }

    fn post(
        &self,
        url: &Url,
        body: Vec<u8>,
        cx: &CallContext,
    ) -> llmux_http::reqwest::RequestBuilder {
        let mut req = llmux_http::client()
            .post(url.clone())
            .headers(self.headers.clone())
            .body(body);
        if !cx.request_id.is_empty() {
            req = req.header("x-request-id", &cx.request_id);
        }
        for (k, v) in &cx.headers {
            req = req.header(k, v);
        }
        req
    }

    async fn call(
        &self,
        req: llmux_http::reqwest::RequestBuilder,
        cx: &CallContext,
    ) -> Result<bytes::Bytes, Error> {
        let (status, headers, body) =
            llmux_http::send_and_read(self.name, req, self.timeout(cx)).await?;
        if !status.is_success() {
            return Err(codec::decode_error(
                self.name,
                status.as_u16(),
                &body,
                llmux_http::retry_after(&headers),
                &self.secrets(),
            ));
        }
        Ok(body)
    }
}

fn header_value(provider: &str, what: &str, v: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(v)
        .map_err(|_| Error::bad_request(format!("{provider}: invalid {what} value")))
}

#[async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, mut req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        if self.strict {
            codec::drop_foreign_fields(&mut req);
        }
        let body = codec::encode_chat(req, &self.model)?;
        let bytes = self.call(self.post(&self.chat_url, body, cx), cx).await?;
        codec::decode_chat(self.name, &bytes)
    }

    async fn chat_stream(
        &self,
        mut req: ChatRequest,
        cx: &CallContext,
    ) -> Result<ChatStream, Error> {
        if self.strict {
            codec::drop_foreign_fields(&mut req);
        }
        let body = codec::encode_chat_stream(req, &self.model)?;
        let resp = llmux_http::send_streaming(
            self.name,
            self.post(&self.chat_url, body, cx),
            self.timeout(cx),
        )
        .await?;
        if !resp.status().is_success() {
            return Err(self.error_of(resp).await);
        }
        let name = self.name;
        let mut done = false;
        let chunks =
            llmux_http::sse_events(name, resp, STREAM_IDLE_TIMEOUT).filter_map(move |ev| {
                let out = if done {
                    None
                } else {
                    match ev {
                        Ok(ev) => match codec::decode_chunk(name, &ev.data) {
                            Ok(Some(chunk)) => Some(Ok(chunk)),
                            Ok(None) => {
                                done = true;
                                None
                            }
                            Err(e) => Some(Err(e)),
                        },
                        Err(e) => Some(Err(e)),
                    }
                };
                std::future::ready(out)
            });
        Ok(Box::pin(chunks))
    }

    async fn embed(
        &self,
        req: EmbeddingRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        let body = codec::encode_embeddings(req, &self.model)?;
        let bytes = self
            .call(self.post(&self.embeddings_url, body, cx), cx)
            .await?;
        codec::decode_embeddings(self.name, &bytes)
    }

    fn passthrough_supported(&self, kind: PassthroughKind) -> bool {
        kind == PassthroughKind::Responses && self.responses_url.is_some()
    }

    /// The Responses API as is: the client's body with the deployment's model, the
    /// upstream's JSON bytes or SSE events back, usage read from the Response object
    /// (`response.completed`, `response.incomplete`, `response.failed` in a stream).
    async fn passthrough(
        &self,
        mut req: PassthroughRequest,
        cx: &CallContext,
    ) -> Result<PassthroughResponse, Error> {
        let url = match (&self.responses_url, req.kind) {
            (Some(url), PassthroughKind::Responses) => url,
            _ => {
                return Err(Error::unsupported(
                    self.name,
                    &format!("passing '{}' requests through", req.kind.as_str()),
                ));
            }
        };
        req.body.insert(
            "model".to_owned(),
            serde_json::Value::String(self.model.clone()),
        );
        let body = serde_json::to_vec(&req.body)
            .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))?;
        if !req.stream {
            let bytes = self.call(self.post(url, body, cx), cx).await?;
            let (usage, model) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => (codec::responses_usage(&v), codec::responses_model(&v)),
                Err(_) => (None, None),
            };
            return Ok(PassthroughResponse {
                body: PassthroughBody::Json(bytes),
                usage,
                model,
            });
        }
        let resp =
            llmux_http::send_streaming(self.name, self.post(url, body, cx), self.timeout(cx))
                .await?;
        if !resp.status().is_success() {
            return Err(self.error_of(resp).await);
        }
        let events = llmux_http::sse_events(self.name, resp, STREAM_IDLE_TIMEOUT).map(|ev| {
            ev.map(|event| {
                let (usage, model) = codec::responses_event_usage(&event);
                PassthroughEvent {
                    event,
                    usage,
                    model,
                }
            })
        });
        Ok(PassthroughResponse {
            body: PassthroughBody::Events(Box::pin(events)),
            usage: None,
            model: None,
        })
    }

    async fn list_models(&self, cx: &CallContext) -> Result<ModelList, Error> {
        let Some(url) = &self.models_url else {
            return Err(Error::unsupported(self.name, "listing models"));
        };
        let mut req = llmux_http::client().get(url).headers(self.headers.clone());
        if !cx.request_id.is_empty() {
            req = req.header("x-request-id", &cx.request_id);
        }
        let bytes = self.call(req, cx).await?;
        codec::decode_models(self.name, &bytes)
    }
}

fn build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    let mut p = OpenAi::new("openai", DEFAULT_API_BASE, settings)?;
    if responses_passthrough(settings).unwrap_or_else(|| is_own_api(settings)) {
        let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
        p = p.with_responses_url(format!("{}/responses", base.trim_end_matches('/')));
    }
    Ok(Arc::new(if is_own_api(settings) { p.strict() } else { p }))
}

/// `params.responses_passthrough`: whether the deployment's upstream serves OpenAI's
/// Responses API, so `/v1/responses` calls are passed through to it as is (`None`: not
/// said; OpenAI's own API does, a compatible server is not assumed to).
pub fn responses_passthrough(settings: &DeploymentSettings) -> Option<bool> {
    settings
        .params
        .get("responses_passthrough")
        .and_then(serde_json::Value::as_bool)
}

/// `openai/` with an `api_base` elsewhere is usually a compatible server (vLLM reads
/// `top_k`): only OpenAI's own API gets the strict treatment.
fn is_own_api(settings: &DeploymentSettings) -> bool {
    settings
        .api_base
        .as_deref()
        .is_none_or(|b| b.contains("://api.openai.com"))
}

/// `openai/*` is served when `OPENAI_API_KEY` is set; `OPENAI_BASE_URL` (or
/// `OPENAI_API_BASE`) and `OPENAI_ORGANIZATION` are honoured.
fn from_env(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    let key = env("OPENAI_API_KEY").filter(|k| !k.is_empty())?;
    let mut s = DeploymentSettings::new("openai", "*");
    s.api_key = Some(llmux_core::Secret::new(key));
    s.api_base = env("OPENAI_BASE_URL").or_else(|| env("OPENAI_API_BASE"));
    s.organization = env("OPENAI_ORGANIZATION");
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "openai",
        description: "OpenAI API (chat, streaming, embeddings, models)",
        default_api_base: DEFAULT_API_BASE,
        capabilities: &[llmux_core::Capability::Chat, llmux_core::Capability::Embeddings, llmux_core::Capability::ListModels],
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
    fn only_openais_own_api_drops_other_formats_fields() {
        let strict = |base: Option<&str>| {
            let mut s = DeploymentSettings::new("openai", "gpt-4o");
            s.api_base = base.map(str::to_owned);
            is_own_api(&s)
        };
        assert!(strict(None));
        assert!(strict(Some("https://api.openai.com/v1")));
        assert!(!strict(Some("http://127.0.0.1:8000/v1")));

        // What Claude Code sends through /v1/messages, translated: gone for OpenAI.
        let mut req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 2048},
            "temperature": 0.5,
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "be brief",
                    "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": "ok", "reasoning_content": "hmm",
                    "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "s"}]},
                {"role": "tool", "tool_call_id": "t1", "content": "boom", "is_error": true,
                    "cache_control": {"type": "ephemeral"}}
            ]
        }))
        .unwrap();
        codec::drop_foreign_fields(&mut req);
        let body: serde_json::Value =
            serde_json::from_slice(&codec::encode_chat(req, "gpt-4o").unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "gpt-4o", "temperature": 0.5,
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
                    {"role": "assistant", "content": "ok"},
                    {"role": "tool", "tool_call_id": "t1", "content": "boom"}
                ]
            })
        );
    }

    #[test]
    fn only_openais_own_api_or_an_opt_in_passes_the_responses_api_through() {
        let passes = |base: Option<&str>, opt: Option<bool>| {
            let mut s = DeploymentSettings::new("openai", "gpt-4o");
            s.api_base = base.map(str::to_owned);
            if let Some(o) = opt {
                s.params.insert("responses_passthrough".into(), o.into());
            }
            let p = build(&s).expect("builds");
            p.passthrough_supported(PassthroughKind::Responses)
                && !p.passthrough_supported(PassthroughKind::CountTokens)
        };
        assert!(passes(None, None));
        assert!(!passes(None, Some(false)));
        assert!(!passes(Some("http://127.0.0.1:8000/v1"), None));
        assert!(passes(Some("http://127.0.0.1:8000/v1"), Some(true)));
    }

    #[test]
    fn responses_usage_reads_the_response_objects_names() {
        let v = serde_json::json!({"model": "gpt-4o-2024-08-06", "usage": {
            "input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
            "total_tokens": 17}});
        let u = codec::responses_usage(&v).expect("usage");
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (10, 7, 17)
        );
        assert_eq!((u.cached_tokens(), u.reasoning_tokens()), (4, 3));
        assert_eq!(
            codec::responses_model(&v).as_deref(),
            Some("gpt-4o-2024-08-06")
        );

        let ev = |name: Option<&str>, data: serde_json::Value| llmux_core::sse::SseEvent {
            event: name.map(str::to_owned),
            data: data.to_string(),
            ..Default::default()
        };
        let done = serde_json::json!({"type": "response.completed", "sequence_number": 9,
            "response": v});
        let (u, m) = codec::responses_event_usage(&ev(Some("response.completed"), done.clone()));
        assert_eq!(u.map(|u| u.total_tokens), Some(17));
        assert_eq!(m.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(
            codec::responses_event_usage(&ev(None, done))
                .0
                .map(|u| u.total_tokens),
            Some(17)
        );
        let delta = serde_json::json!({"type": "response.output_text.delta", "delta": "response.completed"});
        assert_eq!(
            codec::responses_event_usage(&ev(Some("response.output_text.delta"), delta)),
            (None, None)
        );
    }

    #[test]
    fn registers_itself() {
        let f = llmux_core::find_provider("openai").expect("registered");
        assert_eq!(f.name, "openai");
    }

    #[test]
    fn env_template_needs_a_key() {
        let none = |_: &str| None;
        assert!((from_env)(&none).is_none());
        let env = |k: &str| match k {
            "OPENAI_API_KEY" => Some("sk-test".to_owned()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".to_owned()),
            _ => None,
        };
        let s = (from_env)(&env).expect("configured");
        assert_eq!(s.model, "*");
        assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(s.api_key.unwrap().expose(), "sk-test");
    }

    #[test]
    fn prepares_urls_once_and_marks_the_key_sensitive() {
        let mut s = DeploymentSettings::new("openai", "gpt-4o");
        s.api_base = Some("http://127.0.0.1:1/v1/".into());
        s.api_key = Some(llmux_core::Secret::new("sk-abc"));
        let p = OpenAi::new("openai", DEFAULT_API_BASE, &s).unwrap();
        assert_eq!(
            p.chat_url.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert!(p.headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{p:?}").contains("sk-abc"));
    }

    #[test]
    fn an_api_base_that_is_not_a_url_fails_when_the_deployment_is_built() {
        let mut s = DeploymentSettings::new("openai", "gpt-4o");
        s.api_base = Some("http://[::1:bad/v1?secret=sk-in-url".into());
        let e = OpenAi::new("openai", DEFAULT_API_BASE, &s).unwrap_err();
        assert!(e.to_string().contains("invalid upstream URL"), "{e}");
        assert!(!e.to_string().contains("sk-in-url"), "{e}");
    }
}
