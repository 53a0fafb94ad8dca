//! The spend writer: call records → spend log, in batches, off the request path, losing
//! nothing.
//!
//! Records arrive through [`CallSink::record`] (from the meter's per-sink task) into an
//! in-memory queue. One background task writes them in batches (when `batch_size` are
//! waiting, or every `flush_interval`), each batch one transaction ([`Store::write_records`]).
//!
//! When the database is unreachable the task backs off and retries; records wait in memory,
//! and whatever is pending at each failed attempt, or beyond `buffer_capacity`, is appended
//! to the spill file (JSON lines, fsync'd per append). Once the database answers again the
//! spill file is moved aside, replayed in batches and removed. Replays are idempotent: the
//! spend log is keyed by `request_id`, and aggregates and spend count only rows actually
//! inserted. A record the database rejects for its content (not for being unreachable) is
//! isolated, logged by request id, and kept in `<spill>.rejected` instead of blocking the rest.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use llmux_core::{CallRecord, CallSink};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Result, Store, StoreError};

/// How the spend writer batches, buffers and spills.
#[derive(Debug, Clone)]
pub struct SpendWriterConfig {
    /// Records per batch (one transaction). Default 500.
    pub batch_size: usize,
    /// Longest a record waits before its (partial) batch is written. Default 1 s.
    pub flush_interval: Duration,
    /// Records kept in memory before the excess is spilled (or, with no spill file,
    /// the oldest dropped). Default 50,000.
    pub buffer_capacity: usize,
    /// The spill file (JSON lines). `None` = no spill: records beyond `buffer_capacity`
    /// while the database is down are dropped (counted and logged). Set it in production,
    /// e.g. next to the SQLite file or in the gateway's state directory.
    pub spill_path: Option<PathBuf>,
    /// First retry delay after the database became unreachable. Default 250 ms.
    pub retry_min: Duration,
    /// Longest retry delay (the delay doubles up to this). Default 10 s.
    pub retry_max: Duration,
    /// Longest one batch write may take before it counts as a failure. Default 30 s.
    pub write_timeout: Duration,
    /// How often due budgets are reset in bulk ([`Store::reset_due_budgets`]); `None` = never
    /// (spend increments still reset a due budget). Default 60 s.
    pub budget_sweep_interval: Option<Duration>,
}

impl Default for SpendWriterConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            flush_interval: Duration::from_secs(1),
            buffer_capacity: 50_000,
            spill_path: None,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            budget_sweep_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// Counters of what the writer did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records handed to the writer.
    pub received: u64,
    /// Rows inserted into the spend log.
    pub written: u64,
    /// Records skipped because their `request_id` was already stored (replays).
    pub duplicates: u64,
    /// Records appended to the spill file.
    pub spilled: u64,
    /// Records read back from the spill file and written (or found already written).
    pub replayed: u64,
    /// Records the database refused for their content (kept in `<spill>.rejected`).
    pub rejected: u64,
    /// Records lost: only when no spill file is configured and the buffer overflowed, or
    /// the spill file could not be written.
    pub dropped: u64,
    /// Records in memory right now.
    pub pending: u64,
    /// Whether the last write attempt found the database unreachable.
    pub database_down: bool,
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    spilled: AtomicU64,
    replayed: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
}

enum Cmd {
    Flush(oneshot::Sender<Result<WriterStats>>),
    Shutdown(oneshot::Sender<Result<WriterStats>>),
}

