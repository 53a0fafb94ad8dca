//! `llmux-provider-ollama`: llmux provider for Ollama's native API (/api/chat, /api/embed).
//!
//! (Skeleton: filled in by the issue that adds this provider.)

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}
