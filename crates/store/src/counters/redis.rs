//! Counters shared through Redis, with a local fallback; also the Redis side of shared
//! deployment cooldowns (keys expiring with the cooldown; the router's `CooldownBoard` over
//! them lives in the server, so this crate knows no router).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};

use super::local::{DEFAULT_IN_FLIGHT_TTL, DEFAULT_SPEND_TTL};
use super::{Counters, LocalCounters, Permit, RateDecision, Window, WindowKind};
use crate::{Result, StoreError};

/// Fixed window opened by the first hit: KEYS[1] counter; ARGV amount, limit, window ms.
/// Returns {admitted, count, ms left}.
const FIXED_LUA: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {0, cur, redis.call('PTTL', KEYS[1])}
end
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  ttl = tonumber(ARGV[3])
end
return {1, n, ttl}
";

/// Sliding window from two buckets kept as fields of one hash, on Redis's clock (so that
/// gateways with skewed clocks agree): KEYS[1] hash; ARGV amount, limit, window ms.
/// Returns {admitted, estimated count, ms until the bucket rolls (when refused)}.
const SLIDING_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[3])
local idx = math.floor(now / w)
local cf = tostring(idx)
local pf = tostring(idx - 1)
local cur = tonumber(redis.call('HGET', KEYS[1], cf) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], pf) or '0')
local elapsed = now - idx * w
local est = math.floor(prev * (w - elapsed) / w) + cur
if est + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {0, est, w - elapsed}
end
redis.call('HINCRBY', KEYS[1], cf, ARGV[1])
if redis.call('HLEN', KEYS[1]) > 2 then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if f ~= cf and f ~= pf then redis.call('HDEL', KEYS[1], f) end
  end
end
redis.call('PEXPIRE', KEYS[1], 2 * w)
return {1, est + tonumber(ARGV[1]), 0}
";

/// KEYS[1] gauge; ARGV limit, ttl ms. Returns {admitted, count}.
const ACQUIRE_LUA: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur >= tonumber(ARGV[1]) then
  return {0, cur}
end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, n}
";

/// KEYS[1] gauge. Never below zero; removed at zero.
const RELEASE_LUA: &str = r"
local n = redis.call('DECR', KEYS[1])
if n <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
return n
";

/// KEYS[1] spend; ARGV amount, ttl ms.
const ADD_SPEND_LUA: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
";

/// A deployment's cooldown: KEYS[1] cooldown key; ARGV ms left, until (unix ms, kept as the
/// value for operators). Keeps the later end when two gateways report one; the key expires
/// when the cooldown ends. Returns 1 when it was written.
const COOLDOWN_LUA: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return 1
";

/// KEYS: cooldown keys. Returns each one's ms left (<= 0: none), on Redis's clock.
const COOLDOWNS_LUA: &str = r"
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = redis.call('PTTL', k)
end
return out
";

/// The outage warning is logged at most this often (Redis flapping stays quiet).
const WARN_EVERY: Duration = Duration::from_secs(30);

/// How to reach Redis and how to behave when it cannot be reached.
#[derive(Clone)]
pub struct RedisCountersConfig {
    /// `redis://host:port/db` (may carry a password: never logged).
    pub url: String,
    /// Prefix of every key (several deployments can share one Redis). Default `llmux:`.
    pub prefix: String,
    /// Longest one operation may take before falling back locally. Default 250 ms.
    pub op_timeout: Duration,
    /// Longest a connection attempt may take. Default 500 ms.
    pub connect_timeout: Duration,
    /// After a failure, how long to use local counters before trying Redis again. Default 1 s.
    pub retry_after: Duration,
    /// Lifetime of an in-flight count after its last acquire. Default 10 minutes.
    pub in_flight_ttl: Duration,
    /// Lifetime of a cached spend after its last change. Default 1 hour.
    pub spend_ttl: Duration,
}

impl RedisCountersConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "llmux:".to_owned(),
            op_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(500),
            retry_after: Duration::from_secs(1),
            in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
            spend_ttl: DEFAULT_SPEND_TTL,
        }
    }
}

