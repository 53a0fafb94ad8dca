//! Route handlers: the request phases, in order — request id, auth, parse, resolve,
//! call the provider, shape the response.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use llmux_core::sse::{DONE_EVENT, json_event};
use llmux_core::{CallContext, ChatRequest, EmbeddingRequest, Error, ErrorKind, ModelList, Secret};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::access::Principal;
use crate::call::{
    ChatOutcome, Failed, MeteredStream, begin, end, record_failure, route_failure, run_chat,
};
use crate::error::ApiError;
use crate::metering::{CallMeta, Outcome};
use crate::models::ModelTable;
use llmux_cost::{Meter, Money};
use llmux_router::Trace;

/// The state in force, swapped whole when the config is reloaded; calls in flight keep
/// the state they started with.
#[derive(Debug)]
pub(crate) struct Shared {
    current: std::sync::RwLock<Arc<AppState>>,
    /// Renders `GET /metrics` (`None`: metrics are off).
    pub(crate) metrics: Option<llmux_observe::PrometheusHandle>,
    /// The metering point, kept across reloads (its drop counters are exported).
    pub(crate) meter: Meter,
}

impl Shared {
    pub(crate) fn new(
        state: AppState,
        metrics: Option<llmux_observe::PrometheusHandle>,
        meter: Meter,
    ) -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new(state)),
            metrics,
            meter,
        }
    }

    /// The state for one request.
    pub(crate) fn load(&self) -> Arc<AppState> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Put `state` in force for the requests that arrive from now on.
    pub(crate) fn store(&self, state: AppState) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
    }
}

/// What every handler shares, built once per configuration.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) models: ModelTable,
    pub(crate) master_key: Option<Secret>,
    pub(crate) meter: Meter,
    /// Also send the `x-litellm-*` headers LiteLLM clients and dashboards read.
    pub(crate) litellm_headers: bool,
    /// Virtual keys, budgets and limits (`None`: no store, the master key only).
    pub(crate) access: Option<Arc<crate::access::Access>>,
}

const X_REQUEST_ID: &str = "x-request-id";

/// The request id: the client's `x-request-id` when it is sane, else a new UUID (v4, from
/// the thread's userspace CSPRNG: `Uuid::new_v4` made a `getrandom` system call per request).
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
            let mut buf = uuid::Uuid::encode_buffer();
            HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
                .unwrap_or(HeaderValue::from_static("unknown"))
        })
}

async fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    authenticate(st, headers).await.map(|_| ())
}

/// Who is calling: the master key, a virtual key (when a store is configured), or anyone
/// when no master key is configured.
pub(crate) async fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Principal, Error> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let invalid = || Error::new(ErrorKind::Auth, "Invalid API key.");
    match (&st.master_key, presented) {
        (None, None) => Ok(Principal::Open),
        (Some(_), None) => Err(Error::new(
            ErrorKind::Auth,
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
        )),
        (Some(key), Some(p)) if constant_time_eq(p.as_bytes(), key.expose().as_bytes()) => {
            Ok(Principal::Master)
        }
        (master, Some(p)) => match &st.access {
            Some(access) => match access.lookup(p).await? {
                Some(entry) => Ok(Principal::Key(entry)),
                None if master.is_none() => Ok(Principal::Open),
                None => Err(invalid()),
            },
            None if master.is_none() => Ok(Principal::Open),
            None => Err(invalid()),
        },
    }
}

