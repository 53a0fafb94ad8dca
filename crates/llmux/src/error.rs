//! [`ClientError`]: why an SDK call failed, as an enum to match on, each case saying what
//! to do about it.

use std::fmt;
use std::time::Duration;

use llmux_core::{Error, ErrorKind};
use llmux_router::Trace;

/// Why a [`Client`](crate::Client) call failed. Every case carries the underlying
/// [`llmux_core::Error`] (`error`: message, provider, upstream status) and, when routing
/// started, what the router tried (`trace`: deployments, retries, fallbacks). Its
/// `Display` ends with what to do ([`ClientError::advice`]).
///
/// ```
/// # async fn demo(client: &llmux::Client) {
/// use llmux::{ChatRequest, ClientError};
/// match client.chat(ChatRequest::new("fast").user("hi")).await {
///     Ok(answer) => println!("{}", answer.text().unwrap_or_default()),
///     Err(ClientError::RateLimited { retry_after, .. }) => {
///         println!("slow down, retry in {retry_after:?}")
///     }
///     Err(ClientError::ModelNotFound { error, .. }) => println!("no such model: {error}"),
///     Err(e) => println!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Too many requests or tokens, after retries and fallbacks: wait `retry_after`.
    RateLimited {
        /// How long the upstream asked to wait, when it said.
        retry_after: Option<Duration>,
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// The upstream refused the deployment's credentials.
    Auth {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// Authenticated, but not allowed this model or operation.
    Permission {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// No model group, alias or wildcard serves the model name (or the upstream has no
    /// such model).
    ModelNotFound {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// The request is malformed or asks for something the model does not support.
    BadRequest {
        /// The error (its `param` names the field at fault, when known).
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// The prompt does not fit the model's context window.
    ContextWindowExceeded {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// Refused by a content policy.
    ContentPolicy {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// The call did not finish in time.
    Timeout {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// Every upstream tried was down, overloaded, or answered with something unusable.
    Upstream {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
    /// A fault inside llmux.
    Internal {
        /// The error.
        error: Error,
        /// What the router tried.
        trace: Option<Box<Trace>>,
    },
}

impl ClientError {
    /// Classify `error` (with what the router tried, when routing started).
    pub fn new(error: Error, trace: Option<Trace>) -> Self {
        let trace = trace.map(Box::new);
        match error.kind() {
            ErrorKind::RateLimited => Self::RateLimited {
                retry_after: error.retry_after(),
                error,
                trace,
            },
            ErrorKind::Auth => Self::Auth { error, trace },
            ErrorKind::Permission => Self::Permission { error, trace },
            ErrorKind::NotFound => Self::ModelNotFound { error, trace },
            ErrorKind::BadRequest | ErrorKind::PayloadTooLarge | ErrorKind::MethodNotAllowed => {
                Self::BadRequest { error, trace }
            }
            ErrorKind::ContextWindowExceeded => Self::ContextWindowExceeded { error, trace },
            ErrorKind::ContentPolicy => Self::ContentPolicy { error, trace },
            ErrorKind::Timeout => Self::Timeout { error, trace },
            ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamError => {
                Self::Upstream { error, trace }
            }
            ErrorKind::Internal => Self::Internal { error, trace },
        }
    }

    fn parts(&self) -> (&Error, Option<&Trace>) {
        match self {
            Self::RateLimited { error, trace, .. }
            | Self::Auth { error, trace }
            | Self::Permission { error, trace }
            | Self::ModelNotFound { error, trace }
            | Self::BadRequest { error, trace }
            | Self::ContextWindowExceeded { error, trace }
            | Self::ContentPolicy { error, trace }
            | Self::Timeout { error, trace }
            | Self::Upstream { error, trace }
            | Self::Internal { error, trace } => (error, trace.as_deref()),
        }
    }

    /// The underlying error (kind, message, provider, upstream status).
    pub fn error(&self) -> &Error {
        self.parts().0
    }

    /// What the router tried before giving up (`None`: the call failed before routing).
    pub fn trace(&self) -> Option<&Trace> {
        self.parts().1
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.error().kind()
    }

    /// How long to wait before trying again, when the upstream said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.error().retry_after()
    }

    /// Whether trying again later may succeed (the router already retried and fell back
    /// as configured).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// What to do about it, in one sentence.
    pub fn advice(&self) -> &'static str {
        self.kind().advice()
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.error();
        write!(f, "{}: {}", e.kind(), e.message())?;
        if let Some(after) = self.retry_after() {
            write!(f, " (retry after {:.1}s)", after.as_secs_f64())?;
        }
        if let Some(t) = self.trace().filter(|t| t.attempts > 0) {
            write!(f, " [{} attempt(s)", t.attempts)?;
            if !t.fallbacks.is_empty() {
                write!(f, ", {} fallback(s)", t.fallbacks.len())?;
            }
            f.write_str("]")?;
        }
        write!(f, " — {}", self.advice())
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

impl From<Error> for ClientError {
    fn from(e: Error) -> Self {
        Self::new(e, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_lands_in_its_case_and_says_what_to_do() {
        let limited = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1500));
        let e = ClientError::from(limited);
        assert!(matches!(
            e,
            ClientError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_millis(1500)
        ));
        assert!(e.is_retryable());
        let shown = e.to_string();
        assert!(
            shown.starts_with("rate_limited: slow down (retry after 1.5s)"),
            "{shown}"
        );
        assert!(shown.ends_with(ErrorKind::RateLimited.advice()), "{shown}");

        type IsCase = fn(&ClientError) -> bool;
        let cases: [(ErrorKind, IsCase); 7] = [
            (ErrorKind::Auth, |e| matches!(e, ClientError::Auth { .. })),
            (ErrorKind::NotFound, |e| {
                matches!(e, ClientError::ModelNotFound { .. })
            }),
            (ErrorKind::BadRequest, |e| {
                matches!(e, ClientError::BadRequest { .. })
            }),
            (ErrorKind::ContextWindowExceeded, |e| {
                matches!(e, ClientError::ContextWindowExceeded { .. })
            }),
            (ErrorKind::UpstreamUnavailable, |e| {
                matches!(e, ClientError::Upstream { .. })
            }),
            (ErrorKind::Timeout, |e| {
                matches!(e, ClientError::Timeout { .. })
            }),
            (ErrorKind::Internal, |e| {
                matches!(e, ClientError::Internal { .. })
            }),
        ];
        for (kind, is) in cases {
            let e = ClientError::from(Error::new(kind, "x"));
            assert!(is(&e), "{kind} → {e:?}");
            assert_eq!(e.kind(), kind);
            assert!(e.trace().is_none());
        }
    }

    #[test]
    fn the_trace_is_kept_and_summarised() {
        let trace = Trace {
            attempts: 3,
            ..Trace::default()
        };
        let e = ClientError::new(
            Error::new(ErrorKind::UpstreamUnavailable, "down"),
            Some(trace),
        );
        assert_eq!(e.trace().map(|t| t.attempts), Some(3));
        assert!(e.to_string().contains("[3 attempt(s)]"), "{e}");
    }
}
