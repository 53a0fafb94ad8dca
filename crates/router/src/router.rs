//! The [`Router`]: name resolution, the retry loop within a group, and fallbacks across
//! groups. Streams share the loop up to their first chunk (see `stream.rs` for the rest).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use llmux_core::provider::{PassthroughKind, PassthroughRequest, PassthroughResponse};
use llmux_core::{
    CallContext, ChatChunk, ChatRequest, ChatResponse, ChatStream, EmbeddingRequest,
    EmbeddingResponse, Error, ErrorKind, RerankRequest, RerankResponse,
};
use tokio::time::Instant;

use crate::config::{self, ConfigError, RouterConfig};
use crate::passthrough::PassthroughOp;
use crate::select::{Want, select};
use crate::shared::{CooldownBoard, SharedCooldown};
use crate::state::{DeploymentState, InFlight, Rng, Verdict};
use crate::stream::Relay;
use crate::trace::{
    AttemptError, FallbackHop, FallbackKind, Phase, RouteFailure, Routed, Trace, TraceHandle,
};
use crate::{Deployment, FallbackMap, RouterSettings, Wildcard};

/// Names built from wildcard routes are remembered up to this many; past it a name's
/// deployment is built per call, so clients cannot grow memory by inventing names.
const WILDCARD_CACHE_LIMIT: usize = 4096;

/// A model group with the live state of its deployments.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) states: Vec<Arc<DeploymentState>>,
}

impl Group {
    fn new(name: String, deployments: Vec<Deployment>, epoch: Instant) -> Self {
        let states = deployments
            .iter()
            .map(|_| Arc::new(DeploymentState::new(epoch)))
            .collect();
        Self {
            name,
            deployments,
            states,
        }
    }
}

/// Routes calls for model names to deployments: picks one by strategy, retries on
/// another, cools failing ones down, falls back to other groups, and keeps streams going.
///
/// Cheap to clone (one `Arc`); clones share all state.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: RouterSettings,
    groups: HashMap<String, Arc<Group>>,
    names: Vec<String>,
    aliases: BTreeMap<String, String>,
    /// Most specific first; `*` last.
    wildcards: Vec<Wildcard>,
    built: RwLock<HashMap<String, Arc<Group>>>,
    /// `fallbacks`, `context_window_fallbacks`, `content_policy_fallbacks`, aliases resolved.
    fallbacks: [FallbackMap; 3],
    rng: Rng,
    epoch: Instant,
    /// Where cooldowns are shared with other gateways (`None`: this process only).
    board: OnceLock<Arc<dyn CooldownBoard>>,
}

/// A successful attempt: the value and the deployment that produced it.
pub(crate) struct Answer<T> {
    pub(crate) value: T,
    pub(crate) group: Arc<Group>,
    pub(crate) idx: usize,
    pub(crate) guard: InFlight,
}

/// One kind of provider call, so chat, embeddings, rerank and stream starts share the
/// loop (resolution, retries, cooldowns, fallbacks). A new kind of call is a new `Op`.
pub(crate) trait Op: Send + Sync {
    /// What a successful call yields.
    type Out: Send;
    /// Whether this is a stream start (timeouts and latency use time to first chunk).
    const STREAM: bool;
    /// The model (group) the request names.
    fn model(&self) -> &str;
    /// Point the request at `group`.
    fn set_model(&mut self, group: &str);
    /// Call `d`.
    fn call<'a>(
        &'a self,
        d: &'a Deployment,
        cx: &'a CallContext,
    ) -> impl Future<Output = Result<Self::Out, Error>> + Send + 'a;
    /// Tokens the answer used (for tpm); 0 when not known yet.
    fn tokens(out: &Self::Out) -> u64;
}

struct ChatOp(ChatRequest);

