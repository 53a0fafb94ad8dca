//! Metric names, the Prometheus recorder, and recording.
//!
//! Metrics go through the [`metrics`] facade, so they reach whichever recorder is installed:
//! normally the Prometheus recorder from [`install_prometheus`], whose handle renders the
//! text the server serves on `GET /metrics`. Tests use a local recorder from
//! [`prometheus_recorder`] with [`metrics::with_local_recorder`].
//!
//! Per-call metrics come from [`MetricsSink`]; the functions here record what no record can
//! show (calls in flight, retries, fallbacks, cooldowns, refusals, sink drops, unknown
//! prices). [`MetricsSink`] also counts budget alerts by scope. Every name is in [`names`] and documented in `docs/observability.md`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use llmux_core::{BudgetAlert, CallRecord, CallSink, ErrorKind};
use metrics::{Label, SharedString, Unit, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
pub use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use crate::labels::{
    self, DEPLOYMENTS, KEYS, MODEL_GROUPS, MODELS, NONE, OPERATIONS, PROVIDERS, SINKS, TEAMS,
};

/// Every metric name llmux records (all prefixed `llmux_`).
pub mod names {
    /// Counter: finished calls. Labels: `model_group`, `deployment`, `provider`, `operation`,
    /// `status`, `error_kind`.
    pub const REQUESTS: &str = "llmux_requests_total";
    /// Histogram (seconds): call duration, arrival to last byte. Labels: `model_group`,
    /// `deployment`, `provider`, `operation`.
    pub const REQUEST_DURATION: &str = "llmux_request_duration_seconds";
    /// Histogram (seconds): time to the first streamed chunk. Labels: `model_group`,
    /// `deployment`, `provider`.
    pub const TIME_TO_FIRST_TOKEN: &str = "llmux_time_to_first_token_seconds";
    /// Counter: tokens. Labels: `model_group`, `deployment`, `provider`, `kind` (`input`,
    /// `output`, `cached`, `cache_creation`, `reasoning`).
    pub const TOKENS: &str = "llmux_tokens_total";
    /// Counter: spend in nano-USD (1e-9 USD). Labels: `model_group`, `key`, `team`.
    pub const SPEND: &str = "llmux_spend_nano_usd_total";
    /// Counter: calls answered from the response cache. Labels: `model_group`.
    pub const CACHE_HITS: &str = "llmux_cache_hits_total";
    /// Counter: calls whose usage was estimated (the upstream reported none). Labels:
    /// `model_group`, `provider`.
    pub const USAGE_ESTIMATED: &str = "llmux_usage_estimated_total";
    /// Gauge: calls in progress. Labels: `model_group`.
    pub const IN_FLIGHT: &str = "llmux_requests_in_flight";
    /// Counter: retries after a failed attempt. Labels: `deployment` (the one that failed),
    /// `error_kind`.
    pub const RETRIES: &str = "llmux_retries_total";
    /// Counter: fallbacks to another model group. Labels: `model_group`, `fallback`.
    pub const FALLBACKS: &str = "llmux_fallbacks_total";
    /// Counter: deployments put in cooldown. Labels: `deployment`.
    pub const COOLDOWNS: &str = "llmux_deployment_cooldowns_total";
    /// Counter: calls refused by a rate limit. Labels: `scope`, `limit`.
    pub const RATE_LIMIT_REFUSALS: &str = "llmux_rate_limit_refusals_total";
    /// Counter: calls refused by a budget. Labels: `scope`.
    pub const BUDGET_REFUSALS: &str = "llmux_budget_refusals_total";
    /// Counter: soft-budget alerts (a spend crossed its soft budget). Labels: `scope`
    /// (`key`, `team`, `user`).
    pub const BUDGET_ALERTS: &str = "llmux_budget_alerts_total";
    /// Counter: call records a sink lost because its queue was full. Labels: `sink`.
    pub const SINK_DROPPED: &str = "llmux_sink_dropped_total";
    /// Counter: price lookups that found no model. Labels: `provider`, `model`.
    pub const UNKNOWN_MODEL_PRICES: &str = "llmux_price_unknown_model_total";
    /// Counter: export requests by exporters (OTLP, Langfuse, webhooks). Labels:
    /// `exporter`, `outcome` (`ok`, `retried_ok`, `failed`).
    pub const EXPORT_BATCHES: &str = "llmux_export_batches_total";
    /// Counter: records an exporter dropped after its batch failed twice. Labels: `exporter`.
    pub const EXPORT_DROPPED: &str = "llmux_export_dropped_records_total";
    /// Counter: items the receiving end refused one by one (Langfuse 207 errors, OTLP
    /// partial success). Labels: `exporter`.
    pub const EXPORT_REJECTED: &str = "llmux_export_rejected_total";
}

/// Bucket bounds (seconds) of call durations: LLM calls run from tens of milliseconds
/// (cache hits, embeddings) to minutes (long generations).
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Bucket bounds (seconds) of time to first token.
pub const TTFT_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
];

