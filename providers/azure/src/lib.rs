//! `llmux-provider-azure`: Azure OpenAI (`azure/<deployment>`).
//!
//! Azure serves OpenAI's wire format at its own addresses, so this crate owns only the
//! layout and the credentials; every request and response goes through the OpenAI crate's
//! codec (no copy):
//! - dated API versions: `{api_base}/openai/deployments/{deployment}/chat/completions?api-version=…`
//!   (and `/embeddings`), default version [`DEFAULT_API_VERSION`];
//! - the v1 API (`api_version: v1`): `{api_base}/openai/v1/chat/completions` with the
//!   deployment as `model`;
//! - the Responses API passed through as is (`POST /v1/responses` on the gateway) to
//!   `{api_base}/openai/v1/responses` with the deployment as `model` — by default on the
//!   v1 API only (Azure serves the Responses API there; dated versions keep the
//!   translation to chat), or as `params.responses_passthrough` says;
//! - the key in the `api-key` header, or an Entra ID token (`params.azure_ad_token`, or
//!   `AZURE_AD_TOKEN`) as `Authorization: Bearer`.
//!
//! Azure's content-filter refusals (`code: content_filter`) map to `content_policy` errors
//! and its `finish_reason: content_filter` passes through unchanged.
//!
//! Must not: route, price or know about the server.

#![forbid(unsafe_code)]

use std::sync::Arc;

use llmux_core::{DeploymentSettings, Error, Provider, ProviderFactory, Secret};
use llmux_provider_openai::{Endpoints, KeyHeader, OpenAi};

/// The API version used when the deployment names none (the latest GA dated version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Build the provider for one Azure deployment.
pub fn build(settings: &DeploymentSettings) -> Result<OpenAi, Error> {
    let base = settings
        .api_base
        .as_deref()
        .ok_or_else(|| {
            Error::bad_request("azure: api_base is required (https://<resource>.openai.azure.com)")
                .with_param("api_base")
        })?
        .trim_end_matches('/');
    let version = settings
        .api_version
        .as_deref()
        .unwrap_or(DEFAULT_API_VERSION);
    let v1 = version == "v1" || version == "latest";
    let endpoints = if v1 {
        Endpoints {
            chat: format!("{base}/openai/v1/chat/completions"),
            embeddings: format!("{base}/openai/v1/embeddings"),
            models: None,
        }
    } else {
        let d = &settings.model;
        Endpoints {
            chat: format!("{base}/openai/deployments/{d}/chat/completions?api-version={version}"),
            embeddings: format!("{base}/openai/deployments/{d}/embeddings?api-version={version}"),
            models: None,
        }
    };
    let ad_token = settings
        .params
        .get("azure_ad_token")
        .and_then(|v| v.as_str())
        .map(Secret::new);
    let p = match ad_token {
        Some(token) => {
            let mut s = settings.clone();
            s.api_key = Some(token);
            OpenAi::with_endpoints("azure", &s, endpoints, KeyHeader::Bearer)?
        }
        None => OpenAi::with_endpoints("azure", settings, endpoints, KeyHeader::Named("api-key"))?,
    }
    .strict();
    let passthrough = llmux_provider_openai::responses_passthrough(settings).unwrap_or(v1);
    Ok(if passthrough {
        p.with_responses_url(format!("{base}/openai/v1/responses"))
    } else {
        p
    })
}

fn factory_build(settings: &DeploymentSettings) -> Result<Arc<dyn Provider>, Error> {
    Ok(Arc::new(build(settings)?))
}

/// `azure/*` is served when `AZURE_API_BASE` and `AZURE_API_KEY` (or `AZURE_AD_TOKEN`) are
/// set; `AZURE_API_VERSION` picks the version.
fn from_env(env: llmux_core::provider::EnvLookup<'_>) -> Option<DeploymentSettings> {
    let base = env("AZURE_API_BASE").filter(|v| !v.is_empty())?;
    let mut s = DeploymentSettings::new("azure", "*");
    s.api_base = Some(base);
    s.api_version = env("AZURE_API_VERSION");
    match (env("AZURE_API_KEY"), env("AZURE_AD_TOKEN")) {
        (Some(k), _) if !k.is_empty() => s.api_key = Some(Secret::new(k)),
        (_, Some(t)) if !t.is_empty() => {
            s.params.insert("azure_ad_token".into(), t.into());
        }
        _ => return None,
    }
    Some(s)
}

llmux_core::inventory::submit! {
    ProviderFactory {
        name: "azure",
        description: "Azure OpenAI (deployments, api-key or Entra ID token)",
        default_api_base: "",
        capabilities: &[llmux_core::Capability::Chat, llmux_core::Capability::Embeddings],
        build: factory_build,
        from_env,
    }
}

/// Referenced by the `llmux` facade so the linker keeps this crate's registration.
pub fn link() {}
