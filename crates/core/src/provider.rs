//! The provider plugin seam: the [`Provider`] trait, the settings a provider is built
//! from, and the [`ProviderFactory`] registry.
//!
//! A provider crate implements [`Provider`] for one provider family and registers a
//! factory with `inventory::submit!`. Whoever links the crate gets the provider; nothing
//! else changes. The router and the server only ever see `Arc<dyn Provider>`.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Error, JsonObject,
    ModelList,
};

/// A stream of chunks. Contract: when the upstream reports usage, the stream ends with a
/// usage-only chunk ([`ChatChunk::is_usage_only`]) whether or not the client asked for it —
/// the metering point needs it; the server strips it when the client did not ask.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Error>> + Send>>;

/// Per-call facts a provider needs besides the request.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The gateway's request id (sent upstream where the provider has a header for it).
    pub request_id: String,
    /// Overall time budget of this call; `None` = the deployment's own timeout.
    pub timeout: Option<Duration>,
    /// Extra headers to pass to the upstream for this call (e.g. `anthropic-beta`).
    pub headers: Vec<(String, String)>,
}

/// One LLM provider family, bound to one deployment (credentials, base URL, model).
///
/// `req.model` arriving here is the client's name; the provider sends its deployment's
/// own model id instead and reports the model that answered in the response.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider prefix (`openai`, `anthropic`, …).
    fn name(&self) -> &'static str;

    /// The provider model this deployment calls (`gpt-4o-mini`).
    fn model(&self) -> &str;

    /// A chat completion.
    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error>;

    /// A streamed chat completion. Errors before the first chunk are returned here;
    /// errors after it arrive as the stream's last item.
    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error>;

    /// Embeddings.
    async fn embed(
        &self,
        req: EmbeddingRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        let _ = (req, cx);
        Err(Error::unsupported(self.name(), "embeddings"))
    }

    /// Rerank documents against a query (Cohere's shape, see [`crate::RerankRequest`]).
    async fn rerank(
        &self,
        req: crate::RerankRequest,
        cx: &CallContext,
    ) -> Result<crate::RerankResponse, Error> {
        let _ = (req, cx);
        Err(Error::unsupported(self.name(), "rerank"))
    }

    /// The models the upstream offers (used for `provider/*` routes in `GET /v1/models`).
    async fn list_models(&self, cx: &CallContext) -> Result<ModelList, Error> {
        let _ = cx;
        Err(Error::unsupported(self.name(), "listing models"))
    }

    /// Whether [`Provider::passthrough`] serves `kind` for this deployment.
    fn passthrough_supported(&self, kind: PassthroughKind) -> bool {
        let _ = kind;
        false
    }

    /// Forward a request already in the upstream's own wire format (see
    /// [`PassthroughRequest`]) to the endpoint `req.kind` names, with only `model` replaced
    /// by the deployment's, and hand back the upstream's answer unchanged (the JSON bytes,
    /// or its SSE events as they come), plus the usage it reports. Errors before the answer
    /// starts are returned here, as for [`Provider::chat`]. Default: not supported.
    async fn passthrough(
        &self,
        req: PassthroughRequest,
        cx: &CallContext,
    ) -> Result<PassthroughResponse, Error> {
        let _ = (req, cx);
        Err(Error::unsupported(
            self.name(),
            "this passthrough operation",
        ))
    }
}

/// An upstream operation a provider can forward in the upstream's own format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PassthroughKind {
    /// OpenAI's Responses API (`POST {api_base}/responses`), plain or streamed.
    Responses,
    /// Anthropic's token counting (`POST /v1/messages/count_tokens`): `{"input_tokens": N}`.
    CountTokens,
}

impl PassthroughKind {
    /// A short name for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Responses => "responses",
            Self::CountTokens => "count_tokens",
        }
    }
}

/// A request body in the upstream's own format, forwarded as is.
#[derive(Debug, Clone)]
pub struct PassthroughRequest {
    /// Which operation.
    pub kind: PassthroughKind,
    /// The client's JSON body. `model` is the client's name on arrival; the provider
    /// replaces it with its deployment's model and changes nothing else.
    pub body: crate::JsonObject,
    /// Whether the client asked for a stream (`"stream": true` in the body).
    pub stream: bool,
}

/// The upstream's answer to a [`PassthroughRequest`].
pub struct PassthroughResponse {
    /// The body: the upstream's JSON bytes, or its event stream.
    pub body: PassthroughBody,
    /// The usage the upstream reported (complete answers), in canonical names.
    pub usage: Option<crate::Usage>,
    /// The model the upstream says answered, when it says.
    pub model: Option<String>,
}

impl fmt::Debug for PassthroughResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassthroughResponse")
            .field("body", &self.body)
            .field("usage", &self.usage)
            .field("model", &self.model)
            .finish()
    }
}