impl fmt::Debug for RedisCountersConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCountersConfig")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_after", &self.retry_after)
            .field("in_flight_ttl", &self.in_flight_ttl)
            .field("spend_ttl", &self.spend_ttl)
            .finish()
    }
}

struct Scripts {
    fixed: Script,
    sliding: Script,
    acquire: Script,
    release: Script,
    add_spend: Script,
    cooldown: Script,
    cooldowns: Script,
}

/// Counters in Redis, shared by every gateway using the same Redis and prefix. Each
/// check-and-change is one Lua script (atomic in Redis); every key has a bounded TTL. When
/// Redis is unreachable or slow, operations fall back to in-process [`LocalCounters`] (limits
/// then hold per gateway), the outage is logged once and counted ([`RedisCounters::fallbacks`]),
/// and Redis is tried again after `retry_after`.
pub struct RedisCounters {
    client: Client,
    cfg: RedisCountersConfig,
    conn: Mutex<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
    last_failure: Mutex<Option<Instant>>,
    local: LocalCounters,
    fallbacks: AtomicU64,
    degraded: AtomicBool,
    scripts: Scripts,
    /// When the outage warning was last logged.
    last_warning: Mutex<Option<Instant>>,
}

impl fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounters")
            .field("config", &self.cfg)
            .field("degraded", &self.is_degraded())
            .field("fallbacks", &self.fallbacks())
            .finish_non_exhaustive()
    }
}

enum Failure {
    Redis(redis::RedisError),
    Timeout,
    NoConnection,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "{e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::NoConnection => f.write_str("not connected"),
        }
    }
}

impl RedisCounters {
    /// Counters on the Redis at `config.url`. Connects lazily (the first operation, or
    /// [`RedisCounters::ping`]); fails only on a malformed URL.
    pub fn new(config: RedisCountersConfig) -> Result<Self> {
        let client = Client::open(config.url.as_str())
            .map_err(|_| StoreError::Invalid("malformed Redis URL".into()))?;
        Ok(Self {
            client,
            local: LocalCounters::with_ttls(config.in_flight_ttl, config.spend_ttl),
            cfg: config,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            scripts: Scripts {
                fixed: Script::new(FIXED_LUA),
                sliding: Script::new(SLIDING_LUA),
                acquire: Script::new(ACQUIRE_LUA),
                release: Script::new(RELEASE_LUA),
                add_spend: Script::new(ADD_SPEND_LUA),
                cooldown: Script::new(COOLDOWN_LUA),
                cooldowns: Script::new(COOLDOWNS_LUA),
            },
            last_warning: Mutex::new(None),
        })
    }