/// The spend-log sink. Start it with [`SpendWriter::start`], register it with the meter, and
/// call [`SpendWriter::shutdown`] after the meter is drained.
pub struct SpendWriter {
    shared: Arc<Shared>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for SpendWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpendWriter")
            .field("config", &self.shared.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Shared {
    cfg: SpendWriterConfig,
    store: Store,
    pending: std::sync::Mutex<VecDeque<Arc<CallRecord>>>,
    wake: Notify,
    spill: Option<Spill>,
    counts: Counts,
    down: AtomicBool,
    /// Set once the task has stopped: from then on `record` spills (or drops) by itself.
    finished: AtomicBool,
}

/// Whether the database refused a write for what was in it (a constraint, a value it cannot
/// take), as opposed to failing for reasons of its own (connection lost or reset, pool
/// timeout, server shutting down, lock contention, out of resources). Only a refusal sets
/// a record aside; anything else is treated as the database being unavailable, so the
/// records wait and are retried. (A ping alone cannot tell: when a server restarts, a pool
/// can hold one dead connection and one live one at the same moment.)
fn refused_for_content(e: &StoreError) -> bool {
    use sqlx::error::ErrorKind;
    match e {
        StoreError::Invalid(_) | StoreError::Corrupt { .. } => true,
        StoreError::Database(sqlx::Error::Database(db)) => {
            if !matches!(db.kind(), ErrorKind::Other) {
                return true; // unique, foreign key, not-null or check violation
            }
            let code = db.code().unwrap_or_default();
            if code.len() == 5 {
                // A PostgreSQL SQLSTATE: classes 22 (data exception), 23 (integrity
                // constraint), 42 (syntax or access rule).
                matches!(&code[..2], "22" | "23" | "42")
            } else {
                // A SQLite (extended) result code: TOOBIG (18), CONSTRAINT (19), MISMATCH
                // (20), RANGE (25).
                matches!(code.parse::<u32>().map(|c| c & 0xff), Ok(18 | 19 | 20 | 25))
            }
        }
        StoreError::Database(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Encode(_)) => true,
        _ => false,
    }
}

/// The database could not be reached (as opposed to refusing a record).
struct Down;

impl SpendWriter {
    /// Start the writer's background task on the current tokio runtime. If a spill file is
    /// left over from an earlier run, it is replayed as soon as the database answers.
    pub fn start(store: Store, config: SpendWriterConfig) -> Self {
        let mut cfg = config;
        cfg.batch_size = cfg.batch_size.max(1);
        cfg.buffer_capacity = cfg.buffer_capacity.max(cfg.batch_size);
        let spill = cfg.spill_path.clone().map(Spill::new);
        let shared = Arc::new(Shared {
            cfg,
            store,
            pending: std::sync::Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            spill,
            counts: Counts::default(),
            down: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            backoff: shared.cfg.retry_min,
            next_attempt: Instant::now(),
            last_sweep: Instant::now(),
            shared: shared.clone(),
        };
        let task = tokio::spawn(worker.run(rx));
        Self {
            shared,
            cmd: tx,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Write everything received so far, including a spill file's contents. Returns the
    /// stats, or [`StoreError::Unavailable`] if the database cannot be reached (the records
    /// stay buffered or spilled, and are written later).
    pub async fn flush(&self) -> Result<WriterStats> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Flush(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Flush and stop. If the database is unreachable, everything pending goes to the spill
    /// file (replayed by the next writer started on it). Records arriving after this are
    /// spilled directly (or dropped, counted, with no spill file). A second call returns
    /// [`StoreError::Closed`].
    pub async fn shutdown(&self) -> Result<WriterStats> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Shutdown(tx))
            .map_err(|_| StoreError::Closed)?;
        let result = rx.await.map_err(|_| StoreError::Closed)?;
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        result
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> WriterStats {
        self.shared.stats()
    }
}

#[async_trait]
impl CallSink for SpendWriter {
    fn name(&self) -> &str {
        "spend_log"
    }

    async fn record(&self, record: Arc<CallRecord>) {
        // Prompts and completions never reach the spend log, nor its spill file.
        let record = record.without_content();
        let s = &self.shared;
        s.counts.received.fetch_add(1, Ordering::Relaxed);
        if s.finished.load(Ordering::SeqCst) {
            s.spill_or_drop(vec![record]).await;
            return;
        }
        let overflow = {
            let mut p = s.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.push_back(record);
            if p.len() >= s.cfg.batch_size {
                s.wake.notify_one();
            }
            (p.len() > s.cfg.buffer_capacity).then(|| p.drain(..).collect::<Vec<_>>())
        };
        if let Some(batch) = overflow {
            s.spill_or_drop(batch).await;
        }
        // The task may have stopped between the check above and the push: then nobody else
        // will pick this record up.
        if s.finished.load(Ordering::SeqCst) {
            let rest = s.take(usize::MAX);
            s.spill_or_drop(rest).await;
        }
    }
}

impl Shared {
    fn stats(&self) -> WriterStats {
        let c = &self.counts;
        WriterStats {
            received: c.received.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            spilled: c.spilled.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            pending: self.pending.lock().map(|p| p.len() as u64).unwrap_or(0),
            database_down: self.down.load(Ordering::Relaxed),
        }
    }

    fn take(&self, n: usize) -> Vec<Arc<CallRecord>> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(p.len());
        p.drain(..n).collect()
    }

    fn put_back(&self, batch: Vec<Arc<CallRecord>>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for r in batch.into_iter().rev() {
            p.push_front(r);
        }
    }

    /// Append to the spill file, or (no spill file) keep what fits and drop the rest.
    async fn spill_or_drop(&self, batch: Vec<Arc<CallRecord>>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        match &self.spill {
            Some(spill) => match spill.append(&batch).await {
                Ok(()) => {
                    self.counts.spilled.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    // Keep them in memory rather than lose them; the next attempt retries.
                    tracing::error!(error = %e, records = n, "spend writer: cannot write the spill file");
                    if self.finished.load(Ordering::SeqCst) {
                        self.counts.dropped.fetch_add(n, Ordering::Relaxed);
                    } else {
                        self.put_back(batch);
                    }
                }
            },
            None => {
                if self.finished.load(Ordering::SeqCst) {
                    self.counts.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(
                        records = n,
                        "spend writer is shut down and has no spill file: records dropped"
                    );
                    return;
                }
                // Keep the newest `buffer_capacity`, drop the oldest.
                let keep = self.cfg.buffer_capacity.min(batch.len());
                let drop_n = (batch.len() - keep) as u64;
                let total = self.counts.dropped.fetch_add(drop_n, Ordering::Relaxed) + drop_n;
                if drop_n > 0 {
                    tracing::error!(
                        dropped = drop_n,
                        total,
                        "spend writer buffer full and no spill file configured: oldest records dropped"
                    );
                }
                self.put_back(batch.into_iter().skip(drop_n as usize).collect());
            }
        }
    }

    async fn reachable(&self) -> bool {
        matches!(
            tokio::time::timeout(self.cfg.write_timeout, self.store.ping()).await,
            Ok(Ok(()))
        )
    }

    /// Write one batch. A batch the database refuses while it is reachable is retried one
    /// record at a time, so that only the offending records are set aside.
    async fn write(&self, batch: &[Arc<CallRecord>]) -> Result<(), Down> {
        if batch.is_empty() {
            return Ok(());
        }
        let err = match self.try_write(batch).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !refused_for_content(&err) || !self.reachable().await {
            tracing::debug!(error = %err, "spend writer: batch failed, database unreachable");
            return Err(Down);
        }
        if batch.len() > 1 {
            tracing::warn!(error = %err, records = batch.len(), "spend writer: batch refused; retrying record by record");
        }
        for r in batch {
            if let Err(e) = self.try_write(std::slice::from_ref(r)).await {
                if !refused_for_content(&e) || !self.reachable().await {
                    return Err(Down);
                }
                self.reject(r, &e).await;
            }
        }
        Ok(())
    }

    async fn try_write(&self, batch: &[Arc<CallRecord>]) -> Result<()> {
        let out = tokio::time::timeout(self.cfg.write_timeout, self.store.write_records(batch))
            .await
            .map_err(|_| StoreError::Unavailable {
                pending: batch.len() as u64,
            })??;
        self.counts
            .written
            .fetch_add(out.inserted, Ordering::Relaxed);
        self.counts
            .duplicates
            .fetch_add(out.duplicates, Ordering::Relaxed);
        Ok(())
    }

    async fn reject(&self, r: &Arc<CallRecord>, e: &StoreError) {
        self.counts.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::error!(request_id = %r.request_id, error = %e, "spend writer: record refused by the database");
        if let Some(spill) = &self.spill
            && let Err(io) = spill.append_rejected(r).await
        {
            tracing::error!(error = %io, "spend writer: cannot write the rejected-records file");
        }
    }

    /// Write everything pending, in batches.
    async fn drain(&self) -> Result<(), Down> {
        loop {
            let batch = self.take(self.cfg.batch_size);
            if batch.is_empty() {
                return Ok(());
            }
            if let Err(Down) = self.write(&batch).await {
                self.put_back(batch);
                return Err(Down);
            }
        }
    }

    /// Replay the spill file(s), if any.
    async fn replay(&self) -> Result<(), Down> {
        let Some(spill) = &self.spill else {
            return Ok(());
        };
        // Two rounds at most: what was spilled during the first is picked up by the second;
        // anything after that waits for the next cycle.
        for _ in 0..2 {
            if !spill.dirty.load(Ordering::SeqCst) {
                return Ok(());
            }
            let file = match spill.take_for_replay().await {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, "spend writer: cannot open the spill file for replay");
                    return Ok(());
                }
            };
            let mut reader = match File::open(&file) {
                Ok(f) => Some(BufReader::new(f)),
                Err(e) => {
                    tracing::error!(error = %e, "spend writer: cannot read the spill file");
                    return Ok(());
                }
            };
            let mut total = 0u64;
            while let Some(r) = reader.take() {
                let n = self.cfg.batch_size;
                let read = tokio::task::spawn_blocking(move || read_lines(r, n)).await;
                let (r, records, bad) = match read {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "spend writer: spill file read failed");
                        return Ok(());
                    }
                    Err(_) => return Ok(()),
                };
                if bad > 0 {
                    tracing::warn!(
                        lines = bad,
                        "spend writer: unreadable spill lines skipped (a torn write?)"
                    );
                }
                if records.is_empty() && r.is_none() {
                    break;
                }
                self.write(&records).await?;
                total += records.len() as u64;
                self.counts
                    .replayed
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                reader = r;
            }
            if let Err(e) = std::fs::remove_file(&file) {
                tracing::error!(error = %e, "spend writer: cannot remove the replayed spill file");
                return Ok(());
            }
            tracing::info!(records = total, "spend writer: spill file replayed");
        }
        Ok(())
    }
}

