//! `llmux`: one OpenAI-compatible API for every LLM provider — in your program (the SDK,
//! [`Client`]) or as a gateway ([`server`], the `llmux` binary).
//!
//! **In a Rust program.** [`Client`] routes, retries, falls back, prices and records calls
//! in-process with the same router, the same metering (one priced
//! [`CallRecord`](core::CallRecord) per call) and the same sinks as the gateway — both
//! run `llmux-engine`. Build it from the gateway's own config files
//! ([`Client::from_config`]) or in code ([`Client::builder`]):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use llmux::{ChatRequest, Client, DeploymentSettings};
//!
//! let client = Client::builder()
//!     .model_group("fast", [DeploymentSettings::new("mock", "echo")])
//!     .model_group("backup", [DeploymentSettings::new("mock", "echo")])
//!     .fallbacks("fast", ["backup"])
//!     .build()?;
//! let req = ChatRequest::new("fast").system("Answer briefly.").user("Hello!").temperature(0.2);
//! let answer = client.chat_with_meta(req).await?;
//! assert_eq!(answer.text(), Some("Hello!"));
//! println!("answered by {:?}, cost {:?}", answer.trace.deployment_id, answer.cost);
//! # Ok(()) }
//! ```
//!
//! Errors are [`ClientError`]s to match on (`RateLimited { retry_after, .. }`,
//! `ContextWindowExceeded`, …), each saying what to do. [`Client::chat_stream`] gives a
//! [`CompletionStream`] of chunks (drop it to cancel the upstream call;
//! [`CompletionStream::collect`] or [`StreamAccumulator`] assemble the whole answer, tool
//! calls included).
//!
//! **Without this crate.** The smallest build depends on `llmux-core` and one provider
//! crate, builds a provider from [`DeploymentSettings`] and calls it — no router, no
//! metering, no runtime of ours (see `examples/minimal` and `docs/sdk.md`).
//!
//! **Features.** Providers are chosen by cargo feature (`openai`, `azure`, `anthropic`,
//! `gemini` (Gemini API and Vertex AI), `bedrock`, `cohere`, `mistral`, `ollama`,
//! `compat`, `mock`; `all-providers` by default). `gateway` (default) adds the HTTP
//! server, the key/spend store and the `llmux` binary; an SDK-only build turns it off:
//! `llmux = { version = "0.1", default-features = false, features = ["openai"] }`.
//!
//! Provider crates register themselves with `inventory` when they are linked. A crate that
//! nothing references may be dropped by the linker, so [`link_providers`] references every
//! enabled one; [`Client::builder`] and [`gateway`] call it for you. A provider crate of
//! your own registers the same way (see `examples/custom-provider`).
//!
//! Must not: contain logic of its own beyond wiring and SDK ergonomics — routing and
//! metering live in the layers (`llmux-engine`, `llmux-router`, `llmux-cost`).

#![forbid(unsafe_code)]

mod client;
mod error;
mod stream;

pub use client::{Client, ClientBuilder, Metered};
pub use error::ClientError;
pub use stream::CompletionStream;

pub use llmux_config as config;
pub use llmux_config::{Config, ModelEntry};
pub use llmux_core as core;
pub use llmux_core::{
    CallRecord, CallSink, ChatChunk, ChatRequest, ChatResponse, DeploymentSettings, EmbeddingInput,
    EmbeddingRequest, EmbeddingResponse, ErrorKind, Message, StreamAccumulator, Tool, ToolChoice,
};
pub use llmux_cost::Money;
pub use llmux_engine as engine;
pub use llmux_engine::BuildError;
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
pub use llmux_router as router;
pub use llmux_router::{RouterSettings, Strategy, Trace};
#[cfg(feature = "gateway")]
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
#[cfg(feature = "gateway")]
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
