//! JSON Lines: one line per call record, appended to a file.
//!
//! Each line is a [`CallRecord`] exactly as it serializes (the same object the webhook
//! sends), followed by `\n`. Records are batched like the exporters' (a batch is written
//! when full or when its oldest record has waited the interval) and each batch is written
//! with one `write` to a file opened for appending, so lines of one batch stay together
//! and a line is never split across batches. [`JsonlSink::flush`] writes what is pending
//! and `fsync`s the file.
//!
//! Memory is bounded by the batching queue; the file is written off the async threads
//! (`spawn_blocking`). A write that fails is not retried (a partly written batch would be
//! duplicated): the batch is dropped, logged and counted like an exporter's. The file is
//! not rotated: point `path` at a file a log shipper or `logrotate` (`copytruncate`)
//! manages.
//!
//! A budget alert is written as a line of its own as soon as the writer reaches it: a
//! [`BudgetAlert`] as it serializes, `{"type":"budget_alert","scope":…,…}`. Record lines
//! carry no `type` field, so a reader tells the two apart by it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use llmux_core::{BudgetAlert, CallRecord, CallSink};

use crate::ConfigError;
use crate::batch::{BatchConfig, Batcher, Export, ExportError, ExportStats};

/// The variable naming the file when the settings do not.
pub const PATH_VAR: &str = "LLMUX_JSONL_PATH";

/// Where and how [`JsonlSink`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlConfig {
    /// The sink's name in logs and metrics (`jsonl` by default).
    pub name: String,
    /// The file; created when missing, appended to otherwise. Its directory must exist.
    pub path: PathBuf,
    /// Batching (`max_batch` lines per write, `interval` between writes at most).
    pub batch: BatchConfig,
}

impl JsonlConfig {
    /// Append to `path`: up to 256 lines per write, at least one write a second.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            name: "jsonl".to_owned(),
            path: path.into(),
            batch: BatchConfig {
                max_batch: 256,
                interval: Duration::from_secs(1),
                ..BatchConfig::default()
            },
        }
    }

    /// The file named by `LLMUX_JSONL_PATH` in the process environment; `None` when unset.
    pub fn from_env() -> Option<Self> {
        Self::from_env_with(&crate::env::process_env)
    }

    /// [`JsonlConfig::from_env`] through `get`.
    pub fn from_env_with(get: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        crate::env::var(get, PATH_VAR).map(Self::new)
    }
}

/// A [`CallSink`] appending one JSON line per call record to a file. Failures are logged
/// and counted and never reach a call.
pub struct JsonlSink {
    name: String,
    path: PathBuf,
    file: Arc<Mutex<File>>,
    batcher: Batcher,
}

impl fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlSink")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("batcher", &self.batcher)
            .finish()
    }
}

