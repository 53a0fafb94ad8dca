//! The one error taxonomy of llmux.
//!
//! An [`Error`] is data: a [`ErrorKind`], a message safe to show a client, where it came
//! from ([`Origin`]), the provider involved, and an optional retry-after. It is decided where
//! the fault arises (a provider maps its upstream's statuses and bodies) and shaped for the
//! client only at the edge, through [`Error::to_body`] and [`ErrorKind::http_status`] —
//! the single place each kind meets an HTTP status and OpenAI's `type`/`code`.
//!
//! Messages never carry secrets: providers build them from upstream error messages that
//! they redact, never from request headers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Missing or invalid credentials.
    Auth,
    /// Authenticated, but not allowed.
    Permission,
    /// No such model, route or resource.
    NotFound,
    /// The request is malformed or asks for something unsupported.
    BadRequest,
    /// The prompt does not fit the model's context window.
    ContextWindowExceeded,
    /// Refused by a content policy.
    ContentPolicy,
    /// Too many requests or tokens; see `retry_after`.
    RateLimited,
    /// The call did not finish in time.
    Timeout,
    /// The upstream is down, overloaded or unreachable.
    UpstreamUnavailable,
    /// The upstream answered with something unusable.
    UpstreamError,
    /// A bug or fault inside llmux.
    Internal,
    /// The request body is over the size limit.
    PayloadTooLarge,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
}

impl ErrorKind {
    /// Every kind, for tests and docs.
    pub const ALL: [ErrorKind; 13] = [
        Self::Auth,
        Self::Permission,
        Self::NotFound,
        Self::BadRequest,
        Self::ContextWindowExceeded,
        Self::ContentPolicy,
        Self::RateLimited,
        Self::Timeout,
        Self::UpstreamUnavailable,
        Self::UpstreamError,
        Self::Internal,
        Self::PayloadTooLarge,
        Self::MethodNotAllowed,
    ];

    /// The HTTP status a client sees for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Auth => 401,
            Self::Permission => 403,
            Self::NotFound => 404,
            Self::BadRequest | Self::ContextWindowExceeded | Self::ContentPolicy => 400,
            Self::RateLimited => 429,
            Self::Timeout => 408,
            Self::UpstreamUnavailable => 503,
            Self::UpstreamError => 502,
            Self::Internal => 500,
            Self::PayloadTooLarge => 413,
            Self::MethodNotAllowed => 405,
        }
    }

    /// OpenAI's error `type` for this kind.
    pub fn openai_type(self) -> &'static str {
        match self {
            Self::Auth => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound
            | Self::BadRequest
            | Self::ContextWindowExceeded
            | Self::ContentPolicy
            | Self::PayloadTooLarge
            | Self::MethodNotAllowed => "invalid_request_error",
            Self::RateLimited => "rate_limit_error",
            Self::Timeout => "timeout_error",
            Self::UpstreamUnavailable => "service_unavailable_error",
            Self::UpstreamError | Self::Internal => "api_error",
        }
    }

    /// OpenAI's error `code` for this kind, unless the error sets a more precise one.
    pub fn default_code(self) -> Option<&'static str> {
        Some(match self {
            Self::Auth => "invalid_api_key",
            Self::Permission => "permission_denied",
            Self::NotFound => "not_found",
            Self::BadRequest => return None,
            Self::ContextWindowExceeded => "context_length_exceeded",
            Self::ContentPolicy => "content_policy_violation",
            Self::RateLimited => "rate_limit_exceeded",
            Self::Timeout => "timeout",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamError => "upstream_error",
            Self::Internal => "internal_error",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
        })
    }

    /// Stable snake_case name (metrics labels, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::BadRequest => "bad_request",
            Self::ContextWindowExceeded => "context_window_exceeded",
            Self::ContentPolicy => "content_policy",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamError => "upstream_error",
            Self::Internal => "internal",
            Self::PayloadTooLarge => "payload_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// Whether trying again (possibly elsewhere) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Timeout | Self::UpstreamUnavailable | Self::UpstreamError
        )
    }

    /// What a caller can do about an error of this kind, in one sentence (for SDK errors
    /// and logs; clients of the gateway see OpenAI's `type` and `code` instead).
    pub fn advice(self) -> &'static str {
        match self {
            Self::Auth => "check the API key: the caller's, or the deployment's upstream key",
            Self::Permission => "use a key that is allowed this model or operation",
            Self::NotFound => {
                "check the model name: it must be a configured model group, an alias, or match a wildcard route (e.g. `openai/*`)"
            }
            Self::BadRequest => "fix the request: the message names the field at fault",
            Self::ContextWindowExceeded => {
                "shorten the prompt, lower max_tokens, or configure context_window_fallbacks to a larger model"
            }
            Self::ContentPolicy => {
                "rephrase the request, or configure content_policy_fallbacks to another model"
            }
            Self::RateLimited => {
                "wait for retry_after and try again, or add deployments or fallbacks to spread the load"
            }
            Self::Timeout => {
                "try again, or raise the timeout (per deployment or in router settings)"
            }
            Self::UpstreamUnavailable => {
                "try again later, or add deployments or fallbacks so another upstream answers"
            }
            Self::UpstreamError => {
                "try again; if it persists the upstream is misbehaving for this request"
            }
            Self::Internal => "this is a bug in llmux: please report it with the request id",
            Self::PayloadTooLarge => "send a smaller request body (or raise max_body_bytes)",
            Self::MethodNotAllowed => "use the HTTP method the route accepts",
        }
    }

    /// The kind an upstream HTTP status means when the body says nothing more precise.
    pub fn from_upstream_status(status: u16) -> Self {
        match status {
            400 | 422 => Self::BadRequest,
            401 => Self::Auth,
            403 => Self::Permission,
            404 => Self::NotFound,
            408 | 504 => Self::Timeout,
            413 => Self::PayloadTooLarge,
            429 => Self::RateLimited,
            500 => Self::UpstreamError,
            502 | 503 | 529 => Self::UpstreamUnavailable,
            s if s >= 500 => Self::UpstreamError,
            _ => Self::BadRequest,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an error arose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Origin {
    /// The client's request (bad input, auth).
    Downstream,
    /// The provider's API or the network to it.
    Upstream,
    /// llmux itself.
    #[default]
    Internal,
}

/// An llmux error: kind, client-safe message, and facts for retry decisions.
///
/// Boxed inside, so `Result<T, Error>` stays one pointer wide on the hot path.
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    code: Option<Cow<'static, str>>,
    param: Option<String>,
    origin: Origin,
    provider: Option<Cow<'static, str>>,
    upstream_status: Option<u16>,
    retry_after: Option<Duration>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("code", &self.0.code)
            .field("origin", &self.0.origin)
            .field("provider", &self.0.provider)
            .field("upstream_status", &self.0.upstream_status)
            .field("retry_after", &self.0.retry_after)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.provider {
            Some(p) => write!(f, "{} ({p}): {}", self.0.kind, self.0.message),
            None => write!(f, "{}: {}", self.0.kind, self.0.message),
        }
    }
}

