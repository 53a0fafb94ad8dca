//! [`Client`]: llmux inside a Rust program. The same configuration files as the gateway,
//! the same router (strategies, retries, cooldowns, fallbacks, stream resumption), the
//! same metering (one priced `CallRecord` per call) and the same sinks — it runs
//! `llmux-engine`, the call path the gateway runs, minus HTTP.
//!
//! Must not: implement routing or metering of its own; everything a call does happens in
//! `llmux_engine::{chat, embed}`, which the gateway calls too.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmux_config::{Config, ModelEntry};
use llmux_core::{
    CallContext, CallSink, ChatRequest, ChatResponse, DeploymentSettings, EmbeddingRequest,
    EmbeddingResponse,
};
use llmux_cost::{DEFAULT_SINK_QUEUE, Meter, MeterWorkers, Money, PriceTable};
use llmux_engine::{BuildError, CallMeta, ChatRun, ModelTable, Scope, TableOptions};
use llmux_router::{RouterSettings, Trace};

use crate::error::ClientError;
use crate::stream::CompletionStream;

/// How long [`Client::shutdown`] waits for sinks to take the last records.
const SINK_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer with what llmux knows about the call that produced it. Dereferences to the
/// answer.
#[derive(Debug, Clone)]
pub struct Metered<T> {
    /// The answer.
    pub response: T,
    /// The call's id (its `CallRecord`'s `request_id`).
    pub request_id: String,
    /// What the router did: the deployment that answered, attempts, retries, fallbacks.
    pub trace: Trace,
    /// What the call cost (`None`: no price known for the model that answered).
    pub cost: Option<Money>,
}

impl<T> std::ops::Deref for Metered<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.response
    }
}

/// Routes, meters and records calls in-process. Cheap to clone (one shared state); build
/// it once ([`Client::from_config`], [`Client::builder`]) and share it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use llmux::{ChatRequest, Client, DeploymentSettings};
///
/// let client = Client::builder()
///     .model_group("fast", [DeploymentSettings::new("mock", "echo")])
///     .build()?;
/// let answer = client
///     .chat_with_meta(ChatRequest::new("fast").user("hello"))
///     .await?;
/// assert_eq!(answer.text(), Some("hello"));
/// assert_eq!(answer.trace.deployment_id.as_deref(), Some("fast#0"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    models: Arc<ModelTable>,
    workers: Mutex<Option<MeterWorkers>>,
    exporters: Option<llmux_observe::SinkSet>,
    warnings: Vec<String>,
}

/// Reads an environment variable (injected so tests need not touch the process env).
type EnvFn = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds a [`Client`]: models in code and/or from a config, routing settings, sinks.
pub struct ClientBuilder {
    config: Config,
    fallbacks: Vec<(String, Vec<String>)>,
    router_settings: Option<RouterSettings>,
    sinks: Vec<Arc<dyn CallSink>>,
    prices: Option<&'static PriceTable>,
    env: EnvFn,
    env_wildcards: Option<bool>,
    observability: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("fallbacks", &self.fallbacks)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Start building (providers of this build linked).
    pub fn builder() -> ClientBuilder {
        crate::link_providers();
        ClientBuilder {
            config: Config::default(),
            fallbacks: Vec::new(),
            router_settings: None,
            sinks: Vec::new(),
            prices: None,
            env: Box::new(|k| std::env::var(k).ok()),
            env_wildcards: None,
            observability: true,
        }
    }

    /// A client for the models, routing and callbacks of a config file — the same native
    /// or LiteLLM `config.yaml` the gateway reads (its `server` section is ignored). Call
    /// inside a tokio runtime: sinks start tasks.
    pub fn from_config(path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let config = Config::load(path.as_ref())?;
        Self::builder().config(config).build()
    }

    /// The model table in force (groups, aliases, wildcards, prices).
    pub fn models(&self) -> &ModelTable {
        &self.inner.models
    }

    /// The metering point: records emitted, drops per sink.
    pub fn meter(&self) -> &Meter {
        self.inner.models.meter()
    }

    /// What the config asked for that llmux does not support, and sink warnings.
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    fn scope(&self) -> Scope {
        self.inner.models.clone()
    }

