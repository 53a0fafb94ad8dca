//! The [`Gateway`]: config + providers + HTTP server, composed in a few lines.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = llmux_config::Config::load("llmux.yaml".as_ref())?;
//! let gateway = llmux_server::Gateway::builder().config(config).build()?;
//! gateway.serve_until_signal().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use llmux_config::{Config, ModelEntry, ServerConfig};
use std::collections::HashMap;

use llmux_core::{CallSink, DeploymentSettings};
use llmux_cost::{DEFAULT_SINK_QUEUE, Meter, MeterWorkers, ModelPrice, PriceTable, UnitPrice};
use llmux_router::{Deployment, Router as ModelRouter, RouterConfig, RouterSettings, Wildcard};
use tokio::net::TcpListener;

use crate::error::ServerError;
use crate::handlers::{self, AppState, Shared};
use crate::models::{ModelTable, Pricing, WildcardTemplate};

/// How long a stopped gateway waits for its sinks to take the last records.
const SINK_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A built gateway, ready to serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    inputs: Arc<Inputs>,
    server: ServerConfig,
    workers: Arc<std::sync::Mutex<Option<MeterWorkers>>>,
    warnings: Vec<String>,
    /// Sinks that buffer (exporters, files), flushed at shutdown after the queues drain.
    exporters: Option<llmux_observe::SinkSet>,
    /// The spend log's writer (with a store), shut down after the sinks drained.
    spend_writer: Option<Arc<llmux_store::SpendWriter>>,
}