impl Op for ChatOp {
    type Out = ChatResponse;
    const STREAM: bool = false;
    fn model(&self) -> &str {
        &self.0.model
    }
    fn set_model(&mut self, group: &str) {
        group.clone_into(&mut self.0.model);
    }
    fn call<'a>(
        &'a self,
        d: &'a Deployment,
        cx: &'a CallContext,
    ) -> impl Future<Output = Result<ChatResponse, Error>> + Send + 'a {
        d.provider.chat(self.0.clone(), cx)
    }
    fn tokens(out: &ChatResponse) -> u64 {
        out.usage.as_ref().map_or(0, |u| u.total_tokens)
    }
}

struct EmbedOp(EmbeddingRequest);

impl Op for EmbedOp {
    type Out = EmbeddingResponse;
    const STREAM: bool = false;
    fn model(&self) -> &str {
        &self.0.model
    }
    fn set_model(&mut self, group: &str) {
        group.clone_into(&mut self.0.model);
    }
    fn call<'a>(
        &'a self,
        d: &'a Deployment,
        cx: &'a CallContext,
    ) -> impl Future<Output = Result<EmbeddingResponse, Error>> + Send + 'a {
        d.provider.embed(self.0.clone(), cx)
    }
    fn tokens(out: &EmbeddingResponse) -> u64 {
        out.usage.total_tokens
    }
}

struct RerankOp(RerankRequest);

impl Op for RerankOp {
    type Out = RerankResponse;
    const STREAM: bool = false;
    fn model(&self) -> &str {
        &self.0.model
    }
    fn set_model(&mut self, group: &str) {
        group.clone_into(&mut self.0.model);
    }
    fn call<'a>(
        &'a self,
        d: &'a Deployment,
        cx: &'a CallContext,
    ) -> impl Future<Output = Result<RerankResponse, Error>> + Send + 'a {
        d.provider.rerank(self.0.clone(), cx)
    }
    fn tokens(out: &RerankResponse) -> u64 {
        out.reported_tokens().unwrap_or(0)
    }
}

/// Starts a stream and waits for its first chunk.
pub(crate) struct StreamOp(pub(crate) ChatRequest);

impl Op for StreamOp {
    type Out = (ChatChunk, ChatStream);
    const STREAM: bool = true;
    fn model(&self) -> &str {
        &self.0.model
    }
    fn set_model(&mut self, group: &str) {
        group.clone_into(&mut self.0.model);
    }
    async fn call(
        &self,
        d: &Deployment,
        cx: &CallContext,
    ) -> Result<(ChatChunk, ChatStream), Error> {
        let mut stream = d.provider.chat_stream(self.0.clone(), cx).await?;
        match stream.next().await {
            Some(Ok(first)) => Ok((first, stream)),
            Some(Err(e)) => Err(e),
            None => Err(Error::new(
                ErrorKind::UpstreamError,
                "The upstream ended the stream before its first chunk.",
            )
            .with_provider(d.provider.name())),
        }
    }
    fn tokens(_: &(ChatChunk, ChatStream)) -> u64 {
        0
    }
}