/// How often the installed recorder drains histogram samples (bounding their memory).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// A Prometheus builder with llmux's histogram buckets.
fn builder() -> PrometheusBuilder {
    [
        (names::REQUEST_DURATION, DURATION_BUCKETS),
        (names::TIME_TO_FIRST_TOKEN, TTFT_BUCKETS),
    ]
    .into_iter()
    .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
        b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .expect("bucket lists are not empty")
    })
}

/// A Prometheus recorder with llmux's buckets, *not* installed: for tests
/// (`metrics::with_local_recorder`) and for embedders composing their own recorders.
/// Whoever holds it calls [`PrometheusHandle::run_upkeep`] now and then, or renders often.
pub fn prometheus_recorder() -> PrometheusRecorder {
    builder().build_recorder()
}

/// Install the process-wide Prometheus recorder (once; later calls return the same handle)
/// and describe every llmux metric. The handle's [`render`](PrometheusHandle::render) is the
/// body of `GET /metrics`. A background thread runs upkeep every few seconds so histogram
/// samples never pile up between scrapes.
///
/// If another global recorder was installed first, llmux's metrics go to that one; the
/// returned handle then renders nothing (a warning is logged).
pub fn install_prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = prometheus_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed: llmux metrics go there, and /metrics renders nothing"
                );
                return handle;
            }
            describe_metrics();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("llmux-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                });
            if spawned.is_err() {
                tracing::warn!(
                    "could not start the metrics upkeep thread: histograms are drained on scrape only"
                );
            }
            handle
        })
        .clone()
}

/// Register the help text and unit of every llmux metric with the current recorder
/// ([`install_prometheus`] does this for the global one).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        Unit::Count,
        "Finished calls by model group, answering deployment and provider, operation, HTTP status and error kind"
    );
    describe_histogram!(
        names::REQUEST_DURATION,
        Unit::Seconds,
        "Call duration from arrival to the last byte"
    );
    describe_histogram!(
        names::TIME_TO_FIRST_TOKEN,
        Unit::Seconds,
        "Time from arrival to the first streamed chunk"
    );
    describe_counter!(
        names::TOKENS,
        Unit::Count,
        "Tokens by kind: input (cached included), output (reasoning included), cached, cache_creation, reasoning"
    );
    describe_counter!(
        names::SPEND,
        Unit::Count,
        "Spend in nano-USD (1e-9 USD) by model group, key and team"
    );
    describe_counter!(
        names::CACHE_HITS,
        Unit::Count,
        "Calls answered from the response cache"
    );
    describe_counter!(
        names::USAGE_ESTIMATED,
        Unit::Count,
        "Calls whose token usage was estimated because the upstream reported none"
    );
    describe_gauge!(
        names::IN_FLIGHT,
        Unit::Count,
        "Calls in progress by model group"
    );
    describe_counter!(
        names::RETRIES,
        Unit::Count,
        "Retries after a failed attempt, by the deployment that failed and the error kind"
    );
    describe_counter!(
        names::FALLBACKS,
        Unit::Count,
        "Fallbacks from a model group to another"
    );
    describe_counter!(names::COOLDOWNS, Unit::Count, "Deployments put in cooldown");
    describe_counter!(
        names::RATE_LIMIT_REFUSALS,
        Unit::Count,
        "Calls refused by a rate limit, by scope and limit"
    );
    describe_counter!(
        names::BUDGET_REFUSALS,
        Unit::Count,
        "Calls refused by a budget, by scope"
    );
    describe_counter!(
        names::BUDGET_ALERTS,
        Unit::Count,
        "Soft-budget alerts raised, by scope (key, team, user)"
    );
    describe_counter!(
        names::SINK_DROPPED,
        Unit::Count,
        "Call records a sink lost because its queue was full"
    );
    describe_counter!(
        names::UNKNOWN_MODEL_PRICES,
        Unit::Count,
        "Price lookups that found no price for the model"
    );
    describe_counter!(
        names::EXPORT_BATCHES,
        Unit::Count,
        "Export requests by exporter and outcome (ok, retried_ok, failed)"
    );
    describe_counter!(
        names::EXPORT_DROPPED,
        Unit::Count,
        "Records dropped after their export batch failed twice"
    );
    describe_counter!(
        names::EXPORT_REJECTED,
        Unit::Count,
        "Items the receiver refused individually (Langfuse 207 errors, OTLP partial success)"
    );
}

