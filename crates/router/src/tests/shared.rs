//! Cooldowns shared through a [`CooldownBoard`]: published when they start, merged into
//! another router without a call of its own failing.

use std::sync::Arc;
use std::time::Duration;

use super::fake::{Fake, Script, err};
use super::*;
use crate::{CooldownBoard, MemoryCooldownBoard};
use llmux_core::ErrorKind;

#[tokio::test(start_paused = true)]
async fn a_cooldown_started_by_one_router_is_honoured_by_another_until_it_ends() {
    let board = Arc::new(MemoryCooldownBoard::new());
    // Two gateways' routers over the same deployments.
    let (a1, b1) = (Fake::ok("a"), Fake::ok("b"));
    a1.then([Script::fail(err(ErrorKind::RateLimited))]);
    let one = router(settings(), vec![("m", vec![dep("a", &a1), dep("b", &b1)])]);
    one.share_cooldowns(board.clone());
    let (a2, b2) = (Fake::ok("a"), Fake::ok("b"));
    let two = router(settings(), vec![("m", vec![dep("a", &a2), dep("b", &b2)])]);
    assert_eq!(two.deployment_ids(), ["a", "b"]);

    // Router one cools `a` down (429: at once) and publishes it.
    while a1.calls() == 0 {
        answered_by(&one, "m").await;
    }
    let ids = two.deployment_ids();
    let active = board.active(&ids).await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].deployment_id, "a");

    // Router two merges it: `a` is left alone for the cooldown (default 5 s).
    assert_eq!(two.apply_shared_cooldowns(&active), 1);
    assert_eq!(
        two.apply_shared_cooldowns(&active),
        0,
        "merging again changes nothing"
    );
    for _ in 0..20 {
        assert_eq!(answered_by(&two, "m").await, "b");
    }
    assert_eq!(a2.calls(), 0);
    let cooling = two.health()[0].cooldown_remaining.expect("cooling");
    assert!(cooling > Duration::from_secs(4) && cooling <= Duration::from_secs(5));

    // Once it ends, `a` is back in rotation on router two.
    tokio::time::advance(Duration::from_millis(5100)).await;
    for _ in 0..20 {
        answered_by(&two, "m").await;
    }
    assert!(a2.calls() > 0, "a is back after the shared cooldown");
}

#[tokio::test(start_paused = true)]
async fn a_shared_cooldown_never_shortens_a_local_one_and_is_not_published_back() {
    let board = Arc::new(MemoryCooldownBoard::new());
    let (a, b) = (Fake::ok("a"), Fake::ok("b"));
    a.then([Script::fail(err(ErrorKind::RateLimited))]);
    let r = router(settings(), vec![("m", vec![dep("a", &a), dep("b", &b)])]);
    r.share_cooldowns(board.clone());
    while a.calls() == 0 {
        answered_by(&r, "m").await;
    }
    let before = r.health()[0].cooldown_remaining.expect("cooling");
    let short = crate::SharedCooldown {
        deployment_id: "a".into(),
        until_unix_ms: crate::unix_ms_now() + 1_000,
    };
    let unknown = crate::SharedCooldown {
        deployment_id: "nope".into(),
        until_unix_ms: crate::unix_ms_now() + 60_000,
    };
    assert_eq!(r.apply_shared_cooldowns(&[short, unknown]), 0);
    assert_eq!(r.health()[0].cooldown_remaining, Some(before));
    let ids = ["nope".to_owned()];
    assert!(
        board.active(&ids).await.is_empty(),
        "merged cooldowns are not republished"
    );
}
