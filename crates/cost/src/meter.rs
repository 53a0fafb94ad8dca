//! The metering point: prices a finished call and hands its [`CallRecord`] to the sinks.
//!
//! Every call passes [`Meter::emit`] exactly once. Each sink has its own bounded queue and
//! task, so a slow sink delays nobody; when a sink's queue is full the record is dropped for
//! that sink only, counted, and logged (first drop, then every 1,000th).
//!
//! Budget alerts ([`Meter::alert`]) travel the same per-sink queues, in order with the
//! records, and are dropped and counted the same way when a queue is full: raising one
//! never waits and never fails.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use llmux_core::{BudgetAlert, CallRecord, CallSink};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{CallUsage, ModelPrice, Money, PriceTable};

/// Default queue length per sink.
pub const DEFAULT_SINK_QUEUE: usize = 16_384;

/// Prices calls and fans records out to sinks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Meter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sinks: Vec<SinkQueue>,
    unknown_models: AtomicU64,
    warned: Mutex<HashSet<String>>,
    emitted: AtomicU64,
    alerts: AtomicU64,
}

/// What a sink's queue carries.
#[derive(Debug)]
enum Item {
    Record(Arc<CallRecord>),
    Alert(Arc<BudgetAlert>),
}

#[derive(Debug)]
struct SinkQueue {
    name: String,
    tx: mpsc::Sender<Item>,
    /// Records and alerts lost because the queue was full.
    dropped: AtomicU64,
}

impl SinkQueue {
    /// Queue `item` without waiting; count and log it when the queue is full.
    fn offer(&self, item: Item) {
        if self.tx.try_send(item).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(1000) {
                tracing::error!(sink = %self.name, dropped = n, "call-record sink is falling behind: records dropped for it");
            }
        }
    }
}

/// The sink tasks; [`MeterWorkers::drain`] waits until every queued record was handled.
#[derive(Debug)]
pub struct MeterWorkers {
    tasks: Vec<JoinHandle<()>>,
}

impl Meter {
    /// A meter with no sinks (records are priced and discarded).
    pub fn disabled() -> Self {
        Self::start(Vec::new(), DEFAULT_SINK_QUEUE).0
    }

    /// Start one task per sink on the current tokio runtime (none is needed when there are
    /// no sinks).
    pub fn start(sinks: Vec<Arc<dyn CallSink>>, queue: usize) -> (Self, MeterWorkers) {
        let mut queues = Vec::with_capacity(sinks.len());
        let mut tasks = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let (tx, mut rx) = mpsc::channel::<Item>(queue.max(1));
            queues.push(SinkQueue {
                name: sink.name().to_owned(),
                tx,
                dropped: AtomicU64::new(0),
            });
            tasks.push(tokio::spawn(async move {
                while let Some(item) = rx.recv().await {
                    match item {
                        Item::Record(rec) => sink.record(rec).await,
                        Item::Alert(alert) => sink.alert(alert).await,
                    }
                }
            }));
        }
        let meter = Self {
            inner: Arc::new(Inner {
                sinks: queues,
                unknown_models: AtomicU64::new(0),
                warned: Mutex::new(HashSet::new()),
                emitted: AtomicU64::new(0),
                alerts: AtomicU64::new(0),
            }),
        };
        (meter, MeterWorkers { tasks })
    }

    /// The price of `provider/model` from `table`, warning once per unknown model and
    /// counting every miss. `None` is an honest "no price", never a guess.
    pub fn price_for<'t>(
        &self,
        table: &'t PriceTable,
        provider: &str,
        model: &str,
    ) -> Option<&'t ModelPrice> {
        let found = table.lookup(provider, model);
        if found.is_none() {
            self.inner.unknown_models.fetch_add(1, Ordering::Relaxed);
            let key = format!("{provider}/{model}");
            let mut warned = self.inner.warned.lock().unwrap_or_else(|p| p.into_inner());
            if warned.len() < 10_000 && warned.insert(key) {
                tracing::warn!(
                    provider,
                    model,
                    "no price known for this model: its calls are recorded with no cost"
                );
            }
        }
        found
    }

    /// The cost of a call with `usage` at `price`.
    pub fn cost(price: Option<&ModelPrice>, usage: &CallUsage) -> Option<Money> {
        price.map(|p| p.cost(usage).total)
    }

    /// Hand `record` to every sink without waiting.
    pub fn emit(&self, record: CallRecord) {
        self.inner.emitted.fetch_add(1, Ordering::Relaxed);
        if self.inner.sinks.is_empty() {
            return;
        }
        let rec = Arc::new(record);
        for q in &self.inner.sinks {
            q.offer(Item::Record(rec.clone()));
        }
    }

    /// Hand a budget alert to every sink without waiting (a full queue drops it for that
    /// sink, counted in [`Meter::dropped`] like a record).
    pub fn alert(&self, alert: BudgetAlert) {
        self.inner.alerts.fetch_add(1, Ordering::Relaxed);
        let alert = Arc::new(alert);
        for q in &self.inner.sinks {
            q.offer(Item::Alert(alert.clone()));
        }
    }

    /// Budget alerts raised so far.
    pub fn alerts(&self) -> u64 {
        self.inner.alerts.load(Ordering::Relaxed)
    }

    /// Whether any sink listens (when none does, callers may skip building records).
    pub fn has_sinks(&self) -> bool {
        !self.inner.sinks.is_empty()
    }

    /// Count a record that was not built because no sink listens.
    pub fn count_unbuilt(&self) {
        self.inner.emitted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records emitted so far.
    pub fn emitted(&self) -> u64 {
        self.inner.emitted.load(Ordering::Relaxed)
    }

    /// Records (and budget alerts) dropped, per sink name.
    pub fn dropped(&self) -> Vec<(String, u64)> {
        self.inner
            .sinks
            .iter()
            .map(|q| (q.name.clone(), q.dropped.load(Ordering::Relaxed)))
            .collect()
    }

    /// Price lookups that found no model.
    pub fn unknown_model_lookups(&self) -> u64 {
        self.inner.unknown_models.load(Ordering::Relaxed)
    }
}