    fn begin(operation: &'static str) -> (CallMeta, CallContext) {
        let id = uuid::Uuid::new_v4().to_string();
        let cx = CallContext {
            request_id: id.clone(),
            ..CallContext::default()
        };
        (CallMeta::new(id, operation), cx)
    }

    fn failed(
        &self,
        meta: &CallMeta,
        e: llmux_core::Error,
        trace: Option<Trace>,
        embedding: bool,
    ) -> ClientError {
        llmux_engine::record_failure(&self.inner.models, meta, &e, trace.as_ref(), embedding);
        ClientError::new(e, trace)
    }

    /// Route and record one chat call; the answer only. A `stream: true` in the request is
    /// ignored (use [`Client::chat_stream`]).
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, ClientError> {
        self.chat_with_meta(req).await.map(|m| m.response)
    }

    /// [`Client::chat`], with the call's id, trace and cost.
    pub async fn chat_with_meta(
        &self,
        mut req: ChatRequest,
    ) -> Result<Metered<ChatResponse>, ClientError> {
        if req.is_stream() {
            req.stream = None;
            req.stream_options = None;
        }
        let (mut meta, cx) = Self::begin("chat");
        if let Err(e) = llmux_engine::attribute_chat(&mut meta, &req, None) {
            return Err(self.failed(&meta, e, None, false));
        }
        match llmux_engine::chat(self.scope(), req, &cx, &mut meta).await {
            Ok(ChatRun::Full {
                response,
                trace,
                cost,
            }) => Ok(Metered {
                response,
                request_id: meta.request_id,
                trace,
                cost,
            }),
            Ok(ChatRun::Stream(_)) => Err(ClientError::from(llmux_core::Error::internal(
                "a non-streaming call was routed as a stream",
            ))),
            Err((e, trace)) => Err(self.failed(&meta, e, trace, false)),
        }
    }

    /// Route one chat call as a stream of chunks. The stream is routed (and failed over
    /// before its first chunk) before this returns; after that, chunks arrive as the
    /// upstream sends them, ending with a usage-only chunk. Dropping the stream cancels
    /// the upstream call; the call is recorded when the stream ends or is dropped.
    pub async fn chat_stream(&self, mut req: ChatRequest) -> Result<CompletionStream, ClientError> {
        req.stream = Some(true);
        let (mut meta, cx) = Self::begin("chat_stream");
        if let Err(e) = llmux_engine::attribute_chat(&mut meta, &req, None) {
            return Err(self.failed(&meta, e, None, false));
        }
        match llmux_engine::chat(self.scope(), req, &cx, &mut meta).await {
            Ok(ChatRun::Stream(s)) => Ok(CompletionStream::new(s)),
            Ok(ChatRun::Full { .. }) => Err(ClientError::from(llmux_core::Error::internal(
                "a streaming call was answered whole",
            ))),
            Err((e, trace)) => Err(self.failed(&meta, e, trace, false)),
        }
    }

    /// Route and record one embeddings call.
    pub async fn embed(&self, req: EmbeddingRequest) -> Result<EmbeddingResponse, ClientError> {
        self.embed_with_meta(req).await.map(|m| m.response)
    }

    /// [`Client::embed`], with the call's id, trace and cost.
    pub async fn embed_with_meta(
        &self,
        req: EmbeddingRequest,
    ) -> Result<Metered<EmbeddingResponse>, ClientError> {
        let (mut meta, cx) = Self::begin("embeddings");
        if let Err(e) = llmux_engine::attribute_embed(&mut meta, &req, None) {
            return Err(self.failed(&meta, e, None, true));
        }
        match llmux_engine::embed(&self.inner.models, req, &cx, &meta).await {
            Ok((response, trace, cost)) => Ok(Metered {
                response,
                request_id: meta.request_id,
                trace,
                cost,
            }),
            Err((e, trace)) => Err(self.failed(&meta, e, trace, true)),
        }
    }

