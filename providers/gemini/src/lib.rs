//! `llmux-provider-gemini`: Google's Gemini models through two providers, `gemini` (the
//! Gemini API, an API key) and `vertex_ai` (Vertex AI, OAuth2 from a service account), and
//! Anthropic's Claude models on Vertex AI (`vertex_ai/claude-…`).
//!
//! Owns: translating canonical chat and embedding requests to Gemini's `generateContent`,
//! `streamGenerateContent`, `embedContent`/`batchEmbedContents` and Vertex `predict` bodies
//! and back ([`codec`], pure), Google's error bodies, and Vertex authentication — signing
//! a service-account JWT, exchanging it for an access token, caching and refreshing it
//! ([`auth`]). [`Gemini`] is the thin async glue, one per deployment, with its URLs and
//! headers prepared when it is built. [`VertexClaude`] ([`vertex_claude`]) serves Claude
//! models on Vertex's `rawPredict` / `streamRawPredict` with the Anthropic provider's codec
//! (no second Anthropic translation here) and the same Vertex authentication.
//!
//! Must not: depend on the router, cost, store or server crates; route, retry, price or
//! authenticate clients — a provider serves one deployment.

#![forbid(unsafe_code)]

pub mod auth;
pub mod codec;
pub mod vertex_claude;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use llmux_core::provider::EnvLookup;
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, DeploymentSettings,
    EmbeddingRequest, EmbeddingResponse, Error, Provider, ProviderFactory, Secret,
};
use llmux_http::reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use serde_json::Value;

use crate::auth::{ServiceAccount, TokenSource};
use crate::codec::{Api, EmbedMethod, EncodeOptions, ResponseMeta, StreamDecoder};
use crate::vertex_claude::CLAUDE_MODEL_PREFIX;
pub use crate::vertex_claude::VertexClaude;

/// The Gemini API's host.
pub const GEMINI_API_BASE: &str = "https://generativelanguage.googleapis.com";
/// Vertex AI's host for the `global` location (regional hosts are `{location}-` + this).
pub const VERTEX_GLOBAL_HOST: &str = "aiplatform.googleapis.com";
/// The Vertex location used when `vertex_location` is not set.
pub const DEFAULT_VERTEX_LOCATION: &str = "us-central1";
/// A call may take this long unless the deployment says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest silence tolerated between two events of a stream.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One deployment of a Gemini model, on the Gemini API or on Vertex AI.
#[derive(Debug)]
pub struct Gemini {
    name: &'static str,
    api: Api,
    model: String,
    generate_url: String,
    stream_url: String,
    embed_url: String,
    batch_embed_url: String,
    headers: HeaderMap,
    token_source: Option<Arc<TokenSource>>,
    timeout: Duration,
    encode: EncodeOptions,
    api_key: Option<Secret>,
}

fn bad(provider: &'static str, msg: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("{provider}: {msg}")).with_provider(provider)
}

fn param_str<'a>(settings: &'a DeploymentSettings, key: &str) -> Option<&'a str> {
    settings
        .params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `[A-Za-z0-9._@-]` only (and `*` for a wildcard template): names go into URL paths.
fn check_segment(provider: &'static str, what: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && (value == "*"
            || value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')));
    if ok {
        Ok(())
    } else {
        Err(bad(provider, format!("invalid {what} '{value}'")))
    }
}

/// `base` with the API version appended unless it already ends in a version segment.
fn versioned(base: &str, version: &str) -> String {
    let base = base.trim_end_matches('/');
    let last = base.rsplit('/').next().unwrap_or("");
    if matches!(last, "v1" | "v1beta" | "v1beta1") {
        base.to_owned()
    } else {
        format!("{base}/{version}")
    }
}