fn l(key: &'static str, value: &SharedString) -> Label {
    Label::new(key, value.clone())
}

fn lstatic(key: &'static str, value: &'static str) -> Label {
    Label::new(key, SharedString::const_str(value))
}

/// A [`CallSink`] recording each call's metrics: requests, durations, time to first token,
/// tokens by kind, spend, cache hits. Cheap: it only updates in-memory counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct MetricsSink;

impl MetricsSink {
    /// The sink.
    pub fn new() -> Self {
        Self
    }

    /// Count `alert` in `llmux_budget_alerts_total{scope}`, synchronously. The scope is a
    /// fixed word; the key, team or user id is never a label.
    pub fn observe_alert(&self, alert: &BudgetAlert) {
        counter!(names::BUDGET_ALERTS, "scope" => alert.scope.as_str()).increment(1);
    }

    /// Record `record` into the current recorder, synchronously.
    pub fn observe(&self, record: &CallRecord) {
        // A call refused as the client's fault before anything was routed carries a model
        // name nobody vouched for (possibly from an unauthenticated client): it is counted
        // under `unknown` rather than minting a label value.
        let refused_unrouted = record.deployment.is_none()
            && matches!(
                record.error_kind,
                Some(
                    ErrorKind::Auth
                        | ErrorKind::Permission
                        | ErrorKind::NotFound
                        | ErrorKind::BadRequest
                        | ErrorKind::PayloadTooLarge
                        | ErrorKind::MethodNotAllowed
                )
            );
        let model_group = if refused_unrouted {
            SharedString::const_str("unknown")
        } else {
            MODEL_GROUPS.value(Some(&record.model_group))
        };
        let deployment = DEPLOYMENTS.value(record.deployment.as_deref());
        let provider = PROVIDERS.value(record.provider.as_deref());
        let operation = OPERATIONS.value(Some(&record.operation));

        counter!(
            names::REQUESTS,
            vec![
                l("model_group", &model_group),
                l("deployment", &deployment),
                l("provider", &provider),
                l("operation", &operation),
                Label::new("status", labels::status(record.status)),
                lstatic(
                    "error_kind",
                    record.error_kind.map_or(NONE, ErrorKind::as_str)
                ),
            ]
        )
        .increment(1);

        histogram!(
            names::REQUEST_DURATION,
            vec![
                l("model_group", &model_group),
                l("deployment", &deployment),
                l("provider", &provider),
                l("operation", &operation),
            ]
        )
        .record(record.latency_us as f64 / 1e6);

        if let Some(ttft) = record.ttft_us {
            histogram!(
                names::TIME_TO_FIRST_TOKEN,
                vec![
                    l("model_group", &model_group),
                    l("deployment", &deployment),
                    l("provider", &provider),
                ]
            )
            .record(ttft as f64 / 1e6);
        }

        for (kind, n) in [
            ("input", record.prompt_tokens),
            ("output", record.completion_tokens),
            ("cached", record.cached_tokens),
            ("cache_creation", record.cache_creation_tokens),
            ("reasoning", record.reasoning_tokens),
        ] {
            if n > 0 {
                counter!(
                    names::TOKENS,
                    vec![
                        l("model_group", &model_group),
                        l("deployment", &deployment),
                        l("provider", &provider),
                        lstatic("kind", kind),
                    ]
                )
                .increment(n);
            }
        }

        if let Some(nano) = record.cost_nano_usd.filter(|c| *c > 0) {
            counter!(
                names::SPEND,
                vec![
                    l("model_group", &model_group),
                    Label::new("key", KEYS.value(record.key.as_deref())),
                    Label::new("team", TEAMS.value(record.team.as_deref())),
                ]
            )
            .increment(nano.unsigned_abs());
        }

        if record.cache_hit {
            counter!(names::CACHE_HITS, vec![l("model_group", &model_group)]).increment(1);
        }
        if record.usage_estimated {
            counter!(
                names::USAGE_ESTIMATED,
                vec![l("model_group", &model_group), l("provider", &provider)]
            )
            .increment(1);
        }
    }
}

#[async_trait]
impl CallSink for MetricsSink {
    fn name(&self) -> &str {
        "metrics"
    }

    async fn record(&self, record: Arc<CallRecord>) {
        self.observe(&record);
    }

    async fn alert(&self, alert: Arc<BudgetAlert>) {
        self.observe_alert(&alert);
    }
}

