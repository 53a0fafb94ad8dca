//! The batching machinery the exporting sinks share.
//!
//! A sink's `record` hands the record to its exporter task through a bounded channel and
//! waits for room, so a slow exporter backs up into the metering queue in front of the sink
//! (which drops and counts when full) instead of growing memory. The task sends a batch when
//! it is full or when its oldest record has waited `interval`, retries a failed batch once
//! after `retry_backoff` when the failure may pass (a timeout, a refused connection, 408,
//! 429 or 5xx), and otherwise drops it — logged and counted in [`ExportStats`] and metrics.
//!
//! Budget alerts ([`Batcher::push_alert`]) share the queue but are not batched: each goes
//! in its own export ([`Export::export_alert`]) as soon as the task reaches it, with the
//! same single retry, and counts as one item in the stats.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use llmux_core::{BudgetAlert, CallRecord};
use llmux_http::reqwest;
use tokio::sync::{mpsc, oneshot};

use crate::ConfigError;
use crate::metric::{record_export, record_export_dropped, record_export_rejected};

/// How an exporting sink batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most records in one export request.
    pub max_batch: usize,
    /// Longest a record waits before its batch is sent.
    pub interval: Duration,
    /// Records held between the sink and its exporter task.
    pub queue: usize,
    /// Time limit of one export request.
    pub timeout: Duration,
    /// Pause before the single retry of a failed batch.
    pub retry_backoff: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            interval: Duration::from_secs(5),
            queue: 2048,
            timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// What an exporting sink has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Records in batches the receiver accepted.
    pub exported: u64,
    /// Export requests that succeeded (first try or retry).
    pub batches: u64,
    /// Batches retried after a first failure.
    pub retries: u64,
    /// Batches given up on.
    pub failed_batches: u64,
    /// Records in batches given up on.
    pub dropped: u64,
    /// Items the receiver refused one by one inside accepted requests.
    pub rejected: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    exported: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    failed_batches: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ExportStats {
        ExportStats {
            exported: self.exported.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// A failed export attempt. `reason` never holds a URL, header or credential.
#[derive(Debug)]
pub(crate) struct ExportError {
    pub(crate) retryable: bool,
    pub(crate) reason: String,
    /// The receiver's HTTP status, when it answered.
    pub(crate) status: Option<u16>,
}

impl ExportError {
    pub(crate) fn retryable(reason: impl Into<String>) -> Self {
        Self {
            retryable: true,
            reason: reason.into(),
            status: None,
        }
    }

    pub(crate) fn fatal(reason: impl Into<String>) -> Self {
        Self {
            retryable: false,
            reason: reason.into(),
            status: None,
        }
    }
}

/// One exporter: turns a batch of records into one request.
#[async_trait]
pub(crate) trait Export: Send + Sync + 'static {
    /// Exporter name for logs and metrics.
    fn name(&self) -> &str;

    /// Send `batch`; `Ok` carries how many items the receiver refused individually.
    async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError>;

    /// Send one budget alert. Exporters whose receiver has no use for alerts keep this
    /// default, which sends nothing (and is never called through [`Batcher::push_alert`]
    /// by their sinks).
    async fn export_alert(&self, alert: &BudgetAlert) -> Result<(), ExportError> {
        let _ = alert;
        Ok(())
    }
}

enum Msg {
    Record(Arc<CallRecord>),
    Alert(Arc<BudgetAlert>),
    Flush(oneshot::Sender<()>),
}

/// The sink's end of an exporter task.
pub(crate) struct Batcher {
    tx: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
    name: String,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("exporter", &self.name)
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

impl Batcher {
    /// Start `exporter`'s task on the current tokio runtime.
    pub(crate) fn start<E: Export>(exporter: E, config: BatchConfig) -> Result<Self, ConfigError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let config = BatchConfig {
            max_batch: config.max_batch.max(1),
            queue: config.queue.max(1),
            ..config
        };
        let (tx, rx) = mpsc::channel(config.queue);
        let counters = Arc::new(Counters::default());
        let name = exporter.name().to_owned();
        rt.spawn(run(exporter, config, rx, counters.clone()));
        Ok(Self { tx, counters, name })
    }

    /// Queue `record`, waiting while the queue is full.
    pub(crate) async fn push(&self, record: Arc<CallRecord>) {
        if self.tx.send(Msg::Record(record)).await.is_err() {
            // The task is gone (its runtime shut down): nothing can be exported any more.
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            record_export_dropped(&self.name, 1);
        }
    }

    /// Queue `alert` for an export of its own, waiting while the queue is full.
    pub(crate) async fn push_alert(&self, alert: Arc<BudgetAlert>) {
        if self.tx.send(Msg::Alert(alert)).await.is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            record_export_dropped(&self.name, 1);
        }
    }

    /// Export everything queued so far and wait until that is done.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub(crate) fn stats(&self) -> ExportStats {
        self.counters.snapshot()
    }
}

