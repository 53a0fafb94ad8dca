//! Selection: strategies, `order`, tags, prompt size.

use std::time::Duration;

use serde_json::json;

use super::fake::{Fake, Script};
use super::*;
use crate::Strategy;

#[tokio::test(start_paused = true)]
async fn weights_split_traffic_within_tolerance() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    let r = router(
        settings(),
        vec![(
            "m",
            vec![
                Deployment {
                    weight: Some(1),
                    ..dep("a", &a)
                },
                Deployment {
                    weight: Some(3),
                    ..dep("b", &b)
                },
            ],
        )],
    );
    for _ in 0..4000 {
        answered_by(&r, "m").await;
    }
    let share = b.calls() as f64 / 4000.0;
    assert!((0.72..=0.78).contains(&share), "b got {share}");

    // Without weights, rpm is the weight (limits far above what is used here).
    let (c, d) = (Fake::ok("c"), Fake::ok("d"));
    let r = router(
        settings(),
        vec![(
            "m",
            vec![
                Deployment {
                    rpm: Some(10_000),
                    ..dep("c", &c)
                },
                Deployment {
                    rpm: Some(40_000),
                    ..dep("d", &d)
                },
            ],
        )],
    );
    for _ in 0..2000 {
        answered_by(&r, "m").await;
    }
    let share = d.calls() as f64 / 2000.0;
    assert!((0.76..=0.84).contains(&share), "d got {share}");
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_choices() {
    let run = || async {
        let (a, b) = (Fake::ok("a"), Fake::ok("b"));
        let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
        let mut seq = Vec::new();
        for _ in 0..32 {
            seq.push(answered_by(&r, "m").await);
        }
        seq
    };
    let first = run().await;
    assert_eq!(first, run().await);
    assert!(first.iter().any(|x| x == "a") && first.iter().any(|x| x == "b"));
}

#[tokio::test(start_paused = true)]
async fn least_busy_avoids_the_deployment_with_a_call_in_flight() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    let r = router(
        crate::RouterSettings {
            strategy: Strategy::LeastBusy,
            ..settings()
        },
        vec![("m", vec![dep("a", &a), dep("b", &b)])],
    );
    // Whichever deployment takes the first call holds it forever (a "hold" request hangs).
    let r2 = r.clone();
    let held = tokio::spawn(async move {
        let q = ChatRequest::new("m").user("hold");
        r2.chat(q, &cx()).await.map(|_| ())
    });
    while a.calls() + b.calls() == 0 {
        tokio::task::yield_now().await;
    }
    let (busy, idle) = if a.calls() == 1 {
        ("a", "b")
    } else {
        ("b", "a")
    };
    for _ in 0..10 {
        assert_eq!(answered_by(&r, "m").await, idle, "{busy} is busy");
    }
    let h = &r.health();
    assert_eq!(h.iter().map(|d| d.in_flight).sum::<u32>(), 1);
    held.abort();
}

#[tokio::test(start_paused = true)]
async fn latency_based_prefers_the_faster_deployment() {
    let slow = Fake::new("slow", Script::ok().delay(Duration::from_millis(50)));
    let fast = Fake::new("fast", Script::ok().delay(Duration::from_millis(5)));
    let r = router(
        crate::RouterSettings {
            strategy: Strategy::LatencyBased,
            ..settings()
        },
        vec![("m", vec![dep("slow", &slow), dep("fast", &fast)])],
    );
    for _ in 0..20 {
        answered_by(&r, "m").await;
    }
    // Each is measured once (no sample sorts first), then the fast one takes the rest.
    assert_eq!(slow.calls(), 1);
    assert_eq!(fast.calls(), 19);

    // Streams rank by time to first chunk, measured separately from call latency.
    let slow_start = Fake::new("s1", Script::ok().delay(Duration::from_millis(80)));
    let quick_start = Fake::new("s2", Script::ok().delay(Duration::from_millis(8)));
    let r = router(
        crate::RouterSettings {
            strategy: Strategy::LatencyBased,
            ..settings()
        },
        vec![("m", vec![dep("s1", &slow_start), dep("s2", &quick_start)])],
    );
    for _ in 0..10 {
        let out = r.chat_stream(req("m"), &cx()).await.unwrap();
        let _ = futures_util::StreamExt::count(out.value).await;
    }
    assert_eq!((slow_start.calls(), quick_start.calls()), (1, 9));
    let ttft = r.health()[1].time_to_first_chunk.unwrap();
    assert_eq!(ttft, Duration::from_millis(8));
}

