//! `router:` (routing policy) and `settings:` (gateway-wide knobs).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use llmux_core::{ErrorKind, JsonObject, Secret};

/// Default retries per call (LiteLLM's default).
pub const DEFAULT_NUM_RETRIES: u32 = 2;
/// Default failures a deployment may have within a minute before it cools down.
pub const DEFAULT_ALLOWED_FAILS: u32 = 3;
/// Default time a failing deployment is left out.
pub const DEFAULT_COOLDOWN_TIME: Duration = Duration::from_secs(5);

/// How a deployment is picked inside a model group. The names are LiteLLM's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoutingStrategy {
    /// Random, weighted by `weight` (and by rpm/tpm when no weight is set).
    #[default]
    SimpleShuffle,
    /// The deployment with the fewest calls in flight.
    LeastBusy,
    /// The deployment with the lowest recent latency.
    LatencyBased,
    /// The deployment with the most rpm/tpm headroom this minute.
    UsageBased,
    /// The cheapest deployment.
    CostBased,
}

impl RoutingStrategy {
    /// Every strategy, in documentation order.
    pub const ALL: [RoutingStrategy; 5] = [
        Self::SimpleShuffle,
        Self::LeastBusy,
        Self::LatencyBased,
        Self::UsageBased,
        Self::CostBased,
    ];

    /// The configuration name (`simple-shuffle`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SimpleShuffle => "simple-shuffle",
            Self::LeastBusy => "least-busy",
            Self::LatencyBased => "latency-based-routing",
            Self::UsageBased => "usage-based-routing",
            Self::CostBased => "cost-based-routing",
        }
    }
}

impl FromStr for RoutingStrategy {
    type Err = String;

    /// Accepts the names of [`RoutingStrategy::as_str`] and LiteLLM's
    /// `usage-based-routing-v2` (the same strategy here).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "usage-based-routing-v2" {
            return Ok(Self::UsageBased);
        }
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown routing strategy '{s}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for RoutingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retries per error kind, overriding `num_retries` for that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    entries: Vec<(ErrorKind, u32)>,
}

impl RetryPolicy {
    /// Retries for `kind`, when the policy names it.
    pub fn get(&self, kind: ErrorKind) -> Option<u32> {
        self.entries
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|&(_, n)| n)
    }

    /// Set the retries for `kind`.
    pub fn set(&mut self, kind: ErrorKind, retries: u32) {
        match self.entries.iter_mut().find(|(k, _)| *k == kind) {
            Some(e) => e.1 = retries,
            None => self.entries.push((kind, retries)),
        }
        let pos = |k: ErrorKind| ErrorKind::ALL.iter().position(|x| *x == k);
        self.entries.sort_by_key(|&(k, _)| pos(k));
    }

    /// Every `(kind, retries)` set, in [`ErrorKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorKind, u32)> + '_ {
        self.entries.iter().copied()
    }

    /// True when no kind is named.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Parse an error-kind name as used in `retry_policy` (`rate_limited`, `timeout`, …).
pub(crate) fn parse_error_kind(name: &str) -> Result<ErrorKind, String> {
    ErrorKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
        .ok_or_else(|| {
            let names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "unknown error kind '{name}' (expected one of: {})",
                names.join(", ")
            )
        })
}

/// `model_group_alias` target: requests for the alias go to `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGroupAlias {
    /// The model group that serves the alias.
    pub group: String,
    /// Leave the alias out of `GET /v1/models`.
    pub hidden: bool,
}

/// `router:`: how model groups are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSettings {
    /// How a deployment is picked inside a group.
    pub strategy: RoutingStrategy,
    /// Retries of a failed call (each may land on another deployment of the group).
    pub num_retries: u32,
    /// Retries per error kind, overriding `num_retries`.
    pub retry_policy: RetryPolicy,
    /// Failures per minute a deployment may have before it cools down.
    pub allowed_fails: u32,
    /// How long a cooled-down deployment is left out.
    pub cooldown_time: Duration,
    /// Time one attempt may take (a deployment's own `timeout` wins); `None` = the
    /// provider's default.
    pub timeout: Option<Duration>,
    /// Time a streamed attempt may take to deliver its first chunk (a deployment's own
    /// `stream_timeout` wins); `None` = `timeout`.
    pub stream_timeout: Option<Duration>,
    /// Longest gap allowed between two chunks of a stream; `None` = no limit.
    pub stall_timeout: Option<Duration>,
    /// When a group fails (after retries), try these groups, in order.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Like `fallbacks`, for prompts that do not fit the context window.
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    /// Like `fallbacks`, for calls refused by a content policy.
    pub content_policy_fallbacks: BTreeMap<String, Vec<String>>,
    /// Fallbacks for any group that has no entry in `fallbacks`.
    pub default_fallbacks: Vec<String>,
    /// When a stream breaks before it finished, continue it on another deployment
    /// (the client sees one stream).
    pub stream_resume: bool,
    /// Extra names for model groups.
    pub model_group_alias: BTreeMap<String, ModelGroupAlias>,
    /// Attribution tags of a model group: every call to the group is counted under them
    /// in spend reports (after the request's own tags and the key's default tags).
    pub model_group_tags: BTreeMap<String, Vec<String>>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            strategy: RoutingStrategy::default(),
            num_retries: DEFAULT_NUM_RETRIES,
            retry_policy: RetryPolicy::default(),
            allowed_fails: DEFAULT_ALLOWED_FAILS,
            cooldown_time: DEFAULT_COOLDOWN_TIME,
            timeout: None,
            stream_timeout: None,
            stall_timeout: None,
            fallbacks: BTreeMap::new(),
            context_window_fallbacks: BTreeMap::new(),
            content_policy_fallbacks: BTreeMap::new(),
            default_fallbacks: Vec::new(),
            stream_resume: true,
            model_group_alias: BTreeMap::new(),
            model_group_tags: BTreeMap::new(),
        }
    }
}

