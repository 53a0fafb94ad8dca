//! What happened while routing one call: [`Trace`], and the wrappers that carry it with the
//! result ([`Routed`]) or the error ([`RouteFailure`]).

use std::fmt;
use std::sync::{Arc, Mutex};

use llmux_core::{Error, ErrorKind};
use serde::Serialize;

/// Which fallback list moved a call to another group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackKind {
    /// `fallbacks`.
    Generic,
    /// `default_fallbacks`.
    Default,
    /// `context_window_fallbacks`.
    ContextWindow,
    /// `content_policy_fallbacks`.
    ContentPolicy,
}

/// One move from a failed group to a fallback group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FallbackHop {
    /// The group that failed.
    pub from: String,
    /// The group tried next.
    pub to: String,
    /// The list that named it.
    pub kind: FallbackKind,
}

/// When in a call an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A non-streamed call (chat or embeddings).
    Call,
    /// A stream, before its first chunk reached the caller.
    StreamStart,
    /// A stream, after chunks had reached the caller.
    MidStream,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptError {
    /// The group being tried.
    pub model_group: String,
    /// The deployment that failed; `None` when no deployment could be picked.
    pub deployment_id: Option<String>,
    /// When it failed.
    pub phase: Phase,
    /// The error's kind.
    pub kind: ErrorKind,
    /// The error's client-safe message.
    pub message: String,
}

/// The record of routing one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// The model name the caller sent.
    pub requested_model: String,
    /// The group that name resolved to (alias and wildcard applied).
    pub model_group: String,
    /// The group that answered (differs from `model_group` when a fallback answered).
    pub final_model_group: Option<String>,
    /// The deployment that answered (for a resumed stream: the last one).
    pub deployment_id: Option<String>,
    /// Its provider (`openai`).
    pub provider: Option<&'static str>,
    /// Its provider model (`gpt-4o-2024-08-06`).
    pub provider_model: Option<String>,
    /// Provider calls made.
    pub attempts: u32,
    /// Attempts that followed a failed attempt in the same group.
    pub retries: u32,
    /// Fallback moves, in order.
    pub fallbacks: Vec<FallbackHop>,
    /// Times a broken stream was continued on another deployment.
    pub resumptions: u32,
    /// Every failed attempt, in order.
    pub errors: Vec<AttemptError>,
}

impl Trace {
    pub(crate) fn new(requested_model: &str) -> Self {
        Self {
            requested_model: requested_model.to_owned(),
            ..Self::default()
        }
    }

    /// Whether a fallback group answered (or was tried).
    pub fn fallback_used(&self) -> bool {
        !self.fallbacks.is_empty()
    }

    /// Whether a stream was resumed after breaking.
    pub fn resumed(&self) -> bool {
        self.resumptions > 0
    }
}

/// A shared, readable view of a [`Trace`]. For a stream the router keeps updating it until
/// the stream ends ([`TraceHandle::is_final`]); for other calls it is final at once.
#[derive(Clone, Default)]
pub struct TraceHandle(Arc<Mutex<(Trace, bool)>>);

impl TraceHandle {
    pub(crate) fn new(trace: Trace, done: bool) -> Self {
        Self(Arc::new(Mutex::new((trace, done))))
    }

    pub(crate) fn publish(&self, trace: &Trace, done: bool) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.0.clone_from(trace);
        g.1 = done;
    }

    /// A copy of the trace as it stands.
    pub fn snapshot(&self) -> Trace {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).0.clone()
    }

    /// Whether the trace will not change any more (the call or stream has ended).
    pub fn is_final(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

impl fmt::Debug for TraceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("TraceHandle")
            .field("trace", &g.0)
            .field("final", &g.1)
            .finish()
    }
}

/// A routed result: the value and how it was obtained.
#[derive(Debug)]
pub struct Routed<T> {
    /// The provider's answer (for a stream: the wrapped stream).
    pub value: T,
    /// The routing record; for a stream, final only once the stream has ended.
    pub trace: TraceHandle,
}

/// A call that no deployment could answer: the error to show the client and the record.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct RouteFailure {
    /// The error for the client (the last attempt's, or the router's own when no attempt
    /// was possible).
    pub error: Error,
    /// The routing record.
    pub trace: Trace,
}

impl RouteFailure {
    /// The error, dropping the trace.
    pub fn into_error(self) -> Error {
        self.error
    }
}

impl From<RouteFailure> for Error {
    fn from(f: RouteFailure) -> Self {
        f.error
    }
}