impl JsonlSink {
    /// Open the file for appending (creating it) and start the writer task on the current
    /// tokio runtime. Fails when the file cannot be opened, or outside a runtime.
    pub fn new(config: JsonlConfig) -> Result<Self, ConfigError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .map_err(|e| ConfigError::File {
                setting: "the JSONL sink".into(),
                path: config.path.display().to_string(),
                reason: e.to_string(),
            })?;
        let file = Arc::new(Mutex::new(file));
        let writer = JsonlWriter {
            name: config.name.clone(),
            file: file.clone(),
        };
        Ok(Self {
            batcher: Batcher::start(writer, config.batch)?,
            name: config.name,
            path: config.path,
            file,
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write every record received so far, `fsync` the file, and wait for both.
    pub async fn flush(&self) {
        self.batcher.flush().await;
        let file = self.file.clone();
        let synced = tokio::task::spawn_blocking(move || lock(&file).sync_data()).await;
        if let Ok(Err(e)) = synced {
            tracing::warn!(sink = %self.name, error = %e, "could not sync the JSONL file");
        }
    }

    /// Lines written (`exported`) and dropped so far.
    pub fn stats(&self) -> ExportStats {
        self.batcher.stats()
    }
}

#[async_trait]
impl CallSink for JsonlSink {
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

fn lock(file: &Mutex<File>) -> std::sync::MutexGuard<'_, File> {
    file.lock().unwrap_or_else(PoisonError::into_inner)
}

struct JsonlWriter {
    name: String,
    file: Arc<Mutex<File>>,
}

impl Drop for JsonlWriter {
    /// The writer task ends once every handle to the sink is gone and the last batch is
    /// written: make it durable.
    fn drop(&mut self) {
        let _ = lock(&self.file).sync_data();
    }
}

#[async_trait]
impl Export for JsonlWriter {
    fn name(&self) -> &str {
        &self.name
    }

    async fn export(&self, batch: &[Arc<CallRecord>]) -> Result<u64, ExportError> {
        let mut buf = Vec::with_capacity(batch.len() * 640);
        for record in batch {
            serde_json::to_writer(&mut buf, &**record).map_err(|e| {
                ExportError::fatal(format!("{}: could not encode a record: {e}", self.name))
            })?;
            buf.push(b'\n');
        }
        self.write(buf).await?;
        Ok(0)
    }

    async fn export_alert(&self, alert: &BudgetAlert) -> Result<(), ExportError> {
        let mut buf = serde_json::to_vec(alert).map_err(|e| {
            ExportError::fatal(format!("{}: could not encode an alert: {e}", self.name))
        })?;
        buf.push(b'\n');
        self.write(buf).await
    }
}

impl JsonlWriter {
    /// Append `buf` with one `write`, off the async threads.
    async fn write(&self, buf: Vec<u8>) -> Result<(), ExportError> {
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || lock(&file).write_all(&buf))
            .await
            .map_err(|_| ExportError::fatal(format!("{}: the write was cancelled", self.name)))?;
        written.map_err(|e| ExportError::fatal(format!("{}: write failed: {e}", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A fresh path under the system's temporary directory.
    fn temp_path(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "llmux-observe-jsonl-{}-{tag}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("calls.jsonl")
    }

    fn rec(id: &str) -> Arc<CallRecord> {
        Arc::new(CallRecord {
            request_id: id.into(),
            model_group: "gpt-4o".into(),
            operation: "chat".into(),
            status: 200,
            prompt_tokens: 12,
            completion_tokens: 3,
            cost_nano_usd: Some(1500),
            tags: vec!["a\nb".into()],
            ..CallRecord::default()
        })
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn slow_config(path: &Path) -> JsonlConfig {
        let mut c = JsonlConfig::new(path);
        c.batch.interval = Duration::from_secs(3600);
        c
    }

    #[tokio::test]
    async fn writes_one_valid_json_line_per_record_and_flush_syncs() {
        let path = temp_path("lines");
        let sink = JsonlSink::new(slow_config(&path)).unwrap();
        for i in 0..5 {
            sink.record(rec(&format!("req-{i}"))).await;
        }
        sink.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches('\n').count(), 5, "one line per record: {text}");
        assert!(text.ends_with('\n'));
        let got = lines(&path);
        let ids: Vec<&str> = got
            .iter()
            .map(|v| v["request_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);
        assert_eq!(got[0]["model_group"], "gpt-4o");
        assert_eq!(got[0]["cost_nano_usd"], 1500);
        assert_eq!(
            got[0]["tags"][0], "a\nb",
            "newlines inside values stay escaped"
        );
        let back: CallRecord = serde_json::from_value(got[4].clone()).unwrap();
        assert_eq!(back, *rec("req-4"));
        assert_eq!(sink.stats().exported, 5);
    }

    #[tokio::test]
    async fn a_budget_alert_is_a_line_of_its_own_tagged_budget_alert() {
        let path = temp_path("alert");
        let sink = JsonlSink::new(slow_config(&path)).unwrap();
        sink.record(rec("before")).await;
        let alert = BudgetAlert {
            scope: llmux_core::BudgetScope::User,
            id: "alice".into(),
            spend_nano: 2_000,
            soft_budget_nano: 1_500,
            max_budget_nano: Some(9_000),
            at_ms: 1_700_000_000_000,
        };
        sink.alert(Arc::new(alert.clone())).await;
        sink.record(rec("after")).await;
        sink.flush().await;
        let got = lines(&path);
        assert_eq!(got.len(), 3, "two record lines and one alert line");
        let alerts: Vec<&serde_json::Value> =
            got.iter().filter(|v| v["type"] == "budget_alert").collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["scope"], "user");
        assert_eq!(alerts[0]["id"], "alice");
        assert_eq!(alerts[0]["spend_nano"], 2_000);
        assert_eq!(alerts[0]["soft_budget_nano"], 1_500);
        assert_eq!(alerts[0]["max_budget_nano"], 9_000);
        let back: BudgetAlert = serde_json::from_value(alerts[0].clone()).unwrap();
        assert_eq!(back, alert);
        assert!(
            got.iter()
                .filter(|v| v.get("type").is_none())
                .all(|v| v["request_id"].is_string()),
            "record lines carry no type"
        );
        assert_eq!(sink.stats().exported, 3);
    }

    #[tokio::test]
    async fn full_batches_are_written_without_a_flush() {
        let path = temp_path("batches");
        let mut config = slow_config(&path);
        config.batch.max_batch = 2;
        let sink = JsonlSink::new(config).unwrap();
        for i in 0..4 {
            sink.record(rec(&i.to_string())).await;
        }
        for _ in 0..500 {
            if sink.stats().exported == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(lines(&path).len(), 4);
    }

    #[tokio::test]
    async fn the_last_records_are_written_when_the_sink_shuts_down() {
        let path = temp_path("shutdown");
        let sink = JsonlSink::new(slow_config(&path)).unwrap();
        sink.record(rec("first")).await;
        sink.record(rec("last")).await;
        drop(sink);
        for _ in 0..500 {
            if lines(&path).len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ids: Vec<String> = lines(&path)
            .iter()
            .map(|v| v["request_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["first", "last"]);
    }

    #[tokio::test]
    async fn appends_to_an_existing_file() {
        let path = temp_path("append");
        std::fs::write(&path, "{\"request_id\":\"old\"}\n").unwrap();
        let sink = JsonlSink::new(slow_config(&path)).unwrap();
        sink.record(rec("new")).await;
        sink.flush().await;
        let ids: Vec<String> = lines(&path)
            .iter()
            .map(|v| v["request_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["old", "new"]);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_opened_is_a_config_error() {
        let path = temp_path("missing-dir").with_file_name("no/such/dir/calls.jsonl");
        let err = JsonlSink::new(JsonlConfig::new(&path)).unwrap_err();
        assert!(
            matches!(&err, ConfigError::File { path: p, .. } if p.ends_with("calls.jsonl")),
            "{err:?}"
        );
    }

    #[test]
    fn the_path_comes_from_the_environment() {
        let env = |k: &str| (k == PATH_VAR).then(|| " /var/log/llmux/calls.jsonl ".to_owned());
        let c = JsonlConfig::from_env_with(&env).unwrap();
        assert_eq!(c.path, PathBuf::from("/var/log/llmux/calls.jsonl"));
        assert!(JsonlConfig::from_env_with(&|_| None).is_none());
        assert_eq!(
            JsonlSink::new(JsonlConfig::new(temp_path("rt"))).err(),
            Some(ConfigError::NoRuntime)
        );
    }
}
