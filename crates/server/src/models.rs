//! The models a gateway serves. [`ModelTable`] (the router plus prices and wildcard
//! templates) lives in `llmux-engine`, built from the config the same way for the gateway
//! and the SDK; this module keeps its server path (`crate::models::ModelTable`).

pub use llmux_engine::{ModelTable, Pricing};