/// The access phase: a virtual key's call is checked against its limits and budgets, and
/// attributed (key, team, user) in its call record. When the key's `aliases` map `model`
/// to a model group, returns that group: the caller routes the call there (and it is
/// recorded under it); the model checks accept either name, as LiteLLM does.
pub(crate) async fn admit(
    st: &AppState,
    principal: &Principal,
    model: &str,
    meta: &mut CallMeta,
) -> Result<Option<String>, Error> {
    let (Principal::Key(entry), Some(access)) = (principal, &st.access) else {
        return Ok(None);
    };
    meta.key = Some(entry.key.key_id.clone());
    meta.key_alias.clone_from(&entry.key.alias);
    meta.team.clone_from(&entry.key.team_id);
    meta.user.clone_from(&entry.key.user_id);
    meta.tags = crate::report::attributed_tags(&meta.tags, Some(&entry.key), &[]);
    let aliased = entry.alias_target(model).map(str::to_owned);
    let router_alias = || {
        st.models
            .router
            .aliases()
            .find_map(|(a, g)| (a == model).then_some(g))
    };
    let target = aliased.as_deref().or_else(router_alias).unwrap_or(model);
    meta.ticket = Some(Box::new(access.admit(entry, model, target).await?));
    if let Some(group) = &aliased {
        meta.model_group.clone_from(group);
    }
    Ok(aliased)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Error> {
    let body = body.map_err(|r| {
        if r.status().as_u16() == 413 {
            Error::new(ErrorKind::PayloadTooLarge, "The request body is too large.")
        } else {
            Error::bad_request(format!("Could not read the request body: {r}"))
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "We could not parse the JSON body of your request"
        } else {
            "Invalid request body"
        };
        Error::bad_request(format!("{what}: {e}"))
    })
}

/// Attach the request id to any response, success or error.
pub(crate) fn with_id(mut resp: Response, id: HeaderValue) -> Response {
    resp.headers_mut().insert(X_REQUEST_ID, id);
    resp
}

pub(crate) fn json_response<T: serde::Serialize>(value: &T) -> Result<Response, Error> {
    let body = serde_json::to_vec(value)
        .map_err(|e| Error::internal(format!("could not encode the response: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

pub(crate) fn context(id: &HeaderValue) -> CallContext {
    CallContext {
        request_id: id.to_str().unwrap_or_default().to_owned(),
        ..CallContext::default()
    }
}

/// Response headers naming what answered: provider, provider model, deployment, attempts,
/// and the fallback group when one answered.
fn with_route(resp: &mut Response, trace: &Trace, answered_model: Option<&str>) {
    let h = resp.headers_mut();
    if let Some(p) = trace.provider {
        h.insert("x-llmux-provider", HeaderValue::from_static(p));
    }
    let model = answered_model
        .filter(|m| !m.is_empty())
        .or(trace.provider_model.as_deref());
    if let Some(v) = model.and_then(|m| HeaderValue::from_str(m).ok()) {
        h.insert("x-llmux-model", v);
    }
    if let Some(v) = trace
        .deployment_id
        .as_deref()
        .and_then(|d| HeaderValue::from_str(d).ok())
    {
        h.insert("x-llmux-deployment", v);
    }
    h.insert("x-llmux-attempts", HeaderValue::from(trace.attempts));
    if trace.fallback_used()
        && let Some(v) = trace
            .final_model_group
            .as_deref()
            .and_then(|g| HeaderValue::from_str(g).ok())
    {
        h.insert("x-llmux-fallback", v);
    }
}

/// The client's W3C `traceparent`, for continuing its trace.
pub(crate) fn trace_context(headers: &HeaderMap, meta: &mut CallMeta) {
    if let Some((trace, span)) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(llmux_observe::parse_traceparent)
    {
        meta.trace_id = Some(trace);
        meta.parent_span_id = Some(span);
    }
}

pub(crate) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (st, id, mut meta) = begin(&shared, &headers, "chat");
    // One span per call, carrying the request id into every log line of the call.
    let span = tracing::info_span!("call", request_id = %meta.request_id);
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let req: ChatRequest = parse(body).map_err(|e| (e, None))?;
        let wants_usage = req.wants_stream_usage();
        match run_chat(&st, &principal, &headers, req, &id, &mut meta, Vec::new()).await? {
            ChatOutcome::Full {
                response,
                trace,
                headers,
                ..
            } => {
                let mut resp = json_response(&response).map_err(|e| (e, Some(trace)))?;
                resp.headers_mut().extend(headers);
                Ok::<_, Failed>(resp)
            }
            ChatOutcome::Stream { chunks, headers } => {
                let mut resp = sse_response(chunks, wants_usage);
                resp.headers_mut().extend(headers);
                Ok(resp)
            }
        }
    }
    .instrument(span)
    .await;
    let resp = resp.unwrap_or_else(|(e, trace)| {
        record_failure(&st, &meta, &e, trace.as_ref(), false);
        error_response(e, trace.as_ref())
    });
    end(&mut meta, resp, id).await
}

/// An error in OpenAI's shape, with the route headers when routing started.
pub(crate) fn error_response(e: Error, trace: Option<&Trace>) -> Response {
    let mut resp = ApiError(e).into_response();
    if let Some(t) = trace {
        with_route(&mut resp, t, None);
    }
    resp
}

/// The headers naming what answered a call (`x-llmux-*`), its cost, and LiteLLM's
/// `x-litellm-*` when they are on — for any inbound format's response.
pub(crate) fn route_headers(
    st: &AppState,
    meta: &CallMeta,
    trace: &Trace,
    answered_model: Option<&str>,
    cost: Option<Money>,
) -> HeaderMap {
    let mut resp = Response::default();
    with_route(&mut resp, trace, answered_model);
    set_cost(&mut resp, cost);
    litellm_headers(st, &mut resp, meta, trace, cost);
    resp.into_parts().0.headers
}

/// The `x-litellm-*` headers LiteLLM clients and dashboards read (when
/// `litellm_compat_headers` is on).
fn litellm_headers(
    st: &AppState,
    resp: &mut Response,
    meta: &CallMeta,
    trace: &Trace,
    cost: Option<Money>,
) {
    if !st.litellm_headers {
        return;
    }
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if let Some(c) = cost {
        put("x-litellm-response-cost", c.to_string());
    }
    put("x-litellm-call-id", meta.request_id.clone());
    if let Some(id) = &trace.deployment_id {
        put("x-litellm-model-id", id.clone());
        if let Some(base) = st.models.api_base(id) {
            put("x-litellm-model-api-base", base.to_owned());
        }
    }
    let group = trace
        .final_model_group
        .as_deref()
        .unwrap_or(&trace.model_group);
    put("x-litellm-model-group", group.to_owned());
    put("x-litellm-attempted-retries", trace.retries.to_string());
    put(
        "x-litellm-attempted-fallbacks",
        trace.fallbacks.len().to_string(),
    );
    put(
        "x-litellm-response-duration-ms",
        format!("{:.3}", meta.started.elapsed().as_secs_f64() * 1000.0),
    );
}

fn set_cost(resp: &mut Response, cost: Option<Money>) {
    if let Some(v) = cost.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        resp.headers_mut().insert("x-llmux-response-cost", v);
    }
}

/// Turn a chunk stream into the client's SSE body: each chunk is written as it arrives,
/// the usage chunk is dropped unless the client asked for it (and then carries
/// `usage.cost` in USD), an error after the first chunk becomes an `error` event, and
/// `[DONE]` closes a stream that ended normally. The stream's record is emitted when the
/// body is dropped: at the end, or when the client goes away.
pub(crate) fn sse_response(chunks: MeteredStream, wants_usage: bool) -> Response {
    let body =
        futures_util::stream::unfold((chunks, false), move |(mut chunks, finished)| async move {
            if finished {
                return None;
            }
            loop {
                match chunks.next().await {
                    Some(Ok(mut chunk)) => {
                        if !wants_usage {
                            if chunk.is_usage_only() {
                                continue;
                            }
                            chunk.usage = None;
                        } else if let (Some(u), Some(Some(cost))) =
                            (&mut chunk.usage, chunks.cost())
                        {
                            u.extra
                                .insert("cost".into(), serde_json::json!(cost.to_usd_f64()));
                        }
                        let bytes = json_event(&chunk).unwrap_or_else(|e| {
                            json_event(&Error::internal(format!("encode: {e}")).to_body())
                                .unwrap_or_default()
                        });
                        return Some((Ok::<_, Infallible>(bytes), (chunks, false)));
                    }
                    Some(Err(e)) => {
                        let bytes = json_event(&e.to_body()).unwrap_or_default();
                        return Some((Ok(bytes), (chunks, true)));
                    }
                    None => {
                        return Some((Ok(Bytes::from_static(DONE_EVENT)), (chunks, true)));
                    }
                }
            }
        });
    sse_body(body)
}

/// An SSE response around `body` (no caching, no proxy buffering).
pub(crate) fn sse_body<S>(body: S) -> Response
where
    S: futures_core::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

pub(crate) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (st, id, mut meta) = begin(&shared, &headers, "embeddings");
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let mut req: EmbeddingRequest = parse(body).map_err(|e| (e, None))?;
        meta.model_group.clone_from(&req.model);
        meta.end_user.clone_from(&req.user);
        meta.tags = crate::metering::tags(
            &req.extra,
            None,
            headers.get("x-llmux-tags").and_then(|v| v.to_str().ok()),
        )
        .map_err(|e| (e, None))?;
        if req.input.is_empty() {
            let e = Error::bad_request("'input' must not be empty").with_param("input");
            return Err((e, None));
        }
        if let Some(group) = admit(&st, &principal, &req.model, &mut meta)
            .await
            .map_err(|e| (e, None))?
        {
            req.model = group;
        }
        let routed = st
            .models
            .router
            .embed(req, &context(&id))
            .await
            .map_err(route_failure)?;
        let trace = routed.trace.snapshot();
        let out = routed.value;
        let usage = llmux_core::Usage::new(out.usage.prompt_tokens, 0);
        let cost = meta.finish(
            &st.models,
            &st.meter,
            Outcome {
                trace: Some(&trace),
                provider_model: Some(&out.model),
                usage: Some(&usage),
                embedding: true,
                status: 200,
                ..Outcome::default()
            },
        );
        let mut resp = json_response(&out).map_err(|e| (e, Some(trace.clone())))?;
        resp.headers_mut()
            .extend(route_headers(&st, &meta, &trace, Some(&out.model), cost));
        Ok::<_, Failed>(resp)
    }
    .instrument(tracing::info_span!("call", request_id = %id.to_str().unwrap_or_default()))
    .await;
    let resp = resp.unwrap_or_else(|(e, trace)| {
        record_failure(&st, &meta, &e, trace.as_ref(), true);
        error_response(e, trace.as_ref())
    });
    end(&mut meta, resp, id).await
}