fn base_headers(provider: &'static str, settings: &DeploymentSettings) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (k, v) in &settings.headers {
        let name = HeaderName::try_from(k.as_str())
            .map_err(|_| bad(provider, format!("invalid header name '{k}'")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| bad(provider, format!("invalid value for header '{k}'")))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

fn sensitive(provider: &'static str, value: &str) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| bad(provider, "the credential contains invalid characters"))?;
    v.set_sensitive(true);
    Ok(v)
}

fn encode_options(provider: &'static str, settings: &DeploymentSettings) -> EncodeOptions {
    EncodeOptions {
        provider,
        drop_params: settings
            .params
            .get("drop_params")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// Token sources shared by every deployment using the same service account key and token
/// endpoint (a `vertex_ai/*` wildcard builds one deployment per model).
fn shared_token_source(
    provider: &'static str,
    account: ServiceAccount,
    token_uri: Option<String>,
    timeout: Duration,
) -> Arc<TokenSource> {
    type Registry = Mutex<HashMap<(String, String), Weak<TokenSource>>>;
    static SOURCES: OnceLock<Registry> = OnceLock::new();
    let uri = token_uri
        .clone()
        .unwrap_or_else(|| account.token_uri().to_owned());
    let key = (account.client_email().to_owned(), uri);
    let mut map = SOURCES
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return existing;
    }
    let source = TokenSource::new(provider, account, token_uri, timeout);
    map.insert(key, Arc::downgrade(&source));
    source
}

/// How a Vertex deployment authenticates.
#[derive(Debug)]
pub(crate) enum VertexAuth {
    /// A pre-issued access token (`api_key`), sent as is.
    Token(Secret),
    /// Tokens from a service account, shared with every deployment of the same account.
    Source(Arc<TokenSource>),
}

impl VertexAuth {
    /// Puts a pre-issued token into `headers`; returns the token source otherwise.
    pub(crate) fn apply(
        self,
        provider: &'static str,
        headers: &mut HeaderMap,
    ) -> Result<Option<Arc<TokenSource>>, Error> {
        match self {
            Self::Token(token) => {
                headers.insert(
                    AUTHORIZATION,
                    sensitive(provider, &format!("Bearer {}", token.expose()))?,
                );
                Ok(None)
            }
            Self::Source(source) => Ok(Some(source)),
        }
    }
}

/// What every Vertex deployment needs, whoever publishes the model: where (project,
/// location, host) and how to authenticate. Read from the deployment's `params`.
#[derive(Debug)]
pub(crate) struct VertexTarget {
    /// `{host}/v1/projects/{project}/locations/{location}`.
    pub(crate) location_url: String,
    pub(crate) auth: VertexAuth,
    pub(crate) timeout: Duration,
}

impl VertexTarget {
    pub(crate) fn new(name: &'static str, settings: &DeploymentSettings) -> Result<Self, Error> {
        let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let account = match settings.params.get("vertex_credentials") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(ServiceAccount::load(name, s)?),
            Some(v @ Value::Object(_)) => Some(ServiceAccount::from_json(name, &v.to_string())?),
            Some(_) => {
                return Err(bad(
                    name,
                    "vertex_credentials must be a file path or a service account key",
                ));
            }
        };
        let project = param_str(settings, "vertex_project")
            .or_else(|| account.as_ref().and_then(ServiceAccount::project_id))
            .ok_or_else(|| {
                bad(
                    name,
                    "vertex_project is required (or credentials that name a project_id)",
                )
            })?
            .to_owned();
        check_segment(name, "vertex_project", &project)?;
        let location = param_str(settings, "vertex_location").unwrap_or(DEFAULT_VERTEX_LOCATION);
        check_segment(name, "vertex_location", location)?;
        let host = match (&settings.api_base, location) {
            (Some(base), _) => base.clone(),
            (None, "global") => format!("https://{VERTEX_GLOBAL_HOST}"),
            (None, loc) => format!("https://{loc}-{VERTEX_GLOBAL_HOST}"),
        };
        let auth = match (&settings.api_key, account) {
            (Some(token), _) => VertexAuth::Token(token.clone()),
            (None, Some(account)) => {
                let token_uri = param_str(settings, "vertex_token_uri").map(str::to_owned);
                VertexAuth::Source(shared_token_source(name, account, token_uri, timeout))
            }
            (None, None) => {
                return Err(bad(
                    name,
                    "vertex_credentials (a service account key) or api_key (an access token) \
                     is required",
                ));
            }
        };
        Ok(Self {
            location_url: format!(
                "{}/projects/{project}/locations/{location}",
                versioned(&host, "v1")
            ),
            auth,
            timeout,
        })
    }

    /// `…/publishers/{publisher}/models/{model}`, the root of a model's methods.
    pub(crate) fn model_url(&self, publisher: &str, model: &str) -> String {
        format!(
            "{}/publishers/{publisher}/models/{model}",
            self.location_url
        )
    }
}

impl Gemini {
    /// A `gemini` deployment: the Gemini API at `api_base` (default [`GEMINI_API_BASE`]),
    /// the key sent in `x-goog-api-key` (never in the URL).
    pub fn gemini_api(settings: &DeploymentSettings) -> Result<Self, Error> {
        let name = "gemini";
        let model = settings
            .model
            .strip_prefix("models/")
            .unwrap_or(&settings.model);
        check_segment(name, "model", model)?;
        let base = settings.api_base.as_deref().unwrap_or(GEMINI_API_BASE);
        let root = format!("{}/models/{model}", versioned(base, "v1beta"));
        let mut headers = base_headers(name, settings)?;
        if let Some(key) = &settings.api_key {
            headers.insert(
                HeaderName::from_static("x-goog-api-key"),
                sensitive(name, key.expose())?,
            );
        }
        Ok(Self {
            name,
            api: Api::Gemini,
            model: model.to_owned(),
            generate_url: format!("{root}:generateContent"),
            stream_url: format!("{root}:streamGenerateContent?alt=sse"),
            embed_url: format!("{root}:embedContent"),
            batch_embed_url: format!("{root}:batchEmbedContents"),
            headers,
            token_source: None,
            timeout: settings.timeout.unwrap_or(DEFAULT_TIMEOUT),
            encode: encode_options(name, settings),
            api_key: settings.api_key.clone(),
        })
    }

    /// A `vertex_ai` deployment of a Gemini (or other Google-published) model. `params`:
    /// `vertex_project` (default: the service account's project), `vertex_location`
    /// (default [`DEFAULT_VERTEX_LOCATION`]; `global` uses the global host),
    /// `vertex_credentials` (a service-account key file path, its JSON inline, or the JSON
    /// object), `vertex_token_uri` (overrides the key's `token_uri`). A pre-issued access
    /// token in `api_key` is used instead of credentials when set. Anthropic models
    /// (`claude-…`) are refused here: they are served by [`VertexClaude`].
    pub fn vertex_ai(settings: &DeploymentSettings) -> Result<Self, Error> {
        let name = "vertex_ai";
        let model = settings.model.as_str();
        if model.starts_with("claude") {
            return Err(bad(
                name,
                format!(
                    "'{model}' is an Anthropic model: it is served by the Vertex Claude \
                     deployment (model ids starting with '{CLAUDE_MODEL_PREFIX}'), not the \
                     Gemini one"
                ),
            )
            .with_code("unsupported_model"));
        }
        check_segment(name, "model", model)?;
        let mut headers = base_headers(name, settings)?;
        let target = VertexTarget::new(name, settings)?;
        let root = target.model_url("google", model);
        let token_source = target.auth.apply(name, &mut headers)?;
        Ok(Self {
            name,
            api: Api::Vertex,
            model: model.to_owned(),
            generate_url: format!("{root}:generateContent"),
            stream_url: format!("{root}:streamGenerateContent?alt=sse"),
            embed_url: format!("{root}:predict"),
            batch_embed_url: format!("{root}:predict"),
            headers,
            token_source,
            timeout: target.timeout,
            encode: encode_options(name, settings),
            api_key: settings.api_key.clone(),
        })
    }

    fn timeout(&self, cx: &CallContext) -> Duration {
        cx.timeout.unwrap_or(self.timeout)
    }

    fn secrets(&self) -> Vec<&str> {
        self.api_key.iter().map(Secret::expose).collect()
    }

    fn meta(&self) -> ResponseMeta<'_> {
        ResponseMeta {
            provider: self.name,
            model: &self.model,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    async fn post(
        &self,
        url: &str,
        body: &Value,
        cx: &CallContext,
    ) -> Result<llmux_http::reqwest::RequestBuilder, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("could not encode the upstream request: {e}")))?;
        let mut req = llmux_http::client()
            .post(url)
            .headers(self.headers.clone())
            .body(body);
        if let Some(source) = &self.token_source {
            let token = source.token().await?;
            req = req.header(
                AUTHORIZATION,
                sensitive(self.name, &format!("Bearer {}", token.expose()))?,
            );
        }
        for (k, v) in &cx.headers {
            req = req.header(k, v);
        }
        Ok(req)
    }

    async fn call(&self, url: &str, body: &Value, cx: &CallContext) -> Result<bytes::Bytes, Error> {
        let req = self.post(url, body, cx).await?;
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

struct StreamState<S> {
    events: S,
    decoder: StreamDecoder,
    pending: VecDeque<ChatChunk>,
    error: Option<Error>,
    done: bool,
}

#[async_trait]
impl Provider for Gemini {
    fn name(&self) -> &'static str {
        self.name
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        let body = codec::encode_chat(&req, &self.encode)?;
        let bytes = self.call(&self.generate_url, &body, cx).await?;
        codec::decode_chat(&bytes, &self.meta())
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        let body = codec::encode_chat(&req, &self.encode)?;
        let post = self.post(&self.stream_url, &body, cx).await?;
        let resp = llmux_http::send_streaming(self.name, post, self.timeout(cx)).await?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(codec::decode_error(
                self.name,
                status.as_u16(),
                &body,
                llmux_http::retry_after(&headers),
                &self.secrets(),
            ));
        }
        let state = StreamState {
            events: Box::pin(llmux_http::sse_events(self.name, resp, STREAM_IDLE_TIMEOUT)),
            decoder: StreamDecoder::new(&self.meta()),
            pending: VecDeque::new(),
            error: None,
            done: false,
        };
        let chunks = futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(c) = st.pending.pop_front() {
                    return Some((Ok(c), st));
                }
                if let Some(e) = st.error.take() {
                    return Some((Err(e), st));
                }
                if st.done {
                    return None;
                }
                match st.events.next().await {
                    Some(Ok(ev)) => {
                        if let Err(e) = st.decoder.decode(&ev.data, &mut st.pending) {
                            st.error = Some(e);
                            st.done = true;
                        }
                    }
                    Some(Err(e)) => {
                        st.error = Some(e);
                        st.done = true;
                    }
                    None => {
                        st.done = true;
                        st.pending.extend(st.decoder.finish());
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
        let (method, body) = codec::encode_embeddings(&req, &self.model, self.api, self.name)?;
        let url = match method {
            EmbedMethod::BatchEmbedContents => &self.batch_embed_url,
            EmbedMethod::EmbedContent | EmbedMethod::Predict => &self.embed_url,
        };
        let bytes = self.call(url, &body, cx).await?;
        let base64 = req.encoding_format.as_deref() == Some("base64");
        codec::decode_embeddings(method, &bytes, &self.meta(), base64)
    }
}

fn build_gemini(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Gemini::gemini_api(settings)?))
}

