//! The catalogue: one row of data per OpenAI-compatible provider.
//!
//! Every fact about a provider — prefix, default base URL, environment variables, how the
//! key travels, what it serves, which request parameters it cannot take — lives in the one
//! [`catalogue!`] invocation below. The macro turns each row into a [`CompatProvider`] and
//! a registered `ProviderFactory` (whose `build`/`from_env` are plain `fn`s, as `inventory`
//! needs statics), and lists every row in [`CATALOGUE`]. Sources for the URLs and variable
//! names: each provider's own API docs and LiteLLM's provider configuration (its variable
//! names are the ones users already have set).
//!
//! Must not: hold behaviour. Building, environment templates and quirk application are in
//! the crate root and [`crate::quirks`].

use llmux_core::Capability::{self, Chat, Embeddings, ListModels};

use crate::quirks::Quirk;

/// How a provider expects its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`; a key is needed to serve the provider from the
    /// environment.
    Bearer,
    /// `Authorization: Bearer <key>` when a key is configured; the server usually runs
    /// without one (self-hosted servers, local apps).
    OptionalBearer,
    /// The key as the value of this header (lower-case name).
    Header(&'static str),
}

impl Auth {
    /// Whether the provider can be used without a key.
    pub fn key_optional(self) -> bool {
        matches!(self, Self::OptionalBearer)
    }
}

/// A header whose value comes from a deployment `params` entry (or an environment
/// variable when serving from the environment), e.g. OpenRouter's attribution headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamHeader {
    /// The key in the deployment's `params`.
    pub param: &'static str,
    /// The environment variable read by the `prefix/*` template, if any.
    pub env: Option<&'static str>,
    /// The header sent upstream (lower-case name).
    pub header: &'static str,
}

/// One OpenAI-compatible provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompatProvider {
    /// The prefix in `prefix/model`.
    pub prefix: &'static str,
    /// One line for `llmux providers` and the docs.
    pub description: &'static str,
    /// Base URL used when a deployment names no `api_base`; `""` = none, `api_base` required.
    pub default_api_base: &'static str,
    /// Environment variables holding the key, the conventional one first; the `prefix/*`
    /// template takes the first one set.
    pub key_env: &'static [&'static str],
    /// Environment variable overriding the base URL in the `prefix/*` template.
    pub base_env: Option<&'static str>,
    /// How the key travels.
    pub auth: Auth,
    /// What the provider serves through llmux.
    pub capabilities: &'static [Capability],
    /// Request rewrites the provider needs, applied before encoding.
    pub quirks: &'static [Quirk],
    /// Headers filled from deployment `params`.
    pub param_headers: &'static [ParamHeader],
}

