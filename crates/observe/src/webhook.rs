//! A generic callback: batches of call records POSTed as JSON to a URL.
//!
//! The body is a JSON array of [`CallRecord`]s exactly as they serialize (`request_id`,
//! `model_group`, `deployment`, `provider_model`, tokens, `cost_nano_usd`, …), with
//! `Content-Type: application/json` and any configured headers. A batch answered with a
//! non-2xx status or not answered at all is retried once when that may help (timeouts,
//! connection failures, 408, 429, 5xx), then dropped; both are logged and counted.
//!
//! A budget alert goes in a request of its own, right away: the body is one JSON object
//! `{"type":"budget_alert","scope":…,"id":…,"spend_nano":…,"soft_budget_nano":…,
//! "max_budget_nano":…,"at_ms":…}` (a [`BudgetAlert`] as it serializes), so a receiver
//! tells it from a batch by the body being an object rather than an array.
//!
//! The URL is held as a [`Secret`]: callback URLs often carry a token in their path or
//! query.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use llmux_core::{BudgetAlert, CallRecord, CallSink, Secret};
use llmux_http::reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::batch::{BatchConfig, Batcher, Export, ExportError, ExportStats, send};
use crate::{ConfigError, env};

/// Where and how [`WebhookSink`] posts.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The sink's name in logs and metrics (`webhook` by default); a fixed word, since it
    /// becomes a metric label.
    pub name: String,
    /// The URL to POST to. Never logged.
    pub url: Secret,
    /// Headers sent with every request (e.g. `authorization`). Never logged.
    pub headers: Vec<(String, Secret)>,
    /// Batching.
    pub batch: BatchConfig,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("headers", &header_names)
            .field("batch", &self.batch)
            .finish()
    }
}

impl WebhookConfig {
    /// POST to `url`, with no extra headers and default batching.
    pub fn new(url: Secret) -> Self {
        Self {
            name: "webhook".to_owned(),
            url,
            headers: Vec::new(),
            batch: BatchConfig {
                max_batch: 100,
                ..BatchConfig::default()
            },
        }
    }

    /// Add a header sent with every request.
    pub fn with_header(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.headers.push((name.into(), value));
        self
    }
}

/// A [`CallSink`] POSTing batches of records as JSON to a URL. Failures are logged and
/// counted and never reach a call.
pub struct WebhookSink {
    name: String,
    batcher: Batcher,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("batcher", &self.batcher)
            .finish()
    }
}

impl WebhookSink {
    /// Start the sink's exporter task on the current tokio runtime. Fails on an invalid URL
    /// or header, or outside a runtime.
    pub fn new(config: WebhookConfig) -> Result<Self, ConfigError> {
        let setting = format!("the {} URL", config.name);
        env::check_url(config.url.expose(), &setting)?;
        let mut headers = env::header_map(&config.headers)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let exporter = WebhookExporter {
            name: config.name.clone(),
            url: config.url,
            headers,
        };
        Ok(Self {
            name: config.name,
            batcher: Batcher::start(exporter, config.batch)?,
        })
    }

    /// Send every record received so far, and wait for it (e.g. before shutting down).
    pub async fn flush(&self) {
        self.batcher.flush().await;
    }

    /// What the sink has sent, retried and dropped so far.
    pub fn stats(&self) -> ExportStats {
        self.batcher.stats()
    }
}

#[async_trait]
impl CallSink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn record(&self, record: Arc<CallRecord>) {
        self.batcher.push(record).await;
    }

    async fn alert(&self, alert: Arc<BudgetAlert>) {
        self.batcher.push_alert(alert).await;
    }
}

struct WebhookExporter {
    name: String,
    url: Secret,
    headers: HeaderMap,
}

#[async_trait]
impl Export for WebhookExporter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError> {
        let records: Vec<&CallRecord> = batch.iter().map(|r| &**r).collect();
        let body = serde_json::to_vec(&records).map_err(|e| {
            ExportError::fatal(format!("{}: could not encode records: {e}", self.name))
        })?;
        let request = llmux_http::client()
            .post(self.url.expose())
            .headers(self.headers.clone())
            .body(body);
        send(&self.name, request).await?;
        Ok(0)
    }

    async fn export_alert(&self, alert: &BudgetAlert) -> Result<(), ExportError> {
        let body = serde_json::to_vec(alert).map_err(|e| {
            ExportError::fatal(format!("{}: could not encode an alert: {e}", self.name))
        })?;
        let request = llmux_http::client()
            .post(self.url.expose())
            .headers(self.headers.clone())
            .body(body);
        send(&self.name, request).await?;
        Ok(())
    }
}