/// `claude-…` models are Anthropic's, served over `rawPredict`; everything else is Gemini's.
fn build_vertex(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    if vertex_claude::is_claude_model(&settings.model) {
        Ok(Arc::new(VertexClaude::new(settings)?))
    } else {
        Ok(Arc::new(Gemini::vertex_ai(settings)?))
    }
}

/// `gemini/*` is served when `GEMINI_API_KEY` (or `GOOGLE_API_KEY`) is set.
fn gemini_from_env(env: EnvLookup<'_>) -> Option<DeploymentSettings> {
    let key = env("GEMINI_API_KEY")
        .filter(|k| !k.is_empty())
        .or_else(|| env("GOOGLE_API_KEY").filter(|k| !k.is_empty()))?;
    let mut s = DeploymentSettings::new("gemini", "*");
    s.api_key = Some(Secret::new(key));
    Some(s)
}

/// `vertex_ai/*` is served when `VERTEXAI_PROJECT` and `GOOGLE_APPLICATION_CREDENTIALS` (a
/// service account key file) are set; `VERTEXAI_LOCATION` is honoured.
fn vertex_from_env(env: EnvLookup<'_>) -> Option<DeploymentSettings> {
    let project = env("VERTEXAI_PROJECT").filter(|p| !p.is_empty())?;
    let credentials = env("GOOGLE_APPLICATION_CREDENTIALS").filter(|c| !c.is_empty())?;
    let mut s = DeploymentSettings::new("vertex_ai", "*");
    s.params
        .insert("vertex_project".into(), Value::String(project));
    s.params
        .insert("vertex_credentials".into(), Value::String(credentials));
    if let Some(loc) = env("VERTEXAI_LOCATION").filter(|l| !l.is_empty()) {
        s.params
            .insert("vertex_location".into(), Value::String(loc));
    }
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "gemini",
        description: "Google Gemini API (chat, streaming, tools, thinking, embeddings)",
        default_api_base: GEMINI_API_BASE,
        capabilities: &[llmux_core::Capability::Chat, llmux_core::Capability::Embeddings],
        build: build_gemini,
        from_env: gemini_from_env,
    }
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "vertex_ai",
        description: "Google Vertex AI: Gemini models (chat, streaming, tools, embeddings) and \
                      Anthropic Claude models (chat, streaming, tools)",
        default_api_base: "",
        capabilities: &[llmux_core::Capability::Chat, llmux_core::Capability::Embeddings],
        build: build_vertex,
        from_env: vertex_from_env,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(params: serde_json::Value) -> DeploymentSettings {
        let mut s = DeploymentSettings::new("vertex_ai", "gemini-2.5-flash");
        s.params = params.as_object().cloned().unwrap_or_default();
        s.api_key = Some(Secret::new("ya29.preissued"));
        s
    }

    #[test]
    fn registers_both_providers() {
        assert!(llmux_core::find_provider("gemini").is_some());
        assert!(llmux_core::find_provider("vertex_ai").is_some());
    }

    #[test]
    fn gemini_urls_keep_the_key_out_of_them() {
        let mut s = DeploymentSettings::new("gemini", "models/gemini-2.0-flash");
        s.api_key = Some(Secret::new("AIzaSy-secret"));
        let g = Gemini::gemini_api(&s).unwrap();
        assert_eq!(
            g.generate_url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            g.stream_url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert!(g.headers["x-goog-api-key"].is_sensitive());
        assert!(!format!("{g:?}").contains("AIzaSy-secret"));
        s.api_base = Some("http://127.0.0.1:9/v1beta/".into());
        let g = Gemini::gemini_api(&s).unwrap();
        assert_eq!(
            g.batch_embed_url,
            "http://127.0.0.1:9/v1beta/models/gemini-2.0-flash:batchEmbedContents"
        );
    }

    #[test]
    fn vertex_urls_per_location() {
        let g = Gemini::vertex_ai(&vertex(serde_json::json!({"vertex_project": "p-1"}))).unwrap();
        assert_eq!(
            g.generate_url,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p-1/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        let g = Gemini::vertex_ai(&vertex(
            serde_json::json!({"vertex_project": "p-1", "vertex_location": "global"}),
        ))
        .unwrap();
        assert_eq!(
            g.embed_url,
            "https://aiplatform.googleapis.com/v1/projects/p-1/locations/global/publishers/google/models/gemini-2.5-flash:predict"
        );
        assert!(g.headers[AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn vertex_build_errors_are_clear_400s() {
        let mut s = vertex(serde_json::json!({"vertex_project": "p"}));
        s.model = "claude-sonnet-4@20250514".into();
        let e = Gemini::vertex_ai(&s).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert_eq!(e.code(), Some("unsupported_model"));
        assert!(e.message().contains("Vertex Claude"), "{}", e.message());
        let e = Gemini::vertex_ai(&vertex(serde_json::json!({}))).unwrap_err();
        assert!(e.message().contains("vertex_project"), "{}", e.message());
        let mut s = vertex(serde_json::json!({"vertex_project": "p"}));
        s.api_key = None;
        let e = Gemini::vertex_ai(&s).unwrap_err();
        assert!(
            e.message().contains("vertex_credentials"),
            "{}",
            e.message()
        );
        let e = Gemini::vertex_ai(&vertex(serde_json::json!({"vertex_project": "p/../../x"})))
            .unwrap_err();
        assert_eq!(e.http_status(), 400);
        let mut s = vertex(serde_json::json!({"vertex_project": "p"}));
        s.api_key = None;
        s.params.insert(
            "vertex_credentials".into(),
            Value::String("/nonexistent/sa.json".into()),
        );
        let e = Gemini::vertex_ai(&s).unwrap_err();
        assert!(e.message().contains("cannot read"), "{}", e.message());
    }

    #[test]
    fn the_vertex_factory_picks_claude_by_model_prefix() {
        let build = llmux_core::find_provider("vertex_ai").unwrap().build;
        let mut s = vertex(serde_json::json!({"vertex_project": "p"}));
        s.model = "claude-sonnet-4-5".into();
        let p = build(&s).unwrap();
        assert_eq!((p.name(), p.model()), ("vertex_ai", "claude-sonnet-4-5"));
        assert!(format!("{p:?}").starts_with("VertexClaude"), "{p:?}");
        s.model = "gemini-2.5-pro".into();
        assert!(format!("{:?}", build(&s).unwrap()).starts_with("Gemini"));
        // Not an Anthropic model id: the Gemini deployment refuses it clearly.
        s.model = "claude".into();
        assert_eq!(build(&s).unwrap_err().code(), Some("unsupported_model"));
    }

    #[test]
    fn env_templates() {
        let none = |_: &str| None;
        assert!(gemini_from_env(&none).is_none());
        assert!(vertex_from_env(&none).is_none());
        let env = |k: &str| match k {
            "GOOGLE_API_KEY" => Some("AIza-google".to_owned()),
            "VERTEXAI_PROJECT" => Some("proj".to_owned()),
            "VERTEXAI_LOCATION" => Some("europe-west4".to_owned()),
            "GOOGLE_APPLICATION_CREDENTIALS" => Some("/etc/sa.json".to_owned()),
            _ => None,
        };
        let g = gemini_from_env(&env).unwrap();
        assert_eq!(g.model, "*");
        assert_eq!(g.api_key.unwrap().expose(), "AIza-google");
        let v = vertex_from_env(&env).unwrap();
        assert_eq!(v.params["vertex_project"], "proj");
        assert_eq!(v.params["vertex_location"], "europe-west4");
        assert_eq!(v.params["vertex_credentials"], "/etc/sa.json");
        let gemini_first = |k: &str| match k {
            "GEMINI_API_KEY" => Some("AIza-gemini".to_owned()),
            "GOOGLE_API_KEY" => Some("AIza-google".to_owned()),
            _ => None,
        };
        assert_eq!(
            gemini_from_env(&gemini_first)
                .unwrap()
                .api_key
                .unwrap()
                .expose(),
            "AIza-gemini"
        );
    }
}