impl Router {
    /// Build a router, checking the config: unknown groups in fallbacks and fallback loops
    /// are errors that name the groups, as are duplicate names and ids.
    pub fn new(config: RouterConfig) -> Result<Self, ConfigError> {
        let mut wildcards = config.wildcards.clone();
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.prefix().len()));
        let known = |name: &str| {
            config.groups.iter().any(|g| g.name == name)
                || config.aliases.contains_key(name)
                || wildcards.iter().any(|w| w.matches(name))
        };
        let fallbacks = config::check(&config, known)?;
        let epoch = Instant::now();
        let RouterConfig {
            groups,
            aliases,
            settings,
            ..
        } = config;
        let names = groups.iter().map(|g| g.name.clone()).collect();
        let groups = groups
            .into_iter()
            .map(|g| {
                let group = Group::new(g.name.clone(), g.deployments, epoch);
                (g.name, Arc::new(group))
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                rng: Rng::new(settings.seed),
                settings,
                groups,
                names,
                aliases,
                wildcards,
                built: RwLock::new(HashMap::new()),
                fallbacks,
                epoch,
                board: OnceLock::new(),
            }),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &RouterSettings {
        &self.inner.settings
    }

    /// The model group names, in configuration order.
    pub fn model_groups(&self) -> impl Iterator<Item = &str> {
        self.inner.names.iter().map(String::as_str)
    }

    /// Aliases and the names they stand for.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .aliases
            .iter()
            .map(|(a, g)| (a.as_str(), g.as_str()))
    }

    /// The wildcard patterns (`openai/*`, `*`), most specific first.
    pub fn wildcard_patterns(&self) -> impl Iterator<Item = &str> {
        self.inner.wildcards.iter().map(|w| w.pattern.as_str())
    }

    /// The deployments of a configured group (or of the group an alias names).
    pub fn deployments(&self, group: &str) -> Option<&[Deployment]> {
        let name = self.inner.aliases.get(group).map_or(group, String::as_str);
        self.inner
            .groups
            .get(name)
            .map(|g| g.deployments.as_slice())
    }

    /// Whether `model` would be routed (a group, an alias, or a wildcard match).
    pub fn serves(&self, model: &str) -> bool {
        let name = self.inner.aliases.get(model).map_or(model, String::as_str);
        self.inner.groups.contains_key(name) || self.inner.wildcards.iter().any(|w| w.matches(name))
    }

    /// Publish every cooldown this router starts to `board` (fire-and-forget), so other
    /// gateways can honour it. Only the first board given takes effect.
    pub fn share_cooldowns(&self, board: Arc<dyn CooldownBoard>) {
        let _ = self.inner.board.set(board);
    }

    /// The ids of every configured deployment (what to ask a [`CooldownBoard`] about).
    pub fn deployment_ids(&self) -> Vec<String> {
        let groups = self.inner.names.iter().map(|n| &self.inner.groups[n]);
        groups
            .flat_map(|g| g.deployments.iter().map(|d| d.id.clone()))
            .collect()
    }

    /// Merge cooldowns other gateways reported (from [`CooldownBoard::active`]): a
    /// configured deployment cools down at least until then; nothing is published back.
    /// Returns how many local cooldowns grew.
    pub fn apply_shared_cooldowns(&self, cooldowns: &[SharedCooldown]) -> usize {
        let (now, now_ms) = (Instant::now(), crate::shared::unix_ms_now());
        let mut grew = 0;
        for c in cooldowns {
            let Some(until) = crate::shared::from_unix_ms(c.until_unix_ms, now, now_ms) else {
                continue;
            };
            for g in self.inner.groups.values() {
                for (d, st) in g.deployments.iter().zip(&g.states) {
                    if d.id == c.deployment_id && st.cool_until(until) {
                        tracing::debug!(deployment = %d.id, "cooldown reported by another gateway");
                        grew += 1;
                    }
                }
            }
        }
        grew
    }

    /// The live state of every configured deployment (wildcard-built ones excluded).
    pub fn health(&self) -> Vec<DeploymentHealth> {
        let now = Instant::now();
        let mut out = Vec::new();
        for name in &self.inner.names {
            let g = &self.inner.groups[name];
            for (d, st) in g.deployments.iter().zip(&g.states) {
                let snap = st.snapshot(now);
                out.push(DeploymentHealth {
                    model_group: g.name.clone(),
                    deployment_id: d.id.clone(),
                    provider: d.provider.name(),
                    provider_model: d.provider.model().to_owned(),
                    cooldown_remaining: snap.cooldown_until.map(|u| u - now),
                    in_flight: snap.in_flight,
                    requests_last_minute: snap.totals.requests,
                    tokens_last_minute: snap.totals.tokens,
                    latency: snap.latency.map(Duration::from_secs_f64),
                    time_to_first_chunk: snap.ttft.map(Duration::from_secs_f64),
                });
            }
        }
        out
    }

    /// A chat completion, routed.
    pub async fn chat(
        &self,
        mut req: ChatRequest,
        cx: &CallContext,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        let want = Want::chat(&mut req);
        self.call(ChatOp(req), &want, cx).await
    }

    /// Embeddings, routed.
    pub async fn embed(
        &self,
        mut req: EmbeddingRequest,
        cx: &CallContext,
    ) -> Result<Routed<EmbeddingResponse>, RouteFailure> {
        let want = Want::embed(&mut req);
        self.call(EmbedOp(req), &want, cx).await
    }

    /// A rerank, routed (retries, cooldowns and fallbacks as for any call).
    pub async fn rerank(
        &self,
        mut req: RerankRequest,
        cx: &CallContext,
    ) -> Result<Routed<RerankResponse>, RouteFailure> {
        let want = Want::rerank(&mut req);
        self.call(RerankOp(req), &want, cx).await
    }

    /// A streamed chat completion, routed. Returns once a first chunk has arrived: until
    /// then failures are retried and fall back like any call. Afterwards a broken or
    /// stalled stream is resumed on another deployment (when `stream_resume` is on) or
    /// ends with the error as its last item. The stream always ends with the usage-only
    /// chunk when the upstream reported usage (summed over resumed pieces). The trace is
    /// final once the stream has ended.
    pub async fn chat_stream(
        &self,
        mut req: ChatRequest,
        cx: &CallContext,
    ) -> Result<Routed<ChatStream>, RouteFailure> {
        let mut want = Want::chat(&mut req);
        want.stream = true;
        let (op, answer, trace) = self.begin(StreamOp(req), &want, cx).await?;
        let handle = TraceHandle::new(trace.clone(), false);
        let relay = Relay::new(
            self.clone(),
            op.0,
            want,
            cx.clone(),
            answer,
            trace,
            handle.clone(),
        );
        Ok(Routed {
            value: relay.into_stream(),
            trace: handle,
        })
    }

    /// Whether `model`'s group can take passthrough calls of `kind`: every one of its
    /// deployments' providers supports them (see [`Router::passthrough`]).
    pub fn passthrough_supported(&self, model: &str, kind: PassthroughKind) -> bool {
        self.resolve(model).is_ok_and(|g| {
            g.deployments
                .iter()
                .all(|d| d.provider.passthrough_supported(kind))
        })
    }

    /// A request in the upstream's own format, forwarded by the chosen deployment's
    /// provider ([`llmux_core::Provider::passthrough`]) and routed like any call (retries,
    /// cooldowns, fallbacks; a stream until its first event). The trace is final.
    pub async fn passthrough(
        &self,
        mut req: PassthroughRequest,
        cx: &CallContext,
    ) -> Result<Routed<PassthroughResponse>, RouteFailure> {
        let want = crate::passthrough::want(&mut req);
        if req.stream {
            self.call(PassthroughOp::<true> { req }, &want, cx).await
        } else {
            self.call(PassthroughOp::<false> { req }, &want, cx).await
        }
    }

    /// A call answered in one piece: routed, with its trace final.
    async fn call<O: Op>(
        &self,
        op: O,
        want: &Want,
        cx: &CallContext,
    ) -> Result<Routed<O::Out>, RouteFailure> {
        let (_, answer, trace) = self.begin(op, want, cx).await?;
        Ok(Routed {
            value: answer.value,
            trace: TraceHandle::new(trace, true),
        })
    }

    /// Resolve the op's model and route it until a deployment answers; hands back the op
    /// (pointed at the group that answered), the answer and the trace so far.
    async fn begin<O: Op>(
        &self,
        mut op: O,
        want: &Want,
        cx: &CallContext,
    ) -> Result<(O, Answer<O::Out>, Trace), RouteFailure> {
        let mut trace = Trace::new(op.model());
        let group = match self.start(op.model(), &mut trace) {
            Ok(g) => g,
            Err(error) => return Err(RouteFailure { error, trace }),
        };
        match self
            .route(&mut op, want, cx, group, &mut trace, Vec::new())
            .await
        {
            Ok(answer) => Ok((op, answer, trace)),
            Err(error) => Err(RouteFailure { error, trace }),
        }
    }

    fn start(&self, model: &str, trace: &mut Trace) -> Result<Arc<Group>, Error> {
        let g = self.resolve(model)?;
        trace.model_group.clone_from(&g.name);
        Ok(g)
    }

    /// The group serving `model`: a group, an alias, or a wildcard route.
    fn resolve(&self, model: &str) -> Result<Arc<Group>, Error> {
        let inner = &self.inner;
        let name = inner.aliases.get(model).map_or(model, String::as_str);
        if let Some(g) = inner.groups.get(name) {
            return Ok(g.clone());
        }
        if let Some(g) = inner
            .built
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(g.clone());
        }
        let Some(w) = inner.wildcards.iter().find(|w| w.matches(name)) else {
            return Err(not_found(model));
        };
        let provider = (w.build)(name)?;
        let group = Arc::new(Group::new(
            name.to_owned(),
            vec![Deployment::new(name, provider)],
            inner.epoch,
        ));
        let mut built = inner.built.write().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = built.get(name) {
            return Ok(g.clone());
        }
        if built.len() < WILDCARD_CACHE_LIMIT {
            built.insert(name.to_owned(), group.clone());
        }
        Ok(group)
    }

    /// Try `start`, then its fallbacks (depth first, each group once), until one answers.
    /// `exclude` leaves deployments of `start` out of the first pick (stream resumption).
    pub(crate) async fn route<O: Op>(
        &self,
        op: &mut O,
        want: &Want,
        cx: &CallContext,
        start: Arc<Group>,
        trace: &mut Trace,
        exclude: Vec<usize>,
    ) -> Result<Answer<O::Out>, Error> {
        let s = &self.inner.settings;
        let budget = match (s.total_timeout, cx.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deadline = budget.map(|b| (Instant::now() + b, b));
        let mut visited: Vec<String> = Vec::new();
        let mut plan: VecDeque<(String, String, FallbackKind)> = VecDeque::new();
        let mut next = Some((start, exclude));
        let mut hops = 0;
        let mut last_attempted: Option<Error> = None;
        let mut last: Option<Error> = None;
        loop {
            let (group, exclude) = match next.take() {
                Some(n) => n,
                None => {
                    let Some((name, from, kind)) = plan.pop_front() else {
                        break;
                    };
                    if hops >= s.max_fallbacks {
                        break;
                    }
                    let group = match self.resolve(&name) {
                        Ok(g) => g,
                        Err(e) => {
                            last = Some(e);
                            continue;
                        }
                    };
                    if visited.contains(&group.name) {
                        continue;
                    }
                    hops += 1;
                    tracing::debug!(from = %from, to = %group.name, ?kind, "falling back");
                    trace.fallbacks.push(FallbackHop {
                        from,
                        to: group.name.clone(),
                        kind,
                    });
                    (group, Vec::new())
                }
            };
            visited.push(group.name.clone());
            op.set_model(&group.name);
            match self
                .try_group(op, want, cx, &group, trace, deadline, exclude)
                .await
            {
                Ok(answer) => {
                    trace.final_model_group = Some(group.name.clone());
                    return Ok(answer);
                }
                Err((e, attempted)) => {
                    let out_of_time = e.kind() == ErrorKind::Timeout
                        && deadline.is_some_and(|(d, _)| Instant::now() >= d);
                    if out_of_time {
                        return Err(e);
                    }
                    let (kind, list) = self.fallbacks_for(&group.name, &e);
                    for (i, name) in list.iter().enumerate() {
                        plan.insert(i, (name.clone(), group.name.clone(), kind));
                    }
                    if attempted {
                        last_attempted = Some(e);
                    } else {
                        last = Some(e);
                    }
                }
            }
        }
        Err(last_attempted
            .or(last)
            .unwrap_or_else(|| Error::internal("routing ended without an answer or an error")))
    }

    /// The fallback list an error of `group` calls for.
    fn fallbacks_for(&self, group: &str, e: &Error) -> (FallbackKind, &[String]) {
        let inner = &self.inner;
        let [generic, context, content] = &inner.fallbacks;
        let special = match e.kind() {
            ErrorKind::ContextWindowExceeded => {
                context.get(group).map(|l| (FallbackKind::ContextWindow, l))
            }
            ErrorKind::ContentPolicy => {
                content.get(group).map(|l| (FallbackKind::ContentPolicy, l))
            }
            ErrorKind::BadRequest | ErrorKind::PayloadTooLarge | ErrorKind::MethodNotAllowed => {
                return (FallbackKind::Generic, &[]);
            }
            _ => None,
        };
        if let Some((kind, list)) = special {
            return (kind, list.as_slice());
        }
        if let Some(list) = generic.get(group) {
            return (FallbackKind::Generic, list.as_slice());
        }
        let defaults = &inner.settings.default_fallbacks;
        if defaults.iter().any(|d| d == group) {
            return (FallbackKind::Default, &[]);
        }
        (FallbackKind::Default, defaults.as_slice())
    }

    /// The retry loop within one group. On failure returns the error and whether any
    /// provider call was made.
    #[allow(clippy::too_many_arguments)]
    async fn try_group<O: Op>(
        &self,
        op: &O,
        want: &Want,
        cx: &CallContext,
        group: &Arc<Group>,
        trace: &mut Trace,
        deadline: Option<(Instant, Duration)>,
        mut tried: Vec<usize>,
    ) -> Result<Answer<O::Out>, (Error, bool)> {
        let s = &self.inner.settings;
        let rng = &self.inner.rng;
        let phase = if O::STREAM {
            Phase::StreamStart
        } else {
            Phase::Call
        };
        let pick = |exclude: &[usize], now| {
            select(
                group,
                want,
                exclude,
                s.strategy,
                s.cost_estimate_output_tokens,
                rng,
                now,
            )
        };
        let mut attempts = 0u32;
        let mut last: Option<Error> = None;
        loop {
            let now = Instant::now();
            if let Some((end, budget)) = deadline
                && now >= end
            {
                return Err((total_timeout(budget), attempts > 0));
            }
            let idx = match pick(&tried, now) {
                Ok(i) => i,
                Err(why) if last.is_none() && why.excluded == 0 => {
                    let e = why.to_error(&group.name, want, now);
                    trace.errors.push(AttemptError {
                        model_group: group.name.clone(),
                        deployment_id: None,
                        phase,
                        kind: e.kind(),
                        message: e.message().to_owned(),
                    });
                    return Err((e, false));
                }
                Err(_) => {
                    // Every healthy deployment was tried: pause, then try one again.
                    let fail = |why: crate::select::Unavailable, last: Option<Error>| {
                        let attempted = last.is_some();
                        (
                            last.unwrap_or_else(|| why.to_error(&group.name, want, now)),
                            attempted,
                        )
                    };
                    if let Err(why) = pick(&[], now) {
                        return Err(fail(why, last));
                    }
                    let retry_after = last.as_ref().and_then(Error::retry_after);
                    let pause = self.backoff(attempts.saturating_sub(1), retry_after);
                    if deadline.is_some_and(|(end, _)| now + pause >= end) {
                        return Err((
                            last.unwrap_or_else(|| total_timeout(deadline.map_or(pause, |d| d.1))),
                            attempts > 0,
                        ));
                    }
                    tracing::debug!(group = %group.name, pause_ms = pause.as_millis() as u64, "backing off before retrying");
                    tokio::time::sleep(pause).await;
                    match pick(&[], Instant::now()) {
                        Ok(i) => i,
                        Err(why) => return Err(fail(why, last)),
                    }
                }
            };
            if attempts > 0 {
                trace.retries += 1;
            }
            attempts += 1;
            trace.attempts += 1;
            if !tried.contains(&idx) {
                tried.push(idx);
            }
            let d = &group.deployments[idx];
            let state = &group.states[idx];
            let started = Instant::now();
            let remaining = deadline.map(|(end, _)| end.saturating_duration_since(started));
            let own = d.timeout.or(s.timeout);
            let limit = if O::STREAM {
                d.stream_timeout.or(s.stream_first_chunk_timeout).or(own)
            } else {
                own
            };
            let limit = min_opt(limit, remaining);
            let call_cx = CallContext {
                timeout: if O::STREAM {
                    own.or(cx.timeout)
                } else {
                    limit.or(cx.timeout)
                },
                ..cx.clone()
            };
            let guard = state.begin(started);
            let result = match limit {
                Some(l) => match tokio::time::timeout(l, op.call(d, &call_cx)).await {
                    Ok(r) => r,
                    Err(_) => Err(attempt_timeout(d, l, O::STREAM)),
                },
                None => op.call(d, &call_cx).await,
            };
            let now = Instant::now();
            // The trace names the deployment that answered, or else the last one tried.
            trace.deployment_id = Some(d.id.clone());
            trace.provider = Some(d.provider.name());
            trace.provider_model = Some(d.provider.model().to_owned());
            match result {
                Ok(value) => {
                    state.succeeded(now, now - started, O::STREAM);
                    state.add_tokens(now, O::tokens(&value));
                    return Ok(Answer {
                        value,
                        group: group.clone(),
                        idx,
                        guard,
                    });
                }
                Err(e) => {
                    drop(guard);
                    let verdict = state.failed(now, now - started, &e, s);
                    if let (Verdict::CooledUntil(until), Some(board)) =
                        (verdict, self.inner.board.get())
                    {
                        let ms =
                            crate::shared::to_unix_ms(until, now, crate::shared::unix_ms_now());
                        board.publish(&d.id, ms);
                    }
                    tracing::debug!(
                        group = %group.name,
                        deployment = %d.id,
                        kind = %e.kind(),
                        cooled = matches!(verdict, Verdict::CooledUntil(_)),
                        "attempt failed"
                    );
                    trace.errors.push(AttemptError {
                        model_group: group.name.clone(),
                        deployment_id: Some(d.id.clone()),
                        phase,
                        kind: e.kind(),
                        message: e.message().to_owned(),
                    });
                    if attempts > s.retries_for(e.kind()) {
                        return Err((e, true));
                    }
                    last = Some(e);
                }
            }
        }
    }

    /// The pause before retry number `retry` (0-based): exponential with jitter, at least
    /// the error's `Retry-After` (capped).
    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let s = &self.inner.settings;
        let exp = s
            .backoff
            .initial
            .saturating_mul(1u32 << retry.min(16))
            .min(s.backoff.max);
        let half = exp / 2;
        let jitter = self.inner.rng.below(half.as_nanos() as u64 + 1);
        let pause = half + Duration::from_nanos(jitter);
        match retry_after {
            Some(after) => pause.max(after.min(s.retry_after_cap)),
            None => pause,
        }
    }
}

