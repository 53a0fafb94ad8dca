//! Counters: two Redis-backed gateways sharing limits exactly, and the local fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmux_store::*;

use crate::common::{bounded, unique};

fn redis_url() -> String {
    std::env::var("LLMUX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A fresh key prefix on the test Redis; `None` when Redis is unreachable and
/// `LLMUX_SKIP_REDIS=1`. The keys are removed by [`RedisPrefix::cleanup`] (and expire anyway).
struct RedisPrefix {
    prefix: String,
}

impl RedisPrefix {
    async fn create() -> Option<Self> {
        let probe = RedisCounters::new(RedisCountersConfig::new(redis_url())).unwrap();
        if !probe.ping().await {
            if std::env::var("LLMUX_SKIP_REDIS").as_deref() == Ok("1") {
                eprintln!("skipped: Redis unreachable and LLMUX_SKIP_REDIS=1");
                return None;
            }
            panic!(
                "Redis is not reachable (LLMUX_TEST_REDIS_URL, default 127.0.0.1:6379). Start it, point LLMUX_TEST_REDIS_URL \
                 at one, or set LLMUX_SKIP_REDIS=1 to skip the Redis tests."
            );
        }
        Some(Self {
            prefix: format!("llmux-test:{}:", unique()),
        })
    }

    fn counters(&self) -> RedisCounters {
        let mut cfg = RedisCountersConfig::new(redis_url());
        cfg.prefix = self.prefix.clone();
        // Generous: a loaded CI machine must not turn into a fallback here.
        cfg.op_timeout = Duration::from_secs(2);
        cfg.connect_timeout = Duration::from_secs(2);
        RedisCounters::new(cfg).unwrap()
    }

    async fn cleanup(&self) {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    async fn ttl_ms(&self, suffix: &str) -> i64 {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("PTTL")
            .arg(format!("{}{suffix}", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap()
    }
}

/// Fire `n` concurrent hits, alternating between two gateways; count the admitted.
async fn burst(
    a: &Arc<RedisCounters>,
    b: &Arc<RedisCounters>,
    key: &str,
    w: Window,
    n: usize,
) -> usize {
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.to_owned();
        tasks.push(tokio::spawn(
            async move { c.hit(&key, w, 1, 10).await.allowed },
        ));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_exactly() {
    let Some(redis) = RedisPrefix::create().await else {
        return;
    };
    bounded(async {
        let a = Arc::new(redis.counters());
        let b = Arc::new(redis.counters());
        assert!(a.ping().await && b.ping().await);

        // 100 concurrent requests against rpm = 10: exactly 10 get through, on either window.
        for (name, w) in [
            ("rpm-fixed", Window::fixed(Duration::from_secs(60))),
            ("rpm-sliding", Window::minute()),
        ] {
            let admitted = burst(&a, &b, name, w, 100).await;
            assert_eq!(admitted, 10, "{name}");
            let refused = a.hit(name, w, 1, 10).await;
            assert!(!refused.allowed);
            assert_eq!(refused.current, 10);
            assert!(
                refused
                    .retry_after
                    .is_some_and(|d| d <= Duration::from_secs(60))
            );
            assert_eq!(b.peek(name, w).await, 10);
        }
        // Keys carry bounded TTLs.
        let ttl = redis.ttl_ms("rl:f:rpm-fixed").await;
        assert!((1..=60_000).contains(&ttl), "{ttl}");
        let ttl = redis.ttl_ms("rl:s:rpm-sliding").await;
        assert!((1..=120_000).contains(&ttl), "{ttl}");

        // Token windows: amounts count whole.
        let tpm = Window::minute();
        assert!(a.hit("tpm", tpm, 600, 1_000).await.allowed);
        assert!(!b.hit("tpm", tpm, 500, 1_000).await.allowed);
        assert_eq!(b.add("tpm", tpm, 500).await, 1_100);

        // A short fixed window opens again once it has passed.
        let short = Window::fixed(Duration::from_millis(300));
        assert!(a.hit("short", short, 1, 1).await.allowed);
        assert!(!b.hit("short", short, 1, 1).await.allowed);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(b.hit("short", short, 1, 1).await.allowed);

        // In-flight slots: 50 concurrent acquires with max_parallel = 5.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { c.acquire("par", 5).await }));
        }
        let mut permits = Vec::new();
        for t in tasks {
            if let Some(p) = t.await.unwrap() {
                assert!(!p.is_local());
                permits.push(p);
            }
        }
        assert_eq!(permits.len(), 5);
        assert_eq!(a.in_flight("par").await, 5);
        assert!(redis.ttl_ms("par:par").await > 0);
        for (i, p) in permits.into_iter().enumerate() {
            if i % 2 == 0 {
                a.release(p).await
            } else {
                b.release(p).await
            }
        }
        assert_eq!(b.in_flight("par").await, 0);
        assert!(a.acquire("par", 5).await.is_some());

        // Spend cache shared by both.
        assert_eq!(a.cached_spend("key_1").await, None);
        a.set_spend("key_1", 1_000).await;
        assert_eq!(b.add_spend("key_1", 250).await, 1_250);
        assert_eq!(a.add_spend("key_1", -50).await, 1_200);
        assert_eq!(b.cached_spend("key_1").await, Some(1_200));
        assert!(redis.ttl_ms("spend:key_1").await > 0);

        assert!(!a.is_degraded() && !b.is_degraded());
        assert_eq!(a.fallbacks() + b.fallbacks(), 0);
        redis.cleanup().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_falls_back_to_local_counters() {
    bounded(async {
        // A port that was just free: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cfg = RedisCountersConfig::new(format!("redis://127.0.0.1:{port}/"));
        cfg.retry_after = Duration::from_secs(30);
        let c = RedisCounters::new(cfg).unwrap();
        assert!(format!("{c:?}").contains("[redacted]"));
        let started = Instant::now();
        let w = Window::fixed(Duration::from_secs(60));
        let admitted = (0..20).map(|_| c.hit("rpm", w, 1, 10)).collect::<Vec<_>>();
        let mut n = 0;
        for f in admitted {
            n += usize::from(f.await.allowed);
        }
        // Still enforced, per process.
        assert_eq!(n, 10);
        let p = c.acquire("par", 1).await.expect("local slot");
        assert!(p.is_local());
        assert!(c.acquire("par", 1).await.is_none());
        assert_eq!(c.in_flight("par").await, 1);
        c.release(p).await;
        assert_eq!(c.in_flight("par").await, 0);
        c.set_spend("k", 10).await;
        assert_eq!(c.add_spend("k", 5).await, 15);
        assert_eq!(c.cached_spend("k").await, Some(15));
        assert!(c.is_degraded());
        assert!(c.fallbacks() >= 20);
        // Failing fast: one refused connection, then local until `retry_after`.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(!c.ping().await);
        assert!(RedisCounters::new(RedisCountersConfig::new("not a url")).is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_counters_enforce_under_concurrency() {
    bounded(async {
        let c = Arc::new(LocalCounters::new());
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                c.hit("rpm", Window::minute(), 1, 10).await.allowed
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += usize::from(t.await.unwrap());
        }
        assert_eq!(n, 10);
        let dynamic: Arc<dyn Counters> = c;
        assert_eq!(dynamic.peek("rpm", Window::minute()).await, 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldowns_are_shared_with_a_ttl_and_keep_the_later_end() {
    bounded(async {
        let Some(redis) = RedisPrefix::create().await else {
            return;
        };
        let (a, b) = (redis.counters(), redis.counters());
        let ids = vec!["g#0".to_owned(), "g#1".to_owned()];
        assert!(b.cooldowns(&ids).await.is_empty());
        assert!(a.publish_cooldown("g#0", Duration::from_secs(30), 1).await);
        // A shorter report from another gateway does not shorten it.
        assert!(b.publish_cooldown("g#0", Duration::from_secs(5), 2).await);
        let seen = b.cooldowns(&ids).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, "g#0");
        assert!(seen[0].1 > Duration::from_secs(25) && seen[0].1 <= Duration::from_secs(30));
        // The key lives exactly as long as the cooldown.
        let ttl = redis.ttl_ms("cooldown:g#0").await;
        assert!(ttl > 25_000 && ttl <= 30_000, "{ttl}");
        // A short one expires by itself.
        assert!(
            a.publish_cooldown("g#1", Duration::from_millis(50), 3)
                .await
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        let seen = a.cooldowns(&ids).await;
        assert_eq!(
            seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["g#0"]
        );
        assert_eq!(a.fallbacks() + b.fallbacks(), 0);
        redis.cleanup().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_shares_no_cooldown_and_counts_the_fallback() {
    bounded(async {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = RedisCounters::new(RedisCountersConfig::new(format!(
            "redis://user:secret@127.0.0.1:{port}/"
        )))
        .unwrap();
        assert!(!c.publish_cooldown("g#0", Duration::from_secs(5), 1).await);
        assert!(c.cooldowns(&["g#0".to_owned()]).await.is_empty());
        assert!(c.is_degraded());
        assert_eq!(c.fallbacks(), 2);
        assert!(!format!("{c:?}").contains("secret"));
    })
    .await;
}
