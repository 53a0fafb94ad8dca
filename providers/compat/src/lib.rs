//! `llmux-provider-compat`: llmux's catalogue of OpenAI-compatible providers (one table, the OpenAI codec).
//!
//! (Skeleton: filled in by the issue that adds this provider.)

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}
