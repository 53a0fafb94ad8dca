//! Stream failover before the first chunk, and resumption after it.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::{ChatChunk, ErrorKind, Role, Usage};

use super::fake::{Break, Fake, Script, err};
use super::*;
use crate::select::estimate_tokens;
use crate::{Phase, RouterSettings, TraceHandle};

/// Everything a caller receives from a stream.
struct Received {
    chunks: Vec<ChatChunk>,
    error: Option<llmux_core::Error>,
}

impl Received {
    fn text(&self) -> String {
        self.chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.delta.content.clone())
            .collect()
    }

    fn roles(&self) -> usize {
        self.chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter(|c| c.delta.role == Some(Role::Assistant))
            .count()
    }
}

async fn receive(mut s: llmux_core::ChatStream) -> Received {
    let mut out = Received {
        chunks: Vec::new(),
        error: None,
    };
    // A stream that never ends fails the test instead of hanging it (time is paused, so
    // this limit passes instantly once nothing else can run).
    let limit = Duration::from_secs(3600);
    while let Some(item) = tokio::time::timeout(limit, s.next())
        .await
        .expect("stream ended")
    {
        match item {
            Ok(c) => {
                assert!(out.error.is_none(), "nothing may follow an error item");
                out.chunks.push(c);
            }
            Err(e) => out.error = Some(e),
        }
    }
    out
}

/// Two deployments, `first` tried first (order 1).
fn pair(
    settings: RouterSettings,
    first: &std::sync::Arc<Fake>,
    second: &std::sync::Arc<Fake>,
) -> Router {
    router(
        settings,
        vec![(
            "m",
            vec![
                dep("first", first),
                Deployment {
                    order: 2,
                    ..dep("second", second)
                },
            ],
        )],
    )
}

