//! Records and helper calls rendered by a local (not global) Prometheus recorder.

use llmux_core::{BudgetAlert, BudgetScope, CallRecord, ErrorKind};
use llmux_observe::metric::describe_metrics;
use llmux_observe::{
    MetricsSink, in_flight, in_flight_dec, in_flight_inc, prometheus_recorder,
    record_budget_refusal, record_cooldown, record_fallback, record_rate_limit_refusal,
    record_retry, record_sink_drops, record_unknown_model_price, set_sink_dropped_total,
};

use crate::common::{failed_record, ok_record};

/// Render what `f` records.
fn render(f: impl FnOnce()) -> String {
    let recorder = prometheus_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, f);
    handle.render()
}

fn check(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l == *line),
            "missing line\n  {line}\nin\n{text}"
        );
    }
}

#[test]
fn call_records_become_exact_series() {
    let text = render(|| {
        describe_metrics();
        let sink = MetricsSink::new();
        sink.observe(&ok_record());
        sink.observe(&ok_record());
        sink.observe(&failed_record());
        sink.observe(&CallRecord {
            cache_hit: true,
            usage_estimated: true,
            cost_nano_usd: Some(0),
            ..ok_record()
        });
    });
    check(
        &text,
        &[
            "# TYPE llmux_requests_total counter",
            r#"llmux_requests_total{model_group="gpt-4o",deployment="azure-eu",provider="azure",operation="chat_stream",status="200",error_kind="none"} 3"#,
            r#"llmux_requests_total{model_group="gpt-4o",deployment="openai-us",provider="openai",operation="chat",status="503",error_kind="upstream_unavailable"} 1"#,
            "# TYPE llmux_request_duration_seconds histogram",
            r#"llmux_request_duration_seconds_bucket{model_group="gpt-4o",deployment="azure-eu",provider="azure",operation="chat_stream",le="1"} 0"#,
            r#"llmux_request_duration_seconds_bucket{model_group="gpt-4o",deployment="azure-eu",provider="azure",operation="chat_stream",le="2.5"} 3"#,
            r#"llmux_request_duration_seconds_bucket{model_group="gpt-4o",deployment="azure-eu",provider="azure",operation="chat_stream",le="+Inf"} 3"#,
            r#"llmux_request_duration_seconds_sum{model_group="gpt-4o",deployment="azure-eu",provider="azure",operation="chat_stream"} 3.75"#,
            r#"llmux_request_duration_seconds_count{model_group="gpt-4o",deployment="azure-eu",provider="azure",operation="chat_stream"} 3"#,
            r#"llmux_request_duration_seconds_bucket{model_group="gpt-4o",deployment="openai-us",provider="openai",operation="chat",le="0.1"} 1"#,
            "# TYPE llmux_time_to_first_token_seconds histogram",
            r#"llmux_time_to_first_token_seconds_bucket{model_group="gpt-4o",deployment="azure-eu",provider="azure",le="0.2"} 0"#,
            r#"llmux_time_to_first_token_seconds_bucket{model_group="gpt-4o",deployment="azure-eu",provider="azure",le="0.3"} 3"#,
            r#"llmux_time_to_first_token_seconds_count{model_group="gpt-4o",deployment="azure-eu",provider="azure"} 3"#,
            r#"llmux_tokens_total{model_group="gpt-4o",deployment="azure-eu",provider="azure",kind="input"} 360"#,
            r#"llmux_tokens_total{model_group="gpt-4o",deployment="azure-eu",provider="azure",kind="output"} 90"#,
            r#"llmux_tokens_total{model_group="gpt-4o",deployment="azure-eu",provider="azure",kind="cached"} 60"#,
            r#"llmux_tokens_total{model_group="gpt-4o",deployment="azure-eu",provider="azure",kind="reasoning"} 15"#,
            r#"llmux_spend_nano_usd_total{model_group="gpt-4o",key="key_0a1b",team="team-a"} 3000000"#,
            r#"llmux_cache_hits_total{model_group="gpt-4o"} 1"#,
            r#"llmux_usage_estimated_total{model_group="gpt-4o",provider="azure"} 1"#,
            "# HELP llmux_requests_total Finished calls by model group, answering deployment and provider, operation, HTTP status and error kind",
        ],
    );
    assert!(!text.contains("req-ok-1"), "request ids are never labels");
    assert!(!text.contains("end-user-9"), "end users are never labels");
    assert!(
        !text.contains(r#"kind="cache_creation""#),
        "zero token kinds make no series"
    );
    assert!(
        !text.contains(r#"deployment="openai-us",provider="openai",kind="#),
        "a call with no tokens adds no token series"
    );
}

#[test]
fn label_values_are_sanitized_and_unknown_models_grouped() {
    let text = render(|| {
        let sink = MetricsSink::new();
        sink.observe(&CallRecord {
            operation: "chat".into(),
            model_group: "my model \"v2\"\n".into(),
            deployment: Some("x".repeat(200)),
            status: 200,
            ..CallRecord::default()
        });
        sink.observe(&CallRecord {
            operation: "chat".into(),
            model_group: "made-up-by-a-client-7f3a".into(),
            status: 404,
            error_kind: Some(ErrorKind::NotFound),
            ..CallRecord::default()
        });
        sink.observe(&CallRecord {
            operation: "chat".into(),
            model_group: "sent-with-a-bad-key".into(),
            status: 401,
            error_kind: Some(ErrorKind::Auth),
            ..CallRecord::default()
        });
    });
    let long = "x".repeat(64);
    check(
        &text,
        &[
            &format!(
                r#"llmux_requests_total{{model_group="my_model__v2_",deployment="{long}",provider="none",operation="chat",status="200",error_kind="none"}} 1"#
            ),
            r#"llmux_requests_total{model_group="unknown",deployment="none",provider="none",operation="chat",status="404",error_kind="not_found"} 1"#,
            r#"llmux_requests_total{model_group="unknown",deployment="none",provider="none",operation="chat",status="401",error_kind="auth"} 1"#,
        ],
    );
    assert!(!text.contains("made-up-by-a-client"));
    assert!(!text.contains("sent-with-a-bad-key"));
}

#[test]
fn budget_alerts_are_counted_by_scope_only() {
    let alert = |scope, id: &str| BudgetAlert {
        scope,
        id: id.into(),
        spend_nano: 2,
        soft_budget_nano: 1,
        max_budget_nano: None,
        at_ms: 1,
    };
    let text = render(|| {
        describe_metrics();
        let sink = MetricsSink::new();
        sink.observe_alert(&alert(BudgetScope::Key, "key_secretish_1"));
        sink.observe_alert(&alert(BudgetScope::Key, "key_secretish_2"));
        sink.observe_alert(&alert(BudgetScope::Team, "team-a"));
    });
    check(
        &text,
        &[
            "# TYPE llmux_budget_alerts_total counter",
            r#"llmux_budget_alerts_total{scope="key"} 2"#,
            r#"llmux_budget_alerts_total{scope="team"} 1"#,
        ],
    );
    assert!(!text.contains("key_secretish"), "ids are never labels");
    assert!(!text.contains(r#"scope="user""#), "no alert, no series");
}

#[test]
fn helper_functions_record_their_series() {
    let text = render(|| {
        in_flight_inc("gpt-4o");
        in_flight_inc("gpt-4o");
        in_flight_dec("gpt-4o");
        {
            let _guard = in_flight("claude");
            let _second = in_flight("claude");
        }
        let _held = in_flight("claude");
        record_retry("openai-us", ErrorKind::RateLimited);
        record_retry("openai-us", ErrorKind::RateLimited);
        record_fallback("gpt-4o", "claude");
        record_cooldown("openai-us");
        record_rate_limit_refusal("key", "rpm");
        record_budget_refusal("team");
        record_sink_drops("otlp", 3);
        set_sink_dropped_total("langfuse", 42);
        record_unknown_model_price("openai", "gpt-9-preview");
        drop(_held);
    });
    check(
        &text,
        &[
            "# TYPE llmux_requests_in_flight gauge",
            r#"llmux_requests_in_flight{model_group="gpt-4o"} 1"#,
            r#"llmux_requests_in_flight{model_group="claude"} 0"#,
            r#"llmux_retries_total{deployment="openai-us",error_kind="rate_limited"} 2"#,
            r#"llmux_fallbacks_total{model_group="gpt-4o",fallback="claude"} 1"#,
            r#"llmux_deployment_cooldowns_total{deployment="openai-us"} 1"#,
            r#"llmux_rate_limit_refusals_total{scope="key",limit="rpm"} 1"#,
            r#"llmux_budget_refusals_total{scope="team"} 1"#,
            r#"llmux_sink_dropped_total{sink="otlp"} 3"#,
            r#"llmux_sink_dropped_total{sink="langfuse"} 42"#,
            r#"llmux_price_unknown_model_total{provider="openai",model="gpt-9-preview"} 1"#,
        ],
    );
}

#[test]
fn the_global_recorder_installs_once() {
    let a = llmux_observe::install_prometheus();
    let b = llmux_observe::install_prometheus();
    record_cooldown("global-check");
    for handle in [a, b] {
        let text = handle.render();
        assert!(
            text.contains(r#"llmux_deployment_cooldowns_total{deployment="global-check"} 1"#),
            "{text}"
        );
    }
}
