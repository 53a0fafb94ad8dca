//! The spend writer: batching, flush, outages, spill and replay.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use llmux_core::{CallRecord, CallSink};
use llmux_store::*;

use crate::common::{PgDb, TempDir, TestDb, bounded, quick_options, records, unique};
use crate::on_both_backends;
use crate::spend::{all_request_ids, check_reports};

on_both_backends!(
    writer_writes_every_record_once,
    spill_survives_a_writer_restart,
    two_writers_racing_on_the_same_records_count_each_once,
);

fn config(spill: Option<std::path::PathBuf>) -> SpendWriterConfig {
    SpendWriterConfig {
        batch_size: 64,
        flush_interval: Duration::from_millis(50),
        buffer_capacity: 1_000,
        spill_path: spill,
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        write_timeout: Duration::from_secs(5),
        budget_sweep_interval: None,
    }
}

/// (a) N records in, N rows out, aggregates matching, all through the sink interface.
async fn writer_writes_every_record_once(db: &TestDb) {
    let store = db.store().await;
    let scratch = db.scratch();
    let writer = Arc::new(SpendWriter::start(
        store.clone(),
        config(Some(scratch.path("spill.jsonl"))),
    ));
    assert_eq!(writer.name(), "spend_log");
    let recs = records(3_000, &unique());
    // Two producers, as from a meter queue; the writer must not care.
    let mut tasks = Vec::new();
    for part in recs.chunks(1_500) {
        let w = writer.clone();
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            for r in part {
                w.record(r).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A replayed record (same request id) is not counted twice.
    writer.record(recs[0].clone()).await;
    let stats = writer.flush().await.unwrap();
    assert_eq!(stats.received, 3_001);
    assert_eq!(stats.written, 3_000);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.dropped, 0);
    assert_eq!(all_request_ids(&store).await.len(), 3_000);
    check_reports(&store, &recs).await;
    let stats = writer.shutdown().await.unwrap();
    assert_eq!(stats.written, 3_000);
    assert!(matches!(writer.flush().await, Err(StoreError::Closed)));
    assert!(matches!(writer.shutdown().await, Err(StoreError::Closed)));
    store.close().await;
}

/// Two gateways' writers receive the same records (a replay racing live traffic) in
/// different batch sizes: each row is stored and counted once, and nothing deadlocks.
async fn two_writers_racing_on_the_same_records_count_each_once(db: &TestDb) {
    let store = db.store().await;
    let recs = records(2_000, &unique());
    let mut writers = Vec::new();
    for batch in [50, 173] {
        let mut cfg = config(None);
        cfg.batch_size = batch;
        cfg.buffer_capacity = 10_000;
        writers.push(Arc::new(SpendWriter::start(db.store().await, cfg)));
    }
    let mut tasks = Vec::new();
    for w in &writers {
        let w = w.clone();
        let recs = recs.clone();
        tasks.push(tokio::spawn(async move {
            for r in recs {
                w.record(r).await;
            }
            w.flush().await.unwrap()
        }));
    }
    let mut written = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert_eq!((s.rejected, s.dropped), (0, 0));
        written += s.written;
    }
    assert_eq!(written, 2_000);
    assert_eq!(all_request_ids(&store).await.len(), 2_000);
    check_reports(&store, &recs).await;
    for w in writers {
        w.shutdown().await.unwrap();
    }
    store.close().await;
}

/// (c) A writer whose database is gone spills at shutdown; the next writer replays the file
/// (skipping a torn last line), and a second replay of the same records counts nothing twice.
async fn spill_survives_a_writer_restart(db: &TestDb) {
    let scratch = TempDir::new();
    let spill = scratch.path("spill.jsonl");
    let recs = records(500, &unique());

    // Writer 1: its store's pool is closed, so every write fails as "unreachable".
    let dead = db.store().await;
    dead.close().await;
    let w1 = SpendWriter::start(dead, config(Some(spill.clone())));
    for r in &recs {
        w1.record(r.clone()).await;
    }
    assert!(matches!(
        w1.flush().await,
        Err(StoreError::Unavailable { .. })
    ));
    let err = w1.shutdown().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let s1 = w1.stats();
    assert_eq!(s1.spilled, 500);
    assert!(s1.database_down);
    assert_eq!(s1.written, 0);
    // Late records after shutdown are spilled too.
    let late = Arc::new(CallRecord {
        request_id: format!("{}-late", recs[0].request_id),
        ..(*recs[1]).clone()
    });
    w1.record(late.clone()).await;
    assert_eq!(w1.stats().spilled, 501);
    // Everything is on disk: in the spill file, or in `.replay` if a replay was attempted.
    let lines: usize = [spill.clone(), scratch.path("spill.jsonl.replay")]
        .iter()
        .map(|p| std::fs::read_to_string(p).map_or(0, |t| t.lines().count()))
        .sum();
    assert_eq!(lines, 501);
    // A crash in the middle of an append leaves a torn line: it is skipped, not fatal.
    std::fs::write(
        &spill,
        std::fs::read_to_string(&spill).unwrap() + "{\"request_id\":\"torn",
    )
    .unwrap();

    // Writer 2 on a live store replays the file at start.
    let store = db.store().await;
    let w2 = SpendWriter::start(store.clone(), config(Some(spill.clone())));
    let s2 = w2.flush().await.unwrap();
    assert_eq!(s2.replayed, 501);
    assert_eq!(s2.written, 501);
    assert!(!spill.exists(), "replayed spill file removed");
    assert!(!scratch.path("spill.jsonl.replay").exists());
    let mut all = recs.clone();
    all.push(late);
    assert_eq!(all_request_ids(&store).await.len(), 501);
    check_reports(&store, &all).await;

    // Replaying the same records again (e.g. a crash after the commit, before the file was
    // removed) inserts nothing and leaves the aggregates alone. Writer 2 stops first: a live
    // writer may still be marked dirty (writer 1 split the spill in two) and would replay
    // the file itself.
    w2.shutdown().await.unwrap();
    let mut text = String::new();
    for r in &all {
        text.push_str(&serde_json::to_string(r.as_ref()).unwrap());
        text.push('\n');
    }
    std::fs::write(scratch.path("spill.jsonl.replay"), text).unwrap();
    let w3 = SpendWriter::start(store.clone(), config(Some(spill.clone())));
    let s3 = w3.flush().await.unwrap();
    assert_eq!(s3.replayed, 501);
    assert_eq!(s3.written, 0);
    assert_eq!(s3.duplicates, 501);
    check_reports(&store, &all).await;
    w3.shutdown().await.unwrap();
    store.close().await;
}

