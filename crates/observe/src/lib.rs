//! `llmux-observe`: what the world learns about the calls llmux makes.
//!
//! Every call ends in one [`CallRecord`] at the gateway's metering point; this crate turns
//! those records into signals, always naming the model group the client asked for *and* the
//! deployment and provider model that really answered:
//!
//! - **metrics** ([`metric`]): the `llmux_*` metric names and their label sets, a Prometheus
//!   recorder ([`install_prometheus`], whose handle the server renders on `GET /metrics`),
//!   [`MetricsSink`] recording each record, and plain functions the router, admission and
//!   server call for what records cannot show (in-flight calls, retries, fallbacks,
//!   cooldowns, refusals, sink drops, unknown prices);
//! - **OpenTelemetry** ([`otlp`]): [`OtlpSink`] exports one span per call over OTLP (HTTP
//!   with JSON or protobuf encoding, or gRPC), named and attributed per the GenAI semantic conventions, continuing the
//!   client's W3C trace ([`parse_traceparent`]);
//! - **Langfuse** ([`langfuse`]): [`LangfuseSink`] sends a trace and a generation per call to
//!   Langfuse's public ingestion API;
//! - **callbacks** ([`webhook`]): [`WebhookSink`] POSTs batches of records as JSON;
//! - **files** ([`jsonl`]): [`JsonlSink`] appends one JSON line per record to a file;
//! - **sinks as plugins**: a [`SinkFactory`] per sink, built-in or linked from another crate
//!   with `inventory::submit!`, found by name ([`find_sink`]); [`SinkSet::build`] (or
//!   [`build_sinks`]) turns a configuration's `callbacks` and `callback_settings` into
//!   running sinks.
//!
//! Invariants:
//! - A sink never blocks or fails a call. Exporters batch with bounded size, interval and
//!   queue; a failed batch is retried once, then dropped — always logged and counted.
//! - Metric labels are bounded: model groups, deployments, providers, keys and teams are
//!   sanitized, capped in length and in how many distinct values a label takes; request ids,
//!   prompts and free text are never labels.
//! - Secrets (exporter headers, the Langfuse secret key, webhook URLs) are held as
//!   [`Secret`](llmux_core::Secret) and never appear in logs, errors or `Debug` output.
//! - Exports go through the process's one outbound client, [`llmux_http::client`].
//!
//! What must never live here: routing decisions, HTTP serving, storage. This crate only
//! observes records and counts what other crates tell it; it does not know how a call was
//! routed or where spend is stored.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod builtin;
mod env;
mod error;
mod ids;
pub mod jsonl;
mod labels;
pub mod langfuse;
pub mod metric;
pub mod otlp;
mod proto;
mod registry;
mod time;
pub mod webhook;

/// Re-exported so sink crates can `inventory::submit!` a [`SinkFactory`] without naming
/// the dependency.
pub use inventory;

pub use batch::{BatchConfig, ExportStats};
pub use error::ConfigError;
pub use ids::{new_span_id, new_trace_id};
pub use jsonl::{JsonlConfig, JsonlSink};
pub use langfuse::{LangfuseConfig, LangfuseSink};
pub use llmux_core::{CallRecord, CallSink, JsonObject};
pub use metric::{
    InFlight, MetricsSink, PrometheusHandle, PrometheusRecorder, describe_metrics, in_flight,
    in_flight_dec, in_flight_inc, install_prometheus, prometheus_recorder, record_budget_refusal,
    record_cooldown, record_fallback, record_rate_limit_refusal, record_retry, record_sink_drops,
    record_unknown_model_price, set_sink_dropped_total,
};
pub use otlp::{OtlpConfig, OtlpProtocol, OtlpSink, parse_traceparent};
pub use registry::{
    BuiltSink, DEFAULT_SINKS, EnvLookup, Flush, SinkContext, SinkFactory, SinkSet, build_sinks,
    find_sink, sinks,
};
pub use webhook::{WebhookConfig, WebhookSink};
