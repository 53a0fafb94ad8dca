//! Retries, cooldowns, Retry-After, fallbacks, timeouts, aliases and wildcards.

use std::sync::Arc;
use std::time::Duration;

use llmux_core::{
    EmbeddingInput, EmbeddingRequest, Error, ErrorKind, JsonObject, Provider, RerankRequest,
};
use tokio::time::Instant;

use super::fake::{Fake, Script, err};
use super::*;
use crate::{FallbackKind, Phase, RouterConfig, Wildcard};

fn fallbacks(pairs: &[(&str, &[&str])]) -> crate::FallbackMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

/// Calls until `fake` has been called once, returning the trace of that call.
async fn until_called(r: &Router, fake: &Fake) -> Trace {
    for _ in 0..100 {
        let before = fake.calls();
        let out = r.chat(req("m"), &cx()).await;
        if fake.calls() > before {
            return match out {
                Ok(o) => o.trace.snapshot(),
                Err(f) => f.trace,
            };
        }
    }
    panic!("never called");
}

#[tokio::test(start_paused = true)]
async fn a_429_moves_traffic_to_the_other_deployment_and_cools_it_down() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.then([Script::fail(err(ErrorKind::RateLimited))]);
    let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    let t = until_called(&r, &a).await;
    // The same call was answered by b.
    assert_eq!(trace_of(&t), "b");
    assert_eq!(t.errors[0].kind, ErrorKind::RateLimited);
    assert_eq!(t.errors[0].deployment_id.as_deref(), Some("a"));
    // a sits out its cooldown (default 5 s): everything goes to b.
    for _ in 0..20 {
        assert_eq!(answered_by(&r, "m").await, "b");
    }
    assert_eq!(a.calls(), 1);
    let cooling = r.health()[0].cooldown_remaining.unwrap();
    assert!(cooling <= Duration::from_secs(5) && cooling > Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_cooled_deployment_returns_when_its_cooldown_expires() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.then([Script::fail(err(ErrorKind::RateLimited))]);
    let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    until_called(&r, &a).await;
    tokio::time::advance(Duration::from_millis(4900)).await;
    for _ in 0..10 {
        answered_by(&r, "m").await;
    }
    assert_eq!(a.calls(), 1, "still cooling at 4.9 s");
    tokio::time::advance(Duration::from_millis(200)).await;
    for _ in 0..20 {
        answered_by(&r, "m").await;
    }
    assert!(a.calls() > 3, "a is back: {} calls", a.calls());
    assert!(r.health()[0].cooldown_remaining.is_none());
}

#[tokio::test(start_paused = true)]
async fn allowed_fails_per_minute_then_cooldown() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.set_default(Script::fail(err(ErrorKind::UpstreamUnavailable)));
    let r = router(
        crate::RouterSettings {
            allowed_fails: Some(2),
            ..settings()
        },
        vec![("m", vec![dep("a", &a), dep("b", &b)])],
    );
    for _ in 0..2 {
        until_called(&r, &a).await;
        assert!(r.health()[0].cooldown_remaining.is_none());
    }
    // The third failure within the minute is one too many.
    until_called(&r, &a).await;
    assert!(r.health()[0].cooldown_remaining.is_some());
}

