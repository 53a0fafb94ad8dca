//! The [`Gateway`]: config + providers + HTTP server, composed in a few lines.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = llmux_config::Config::load("llmux.yaml".as_ref())?;
//! let gateway = llmux_server::Gateway::builder().config(config).build()?;
//! gateway.serve_until_signal().await?;
//! # Ok(()) }
//! ```
//!
//! Models can also be added in code; [`Gateway::spawn`] serves in the background:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! llmux_provider_mock::link();
//! let gateway = llmux_server::Gateway::builder()
//!     .model("fast", llmux_core::DeploymentSettings::new("mock", "echo"))
//!     .observability(false)
//!     .build()?;
//! assert_eq!(gateway.routes().0, ["fast"]);
//! let running = gateway.spawn("127.0.0.1:0".parse()?).await?;
//! assert!(running.url().starts_with("http://127.0.0.1:"));
//! running.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! The models are built by `llmux_engine::build_models` and calls run through
//! `llmux_engine::chat`/`embed`: the SDK's `llmux::Client` takes the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use llmux_config::{Config, ServerConfig};
use llmux_core::{CallSink, DeploymentSettings};
use llmux_cost::{DEFAULT_SINK_QUEUE, Meter, MeterWorkers, PriceTable};
use llmux_router::{CooldownBoard, RouterSettings};
use tokio::net::TcpListener;

use crate::error::ServerError;
use crate::handlers::{self, AppState, Shared};

