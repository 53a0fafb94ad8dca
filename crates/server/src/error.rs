//! Errors of the server crate, and the single mapping of errors to HTTP responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmux_core::{Error, ErrorKind};

/// Why a gateway could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configured model names a provider this binary was not built with.
    #[error("{key}: unknown provider '{provider}' (compiled-in providers: {available})")]
    UnknownProvider {
        /// Key path, e.g. `models[1].model`.
        key: String,
        /// The provider prefix.
        provider: String,
        /// Comma-separated list of linked providers.
        available: String,
    },
    /// A provider refused its deployment settings.
    #[error("{key}: {source}")]
    Deployment {
        /// Key path.
        key: String,
        /// The provider's error.
        source: Error,
    },
    /// The routing configuration is inconsistent (unknown fallback group, loop, …).
    #[error("router: {0}")]
    Router(#[from] llmux_router::ConfigError),
    /// The price table file or a configured price is unusable.
    #[error("prices: {0}")]
    Prices(String),
    /// An exporter's configuration (OTLP, Langfuse) is unusable.
    #[error("observability: {0}")]
    Observability(String),
    /// A reload was asked for but the gateway was not started from a config file.
    #[error("no config file to reload")]
    NoConfigFile,
    /// The new config did not load; the running one keeps serving.
    #[error("reload: {0}")]
    Reload(String),
    /// The listening socket could not be opened or served.
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// An [`Error`] on its way to a client: OpenAI's error body with the kind's status.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&e.to_body()).unwrap_or_else(|_| {
            br#"{"error":{"message":"internal error","type":"api_error","param":null,"code":"internal_error"}}"#.to_vec()
        });
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if e.kind() == ErrorKind::RateLimited
            && let Some(after) = e.retry_after()
        {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(p) = e.provider().and_then(|p| HeaderValue::from_str(p).ok()) {
            h.insert("x-llmux-provider", p);
        }
        resp
    }
}
