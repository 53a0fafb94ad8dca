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
use llmux_config::{Config, ServerConfig};
use llmux_core::{CallSink, DeploymentSettings};
use llmux_cost::{DEFAULT_SINK_QUEUE, Meter, MeterWorkers, PriceTable};
use tokio::net::TcpListener;

use crate::error::ServerError;
use crate::handlers::{self, AppState};
use crate::models::{AddError, ModelTable, Pricing};

/// How long a stopped gateway waits for its sinks to take the last records.
const SINK_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A built gateway, ready to serve.
#[derive(Debug, Clone)]
pub struct Gateway {
    state: Arc<AppState>,
    server: ServerConfig,
    workers: Arc<std::sync::Mutex<Option<MeterWorkers>>>,
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
        }
    }

    /// The metering point (records emitted, drops per sink, unknown-model lookups).
    pub fn meter(&self) -> &Meter {
        &self.state.meter
    }

    /// The model table (for `llmux check` and tests).
    pub fn models(&self) -> &ModelTable {
        &self.state.models
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
            .fallback(handlers::not_found)
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .layer(DefaultBodyLimit::max(self.server.max_body_bytes))
            .with_state(self.state.clone())
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
        drop(self.state);
        let result = tokio::select! {
            r = server => r.map_err(ServerError::Io),
            () = deadline => {
                tracing::warn!("grace period over: closing the remaining connections");
                Ok(())
            }
        };
        if let Some(w) = workers
            && tokio::time::timeout(SINK_DRAIN_TIMEOUT, w.drain())
                .await
                .is_err()
        {
            tracing::error!("call-record sinks did not finish in time: some records may be lost");
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

    /// Build every deployment now: a bad one fails here, not on the first request.
    /// With sinks, call it inside a tokio runtime (each sink gets a task).
    pub fn build(self) -> Result<Gateway, ServerError> {
        let (meter, workers) = Meter::start(self.sinks, DEFAULT_SINK_QUEUE);
        let table = self.prices.unwrap_or_else(PriceTable::embedded);
        let mut table = ModelTable::new(Pricing {
            table,
            meter: meter.clone(),
        });
        let available = || {
            let mut names: Vec<_> = llmux_core::providers().map(|f| f.name).collect();
            names.sort_unstable();
            names.join(", ")
        };
        let entries = self
            .config
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("models[{i}]"), m.name.as_str(), &m.deployment))
            .chain(
                self.extra
                    .iter()
                    .map(|(n, s)| (format!("model '{n}'"), n.as_str(), s)),
            );
        let mut any = false;
        for (key, name, settings) in entries {
            any = true;
            table.add(name, settings).map_err(|e| match e {
                AddError::UnknownProvider => ServerError::UnknownProvider {
                    key: format!("{key}.model"),
                    provider: settings.provider.clone(),
                    available: available(),
                },
                AddError::Build(source) => ServerError::Deployment { key, source },
            })?;
        }
        if self.env_wildcards.unwrap_or(!any) {
            let env = &*self.env;
            for f in llmux_core::providers() {
                let already = table.wildcards().any(|(p, _)| p == f.name);
                if let (false, Some(template)) = (already, (f.from_env)(env)) {
                    table
                        .add(&format!("{}/*", f.name), &template)
                        .map_err(|e| match e {
                            AddError::Build(source) => ServerError::Deployment {
                                key: format!("environment ({} credentials)", f.name),
                                source,
                            },
                            AddError::UnknownProvider => ServerError::UnknownProvider {
                                key: "environment".into(),
                                provider: f.name.into(),
                                available: available(),
                            },
                        })?;
                }
            }
        }
        Ok(Gateway {
            state: Arc::new(AppState {
                models: table,
                master_key: self.config.server.master_key.clone(),
                meter,
            }),
            server: self.config.server,
            workers: Arc::new(std::sync::Mutex::new(Some(workers))),
        })
    }
}