    /// Whether Redis answers now (connecting if needed). Does not fall back.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection(true).await else {
            return false;
        };
        let r: Result<Result<String, _>, _> = tokio::time::timeout(
            self.cfg.op_timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await;
        match r {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                self.failed(Failure::Redis(e));
                false
            }
            Err(_) => {
                self.failed(Failure::Timeout);
                false
            }
        }
    }

    /// Whether the last operation fell back to local counters.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Operations served by the local fallback so far.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Put this process's view in the metrics: `llmux_redis_up` (1 while Redis answers, 0
    /// while operations fall back) and `llmux_redis_fallbacks_total` (operations served
    /// locally so far). The gateway calls it from its background poll.
    pub fn record_metrics(&self) {
        metrics::gauge!("llmux_redis_up").set(if self.is_degraded() { 0.0 } else { 1.0 });
        metrics::counter!("llmux_redis_fallbacks_total").absolute(self.fallbacks());
    }

    /// Share a deployment's cooldown: `deployment_id` cools down for `left` (until
    /// `until_unix_ms`). The key (`<prefix>cooldown:<id>`) expires when the cooldown ends;
    /// a longer cooldown already there is kept. Returns whether Redis took it (otherwise
    /// the cooldown stays local, and the fallback is counted).
    pub async fn publish_cooldown(
        &self,
        deployment_id: &str,
        left: Duration,
        until_unix_ms: u64,
    ) -> bool {
        let rkey = self.key("cooldown", deployment_id);
        let r = self
            .run::<i64>(
                &self.scripts.cooldown,
                &rkey,
                &[ms(left), clamp(until_unix_ms)],
            )
            .await;
        if r.is_err() {
            self.fell_back();
        }
        r.is_ok()
    }

    /// The cooldowns still running among `deployment_ids`, with the time each has left
    /// (measured by Redis, so gateways' clocks need not agree). Unreachable: none.
    pub async fn cooldowns(&self, deployment_ids: &[String]) -> Vec<(String, Duration)> {
        if deployment_ids.is_empty() {
            return Vec::new();
        }
        let Some(mut conn) = self.connection(false).await else {
            self.fell_back();
            return Vec::new();
        };
        let mut inv = self.scripts.cooldowns.prepare_invoke();
        for id in deployment_ids {
            inv.key(self.key("cooldown", id));
        }
        let left: Vec<i64> =
            match tokio::time::timeout(self.cfg.op_timeout, inv.invoke_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    self.failed(Failure::Redis(e));
                    self.fell_back();
                    return Vec::new();
                }
                Err(_) => {
                    self.failed(Failure::Timeout);
                    self.fell_back();
                    return Vec::new();
                }
            };
        deployment_ids
            .iter()
            .zip(left)
            .filter(|(_, l)| *l > 0)
            .map(|(id, l)| (id.clone(), Duration::from_millis(non_negative(l))))
            .collect()
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.cfg.prefix)
    }

    /// The shared connection; connects when there is none, unless a recent failure says to
    /// stay local for now (`force` ignores that).
    async fn connection(&self, force: bool) -> Option<MultiplexedConnection> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(c);
        }
        let recently_failed = || {
            self.last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|t| t.elapsed() < self.cfg.retry_after)
        };
        if !force && recently_failed() {
            return None;
        }
        let _guard = self.connecting.lock().await;
        // Someone else may have connected, or failed, while we waited.
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Some(c);
        }
        if !force && recently_failed() {
            return None;
        }
        let cc = AsyncConnectionConfig::new()
            .set_connection_timeout(self.cfg.connect_timeout)
            .set_response_timeout(self.cfg.op_timeout);
        let attempt = tokio::time::timeout(
            self.cfg.connect_timeout + self.cfg.op_timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&cc),
        )
        .await;
        match attempt {
            Ok(Ok(c)) => {
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis counters: Redis reachable again; shared limits restored");
                }
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed(Failure::Redis(e));
                None
            }
            Err(_) => {
                self.failed(Failure::Timeout);
                None
            }
        }
    }

    fn failed(&self, why: Failure) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if !self.degraded.swap(true, Ordering::Relaxed) {
            let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                *last = Some(Instant::now());
                // The error names the failure (refused, timed out), never the URL.
                tracing::warn!(error = %why, "redis counters: Redis unreachable; falling back to per-process counters and cooldowns");
            } else {
                tracing::debug!(error = %why, "redis counters: Redis unreachable again");
            }
        }
    }

    fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.degraded.store(true, Ordering::Relaxed);
    }

    /// Run `script` with one key and `args`; `Err` means "use the local fallback".
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[u64],
    ) -> Result<T, Failure> {
        let Some(mut conn) = self.connection(false).await else {
            return Err(Failure::NoConnection);
        };
        let mut inv = script.key(key);
        for a in args {
            inv.arg(*a);
        }
        match tokio::time::timeout(self.cfg.op_timeout, inv.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let f = Failure::Redis(e);
                tracing::debug!(error = %f, "redis counters: operation failed");
                self.failed(f);
                Err(Failure::NoConnection)
            }
            Err(_) => {
                self.failed(Failure::Timeout);
                Err(Failure::Timeout)
            }
        }
    }

    async fn run_cmd<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, Failure> {
        let Some(mut conn) = self.connection(false).await else {
            return Err(Failure::NoConnection);
        };
        match tokio::time::timeout(self.cfg.op_timeout, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                self.failed(Failure::Redis(e));
                Err(Failure::NoConnection)
            }
            Err(_) => {
                self.failed(Failure::Timeout);
                Err(Failure::Timeout)
            }
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4).max(1)
}