/// `GET /v1/models`: what the caller may call. The master key and an open gateway see
/// every model group, alias and wildcard listing; a virtual key sees those its models (and
/// its team's) allow, plus the names of its own `aliases`.
pub(crate) async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let st = shared.load();
    let id = request_id(&headers);
    let resp = async {
        let principal = authenticate(&st, &headers).await?;
        let mut cards = st.models.list(&context(&id)).await;
        if let Principal::Key(entry) = &principal {
            let router = &st.models.router;
            let target = |name: &str| {
                router
                    .aliases()
                    .find_map(|(a, g)| (a == name).then(|| g.to_owned()))
                    .unwrap_or_else(|| name.to_owned())
            };
            cards.retain(|c| entry.may_call(&c.id, &target(&c.id)));
            for (alias, group) in &entry.key.model_aliases {
                if router.serves(group)
                    && entry.may_call(alias, group)
                    && !cards.iter().any(|c| &c.id == alias)
                {
                    cards.push(llmux_core::ModelCard::new(alias.as_str(), "llmux"));
                }
            }
        }
        json_response(&ModelList::new(cards))
    }
    .await;
    with_id(resp.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

/// `GET /model/info` (LiteLLM's shape): each model group with its deployments' provider
/// model, context window and prices. Credentials are never listed.
pub(crate) async fn model_info(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let st = shared.load();
    if let Err(e) = authorize(&st, &headers).await {
        return ApiError(e).into_response();
    }
    let price_text = |p: Option<llmux_cost::UnitPrice>| p.map(|p| p.to_string());
    let router = &st.models.router;
    let mut data = Vec::new();
    for name in router.model_groups() {
        for d in router.deployments(name).unwrap_or_default() {
            let p = st
                .models
                .price(Some(&d.id), d.provider.name(), d.provider.model());
            let p = p.as_deref();
            data.push(serde_json::json!({
                "model_name": name,
                "litellm_params": {"model": format!("{}/{}", d.provider.name(), d.provider.model())},
                "model_info": {
                    "id": d.id,
                    "litellm_provider": d.provider.name(),
                    "mode": p.and_then(|p| p.mode.clone()),
                    "max_input_tokens": p.and_then(|p| p.context_window()),
                    "max_output_tokens": p.and_then(|p| p.max_output()),
                    "input_cost_per_token": p.and_then(|p| price_text(p.rates.input_per_token)),
                    "output_cost_per_token": p.and_then(|p| price_text(p.rates.output_per_token)),
                    "priced": p.is_some(),
                    "weight": d.weight,
                    "rpm": d.rpm,
                    "tpm": d.tpm,
                    "order": d.order,
                    "tags": d.tags,
                },
            }));
        }
    }
    for (alias, group) in router.aliases() {
        data.push(serde_json::json!({"model_name": alias, "model_info": {"alias_of": group}}));
    }
    for (pattern, provider) in st.models.wildcards() {
        data.push(serde_json::json!({
            "model_name": pattern,
            "litellm_params": {"model": format!("{provider}/*")},
            "model_info": {"litellm_provider": provider, "priced": null},
        }));
    }
    json_response(&serde_json::json!({ "data": data }))
        .unwrap_or_else(|e| ApiError(e).into_response())
}

/// `GET /metrics`: Prometheus text exposition (label sets are bounded; no auth, like
/// LiteLLM's).
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let Some(handle) = &shared.metrics else {
        return ApiError(
            Error::new(ErrorKind::NotFound, "metrics are not enabled").with_code("unknown_route"),
        )
        .into_response();
    };
    for (sink, dropped) in shared.meter.dropped() {
        llmux_observe::set_sink_dropped_total(&sink, dropped);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

pub(crate) async fn liveliness() -> Response {
    json_response(&"I'm alive!").unwrap_or_else(|e| ApiError(e).into_response())
}

pub(crate) async fn readiness(State(shared): State<Arc<Shared>>) -> Response {
    let st = shared.load();
    let body = serde_json::json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "models": st.models.names().len(),
        "wildcards": st.models.wildcards().count(),
    });
    json_response(&body).unwrap_or_else(|e| ApiError(e).into_response())
}