    /// Hand every record to the sinks and flush exporters (Langfuse, OTLP, …), waiting at
    /// most 10 s. Call last: when other clones of this client (or streams it returned) are
    /// still alive, their records cannot be waited for and the wait times out.
    pub async fn shutdown(self) {
        let workers = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let exporters = self.inner.exporters.clone();
        drop(self);
        if let Some(w) = workers
            && tokio::time::timeout(SINK_DRAIN_TIMEOUT, w.drain())
                .await
                .is_err()
        {
            tracing::error!("call-record sinks did not finish in time: some records may be lost");
        }
        if let Some(set) = exporters
            && tokio::time::timeout(SINK_DRAIN_TIMEOUT, set.flush())
                .await
                .is_err()
        {
            tracing::error!("exporters did not flush in time");
        }
    }
}

impl ClientBuilder {
    /// Start from a loaded configuration (models, router settings, aliases, callbacks,
    /// price table); models and fallbacks added on the builder come on top.
    pub fn config(mut self, config: Config) -> Self {
        let extra = std::mem::take(&mut self.config.models);
        self.config = config;
        self.config.models.extend(extra);
        self
    }

    /// Serve the model group `name` with these deployments (ids `name#0`, `name#1`, … as
    /// for config entries). Call again with the same name to add deployments.
    pub fn model_group(
        mut self,
        name: impl Into<String>,
        deployments: impl IntoIterator<Item = DeploymentSettings>,
    ) -> Self {
        let name = name.into();
        self.config.models.extend(
            deployments
                .into_iter()
                .map(|d| ModelEntry::new(name.clone(), d)),
        );
        self
    }

    /// Serve one config entry (with its id, weight, rpm/tpm, order, tags or prices).
    pub fn model(mut self, entry: ModelEntry) -> Self {
        self.config.models.push(entry);
        self
    }

    /// When the group `from` fails (after its retries), try these groups in order.
    pub fn fallbacks<S: Into<String>>(
        mut self,
        from: impl Into<String>,
        to: impl IntoIterator<Item = S>,
    ) -> Self {
        self.fallbacks
            .push((from.into(), to.into_iter().map(Into::into).collect()));
        self
    }

    /// Router settings (strategy, retries, cooldowns, timeouts, fallbacks, `seed`) instead
    /// of the config's `router` section; fallbacks added with
    /// [`ClientBuilder::fallbacks`] are laid over them.
    pub fn router_settings(mut self, settings: RouterSettings) -> Self {
        self.router_settings = Some(settings);
        self
    }

    /// Send every call record to `sink` too (a callback, a spend log, a test collector).
    pub fn sink(mut self, sink: Arc<dyn CallSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Price calls from `table` instead of the embedded price table (it lives for the rest
    /// of the process).
    pub fn prices(mut self, table: PriceTable) -> Self {
        self.prices = Some(Box::leak(Box::new(table)));
        self
    }

    /// Read provider credentials (for `provider/*` routes) and sink settings from `env`
    /// instead of the process environment.
    pub fn env(mut self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Box::new(env);
        self
    }

    /// Add a `provider/*` route for every linked provider the environment configures
    /// (default: only when no model is configured — `Client::builder().build()` then serves
    /// `openai/gpt-4o` when `OPENAI_API_KEY` is set, and `mock/*` always).
    pub fn env_wildcards(mut self, on: bool) -> Self {
        self.env_wildcards = Some(on);
        self
    }

    /// The sinks every llmux process has (metrics; OpenTelemetry and Langfuse when their
    /// environment variables are set) and those the config's `settings.callbacks` name.
    /// On by default, as in the gateway; off leaves only the sinks added with
    /// [`ClientBuilder::sink`].
    pub fn observability(mut self, on: bool) -> Self {
        self.observability = on;
        self
    }

    /// Build every deployment now (a bad one fails here, not on the first call) and start
    /// the sinks. With sinks, call it inside a tokio runtime.
    pub fn build(self) -> Result<Client, BuildError> {
        let mut sinks = self.sinks;
        let runtime = tokio::runtime::Handle::try_current().is_ok();
        let mut warnings = self.config.warnings.clone();
        let exporters = if self.observability {
            if !runtime {
                return Err(BuildError::NoRuntime);
            }
            let set = llmux_engine::config_sinks(&self.config, &*self.env)?;
            sinks.extend(set.sinks().iter().cloned());
            warnings.extend(set.warnings().iter().cloned());
            Some(set)
        } else {
            None
        };
        if !sinks.is_empty() && !runtime {
            return Err(BuildError::NoRuntime);
        }
        let (meter, workers) = Meter::start(sinks, DEFAULT_SINK_QUEUE);
        let mut settings = self
            .router_settings
            .unwrap_or_else(|| llmux_engine::router_settings(&self.config.router));
        settings.fallbacks.extend(self.fallbacks);
        let options = TableOptions {
            extra: &[],
            env_wildcards: self.env_wildcards,
            prices: self.prices,
            router_settings: Some(&settings),
            meter,
        };
        let models = llmux_engine::build_models(&self.config, options, &*self.env)?;
        for w in &self.config.warnings {
            tracing::warn!("{w}");
        }
        Ok(Client {
            inner: Arc::new(Inner {
                models: Arc::new(models),
                workers: Mutex::new(Some(workers)),
                exporters,
                warnings,
            }),
        })
    }
}

#[cfg(all(test, feature = "mock"))]
mod tests {
    use std::sync::Mutex;

    use futures_util::StreamExt;
    use llmux_core::{CallRecord, CallSink, ErrorKind};

    use super::*;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<Arc<CallRecord>>>);

    #[async_trait::async_trait]
    impl CallSink for Collect {
        fn name(&self) -> &str {
            "collect"
        }
        async fn record(&self, r: Arc<CallRecord>) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(r);
        }
    }

