//! `llmux-engine`: llmux's call path without HTTP — the one both the gateway
//! (`llmux-server`) and the SDK (`llmux::Client`) run, so that the same configuration
//! routes, retries, falls back, prices and records a call the same way in both.
//!
//! What lives here:
//! - configuration → [`ModelTable`] ([`build_models`]): every deployment built from the
//!   linked provider factories, its price resolved (table, `base_model`, per-deployment
//!   overrides), wildcard routes, aliases, the router and its settings
//!   ([`router_settings`]); the sinks a configuration names ([`config_sinks`]);
//! - the call ([`call`]): attribution ([`attribute_chat`]), routing through
//!   `llmux-router`, and metering — [`CallMeta`] + [`Outcome`] → exactly one priced
//!   `CallRecord` per call, handed to the `llmux_cost::Meter`'s sinks; streams meter
//!   themselves ([`MeteredStream`]) and are recorded when they end or are dropped.
//!
//! What must never live here: HTTP (no axum, no hyper, no status-code responses, no
//! headers), authentication or virtual keys (the gateway's; seen here only as a
//! [`CallTicket`]), storage (no sqlx), a provider's wire format.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use llmux_core::{CallContext, ChatRequest};
//! use llmux_engine::{CallMeta, ChatRun, TableOptions};
//!
//! llmux_provider_mock::link();
//! let config = llmux_config::Config::from_str(
//!     "models:\n  - name: fast\n    model: mock/echo\n",
//!     "yaml",
//!     "inline",
//!     &|_| None,
//! )?;
//! let meter = llmux_cost::Meter::disabled();
//! let models = llmux_engine::build_models(&config, TableOptions::new(meter.clone()), &|_| None)?;
//!
//! let req = ChatRequest::new("fast").user("hello");
//! let mut meta = CallMeta::new("req-1".into(), "chat");
//! llmux_engine::attribute_chat(&mut meta, &req, None)?;
//! let run = llmux_engine::chat(Arc::new(models), req, &CallContext::default(), &mut meta)
//!     .await
//!     .map_err(|(e, _trace)| e)?;
//! let ChatRun::Full { response, trace, .. } = run else { unreachable!("not a stream") };
//! assert_eq!(response.text(), Some("hello"));
//! assert_eq!(trace.deployment_id.as_deref(), Some("fast#0"));
//! assert_eq!(meter.emitted(), 1); // one record per call
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod build;
pub mod call;
mod metering;
mod models;

pub use build::{BuildError, TableOptions, build_models, config_sinks, router_settings};
pub use call::{
    ChatRun, Failed, MeteredStream, Scope, attribute_chat, attribute_embed, chat, embed,
    record_failure,
};
pub use metering::{
    CallMeta, CallTicket, MAX_TAG_LEN, MAX_TAGS, Outcome, estimate_tokens, price, tags,
};
pub use models::{ModelTable, Pricing};