/// What a gateway was built from besides its config, kept so a reload builds the new state
/// the same way (same sinks, same extra models, same overrides).
struct Inputs {
    extra: Vec<(String, DeploymentSettings)>,
    env: EnvFn,
    env_wildcards: Option<bool>,
    prices: Option<&'static PriceTable>,
    router_settings: Option<RouterSettings>,
    meter: Meter,
    source: Option<std::path::PathBuf>,
    access: Option<Arc<crate::access::Access>>,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("extra", &self.extra)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Reads an environment variable (injected so tests need not touch the process env).
type EnvFn = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds a [`Gateway`] from a config, extra models, and the environment.
pub struct GatewayBuilder {
    config: Config,
    extra: Vec<(String, DeploymentSettings)>,
    env: EnvFn,
    env_wildcards: Option<bool>,
    sinks: Vec<Arc<dyn CallSink>>,
    prices: Option<&'static PriceTable>,
    router_settings: Option<RouterSettings>,
    observability: bool,
    store: Option<llmux_store::Store>,
    counters: Option<Arc<dyn llmux_store::Counters>>,
    key_cache_ttl: std::time::Duration,
    spend_spill: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("config", &self.config)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Start building.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            config: Config::default(),
            extra: Vec::new(),
            env: Box::new(|k| std::env::var(k).ok()),
            env_wildcards: None,
            sinks: Vec::new(),
            prices: None,
            router_settings: None,
            observability: true,
            store: None,
            counters: None,
            key_cache_ttl: crate::access::DEFAULT_KEY_CACHE_TTL,
            spend_spill: None,
        }
    }

    /// The metering point (records emitted, drops per sink, unknown-model lookups).
    pub fn meter(&self) -> &Meter {
        &self.inputs.meter
    }

    /// Model group names and wildcard routes (`prefix/*`, provider) now in force.
    pub fn routes(&self) -> (Vec<String>, Vec<(String, &'static str)>) {
        let st = self.shared.load();
        let names = st.models.names().into_iter().map(str::to_owned).collect();
        let wildcards = st.models.wildcards().collect();
        (names, wildcards)
    }

    /// Load the config file again and put it in force for new calls; calls in flight
    /// finish on the state they started with. A config that does not load or build is
    /// rejected and the running one keeps serving.
    pub fn reload(&self) -> Result<(), ServerError> {
        let path = self
            .inputs
            .source
            .as_deref()
            .ok_or(ServerError::NoConfigFile)?;
        let config = Config::load_with_env(path, &*self.inputs.env)
            .map_err(|e| ServerError::Reload(e.to_string()))?;
        self.reload_with(config)
    }

    /// Put `config`'s models, routing and keys in force (listen address, body limit and
    /// grace period stay as started).
    pub fn reload_with(&self, config: Config) -> Result<(), ServerError> {
        let state = self.inputs.state(&config)?;
        self.shared.store(state);
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        Ok(())
    }

    /// What the config asked for that llmux does not support (logged at start-up).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The server settings in force.
    pub fn server_config(&self) -> &ServerConfig {
        &self.server
    }

    /// The HTTP routes, as an axum router (to nest into a bigger app, or to test).
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/chat/completions", post(handlers::chat_completions))
            .route("/embeddings", post(handlers::embeddings))
            .route("/models", get(handlers::models));
        Router::new()
            .nest("/v1", api.clone())
            .merge(api)
            .route("/health/liveliness", get(handlers::liveliness))
            .route("/health/liveness", get(handlers::liveliness))
            .route("/health/readiness", get(handlers::readiness))
            .route("/health", get(handlers::health))
            .route("/model/info", get(handlers::model_info))
            .route("/v1/model/info", get(handlers::model_info))
            .route("/metrics", get(handlers::metrics))
            .merge(crate::admin::routes())
            .merge(crate::messages::routes())
            .merge(crate::responses::routes())
            .merge(crate::rerank::routes())
            .merge(crate::report::routes())
            .fallback(handlers::not_found)
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .layer(DefaultBodyLimit::max(self.server.max_body_bytes))
            .with_state(self.shared.clone())
    }

    /// Serve on `listener` until `shutdown` resolves; then stop accepting and give
    /// in-flight calls and streams the configured grace period to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let grace = self.server.shutdown_grace;
        let app = self.router();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        let mut rx2 = rx.clone();
        let deadline = async move {
            let _ = rx2.wait_for(|stopping| *stopping).await;
            tracing::info!(
                grace_secs = grace.as_secs_f64(),
                "shutting down: draining in-flight calls"
            );
            tokio::time::sleep(grace).await;
        };
        let workers = self.workers.lock().ok().and_then(|mut w| w.take());
        let reloader = self
            .inputs
            .source
            .is_some()
            .then(|| tokio::spawn(reload_on_sighup(self.clone())));
        drop(self.shared);
        drop(self.inputs);
        let result = tokio::select! {
            r = server => r.map_err(ServerError::Io),
            () = deadline => {
                tracing::warn!("grace period over: closing the remaining connections");
                Ok(())
            }
        };
        if let Some(r) = reloader {
            r.abort();
            let _ = r.await;
        }
        if let Some(w) = workers
            && tokio::time::timeout(SINK_DRAIN_TIMEOUT, w.drain())
                .await
                .is_err()
        {
            tracing::error!("call-record sinks did not finish in time: some records may be lost");
        }
        if let Some(set) = &self.exporters
            && tokio::time::timeout(SINK_DRAIN_TIMEOUT, set.flush())
                .await
                .is_err()
        {
            tracing::error!("exporters did not flush in time");
        }
        if let Some(w) = &self.spend_writer {
            match tokio::time::timeout(SINK_DRAIN_TIMEOUT, w.shutdown()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "spend log: shutdown flush failed"),
                Err(_) => tracing::error!("spend log: shutdown flush did not finish in time"),
            }
        }
        result
    }

    /// Bind the configured host and port and serve until SIGTERM or SIGINT.
    pub async fn serve_until_signal(self) -> Result<(), ServerError> {
        let addr = format!("{}:{}", self.server.host, self.server.port);
        let listener = TcpListener::bind(&addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "llmux listening");
        self.serve(listener, shutdown_signal()).await
    }

    /// Bind `addr` (port 0 for an ephemeral one) and serve in a background task until the
    /// returned handle is dropped or told to stop. For tests and embedding.
    pub async fn spawn(self, addr: SocketAddr) -> Result<RunningGateway, ServerError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async move {
            let _ = rx.await;
        }));
        Ok(RunningGateway {
            addr,
            stop: Some(tx),
            task,
        })
    }
}