/// The live state of one deployment, for status pages.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentHealth {
    /// Its group.
    pub model_group: String,
    /// Its id.
    pub deployment_id: String,
    /// Its provider.
    pub provider: &'static str,
    /// Its provider model.
    pub provider_model: String,
    /// Time left in cooldown; `None` = in rotation.
    pub cooldown_remaining: Option<Duration>,
    /// Calls in flight.
    pub in_flight: u32,
    /// Requests within the last minute.
    pub requests_last_minute: u64,
    /// Tokens within the last minute.
    pub tokens_last_minute: u64,
    /// Moving-average latency of non-streamed calls.
    pub latency: Option<Duration>,
    /// Moving-average time to first chunk of streams.
    pub time_to_first_chunk: Option<Duration>,
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn attempt_timeout(d: &Deployment, limit: Duration, stream: bool) -> Error {
    let what = if stream {
        "send its first chunk"
    } else {
        "answer"
    };
    Error::new(
        ErrorKind::Timeout,
        format!(
            "The upstream did not {what} within {:.1}s.",
            limit.as_secs_f64()
        ),
    )
    .with_provider(d.provider.name())
}

fn total_timeout(budget: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "The call did not finish within its time limit of {:.1}s.",
            budget.as_secs_f64()
        ),
    )
}

fn not_found(model: &str) -> Error {
    let shown: String = model.chars().take(200).collect();
    Error::new(
        ErrorKind::NotFound,
        format!("The model '{shown}' does not exist on this gateway."),
    )
    .with_code("model_not_found")
    .with_param("model")
}
