//! `llmux-testkit`: mock upstream servers that speak providers' real wire formats, for
//! tests and benchmarks — never used by the product.
//!
//! Each mock listens on an ephemeral `127.0.0.1` port, records every request it gets
//! (method, path, headers, JSON body), checks credentials the way the real API does, and
//! can be told to misbehave ([`Fault`]): answer with a status and error body, wait, break a
//! stream, or send truncated JSON. Streams whose client went away are counted, so tests can
//! prove that cancellation reaches the upstream.

#![forbid(unsafe_code)]

mod anthropic;
mod bedrock;
mod cohere;
mod gemini;
mod langfuse;
mod mistral;
mod ollama;
mod openai;
mod otlp;
mod recorder;

pub use anthropic::AnthropicMock;
pub use bedrock::BedrockMock;
pub use cohere::CohereMock;
pub use gemini::GeminiMock;
pub use langfuse::{LangfuseEvent, LangfuseMock};
pub use mistral::{MISTRAL_TOOL_CALL_ID, MistralMock};
pub use ollama::OllamaMock;
pub use openai::OpenAiMock;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use recorder::{Fault, RecordedRequest};
