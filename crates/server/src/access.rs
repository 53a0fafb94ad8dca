//! The access phase, between authentication and routing: who is calling (the master key or
//! a virtual key from the store), and whether this call may go ahead — key active, model
//! allowed, key/team/user budgets, rpm/tpm/max-parallel per key and per team.
//!
//! Keys are looked up through an in-memory cache (short TTL, cleared by the admin API on any
//! change), so a call costs no database round trip. Limits go through [`Counters`]
//! (in-process or Redis); budgets compare a cached spend (seeded from the store, then
//! incremented per call) with the records' budgets. The call whose spend crosses a soft
//! budget raises one [`BudgetAlert`] through the [`Meter`] ([`Access::set_meter`]), which
//! hands it to every sink off the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use llmux_core::{BudgetAlert, BudgetScope, Error, ErrorKind};
use llmux_cost::Meter;
use llmux_store::{Budget, Counters, KeyRecord, Limits, Permit, Store, Team, User, Window};

/// Default time a looked-up key stays cached.
pub(crate) const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Cached keys (and unknown keys) kept at most; the cache is cleared when it is full.
const CACHE_CAP: usize = 10_000;

/// A virtual key with its team and user, as read from the store.
#[derive(Debug)]
pub(crate) struct KeyEntry {
    pub(crate) key: KeyRecord,
    pub(crate) team: Option<Team>,
    pub(crate) user: Option<User>,
}

impl KeyEntry {
    /// Whether the key carries `metadata.role == "admin"`.
    pub(crate) fn is_admin(&self) -> bool {
        self.key
            .metadata
            .get("role")
            .and_then(serde_json::Value::as_str)
            == Some("admin")
    }

    /// The model group the key's `aliases` map `requested` to, if any.
    pub(crate) fn alias_target(&self, requested: &str) -> Option<&str> {
        self.key.model_aliases.get(requested).map(String::as_str)
    }