async fn stream(r: &Router) -> (Received, TraceHandle) {
    let mut q = req("m");
    q.stream = Some(true);
    let out = r.chat_stream(q, &cx()).await.expect("stream starts");
    assert!(!out.trace.is_final());
    (receive(out.value).await, out.trace)
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_fails_before_its_first_chunk_is_retried_elsewhere() {
    let cases = [
        // chat_stream itself fails.
        Script::fail(err(ErrorKind::UpstreamUnavailable)),
        // The stream starts, but its first item is an error.
        Script::ok().fail_first_item(err(ErrorKind::UpstreamError)),
        // Nothing arrives within the first-chunk timeout.
        Script::ok().delay(Duration::from_secs(30)),
    ];
    for (i, script) in cases.into_iter().enumerate() {
        let first = Fake::new("first", script);
        let second = Fake::new("second", Script::text(&["Hel", "lo"]));
        let r = pair(
            RouterSettings {
                stream_first_chunk_timeout: Some(Duration::from_secs(5)),
                ..settings()
            },
            &first,
            &second,
        );
        let (got, trace) = stream(&r).await;
        assert_eq!(got.text(), "Hello", "case {i}");
        assert!(got.error.is_none());
        assert!(got.chunks.last().unwrap().is_usage_only());
        assert!(trace.is_final());
        let t = trace.snapshot();
        assert_eq!(
            (t.attempts, t.retries, t.resumptions),
            (2, 1, 0),
            "case {i}"
        );
        assert_eq!(trace_of(&t), "second");
        assert_eq!(t.errors[0].phase, Phase::StreamStart);
        assert_eq!(t.errors[0].deployment_id.as_deref(), Some("first"));
        assert_eq!(first.calls(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_breaks_mid_way_is_resumed_as_one_answer() {
    let first = Fake::new(
        "first",
        Script::text(&["Hello, ", "wor", "never sent"])
            .break_after(2, Break::Error(err(ErrorKind::UpstreamUnavailable))),
    );
    let second = Fake::new("second", Script::text(&["ld", "!"]).usage(20, 2));
    let r = pair(settings(), &first, &second);
    let (got, trace) = stream(&r).await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.text(), "Hello, world!");
    // One answer: one role chunk, one id, one model throughout.
    assert_eq!(got.roles(), 1);
    assert!(
        got.chunks
            .iter()
            .all(|c| c.id == "chatcmpl-first" && c.model == "first")
    );
    // The continuation was asked with the text so far as an assistant message.
    let cont = &second.requests()[0];
    let last = cont.messages.last().unwrap();
    assert_eq!(last.role, Role::Assistant);
    assert_eq!(last.text_content(), "Hello, wor");
    assert_eq!(cont.messages.len(), 2);
    // Exactly one usage-only chunk, last, summing the pieces (the broken one estimated).
    let usage_chunks: Vec<_> = got.chunks.iter().filter(|c| c.usage.is_some()).collect();
    assert_eq!(usage_chunks.len(), 1);
    let last = got.chunks.last().unwrap();
    assert!(last.is_usage_only());
    let broken = Usage::new(estimate_tokens("hi"), estimate_tokens("Hello, wor"));
    let u = last.usage.as_ref().unwrap();
    assert_eq!(u.prompt_tokens, broken.prompt_tokens + 20);
    assert_eq!(u.completion_tokens, broken.completion_tokens + 2);
    assert_eq!(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    // Exactly one finish.
    let finishes = got
        .chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter(|c| c.finish_reason.is_some())
        .count();
    assert_eq!(finishes, 1);
    // The trace tells.
    assert!(trace.is_final());
    let t = trace.snapshot();
    assert!(t.resumed());
    assert_eq!(t.resumptions, 1);
    assert_eq!(trace_of(&t), "second");
    assert_eq!(t.attempts, 2);
    assert_eq!(t.errors.len(), 1);
    assert_eq!(t.errors[0].phase, Phase::MidStream);
    assert_eq!(t.errors[0].deployment_id.as_deref(), Some("first"));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_is_resumed() {
    let first = Fake::new(
        "first",
        Script::text(&["The ", "quick ", "brown"]).break_after(2, Break::Stall),
    );
    let second = Fake::new("second", Script::text(&["brown fox"]));
    let r = pair(
        RouterSettings {
            stream_stall_timeout: Some(Duration::from_secs(2)),
            ..settings()
        },
        &first,
        &second,
    );
    let started = tokio::time::Instant::now();
    let (got, trace) = stream(&r).await;
    assert_eq!(got.text(), "The quick brown fox");
    assert!(got.error.is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let t = trace.snapshot();
    assert_eq!(t.resumptions, 1);
    assert_eq!(t.errors[0].kind, ErrorKind::Timeout);
    assert_eq!(t.errors[0].phase, Phase::MidStream);
    // A stall counts as a timeout: the stalled deployment cools down.
    assert!(r.health()[0].cooldown_remaining.is_some());
}

#[tokio::test(start_paused = true)]
async fn with_resume_off_a_broken_stream_ends_with_the_error() {
    let first = Fake::new(
        "first",
        Script::text(&["Hello, ", "wor", "ld"])
            .break_after(2, Break::Error(err(ErrorKind::UpstreamUnavailable))),
    );
    let second = Fake::ok("second");
    let r = pair(
        RouterSettings {
            stream_resume: false,
            ..settings()
        },
        &first,
        &second,
    );
    let (got, trace) = stream(&r).await;
    assert_eq!(got.text(), "Hello, wor");
    assert_eq!(got.error.unwrap().kind(), ErrorKind::UpstreamUnavailable);
    assert_eq!(second.calls(), 0);
    assert!(trace.is_final());
    let t = trace.snapshot();
    assert_eq!(t.resumptions, 0);
    assert_eq!(t.errors[0].phase, Phase::MidStream);
}

#[tokio::test(start_paused = true)]
async fn when_nobody_can_continue_the_stream_ends_with_the_error() {
    // first breaks after "a", then fails like second does.
    let first = Fake::new("first", Script::fail(err(ErrorKind::UpstreamUnavailable)));
    first
        .then([Script::text(&["a", "b", "c"])
            .break_after(1, Break::Error(err(ErrorKind::UpstreamError)))]);
    let second = Fake::new("second", Script::fail(err(ErrorKind::UpstreamUnavailable)));
    let r = pair(
        RouterSettings {
            num_retries: 1,
            ..settings()
        },
        &first,
        &second,
    );
    let (got, trace) = stream(&r).await;
    assert_eq!(got.text(), "a");
    assert_eq!(got.error.unwrap().kind(), ErrorKind::UpstreamError);
    let t = trace.snapshot();
    assert_eq!(t.resumptions, 0);
    // The break, then the two failed continuation attempts (num_retries = 1).
    let phases: Vec<_> = t.errors.iter().map(|e| e.phase).collect();
    assert_eq!(
        phases,
        [Phase::MidStream, Phase::StreamStart, Phase::StreamStart]
    );
    assert_eq!((first.calls(), second.calls()), (2, 1));
    assert!(trace.is_final());
}

#[tokio::test(start_paused = true)]
async fn an_unbroken_stream_passes_through_untouched() {
    let only = Fake::new("only", Script::text(&["a", "b"]).usage(3, 2));
    let r = router(settings(), vec![("m", vec![dep("only", &only)])]);
    let (got, trace) = stream(&r).await;
    // role, a, b, finish, usage
    assert_eq!(got.chunks.len(), 5);
    assert_eq!(got.text(), "ab");
    assert_eq!(got.chunks[4].usage, Some(Usage::new(3, 2)));
    assert_eq!(trace.snapshot().attempts, 1);
    assert_eq!(r.health()[0].tokens_last_minute, 5);
    assert_eq!(r.health()[0].in_flight, 0);
}