#[tokio::test(start_paused = true)]
async fn failure_rate_threshold_cools_a_flaky_deployment() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    // Succeeds, fails, succeeds, fails, …
    a.then((0..20).map(|i| {
        if i % 2 == 0 {
            Script::ok()
        } else {
            Script::fail(err(ErrorKind::UpstreamError))
        }
    }));
    let r = router(
        crate::RouterSettings {
            allowed_fails: None,
            failure_rate_threshold: Some(0.4),
            failure_rate_min_requests: 4,
            ..settings()
        },
        vec![(
            "m",
            vec![
                Deployment {
                    order: 1,
                    ..dep("a", &a)
                },
                Deployment {
                    order: 2,
                    ..dep("b", &b)
                },
            ],
        )],
    );
    // a: ok, fail (1/2 but under 4 calls), ok, fail (2/4 > 0.4: cools).
    for _ in 0..4 {
        r.chat(req("m"), &cx()).await.unwrap();
    }
    assert_eq!(a.calls(), 4);
    assert!(r.health()[0].cooldown_remaining.is_some());
    answered_by(&r, "m").await;
    assert_eq!(a.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_as_pause_and_as_cooldown() {
    // One deployment: a 503 with Retry-After 3 s is retried after 3 s.
    let only = Fake::ok("only");
    only.then([Script::fail(
        err(ErrorKind::UpstreamUnavailable).with_retry_after(Duration::from_secs(3)),
    )]);
    let r = router(settings(), vec![("m", vec![dep("only", &only)])]);
    let started = Instant::now();
    let out = r.chat(req("m"), &cx()).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_millis(3200),
        "{waited:?}"
    );
    assert_eq!(only.calls(), 2);
    assert_eq!(out.trace.snapshot().retries, 1);

    // A 429 with Retry-After 20 s cools the deployment for 20 s, not 5.
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.then([Script::fail(
        err(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(20)),
    )]);
    let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    until_called(&r, &a).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..10 {
        assert_eq!(answered_by(&r, "m").await, "b");
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..20 {
        answered_by(&r, "m").await;
    }
    assert!(a.calls() > 1);
}

#[tokio::test(start_paused = true)]
async fn every_deployment_cooling_answers_rate_limited_with_retry_after() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.set_default(Script::fail(err(ErrorKind::RateLimited)));
    b.set_default(Script::fail(err(ErrorKind::RateLimited)));
    let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    let first = r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(first.error.kind(), ErrorKind::RateLimited);
    assert_eq!(first.trace.attempts, 2);
    tokio::time::advance(Duration::from_secs(2)).await;
    let e = r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::RateLimited);
    assert_eq!(e.error.code(), Some("no_healthy_deployment"));
    assert_eq!(e.error.retry_after(), Some(Duration::from_secs(3)));
    assert!(e.error.message().contains("'m'"), "{}", e.error);
    assert_eq!(e.trace.attempts, 0);
    assert_eq!(a.calls() + b.calls(), 2);

    // With a fallback, the cooling group hands over instead.
    let (c, d, z) = (Fake::ok("c"), Fake::ok("d"), Fake::ok("z"));
    c.set_default(Script::fail(err(ErrorKind::RateLimited)));
    d.set_default(Script::fail(err(ErrorKind::RateLimited)));
    let r = router(
        crate::RouterSettings {
            fallbacks: fallbacks(&[("m", &["z"])]),
            ..settings()
        },
        vec![
            ("m", vec![dep("c", &c), dep("d", &d)]),
            ("z", vec![dep("z", &z)]),
        ],
    );
    r.chat(req("m"), &cx()).await.unwrap();
    let t = r.chat(req("m"), &cx()).await.unwrap().trace.snapshot();
    assert_eq!((t.attempts, trace_of(&t)), (1, "z".to_owned()));
    assert_eq!(t.final_model_group.as_deref(), Some("z"));
}

#[tokio::test(start_paused = true)]
async fn a_failing_group_falls_back_and_the_trace_says_which() {
    let (a, b, c) = (Fake::ok("a"), Fake::ok("b"), Fake::ok("c"));
    a.set_default(Script::fail(err(ErrorKind::UpstreamUnavailable)));
    b.set_default(Script::fail(err(ErrorKind::UpstreamError)));
    let r = router(
        crate::RouterSettings {
            num_retries: 1,
            fallbacks: fallbacks(&[("m", &["backup"])]),
            ..settings()
        },
        vec![
            ("m", vec![dep("a", &a), dep("b", &b)]),
            ("backup", vec![dep("c", &c)]),
        ],
    );
    let out = r.chat(req("m"), &cx()).await.unwrap();
    assert_eq!(out.value.model, "c");
    let t = out.trace.snapshot();
    assert_eq!(t.model_group, "m");
    assert_eq!(t.final_model_group.as_deref(), Some("backup"));
    assert_eq!(trace_of(&t), "c");
    assert_eq!(t.provider, Some("fake"));
    assert_eq!(t.provider_model.as_deref(), Some("c"));
    assert_eq!((t.attempts, t.retries), (3, 1));
    assert_eq!(t.errors.len(), 2);
    assert!(
        t.errors
            .iter()
            .all(|e| e.phase == Phase::Call && e.model_group == "m")
    );
    assert_eq!(
        t.fallbacks,
        vec![crate::FallbackHop {
            from: "m".into(),
            to: "backup".into(),
            kind: FallbackKind::Generic
        }]
    );
    // The fallback group was asked under its own name.
    assert_eq!(c.requests()[0].model, "backup");
}

