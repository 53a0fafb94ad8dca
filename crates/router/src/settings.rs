//! Router-wide settings: strategy, retries, cooldowns, timeouts, fallbacks.
//!
//! Every field has a default, so `RouterSettings::default()` is a working router. The
//! struct deserializes from the config with durations written as seconds (`0.25`, `5`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use llmux_core::ErrorKind;
use serde::{Deserialize, Serialize};

/// How a deployment is chosen among the healthy ones of a model group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Weighted random pick: by `weight` when any deployment sets one, else by `rpm`,
    /// else by `tpm`, else uniform.
    #[default]
    #[serde(rename = "simple-shuffle")]
    SimpleShuffle,
    /// The deployment with the fewest calls in flight (ties broken at random).
    #[serde(rename = "least-busy")]
    LeastBusy,
    /// The deployment with the lowest moving-average latency; for streams, the lowest
    /// moving-average time to first chunk. Deployments with no sample yet go first.
    #[serde(rename = "latency-based-routing", alias = "latency-based")]
    LatencyBased,
    /// The deployment with the fewest tokens (then requests) used in the last minute.
    #[serde(
        rename = "usage-based-routing",
        alias = "usage-based",
        alias = "usage-based-routing-v2"
    )]
    UsageBased,
    /// The deployment whose per-token prices make the estimated call cheapest;
    /// deployments without prices go last.
    #[serde(rename = "cost-based-routing", alias = "cost-based")]
    CostBased,
}

/// Exponential backoff with jitter, used only when a retry has no untried deployment left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    /// The first pause (before jitter); doubles with each further retry.
    #[serde(with = "secs")]
    pub initial: Duration,
    /// The longest pause.
    #[serde(with = "secs")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(8),
        }
    }
}

/// Group name → the groups to try, in order, when it fails.
pub type FallbackMap = BTreeMap<String, Vec<String>>;

/// Settings for the whole router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSettings {
    /// How a deployment is picked.
    #[serde(alias = "routing_strategy")]
    pub strategy: Strategy,
    /// Retries within a model group for a retryable error (so `num_retries + 1` attempts).
    pub num_retries: u32,
    /// Retries per error kind, overriding `num_retries`. Kinds that are not retryable
    /// ([`ErrorKind::is_retryable`]) get 0 unless listed here.
    pub retry_policy: HashMap<ErrorKind, u32>,
    /// Pause between retries when no untried deployment is left.
    pub backoff: Backoff,
    /// The longest `Retry-After` the router honours, both as a pause and as a cooldown.
    #[serde(with = "secs")]
    pub retry_after_cap: Duration,
    /// Failures a deployment may have within a minute before it cools down; `None` = no
    /// count limit.
    pub allowed_fails: Option<u32>,
    /// Failure share (0–1] within a minute above which a deployment cools down; `None` =
    /// not used.
    pub failure_rate_threshold: Option<f64>,
    /// Calls within the minute needed before `failure_rate_threshold` is judged.
    pub failure_rate_min_requests: u32,
    /// How long a deployment sits out after it trips (longer when its error carried a
    /// `Retry-After`).
    #[serde(with = "secs")]
    pub cooldown_time: Duration,
    /// Time limit of one attempt; a deployment's own `timeout` wins.
    #[serde(with = "opt_secs")]
    pub timeout: Option<Duration>,
    /// Time limit of a whole call: every attempt, pause and fallback (for a stream: until
    /// the first chunk, and again for each resumption). The caller's
    /// `CallContext::timeout` also bounds it.
    #[serde(with = "opt_secs")]
    pub total_timeout: Option<Duration>,
    /// Time a stream attempt may take to deliver its first chunk; a deployment's own
    /// `stream_timeout` wins. `None` = the attempt timeout.
    #[serde(with = "opt_secs")]
    pub stream_first_chunk_timeout: Option<Duration>,
    /// Longest silence between two chunks of a stream before it counts as broken.
    #[serde(with = "opt_secs")]
    pub stream_stall_timeout: Option<Duration>,
    /// Group → groups to try when it fails.
    pub fallbacks: FallbackMap,
    /// Group → groups to try when the prompt does not fit.
    pub context_window_fallbacks: FallbackMap,
    /// Group → groups to try when a content policy refused the call.
    pub content_policy_fallbacks: FallbackMap,
    /// Groups to try for a group that has no `fallbacks` entry of its own (not applied to
    /// the groups listed here).
    pub default_fallbacks: Vec<String>,
    /// Most fallback groups one call may try.
    pub max_fallbacks: u32,
    /// Continue a stream that breaks after its first chunk on another deployment.
    pub stream_resume: bool,
    /// Most resumptions of one stream.
    pub max_stream_resumes: u32,
    /// Output tokens assumed by cost-based routing when the request sets no limit.
    pub cost_estimate_output_tokens: u64,
    /// Seed of the router's random choices (shuffle, jitter); `None` = seeded from the clock.
    pub seed: Option<u64>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            strategy: Strategy::SimpleShuffle,
            num_retries: 2,
            retry_policy: HashMap::new(),
            backoff: Backoff::default(),
            retry_after_cap: Duration::from_secs(60),
            allowed_fails: Some(3),
            failure_rate_threshold: None,
            failure_rate_min_requests: 5,
            cooldown_time: Duration::from_secs(5),
            timeout: None,
            total_timeout: None,
            stream_first_chunk_timeout: None,
            stream_stall_timeout: None,
            fallbacks: FallbackMap::new(),
            context_window_fallbacks: FallbackMap::new(),
            content_policy_fallbacks: FallbackMap::new(),
            default_fallbacks: Vec::new(),
            max_fallbacks: 5,
            stream_resume: true,
            max_stream_resumes: 3,
            cost_estimate_output_tokens: 256,
            seed: None,
        }
    }
}

impl RouterSettings {
    /// How many retries an error of `kind` earns within a group.
    pub fn retries_for(&self, kind: ErrorKind) -> u32 {
        match self.retry_policy.get(&kind) {
            Some(n) => *n,
            None if kind.is_retryable() => self.num_retries,
            None => 0,
        }
    }
}

/// `Duration` as seconds (integer or fraction).
mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v)
            .map_err(|_| D::Error::custom(format!("{v} is not a valid number of seconds")))
    }
}

/// `Option<Duration>` as seconds.
mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<f64>::deserialize(d)? {
            None => Ok(None),
            Some(v) => Duration::try_from_secs_f64(v)
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{v} is not a valid number of seconds"))),
        }
    }
}
