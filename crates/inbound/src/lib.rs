//! `llmux-inbound`: the client-facing wire formats other than OpenAI's Chat Completions —
//! Anthropic's Messages API ([`messages`]) and OpenAI's Responses API ([`responses`]).
//!
//! Owns: pure functions translating each format's request into llmux's canonical
//! [`llmux_core::ChatRequest`], and canonical responses and chunk streams back into the
//! format's response body and SSE event sequence (with its own error shape).
//!
//! Must not: do I/O, route, meter or know any upstream provider; the server calls these
//! functions around the one accounting path every endpoint shares.

#![forbid(unsafe_code)]

pub mod completions;
pub mod messages;
pub mod responses;