#[tokio::test(start_paused = true)]
async fn usage_based_respects_rpm_and_prefers_the_least_used() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    let r = router(
        crate::RouterSettings {
            strategy: Strategy::UsageBased,
            ..settings()
        },
        vec![(
            "m",
            vec![
                Deployment {
                    rpm: Some(3),
                    ..dep("a", &a)
                },
                Deployment {
                    rpm: Some(3),
                    ..dep("b", &b)
                },
            ],
        )],
    );
    for _ in 0..6 {
        answered_by(&r, "m").await;
    }
    assert_eq!((a.calls(), b.calls()), (3, 3));
    let e = r.chat(req("m"), &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), llmux_core::ErrorKind::RateLimited);
    let after = e.error.retry_after().unwrap();
    assert!(
        after > Duration::ZERO && after <= Duration::from_secs(60),
        "{after:?}"
    );
    assert_eq!(e.trace.attempts, 0);
    assert_eq!(a.calls() + b.calls(), 6);
    // A minute later the window has moved on.
    tokio::time::advance(Duration::from_secs(61)).await;
    answered_by(&r, "m").await;
    assert_eq!(a.calls() + b.calls(), 7);

    // Lowest tokens used wins: "heavy" reports 100 tokens a call, "light" 2.
    let heavy = Fake::new("heavy", Script::ok().usage(90, 10));
    let light = Fake::new("light", Script::ok().usage(1, 1));
    let r = router(
        crate::RouterSettings {
            strategy: Strategy::UsageBased,
            ..settings()
        },
        vec![("m", vec![dep("heavy", &heavy), dep("light", &light)])],
    );
    for _ in 0..20 {
        answered_by(&r, "m").await;
    }
    assert_eq!(heavy.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn cost_based_picks_the_cheapest_for_the_estimated_call() {
    let (cheap_in, cheap_out, unpriced) = (Fake::ok("i"), Fake::ok("o"), Fake::ok("u"));
    let r = router(
        crate::RouterSettings {
            strategy: Strategy::CostBased,
            ..settings()
        },
        vec![(
            "m",
            vec![
                Deployment {
                    input_cost_per_token_pico: Some(1_000),
                    output_cost_per_token_pico: Some(100_000),
                    ..dep("i", &cheap_in)
                },
                Deployment {
                    input_cost_per_token_pico: Some(50_000),
                    output_cost_per_token_pico: Some(2_000),
                    ..dep("o", &cheap_out)
                },
                dep("u", &unpriced),
            ],
        )],
    );
    // A long prompt and a short answer: input price dominates.
    let mut long = ChatRequest::new("m").user("x".repeat(4000));
    long.max_tokens = Some(5);
    assert_eq!(
        trace_of(&r.chat(long, &cx()).await.unwrap().trace.snapshot()),
        "i"
    );
    // A short prompt and a long answer: output price dominates.
    let mut short = req("m");
    short.max_tokens = Some(2000);
    assert_eq!(
        trace_of(&r.chat(short, &cx()).await.unwrap().trace.snapshot()),
        "o"
    );
    assert_eq!(unpriced.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn order_is_priority_then_failover_to_order_two() {
    let (first, second) = (Fake::ok("first"), Fake::ok("second"));
    let r = router(
        settings(),
        vec![(
            "m",
            vec![
                dep("first", &first),
                Deployment {
                    order: 2,
                    ..dep("second", &second)
                },
            ],
        )],
    );
    for _ in 0..10 {
        assert_eq!(answered_by(&r, "m").await, "first");
    }
    first.then([Script::fail(fake::err(
        llmux_core::ErrorKind::UpstreamUnavailable,
    ))]);
    let out = r.chat(req("m"), &cx()).await.unwrap();
    let t = out.trace.snapshot();
    assert_eq!(trace_of(&t), "second");
    assert_eq!((t.attempts, t.retries), (2, 1));
    assert_eq!(t.errors[0].deployment_id.as_deref(), Some("first"));
    // Not cooled (one failure is within allowed_fails): order 1 serves again.
    assert_eq!(answered_by(&r, "m").await, "first");
}

#[tokio::test(start_paused = true)]
async fn tags_pick_deployments_carrying_all_of_them() {
    let (eu, us, plain) = (Fake::ok("eu"), Fake::ok("us"), Fake::ok("plain"));
    let r = router(
        settings(),
        vec![(
            "m",
            vec![
                Deployment {
                    tags: vec!["eu".into(), "fast".into()],
                    ..dep("eu", &eu)
                },
                Deployment {
                    tags: vec!["us".into()],
                    ..dep("us", &us)
                },
                dep("plain", &plain),
            ],
        )],
    );
    for _ in 0..10 {
        let mut q = req("m");
        q.metadata = Some(json!({"tags": ["eu"]}).as_object().unwrap().clone());
        assert_eq!(
            trace_of(&r.chat(q, &cx()).await.unwrap().trace.snapshot()),
            "eu"
        );
        let mut q = req("m");
        q.extra.insert("tags".into(), json!(["us"]));
        assert_eq!(
            trace_of(&r.chat(q, &cx()).await.unwrap().trace.snapshot()),
            "us"
        );
    }
    // The routing directive is not passed upstream.
    assert!(us.requests().iter().all(|q| !q.extra.contains_key("tags")));
    // Both tags must be carried.
    let mut q = req("m");
    q.extra.insert("tags".into(), json!(["eu", "us"]));
    let e = r.chat(q, &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), llmux_core::ErrorKind::BadRequest);
    assert!(e.error.message().contains("tags"), "{}", e.error);
    // Untagged requests may go anywhere.
    for _ in 0..30 {
        answered_by(&r, "m").await;
    }
    assert!(plain.calls() > 0 && eu.calls() > 10 && us.calls() > 10);

    // A request whose tags nobody carries goes to the deployments tagged "default".
    let (fallback, other) = (Fake::ok("fallback"), Fake::ok("other"));
    let r = router(
        settings(),
        vec![(
            "m",
            vec![
                Deployment {
                    tags: vec!["default".into()],
                    ..dep("fallback", &fallback)
                },
                Deployment {
                    tags: vec!["gpu".into()],
                    ..dep("other", &other)
                },
            ],
        )],
    );
    let mut q = req("m");
    q.extra.insert("tags".into(), json!(["unknown-team"]));
    assert_eq!(
        trace_of(&r.chat(q, &cx()).await.unwrap().trace.snapshot()),
        "fallback"
    );
}

#[tokio::test(start_paused = true)]
async fn prompts_too_large_for_a_deployment_skip_it() {
    let (small, large) = (Fake::ok("small"), Fake::ok("large"));
    let r = router(
        settings(),
        vec![(
            "m",
            vec![
                Deployment {
                    max_input_tokens: Some(10),
                    ..dep("small", &small)
                },
                Deployment {
                    max_input_tokens: Some(1000),
                    ..dep("large", &large)
                },
            ],
        )],
    );
    let big = || ChatRequest::new("m").user("y".repeat(400)); // ~100 tokens
    for _ in 0..10 {
        assert_eq!(
            trace_of(&r.chat(big(), &cx()).await.unwrap().trace.snapshot()),
            "large"
        );
    }
    assert_eq!(small.calls(), 0);
    let huge = ChatRequest::new("m").user("y".repeat(8000));
    let e = r.chat(huge, &cx()).await.unwrap_err();
    assert_eq!(e.error.kind(), llmux_core::ErrorKind::ContextWindowExceeded);
    assert_eq!(large.calls(), 10);
}

#[tokio::test(start_paused = true)]
async fn tags_in_a_group_without_tagged_deployments_are_attribution_only() {
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    let mut q = req("m");
    q.metadata = Some(
        json!({"tags": ["feature:summarize"]})
            .as_object()
            .unwrap()
            .clone(),
    );
    q.extra.insert("tags".into(), json!(["team-a"]));
    let t = r.chat(q, &cx()).await.unwrap().trace.snapshot();
    assert!(["a", "b"].contains(&trace_of(&t).as_str()));
}
