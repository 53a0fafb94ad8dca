//! Records and settings the tests share.

use std::time::Duration;

use llmux_core::{CallRecord, ErrorKind};
use llmux_observe::BatchConfig;

/// A successful streamed chat answered by an Azure deployment after a fallback.
pub fn ok_record() -> CallRecord {
    CallRecord {
        request_id: "req-ok-1".into(),
        started_at_ms: 1_735_689_600_000,
        operation: "chat_stream".into(),
        key: Some("key_0a1b".into()),
        key_alias: Some("team-a-key".into()),
        team: Some("team-a".into()),
        user: Some("u-1".into()),
        end_user: Some("end-user-9".into()),
        model_group: "gpt-4o".into(),
        deployment: Some("azure-eu".into()),
        provider: Some("azure".into()),
        provider_model: Some("gpt-4o-2024-08-06".into()),
        prompt_tokens: 120,
        completion_tokens: 30,
        cached_tokens: 20,
        reasoning_tokens: 5,
        cost_nano_usd: Some(1_500_000),
        latency_us: 1_250_000,
        ttft_us: Some(300_000),
        status: 200,
        tags: vec!["prod".into()],
        attempts: 2,
        fallback: Some("gpt-4o-backup".into()),
        finish_reason: Some("stop".into()),
        ..CallRecord::default()
    }
}

/// A failed chat: the OpenAI deployment was unavailable.
pub fn failed_record() -> CallRecord {
    CallRecord {
        request_id: "req-fail-2".into(),
        started_at_ms: 1_735_689_601_000,
        operation: "chat".into(),
        key: Some("key_0a1b".into()),
        key_alias: Some("team-a-key".into()),
        model_group: "gpt-4o".into(),
        deployment: Some("openai-us".into()),
        provider: Some("openai".into()),
        latency_us: 80_000,
        status: 503,
        error_kind: Some(ErrorKind::UpstreamUnavailable),
        attempts: 3,
        ..CallRecord::default()
    }
}

/// Fast batching for tests.
pub fn fast_batch() -> BatchConfig {
    BatchConfig {
        max_batch: 100,
        interval: Duration::from_millis(50),
        queue: 64,
        timeout: Duration::from_secs(5),
        retry_backoff: Duration::from_millis(10),
    }
}