    /// Whether this key may call `requested`, which routes to `target` (the group an alias
    /// names, else `requested` itself). As LiteLLM does, the name asked for and the name it
    /// stands for are both tried, for the key and for its team: either allowed is enough.
    pub(crate) fn may_call(&self, requested: &str, target: &str) -> bool {
        let in_list =
            |models: &[String], m: &str| models.is_empty() || models.iter().any(|x| x == m);
        let key_ok = self.key.allows_model(requested) || self.key.allows_model(target);
        let team_ok = self.team.as_ref().is_none_or(|t| {
            in_list(&t.limits.models, requested) || in_list(&t.limits.models, target)
        });
        key_ok && team_ok
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    /// No master key is configured: every caller is let in (today's behaviour).
    Open,
    /// The master key.
    Master,
    /// A virtual key.
    Key(Arc<KeyEntry>),
}

/// The store, the counters and the key cache; one per gateway, kept across reloads.
pub(crate) struct Access {
    pub(crate) store: Store,
    pub(crate) counters: Arc<dyn Counters>,
    ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// Where soft-budget alerts go; unset, a crossing is only logged.
    meter: OnceLock<Meter>,
}

/// When a key was looked up, and what was found (`None`: no such key).
type Cached = (Instant, Option<Arc<KeyEntry>>);

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("store", &self.store)
            .field("counters", &self.counters)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Access {
    pub(crate) fn new(store: Store, counters: Arc<dyn Counters>, ttl: Duration) -> Self {
        Self {
            store,
            counters,
            ttl,
            cache: Mutex::new(HashMap::new()),
            meter: OnceLock::new(),
        }
    }

    /// Send soft-budget alerts to `meter`'s sinks from now on (the meter is started after
    /// the access layer, so it arrives here). Only the first call takes effect.
    pub(crate) fn set_meter(&self, meter: Meter) {
        let _ = self.meter.set(meter);
    }

    /// Forget every cached key (after any admin change).
    pub(crate) fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The virtual key `clear` names (cached), or `None` when there is none.
    pub(crate) async fn lookup(&self, clear: &str) -> Result<Option<Arc<KeyEntry>>, Error> {
        let hash = llmux_store::hash_key(clear);
        if let Some((at, entry)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(entry.clone());
        }
        let entry = self.load(&hash).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(hash, (Instant::now(), entry.clone()));
        Ok(entry)
    }

    async fn load(&self, hash: &str) -> Result<Option<Arc<KeyEntry>>, Error> {
        let unavailable = |e: llmux_store::StoreError| {
            tracing::error!(error = %e, "key lookup failed");
            Error::new(
                ErrorKind::UpstreamUnavailable,
                "The key store is unavailable; try again shortly.",
            )
            .with_code("store_unavailable")
        };
        let Some(key) = self
            .store
            .lookup_key_hash(hash)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let team = match &key.team_id {
            Some(t) => self.store.get_team(t).await.map_err(unavailable)?,
            None => None,
        };
        let user = match &key.user_id {
            Some(u) => self.store.get_user(u).await.map_err(unavailable)?,
            None => None,
        };
        Ok(Some(Arc::new(KeyEntry { key, team, user })))
    }

    /// Admit one call of `entry` to `model` (the name the client sent), which routes to
    /// `target` (what an alias makes of it; else `model`): every check, then the counters.
    /// The returned ticket holds the in-flight slots and settles tokens and spend when the
    /// call ends.
    pub(crate) async fn admit(
        &self,
        entry: &KeyEntry,
        model: &str,
        target: &str,
    ) -> Result<Ticket, Error> {
        let now = llmux_store::now_ms();
        let k = &entry.key;
        if !k.is_active_at(now) {
            let why = if k.blocked {
                "This API key is blocked."
            } else {
                "This API key has expired."
            };
            return Err(Error::new(ErrorKind::Auth, why).with_code("invalid_api_key"));
        }
        if entry.team.as_ref().is_some_and(|t| t.blocked) {
            return Err(
                Error::new(ErrorKind::Auth, "This API key's team is blocked.")
                    .with_code("team_blocked"),
            );
        }
        if entry.user.as_ref().is_some_and(|u| u.blocked) {
            return Err(
                Error::new(ErrorKind::Auth, "This API key's user is blocked.")
                    .with_code("user_blocked"),
            );
        }
        if !entry.may_call(model, target) {
            return Err(Error::new(
                ErrorKind::Permission,
                format!("This API key is not allowed to call model '{model}'."),
            )
            .with_param("model")
            .with_code("model_not_allowed"));
        }
        // Budgets: key, team, user.
        let mut budgets = Vec::new();
        budgets.push((BudgetScope::Key, k.key_id.as_str(), &k.budget));
        if let Some(t) = &entry.team {
            budgets.push((BudgetScope::Team, t.team_id.as_str(), &t.budget));
        }
        if let Some(u) = &entry.user {
            budgets.push((BudgetScope::User, u.user_id.as_str(), &u.budget));
        }
        let mut spend_keys = Vec::new();
        for (scope, id, b) in budgets {
            if b.max_budget_nano.is_none() && b.soft_budget_nano.is_none() {
                continue;
            }
            let what = scope.as_str();
            let ck = spend_key(what, id, b);
            let spend = if reset_due(b, now) {
                0
            } else {
                match self.counters.cached_spend(&ck).await {
                    Some(s) => s,
                    None => {
                        let s = b.spend_at(now);
                        self.counters.set_spend(&ck, s).await;
                        s
                    }
                }
            };
            if let Some(max) = b.max_budget_nano
                && spend >= max
            {
                return Err(Error::bad_request(format!(
                    "Budget exceeded for {what} '{id}': spend ${:.6} of max budget ${:.6}.",
                    spend as f64 / 1e9,
                    max as f64 / 1e9
                ))
                .with_code("budget_exceeded"));
            }
            spend_keys.push(SpendSlot {
                counter: ck,
                scope,
                id: id.to_owned(),
                soft: b.soft_budget_nano,
                max: b.max_budget_nano,
                due: reset_due(b, now),
            });
        }
        // Rate limits: key, then team.
        let mut limited: Vec<(String, &Limits)> = vec![(format!("key:{}", k.key_id), &k.limits)];
        if let Some(t) = &entry.team {
            limited.push((format!("team:{}", t.team_id), &t.limits));
        }
        let mut ticket = Ticket {
            counters: self.counters.clone(),
            permits: Vec::new(),
            tpm_keys: Vec::new(),
            spend: spend_keys,
            alerts: self.meter.get().cloned(),
            tokens: AtomicU64::new(0),
            cost: AtomicI64::new(0),
        };
        for (who, l) in limited {
            if let Some(limit) = l.rpm_limit {
                let d = self
                    .counters
                    .hit(&format!("rpm:{who}"), Window::minute(), 1, limit)
                    .await;
                if !d.allowed {
                    return Err(rate_limited(
                        format!("Rate limit exceeded for {who}: {limit} requests per minute."),
                        "rate_limit_exceeded",
                        d.retry_after.unwrap_or(Duration::from_secs(1)),
                    ));
                }
            }
            if let Some(limit) = l.tpm_limit {
                let tk = format!("tpm:{who}");
                let used = self.counters.peek(&tk, Window::minute()).await;
                if used >= limit {
                    return Err(rate_limited(
                        format!("Rate limit exceeded for {who}: {limit} tokens per minute."),
                        "rate_limit_exceeded",
                        Duration::from_secs(1),
                    ));
                }
                ticket.tpm_keys.push(tk);
            }
            if let Some(limit) = l.max_parallel {
                match self.counters.acquire(&format!("par:{who}"), limit).await {
                    Some(p) => ticket.permits.push(p),
                    None => {
                        return Err(rate_limited(
                            format!("Too many requests in flight for {who}: at most {limit}."),
                            "max_parallel_requests",
                            Duration::from_secs(1),
                        ));
                    }
                }
            }
        }
        Ok(ticket)
    }
}

fn rate_limited(msg: String, code: &'static str, after: Duration) -> Error {
    Error::new(ErrorKind::RateLimited, msg)
        .with_code(code)
        .with_retry_after(after.max(Duration::from_secs(1)))
}

/// Whether the budget's reset instant has passed (spend reads zero until the store resets).
fn reset_due(b: &Budget, now: i64) -> bool {
    b.budget_reset_at_ms.is_some_and(|at| at <= now)
}

/// The spend-cache entry of one budget period: a reset moves to a fresh entry.
fn spend_key(what: &str, id: &str, b: &Budget) -> String {
    format!("{what}:{id}:{}", b.budget_reset_at_ms.unwrap_or(0))
}

#[derive(Debug)]
struct SpendSlot {
    counter: String,
    scope: BudgetScope,
    id: String,
    soft: Option<i64>,
    max: Option<i64>,
    /// The period is over: nothing to add to the old entry.
    due: bool,
}

/// One admitted call: its in-flight slots, and the token and spend counters it feeds when
/// it ends. Settled explicitly ([`Ticket::settle`]) or, if dropped, in a spawned task.
pub(crate) struct Ticket {
    counters: Arc<dyn Counters>,
    permits: Vec<Permit>,
    tpm_keys: Vec<String>,
    spend: Vec<SpendSlot>,
    /// Where a soft-budget crossing is announced.
    alerts: Option<Meter>,
    tokens: AtomicU64,
    cost: AtomicI64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("permits", &self.permits.len())
            .field("tpm_keys", &self.tpm_keys)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// What the call used, as metered.
    pub(crate) fn record(&self, tokens: u64, cost_nano: Option<i64>) {
        self.tokens.store(tokens, Ordering::Relaxed);
        self.cost.store(cost_nano.unwrap_or(0), Ordering::Relaxed);
    }