/// How often the shared cooldown board is read (and the Redis metrics refreshed).
const COOLDOWN_POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

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
    /// Where deployment cooldowns are shared with other gateways.
    board: Option<Arc<dyn CooldownBoard>>,
    /// Redis, when configured: its health goes to the metrics.
    redis: Option<Arc<llmux_store::RedisCounters>>,
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
    board: Option<Arc<dyn CooldownBoard>>,
    redis: Option<Arc<llmux_store::RedisCounters>>,
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
            board: None,
            redis: None,
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
        let app = self.router();
        self.serve_app(app, listener, shutdown).await
    }

    /// [`Gateway::serve`] with an app of the caller's: [`Gateway::router`] plus the routes,
    /// layers or middleware a custom gateway binary adds. Shutdown, SIGHUP reloads and the
    /// draining of sinks work as for [`Gateway::serve`].
    ///
    /// ```no_run
    /// # async fn run(gateway: llmux_server::Gateway) -> Result<(), llmux_server::ServerError> {
    /// let app = gateway
    ///     .router()
    ///     .route("/hello", axum::routing::get(|| async { "hello" }));
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
    /// gateway.serve_app(app, listener, llmux_server::shutdown_signal()).await
    /// # }
    /// ```
    pub async fn serve_app(
        self,
        app: Router,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let grace = self.server.shutdown_grace;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        // `into_make_service` finalises the routes once; serving a bare `Router` would
        // rebuild its route table for every connection (about 20 KB and a hash map of every
        // route per connection: a fifth of the memory an open stream costs).
        let server = axum::serve(listener, app.into_make_service()).with_graceful_shutdown(signal);
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
        let poller = (self.inputs.board.is_some() || self.inputs.redis.is_some()).then(|| {
            tokio::spawn(poll_shared_state(
                Arc::downgrade(&self.shared),
                self.inputs.board.clone(),
                self.inputs.redis.clone(),
            ))
        });
        drop(self.shared);
        drop(self.inputs);
        let result = tokio::select! {
            r = server => r.map_err(ServerError::Io),
            () = deadline => {
                tracing::warn!("grace period over: closing the remaining connections");
                Ok(())
            }
        };
        for task in [reloader, poller].into_iter().flatten() {
            task.abort();
            let _ = task.await;
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
        let app = self.router();
        self.spawn_app(app, addr).await
    }

    /// [`Gateway::spawn`] serving `app` ([`Gateway::router`] extended by the caller; see
    /// [`Gateway::serve_app`]).
    pub async fn spawn_app(
        self,
        app: Router,
        addr: SocketAddr,
    ) -> Result<RunningGateway, ServerError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_app(app, listener, async move {
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

/// Every [`COOLDOWN_POLL_EVERY`]: merge the cooldowns other gateways published into the
/// router in force, and refresh the Redis metrics. Ends when the gateway is gone.
async fn poll_shared_state(
    shared: std::sync::Weak<Shared>,
    board: Option<Arc<dyn CooldownBoard>>,
    redis: Option<Arc<llmux_store::RedisCounters>>,
) {
    let mut tick = tokio::time::interval(COOLDOWN_POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(router) = shared.upgrade().map(|s| s.load().models.router.clone()) else {
            return;
        };
        if let Some(board) = &board {
            let ids = router.deployment_ids();
            let active = board.active(&ids).await;
            if !active.is_empty() {
                router.apply_shared_cooldowns(&active);
            }
        }
        if let Some(redis) = &redis {
            redis.record_metrics();
        }
    }
}

/// Deployment cooldowns shared through Redis (`<prefix>cooldown:<deployment id>`, expiring
/// with the cooldown). Publishing runs in a spawned task, so the router never waits.
#[derive(Debug)]
struct RedisCooldownBoard(Arc<llmux_store::RedisCounters>);

impl CooldownBoard for RedisCooldownBoard {
    fn publish(&self, deployment_id: &str, until_unix_ms: u64) {
        let left = until_unix_ms.saturating_sub(llmux_router::unix_ms_now());
        if left == 0 {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (redis, id) = (self.0.clone(), deployment_id.to_owned());
        rt.spawn(async move {
            let left = std::time::Duration::from_millis(left);
            redis.publish_cooldown(&id, left, until_unix_ms).await;
        });
    }

    fn active<'a>(&'a self, deployment_ids: &'a [String]) -> llmux_router::ActiveCooldowns<'a> {
        Box::pin(async move {
            let now = llmux_router::unix_ms_now();
            self.0
                .cooldowns(deployment_ids)
                .await
                .into_iter()
                .map(|(id, left)| llmux_router::SharedCooldown {
                    deployment_id: id,
                    until_unix_ms: now
                        .saturating_add(u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
                })
                .collect()
        })
    }
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

    /// Share limits, in-flight counts, budget spend and deployment cooldowns with every
    /// gateway on this Redis: sets [`GatewayBuilder::counters`] and a cooldown board, and
    /// exports `llmux_redis_up` / `llmux_redis_fallbacks_total`. While Redis is unreachable
    /// the gateway keeps serving with per-process counters and cooldowns.
    pub fn redis(mut self, counters: Arc<llmux_store::RedisCounters>) -> Self {
        self.counters = Some(counters.clone());
        self.board = Some(Arc::new(RedisCooldownBoard(counters.clone())));
        self.redis = Some(counters);
        self
    }

    /// Share deployment cooldowns through `board`: a cooldown this gateway starts is
    /// published, and the others' are merged every 250 ms (never on the request path).
    pub fn cooldown_board(mut self, board: Arc<dyn CooldownBoard>) -> Self {
        self.board = Some(board);
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
            let set = llmux_engine::config_sinks(&self.config, &*self.env).map_err(build_error)?;
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
        // Soft-budget crossings reach the same sinks as call records.
        if let Some(access) = &access {
            access.set_meter(meter.clone());
        }
        let inputs = Inputs {
            extra: self.extra,
            env: self.env,
            env_wildcards: self.env_wildcards,
            prices: self.prices,
            router_settings: self.router_settings,
            meter,
            source: self.config.source.clone(),
            access,
            board: self.board,
            redis: self.redis,
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
    /// Everything a configuration puts in force, built (and checked) in full. The models
    /// are built by `llmux_engine::build_models`, as the SDK's `Client` builds them.
    fn state(&self, config: &Config) -> Result<AppState, ServerError> {
        let options = llmux_engine::TableOptions {
            extra: &self.extra,
            env_wildcards: self.env_wildcards,
            prices: self.prices,
            router_settings: self.router_settings.as_ref(),
            meter: self.meter.clone(),
        };
        let models =
            llmux_engine::build_models(config, options, &*self.env).map_err(build_error)?;
        if let Some(board) = &self.board {
            models.router.share_cooldowns(board.clone());
        }
        Ok(AppState {
            models,
            master_key: config.server.master_key.clone(),
            meter: self.meter.clone(),
            litellm_headers: config.settings.litellm_compat_headers,
            access: self.access.clone(),
        })
    }
}

/// The engine's build errors, as the server has always named them.
fn build_error(e: llmux_engine::BuildError) -> ServerError {
    use llmux_engine::BuildError as B;
    match e {
        B::UnknownProvider {
            key,
            provider,
            available,
        } => ServerError::UnknownProvider {
            key,
            provider,
            available,
        },
        B::Deployment { key, source } => ServerError::Deployment { key, source },
        B::Router(e) => ServerError::Router(e),
        B::Prices(m) => ServerError::Prices(m),
        B::Sinks(m) => ServerError::Observability(m),
        other => ServerError::Reload(other.to_string()),
    }
}
