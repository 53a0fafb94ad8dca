//! The sinks against local receivers: rendered Prometheus text, spans at an OTLP receiver,
//! events at a Langfuse mock, batches at a webhook, and secrets kept out of everything.

mod common;
mod langfuse;
mod metrics;
mod otlp;
mod registry;
mod secrets;
mod webhook;
