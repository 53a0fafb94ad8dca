//! `llmux-provider-bedrock`: llmux provider for AWS Bedrock (Converse, ConverseStream, InvokeModel embeddings).
//!
//! (Skeleton: filled in by the issue that adds this provider.)

/// Referenced by the `llmux` facade so the linker keeps this crate's registrations.
pub fn link() {}
