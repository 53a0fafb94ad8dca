//! `llmux-server`: the gateway's HTTP surface.
//!
//! Owns: the inbound wire format (OpenAI's endpoints: `/v1/chat/completions`,
//! `/v1/embeddings`, `/v1/models`, the same without `/v1`, health), client authentication
//! with the master key, the request id, the model table that maps a requested model name
//! to a deployment, SSE streaming to clients, graceful shutdown, and the [`Gateway`]
//! builder a user composes a custom gateway binary with.
//!
//! The one place where an [`llmux_core::Error`] becomes an HTTP response is
//! [`ApiError`]'s `IntoResponse`.
//!
//! Must not: know any provider's wire format (it sees only `Arc<dyn Provider>`), or do
//! slow work on the request path (no per-request config parsing, no blocking I/O).

#![forbid(unsafe_code)]

mod access;
mod admin;
mod call;
mod error;
mod gateway;
mod handlers;
mod messages;
mod metering;
mod models;
mod report;
mod rerank;
mod responses;

pub use error::{ApiError, ServerError};
pub use gateway::{Gateway, GatewayBuilder, RunningGateway, shutdown_signal};
pub use models::{ModelTable, Pricing};