impl CompatProvider {
    /// Whether the provider serves `capability` through llmux.
    pub fn serves(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Field defaults every row starts from (`..ROW`).
const ROW: CompatProvider = CompatProvider {
    prefix: "",
    description: "",
    default_api_base: "",
    key_env: &[],
    base_env: None,
    auth: Auth::Bearer,
    capabilities: CHAT,
    quirks: &[],
    param_headers: &[],
};

const CHAT: &[Capability] = &[Chat];
const CHAT_MODELS: &[Capability] = &[Chat, ListModels];
const CHAT_EMBEDDINGS: &[Capability] = &[Chat, Embeddings];
const ALL: &[Capability] = &[Chat, Embeddings, ListModels];

/// Generates, for each `prefix { field: value, … }` row: a module `prefix` holding the
/// row as `ENTRY` (prefix = the row's name, so they cannot differ), its `build` and
/// `from_env` functions and the `inventory` registration; and [`CATALOGUE`] listing every
/// row in table order.
macro_rules! catalogue {
    ($( $prefix:ident { $($field:ident : $value:expr),* $(,)? } )*) => {
        $(
            mod $prefix {
                use super::*;

                pub(super) const ENTRY: CompatProvider = CompatProvider {
                    prefix: stringify!($prefix),
                    $($field: $value,)*
                    ..ROW
                };

                fn build(
                    settings: &llmux_core::DeploymentSettings,
                ) -> Result<std::sync::Arc<dyn llmux_core::Provider>, llmux_core::Error> {
                    crate::build_provider(&ENTRY, settings)
                }

                fn from_env(
                    env: llmux_core::provider::EnvLookup<'_>,
                ) -> Option<llmux_core::DeploymentSettings> {
                    crate::env_template(&ENTRY, env)
                }

                llmux_core::inventory::submit! {
                    llmux_core::ProviderFactory {
                        name: ENTRY.prefix,
                        description: ENTRY.description,
                        default_api_base: ENTRY.default_api_base,
                        capabilities: ENTRY.capabilities,
                        build,
                        from_env,
                    }
                }
            }
        )*

        /// Every OpenAI-compatible provider of this crate, in table order.
        pub static CATALOGUE: &[CompatProvider] = &[$($prefix::ENTRY),*];
    };
}

catalogue! {
    groq {
        description: "Groq (OpenAI-compatible)",
        default_api_base: "https://api.groq.com/openai/v1",
        key_env: &["GROQ_API_KEY"],
        base_env: Some("GROQ_API_BASE"),
        capabilities: CHAT_MODELS,
        // Groq answers 400 to these ("not yet supported by any of our models").
        quirks: &[Quirk::Drop("logprobs"), Quirk::Drop("top_logprobs"), Quirk::Drop("logit_bias")],
    }
    together_ai {
        description: "Together AI (OpenAI-compatible)",
        default_api_base: "https://api.together.xyz/v1",
        key_env: &["TOGETHER_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY"],
        base_env: Some("TOGETHER_AI_API_BASE"),
        capabilities: ALL,
    }
    fireworks_ai {
        description: "Fireworks AI (OpenAI-compatible)",
        default_api_base: "https://api.fireworks.ai/inference/v1",
        key_env: &["FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"],
        base_env: Some("FIREWORKS_API_BASE"),
        // Its model list is per account (`/v1/accounts/{id}/models`), not under the base.
        capabilities: CHAT_EMBEDDINGS,
    }
    deepseek {
        description: "DeepSeek API (OpenAI-compatible)",
        default_api_base: "https://api.deepseek.com",
        key_env: &["DEEPSEEK_API_KEY"],
        base_env: Some("DEEPSEEK_API_BASE"),
        capabilities: CHAT_MODELS,
    }
    xai {
        description: "xAI Grok API (OpenAI-compatible)",
        default_api_base: "https://api.x.ai/v1",
        key_env: &["XAI_API_KEY"],
        base_env: Some("XAI_API_BASE"),
        capabilities: CHAT_MODELS,
        quirks: &[Quirk::MaxCompletionTokensAsMaxTokens, Quirk::DropMessageNames],
    }
    openrouter {
        description: "OpenRouter (one key, many upstreams; HTTP-Referer/X-Title from params)",
        default_api_base: "https://openrouter.ai/api/v1",
        key_env: &["OPENROUTER_API_KEY"],
        base_env: Some("OPENROUTER_API_BASE"),
        capabilities: ALL,
        param_headers: &[
            ParamHeader { param: "site_url", env: Some("OR_SITE_URL"), header: "http-referer" },
            ParamHeader { param: "app_name", env: Some("OR_APP_NAME"), header: "x-title" },
        ],
    }
    perplexity {
        description: "Perplexity Sonar (OpenAI-compatible, web-grounded answers)",
        default_api_base: "https://api.perplexity.ai",
        key_env: &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
        base_env: Some("PERPLEXITY_API_BASE"),
        capabilities: CHAT,
    }
    cerebras {
        description: "Cerebras Inference (OpenAI-compatible)",
        default_api_base: "https://api.cerebras.ai/v1",
        key_env: &["CEREBRAS_API_KEY"],
        base_env: Some("CEREBRAS_API_BASE"),
        capabilities: CHAT_MODELS,
        // Cerebras answers 400 to these.
        quirks: &[
            Quirk::Drop("frequency_penalty"),
            Quirk::Drop("presence_penalty"),
            Quirk::Drop("logit_bias"),
            Quirk::Drop("parallel_tool_calls"),
            Quirk::Drop("service_tier"),
        ],
    }
    deepinfra {
        description: "DeepInfra (OpenAI-compatible)",
        default_api_base: "https://api.deepinfra.com/v1/openai",
        key_env: &["DEEPINFRA_API_KEY"],
        base_env: Some("DEEPINFRA_API_BASE"),
        capabilities: ALL,
        quirks: &[Quirk::MaxCompletionTokensAsMaxTokens],
    }
    sambanova {
        description: "SambaNova Cloud (OpenAI-compatible)",
        default_api_base: "https://api.sambanova.ai/v1",
        key_env: &["SAMBANOVA_API_KEY"],
        base_env: Some("SAMBANOVA_API_BASE"),
        capabilities: CHAT_MODELS,
    }
    nvidia_nim {
        description: "NVIDIA NIM API catalog (OpenAI-compatible)",
        default_api_base: "https://integrate.api.nvidia.com/v1",
        key_env: &["NVIDIA_NIM_API_KEY"],
        base_env: Some("NVIDIA_NIM_API_BASE"),
        capabilities: ALL,
    }
    hyperbolic {
        description: "Hyperbolic (OpenAI-compatible)",
        default_api_base: "https://api.hyperbolic.xyz/v1",
        key_env: &["HYPERBOLIC_API_KEY"],
        base_env: Some("HYPERBOLIC_API_BASE"),
        capabilities: CHAT_MODELS,
    }
    novita {
        description: "Novita AI (OpenAI-compatible)",
        default_api_base: "https://api.novita.ai/v3/openai",
        key_env: &["NOVITA_API_KEY"],
        capabilities: CHAT_MODELS,
    }
    nebius {
        description: "Nebius AI Studio (OpenAI-compatible)",
        default_api_base: "https://api.studio.nebius.com/v1",
        key_env: &["NEBIUS_API_KEY"],
        base_env: Some("NEBIUS_API_BASE"),
        capabilities: ALL,
    }
    lambda_ai {
        description: "Lambda Inference API (OpenAI-compatible)",
        default_api_base: "https://api.lambda.ai/v1",
        key_env: &["LAMBDA_API_KEY"],
        base_env: Some("LAMBDA_API_BASE"),
        capabilities: CHAT_MODELS,
    }
    moonshot {
        description: "Moonshot AI Kimi (OpenAI-compatible)",
        default_api_base: "https://api.moonshot.ai/v1",
        key_env: &["MOONSHOT_API_KEY"],
        base_env: Some("MOONSHOT_API_BASE"),
        capabilities: CHAT_MODELS,
        // Text-only models take string content only; `max_tokens` is the limit's name.
        quirks: &[Quirk::MaxCompletionTokensAsMaxTokens, Quirk::TextPartsAsString],
    }
    dashscope {
        description: "Alibaba Cloud Model Studio / DashScope Qwen (OpenAI-compatible mode)",
        default_api_base: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        key_env: &["DASHSCOPE_API_KEY"],
        base_env: Some("DASHSCOPE_API_BASE"),
        capabilities: ALL,
        quirks: &[Quirk::TextPartsAsString],
    }
    volcengine {
        description: "Volcengine Ark / Doubao (OpenAI-compatible)",
        default_api_base: "https://ark.cn-beijing.volces.com/api/v3",
        key_env: &["VOLCENGINE_API_KEY", "ARK_API_KEY"],
        base_env: Some("VOLCENGINE_API_BASE"),
        capabilities: CHAT_EMBEDDINGS,
    }
    github {
        description: "GitHub Models (OpenAI-compatible inference endpoint)",
        default_api_base: "https://models.github.ai/inference",
        key_env: &["GITHUB_API_KEY"],
        base_env: Some("GITHUB_API_BASE"),
        capabilities: CHAT_EMBEDDINGS,
    }
    huggingface {
        description: "Hugging Face Inference Providers router (OpenAI-compatible)",
        default_api_base: "https://router.huggingface.co/v1",
        key_env: &["HF_TOKEN", "HUGGINGFACE_API_KEY"],
        base_env: Some("HUGGINGFACE_API_BASE"),
        capabilities: CHAT_MODELS,
    }
    featherless_ai {
        description: "Featherless AI (OpenAI-compatible)",
        default_api_base: "https://api.featherless.ai/v1",
        key_env: &["FEATHERLESS_API_KEY", "FEATHERLESS_AI_API_KEY"],
        base_env: Some("FEATHERLESS_API_BASE"),
        capabilities: CHAT_MODELS,
        quirks: &[Quirk::MaxCompletionTokensAsMaxTokens],
    }
    nscale {
        description: "Nscale serverless inference (OpenAI-compatible)",
        default_api_base: "https://inference.api.nscale.com/v1",
        key_env: &["NSCALE_API_KEY"],
        base_env: Some("NSCALE_API_BASE"),
        capabilities: CHAT_MODELS,
    }
    baseten {
        description: "Baseten Model APIs (OpenAI-compatible)",
        default_api_base: "https://inference.baseten.co/v1",
        key_env: &["BASETEN_API_KEY"],
        capabilities: CHAT,
        quirks: &[Quirk::MaxCompletionTokensAsMaxTokens],
    }
    vllm {
        description: "a vLLM server (OpenAI-compatible; api_base required)",
        key_env: &["VLLM_API_KEY"],
        base_env: Some("VLLM_API_BASE"),
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
    hosted_vllm {
        description: "a hosted vLLM server (OpenAI-compatible; api_base required)",
        key_env: &["HOSTED_VLLM_API_KEY"],
        base_env: Some("HOSTED_VLLM_API_BASE"),
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
    lm_studio {
        description: "LM Studio's local server (OpenAI-compatible)",
        default_api_base: "http://localhost:1234/v1",
        key_env: &["LM_STUDIO_API_KEY"],
        base_env: Some("LM_STUDIO_API_BASE"),
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
    llamafile {
        description: "a llamafile server (OpenAI-compatible)",
        default_api_base: "http://127.0.0.1:8080/v1",
        key_env: &["LLAMAFILE_API_KEY"],
        base_env: Some("LLAMAFILE_API_BASE"),
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
    litellm_proxy {
        description: "a LiteLLM Proxy (OpenAI-compatible; api_base required)",
        key_env: &["LITELLM_PROXY_API_KEY"],
        base_env: Some("LITELLM_PROXY_API_BASE"),
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
    openai_like {
        description: "any OpenAI-compatible server (api_base required)",
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
    custom_openai {
        description: "any OpenAI-compatible server (api_base required; alias of openai_like)",
        auth: Auth::OptionalBearer,
        capabilities: ALL,
    }
}

impl CompatProvider {
    /// What sets the row apart from plain OpenAI, as short phrases (key style, quirks,
    /// parameter headers); empty for a row with nothing to say.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match self.auth {
            Auth::Bearer => {}
            Auth::OptionalBearer => notes.push("key optional".to_owned()),
            Auth::Header(h) => notes.push(format!("key in `{h}`")),
        }
        notes.extend(self.quirks.iter().map(|q| q.describe()));
        notes.extend(self.param_headers.iter().map(|ph| {
            let env = ph.env.map(|e| format!(" or `{e}`")).unwrap_or_default();
            format!("`params.{}`{env} → `{}` header", ph.param, ph.header)
        }));
        notes
    }
}

/// The row for `prefix`.
pub fn find(prefix: &str) -> Option<&'static CompatProvider> {
    CATALOGUE.iter().find(|e| e.prefix == prefix)
}