async fn run<E: Export>(
    exporter: E,
    config: BatchConfig,
    mut rx: mpsc::Receiver<Msg>,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<Arc<CallRecord>> = Vec::with_capacity(config.max_batch.min(1024));
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let msg = match deadline {
            Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => {
                    deliver(&exporter, &config, &counters, std::mem::take(&mut batch)).await;
                    deadline = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match msg {
            Some(Msg::Record(record)) => {
                if batch.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + config.interval);
                }
                batch.push(record);
                if batch.len() >= config.max_batch {
                    deliver(&exporter, &config, &counters, std::mem::take(&mut batch)).await;
                    deadline = None;
                }
            }
            Some(Msg::Alert(alert)) => {
                deliver_alert(&exporter, &config, &counters, &alert).await;
            }
            Some(Msg::Flush(done)) => {
                deliver(&exporter, &config, &counters, std::mem::take(&mut batch)).await;
                deadline = None;
                let _ = done.send(());
            }
            None => {
                // Every sender is gone: send what is left, then stop.
                deliver(&exporter, &config, &counters, std::mem::take(&mut batch)).await;
                return;
            }
        }
    }
}

async fn deliver<E: Export>(
    exporter: &E,
    config: &BatchConfig,
    counters: &Counters,
    batch: Vec<Arc<CallRecord>>,
) {
    if batch.is_empty() {
        return;
    }
    let name = exporter.name();
    let records = batch.len() as u64;
    let mut retried = false;
    loop {
        let result = match tokio::time::timeout(config.timeout, exporter.export(&batch)).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::retryable(format!(
                "no answer within {} ms",
                config.timeout.as_millis()
            ))),
        };
        match result {
            Ok(rejected) => {
                counters.exported.fetch_add(records, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                record_export(name, if retried { "retried_ok" } else { "ok" });
                if rejected > 0 {
                    counters.rejected.fetch_add(rejected, Ordering::Relaxed);
                    record_export_rejected(name, rejected);
                }
                return;
            }
            Err(e) if e.retryable && !retried => {
                retried = true;
                counters.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(exporter = name, reason = %e.reason, "export failed; retrying once");
                tokio::time::sleep(config.retry_backoff).await;
            }
            Err(e) => {
                let failed = counters.failed_batches.fetch_add(1, Ordering::Relaxed) + 1;
                counters.dropped.fetch_add(records, Ordering::Relaxed);
                record_export(name, "failed");
                record_export_dropped(name, records);
                // Log the first failure, then every 100th: a receiver that is down for long
                // must not flood the log.
                if failed == 1 || failed.is_multiple_of(100) {
                    tracing::warn!(
                        exporter = name,
                        reason = %e.reason,
                        records,
                        failed_batches = failed,
                        "export failed: batch dropped"
                    );
                }
                return;
            }
        }
    }
}