    /// Count the tokens and spend, and free the in-flight slots.
    pub(crate) async fn settle(mut self) {
        let counters = self.counters.clone();
        let permits = std::mem::take(&mut self.permits);
        let tpm = std::mem::take(&mut self.tpm_keys);
        let spend = std::mem::take(&mut self.spend);
        let tokens = self.tokens.load(Ordering::Relaxed);
        let cost = self.cost.load(Ordering::Relaxed);
        let alerts = self.alerts.take();
        settle(counters, permits, tpm, spend, alerts, tokens, cost).await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.permits.is_empty() && self.tpm_keys.is_empty() && self.spend.is_empty() {
            return;
        }
        let counters = self.counters.clone();
        let permits = std::mem::take(&mut self.permits);
        let tpm = std::mem::take(&mut self.tpm_keys);
        let spend = std::mem::take(&mut self.spend);
        let tokens = self.tokens.load(Ordering::Relaxed);
        let cost = self.cost.load(Ordering::Relaxed);
        let alerts = self.alerts.take();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(settle(counters, permits, tpm, spend, alerts, tokens, cost));
        }
    }
}

async fn settle(
    counters: Arc<dyn Counters>,
    permits: Vec<Permit>,
    tpm: Vec<String>,
    spend: Vec<SpendSlot>,
    alerts: Option<Meter>,
    tokens: u64,
    cost: i64,
) {
    for p in permits {
        counters.release(p).await;
    }
    if tokens > 0 {
        for k in &tpm {
            counters.add(k, Window::minute(), tokens).await;
        }
    }
    if cost > 0 {
        for s in spend.iter().filter(|s| !s.due) {
            let now = counters.add_spend(&s.counter, cost).await;
            // The counter adds atomically, so exactly one call sees the crossing.
            if let Some(soft) = s.soft
                && now >= soft
                && now - cost < soft
            {
                tracing::warn!(
                    scope = s.scope.as_str(),
                    id = %s.id,
                    spend_usd = now as f64 / 1e9,
                    soft_budget_usd = soft as f64 / 1e9,
                    "soft budget crossed"
                );
                if let Some(meter) = &alerts {
                    meter.alert(BudgetAlert {
                        scope: s.scope,
                        id: s.id.clone(),
                        spend_nano: now,
                        soft_budget_nano: soft,
                        max_budget_nano: s.max,
                        at_ms: u64::try_from(llmux_store::now_ms()).unwrap_or(0),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use llmux_core::{CallRecord, CallSink};
    use llmux_cost::MeterWorkers;
    use llmux_store::{BudgetSettings, LocalCounters, NewKey, NewTeam};

    use super::*;

    /// Keeps every alert it is handed.
    #[derive(Debug, Default)]
    struct Alerts(Mutex<Vec<Arc<BudgetAlert>>>);

    #[async_trait]
    impl CallSink for Alerts {
        fn name(&self) -> &str {
            "alerts"
        }
        async fn record(&self, _record: Arc<CallRecord>) {}
        async fn alert(&self, alert: Arc<BudgetAlert>) {
            self.0.lock().unwrap().push(alert);
        }
    }

    /// An access layer over an in-memory store whose one key (in team `team-a`) has a soft
    /// budget of 1,000 nano-USD and a hard one of 1,000,000; the team's soft budget is
    /// 2,500. Returns the clear key too.
    async fn setup() -> (Access, String, Meter, MeterWorkers, Arc<Alerts>) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store
            .create_team(NewTeam {
                team_id: Some("team-a".into()),
                budget: BudgetSettings {
                    soft_budget_nano: Some(2_500),
                    ..BudgetSettings::default()
                },
                ..NewTeam::default()
            })
            .await
            .unwrap();
        let key = store
            .create_key(NewKey {
                team_id: Some("team-a".into()),
                budget: BudgetSettings {
                    soft_budget_nano: Some(1_000),
                    max_budget_nano: Some(1_000_000),
                    ..BudgetSettings::default()
                },
                ..NewKey::default()
            })
            .await
            .unwrap();
        let access = Access::new(store, Arc::new(LocalCounters::new()), DEFAULT_KEY_CACHE_TTL);
        let sink = Arc::new(Alerts::default());
        let (meter, workers) = Meter::start(vec![sink.clone()], 64);
        access.set_meter(meter.clone());
        (access, key.key.expose().to_owned(), meter, workers, sink)
    }

    /// Admit one call of `clear` and settle it at `cost` nano-USD.
    async fn call(access: &Access, clear: &str, cost: i64) {
        let entry = access.lookup(clear).await.unwrap().unwrap();
        let ticket = access.admit(&entry, "gpt-4o", "gpt-4o").await.unwrap();
        ticket.record(10, Some(cost));
        ticket.settle().await;
    }

    /// Every alert delivered, once every handle to the meter is gone.
    async fn delivered(
        access: Access,
        meter: Meter,
        workers: MeterWorkers,
        sink: &Alerts,
    ) -> Vec<BudgetAlert> {
        drop(access);
        drop(meter);
        workers.drain().await;
        sink.0
            .lock()
            .unwrap()
            .iter()
            .map(|a| (**a).clone())
            .collect()
    }

    #[tokio::test]
    async fn the_call_crossing_a_soft_budget_raises_one_alert_and_later_calls_none() {
        let (access, clear, meter, workers, sink) = setup().await;
        let key_id = access
            .lookup(&clear)
            .await
            .unwrap()
            .unwrap()
            .key
            .key_id
            .clone();
        call(&access, &clear, 600).await;
        assert_eq!(meter.alerts(), 0, "600 of 1,000: not crossed yet");
        call(&access, &clear, 600).await;
        assert_eq!(meter.alerts(), 1, "1,200 crosses the key's 1,000");
        call(&access, &clear, 600).await;
        assert_eq!(meter.alerts(), 1, "1,800: already beyond, no second alert");
        call(&access, &clear, 600).await;
        assert_eq!(meter.alerts(), 1, "2,400: still under the team's 2,500");
        call(&access, &clear, 600).await;
        assert_eq!(meter.alerts(), 2, "3,000 crosses the team's 2,500");
        let got = delivered(access, meter, workers, &sink).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].scope, BudgetScope::Key);
        assert_eq!(got[0].id, key_id);
        assert_eq!(got[0].spend_nano, 1_200);
        assert_eq!(got[0].soft_budget_nano, 1_000);
        assert_eq!(got[0].max_budget_nano, Some(1_000_000));
        assert!(got[0].at_ms > 0);
        assert_eq!(got[1].scope, BudgetScope::Team);
        assert_eq!(got[1].id, "team-a");
        assert_eq!(got[1].spend_nano, 3_000);
        assert_eq!(got[1].max_budget_nano, None);
    }

    #[tokio::test]
    async fn calls_that_stay_under_the_soft_budget_raise_none() {
        let (access, clear, meter, workers, sink) = setup().await;
        for _ in 0..3 {
            call(&access, &clear, 300).await;
        }
        assert_eq!(meter.alerts(), 0);
        assert!(delivered(access, meter, workers, &sink).await.is_empty());
    }

    #[tokio::test]
    async fn an_aliased_model_is_allowed_when_either_name_is() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let limits = |models: &[&str]| Limits {
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..Limits::default()
        };
        store
            .create_team(NewTeam {
                team_id: Some("t".into()),
                limits: limits(&["gpt", "mine"]),
                ..NewTeam::default()
            })
            .await
            .unwrap();
        let aliases = [("mine", "gpt"), ("fast", "emb"), ("team-only", "gpt")]
            .into_iter()
            .map(|(a, g)| (a.to_owned(), g.to_owned()))
            .collect();
        let key = store
            .create_key(NewKey {
                team_id: Some("t".into()),
                limits: limits(&["mine", "emb"]),
                model_aliases: aliases,
                ..NewKey::default()
            })
            .await
            .unwrap();
        let access = Access::new(store, Arc::new(LocalCounters::new()), DEFAULT_KEY_CACHE_TTL);
        let entry = access.lookup(key.key.expose()).await.unwrap().unwrap();
        assert_eq!(entry.alias_target("mine"), Some("gpt"));
        assert_eq!(entry.alias_target("gpt"), None);
        // The key lists the alias, the team the group: both pass.
        assert!(entry.may_call("mine", "gpt"));
        access
            .admit(&entry, "mine", "gpt")
            .await
            .unwrap()
            .settle()
            .await;
        // The key allows `emb`, but the team allows neither `fast` nor `emb`.
        assert!(!entry.may_call("fast", "emb"));
        let e = access.admit(&entry, "fast", "emb").await.unwrap_err();
        assert_eq!(e.code(), Some("model_not_allowed"));
        // The team allows the group, the key neither name.
        assert!(!entry.may_call("team-only", "gpt"));
        // Without an alias, the group's own name must be allowed by both.
        assert!(!entry.may_call("gpt", "gpt"));
    }

    #[tokio::test]
    async fn a_dropped_ticket_still_raises_the_alert() {
        let (access, clear, meter, workers, sink) = setup().await;
        let entry = access.lookup(&clear).await.unwrap().unwrap();
        let ticket = access.admit(&entry, "gpt-4o", "gpt-4o").await.unwrap();
        ticket.record(10, Some(5_000));
        drop(ticket);
        for _ in 0..200 {
            if meter.alerts() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = delivered(access, meter, workers, &sink).await;
        let scopes: Vec<BudgetScope> = got.iter().map(|a| a.scope).collect();
        assert_eq!(scopes, [BudgetScope::Key, BudgetScope::Team]);
    }
}