/// A passthrough answer's body.
pub enum PassthroughBody {
    /// A complete JSON answer, the upstream's bytes.
    Json(bytes::Bytes),
    /// An event stream. Errors after it started arrive as its last item.
    Events(PassthroughStream),
}

impl fmt::Debug for PassthroughBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(b) => write!(f, "Json({} bytes)", b.len()),
            Self::Events(_) => f.write_str("Events(..)"),
        }
    }
}

/// The events of a streamed passthrough answer.
pub type PassthroughStream = Pin<Box<dyn Stream<Item = Result<PassthroughEvent, Error>> + Send>>;

/// One upstream event, forwarded as it came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassthroughEvent {
    /// The upstream's event (name and data, untouched).
    pub event: crate::sse::SseEvent,
    /// The usage this event reports (the provider reads it from the events that carry
    /// it, e.g. `response.completed`).
    pub usage: Option<crate::Usage>,
    /// The model this event says answers, when it says.
    pub model: Option<String>,
}

/// A credential. Its `Debug`, `Display` and `Serialize` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value, for putting into an outgoing request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(String::deserialize(d)?))
    }
}

/// Everything needed to build one deployment's provider, already resolved (secrets read,
/// defaults applied). Provider-specific settings travel in `params`.
#[derive(Debug, Clone, Default)]
pub struct DeploymentSettings {
    /// Provider prefix (`openai`).
    pub provider: String,
    /// The provider's model id (`gpt-4o`); `*` for a wildcard template.
    pub model: String,
    /// Base URL, e.g. `https://api.openai.com/v1`; `None` = the provider's default.
    pub api_base: Option<String>,
    /// API key.
    pub api_key: Option<Secret>,
    /// Organization (OpenAI) or similar account scoping.
    pub organization: Option<String>,
    /// API version (Azure, Anthropic).
    pub api_version: Option<String>,
    /// Per-call timeout; `None` = the provider's default.
    pub timeout: Option<Duration>,
    /// Headers sent with every call of this deployment.
    pub headers: BTreeMap<String, String>,
    /// Provider-specific settings.
    pub params: JsonObject,
}

impl DeploymentSettings {
    /// Settings for `provider/model` with everything else defaulted.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            ..Self::default()
        }
    }

    /// The same deployment, for another model of the provider (wildcard routes).
    pub fn for_model(&self, model: &str) -> Self {
        let mut s = self.clone();
        s.model = model.to_owned();
        s
    }
}

/// Reads an environment variable; injected so factories can be tested without the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One kind of call a provider serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Chat completions, plain and streamed.
    Chat,
    /// Embeddings.
    Embeddings,
    /// Reranking documents against a query.
    Rerank,
    /// Listing the upstream's models (`provider/*` in `GET /v1/models`).
    ListModels,
}

impl Capability {
    /// The name used in `llmux providers` and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Embeddings => "embeddings",
            Self::Rerank => "rerank",
            Self::ListModels => "models",
        }
    }
}

/// A provider plugin: how to build its [`Provider`] for a deployment.
pub struct ProviderFactory {
    /// The prefix in `prefix/model` (`openai`).
    pub name: &'static str,
    /// One line for `llmux providers` and docs.
    pub description: &'static str,
    /// The upstream base URL used when a deployment sets no `api_base` (`""` when there is
    /// no single default, e.g. Azure's per-resource endpoints).
    pub default_api_base: &'static str,
    /// What the provider serves (for `llmux providers` and the generated provider docs).
    pub capabilities: &'static [Capability],
    /// Build the provider for one deployment.
    pub build: fn(&DeploymentSettings) -> Result<Arc<dyn Provider>, Error>,
    /// The `name/*` wildcard template when the environment configures this provider
    /// (e.g. `OPENAI_API_KEY` is set); `None` when it does not.
    pub from_env: fn(EnvLookup<'_>) -> Option<DeploymentSettings>,
}

impl fmt::Debug for ProviderFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderFactory")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

inventory::collect!(ProviderFactory);

/// Every provider linked into this binary.
pub fn providers() -> impl Iterator<Item = &'static ProviderFactory> {
    inventory::iter::<ProviderFactory>.into_iter()
}

/// The linked provider named `name`.
pub fn find_provider(name: &str) -> Option<&'static ProviderFactory> {
    providers().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains("sk-"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        let settings = DeploymentSettings {
            api_key: Some(s.clone()),
            ..DeploymentSettings::new("openai", "gpt-4o")
        };
        assert!(!format!("{settings:?}").contains("sk-very-secret"));
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn core_alone_links_no_provider() {
        assert_eq!(providers().count(), 0);
        assert!(find_provider("openai").is_none());
    }
}
