//! `llmux-bench`: the tools `cargo xtask bench` drives, as a library and the `llmux-bench`
//! binary.
//!
//! - [`upstream`]: a fast mock upstream speaking OpenAI's Chat Completions and Anthropic's
//!   Messages wire formats (plain and streamed, with a configurable delay), so a benchmark
//!   measures the gateway, not the mock;
//! - [`load`]: an HTTP/1.1 load generator with closed-loop (fixed concurrency) and
//!   open-loop (fixed offered rate, latency from the scheduled send time) modes that
//!   reports p50/p90/p99/p99.9, requests per second, time to first token and errors as
//!   JSON;
//! - [`stats`]: the percentile arithmetic.
//!
//! What it must not do: depend on any llmux crate (it measures the gateway from the
//! outside, over 127.0.0.1 HTTP, like any client), record request bodies, or retry.
//! The orchestration (building, starting gateways and peers, sampling CPU and memory,
//! writing the report) lives in `xtask/src/bench*.rs`.

pub mod load;
pub mod stats;
pub mod upstream;