/// Up to `n` records from `r`; the reader comes back unless the file ended. Also returns how
/// many lines could not be parsed.
type ReadOut = (Option<BufReader<File>>, Vec<Arc<CallRecord>>, u64);

fn read_lines(mut r: BufReader<File>, n: usize) -> io::Result<ReadOut> {
    let mut out = Vec::with_capacity(n);
    let mut bad = 0;
    let mut line = Vec::new();
    while out.len() < n {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok((None, out, bad));
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        match parse_spilled(text) {
            Some(rec) => out.push(Arc::new(rec)),
            None => bad += 1,
        }
    }
    Ok((Some(r), out, bad))
}

/// One spilled record. A line written by an older build may lack fields `CallRecord` has
/// gained since: those take their defaults instead of making the line unreadable.
fn parse_spilled(text: &[u8]) -> Option<CallRecord> {
    if let Ok(r) = serde_json::from_slice(text) {
        return Some(r);
    }
    let serde_json::Value::Object(fields) = serde_json::from_slice(text).ok()? else {
        return None;
    };
    let mut base = serde_json::to_value(CallRecord::default()).ok()?;
    base.as_object_mut()?.extend(fields);
    serde_json::from_value(base).ok()
}

struct Worker {
    shared: Arc<Shared>,
    backoff: Duration,
    next_attempt: Instant,
    last_sweep: Instant,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        if let Some(s) = &self.shared.spill {
            s.dirty.store(s.has_files(), Ordering::SeqCst);
        }
        let shared = self.shared.clone();
        loop {
            let down = shared.down.load(Ordering::Relaxed);
            let sleep_until = if down {
                self.next_attempt
            } else {
                Instant::now() + shared.cfg.flush_interval
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Flush(reply)) => {
                        let r = self.flush_all().await;
                        let _ = reply.send(r);
                    }
                    Some(Cmd::Shutdown(reply)) => {
                        let r = self.finish().await;
                        let _ = reply.send(r);
                        return;
                    }
                    None => {
                        let _ = self.finish().await;
                        return;
                    }
                },
                _ = shared.wake.notified(), if !down => self.cycle().await,
                _ = tokio::time::sleep_until(sleep_until) => self.cycle().await,
            }
        }
    }

    /// One round: replay, write what is pending, maybe sweep budgets.
    async fn cycle(&mut self) {
        if self.shared.down.load(Ordering::Relaxed) && Instant::now() < self.next_attempt {
            return;
        }
        let result = match self.shared.replay().await {
            Ok(()) => self.shared.drain().await,
            Err(Down) => Err(Down),
        };
        match result {
            Ok(()) => {
                self.mark_up();
                self.sweep_budgets().await;
            }
            Err(Down) => self.mark_down().await,
        }
    }

    async fn flush_all(&mut self) -> Result<WriterStats> {
        let result = match self.shared.replay().await {
            Ok(()) => self.shared.drain().await,
            Err(Down) => Err(Down),
        };
        match result {
            Ok(()) => {
                self.mark_up();
                Ok(self.shared.stats())
            }
            Err(Down) => {
                self.mark_down().await;
                Err(StoreError::Unavailable {
                    pending: self.shared.stats().pending,
                })
            }
        }
    }

    async fn finish(&mut self) -> Result<WriterStats> {
        let r = self.flush_all().await;
        self.shared.finished.store(true, Ordering::SeqCst);
        // Whatever is still queued (the database was down, or records raced the flush) goes
        // to the spill file; `record` does the same for anything arriving from now on.
        let rest = self.shared.take(usize::MAX);
        if !rest.is_empty() {
            let n = rest.len();
            self.shared.spill_or_drop(rest).await;
            if self.shared.spill.is_some() {
                tracing::warn!(records = n, "spend writer stopped: pending records spilled");
            }
        }
        r
    }

    fn mark_up(&mut self) {
        if self.shared.down.swap(false, Ordering::Relaxed) {
            tracing::info!("spend writer: database reachable again");
        }
        self.backoff = self.shared.cfg.retry_min;
    }

    async fn mark_down(&mut self) {
        if !self.shared.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("spend writer: database unreachable; buffering call records");
        }
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.shared.cfg.retry_max);
        // While waiting, keep pending records on disk rather than only in memory.
        if self.shared.spill.is_some() {
            let rest = self.shared.take(usize::MAX);
            self.shared.spill_or_drop(rest).await;
        }
    }

    async fn sweep_budgets(&mut self) {
        let Some(every) = self.shared.cfg.budget_sweep_interval else {
            return;
        };
        if self.last_sweep.elapsed() < every {
            return;
        }
        self.last_sweep = Instant::now();
        match self.shared.store.reset_due_budgets(crate::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reset = n, "budgets reset"),
            Err(e) => tracing::debug!(error = %e, "budget sweep failed"),
        }
    }
}