/// Export one alert: retried once when that may help, else dropped, logged and counted.
async fn deliver_alert<E: Export>(
    exporter: &E,
    config: &BatchConfig,
    counters: &Counters,
    alert: &BudgetAlert,
) {
    let name = exporter.name();
    let mut retried = false;
    loop {
        let result = match tokio::time::timeout(config.timeout, exporter.export_alert(alert)).await
        {
            Ok(r) => r,
            Err(_) => Err(ExportError::retryable(format!(
                "no answer within {} ms",
                config.timeout.as_millis()
            ))),
        };
        match result {
            Ok(()) => {
                counters.exported.fetch_add(1, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                record_export(name, if retried { "retried_ok" } else { "ok" });
                return;
            }
            Err(e) if e.retryable && !retried => {
                retried = true;
                counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(config.retry_backoff).await;
            }
            Err(e) => {
                counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                record_export(name, "failed");
                record_export_dropped(name, 1);
                tracing::warn!(
                    exporter = name,
                    reason = %e.reason,
                    scope = alert.scope.as_str(),
                    "export failed: budget alert dropped"
                );
                return;
            }
        }
    }
}

/// Send a prepared request and read the answer. Transport faults and 408/429/5xx are
/// retryable; other non-2xx statuses are not. Messages never mention the URL.
pub(crate) async fn send(
    name: &str,
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Vec<u8>), ExportError> {
    let response = request
        .send()
        .await
        .map_err(|e| ExportError::retryable(transport_reason(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| ExportError::retryable(transport_reason(&e)))?;
    if status.is_success() || status.as_u16() == 207 {
        return Ok((status, body.to_vec()));
    }
    let code = status.as_u16();
    Err(ExportError {
        retryable: code == 408 || code == 429 || status.is_server_error(),
        reason: format!("{name}: the receiver answered HTTP {code}"),
        status: Some(code),
    })
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        "could not connect to the receiver".into()
    } else {
        "the request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Fails the first `fail` attempts (retryably or not), records batch sizes.
    #[derive(Debug)]
    struct Fake {
        fail: AtomicU64,
        retryable: bool,
        sizes: Arc<Mutex<Vec<usize>>>,
    }

    #[async_trait]
    impl Export for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError> {
            self.sizes.lock().unwrap().push(batch.len());
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(ExportError {
                    retryable: self.retryable,
                    reason: "nope".into(),
                    status: None,
                });
            }
            Ok(0)
        }
    }

    fn fake(fail: u64, retryable: bool) -> (Fake, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let f = Fake {
            fail: AtomicU64::new(fail),
            retryable,
            sizes: sizes.clone(),
        };
        (f, sizes)
    }

    fn config(max_batch: usize, interval_ms: u64) -> BatchConfig {
        BatchConfig {
            max_batch,
            interval: Duration::from_millis(interval_ms),
            queue: 8,
            timeout: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(1),
        }
    }

    fn rec() -> Arc<CallRecord> {
        Arc::new(CallRecord::default())
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_after_the_interval() {
        let (f, sizes) = fake(0, true);
        let b = Batcher::start(f, config(3, 50)).unwrap();
        for _ in 0..7 {
            b.push(rec()).await;
        }
        // The last record goes once the interval has passed (generous bound for slow CI).
        for _ in 0..500 {
            if sizes.lock().unwrap().len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*sizes.lock().unwrap(), vec![3, 3, 1]);
        let s = b.stats();
        assert_eq!((s.exported, s.batches, s.dropped), (7, 3, 0));
    }

    #[tokio::test]
    async fn flush_sends_a_partial_batch_now() {
        let (f, sizes) = fake(0, true);
        let b = Batcher::start(f, config(100, 60_000)).unwrap();
        b.push(rec()).await;
        b.push(rec()).await;
        b.flush().await;
        assert_eq!(*sizes.lock().unwrap(), vec![2]);
        b.flush().await;
        assert_eq!(
            sizes.lock().unwrap().len(),
            1,
            "nothing to send: no request"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_is_retried_once_then_dropped() {
        let (f, sizes) = fake(1, true);
        let b = Batcher::start(f, config(10, 60_000)).unwrap();
        b.push(rec()).await;
        b.flush().await;
        assert_eq!(*sizes.lock().unwrap(), vec![1, 1]);
        assert_eq!(b.stats().retries, 1);
        assert_eq!(b.stats().exported, 1);

        let (f, sizes) = fake(5, true);
        let b = Batcher::start(f, config(10, 60_000)).unwrap();
        b.push(rec()).await;
        b.push(rec()).await;
        b.flush().await;
        assert_eq!(sizes.lock().unwrap().len(), 2, "one try and one retry");
        let s = b.stats();
        assert_eq!((s.failed_batches, s.dropped, s.exported), (1, 2, 0));
    }

    #[tokio::test]
    async fn a_fatal_failure_is_not_retried() {
        let (f, sizes) = fake(1, false);
        let b = Batcher::start(f, config(10, 60_000)).unwrap();
        b.push(rec()).await;
        b.flush().await;
        assert_eq!(sizes.lock().unwrap().len(), 1);
        assert_eq!(b.stats().dropped, 1);
        assert_eq!(b.stats().retries, 0);
    }

    #[test]
    fn needs_a_runtime() {
        let (f, _) = fake(0, true);
        assert_eq!(
            Batcher::start(f, BatchConfig::default()).err(),
            Some(ConfigError::NoRuntime)
        );
    }
}