/// (b) PostgreSQL becomes unreachable in the middle of a steady load (new connections
/// refused, existing ones killed), stays down for a while, comes back: every record arrives
/// exactly once, and the aggregates count each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_mid_load_loses_nothing() {
    let Some(pg) = PgDb::create().await else {
        return;
    };
    bounded(async {
        // Several pooled connections. `cut` ends the database's backends one after another,
        // so a batch can fail on a connection already gone while the writer's reachability
        // probe still finds one alive: the writer must tell the outage from a refusal by
        // the error itself (`rejected` stays 0), not by the probe.
        let options = StoreOptions {
            max_connections: 4,
            ..quick_options()
        };
        let store = Store::connect_with(&pg.url, &options).await.unwrap();
        let scratch = TempDir::new();
        let spill = scratch.path("spill.jsonl");
        let mut cfg = config(Some(spill.clone()));
        // Small enough that the outage overflows memory into the spill file too.
        cfg.buffer_capacity = 300;
        let writer = Arc::new(SpendWriter::start(store.clone(), cfg));
        let recs = records(4_000, &unique());

        let feeder = {
            let writer = writer.clone();
            let recs = recs.clone();
            tokio::spawn(async move {
                for chunk in recs.chunks(40) {
                    for r in chunk {
                        writer.record(r.clone()).await;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        // Let some batches land, then cut the database off while the load continues.
        tokio::time::sleep(Duration::from_millis(300)).await;
        pg.cut().await;
        let mut saw_down = false;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            saw_down |= writer.stats().database_down;
        }
        assert!(saw_down, "the writer noticed the outage");
        let during = writer.stats();
        assert!(during.spilled > 0, "the outage spilled to disk: {during:?}");
        pg.restore().await;
        feeder.await.unwrap();

        // Flush until the writer has caught up (it retries on its own backoff as well).
        let mut stats = None;
        for _ in 0..100 {
            match writer.flush().await {
                Ok(s) => {
                    stats = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let stats = stats.expect("the writer recovered");
        assert_eq!(stats.received, 4_000);
        assert_eq!(stats.dropped, 0);
        assert_eq!(stats.rejected, 0);
        assert_eq!(stats.pending, 0);
        // Rows may have been committed just as a connection died and then been replayed:
        // those count as duplicates, never as second rows.
        assert_eq!(stats.written, 4_000, "{stats:?}");
        let ids = all_request_ids(&store).await;
        assert_eq!(ids.len(), 4_000);
        let want: HashSet<&str> = recs.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids.iter().map(String::as_str).collect::<HashSet<_>>(), want);
        check_reports(&store, &recs).await;
        writer.shutdown().await.unwrap();
        assert!(!spill.exists());
        store.close().await;
    })
    .await;
}

/// Without a spill file, an overflowing buffer drops the oldest records, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spill_file_overflow_is_counted() {
    bounded(async {
        let dead = Store::connect("sqlite::memory:").await.unwrap();
        dead.close().await;
        let mut cfg = config(None);
        cfg.buffer_capacity = 100;
        cfg.batch_size = 10;
        let w = SpendWriter::start(dead, cfg);
        for r in records(250, &unique()) {
            w.record(r).await;
        }
        let s = w.stats();
        assert_eq!(s.received, 250);
        assert!(s.dropped > 100, "{s:?}");
        assert!(s.pending <= 100 + 1, "{s:?}");
        assert!(matches!(
            w.shutdown().await,
            Err(StoreError::Unavailable { .. })
        ));
        let s = w.stats();
        assert_eq!(s.dropped, 250);
    })
    .await;
}