    impl Collect {
        async fn wait_for(&self, n: usize) -> Vec<Arc<CallRecord>> {
            for _ in 0..500 {
                let got = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if got.len() >= n {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let got = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    assert_eq!(got.len(), n, "{got:#?}");
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("expected {n} records");
        }
    }

    fn failing(model: &str, exception: &str) -> DeploymentSettings {
        let mut d = DeploymentSettings::new("mock", model);
        d.params.insert("mock_response".into(), exception.into());
        d
    }

    fn client(sink: &Arc<Collect>) -> Client {
        Client::builder()
            .observability(false)
            .model_group("fast", [DeploymentSettings::new("mock", "echo")])
            .model_group("down", [failing("down", "litellm.ServiceUnavailableError")])
            .model_group("limited", [failing("limited", "litellm.RateLimitError")])
            .model_group("backup", [DeploymentSettings::new("mock", "backup")])
            .fallbacks("down", ["backup"])
            .router_settings(RouterSettings {
                num_retries: 0,
                seed: Some(1),
                ..RouterSettings::default()
            })
            .sink(sink.clone())
            .build()
            .expect("builds")
    }

    #[tokio::test]
    async fn a_call_is_routed_and_recorded_once() {
        let sink = Arc::new(Collect::default());
        let c = client(&sink);
        let answer = c
            .chat_with_meta(ChatRequest::new("fast").user("hi").tag("t1").end_user("u9"))
            .await
            .expect("answers");
        assert_eq!(answer.text(), Some("hi"));
        assert_eq!(answer.trace.deployment_id.as_deref(), Some("fast#0"));
        let r = sink.wait_for(1).await;
        assert_eq!(r[0].request_id, answer.request_id);
        assert_eq!(
            (
                r[0].operation.as_str(),
                r[0].model_group.as_str(),
                r[0].status
            ),
            ("chat", "fast", 200)
        );
        assert_eq!(r[0].deployment.as_deref(), Some("fast#0"));
        assert_eq!(r[0].tags, ["t1"]);
        assert_eq!(r[0].end_user.as_deref(), Some("u9"));
        assert_eq!(
            r[0].prompt_tokens,
            answer.usage.as_ref().map_or(0, |u| u.prompt_tokens)
        );
    }

    #[tokio::test]
    async fn fallbacks_and_typed_errors() {
        let sink = Arc::new(Collect::default());
        let c = client(&sink);
        let fell_back = c
            .chat_with_meta(ChatRequest::new("down").user("x"))
            .await
            .expect("falls back");
        assert_eq!(fell_back.trace.final_model_group.as_deref(), Some("backup"));
        assert_eq!(fell_back.trace.deployment_id.as_deref(), Some("backup#0"));

        let limited = c.chat(ChatRequest::new("limited").user("x")).await;
        let Err(ClientError::RateLimited {
            retry_after, trace, ..
        }) = limited
        else {
            panic!("expected RateLimited, got {limited:?}");
        };
        assert_eq!(retry_after, Some(Duration::from_secs(1)));
        assert_eq!(trace.map(|t| t.attempts), Some(1));

        let missing = c.chat(ChatRequest::new("nope").user("x")).await;
        assert!(
            matches!(missing, Err(ClientError::ModelNotFound { .. })),
            "{missing:?}"
        );
        let empty = c.chat(ChatRequest::new("fast")).await;
        assert!(
            matches!(empty, Err(ClientError::BadRequest { ref error, .. }) if error.param() == Some("messages")),
            "{empty:?}"
        );

        let records = sink.wait_for(4).await;
        let statuses: Vec<u16> = records.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 429, 404, 400]);
        assert_eq!(records[0].fallback.as_deref(), Some("backup"));
        assert_eq!(records[1].error_kind, Some(ErrorKind::RateLimited));
    }

