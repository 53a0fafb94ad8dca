//! `llmux-provider-cohere`: llmux provider for Cohere (v2 chat, embed, rerank).
//!
//! (Skeleton: filled in by the issue that adds this provider.)

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}
