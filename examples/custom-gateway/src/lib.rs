//! A custom gateway built from `llmux-server`: the stock gateway (every OpenAI-compatible
//! endpoint, keys, metering, sinks, reload, graceful shutdown) plus what this binary adds
//! — one route (`GET /hello`), one middleware (an `x-served-by` header on every response)
//! and one provider crate of its own (`llmux-provider-reverse`, `reverse/<model>`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let gateway = llmux_example_gateway::builder(llmux::Config::default()).build()?;
//! let app = llmux_example_gateway::app(&gateway);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! gateway.serve_app(app, listener, llmux::server::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! Must not: change how calls are routed or metered — it only adds around the stock
//! gateway.

#![forbid(unsafe_code)]

use axum::http::HeaderValue;
use axum::response::Response;
use llmux::server::{Gateway, GatewayBuilder};
use llmux::{Config, DeploymentSettings};

/// The header the middleware adds to every response.
pub const SERVED_BY: &str = "x-served-by";

/// The stock gateway builder for `config`, with this binary's providers linked, the
/// `reverse` model group served by the custom provider, and `provider/*` routes for `mock`
/// and every provider whose credentials are in the environment.
pub fn builder(config: Config) -> GatewayBuilder {
    llmux_provider_reverse::link();
    llmux::gateway().config(config).env_wildcards(true).model(
        "reverse",
        DeploymentSettings::new(llmux_provider_reverse::NAME, "v1"),
    )
}

/// The gateway's routes plus this binary's route and middleware.
pub fn app(gateway: &Gateway) -> axum::Router {
    gateway
        .router()
        .route("/hello", axum::routing::get(hello))
        .layer(axum::middleware::map_response(served_by))
}

async fn hello() -> &'static str {
    "hello from a custom llmux gateway\n"
}

async fn served_by(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(SERVED_BY, HeaderValue::from_static("llmux-example-gateway"));
    response
}
