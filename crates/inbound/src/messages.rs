//! Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`) to and
//! from canonical form.
//!
//! - [`decode_request`]: an Anthropic request body → a canonical [`llmux_core::ChatRequest`].
//!   The mapping keeps everything Anthropic's own codec (`llmux-provider-anthropic`) needs
//!   to re-encode the same body, so an Anthropic upstream gets what the client sent
//!   (thinking signatures, `cache_control`, server tools, documents) while every other
//!   provider reads the canonical fields (text, images, PDFs, tool calls and results,
//!   `reasoning_effort`). Where Anthropic has no canonical counterpart the data rides in
//!   the `extra` maps under Anthropic's own names, the convention the Anthropic codec reads:
//!   `thinking`, `top_k`, `service_tier`, … on the request; `cache_control` on parts, tools
//!   and tool results; `thinking_blocks` and `citations` on assistant turns; `is_error` on
//!   tool results. Blocks with no canonical meaning (search results, files by id, text
//!   documents, server-tool results) pass as whole Anthropic blocks.
//! - [`encode_response`]: a canonical [`llmux_core::ChatResponse`] → Anthropic's `message`
//!   object (`thinking`/`redacted_thinking`/`text`/`tool_use` blocks, `stop_reason`,
//!   usage with the cache fields).
//! - [`MessagesStream`]: canonical chunks → Anthropic's SSE event sequence (`message_start`,
//!   `content_block_*`, `ping`, `message_delta`, `message_stop`, or `error`).
//! - [`error_body`]: an [`llmux_core::Error`] → Anthropic's status and error body.
//! - [`estimate_input_tokens`]: the local `count_tokens` estimate.
//!
//! Must not: do I/O, route, or know which provider will answer.

mod request;
mod response;
mod stream;

pub use request::{decode_count_tokens_request, decode_request, estimate_input_tokens};
pub use response::{encode_response, error_body, error_type, message_id, stop_reason, usage};
pub use stream::{MessagesEvent, MessagesStream};
