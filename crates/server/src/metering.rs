//! The server's side of the metering point. What a call looked like when it arrived
//! ([`CallMeta`]), how it ended ([`Outcome`]) and turning both into exactly one priced
//! `CallRecord` live in `llmux-engine`, shared with the SDK; this module keeps their
//! server paths (`crate::metering::…`) and plugs the gateway's pieces into them: the state
//! a stream is metered with, and the access ticket a virtual key's call holds.

// Some of these are for the endpoint modules that meter on their own.
#[allow(unused_imports)]
pub(crate) use llmux_engine::{
    CallMeta, MAX_TAG_LEN, MAX_TAGS, Outcome, estimate_tokens, price, tags,
};

use crate::handlers::AppState;
use crate::models::ModelTable;

/// A stream keeps the state it started with alive until it is recorded.
impl AsRef<ModelTable> for AppState {
    fn as_ref(&self) -> &ModelTable {
        &self.models
    }
}

/// A virtual key's admitted call: told what the call used when it is metered, settled
/// (counters, in-flight slots, spend) when it ends.
impl llmux_engine::CallTicket for crate::access::Ticket {
    fn record(&self, tokens: u64, cost_nano_usd: Option<i64>) {
        crate::access::Ticket::record(self, tokens, cost_nano_usd);
    }

    fn settle(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(crate::access::Ticket::settle(*self))
    }
}
