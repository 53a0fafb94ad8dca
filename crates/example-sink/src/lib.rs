//! An example llmux sink plugin: `call_counter` counts calls per model group and logs a
//! line every N calls of a group.
//!
//! A sink plugin is a crate that implements [`CallSink`] and registers a [`SinkFactory`]
//! with `llmux_observe::inventory::submit!`. Nothing else in llmux changes: once the crate
//! is linked into a gateway binary, a configuration can name the sink.
//!
//! # Linking it into a gateway
//!
//! Add the crate to the binary's dependencies and reference it once, so the linker keeps
//! its registration (the same rule as for provider crates):
//!
//! ```ignore
//! fn main() {
//!     // Keeps `call_counter` (and its `inventory` registration) in this binary.
//!     llmux_example_custom_sink::link();
//!     // … then build and run the gateway as the `llmux` binary does
//!     // (`llmux::gateway().config(config).build()?.serve_until_signal().await`).
//! }
//! ```
//!
//! # Configuring it
//!
//! ```yaml
//! settings:
//!   callbacks: [call_counter]
//!   callback_settings:
//!     call_counter: {every: 1000}   # log a line every 1000 calls of a model group
//! ```
//!
//! The sink receives every call record from the gateway's metering point through its own
//! bounded queue: `record` may take its time without delaying a call (a sink that falls
//! behind loses records, counted in `llmux_sink_dropped_total`).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use llmux_observe::{BuiltSink, CallRecord, CallSink, SinkContext, SinkFactory};

/// Calls counted per model group before a line is logged, by default.
pub const DEFAULT_EVERY: u64 = 100;

/// Distinct model groups counted; calls of further groups are counted under `other`
/// (model names in refused calls come from clients, so the map must not grow unbounded).
const MAX_GROUPS: usize = 1000;

/// Counts calls per model group and logs every `every` calls of a group.
#[derive(Debug)]
pub struct CallCounter {
    every: u64,
    counts: Mutex<HashMap<String, u64>>,
}

impl CallCounter {
    /// A counter logging every `every` calls of a model group (at least 1).
    pub fn new(every: u64) -> Self {
        Self {
            every: every.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Count one call of `model_group`; returns the group's count so far.
    pub fn count(&self, model_group: &str) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let group = if counts.contains_key(model_group) || counts.len() < MAX_GROUPS {
            model_group
        } else {
            "other"
        };
        let n = counts.entry(group.to_owned()).or_insert(0);
        *n += 1;
        if (*n).is_multiple_of(self.every) {
            tracing::info!(model_group = group, calls = *n, "call_counter");
        }
        *n
    }
}

#[async_trait]
impl CallSink for CallCounter {
    fn name(&self) -> &str {
        "call_counter"
    }

    async fn record(&self, record: Arc<CallRecord>) {
        self.count(&record.model_group);
    }
}

/// Build the sink from its settings: `every` (a positive whole number, default
/// [`DEFAULT_EVERY`]). It needs nothing else, so it is always built when listed.
fn build(cx: &SinkContext<'_>) -> BuiltSink {
    let every = cx.number("every")?.unwrap_or(DEFAULT_EVERY);
    Ok(Some(Arc::new(CallCounter::new(every))))
}

llmux_observe::inventory::submit! {
    SinkFactory {
        name: "call_counter",
        aliases: &[],
        description: "counts calls per model group and logs every N calls (example plugin)",
        settings: &["every"],
        build,
    }
}

/// Reference this from the gateway binary so the linker keeps this crate's registration.
pub fn link() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factory_is_found_by_name_once_linked_and_counts_per_group() {
        link();
        let factory = llmux_observe::find_sink("call_counter").expect("registered");
        assert_eq!(factory.name, "call_counter");
        assert!(llmux_observe::sinks().any(|f| f.name == "call_counter"));

        let settings: llmux_observe::JsonObject =
            [("every".to_owned(), 2.into())].into_iter().collect();
        let cx = SinkContext::new("call_counter", &settings, &|_| None);
        let sink = (factory.build)(&cx).unwrap().expect("always built");
        assert_eq!(sink.name(), "call_counter");

        let counter = CallCounter::new(2);
        assert_eq!(counter.count("gpt-4o"), 1);
        assert_eq!(counter.count("claude"), 1);
        assert_eq!(counter.count("gpt-4o"), 2);
    }
}
