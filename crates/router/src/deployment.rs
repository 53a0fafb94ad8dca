//! What the router routes over: deployments, model groups and wildcard routes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use llmux_core::{Error, Provider};

/// One provider instance serving a model group, with its routing facts.
///
/// Build one with [`Deployment::new`] and set the rest by struct update:
/// `Deployment { weight: Some(3), order: 2, ..Deployment::new("gpt-4o#1", provider) }`.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Unique id across the router, e.g. `gpt-4o#0`.
    pub id: String,
    /// The provider, bound to its credentials and model.
    pub provider: Arc<dyn Provider>,
    /// Share of traffic under [`Strategy::SimpleShuffle`](crate::Strategy::SimpleShuffle);
    /// `None` = no weight (1 when other deployments of the group set one).
    pub weight: Option<u32>,
    /// Requests per minute this deployment may take; `None` = unlimited.
    pub rpm: Option<u64>,
    /// Tokens per minute (counted from response usage); `None` = unlimited.
    pub tpm: Option<u64>,
    /// Priority: the lowest order that has a healthy deployment is used (1 = first).
    pub order: u32,
    /// Tags a request can require (`metadata.tags` or top-level `tags`).
    pub tags: Vec<String>,
    /// Time limit of one call; `None` = the router's `timeout`.
    pub timeout: Option<Duration>,
    /// Time a stream may take to deliver its first chunk; `None` = the router's
    /// `stream_first_chunk_timeout`.
    pub stream_timeout: Option<Duration>,
    /// Largest prompt (estimated tokens) this deployment accepts; `None` = no limit.
    pub max_input_tokens: Option<u64>,
    /// Price of one input token in picodollars (10⁻¹² USD), for cost-based routing.
    pub input_cost_per_token_pico: Option<u64>,
    /// Price of one output token in picodollars, for cost-based routing.
    pub output_cost_per_token_pico: Option<u64>,
}

impl Deployment {
    /// A deployment with every routing fact at its default (order 1, no limits, no tags).
    pub fn new(id: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        Self {
            id: id.into(),
            provider,
            weight: None,
            rpm: None,
            tpm: None,
            order: 1,
            tags: Vec::new(),
            timeout: None,
            stream_timeout: None,
            max_input_tokens: None,
            input_cost_per_token_pico: None,
            output_cost_per_token_pico: None,
        }
    }
}

/// A name clients ask for, served by one or more deployments.
#[derive(Debug, Clone)]
pub struct ModelGroup {
    /// The model name clients send (`gpt-4o`).
    pub name: String,
    /// Its deployments.
    pub deployments: Vec<Deployment>,
}

impl ModelGroup {
    /// A group named `name` served by `deployments`.
    pub fn new(name: impl Into<String>, deployments: Vec<Deployment>) -> Self {
        Self {
            name: name.into(),
            deployments,
        }
    }
}

/// Builds the provider for a model name a wildcard route matched. It receives the full
/// name the client sent (`openai/gpt-4o`, or anything for `*`); parse it with
/// `llmux_core::ModelRef` when the provider prefix matters.
pub type ProviderBuilder = Arc<dyn Fn(&str) -> Result<Arc<dyn Provider>, Error> + Send + Sync>;

/// A wildcard route: `prefix/*` serves every `prefix/<model>`, `*` serves any name.
/// The most specific pattern wins; exact groups and aliases win over both.
#[derive(Clone)]
pub struct Wildcard {
    /// `prefix/*` or `*`.
    pub pattern: String,
    /// Builds the deployment's provider on first use of a name.
    pub build: ProviderBuilder,
}

impl Wildcard {
    /// A wildcard route for `pattern` whose providers `build` makes.
    pub fn new(
        pattern: impl Into<String>,
        build: impl Fn(&str) -> Result<Arc<dyn Provider>, Error> + Send + Sync + 'static,
    ) -> Self {
        Self {
            pattern: pattern.into(),
            build: Arc::new(build),
        }
    }

    /// The prefix before `/*` (`""` for `*`).
    pub(crate) fn prefix(&self) -> &str {
        self.pattern.strip_suffix('*').unwrap_or(&self.pattern)
    }

    pub(crate) fn matches(&self, model: &str) -> bool {
        let prefix = self.prefix();
        model.len() > prefix.len() && model.starts_with(prefix)
    }
}

impl fmt::Debug for Wildcard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wildcard")
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}