    #[tokio::test]
    async fn a_stream_is_recorded_when_it_ends_or_is_dropped() {
        let sink = Arc::new(Collect::default());
        let c = client(&sink);
        let whole = c
            .chat_stream(ChatRequest::new("fast").user("stream me"))
            .await
            .expect("streams")
            .collect()
            .await
            .expect("collects");
        assert_eq!(whole.text(), Some("stream me"));
        assert!(whole.usage.is_some());

        let mut early = c
            .chat_stream(
                ChatRequest::new("fast")
                    .user("never finished")
                    .param("mock_chunk_delay_ms", 200),
            )
            .await
            .expect("streams");
        let first = early.next().await;
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
        let id = early.request_id().to_owned();
        drop(early);

        let records = sink.wait_for(2).await;
        assert_eq!(records[0].request_id, whole.request_id);
        assert_eq!(
            (records[0].operation.as_str(), records[0].status),
            ("chat_stream", 200)
        );
        assert!(!records[0].usage_estimated);
        assert_eq!(
            (records[1].request_id.as_str(), records[1].status),
            (id.as_str(), 499)
        );
    }

    #[tokio::test]
    async fn embeddings_are_routed_and_recorded() {
        let sink = Arc::new(Collect::default());
        let c = client(&sink);
        let req = EmbeddingRequest {
            model: "fast".into(),
            input: llmux_core::EmbeddingInput::Texts(vec!["a".into(), "b".into()]),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        };
        let out = c.embed_with_meta(req).await.expect("embeds");
        assert_eq!(out.data.len(), 2);
        let r = sink.wait_for(1).await;
        assert_eq!((r[0].operation.as_str(), r[0].status), ("embeddings", 200));
    }

    #[tokio::test]
    async fn a_config_file_and_the_builder_combine() {
        let dir = std::env::temp_dir().join(format!("llmux-sdk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("llmux.yaml");
        std::fs::write(
            &path,
            "models:\n  - name: cfg\n    model: mock/echo\n    id: from-file\nrouter:\n  num_retries: 0\n",
        )
        .expect("writes");
        let c = Client::builder()
            .observability(false)
            .config(Config::load(&path).expect("loads"))
            .model_group("code", [DeploymentSettings::new("mock", "echo")])
            .build()
            .expect("builds");
        assert_eq!(c.models().names(), ["cfg", "code"]);
        let a = c
            .chat_with_meta(ChatRequest::new("cfg").user("x"))
            .await
            .expect("answers");
        assert_eq!(a.trace.deployment_id.as_deref(), Some("from-file"));
        let bad = Client::builder()
            .model_group("x", [DeploymentSettings::new("nope", "m")])
            .observability(false)
            .build();
        assert!(
            matches!(bad, Err(BuildError::UnknownProvider { .. })),
            "{bad:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn building_with_sinks_outside_a_runtime_says_so() {
        let e = Client::builder().build().expect_err("no runtime");
        assert!(matches!(e, BuildError::NoRuntime), "{e:?}");
        assert!(Client::builder().observability(false).build().is_ok());
    }
}