/// How long one deployment's health check may take.
const HEALTH_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Deployments checked at once.
const HEALTH_CHECK_CONCURRENCY: usize = 8;

type Checked = (
    String,
    String,
    Arc<dyn llmux_core::Provider>,
    Result<(), Error>,
);

async fn check_deployment(
    group: String,
    id: String,
    provider: Arc<dyn llmux_core::Provider>,
) -> Checked {
    let mut req = ChatRequest::new(group.clone()).user("ping");
    req.max_tokens = Some(1);
    let cx = CallContext {
        request_id: format!("health-{id}"),
        timeout: Some(HEALTH_CHECK_TIMEOUT),
        ..CallContext::default()
    };
    let r = match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, provider.chat(req, &cx)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::new(ErrorKind::Timeout, "health check timed out")),
    };
    (group, id, provider, r)
}

/// `GET /health` (LiteLLM's shape): a cheap one-token call to every deployment,
/// concurrently and bounded in time, listing healthy and unhealthy ones with the error, and
/// which are cooling down in the router.
pub(crate) async fn health(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let st = shared.load();
    if let Err(e) = authorize(&st, &headers).await {
        return ApiError(e).into_response();
    }
    let router = &st.models.router;
    let mut checks = Vec::new();
    for group in router.model_groups() {
        for d in router.deployments(group).unwrap_or_default() {
            checks.push((group.to_owned(), d.id.clone(), Arc::clone(&d.provider)));
        }
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(HEALTH_CHECK_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (group, id, provider) in checks {
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            check_deployment(group, id, provider).await
        });
    }
    let mut results: Vec<Checked> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    results.sort_by(|a, b| a.1.cmp(&b.1));
    let cooling: std::collections::HashMap<String, u128> = router
        .health()
        .into_iter()
        .filter_map(|h| {
            h.cooldown_remaining
                .map(|c| (h.deployment_id, c.as_millis()))
        })
        .collect();
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for (group, id, provider, r) in results {
        let mut entry = serde_json::json!({
            "model": group, "id": id, "provider": provider.name(),
            "provider_model": provider.model(),
            "cooldown_remaining_ms": cooling.get(&id),
        });
        match r {
            Ok(()) => healthy.push(entry),
            Err(e) => {
                entry["error"] = serde_json::json!(e.message());
                entry["error_kind"] = serde_json::json!(e.kind().as_str());
                unhealthy.push(entry);
            }
        }
    }
    let body = serde_json::json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "wildcards": st.models.wildcards().map(|(p, provider)| serde_json::json!({"model": p, "provider": provider})).collect::<Vec<_>>(),
    });
    json_response(&body).unwrap_or_else(|e| ApiError(e).into_response())
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    ApiError(
        Error::new(
            ErrorKind::NotFound,
            format!("Unknown route: {method} {path}"),
        )
        .with_code("unknown_route"),
    )
    .into_response()
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    ApiError(Error::new(
        ErrorKind::MethodNotAllowed,
        format!("Method {method} is not allowed on {path}"),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_sane_id_gets_a_fresh_v4_uuid() {
        let mut ids = std::collections::HashSet::new();
        for _ in 0..64 {
            let v = request_id(&HeaderMap::new());
            let id = uuid::Uuid::parse_str(v.to_str().unwrap()).unwrap();
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(v.len(), 36);
            assert!(ids.insert(id));
        }
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("req-1"));
        assert_eq!(request_id(&h), "req-1");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
    }
}