impl RouterSettings {
    /// The group `name` stands for: itself, or the target of its alias.
    pub fn resolve_alias<'a>(&'a self, name: &'a str) -> &'a str {
        self.model_group_alias
            .get(name)
            .map_or(name, |a| a.group.as_str())
    }
}

/// The sink names llmux has built in, aliases included (LiteLLM's callback names among
/// them): `metrics`/`prometheus`, `otel`/`opentelemetry`/`otlp`, `langfuse`,
/// `webhook`/`generic_api`/`generic`, `jsonl`. A LiteLLM file's callbacks naming anything
/// else are reported as warnings rather than kept. Must match `llmux-observe`'s built-in
/// sinks (a test there checks it).
pub const BUILTIN_SINK_NAMES: [&str; 10] = [
    "metrics",
    "prometheus",
    "otel",
    "opentelemetry",
    "otlp",
    "langfuse",
    "webhook",
    "generic_api",
    "generic",
    "jsonl",
];

/// Whether `name` is one of [`BUILTIN_SINK_NAMES`] (ASCII case ignored).
pub fn is_builtin_sink(name: &str) -> bool {
    BUILTIN_SINK_NAMES
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name.trim()))
}

/// `settings:`: gateway-wide knobs.
#[derive(Clone, Default)]
pub struct GatewaySettings {
    /// Drop request parameters a provider does not support instead of failing with 400.
    pub drop_params: bool,
    /// Also send LiteLLM's response headers (`x-litellm-response-cost`, …) next to
    /// llmux's own. Default: on when the file was a LiteLLM config, off otherwise.
    pub litellm_compat_headers: bool,
    /// A newer LiteLLM price file (`model_prices_and_context_window.json`) to use instead of
    /// the embedded one; a relative path is relative to the config file.
    pub price_table: Option<PathBuf>,
    /// Database for keys, budgets and the spend log (`sqlite://…`, `postgres://…`).
    pub database_url: Option<Secret>,
    /// Store prompts and responses in the spend log.
    pub log_prompts: bool,
    /// Redis shared by several gateways for rate-limit windows, in-flight counts and
    /// budget spend (`redis://[:password@]host:port/db`); `None` = in-process counters.
    pub redis_url: Option<Secret>,
    /// How long a looked-up virtual key is cached; `None` = the gateway's default (5 s).
    pub key_cache_ttl: Option<std::time::Duration>,
    /// Where call records go besides the spend log: sink names (`langfuse`, `otel`,
    /// `jsonl`, a linked plugin's name, or a `callback_settings` entry with a `type`), in
    /// order, as written. Which names exist is checked when the sinks are built.
    pub callbacks: Vec<String>,
    /// Each sink's own settings, by sink name (`jsonl: {path: …}`). String values given by
    /// reference (`os.environ/NAME`) are resolved; `Debug` shows only the keys.
    pub callback_settings: BTreeMap<String, JsonObject>,
}

impl fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sink settings hold credentials and tokenized URLs: keys only.
        let callback_settings: BTreeMap<&str, Vec<&str>> = self
            .callback_settings
            .iter()
            .map(|(name, s)| (name.as_str(), s.keys().map(String::as_str).collect()))
            .collect();
        f.debug_struct("GatewaySettings")
            .field("drop_params", &self.drop_params)
            .field("litellm_compat_headers", &self.litellm_compat_headers)
            .field("price_table", &self.price_table)
            .field("database_url", &self.database_url)
            .field("log_prompts", &self.log_prompts)
            .field("redis_url", &self.redis_url)
            .field("key_cache_ttl", &self.key_cache_ttl)
            .field("callbacks", &self.callbacks)
            .field("callback_settings", &callback_settings)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_litellm_names() {
        for s in RoutingStrategy::ALL {
            assert_eq!(s.as_str().parse::<RoutingStrategy>(), Ok(s));
        }
        assert_eq!(
            "usage-based-routing-v2".parse::<RoutingStrategy>(),
            Ok(RoutingStrategy::UsageBased)
        );
        let e = "fastest".parse::<RoutingStrategy>().unwrap_err();
        assert!(e.contains("'fastest'") && e.contains("least-busy"), "{e}");
    }

    #[test]
    fn retry_policy_keeps_kind_order() {
        let mut p = RetryPolicy::default();
        p.set(ErrorKind::Timeout, 1);
        p.set(ErrorKind::Auth, 0);
        p.set(ErrorKind::Timeout, 4);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [(ErrorKind::Auth, 0), (ErrorKind::Timeout, 4)]
        );
        assert_eq!(p.get(ErrorKind::RateLimited), None);
        assert_eq!(parse_error_kind("rate_limited"), Ok(ErrorKind::RateLimited));
        assert!(parse_error_kind("RateLimit").is_err());
    }
}