impl MeterWorkers {
    /// Wait until every record queued so far has been handled. Call after the last
    /// [`Meter`] clone is dropped (the queues close then).
    pub async fn drain(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;

    #[derive(Debug, Default)]
    struct Collect(
        Mutex<Vec<Arc<CallRecord>>>,
        Option<Duration>,
        Mutex<Vec<Arc<BudgetAlert>>>,
    );

    #[async_trait]
    impl CallSink for Collect {
        fn name(&self) -> &str {
            "collect"
        }
        async fn record(&self, record: Arc<CallRecord>) {
            if let Some(d) = self.1 {
                tokio::time::sleep(d).await;
            }
            self.0.lock().unwrap().push(record);
        }
        async fn alert(&self, alert: Arc<BudgetAlert>) {
            if let Some(d) = self.1 {
                tokio::time::sleep(d).await;
            }
            self.2.lock().unwrap().push(alert);
        }
    }

    /// A sink that keeps the trait's default `alert` (as every sink written before alerts).
    #[derive(Debug, Default)]
    struct RecordsOnly(AtomicU64);

    #[async_trait]
    impl CallSink for RecordsOnly {
        fn name(&self) -> &str {
            "records-only"
        }
        async fn record(&self, _record: Arc<CallRecord>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn alert(id: &str) -> BudgetAlert {
        BudgetAlert {
            scope: llmux_core::BudgetScope::Key,
            id: id.into(),
            spend_nano: 1_100,
            soft_budget_nano: 1_000,
            max_budget_nano: Some(5_000),
            at_ms: 1,
        }
    }

    fn rec(id: &str) -> CallRecord {
        CallRecord {
            request_id: id.into(),
            ..CallRecord::default()
        }
    }

    #[tokio::test]
    async fn every_sink_gets_every_record_and_drain_waits() {
        let a = Arc::new(Collect::default());
        let b = Arc::new(Collect::default());
        let (m, workers) = Meter::start(vec![a.clone(), b.clone()], 64);
        for i in 0..50 {
            m.emit(rec(&i.to_string()));
        }
        assert_eq!(m.emitted(), 50);
        drop(m);
        workers.drain().await;
        assert_eq!(a.0.lock().unwrap().len(), 50);
        assert_eq!(b.0.lock().unwrap().len(), 50);
    }

    #[tokio::test]
    async fn a_slow_sink_drops_are_counted_and_others_unaffected() {
        let slow = Arc::new(Collect(
            Mutex::default(),
            Some(Duration::from_millis(50)),
            Mutex::default(),
        ));
        let fast = Arc::new(Collect::default());
        let (m, workers) = Meter::start(vec![slow.clone(), fast.clone()], 4);
        for i in 0..40 {
            m.emit(rec(&i.to_string()));
        }
        let dropped: u64 = m
            .dropped()
            .iter()
            .filter(|(n, _)| n == "collect")
            .map(|(_, d)| *d)
            .sum();
        drop(m);
        workers.drain().await;
        let got_slow = slow.0.lock().unwrap().len() as u64;
        let got_fast = fast.0.lock().unwrap().len() as u64;
        // Nothing vanishes without being counted: delivered + dropped = emitted, per sink.
        assert_eq!(got_slow + got_fast + dropped, 80);
        assert!(got_slow < 40, "the slow sink could not keep up");
    }

    #[tokio::test]
    async fn an_alert_reaches_every_sink_and_a_default_sink_ignores_it() {
        let a = Arc::new(Collect::default());
        let b = Arc::new(Collect::default());
        let plain = Arc::new(RecordsOnly::default());
        let (m, workers) = Meter::start(vec![a.clone(), b.clone(), plain.clone()], 8);
        m.emit(rec("r1"));
        m.alert(alert("k1"));
        m.emit(rec("r2"));
        assert_eq!((m.emitted(), m.alerts()), (2, 1));
        drop(m);
        workers.drain().await;
        for sink in [&a, &b] {
            let alerts = sink.2.lock().unwrap();
            assert_eq!(alerts.len(), 1);
            assert_eq!(*alerts[0], alert("k1"));
            assert_eq!(sink.0.lock().unwrap().len(), 2);
        }
        assert_eq!(
            plain.0.load(Ordering::Relaxed),
            2,
            "the default `alert` ignores it"
        );
    }

    #[tokio::test]
    async fn an_alert_to_a_full_queue_is_dropped_and_counted_without_waiting() {
        let slow = Arc::new(Collect(
            Mutex::default(),
            Some(Duration::from_millis(200)),
            Mutex::default(),
        ));
        let (m, workers) = Meter::start(vec![slow.clone()], 1);
        // The task takes the first record and sleeps on it; the second fills the queue.
        m.emit(rec("r1"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        m.emit(rec("r2"));
        let before = std::time::Instant::now();
        m.alert(alert("k1"));
        assert!(
            before.elapsed() < Duration::from_millis(100),
            "alert never waits"
        );
        assert_eq!(m.dropped(), vec![("collect".to_owned(), 1)]);
        assert_eq!(m.alerts(), 1);
        drop(m);
        workers.drain().await;
        assert!(
            slow.2.lock().unwrap().is_empty(),
            "the dropped alert never arrives"
        );
        assert_eq!(slow.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn unknown_models_are_counted_not_priced() {
        let m = Meter::disabled_for_tests();
        let t = PriceTable::embedded();
        assert!(m.price_for(t, "openai", "gpt-4o").is_some());
        assert!(m.price_for(t, "openai", "no-such-model-xyz").is_none());
        assert!(m.price_for(t, "openai", "no-such-model-xyz").is_none());
        assert_eq!(m.unknown_model_lookups(), 2);
        let usage = CallUsage::tokens(1000, 100);
        let gpt = m.price_for(t, "openai", "gpt-4o");
        assert!(Meter::cost(gpt, &usage).is_some_and(|c| c.nano_usd() > 0));
        assert_eq!(Meter::cost(None, &usage), None);
    }

    impl Meter {
        fn disabled_for_tests() -> Self {
            Self {
                inner: Arc::new(Inner {
                    sinks: Vec::new(),
                    unknown_models: AtomicU64::new(0),
                    warned: Mutex::new(HashSet::new()),
                    emitted: AtomicU64::new(0),
                    alerts: AtomicU64::new(0),
                }),
            }
        }
    }
}
