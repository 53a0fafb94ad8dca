//! `llmux-core`: the vocabulary every other llmux crate speaks.
//!
//! What lives here:
//! - the canonical wire types, in OpenAI's shapes ([`ChatRequest`], [`ChatResponse`],
//!   [`ChatChunk`], [`EmbeddingRequest`], [`ModelList`], [`ErrorBody`], [`Usage`]);
//! - [`ModelRef`], the parsed `provider/model` string;
//! - the [`Provider`] trait and the [`ProviderFactory`] plugin registry (collected with
//!   `inventory`, so a provider crate registers itself by being linked);
//! - the error taxonomy ([`Error`], [`ErrorKind`]): each kind names its HTTP status and
//!   OpenAI's error `type`/`code` exactly once;
//! - the SSE codec ([`sse`]): a bounded, linear-time decoder and an encoder;
//! - the [`CallRecord`] every call produces at the metering point, and the [`CallSink`]
//!   trait its consumers implement.
//!
//! What must never live here: network I/O, an HTTP client or server (no `reqwest`, no
//! `axum`), routing, keys, prices. Core is pure data and traits so that an SDK user can
//! depend on it plus one provider crate and nothing else.
//!
//! ```
//! use llmux_core::{ChatRequest, ErrorKind, Tool, ToolChoice};
//!
//! let req = ChatRequest::new("gpt-4o")
//!     .system("Answer in JSON.")
//!     .user("Weather in Paris?")
//!     .tool(Tool::function("get_weather", "Weather for a city", serde_json::json!({"type": "object"})))
//!     .tool_choice(ToolChoice::auto())
//!     .temperature(0.0)
//!     .max_tokens(200);
//! let wire = serde_json::to_value(&req).expect("serialises");
//! assert_eq!(wire["messages"][1]["content"], "Weather in Paris?");
//! assert_eq!(wire["tools"][0]["function"]["name"], "get_weather");
//! assert!(ErrorKind::RateLimited.advice().contains("retry_after"));
//! ```

#![forbid(unsafe_code)]

pub mod error;
pub mod model_ref;
pub mod provider;
pub mod record;
pub mod sse;
pub mod tags;
pub mod types;

pub use error::{Error, ErrorBody, ErrorDetail, ErrorKind, Origin};
pub use model_ref::ModelRef;
pub use provider::{
    CallContext, Capability, ChatStream, DeploymentSettings, Provider, ProviderFactory, Secret,
    find_provider, providers,
};
pub use record::{BudgetAlert, BudgetScope, CallRecord, CallSink};
pub use types::*;

/// Re-exported so provider crates can `inventory::submit!` without naming the dependency.
pub use inventory;