#[tokio::test(start_paused = true)]
async fn fallbacks_chain_and_default_fallbacks_apply() {
    let (a, b, c) = (Fake::ok("a"), Fake::ok("b"), Fake::ok("c"));
    a.set_default(Script::fail(err(ErrorKind::UpstreamError)));
    b.set_default(Script::fail(err(ErrorKind::UpstreamError)));
    let r = router(
        crate::RouterSettings {
            num_retries: 0,
            fallbacks: fallbacks(&[("m", &["n"])]),
            default_fallbacks: vec!["last".into()],
            ..settings()
        },
        vec![
            ("m", vec![dep("a", &a)]),
            ("n", vec![dep("b", &b)]),
            ("last", vec![dep("c", &c)]),
        ],
    );
    let t = r.chat(req("m"), &cx()).await.unwrap().trace.snapshot();
    let hops: Vec<_> = t
        .fallbacks
        .iter()
        .map(|h| (h.to.as_str(), h.kind))
        .collect();
    assert_eq!(
        hops,
        [
            ("n", FallbackKind::Generic),
            ("last", FallbackKind::Default)
        ]
    );
    assert_eq!(trace_of(&t), "c");
}

#[tokio::test(start_paused = true)]
async fn context_window_errors_use_context_window_fallbacks() {
    let (small, big, other) = (Fake::ok("small"), Fake::ok("big"), Fake::ok("other"));
    small.set_default(Script::fail(err(ErrorKind::ContextWindowExceeded)));
    let limited = Fake::ok("limited");
    let r = router(
        crate::RouterSettings {
            fallbacks: fallbacks(&[("m", &["other"]), ("m2", &["other"])]),
            context_window_fallbacks: fallbacks(&[("m", &["big"]), ("m2", &["big"])]),
            ..settings()
        },
        vec![
            ("m", vec![dep("small", &small)]),
            (
                "m2",
                vec![Deployment {
                    max_input_tokens: Some(4),
                    ..dep("limited", &limited)
                }],
            ),
            ("big", vec![dep("big", &big)]),
            ("other", vec![dep("other", &other)]),
        ],
    );
    let t = r.chat(req("m"), &cx()).await.unwrap().trace.snapshot();
    assert_eq!(trace_of(&t), "big");
    assert_eq!(t.fallbacks[0].kind, FallbackKind::ContextWindow);
    assert_eq!(small.calls(), 1, "not retried");
    // Known not to fit before any call: straight to the context-window fallback.
    let long = ChatRequest::new("m2").user("z".repeat(100));
    let t = r.chat(long, &cx()).await.unwrap().trace.snapshot();
    assert_eq!(trace_of(&t), "big");
    assert_eq!(t.attempts, 1);
    assert_eq!(t.errors[0].deployment_id, None);
    assert_eq!(t.errors[0].kind, ErrorKind::ContextWindowExceeded);
    assert_eq!((limited.calls(), other.calls()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn content_policy_errors_use_content_policy_fallbacks() {
    let (strict, lenient, other) = (Fake::ok("strict"), Fake::ok("lenient"), Fake::ok("other"));
    strict.set_default(Script::fail(err(ErrorKind::ContentPolicy)));
    let r = router(
        crate::RouterSettings {
            fallbacks: fallbacks(&[("m", &["other"])]),
            content_policy_fallbacks: fallbacks(&[("m", &["lenient"])]),
            ..settings()
        },
        vec![
            ("m", vec![dep("strict", &strict)]),
            ("lenient", vec![dep("lenient", &lenient)]),
            ("other", vec![dep("other", &other)]),
        ],
    );
    let t = r.chat(req("m"), &cx()).await.unwrap().trace.snapshot();
    assert_eq!(trace_of(&t), "lenient");
    assert_eq!(t.fallbacks[0].kind, FallbackKind::ContentPolicy);
    assert_eq!((strict.calls(), other.calls()), (1, 0));
    // A content-policy refusal says nothing about the deployment's health.
    assert!(r.health()[0].cooldown_remaining.is_none());
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_are_not_retried() {
    for kind in [
        ErrorKind::BadRequest,
        ErrorKind::Auth,
        ErrorKind::Permission,
        ErrorKind::NotFound,
        ErrorKind::ContextWindowExceeded,
        ErrorKind::ContentPolicy,
    ] {
        let (a, b) = (Fake::ok("a"), Fake::ok("b"));
        a.set_default(Script::fail(err(kind)));
        b.set_default(Script::fail(err(kind)));
        let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
        let e = r.chat(req("m"), &cx()).await.unwrap_err();
        assert_eq!(e.error.kind(), kind);
        assert_eq!(a.calls() + b.calls(), 1, "{kind} retried");
        assert_eq!((e.trace.attempts, e.trace.retries), (1, 0));
    }
    // A retry policy can allow it.
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.set_default(Script::fail(err(ErrorKind::Permission)));
    b.set_default(Script::fail(err(ErrorKind::Permission)));
    let mut s = settings();
    s.retry_policy.insert(ErrorKind::Permission, 1);
    let r = router(s, vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(a.calls() + b.calls(), 2);
    // An auth error falls back where a fallback is configured (and is not retried).
    let (bad, good) = (Fake::ok("bad"), Fake::ok("good"));
    bad.set_default(Script::fail(err(ErrorKind::Auth)));
    let r = router(
        crate::RouterSettings {
            fallbacks: fallbacks(&[("m", &["n"])]),
            ..settings()
        },
        vec![
            ("m", vec![dep("bad", &bad)]),
            ("n", vec![dep("good", &good)]),
        ],
    );
    assert_eq!(answered_by(&r, "m").await, "good");
    assert_eq!(bad.calls(), 1);
    // But a bad request does not fall back.
    let (a, n) = (Fake::ok("a"), Fake::ok("n"));
    a.set_default(Script::fail(err(ErrorKind::BadRequest)));
    let r = router(
        crate::RouterSettings {
            fallbacks: fallbacks(&[("m", &["n"])]),
            ..settings()
        },
        vec![("m", vec![dep("a", &a)]), ("n", vec![dep("n", &n)])],
    );
    r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(n.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_use_num_retries_then_stop() {
    let only = Fake::ok("only");
    only.set_default(Script::fail(err(ErrorKind::UpstreamError)));
    let r = router(
        crate::RouterSettings {
            num_retries: 3,
            allowed_fails: None,
            ..settings()
        },
        vec![("m", vec![dep("only", &only)])],
    );
    let e = r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::UpstreamError);
    assert_eq!(only.calls(), 4);
    assert_eq!((e.trace.attempts, e.trace.retries), (4, 3));
}

#[tokio::test(start_paused = true)]
async fn attempt_and_total_timeouts() {
    // A hanging deployment times out per attempt; the retry goes to the other.
    let (stuck, fine) = (Fake::new("stuck", Script::hang()), Fake::ok("fine"));
    let r = router(
        crate::RouterSettings {
            timeout: Some(Duration::from_secs(2)),
            ..settings()
        },
        vec![(
            "m",
            vec![
                Deployment {
                    order: 1,
                    ..dep("stuck", &stuck)
                },
                Deployment {
                    order: 2,
                    ..dep("fine", &fine)
                },
            ],
        )],
    );
    let started = Instant::now();
    let t = r.chat(req("m"), &cx()).await.unwrap().trace.snapshot();
    assert_eq!(trace_of(&t), "fine");
    assert_eq!(t.errors[0].kind, ErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // The total timeout bounds everything, whatever the retries.
    let stuck = Fake::new("stuck", Script::hang());
    let r = router(
        crate::RouterSettings {
            total_timeout: Some(Duration::from_secs(3)),
            num_retries: 5,
            ..settings()
        },
        vec![("m", vec![dep("stuck", &stuck)])],
    );
    let started = Instant::now();
    let e = r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    // The caller's own budget bounds it too.
    let stuck = Fake::new("stuck", Script::hang());
    let r = router(settings(), vec![("m", vec![dep("stuck", &stuck)])]);
    let started = Instant::now();
    let mut short = cx();
    short.timeout = Some(Duration::from_secs(1));
    let e = r.chat(req("m"), &short).await.unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn aliases_wildcards_and_unknown_models() {
    let a = Fake::ok("a");
    let built: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = built.clone();
    let config = RouterConfig::new(settings())
        .group("gpt-4o", vec![dep("a", &a)])
        .alias("gpt4", "gpt-4o")
        .wildcard(Wildcard::new("openai/*", move |model: &str| {
            seen.lock().unwrap().push(model.to_owned());
            let p: Arc<dyn Provider> = Fake::ok(model);
            Ok(p)
        }))
        .wildcard(Wildcard::new("*", |_: &str| {
            Err(Error::bad_request("catch-all refused"))
        }));
    let r = Router::new(config).unwrap();
    let t = r.chat(req("gpt4"), &cx()).await.unwrap().trace.snapshot();
    assert_eq!(
        (t.requested_model.as_str(), t.model_group.as_str()),
        ("gpt4", "gpt-4o")
    );
    assert_eq!(trace_of(&t), "a");
    for _ in 0..3 {
        let out = r.chat(req("openai/gpt-4o-mini"), &cx()).await.unwrap();
        assert_eq!(out.value.model, "openai/gpt-4o-mini");
    }
    assert_eq!(
        *built.lock().unwrap(),
        ["openai/gpt-4o-mini"],
        "built once, then reused"
    );
    let e = r.chat(req("other/x"), &cx()).await.unwrap_err();
    assert_eq!(e.error.message(), "catch-all refused");
    assert!(r.serves("gpt4") && r.serves("openai/o3") && r.serves("anything"));
    assert_eq!(r.wildcard_patterns().collect::<Vec<_>>(), ["openai/*", "*"]);

    let r = router(settings(), vec![("m", vec![dep("a", &a)])]);
    let e = r.chat(req("nope"), &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::NotFound);
    assert_eq!(e.error.code(), Some("model_not_found"));
    assert_eq!(e.trace.requested_model, "nope");
    assert!(!r.serves("nope"));
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_routed_with_failover() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.set_default(Script::fail(err(ErrorKind::UpstreamUnavailable)));
    let r = router(
        settings(),
        vec![(
            "e",
            vec![
                Deployment {
                    order: 1,
                    ..dep("a", &a)
                },
                Deployment {
                    order: 2,
                    ..dep("b", &b)
                },
            ],
        )],
    );
    let q = EmbeddingRequest {
        model: "e".into(),
        input: EmbeddingInput::Text("hello".into()),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: JsonObject::new(),
    };
    let out = r.embed(q, &cx()).await.unwrap();
    assert_eq!(out.value.model, "b");
    let t = out.trace.snapshot();
    assert!(out.trace.is_final());
    assert_eq!((t.attempts, trace_of(&t)), (2, "b".to_owned()));
    assert_eq!(r.health()[1].tokens_last_minute, 3);
}

#[tokio::test(start_paused = true)]
async fn rerank_retries_within_the_group_then_falls_back() {
    let (a, b, c) = (Fake::ok("a"), Fake::ok("b"), Fake::ok("c"));
    a.set_default(Script::fail(err(ErrorKind::RateLimited)));
    b.set_default(Script::fail(err(ErrorKind::UpstreamUnavailable)));
    let r = router(
        crate::RouterSettings {
            num_retries: 1,
            fallbacks: fallbacks(&[("rr", &["rr-backup"])]),
            ..settings()
        },
        vec![
            ("rr", vec![dep("a", &a), dep("b", &b)]),
            ("rr-backup", vec![dep("c", &c)]),
        ],
    );
    let mut q = RerankRequest::new("rr", "what is rust", ["a language", "a fungus", "rust"]);
    q.extra.insert("tags".into(), serde_json::json!([]));
    let out = r.rerank(q, &cx()).await.unwrap();
    assert_eq!(out.value.id, "rerank-c");
    let order: Vec<u32> = out.value.results.iter().map(|x| x.index).collect();
    assert_eq!(order, [2, 1, 0]);
    let t = out.trace.snapshot();
    assert!(out.trace.is_final());
    assert_eq!((t.attempts, t.retries), (3, 1));
    assert_eq!(a.calls() + b.calls(), 2, "each deployment of rr tried once");
    assert_eq!(t.final_model_group.as_deref(), Some("rr-backup"));
    assert_eq!(t.fallbacks[0].kind, FallbackKind::Generic);
    // The fallback was asked under its own name, and the routing-only `tags` were removed.
    let asked = &c.reranks()[0];
    assert_eq!(asked.model, "rr-backup");
    assert!(!asked.extra.contains_key("tags"));
    // The rate-limited deployment is cooling down; the reported tokens count for tpm.
    let health = r.health();
    assert!(health[0].cooldown_remaining.is_some());
    assert_eq!(health[2].tokens_last_minute, 5);
}

#[tokio::test(start_paused = true)]
async fn rerank_bad_requests_and_unsupported_providers_do_not_fall_back() {
    let (a, z) = (Fake::ok("a"), Fake::ok("z"));
    a.set_default(Script::fail(err(ErrorKind::BadRequest)));
    let r = router(
        crate::RouterSettings {
            fallbacks: fallbacks(&[("rr", &["z"])]),
            ..settings()
        },
        vec![("rr", vec![dep("a", &a)]), ("z", vec![dep("z", &z)])],
    );
    let e = r
        .rerank(RerankRequest::new("rr", "q", ["d"]), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::BadRequest);
    assert_eq!((a.calls(), z.calls()), (1, 0));
    assert!(e.trace.fallbacks.is_empty());

    // A provider without rerank says so (the trait's default), as a bad request.
    #[derive(Debug)]
    struct ChatOnly;
    #[async_trait::async_trait]
    impl Provider for ChatOnly {
        fn name(&self) -> &'static str {
            "chat-only"
        }
        fn model(&self) -> &str {
            "m"
        }
        async fn chat(
            &self,
            _: ChatRequest,
            _: &llmux_core::CallContext,
        ) -> Result<llmux_core::ChatResponse, Error> {
            Err(Error::internal("not called"))
        }
        async fn chat_stream(
            &self,
            _: ChatRequest,
            _: &llmux_core::CallContext,
        ) -> Result<llmux_core::ChatStream, Error> {
            Err(Error::internal("not called"))
        }
    }
    let r = router(
        settings(),
        vec![("c", vec![Deployment::new("c", Arc::new(ChatOnly))])],
    );
    let e = r
        .rerank(RerankRequest::new("c", "q", ["d"]), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.error.code(), Some("unsupported_operation"));
    assert_eq!(e.trace.attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn rerank_context_window_is_checked_per_document() {
    let a = Fake::ok("a");
    let small = Deployment {
        max_input_tokens: Some(8),
        ..dep("a", &a)
    };
    let r = router(settings(), vec![("rr", vec![small])]);
    // Ten short documents: far more than 8 tokens in total, but each pair fits.
    let docs: Vec<String> = (0..10).map(|i| format!("doc {i}")).collect();
    r.rerank(RerankRequest::new("rr", "query", docs), &cx())
        .await
        .unwrap();
    let long = "word ".repeat(40);
    let e = r
        .rerank(RerankRequest::new("rr", "query", [long]), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::ContextWindowExceeded);
    assert_eq!(a.calls(), 1);
}