/// Redis integers are signed 64-bit: keep amounts and limits in range.
fn clamp(v: u64) -> u64 {
    v.min(i64::MAX as u64)
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl Counters for RedisCounters {
    async fn hit(&self, key: &str, window: Window, amount: u64, limit: u64) -> RateDecision {
        let w = window.length_ms();
        let (script, kind) = match window.kind {
            WindowKind::Fixed => (&self.scripts.fixed, "rl:f"),
            WindowKind::Sliding => (&self.scripts.sliding, "rl:s"),
        };
        let rkey = self.key(kind, key);
        match self
            .run::<Vec<i64>>(script, &rkey, &[clamp(amount), clamp(limit), w])
            .await
        {
            Ok(v) if v.len() == 3 => {
                let allowed = v[0] == 1;
                RateDecision {
                    allowed,
                    current: non_negative(v[1]),
                    limit,
                    retry_after: (!allowed)
                        .then(|| Duration::from_millis(non_negative(v[2]).max(1))),
                }
            }
            _ => {
                self.fell_back();
                self.local.hit_now(key, window, amount, limit)
            }
        }
    }

    async fn acquire(&self, key: &str, limit: u64) -> Option<Permit> {
        let rkey = self.key("par", key);
        match self
            .run::<Vec<i64>>(
                &self.scripts.acquire,
                &rkey,
                &[clamp(limit), ms(self.cfg.in_flight_ttl)],
            )
            .await
        {
            Ok(v) if v.len() == 2 => (v[0] == 1).then(|| Permit {
                key: key.to_owned(),
                local: false,
            }),
            _ => {
                self.fell_back();
                self.local.acquire_now(key, limit)
            }
        }
    }

    async fn release(&self, permit: Permit) {
        if permit.local {
            self.local.release_key(&permit.key);
            return;
        }
        let rkey = self.key("par", &permit.key);
        if self
            .run::<i64>(&self.scripts.release, &rkey, &[])
            .await
            .is_err()
        {
            // The slot stays taken in Redis until the key's TTL frees it.
            self.fell_back();
        }
    }

    async fn in_flight(&self, key: &str) -> u64 {
        let rkey = self.key("par", key);
        match self.run_cmd::<Option<i64>>(redis::Cmd::get(&rkey)).await {
            Ok(v) => non_negative(v.unwrap_or(0)),
            Err(_) => {
                self.fell_back();
                self.local.in_flight_now(key)
            }
        }
    }

    async fn add_spend(&self, key: &str, amount_nano: i64) -> i64 {
        let rkey = self.key("spend", key);
        let ttl = ms(self.cfg.spend_ttl);
        let mut inv = self.scripts.add_spend.key(&rkey);
        inv.arg(amount_nano).arg(ttl);
        let r = match self.connection(false).await {
            Some(mut conn) => {
                match tokio::time::timeout(self.cfg.op_timeout, inv.invoke_async::<i64>(&mut conn))
                    .await
                {
                    Ok(Ok(v)) => Some(v),
                    Ok(Err(e)) => {
                        self.failed(Failure::Redis(e));
                        None
                    }
                    Err(_) => {
                        self.failed(Failure::Timeout);
                        None
                    }
                }
            }
            None => None,
        };
        match r {
            Some(v) => v,
            None => {
                self.fell_back();
                self.local.add_spend_now(key, amount_nano)
            }
        }
    }

    async fn cached_spend(&self, key: &str) -> Option<i64> {
        let rkey = self.key("spend", key);
        match self.run_cmd::<Option<i64>>(redis::Cmd::get(&rkey)).await {
            Ok(v) => v,
            Err(_) => {
                self.fell_back();
                self.local.cached_spend_now(key)
            }
        }
    }

    async fn set_spend(&self, key: &str, spend_nano: i64) {
        let rkey = self.key("spend", key);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&rkey)
            .arg(spend_nano)
            .arg("PX")
            .arg(ms(self.cfg.spend_ttl));
        if self.run_cmd::<()>(cmd).await.is_err() {
            self.fell_back();
        }
        // Keep the fallback seeded too, so an outage starts from a recent value.
        self.local.set_spend_now(key, spend_nano);
    }
}
