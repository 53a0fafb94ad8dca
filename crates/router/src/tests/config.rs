//! Construction checks and settings parsing.

use std::time::Duration;

use llmux_core::ErrorKind;
use serde_json::json;

use super::fake::Fake;
use super::*;
use crate::{ConfigError, Strategy, Wildcard};

fn build(settings: RouterSettings) -> Result<Router, ConfigError> {
    let f = Fake::ok("x");
    Router::new(
        RouterConfig::new(settings)
            .group("a", vec![dep("a#0", &f)])
            .group("b", vec![dep("b#0", &f)])
            .group("c", vec![dep("c#0", &f)])
            .alias("alias-of-a", "a")
            .wildcard(Wildcard::new("openai/*", |_: &str| {
                Err(llmux_core::Error::internal("unused"))
            })),
    )
}

fn map(pairs: &[(&str, &[&str])]) -> crate::FallbackMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[test]
fn fallback_loops_are_rejected_with_the_groups_named() {
    let e = build(RouterSettings {
        fallbacks: map(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]),
        ..RouterSettings::default()
    })
    .unwrap_err();
    assert_eq!(
        e,
        ConfigError::FallbackLoop {
            list: "fallbacks",
            cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }
    );
    assert_eq!(e.to_string(), "fallbacks: fallback loop a -> b -> c -> a");
    // Through an alias, and to itself.
    let e = build(RouterSettings {
        context_window_fallbacks: map(&[("a", &["b"]), ("b", &["alias-of-a"])]),
        ..RouterSettings::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::FallbackLoop {
                list: "context_window_fallbacks",
                ..
            }
        ),
        "{e}"
    );
    let e = build(RouterSettings {
        content_policy_fallbacks: map(&[("c", &["c"])]),
        ..RouterSettings::default()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "content_policy_fallbacks: fallback loop c -> c"
    );
    // A chain without a loop is fine, also into a wildcard route.
    build(RouterSettings {
        fallbacks: map(&[("a", &["b", "c"]), ("b", &["c", "openai/gpt-4o"])]),
        default_fallbacks: vec!["c".into()],
        ..RouterSettings::default()
    })
    .unwrap();
}

#[test]
fn unknown_groups_and_bad_definitions_are_rejected() {
    let e = build(RouterSettings {
        fallbacks: map(&[("a", &["nope"])]),
        ..RouterSettings::default()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "fallbacks: 'nope' (in the entry for 'a') is not a model group"
    );
    let e = build(RouterSettings {
        default_fallbacks: vec!["gone".into()],
        ..RouterSettings::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("'gone'"), "{e}");
    let e = build(RouterSettings {
        failure_rate_threshold: Some(1.5),
        ..RouterSettings::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("failure_rate_threshold"), "{e}");

    let f = Fake::ok("x");
    let dup = RouterConfig::new(RouterSettings::default())
        .group("a", vec![dep("same", &f)])
        .group("b", vec![dep("same", &f)]);
    assert_eq!(
        Router::new(dup).unwrap_err(),
        ConfigError::DuplicateDeployment("same".into())
    );
    let empty = RouterConfig::new(RouterSettings::default()).group("a", vec![]);
    assert_eq!(
        Router::new(empty).unwrap_err(),
        ConfigError::EmptyGroup("a".into())
    );
    let alias = RouterConfig::new(RouterSettings::default())
        .group("a", vec![dep("a", &f)])
        .alias("x", "missing");
    assert!(matches!(
        Router::new(alias).unwrap_err(),
        ConfigError::UnknownAliasTarget { .. }
    ));
    let wild = RouterConfig::new(RouterSettings::default())
        .wildcard(Wildcard::new("openai*", |_: &str| {
            Err(llmux_core::Error::internal("unused"))
        }));
    assert_eq!(
        Router::new(wild).unwrap_err(),
        ConfigError::BadWildcard("openai*".into())
    );
}

#[test]
fn settings_read_from_config_with_seconds_and_litellm_names() {
    let s: RouterSettings = serde_json::from_value(json!({
        "routing_strategy": "usage-based-routing-v2",
        "num_retries": 4,
        "retry_policy": {"rate_limited": 6, "auth": 1},
        "cooldown_time": 2.5,
        "timeout": 30,
        "stream_stall_timeout": 0.5,
        "backoff": {"initial": 0.1, "max": 2},
        "fallbacks": {"a": ["b"]},
        "stream_resume": false
    }))
    .unwrap();
    assert_eq!(s.strategy, Strategy::UsageBased);
    assert_eq!(s.cooldown_time, Duration::from_millis(2500));
    assert_eq!(s.timeout, Some(Duration::from_secs(30)));
    assert_eq!(s.stream_stall_timeout, Some(Duration::from_millis(500)));
    assert_eq!(s.backoff.initial, Duration::from_millis(100));
    assert!(!s.stream_resume);
    assert_eq!(s.retries_for(ErrorKind::RateLimited), 6);
    assert_eq!(s.retries_for(ErrorKind::Auth), 1);
    assert_eq!(s.retries_for(ErrorKind::Timeout), 4);
    assert_eq!(s.retries_for(ErrorKind::BadRequest), 0);
    // Defaults fill the rest.
    assert_eq!(s.allowed_fails, Some(3));
    assert_eq!(s.max_fallbacks, 5);
    for (name, strategy) in [
        ("simple-shuffle", Strategy::SimpleShuffle),
        ("least-busy", Strategy::LeastBusy),
        ("latency-based-routing", Strategy::LatencyBased),
        ("cost-based-routing", Strategy::CostBased),
    ] {
        let s: RouterSettings = serde_json::from_value(json!({ "strategy": name })).unwrap();
        assert_eq!(s.strategy, strategy);
    }
    let bad = serde_json::from_value::<RouterSettings>(json!({"cooldown": 1}));
    assert!(bad.unwrap_err().to_string().contains("cooldown"));
    let bad = serde_json::from_value::<RouterSettings>(json!({"cooldown_time": -1}));
    assert!(bad.is_err());
    assert_eq!(
        RouterSettings::default().cooldown_time,
        Duration::from_secs(5)
    );
}
