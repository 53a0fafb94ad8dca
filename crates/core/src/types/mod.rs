//! Canonical request and response types, in OpenAI's JSON shapes.
//!
//! Every request and message type keeps the fields it does not know in an `extra` map
//! (`#[serde(flatten)]`), so a parameter llmux has never heard of still reaches an
//! OpenAI-shaped upstream unchanged.

mod chat;
mod content;
mod embedding;
mod model;
mod rerank;
mod usage;

pub use chat::*;
pub use content::*;
pub use embedding::*;
pub use model::*;
pub use rerank::*;
pub use usage::*;

/// A JSON object: the type of every `extra` map.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

pub(crate) fn is_empty_object(m: &JsonObject) -> bool {
    m.is_empty()
}
