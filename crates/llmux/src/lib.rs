//! `llmux`: one OpenAI-compatible API for every LLM provider — the facade.
//!
//! Depend on this crate to get llmux with batteries: it re-exports the layers
//! ([`core`], [`config`], [`server`]) and, chosen by cargo feature, the provider crates
//! (`openai`, `azure`, `anthropic`, `gemini` (Gemini API and Vertex AI), `mock`;
//! `all-providers` by default). It also ships the `llmux` binary.
//!
//! Provider crates register themselves with `inventory` when they are linked. A crate that
//! nothing references may be dropped by the linker, so [`link_providers`] references every
//! enabled one; [`Gateway`](server::Gateway) users get it called for them by
//! [`gateway`].
//!
//! Must not: contain logic of its own beyond wiring — everything lives in the layers.

#![forbid(unsafe_code)]

pub use llmux_config as config;
pub use llmux_core as core;
#[cfg(feature = "anthropic")]
pub use llmux_provider_anthropic as anthropic;
#[cfg(feature = "azure")]
pub use llmux_provider_azure as azure;
#[cfg(feature = "bedrock")]
pub use llmux_provider_bedrock as bedrock;
#[cfg(feature = "cohere")]
pub use llmux_provider_cohere as cohere;
#[cfg(feature = "compat")]
pub use llmux_provider_compat as compat;
#[cfg(feature = "gemini")]
pub use llmux_provider_gemini as gemini;
#[cfg(feature = "mistral")]
pub use llmux_provider_mistral as mistral;
#[cfg(feature = "mock")]
pub use llmux_provider_mock as mock;
#[cfg(feature = "ollama")]
pub use llmux_provider_ollama as ollama;
#[cfg(feature = "openai")]
pub use llmux_provider_openai as openai;
pub use llmux_server as server;

/// Keep every enabled provider crate (and so its registration) in the final binary.
pub fn link_providers() {
    #[cfg(feature = "openai")]
    llmux_provider_openai::link();
    #[cfg(feature = "mock")]
    llmux_provider_mock::link();
    #[cfg(feature = "azure")]
    llmux_provider_azure::link();
    #[cfg(feature = "anthropic")]
    llmux_provider_anthropic::link();
    #[cfg(feature = "gemini")]
    llmux_provider_gemini::link();
    #[cfg(feature = "bedrock")]
    llmux_provider_bedrock::link();
    #[cfg(feature = "cohere")]
    llmux_provider_cohere::link();
    #[cfg(feature = "mistral")]
    llmux_provider_mistral::link();
    #[cfg(feature = "ollama")]
    llmux_provider_ollama::link();
    #[cfg(feature = "compat")]
    llmux_provider_compat::link();
}

/// Names of the providers compiled into this build, sorted.
pub fn provider_names() -> Vec<&'static str> {
    link_providers();
    let mut names: Vec<_> = llmux_core::providers().map(|f| f.name).collect();
    names.sort_unstable();
    names
}

/// A [`server::GatewayBuilder`] with this build's providers linked.
pub fn gateway() -> server::GatewayBuilder {
    link_providers();
    server::Gateway::builder()
}

#[cfg(test)]
mod tests {
    /// The registry holds exactly the providers whose cargo features are on: run with
    /// `--no-default-features --features mock` to see `openai` disappear.
    #[test]
    fn enabled_providers_are_found_and_disabled_ones_absent() {
        let names = super::provider_names();
        assert_eq!(
            names.contains(&"openai"),
            cfg!(feature = "openai"),
            "{names:?}"
        );
        assert_eq!(names.contains(&"mock"), cfg!(feature = "mock"), "{names:?}");
        assert_eq!(names.contains(&"anthropic"), cfg!(feature = "anthropic"));
        assert_eq!(names.contains(&"azure"), cfg!(feature = "azure"));
        assert_eq!(names.contains(&"gemini"), cfg!(feature = "gemini"));
        assert_eq!(names.contains(&"vertex_ai"), cfg!(feature = "gemini"));
        assert_eq!(
            llmux_core::find_provider("openai").is_some(),
            cfg!(feature = "openai")
        );
    }
}