impl Error {
    /// An error of `kind` with a client-safe message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        let origin = match kind {
            ErrorKind::Auth
            | ErrorKind::Permission
            | ErrorKind::NotFound
            | ErrorKind::BadRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::MethodNotAllowed => Origin::Downstream,
            ErrorKind::Internal => Origin::Internal,
            _ => Origin::Upstream,
        };
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            code: None,
            param: None,
            origin,
            provider: None,
            upstream_status: None,
            retry_after: None,
            source: None,
        }))
    }

    /// A bad-request error.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The operation is not offered by this provider.
    pub fn unsupported(provider: &'static str, operation: &str) -> Self {
        Self::new(
            ErrorKind::BadRequest,
            format!("provider '{provider}' does not support {operation}"),
        )
        .with_code("unsupported_operation")
        .with_provider(provider)
    }

    /// An error from an upstream HTTP status, kind decided by [`ErrorKind::from_upstream_status`].
    pub fn from_upstream_status(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(ErrorKind::from_upstream_status(status), message);
        e.0.origin = Origin::Upstream;
        e.0.upstream_status = Some(status);
        e
    }

    /// Override OpenAI's `code`.
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.0.code = Some(code.into());
        self
    }

    /// Name the offending request parameter.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.0.param = Some(param.into());
        self
    }

    /// Set where the error arose.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.0.origin = origin;
        self
    }

    /// Name the provider involved.
    pub fn with_provider(mut self, provider: impl Into<Cow<'static, str>>) -> Self {
        self.0.provider = Some(provider.into());
        self
    }

    /// Record the upstream HTTP status.
    pub fn with_upstream_status(mut self, status: u16) -> Self {
        self.0.upstream_status = Some(status);
        self
    }

    /// When to try again.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.0.retry_after = Some(after);
        self
    }

    /// Attach the underlying error (never shown to clients).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Arc::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// OpenAI's `code`: the precise one if set, else the kind's default.
    pub fn code(&self) -> Option<&str> {
        self.0.code.as_deref().or(self.0.kind.default_code())
    }

    /// The offending parameter.
    pub fn param(&self) -> Option<&str> {
        self.0.param.as_deref()
    }

    /// Where it arose.
    pub fn origin(&self) -> Origin {
        self.0.origin
    }

    /// The provider involved.
    pub fn provider(&self) -> Option<&str> {
        self.0.provider.as_deref()
    }

    /// The upstream HTTP status, when the error came from one.
    pub fn upstream_status(&self) -> Option<u16> {
        self.0.upstream_status
    }

    /// When to try again, if the upstream said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// Whether a retry (here or on another deployment) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.0.kind.is_retryable()
    }

    /// The HTTP status a client sees.
    pub fn http_status(&self) -> u16 {
        self.0.kind.http_status()
    }

    /// The OpenAI-shaped body a client sees.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.0.message.to_string(),
                kind: self.0.kind.openai_type().to_owned(),
                param: self.0.param.clone(),
                code: self.code().map(str::to_owned),
            },
        }
    }
}

/// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Human-readable message.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub message: String,
    /// Error type, e.g. `invalid_request_error` (Azure sends `null`).
    #[serde(rename = "type", default, deserialize_with = "null_as_empty")]
    pub kind: String,
    /// Offending parameter.
    #[serde(default)]
    pub param: Option<String>,
    /// Machine-readable code, e.g. `context_length_exceeded`.
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

// Some OpenAI-compatible servers send `code` as a number.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_advice() {
        let advice: std::collections::HashSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.advice()).collect();
        assert_eq!(advice.len(), ErrorKind::ALL.len());
        assert!(ErrorKind::RateLimited.advice().contains("retry_after"));
        assert!(
            ErrorKind::ContextWindowExceeded
                .advice()
                .contains("context_window_fallbacks")
        );
    }

    #[test]
    fn every_kind_maps_to_a_status_and_type() {
        let expected: [(ErrorKind, u16, &str, Option<&str>); 13] = [
            (
                ErrorKind::Auth,
                401,
                "authentication_error",
                Some("invalid_api_key"),
            ),
            (
                ErrorKind::Permission,
                403,
                "permission_error",
                Some("permission_denied"),
            ),
            (
                ErrorKind::NotFound,
                404,
                "invalid_request_error",
                Some("not_found"),
            ),
            (ErrorKind::BadRequest, 400, "invalid_request_error", None),
            (
                ErrorKind::ContextWindowExceeded,
                400,
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
            (
                ErrorKind::ContentPolicy,
                400,
                "invalid_request_error",
                Some("content_policy_violation"),
            ),
            (
                ErrorKind::RateLimited,
                429,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            ),
            (ErrorKind::Timeout, 408, "timeout_error", Some("timeout")),
            (
                ErrorKind::UpstreamUnavailable,
                503,
                "service_unavailable_error",
                Some("upstream_unavailable"),
            ),
            (
                ErrorKind::UpstreamError,
                502,
                "api_error",
                Some("upstream_error"),
            ),
            (
                ErrorKind::Internal,
                500,
                "api_error",
                Some("internal_error"),
            ),
            (
                ErrorKind::PayloadTooLarge,
                413,
                "invalid_request_error",
                Some("payload_too_large"),
            ),
            (
                ErrorKind::MethodNotAllowed,
                405,
                "invalid_request_error",
                Some("method_not_allowed"),
            ),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len());
        for (kind, status, ty, code) in expected {
            assert_eq!(kind.http_status(), status, "{kind}");
            assert_eq!(kind.openai_type(), ty, "{kind}");
            assert_eq!(kind.default_code(), code, "{kind}");
        }
    }

    #[test]
    fn body_has_openai_shape_and_precise_code_wins() {
        let e = Error::new(ErrorKind::NotFound, "model 'x' not found").with_code("model_not_found");
        let v = serde_json::to_value(e.to_body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "model 'x' not found",
                "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
        );
    }

    #[test]
    fn upstream_statuses_map_to_kinds() {
        for (status, kind) in [
            (400, ErrorKind::BadRequest),
            (401, ErrorKind::Auth),
            (403, ErrorKind::Permission),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Timeout),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::UpstreamError),
            (502, ErrorKind::UpstreamUnavailable),
            (503, ErrorKind::UpstreamUnavailable),
            (504, ErrorKind::Timeout),
            (529, ErrorKind::UpstreamUnavailable),
        ] {
            let e = Error::from_upstream_status(status, "x");
            assert_eq!(e.kind(), kind, "{status}");
            assert_eq!(e.origin(), Origin::Upstream);
            assert_eq!(e.upstream_status(), Some(status));
        }
    }

    #[test]
    fn numeric_codes_from_compatible_servers_are_read() {
        let b: ErrorBody =
            serde_json::from_str(r#"{"error":{"message":"m","type":"t","code":429}}"#).unwrap();
        assert_eq!(b.error.code.as_deref(), Some("429"));
    }
}