/// A gateway serving in the background (see [`Gateway::spawn`]).
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningGateway {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Begin a graceful shutdown and wait for it to finish.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(ServerError::Io(std::io::Error::other(e))))
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Reloads the config on every SIGHUP (unix); logs the outcome.
async fn reload_on_sighup(gateway: Gateway) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match gateway.reload() {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload rejected: the previous configuration keeps serving")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(gateway);
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

impl GatewayBuilder {
    /// Send every call record to `sink` (spend log, metrics, a callback…).
    pub fn sink(mut self, sink: Arc<dyn CallSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Price calls from `table` instead of the embedded price table. The table lives for
    /// the rest of the process (it is loaded once, at start-up).
    pub fn prices(mut self, table: PriceTable) -> Self {
        self.prices = Some(Box::leak(Box::new(table)));
        self
    }

    /// Use this configuration (server settings and model list).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serve `name` with `settings` in addition to the config's models.
    pub fn model(mut self, name: impl Into<String>, settings: DeploymentSettings) -> Self {
        self.extra.push((name.into(), settings));
        self
    }

    /// Read provider credentials for wildcard routes from `env` instead of the process
    /// environment.
    pub fn env(mut self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Box::new(env);
        self
    }

    /// Add a `provider/*` route for every linked provider the environment configures
    /// (default: only when no model is configured).
    pub fn env_wildcards(mut self, on: bool) -> Self {
        self.env_wildcards = Some(on);
        self
    }

    /// Prometheus metrics on `GET /metrics`, and OpenTelemetry / Langfuse export when their
    /// environment variables are set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `LANGFUSE_*`).
    /// On by default.
    pub fn observability(mut self, on: bool) -> Self {
        self.observability = on;
        self
    }

    /// Keys, users, teams, budgets and the spend log: enables virtual keys, the admin API
    /// and the spend-log sink.
    pub fn store(mut self, store: llmux_store::Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Rate-limit, in-flight and spend counters (default: in-process [`llmux_store::LocalCounters`];
    /// use [`llmux_store::RedisCounters`] when several gateways share the limits).
    pub fn counters(mut self, counters: Arc<dyn llmux_store::Counters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// How long a looked-up virtual key is cached (default 5 s). Changes made through the
    /// admin API apply at once; changes made elsewhere within this time.
    pub fn key_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.key_cache_ttl = ttl;
        self
    }

    /// Where the spend log spills records while the database is unreachable (replayed once
    /// it answers). Default: none (records are kept in memory only).
    pub fn spend_spill_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.spend_spill = Some(path.into());
        self
    }

    /// Router settings (strategy, retries, cooldowns, fallbacks, timeouts).
    pub fn router_settings(mut self, settings: RouterSettings) -> Self {
        self.router_settings = Some(settings);
        self
    }

    /// Build every deployment now: a bad one fails here, not on the first request.
    /// With sinks, call it inside a tokio runtime (each sink gets a task).
    pub fn build(mut self) -> Result<Gateway, ServerError> {
        let mut exporters = None;
        let metrics = if self.observability {
            let handle = llmux_observe::install_prometheus();
            // `metrics` first, then every sink the config names (`settings.callbacks`), plus
            // OpenTelemetry and Langfuse when their environment variables configure them.
            let set = llmux_observe::SinkSet::build_with_defaults(
                &self.config.settings.callbacks,
                &self.config.settings.callback_settings,
                &*self.env,
            )
            .map_err(|e| ServerError::Observability(e.to_string()))?;
            self.sinks.extend(set.sinks().iter().cloned());
            exporters = Some(set);
            Some(handle)
        } else {
            None
        };
        let mut spend_writer = None;
        let access = self.store.take().map(|store| {
            let writer = Arc::new(llmux_store::SpendWriter::start(
                store.clone(),
                llmux_store::SpendWriterConfig {
                    spill_path: self.spend_spill.take(),
                    ..llmux_store::SpendWriterConfig::default()
                },
            ));
            self.sinks.push(writer.clone());
            spend_writer = Some(writer);
            let counters = self
                .counters
                .take()
                .unwrap_or_else(|| Arc::new(llmux_store::LocalCounters::new()));
            Arc::new(crate::access::Access::new(
                store,
                counters,
                self.key_cache_ttl,
            ))
        });
        let (meter, workers) = Meter::start(self.sinks, DEFAULT_SINK_QUEUE);
        let inputs = Inputs {
            extra: self.extra,
            env: self.env,
            env_wildcards: self.env_wildcards,
            prices: self.prices,
            router_settings: self.router_settings,
            meter,
            source: self.config.source.clone(),
            access,
        };
        let state = inputs.state(&self.config)?;
        Ok(Gateway {
            shared: Arc::new(Shared::new(state, metrics, inputs.meter.clone())),
            exporters,
            inputs: Arc::new(inputs),
            server: self.config.server,
            workers: Arc::new(std::sync::Mutex::new(Some(workers))),
            warnings: self.config.warnings,
            spend_writer,
        })
    }
}

impl Inputs {
    /// Everything a configuration puts in force, built (and checked) in full.
    fn state(&self, config: &Config) -> Result<AppState, ServerError> {
        let meter = self.meter.clone();
        let table = match (self.prices, &config.settings.price_table) {
            (Some(t), _) => t,
            (None, Some(path)) => {
                let t =
                    PriceTable::from_path(path).map_err(|e| ServerError::Prices(e.to_string()))?;
                &*Box::leak(Box::new(t))
            }
            (None, None) => PriceTable::embedded(),
        };
        let available = || {
            let mut names: Vec<_> = llmux_core::providers().map(|f| f.name).collect();
            names.sort_unstable();
            names.join(", ")
        };
        let extra: Vec<ModelEntry> = self
            .extra
            .iter()
            .map(|(n, s)| ModelEntry::new(n.clone(), s.clone()))
            .collect();
        let entries: Vec<(String, &ModelEntry)> = config
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("models[{i}]"), m))
            .chain(extra.iter().map(|m| (format!("model '{}'", m.name), m)))
            .collect();
        let settings = self
            .router_settings
            .clone()
            .unwrap_or_else(|| router_settings(&config.router));
        let mut router = RouterConfig::new(settings);
        for (alias, target) in &config.router.model_group_alias {
            router = router.alias(alias.clone(), target.group.clone());
        }
        let mut overrides = HashMap::new();
        let mut api_bases = HashMap::new();
        let mut groups: Vec<(String, Vec<Deployment>)> = Vec::new();
        let mut wildcards: Vec<WildcardTemplate> = Vec::new();
        let unknown = |key: &str, provider: &str| ServerError::UnknownProvider {
            key: format!("{key}.model"),
            provider: provider.to_owned(),
            available: available(),
        };
        for (key, entry) in &entries {
            let (name, settings) = (entry.name.as_str(), &entry.deployment);
            let factory = llmux_core::find_provider(&settings.provider)
                .ok_or_else(|| unknown(key, &settings.provider))?;
            if let Some(prefix) = name.strip_suffix("/*").or((name == "*").then_some("")) {
                wildcards.push(WildcardTemplate {
                    prefix: prefix.to_owned(),
                    factory,
                    template: (*settings).clone(),
                });
                continue;
            }
            let settings = &with_max_output(table, settings);
            let provider = (factory.build)(settings).map_err(|source| ServerError::Deployment {
                key: key.clone(),
                source,
            })?;
            let group = match groups.iter_mut().find(|(g, _)| g == name) {
                Some(g) => g,
                None => {
                    groups.push(((*name).to_owned(), Vec::new()));
                    groups.last_mut().expect("just pushed")
                }
            };
            let id = entry
                .id
                .clone()
                .unwrap_or_else(|| format!("{name}#{}", group.1.len()));
            let price = deployment_price(table, entry, key)?;
            let mut d = Deployment::new(id, provider);
            let r = &entry.routing;
            d.weight = r.weight;
            d.rpm = r.rpm;
            d.tpm = r.tpm;
            d.order = r.order.unwrap_or(1);
            d.tags.clone_from(&r.tags);
            d.timeout = settings.timeout;
            d.stream_timeout = r.stream_timeout;
            d.max_input_tokens = entry
                .max_input_tokens
                .or_else(|| price.as_ref().and_then(|p| p.context_window()));
            if let Some(p) = &price {
                d.input_cost_per_token_pico = p.rates.input_per_token.map(|u| u.pico_usd());
                d.output_cost_per_token_pico = p.rates.output_per_token.map(|u| u.pico_usd());
            }
            if let (Some(p), true) = (price, entry.prices.is_some() || entry.base_model.is_some()) {
                overrides.insert(d.id.clone(), Arc::new(p));
            }
            if let Some(base) = &settings.api_base {
                api_bases.insert(d.id.clone(), base.clone());
            }
            group.1.push(d);
        }
        let any = !entries.is_empty();
        let litellm_headers = config.settings.litellm_compat_headers;
        if self.env_wildcards.unwrap_or(!any) {
            let env = &*self.env;
            for f in llmux_core::providers() {
                if wildcards.iter().any(|w| w.prefix == f.name) {
                    continue;
                }
                if let Some(template) = (f.from_env)(env) {
                    wildcards.push(WildcardTemplate {
                        prefix: f.name.to_owned(),
                        factory: f,
                        template,
                    });
                }
            }
        }
        for (name, deployments) in groups {
            router = router.group(name, deployments);
        }
        for w in &wildcards {
            let (factory, template, prefix) = (w.factory, w.template.clone(), w.prefix.clone());
            let pattern = if prefix.is_empty() {
                "*".to_owned()
            } else {
                format!("{prefix}/*")
            };
            router = router.wildcard(Wildcard::new(pattern, move |model: &str| {
                // `prefix/*` serves `prefix/<model>`; `*` passes the whole name on.
                let own = if prefix.is_empty() {
                    model
                } else {
                    model
                        .strip_prefix(prefix.as_str())
                        .and_then(|m| m.strip_prefix('/'))
                        .unwrap_or(model)
                };
                (factory.build)(&with_max_output(table, &template.for_model(own)))
            }));
        }
        let router = ModelRouter::new(router).map_err(ServerError::Router)?;
        let models = ModelTable::new(
            router,
            Pricing {
                table,
                meter: meter.clone(),
            },
            overrides,
            wildcards,
            api_bases,
        );
        Ok(AppState {
            models,
            master_key: config.server.master_key.clone(),
            meter,
            litellm_headers,
            access: self.access.clone(),
        })
    }
}

/// `settings` with `params.max_output_tokens` filled from the price table when the
/// deployment does not set it: providers that must always send an output limit (Anthropic)
/// use the model's own maximum rather than a fixed default.
fn with_max_output(table: &PriceTable, settings: &DeploymentSettings) -> DeploymentSettings {
    let mut s = settings.clone();
    if !s.params.contains_key("max_output_tokens")
        && let Some(max) = table
            .lookup(&s.provider, &s.model)
            .and_then(ModelPrice::max_output)
    {
        s.params.insert("max_output_tokens".into(), max.into());
    }
    s
}

/// The router settings a config asks for.
fn router_settings(c: &llmux_config::RouterSettings) -> RouterSettings {
    use llmux_config::RoutingStrategy as C;
    use llmux_router::Strategy as R;
    RouterSettings {
        strategy: match c.strategy {
            C::SimpleShuffle => R::SimpleShuffle,
            C::LeastBusy => R::LeastBusy,
            C::LatencyBased => R::LatencyBased,
            C::UsageBased => R::UsageBased,
            C::CostBased => R::CostBased,
        },
        num_retries: c.num_retries,
        retry_policy: c.retry_policy.iter().collect(),
        allowed_fails: Some(c.allowed_fails),
        cooldown_time: c.cooldown_time,
        timeout: c.timeout,
        stream_first_chunk_timeout: c.stream_timeout,
        stream_stall_timeout: c.stall_timeout,
        fallbacks: c.fallbacks.clone(),
        context_window_fallbacks: c.context_window_fallbacks.clone(),
        content_policy_fallbacks: c.content_policy_fallbacks.clone(),
        default_fallbacks: c.default_fallbacks.clone(),
        stream_resume: c.stream_resume,
        ..RouterSettings::default()
    }
}

/// A deployment's price: the table's entry for its model (or for its `base_model`), with
/// the config's per-token prices laid over it.
fn deployment_price(
    table: &PriceTable,
    entry: &ModelEntry,
    key: &str,
) -> Result<Option<ModelPrice>, ServerError> {
    let d = &entry.deployment;
    let base = table
        .lookup_with_base_model(&d.provider, &d.model, entry.base_model.as_deref())
        .cloned();
    let Some(p) = &entry.prices else {
        return Ok(base);
    };
    let parse = |field: &str, v: &Option<llmux_config::Decimal>| {
        v.as_ref()
            .map(|d| UnitPrice::from_usd_str(d.as_str()))
            .transpose()
            .map_err(|e| ServerError::Prices(format!("{key}.{field}: {e}")))
    };
    let input = parse("input_cost_per_token", &p.input_cost_per_token)?;
    let output = parse("output_cost_per_token", &p.output_cost_per_token)?;
    let mut price = base.unwrap_or_default();
    let top = ModelPrice::per_token(
        input
            .or(price.rates.input_per_token)
            .unwrap_or(UnitPrice::ZERO),
        output
            .or(price.rates.output_per_token)
            .unwrap_or(UnitPrice::ZERO),
    );
    price.apply_override(&top);
    Ok(Some(price))
}