/// The spill file: appended (and fsync'd) under a lock; moved aside to `<path>.replay` for
/// replay so that new spills never wait for a replay.
struct Spill {
    path: PathBuf,
    replay_path: PathBuf,
    rejected_path: PathBuf,
    lock: tokio::sync::Mutex<()>,
    dirty: AtomicBool,
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn sync_parent(p: &Path) {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

fn append_lines(path: &Path, lines: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let existed = path.exists();
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let mut w = BufWriter::new(f);
    w.write_all(lines)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_data()?;
    if !existed {
        sync_parent(path);
    }
    Ok(())
}

impl Spill {
    fn new(path: PathBuf) -> Self {
        Self {
            replay_path: with_suffix(&path, ".replay"),
            rejected_path: with_suffix(&path, ".rejected"),
            path,
            lock: tokio::sync::Mutex::new(()),
            dirty: AtomicBool::new(false),
        }
    }

    fn has_files(&self) -> bool {
        let non_empty = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
        non_empty(&self.path) || self.replay_path.exists()
    }

    async fn append(&self, batch: &[Arc<CallRecord>]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(batch.len() * 512);
        for r in batch {
            serde_json::to_writer(&mut buf, r.as_ref())?;
            buf.push(b'\n');
        }
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || append_lines(&path, &buf))
            .await
            .map_err(io::Error::other)??;
        self.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn append_rejected(&self, r: &CallRecord) -> io::Result<()> {
        let mut buf = serde_json::to_vec(r)?;
        buf.push(b'\n');
        let path = self.rejected_path.clone();
        tokio::task::spawn_blocking(move || append_lines(&path, &buf))
            .await
            .map_err(io::Error::other)?
    }

    /// The file to replay: a leftover `<path>.replay` (an interrupted replay), else the spill
    /// file renamed to it. `None` when there is nothing to replay.
    async fn take_for_replay(&self) -> io::Result<Option<PathBuf>> {
        let _guard = self.lock.lock().await;
        if self.replay_path.exists() {
            return Ok(Some(self.replay_path.clone()));
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if m.len() > 0 => {
                std::fs::rename(&self.path, &self.replay_path)?;
                sync_parent(&self.path);
                Ok(Some(self.replay_path.clone()))
            }
            Ok(_) | Err(_) => {
                self.dirty.store(false, Ordering::SeqCst);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_errors_set_a_record_aside() {
        assert!(refused_for_content(&StoreError::Invalid("x".into())));
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
            sqlx::Error::Protocol("eof".into()),
        ] {
            assert!(!refused_for_content(&StoreError::Database(e)));
        }
    }

    #[tokio::test]
    async fn a_real_constraint_error_is_a_refusal() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        for bad in ["INSERT INTO t VALUES (NULL)", "INSERT INTO t VALUES (1)"] {
            let e = sqlx::query(bad).execute(&pool).await.unwrap_err();
            assert!(refused_for_content(&StoreError::Database(e)), "{bad}");
        }
    }

    #[test]
    fn spilled_lines_from_older_builds_still_parse() {
        let full = CallRecord {
            request_id: "r1".into(),
            attempts: 2,
            ..CallRecord::default()
        };
        let line = serde_json::to_vec(&full).unwrap();
        assert_eq!(parse_spilled(&line), Some(full));
        // A field missing (an older CallRecord), and one unknown (a newer one).
        let old = br#"{"request_id":"r2","started_at_ms":5,"model_group":"m","extra":1}"#;
        let r = parse_spilled(old).unwrap();
        assert_eq!((r.request_id.as_str(), r.started_at_ms), ("r2", 5));
        assert_eq!(parse_spilled(b"{\"request_id\":\"tor"), None);
        assert_eq!(parse_spilled(b"[1,2]"), None);
    }
}
