//! llmux-store integration tests: one binary (one link) for every backend-facing test.
//!
//! SQLite runs in temporary files. PostgreSQL (127.0.0.1:5432, user `postgres`, or
//! `LLMUX_TEST_PG_URL`) and Redis (127.0.0.1:6379, or `LLMUX_TEST_REDIS_URL`) must be
//! reachable unless `LLMUX_SKIP_PG=1` / `LLMUX_SKIP_REDIS=1`; each test creates and drops its
//! own database or key prefix, so tests run in parallel and repeatedly.

mod common;

mod admin;
mod counters;
mod litellm_import;
mod report;
mod spend;
mod writer;
