//! OpenAI Responses API (`POST /v1/responses`) to and from canonical form.
//!
//! - [`decode_request`]: a Responses request body → a [`DecodedRequest`]: the canonical
//!   [`llmux_core::ChatRequest`] of this turn's `input`, plus what the server needs around
//!   it (`instructions`, `previous_response_id`, `store`, and the fields a Response echoes).
//!   Function tools, `tool_choice`, `text.format`, `reasoning.effort`, `max_output_tokens`
//!   and the sampling fields map onto their chat counterparts; input items map onto chat
//!   messages (consecutive `reasoning`, assistant `message` and `function_call` items form
//!   one assistant turn). Built-in tools (web search, file search, …) and the items of
//!   built-in tools have no chat counterpart and are refused with a 400 that says so.
//! - [`encode_response`]: a canonical [`llmux_core::ChatResponse`] → the Response object
//!   (`reasoning`, `message` and `function_call` output items, usage in the Responses
//!   names).
//! - [`ResponseStream`]: canonical chunks → the Responses SSE events, in OpenAI's order and
//!   with `sequence_number`s, ending in `response.completed` (or `response.incomplete`), or
//!   `response.failed` when the stream breaks.
//!
//! Reasoning: canonical `reasoning_content` becomes a reasoning item's summary text;
//! Anthropic thinking blocks (with their signatures, `thinking_blocks` in a message's
//! extra fields) ride in the item's `encrypted_content` as JSON text, so a client that
//! replays output items as input (stateless, `store: false`) gives them back intact.
//!
//! Must not: do I/O, keep state between requests, or generate ids or timestamps (the
//! server passes them in a [`ResponseContext`]).

mod request;
mod response;
mod stream;

pub use request::{DecodedRequest, decode_request};
pub use response::{answer_message, encode_response};
pub use stream::{ResponseStream, StreamEvent};

use llmux_core::JsonObject;

/// What a Response object carries besides the model's answer: its identity and the request
/// fields it echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseContext {
    /// The response id (`resp_…`); output item ids are derived from it.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model the client asked for (what the Response reports).
    pub model: String,
    /// The request fields the Response echoes ([`DecodedRequest::echo`]).
    pub echo: JsonObject,
}

impl ResponseContext {
    /// The id of output item `index` with the item type's `prefix` (`msg`, `fc`, `rs`).
    pub(crate) fn item_id(&self, prefix: &str, index: usize) -> String {
        let base = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{base}_{index}")
    }
}

#[cfg(test)]
mod fixtures;
