//! `llmux-cost`: what a model costs, and what one call cost.
//!
//! What lives here:
//! - the price table ([`PriceTable`]): LiteLLM's `model_prices_and_context_window.json`
//!   format, a generated subset of it embedded in the crate ([`PriceTable::embedded`], parsed
//!   lazily once), loadable from a newer file ([`PriceTable::from_path`]) and overridable per
//!   deployment ([`PriceTable::merge_override`], or a [`ModelPrice`] built directly);
//! - model-name lookup with the normalisations real names need ([`PriceTable::resolve`]):
//!   provider prefixes, Bedrock regions and ARNs, date suffixes, Azure base models; plus
//!   context-window limits;
//! - the cost of one call ([`ModelPrice::cost`]) from its usage ([`CallUsage`], built from
//!   [`llmux_core::Usage`]), by component ([`CostBreakdown`]);
//! - the metering point ([`Meter`]): prices each finished call and hands its
//!   [`llmux_core::CallRecord`] to the sinks through bounded per-sink queues, off the hot path;
//! - exact integer money: [`Money`] is nano-USD, [`UnitPrice`] is pico-USD per unit; prices
//!   are parsed from their decimal text, never stored or summed as `f64`.
//!
//! What must never live here: network I/O (the only I/O is reading a price file the caller
//! names, at load time), HTTP, routing, keys, budgets or spend storage. An unknown model is
//! `None`, never a guessed price. See `docs/cost.md`.

#![forbid(unsafe_code)]

mod cost;
mod meter;
mod money;
mod price;
mod table;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use cost::{CallUsage, CostBreakdown};
pub use meter::{DEFAULT_SINK_QUEUE, Meter, MeterWorkers};
pub use money::{Money, NANO_USD_PER_USD, PICO_USD_PER_USD, UnitPrice};
pub use price::{Capabilities, ModelPrice, PriceTier, RateField, Rates};
pub use table::{EMBEDDED_PRICES_JSON, PriceTable, Resolved};

/// Errors loading prices or parsing a money amount.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// A number that is not a valid decimal, is negative where a price must not be, or does
    /// not fit.
    #[error("invalid number {text:?}: {reason}")]
    InvalidNumber {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The price file is not valid JSON or not in LiteLLM's format (the message names the
    /// model and the position).
    #[error("price table: {0}")]
    Json(#[from] serde_json::Error),
    /// The price file could not be read.
    #[error("reading price table {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

impl PriceError {
    pub(crate) fn invalid_number(text: &str, reason: &'static str) -> Self {
        // Bound the echoed text: it may come from a large, hostile file.
        let text = text.chars().take(64).collect();
        PriceError::InvalidNumber { text, reason }
    }
}
