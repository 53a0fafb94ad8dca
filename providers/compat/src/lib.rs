//! `llmux-provider-compat`: llmux's catalogue of OpenAI-compatible providers (one table,
//! the OpenAI codec).
//!
//! Dozens of providers speak OpenAI's wire format at their own address, with their own
//! environment variables and a few parameters they reject. Each of them is one row of
//! data in [`catalogue`] — prefix, default base URL, key variables, auth style,
//! capabilities, [`quirks`] — and one registered `ProviderFactory` generated from it. A
//! deployment is the OpenAI crate's [`OpenAi`] glue (URLs and headers prepared once) behind
//! a thin [`Compat`] wrapper that applies the row's quirks to the request before encoding
//! and refuses what the row says the provider does not serve.
//!
//! Must not: own a codec (requests and responses go through `llmux-provider-openai`'s),
//! route, retry, price or authenticate clients; a provider serves one deployment.

#![forbid(unsafe_code)]

pub mod catalogue;
pub mod quirks;

use std::sync::Arc;

use async_trait::async_trait;
use llmux_core::{
    CallContext, Capability, ChatRequest, ChatResponse, ChatStream, DeploymentSettings,
    EmbeddingRequest, EmbeddingResponse, Error, ModelList, Provider, Secret,
};
use llmux_provider_openai::{Endpoints, KeyHeader, OpenAi};

pub use catalogue::{Auth, CATALOGUE, CompatProvider, ParamHeader};
pub use quirks::Quirk;

/// One deployment of a catalogue provider.
#[derive(Debug)]
pub struct Compat {
    entry: &'static CompatProvider,
    inner: OpenAi,
}

impl Compat {
    /// Build the deployment `settings` describes for the provider `entry`. `api_base` is
    /// required when the row has no default.
    pub fn new(
        entry: &'static CompatProvider,
        settings: &DeploymentSettings,
    ) -> Result<Self, Error> {
        let base = settings
            .api_base
            .as_deref()
            .filter(|b| !b.is_empty())
            .or(Some(entry.default_api_base).filter(|b| !b.is_empty()))
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "{}: api_base is required (the server's OpenAI-compatible base URL, e.g. http://host:8000/v1)",
                    entry.prefix
                ))
                .with_param("api_base")
            })?;
        let mut endpoints = Endpoints::under(base);
        if !entry.serves(Capability::ListModels) {
            endpoints.models = None;
        }
        let key_header = match entry.auth {
            Auth::Bearer | Auth::OptionalBearer => KeyHeader::Bearer,
            Auth::Header(name) => KeyHeader::Named(name),
        };
        let inner = if entry.param_headers.is_empty() {
            OpenAi::with_endpoints(entry.prefix, settings, endpoints, key_header)?
        } else {
            let mut s = settings.clone();
            for ph in entry.param_headers {
                let explicit = s.headers.keys().any(|k| k.eq_ignore_ascii_case(ph.header));
                if let Some(v) = settings.params.get(ph.param).and_then(|v| v.as_str())
                    && !explicit
                {
                    s.headers.insert(ph.header.to_owned(), v.to_owned());
                }
            }
            OpenAi::with_endpoints(entry.prefix, &s, endpoints, key_header)?
        };
        Ok(Self { entry, inner })
    }

    /// The catalogue row this deployment belongs to.
    pub fn entry(&self) -> &'static CompatProvider {
        self.entry
    }
}

#[async_trait]
impl Provider for Compat {
    fn name(&self) -> &'static str {
        self.entry.prefix
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    async fn chat(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatResponse, Error> {
        self.inner
            .chat(quirks::apply(self.entry.quirks, req), cx)
            .await
    }

    async fn chat_stream(&self, req: ChatRequest, cx: &CallContext) -> Result<ChatStream, Error> {
        self.inner
            .chat_stream(quirks::apply(self.entry.quirks, req), cx)
            .await
    }

    async fn embed(
        &self,
        req: EmbeddingRequest,
        cx: &CallContext,
    ) -> Result<EmbeddingResponse, Error> {
        if !self.entry.serves(Capability::Embeddings) {
            return Err(Error::unsupported(self.entry.prefix, "embeddings"));
        }
        self.inner.embed(req, cx).await
    }

    async fn list_models(&self, cx: &CallContext) -> Result<ModelList, Error> {
        // Without the capability the endpoints carry no model URL and `inner` refuses.
        self.inner.list_models(cx).await
    }
}

/// The factory's `build` for a row (called by the generated registrations).
pub(crate) fn build_provider(
    entry: &'static CompatProvider,
    settings: &DeploymentSettings,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(Compat::new(entry, settings)?))
}

/// The `prefix/*` template the environment configures for a row: its key variable is set
/// (or, for keyless servers, its key or base variable), and a base URL is known (the
/// row's default or its base variable). Params behind [`ParamHeader`]s come from their
/// variables.
pub fn env_template(
    entry: &CompatProvider,
    env: llmux_core::provider::EnvLookup<'_>,
) -> Option<DeploymentSettings> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    let key = entry.key_env.iter().find_map(|name| get(name));
    let base = entry.base_env.and_then(get);
    let configured = key.is_some() || (entry.auth.key_optional() && base.is_some());
    if !configured || (entry.default_api_base.is_empty() && base.is_none()) {
        return None;
    }
    let mut s = DeploymentSettings::new(entry.prefix, "*");
    s.api_key = key.map(Secret::new);
    s.api_base = base;
    for ph in entry.param_headers {
        if let Some(v) = ph.env.and_then(get) {
            s.params.insert(ph.param.to_owned(), v.into());
        }
    }
    Some(s)
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}

#[cfg(test)]
mod tests;