/// One more call in progress for `model_group` (pair with [`in_flight_dec`], or use
/// [`in_flight`], which cannot forget the decrement).
pub fn in_flight_inc(model_group: &str) {
    gauge!(
        names::IN_FLIGHT,
        "model_group" => MODEL_GROUPS.value(Some(model_group))
    )
    .increment(1.0);
}

/// One call fewer in progress for `model_group`.
pub fn in_flight_dec(model_group: &str) {
    gauge!(
        names::IN_FLIGHT,
        "model_group" => MODEL_GROUPS.value(Some(model_group))
    )
    .decrement(1.0);
}

/// Counts a call as in flight from [`in_flight`] until dropped (so a cancelled call is
/// counted out too).
#[derive(Debug)]
#[must_use = "the call counts as in flight only while this guard lives"]
pub struct InFlight {
    gauge: metrics::Gauge,
}

/// Count a call to `model_group` as in flight until the returned guard is dropped.
pub fn in_flight(model_group: &str) -> InFlight {
    let gauge = gauge!(
        names::IN_FLIGHT,
        "model_group" => MODEL_GROUPS.value(Some(model_group))
    );
    gauge.increment(1.0);
    InFlight { gauge }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}

/// A retry after `deployment` failed with `error`.
pub fn record_retry(deployment: &str, error: ErrorKind) {
    counter!(
        names::RETRIES,
        "deployment" => DEPLOYMENTS.value(Some(deployment)),
        "error_kind" => error.as_str()
    )
    .increment(1);
}

/// A fallback from model group `from` to model group `to`.
pub fn record_fallback(from: &str, to: &str) {
    counter!(
        names::FALLBACKS,
        "model_group" => MODEL_GROUPS.value(Some(from)),
        "fallback" => MODEL_GROUPS.value(Some(to))
    )
    .increment(1);
}

/// `deployment` was put in cooldown.
pub fn record_cooldown(deployment: &str) {
    counter!(
        names::COOLDOWNS,
        "deployment" => DEPLOYMENTS.value(Some(deployment))
    )
    .increment(1);
}

/// A call was refused by a rate limit. `scope` is what the limit applies to (`key`, `team`,
/// `user`, `model_group`, `deployment`, `global`) and `limit` which one (`rpm`, `tpm`,
/// `parallel`); both are fixed words, never names or ids.
pub fn record_rate_limit_refusal(scope: &'static str, limit: &'static str) {
    counter!(names::RATE_LIMIT_REFUSALS, "scope" => scope, "limit" => limit).increment(1);
}

/// A call was refused by a budget; `scope` is whose budget (`key`, `team`, `user`,
/// `end_user`, `global`), a fixed word.
pub fn record_budget_refusal(scope: &'static str) {
    counter!(names::BUDGET_REFUSALS, "scope" => scope).increment(1);
}

/// `dropped` more records were lost by sink `sink` (its queue was full).
pub fn record_sink_drops(sink: &str, dropped: u64) {
    counter!(names::SINK_DROPPED, "sink" => SINKS.value(Some(sink))).increment(dropped);
}

/// Set sink `sink`'s dropped-records total, for a caller that polls a running count
/// (`llmux_cost::Meter::dropped`) rather than seeing each drop.
pub fn set_sink_dropped_total(sink: &str, total: u64) {
    counter!(names::SINK_DROPPED, "sink" => SINKS.value(Some(sink))).absolute(total);
}

/// A price lookup found no price for `provider`/`model`.
pub fn record_unknown_model_price(provider: &str, model: &str) {
    counter!(
        names::UNKNOWN_MODEL_PRICES,
        "provider" => PROVIDERS.value(Some(provider)),
        "model" => MODELS.value(Some(model))
    )
    .increment(1);
}

/// An exporter's request finished with `outcome` (`ok`, `retried_ok`, `failed`).
pub(crate) fn record_export(exporter: &str, outcome: &'static str) {
    counter!(
        names::EXPORT_BATCHES,
        "exporter" => SINKS.value(Some(exporter)),
        "outcome" => outcome
    )
    .increment(1);
}

/// An exporter dropped `records` records.
pub(crate) fn record_export_dropped(exporter: &str, records: u64) {
    counter!(names::EXPORT_DROPPED, "exporter" => SINKS.value(Some(exporter))).increment(records);
}

/// The receiver refused `items` items of an exporter's request.
pub(crate) fn record_export_rejected(exporter: &str, items: u64) {
    counter!(names::EXPORT_REJECTED, "exporter" => SINKS.value(Some(exporter))).increment(items);
}
